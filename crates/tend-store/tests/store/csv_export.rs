//! CSV export read back with the `csv` crate: header, rows, ISO-8601 UTC times, every metric, and
//! formula-like text escaped.

use tend_core::time::{ManualClock, Timestamp};
use tend_store::Retention;
use tend_store::export::{ExportRequest, Kind};

use crate::support::*;

async fn export(store: &tend_store::Store, req: &ExportRequest) -> Vec<u8> {
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = out.clone();
    let stats = store
        .export_csv(req, move |chunk| {
            o.lock().unwrap().extend_from_slice(&chunk);
            async { Ok(()) }
        })
        .await
        .unwrap();
    let bytes = out.lock().unwrap().clone();
    assert_eq!(stats.bytes as usize, bytes.len());
    bytes
}

#[tokio::test]
async fn samples_of_a_range_read_back_with_a_csv_parser() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(T0));
    let h = writer(dir.path(), &clock, Retention::default());
    h.recorder.event(&added(1, T0, "=HYPERLINK(\"x\")", "@pool"));
    h.recorder.event(&added(2, T0, "plain", "@pool"));
    for i in 0..100 {
        let mut s = sample("=HYPERLINK(\"x\")", "@pool", T0 + i * 1000, 12.5, 2048);
        s.metrics.custom.insert("queue_depth".into(), -3.0);
        h.recorder.sample(s);
        h.recorder.sample(sample("plain", "@pool", T0 + i * 1000, 1.0, 4096));
    }
    h.recorder.flush().await;
    let store = h.store().unwrap();
    let req = ExportRequest {
        kind: Kind::Samples,
        worker: None,
        pool: Some("@pool".into()),
        from: Timestamp(T0 + 10_000),
        to: Timestamp(T0 + 20_000),
        metrics: None,
    };
    let bytes = export(&store, &req).await;
    let mut rd = csv::Reader::from_reader(bytes.as_slice());
    let header: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(&header[..6], ["time", "worker", "pool", "incarnation", "pid", "state"]);
    for m in tend_store::METRICS {
        assert!(header.iter().any(|h| h == m), "column {m}");
    }
    assert!(header.iter().any(|h| h == "requests"));
    assert_eq!(header.last().unwrap(), "queue_depth");
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 20, "10 s of two workers, `to` excluded");
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let first = &rows[0];
    // Worker ids sort "=..." before "plain"; the formula is escaped, the pool too.
    assert_eq!(&first[col("worker")], "'=HYPERLINK(\"x\")");
    assert_eq!(&first[col("pool")], "'@pool");
    assert_eq!(&first[col("time")], tend_store::timefmt::iso(Timestamp(T0 + 10_000)));
    assert!(first[col("time")].ends_with('Z'));
    assert_eq!(&first[col("state")], "READY");
    assert_eq!(&first[col("cpu_percent")], "12.5");
    assert_eq!(&first[col("memory_bytes")], "2048");
    assert_eq!(&first[col("pid")], "4242");
    assert_eq!(&first[col("requests")], "7");
    // Numbers are numbers: a negative value is not text and is not escaped.
    assert_eq!(&first[col("queue_depth")], "-3");
    assert_eq!(&rows[19][col("worker")], "plain");
    assert_eq!(&rows[19][col("queue_depth")], "");

    // A chosen metric subset, one worker.
    let req = ExportRequest {
        worker: Some("plain".into()),
        pool: None,
        metrics: Some(vec!["cpu_percent".into(), "memory_bytes".into()]),
        ..req
    };
    let bytes = export(&store, &req).await;
    let mut rd = csv::Reader::from_reader(bytes.as_slice());
    assert_eq!(rd.headers().unwrap().len(), 8);
    assert_eq!(rd.records().count(), 10);

    // Events, too: one row per event with its JSON.
    let ev = ExportRequest {
        kind: Kind::Events,
        worker: None,
        pool: None,
        from: Timestamp(0),
        to: Timestamp(i64::MAX),
        metrics: None,
    };
    let bytes = export(&store, &ev).await;
    let mut rd = csv::Reader::from_reader(bytes.as_slice());
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][2], "worker_added");
    assert_eq!(&rows[0][4], "'@pool");
    h.close().await;
}

#[tokio::test]
async fn a_long_export_pages_through_every_row_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(T0));
    let h = writer(dir.path(), &clock, Retention::default());
    h.recorder.event(&added(1, T0, "w", "p"));
    // Two incarnations share some instants: the page boundary is on (time, incarnation).
    for i in 0..10_000 {
        h.recorder.sample(sample("w", "p", T0 + i * 1000, 1.0, 1));
        if i % 3 == 0 {
            let mut s = sample("w", "p", T0 + i * 1000, 2.0, 2);
            s.incarnation = 2;
            h.recorder.sample(s);
        }
    }
    h.recorder.flush().await;
    let store = h.store().unwrap();
    let req = ExportRequest {
        kind: Kind::Samples,
        worker: Some("w".into()),
        pool: None,
        from: Timestamp(i64::MIN),
        to: Timestamp(i64::MAX),
        metrics: Some(vec!["memory_bytes".into()]),
    };
    let bytes = export(&store, &req).await;
    let mut rd = csv::Reader::from_reader(bytes.as_slice());
    let keys: Vec<(String, String)> =
        rd.records().map(|r| r.unwrap()).map(|r| (r[0].to_owned(), r[3].to_owned())).collect();
    assert_eq!(keys.len(), 10_000 + 3334);
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "strictly ordered, no row twice");
    h.close().await;
}

#[tokio::test]
async fn an_export_whose_reader_goes_away_stops_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(T0));
    let h = writer(dir.path(), &clock, Retention::default());
    h.recorder.event(&added(1, T0, "w", "p"));
    for i in 0..20_000 {
        h.recorder.sample(sample("w", "p", T0 + i * 1000, 1.0, 1));
    }
    h.recorder.flush().await;
    let store = h.store().unwrap();
    let req = ExportRequest {
        kind: Kind::Samples,
        worker: None,
        pool: None,
        from: Timestamp(i64::MIN),
        to: Timestamp(i64::MAX),
        metrics: None,
    };
    // The consumer (an HTTP client, a full disk) fails on the second chunk: the export ends with that
    // error instead of reading the remaining rows into nowhere or waiting forever.
    let chunks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = chunks.clone();
    let result = store
        .export_csv(&req, move |_chunk| {
            let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { if n == 1 { Err(std::io::Error::other("client went away")) } else { Ok(()) } }
        })
        .await;
    let err = result.expect_err("the consumer's error ends the export");
    assert!(format!("{err:#}").contains("client went away"), "{err:#}");
    assert_eq!(chunks.load(std::sync::atomic::Ordering::SeqCst), 2, "nothing emitted after the failure");
    // The store still serves a whole export afterwards (the reader's snapshot was released).
    let bytes = export(&store, &req).await;
    assert_eq!(csv::Reader::from_reader(bytes.as_slice()).records().count(), 20_000);
    h.close().await;
}
