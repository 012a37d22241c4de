//! Tend's history: the SQLite database (through sqlx, WAL, migrations embedded), the batched writer the
//! engine feeds, the rollup tiers and retention, the queries behind the history API, and CSV and chart
//! export.
//!
//! This is the only crate that knows sqlx or SQL. It never decides anything about workers and never
//! touches processes: it records what the engine hands it and answers questions about the past. Time
//! comes in as arguments or through a `tend_core::time::Clock`; nothing here reads the wall clock.
#![forbid(unsafe_code)]

pub mod chart;
pub mod db;
pub mod export;
pub mod lock;
pub mod query;
pub mod record;
pub mod tiers;
pub mod timefmt;
pub mod writer;

pub use db::{Retention, Store, default_data_dir};
pub use record::{Record, SampleRecord};
pub use writer::{Recorder, StoreHandle, StoreStatus, WriterConfig};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "tend.db";

/// Built-in metrics kept as columns (raw samples) and rolled up (min/avg/max). Order = column order.
pub const METRICS: &[&str] = &[
    "cpu_percent",
    "cpu_host_percent",
    "memory_bytes",
    "memory_percent",
    "disk_read_bytes",
    "disk_write_bytes",
    "net_rx_bytes",
    "net_tx_bytes",
    "threads",
    "fds",
];
