//! SIGTERM to `tend serve` stops every worker it spawned — those that ignore SIGTERM and their own
//! children too — and exits cleanly.

use crate::harness::*;

#[test]
fn sigterm_leaves_no_worker_process_behind() {
    let mut tend = Tend::start(
        r#"
[[pool]]
name = "polite"
command = ["$TEND_EXE", "demo-worker"]
size = 2
profile = "intensive"
readiness = { start_secs = 1 }
stop_grace = "2s"

[[pool]]
name = "stubborn"
command = ["$TEND_EXE", "demo-worker", "--ignore-sigterm"]
size = 1
profile = "intensive"
readiness = { start_secs = 1 }
stop_grace = "1s"

[[pool]]
name = "family"
command = ["sh", "-c", "sleep 300 & sleep 300 & wait"]
size = 1
profile = "intensive"
readiness = { start_secs = 1 }
stop_grace = "1s"
"#,
    );
    let ws = tend.wait_for(30, "4 READY workers", |t| {
        let ws = t.workers();
        (ws.len() == 4 && ws.iter().all(|w| state_of(w) == "READY")).then_some(ws)
    });
    let procs: Vec<(u32, u64)> = ws
        .iter()
        .map(|w| (w["pid"].as_u64().unwrap() as u32, w["process"]["start_ticks"].as_u64().unwrap()))
        .collect();
    let family = by_id(&ws, "family-0").unwrap()["pid"].as_u64().unwrap() as u32;
    tend.wait_for(10, "the family's children", |_| (group_members(family).len() >= 3).then_some(()));
    let status = tend.terminate(30);
    assert!(status.success(), "tend exits 0 after SIGTERM: {status:?}");
    for (pid, start) in &procs {
        assert!(!alive(*pid, *start), "worker pid {pid} survived tend");
    }
    assert!(group_members(family).is_empty(), "the worker's own children were stopped too");
}
