//! Every signal has a defined outcome: SIGHUP and SIGQUIT drain the workers like SIGTERM (before, SIGHUP
//! killed `tend serve` outright and left every worker running under init); SIGUSR1 logs a status line,
//! SIGUSR2 and SIGPIPE change nothing. A panic in the engine task drains the workers and ends the
//! process with a failure instead of leaving a server that answers 503 forever.

use crate::harness::*;

const POOL: &str = r#"
[[pool]]
name = "family"
command = ["sh", "-c", "sleep 300 & sleep 300 & wait"]
size = 2
profile = "intensive"
readiness = { start_secs = 1 }
stop_grace = "1s"
"#;

/// The pid, start time and process group of each spawned worker, once all have a process.
fn spawned(tend: &Tend, n: usize) -> Vec<(u32, u64)> {
    tend.wait_for(30, "every worker spawned", |t| {
        let ws = t.workers();
        let procs: Vec<(u32, u64)> = ws
            .iter()
            .filter_map(|w| Some((w["pid"].as_u64()? as u32, w["process"]["start_ticks"].as_u64()?)))
            .collect();
        let families = procs.iter().all(|(pid, _)| group_members(*pid).len() >= 3);
        (procs.len() == n && families).then_some(procs)
    })
}

fn assert_all_gone(procs: &[(u32, u64)], after: &str) {
    for (pid, start) in procs {
        assert!(!alive(*pid, *start), "worker {pid} survived {after}");
        assert!(group_members(*pid).is_empty(), "the children of worker {pid} survived {after}");
    }
}

#[test]
fn sighup_and_sigquit_drain_the_workers_like_sigterm() {
    for (sig, name) in [(libc::SIGHUP, "SIGHUP"), (libc::SIGQUIT, "SIGQUIT")] {
        let mut tend = Tend::start(POOL);
        let procs = spawned(&tend, 2);
        let status = tend.stop_with(sig, 30);
        assert!(status.success(), "{name}: tend exits 0 after draining: {status:?}\n{}", tend.stderr());
        assert_all_gone(&procs, name);
        assert!(tend.stderr().contains(name), "{name} is logged:\n{}", tend.stderr());
    }
}

#[test]
fn sigusr1_logs_a_status_and_sigusr2_and_sigpipe_change_nothing() {
    let mut tend = Tend::start(POOL);
    let procs = spawned(&tend, 2);
    let pid = tend.child.as_ref().unwrap().id();
    signal(pid, libc::SIGUSR1);
    tend.wait_for(10, "the SIGUSR1 status line", |t| t.stderr().contains("SIGUSR1: status").then_some(()));
    signal(pid, libc::SIGUSR2);
    signal(pid, libc::SIGPIPE);
    tend.wait_for(10, "the SIGUSR2 line", |t| t.stderr().contains("SIGUSR2: no action").then_some(()));
    // Still serving, every worker still there.
    let (code, health) = tend.get("/api/v1/health");
    assert_eq!(code, 200, "{health}");
    assert!(tend.running(), "tend survived SIGUSR1, SIGUSR2 and SIGPIPE");
    for (p, start) in &procs {
        assert!(alive(*p, *start), "worker {p} untouched");
    }
    assert!(tend.terminate(30).success());
    assert_all_gone(&procs, "SIGTERM");
}

#[cfg(debug_assertions)] // the fault injection exists in debug builds only
#[test]
fn a_panic_in_the_engine_drains_the_workers_and_exits_with_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(&dir, "tend.toml", POOL);
    let mut tend = Tend::start_env(
        dir,
        &["serve", "--config", path.to_str().unwrap()],
        &[("TEND_FAULT_ENGINE_PANIC_SECS", "4")],
    );
    let procs = spawned(&tend, 2);
    let status = tend.wait_exit(60);
    assert!(!status.success(), "a failed engine ends the process with a failure: {status:?}");
    assert_all_gone(&procs, "the engine's panic");
    let err = tend.stderr();
    assert!(err.contains("the engine failed"), "says why:\n{err}");
    assert!(err.contains("injected fault"), "names the panic:\n{err}");
}

#[test]
fn a_closed_stdout_ends_the_event_lines_not_tend() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(&dir, "tend.toml", POOL);
    let mut child = Command::new(TEND)
        .args(["serve", "--config", path.to_str().unwrap(), "--listen", "127.0.0.1:0", "--events-jsonl"])
        .env("TEND_DATA_DIR", dir.path().join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader of the event lines goes away at once
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok);
    let mut base = None;
    let mut closed = false;
    for line in lines.by_ref() {
        if let Some(a) = line.strip_prefix("tend: listening on ") {
            base = Some(a.to_owned());
        }
        closed |= line.contains("stdout closed");
        if closed && base.is_some() {
            break;
        }
    }
    assert!(closed, "the failed write is logged");
    let health = http_get(format!("{}/api/v1/health", base.unwrap())).unwrap();
    assert_eq!(health.status(), 200, "still serving after its stdout closed");
    assert!(child.try_wait().unwrap().is_none(), "still running");
    signal(child.id(), libc::SIGTERM);
    std::thread::spawn(move || lines.for_each(drop)); // keep stderr drained while it stops
    assert!(child.wait().unwrap().success());
}
