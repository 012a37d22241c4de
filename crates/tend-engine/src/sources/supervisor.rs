//! The supervisor: carries out the fleet's actions on real processes. One task per spawned incarnation
//! starts it, pumps its output (counting lines and requests, watching for a readiness line), runs the
//! readiness probe, and reports `Spawned`, `Ready`/`NotReady` and `Exited` back to the engine. When the
//! worker exits, whatever is left in its process group is drained (SIGTERM, the pool's `stop_grace`,
//! SIGKILL) before the exit is reported, so a replacement never starts beside the old one's children.
//! It also runs the adoption task ([`adopt`]): Tend as a child subreaper, reaping what it adopts,
//! reporting processes that escaped their worker's group and stopping them when Tend stops. It decides
//! nothing: whether to restart, recycle or give up is the fleet's call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use tend_collect::readiness::{self, Probe};
use tend_collect::reaper::{self, Escaped, Reaper};
use tend_collect::signal::{self, Target};
use tend_collect::spawn::{self, SpawnSpec};
use tend_core::fleet::{ExitInfo, Input};
use tend_core::model::{ProcessId, WorkerId};

use crate::config::ReadinessCheck;
use crate::convert::PoolRuntime;
use crate::mailbox::{Mailbox, Msg};

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
    pub tx: Mailbox,
}

fn report(tx: &Mailbox, input: Input) {
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

    // The leader's exit, seen without reaping it: its zombie pins the group id while what is left of
    // the group (children it did not take with it) is drained, before the fleet hears of the exit and
    // starts a replacement.
    child.exited().await;
    alive.store(false, Ordering::Relaxed);
    probe_task.abort();
    match signal::drain_group(id, pool.spec.stop_grace).await {
        Ok(signal::Drain::Empty) => {}
        Ok(how @ signal::Drain::Terminated(_)) => {
            info!(worker = %worker, pid = id.pid, %how, "the worker's children outlived it")
        }
        Ok(how) => warn!(worker = %worker, pid = id.pid, %how, "the worker's children outlived it"),
        Err(e) => warn!(worker = %worker, pid = id.pid, error = %e, "cannot drain the worker's group"),
    }
    let exit = child.wait().await;
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

/// The adoption task's handle: stops the escaped processes at shutdown.
pub(crate) struct Adoption {
    stop: mpsc::UnboundedSender<(Duration, oneshot::Sender<()>)>,
}

impl Adoption {
    /// A last pass, then SIGTERM, `grace`, SIGKILL to every escaped process still running. Returns when
    /// they are gone (or after the grace and the kill wait).
    pub async fn shutdown(&self, grace: Duration) {
        let (done, rx) = oneshot::channel();
        if self.stop.send((grace, done)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// How often Tend's children are looked over besides on SIGCHLD.
const ADOPTION_PASS: Duration = Duration::from_secs(1);

/// Become a child subreaper and start the adoption task. None where the platform cannot (then a
/// process that leaves its worker's group is not caught; its worker's group is still drained).
pub(crate) fn adopt(tx: Mailbox) -> Option<Adoption> {
    match reaper::become_subreaper() {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            warn!(error = %e, "cannot become a child subreaper: processes that leave their worker's group are not caught");
            return None;
        }
    }
    let (stop, mut stop_rx) = mpsc::unbounded_channel::<(Duration, oneshot::Sender<()>)>();
    tokio::spawn(async move {
        let mut reaper = Reaper::new();
        let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
            .map_err(|e| warn!(error = %e, "no SIGCHLD stream; adopted processes are looked at every second"))
            .ok();
        let mut tick = tokio::time::interval(ADOPTION_PASS);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(()) = async {
                    match sigchld.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                } => {}
                req = stop_rx.recv() => {
                    let Some((grace, done)) = req else { return };
                    reaper = pass(reaper, &tx).await;
                    stop_escaped(reaper.escaped(), grace).await;
                    let _ = pass(reaper, &tx).await;
                    let _ = done.send(());
                    return;
                }
            }
            reaper = pass(reaper, &tx).await;
        }
    });
    Some(Adoption { stop })
}

/// One pass off the async threads; reports each newly escaped process to the fleet.
async fn pass(mut reaper: Reaper, tx: &Mailbox) -> Reaper {
    let (reaper, found) = match tokio::task::spawn_blocking(move || {
        let found = reaper.pass();
        (reaper, found)
    })
    .await
    {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "adoption pass failed");
            return Reaper::new();
        }
    };
    for e in found {
        let whose = match e.incarnation {
            Some(n) => format!("worker {} (incarnation {n})", e.worker),
            None => format!("worker {}", e.worker),
        };
        let detail = format!(
            "process {} ({}) left the process group of {whose} and outlived its parent; it will be stopped when Tend stops",
            e.id.pid, e.name
        );
        warn!(pid = e.id.pid, name = %e.name, worker = %e.worker, "a process escaped its worker's process group");
        report(
            tx,
            Input::Escaped {
                worker: WorkerId::new(e.worker),
                incarnation: e.incarnation,
                process: e.id,
                detail,
            },
        );
    }
    reaper
}

async fn stop_escaped(escaped: &[Escaped], grace: Duration) {
    let stops: Vec<_> = escaped
        .iter()
        .cloned()
        .map(|e| {
            tokio::spawn(async move {
                let target = if e.leads_group { Target::Group } else { Target::Process };
                let r = signal::terminate(e.id, target, grace, signal::gone(e.id)).await;
                if e.leads_group {
                    let _ = signal::drain_group(e.id, grace).await;
                }
                (e, r)
            })
        })
        .collect();
    for s in stops {
        match s.await {
            Ok((e, Ok(how))) => info!(pid = e.id.pid, name = %e.name, %how, "escaped process stopped"),
            Ok((e, Err(err))) => warn!(pid = e.id.pid, error = %err, "cannot stop an escaped process"),
            Err(_) => {}
        }
    }
}
