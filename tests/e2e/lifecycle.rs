//! Spawned pools reach READY; a worker that exits non-zero is FAILED, CLEANED and replaced; a crash loop
//! trips the storm breaker and raises an alert.

use crate::harness::*;

fn pool(name: &str, size: u32, args: &str, extra: &str) -> String {
    format!(
        r#"
[[pool]]
name = "{name}"
source = "spawn"
command = ["$TEND_EXE", "demo-worker", "--slot", "$TEND_SLOT" {args}]
size = {size}
profile = "intensive"
readiness = {{ start_secs = 1, timeout = "20s" }}
stop_grace = "2s"
{extra}
"#
    )
}

#[test]
fn a_pool_of_three_spawned_workers_reaches_ready() {
    let tend = Tend::start(&pool("api", 3, r#", "--base-mb", "8""#, ""));
    let ws = tend.wait_for(30, "3 READY workers", |t| {
        let ws = t.workers();
        (ws.len() == 3 && ws.iter().all(|w| state_of(w) == "READY" && w["memory_bytes"].as_u64().is_some()))
            .then_some(ws)
    });
    let mut ids: Vec<&str> = ws.iter().map(|w| w["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["api-0", "api-1", "api-2"]);
    for w in &ws {
        let pid = w["pid"].as_u64().unwrap() as u32;
        let start = w["process"]["start_ticks"].as_u64().unwrap();
        assert!(alive(pid, start), "worker {} pid {pid} is a live process", w["id"]);
        assert!(w["memory_bytes"].as_u64().unwrap() > 8 * 1024 * 1024, "RSS includes the 8 MiB base: {w}");
        assert_eq!(w["source"], "spawned");
        assert!(w["threads"].as_u64().unwrap() >= 1);
    }
    // Detail: lifecycle and recent samples.
    let d = tend.worker("api-0");
    let tr = &d["incarnations"][0]["transitions"];
    assert_eq!(tr[0]["to"], "INITIALIZING");
    assert_eq!(tr[1]["to"], "READY");
    assert!(tr[1]["cause"].as_str().unwrap().starts_with("ready: "), "{tr}");
    assert!(d["incarnations"][0]["startup_secs"].as_f64().unwrap() >= 1.0);
    tend.wait_for(10, "samples in the detail", |t| {
        (t.worker("api-0")["recent_samples"].as_array().unwrap().len() >= 2).then_some(())
    });
    // Health and pool aggregates.
    let h = tend.json("/api/v1/health");
    assert_eq!(h["status"], "ok");
    assert_eq!(h["workers"], 3);
    assert_eq!(h["demo"], false);
    let m = tend.json("/api/v1/pools/api/metrics");
    assert_eq!(m["total_workers"], 3);
    assert_eq!(m["active_workers"], 3);
    assert!(m["total_memory_bytes"].as_u64().unwrap() > 24 * 1024 * 1024);
    // Unknown ids are 404 with a JSON error body.
    let (status, body) = tend.get("/api/v1/workers/nope-9");
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["message"], "no worker with id \"nope-9\"");
    let (status, body) = tend.get("/api/v1/pools/nope/metrics");
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
}

#[test]
fn a_worker_that_exits_non_zero_is_failed_cleaned_and_replaced() {
    let tend = Tend::start(&pool(
        "jobs",
        1,
        r#", "--exit-after", "2", "--exit-code", "3""#,
        "recycle = { storm_max = 20, storm_window = \"60s\" }",
    ));
    let replaced = tend.wait_for(40, "a replacement READY after the first exit", |t| {
        let evs = t.events_of("state_changed");
        evs.iter().find(|e| e["incarnation"] == 2 && e["to"] == "READY").cloned()
    });
    let first: Vec<(String, String)> = tend
        .events_of("state_changed")
        .iter()
        .filter(|e| e["worker"] == "jobs-0" && e["incarnation"] == 1)
        .map(|e| (e["to"].as_str().unwrap().to_owned(), e["cause"].as_str().unwrap().to_owned()))
        .collect();
    let states: Vec<&str> = first.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(states, ["INITIALIZING", "READY", "FAILED", "CLEANED"]);
    assert_eq!(first[2].1, "exited with code 3");
    let recycled = tend.wait_for(10, "the died recycle record", |t| t.events_of("recycled").first().cloned());
    assert_eq!(recycled["reason"], "died");
    assert_eq!(recycled["detail"], "exited with code 3");
    assert_ne!(recycled["old_process"], recycled["new_process"]);
    assert_eq!(recycled["new_process"], replaced["process"]);
    let m = tend.json("/api/v1/pools/jobs/metrics");
    assert!(m["failed_workers"].as_u64().unwrap() >= 1);
    assert!(m["recycles_by_reason"]["died"].as_u64().unwrap() >= 1);
}

#[test]
fn a_crash_loop_trips_the_storm_breaker_and_raises_an_alert() {
    // Exits at once, before it can be ready: every restart fails.
    let tend = Tend::start(&pool(
        "loop",
        1,
        r#", "--exit-after", "0", "--exit-code", "1""#,
        "recycle = { storm_max = 3, storm_window = \"60s\" }",
    ));
    let tripped = tend.wait_for(40, "storm_tripped", |t| t.events_of("storm_tripped").first().cloned());
    assert_eq!(tripped["worker"], "loop-0");
    assert_eq!(tripped["restarts"], 4, "more than storm_max = 3 restarts");
    let alert = tend.wait_for(10, "the restart-storm alert firing", |t| {
        t.json("/api/v1/alerts")
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule"] == "restart-storm" && a["state"] == "firing")
            .cloned()
    });
    assert_eq!(alert["subject"], "loop-0");
    assert_eq!(alert["severity"], "critical");
    let w = tend.worker("loop-0");
    assert_eq!(w["state"], "FAILED", "held in FAILED: {w}");
    assert!(w["held"].as_str().unwrap().contains("restarts within 60s"), "{w}");
    // Held means held: no new incarnation appears.
    let n = tend.events_of("state_changed").len();
    // Watch for 3 s: something that must not happen has no condition to wait on.
    pause(std::time::Duration::from_secs(3));
    let later = tend.events_of("state_changed");
    assert_eq!(later.len(), n, "no restarts after the breaker tripped: {:?}", &later[n..]);
    let h = tend.json("/api/v1/health");
    assert_eq!(h["alerts_firing"], 1);
}
