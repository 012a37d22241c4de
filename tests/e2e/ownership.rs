//! One Tend per data directory: a second `tend serve` on a directory another one holds refuses to start
//! (non-zero exit, naming the holder's pid and the directory) before it starts any worker or binds its
//! port, and leaves the first one's workers and history alone; `tend export` still reads the database
//! meanwhile. After a `kill -9` the kernel has released the lock: the next Tend starts on the same
//! directory and stops the orphans of the killed one.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

const POOL: &str = r#"
[[pool]]
name = "own"
command = ["sleep", "600"]
size = 3
interval = "250ms"
readiness = { start_secs = 1 }
stop_grace = "1s"
"#;

/// (pid, start time) of every worker, once all 3 are READY.
fn ready_workers(t: &Tend) -> Vec<(u32, u64)> {
    let ws = t.wait_for(30, "3 READY workers", |t| {
        let ws = t.workers();
        (ws.len() == 3 && ws.iter().all(|w| state_of(w) == "READY")).then_some(ws)
    });
    ws.iter()
        .map(|w| (w["pid"].as_u64().unwrap() as u32, w["process"]["start_ticks"].as_u64().unwrap()))
        .collect()
}

/// The newest raw sample time of `own-0` in the history, through the API.
fn newest_sample(t: &Tend) -> Option<i64> {
    let h = t.json("/api/v1/workers/own-0/history?metric=memory_bytes&from=-5m&step=1s");
    h["points"].as_array()?.last()?["t"].as_i64()
}

/// Processes whose command line is exactly `sleep 600` and whose parent is `parent`.
fn sleepers_of(parent: u32) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let ppid = stat[close + 2..].split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(parent) && cmd == b"sleep\x00600\x00" {
            n += 1;
        }
    }
    n
}

#[test]
fn a_second_serve_on_the_same_data_directory_refuses_and_leaves_the_first_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(&dir, "tend.toml", POOL);
    let cfg = cfg.to_str().unwrap().to_owned();
    let a = Tend::start_args(dir, &["serve", "--config", &cfg]);
    let a_pid = a.child.as_ref().unwrap().id();
    let workers = ready_workers(&a);
    let before = a.wait_for(15, "samples in the history", newest_sample);

    // B: same data directory, its own port. It must exit on its own, with an error.
    let data = a.data_dir.to_str().unwrap().to_owned();
    let mut b = Command::new(TEND)
        .args(["serve", "--config", &cfg, "--listen", "127.0.0.1:0"])
        .env("TEND_DATA_DIR", &data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let b_pid = b.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = b.try_wait().unwrap() {
            break st;
        }
        // While B runs (briefly), it must not have started a worker of its own.
        assert_eq!(sleepers_of(b_pid), 0, "the refused Tend started a worker");
        if Instant::now() > deadline {
            let _ = b.kill();
            panic!("the second tend did not exit: it should refuse to start");
        }
        pause(Duration::from_millis(20));
    };
    let out = b.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "the second tend must fail: {status:?}\n{stderr}");
    assert!(stderr.contains(&format!("pid {a_pid}")), "the message names the holder's pid: {stderr}");
    assert!(stderr.contains(&data), "the message names the directory: {stderr}");
    assert!(!stderr.contains("listening on"), "it refused before binding its port: {stderr}");

    // A's workers are untouched (same pid, same start time) and A keeps writing its history.
    for (pid, start) in &workers {
        assert!(alive(*pid, *start), "worker {pid} of the first tend was touched");
    }
    a.wait_for(15, "new samples from the first tend", |t| {
        newest_sample(t).filter(|n| *n > before + 1000).map(|_| ())
    });
    for (pid, start) in &workers {
        assert!(alive(*pid, *start), "worker {pid} of the first tend was touched");
    }

    let lock = std::fs::read_to_string(a.data_dir.join("tend.lock")).unwrap();
    assert_eq!(lock.trim(), a_pid.to_string(), "the lock file names its holder");

    // A reader does not take the lock: `tend export` works while A runs.
    let o = Command::new(TEND)
        .args(["export", "--data-dir", &data, "--worker", "own-0", "--metrics", "memory_bytes"])
        .output()
        .unwrap();
    assert!(o.status.success(), "tend export while serve runs: {}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() >= 2, "rows exported");
}

#[test]
fn after_a_kill_9_the_next_serve_gets_the_directory_and_stops_the_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(&dir, "tend.toml", POOL);
    let cfg = cfg.to_str().unwrap().to_owned();
    let mut a = Tend::start_args(dir, &["serve", "--config", &cfg]);
    let workers = ready_workers(&a);
    // Recorded in the store before the kill (the writer commits every second).
    a.wait_for(15, "samples in the history", newest_sample);
    let mut child = a.child.take().unwrap();
    child.kill().unwrap(); // SIGKILL: no clean-up, the lock file stays with A's pid in it
    child.wait().unwrap();
    for (pid, start) in &workers {
        assert!(alive(*pid, *start), "worker {pid} survived the kill of its supervisor (expected)");
    }
    let data = a.data_dir.to_str().unwrap().to_owned();
    let b = Tend::start_env(
        tempfile::tempdir().unwrap(),
        &["serve", "--config", &cfg],
        &[("TEND_DATA_DIR", &data)],
    );
    b.wait_for(20, "A's orphans stopped", |_| workers.iter().all(|(p, s)| !alive(*p, *s)).then_some(()));
    ready_workers(&b);
    let lock = std::fs::read_to_string(a.data_dir.join("tend.lock")).unwrap();
    assert_eq!(lock.trim(), b.child.as_ref().unwrap().id().to_string(), "B holds the lock now");
}
