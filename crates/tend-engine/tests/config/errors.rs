//! Every class of problem, with its exact location and wording.

use super::{POOL, problems};
use tend_engine::config::{self, ParseOptions};

// Inputs shared with the snapshot of the rendered diagnostics (diagnostics.rs).

/// A spawn pool whose program is not on PATH.
pub(super) const PROGRAM_NOT_ON_PATH: &str =
    "[[pool]]\nname = \"api\"\ncommand = [\"pythn3\", \"worker.py\"]\nsize = 1\n";
/// A relative program in a `cwd` that does not exist.
pub(super) const MISSING_CWD: &str =
    "[[pool]]\nname = \"api\"\ncommand = [\"./worker\"]\ncwd = \"/nonexistent-tend-dir\"\nsize = 1\n";
/// Problems of every section in one file.
pub(super) const MANY_PROBLEMS: &str = r#"[server]
listen = "nowhere"

[[pool]]
name = "api"
command = ["python3"]
size = 0
profile = "turbo"
recycle = { max_unavailable = 0 }

[[pool.rule]]
name = "mem"
metric = "memory_mb"
above = 100
for = "soon"

[[pool]]
name = "api"
source = "attach"
cmdline = "("
"#;
/// A type error in one pool beside a range error in another.
pub(super) const TYPE_ERROR_AMONG_OTHERS: &str =
    "[[pool]]\nname = \"a\"\nsize = \"x\"\n[[pool]]\nname = \"b\"\nsize = 0\ncommand = [\"x\"]\n";
/// A docker pool with no labels.
pub(super) const DOCKER_HEAD: &str = "[[pool]]\nname = \"etl\"\nsource = \"docker\"\n";

/// A docker pool with a problem in almost every key.
pub(super) fn docker_pool_with_problems() -> String {
    format!(
        "{DOCKER_HEAD}labels = [\"=x\"]\ndocker_host = \"/var/run/docker.sock\"\ncontainer_name = \"(\"\n\
         recycle_mode = \"replace\"\nstats = \"sometimes\"\nrestart = \"always\"\nreadiness = {{ tcp_port = 80 }}\n\
         size = 2\n"
    )
}

#[test]
fn malformed_toml() {
    assert_eq!(
        problems("[server]\nlisten = \"127.0.0.1:7878\n"),
        ["tend.toml:2:25: invalid basic string, expected `\"`"]
    );
    assert_eq!(problems("[[pool]]\nname = \"a\"\nname = \"b\"\n"), ["tend.toml:3:1: duplicate key \"name\""]);
    assert_eq!(
        problems("size = \n"),
        ["tend.toml:1:8: string values must be quoted, expected literal string"]
    );
}

#[test]
fn unknown_keys() {
    let text = format!("{POOL}sise = 3\n");
    assert_eq!(
        problems(&text),
        [
            "tend.toml:5:1: pool \"api\": unknown key \"sise\", expected one of: name, source, command, env, cwd, \
             size, max_size, restart, profile, interval, readiness, busy_cpu_percent, requests_log, stop_grace, stale_after, \
             task_timeout, recycle, cmdline, process_name, pids, labels, docker_host, container_name, image, \
             recycle_mode, remove_ended, stats, orphans_max, clean_orphans, metrics_url, requests_metric, port, rule"
        ]
    );
    assert_eq!(
        problems("[servr]\nlisten = \"127.0.0.1:1\"\n"),
        [
            "tend.toml:1:2: unknown key \"servr\", expected one of: server, store, notifications, discovery, pool, webhook, remote"
        ]
    );
    assert_eq!(
        problems("[server]\nport = 1\n"),
        ["tend.toml:2:1: [server]: unknown key \"port\", expected one of: listen, token, tls, insecure_http"]
    );
    assert_eq!(
        problems(&format!("{POOL}recycle = {{ memory = 100 }}\n")),
        [
            "tend.toml:5:13: pool \"api\": unknown key \"memory\", expected one of: memory_mb, ttl, max_requests, \
             jitter, warmup, max_unavailable, storm_max, storm_window, on_death, on_timeout"
        ]
    );
}

#[test]
fn unknown_key_in_a_rule() {
    let text =
        format!("{POOL}[[pool.rule]]\nname = \"mem\"\nmetric = \"memory_mb\"\nabove = 1\nthreshold = 2\n");
    assert_eq!(
        problems(&text),
        [
            "tend.toml:9:1: pool \"api\": rule \"mem\": unknown key \"threshold\", expected one of: name, metric, \
             above, below, clear_below, clear_above, stale, restarts, within, for, for_samples, keep_firing_for, \
             severity, scope, recycle, flap_max, flap_window, channels"
        ]
    );
}

#[test]
fn wrong_types_name_the_key() {
    assert_eq!(
        problems("[[pool]]\nname = \"api\"\ncommand = [\"python3\", 3]\nsize = 1\n"),
        ["tend.toml:3:23: pool \"api\": invalid type: integer `3`, expected a string for key \"command\""]
    );
    assert_eq!(
        problems("[[pool]]\nname = \"api\"\ncommand = [\"python3\"]\nsize = \"3\"\n"),
        ["tend.toml:4:8: pool \"api\": invalid type: string \"3\", expected an integer for key \"size\""]
    );
    assert_eq!(
        problems(&format!("{POOL}stop_grace = true\n")),
        ["tend.toml:5:14: pool \"api\": invalid type: boolean `true`, expected a duration like \"5s\" or a \
             number of seconds for key \"stop_grace\""]
    );
    assert_eq!(
        problems("server = 5\n"),
        ["tend.toml:1:10: [server]: invalid type: integer `5`, expected a table for key \"server\""]
    );
    assert_eq!(
        problems("[pool]\nname = \"a\"\n"),
        ["tend.toml:1:1: `pool` must be an array of tables: write each pool as [[pool]]"]
    );
}

#[test]
fn invalid_duration() {
    let text = format!(
        "{POOL}[[pool.rule]]\nname = \"mem\"\nmetric = \"memory_mb\"\nabove = 1\nfor = \"five seconds\"\n"
    );
    assert_eq!(
        problems(&text),
        [
            "tend.toml:9:7: pool \"api\": rule \"mem\": invalid duration \"five seconds\" for key \"for\": use a number \
             with a unit: 500ms, 5s, 2m, 1h, 1d (combinations like 1h30m are allowed)"
        ]
    );
    assert_eq!(
        problems(&format!("{POOL}task_timeout = \"0s\"\nstop_grace = -1\n")),
        [
            "tend.toml:5:16: pool \"api\": `task_timeout` must be longer than zero",
            "tend.toml:6:14: pool \"api\": invalid duration -1 for key \"stop_grace\": seconds must be >= 0",
        ]
    );
    assert_eq!(
        problems(&format!("{POOL}interval = \"50ms\"\n")),
        ["tend.toml:5:12: pool \"api\": `interval` is too short: the minimum is 100ms"]
    );
}

#[test]
fn program_not_found() {
    let text = PROGRAM_NOT_ON_PATH;
    let err = config::parse(text, "tend.toml").unwrap_err();
    assert_eq!(err.to_string(), "tend.toml:3:12: pool \"api\": command `pythn3` not found on PATH");
    // Skippable for configs written for another machine.
    config::parse_with(text, "tend.toml", &ParseOptions { check_programs: false }).unwrap();

    let err = config::parse(MISSING_CWD, "tend.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "tend.toml:3:12: pool \"api\": command `./worker` not found\n\
         tend.toml:4:7: pool \"api\": `cwd` \"/nonexistent-tend-dir\" is not a directory"
    );
}

#[test]
fn spawn_pool_requirements() {
    assert_eq!(
        problems("[[pool]]\nname = \"api\"\n"),
        [
            "tend.toml:1:1: pool \"api\": missing key \"command\": a spawn pool needs its argv, like command = \
             [\"python3\", \"worker.py\"]",
            "tend.toml:1:1: pool \"api\": missing key \"size\": how many workers to run (>= 1)",
        ]
    );
    assert_eq!(
        problems("[[pool]]\nname = \"api\"\ncommand = []\nsize = 0\n"),
        [
            "tend.toml:3:11: pool \"api\": `command` must not be empty: give the program and its arguments",
            "tend.toml:4:8: pool \"api\": `size` must be between 1 and 1024, not 0",
        ]
    );
}

#[test]
fn pool_names() {
    let two = super::parse(&format!("{POOL}{}", POOL.replace("api", "web"))).unwrap();
    assert_eq!(two.pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["api", "web"]);
    assert_eq!(
        problems(&format!("{POOL}{POOL}")),
        ["tend.toml:6:8: pool \"api\": duplicate pool name (first defined on line 2)"]
    );
    assert_eq!(
        problems(
            "[[pool]]\nname = \"my api\"\nsource = \"reported\"\n[[pool]]\nname = \"\"\nsource = \"reported\"\n"
        ),
        [
            "tend.toml:2:8: pool \"my api\": invalid pool name \"my api\": use letters, digits, '_', '.' and '-' only",
            "tend.toml:5:8: pool \"\": invalid pool name \"\": use letters, digits, '_', '.' and '-' only",
        ]
    );
    assert_eq!(
        problems("[[pool]]\nsource = \"reported\"\n"),
        ["tend.toml:1:1: pool #1: missing key \"name\""]
    );
}

#[test]
fn choices_list_the_valid_values() {
    assert_eq!(
        problems(&format!("{POOL}profile = \"fast\"\nrestart = \"sometimes\"\n")),
        [
            "tend.toml:5:11: pool \"api\": invalid profile \"fast\", expected one of: intensive, realtime, \
             standard, batch, minimal, daemon, disabled",
            "tend.toml:6:11: pool \"api\": invalid restart \"sometimes\", expected one of: always, on-failure, never",
        ]
    );
    assert_eq!(
        problems("[[pool]]\nname = \"x\"\nsource = \"k8s\"\n"),
        [
            "tend.toml:3:10: pool \"x\": invalid source \"k8s\", expected one of: spawn, attach, reported, docker"
        ]
    );
}

#[test]
fn attach_pool_requirements() {
    assert_eq!(
        problems("[[pool]]\nname = \"legacy\"\nsource = \"attach\"\n"),
        ["tend.toml:1:1: pool \"legacy\": an attach pool needs at least one of: cmdline, process_name, pids"]
    );
    assert_eq!(
        problems("[[pool]]\nname = \"legacy\"\nsource = \"attach\"\ncmdline = \"gunicorn: (worker\"\n"),
        [
            "tend.toml:4:11: pool \"legacy\": invalid regex \"gunicorn: (worker\" for key \"cmdline\": unclosed group"
        ]
    );
    assert_eq!(
        problems("[[pool]]\nname = \"legacy\"\nsource = \"attach\"\npids = [0]\nsize = 2\n"),
        [
            "tend.toml:4:9: pool \"legacy\": `pids` must be between 1 and 2147483647, not 0",
            "tend.toml:5:8: pool \"legacy\": key \"size\" applies only to source = \"spawn\", not \"attach\"",
        ]
    );
}

#[test]
fn readiness_problems() {
    assert_eq!(
        problems(&format!("{POOL}readiness = {{ start_secs = 1, tcp_port = 9000 }}\n")),
        [
            "tend.toml:5:42: pool \"api\": `readiness` has start_secs, tcp_port: use exactly one of start_secs, \
             tcp, tcp_port, http, log"
        ]
    );
    assert_eq!(
        problems(&format!("{POOL}readiness = {{ timeout = \"5s\" }}\n")),
        [
            "tend.toml:5:13: pool \"api\": `readiness` needs exactly one of: start_secs, tcp, tcp_port, http, log"
        ]
    );
    assert_eq!(
        problems(&format!("{POOL}readiness = {{ tcp = \"db:5432\" }}\n")),
        [
            "tend.toml:5:21: pool \"api\": invalid tcp address \"db:5432\": use an IP address and a port, like \
             127.0.0.1:9000"
        ]
    );
    assert_eq!(
        problems(&format!("{POOL}readiness = {{ tcp_port = 70000 }}\n")),
        ["tend.toml:5:26: pool \"api\": `tcp_port` must be between 1 and 65535, not 70000"]
    );
    assert_eq!(
        problems(&format!("{POOL}readiness = {{ http = \"https://x/health\" }}\n")),
        ["tend.toml:5:22: pool \"api\": invalid http readiness URL \"https://x/health\": use \
             http://host:port/path (https is not supported)"]
    );
}

#[test]
fn recycle_ranges() {
    assert_eq!(
        problems(&format!("{POOL}recycle = {{ max_unavailable = 0, jitter = 0.7, memory_mb = -5 }}\n")),
        [
            "tend.toml:5:31: pool \"api\": `max_unavailable` must be at least 1, not 0",
            "tend.toml:5:43: pool \"api\": `jitter` must be between 0 and 0.5, not 0.7",
            "tend.toml:5:60: pool \"api\": `memory_mb` must be between 1 and 16777216, not -5",
        ]
    );
}

#[test]
fn server_problems() {
    assert_eq!(
        problems("[server]\nlisten = \"localhost\"\ntoken = \"\"\n"),
        [
            "tend.toml:2:10: [server]: invalid listen address \"localhost\": use an IP address and a port, like \
             127.0.0.1:7878 or [::1]:7878",
            "tend.toml:3:9: [server]: `token` must not be empty (remove the key for no token)",
        ]
    );
}

/// A rule line by line, starting on line 6 (after POOL and the header).
fn rule(body: &str) -> String {
    format!("{POOL}[[pool.rule]]\nname = \"r\"\n{body}")
}

#[test]
fn rule_conditions() {
    assert_eq!(
        problems(&rule("metric = \"cpu_percent\"\n")),
        [
            "tend.toml:5:1: pool \"api\": rule \"r\": a rule needs one condition: above, below, stale or restarts"
        ]
    );
    assert_eq!(
        problems(&rule("metric = \"cpu_percent\"\nabove = 90\nstale = \"30s\"\n")),
        [
            "tend.toml:9:9: pool \"api\": rule \"r\": a rule has exactly one condition, this one has above, stale: \
             use one of above, below, stale, restarts"
        ]
    );
    assert_eq!(
        problems(&rule("above = 90\n")),
        ["tend.toml:5:1: pool \"api\": rule \"r\": missing key \"metric\": `above` compares a metric"]
    );
    assert_eq!(
        problems(&rule("metric = \"memory_mb\"\nabove = 100\nclear_below = 120\n")),
        ["tend.toml:9:15: pool \"api\": rule \"r\": `clear_below` (120) must be <= `above` (100)"]
    );
    assert_eq!(
        problems(&rule("metric = \"success_rate\"\nbelow = 0.2\nclear_above = 0.1\n")),
        ["tend.toml:9:15: pool \"api\": rule \"r\": `clear_above` (0.1) must be >= `below` (0.2)"]
    );
    assert_eq!(
        problems(&rule("metric = \"memory_mb\"\nabove = 100\nclear_above = 120\n")),
        ["tend.toml:9:15: pool \"api\": rule \"r\": key \"clear_above\" goes only with below, not above"]
    );
    assert_eq!(
        problems(&rule("restarts = 5\n")),
        [
            "tend.toml:5:1: pool \"api\": rule \"r\": missing key \"within\": `restarts` counts restarts within a \
             window, like within = \"10m\""
        ]
    );
    assert_eq!(
        problems(&rule("stale = \"30s\"\nmetric = \"cpu_percent\"\n")),
        ["tend.toml:8:10: pool \"api\": rule \"r\": key \"metric\" goes only with above or below, not stale"]
    );
}

#[test]
fn rule_fields() {
    assert_eq!(
        problems(&rule("stale = \"30s\"\nseverity = \"urgent\"\nscope = \"pool\"\nrecycle = true\n")),
        [
            "tend.toml:8:12: pool \"api\": rule \"r\": invalid severity \"urgent\", expected one of: info, warning, \
             critical",
            "tend.toml:9:9: pool \"api\": rule \"r\": `recycle = true` applies only to scope = \"worker\"",
        ]
    );
    assert_eq!(
        problems(&format!("{}[[pool.rule]]\nname = \"r\"\nstale = \"1m\"\n", rule("stale = \"30s\"\n"))),
        ["tend.toml:9:8: pool \"api\": rule \"r\": duplicate rule name (first defined on line 6)"]
    );
}

#[test]
fn many_problems_are_reported_at_once() {
    let text = MANY_PROBLEMS;
    assert_eq!(
        problems(text),
        [
            "tend.toml:2:10: [server]: invalid listen address \"nowhere\": use an IP address and a port, like \
             127.0.0.1:7878 or [::1]:7878",
            "tend.toml:7:8: pool \"api\": `size` must be between 1 and 1024, not 0",
            "tend.toml:8:11: pool \"api\": invalid profile \"turbo\", expected one of: intensive, realtime, \
             standard, batch, minimal, daemon, disabled",
            "tend.toml:9:31: pool \"api\": `max_unavailable` must be at least 1, not 0",
            "tend.toml:15:7: pool \"api\": rule \"mem\": invalid duration \"soon\" for key \"for\": use a number \
             with a unit: 500ms, 5s, 2m, 1h, 1d (combinations like 1h30m are allowed)",
            "tend.toml:18:8: pool \"api\": duplicate pool name (first defined on line 5)",
            "tend.toml:20:11: pool \"api\": invalid regex \"(\" for key \"cmdline\": unclosed group",
        ]
    );
}

#[test]
fn a_type_error_in_one_pool_does_not_hide_the_others() {
    let text = TYPE_ERROR_AMONG_OTHERS;
    assert_eq!(
        problems(text),
        [
            "tend.toml:3:8: pool \"a\": invalid type: string \"x\", expected an integer for key \"size\"",
            "tend.toml:6:8: pool \"b\": `size` must be between 1 and 1024, not 0",
        ]
    );
}

#[test]
fn docker_pool_problems() {
    assert_eq!(
        problems(DOCKER_HEAD),
        [
            "tend.toml:1:1: pool \"etl\": a docker pool needs `labels` (e.g. labels = [\"tend.pool=etl\"]): Tend \
          watches only the containers that carry them"
        ]
    );
    let text = docker_pool_with_problems();
    let p = problems(&text);
    let expected = [
        "tend.toml:4:10: pool \"etl\": invalid label \"=x\": write \"key=value\" or \"key\"",
        "tend.toml:5:15: pool \"etl\": invalid docker_host \"/var/run/docker.sock\": expected unix:///path, \
         tcp://host:port, http://... or https://...",
        "tend.toml:7:16: pool \"etl\": invalid recycle_mode \"replace\", expected one of: recreate, restart",
        "tend.toml:8:9: pool \"etl\": invalid stats \"sometimes\", expected one of: poll, stream",
        "tend.toml:9:11: pool \"etl\": key \"restart\" does not apply to docker pools: a container's restarts \
         are its own restart policy (docker run --restart); Tend records each run as an incarnation",
        "tend.toml:10:13: pool \"etl\": a docker pool takes readiness = { start_secs = N } only: a container \
         with a healthcheck is READY when healthy, one without once it ran start_secs",
        "tend.toml:11:8: pool \"etl\": key \"size\" applies only to source = \"spawn\", not \"docker\"",
    ];
    for e in expected {
        assert!(p.iter().any(|x| x == e), "missing {e:?} in {p:#?}");
    }
    assert!(p.iter().any(|x| x.starts_with("tend.toml:6:18: pool \"etl\": invalid regex")), "{p:#?}");
    // Keys of docker pools on other sources are located too.
    let spawn = format!("{POOL}labels = [\"a=b\"]\n");
    assert_eq!(
        problems(&spawn),
        ["tend.toml:5:10: pool \"api\": key \"labels\" applies only to source = \"docker\", not \"spawn\""]
    );
}
