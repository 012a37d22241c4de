//! The App facade: the one API both shells (the HTTP server and the desktop app) call. It starts the
//! engine task and talks to it by message; it never touches the fleet directly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use tend_api as api;
use tend_api::{HealthDto, SettingsDto, WorkerDetailDto, WorkerDto};
use tend_core::event::Event;
use tend_core::fleet::{Fleet, Report};
use tend_core::rules::AlertState;
use tend_core::time::{Clock, Timestamp};

use crate::clock::SystemClock;
use crate::config::Config;
use crate::convert;
use crate::dto::{self, ToWire};
use crate::engine::Engine;
use crate::mailbox::{EngineView, Msg};

mod error;
pub mod history;
mod hosts;
pub mod live;
mod reports;
pub mod stream;

pub use error::AppError;
pub use history::{CsvExport, ReadyExport, Subject, Window};
pub use stream::Streamed;

/// The longest silence: a year, in minutes.
pub const MAX_SILENCE_MINUTES: f64 = 525_600.0;

/// How the App was started, for health and the UI's empty states.
#[derive(Clone, Debug, Default)]
pub struct AppOptions {
    /// The config file, None when running the embedded demo.
    pub config_path: Option<PathBuf>,
    /// Print every event as a JSON line on stdout.
    pub events_jsonl: bool,
    /// The executable that `$TEND_EXE` stands for in commands (defaults to the running one).
    pub exe: Option<PathBuf>,
    /// Run without the history store (nothing written to disk).
    pub no_history: bool,
}

struct Shared {
    tx: mpsc::UnboundedSender<Msg>,
    events: broadcast::Sender<Event>,
    clock: Arc<dyn Clock>,
    started: Timestamp,
    options: AppOptions,
    config: Config,
    store: Option<tend_store::StoreHandle>,
    retention: tend_store::Retention,
    /// The notification sink, once a shell started one (the desktop app; `tend serve` does not).
    notify: OnceLock<crate::sinks::notify::NotifyHandle>,
    /// How the engine task ended, once it has: `Err` with the panic's message after a defect.
    ended: watch::Receiver<Option<Result<(), String>>>,
    /// Processes adopted as a child subreaper; None where Tend cannot be one.
    adoption: Option<crate::sources::supervisor::Adoption>,
    /// The longest `stop_grace` of the pools: what escaped processes get at shutdown.
    longest_grace: std::time::Duration,
    /// The agents of `[[remote]]`, when this Tend is a hub.
    remotes: crate::remote::Remotes,
}

/// A running engine. Cheap to clone.
#[derive(Clone)]
pub struct App {
    shared: Arc<Shared>,
}

impl App {
    /// Start the engine on a tokio runtime. Workers of spawn pools are started at once.
    pub fn start(config: Config, options: AppOptions) -> anyhow::Result<App> {
        Self::start_with_clock(config, options, Arc::new(SystemClock))
    }

    pub fn start_with_clock(
        config: Config,
        options: AppOptions,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<App> {
        let (specs, runtimes) = convert::pools(&config)?;
        // First the data directory's lock: a second Tend on it stops here, before it starts anything.
        let retention = crate::sinks::history::retention(&config.store.retention);
        let store =
            crate::sinks::history::open(&config, options.no_history, retention.clone(), clock.clone())?;
        let longest_grace = specs.iter().map(|p| p.stop_grace).max().unwrap_or_default();
        let fleet = Fleet::new(specs);
        let (events, _) = broadcast::channel(4096);
        let exe = match &options.exe {
            Some(p) => p.clone(),
            None => std::env::current_exe()?,
        };
        // Subscribed before the engine starts so that no notification is missed.
        crate::sinks::webhooks::start(&config, events.subscribe());
        let (mut engine, tx) =
            Engine::new(fleet, runtimes, clock.clone(), events.clone(), exe, options.events_jsonl);
        if let Some(store) = &store {
            engine = engine.with_store(store.clone());
        }
        engine = engine.with_discovery(config.discovery.clone());
        // Before the first worker starts: what a worker leaves behind comes back to Tend.
        let adoption = crate::sources::supervisor::adopt(tx.clone());
        let run = tokio::spawn(engine.run());
        let (ended_tx, ended) = watch::channel(None);
        tokio::spawn(async move {
            let result = run.await.unwrap_or_else(|e| Err(format!("the engine task ended: {e}")));
            let _ = ended_tx.send(Some(result));
        });
        let started = clock.now();
        let remotes = crate::remote::Remotes::start(&config.remotes, clock.clone(), tx.clone());
        Ok(App {
            shared: Arc::new(Shared {
                tx,
                events,
                clock,
                started,
                options,
                config,
                store,
                retention,
                notify: OnceLock::new(),
                ended,
                adoption,
                longest_grace,
                remotes,
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Start notifications through `notifier`, with the config's `[notifications]` budget. Only the
    /// first call starts a sink; later ones return its handle. None when `enabled = false`.
    pub fn start_notifications(
        &self,
        notifier: Arc<dyn crate::sinks::notify::Notifier>,
    ) -> Option<crate::sinks::notify::NotifyHandle> {
        if !self.shared.config.notifications.enabled {
            return None;
        }
        let s = &self.shared;
        Some(
            s.notify
                .get_or_init(|| {
                    crate::sinks::notify::start(&s.config, s.events.subscribe(), s.clock.clone(), notifier)
                })
                .clone(),
        )
    }

    /// The running notification sink, if any.
    pub fn notifications(&self) -> Option<&crate::sinks::notify::NotifyHandle> {
        self.shared.notify.get()
    }

    /// What Settings shows: config file, data directory, retention, the notification budget.
    pub fn settings(&self) -> SettingsDto {
        let s = &self.shared;
        let data_dir = if s.options.no_history {
            None
        } else {
            s.config.store.data_dir.clone().or_else(tend_store::default_data_dir)
        };
        dto::settings(
            s.options.config_path.as_deref(),
            data_dir.as_deref(),
            &s.retention,
            &s.config.notifications,
            s.notify.get().map(|n| n.status()),
        )
    }

    pub fn options(&self) -> &AppOptions {
        &self.shared.options
    }

    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// Every event from now on. A slow subscriber that falls more than 4096 events behind is told
    /// it lagged (`RecvError::Lagged`) and continues from the newest.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Run `f` inside the engine task against a consistent view of the fleet.
    pub(crate) async fn query<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&EngineView<'_>) -> T + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let q = Box::new(move |v: &EngineView<'_>| {
            let _ = reply.send(f(v));
        });
        self.shared.tx.send(Msg::Query(q)).map_err(|_| AppError::Stopped)?;
        rx.await.map_err(|_| AppError::Stopped)
    }

    /// This Tend's workers, then those of its agents (see [`App::hosts`]).
    pub async fn workers(&self) -> Result<Vec<WorkerDto>, AppError> {
        let mut all = self.query(workers_of).await?;
        all.extend(self.shared.remotes.workers());
        Ok(all)
    }

    pub async fn worker(&self, id: &str) -> Result<Option<WorkerDetailDto>, AppError> {
        if let Some(remote) = self.remote(id) {
            return self.remote_worker(remote?).await;
        }
        let id = id.to_owned();
        self.query(move |v| v.fleet.worker(&id).map(|w| dto::worker_detail(v.fleet, w, v.now))).await
    }

    pub async fn pool_metrics(&self, pool: &str) -> Result<Option<api::PoolMetrics>, AppError> {
        let pool = pool.to_owned();
        self.query(move |v| v.fleet.pool_metrics(&pool).wire()).await
    }

    /// This Tend's pools, then its agents' (each with its `host`).
    pub async fn pools(&self) -> Result<Vec<api::PoolMetrics>, AppError> {
        let mut all = self.query(pools_of).await?;
        all.extend(self.shared.remotes.pools());
        Ok(all)
    }

    /// This Tend's alerts, then its agents' (subjects `<subject>@<host>`).
    pub async fn alerts(&self) -> Result<Vec<api::Alert>, AppError> {
        let mut all = self.query(alerts_of).await?;
        all.extend(self.shared.remotes.alerts());
        Ok(all)
    }

    /// Events still in memory after `since` (sequence number), oldest first.
    pub async fn events_since(
        &self,
        since: u64,
        worker: Option<String>,
    ) -> Result<Vec<api::Event>, AppError> {
        self.query(move |v| {
            v.events
                .iter()
                .filter(|e| e.seq > since)
                .filter(|e| {
                    worker.as_deref().is_none_or(|w| e.kind.worker().is_some_and(|x| x.as_str() == w))
                })
                .map(ToWire::wire)
                .collect()
        })
        .await
    }

    /// A worker's events still in memory, oldest first; 404 for a worker the fleet does not know.
    pub async fn worker_events(&self, id: &str, since: u64) -> Result<Vec<api::Event>, AppError> {
        if let Some(remote) = self.remote(id) {
            return self.remote_events(remote?, since).await;
        }
        if self.worker(id).await?.is_none() {
            return Err(AppError::NotFound(format!("no worker with id {id:?}")));
        }
        self.events_since(since, Some(id.to_owned())).await
    }

    /// The Prometheus exposition of the fleet and its content type: OpenMetrics when `accept` allows
    /// it (Prometheus does), else the classic text format.
    pub async fn prometheus_page(&self, accept: &str) -> Result<(&'static str, String), AppError> {
        let snap = self.query(crate::exposition::snapshot).await?;
        Ok(crate::exposition::render(snap, accept))
    }

    /// This Tend's health; on a hub, its agents' workers are counted too (the top bar and the tray
    /// sum every host) and an agent that does not answer is a degraded source (`host gpu-2`).
    pub async fn health(&self) -> Result<HealthDto, AppError> {
        let facts = self.health_facts();
        let mut health = self.query(move |v| facts.health(v)).await?;
        self.shared.remotes.add_to(&mut health);
        Ok(health)
    }

    /// What health needs from outside the engine task, to build it inside a query.
    fn health_facts(&self) -> HealthFacts {
        HealthFacts {
            started: self.shared.started,
            config: self.shared.options.config_path.as_ref().map(|p| p.display().to_string()),
            transport: transport(&self.shared.config.server),
        }
    }

    /// The operator actions below take `by`: who asks (an API token's name, `desktop`), for the audit
    /// trail ([`tend_core::EventKind::OperatorAction`]).
    pub async fn recycle(&self, id: &str, by: &str) -> Result<(), AppError> {
        if let Some(remote) = self.remote(id) {
            return self.forward(remote?, "recycle", by).await;
        }
        let (reply, rx) = oneshot::channel();
        self.shared
            .tx
            .send(Msg::Recycle { id: id.to_owned(), by: by.to_owned(), reply })
            .map_err(|_| AppError::Stopped)?;
        Ok(rx.await.map_err(|_| AppError::Stopped)??)
    }

    pub async fn stop(&self, id: &str, by: &str) -> Result<(), AppError> {
        if let Some(remote) = self.remote(id) {
            return self.forward(remote?, "stop", by).await;
        }
        let (reply, rx) = oneshot::channel();
        self.shared
            .tx
            .send(Msg::Stop { id: id.to_owned(), by: by.to_owned(), reply })
            .map_err(|_| AppError::Stopped)?;
        Ok(rx.await.map_err(|_| AppError::Stopped)??)
    }

    /// Remove a container worker (stopped first when it runs).
    pub async fn remove(&self, id: &str, by: &str) -> Result<(), AppError> {
        if let Some(remote) = self.remote(id) {
            return self.forward(remote?, "remove", by).await;
        }
        let (reply, rx) = oneshot::channel();
        self.shared
            .tx
            .send(Msg::Remove { id: id.to_owned(), by: by.to_owned(), reply })
            .map_err(|_| AppError::Stopped)?;
        Ok(rx.await.map_err(|_| AppError::Stopped)??)
    }

    /// Orphaned containers (Tend's pool label, owner gone) on the engines of the docker pools.
    pub async fn orphans(&self) -> Result<Vec<api::Orphan>, AppError> {
        self.query(|v| {
            let mut seen = std::collections::BTreeSet::new();
            v.fleet
                .orphans()
                .values()
                .flatten()
                .filter(|o| seen.insert(o.id.clone()))
                .map(ToWire::wire)
                .collect()
        })
        .await
    }

    /// Remove every orphaned container now; how many removals were started.
    pub async fn clean_orphans(&self, by: &str) -> Result<usize, AppError> {
        let (reply, rx) = oneshot::channel();
        self.shared.tx.send(Msg::CleanOrphans { by: by.to_owned(), reply }).map_err(|_| AppError::Stopped)?;
        rx.await.map_err(|_| AppError::Stopped)
    }

    /// Acknowledge an alert; 404 when there is no such alert.
    pub async fn acknowledge(&self, rule: &str, subject: &str, by: &str) -> Result<(), AppError> {
        if let Some(remote) = self.remote(subject) {
            return self.forward_alert(remote?, "ack", rule, None, by).await.map(|_| ());
        }
        let (reply, rx) = oneshot::channel();
        let msg = Msg::Ack { rule: rule.to_owned(), subject: subject.to_owned(), by: by.to_owned(), reply };
        self.shared.tx.send(msg).map_err(|_| AppError::Stopped)?;
        no_alert(rx.await.map_err(|_| AppError::Stopped)?, rule, subject)
    }

    /// Silence an alert for `minutes` from now (0 lifts the silence, at most a year); until when.
    /// 404 when there is no such alert.
    pub async fn silence(
        &self,
        rule: &str,
        subject: &str,
        minutes: f64,
        by: &str,
    ) -> Result<Option<api::Timestamp>, AppError> {
        if !minutes.is_finite() || !(0.0..=MAX_SILENCE_MINUTES).contains(&minutes) {
            return Err(AppError::BadRequest(
                "field \"minutes\" must be a number from 0 (lift) to 525600".to_owned(),
            ));
        }
        if let Some(remote) = self.remote(subject) {
            let answer = self.forward_alert(remote?, "silence", rule, Some(minutes), by).await?;
            return Ok(serde_json::from_value(answer["silenced_until"].clone()).unwrap_or(None));
        }
        let until = (minutes > 0.0)
            .then(|| Timestamp::from_millis(self.now().as_millis() + (minutes * 60_000.0) as i64));
        let (reply, rx) = oneshot::channel();
        let msg = Msg::Silence {
            rule: rule.to_owned(),
            subject: subject.to_owned(),
            until,
            by: by.to_owned(),
            reply,
        };
        self.shared.tx.send(msg).map_err(|_| AppError::Stopped)?;
        no_alert(rx.await.map_err(|_| AppError::Stopped)?, rule, subject)?;
        Ok(until.wire())
    }

    /// Apply an orchestrator's report (register, state, metrics, error, requests).
    pub(crate) async fn report(&self, report: Report) -> Result<(), AppError> {
        let (reply, rx) = oneshot::channel();
        self.shared.tx.send(Msg::Report { report, reply }).map_err(|_| AppError::Stopped)?;
        Ok(rx.await.map_err(|_| AppError::Stopped)??)
    }

    /// The errors and warnings reported for a worker, oldest first; None for an unknown worker.
    pub async fn error_log(&self, id: &str) -> Result<Vec<api::ErrorRecord>, AppError> {
        let key = id.to_owned();
        self.query(move |v| v.fleet.error_log(&key).map(|l| l.iter().map(ToWire::wire).collect()))
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no worker with id {id:?}")))
    }

    /// Resolves when the engine task has ended: `Ok` after [`App::shutdown`], `Err` with the panic's
    /// message when a defect stopped it (its workers are drained by then). A shell that sees `Err`
    /// should exit with a failure rather than serve without an engine.
    pub async fn engine_ended(&self) -> Result<(), String> {
        let mut rx = self.shared.ended.clone();
        match rx.wait_for(|e| e.is_some()).await {
            Ok(end) => end.clone().unwrap_or(Ok(())),
            Err(_) => Err("the engine task is gone".into()),
        }
    }

    /// Drain every spawned worker (SIGTERM, grace, SIGKILL) and stop the engine, then stop the processes
    /// that escaped their worker's group. Returns when all spawned processes are gone.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.shared.tx.send(Msg::Shutdown { reply }).is_ok() {
            let _ = rx.await;
        }
        // Until the engine task has ended: a panic during the drain drops the reply above while the
        // engine still stops the workers (and [`App::engine_ended`] then says it failed).
        let _ = self.engine_ended().await;
        // The workers are gone; now whatever escaped their groups.
        if let Some(adoption) = &self.shared.adoption {
            adoption.shutdown(self.shared.longest_grace).await;
        }
        // The engine's last events are queued by now: write them and close the database.
        if let Some(store) = &self.shared.store {
            store.close().await;
        }
    }
}

fn no_alert(found: bool, rule: &str, subject: &str) -> Result<(), AppError> {
    if found { Ok(()) } else { Err(AppError::NotFound(format!("no alert {rule} on {subject}"))) }
}

fn workers_of(v: &EngineView<'_>) -> Vec<WorkerDto> {
    v.fleet.workers().map(|w| dto::worker_dto(v.fleet, w, v.now)).collect()
}

fn pools_of(v: &EngineView<'_>) -> Vec<api::PoolMetrics> {
    v.fleet.pools().iter().filter_map(|p| v.fleet.pool_metrics(&p.name).wire()).collect()
}

fn alerts_of(v: &EngineView<'_>) -> Vec<api::Alert> {
    v.fleet.alerts().alerts().map(ToWire::wire).collect()
}

fn transport(server: &crate::config::ServerConfig) -> api::TransportDto {
    api::TransportDto {
        tls: server.tls.is_some(),
        insecure_http: server.tls.is_none() && !server.listen.ip().is_loopback(),
        tokens: server.has_tokens(),
    }
}

/// The parts of health that are fixed at start.
struct HealthFacts {
    started: Timestamp,
    config: Option<String>,
    transport: api::TransportDto,
}

impl HealthFacts {
    fn health(&self, v: &EngineView<'_>) -> HealthDto {
        let (started, config) = (self.started, self.config.clone());
        let demo = config.is_none();
        let mut by_state: BTreeMap<api::State, usize> = BTreeMap::new();
        let mut workers = 0;
        for w in v.fleet.workers() {
            workers += 1;
            *by_state.entry(w.state().wire()).or_default() += 1;
        }
        let degraded = v.fleet.degraded().clone();
        let status = if v.fleet.is_shutting_down() {
            "stopping"
        } else if degraded.is_empty() {
            "ok"
        } else {
            "degraded"
        };
        HealthDto {
            status: status.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started: Some(started.wire()),
            uptime_secs: v.now.since(started).as_secs_f64(),
            degraded,
            workers,
            by_state,
            alerts_firing: v
                .fleet
                .alerts()
                .alerts()
                .filter(|a| matches!(a.state, AlertState::Firing | AlertState::Flapping))
                .count(),
            config,
            demo,
            tend: v.self_usage.clone(),
            discovery: v.discovery.cloned(),
            transport: self.transport.clone(),
        }
    }
}
