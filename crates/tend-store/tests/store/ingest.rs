//! The writer: samples and every kind of event land in their tables; closing flushes what is queued.

use tend_core::State;
use tend_core::event::{Event, EventKind};
use tend_core::model::{Metrics, ProcessId, WorkerId};
use tend_core::recycle::RecycleReason;
use tend_core::rules::{Alert, AlertState, Severity};
use tend_core::time::{Clock, ManualClock, Timestamp};
use tend_store::query::Filter;
use tend_store::{Retention, Store};

use crate::support::*;

fn alert(state: AlertState, at: i64) -> Alert {
    Alert {
        rule: "memory-high".into(),
        subject: "api-0".into(),
        pool: "api".into(),
        severity: Severity::Warning,
        state,
        value: Some(212.0),
        threshold: Some(150.0),
        since: Timestamp(at),
        started: Some(Timestamp(at)),
        message: "memory_mb 212.0 above 150".into(),
        acknowledged: false,
        silenced_until: None,
        metric: None,
        clear: None,
    }
}

#[tokio::test]
async fn samples_and_events_reach_their_tables_and_close_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(T0));
    let h = writer(dir.path(), &clock, Retention::default());
    let r = &h.recorder;
    let p = ProcessId { pid: 4242, start_ticks: 99 };
    r.event(&added(1, T0, "api-0", "api"));
    r.event(&Event {
        seq: 2,
        at: Timestamp(T0 + 10),
        kind: EventKind::StateChanged {
            worker: WorkerId::new("api-0"),
            pool: "api".into(),
            incarnation: 1,
            process: Some(p),
            from: None,
            to: State::Initializing,
            cause: "spawned".into(),
        },
    });
    for i in 0..1000 {
        assert!(r.sample(sample("api-0", "api", T0 + i * 1000, i as f64 / 10.0, 1 << 20)));
    }
    r.event(&Event {
        seq: 3,
        at: Timestamp(T0 + 500_000),
        kind: EventKind::AlertChanged { alert: alert(AlertState::Firing, T0 + 500_000) },
    });
    r.event(&Event {
        seq: 4,
        at: Timestamp(T0 + 600_000),
        kind: EventKind::Recycled {
            worker: WorkerId::new("api-0"),
            pool: "api".into(),
            reason: RecycleReason::Memory,
            detail: "memory 212 MB above 200 MB".into(),
            old_process: Some(p),
            new_process: Some(ProcessId { pid: 4343, start_ticks: 100 }),
            uptime_secs: 600.0,
            requests: 77,
            last_metrics: Some(Metrics { memory_bytes: Some(222_000_000), ..Default::default() }),
        },
    });
    // Close: everything queued is committed before it returns.
    h.close().await;
    let store = Store::open_dir(dir.path()).await.unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    assert_eq!(store.sample_count().await.unwrap(), 1000);
    let w = store.worker_row("api-0").await.unwrap().unwrap();
    assert_eq!((w.pool.as_str(), w.source.as_deref()), ("api", Some("spawned")));
    assert_eq!(w.last_seen, Timestamp(T0 + 999_000));
    let f = Filter { worker: Some("api-0".into()), ..Default::default() };
    let events = store.events(&f).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e["type"].as_str().unwrap()).collect::<Vec<_>>(),
        ["worker_added", "state_changed", "alert_changed", "recycled"]
    );
    let alerts = store.alert_history(&f).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].state, "firing");
    let open = store.open_alerts().await.unwrap();
    assert_eq!(open.len(), 1, "a firing alert is open");
    let rec = store.recycles(&Filter { pool: Some("api".into()), ..Default::default() }).await.unwrap();
    assert_eq!(rec.len(), 1);
    assert_eq!(
        (rec[0].reason.as_str(), rec[0].requests, rec[0].uptime_secs),
        ("memory", Some(77), Some(600.0))
    );
    assert_eq!(rec[0].last_metrics.as_ref().unwrap()["memory_bytes"], 222_000_000);
    // The spawned process was recorded, and a later run sees it as never ended.
    let run = store.begin_run(Timestamp(T0 + 700_000)).await.unwrap();
    let left = store.unfinished_processes(run).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].process, p);
    store.mark_process_ended(p, Timestamp(T0 + 700_001)).await.unwrap();
    assert!(store.unfinished_processes(run).await.unwrap().is_empty());
}

#[tokio::test]
async fn history_answers_from_raw_samples_with_min_avg_max() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(T0 + 3_600_000));
    let h = writer(dir.path(), &clock, Retention::default());
    h.recorder.event(&added(1, T0, "w", "p"));
    for i in 0..600 {
        h.recorder.sample(sample("w", "p", T0 + i * 1000, (i % 10) as f64, 1 << 20));
    }
    h.recorder.flush().await;
    let store = h.store().unwrap();
    let hist = store
        .history(
            "w",
            "cpu_percent",
            Timestamp(T0),
            Timestamp(T0 + 600_000),
            Some(10_000),
            clock.now(),
            &Retention::default(),
        )
        .await
        .unwrap();
    assert_eq!(hist.tier, tend_store::query::Tier::Raw);
    assert_eq!(hist.points.len(), 60);
    let p = &hist.points[0];
    assert_eq!((p.min, p.avg, p.max, p.n), (Some(0.0), Some(4.5), Some(9.0), 10));
    let mem = store
        .history(
            "w",
            "memory_mb",
            Timestamp(T0),
            Timestamp(T0 + 600_000),
            None,
            clock.now(),
            &Retention::default(),
        )
        .await
        .unwrap();
    assert_eq!(mem.points[0].avg, Some(1.0));
    let e = store
        .history(
            "nobody",
            "cpu_percent",
            Timestamp(T0),
            Timestamp(T0 + 1),
            None,
            clock.now(),
            &Retention::default(),
        )
        .await;
    assert!(matches!(e, Err(tend_store::query::QueryError::UnknownWorker(_))));
    let e = store
        .history("w", "cpu;drop", Timestamp(T0), Timestamp(T0 + 1), None, clock.now(), &Retention::default())
        .await;
    assert!(e.unwrap_err().to_string().contains("\"metric\""));
    h.close().await;
}

/// Rows in the worker-clustered table and in the fresh one, read from the file itself.
fn rows_in(dir: &std::path::Path) -> (i64, i64) {
    let c = rusqlite::Connection::open_with_flags(
        dir.join("tend.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let n = |t: &str| c.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0)).unwrap();
    (n("samples"), n("samples_fresh"))
}

#[tokio::test]
async fn fresh_samples_are_read_before_they_settle_and_settle_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(T0 + 20_000));
    let mut cfg = tend_store::WriterConfig::new(dir.path().to_path_buf(), Retention::default());
    cfg.flush_every = std::time::Duration::from_millis(20);
    // Only an explicit flush or a burst of a batch settles in this test.
    cfg.settle_every = std::time::Duration::from_secs(3600);
    let h = tend_store::writer::spawn(cfg, std::sync::Arc::new(clock.clone()));
    h.recorder.event(&added(1, T0, "w", "p"));
    for i in 0..10 {
        h.recorder.sample(sample("w", "p", T0 + i * 1000, i as f64, 1 << 20));
    }
    // Committed by the writer's own cadence, not by a flush: the samples wait in the fresh table.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while h.recorder.written_samples() < 10 {
        assert!(std::time::Instant::now() < deadline, "the writer commits within its flush interval");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(rows_in(dir.path()), (0, 10));
    let store = h.store().unwrap();
    let ret = Retention::default();
    let read = || {
        store.history(
            "w",
            "cpu_percent",
            Timestamp(T0),
            Timestamp(T0 + 10_000),
            Some(1000),
            clock.now(),
            &ret,
        )
    };
    let before = read().await.unwrap();
    assert_eq!(before.points.len(), 10, "readers see samples that have not settled");
    assert_eq!(store.sample_count().await.unwrap(), 10);

    let seen = || async { store.worker_row("w").await.unwrap().unwrap().last_seen };
    assert!(seen().await < Timestamp(T0 + 9000), "last_seen moves at a settle, not at every commit");
    // A flush settles: every row moves once, and reads do not change.
    h.recorder.flush().await;
    assert_eq!(rows_in(dir.path()), (10, 0));
    assert_eq!(seen().await, Timestamp(T0 + 9000));
    let after = read().await.unwrap();
    assert_eq!(
        after.points.iter().map(|p| (p.t, p.avg)).collect::<Vec<_>>(),
        before.points.iter().map(|p| (p.t, p.avg)).collect::<Vec<_>>()
    );
    // A sample written again after it settled is still one row.
    h.recorder.sample(sample("w", "p", T0, 99.0, 1 << 20));
    h.recorder.flush().await;
    assert_eq!(rows_in(dir.path()), (10, 0));
    assert_eq!(read().await.unwrap().points[0].avg, Some(0.0), "the first write of a sample stands");
    h.close().await;
}
