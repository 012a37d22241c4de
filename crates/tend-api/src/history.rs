//! The history store's answers on the wire: a metric over time, alert history, recycles.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::model::{Timestamp, names};

/// The resolution a history answer was read from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Raw,
    Minute,
    Hour,
}

/// One bucket of a metric over time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct HistoryPoint {
    /// Start of the bucket, epoch ms.
    pub t: i64,
    pub min: Option<f64>,
    pub avg: Option<f64>,
    pub max: Option<f64>,
    /// Samples behind the point.
    pub n: i64,
}

/// A worker's metric over `[from, to)` (`GET /workers/{id}/history`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct History {
    pub worker: String,
    pub pool: String,
    pub metric: String,
    pub tier: Tier,
    pub step_ms: i64,
    pub from: Timestamp,
    pub to: Timestamp,
    pub points: Vec<HistoryPoint>,
}

/// One alert state change from the history (`GET /workers/{id}/history/alerts`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct AlertRow {
    pub at: Timestamp,
    pub rule: String,
    pub subject: String,
    pub pool: String,
    pub severity: String,
    pub state: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub since: Timestamp,
    pub started: Option<Timestamp>,
    pub message: String,
}

/// One recycle from the history (`GET /recycles`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct RecycleRow {
    pub at: Timestamp,
    pub worker: String,
    pub pool: String,
    pub reason: String,
    pub detail: String,
    /// `recycled` or `failed`.
    pub outcome: String,
    pub old_pid: Option<i64>,
    pub new_pid: Option<i64>,
    pub uptime_secs: Option<f64>,
    pub requests: Option<i64>,
    /// The worker's last metrics before the recycle, as recorded.
    #[ts(type = "{ memory_bytes?: number, cpu_percent?: number } | null")]
    #[schema(value_type = Option<Object>)]
    pub last_metrics: Option<serde_json::Value>,
}

/// What a CSV export holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, TS, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportKind {
    Samples,
    Events,
    Alerts,
    Recycles,
}
names!(ExportKind { Samples = "samples", Events = "events", Alerts = "alerts", Recycles = "recycles" });
