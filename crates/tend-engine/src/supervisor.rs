//! The supervisor: carries out the fleet's actions on real processes. One task per spawned incarnation
//! starts it, pumps its output (counting lines and requests, watching for a readiness line), runs the
//! readiness probe, and reports `Spawned`, `Ready`/`NotReady` and `Exited` back to the engine. It decides
//! nothing: whether to restart, recycle or give up is the fleet's call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use tend_collect::readiness::{self, Probe};
use tend_collect::signal::{self, Target};
use tend_collect::spawn::{self, SpawnSpec};
use tend_core::fleet::{ExitInfo, Input};
use tend_core::model::{ProcessId, WorkerId};

use crate::config::ReadinessCheck;
use crate::convert::PoolRuntime;
use crate::engine::Msg;

/// Running totals of one incarnation's output, read by the engine at each sweep.
#[derive(Debug)]
pub struct Counters {
    lines: AtomicU64,
    requests: AtomicU64,
    counts_requests: bool,
}

impl Counters {
    pub fn new(counts_requests: bool) -> Self {
        Counters { lines: AtomicU64::new(0), requests: AtomicU64::new(0), counts_requests }
    }
    pub fn lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }
    /// None when the pool does not count requests from output.
    pub fn requests(&self) -> Option<u64> {
        self.counts_requests.then(|| self.requests.load(Ordering::Relaxed))
    }
}

pub(crate) struct Job {
    pub worker: WorkerId,
    pub incarnation: u32,
    pub slot: u32,
    pub pool: Arc<PoolRuntime>,
    pub exe: std::path::PathBuf,
    pub counters: Arc<Counters>,
    pub tx: mpsc::UnboundedSender<Msg>,
}

fn report(tx: &mpsc::UnboundedSender<Msg>, input: Input) {
    // The engine may already be gone at the very end of a shutdown; nothing is left to tell.
    let _ = tx.send(Msg::Observe(input));
}

pub(crate) fn launch(job: Job) {
    tokio::spawn(run(job));
}

async fn run(job: Job) {
    let Job { worker, incarnation, slot, pool, exe, counters, tx } = job;
    let Some(cfg) = pool.spawn.as_ref() else { return };
    let mut env: Vec<(String, String)> = cfg.env_for_slot(slot).into_iter().collect();
    env.push(("TEND_WORKER_ID".into(), worker.to_string()));
    env.push(("TEND_POOL".into(), pool.spec.name.clone()));
    env.push(("TEND_SLOT".into(), slot.to_string()));
    env.push(("TEND_INCARNATION".into(), incarnation.to_string()));
    let spec = SpawnSpec {
        command: cfg
            .argv_for_slot(&exe, slot)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        env,
        cwd: cfg.cwd.clone(),
    };
    let (line_tx, mut line_rx) = mpsc::unbounded_channel();
    let mut child = match spawn::spawn(&spec, line_tx).await {
        Ok(c) => c,
        Err(e) => {
            warn!(worker = %worker, error = %e, "spawn failed");
            report(&tx, Input::SpawnFailed { worker, incarnation, error: e.to_string() });
            return;
        }
    };
    let id = child.id();
    debug!(worker = %worker, pid = id.pid, "spawned");
    report(&tx, Input::Spawned { worker: worker.clone(), incarnation, process: id });

    // Output pump: count lines and requests, and signal a readiness line.
    let log_pattern = match &pool.readiness {
        ReadinessCheck::Log(p) => Some(p.regex().clone()),
        _ => None,
    };
    let (seen_tx, seen_rx) = watch::channel(false);
    let request_pattern = pool.request_pattern.clone();
    let pump_counters = counters.clone();
    tokio::spawn(async move {
        while let Some(line) = line_rx.recv().await {
            pump_counters.lines.fetch_add(1, Ordering::Relaxed);
            if let Some(p) = &request_pattern
                && p.is_match(&line.text)
            {
                pump_counters.requests.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(p) = &log_pattern
                && !*seen_tx.borrow()
                && p.is_match(&line.text)
            {
                let _ = seen_tx.send(true);
            }
        }
    });

    // Readiness, bounded by the pool's deadline (the fleet times the worker out on its own clock too).
    let alive = Arc::new(AtomicBool::new(true));
    let probe_alive = alive.clone();
    let probe_tx = tx.clone();
    let probe_worker = worker.clone();
    let check = pool.readiness.clone();
    let deadline = pool.readiness_timeout + Duration::from_secs(1);
    let probe_task = tokio::spawn(async move {
        let result = tokio::time::timeout(deadline, probe(check, seen_rx, probe_alive)).await;
        let input = match result {
            Ok(Ok(how)) => Input::Ready { worker: probe_worker, incarnation, how },
            Ok(Err(error)) => Input::NotReady { worker: probe_worker, incarnation, error },
            // The fleet's own deadline turns this into TIMEOUT; nothing to add.
            Err(_) => return,
        };
        report(&probe_tx, input);
    });

    let exit = child.wait().await;
    alive.store(false, Ordering::Relaxed);
    probe_task.abort();
    debug!(worker = %worker, pid = id.pid, %exit, "exited");
    report(
        &tx,
        Input::Exited { worker, incarnation, exit: ExitInfo { code: exit.code, signal: exit.signal } },
    );
}

async fn probe(
    check: ReadinessCheck,
    mut seen: watch::Receiver<bool>,
    alive: Arc<AtomicBool>,
) -> Result<String, String> {
    let probe = match check {
        ReadinessCheck::Log(p) => {
            return match seen.wait_for(|s| *s).await {
                Ok(_) => Ok(format!("log line matched /{}/", p.as_str())),
                Err(_) => Err("output closed before a line matched".into()),
            };
        }
        ReadinessCheck::StartSecs(d) => Probe::Alive(d),
        ReadinessCheck::Tcp(addr) => Probe::Tcp(addr),
        ReadinessCheck::TcpPort(port) => Probe::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
        ReadinessCheck::Http(url) => Probe::Http(url),
    };
    readiness::wait_ready(&probe, None, move || alive.load(Ordering::Relaxed)).await
}

/// SIGTERM, grace, SIGKILL — in the background. The exit itself is reported by the incarnation's own
/// task (spawned) or by the sampler and discovery (attached).
pub(crate) fn terminate(
    worker: WorkerId,
    incarnation: u32,
    process: ProcessId,
    grace: Duration,
    group: bool,
) {
    tokio::spawn(async move {
        let target = if group { Target::Group } else { Target::Process };
        match signal::terminate(process, target, grace, signal::gone(process)).await {
            Ok(how) => debug!(worker = %worker, incarnation, pid = process.pid, %how, "terminated"),
            Err(e) => warn!(worker = %worker, pid = process.pid, error = %e, "terminate failed"),
        }
    });
}
