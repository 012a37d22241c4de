//! Events on the wire: everything the fleet decided, in order (SSE, `--events-jsonl`, webhooks, the
//! desktop's channel). The `type` tag names the variant.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::alert::Alert;
use crate::model::{Metrics, ProcessId, RecycleReason, Source, State, Timestamp, WorkerId};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct Event {
    /// Strictly increasing within one run of the fleet.
    pub seq: u64,
    pub at: Timestamp,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
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
    /// One lifecycle transition of one incarnation (`from: null` for the first, INITIALIZING).
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
    /// A process left its worker's process group and was found re-parented to Tend; it is stopped
    /// when Tend stops. `pool` is null when the fleet does not know that worker (any more).
    ProcessEscaped {
        worker: WorkerId,
        pool: Option<String>,
        incarnation: Option<u32>,
        process: ProcessId,
        detail: String,
    },
    /// Someone acted on the fleet (the audit trail): `by` names the API token (`default` for the
    /// shared `token`, `anonymous` without tokens) or `desktop`; `action` is `recycle`, `stop`,
    /// `remove`, `acknowledge`, `silence` or `clean_orphans`; `target` a worker id or an alert's
    /// `rule/subject`. `worker` and `pool` are set when the target is a known worker.
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
    /// Every `type` tag, in declaration order (the UI's list of SSE event names is generated from it).
    pub const TYPES: &'static [&'static str] = &[
        "worker_added",
        "worker_removed",
        "state_changed",
        "recycle_started",
        "recycled",
        "recycle_failed",
        "storm_tripped",
        "alert_changed",
        "source_status",
        "process_escaped",
        "operator_action",
    ];

    /// The `type` tag as serialized (the SSE `event:` field).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertState, Severity};

    /// One event of each kind: its serialized `type` is its `name()`, and `TYPES` lists them all.
    #[test]
    fn every_kind_is_named_as_serialized() {
        let w = || WorkerId("w".into());
        let p = ProcessId { pid: 1, start_ticks: 2 };
        let alert = Alert {
            rule: "r".into(),
            subject: "w".into(),
            pool: "p".into(),
            severity: Severity::Info,
            state: AlertState::Firing,
            value: None,
            threshold: None,
            since: Timestamp(0),
            started: None,
            message: String::new(),
            acknowledged: false,
            silenced_until: None,
            metric: None,
            clear: None,
            unit: None,
        };
        let kinds = vec![
            EventKind::WorkerAdded { worker: w(), pool: "p".into(), source: Source::Spawned },
            EventKind::WorkerRemoved { worker: w(), pool: "p".into() },
            EventKind::StateChanged {
                worker: w(),
                pool: "p".into(),
                incarnation: 1,
                process: None,
                from: None,
                to: State::Ready,
                cause: String::new(),
            },
            EventKind::RecycleStarted {
                worker: w(),
                pool: "p".into(),
                reason: RecycleReason::Ttl,
                detail: String::new(),
                old_process: None,
            },
            EventKind::Recycled {
                worker: w(),
                pool: "p".into(),
                reason: RecycleReason::Ttl,
                detail: String::new(),
                old_process: None,
                new_process: None,
                uptime_secs: 0.0,
                requests: 0,
                last_metrics: None,
            },
            EventKind::RecycleFailed {
                worker: w(),
                pool: "p".into(),
                reason: RecycleReason::Ttl,
                error: String::new(),
            },
            EventKind::StormTripped { worker: w(), pool: "p".into(), restarts: 1, window_secs: 1.0 },
            EventKind::AlertChanged { alert },
            EventKind::SourceStatus { source: "s".into(), degraded: true, detail: String::new() },
            EventKind::ProcessEscaped {
                worker: w(),
                pool: None,
                incarnation: None,
                process: p,
                detail: String::new(),
            },
            EventKind::OperatorAction {
                by: "ops".into(),
                action: "recycle".into(),
                target: "w".into(),
                worker: Some(w()),
                pool: None,
                detail: String::new(),
            },
        ];
        let names: Vec<&str> = kinds.iter().map(EventKind::name).collect();
        assert_eq!(names, EventKind::TYPES);
        for k in &kinds {
            let v = serde_json::to_value(Event { seq: 1, at: Timestamp(0), kind: k.clone() }).expect("json");
            assert_eq!(v["type"], k.name());
        }
    }
}
