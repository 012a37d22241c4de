//! Shared builders: a writer on a temp dir with a manual clock, and events and samples to feed it.

use std::sync::Arc;
use std::time::Duration;

use tend_core::event::{Event, EventKind};
use tend_core::model::{Metrics, ProcessId, Source, WorkerId};
use tend_core::time::{ManualClock, Timestamp};
use tend_store::{Retention, SampleRecord, StoreHandle, WriterConfig};

pub const T0: i64 = 1_780_000_000_000; // 2026-05-28T20:26:40Z

pub fn writer(dir: &std::path::Path, clock: &ManualClock, retention: Retention) -> StoreHandle {
    let mut cfg = WriterConfig::new(dir.to_path_buf(), retention);
    cfg.maintain_every = Duration::from_secs(3600);
    tend_store::writer::spawn(cfg, Arc::new(clock.clone()))
}

pub fn added(seq: u64, at: i64, worker: &str, pool: &str) -> Event {
    Event {
        seq,
        at: Timestamp(at),
        kind: EventKind::WorkerAdded {
            worker: WorkerId::new(worker),
            pool: pool.into(),
            source: Source::Spawned,
        },
    }
}

pub fn sample(worker: &str, pool: &str, at: i64, cpu: f64, mem: u64) -> SampleRecord {
    SampleRecord {
        worker: WorkerId::new(worker),
        pool: pool.into(),
        at: Timestamp(at),
        incarnation: 1,
        process: Some(ProcessId { pid: 4242, start_ticks: 99 }),
        state: Some("READY"),
        metrics: Metrics {
            cpu_percent: Some(cpu),
            memory_bytes: Some(mem),
            threads: Some(3),
            ..Default::default()
        },
        requests: Some(7),
    }
}
