//! The engine's side of the history store: taps the sweeps, reports and events it sees into the store's
//! [`Recorder`] (never waiting: a full queue counts as a drop), turns the writer's health into the fleet's
//! `store` source status, and, at start, cleans up the spawned processes a crashed run left behind. It
//! never knows SQL and never decides anything about workers.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use tend_collect::signal::{self, Target};
use tend_core::fleet::{ErrorKind, Fleet, Input, Report};
use tend_core::model::{Metrics, ProcessId, WorkerId};
use tend_core::time::Timestamp;
use tend_store::lock::{DirLock, LockError};
use tend_store::record::Problem;
use tend_store::{Recorder, SampleRecord, StoreHandle, StoreStatus};

/// The fleet source name under which the store's health shows (`/api/v1/health` → `degraded.store`).
pub const SOURCE: &str = "store";
/// How long after the last dropped record the store still shows degraded.
const DROP_HOLD: Duration = Duration::from_secs(10);

/// Record one sweep's readings: (worker, incarnation, process, metrics, requests), with each worker's
/// state as the fleet has it after the sweep.
/// One reading as the history records it: worker, incarnation, process (none for containers), metrics,
/// requests.
pub(crate) type Tap = (WorkerId, u32, Option<ProcessId>, Metrics, Option<u64>);

pub(crate) fn record_sweep(
    recorder: &Recorder,
    fleet: &Fleet,
    pool: &str,
    at: Timestamp,
    readings: Vec<Tap>,
) {
    let batch = readings
        .into_iter()
        .map(|(worker, incarnation, process, metrics, requests)| {
            let state = fleet.worker(worker.as_str()).map(|w| w.state().as_str());
            SampleRecord { worker, pool: pool.to_owned(), at, incarnation, process, state, metrics, requests }
        })
        .collect();
    recorder.samples(batch);
}

/// Record what an orchestrator reported that the store keeps: metrics as a sample, errors and warnings.
pub(crate) fn record_report(recorder: &Recorder, fleet: &Fleet, report: &Report, at: Timestamp) {
    match report {
        Report::Metrics { worker, metrics } => {
            let Some(w) = fleet.worker(worker.as_str()) else { return };
            recorder.sample(SampleRecord {
                worker: worker.clone(),
                pool: w.pool.clone(),
                at,
                incarnation: w.current.as_ref().map(|c| c.n).unwrap_or(0),
                process: w.process(),
                state: Some(w.state().as_str()),
                metrics: metrics.clone(),
                requests: None,
            });
        }
        Report::Error { worker, kind, message } => {
            recorder.problem(Problem {
                at,
                level: match kind {
                    ErrorKind::Error => "error",
                    ErrorKind::Warning => "warning",
                },
                worker: Some(worker.0.clone()),
                pool: fleet.worker(worker.as_str()).map(|w| w.pool.clone()),
                source: Some("report".into()),
                message: message.clone(),
            });
        }
        _ => {}
    }
}

/// Turns the writer's health, the drop counter and the reopen counter into `SourceStatus` inputs, only on
/// change.
#[derive(Debug, Default)]
pub(crate) struct StoreWatch {
    reported: Option<String>,
    dropped: u64,
    last_drop: Option<Instant>,
    reopened: u64,
    last_reopen: Option<(Instant, String)>,
}

impl StoreWatch {
    pub fn check(&mut self, recorder: &Recorder) -> Option<Input> {
        let now = Instant::now();
        let dropped = recorder.dropped();
        if dropped > self.dropped {
            self.last_drop = Some(now);
        }
        let lost = dropped - self.dropped.min(dropped);
        self.dropped = dropped;
        let (reopened, why) = recorder.reopened();
        if reopened > self.reopened {
            self.reopened = reopened;
            self.last_reopen = Some((now, why.unwrap_or_default()));
        }
        let recent_reopen =
            self.last_reopen.as_ref().filter(|(t, _)| now.duration_since(*t) < DROP_HOLD).map(|(_, w)| w);
        let detail = match recorder.status() {
            StoreStatus::Degraded(e) => {
                Some(format!("history not written: {e} ({dropped} records dropped so far)"))
            }
            // The file was deleted or replaced: history goes on in a fresh file, the old one is lost.
            StoreStatus::Ok if recent_reopen.is_some() => {
                recent_reopen.map(|why| format!("history database replaced: {why}"))
            }
            StoreStatus::Ok if self.last_drop.is_some_and(|t| now.duration_since(t) < DROP_HOLD) => {
                Some(format!("history writer behind: {dropped} records dropped so far (+{lost})"))
            }
            StoreStatus::Ok => None,
        };
        // Only a change of kind is news; the running count alone is not.
        let kind = |d: &Option<String>| d.as_ref().map(|s| s.split(':').next().unwrap_or("").to_owned());
        if kind(&detail) == kind(&self.reported) {
            return None;
        }
        self.reported = detail.clone();
        Some(match detail {
            Some(detail) => Input::SourceStatus { source: SOURCE.into(), degraded: true, detail },
            None => Input::SourceStatus {
                source: SOURCE.into(),
                degraded: false,
                detail: "history written again".into(),
            },
        })
    }
}

/// Spawned workers of an earlier run that was killed (kill -9, crash) and could not stop them: every one
/// still alive with the same pid and start time has its process group stopped (SIGTERM, `grace`,
/// SIGKILL), and what is left of the group after it is drained. Runs in its own task; marks each as
/// ended in the store.
///
/// Only ever the workers of a dead Tend: the writer opens the database only while it holds the data
/// directory's lock, and this runs only once the database is open, so the Tend that recorded any earlier
/// run has released the lock — it exited, or was killed and the kernel released it.
pub(crate) fn clean_orphans(store: StoreHandle, grace: Duration, now: Timestamp) {
    tokio::spawn(async move {
        let Some(db) = store.wait_open(Duration::from_secs(5)).await else { return };
        let run = match db.current_run().await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "cannot look for orphaned workers");
                return;
            }
        };
        let left = match db.unfinished_processes(run).await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "cannot look for orphaned workers");
                return;
            }
        };
        let mut stops = Vec::new();
        for p in left {
            let alive = tend_collect::process_id(p.process.pid).is_ok_and(|id| id == p.process);
            if alive {
                warn!(worker = %p.worker, pool = %p.pool, pid = p.process.pid,
                    "a spawned worker of an earlier run is still running: stopping its process group");
                stops.push(tokio::spawn(async move {
                    let r = signal::terminate(p.process, Target::Group, grace, signal::gone(p.process)).await;
                    if let Err(e) = signal::drain_group(p.process, grace).await {
                        warn!(worker = %p.worker, pid = p.process.pid, error = %e, "cannot drain the orphan's group");
                    }
                    (p, r)
                }));
            } else if let Err(e) = db.mark_process_ended(p.process, now).await {
                warn!(error = %format!("{e:#}"), "cannot update the store");
            }
        }
        for s in stops {
            if let Ok((p, r)) = s.await {
                match r {
                    Ok(how) => {
                        info!(worker = %p.worker, pid = p.process.pid, %how, "orphaned worker stopped")
                    }
                    Err(e) => {
                        warn!(worker = %p.worker, pid = p.process.pid, error = %e, "cannot stop orphan")
                    }
                }
                let _ = db.mark_process_ended(p.process, now).await;
            }
        }
    });
}

/// The store's retention from the config's `[store] retention`.
pub(crate) fn retention(r: &crate::config::RetentionConfig) -> tend_store::Retention {
    tend_store::Retention {
        raw: r.raw,
        minute: r.minute,
        hour: r.hour,
        max_size_bytes: r.max_size_mb.map(|mb| mb.saturating_mul(1024 * 1024)),
    }
}

/// Start the store's writer on `[store] data_dir` (or `TEND_DATA_DIR`, `--data-dir`, all applied to the
/// config before this), else the platform's data directory. None when history is off or there is no
/// directory to use. An error when another Tend holds the directory's lock: two Tends on one directory
/// would write one database and take each other's workers for orphans. A directory that cannot be locked
/// for another reason (missing, read-only) is left to the writer, which shows it as degraded and retries
/// (taking the lock before it opens anything).
pub(crate) fn open(
    config: &crate::config::Config,
    no_history: bool,
    retention: tend_store::Retention,
    clock: std::sync::Arc<dyn tend_core::time::Clock>,
) -> anyhow::Result<Option<StoreHandle>> {
    if no_history {
        return Ok(None);
    }
    let Some(dir) = config.store.data_dir.clone().or_else(tend_store::default_data_dir) else {
        warn!("no data directory (set [store] data_dir or TEND_DATA_DIR): history is off");
        return Ok(None);
    };
    let lock = match DirLock::acquire(&dir) {
        Ok(lock) => Some(std::sync::Arc::new(lock)),
        Err(e @ LockError::Held { .. }) => return Err(e.into()),
        Err(e) => {
            warn!(error = %e, "data directory not usable yet; the history store will retry");
            None
        }
    };
    info!(dir = %dir.display(), "history store");
    let mut writer = tend_store::WriterConfig::new(dir, retention);
    writer.lock = lock;
    Ok(Some(tend_store::writer::spawn(writer, clock)))
}

/// The alerts an earlier run left open, once the store is open (waiting at most 2 s; none on failure).
pub(crate) async fn open_alerts(store: &StoreHandle) -> Vec<tend_core::rules::Alert> {
    let Some(db) = store.wait_open(Duration::from_secs(2)).await else { return Vec::new() };
    match db.open_alerts().await {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %format!("{e:#}"), "cannot read the open alerts of the last run");
            Vec::new()
        }
    }
}
