//! Events: everything the fleet decided, in order, for the sinks (SSE, JSON lines, store, notifier, UI).
//! Sinks only consume these; they never feed back into decisions.

use serde::{Deserialize, Serialize};

use crate::lifecycle::State;
use crate::model::{Metrics, ProcessId, Source, WorkerId};
use crate::recycle::RecycleReason;
use crate::rules::Alert;
use crate::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Strictly increasing within one run of the fleet.
    pub seq: u64,
    pub at: Timestamp,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    WorkerAdded {
        worker: WorkerId,
        pool: String,
        source: Source,
    },
    WorkerRemoved {
        worker: WorkerId,
        pool: String,
    },
    /// One lifecycle transition of one incarnation (`from: None` for the first, INITIALIZING).
    StateChanged {
        worker: WorkerId,
        pool: String,
        incarnation: u32,
        process: Option<ProcessId>,
        from: Option<State>,
        to: State,
        cause: String,
    },
    /// A recycle was decided: the replacement is being started (or, for a dead worker, will be).
    RecycleStarted {
        worker: WorkerId,
        pool: String,
        reason: RecycleReason,
        detail: String,
        old_process: Option<ProcessId>,
    },
    /// The replacement is READY and the old incarnation is draining (or was already gone).
    Recycled {
        worker: WorkerId,
        pool: String,
        reason: RecycleReason,
        detail: String,
        old_process: Option<ProcessId>,
        new_process: Option<ProcessId>,
        uptime_secs: f64,
        requests: u64,
        last_metrics: Option<Metrics>,
    },
    /// A recycle could not complete (replacement failed); the old incarnation, if alive, stays.
    RecycleFailed {
        worker: WorkerId,
        pool: String,
        reason: RecycleReason,
        error: String,
    },
    /// Restarts came too fast: the worker is held in FAILED and no longer replaced.
    StormTripped {
        worker: WorkerId,
        pool: String,
        restarts: u32,
        window_secs: f64,
    },
    AlertChanged {
        alert: Alert,
    },
    /// A source of observations became unreachable, or recovered (`degraded: false`).
    SourceStatus {
        source: String,
        degraded: bool,
        detail: String,
    },
    /// A process left its worker's process group (`setsid`, double fork) and was found re-parented to
    /// Tend; it is stopped when Tend stops. `worker` is the one its environment names; `pool` is None
    /// when the fleet does not know that worker (any more).
    ProcessEscaped {
        worker: WorkerId,
        pool: Option<String>,
        incarnation: Option<u32>,
        process: ProcessId,
        detail: String,
    },
    /// Someone acted on the fleet (the audit trail): `by` names the API token or the desktop app,
    /// `action` what was asked (`recycle`, `stop`, `remove`, `acknowledge`, `silence`, `clean_orphans`),
    /// `target` on what (a worker id, `rule/subject` for an alert). `worker` and `pool` are set when
    /// the target is a worker the fleet knows, so the action shows on its timeline.
    OperatorAction {
        by: String,
        action: String,
        target: String,
        worker: Option<WorkerId>,
        pool: Option<String>,
        detail: String,
    },
}

impl EventKind {
    /// The worker the event is about, if any.
    pub fn worker(&self) -> Option<&WorkerId> {
        match self {
            EventKind::WorkerAdded { worker, .. }
            | EventKind::WorkerRemoved { worker, .. }
            | EventKind::StateChanged { worker, .. }
            | EventKind::RecycleStarted { worker, .. }
            | EventKind::Recycled { worker, .. }
            | EventKind::RecycleFailed { worker, .. }
            | EventKind::StormTripped { worker, .. }
            | EventKind::ProcessEscaped { worker, .. } => Some(worker),
            EventKind::OperatorAction { worker, .. } => worker.as_ref(),
            EventKind::AlertChanged { .. } | EventKind::SourceStatus { .. } => None,
        }
    }

    /// The `type` tag as serialized.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::WorkerAdded { .. } => "worker_added",
            EventKind::WorkerRemoved { .. } => "worker_removed",
            EventKind::StateChanged { .. } => "state_changed",
            EventKind::RecycleStarted { .. } => "recycle_started",
            EventKind::Recycled { .. } => "recycled",
            EventKind::RecycleFailed { .. } => "recycle_failed",
            EventKind::StormTripped { .. } => "storm_tripped",
            EventKind::AlertChanged { .. } => "alert_changed",
            EventKind::SourceStatus { .. } => "source_status",
            EventKind::ProcessEscaped { .. } => "process_escaped",
            EventKind::OperatorAction { .. } => "operator_action",
        }
    }
}
