//! What a worker leaves behind. A worker that forks children and exits on its own has its process group
//! drained before it is replaced: its children never pile up across restarts, and none outlives Tend. A
//! worker whose child leaves the group (`setsid` after a double fork) is reported — an event and an
//! error in the worker's log naming the escaped pid — and the escaped process is stopped when Tend stops.

use std::time::Duration;

use crate::harness::*;

/// Pids of live processes whose command line is exactly `argv` (zombies left out).
fn running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want) && identity(pid).is_some() {
            out.push(pid);
        }
    }
    out
}

fn highest_incarnation(t: &Tend, worker: &str) -> u64 {
    t.events_of("state_changed")
        .iter()
        .filter(|e| e["worker"] == worker)
        .filter_map(|e| e["incarnation"].as_u64())
        .max()
        .unwrap_or(0)
}

#[test]
fn children_of_a_worker_that_exits_on_its_own_do_not_pile_up_or_outlive_tend() {
    const CHILD: &[&str] = &["sleep", "3017"];
    let mut tend = Tend::start(
        r#"
[[pool]]
name = "forky"
command = ["sh", "-c", "sleep 3017 & sleep 3017 & sleep 3017 & sleep 1; exit 0"]
size = 1
restart = "always"
readiness = { start_secs = 0.5 }
stop_grace = "1s"
recycle = { storm_max = 50 }
"#,
    );
    // Four incarnations, each leaving 3 children when it exits: never more than one incarnation's worth.
    let mut most = 0;
    tend.wait_for(60, "the 4th incarnation of forky-0", |t| {
        let n = running(CHILD).len();
        most = most.max(n);
        assert!(n <= 3, "children of earlier incarnations are still running: {n} (`sleep 3017`)");
        (highest_incarnation(t, "forky-0") >= 4).then_some(())
    });
    assert!(most > 0, "the worker's children were never seen: the test saw nothing to check");
    let drained = tend.stderr().contains("the worker's children outlived it");
    assert!(drained, "Tend says it drained the group:\n{}", tend.stderr());
    let status = tend.terminate(30);
    assert!(status.success(), "{status:?}");
    assert_eq!(running(CHILD), Vec::<u32>::new(), "children outlived Tend");
}

#[test]
fn a_child_that_leaves_its_workers_group_is_reported_and_stopped_with_tend() {
    const ESCAPEE: &[&str] = &["sleep", "3019"];
    // A double fork: the subshell exits at once, its child calls setsid and outlives it.
    let mut tend = Tend::start(
        r#"
[[pool]]
name = "esc"
command = ["sh", "-c", "(setsid sleep 3019 &); exec sleep 600"]
size = 1
readiness = { start_secs = 0.5 }
stop_grace = "1s"
"#,
    );
    let ev =
        tend.wait_for(30, "a process_escaped event", |t| t.events_of("process_escaped").first().cloned());
    assert_eq!(ev["worker"], "esc-0", "{ev}");
    assert_eq!(ev["pool"], "esc", "{ev}");
    let pid = ev["process"]["pid"].as_u64().unwrap() as u32;
    assert_eq!(running(ESCAPEE), vec![pid], "the event names the escaped process: {ev}");
    assert!(ev["detail"].as_str().unwrap().contains(&pid.to_string()), "{ev}");
    // It left the worker's group; the worker itself runs on.
    tend.wait_for(30, "esc-0 READY", |t| (state_of(&t.worker("esc-0")) == "READY").then_some(()));
    assert_eq!(tend.worker("esc-0")["incarnation"], ev["incarnation"], "the same incarnation runs");
    let errors = tend.json("/api/v1/workers/esc-0/errors");
    let logged = errors.as_array().unwrap().iter().any(|e| {
        e["kind"] == "error" && e["message"].as_str().is_some_and(|m| m.contains(&format!("process {pid}")))
    });
    assert!(logged, "an error in the worker's log names the pid: {errors}");
    // Reported once, not at every pass.
    pause(Duration::from_millis(1500));
    assert_eq!(tend.events_of("process_escaped").len(), 1);

    let status = tend.terminate(30);
    assert!(status.success(), "{status:?}");
    assert!(identity(pid).is_none(), "the escaped process outlived Tend");
    assert!(tend.stderr().contains("escaped process stopped"), "{}", tend.stderr());
}
