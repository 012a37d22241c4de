//! Recycling: a leaking worker is replaced for memory within one sample interval of the breach, with
//! zero downtime; a recycle through the API works.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::harness::*;

const MIB: f64 = 1024.0 * 1024.0;

/// Replays the event stream and returns the fewest incarnations serving (READY or WORKING) at any
/// point after the pool first had `size` serving.
fn min_serving(events: &[Value], pool: &str, size: usize) -> usize {
    let mut states: BTreeMap<(String, u64), String> = BTreeMap::new();
    let mut full = false;
    let mut min = usize::MAX;
    for e in events.iter().filter(|e| e["type"] == "state_changed" && e["pool"] == pool) {
        let key = (e["worker"].as_str().unwrap().to_owned(), e["incarnation"].as_u64().unwrap());
        states.insert(key, e["to"].as_str().unwrap().to_owned());
        let serving = states.values().filter(|s| *s == "READY" || *s == "WORKING").count();
        if serving >= size {
            full = true;
        }
        if full {
            min = min.min(serving);
        }
    }
    min
}

#[test]
fn a_leaking_worker_is_recycled_for_memory_within_one_interval_without_downtime() {
    let tend = Tend::start(
        r#"
[[pool]]
name = "leaky"
source = "spawn"
command = ["$TEND_EXE", "demo-worker", "--slot", "$TEND_SLOT", "--base-mb", "10",
           "--leak-if-slot", "1", "--leak-mb-per-sec", "8", "--leak-max-mb", "300"]
size = 3
profile = "intensive"
readiness = { start_secs = 1, timeout = "20s" }
stop_grace = "2s"
recycle = { memory_mb = 40, max_unavailable = 1 }
"#,
    );
    let recycled = tend.wait_for(60, "a memory recycle", |t| {
        t.events_of("recycled").into_iter().find(|e| e["reason"] == "memory")
    });
    assert_eq!(recycled["worker"], "leaky-1");
    assert!(recycled["detail"].as_str().unwrap().contains("above limit 40.0 MiB"), "{recycled}");
    let last_mem = recycled["last_metrics"]["memory_bytes"].as_f64().unwrap();
    assert!(last_mem > 40.0 * MIB, "last metrics before the recycle show the breach: {last_mem}");
    assert_ne!(recycled["old_process"], recycled["new_process"]);

    // Reaction time: the recycle started at the first sample above the limit (one sample interval at most).
    let started = tend.events_of("recycle_started").into_iter().find(|e| e["reason"] == "memory").unwrap();
    let detail = tend.worker("leaky-1");
    let samples = detail["recent_samples"].as_array().unwrap();
    let first_breach = samples
        .iter()
        .find(|s| s["metrics"]["memory_bytes"].as_f64().unwrap_or(0.0) > 40.0 * MIB)
        .expect("a sample above the limit is in the history");
    let lag = started["at"].as_i64().unwrap() - first_breach["at"].as_i64().unwrap();
    assert!((0..=1000).contains(&lag), "recycle started {lag} ms after the first breaching sample");

    // The old incarnation drains only after the new one is READY, so the pool never had fewer than
    // size - 1 serving (with replacement-first it keeps all 3).
    tend.wait_for(20, "the old incarnation CLEANED", |t| {
        t.events_of("state_changed")
            .into_iter()
            .find(|e| e["worker"] == "leaky-1" && e["incarnation"] == 1 && e["to"] == "CLEANED")
    });
    let evs = tend.events();
    assert!(min_serving(&evs, "leaky", 3) >= 2, "pool dropped below size - 1 serving");
    let order: Vec<(u64, String)> = evs
        .iter()
        .filter(|e| e["type"] == "state_changed" && e["worker"] == "leaky-1")
        .map(|e| (e["incarnation"].as_u64().unwrap(), e["to"].as_str().unwrap().to_owned()))
        .collect();
    let pos = |n: u64, s: &str| order.iter().position(|(i, t)| *i == n && t == s).unwrap();
    assert!(pos(2, "READY") < pos(1, "COMPLETING"), "replacement ready before the old one drains: {order:?}");
    let m = tend.json("/api/v1/pools/leaky/metrics");
    assert!(m["recycles_by_reason"]["memory"].as_u64().unwrap() >= 1);
}

#[test]
fn recycle_by_api_replaces_the_process_and_records_manual() {
    let tend = Tend::start(
        r#"
[[pool]]
name = "web"
command = ["$TEND_EXE", "demo-worker", "--slot", "$TEND_SLOT"]
size = 2
profile = "intensive"
readiness = { start_secs = 1 }
stop_grace = "2s"
"#,
    );
    let before = tend.wait_for(30, "web-0 READY", |t| {
        by_id(&t.workers(), "web-0").filter(|w| state_of(w) == "READY").cloned()
    });
    let (status, body) = tend.post("/api/v1/workers/web-0/recycle", serde_json::json!({}));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["reason"], "manual");
    let (status, body) = tend.post("/api/v1/workers/web-0/recycle", serde_json::json!({}));
    assert_eq!(status, 409, "a second recycle while one is under way: {body}");
    assert_eq!(body["error"]["code"], "already_recycling");
    let (status, body) = tend.post("/api/v1/workers/ghost/recycle", serde_json::json!({}));
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let rec = tend.wait_for(30, "the manual recycle record", |t| {
        t.events_of("recycled").into_iter().find(|e| e["worker"] == "web-0" && e["reason"] == "manual")
    });
    assert_eq!(rec["old_process"]["pid"], before["pid"]);
    let after = tend.wait_for(10, "web-0 on its new pid", |t| {
        by_id(&t.workers(), "web-0").filter(|w| w["pid"] != before["pid"] && state_of(w) == "READY").cloned()
    });
    assert_eq!(after["pid"], rec["new_process"]["pid"]);
    assert_eq!(after["restarts"], 1);
    let old_pid = before["pid"].as_u64().unwrap() as u32;
    let old_start = before["process"]["start_ticks"].as_u64().unwrap();
    tend.wait_for(10, "the old process gone", |_| (!alive(old_pid, old_start)).then_some(()));
    // The per-worker event endpoint has the whole story.
    let evs = tend.json("/api/v1/workers/web-0/events");
    let kinds: Vec<&str> = evs.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"recycle_started") && kinds.contains(&"recycled"), "{kinds:?}");
}
