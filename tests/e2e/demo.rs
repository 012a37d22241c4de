//! No config at all: the embedded demo shows a newcomer states, an alert and a recycle within a minute.
//! And `stop` drains a worker without replacing it.

use crate::harness::*;

#[test]
fn the_embedded_demo_shows_an_alert_and_a_memory_recycle_within_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let tend = Tend::start_args(dir, &["serve"]);
    let h = tend.json("/api/v1/health");
    assert_eq!(h["demo"], true);
    tend.wait_for(30, "3 demo workers serving", |t| {
        let ws = t.workers();
        (ws.len() == 3 && ws.iter().all(|w| matches!(state_of(w), "READY" | "WORKING"))).then_some(())
    });
    let firing = tend.wait_for(60, "the memory-high alert firing", |t| {
        t.events_of("alert_changed").into_iter().find(|e| e["alert"]["state"] == "firing")
    });
    assert_eq!(firing["alert"]["rule"], "memory-high");
    assert_eq!(firing["alert"]["subject"], "demo-2");
    let rec = tend.wait_for(60, "the leaky worker recycled for memory", |t| {
        t.events_of("recycled").into_iter().find(|e| e["reason"] == "memory")
    });
    assert_eq!(rec["worker"], "demo-2");
    assert!(
        tend.events_of("state_changed").iter().any(|e| e["to"] == "WORKING"),
        "requests make workers WORKING"
    );
}

#[test]
fn stop_drains_a_worker_and_does_not_replace_it() {
    let tend = Tend::start(
        "[[pool]]\nname = \"s\"\ncommand = [\"$TEND_EXE\", \"demo-worker\"]\nsize = 2\nprofile = \"intensive\"\nreadiness = { start_secs = 1 }\nstop_grace = \"2s\"\n",
    );
    let w = tend.wait_for(30, "s-1 READY", |t| {
        by_id(&t.workers(), "s-1").filter(|w| state_of(w) == "READY").cloned()
    });
    let (status, body) = tend.post("/api/v1/workers/s-1/stop", serde_json::json!({}));
    assert_eq!(status, 202, "{body}");
    let cleaned = tend.wait_for(20, "s-1 CLEANED", |t| {
        t.events_of("state_changed").into_iter().find(|e| e["worker"] == "s-1" && e["to"] == "CLEANED")
    });
    assert_eq!(cleaned["process"]["pid"], w["pid"]);
    let states: Vec<String> = tend
        .events_of("state_changed")
        .iter()
        .filter(|e| e["worker"] == "s-1")
        .map(|e| e["to"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        states,
        ["INITIALIZING", "READY", "COMPLETING", "COMPLETED", "CLEANED"],
        "drained: SIGTERM, exit 0"
    );
    pause(std::time::Duration::from_secs(2));
    assert!(
        !tend.events_of("state_changed").iter().any(|e| e["worker"] == "s-1" && e["incarnation"] == 2),
        "a stopped worker is not replaced"
    );
    let w = tend.worker("s-1");
    assert_eq!(w["held"], "stopped by operator");
    assert_eq!(by_id(&tend.workers(), "s-0").map(state_of), Some("READY"), "the other worker is untouched");
}
