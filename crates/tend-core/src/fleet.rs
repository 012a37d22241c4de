//! The fleet: every pool and worker Tend knows, and the one place where decisions are made. It takes
//! observations (spawned, ready, exited, samples, discovery listings, operator commands) with the time
//! they were seen, and returns events and actions. It never performs an action itself and never reads
//! the clock, so every scenario is a plain sequence of calls in the tests below.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventKind};
use crate::lifecycle::{Lifecycle, State, Transition, TransitionError};
use crate::model::{Metrics, ProcessId, Sample, Source, WorkerId};
use crate::recycle::{RecyclePolicy, RecycleReason, StormBreaker, Usage, seed};
use crate::rules::{Alert, AlertBook, AlertState, Condition, Reading, Rule, Scope, Severity};
use crate::time::Timestamp;

mod container;
mod report;
pub use container::{
    ContainerChange, ContainerRecycle, ContainerRun, ContainerSeen, ContainerStatus, DockerPool, Health,
    ORPHAN_RULE, OWNER_PID_LABEL, Orphan, POOL_LABEL, WORKER_LABEL, source_name as docker_source_name,
};
pub use report::{ERROR_LOG, ErrorKind, ErrorRecord, Registration, Report, ReportLog, metrics_from_named};

/// How long an ended worker that no slot will reuse (attached, reported) stays listed.
pub const CLEANED_RETENTION: Duration = Duration::from_secs(300);
/// Ended incarnations remembered per worker, for its timeline.
pub const PAST_INCARNATIONS: usize = 10;
/// Name of the built-in rule raised when the storm breaker trips.
pub const STORM_RULE: &str = "restart-storm";

/// How long a restored alert waits for its subject (a worker found by discovery or registering again).
pub const RESTORE_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    Always,
    OnFailure,
    Never,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum PoolKind {
    Spawn { size: u32, restart: Restart },
    Attach,
    Reported,
    Docker(DockerPool),
}

impl PoolKind {
    pub fn source(&self) -> Source {
        match self {
            PoolKind::Spawn { .. } => Source::Spawned,
            PoolKind::Attach => Source::Attached,
            PoolKind::Reported => Source::Reported,
            PoolKind::Docker(_) => Source::Container,
        }
    }
}

/// A pool as the fleet needs it (the runtime builds this from the config).
#[derive(Clone, Debug, PartialEq)]
pub struct PoolSpec {
    pub name: String,
    pub kind: PoolKind,
    /// Sampling interval; None = monitoring disabled.
    pub interval: Option<Duration>,
    /// Samples kept in memory per worker.
    pub history: usize,
    pub readiness_timeout: Duration,
    pub stale_after: Option<Duration>,
    pub task_timeout: Option<Duration>,
    pub busy_cpu_percent: Option<f64>,
    pub stop_grace: Duration,
    pub recycle: RecyclePolicy,
    pub rules: Vec<Rule>,
}

impl PoolSpec {
    /// A spawn pool with defaults, for tests and the demo.
    pub fn spawn(name: &str, size: u32) -> PoolSpec {
        PoolSpec {
            name: name.to_owned(),
            kind: PoolKind::Spawn { size, restart: Restart::Always },
            interval: Some(Duration::from_secs(1)),
            history: 900,
            readiness_timeout: Duration::from_secs(30),
            stale_after: None,
            task_timeout: None,
            busy_cpu_percent: None,
            stop_grace: Duration::from_secs(5),
            recycle: RecyclePolicy::default(),
            rules: Vec::new(),
        }
    }
}

/// What the runtime must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start incarnation `incarnation` of a spawned slot, then report `Spawned` or `SpawnFailed`, run the
    /// pool's readiness probe (`Ready` / `NotReady`) and report `Exited` when it ends.
    Spawn { worker: WorkerId, pool: String, slot: u32, incarnation: u32 },
    /// SIGTERM (the process group when `group`), wait `grace`, then SIGKILL. Only after checking the
    /// process is still the one named (pid and start time).
    Terminate { worker: WorkerId, incarnation: u32, process: ProcessId, grace: Duration, group: bool },
    /// `docker restart` the container of incarnation `incarnation` (stop with `grace`, start again); the
    /// engine's events report the die and the start, a failure comes back as `ContainerActionFailed`.
    ContainerRestart { worker: WorkerId, pool: String, incarnation: u32, container: String, grace: Duration },
    /// Create a copy of container `from` (same image, command, env, labels, limits; `tend.worker` label
    /// added), start it, and report `ContainerCreated` for incarnation `incarnation` (or a failure).
    ContainerRecreate { worker: WorkerId, pool: String, incarnation: u32, from: String },
    /// Stop the container (SIGTERM, `grace`, SIGKILL) and, when `remove`, remove it.
    ContainerStop {
        worker: WorkerId,
        pool: String,
        incarnation: u32,
        container: String,
        grace: Duration,
        remove: bool,
    },
    /// Remove containers that are not workers (orphans), forcibly.
    RemoveOrphans { pool: String, containers: Vec<String> },
}

/// One reading of one incarnation within a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub worker: WorkerId,
    pub incarnation: u32,
    pub metrics: Metrics,
    /// Running totals since the incarnation started, when the source counts them.
    pub log_lines: Option<u64>,
    pub requests: Option<u64>,
}

/// How a process ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(s)) => format!("killed by signal {s} ({})", signal_name(s)),
            (None, None) => "exited (status unknown)".to_owned(),
        }
    }
}

pub fn signal_name(s: i32) -> &'static str {
    match s {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "signal",
    }
}

/// Observations, in the order they were seen.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Time passed: deadlines, TTLs, staleness, `for` durations, scheduled restarts.
    Tick,
    Spawned {
        worker: WorkerId,
        incarnation: u32,
        process: ProcessId,
    },
    SpawnFailed {
        worker: WorkerId,
        incarnation: u32,
        error: String,
    },
    Ready {
        worker: WorkerId,
        incarnation: u32,
        how: String,
    },
    NotReady {
        worker: WorkerId,
        incarnation: u32,
        error: String,
    },
    Exited {
        worker: WorkerId,
        incarnation: u32,
        exit: ExitInfo,
    },
    /// A process Tend does not own is gone (or its pid now belongs to another process).
    Gone {
        worker: WorkerId,
        incarnation: u32,
    },
    /// One sampling sweep of a pool.
    Samples {
        pool: String,
        readings: Vec<Observed>,
    },
    /// The complete list of processes matching an attach pool's selector right now.
    Discovered {
        pool: String,
        found: Vec<(ProcessId, String)>,
    },
    /// The complete list of a docker pool's containers right now (reconciles missed engine events).
    Containers {
        pool: String,
        found: Vec<ContainerSeen>,
    },
    /// One event of the engine about a container of a docker pool.
    Container {
        pool: String,
        seen: ContainerSeen,
        change: ContainerChange,
    },
    /// A recreate created (and started) its container.
    ContainerCreated {
        worker: WorkerId,
        incarnation: u32,
        container: ContainerRun,
    },
    /// A container action (restart, recreate, stop) failed.
    ContainerActionFailed {
        worker: WorkerId,
        incarnation: u32,
        error: String,
    },
    /// Containers of Tend's pools whose owner is gone, on the engine a docker pool watches.
    Orphans {
        pool: String,
        orphans: Vec<Orphan>,
    },
    /// A source (the /proc reader, a Docker engine, the store) went away or came back.
    SourceStatus {
        source: String,
        degraded: bool,
        detail: String,
    },
    /// A process left its worker's process group (a daemon: `setsid`, double fork) and was found
    /// re-parented to Tend. The worker is the one its environment names (`TEND_WORKER_ID`).
    Escaped {
        worker: WorkerId,
        incarnation: Option<u32>,
        process: ProcessId,
        detail: String,
    },
}

/// An operator's command that was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("no worker with id {0:?}")]
    UnknownWorker(String),
    #[error("worker {0} is already being recycled ({1})")]
    AlreadyRecycling(String, RecycleReason),
    #[error("Tend is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("no pool named {0:?}")]
    UnknownPool(String),
    #[error("pool {0} does not take reported workers (source {src})", src = source_name(*.1))]
    NotReportedPool(String, Source),
    #[error("worker {0} is not a reported worker (source {src})", src = source_name(*.1))]
    NotReported(String, Source),
    #[error("worker {0} is already registered in pool {1}")]
    AlreadyRegistered(String, String),
    #[error("worker {0} has ended: register it again")]
    Ended(String),
    #[error("worker {0} is not a container")]
    NotContainer(String),
}

fn source_name(s: Source) -> &'static str {
    match s {
        Source::Spawned => "spawned",
        Source::Attached => "attached",
        Source::Container => "container",
        Source::Reported => "reported",
    }
}

/// Events and actions produced by one call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    pub events: Vec<Event>,
    pub actions: Vec<Action>,
}

/// Why Tend itself is ending an incarnation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Ending {
    Drain(String),
    Kill(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Incarnation {
    pub n: u32,
    pub process: Option<ProcessId>,
    pub lifecycle: Lifecycle,
    pub requests: u64,
    pub log_lines: u64,
    pub errors: u64,
    pub warnings: u64,
    pub last: Option<Metrics>,
    pub last_at: Option<Timestamp>,
    pub ending: Option<Ending>,
    /// The container this incarnation runs in (docker pools).
    pub container: Option<ContainerRun>,
    /// The INITIALIZING transition has been published (spawned incarnations wait for their pid).
    announced: bool,
    /// When a spawned incarnation's process started: its readiness deadline counts from here, not from
    /// the request (spawns may wait in the engine's rate-limited queue first).
    spawned_at: Option<Timestamp>,
}

impl Incarnation {
    fn new(n: u32, process: Option<ProcessId>, at: Timestamp, cause: &str) -> Self {
        Incarnation {
            n,
            process,
            lifecycle: Lifecycle::new(at, cause),
            requests: 0,
            log_lines: 0,
            errors: 0,
            warnings: 0,
            last: None,
            last_at: None,
            ending: None,
            container: None,
            announced: false,
            spawned_at: None,
        }
    }
    pub fn state(&self) -> State {
        self.lifecycle.state()
    }
    pub fn uptime(&self, now: Timestamp) -> Duration {
        now.since(self.lifecycle.created())
    }
}

/// A recycle under way: what it replaces, kept for the `Recycled` record.
#[derive(Clone, Debug, PartialEq)]
pub struct RecycleInFlight {
    pub reason: RecycleReason,
    pub detail: String,
    pub started: Timestamp,
    pub old_process: Option<ProcessId>,
    pub old_uptime: Duration,
    pub old_requests: u64,
    pub old_metrics: Option<Metrics>,
}

impl RecycleInFlight {
    /// Remember what `old` was (if anything) at the moment the recycle starts.
    fn new(reason: RecycleReason, detail: String, old: Option<&Incarnation>, now: Timestamp) -> Self {
        RecycleInFlight {
            reason,
            detail,
            started: now,
            old_process: old.and_then(|c| c.process),
            old_uptime: old.map(|c| c.uptime(now)).unwrap_or_default(),
            old_requests: old.map(|c| c.requests).unwrap_or(0),
            old_metrics: old.and_then(|c| c.last.clone()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Worker {
    pub id: WorkerId,
    pub pool: String,
    pub source: Source,
    pub slot: Option<u32>,
    pub current: Option<Incarnation>,
    /// A replacement starting while `current` still serves.
    pub incoming: Option<Incarnation>,
    /// Old incarnations being drained.
    pub outgoing: Vec<Incarnation>,
    pub past: VecDeque<Incarnation>,
    pub recycle: Option<RecycleInFlight>,
    /// A planned recycle waiting for the pool's `max_unavailable` budget.
    pub queued: Option<(RecycleReason, String)>,
    pub respawn_at: Option<Timestamp>,
    /// Why the next replacement is needed (died or hung).
    respawn_reason: Option<(RecycleReason, String)>,
    /// Set when the storm breaker tripped: no more automatic restarts.
    pub held: Option<String>,
    /// Stopped by the operator: not replaced until recycled by hand.
    pub stopped: bool,
    pub restarts: u32,
    /// Requests, errors and warnings of incarnations that have ended (the live ones add their own).
    pub retired_totals: (u64, u64, u64),
    pub recent: VecDeque<Sample>,
    storm: StormBreaker,
    generation: u32,
    cleaned_at: Option<Timestamp>,
    /// What an orchestrator reported: its registration and the errors and warnings it recorded.
    pub reports: ReportLog,
}

impl Worker {
    fn new(id: WorkerId, pool: &str, source: Source, slot: Option<u32>) -> Self {
        Worker {
            id,
            pool: pool.to_owned(),
            source,
            slot,
            current: None,
            incoming: None,
            outgoing: Vec::new(),
            past: VecDeque::new(),
            recycle: None,
            queued: None,
            respawn_at: None,
            respawn_reason: None,
            held: None,
            stopped: false,
            restarts: 0,
            retired_totals: (0, 0, 0),
            recent: VecDeque::new(),
            storm: StormBreaker::default(),
            generation: 0,
            cleaned_at: None,
            reports: ReportLog::default(),
        }
    }

    /// The state an operator should see: the serving incarnation's, or — while a slot waits for its
    /// replacement or is held by the storm breaker — how the last one ended.
    pub fn state(&self) -> State {
        match &self.current {
            Some(c) if c.state() == State::Cleaned && (self.slot.is_some() || self.held.is_some()) => {
                c.lifecycle.outcome().unwrap_or(State::Cleaned)
            }
            Some(c) => c.state(),
            None => match self.past.back() {
                Some(p) if self.slot.is_some() => p.lifecycle.outcome().unwrap_or(State::Cleaned),
                Some(p) => p.state(),
                None => State::Initializing,
            },
        }
    }

    pub fn process(&self) -> Option<ProcessId> {
        self.current.as_ref().and_then(|c| c.process)
    }

    fn find(&mut self, n: u32) -> Option<(Role, &mut Incarnation)> {
        if let Some(c) = self.current.as_mut().filter(|c| c.n == n) {
            return Some((Role::Current, c));
        }
        if let Some(c) = self.incoming.as_mut().filter(|c| c.n == n) {
            return Some((Role::Incoming, c));
        }
        self.outgoing.iter_mut().find(|c| c.n == n).map(|c| (Role::Outgoing, c))
    }

    /// All incarnations whose process may still run.
    pub fn live_incarnations(&self) -> impl Iterator<Item = &Incarnation> {
        self.current
            .iter()
            .chain(self.incoming.iter())
            .chain(self.outgoing.iter())
            .filter(|i| i.state().is_live())
    }

    /// Requests, errors and warnings over every incarnation this worker has had.
    pub fn totals(&self) -> (u64, u64, u64) {
        let (mut r, mut e, mut w) = self.retired_totals;
        for i in self.current.iter().chain(self.incoming.iter()).chain(self.outgoing.iter()) {
            r += i.requests;
            e += i.errors;
            w += i.warnings;
        }
        (r, e, w)
    }

    fn retire(&mut self, inc: Incarnation) {
        self.retired_totals.0 += inc.requests;
        self.retired_totals.1 += inc.errors;
        self.retired_totals.2 += inc.warnings;
        self.past.push_back(inc);
        while self.past.len() > PAST_INCARNATIONS {
            self.past.pop_front();
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Role {
    Current,
    Incoming,
    Outgoing,
}

/// Per-pool counters that outlive individual workers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PoolTotals {
    pub completed: u64,
    pub failed: u64,
    pub task_time_sum_secs: f64,
    pub task_time_count: u64,
    pub recycles: BTreeMap<RecycleReason, u64>,
    /// Recycle times, for churn rules.
    #[serde(skip)]
    recent_recycles: VecDeque<Timestamp>,
}

impl PoolTotals {
    /// An incarnation ended: completed ones count with their task time, failed and timed-out ones as
    /// failures; anything else (terminated, still live) is not an outcome.
    fn count_end(&mut self, outcome: Option<State>, task_time: Option<Duration>) {
        match outcome {
            Some(State::Completed) => {
                self.completed += 1;
                if let Some(tt) = task_time {
                    self.task_time_sum_secs += tt.as_secs_f64();
                    self.task_time_count += 1;
                }
            }
            Some(State::Failed | State::Timeout) => self.failed += 1,
            _ => {}
        }
    }
}

/// A pool's aggregate figures (the seeds' pool metrics).
#[derive(Clone, Debug, Default, PartialEq, Serialize, ts_rs::TS)]
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
}

impl PoolMetrics {
    /// A pool-scope rule's reading: totals for amounts, averages for percentages.
    pub fn get(&self, metric: &str) -> Option<f64> {
        Some(match metric {
            "memory_bytes" => self.total_memory_bytes as f64,
            "memory_mb" => self.total_memory_bytes as f64 / (1024.0 * 1024.0),
            "cpu_percent" => self.average_cpu_percent,
            "workers" | "total_workers" => self.total_workers as f64,
            "active_workers" => self.active_workers as f64,
            "requests" => self.total_requests as f64,
            "errors" => self.total_errors as f64,
            "warnings" => self.total_warnings as f64,
            "restarts" => self.restarts as f64,
            "success_rate" => self.success_rate?,
            "task_time_secs" => self.average_task_time_secs?,
            _ => return None,
        })
    }
}

pub struct Fleet {
    pools: Vec<Arc<PoolSpec>>,
    totals: BTreeMap<String, PoolTotals>,
    workers: BTreeMap<WorkerId, Worker>,
    alerts: AlertBook,
    storm_rules: BTreeMap<String, Rule>,
    /// Alerts of the last run whose subject has not appeared yet, with when to give up on it.
    awaiting_subject: Vec<(Alert, Timestamp)>,
    degraded: BTreeMap<String, String>,
    /// Orphaned containers per docker pool, as last listed.
    orphans: BTreeMap<String, Vec<Orphan>>,
    seq: u64,
    shutting_down: bool,
    out: Output,
}

impl Fleet {
    pub fn new(pools: Vec<PoolSpec>) -> Self {
        let storm_rules = pools
            .iter()
            .map(|p| {
                let churn =
                    Condition::RestartChurn { max: p.recycle.storm_max, within: p.recycle.storm_window };
                // Flap detection off: the breaker itself is the answer to a flapping worker.
                let rule = Rule { severity: Severity::Critical, flap_max: 0, ..Rule::new(STORM_RULE, churn) };
                (p.name.clone(), rule)
            })
            .collect();
        let totals = pools.iter().map(|p| (p.name.clone(), PoolTotals::default())).collect();
        Fleet {
            pools: pools.into_iter().map(Arc::new).collect(),
            totals,
            workers: BTreeMap::new(),
            alerts: AlertBook::new(),
            storm_rules,
            awaiting_subject: Vec::new(),
            degraded: BTreeMap::new(),
            orphans: BTreeMap::new(),
            seq: 0,
            shutting_down: false,
            out: Output::default(),
        }
    }

    // ---- reading --------------------------------------------------------------------------------

    pub fn pools(&self) -> &[Arc<PoolSpec>] {
        &self.pools
    }
    pub fn pool(&self, name: &str) -> Option<&Arc<PoolSpec>> {
        self.pools.iter().find(|p| p.name == name)
    }
    pub fn workers(&self) -> impl Iterator<Item = &Worker> {
        self.workers.values()
    }
    pub fn worker(&self, id: &str) -> Option<&Worker> {
        self.workers.get(&WorkerId::new(id))
    }
    pub fn alerts(&self) -> &AlertBook {
        &self.alerts
    }
    pub fn degraded(&self) -> &BTreeMap<String, String> {
        &self.degraded
    }
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// The processes to sample for a pool: each worker's serving incarnation while it may run.
    pub fn watch_list(&self, pool: &str) -> Vec<(WorkerId, u32, ProcessId)> {
        self.workers
            .values()
            .filter(|w| w.pool == pool)
            .filter_map(|w| {
                let c = w.current.as_ref()?;
                (c.state().is_live()).then_some((w.id.clone(), c.n, c.process?))
            })
            .collect()
    }

    /// Every process Tend owns or watches right now (to keep discovery from attaching to them).
    pub fn owned_processes(&self) -> Vec<ProcessId> {
        self.workers
            .values()
            .filter(|w| w.source == Source::Spawned)
            .flat_map(|w| w.live_incarnations().filter_map(|i| i.process).collect::<Vec<_>>())
            .collect()
    }

    /// True once every spawned process has ended (shutdown can finish).
    pub fn all_stopped(&self) -> bool {
        self.workers
            .values()
            .filter(|w| w.source == Source::Spawned)
            .all(|w| w.live_incarnations().all(|i| i.process.is_none()))
    }

    pub fn pool_metrics(&self, pool: &str) -> Option<PoolMetrics> {
        let spec = self.pool(pool)?;
        let totals = self.totals.get(pool).cloned().unwrap_or_default();
        let mut m =
            PoolMetrics { pool: pool.to_owned(), source: Some(spec.kind.source()), ..Default::default() };
        let mut cpu_sum = 0.0;
        let mut cpu_n = 0u64;
        for w in self.workers.values().filter(|w| w.pool == pool) {
            m.total_workers += 1;
            let st = w.state();
            *m.by_state.entry(st).or_default() += 1;
            if st.is_live() {
                m.active_workers += 1;
            }
            m.restarts += u64::from(w.restarts);
            let (requests, errors, warnings) = w.totals();
            m.total_requests += requests;
            m.total_errors += errors;
            m.total_warnings += warnings;
            if let Some(c) = w.current.as_ref().filter(|c| c.state().is_live())
                && let Some(last) = &c.last
            {
                m.total_memory_bytes += last.memory_bytes.unwrap_or(0);
                if let Some(cpu) = last.cpu_percent {
                    cpu_sum += cpu;
                    cpu_n += 1;
                }
            }
        }
        m.average_cpu_percent = if cpu_n > 0 { cpu_sum / cpu_n as f64 } else { 0.0 };
        m.completed_workers = totals.completed;
        m.failed_workers = totals.failed;
        m.average_task_time_secs =
            (totals.task_time_count > 0).then(|| totals.task_time_sum_secs / totals.task_time_count as f64);
        let ended = totals.completed + totals.failed;
        m.success_rate = (ended > 0).then(|| totals.completed as f64 / ended as f64);
        m.recycles_by_reason = totals.recycles;
        Some(m)
    }

    // ---- commands -------------------------------------------------------------------------------

    /// Create the slots of every spawn pool and ask for their first incarnations.
    pub fn start(&mut self, now: Timestamp) -> Output {
        for spec in self.pools.clone() {
            if let PoolKind::Spawn { size, .. } = spec.kind {
                for slot in 0..size {
                    let id = WorkerId::new(format!("{}-{slot}", spec.name));
                    let w = Worker::new(id.clone(), &spec.name, Source::Spawned, Some(slot));
                    self.workers.insert(id.clone(), w);
                    self.emit(
                        now,
                        EventKind::WorkerAdded {
                            worker: id.clone(),
                            pool: spec.name.clone(),
                            source: Source::Spawned,
                        },
                    );
                    self.spawn_into(&id, false, now);
                }
            }
        }
        self.take()
    }

    /// Recycle a worker by hand (or for an API caller). Resets a tripped storm breaker.
    pub fn recycle(
        &mut self,
        id: &str,
        reason: RecycleReason,
        detail: &str,
        now: Timestamp,
    ) -> Result<Output, CommandError> {
        if self.shutting_down {
            return Err(CommandError::ShuttingDown);
        }
        let wid = WorkerId::new(id);
        let w = self.workers.get_mut(&wid).ok_or_else(|| CommandError::UnknownWorker(id.to_owned()))?;
        if let Some(r) = &w.recycle {
            return Err(CommandError::AlreadyRecycling(id.to_owned(), r.reason));
        }
        if reason == RecycleReason::Manual {
            w.storm.reset();
            w.stopped = false;
            if w.held.take().is_some() {
                let pool = w.pool.clone();
                self.observe_storm(&wid, &pool, 0, false, now);
            }
        }
        self.begin_recycle(&wid, reason, detail.to_owned(), now, true);
        Ok(self.take())
    }

    /// Stop a worker: drain it and do not replace it.
    pub fn stop(&mut self, id: &str, now: Timestamp) -> Result<Output, CommandError> {
        let wid = WorkerId::new(id);
        let w = self.workers.get_mut(&wid).ok_or_else(|| CommandError::UnknownWorker(id.to_owned()))?;
        w.stopped = true;
        w.queued = None;
        w.respawn_at = None;
        w.respawn_reason = None;
        if w.source == Source::Container {
            self.stop_containers(&wid, false, "stopped by operator", now);
        } else {
            self.end_all(&wid, "stopped by operator", now);
        }
        Ok(self.take())
    }

    /// Tend is stopping: drain every spawned process, replace nothing.
    pub fn shutdown(&mut self, now: Timestamp) -> Output {
        self.shutting_down = true;
        let ids: Vec<WorkerId> = self.workers.keys().cloned().collect();
        for id in ids {
            if let Some(w) = self.workers.get_mut(&id) {
                w.queued = None;
                w.respawn_at = None;
                w.respawn_reason = None;
                if w.source == Source::Spawned {
                    self.end_all(&id, "tend is stopping", now);
                }
            }
        }
        self.take()
    }

    /// Alerts an earlier run left open (pending, firing, flapping), read back from the history store.
    /// One whose subject (the pool, or a worker known now) exists is tracked again in its state, and the
    /// next readings confirm or clear it (no event: that state is already published). One whose subject
    /// is not known yet (an attached process or a container found by the first discoveries, a reporter
    /// registering again) waits up to [`RESTORE_WAIT`] for it. One whose rule or pool is no longer
    /// configured ends now, with an event, so it is not left open in the history. `restart-storm`
    /// alerts come back and are checked at once against the new run's breaker (which starts closed).
    /// Returns how many were restored now, and the events of those that ended.
    pub fn restore_alerts(&mut self, alerts: Vec<Alert>, now: Timestamp) -> (usize, Output) {
        let mut restored = 0;
        for alert in alerts {
            if self.rule_of(&alert).is_none() {
                let why = format!("rule {} is no longer configured for pool {}", alert.rule, alert.pool);
                if let Some(alert) = crate::rules::ended(&alert, &why, now) {
                    self.emit(now, EventKind::AlertChanged { alert });
                }
                continue;
            }
            let known = alert.subject == alert.pool
                || self.workers.contains_key(&WorkerId::new(alert.subject.as_str()));
            if !known {
                self.awaiting_subject.push((alert, now.plus(RESTORE_WAIT)));
            } else if self.restore_alert(alert, now) {
                restored += 1;
            }
        }
        (restored, self.take())
    }

    /// The rule an alert belongs to: one of its pool's, the pool's storm breaker, or its orphan count.
    fn rule_of(&self, alert: &Alert) -> Option<Rule> {
        if alert.rule == STORM_RULE {
            return self.storm_rules.get(&alert.pool).cloned();
        }
        if alert.rule == ORPHAN_RULE {
            return self.docker_pool(&alert.pool)?.orphans_max.map(container::orphan_rule);
        }
        let spec = self.pools.iter().find(|p| p.name == alert.pool)?;
        spec.rules.iter().find(|r| r.name == alert.rule).cloned()
    }

    fn restore_alert(&mut self, alert: Alert, now: Timestamp) -> bool {
        let Some(rule) = self.rule_of(&alert) else { return false };
        let (subject, pool) = (alert.subject.clone(), alert.pool.clone());
        if !self.alerts.restore(&rule, alert) {
            return false;
        }
        if rule.name == STORM_RULE {
            // The breaker is not kept across runs: this run's worker starts with it closed, so the
            // alert is checked against that (held = still tripped).
            let id = WorkerId::new(subject);
            let held = self.workers.get(&id).is_some_and(|w| w.held.is_some());
            self.observe_storm(&id, &pool, 0, held, now);
        }
        true
    }

    /// A worker just appeared: restore the alerts of the last run that were waiting for it.
    pub(crate) fn restore_awaiting(&mut self, id: &WorkerId, now: Timestamp) {
        if self.awaiting_subject.is_empty() {
            return;
        }
        let (mine, rest) = std::mem::take(&mut self.awaiting_subject)
            .into_iter()
            .partition(|(a, _)| a.subject == id.as_str());
        self.awaiting_subject = rest;
        for (alert, _) in mine {
            self.restore_alert(alert, now);
        }
    }

    /// Alerts whose subject did not come back in time end, with an event.
    fn expire_awaiting(&mut self, now: Timestamp) {
        if self.awaiting_subject.is_empty() {
            return;
        }
        let (expired, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.awaiting_subject).into_iter().partition(|(_, until)| now >= *until);
        self.awaiting_subject = rest;
        for (alert, _) in expired {
            let why = format!("{} was not found again after the restart", alert.subject);
            if let Some(alert) = crate::rules::ended(&alert, &why, now) {
                self.emit(now, EventKind::AlertChanged { alert });
            }
        }
    }

    pub fn acknowledge(&mut self, rule: &str, subject: &str, now: Timestamp) -> Option<Output> {
        let alert = self.alerts.acknowledge(rule, subject)?;
        self.emit(now, EventKind::AlertChanged { alert });
        Some(self.take())
    }

    pub fn silence(
        &mut self,
        rule: &str,
        subject: &str,
        until: Option<Timestamp>,
        now: Timestamp,
    ) -> Option<Output> {
        let alert = self.alerts.silence(rule, subject, until)?;
        self.emit(now, EventKind::AlertChanged { alert });
        Some(self.take())
    }

    // ---- observations ---------------------------------------------------------------------------

    pub fn observe(&mut self, input: Input, now: Timestamp) -> Output {
        match input {
            Input::Tick => self.tick(now),
            Input::Spawned { worker, incarnation, process } => {
                self.on_spawned(&worker, incarnation, process, now)
            }
            Input::SpawnFailed { worker, incarnation, error } => {
                self.on_spawn_failed(&worker, incarnation, &error, now)
            }
            Input::Ready { worker, incarnation, how } => self.on_ready(&worker, incarnation, &how, now),
            Input::NotReady { worker, incarnation, error } => {
                self.on_not_ready(&worker, incarnation, &error, now)
            }
            Input::Exited { worker, incarnation, exit } => {
                self.on_exit(&worker, incarnation, Some(exit), now)
            }
            Input::Gone { worker, incarnation } => self.on_exit(&worker, incarnation, None, now),
            Input::Samples { pool, readings } => self.on_samples(&pool, readings, now),
            Input::Discovered { pool, found } => self.on_discovered(&pool, found, now),
            Input::Containers { pool, found } => self.on_containers(&pool, found, now),
            Input::Container { pool, seen, change } => self.on_container(&pool, seen, change, now),
            Input::ContainerCreated { worker, incarnation, container } => {
                self.on_container_created(&worker, incarnation, container, now)
            }
            Input::ContainerActionFailed { worker, incarnation, error } => {
                self.on_container_action_failed(&worker, incarnation, &error, now)
            }
            Input::Orphans { pool, orphans } => self.on_orphans(&pool, orphans, now),
            Input::SourceStatus { source, degraded, detail } => {
                let changed = if degraded {
                    self.degraded.insert(source.clone(), detail.clone()).as_deref() != Some(detail.as_str())
                } else {
                    let was = self.degraded.remove(&source).is_some();
                    if was {
                        self.engine_back(&source, now);
                    }
                    was
                };
                if changed {
                    self.emit(now, EventKind::SourceStatus { source, degraded, detail });
                }
            }
            Input::Escaped { worker, incarnation, process, detail } => {
                self.on_escaped(worker, incarnation, process, detail, now)
            }
        }
        self.take()
    }

    /// The pid is known: publish INITIALIZING, stamped when the spawn was requested.
    fn on_spawned(&mut self, id: &WorkerId, n: u32, process: ProcessId, now: Timestamp) {
        let shutting = self.shutting_down;
        let Some(w) = self.workers.get_mut(id) else { return };
        let pool = w.pool.clone();
        let Some((_, inc)) = w.find(n) else { return };
        inc.process = Some(process);
        inc.announced = true;
        inc.spawned_at = Some(now);
        let kill = shutting || inc.ending.is_some();
        let first = inc.lifecycle.history()[0].clone();
        self.emit(
            first.at,
            EventKind::StateChanged {
                worker: id.clone(),
                pool: pool.clone(),
                incarnation: n,
                process: Some(process),
                from: None,
                to: State::Initializing,
                cause: format!("spawned pid {}", process.pid),
            },
        );
        if kill {
            let grace = self.grace(&pool);
            self.push_action(Action::Terminate {
                worker: id.clone(),
                incarnation: n,
                process,
                grace,
                group: true,
            });
        }
    }

    fn on_spawn_failed(&mut self, id: &WorkerId, n: u32, error: &str, now: Timestamp) {
        if let Some(w) = self.workers.get_mut(id)
            && let Some((_, inc)) = w.find(n)
            && !inc.announced
        {
            inc.announced = true;
            let pool = w.pool.clone();
            self.emit(
                now,
                EventKind::StateChanged {
                    worker: id.clone(),
                    pool,
                    incarnation: n,
                    process: None,
                    from: None,
                    to: State::Initializing,
                    cause: "spawn requested".to_owned(),
                },
            );
        }
        self.transition(id, n, State::Failed, format!("spawn failed: {error}"), now);
        self.on_exit(id, n, None, now);
    }

    fn on_ready(&mut self, id: &WorkerId, n: u32, how: &str, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else { return };
        let Some((role, inc)) = w.find(n) else { return };
        if inc.state() != State::Initializing || inc.ending.is_some() {
            return;
        }
        self.transition(id, n, State::Ready, format!("ready: {how}"), now);
        match role {
            Role::Incoming => self.swap_in(id, now),
            Role::Current => self.finish_recycle(id, now),
            Role::Outgoing => {}
        }
    }

    fn on_not_ready(&mut self, id: &WorkerId, n: u32, error: &str, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else { return };
        let Some((_, inc)) = w.find(n) else { return };
        if inc.state() != State::Initializing {
            return;
        }
        let process = inc.process;
        inc.ending = Some(Ending::Kill("readiness failed".into()));
        self.transition(id, n, State::Failed, format!("readiness failed: {error}"), now);
        if let Some(process) = process {
            let grace = self.grace_of(id);
            self.push_action(Action::Terminate {
                worker: id.clone(),
                incarnation: n,
                process,
                grace,
                group: true,
            });
        }
    }

    /// The process of incarnation `n` ended (`exit` None: not our child, status unknown).
    fn on_exit(&mut self, id: &WorkerId, n: u32, exit: Option<ExitInfo>, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else { return };
        let source = w.source;
        let Some((role, inc)) = w.find(n) else { return };
        let state = inc.state();
        let asked = inc.ending.clone();
        let desc = exit.as_ref().map(ExitInfo::describe).unwrap_or_else(|| {
            if source == Source::Spawned {
                "spawn failed".into()
            } else {
                "process exited (status not visible to Tend)".into()
            }
        });
        if state.is_live() {
            let crash = exit.as_ref().and_then(|e| e.signal).is_some_and(|s| matches!(s, 4 | 6 | 7 | 8 | 11));
            let code = exit.as_ref().and_then(|e| e.code);
            let signal = exit.as_ref().and_then(|e| e.signal);
            let path: &[State] = match (code, signal, &asked) {
                (_, Some(_), _) if crash => &[State::Failed],
                (Some(0), _, _) | (None, None, _) if state == State::Initializing => {
                    if asked.is_some() {
                        &[State::Terminated]
                    } else {
                        &[State::Failed]
                    }
                }
                (Some(0), _, _) | (None, None, _) => {
                    if state == State::Completing {
                        &[State::Completed]
                    } else {
                        &[State::Completing, State::Completed]
                    }
                }
                (_, Some(_), _) => &[State::Terminated],
                (Some(_), None, Some(_)) => &[State::Terminated],
                (Some(_), None, None) => &[State::Failed],
            };
            let cause = match (&asked, path.last()) {
                (
                    Some(Ending::Drain(why)) | Some(Ending::Kill(why)),
                    Some(State::Terminated | State::Completed),
                ) => {
                    format!("{desc} ({why})")
                }
                _ => desc.clone(),
            };
            for st in path {
                self.transition(id, n, *st, cause.clone(), now);
            }
        }
        self.transition(id, n, State::Cleaned, "reaped".to_owned(), now);
        self.after_cleaned(id, n, role, now);
    }

    fn after_cleaned(&mut self, id: &WorkerId, n: u32, role: Role, now: Timestamp) {
        let shutting = self.shutting_down;
        let Some(w) = self.workers.get_mut(id) else { return };
        let pool = w.pool.clone();
        let spec = self.pools.iter().find(|p| p.name == pool).cloned();
        let Some(spec) = spec else { return };
        // Count outcomes once per incarnation.
        let inc = match role {
            Role::Current => w.current.as_ref(),
            Role::Incoming => w.incoming.as_ref(),
            Role::Outgoing => w.outgoing.iter().find(|i| i.n == n),
        };
        let outcome = inc.and_then(|i| i.lifecycle.outcome());
        let task_time = inc.and_then(|i| i.lifecycle.task_time());
        let was_asked = inc.is_some_and(|i| i.ending.is_some());
        if let Some(t) = self.totals.get_mut(&pool) {
            t.count_end(outcome, task_time);
        }
        let Some(w) = self.workers.get_mut(id) else { return };
        match role {
            Role::Outgoing => {
                if let Some(pos) = w.outgoing.iter().position(|i| i.n == n) {
                    let inc = w.outgoing.remove(pos);
                    w.retire(inc);
                }
            }
            Role::Incoming => {
                if let Some(inc) = w.incoming.take() {
                    w.retire(inc);
                }
                // The replacement failed: the old incarnation keeps serving.
                if let Some(r) = w.recycle.take() {
                    let reason = r.reason;
                    self.emit(
                        now,
                        EventKind::RecycleFailed {
                            worker: id.clone(),
                            pool: pool.clone(),
                            reason,
                            error: format!("replacement ended before it was ready ({outcome:?})"),
                        },
                    );
                    if !shutting
                        && reason.is_planned()
                        && let Some(w) = self.workers.get_mut(id)
                    {
                        let recent = w.storm.recent(spec.recycle.storm_window, now);
                        w.queued = Some((reason, r.detail));
                        w.respawn_at = Some(now.plus(spec.recycle.backoff(recent.max(1))));
                    }
                    self.check_storm(id, &spec, now);
                }
            }
            Role::Current => {
                if w.slot.is_none() {
                    w.cleaned_at = Some(now);
                    return;
                }
                // Keep the ended incarnation visible as current until a replacement exists.
                let planned = w.incoming.is_some();
                if shutting || w.stopped || planned || was_asked && w.respawn_reason.is_none() {
                    return;
                }
                let restart = match spec.kind {
                    PoolKind::Spawn { restart, .. } => restart,
                    _ => Restart::Never,
                };
                let wanted = match restart {
                    Restart::Always => true,
                    Restart::OnFailure => outcome != Some(State::Completed),
                    Restart::Never => false,
                };
                if !wanted || !spec.recycle.on_death {
                    return;
                }
                let (reason, detail) = w.respawn_reason.take().unwrap_or_else(|| {
                    let how = w
                        .current
                        .as_ref()
                        .and_then(|c| c.lifecycle.history().iter().rev().nth(1).map(|t| t.cause.clone()));
                    (RecycleReason::Died, how.unwrap_or_else(|| "died".into()))
                });
                let old = w.current.as_ref();
                let rec = RecycleInFlight::new(reason, detail.clone(), old, now);
                let old_process = rec.old_process;
                w.recycle = Some(rec);
                let recent = w.storm.recent(spec.recycle.storm_window, now);
                w.respawn_at = Some(now.plus(spec.recycle.backoff(recent)));
                self.emit(
                    now,
                    EventKind::RecycleStarted {
                        worker: id.clone(),
                        pool: pool.clone(),
                        reason,
                        detail,
                        old_process,
                    },
                );
                if recent == 0 {
                    self.tick_worker_respawn(id, now);
                }
            }
        }
    }

    fn on_samples(&mut self, pool: &str, readings: Vec<Observed>, now: Timestamp) {
        let Some(spec) = self.pool(pool).cloned() else { return };
        for r in readings {
            self.on_reading(&spec, r, now);
        }
        // Pool-scope rules read the aggregates after the sweep.
        let pool_rules: Vec<Rule> = spec.rules.iter().filter(|r| r.scope == Scope::Pool).cloned().collect();
        if !pool_rules.is_empty()
            && let Some(pm) = self.pool_metrics(pool)
        {
            for rule in &pool_rules {
                let reading = match &rule.condition {
                    Condition::Threshold { metric, .. } => {
                        pm.get(metric).map(Reading::Value).unwrap_or(Reading::Missing)
                    }
                    _ => continue,
                };
                if let Some(alert) = self.alerts.observe(rule, pool, pool, reading, now) {
                    self.emit(now, EventKind::AlertChanged { alert });
                }
            }
        }
    }

    fn on_reading(&mut self, spec: &PoolSpec, r: Observed, now: Timestamp) {
        let Some(w) = self.workers.get_mut(&r.worker) else { return };
        let restarts = w.restarts;
        let reported = w.source == Source::Reported;
        let Some(c) = w.current.as_mut().filter(|c| c.n == r.incarnation) else { return };
        if !c.state().is_live() {
            return;
        }
        let prev_requests = c.requests;
        if let Some(l) = r.log_lines {
            c.log_lines = l;
        }
        let counted = r.requests.is_some();
        if let Some(q) = r.requests {
            c.requests = q;
        }
        // An orchestrator reports some metrics at a time: keep the others it reported before.
        let last = match (reported, c.last.take()) {
            (true, Some(mut prev)) => {
                prev.merge(&r.metrics);
                prev
            }
            _ => r.metrics.clone(),
        };
        c.last = Some(last);
        c.last_at = Some(now);
        let state = c.state();
        let usage = Usage {
            started: c.lifecycle.created(),
            requests: c.requests,
            memory_bytes: r.metrics.memory_bytes,
            seed: seed(r.worker.as_str(), c.n),
        };
        let uptime = c.uptime(now).as_secs_f64();
        let (requests, log_lines, errors, warnings) = (c.requests, c.log_lines, c.errors, c.warnings);
        // Reports of requests or errors alone carry no metrics: not a sample for the history.
        if !(reported && r.metrics == Metrics::default()) {
            w.recent.push_back(Sample { worker: r.worker.clone(), at: now, metrics: r.metrics.clone() });
        }
        while w.recent.len() > spec.history.max(1) {
            w.recent.pop_front();
        }
        let id = r.worker.clone();
        let n = r.incarnation;
        let source = w.source;

        // Attached processes are ready once they are seen alive.
        if state == State::Initializing && source == Source::Attached {
            self.transition(&id, n, State::Ready, "attached process is alive".into(), now);
        }
        // Busy / idle.
        let state =
            self.workers.get(&id).and_then(|w| w.current.as_ref()).map(|c| c.state()).unwrap_or(state);
        // Reported workers say themselves when they are busy.
        if !reported
            && matches!(state, State::Ready | State::Working)
            && (spec.busy_cpu_percent.is_some() || counted)
        {
            let cpu = r.metrics.cpu_percent.unwrap_or(0.0);
            let by_cpu = spec.busy_cpu_percent.is_some_and(|b| cpu >= b);
            let by_requests = counted && requests > prev_requests;
            let busy = by_cpu || by_requests;
            if busy && state == State::Ready {
                let why = if by_requests {
                    format!("busy: {} new requests", requests - prev_requests)
                } else {
                    format!("busy: cpu {cpu:.0}%")
                };
                self.transition(&id, n, State::Working, why, now);
            } else if !busy && state == State::Working {
                self.transition(&id, n, State::Ready, "idle".into(), now);
            }
        }
        // Rules on this worker.
        let mut fired_recycle: Option<String> = None;
        for rule in spec.rules.iter().filter(|r| r.scope == Scope::Worker) {
            let reading = match &rule.condition {
                Condition::Threshold { metric, .. } => {
                    let v = match metric.as_str() {
                        "requests" => Some(requests as f64),
                        "log_lines" => Some(log_lines as f64),
                        "errors" => Some(errors as f64),
                        "warnings" => Some(warnings as f64),
                        "uptime_secs" => Some(uptime),
                        "restarts" => Some(f64::from(restarts)),
                        m => r.metrics.get(m),
                    };
                    v.map(Reading::Value).unwrap_or(Reading::Missing)
                }
                // Staleness and churn are evaluated on ticks.
                _ => continue,
            };
            if let Some(alert) = self.alerts.observe(rule, &spec.name, id.as_str(), reading, now) {
                if rule.recycle && alert.state == AlertState::Firing {
                    fired_recycle = Some(format!("rule {} fired: {}", rule.name, alert.message));
                }
                self.emit(now, EventKind::AlertChanged { alert });
            }
        }
        // Recycle limits: checked on every sample so a breach acts within one interval. For reported
        // workers the recycle is a request to their orchestrator.
        if matches!(source, Source::Spawned | Source::Reported | Source::Container) {
            if let Some((reason, detail)) = spec.recycle.due(&usage, now) {
                self.begin_recycle(&id, reason, detail, now, false);
            } else if let Some(detail) = fired_recycle {
                self.begin_recycle(&id, RecycleReason::Rule, detail, now, false);
            }
        }
    }

    fn on_discovered(&mut self, pool: &str, found: Vec<(ProcessId, String)>, now: Timestamp) {
        let owned = self.owned_processes();
        let found: Vec<(ProcessId, String)> = found.into_iter().filter(|(p, _)| !owned.contains(p)).collect();
        // Watched processes that are no longer listed (or whose pid now names another process) ended.
        let gone: Vec<(WorkerId, u32)> = self
            .workers
            .values()
            .filter(|w| w.pool == pool && w.source == Source::Attached)
            .filter_map(|w| {
                let c = w.current.as_ref()?;
                let p = c.process?;
                (c.state().is_live() && !found.iter().any(|(f, _)| *f == p)).then(|| (w.id.clone(), c.n))
            })
            .collect();
        for (id, n) in gone {
            self.on_exit(&id, n, None, now);
        }
        for (process, name) in found {
            let known = self.workers.values().any(|w| {
                w.pool == pool
                    && w.current.as_ref().is_some_and(|c| c.process == Some(process) && c.state().is_live())
            });
            if known {
                continue;
            }
            let mut id = WorkerId::new(format!("{pool}-{}", process.pid));
            if let Some(old) = self.workers.get(&id) {
                if old.current.as_ref().is_some_and(|c| c.state().is_live()) {
                    // Same id still live with another start time: keep both, tell them apart.
                    id = WorkerId::new(format!("{pool}-{}-{}", process.pid, process.start_ticks));
                } else {
                    self.remove_worker(&id, now);
                }
            }
            let mut w = Worker::new(id.clone(), pool, Source::Attached, None);
            w.generation = 1;
            let mut inc = Incarnation::new(1, Some(process), now, "discovered");
            inc.announced = true;
            w.current = Some(inc);
            self.workers.insert(id.clone(), w);
            self.emit(
                now,
                EventKind::WorkerAdded {
                    worker: id.clone(),
                    pool: pool.to_owned(),
                    source: Source::Attached,
                },
            );
            self.emit(
                now,
                EventKind::StateChanged {
                    worker: id.clone(),
                    pool: pool.to_owned(),
                    incarnation: 1,
                    process: Some(process),
                    from: None,
                    to: State::Initializing,
                    cause: format!("discovered {name} pid {}", process.pid),
                },
            );
            self.restore_awaiting(&id, now);
        }
    }

    fn tick(&mut self, now: Timestamp) {
        let ids: Vec<WorkerId> = self.workers.keys().cloned().collect();
        for id in ids {
            self.tick_worker(&id, now);
        }
        self.expire_awaiting(now);
        self.tick_containers(now);
        // Time-based alert progress (for, keep_firing_for, flapping).
        let rules: Vec<Rule> = self.pools.iter().flat_map(|p| p.rules.iter().cloned()).collect();
        for alert in self.alerts.tick(&rules, now) {
            self.emit(now, EventKind::AlertChanged { alert });
        }
    }

    fn tick_worker(&mut self, id: &WorkerId, now: Timestamp) {
        let Some(w) = self.workers.get(id) else { return };
        let Some(spec) = self.pool(&w.pool).cloned() else { return };
        // Retention of ended workers that no slot reuses.
        if let Some(t) = w.cleaned_at
            && now.since(t) >= CLEANED_RETENTION
        {
            self.remove_worker(id, now);
            return;
        }
        if w.source == Source::Reported && self.clean_abandoned(id, now) {
            return;
        }
        let engine_down = self.engine_down(&spec);
        let Some(w) = self.workers.get(id) else { return };
        let source = w.source;
        // Deadlines of every live incarnation.
        let mut timeouts: Vec<(u32, Role, String)> = Vec::new();
        for (role, inc) in [(Role::Current, w.current.as_ref()), (Role::Incoming, w.incoming.as_ref())] {
            let Some(inc) = inc else { continue };
            if inc.ending.is_some() {
                continue;
            }
            let age_in_state = now.since(inc.lifecycle.since());
            // A spawned incarnation's readiness is timed from its process's start: a spawn waiting in
            // the engine's queue has no process yet and cannot be late.
            let starting_for = match source {
                Source::Spawned => inc.spawned_at.map(|t| now.since(t)),
                Source::Container if inc.announced => Some(age_in_state),
                _ => None,
            };
            match inc.state() {
                State::Initializing if starting_for.is_some_and(|d| d >= spec.readiness_timeout) => {
                    timeouts.push((inc.n, role, format!("not ready after {}", secs(spec.readiness_timeout))));
                }
                State::Working if spec.task_timeout.is_some_and(|t| age_in_state >= t) => {
                    timeouts.push((
                        inc.n,
                        role,
                        format!("task exceeded {}", secs(spec.task_timeout.unwrap_or_default())),
                    ));
                }
                State::Ready | State::Working if !(source == Source::Container && engine_down) => {
                    if let Some(stale) = spec.stale_after {
                        let seen = inc.last_at.unwrap_or(inc.lifecycle.since());
                        if now.since(seen) >= stale {
                            timeouts.push((inc.n, role, format!("no sample for {}", secs(now.since(seen)))));
                        }
                    }
                }
                _ => {}
            }
        }
        for (n, role, why) in timeouts {
            self.time_out(id, n, role, why, now);
        }
        // Worker-scope stale and churn rules.
        let Some(w) = self.workers.get_mut(id) else { return };
        let mut readings: Vec<(Rule, Reading)> = Vec::new();
        for rule in spec.rules.iter().filter(|r| r.scope == Scope::Worker) {
            match &rule.condition {
                Condition::Stale { after } => {
                    if let Some(c) = w.current.as_ref().filter(|c| c.state().is_live()) {
                        let seen = c.last_at.unwrap_or(c.lifecycle.created());
                        let age = now.since(seen);
                        readings.push((
                            rule.clone(),
                            Reading::Condition { active: age >= *after, value: Some(age.as_secs_f64()) },
                        ));
                    }
                }
                Condition::RestartChurn { max, within } => {
                    let recent = w.storm.recent(*within, now);
                    readings.push((
                        rule.clone(),
                        Reading::Condition { active: recent > *max, value: Some(f64::from(recent)) },
                    ));
                }
                Condition::Threshold { .. } => {}
            }
        }
        for (rule, reading) in readings {
            if let Some(alert) = self.alerts.observe(&rule, &spec.name, id.as_str(), reading, now) {
                self.emit(now, EventKind::AlertChanged { alert });
            }
        }
        if self.shutting_down {
            return;
        }
        // TTL and other limits that grow with time alone.
        if let Some(w) = self.workers.get(id)
            && matches!(w.source, Source::Spawned | Source::Reported | Source::Container)
            && w.recycle.is_none()
            && w.queued.is_none()
            && let Some(c) = w.current.as_ref().filter(|c| matches!(c.state(), State::Ready | State::Working))
        {
            let usage = Usage {
                started: c.lifecycle.created(),
                requests: c.requests,
                memory_bytes: c.last.as_ref().and_then(|m| m.memory_bytes),
                seed: seed(id.as_str(), c.n),
            };
            if let Some((reason, detail)) = spec.recycle.due(&usage, now) {
                self.begin_recycle(id, reason, detail, now, false);
            }
        }
        self.tick_worker_respawn(id, now);
    }

    /// Start what is due: a scheduled replacement of a dead worker, or a queued planned recycle.
    fn tick_worker_respawn(&mut self, id: &WorkerId, now: Timestamp) {
        if self.shutting_down {
            return;
        }
        let Some(w) = self.workers.get_mut(id) else { return };
        if w.held.is_some() || w.stopped {
            return;
        }
        if w.respawn_at.is_some_and(|t| t > now) {
            return;
        }
        let dead = w.current.as_ref().is_none_or(|c| !c.state().is_live());
        if w.recycle.is_some()
            && dead
            && w.incoming.is_none()
            && w.current.as_ref().is_none_or(|c| c.state() == State::Cleaned)
        {
            // A died/hung replacement whose backoff is over.
            w.respawn_at = None;
            let pool = w.pool.clone();
            let Some(spec) = self.pool(&pool).cloned() else { return };
            if self.check_storm_before_restart(id, &spec, now) {
                return;
            }
            self.spawn_into(id, false, now);
            return;
        }
        if let Some((reason, detail)) = w.queued.clone() {
            w.respawn_at = None;
            self.begin_recycle(id, reason, detail, now, false);
        }
    }

    fn time_out(&mut self, id: &WorkerId, n: u32, role: Role, why: String, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else { return };
        let source = w.source;
        let Some((_, inc)) = w.find(n) else { return };
        inc.ending = Some(Ending::Kill(why.clone()));
        let container = inc.container.as_ref().map(|c| c.id.clone());
        let process = inc.process;
        if role == Role::Current {
            w.respawn_reason = Some((RecycleReason::Hung, why.clone()));
        }
        self.transition(id, n, State::Timeout, why, now);
        // A recreated copy that never became READY is removed; the recycle then fails and is retried.
        if role == Role::Incoming
            && let Some(container) = container
        {
            let (pool, grace) = (self.pool_of(id), self.grace_of(id));
            self.push_action(Action::ContainerStop {
                worker: id.clone(),
                pool,
                incarnation: n,
                container,
                grace,
                remove: true,
            });
        }
        if let Some(process) = process
            && source == Source::Spawned
        {
            let grace = self.grace_of(id);
            self.push_action(Action::Terminate {
                worker: id.clone(),
                incarnation: n,
                process,
                grace,
                group: true,
            });
        }
    }

    // ---- recycling ------------------------------------------------------------------------------

    fn begin_recycle(
        &mut self,
        id: &WorkerId,
        reason: RecycleReason,
        detail: String,
        now: Timestamp,
        manual: bool,
    ) {
        let Some(w) = self.workers.get(id) else { return };
        if w.recycle.is_some() || (w.held.is_some() && !manual) || (w.stopped && !manual) {
            return;
        }
        let pool = w.pool.clone();
        let Some(spec) = self.pool(&pool).cloned() else { return };
        let source = w.source;
        if source == Source::Container {
            self.begin_container_recycle(id, reason, detail, now, manual);
            return;
        }
        match source {
            Source::Spawned => {}
            _ => {
                // Not ours to restart: ask the process to end; its own supervisor replaces it.
                let old = w.current.as_ref().and_then(|c| c.process);
                if source == Source::Reported {
                    // Asked once: remembered until the orchestrator reports the worker ended.
                    let c = w.current.as_ref();
                    let rec = RecycleInFlight {
                        reason,
                        detail: detail.clone(),
                        started: now,
                        old_process: None,
                        old_uptime: c.map(|c| c.uptime(now)).unwrap_or_default(),
                        old_requests: c.map(|c| c.requests).unwrap_or(0),
                        old_metrics: c.and_then(|c| c.last.clone()),
                    };
                    self.reported_recycle_in_flight(id, rec);
                }
                self.emit(
                    now,
                    EventKind::RecycleStarted {
                        worker: id.clone(),
                        pool: pool.clone(),
                        reason,
                        detail,
                        old_process: old,
                    },
                );
                self.count_recycle(&pool, reason, now);
                if source == Source::Attached {
                    self.end_all(id, &format!("recycle ({reason})"), now);
                }
                return;
            }
        }
        let serving = w.current.as_ref().is_some_and(|c| matches!(c.state(), State::Ready | State::Working));
        if self.queue_over_max_unavailable(id, &spec, reason, &detail, serving && !manual) {
            return;
        }
        let Some(w) = self.workers.get_mut(id) else { return };
        w.queued = None;
        let old = w.current.as_ref().filter(|c| c.state().is_live());
        let rec = RecycleInFlight::new(reason, detail.clone(), old, now);
        let old_process = rec.old_process;
        let serving_old = old.is_some();
        w.recycle = Some(rec);
        self.emit(
            now,
            EventKind::RecycleStarted { worker: id.clone(), pool: pool.clone(), reason, detail, old_process },
        );
        if !manual && self.check_storm_before_restart(id, &spec, now) {
            return;
        }
        self.spawn_into(id, serving_old, now);
    }

    /// Records a restart and trips the breaker when restarts come too fast. True when tripped.
    fn check_storm_before_restart(&mut self, id: &WorkerId, spec: &PoolSpec, now: Timestamp) -> bool {
        let Some(w) = self.workers.get_mut(id) else { return true };
        w.storm.record(now);
        self.check_storm(id, spec, now)
    }

    fn check_storm(&mut self, id: &WorkerId, spec: &PoolSpec, now: Timestamp) -> bool {
        let Some(w) = self.workers.get_mut(id) else { return true };
        let p = &spec.recycle;
        if !w.storm.tripped(p.storm_max, p.storm_window, now) {
            return false;
        }
        let restarts = w.storm.recent(p.storm_window, now);
        w.held = Some(format!(
            "{restarts} restarts within {}: not restarted again until recycled by hand",
            secs(p.storm_window)
        ));
        w.respawn_at = None;
        w.queued = None;
        let had = w.recycle.take();
        let pool = w.pool.clone();
        if let Some(r) = had {
            self.emit(
                now,
                EventKind::RecycleFailed {
                    worker: id.clone(),
                    pool: pool.clone(),
                    reason: r.reason,
                    error: "restart storm: breaker tripped".into(),
                },
            );
        }
        self.emit(
            now,
            EventKind::StormTripped {
                worker: id.clone(),
                pool: pool.clone(),
                restarts,
                window_secs: p.storm_window.as_secs_f64(),
            },
        );
        self.observe_storm(id, &pool, restarts, true, now);
        true
    }

    /// A planned recycle of a serving worker (not one asked for by hand) waits in the worker's queue
    /// while `max_unavailable` planned recycles of its pool are under way. True when it was queued.
    fn queue_over_max_unavailable(
        &mut self,
        id: &WorkerId,
        spec: &PoolSpec,
        reason: RecycleReason,
        detail: &str,
        may_wait: bool,
    ) -> bool {
        if !(reason.is_planned() && may_wait) {
            return false;
        }
        let in_flight = self
            .workers
            .values()
            .filter(|o| o.pool == spec.name && o.recycle.as_ref().is_some_and(|r| r.reason.is_planned()))
            .count();
        if in_flight < spec.recycle.max_unavailable as usize {
            return false;
        }
        if let Some(w) = self.workers.get_mut(id) {
            w.queued = Some((reason, detail.to_owned()));
        }
        true
    }

    fn observe_storm(&mut self, id: &WorkerId, pool: &str, restarts: u32, active: bool, now: Timestamp) {
        if let Some(rule) = self.storm_rules.get(pool).cloned() {
            let reading = Reading::Condition { active, value: Some(f64::from(restarts)) };
            if let Some(alert) = self.alerts.observe(&rule, pool, id.as_str(), reading, now) {
                self.emit(now, EventKind::AlertChanged { alert });
            }
        }
    }

    /// Create the next incarnation of a slot and ask for it to be spawned.
    fn spawn_into(&mut self, id: &WorkerId, as_incoming: bool, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else { return };
        let Some(slot) = w.slot else { return };
        w.generation += 1;
        let n = w.generation;
        if n > 1 {
            w.restarts += 1;
        }
        let inc = Incarnation::new(n, None, now, "spawn requested");
        if as_incoming {
            w.incoming = Some(inc);
        } else if let Some(old) = w.current.replace(inc) {
            w.retire(old);
        }
        let pool = w.pool.clone();
        self.push_action(Action::Spawn { worker: id.clone(), pool, slot, incarnation: n });
    }

    /// The replacement is READY: it serves from now on and the old incarnation drains.
    fn swap_in(&mut self, id: &WorkerId, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else { return };
        let Some(new) = w.incoming.take() else { return };
        if let Some(old) = w.current.replace(new) {
            if old.state().is_live() {
                w.outgoing.push(old);
            } else {
                w.retire(old);
            }
        }
        let reason = w.recycle.as_ref().map(|r| r.reason).unwrap_or(RecycleReason::Manual);
        let why = format!("drain: recycle ({reason})");
        let draining: Vec<u32> = w.outgoing.iter().filter(|o| o.ending.is_none()).map(|o| o.n).collect();
        for n in draining {
            self.drain(id, n, &why, now);
        }
        self.finish_recycle(id, now);
    }

    /// Publish the `Recycled` record once the new incarnation is READY.
    fn finish_recycle(&mut self, id: &WorkerId, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else { return };
        let Some(r) = w.recycle.take() else { return };
        let pool = w.pool.clone();
        let new_process = w.current.as_ref().and_then(|c| c.process);
        let reason = r.reason;
        self.emit(
            now,
            EventKind::Recycled {
                worker: id.clone(),
                pool: pool.clone(),
                reason,
                detail: r.detail,
                old_process: r.old_process,
                new_process,
                uptime_secs: r.old_uptime.as_secs_f64(),
                requests: r.old_requests,
                last_metrics: r.old_metrics,
            },
        );
        self.count_recycle(&pool, reason, now);
        // A queued recycle elsewhere in the pool may go now.
        let waiting: Vec<WorkerId> = self
            .workers
            .values()
            .filter(|o| o.pool == pool && o.queued.is_some())
            .map(|o| o.id.clone())
            .collect();
        for other in waiting {
            if let Some(o) = self.workers.get(&other)
                && o.respawn_at.is_none_or(|t| t <= now)
                && let Some((reason, detail)) = o.queued.clone()
            {
                self.begin_recycle(&other, reason, detail, now, false);
            }
        }
    }

    fn count_recycle(&mut self, pool: &str, reason: RecycleReason, now: Timestamp) {
        if let Some(t) = self.totals.get_mut(pool) {
            *t.recycles.entry(reason).or_default() += 1;
            t.recent_recycles.push_back(now);
            while t.recent_recycles.len() > 10_000 {
                t.recent_recycles.pop_front();
            }
        }
    }

    /// Ask a serving incarnation to finish: COMPLETING, then SIGTERM with the pool's grace.
    fn drain(&mut self, id: &WorkerId, n: u32, why: &str, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else { return };
        let group = w.source == Source::Spawned;
        let Some((_, inc)) = w.find(n) else { return };
        if inc.ending.is_some() || !inc.state().is_live() {
            return;
        }
        inc.ending = Some(Ending::Drain(why.to_owned()));
        let state = inc.state();
        let process = inc.process;
        let container = inc.container.as_ref().map(|c| c.id.clone());
        if matches!(state, State::Ready | State::Working) {
            self.transition(id, n, State::Completing, why.to_owned(), now);
        }
        if let Some(container) = container {
            let (pool, grace) = (self.pool_of(id), self.grace_of(id));
            self.push_action(Action::ContainerStop {
                worker: id.clone(),
                pool,
                incarnation: n,
                container,
                grace,
                remove: true,
            });
            return;
        }
        if let Some(process) = process {
            let grace = self.grace_of(id);
            self.push_action(Action::Terminate { worker: id.clone(), incarnation: n, process, grace, group });
        }
    }

    /// End every live incarnation of a worker (stop, shutdown).
    fn end_all(&mut self, id: &WorkerId, why: &str, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else { return };
        w.recycle = None;
        let ns: Vec<u32> = w.live_incarnations().map(|i| i.n).collect();
        for n in ns {
            self.drain(id, n, why, now);
        }
    }

    fn remove_worker(&mut self, id: &WorkerId, now: Timestamp) {
        if let Some(w) = self.workers.remove(id) {
            for alert in self.alerts.forget_subject(id.as_str(), now) {
                self.emit(now, EventKind::AlertChanged { alert });
            }
            self.emit(now, EventKind::WorkerRemoved { worker: id.clone(), pool: w.pool });
        }
    }

    // ---- plumbing -------------------------------------------------------------------------------

    fn transition(&mut self, id: &WorkerId, n: u32, to: State, cause: String, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else { return };
        let pool = w.pool.clone();
        let Some((_, inc)) = w.find(n) else { return };
        let process = inc.process;
        let announced = inc.announced;
        let from = inc.state();
        match inc.lifecycle.transition(to, now, cause.clone()) {
            Ok(Transition { .. }) => {
                if announced {
                    self.emit(
                        now,
                        EventKind::StateChanged {
                            worker: id.clone(),
                            pool,
                            incarnation: n,
                            process,
                            from: Some(from),
                            to,
                            cause,
                        },
                    );
                }
            }
            // The fleet only asks for transitions the table allows; a refusal here is a bug worth
            // seeing in the event stream rather than a crash.
            Err(e) => self.emit(
                now,
                EventKind::SourceStatus {
                    source: "fleet".into(),
                    degraded: false,
                    detail: format!("{id}: {e}"),
                },
            ),
        }
    }

    fn grace(&self, pool: &str) -> Duration {
        self.pool(pool).map(|p| p.stop_grace).unwrap_or(Duration::from_secs(5))
    }

    fn pool_of(&self, id: &WorkerId) -> String {
        self.workers.get(id).map(|w| w.pool.clone()).unwrap_or_default()
    }

    fn grace_of(&self, id: &WorkerId) -> Duration {
        self.workers.get(id).map(|w| self.grace(&w.pool)).unwrap_or(Duration::from_secs(5))
    }

    fn emit(&mut self, at: Timestamp, kind: EventKind) {
        self.seq += 1;
        self.out.events.push(Event { seq: self.seq, at, kind });
    }

    fn push_action(&mut self, a: Action) {
        self.out.actions.push(a);
    }

    fn take(&mut self) -> Output {
        std::mem::take(&mut self.out)
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { format!("{s:.0}s") } else { format!("{s:.1}s") }
}

/// For tests and the API: the alert of a (rule, subject), if tracked.
pub fn alert_of<'a>(fleet: &'a Fleet, rule: &str, subject: &str) -> Option<&'a Alert> {
    fleet.alerts.get(rule, subject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Comparison;

    const MB: u64 = 1024 * 1024;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }
    fn pid(p: u32) -> ProcessId {
        ProcessId { pid: p, start_ticks: u64::from(p) * 10 }
    }
    fn w(s: &str) -> WorkerId {
        WorkerId::new(s)
    }

    /// Drives a fleet the way the runtime does, answering Spawn actions with fresh pids.
    struct Sim {
        fleet: Fleet,
        next_pid: u32,
        events: Vec<Event>,
        actions: Vec<Action>,
    }

    impl Sim {
        fn new(pools: Vec<PoolSpec>) -> Sim {
            let mut s = Sim { fleet: Fleet::new(pools), next_pid: 100, events: vec![], actions: vec![] };
            let out = s.fleet.start(t(0));
            s.absorb(out);
            s
        }
        fn absorb(&mut self, out: Output) -> Output {
            self.events.extend(out.events.iter().cloned());
            self.actions.extend(out.actions.iter().cloned());
            out
        }
        fn feed(&mut self, input: Input, at: i64) -> Output {
            let out = self.fleet.observe(input, t(at));
            self.absorb(out)
        }
        /// Answer every pending Spawn with Spawned (+ Ready when `ready`).
        fn spawn_all(&mut self, at: i64, ready: bool) -> Vec<(WorkerId, u32, ProcessId)> {
            let spawns: Vec<Action> = std::mem::take(&mut self.actions);
            let mut started = vec![];
            for a in spawns {
                match a {
                    Action::Spawn { worker, incarnation, .. } => {
                        self.next_pid += 1;
                        let p = pid(self.next_pid);
                        self.feed(Input::Spawned { worker: worker.clone(), incarnation, process: p }, at);
                        if ready {
                            self.feed(
                                Input::Ready { worker: worker.clone(), incarnation, how: "alive 1s".into() },
                                at,
                            );
                        }
                        started.push((worker, incarnation, p));
                    }
                    other => self.actions.push(other),
                }
            }
            started
        }
        fn sample(&mut self, pool: &str, at: i64, mem_mb: &[(&str, u64)]) -> Output {
            let readings = mem_mb
                .iter()
                .map(|(id, mb)| {
                    let c = self.fleet.worker(id).unwrap().current.as_ref().unwrap();
                    Observed {
                        worker: w(id),
                        incarnation: c.n,
                        metrics: Metrics {
                            memory_bytes: Some(mb * MB),
                            cpu_percent: Some(1.0),
                            ..Default::default()
                        },
                        log_lines: None,
                        requests: None,
                    }
                })
                .collect();
            self.feed(Input::Samples { pool: pool.into(), readings }, at)
        }
        fn states(&self, id: &str) -> Vec<(u32, State)> {
            self.events
                .iter()
                .filter_map(|e| match &e.kind {
                    EventKind::StateChanged { worker, incarnation, to, .. } if worker.as_str() == id => {
                        Some((*incarnation, *to))
                    }
                    _ => None,
                })
                .collect()
        }
        fn kinds(&self) -> Vec<&'static str> {
            self.events.iter().map(|e| e.kind.name()).collect()
        }
        fn live_serving(&self, pool: &str) -> usize {
            self.fleet
                .workers()
                .filter(|x| x.pool == pool)
                .map(|x| {
                    x.live_incarnations()
                        .filter(|i| matches!(i.state(), State::Ready | State::Working))
                        .count()
                })
                .sum()
        }
    }

    #[test]
    fn start_spawns_every_slot_and_they_become_ready() {
        let mut s = Sim::new(vec![PoolSpec::spawn("api", 3)]);
        assert_eq!(s.actions.len(), 3);
        assert_eq!(s.kinds().iter().filter(|k| **k == "worker_added").count(), 3);
        s.spawn_all(100, true);
        for id in ["api-0", "api-1", "api-2"] {
            assert_eq!(s.states(id), vec![(1, State::Initializing), (1, State::Ready)]);
            assert_eq!(s.fleet.worker(id).unwrap().state(), State::Ready);
        }
        let first = s.events.iter().find(|e| matches!(e.kind, EventKind::StateChanged { .. })).unwrap();
        assert_eq!(first.at, t(0), "INITIALIZING is stamped when the spawn was requested");
        let seqs: Vec<u64> = s.events.iter().map(|e| e.seq).collect();
        assert!(seqs.windows(2).all(|p| p[1] > p[0]), "sequence numbers increase");
        assert_eq!(s.fleet.watch_list("api").len(), 3);
    }

    #[test]
    fn memory_breach_recycles_at_once_with_zero_downtime() {
        let mut spec = PoolSpec::spawn("api", 2);
        spec.recycle.memory_bytes = Some(100 * MB);
        let mut s = Sim::new(vec![spec]);
        s.spawn_all(0, true);
        s.sample("api", 1000, &[("api-0", 50), ("api-1", 60)]);
        assert!(s.actions.is_empty());
        let old = s.fleet.worker("api-0").unwrap().process().unwrap();
        // The sample that crosses the limit starts the recycle: no later tick needed.
        let out = s.sample("api", 2000, &[("api-0", 101), ("api-1", 60)]);
        let started: Vec<_> = out
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::RecycleStarted { reason, worker, detail, .. } => {
                    Some((worker.clone(), *reason, detail.clone(), e.at))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            started,
            vec![(
                w("api-0"),
                RecycleReason::Memory,
                "memory 101.0 MiB above limit 100.0 MiB".into(),
                t(2000)
            )]
        );
        assert_eq!(
            out.actions,
            vec![Action::Spawn { worker: w("api-0"), pool: "api".into(), slot: 0, incarnation: 2 }]
        );
        assert_eq!(s.live_serving("api"), 2, "the old one still serves while the replacement starts");
        // More breaching samples while recycling do not start another.
        let out = s.sample("api", 3000, &[("api-0", 130)]);
        assert!(out.actions.is_empty() && !out.events.iter().any(|e| e.kind.name() == "recycle_started"));
        let new = s.spawn_all(3500, true);
        assert_eq!(new.len(), 1);
        // Swap: the new one serves, the old one drains.
        assert_eq!(s.fleet.worker("api-0").unwrap().process(), Some(new[0].2));
        let term = s.actions.iter().find(|a| matches!(a, Action::Terminate { .. })).cloned().unwrap();
        assert_eq!(
            term,
            Action::Terminate {
                worker: w("api-0"),
                incarnation: 1,
                process: old,
                grace: Duration::from_secs(5),
                group: true
            }
        );
        assert!(s.live_serving("api") >= 2);
        let recycled = s.events.iter().find(|e| e.kind.name() == "recycled").unwrap();
        match &recycled.kind {
            EventKind::Recycled { reason, old_process, new_process, uptime_secs, last_metrics, .. } => {
                assert_eq!(*reason, RecycleReason::Memory);
                assert_eq!(*old_process, Some(old));
                assert_eq!(*new_process, Some(new[0].2));
                assert_eq!(*uptime_secs, 2.0);
                assert_eq!(last_metrics.as_ref().unwrap().memory_bytes, Some(101 * MB));
            }
            _ => unreachable!(),
        }
        s.feed(
            Input::Exited {
                worker: w("api-0"),
                incarnation: 1,
                exit: ExitInfo { code: None, signal: Some(15) },
            },
            3600,
        );
        assert_eq!(
            s.states("api-0"),
            vec![
                (1, State::Initializing),
                (1, State::Ready),
                (2, State::Initializing),
                (2, State::Ready),
                (1, State::Completing),
                (1, State::Terminated),
                (1, State::Cleaned),
            ]
        );
        assert_eq!(s.fleet.worker("api-0").unwrap().state(), State::Ready);
        assert_eq!(
            s.fleet.pool_metrics("api").unwrap().recycles_by_reason.get(&RecycleReason::Memory),
            Some(&1)
        );
        assert!(
            s.actions.iter().all(|a| !matches!(a, Action::Spawn { .. })),
            "a drained worker is not replaced again"
        );
    }

    #[test]
    fn max_unavailable_queues_the_second_recycle() {
        let mut spec = PoolSpec::spawn("api", 3);
        spec.recycle.memory_bytes = Some(100 * MB);
        let mut s = Sim::new(vec![spec]);
        s.spawn_all(0, true);
        let out = s.sample("api", 1000, &[("api-0", 200), ("api-1", 200), ("api-2", 10)]);
        assert_eq!(out.actions.len(), 1, "only one recycle at a time: {:?}", out.actions);
        assert!(s.fleet.worker("api-1").unwrap().queued.is_some());
        s.spawn_all(1500, true);
        // api-0's replacement is READY: api-1's queued recycle starts.
        let spawns: Vec<_> =
            s.actions.iter().filter(|a| matches!(a, Action::Spawn { .. })).cloned().collect();
        assert_eq!(
            spawns,
            vec![Action::Spawn { worker: w("api-1"), pool: "api".into(), slot: 1, incarnation: 2 }]
        );
    }

    #[test]
    fn died_worker_is_replaced_with_backoff_and_a_crash_loop_trips_the_breaker() {
        let mut spec = PoolSpec::spawn("job", 1);
        spec.recycle.storm_max = 3;
        spec.recycle.storm_window = Duration::from_secs(60);
        let mut s = Sim::new(vec![spec]);
        s.spawn_all(0, true);
        let exit1 = |n| Input::Exited {
            worker: w("job-0"),
            incarnation: n,
            exit: ExitInfo { code: Some(1), signal: None },
        };
        s.feed(exit1(1), 1000);
        assert_eq!(
            s.states("job-0")[2..],
            [(1, State::Failed), (1, State::Cleaned), (2, State::Initializing)][..2]
        );
        // First restart is immediate.
        assert_eq!(
            s.actions,
            vec![Action::Spawn { worker: w("job-0"), pool: "job".into(), slot: 0, incarnation: 2 }]
        );
        s.spawn_all(1100, true);
        let recycled: Vec<_> = s.events.iter().filter(|e| e.kind.name() == "recycled").collect();
        assert_eq!(recycled.len(), 1);
        assert!(
            matches!(&recycled[0].kind, EventKind::Recycled { reason: RecycleReason::Died, detail, .. } if detail == "exited with code 1")
        );
        // Second death: backoff 0.5 s.
        s.feed(exit1(2), 2000);
        assert!(s.actions.is_empty());
        assert_eq!(
            s.fleet.worker("job-0").unwrap().state(),
            State::Failed,
            "shows how it ended until replaced"
        );
        s.feed(Input::Tick, 2400);
        assert!(s.actions.is_empty(), "still backing off");
        s.feed(Input::Tick, 2500);
        assert_eq!(s.actions.len(), 1);
        // Crash before ready, again and again.
        let mut at = 3000;
        let mut n = 3;
        while s.fleet.worker("job-0").unwrap().held.is_none() {
            s.spawn_all(at, false);
            s.feed(exit1(n), at + 10);
            at += 5_000;
            s.feed(Input::Tick, at);
            n += 1;
            assert!(n < 20, "breaker never tripped");
        }
        assert!(s.kinds().contains(&"storm_tripped"));
        let alert = alert_of(&s.fleet, STORM_RULE, "job-0").unwrap();
        assert_eq!(alert.state, AlertState::Firing);
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(s.fleet.worker("job-0").unwrap().state(), State::Failed);
        s.actions.clear();
        s.feed(Input::Tick, at + 100_000);
        assert!(s.actions.is_empty(), "held: no more restarts");
        // A manual recycle resets the breaker and resolves the alert.
        let out = s.fleet.recycle("job-0", RecycleReason::Manual, "by hand", t(at + 100_001)).unwrap();
        s.absorb(out);
        assert_eq!(s.actions.len(), 1);
        assert_eq!(alert_of(&s.fleet, STORM_RULE, "job-0").unwrap().state, AlertState::Resolved);
    }

    #[test]
    fn readiness_deadline_times_out_and_replaces_as_hung() {
        let mut spec = PoolSpec::spawn("api", 1);
        spec.readiness_timeout = Duration::from_secs(10);
        let mut s = Sim::new(vec![spec]);
        let started = s.spawn_all(0, false);
        s.feed(Input::Tick, 9_999);
        assert!(s.actions.is_empty());
        s.feed(Input::Tick, 10_000);
        assert_eq!(
            s.actions,
            vec![Action::Terminate {
                worker: w("api-0"),
                incarnation: 1,
                process: started[0].2,
                grace: Duration::from_secs(5),
                group: true
            }]
        );
        s.actions.clear();
        s.feed(
            Input::Exited {
                worker: w("api-0"),
                incarnation: 1,
                exit: ExitInfo { code: None, signal: Some(15) },
            },
            10_100,
        );
        assert_eq!(
            s.states("api-0"),
            vec![(1, State::Initializing), (1, State::Timeout), (1, State::Cleaned)]
        );
        let started = s.events.iter().find(|e| e.kind.name() == "recycle_started").unwrap();
        assert!(
            matches!(&started.kind, EventKind::RecycleStarted { reason: RecycleReason::Hung, detail, .. } if detail == "not ready after 10s")
        );
        assert_eq!(s.actions.len(), 1, "replacement spawned");
    }

    #[test]
    fn readiness_is_timed_from_the_process_start_not_from_a_queued_spawn() {
        let mut spec = PoolSpec::spawn("api", 1);
        spec.readiness_timeout = Duration::from_secs(10);
        let mut s = Sim::new(vec![spec]);
        // The spawn waited 40 s in the engine's queue before its process started.
        s.feed(Input::Tick, 40_000);
        assert!(s.actions.iter().all(|a| matches!(a, Action::Spawn { .. })), "no timeout while queued");
        s.spawn_all(40_000, false);
        s.feed(Input::Tick, 49_999);
        assert!(s.actions.is_empty(), "9.999 s after its start it is not late");
        s.feed(Input::Tick, 50_000);
        assert!(
            matches!(s.actions.as_slice(), [Action::Terminate { incarnation: 1, .. }]),
            "{:?}",
            s.actions
        );
    }

    #[test]
    fn spawn_failure_fails_cleanly_with_the_error() {
        let mut s = Sim::new(vec![PoolSpec::spawn("api", 1)]);
        s.actions.clear();
        s.feed(
            Input::SpawnFailed {
                worker: w("api-0"),
                incarnation: 1,
                error: "cannot start \"nope\": No such file".into(),
            },
            5,
        );
        assert_eq!(
            s.states("api-0"),
            vec![(1, State::Initializing), (1, State::Failed), (1, State::Cleaned)]
        );
        let failed = s
            .events
            .iter()
            .find(|e| matches!(e.kind, EventKind::StateChanged { to: State::Failed, .. }))
            .unwrap();
        assert!(
            matches!(&failed.kind, EventKind::StateChanged { cause, .. } if cause.contains("No such file"))
        );
    }

    #[test]
    fn ttl_recycles_on_tick_and_rules_can_recycle() {
        let mut spec = PoolSpec::spawn("api", 1);
        spec.recycle.ttl = Some(Duration::from_secs(60));
        spec.recycle.jitter = 0.0;
        let mut rule = Rule::threshold("fds-high", "fds", Comparison::Above, 100.0, None);
        rule.recycle = true;
        spec.rules.push(rule);
        let mut s = Sim::new(vec![spec]);
        s.spawn_all(0, true);
        s.feed(Input::Tick, 59_999);
        assert!(s.actions.is_empty());
        s.feed(Input::Tick, 60_000);
        assert!(matches!(s.actions[..], [Action::Spawn { incarnation: 2, .. }]));
        s.spawn_all(60_500, true);
        s.actions.clear();
        let c = s.fleet.worker("api-0").unwrap().current.as_ref().unwrap().n;
        let readings = vec![Observed {
            worker: w("api-0"),
            incarnation: c,
            metrics: Metrics { fds: Some(500), ..Default::default() },
            log_lines: None,
            requests: None,
        }];
        s.feed(Input::Samples { pool: "api".into(), readings }, 61_000);
        let last = s.events.iter().rev().find(|e| e.kind.name() == "recycle_started").unwrap();
        assert!(matches!(&last.kind, EventKind::RecycleStarted { reason: RecycleReason::Rule, .. }));
    }

    #[test]
    fn attach_discovers_and_tells_a_reused_pid_from_the_old_process() {
        let mut spec = PoolSpec::spawn("legacy", 0);
        spec.kind = PoolKind::Attach;
        let mut s = Sim::new(vec![spec]);
        let old = ProcessId { pid: 4242, start_ticks: 1000 };
        s.feed(Input::Discovered { pool: "legacy".into(), found: vec![(old, "gunicorn".into())] }, 0);
        assert_eq!(s.fleet.watch_list("legacy"), vec![(w("legacy-4242"), 1, old)]);
        s.sample("legacy", 1000, &[("legacy-4242", 30)]);
        assert_eq!(s.fleet.worker("legacy-4242").unwrap().state(), State::Ready);
        // The process died and a new one got the same pid before the next discovery pass.
        let reused = ProcessId { pid: 4242, start_ticks: 5000 };
        s.feed(Input::Discovered { pool: "legacy".into(), found: vec![(reused, "gunicorn".into())] }, 2000);
        let olds: Vec<_> = s
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::StateChanged { process, to, .. } => Some((*process, *to)),
                _ => None,
            })
            .collect();
        assert_eq!(
            olds,
            vec![
                (Some(old), State::Initializing),
                (Some(old), State::Ready),
                (Some(old), State::Completing),
                (Some(old), State::Completed),
                (Some(old), State::Cleaned),
                (Some(reused), State::Initializing),
            ]
        );
        assert_eq!(s.fleet.worker("legacy-4242").unwrap().process(), Some(reused));
        assert_eq!(s.fleet.worker("legacy-4242").unwrap().state(), State::Initializing);
    }

    #[test]
    fn shutdown_drains_everything_and_replaces_nothing() {
        let mut s = Sim::new(vec![PoolSpec::spawn("api", 2)]);
        let started = s.spawn_all(0, true);
        let out = s.fleet.shutdown(t(1000));
        let out = s.absorb(out);
        assert_eq!(out.actions.len(), 2);
        assert!(!s.fleet.all_stopped());
        for (id, n, _) in started {
            s.feed(
                Input::Exited {
                    worker: id.clone(),
                    incarnation: n,
                    exit: ExitInfo { code: Some(0), signal: None },
                },
                1100,
            );
            assert_eq!(s.states(id.as_str()).last(), Some(&(1, State::Cleaned)));
            assert!(s.states(id.as_str()).contains(&(1, State::Completed)));
        }
        assert!(s.fleet.all_stopped());
        s.actions.clear();
        s.feed(Input::Tick, 10_000);
        assert!(s.actions.is_empty());
        assert_eq!(
            s.fleet.recycle("api-0", RecycleReason::Manual, "", t(10_001)),
            Err(CommandError::ShuttingDown)
        );
    }

    #[test]
    fn requests_mark_workers_busy_and_count_toward_the_limit() {
        let mut spec = PoolSpec::spawn("api", 1);
        spec.recycle.max_requests = Some(10);
        spec.recycle.jitter = 0.0;
        let mut s = Sim::new(vec![spec]);
        s.spawn_all(0, true);
        let read = |q: u64| Input::Samples {
            pool: "api".into(),
            readings: vec![Observed {
                worker: w("api-0"),
                incarnation: 1,
                metrics: Metrics::default(),
                log_lines: Some(q),
                requests: Some(q),
            }],
        };
        s.feed(read(3), 1000);
        s.feed(read(3), 2000);
        assert_eq!(s.states("api-0")[2..], [(1, State::Working), (1, State::Ready)]);
        s.feed(read(10), 3000);
        let last = s.events.iter().rev().find(|e| e.kind.name() == "recycle_started").unwrap();
        assert!(matches!(&last.kind, EventKind::RecycleStarted { reason: RecycleReason::Requests, .. }));
        // The total survives the old incarnation draining and ending.
        s.spawn_all(3100, true);
        assert_eq!(s.fleet.pool_metrics("api").unwrap().total_requests, 10, "while draining");
        s.feed(
            Input::Exited {
                worker: w("api-0"),
                incarnation: 1,
                exit: ExitInfo { code: Some(0), signal: None },
            },
            3200,
        );
        assert_eq!(s.fleet.pool_metrics("api").unwrap().total_requests, 10, "after it ended");
    }

    #[test]
    fn unknown_worker_and_double_recycle_are_refused() {
        let mut s = Sim::new(vec![PoolSpec::spawn("api", 1)]);
        s.spawn_all(0, true);
        assert_eq!(
            s.fleet.recycle("nope", RecycleReason::Manual, "", t(1)).unwrap_err().to_string(),
            "no worker with id \"nope\""
        );
        s.fleet.recycle("api-0", RecycleReason::Manual, "", t(2)).unwrap();
        assert_eq!(
            s.fleet.recycle("api-0", RecycleReason::Manual, "", t(3)).unwrap_err().to_string(),
            "worker api-0 is already being recycled (manual)"
        );
    }

    fn open_alert(rule: &str, subject: &str, pool: &str, state: AlertState) -> Alert {
        Alert {
            rule: rule.into(),
            subject: subject.into(),
            pool: pool.into(),
            severity: Severity::Warning,
            state,
            value: Some(300.0),
            threshold: Some(200.0),
            since: t(-60_000),
            started: Some(t(-65_000)),
            message: "memory_mb 300 above 200".into(),
            acknowledged: false,
            silenced_until: None,
        }
    }

    fn alert_changes(s: &Sim) -> Vec<(String, AlertState, String)> {
        s.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::AlertChanged { alert } => {
                    Some((alert.subject.clone(), alert.state, alert.message.clone()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_restored_alert_waits_for_its_attached_worker_and_continues_without_a_new_episode() {
        let mut spec = PoolSpec::spawn("legacy", 0);
        spec.kind = PoolKind::Attach;
        let rule = Rule::new(
            "big",
            Condition::Threshold {
                metric: "memory_mb".into(),
                cmp: Comparison::Above,
                fire: 200.0,
                clear: None,
            },
        );
        spec.rules.push(rule);
        let mut s = Sim::new(vec![spec]);
        let (restored, out) = s
            .fleet
            .restore_alerts(vec![open_alert("big", "legacy-4242", "legacy", AlertState::Firing)], t(0));
        s.absorb(out);
        assert_eq!(restored, 0, "the process is not discovered yet");
        assert!(s.fleet.alerts().get("big", "legacy-4242").is_none());
        // Discovery finds the same process again (same pid: same id): the alert is tracked again.
        let p = ProcessId { pid: 4242, start_ticks: 1000 };
        s.feed(Input::Discovered { pool: "legacy".into(), found: vec![(p, "gunicorn".into())] }, 1000);
        assert_eq!(s.fleet.alerts().get("big", "legacy-4242").map(|a| a.state), Some(AlertState::Firing));
        // Still above: no new pending/firing episode (no second notification).
        s.sample("legacy", 2000, &[("legacy-4242", 300)]);
        s.sample("legacy", 3000, &[("legacy-4242", 310)]);
        assert!(alert_changes(&s).is_empty(), "{:?}", alert_changes(&s));
        // Back under: resolved, as an episode that began in the last run.
        s.sample("legacy", 4000, &[("legacy-4242", 100)]);
        let changes = alert_changes(&s);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].1, AlertState::Resolved);
    }

    #[test]
    fn a_restored_alert_whose_worker_never_comes_back_ends_after_the_wait() {
        let mut spec = PoolSpec::spawn("legacy", 0);
        spec.kind = PoolKind::Attach;
        spec.rules.push(Rule::new(
            "big",
            Condition::Threshold {
                metric: "memory_mb".into(),
                cmp: Comparison::Above,
                fire: 200.0,
                clear: None,
            },
        ));
        let mut s = Sim::new(vec![spec]);
        let alerts = vec![
            open_alert("big", "legacy-1", "legacy", AlertState::Firing),
            open_alert("big", "legacy-2", "legacy", AlertState::Pending),
            // A rule the new configuration no longer has, and a pool that is gone: ended at once.
            open_alert("removed", "legacy", "legacy", AlertState::Firing),
            open_alert("big", "old-0", "old", AlertState::Flapping),
        ];
        let (restored, out) = s.fleet.restore_alerts(alerts, t(0));
        s.absorb(out);
        assert_eq!(restored, 0);
        let ended = alert_changes(&s);
        assert_eq!(ended.len(), 2, "{ended:?}");
        assert!(
            ended
                .iter()
                .all(|(_, st, msg)| *st == AlertState::Resolved && msg.contains("no longer configured"))
        );
        // Just before the wait is over nothing changes; at the end both end (pending → inactive).
        let wait = i64::try_from(RESTORE_WAIT.as_millis()).unwrap();
        s.feed(Input::Tick, wait - 1);
        assert_eq!(alert_changes(&s).len(), 2);
        s.feed(Input::Tick, wait);
        let changes = alert_changes(&s);
        assert_eq!(changes.len(), 4, "{changes:?}");
        assert_eq!((changes[2].0.as_str(), changes[2].1), ("legacy-1", AlertState::Resolved));
        assert_eq!((changes[3].0.as_str(), changes[3].1), ("legacy-2", AlertState::Inactive));
        assert!(changes[2].2.contains("not found again after the restart"), "{}", changes[2].2);
    }

    #[test]
    fn a_restored_restart_storm_alert_is_checked_against_the_new_runs_breaker() {
        let mut s = Sim::new(vec![PoolSpec::spawn("api", 1)]);
        s.spawn_all(0, true);
        let mut storm = open_alert(STORM_RULE, "api-0", "api", AlertState::Firing);
        storm.severity = Severity::Critical;
        let (restored, out) = s.fleet.restore_alerts(vec![storm], t(1000));
        s.absorb(out);
        assert_eq!(restored, 1);
        // The breaker starts closed in this run: the alert resolves at once instead of staying open.
        let changes = alert_changes(&s);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!((changes[0].0.as_str(), changes[0].1), ("api-0", AlertState::Resolved));
    }
}
