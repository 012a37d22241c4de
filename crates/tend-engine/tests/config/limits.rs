//! Every value has a range checked at load: values no deadline arithmetic can hold, pools that would be
//! a fork storm, commands the kernel would refuse, files that are not config files. And `serve` and
//! `check-config` share one validation path ([`config::resolve`]).
#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::Path;

use super::{POOL, parse, problems};
use tend_engine::config::{self, Overrides};

#[test]
fn absurd_durations_are_refused_with_their_location() {
    assert_eq!(
        problems(&format!("{POOL}interval = \"106751991167300d\"\n")),
        ["tend.toml:5:12: pool \"api\": `interval` is too long: the maximum is 1h"]
    );
    assert_eq!(
        problems(&format!("{POOL}interval = 9223372036854775807\nstale_after = \"30s\"\n")),
        ["tend.toml:5:12: pool \"api\": `interval` is too long: the maximum is 1h"]
    );
    assert_eq!(
        problems(&format!("{POOL}stop_grace = 9223372036854775807\n")),
        ["tend.toml:5:14: pool \"api\": `stop_grace` is too long: the maximum is 1h"]
    );
    assert_eq!(
        problems(&format!("{POOL}interval = 1e300\n")),
        ["tend.toml:5:12: pool \"api\": `interval` is too long: the maximum is 1h"],
        "a huge number is too long, not negative"
    );
    assert_eq!(
        problems(&format!("{POOL}recycle = {{ ttl = \"400d\", warmup = \"2d\", storm_window = \"31d\" }}\n")),
        [
            "tend.toml:5:19: pool \"api\": `ttl` is too long: the maximum is 365d",
            "tend.toml:5:36: pool \"api\": `warmup` is too long: the maximum is 1d",
            "tend.toml:5:57: pool \"api\": `storm_window` is too long: the maximum is 30d",
        ]
    );
    assert_eq!(
        problems("[store]\nretention = { raw = \"99999d\" }\n[notifications]\nwindow = \"8d\"\n"),
        [
            "tend.toml:2:21: [store]: `raw` is too long: the maximum is 3650d",
            "tend.toml:4:10: [notifications]: `window` is too long: the maximum is 7d",
        ]
    );
    // The ends of a range are allowed.
    let ok = parse(&format!("{POOL}interval = \"1h\"\nstop_grace = \"0s\"\nstale_after = \"7d\"\n")).unwrap();
    assert_eq!(ok.pools[0].effective_stale_after(), Some(std::time::Duration::from_secs(7 * 86_400)));
}

#[test]
fn a_pool_over_1024_needs_max_size() {
    let big = "[[pool]]\nname = \"api\"\ncommand = [\"python3\", \"w.py\"]\nsize = 100000\n";
    assert_eq!(
        problems(big),
        ["tend.toml:4:8: pool \"api\": `size` 100000 is over the limit of 1024 workers a pool: set \
             `max_size = 100000` in the pool to acknowledge a pool this large (at most 16384)"]
    );
    let acknowledged =
        "[[pool]]\nname = \"api\"\ncommand = [\"python3\", \"w.py\"]\nsize = 2000\nmax_size = 2000\n";
    let cfg = parse(acknowledged).unwrap();
    assert!(matches!(&cfg.pools[0].source, config::SourceConfig::Spawn(s) if s.size == 2000));
    assert_eq!(
        problems(
            "[[pool]]\nname = \"api\"\ncommand = [\"python3\", \"w.py\"]\nsize = 3000\nmax_size = 2000\n"
        ),
        ["tend.toml:4:8: pool \"api\": `size` must be between 1 and 2000, not 3000"]
    );
    assert_eq!(
        problems(
            "[[pool]]\nname = \"api\"\ncommand = [\"python3\", \"w.py\"]\nsize = 1\nmax_size = 100000\n"
        ),
        ["tend.toml:5:12: pool \"api\": `max_size` must be between 1 and 16384, not 100000"]
    );
}

#[test]
fn commands_the_kernel_would_refuse_are_refused_at_load() {
    let long = "x".repeat(200_000);
    let text = format!("[[pool]]\nname = \"api\"\ncommand = [\"python3\", \"{long}\"]\nsize = 1\n");
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with(
            "tend.toml:3:23: pool \"api\": a `command` argument of 200001 bytes is over the kernel's limit"
        ),
        "{p:?}"
    );
    let many: Vec<String> = (0..12).map(|_| format!("\"{}\"", "y".repeat(100_000))).collect();
    let text = format!("[[pool]]\nname = \"api\"\ncommand = [\"python3\", {}]\nsize = 1\n", many.join(", "));
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("`command` and `env` take 1200020 bytes: at most 1048576"), "{p:?}");
}

#[test]
fn an_unknown_source_does_not_hide_other_problems() {
    let text = "[[pool]]\nname = \"api\"\nsource = \"spwan\"\nprofile = \"fast\"\n";
    assert_eq!(
        problems(text),
        [
            "tend.toml:3:10: pool \"api\": invalid source \"spwan\", expected one of: spawn, attach, reported, docker",
            "tend.toml:4:11: pool \"api\": invalid profile \"fast\", expected one of: intensive, realtime, \
             standard, batch, minimal, daemon, disabled",
        ]
    );
}

fn load_error(path: &Path) -> String {
    config::load(path).expect_err("must not load").to_string()
}

#[test]
fn only_regular_files_of_at_most_4_mib_are_read() {
    // A device that never ends, read before the fix until memory ran out.
    assert_eq!(
        load_error(Path::new("/dev/zero")),
        "/dev/zero: cannot read: not a regular file (a config must be a file, not a device, pipe or directory)"
    );
    let dir = tempfile::tempdir().unwrap();
    assert!(
        load_error(dir.path())
            .ends_with("not a regular file (a config must be a file, not a device, pipe or directory)")
    );
    // A FIFO with no writer would block a plain read forever.
    let fifo = dir.path().join("fifo.toml");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    assert!(load_error(&fifo).contains("not a regular file"));
    let big = dir.path().join("big.toml");
    std::fs::write(&big, format!("# {}\n", "x".repeat(5 * 1024 * 1024))).unwrap();
    assert_eq!(load_error(&big), format!("{}: cannot read: the file is larger than 4 MiB", big.display()));
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("tend.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn resolve_applies_the_environment_and_the_server_rule_like_serve() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[server]\nlisten = \"0.0.0.0:7878\"\n");
    let none = |_: &str| None;
    let err = config::resolve(Some(&path), none, &Overrides::default()).unwrap_err().to_string();
    assert!(err.contains("which is not a loopback address: set `token`"), "{err}");
    let token = |k: &str| (k == "TEND_TOKEN").then(|| "s3cret".to_owned());
    let err = config::resolve(Some(&path), token, &Overrides::default()).unwrap_err().to_string();
    assert!(err.contains("without TLS"), "{err}");
    let insecure = |k: &str| match k {
        "TEND_TOKEN" => Some("s3cret".to_owned()),
        "TEND_INSECURE_HTTP" => Some("1".to_owned()),
        _ => None,
    };
    assert!(config::resolve(Some(&path), insecure, &Overrides::default()).is_ok());

    let path = write_config(dir.path(), "[[pool]]\nname = \"a\"\nsource = \"reported\"\n");
    let listen = |k: &str| (k == "TEND_LISTEN").then(|| "127.0.0.2:9000".to_owned());
    let cfg = config::resolve(Some(&path), listen, &Overrides::default()).unwrap();
    assert_eq!(cfg.server.listen.to_string(), "127.0.0.2:9000");
    let overridden = Overrides { listen: Some("0.0.0.0:1".parse().unwrap()), data_dir: None };
    assert!(config::resolve(Some(&path), listen, &overridden).is_err(), "a CLI listen is checked too");

    // A broken file and a broken environment: both reported in one run.
    let path = write_config(dir.path(), "[[pool]]\nname = \"a\"\nsource = \"reportd\"\n");
    let bad_interval = |k: &str| (k == "TEND_INTERVAL").then(|| "106751991167300d".to_owned());
    let err = config::resolve(Some(&path), bad_interval, &Overrides::default()).unwrap_err().to_string();
    assert!(err.contains("invalid source \"reportd\""), "{err}");
    assert!(
        err.contains("TEND_INTERVAL: interval \"106751991167300d\" is too long: the maximum is 1h"),
        "{err}"
    );
}
