//! Wire types: what the HTTP API, the SSE stream and the desktop shell hand to the UI. Core types stay
//! free to change; these change only with the API. Built inside the engine task from the fleet.

use std::collections::BTreeMap;

use serde::Serialize;
use tend_core::fleet::{Fleet, Incarnation, Worker};
use tend_core::lifecycle::{State, Transition};
use tend_core::model::{ProcessId, Sample, Source};
use tend_core::recycle::RecycleReason;
use tend_core::rules::Alert;
use tend_core::time::Timestamp;

#[derive(Clone, Debug, Serialize, ts_rs::TS)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, ts_rs::TS)]
pub struct LastEvent {
    pub at: Timestamp,
    pub state: State,
    pub cause: String,
}

#[derive(Clone, Debug, Serialize, ts_rs::TS)]
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

#[derive(Clone, Debug, Serialize, ts_rs::TS)]
pub struct WorkerDetailDto {
    #[serde(flatten)]
    pub worker: WorkerDto,
    /// Oldest first: ended incarnations, then the serving one, a starting replacement, draining ones.
    pub incarnations: Vec<IncarnationDto>,
    pub recent_samples: Vec<Sample>,
    pub alerts: Vec<Alert>,
}

#[derive(Clone, Debug, Serialize, ts_rs::TS)]
pub struct SelfUsage {
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
}

#[derive(Clone, Debug, Serialize, ts_rs::TS)]
pub struct HealthDto {
    /// "ok", "degraded" (a source is failing) or "stopping".
    pub status: &'static str,
    pub version: &'static str,
    pub uptime_secs: f64,
    pub degraded: BTreeMap<String, String>,
    pub workers: usize,
    pub by_state: BTreeMap<State, usize>,
    pub alerts_firing: usize,
    pub config: Option<String>,
    pub demo: bool,
    pub tend: SelfUsage,
}

fn inc_dto(i: &Incarnation) -> IncarnationDto {
    IncarnationDto {
        incarnation: i.n,
        process: i.process,
        state: i.state(),
        started: i.lifecycle.created(),
        transitions: i.lifecycle.history().to_vec(),
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
        .map(|t| LastEvent { at: t.at, state: t.to, cause: t.cause.clone() });
    let errors = c.map(|c| c.errors).unwrap_or(0);
    let reg = w.reports.registration.as_ref();
    WorkerDto {
        id: w.id.to_string(),
        pool: w.pool.clone(),
        source: w.source,
        slot: w.slot,
        pid: c.and_then(|c| c.process).map(|p| p.pid).or(reg.and_then(|r| r.pid)),
        process: c.and_then(|c| c.process),
        state: w.state(),
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
        recycling: w.recycle.as_ref().map(|r| r.reason),
        held: w.held.clone().or_else(|| w.stopped.then(|| "stopped by operator".to_owned())),
        last_event,
        last_sample_at: c.and_then(|c| c.last_at),
        task_id: reg.and_then(|r| r.task_id.clone()),
        // Container workers: the serving container's name; reported ones: what the registration said.
        container: c
            .and_then(|c| c.container.as_ref().map(|r| r.name.clone()))
            .or_else(|| reg.and_then(|r| r.container.clone())),
        labels: reg.map(|r| r.labels.clone()).unwrap_or_default(),
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
    let alerts = fleet.alerts().alerts().filter(|a| a.subject == w.id.as_str()).cloned().collect();
    WorkerDetailDto {
        worker: worker_dto(fleet, w, now),
        incarnations,
        recent_samples: w.recent.iter().cloned().collect(),
        alerts,
    }
}

/// What the Settings screen shows (read from the config and the running notifier).
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
pub struct SettingsDto {
    /// The config file, None when running the embedded demo.
    pub config: Option<String>,
    /// Where the history database lives; None when history is off.
    pub data_dir: Option<String>,
    pub retention: RetentionDto,
    pub notifications: NotificationsDto,
}

#[derive(Clone, Debug, Serialize, ts_rs::TS)]
pub struct RetentionDto {
    pub raw_secs: f64,
    pub minute_secs: f64,
    pub hour_secs: f64,
    pub max_size_mb: Option<u64>,
}

#[derive(Clone, Debug, Serialize, ts_rs::TS)]
pub struct NotificationsDto {
    pub enabled: bool,
    pub per_rule: u32,
    pub overall: u32,
    pub window_secs: f64,
    /// Local "HH:MM" times, from and to.
    pub quiet_hours: Option<(String, String)>,
    pub record_only: Vec<tend_core::rules::Severity>,
    pub digest: bool,
    /// The running notifier's counters; None when this Tend shows no notifications (`tend serve`).
    pub status: Option<crate::notify::NotifyStatus>,
}

pub fn settings(
    config: Option<&std::path::Path>,
    data_dir: Option<&std::path::Path>,
    retention: &tend_store::Retention,
    notifications: &crate::config::NotificationsConfig,
    status: Option<crate::notify::NotifyStatus>,
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
            record_only: b.record_only.clone(),
            digest: b.digest,
            status,
        },
    }
}

/// The TypeScript bindings of the wire types live in `ui/src/generated/` (committed). This test
/// regenerates them into a temp dir and fails when the committed ones differ. To regenerate:
/// `TEND_UPDATE_BINDINGS=1 cargo test -p tend-engine --lib dto::bindings`.
#[cfg(test)]
mod bindings {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use tend_core::Event;
    use tend_core::fleet::PoolMetrics;
    use ts_rs::{Config, TS};

    use super::*;

    fn export(dir: &Path) {
        // serde_json writes u64 as a plain JSON number: `number`, not `bigint`.
        let cfg = Config::new().with_large_int("number".to_owned()).with_out_dir(dir);
        WorkerDto::export_all(&cfg).expect("export WorkerDto");
        WorkerDetailDto::export_all(&cfg).expect("export WorkerDetailDto");
        HealthDto::export_all(&cfg).expect("export HealthDto");
        PoolMetrics::export_all(&cfg).expect("export PoolMetrics");
        Event::export_all(&cfg).expect("export Event");
        Alert::export_all(&cfg).expect("export Alert");
        SettingsDto::export_all(&cfg).expect("export SettingsDto");
    }

    fn read_dir(dir: &Path) -> BTreeMap<String, String> {
        let Ok(entries) = std::fs::read_dir(dir) else { return BTreeMap::new() };
        entries
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "ts"))
            .map(|p| {
                let name = p.file_name().expect("file name").to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).expect("read binding"))
            })
            .collect()
    }

    #[test]
    fn ts_bindings_are_fresh() {
        let committed: PathBuf =
            [env!("CARGO_MANIFEST_DIR"), "..", "..", "ui", "src", "generated"].iter().collect();
        if std::env::var_os("TEND_UPDATE_BINDINGS").is_some() {
            for name in read_dir(&committed).keys() {
                std::fs::remove_file(committed.join(name)).expect("remove stale binding");
            }
            export(&committed);
            return;
        }
        let tmp = tempfile::tempdir().expect("temp dir");
        export(tmp.path());
        let fresh = read_dir(tmp.path());
        let old = read_dir(&committed);
        assert!(!fresh.is_empty(), "no bindings generated");
        for (name, text) in &fresh {
            assert_eq!(
                old.get(name),
                Some(text),
                "ui/src/generated/{name} is stale or missing; regenerate with \
                 `TEND_UPDATE_BINDINGS=1 cargo test -p tend-engine --lib dto::bindings`"
            );
        }
        for name in old.keys() {
            assert!(fresh.contains_key(name), "ui/src/generated/{name} is no longer generated; delete it");
        }
    }
}
