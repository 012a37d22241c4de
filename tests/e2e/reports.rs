//! An orchestrator drives five reported workers through the report API of a real `tend serve`: it
//! registers them, moves them through their lifecycle, reports custom metrics, errors and requests.
//! The pool aggregate must match what was reported, a `success_rate` rule must fire after five low
//! samples, an invalid transition must be refused with 409 and the allowed states, and `/metrics` must
//! show the live workers and drop the cleaned ones.

use serde_json::{Value, json};

use crate::harness::*;

const CONFIG: &str = r#"
[[pool]]
name = "loom"
source = "reported"
profile = "realtime"
stale_after = "10m"

[[pool.rule]]
name = "low-success"
metric = "success_rate"
below = 0.2
clear_above = 0.5
for_samples = 5
severity = "critical"
"#;

/// Above the kernel's largest pid_max (2^22): no process here has it, so Tend only shows it.
const NO_PID: u64 = 4_194_400;

/// A tiny orchestrator: POSTs a report and insists on the status it expects.
fn report(t: &Tend, path: &str, body: Value, status: u16) -> Value {
    let (got, v) = t.post(&format!("/api/v1{path}"), body.clone());
    assert_eq!(got, status, "POST {path} {body}: {v}");
    v
}

fn state(t: &Tend, id: &str, s: &str) {
    report(t, &format!("/workers/{id}/state"), json!({"state": s, "cause": "orchestrator"}), 200);
}

#[test]
fn an_orchestrator_reports_five_workers_and_tend_keeps_count() {
    let tend = Tend::start(CONFIG);
    for i in 0..5 {
        let v = report(
            &tend,
            "/workers",
            json!({"id": format!("w{i}"), "pool": "loom", "task_id": format!("task-{i}"), "pid": NO_PID + i,
                   "labels": {"ceremony": "khipu"}}),
            201,
        );
        assert_eq!(v["state"], "INITIALIZING");
    }
    for i in 0..5 {
        state(&tend, &format!("w{i}"), "READY");
    }
    for id in ["w0", "w1", "w2"] {
        state(&tend, id, "WORKING");
    }
    // w0 completes its task, w1 fails; both are cleaned by the orchestrator.
    for s in ["COMPLETING", "COMPLETED", "CLEANED"] {
        state(&tend, "w0", s);
    }
    state(&tend, "w1", "FAILED");
    state(&tend, "w1", "CLEANED");

    // An invalid transition: READY -> COMPLETED skips COMPLETING.
    let v = report(&tend, "/workers/w3/state", json!({"state": "COMPLETED"}), 409);
    assert_eq!(v["error"]["code"], "invalid_transition");
    assert_eq!(v["error"]["allowed"], json!(["WORKING", "COMPLETING", "FAILED", "TIMEOUT", "TERMINATED"]));
    assert!(
        v["error"]["message"].as_str().unwrap().contains("allowed from READY: WORKING, COMPLETING"),
        "{v}"
    );
    // A cleaned worker takes no more reports.
    let v = report(&tend, "/workers/w0/metrics", json!({"memory_mb": 1}), 409);
    assert_eq!(v["error"]["code"], "ended");

    // Metrics: built-in and custom.
    for (id, mb) in [("w2", 256.5), ("w3", 128.0), ("w4", 64.0)] {
        report(&tend, &format!("/workers/{id}/metrics"), json!({"memory_mb": mb, "khipu_updates": 3}), 202);
    }
    // w2's success rate stays low for five reports: the rule fires on the fifth.
    for n in 0..5 {
        report(&tend, "/workers/w2/metrics", json!({"success_rate": 0.1}), 202);
        if n < 4 {
            let alerts = tend.json("/api/v1/alerts");
            assert!(
                !alerts.as_array().unwrap().iter().any(|a| a["state"] == "firing"),
                "fired after only {} low samples: {alerts}",
                n + 1
            );
        }
    }
    let alerts = tend.json("/api/v1/alerts");
    let fired = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "low-success" && a["subject"] == "w2")
        .cloned()
        .unwrap();
    assert_eq!(
        (fired["state"].as_str(), fired["subject"].as_str()),
        (Some("firing"), Some("w2")),
        "{alerts}"
    );
    assert_eq!(fired["severity"], "critical");
    assert_eq!(fired["value"], 0.1);

    // Errors, warnings and requests.
    report(&tend, "/workers/w2/errors", json!({"message": "khipu write failed", "kind": "error"}), 201);
    report(&tend, "/workers/w2/errors", json!({"message": "retrying"}), 201);
    report(&tend, "/workers/w3/errors", json!({"message": "slow upstream", "kind": "warning"}), 201);
    report(&tend, "/workers/w2/requests", json!({"count": 5}), 200);
    report(&tend, "/workers/w3/requests", json!({"count": 3}), 200);
    let log = tend.json("/api/v1/workers/w2/errors");
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0]["kind"].as_str(), log[0]["message"].as_str()),
        (Some("error"), Some("khipu write failed"))
    );
    assert_eq!(log[1]["kind"], "error", "kind defaults to error");
    assert!(log[0]["at"].as_i64().unwrap() <= log[1]["at"].as_i64().unwrap());

    // The pool aggregate matches what the orchestrator reported.
    let pm = tend.json("/api/v1/pools/loom/metrics");
    let mib = 1024.0 * 1024.0;
    let expect_memory = ((256.5 * mib) as u64 + (128.0 * mib) as u64 + (64.0 * mib) as u64) as f64;
    assert_eq!(pm["source"], "reported");
    assert_eq!(pm["total_workers"], 5, "{pm}");
    assert_eq!(pm["active_workers"], 3, "{pm}");
    assert_eq!(pm["completed_workers"], 1, "{pm}");
    assert_eq!(pm["failed_workers"], 1, "{pm}");
    assert_eq!(pm["success_rate"], 0.5, "{pm}");
    assert_eq!(pm["total_errors"], 2, "{pm}");
    assert_eq!(pm["total_warnings"], 1, "{pm}");
    assert_eq!(pm["total_requests"], 8, "{pm}");
    assert_eq!(pm["total_memory_bytes"].as_f64().unwrap(), expect_memory, "{pm}");
    assert_eq!(pm["by_state"], json!({"WORKING": 1, "READY": 2, "CLEANED": 2}), "{pm}");

    // The worker list shows what the orchestrator registered.
    let w2 = tend.worker("w2");
    assert_eq!(
        (w2["state"].as_str(), w2["task_id"].as_str(), w2["pid"].as_u64()),
        (Some("WORKING"), Some("task-2"), Some(NO_PID + 2))
    );
    assert_eq!(w2["labels"]["ceremony"], "khipu");
    assert_eq!(
        (w2["errors"].as_u64(), w2["warnings"].as_u64(), w2["requests"].as_u64()),
        (Some(2), Some(0), Some(5))
    );
    let samples = w2["recent_samples"].as_array().unwrap();
    assert_eq!(samples.len(), 6, "one memory report and five success_rate reports: {samples:?}");

    // /metrics: the live ones with their custom metrics, none of the cleaned ones.
    let page = http_get(tend.url("/metrics")).unwrap().text().unwrap();
    assert!(
        page.contains(r#"tend_worker_custom{pool="loom",worker="w2",metric="success_rate"} 0.1"#),
        "{page}"
    );
    assert!(page.contains(r#"tend_worker_state{pool="loom",worker="w2",state="WORKING"} 1"#), "{page}");
    assert!(
        page.contains(r#"tend_alerts_firing{pool="loom",rule="low-success",severity="critical"} 1"#),
        "{page}"
    );
    assert!(
        !page.contains(r#"worker="w0""#) && !page.contains(r#"worker="w1""#),
        "cleaned workers listed:\n{page}"
    );

    // Events went out as for any worker: the recorded lifecycle of w0 is complete.
    let w0: Vec<String> = tend
        .events_of("state_changed")
        .iter()
        .filter(|e| e["worker"] == "w0")
        .map(|e| e["to"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(w0, ["INITIALIZING", "READY", "WORKING", "COMPLETING", "COMPLETED", "CLEANED"]);
}

#[test]
fn reports_are_refused_for_the_wrong_pool_and_for_workers_tend_samples_itself() {
    let tend = Tend::start(&format!(
        "{CONFIG}\n[[pool]]\nname = \"api\"\ncommand = [\"$TEND_EXE\", \"demo-worker\"]\nsize = 1\n"
    ));
    let v = report(&tend, "/workers", json!({"id": "x", "pool": "api"}), 409);
    assert_eq!(v["error"]["code"], "not_reported");
    let v = report(&tend, "/workers", json!({"id": "x", "pool": "nope"}), 404);
    assert_eq!(v["error"]["message"], "no pool named \"nope\"");
    let v = report(&tend, "/workers", json!({"id": "a/b", "pool": "loom"}), 400);
    assert!(v["error"]["message"].as_str().unwrap().starts_with("field \"id\" must be"), "{v}");
    tend.wait_for(20, "api-0 listed", |t| by_id(&t.workers(), "api-0").cloned());
    let v = report(&tend, "/workers/api-0/state", json!({"state": "WORKING"}), 409);
    assert_eq!(v["error"]["message"], "worker api-0 is not a reported worker (source spawned)");
    report(&tend, "/workers", json!({"id": "x", "pool": "loom"}), 201);
    let v = report(&tend, "/workers", json!({"id": "x", "pool": "loom"}), 409);
    assert_eq!(v["error"]["code"], "already_registered");
    let v = report(&tend, "/workers/x/state", json!({"state": "BUSY"}), 400);
    assert!(
        v["error"]["message"].as_str().unwrap().starts_with("field \"state\": unknown state \"BUSY\""),
        "{v}"
    );
    let v = report(&tend, "/workers/x/metrics", json!({"memory_mb": "lots"}), 400);
    assert!(v["error"]["message"].as_str().unwrap().starts_with("field \"memory_mb\": invalid type"), "{v}");
    let v = report(&tend, "/workers/x/requests", json!({"count": -1}), 400);
    assert!(v["error"]["message"].as_str().unwrap().starts_with("field \"count\""), "{v}");
    let v = report(&tend, "/workers/x/errors", json!({"message": "m", "kind": "fatal"}), 400);
    assert!(v["error"]["message"].as_str().unwrap().starts_with("field \"kind\""), "{v}");
}

#[test]
fn a_registered_pid_of_a_real_process_is_sampled_and_its_exit_ends_the_worker() {
    let tend = Tend::start("[[pool]]\nname = \"loom\"\nsource = \"reported\"\nprofile = \"intensive\"\n");
    let mut child = std::process::Command::new(TEND)
        .args(["demo-worker", "--base-mb", "24"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    report(&tend, "/workers", json!({"id": "p1", "pool": "loom", "pid": child.id()}), 201);
    state(&tend, "p1", "READY");
    // Tend reads the process itself: its memory, without the orchestrator reporting it.
    let w = tend.wait_for(20, "p1's memory sampled from /proc", |t| {
        let w = t.worker("p1");
        (w["memory_bytes"].as_u64()? >= 24 * 1024 * 1024).then_some(w)
    });
    assert_eq!(w["pid"].as_u64(), Some(u64::from(child.id())));
    assert_eq!(w["process"]["pid"].as_u64(), Some(u64::from(child.id())));
    // Custom metrics from the orchestrator merge with what Tend samples.
    report(&tend, "/workers/p1/metrics", json!({"khipu_updates": 7}), 202);
    child.kill().unwrap();
    child.wait().unwrap();
    tend.wait_for(20, "p1 ended once its process was gone", |t| {
        let w = t.worker("p1");
        (state_of(&w) == "CLEANED").then_some(())
    });
}
