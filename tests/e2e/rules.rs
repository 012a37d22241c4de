//! A threshold rule with `for = 3s` fires only after 3 s above, stays firing between the clear and
//! fire thresholds (hysteresis), and resolves only below `clear_below`. The worker's memory really
//! rises and falls (demo-worker --memory-phases); the middle phase lasts 10 s, so that a loaded machine
//! (other end-to-end tests run beside this one) still takes samples in it.

use crate::harness::*;

#[test]
fn for_duration_and_hysteresis_on_real_memory() {
    let tend = Tend::start(
        r#"
[[pool]]
name = "mem"
command = ["$TEND_EXE", "demo-worker", "--memory-phases", "70:8,45:10,5:600"]
size = 1
profile = "intensive"
readiness = { start_secs = 1 }
stop_grace = "2s"

[[pool.rule]]
name = "memory-high"
metric = "memory_mb"
above = 60
clear_below = 30
for = "3s"
severity = "warning"
"#,
    );
    let resolved = tend.wait_for(60, "the alert resolved", |t| {
        t.events_of("alert_changed").into_iter().find(|e| e["alert"]["state"] == "resolved")
    });
    let changes: Vec<(i64, String, f64)> = tend
        .events_of("alert_changed")
        .iter()
        .map(|e| {
            let a = &e["alert"];
            (e["at"].as_i64().unwrap(), a["state"].as_str().unwrap().to_owned(), a["value"].as_f64().unwrap())
        })
        .collect();
    let states: Vec<&str> = changes.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(states, ["pending", "firing", "resolved"], "{changes:?}");
    let (pending_at, _, v0) = changes[0];
    let (firing_at, _, v1) = changes[1];
    let (resolved_at, _, v2) = changes[2];
    assert!(v0 > 60.0 && v1 > 60.0, "pending and firing on values above 60: {changes:?}");
    assert!(firing_at - pending_at >= 3000, "fired {} ms after the first breach", firing_at - pending_at);
    assert!(
        firing_at - pending_at <= 4500,
        "fired within a sample of the 3 s: {} ms",
        firing_at - pending_at
    );
    assert!(v2 < 30.0, "resolved only below clear_below 30: {v2}");
    // Between 30 and 60 it kept firing: some sample in that band came after firing and before resolving.
    let samples = tend.worker("mem-0")["recent_samples"].as_array().unwrap().clone();
    let in_band = samples.iter().any(|s| {
        let at = s["at"].as_i64().unwrap();
        let mb = s["metrics"]["memory_bytes"].as_f64().unwrap() / 1048576.0;
        at > firing_at && at < resolved_at && (30.0..60.0).contains(&mb)
    });
    assert!(in_band, "a sample between clear and fire thresholds while firing");
    assert_eq!(resolved["alert"]["subject"], "mem-0");
    assert_eq!(resolved["alert"]["rule"], "memory-high");
}
