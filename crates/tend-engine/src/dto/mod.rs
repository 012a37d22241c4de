//! The wire types (crate `tend-api`) built from the engine's own: worker rows and details from the
//! fleet (inside the engine task), Settings from the config, and in `wire` the one translation of each
//! core and store type into its wire twin. Core types stay free to change; the wire changes only with
//! the API.

use tend_api::{
    IncarnationDto, LastEvent, NotificationsDto, RetentionDto, SettingsDto, WorkerDetailDto, WorkerDto,
};
use tend_core::fleet::{Fleet, Incarnation, Worker};
use tend_core::time::Timestamp;

pub use tend_api::{HealthDto, SelfUsage};
pub use wire::{ToWire, severity_from_wire};

mod wire;

fn inc_dto(i: &Incarnation) -> IncarnationDto {
    IncarnationDto {
        incarnation: i.n,
        process: i.process.wire(),
        state: i.state().wire(),
        started: i.lifecycle.created().wire(),
        transitions: i.lifecycle.history().iter().map(ToWire::wire).collect(),
        requests: i.requests,
        startup_secs: i.lifecycle.startup_time().map(|d| d.as_secs_f64()),
        task_secs: i.lifecycle.task_time().map(|d| d.as_secs_f64()),
    }
}

pub fn worker_dto(fleet: &Fleet, w: &Worker, now: Timestamp) -> WorkerDto {
    let c = w.current.as_ref();
    let last = c.and_then(|c| c.last.as_ref());
    let live = c.is_some_and(|c| c.state().is_live());
    let last_event = w
        .outgoing
        .iter()
        .chain(w.current.iter())
        .chain(w.incoming.iter())
        .chain(w.past.iter())
        .flat_map(|i| i.lifecycle.history().last())
        .max_by_key(|t| t.at)
        .map(|t| LastEvent { at: t.at.wire(), state: t.to.wire(), cause: t.cause.clone() });
    let errors = c.map(|c| c.errors).unwrap_or(0);
    let reg = w.reports.registration.as_ref();
    WorkerDto {
        id: w.id.to_string(),
        pool: w.pool.clone(),
        source: w.source.wire(),
        slot: w.slot,
        pid: c.and_then(|c| c.process).map(|p| p.pid).or(reg.and_then(|r| r.pid)),
        process: c.and_then(|c| c.process).wire(),
        state: w.state().wire(),
        incarnation: c.map(|c| c.n).unwrap_or(0),
        cpu_percent: if live { last.and_then(|m| m.cpu_percent) } else { None },
        memory_bytes: if live { last.and_then(|m| m.memory_bytes) } else { None },
        memory_percent: if live { last.and_then(|m| m.memory_percent) } else { None },
        memory_limit_bytes: fleet.pool(&w.pool).and_then(|p| p.recycle.memory_bytes),
        threads: if live { last.and_then(|m| m.threads) } else { None },
        fds: if live { last.and_then(|m| m.fds) } else { None },
        uptime_secs: c.filter(|c| c.state().is_live()).map(|c| c.uptime(now).as_secs_f64()).unwrap_or(0.0),
        restarts: w.restarts,
        requests: c.map(|c| c.requests).unwrap_or(0),
        log_lines: c.map(|c| c.log_lines).unwrap_or(0),
        errors,
        warnings: c.map(|c| c.warnings).unwrap_or(0),
        recycling: w.recycle.as_ref().map(|r| r.reason.wire()),
        held: w.held.clone().or_else(|| w.stopped.then(|| "stopped by operator".to_owned())),
        last_event,
        last_sample_at: c.and_then(|c| c.last_at).wire(),
        task_id: reg.and_then(|r| r.task_id.clone()),
        // Container workers: the serving container's name; reported ones: what the registration said.
        container: c
            .and_then(|c| c.container.as_ref().map(|r| r.name.clone()))
            .or_else(|| reg.and_then(|r| r.container.clone())),
        labels: reg.map(|r| r.labels.clone()).unwrap_or_default(),
        host: None,
        stale: false,
    }
}

pub fn worker_detail(fleet: &Fleet, w: &Worker, now: Timestamp) -> WorkerDetailDto {
    let incarnations = w
        .past
        .iter()
        .chain(w.current.iter())
        .chain(w.incoming.iter())
        .chain(w.outgoing.iter())
        .map(inc_dto)
        .collect();
    let alerts = fleet.alerts().alerts().filter(|a| a.subject == w.id.as_str()).map(ToWire::wire).collect();
    WorkerDetailDto {
        worker: worker_dto(fleet, w, now),
        incarnations,
        recent_samples: w.recent.samples(&w.id).map(|s| s.wire()).collect(),
        alerts,
    }
}

pub fn settings(
    config: Option<&std::path::Path>,
    data_dir: Option<&std::path::Path>,
    retention: &tend_store::Retention,
    notifications: &crate::config::NotificationsConfig,
    status: Option<tend_api::NotifyStatus>,
) -> SettingsDto {
    let b = &notifications.budget;
    let hhmm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    SettingsDto {
        config: config.map(|p| p.display().to_string()),
        data_dir: data_dir.map(|p| p.display().to_string()),
        retention: RetentionDto {
            raw_secs: retention.raw.as_secs_f64(),
            minute_secs: retention.minute.as_secs_f64(),
            hour_secs: retention.hour.as_secs_f64(),
            max_size_mb: retention.max_size_bytes.map(|b| b / (1024 * 1024)),
        },
        notifications: NotificationsDto {
            enabled: notifications.enabled,
            per_rule: b.per_rule,
            overall: b.overall,
            window_secs: b.window.as_secs_f64(),
            quiet_hours: b.quiet_hours.map(|q| (hhmm(q.from), hhmm(q.to))),
            record_only: b.record_only.iter().map(|s| s.wire()).collect(),
            digest: b.digest,
            status,
        },
    }
}
