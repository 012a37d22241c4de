//! The config fuzzer's inputs (see fuzz.rs): structured configs built from the tables and keys of
//! the real schema (config/mod.rs's module doc) with plausible, extreme and wrong-typed values; byte
//! edits of a full valid config (fuzz_seed.toml); values for the `TEND_*` overrides.

use std::collections::BTreeMap;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------------------------------
// Structured generation: tables and keys of the real schema
// ---------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    Dur,
    Int,
    Float,
    Bool,
    Name,
    Text,
    Regex,
    Url,
    Addr,
    Path,
    Time,
    OneOf(&'static [&'static str]),
    List(&'static [&'static str]),
    Ints,
    Env,
    Labels,
    Table(&'static [(&'static str, Kind)]),
}

const DURATIONS: &[&str] = &[
    "\"5s\"",
    "\"0s\"",
    "\"100ms\"",
    "\"1ms\"",
    "\"0.5s\"",
    "\"1h30m\"",
    "\"1d\"",
    "\"106751991167300d\"",
    "\"106751991167299d\"",
    "\"213503982334601d\"",
    "\"18446744073709551615s\"",
    "\"99999999999999999999999s\"",
    "\"1e300\"",
    "\"1e300s\"",
    "\"9223372036854775807s\"",
    "\"9223372036854775807ms\"",
    "\"-5s\"",
    "\"\"",
    "\"s\"",
    "\"5\"",
    "\"5 s\"",
    "\"1.5.5s\"",
    "\"NaNs\"",
    "\"infs\"",
    "\"0.0000000001s\"",
    "\"1.7976931348623157e308s\"",
    "\"5m5m\"",
    "\"4294967296s\"",
    "\"2562047788015215h\"",
    "\"153722867280912930m\"",
    "0",
    "1",
    "-1",
    "0.1",
    "1e300",
    "-1e300",
    "nan",
    "inf",
    "-inf",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551",
    "1.5",
    "5e-324",
    "86400000000000",
    "1e19",
];
const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "100",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "17592186044416",
    "1e3",
    "0x7fffffffffffffff",
    "1.5",
];
const FLOATS: &[&str] = &[
    "0.0",
    "-0.0",
    "0.5",
    "1.0",
    "50",
    "100",
    "101",
    "1e300",
    "-1e300",
    "nan",
    "+inf",
    "-inf",
    "5e-324",
    "1.7976931348623157e308",
    "-1",
    "9223372036854775807",
];
const NAMES: &[&str] = &["\"a\"", "\"api\"", "\"b\"", "\"\"", "\"a b\"", "\"x.y-z_0\"", "\"é\""];
const TEXTS: &[&str] = &[
    "\"\"",
    "\"x\"",
    "\"\\u0000\"",
    "\"é\"",
    "\"$TEND_PORT\"",
    "\"$TEND_SLOT\"",
    "\"$TEND_EXE\"",
    "\"\\n\"",
];
const REGEXES: &[&str] =
    &["\"x\"", "\"(\"", "\"[\"", "\"a{5000}\"", "\"(a*)*b\"", "\"\\\\\"", "\".*\"", "\"\""];
const URLS: &[&str] = &[
    "\"http://127.0.0.1:9000/x\"",
    "\"http://\"",
    "\"https://x\"",
    "\"unix:///run/docker.sock\"",
    "\"tcp://127.0.0.1:2375\"",
    "\"http://127.0.0.1:$TEND_PORT/metrics\"",
    "\"http://[::1]:99999/\"",
    "\"ftp://x\"",
    "\"\"",
    "\"http://127.0.0.1:65536\"",
    "\"unix://\"",
    "\"http://127.0.0.1:0/\"",
];
const ADDRS: &[&str] = &[
    "\"127.0.0.1:0\"",
    "\"127.0.0.1:65535\"",
    "\"[::1]:7878\"",
    "\"0.0.0.0:7878\"",
    "\"127.0.0.1:65536\"",
    "\"localhost:80\"",
    "\"\"",
    "\"1.2.3.4\"",
    "\"[::]:0\"",
];
const PATHS: &[&str] = &["\"/tmp\"", "\"\"", "\"/nonexistent\"", "\"relative\""];
const TIMES: &[&str] = &[
    "\"22:00\"",
    "\"07:00\"",
    "\"24:00\"",
    "\"23:59\"",
    "\"-1:00\"",
    "\"99:99\"",
    "\"\"",
    "\"7\"",
    "\"00:00\"",
    "\"23:60\"",
];
const WRONG: &[&str] = &[
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "[]",
    "{}",
    "[[1], [\"a\"]]",
    "[1, \"a\"]",
    "true",
    "\"x\"",
    "1",
    "1.5",
    "{ a = { b = 1 } }",
];

const RETENTION: &[(&str, Kind)] =
    &[("raw", Kind::Dur), ("minute", Kind::Dur), ("hour", Kind::Dur), ("max_size_mb", Kind::Int)];
const QUIET: &[(&str, Kind)] = &[("from", Kind::Time), ("to", Kind::Time)];
const READINESS: &[(&str, Kind)] = &[
    ("start_secs", Kind::Float),
    ("tcp", Kind::Addr),
    ("tcp_port", Kind::Int),
    ("http", Kind::Url),
    ("log", Kind::Regex),
    ("timeout", Kind::Dur),
];
const RECYCLE: &[(&str, Kind)] = &[
    ("memory_mb", Kind::Int),
    ("ttl", Kind::Dur),
    ("max_requests", Kind::Int),
    ("jitter", Kind::Float),
    ("warmup", Kind::Dur),
    ("max_unavailable", Kind::Int),
    ("storm_max", Kind::Int),
    ("storm_window", Kind::Dur),
    ("on_death", Kind::Bool),
    ("on_timeout", Kind::Bool),
];
const SERVER: &[(&str, Kind)] = &[("listen", Kind::Addr), ("token", Kind::Text)];
const STORE: &[(&str, Kind)] = &[("data_dir", Kind::Path), ("retention", Kind::Table(RETENTION))];
const NOTIFICATIONS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("per_rule", Kind::Int),
    ("overall", Kind::Int),
    ("window", Kind::Dur),
    ("quiet_hours", Kind::Table(QUIET)),
    ("record_only", Kind::List(&["\"info\"", "\"warning\"", "\"critical\"", "\"x\"", "\"\""])),
    ("digest", Kind::Bool),
];
const POOL: &[(&str, Kind)] = &[
    ("name", Kind::Name),
    ("source", Kind::OneOf(&["\"spawn\"", "\"attach\"", "\"reported\"", "\"docker\"", "\"x\""])),
    (
        "command",
        Kind::List(&[
            "\"$TEND_EXE\"",
            "\"demo-worker\"",
            "\"\"",
            "\"/bin/true\"",
            "\"--x=$TEND_SLOT\"",
            "\"$TEND_PORT\"",
        ]),
    ),
    ("env", Kind::Env),
    ("cwd", Kind::Path),
    ("size", Kind::Int),
    ("restart", Kind::OneOf(&["\"always\"", "\"on-failure\"", "\"never\"", "\"x\""])),
    (
        "profile",
        Kind::OneOf(&[
            "\"intensive\"",
            "\"realtime\"",
            "\"standard\"",
            "\"batch\"",
            "\"minimal\"",
            "\"daemon\"",
            "\"disabled\"",
            "\"x\"",
        ]),
    ),
    ("interval", Kind::Dur),
    ("readiness", Kind::Table(READINESS)),
    ("busy_cpu_percent", Kind::Float),
    ("requests_log", Kind::Regex),
    ("stop_grace", Kind::Dur),
    ("stale_after", Kind::Dur),
    ("task_timeout", Kind::Dur),
    ("recycle", Kind::Table(RECYCLE)),
    ("cmdline", Kind::Regex),
    ("process_name", Kind::Text),
    ("pids", Kind::Ints),
    ("labels", Kind::Labels),
    ("docker_host", Kind::Url),
    ("container_name", Kind::Regex),
    ("image", Kind::Text),
    ("recycle_mode", Kind::OneOf(&["\"recreate\"", "\"restart\"", "\"x\""])),
    ("remove_ended", Kind::Bool),
    ("stats", Kind::OneOf(&["\"stream\"", "\"poll\"", "\"x\""])),
    ("orphans_max", Kind::Int),
    ("clean_orphans", Kind::Bool),
    ("metrics_url", Kind::Url),
    ("requests_metric", Kind::Text),
    ("port", Kind::Int),
];
const RULE: &[(&str, Kind)] = &[
    ("name", Kind::Name),
    (
        "metric",
        Kind::OneOf(&[
            "\"memory_mb\"",
            "\"cpu_percent\"",
            "\"fds\"",
            "\"custom_x\"",
            "\"requests\"",
            "\"workers\"",
            "\"\"",
        ]),
    ),
    ("above", Kind::Float),
    ("below", Kind::Float),
    ("clear_below", Kind::Float),
    ("clear_above", Kind::Float),
    ("stale", Kind::Dur),
    ("restarts", Kind::Int),
    ("within", Kind::Dur),
    ("for", Kind::Dur),
    ("for_samples", Kind::Int),
    ("keep_firing_for", Kind::Dur),
    ("severity", Kind::OneOf(&["\"info\"", "\"warning\"", "\"critical\"", "\"x\""])),
    ("scope", Kind::OneOf(&["\"worker\"", "\"pool\"", "\"x\""])),
    ("recycle", Kind::Bool),
    ("flap_max", Kind::Int),
    ("flap_window", Kind::Dur),
    ("channels", Kind::List(&["\"desktop\"", "\"w\"", "\"nope\"", "\"\""])),
];
const WEBHOOK: &[(&str, Kind)] = &[
    ("name", Kind::Name),
    ("url", Kind::Url),
    (
        "events",
        Kind::List(&[
            "\"firing\"",
            "\"resolved\"",
            "\"recycle_started\"",
            "\"recycled\"",
            "\"bogus\"",
            "\"\"",
        ]),
    ),
    ("global", Kind::Bool),
    ("retries", Kind::Int),
    ("backoff", Kind::Dur),
    ("timeout", Kind::Dur),
];

fn pick(options: &'static [&'static str]) -> BoxedStrategy<String> {
    select(options).prop_map(str::to_owned).boxed()
}

/// A long string, up to 20 000 characters.
fn long_text() -> BoxedStrategy<String> {
    select(&[300usize, 5000, 20_000][..]).prop_map(|n| format!("\"{}\"", "a".repeat(n))).boxed()
}

/// How far the generated configs stray from valid ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Up to 4 extra keys per table, sometimes an unknown key, a wrong type or a long string.
    Wild,
    /// Up to 2 extra keys per table, each of its type: more configs get past validation, so the
    /// extremes reach the conversion to what the engine runs.
    Lean,
}

impl Mode {
    fn keys(self) -> usize {
        if self == Mode::Wild { 4 } else { 2 }
    }
}

/// A value of the right type for `kind`, mostly; sometimes plainly wrong.
fn value(kind: Kind, mode: Mode) -> BoxedStrategy<String> {
    match mode {
        Mode::Wild => prop_oneof![10 => plausible(kind, mode), 1 => pick(WRONG), 1 => long_text()].boxed(),
        Mode::Lean => plausible(kind, mode),
    }
}

fn plausible(kind: Kind, mode: Mode) -> BoxedStrategy<String> {
    let list = |items: &'static [&'static str]| {
        vec(select(items), 0..4).prop_map(|v| format!("[{}]", v.join(", "))).boxed()
    };
    match kind {
        Kind::Dur => pick(DURATIONS),
        Kind::Int => pick(INTS),
        Kind::Float => pick(FLOATS),
        Kind::Bool => pick(&["true", "false"]),
        Kind::Name => pick(NAMES),
        Kind::Text => pick(TEXTS),
        Kind::Regex => pick(REGEXES),
        Kind::Url => pick(URLS),
        Kind::Addr => pick(ADDRS),
        Kind::Path => pick(PATHS),
        Kind::Time => pick(TIMES),
        Kind::OneOf(items) => pick(items),
        Kind::List(items) => list(items),
        Kind::Ints => list(INTS),
        Kind::Env => pick(&[
            "{}",
            "{ A = \"1\", B = \"$TEND_SLOT\" }",
            "{ \"\" = \"x\" }",
            "{ A = 1 }",
            "{ P = \"$TEND_PORT\" }",
        ]),
        Kind::Labels => pick(&[
            "[\"tend.pool=etl\"]",
            "[\"k\"]",
            "[\"=v\"]",
            "[\"\"]",
            "{ \"tend.pool\" = \"etl\" }",
            "{ \"\" = \"\" }",
            "[]",
        ]),
        Kind::Table(keys) => entries(keys, mode.keys(), mode)
            .prop_map(|kv| {
                format!(
                    "{{ {} }}",
                    kv.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ")
                )
            })
            .boxed(),
    }
}

/// Up to `max` distinct keys of `keys` with values, sometimes an unknown key among them.
fn entries(
    keys: &'static [(&'static str, Kind)],
    max: usize,
    mode: Mode,
) -> BoxedStrategy<BTreeMap<String, String>> {
    let unknown = if mode == Mode::Wild { 1 } else { 0 };
    let entry = prop_oneof![
        12 => (0..keys.len()).prop_flat_map(move |i| (Just(keys[i].0.to_owned()), value(keys[i].1, mode))),
        unknown => (Just("bogus".to_owned()), pick(WRONG)),
    ];
    vec(entry, 0..=max).prop_map(|v| v.into_iter().collect()).boxed()
}

/// A table's keys on top of a base that makes it valid, so that generation reaches past the first
/// missing-key error.
fn over(
    base: &'static [(&'static str, &'static str)],
    keys: &'static [(&'static str, Kind)],
    mode: Mode,
) -> BoxedStrategy<String> {
    entries(keys, mode.keys(), mode)
        .prop_map(move |extra| {
            let mut all: BTreeMap<String, String> =
                base.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            all.extend(extra);
            all.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
        })
        .boxed()
}

fn pool(mode: Mode) -> BoxedStrategy<String> {
    let base = prop_oneof![
        Just(&[("name", "\"a\""), ("command", "[\"$TEND_EXE\", \"demo-worker\"]"), ("size", "1")][..]),
        Just(&[("name", "\"b\""), ("source", "\"attach\""), ("cmdline", "\"x\"")][..]),
        Just(&[("name", "\"c\""), ("source", "\"reported\"")][..]),
        Just(&[("name", "\"d\""), ("source", "\"docker\""), ("labels", "[\"tend.pool=d\"]")][..]),
    ];
    let rule = over(&[("name", "\"r\""), ("metric", "\"memory_mb\""), ("above", "1")], RULE, mode);
    (base.prop_flat_map(move |b| over(b, POOL, mode)), vec(rule, 0..mode.keys()))
        .prop_map(|(p, rules)| {
            let rules: String = rules.iter().map(|r| format!("\n[[pool.rule]]\n{r}")).collect();
            format!("[[pool]]\n{p}{rules}")
        })
        .boxed()
}

/// A whole file: optional `[server]`, `[store]`, `[notifications]`, pools and webhooks.
pub fn config_text(mode: Mode) -> BoxedStrategy<String> {
    let section = |name: &'static str, keys: &'static [(&'static str, Kind)]| {
        proptest::option::of(entries(keys, mode.keys(), mode)).prop_map(move |e| match e {
            Some(kv) => {
                format!("[{name}]\n{}\n", kv.iter().map(|(k, v)| format!("{k} = {v}\n")).collect::<String>())
            }
            None => String::new(),
        })
    };
    let webhook = over(&[("name", "\"w\""), ("url", "\"http://127.0.0.1:9/x\"")], WEBHOOK, mode);
    (
        section("server", SERVER),
        section("store", STORE),
        section("notifications", NOTIFICATIONS),
        vec(pool(mode), 0..4),
        vec(webhook, 0..mode.keys() / 2 + 1),
    )
        .prop_map(|(server, store, notifications, pools, hooks)| {
            let pools: String = pools.iter().map(|p| format!("{p}\n")).collect();
            let hooks: String = hooks.iter().map(|h| format!("[[webhook]]\n{h}\n")).collect();
            format!("{server}{store}{notifications}{pools}{hooks}")
        })
        .boxed()
}

/// Values for the `TEND_*` overrides (and `DOCKER_HOST`).
pub fn env_values() -> BoxedStrategy<Vec<(&'static str, String)>> {
    let raw = |items: &'static [&'static str]| select(items).prop_map(|s| s.trim_matches('"').to_owned());
    let durations = prop_oneof![raw(DURATIONS), "[0-9a-z. ]{0,12}"];
    (
        proptest::option::of(prop_oneof![raw(ADDRS), "[0-9.:\\[\\]a-f]{0,24}"]),
        proptest::option::of(prop_oneof![raw(TEXTS), ".{0,40}"]),
        proptest::option::of(raw(PATHS)),
        proptest::option::of(raw(URLS)),
        proptest::option::of(durations),
    )
        .prop_map(|(listen, token, dir, docker, interval)| {
            [
                ("TEND_LISTEN", listen),
                ("TEND_TOKEN", token),
                ("TEND_DATA_DIR", dir),
                ("DOCKER_HOST", docker),
                ("TEND_INTERVAL", interval),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect()
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------------------
// Byte mutation of the full valid example
// ---------------------------------------------------------------------------------------------------

/// A valid config that uses every kind of pool and most keys.
pub const VALID: &str = include_str!("fuzz_seed.toml");

#[derive(Clone, Debug)]
pub enum Edit {
    Set(usize, u8),
    Delete(usize, usize),
    Insert(usize, &'static str),
    DuplicateLine(usize),
}

pub fn edits() -> BoxedStrategy<Vec<Edit>> {
    let snippet = select(
        &[
            "\"",
            "'",
            "[",
            "]",
            "{",
            "}",
            "=",
            ",",
            "\n",
            "#",
            "9999999999999999999",
            "106751991167300d",
            "-",
            ".",
            "\\",
            "\"\"\"",
            "[[pool]]\n",
            "\u{0}",
            "é",
            "1e300",
            "nan",
        ][..],
    );
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Set(at, b)),
        (any::<usize>(), 1usize..40).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), snippet).prop_map(|(at, s)| Edit::Insert(at, s)),
        any::<usize>().prop_map(Edit::DuplicateLine),
    ];
    vec(edit, 1..6).boxed()
}

pub fn mutate(edits: &[Edit]) -> Vec<u8> {
    let mut b = VALID.as_bytes().to_vec();
    for e in edits {
        let len = b.len().max(1);
        match *e {
            Edit::Set(at, v) => {
                if let Some(x) = b.get_mut(at % len) {
                    *x = v;
                }
            }
            Edit::Delete(at, n) => {
                let at = at % len;
                b.drain(at..(at + n).min(b.len()));
            }
            Edit::Insert(at, s) => {
                let at = (at % len).min(b.len());
                b.splice(at..at, s.bytes());
            }
            Edit::DuplicateLine(n) => {
                let lines: Vec<&[u8]> = b.split(|c| *c == b'\n').collect();
                let line = lines[n % lines.len()].to_vec();
                b.extend_from_slice(b"\n");
                b.extend_from_slice(&line);
            }
        }
    }
    b
}
