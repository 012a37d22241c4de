//! History end to end: samples and events of a running pool reach the SQLite file; a `kill -9` of
//! `tend serve` mid-ingest loses at most about the last second and leaves a sound database; the next
//! start stops the spawned workers the killed run left behind and restores its open alerts; the history API, CSV and chart export
//! answer from the file; an unwritable data directory is a degraded state, not a crash.

use std::time::Duration;

use tend_core::time::Timestamp;
use tend_store::Store;

use crate::harness::*;

const FAST_POOL: &str = r#"
[[pool]]
name = "hist"
# Silent workers: a demo-worker would die of SIGPIPE once its killed supervisor's pipe is gone, and the
# test is about Tend stopping the orphans itself.
command = ["sleep", "600"]
size = 2
interval = "250ms"
readiness = { start_secs = 1 }
stop_grace = "1s"

[[pool.rule]]
name = "always"
metric = "memory_bytes"
above = 0
for_samples = 3
"#;

#[test]
fn kill_9_mid_ingest_loses_at_most_a_second_and_the_next_start_cleans_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(&dir, "tend.toml", FAST_POOL);
    let cfg = cfg.to_str().unwrap().to_owned();
    let mut tend = Tend::start_args(dir, &["serve", "--config", &cfg]);
    let ws = tend.wait_for(30, "2 READY workers", |t| {
        let ws = t.workers();
        (ws.len() == 2 && ws.iter().all(|w| state_of(w) == "READY")).then_some(ws)
    });
    let procs: Vec<(u32, u64)> = ws
        .iter()
        .map(|w| (w["pid"].as_u64().unwrap() as u32, w["process"]["start_ticks"].as_u64().unwrap()))
        .collect();
    // Ingest is under way: the history API already answers from the file.
    tend.wait_for(15, "samples in the history", |t| {
        let h = t.json("/api/v1/workers/hist-0/history?metric=memory_bytes&from=-1m&step=1s");
        (h["points"].as_array().map(Vec::len).unwrap_or(0) >= 3).then_some(())
    });
    pause(Duration::from_millis(2500));
    let alert = tend.wait_for(10, "the alert firing", |t| {
        let a = t.json("/api/v1/alerts");
        a.as_array()?.iter().find(|a| a["subject"] == "hist-0" && a["state"] == "firing").cloned()
    });
    let mut child = tend.child.take().unwrap();
    let killed_at = wall_ms();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let data_dir = tend.data_dir.clone();
    let (integrity, last, recent) = block_on(async {
        let store = Store::open_dir(&data_dir).await.unwrap();
        let integrity = store.integrity_check().await.unwrap();
        let (n, _, last) = store.tier_span(tend_store::query::Tier::Raw).await.unwrap();
        assert!(n >= 10, "samples were written: {n}");
        let last = last.unwrap();
        // Continuity: the last 3 s before the newest sample hold a reading every ~250 ms (the engine's tick).
        let h = store
            .history(
                "hist-0",
                "memory_bytes",
                Timestamp(last - 3000),
                Timestamp(last + 1),
                Some(100),
                Timestamp(last),
                &tend_store::Retention::default(),
            )
            .await
            .unwrap();
        (integrity, last, h.points.iter().map(|p| p.n).sum::<i64>())
    });
    assert_eq!(integrity, "ok", "the database is sound after kill -9");
    let lost_ms = killed_at - last;
    assert!(lost_ms <= 1500, "at most ~1 s of samples lost: newest sample {lost_ms} ms before the kill");
    assert!(recent >= 8, "samples kept flowing until the end: {recent} in the last 3 s");

    // The killed run could not stop its workers: they are orphans now.
    for (pid, start) in &procs {
        assert!(alive(*pid, *start), "worker {pid} survived the kill of its supervisor (expected)");
    }
    // The next start (same data directory) finds them in the store and stops them.
    let dir2 = tempfile::tempdir().unwrap();
    let data = data_dir.to_str().unwrap().to_owned();
    let tend2 = Tend::start_env(dir2, &["serve", "--config", &cfg], &[("TEND_DATA_DIR", &data)]);
    // The open alert is back as it was (a fresh evaluation would start pending, `since` after the restart).
    let back = tend2.json("/api/v1/alerts");
    let back = back.as_array().unwrap().iter().find(|a| a["subject"] == "hist-0").cloned();
    let back = back.unwrap_or_else(|| panic!("alert not restored: {}", tend2.stderr()));
    assert_eq!((&back["state"], &back["since"]), (&alert["state"], &alert["since"]), "{back}");
    tend2.wait_for(20, "the orphans to be stopped", |_| {
        procs.iter().all(|(pid, start)| !alive(*pid, *start)).then_some(())
    });
    // History goes on in the same file.
    tend2.wait_for(20, "new samples after the restart", |t| {
        let h = t.json("/api/v1/workers/hist-0/history?metric=memory_bytes&from=-3m&step=1s");
        let newest = h["points"].as_array()?.last()?["t"].as_i64()?;
        (newest > last).then_some(())
    });
    // It was Tend that stopped them (the log line follows the group's end).
    tend2.wait_for(10, "the orphan cleanup's log line", |t| {
        t.stderr().contains("orphaned worker stopped").then_some(())
    });
}

#[test]
fn history_api_and_export_answer_from_the_database() {
    let mut tend = Tend::start(
        r#"
[[pool]]
name = "leaky"
command = ["$TEND_EXE", "demo-worker", "--slot", "$TEND_SLOT", "--base-mb", "10",
           "--leak-if-slot", "1", "--leak-mb-per-sec", "8", "--leak-max-mb", "300"]
size = 2
profile = "intensive"
readiness = { start_secs = 1, timeout = "20s" }
stop_grace = "1s"
recycle = { memory_mb = 40, max_unavailable = 1 }

[[pool.rule]]
name = "mem-warn"
metric = "memory_mb"
above = 25
"#,
    );
    tend.wait_for(60, "a memory recycle", |t| {
        t.events_of("recycled").into_iter().find(|e| e["reason"] == "memory")
    });
    let recycles = tend.wait_for(10, "the recycle in the database", |t| {
        let r = t.json("/api/v1/recycles?pool=leaky");
        r.as_array().filter(|a| !a.is_empty()).cloned()
    });
    let r = &recycles[0];
    assert_eq!(
        (r["worker"].as_str(), r["reason"].as_str(), r["outcome"].as_str()),
        (Some("leaky-1"), Some("memory"), Some("recycled"))
    );
    assert!(r["last_metrics"]["memory_bytes"].as_f64().unwrap() > 40.0 * 1024.0 * 1024.0, "{r}");
    assert!(r["uptime_secs"].as_f64().unwrap() > 0.0);

    // Metric history: the last minutes come from raw samples.
    let h = tend.json("/api/v1/workers/leaky-1/history?metric=memory_mb&from=-10m");
    assert_eq!(h["tier"], "raw", "{h}");
    let max = h["points"].as_array().unwrap().iter().filter_map(|p| p["max"].as_f64()).fold(0.0, f64::max);
    assert!(max > 40.0, "the leak is in the history: max {max} MiB");
    // Errors name the parameter; unknown workers are 404.
    let (st, v) = tend.get("/api/v1/workers/leaky-1/history?from=yesterday");
    assert_eq!(st, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("\"from\""), "{v}");
    let (st, v) = tend.get("/api/v1/workers/leaky-1/history?step=0");
    assert_eq!(st, 400, "{v}");
    let (st, v) = tend.get("/api/v1/workers/leaky-1/history?metric=x;drop");
    assert!(st == 400 && v["error"]["message"].as_str().unwrap().contains("\"metric\""), "{v}");
    let (st, _) = tend.get("/api/v1/workers/nobody/history");
    assert_eq!(st, 404);
    let (st, v) = tend.get("/api/v1/recycles?colour=blue");
    assert!(st == 400 && v["error"]["message"].as_str().unwrap().contains("colour"), "{v}");

    // Lifecycle events and alert history, per worker and per pool.
    let ev = tend.json("/api/v1/workers/leaky-1/history/events");
    let types: Vec<&str> = ev.as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(
        types.contains(&"worker_added") && types.contains(&"state_changed") && types.contains(&"recycled"),
        "{types:?}"
    );
    let alerts = tend.wait_for(10, "alert history", |t| {
        let a = t.json("/api/v1/pools/leaky/history/alerts");
        a.as_array().filter(|a| a.iter().any(|x| x["state"] == "firing")).cloned()
    });
    assert!(alerts.iter().any(|a| a["subject"] == "leaky-1" && a["rule"] == "mem-warn"));
    assert_eq!(tend.get("/api/v1/pools/nope/history/events").0, 404);

    // CSV over HTTP, read back with a CSV parser.
    let body = http_get(tend.url("/api/v1/export.csv?pool=leaky&from=-10m")).unwrap();
    assert_eq!(body.status(), 200);
    assert!(body.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = body.text().unwrap();
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(&header[..6], ["time", "worker", "pool", "incarnation", "pid", "state"]);
    assert!(header.contains(&"memory_bytes".to_string()) && header.contains(&"cpu_percent".to_string()));
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert!(rows.len() >= 4, "{} rows", rows.len());
    assert!(rows.iter().all(|r| r[0].ends_with('Z') && r[0].contains('T') && &r[2] == "leaky"));
    assert_eq!(tend.get("/api/v1/export.csv?worker=nobody").0, 404);
    assert_eq!(tend.get("/api/v1/export.csv?kind=bogus").0, 400);

    // The CLI reads the same file while the server runs.
    let out = tempfile::tempdir().unwrap();
    let data = tend.data_dir.to_str().unwrap().to_owned();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(TEND)
            .arg("export")
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "tend export {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        o
    };
    let csv_path = out.path().join("r.csv");
    run(&["--kind", "recycles", "--pool", "leaky", "--out", csv_path.to_str().unwrap()]);
    let mut rd = csv::Reader::from_path(&csv_path).unwrap();
    let rec: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert!(rec.iter().any(|r| &r[1] == "leaky-1" && &r[3] == "memory"));
    let o = run(&["--worker", "leaky-0", "--metrics", "cpu_percent,memory_bytes", "--from", "-10m"]);
    let mut rd = csv::Reader::from_reader(o.stdout.as_slice());
    assert_eq!(rd.headers().unwrap().len(), 8);
    assert!(rd.records().count() >= 2);
    let svg = out.path().join("c.svg");
    run(&["--pool", "leaky", "--chart", "cpu,memory", "--format", "svg", "--out", svg.to_str().unwrap()]);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.contains("leaky-0") && s.contains("leaky-1") && s.contains("<polyline"));
    let png = out.path().join("c.png");
    run(&[
        "--pool",
        "leaky",
        "--chart",
        "memory",
        "--width",
        "640",
        "--height",
        "360",
        "--out",
        png.to_str().unwrap(),
    ]);
    let b = std::fs::read(&png).unwrap();
    assert_eq!(&b[1..4], b"PNG");
    assert_eq!(
        (
            u32::from_be_bytes(b[16..20].try_into().unwrap()),
            u32::from_be_bytes(b[20..24].try_into().unwrap())
        ),
        (640, 360)
    );

    // A clean stop flushes: the last events (the workers' ends) are in the file.
    let status = tend.terminate(30);
    assert!(status.success());
    let events = block_on(async {
        let store = Store::open_dir(std::path::Path::new(&data)).await.unwrap();
        store
            .events(&tend_store::query::Filter { worker: Some("leaky-0".into()), ..Default::default() })
            .await
            .unwrap()
    });
    assert_eq!(events.last().unwrap()["to"], "CLEANED", "{:?}", events.last());
}

#[test]
fn an_unwritable_data_directory_is_degraded_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(&dir, "tend.toml", FAST_POOL);
    let cfg = cfg.to_str().unwrap().to_owned();
    // sysfs is read-only, even for root.
    let tend =
        Tend::start_env(dir, &["serve", "--config", &cfg], &[("TEND_DATA_DIR", "/sys/tend-e2e-history")]);
    let health = tend.wait_for(15, "health degraded by the store", |t| {
        let h = t.json("/api/v1/health");
        (h["status"] == "degraded" && h["degraded"]["store"].is_string()).then_some(h)
    });
    let reason = health["degraded"]["store"].as_str().unwrap();
    assert!(reason.contains("/sys/tend-e2e-history"), "the reason names the directory: {reason}");
    // Collection goes on.
    tend.wait_for(30, "2 READY workers", |t| {
        let ws = t.workers();
        (ws.len() == 2 && ws.iter().all(|w| state_of(w) == "READY")).then_some(())
    });
    let (st, v) = tend.get("/api/v1/workers/hist-0/history");
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"]["code"], "store_unavailable");
}
