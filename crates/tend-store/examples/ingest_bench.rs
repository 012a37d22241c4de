//! History store benchmark: ingest rate through the batched writer (samples/s), CSV export rate
//! (rows/s) and peak memory, on a real SQLite file in a temp directory.
//!
//! `cargo run --release -p tend-store --example ingest_bench -- [SAMPLES] [WORKERS]` (default 1000000 100)

use std::sync::Arc;
use std::time::Instant;

use tend_core::model::{Metrics, ProcessId, WorkerId};
use tend_core::time::{ManualClock, Timestamp};
use tend_store::export::{ExportRequest, Kind};
use tend_store::{Retention, SampleRecord, WriterConfig};

/// (VmRSS, VmHWM) in MiB from /proc/self/status.
fn rss() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat (100 ticks a second).
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rfind(')').map(|i| &s[i + 2..]).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let workers: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir()?;
    let t0 = 1_780_000_000_000i64;
    let clock = ManualClock::new(Timestamp(t0));
    let mut cfg = WriterConfig::new(dir.path().to_path_buf(), Retention::default());
    cfg.maintain_every = std::time::Duration::from_secs(3600);
    let h = tend_store::writer::spawn(cfg, Arc::new(clock));
    h.wait_open(std::time::Duration::from_secs(10)).await;
    let ids: Vec<WorkerId> = (0..workers).map(|w| WorkerId::new(format!("pool-{w}"))).collect();
    println!("history store benchmark: {n} samples over {workers} workers, {}", dir.path().display());
    let (rss0, _) = rss();

    let start = Instant::now();
    let cpu0 = cpu_secs();
    // One message per sweep of all workers, as the engine sends them.
    let mut batch = Vec::with_capacity(workers as usize);
    for i in 0..n {
        let w = (i % workers) as usize;
        let at = t0 + (i / workers) as i64 * 1000;
        let s = SampleRecord {
            worker: ids[w].clone(),
            pool: "pool".into(),
            at: Timestamp(at),
            incarnation: 1,
            process: Some(ProcessId { pid: 1000 + w as u32, start_ticks: 1 }),
            state: Some("READY"),
            metrics: Metrics {
                cpu_percent: Some((i % 100) as f64 * 0.5),
                cpu_host_percent: Some((i % 100) as f64 * 0.25),
                memory_bytes: Some(100_000_000 + i * 7),
                memory_percent: Some(1.5),
                threads: Some(4),
                fds: Some(12),
                ..Default::default()
            },
            requests: Some(i / workers),
        };
        batch.push(s);
        if batch.len() == workers as usize || i + 1 == n {
            h.recorder
                .samples_wait(std::mem::replace(&mut batch, Vec::with_capacity(workers as usize)))
                .await;
        }
    }
    h.recorder.flush().await;
    let ingest = start.elapsed();
    let ingest_cpu = cpu_secs() - cpu0;
    let (_, hwm_ingest) = rss();
    let store = h.store().ok_or_else(|| anyhow::anyhow!("store not open"))?;
    let written = store.sample_count().await?;
    println!(
        "ingest: {written} samples in {:.2} s = {:.0} samples/s; {ingest_cpu:.2} CPU-s (producer included) = {:.0} samples per CPU-s (peak RSS {hwm_ingest:.1} MiB, {:.1} MiB before); file {:.1} MiB",
        ingest.as_secs_f64(),
        written as f64 / ingest.as_secs_f64(),
        written as f64 / ingest_cpu,
        rss0,
        store.file_bytes() as f64 / 1048576.0
    );

    if args.get(3).is_some_and(|a| a == "ingest-only") {
        h.close().await;
        return Ok(());
    }
    let req = ExportRequest {
        kind: Kind::Samples,
        worker: None,
        pool: None,
        from: Timestamp(i64::MIN),
        to: Timestamp(i64::MAX),
        metrics: None,
    };
    let out = std::fs::File::create(dir.path().join("export.csv"))?;
    let out = std::sync::Mutex::new(std::io::BufWriter::new(out));
    let max_rss = std::sync::atomic::AtomicU64::new(0);
    let start = Instant::now();
    let cpu0 = cpu_secs();
    let stats = store
        .export_csv(&req, |chunk| {
            use std::io::Write;
            let r = out
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))
                .and_then(|mut o| o.write_all(&chunk));
            max_rss.fetch_max(rss().0 as u64, std::sync::atomic::Ordering::Relaxed);
            async move { r }
        })
        .await?;
    let export = start.elapsed();
    let export_cpu = cpu_secs() - cpu0;
    let (_, hwm_export) = rss();
    println!(
        "export: {} rows, {:.1} MiB of CSV in {:.2} s = {:.0} rows/s; {export_cpu:.2} CPU-s (RSS during export at most {} MiB; peak RSS {hwm_export:.1} MiB)",
        stats.rows,
        stats.bytes as f64 / 1048576.0,
        export.as_secs_f64(),
        stats.rows as f64 / export.as_secs_f64(),
        max_rss.load(std::sync::atomic::Ordering::Relaxed)
    );
    h.close().await;
    Ok(())
}
