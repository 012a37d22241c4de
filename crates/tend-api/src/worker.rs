//! Workers and pools on the wire: the list row, the detail with incarnations, samples and alerts, a
//! pool's aggregates, and orphaned containers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::alert::Alert;
use crate::model::{ProcessId, RecycleReason, Sample, Source, State, Timestamp, Transition};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct WorkerDto {
    pub id: String,
    pub pool: String,
    pub source: Source,
    pub slot: Option<u32>,
    pub pid: Option<u32>,
    pub process: Option<ProcessId>,
    pub state: State,
    /// Incarnation number of the serving process (1 for the first, +1 per replacement).
    pub incarnation: u32,
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_percent: Option<f64>,
    /// The pool's memory recycle limit, for drawing the bar against it.
    pub memory_limit_bytes: Option<u64>,
    pub threads: Option<u32>,
    pub fds: Option<u32>,
    pub uptime_secs: f64,
    pub restarts: u32,
    pub requests: u64,
    pub log_lines: u64,
    pub errors: u64,
    pub warnings: u64,
    /// A recycle under way, by reason.
    pub recycling: Option<RecycleReason>,
    /// Why the worker is held (storm breaker) or stopped.
    pub held: Option<String>,
    pub last_event: Option<LastEvent>,
    pub last_sample_at: Option<Timestamp>,
    /// Reported workers: the orchestrator's task id, container and labels from the registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The agent the worker runs on, when this Tend is a hub; null for its own workers. A remote
    /// worker's `id` is `<its id on the agent>@<host>`.
    #[serde(default)]
    pub host: Option<String>,
    /// Its agent has not answered since this was read: the numbers are not live.
    #[serde(default)]
    pub stale: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct LastEvent {
    pub at: Timestamp,
    pub state: State,
    pub cause: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct IncarnationDto {
    pub incarnation: u32,
    pub process: Option<ProcessId>,
    pub state: State,
    pub started: Timestamp,
    pub transitions: Vec<Transition>,
    pub requests: u64,
    pub startup_secs: Option<f64>,
    pub task_secs: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct WorkerDetailDto {
    #[serde(flatten)]
    pub worker: WorkerDto,
    /// Oldest first: ended incarnations, then the serving one, a starting replacement, draining ones.
    pub incarnations: Vec<IncarnationDto>,
    pub recent_samples: Vec<Sample>,
    pub alerts: Vec<Alert>,
}

/// A pool's aggregate figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct PoolMetrics {
    pub pool: String,
    pub source: Option<Source>,
    pub total_workers: u64,
    pub active_workers: u64,
    pub completed_workers: u64,
    pub failed_workers: u64,
    pub by_state: BTreeMap<State, u64>,
    pub total_memory_bytes: u64,
    pub average_cpu_percent: f64,
    pub total_requests: u64,
    pub total_errors: u64,
    pub total_warnings: u64,
    pub average_task_time_secs: Option<f64>,
    pub success_rate: Option<f64>,
    pub restarts: u64,
    pub recycles_by_reason: BTreeMap<RecycleReason, u64>,
    /// The agent the pool runs on, when this Tend is a hub; null for its own pools.
    #[serde(default)]
    pub host: Option<String>,
}

/// A container that carries Tend's pool label but whose owner is gone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct Orphan {
    pub id: String,
    pub name: String,
    /// Its `tend.pool` label.
    pub pool_label: String,
    /// Why it is an orphan: no such pool, or its owner pid no longer runs.
    pub reason: String,
    /// The engine state (running, exited...).
    pub state: String,
}

/// An error or warning an orchestrator reported for a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct ErrorRecord {
    pub at: Timestamp,
    pub incarnation: u32,
    pub kind: crate::report::ErrorKindBody,
    pub message: String,
}
