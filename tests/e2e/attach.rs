//! Attaching to processes Tend did not start, by command-line regex, and telling a reused pid from
//! the process that had it before.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// The real interpreter: `python3` may be a shim (pyenv) whose short-lived subshells carry the same
/// command line, which would be attached too.
fn python() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3");
        String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
    })
}

fn sleeper(marker: &str) -> std::process::Child {
    Command::new(python())
        .args(["-c", "import time; b = bytearray(12 * 1024 * 1024); time.sleep(300)", marker])
        .stdin(Stdio::null())
        .spawn()
        .expect("python3")
}

fn attach_config(marker: &str) -> String {
    format!(
        r#"
[[pool]]
name = "legacy"
source = "attach"
cmdline = "{marker}"
profile = "intensive"
"#
    )
}

#[test]
fn attach_by_command_line_regex_reports_metrics() {
    let marker = format!("tend-attach-{}", std::process::id());
    let mut target = sleeper(&marker);
    let tend = Tend::start(&attach_config(&marker));
    let pid = target.id();
    let id = format!("legacy-{pid}");
    let w = tend.wait_for(30, "the attached worker READY with metrics", |t| {
        by_id(&t.workers(), &id)
            .filter(|w| state_of(w) == "READY" && w["memory_bytes"].as_u64().is_some_and(|m| m > 12 << 20))
            .filter(|w| w["cpu_percent"].as_f64().is_some())
            .cloned()
    });
    assert_eq!(w["source"], "attached");
    assert_eq!(w["pid"], pid);
    assert_eq!(w["process"]["start_ticks"].as_u64(), identity(pid).map(|(_, s)| s));
    assert_eq!(tend.workers().len(), 1, "only the matching process is attached");
    let _ = target.kill();
    let _ = target.wait();
    let ended = tend.wait_for(20, "the attached worker CLEANED", |t| {
        t.events_of("state_changed").into_iter().find(|e| e["worker"] == id.as_str() && e["to"] == "CLEANED")
    });
    assert_eq!(ended["process"]["pid"], pid);
}

/// Force the kernel to hand out `pid` next (root only: /proc/sys/kernel/ns_last_pid).
fn spawn_with_pid(pid: u32, marker: &str) -> Option<std::process::Child> {
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1))
            .expect("writing /proc/sys/kernel/ns_last_pid needs root (CI runs as root)");
        let c = sleeper(marker);
        if c.id() == pid {
            return Some(c);
        }
        let mut c = c;
        let _ = c.kill();
        let _ = c.wait();
    }
    None
}

#[test]
fn a_reused_pid_is_a_new_worker_not_the_old_one() {
    let marker = format!("tend-reuse-{}", std::process::id());
    let mut first = sleeper(&marker);
    let pid = first.id();
    let first_start = identity(pid).unwrap().1;
    let tend = Tend::start(&attach_config(&marker));
    tend.wait_for(30, "the first process attached", |t| {
        by_id(&t.workers(), &format!("legacy-{pid}")).filter(|w| state_of(w) == "READY").cloned()
    });
    let _ = first.kill();
    let _ = first.wait();
    let mut second = spawn_with_pid(pid, &marker).expect("could not get the same pid again");
    let second_start = identity(pid).unwrap().1;
    assert_ne!(first_start, second_start);
    let new = tend.wait_for(30, "the second process attached", |t| {
        t.events_of("state_changed").into_iter().find(|e| {
            e["to"] == "INITIALIZING"
                && e["process"]["pid"] == pid
                && e["process"]["start_ticks"] == second_start
        })
    });
    let old_end = tend
        .events_of("state_changed")
        .into_iter()
        .find(|e| e["to"] == "CLEANED" && e["process"]["pid"] == pid)
        .expect("the first process was cleaned");
    assert_eq!(old_end["process"]["start_ticks"], first_start, "the old process ended as itself");
    assert!(old_end["seq"].as_u64() < new["seq"].as_u64(), "old cleaned before the new one appears");
    let w = tend.wait_for(10, "the worker shows the new process", |t| {
        by_id(&t.workers(), &format!("legacy-{pid}"))
            .filter(|w| w["process"]["start_ticks"] == second_start && state_of(w) == "READY")
            .cloned()
    });
    assert_eq!(w["incarnation"], 1, "a new worker, not a restart of the old");
    let _ = second.kill();
    let _ = second.wait();
}

#[test]
fn an_attached_workers_open_alert_survives_a_restart_of_tend() {
    let marker = format!("tend-attach-restore-{}", std::process::id());
    let mut target = sleeper(&marker);
    let id = format!("legacy-{}", target.id());
    let config = format!(
        "{}\n[[pool.rule]]\nname = \"resident\"\nmetric = \"memory_bytes\"\nabove = 0\nfor_samples = 2\n",
        attach_config(&marker)
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(&dir, "tend.toml", &config);
    let cfg = cfg.to_str().unwrap().to_owned();
    let data = dir.path().join("data").to_str().unwrap().to_owned();
    let mut first = Tend::start_args(dir, &["serve", "--config", &cfg]);
    let firing = first.wait_for(30, "the attached worker's alert firing", |t| {
        let a = t.json("/api/v1/alerts");
        a.as_array()?.iter().find(|a| a["subject"] == id.as_str() && a["state"] == "firing").cloned()
    });
    assert!(first.terminate(15).success());
    // Tend restarts (an upgrade); the process it watched kept running, with the same pid.
    let second = Tend::start_env(
        tempfile::tempdir().unwrap(),
        &["serve", "--config", &cfg],
        &[("TEND_DATA_DIR", &data)],
    );
    let back = second.wait_for(30, "the alert back on the rediscovered worker", |t| {
        let a = t.json("/api/v1/alerts");
        a.as_array()?.iter().find(|a| a["subject"] == id.as_str()).cloned()
    });
    // The same episode, not a new one: a fresh evaluation would start pending with a later `since`.
    assert_eq!((&back["state"], &back["since"]), (&firing["state"], &firing["since"]), "{back}");
    pause(Duration::from_millis(1500));
    let changes: Vec<_> = second
        .events_of("alert_changed")
        .into_iter()
        .filter(|e| e["alert"]["subject"] == id.as_str())
        .collect();
    assert!(changes.is_empty(), "no new pending/firing episode after the restart: {changes:?}");
    let _ = target.kill();
    let _ = target.wait();
}

/// A pool larger than one part (more than 1000 processes) is swept a part per engine tick: every
/// process still gets its readings, and the pool rule over the whole pool's memory fires (it reads the
/// aggregates once a round, after the last part).
#[test]
fn a_large_attach_pool_is_swept_in_parts_and_every_process_is_read() {
    const N: usize = 1200;
    let arg = format!("{}.{}", 3000 + N, std::process::id());
    /// Killed when the test ends, passed or not.
    struct Sleepers(Vec<std::process::Child>);
    impl Drop for Sleepers {
        fn drop(&mut self) {
            for s in &mut self.0 {
                let _ = s.kill();
                let _ = s.wait();
            }
        }
    }
    let _sleepers = Sleepers(
        (0..N)
            .map(|_| Command::new("sleep").arg(&arg).stdin(Stdio::null()).spawn().expect("sleep"))
            .collect(),
    );
    // Each sleeper has well over 0.01 MiB: the pool's total is above the line only when most of the
    // pool's readings are in; the rule needs two rounds over it.
    let tend = Tend::start(&format!(
        r#"
[[pool]]
name = "many"
source = "attach"
cmdline = "^sleep {}$"
profile = "intensive"

[[pool.rule]]
name = "pool-memory"
scope = "pool"
metric = "memory_mb"
above = {}
for_samples = 2
"#,
        arg.replace('.', "\\\\."),
        N as f64 * 0.2,
    ));
    // Read: memory, and a CPU percentage, which needs the process's previous reading (kept while the
    // other parts are read).
    let read = |t: &Tend| {
        t.workers()
            .iter()
            .filter(|w| {
                w["memory_bytes"].as_u64().is_some_and(|m| m > 0) && w["cpu_percent"].as_f64().is_some()
            })
            .count()
    };
    tend.wait_for(60, "every sleeper attached and read", |t| (read(t) == N).then_some(()));
    // Rounds in parts go on: every process keeps being read, none loses its CPU baseline.
    pause(Duration::from_secs(3));
    assert_eq!(read(&tend), N);
    let fired = tend.wait_for(30, "the pool rule over the whole pool firing", |t| {
        t.events_of("alert_changed")
            .into_iter()
            .find(|e| e["alert"]["rule"] == "pool-memory" && e["alert"]["state"] == "firing")
    });
    assert_eq!(fired["alert"]["subject"], "many");
}
