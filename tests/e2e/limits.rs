//! Limits that keep bad input from taking Tend down: config files that are not files or are huge,
//! durations no deadline can hold, pools that would be fork storms, commands the kernel refuses; and
//! `check-config` checks exactly what `serve` would run.

use std::process::{Command, Output};

use crate::harness::*;

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn tend(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(TEND)
        .args(args)
        .env_remove("TEND_LISTEN")
        .env_remove("TEND_TOKEN")
        .env_remove("TEND_INTERVAL")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn devices_and_huge_files_are_refused_at_once() {
    let out = tend(&["check-config", "/dev/zero"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("/dev/zero: cannot read: not a regular file"), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = tend(&["serve", "--config", "/dev/urandom", "--data-dir", data.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("/dev/urandom: cannot read: not a regular file"), "{}", text(&out));
    let big = write_file(&dir, "big.toml", &format!("# {}\n", "x".repeat(5 << 20)));
    let out = tend(&["check-config", big.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("larger than 4 MiB"), "{}", text(&out));
}

#[test]
fn values_that_used_to_panic_are_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (key_value, line_col) in [
        ("interval = \"106751991167300d\"", "6:12"),
        ("interval = 9223372036854775807\nstale_after = \"30s\"", "6:12"),
        ("stop_grace = 9223372036854775807", "6:14"),
    ] {
        let cfg = format!(
            "[[pool]]\nname = \"a\"\ncommand = [\"sleep\", \"300\"]\nsize = 1\nprofile = \"intensive\"\n{key_value}\n"
        );
        let path = write_file(&dir, "tend.toml", &cfg);
        let check = tend(&["check-config", path.to_str().unwrap()], &[]);
        assert_eq!(check.status.code(), Some(1), "{key_value}: {}", text(&check));
        assert!(text(&check).contains(&format!("tend.toml:{line_col}:")), "{key_value}: {}", text(&check));
        assert!(text(&check).contains("is too long: the maximum is 1h"), "{}", text(&check));
        let serve =
            tend(&["serve", "--config", path.to_str().unwrap(), "--data-dir", data.to_str().unwrap()], &[]);
        assert_eq!(serve.status.code(), Some(2), "serve refuses it too: {}", text(&serve));
        assert!(!text(&serve).contains("panicked"), "{}", text(&serve));
    }
}

#[test]
fn check_config_checks_what_serve_would_run() {
    let dir = tempfile::tempdir().unwrap();
    let open = write_file(&dir, "open.toml", "[server]\nlisten = \"0.0.0.0:7878\"\n");
    let out = tend(&["check-config", open.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1), "no token on a public address: {}", text(&out));
    assert!(text(&out).contains("not a loopback address"), "{}", text(&out));
    let out = tend(&["check-config", open.to_str().unwrap()], &[("TEND_TOKEN", "s3cret")]);
    assert_eq!(out.status.code(), Some(1), "a token but plain HTTP on a network: {}", text(&out));
    assert!(text(&out).contains("without TLS"), "{}", text(&out));
    let out = tend(
        &["check-config", open.to_str().unwrap()],
        &[("TEND_TOKEN", "s3cret"), ("TEND_INSECURE_HTTP", "1")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let pool =
        write_file(&dir, "pool.toml", "[[pool]]\nname = \"a\"\ncommand = [\"sleep\", \"300\"]\nsize = 1\n");
    let out = tend(
        &["check-config", pool.to_str().unwrap()],
        &[("TEND_LISTEN", "127.0.0.3:9999"), ("TEND_INTERVAL", "2s")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("listen 127.0.0.3:9999"), "TEND_LISTEN applied: {}", text(&out));
    assert!(text(&out).contains("every 2s"), "TEND_INTERVAL applied: {}", text(&out));
    let out = tend(&["check-config", pool.to_str().unwrap()], &[("TEND_INTERVAL", "10ms")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("TEND_INTERVAL: interval \"10ms\" is too short"), "{}", text(&out));

    // A command the kernel would refuse (E2BIG) at every spawn.
    let huge = write_file(
        &dir,
        "huge.toml",
        &format!("[[pool]]\nname = \"a\"\ncommand = [\"sleep\", \"{}\"]\nsize = 1\n", "9".repeat(10 << 20)),
    );
    let out = tend(&["check-config", huge.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // An invalid source does not hide an invalid profile.
    let both =
        write_file(&dir, "both.toml", "[[pool]]\nname = \"a\"\nsource = \"spwan\"\nprofile = \"fast\"\n");
    let out = tend(&["check-config", both.to_str().unwrap()], &[]);
    assert!(
        text(&out).contains("invalid source") && text(&out).contains("invalid profile"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_large_pool_is_refused_without_max_size_and_ramps_up_gradually_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let storm = write_file(
        &dir,
        "storm.toml",
        "[[pool]]\nname = \"a\"\ncommand = [\"sleep\", \"300\"]\nsize = 100000\n",
    );
    let out = tend(&["check-config", storm.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("over the limit of 1024 workers a pool: set `max_size = 100000`"),
        "{}",
        text(&out)
    );

    // 400 workers start at most 16 a tick: the API sees the pool fill up over several polls.
    let mut tend = Tend::start(
        "[[pool]]\nname = \"big\"\ncommand = [\"sleep\", \"300\"]\nsize = 400\nprofile = \"standard\"\nstop_grace = \"1s\"\n",
    );
    let mut partial = false;
    tend.wait_for(60, "400 spawned workers", |t| {
        let (code, health) = t.get("/api/v1/health");
        assert_eq!(code, 200, "the API answers during the ramp: {health}");
        let with_pid = t.workers().iter().filter(|w| w["pid"].as_u64().is_some()).count();
        partial |= with_pid > 0 && with_pid < 400;
        (with_pid == 400).then_some(())
    });
    assert!(partial, "the pool was seen part-way up (spawns are rate limited)");
    assert!(tend.terminate(60).success());
}
