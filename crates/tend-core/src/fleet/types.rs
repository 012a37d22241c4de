//! The fleet's vocabulary: pool specs, what goes in (inputs, commands) and what comes out (actions,
//! events, errors), and the state it keeps per worker, incarnation and pool.

use super::*;

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
    /// Readings kept in memory per worker (older ones are the history store's).
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
            history: 60,
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
    pub(super) fn describe(&self) -> String {
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
    /// One sampling sweep of a pool, or one [`Part`] of it (a large pool's sweep is spread over its
    /// interval). `round_done`: the pool's round is complete, every watched process has its reading,
    /// and the pool-scope rules read the aggregates now (once a round, whatever the parts).
    Samples {
        pool: String,
        readings: Vec<Observed>,
        round_done: bool,
    },
    /// The complete list of processes matching an attach pool's selector, as a scan that began at
    /// `began` saw them. Watched processes it does not list ended, unless attached after it began.
    Discovered {
        pool: String,
        found: Vec<(ProcessId, String)>,
        began: Timestamp,
    },
    /// Processes that started matching an attach pool's selector (heard from the kernel as they exec'd
    /// or renamed themselves). Unlike [`Input::Discovered`] it says nothing of the others.
    Appeared {
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

pub(super) fn source_name(s: Source) -> &'static str {
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
    pub(super) announced: bool,
    /// When a spawned incarnation's process started: its readiness deadline counts from here, not from
    /// the request (spawns may wait in the engine's rate-limited queue first).
    pub(super) spawned_at: Option<Timestamp>,
}

impl Incarnation {
    /// How long this incarnation has gone without a sample: since its last one, or since it entered
    /// its state when it has none yet. `stale_after` is measured against this.
    pub(super) fn unsampled_for(&self, now: Timestamp) -> Duration {
        now.since(self.last_at.unwrap_or(self.lifecycle.since()))
    }

    pub(super) fn new(n: u32, process: Option<ProcessId>, at: Timestamp, cause: &str) -> Self {
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
    pub(super) fn new(
        reason: RecycleReason,
        detail: String,
        old: Option<&Incarnation>,
        now: Timestamp,
    ) -> Self {
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
    pub(super) respawn_reason: Option<(RecycleReason, String)>,
    /// Set when the storm breaker tripped: no more automatic restarts.
    pub held: Option<String>,
    /// Stopped by the operator: not replaced until recycled by hand.
    pub stopped: bool,
    pub restarts: u32,
    /// Requests, errors and warnings of incarnations that have ended (the live ones add their own).
    pub retired_totals: (u64, u64, u64),
    /// Its recent readings (the profile's depth), packed.
    pub recent: crate::ring::SampleRing,
    pub(super) storm: StormBreaker,
    pub(super) generation: u32,
    pub(super) cleaned_at: Option<Timestamp>,
    /// What an orchestrator reported: its registration and the errors and warnings it recorded.
    pub reports: ReportLog,
}

impl Worker {
    pub(super) fn new(id: WorkerId, pool: &str, source: Source, slot: Option<u32>) -> Self {
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
            recent: Default::default(),
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

    pub(super) fn find(&mut self, n: u32) -> Option<(Role, &mut Incarnation)> {
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

    pub(super) fn retire(&mut self, inc: Incarnation) {
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
pub(super) enum Role {
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
    pub(super) recent_recycles: VecDeque<Timestamp>,
}

impl PoolTotals {
    /// An incarnation ended: completed ones count with their task time, failed and timed-out ones as
    /// failures; anything else (terminated, still live) is not an outcome.
    pub(super) fn count_end(&mut self, outcome: Option<State>, task_time: Option<Duration>) {
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
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
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

/// One part of a pool's sweep: the watched processes whose pid is `index` modulo `of`. A pid stays in
/// its part for the life of its process, so each is read once a round whatever the order of the parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    pub index: u32,
    pub of: u32,
}

impl Part {
    pub const WHOLE: Part = Part { index: 0, of: 1 };

    pub fn holds(self, pid: u32) -> bool {
        pid % self.of.max(1) == self.index
    }

    /// The round's last part: after it every watched process has its reading.
    pub fn is_last(self) -> bool {
        self.index + 1 >= self.of
    }
}
