//! tend-store against real SQLite files in temp directories: ingest through the writer, the three tiers
//! under simulated time, pruning by age and size, history queries, CSV and chart export, and a data
//! directory that cannot be written.
#![allow(clippy::unwrap_used)]

mod support;

mod charts;
mod csv_export;
mod degraded;
mod ingest;
mod tiers;
