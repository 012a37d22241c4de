//! The engine task: owns the fleet, feeds it observations in arrival order, publishes its events and
//! hands its actions to the supervisor. One task, one owner: the fleet is never shared or locked.
//! Sampling of watched pids happens inline (a few µs a process); anything that can block — spawning,
//! waiting, probing, killing, scanning /proc for discovery — runs in other tasks that report back here.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, error, info, warn};

use tend_collect::Sampler;
use tend_core::event::Event;
use tend_core::fleet::{Action, CommandError, Fleet, Input, Observed, Output, Report};
use tend_core::model::{ProcessId, Source, WorkerId};
use tend_core::recycle::RecycleReason;
use tend_core::time::{Clock, Timestamp};

use crate::convert::{PoolRuntime, Runtimes};
use crate::supervisor::{self, Counters};

/// How often time-based decisions are made (deadlines, TTLs, `for` durations, restarts due).
pub const TICK: Duration = Duration::from_millis(250);
/// Worker processes started at most per tick (64 a second): a pool of 1024 is up in 16 s, and the
/// API and sampling keep their share of the machine meanwhile.
pub const SPAWNS_PER_TICK: usize = 16;
/// Events kept in memory for late subscribers and the API.
pub const EVENT_LOG: usize = 5000;

pub(crate) type Query = Box<dyn FnOnce(&EngineView<'_>) + Send>;

/// What queries see: the fleet plus runtime figures.
pub struct EngineView<'a> {
    pub fleet: &'a Fleet,
    pub now: Timestamp,
    pub events: &'a VecDeque<Event>,
    pub self_usage: &'a crate::dto::SelfUsage,
    /// How long the last sampling sweep of each pool took.
    pub collection: &'a HashMap<String, Duration>,
}

pub(crate) enum Msg {
    Observe(Input),
    Recycle {
        id: String,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    Stop {
        id: String,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    /// Remove a container worker.
    Remove {
        id: String,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    /// Remove every orphaned container now; replies with how many removals were started.
    CleanOrphans {
        reply: oneshot::Sender<usize>,
    },
    /// One stats sweep of a docker pool: metrics by container id.
    ContainerSamples {
        pool: String,
        readings: Vec<(String, tend_core::model::Metrics)>,
    },
    Ack {
        rule: String,
        subject: String,
        reply: oneshot::Sender<bool>,
    },
    Silence {
        rule: String,
        subject: String,
        until: Option<Timestamp>,
        reply: oneshot::Sender<bool>,
    },
    Query(Query),
    Report {
        report: Report,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

pub(crate) struct Engine {
    pub fleet: Fleet,
    pub pools: Runtimes,
    pub clock: Arc<dyn Clock>,
    pub events: broadcast::Sender<Event>,
    pub log: VecDeque<Event>,
    pub tx: mpsc::UnboundedSender<Msg>,
    pub rx: mpsc::UnboundedReceiver<Msg>,
    pub exe: std::path::PathBuf,
    pub jsonl: bool,
    samplers: HashMap<String, Box<dyn Sampler + Send>>,
    next_sweep: HashMap<String, Instant>,
    next_discovery: HashMap<String, Instant>,
    discovering: HashMap<String, bool>,
    counters: HashMap<(WorkerId, u32), Arc<Counters>>,
    self_sampler: Option<Box<dyn Sampler + Send>>,
    self_id: Option<ProcessId>,
    self_usage: crate::dto::SelfUsage,
    next_self: Instant,
    collection: HashMap<String, Duration>,
    scraped: crate::scrape::ScrapeCache,
    /// The history store, when there is one: samples and events are tapped into it.
    store: Option<tend_store::StoreHandle>,
    store_watch: crate::history::StoreWatch,
    /// Docker endpoints by pool name.
    docker: crate::docker::Endpoints,
    /// Spawns not started yet: at most [`SPAWNS_PER_TICK`] start each tick, so a large pool ramps up
    /// without a fork storm that would starve the API.
    spawn_queue: VecDeque<Action>,
    spawn_budget: usize,
    #[cfg(debug_assertions)]
    fault_panic_at: Option<Instant>,
}

impl Engine {
    /// The engine and the sender through which the App and the supervisor's tasks reach it.
    pub fn new(
        fleet: Fleet,
        pools: Runtimes,
        clock: Arc<dyn Clock>,
        events: broadcast::Sender<Event>,
        exe: std::path::PathBuf,
        jsonl: bool,
    ) -> (Self, mpsc::UnboundedSender<Msg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        let self_id = tend_collect::process_id(std::process::id()).ok();
        let engine = Engine {
            fleet,
            pools,
            clock,
            events,
            log: VecDeque::with_capacity(EVENT_LOG),
            tx: tx.clone(),
            rx,
            exe,
            jsonl,
            samplers: HashMap::new(),
            next_sweep: HashMap::new(),
            next_discovery: HashMap::new(),
            discovering: HashMap::new(),
            counters: HashMap::new(),
            self_sampler: tend_collect::default_sampler().ok(),
            self_id,
            self_usage: crate::dto::SelfUsage { cpu_percent: None, memory_bytes: None },
            next_self: now,
            collection: HashMap::new(),
            scraped: Default::default(),
            store: None,
            store_watch: Default::default(),
            docker: Default::default(),
            spawn_queue: VecDeque::new(),
            spawn_budget: SPAWNS_PER_TICK,
            #[cfg(debug_assertions)]
            fault_panic_at: fault::engine_panic_at(),
        };
        (engine, tx)
    }

    /// Record samples and events into this store; at start, stop what a crashed earlier run left running.
    pub fn with_store(mut self, store: tend_store::StoreHandle) -> Self {
        self.store = Some(store);
        self
    }

    /// Runs the engine until shutdown. A panic inside it (a defect) never leaves a server without an
    /// engine: the workers are drained as on a shutdown (SIGTERM, grace, SIGKILL), then the panic's
    /// message is returned so that the shell exits with a failure.
    pub async fn run(mut self) -> Result<(), String> {
        let first = AssertUnwindSafe(self.start_and_loop()).catch_unwind().await;
        let Err(panic) = first else { return Ok(()) };
        let message = panic_message(panic.as_ref());
        error!(panic = %message, "the engine failed: draining the workers, then stopping");
        let (reply, _) = oneshot::channel();
        let _ = self.tx.send(Msg::Shutdown { reply });
        if AssertUnwindSafe(self.main_loop()).catch_unwind().await.is_err() {
            // The fleet cannot even drain: SIGKILL every process group it knows.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| self.kill_remaining()));
        }
        Err(message)
    }

    async fn start_and_loop(&mut self) {
        let now = self.clock.now();
        if let Some(store) = &self.store {
            let grace = self.fleet.pools().iter().map(|p| p.stop_grace).max().unwrap_or_default();
            crate::history::clean_orphans(store.clone(), grace, now);
        }
        let out = self.fleet.start(now);
        crate::scrape::start(&self.pools, self.tx.clone(), self.scraped.clone());
        self.docker = crate::docker::start(&self.pools, self.tx.clone());
        self.dispatch(out);
        if let Some(store) = &self.store {
            // Alerts the last run left open come back before the first sample can re-evaluate them.
            let open = crate::history::open_alerts(store).await;
            let (restored, out) = self.fleet.restore_alerts(open, self.clock.now());
            if restored > 0 {
                info!(restored, "open alerts of the last run restored");
            }
            self.dispatch(out);
        }
        self.main_loop().await;
    }

    async fn main_loop(&mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown: Option<(oneshot::Sender<()>, Instant)> = None;
        loop {
            tokio::select! {
                msg = self.rx.recv() => {
                    let Some(msg) = msg else { break };
                    if let Msg::Shutdown { reply } = msg {
                        if shutdown.is_none() {
                            info!("stopping: draining spawned workers");
                            let out = self.fleet.shutdown(self.clock.now());
                            self.dispatch(out);
                            self.cancel_queued();
                            let longest = self.fleet.pools().iter().map(|p| p.stop_grace).max().unwrap_or_default();
                            shutdown = Some((reply, Instant::now() + longest + Duration::from_secs(3)));
                        }
                        continue;
                    }
                    self.handle(msg);
                }
                _ = tick.tick() => {
                    if shutdown.is_none() {
                        self.launch_queued();
                    }
                    let out = self.fleet.observe(Input::Tick, self.clock.now());
                    self.dispatch(out);
                    if let Some(input) = self.store.as_ref().and_then(|s| self.store_watch.check(&s.recorder)) {
                        let out = self.fleet.observe(input, self.clock.now());
                        self.dispatch(out);
                    }
                    if shutdown.is_none() {
                        self.sweep_due();
                    }
                    self.sample_self();
                    #[cfg(debug_assertions)]
                    fault::engine_panic_due(&mut self.fault_panic_at);
                }
            }
            if let Some((_, deadline)) = &shutdown
                && (self.fleet.all_stopped() || Instant::now() >= *deadline)
            {
                if !self.fleet.all_stopped() {
                    warn!("workers still running after their grace period: killing them");
                    self.kill_remaining();
                }
                if let Some((reply, _)) = shutdown.take() {
                    let _ = reply.send(());
                }
                break;
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        let now = self.clock.now();
        match msg {
            Msg::Observe(input) => {
                match &input {
                    Input::Exited { worker, incarnation, .. } => {
                        self.counters.remove(&(worker.clone(), *incarnation));
                    }
                    Input::Discovered { pool, .. } => {
                        self.discovering.remove(pool);
                    }
                    _ => {}
                }
                let out = self.fleet.observe(input, now);
                self.dispatch(out);
            }
            Msg::Recycle { id, reply } => {
                let r = self.fleet.recycle(&id, RecycleReason::Manual, "requested by operator", now);
                let _ = reply.send(r.map(|out| self.dispatch(out)));
            }
            Msg::Stop { id, reply } => {
                let r = self.fleet.stop(&id, now);
                let _ = reply.send(r.map(|out| self.dispatch(out)));
            }
            Msg::Remove { id, reply } => {
                let r = self.fleet.remove(&id, now);
                let _ = reply.send(r.map(|out| self.dispatch(out)));
            }
            Msg::CleanOrphans { reply } => {
                let n = crate::docker::clean_orphans(&self.docker, &self.fleet, self.tx.clone());
                let _ = reply.send(n);
            }
            Msg::ContainerSamples { pool, readings } => self.container_sweep(&pool, readings),
            Msg::Ack { rule, subject, reply } => {
                let r = self.fleet.acknowledge(&rule, &subject, now);
                let _ = reply.send(r.map(|out| self.dispatch(out)).is_some());
            }
            Msg::Silence { rule, subject, until, reply } => {
                let r = self.fleet.silence(&rule, &subject, until, now);
                let _ = reply.send(r.map(|out| self.dispatch(out)).is_some());
            }
            Msg::Query(q) => {
                let view = EngineView {
                    fleet: &self.fleet,
                    now,
                    events: &self.log,
                    self_usage: &self.self_usage,
                    collection: &self.collection,
                };
                q(&view);
            }
            Msg::Report { mut report, reply } => {
                // A registered pid that names a live process here is sampled like an attached one.
                if let tend_core::fleet::Report::Register(reg) = &mut report
                    && let Some(pid) = reg.pid
                {
                    reg.process = tend_collect::process_id(pid).ok();
                }
                if let Some(store) = &self.store {
                    crate::history::record_report(&store.recorder, &self.fleet, &report, now);
                }
                let r = self.fleet.report(report, now);
                let _ = reply.send(r.map(|out| self.dispatch(out)));
            }
            Msg::Shutdown { .. } => {}
        }
    }

    /// Sample every pool whose interval has come round, and start due discovery passes.
    fn sweep_due(&mut self) {
        let now = Instant::now();
        let names: Vec<String> = self.pools.keys().cloned().collect();
        for name in names {
            let Some(rt) = self.pools.get(&name).cloned() else { continue };
            // Deadlines are absolute (previous deadline + interval) and a sweep due within half a tick
            // runs now: scheduling from "now" made every other sweep slip to the next tick (1.25 s).
            let due = self.next_sweep.get(&name).copied();
            if let Some(interval) = rt.spec.interval
                && due.is_none_or(|t| t <= now + TICK / 2)
            {
                let mut next = due.unwrap_or(now) + interval;
                if next <= now {
                    // Fell behind (a stalled loop): resume the cadence instead of sweeping in a burst.
                    next = now + interval;
                }
                self.next_sweep.insert(name.clone(), next);
                self.sweep(&name, &rt);
            }
            if let Some(matcher) = rt.matcher.clone()
                && self.next_discovery.get(&name).is_none_or(|t| *t <= now)
                && !self.discovering.get(&name).copied().unwrap_or(false)
            {
                self.next_discovery.insert(name.clone(), now + rt.discover_every);
                self.discovering.insert(name.clone(), true);
                let mut exclude: Vec<u32> = self.fleet.owned_processes().iter().map(|p| p.pid).collect();
                exclude.push(std::process::id());
                let tx = self.tx.clone();
                let pool = name.clone();
                tokio::task::spawn_blocking(move || {
                    let found = tend_collect::discover::find(&matcher, &exclude)
                        .into_iter()
                        .map(|f| (f.id, f.name))
                        .collect();
                    let _ = tx.send(Msg::Observe(Input::Discovered { pool, found }));
                });
            }
        }
    }

    fn sweep(&mut self, pool: &str, rt: &PoolRuntime) {
        let list = self.fleet.watch_list(pool);
        if list.is_empty() {
            return;
        }
        let sampler = match self.samplers.get_mut(pool) {
            Some(s) => s,
            None => match sampler_for(rt) {
                Ok(s) => self.samplers.entry(pool.to_owned()).or_insert(s),
                Err(e) => {
                    let out = self.fleet.observe(
                        Input::SourceStatus {
                            source: "processes".into(),
                            degraded: true,
                            detail: format!("cannot read process table: {e}"),
                        },
                        self.clock.now(),
                    );
                    self.dispatch(out);
                    return;
                }
            },
        };
        let pids: Vec<ProcessId> = list.iter().map(|(_, _, p)| *p).collect();
        let started = Instant::now();
        let results = sampler.sample(&pids);
        let took = started.elapsed();
        debug!(pool, workers = pids.len(), micros = took.as_micros() as u64, "sweep");
        self.collection.insert(pool.to_owned(), took);
        let mut readings = Vec::with_capacity(results.len());
        let mut gone = Vec::new();
        let attached = rt.spec.kind.source() != Source::Spawned;
        let mut procs = Vec::with_capacity(results.len());
        for ((worker, n, process), (_, result)) in list.into_iter().zip(results) {
            match result {
                Ok(mut metrics) => {
                    let c = self.counters.get(&(worker.clone(), n));
                    let mut requests = c.and_then(|c| c.requests());
                    // The worker's own /metrics page, scraped by another task since the last sweep.
                    if rt.scrape.is_some()
                        && let Some(s) = crate::scrape::take_latest(&self.scraped, &worker, n)
                    {
                        metrics.custom.extend(s.custom);
                        requests = s.requests.or(requests);
                    }
                    readings.push(Observed {
                        worker,
                        incarnation: n,
                        metrics,
                        log_lines: c.map(|c| c.lines()),
                        requests,
                    });
                    procs.push(process);
                }
                // Our own children report their exit through wait(); only strangers vanish.
                Err(_) if attached => gone.push((worker, n)),
                Err(_) => {}
            }
        }
        let now = self.clock.now();
        for (worker, incarnation) in gone {
            let out = self.fleet.observe(Input::Gone { worker, incarnation }, now);
            self.dispatch(out);
        }
        // The history's copy of the readings, taken before the fleet consumes them.
        let taps: Option<Vec<_>> = self.store.as_ref().map(|_| {
            readings
                .iter()
                .zip(&procs)
                .map(|(r, p)| (r.worker.clone(), r.incarnation, Some(*p), r.metrics.clone(), r.requests))
                .collect()
        });
        let out = self.fleet.observe(Input::Samples { pool: pool.to_owned(), readings }, now);
        if let (Some(store), Some(taps)) = (&self.store, taps) {
            crate::history::record_sweep(&store.recorder, &self.fleet, pool, now, taps);
        }
        self.dispatch(out);
    }

    /// A docker pool's stats sweep (read by the docker source off this task), matched to the workers
    /// whose serving incarnation runs in each container.
    fn container_sweep(&mut self, pool: &str, readings: Vec<(String, tend_core::model::Metrics)>) {
        let list = self.fleet.container_watch_list(pool);
        let by_container: HashMap<&str, (&WorkerId, u32)> =
            list.iter().map(|(w, n, c)| (c.as_str(), (w, *n))).collect();
        let observed: Vec<Observed> = readings
            .into_iter()
            .filter_map(|(cid, metrics)| {
                let (worker, n) = by_container.get(cid.as_str())?;
                Some(Observed {
                    worker: (*worker).clone(),
                    incarnation: *n,
                    metrics,
                    log_lines: None,
                    requests: None,
                })
            })
            .collect();
        if observed.is_empty() {
            return;
        }
        let now = self.clock.now();
        let taps: Option<Vec<_>> = self.store.as_ref().map(|_| {
            observed
                .iter()
                .map(|r| (r.worker.clone(), r.incarnation, None, r.metrics.clone(), None))
                .collect()
        });
        let out = self.fleet.observe(Input::Samples { pool: pool.to_owned(), readings: observed }, now);
        if let (Some(store), Some(taps)) = (&self.store, taps) {
            crate::history::record_sweep(&store.recorder, &self.fleet, pool, now, taps);
        }
        self.dispatch(out);
    }

    fn sample_self(&mut self) {
        let now = Instant::now();
        if now < self.next_self {
            return;
        }
        self.next_self = now + Duration::from_secs(1);
        if let (Some(s), Some(id)) = (self.self_sampler.as_mut(), self.self_id)
            && let Some((_, Ok(m))) = s.sample(&[id]).into_iter().next()
        {
            self.self_usage.cpu_percent = m.cpu_percent.or(self.self_usage.cpu_percent);
            self.self_usage.memory_bytes = m.memory_bytes;
        }
    }

    /// Publish events, then carry out actions.
    fn dispatch(&mut self, out: Output) {
        for ev in out.events {
            if self.jsonl
                && let Ok(line) = serde_json::to_string(&crate::dto::ToWire::wire(&ev))
            {
                use std::io::Write;
                // A reader that went away (a closed pipe) ends the lines, not the engine.
                if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
                    warn!(error = %e, "stdout closed: no more --events-jsonl lines");
                    self.jsonl = false;
                }
            }
            if let tend_core::EventKind::Recycled { worker, reason, detail, .. } = &ev.kind {
                info!(worker = %worker, reason = %reason, detail = %detail, "recycled");
            }
            if self.log.len() >= EVENT_LOG {
                self.log.pop_front();
            }
            self.log.push_back(ev.clone());
            if let Some(store) = &self.store {
                store.recorder.event(&ev);
            }
            let _ = self.events.send(ev);
        }
        for action in out.actions {
            self.act(action);
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Spawn { .. } if self.spawn_budget == 0 => self.spawn_queue.push_back(action),
            Action::Spawn { worker, pool, slot, incarnation } => {
                self.spawn_budget -= 1;
                let Some(rt) = self.pools.get(&pool).cloned() else { return };
                let counters = Arc::new(Counters::new(rt.request_pattern.is_some()));
                self.counters.insert((worker.clone(), incarnation), counters.clone());
                supervisor::launch(supervisor::Job {
                    worker,
                    incarnation,
                    slot,
                    pool: rt,
                    exe: self.exe.clone(),
                    counters,
                    tx: self.tx.clone(),
                });
            }
            Action::Terminate { worker, incarnation, process, grace, group } => {
                supervisor::terminate(worker, incarnation, process, grace, group);
            }
            other => crate::docker::act(&self.docker, other, self.tx.clone()),
        }
    }

    /// A new tick's spawn budget, spent first on the spawns that waited.
    fn launch_queued(&mut self) {
        self.spawn_budget = SPAWNS_PER_TICK;
        while self.spawn_budget > 0
            && let Some(action) = self.spawn_queue.pop_front()
        {
            self.act(action);
        }
    }

    /// At shutdown, spawns that never started are reported failed, so the fleet does not wait for them.
    fn cancel_queued(&mut self) {
        for action in std::mem::take(&mut self.spawn_queue) {
            if let Action::Spawn { worker, incarnation, .. } = action {
                let input = Input::SpawnFailed { worker, incarnation, error: "Tend is stopping".into() };
                let out = self.fleet.observe(input, self.clock.now());
                self.dispatch(out);
            }
        }
    }

    /// Last resort at the end of shutdown: SIGKILL every spawned process group still alive.
    fn kill_remaining(&mut self) {
        for id in self.fleet.owned_processes() {
            let _ = tend_collect::signal::send_group(id, tend_collect::signal::Signal::Kill);
        }
    }
}

/// The text of a panic's payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_owned(),
        (_, Some(s)) => s.clone(),
        _ => "a panic without a message".to_owned(),
    }
}

/// Fault injection for the end-to-end tests of a failing engine; compiled into debug builds only.
#[cfg(debug_assertions)]
mod fault {
    use std::time::{Duration, Instant};

    /// `TEND_FAULT_ENGINE_PANIC_SECS=N`: the engine task panics N seconds after it started.
    pub(super) fn engine_panic_at() -> Option<Instant> {
        let secs: f64 = std::env::var("TEND_FAULT_ENGINE_PANIC_SECS").ok()?.parse().ok()?;
        Some(Instant::now() + Duration::try_from_secs_f64(secs).ok()?)
    }

    pub(super) fn engine_panic_due(at: &mut Option<Instant>) {
        if at.is_some_and(|t| Instant::now() >= t) {
            *at = None;
            panic!("injected fault (TEND_FAULT_ENGINE_PANIC_SECS)");
        }
    }
}

/// The /proc reader with the fields the pool's profile collects; sysinfo where /proc is unreadable.
fn sampler_for(rt: &PoolRuntime) -> std::io::Result<Box<dyn Sampler + Send>> {
    match tend_collect::ProcSampler::with_fields(rt.fields) {
        Ok(s) => Ok(Box::new(s)),
        Err(_) => tend_collect::default_sampler(),
    }
}
