//! Each core and store type's wire twin: one translation, field by field, so that the wire format is
//! written down once (in `tend-api`) and the core stays free to change. A match without a wildcard
//! makes a new core variant a compile error here rather than a silent gap on the wire.

use tend_api as api;
use tend_core::event::{Event, EventKind};
use tend_core::fleet::{ErrorKind, ErrorRecord, Orphan, PoolMetrics};
use tend_core::lifecycle::{State, Transition};
use tend_core::model::{Metrics, ProcessId, Sample, Source, WorkerId};
use tend_core::recycle::RecycleReason;
use tend_core::rules::{Alert, AlertState, Severity};
use tend_core::time::Timestamp;

/// A type with a wire twin.
pub trait ToWire {
    type Wire;
    fn wire(&self) -> Self::Wire;
}

impl<T: ToWire> ToWire for Option<T> {
    type Wire = Option<T::Wire>;
    fn wire(&self) -> Self::Wire {
        self.as_ref().map(ToWire::wire)
    }
}

impl ToWire for Timestamp {
    type Wire = api::Timestamp;
    fn wire(&self) -> api::Timestamp {
        api::Timestamp(self.0)
    }
}

impl ToWire for WorkerId {
    type Wire = api::WorkerId;
    fn wire(&self) -> api::WorkerId {
        api::WorkerId(self.0.clone())
    }
}

impl ToWire for Source {
    type Wire = api::Source;
    fn wire(&self) -> api::Source {
        match self {
            Source::Spawned => api::Source::Spawned,
            Source::Attached => api::Source::Attached,
            Source::Container => api::Source::Container,
            Source::Reported => api::Source::Reported,
        }
    }
}

impl ToWire for State {
    type Wire = api::State;
    fn wire(&self) -> api::State {
        match self {
            State::Initializing => api::State::Initializing,
            State::Ready => api::State::Ready,
            State::Working => api::State::Working,
            State::Completing => api::State::Completing,
            State::Completed => api::State::Completed,
            State::Failed => api::State::Failed,
            State::Timeout => api::State::Timeout,
            State::Terminated => api::State::Terminated,
            State::Cleaned => api::State::Cleaned,
        }
    }
}

impl ToWire for RecycleReason {
    type Wire = api::RecycleReason;
    fn wire(&self) -> api::RecycleReason {
        match self {
            RecycleReason::Ttl => api::RecycleReason::Ttl,
            RecycleReason::Requests => api::RecycleReason::Requests,
            RecycleReason::Memory => api::RecycleReason::Memory,
            RecycleReason::Died => api::RecycleReason::Died,
            RecycleReason::Hung => api::RecycleReason::Hung,
            RecycleReason::Manual => api::RecycleReason::Manual,
            RecycleReason::Rule => api::RecycleReason::Rule,
        }
    }
}

impl ToWire for Severity {
    type Wire = api::Severity;
    fn wire(&self) -> api::Severity {
        match self {
            Severity::Info => api::Severity::Info,
            Severity::Warning => api::Severity::Warning,
            Severity::Critical => api::Severity::Critical,
        }
    }
}

/// The core's severity for a wire one (the notifier's budget ranks notifications by it).
pub fn severity_from_wire(s: api::Severity) -> Severity {
    match s {
        api::Severity::Info => Severity::Info,
        api::Severity::Warning => Severity::Warning,
        api::Severity::Critical => Severity::Critical,
    }
}

impl ToWire for AlertState {
    type Wire = api::AlertState;
    fn wire(&self) -> api::AlertState {
        match self {
            AlertState::Inactive => api::AlertState::Inactive,
            AlertState::Pending => api::AlertState::Pending,
            AlertState::Firing => api::AlertState::Firing,
            AlertState::Flapping => api::AlertState::Flapping,
            AlertState::Resolved => api::AlertState::Resolved,
        }
    }
}

impl ToWire for ProcessId {
    type Wire = api::ProcessId;
    fn wire(&self) -> api::ProcessId {
        api::ProcessId { pid: self.pid, start_ticks: self.start_ticks }
    }
}

impl ToWire for Metrics {
    type Wire = api::Metrics;
    fn wire(&self) -> api::Metrics {
        let Metrics {
            cpu_percent,
            cpu_host_percent,
            memory_bytes,
            memory_percent,
            disk_read_bytes,
            disk_write_bytes,
            net_rx_bytes,
            net_tx_bytes,
            threads,
            fds,
            custom,
        } = self.clone();
        api::Metrics {
            cpu_percent,
            cpu_host_percent,
            memory_bytes,
            memory_percent,
            disk_read_bytes,
            disk_write_bytes,
            net_rx_bytes,
            net_tx_bytes,
            threads,
            fds,
            custom,
        }
    }
}

impl ToWire for Sample {
    type Wire = api::Sample;
    fn wire(&self) -> api::Sample {
        api::Sample { worker: self.worker.wire(), at: self.at.wire(), metrics: self.metrics.wire() }
    }
}

impl ToWire for Transition {
    type Wire = api::Transition;
    fn wire(&self) -> api::Transition {
        api::Transition {
            from: self.from.wire(),
            to: self.to.wire(),
            at: self.at.wire(),
            cause: self.cause.clone(),
        }
    }
}

impl ToWire for Alert {
    type Wire = api::Alert;
    fn wire(&self) -> api::Alert {
        api::Alert {
            rule: self.rule.clone(),
            subject: self.subject.clone(),
            pool: self.pool.clone(),
            severity: self.severity.wire(),
            state: self.state.wire(),
            value: self.value,
            threshold: self.threshold,
            since: self.since.wire(),
            started: self.started.wire(),
            message: self.message.clone(),
            acknowledged: self.acknowledged,
            silenced_until: self.silenced_until.wire(),
            metric: self.metric.clone(),
            clear: self.clear,
            unit: self.metric.as_deref().and_then(api::unit_of).map(str::to_owned),
        }
    }
}

impl ToWire for Event {
    type Wire = api::Event;
    fn wire(&self) -> api::Event {
        api::Event { seq: self.seq, at: self.at.wire(), kind: self.kind.wire() }
    }
}

impl ToWire for EventKind {
    type Wire = api::EventKind;
    fn wire(&self) -> api::EventKind {
        use api::EventKind as W;
        match self {
            EventKind::WorkerAdded { worker, pool, source } => {
                W::WorkerAdded { worker: worker.wire(), pool: pool.clone(), source: source.wire() }
            }
            EventKind::WorkerRemoved { worker, pool } => {
                W::WorkerRemoved { worker: worker.wire(), pool: pool.clone() }
            }
            EventKind::StateChanged { worker, pool, incarnation, process, from, to, cause } => {
                W::StateChanged {
                    worker: worker.wire(),
                    pool: pool.clone(),
                    incarnation: *incarnation,
                    process: process.wire(),
                    from: from.wire(),
                    to: to.wire(),
                    cause: cause.clone(),
                }
            }
            EventKind::RecycleStarted { worker, pool, reason, detail, old_process } => W::RecycleStarted {
                worker: worker.wire(),
                pool: pool.clone(),
                reason: reason.wire(),
                detail: detail.clone(),
                old_process: old_process.wire(),
            },
            EventKind::Recycled {
                worker,
                pool,
                reason,
                detail,
                old_process,
                new_process,
                uptime_secs,
                requests,
                last_metrics,
            } => W::Recycled {
                worker: worker.wire(),
                pool: pool.clone(),
                reason: reason.wire(),
                detail: detail.clone(),
                old_process: old_process.wire(),
                new_process: new_process.wire(),
                uptime_secs: *uptime_secs,
                requests: *requests,
                last_metrics: last_metrics.wire(),
            },
            EventKind::RecycleFailed { worker, pool, reason, error } => W::RecycleFailed {
                worker: worker.wire(),
                pool: pool.clone(),
                reason: reason.wire(),
                error: error.clone(),
            },
            EventKind::StormTripped { worker, pool, restarts, window_secs } => W::StormTripped {
                worker: worker.wire(),
                pool: pool.clone(),
                restarts: *restarts,
                window_secs: *window_secs,
            },
            EventKind::AlertChanged { alert } => W::AlertChanged { alert: alert.wire() },
            EventKind::SourceStatus { source, degraded, detail } => {
                W::SourceStatus { source: source.clone(), degraded: *degraded, detail: detail.clone() }
            }
            EventKind::ProcessEscaped { worker, pool, incarnation, process, detail } => W::ProcessEscaped {
                worker: worker.wire(),
                pool: pool.clone(),
                incarnation: *incarnation,
                process: process.wire(),
                detail: detail.clone(),
            },
            EventKind::OperatorAction { by, action, target, worker, pool, detail } => W::OperatorAction {
                by: by.clone(),
                action: action.clone(),
                target: target.clone(),
                worker: worker.as_ref().map(ToWire::wire),
                pool: pool.clone(),
                detail: detail.clone(),
            },
        }
    }
}

impl ToWire for PoolMetrics {
    type Wire = api::PoolMetrics;
    fn wire(&self) -> api::PoolMetrics {
        api::PoolMetrics {
            pool: self.pool.clone(),
            source: self.source.wire(),
            total_workers: self.total_workers,
            active_workers: self.active_workers,
            completed_workers: self.completed_workers,
            failed_workers: self.failed_workers,
            by_state: self.by_state.iter().map(|(s, n)| (s.wire(), *n)).collect(),
            total_memory_bytes: self.total_memory_bytes,
            average_cpu_percent: self.average_cpu_percent,
            total_requests: self.total_requests,
            total_errors: self.total_errors,
            total_warnings: self.total_warnings,
            average_task_time_secs: self.average_task_time_secs,
            success_rate: self.success_rate,
            restarts: self.restarts,
            recycles_by_reason: self.recycles_by_reason.iter().map(|(r, n)| (r.wire(), *n)).collect(),
            host: None,
        }
    }
}

impl ToWire for Orphan {
    type Wire = api::Orphan;
    fn wire(&self) -> api::Orphan {
        api::Orphan {
            id: self.id.clone(),
            name: self.name.clone(),
            pool_label: self.pool_label.clone(),
            reason: self.reason.clone(),
            state: self.state.clone(),
        }
    }
}

impl ToWire for ErrorRecord {
    type Wire = api::ErrorRecord;
    fn wire(&self) -> api::ErrorRecord {
        api::ErrorRecord {
            at: self.at.wire(),
            incarnation: self.incarnation,
            kind: match self.kind {
                ErrorKind::Error => api::report::ErrorKindBody::Error,
                ErrorKind::Warning => api::report::ErrorKindBody::Warning,
            },
            message: self.message.clone(),
        }
    }
}

impl ToWire for tend_store::query::History {
    type Wire = api::History;
    fn wire(&self) -> api::History {
        api::History {
            worker: self.worker.clone(),
            pool: self.pool.clone(),
            metric: self.metric.clone(),
            tier: match self.tier {
                tend_store::query::Tier::Raw => api::Tier::Raw,
                tend_store::query::Tier::Minute => api::Tier::Minute,
                tend_store::query::Tier::Hour => api::Tier::Hour,
            },
            step_ms: self.step_ms,
            from: self.from.wire(),
            to: self.to.wire(),
            points: self
                .points
                .iter()
                .map(|p| api::HistoryPoint { t: p.t, min: p.min, avg: p.avg, max: p.max, n: p.n })
                .collect(),
        }
    }
}

impl ToWire for tend_store::query::AlertRow {
    type Wire = api::AlertRow;
    fn wire(&self) -> api::AlertRow {
        api::AlertRow {
            at: self.at.wire(),
            rule: self.rule.clone(),
            subject: self.subject.clone(),
            pool: self.pool.clone(),
            severity: self.severity.clone(),
            state: self.state.clone(),
            value: self.value,
            threshold: self.threshold,
            since: self.since.wire(),
            started: self.started.wire(),
            message: self.message.clone(),
        }
    }
}

impl ToWire for tend_store::query::RecycleRow {
    type Wire = api::RecycleRow;
    fn wire(&self) -> api::RecycleRow {
        api::RecycleRow {
            at: self.at.wire(),
            worker: self.worker.clone(),
            pool: self.pool.clone(),
            reason: self.reason.clone(),
            detail: self.detail.clone(),
            outcome: self.outcome.clone(),
            old_pid: self.old_pid,
            new_pid: self.new_pid,
            uptime_secs: self.uptime_secs,
            requests: self.requests,
            last_metrics: self.last_metrics.clone(),
        }
    }
}
