//! The engine task: owns the fleet, feeds it observations in arrival order, publishes its events and
//! hands its actions to the sources that carry them out. One task, one owner: the fleet is never shared
//! or locked. Sampling of watched pids happens inline (a few µs a process, `sweep.rs`); anything that
//! can block — spawning, waiting, probing, killing, scanning /proc for discovery, scraping, docker —
//! runs in the tasks of `crate::sources`, which report back through the mailbox (`crate::mailbox`) and
//! never see this module. Only the App facade starts and reaches the engine.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{error, info, warn};

use tend_collect::Sampler;
use tend_collect::scrape::Scraped;
use tend_core::event::Event;
use tend_core::fleet::{Action, Fleet, Input, Output};
use tend_core::model::{ProcessId, WorkerId};
use tend_core::recycle::RecycleReason;
use tend_core::time::Clock;

use crate::convert::Runtimes;
pub use crate::mailbox::EngineView;
use crate::mailbox::{Mailbox, Msg};
use crate::sinks::history;
use crate::sources::supervisor::{self, Counters};
use crate::sources::{docker, scrape};

mod discovery;
mod sweep;

/// How often time-based decisions are made (deadlines, TTLs, `for` durations, restarts due).
pub const TICK: Duration = Duration::from_millis(250);
/// Worker processes started at most per tick (64 a second): a pool of 1024 is up in 16 s, and the
/// API and sampling keep their share of the machine meanwhile.
pub const SPAWNS_PER_TICK: usize = 16;
/// Events kept in memory for late subscribers and the API.
pub const EVENT_LOG: usize = 5000;

pub(crate) struct Engine {
    pub fleet: Fleet,
    pub pools: Runtimes,
    pub clock: Arc<dyn Clock>,
    pub events: broadcast::Sender<Event>,
    pub log: VecDeque<Event>,
    pub tx: Mailbox,
    pub rx: mpsc::UnboundedReceiver<Msg>,
    pub exe: std::path::PathBuf,
    pub jsonl: bool,
    samplers: HashMap<String, Box<dyn Sampler + Send>>,
    next_sweep: HashMap<String, Instant>,
    /// Large pools' rounds under way: the parts still to sweep (`sweep.rs`).
    rounds: HashMap<String, sweep::Round>,
    discovery_cfg: crate::config::DiscoveryConfig,
    /// Attach pools' discovery, from the start of the loop.
    discovery: Option<discovery::Discovery>,
    counters: HashMap<(WorkerId, u32), Arc<Counters>>,
    self_sampler: Option<Box<dyn Sampler + Send>>,
    self_id: Option<ProcessId>,
    self_usage: crate::dto::SelfUsage,
    next_self: Instant,
    collection: HashMap<String, Duration>,
    /// The latest scrape of each worker's serving incarnation, until a sweep takes it.
    scraped: HashMap<WorkerId, (u32, Scraped)>,
    /// The history store, when there is one: samples and events are tapped into it.
    store: Option<tend_store::StoreHandle>,
    store_watch: history::StoreWatch,
    /// Docker endpoints by pool name.
    docker: docker::Endpoints,
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
    ) -> (Self, Mailbox) {
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
            rounds: HashMap::new(),
            discovery_cfg: Default::default(),
            discovery: None,
            counters: HashMap::new(),
            self_sampler: tend_collect::default_sampler().ok(),
            self_id,
            self_usage: crate::dto::SelfUsage { cpu_percent: None, memory_bytes: None },
            next_self: now,
            collection: HashMap::new(),
            scraped: HashMap::new(),
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

    /// How attach pools find new processes (`[discovery]`).
    pub fn with_discovery(mut self, cfg: crate::config::DiscoveryConfig) -> Self {
        self.discovery_cfg = cfg;
        self
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
            history::clean_orphans(store.clone(), grace, now);
        }
        let out = self.fleet.start(now);
        self.discovery = Some(discovery::Discovery::start(self.discovery_cfg.clone(), &self.pools, &self.tx));
        scrape::start(&self.pools, self.tx.clone());
        self.docker = docker::start(&self.pools, self.tx.clone());
        self.dispatch(out);
        if let Some(store) = &self.store {
            // Alerts the last run left open come back before the first sample can re-evaluate them.
            let open = history::open_alerts(store).await;
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
                        if let Some(d) = &mut self.discovery {
                            d.done(pool);
                        }
                    }
                    _ => {}
                }
                let out = self.fleet.observe(input, now);
                self.dispatch(out);
            }
            Msg::Listener(l) => {
                if let Some(d) = &mut self.discovery {
                    d.on_listener(l, Instant::now());
                }
            }
            Msg::Recycle { id, by, reply } => {
                let r = self.fleet.recycle(&id, RecycleReason::Manual, &format!("requested by {by}"), now);
                let _ = reply.send(r.map(|out| self.acted(out, &by, "recycle", &id, String::new(), now)));
            }
            Msg::Stop { id, by, reply } => {
                let r = self.fleet.stop(&id, now);
                let _ = reply.send(r.map(|out| self.acted(out, &by, "stop", &id, String::new(), now)));
            }
            Msg::Remove { id, by, reply } => {
                let r = self.fleet.remove(&id, now);
                let _ = reply.send(r.map(|out| self.acted(out, &by, "remove", &id, String::new(), now)));
            }
            Msg::CleanOrphans { by, reply } => {
                let n = docker::clean_orphans(&self.docker, &self.fleet, self.tx.clone());
                if n > 0 {
                    let detail = format!("{n} container(s)");
                    self.acted(Output::default(), &by, "clean_orphans", "orphans", detail, now);
                }
                let _ = reply.send(n);
            }
            Msg::Ack { rule, subject, by, reply } => {
                let r = self.fleet.acknowledge(&rule, &subject, now);
                let target = format!("{rule}/{subject}");
                let r = r.map(|out| self.acted(out, &by, "acknowledge", &target, String::new(), now));
                let _ = reply.send(r.is_some());
            }
            Msg::Silence { rule, subject, until, by, reply } => {
                let r = self.fleet.silence(&rule, &subject, until, now);
                let target = format!("{rule}/{subject}");
                let detail = match until {
                    Some(t) => format!("for {} min", (t.as_millis() - now.as_millis()).max(0) / 60_000),
                    None => "lifted".to_owned(),
                };
                let r = r.map(|out| self.acted(out, &by, "silence", &target, detail, now));
                let _ = reply.send(r.is_some());
            }
            Msg::Relay(events) => {
                let out = self.fleet.relay(events.into_iter().map(|e| (e.at, e.kind)));
                self.dispatch(out);
            }
            Msg::Audit { by, action, target, detail } => {
                let audit = self.fleet.audit(&by, &action, &target, detail, now);
                self.dispatch(audit);
            }
            Msg::ContainerSamples { pool, readings } => self.container_sweep(&pool, readings),
            Msg::Scraped { readings } => self.scraped(readings),
            Msg::Query(q) => {
                let view = EngineView {
                    fleet: &self.fleet,
                    now,
                    events: &self.log,
                    self_usage: &self.self_usage,
                    collection: &self.collection,
                    discovery: self.discovery.as_ref().and_then(|d| d.wire()),
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
                    history::record_report(&store.recorder, &self.fleet, &report, now);
                }
                let r = self.fleet.report(report, now);
                let _ = reply.send(r.map(|out| self.dispatch(out)));
            }
            Msg::Shutdown { .. } => {}
        }
    }

    /// Publish what an operator's action decided, then its audit event.
    fn acted(
        &mut self,
        out: Output,
        by: &str,
        action: &str,
        target: &str,
        detail: String,
        now: tend_core::Timestamp,
    ) {
        self.dispatch(out);
        let audit = self.fleet.audit(by, action, target, detail, now);
        self.dispatch(audit);
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
            other => docker::act(&self.docker, other, self.tx.clone()),
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
