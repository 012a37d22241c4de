//! Docker containers as workers: how the engine's listings and events (start, health, kill, oom, die,
//! destroy) map onto the lifecycle, how a container worker is recycled (restart, or recreate with the new
//! container started before the old is removed), and the orphan count. Pure like the rest of the fleet:
//! it never talks to an engine; the runtime turns [`Action`]s into engine calls and reports back.
//!
//! Identity: a container worker's id is its `tend.worker` label when it has one (Tend puts it on every
//! container it recreates, so the id survives recreation), else the container's name prefixed with the
//! pool (`etl-web1`; a name that already starts with `pool-` is kept as is). Each container run (start to
//! die) is one incarnation; a restart of the same container is the next incarnation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    Action, CommandError, Ending, Fleet, Incarnation, Output, PoolKind, RecycleInFlight, Role, Worker,
};
use crate::event::EventKind;
use crate::lifecycle::State;
use crate::model::{Source, WorkerId};
use crate::recycle::RecycleReason;
use crate::rules::{Comparison, Reading, Rule, Scope, Severity};
use crate::time::Timestamp;

/// The label that says which Tend pool a container belongs to (for orphan detection).
pub const POOL_LABEL: &str = "tend.pool";
/// The label Tend puts on containers it recreates: the worker id, stable across recreations.
pub const WORKER_LABEL: &str = "tend.worker";
/// The pid of the process that owns a container (an orchestrator); the container is an orphan once that
/// process is gone.
pub const OWNER_PID_LABEL: &str = "tend.owner-pid";
const FOUND_RUNNING: &str = "found running";
/// A listing is a snapshot taken a moment before it arrives, so it may predate the latest events: it only
/// corrects runs that have been in their state at least this long (missed events, an engine outage).
pub const LISTING_SETTLE: Duration = Duration::from_secs(5);
/// The built-in pool rule raised when a pool's engine has more orphaned containers than allowed.
pub const ORPHAN_RULE: &str = "orphaned-containers";

/// How a docker pool recycles a container.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerRecycle {
    /// Create a copy from the inspected config, start it, and remove the old one once the copy is READY.
    #[default]
    Recreate,
    /// `docker restart` the same container.
    Restart,
}

/// What the fleet needs to know about a docker pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DockerPool {
    /// The engine endpoint, as configured (for display and orphan grouping).
    pub host: String,
    /// Without a healthcheck, a container running this long is READY.
    pub start: Duration,
    pub recycle: ContainerRecycle,
    /// Remove containers that ended on their own (CLEANED follows the removal).
    pub remove_ended: bool,
    /// Alert when more orphaned containers than this are found; `None` = no alert.
    pub orphans_max: Option<u32>,
    /// Remove orphaned containers automatically.
    pub clean_orphans: bool,
}

/// A container's health as the engine reports it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No healthcheck.
    None,
    Starting,
    Healthy,
    Unhealthy,
}

/// A container's state in a listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "status")]
pub enum ContainerStatus {
    Running {
        health: Health,
    },
    Exited {
        code: i64,
        oom: bool,
    },
    /// Created, paused, restarting, removing, dead...
    Other {
        state: String,
    },
}

/// One container as listed (or as named by an event).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerSeen {
    pub id: String,
    pub name: String,
    /// Its `tend.worker` label.
    pub worker_label: Option<String>,
    pub status: ContainerStatus,
    /// It has a healthcheck: READY waits for `healthy`.
    pub has_health: bool,
}

/// What an engine event says happened to a container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerChange {
    Started,
    Health(Health),
    Killed { signal: Option<String> },
    Oom,
    Died { code: i64 },
    Destroyed,
}

/// The container an incarnation runs in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerRun {
    pub id: String,
    pub name: String,
    pub has_health: bool,
    /// A kill event was seen (someone stopped it).
    #[serde(skip)]
    pub killed: Option<String>,
    /// The kernel OOM killer struck.
    #[serde(skip)]
    pub oom: bool,
}

impl ContainerRun {
    pub fn of(seen: &ContainerSeen) -> Self {
        ContainerRun {
            id: seen.id.clone(),
            name: seen.name.clone(),
            has_health: seen.has_health,
            killed: None,
            oom: false,
        }
    }
    /// The first 12 characters of the id, as `docker ps` shows it.
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }
}

/// A container that carries Tend's pool label but whose owner is gone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Orphan {
    pub id: String,
    pub name: String,
    /// Its `tend.pool` label.
    pub pool_label: String,
    /// Why it is an orphan: no such pool, or its owner pid no longer runs.
    pub reason: String,
    /// The engine state (running, exited...).
    pub state: String,
}

/// The name under which an engine shows up among the degraded sources.
pub fn source_name(host: &str) -> String {
    format!("docker:{host}")
}

/// The worker id for a container of `pool`.
pub fn worker_id(pool: &str, seen: &ContainerSeen) -> WorkerId {
    if let Some(w) = seen.worker_label.as_deref().filter(|w| !w.is_empty()) {
        return WorkerId::new(w);
    }
    let name = seen.name.trim_start_matches('/');
    if name.starts_with(&format!("{pool}-")) {
        WorkerId::new(name)
    } else {
        WorkerId::new(format!("{pool}-{name}"))
    }
}

impl Fleet {
    pub(super) fn docker_pool(&self, pool: &str) -> Option<DockerPool> {
        match &self.pool(pool)?.kind {
            PoolKind::Docker(d) => Some(d.clone()),
            _ => None,
        }
    }

    /// The containers to sample for a pool: each worker's serving incarnation while it runs.
    pub fn container_watch_list(&self, pool: &str) -> Vec<(WorkerId, u32, String)> {
        self.workers
            .values()
            .filter(|w| w.pool == pool && w.source == Source::Container)
            .filter_map(|w| {
                let c = w.current.as_ref()?;
                (c.state().is_live()).then_some((w.id.clone(), c.n, c.container.as_ref()?.id.clone()))
            })
            .collect()
    }

    /// Orphaned containers per docker pool, as last listed.
    pub fn orphans(&self) -> &std::collections::BTreeMap<String, Vec<Orphan>> {
        &self.orphans
    }

    /// Remove a container worker (stop it first if it runs); CLEANED follows the removal.
    pub fn remove(&mut self, id: &str, now: Timestamp) -> Result<Output, CommandError> {
        let wid = WorkerId::new(id);
        let w = self.workers.get_mut(&wid).ok_or_else(|| CommandError::UnknownWorker(id.to_owned()))?;
        if w.source != Source::Container {
            return Err(CommandError::NotContainer(id.to_owned()));
        }
        w.stopped = true;
        w.queued = None;
        self.stop_containers(&wid, true, "removed by operator", now);
        Ok(self.take())
    }

    /// Stop (and maybe remove) every container of a worker, live or ended.
    pub(super) fn stop_containers(&mut self, id: &WorkerId, remove: bool, why: &str, now: Timestamp) {
        let grace = self.grace_of(id);
        let Some(w) = self.workers.get_mut(id) else { return };
        w.recycle = None;
        let pool = w.pool.clone();
        let mut todo = Vec::new();
        for inc in w.current.iter_mut().chain(w.incoming.iter_mut()).chain(w.outgoing.iter_mut()) {
            let Some(c) = &inc.container else { continue };
            if inc.state() == State::Cleaned || (!remove && !inc.state().is_live()) {
                continue;
            }
            if inc.state().is_live() && inc.ending.is_none() {
                inc.ending = Some(Ending::Drain(why.to_owned()));
            }
            todo.push((inc.n, inc.state(), c.id.clone()));
        }
        for (n, state, container) in todo {
            if matches!(state, State::Ready | State::Working) {
                self.transition(id, n, State::Completing, why.to_owned(), now);
            }
            self.push_action(Action::ContainerStop {
                worker: id.clone(),
                pool: pool.clone(),
                incarnation: n,
                container,
                grace,
                remove,
            });
        }
    }

    /// Which worker and incarnation run in container `cid`.
    fn find_container(&self, pool: &str, cid: &str) -> Option<(WorkerId, u32, Role)> {
        for w in self.workers.values().filter(|w| w.pool == pool && w.source == Source::Container) {
            let roles = [(Role::Current, w.current.as_ref()), (Role::Incoming, w.incoming.as_ref())];
            for (role, inc) in roles.into_iter().chain(w.outgoing.iter().map(|o| (Role::Outgoing, Some(o)))) {
                if let Some(inc) = inc
                    && inc.container.as_ref().is_some_and(|c| c.id == cid)
                {
                    return Some((w.id.clone(), inc.n, role));
                }
            }
        }
        None
    }

    /// The run has been in its state long enough for a listing to correct it.
    fn settled(&self, id: &WorkerId, n: u32, now: Timestamp) -> bool {
        self.workers
            .get(id)
            .and_then(|w| w.find_ref(n))
            .is_some_and(|i| now.since(i.lifecycle.since()) >= LISTING_SETTLE)
    }

    fn inc_mut(&mut self, id: &WorkerId, n: u32) -> Option<&mut Incarnation> {
        self.workers.get_mut(id)?.find(n).map(|(_, i)| i)
    }

    pub(super) fn on_container(
        &mut self,
        pool: &str,
        seen: ContainerSeen,
        change: ContainerChange,
        now: Timestamp,
    ) {
        if self.docker_pool(pool).is_none() {
            return;
        }
        let found = self.find_container(pool, &seen.id);
        match change {
            ContainerChange::Started => self.container_running(pool, &seen, "container started", now),
            ContainerChange::Health(h) => {
                if let Some((id, n, _)) = found {
                    if let Some(inc) = self.inc_mut(&id, n)
                        && let Some(c) = inc.container.as_mut()
                    {
                        c.has_health = true;
                    }
                    if h == Health::Healthy {
                        self.on_ready(&id, n, "container healthy", now);
                    }
                }
            }
            ContainerChange::Killed { signal } => {
                if let Some((id, n, _)) = found
                    && let Some(c) = self.inc_mut(&id, n).and_then(|i| i.container.as_mut())
                {
                    c.killed = Some(signal.unwrap_or_else(|| "a signal".into()));
                }
            }
            ContainerChange::Oom => {
                if let Some((id, n, _)) = found
                    && let Some(c) = self.inc_mut(&id, n).and_then(|i| i.container.as_mut())
                {
                    c.oom = true;
                }
            }
            ContainerChange::Died { code } => {
                if let Some((id, n, _)) = found {
                    self.container_died(pool, &id, n, code, false, now);
                }
            }
            ContainerChange::Destroyed => {
                if let Some((id, n, role)) = found {
                    self.container_destroyed(&id, n, role, now);
                }
            }
        }
    }

    /// A full listing: start what runs unseen, end what died or vanished unseen (missed events).
    pub(super) fn on_containers(&mut self, pool: &str, found: Vec<ContainerSeen>, now: Timestamp) {
        if self.docker_pool(pool).is_none() {
            return;
        }
        for seen in &found {
            match &seen.status {
                ContainerStatus::Running { health } => {
                    self.container_running(pool, seen, FOUND_RUNNING, now);
                    if *health == Health::Healthy
                        && let Some((id, n, _)) = self.find_container(pool, &seen.id)
                    {
                        self.on_ready(&id, n, "container healthy", now);
                    }
                }
                ContainerStatus::Exited { code, oom } => {
                    if let Some((id, n, _)) = self.find_container(pool, &seen.id)
                        && self.settled(&id, n, now)
                    {
                        if *oom && let Some(c) = self.inc_mut(&id, n).and_then(|i| i.container.as_mut()) {
                            c.oom = true;
                        }
                        self.container_died(pool, &id, n, *code, true, now);
                    }
                }
                ContainerStatus::Other { .. } => {}
            }
        }
        // Known containers that are no longer listed were removed.
        let mut gone = Vec::new();
        for w in self.workers.values().filter(|w| w.pool == pool && w.source == Source::Container) {
            let incs = [(Role::Current, w.current.as_ref()), (Role::Incoming, w.incoming.as_ref())];
            for (role, inc) in incs.into_iter().chain(w.outgoing.iter().map(|o| (Role::Outgoing, Some(o)))) {
                let Some(inc) = inc else { continue };
                let Some(c) = &inc.container else { continue };
                if inc.state() != State::Cleaned
                    && now.since(inc.lifecycle.since()) >= LISTING_SETTLE
                    && !found.iter().any(|f| f.id == c.id)
                {
                    gone.push((w.id.clone(), inc.n, role));
                }
            }
        }
        for (id, n, role) in gone {
            self.container_destroyed(&id, n, role, now);
        }
    }

    /// The container runs: a new worker, the next incarnation of a known one, or the announced start of
    /// a recreated copy.
    fn container_running(&mut self, pool: &str, seen: &ContainerSeen, cause: &str, now: Timestamp) {
        if let Some((id, n, role)) = self.find_container(pool, &seen.id) {
            let Some(w) = self.workers.get_mut(&id) else { return };
            let Some((_, inc)) = w.find(n) else { return };
            if !inc.announced {
                inc.announced = true;
                let first = inc.lifecycle.history()[0].at;
                self.emit(
                    first,
                    EventKind::StateChanged {
                        worker: id.clone(),
                        pool: pool.to_owned(),
                        incarnation: n,
                        process: None,
                        from: None,
                        to: State::Initializing,
                        cause: format!("{cause}: container {}", seen.name),
                    },
                );
                return;
            }
            // A run Tend timed out (never READY) may go on running: the listing does not restart it.
            let from_listing = cause == FOUND_RUNNING;
            if inc.state().is_live()
                || from_listing
                    && (inc.state() == State::Timeout || now.since(inc.lifecycle.since()) < LISTING_SETTLE)
            {
                return;
            }
            // The same container runs again (a restart): the ended run is cleaned, a new one begins.
            if inc.state() != State::Cleaned {
                self.transition(&id, n, State::Cleaned, "container restarted".into(), now);
                self.count_outcome(&id, n);
            }
            if role == Role::Outgoing {
                return;
            }
        }
        let id = worker_id(pool, seen);
        // The start of a recreated copy can arrive before its create call returned: adopt it.
        if let Some(w) = self.workers.get_mut(&id)
            && let Some(inc) =
                w.incoming.as_mut().or(w.current.as_mut()).filter(|i| i.container.is_none() && !i.announced)
        {
            inc.container = Some(ContainerRun::of(seen));
            return self.container_running(pool, seen, cause, now);
        }
        if !self.workers.contains_key(&id) {
            self.workers.insert(id.clone(), Worker::new(id.clone(), pool, Source::Container, None));
            self.emit(
                now,
                EventKind::WorkerAdded {
                    worker: id.clone(),
                    pool: pool.to_owned(),
                    source: Source::Container,
                },
            );
            self.restore_awaiting(&id, now);
        }
        let Some(w) = self.workers.get_mut(&id) else { return };
        // A different container under the same worker id while the old one still runs: the old one is
        // now outgoing (it ends on its own events).
        w.generation += 1;
        let n = w.generation;
        if n > 1 {
            w.restarts += 1;
        }
        w.cleaned_at = None;
        let mut inc = Incarnation::new(n, None, now, cause);
        inc.container = Some(ContainerRun::of(seen));
        inc.announced = true;
        if let Some(old) = w.current.replace(inc) {
            if old.state().is_live() {
                w.outgoing.push(old);
            } else {
                w.retire(old);
            }
        }
        self.emit(
            now,
            EventKind::StateChanged {
                worker: id.clone(),
                pool: pool.to_owned(),
                incarnation: n,
                process: None,
                from: None,
                to: State::Initializing,
                cause: format!("{cause}: container {}", seen.name),
            },
        );
    }

    /// The container's main process ended with `code`. The run stays ended (not CLEANED) until the
    /// container is removed or started again.
    fn container_died(&mut self, pool: &str, id: &WorkerId, n: u32, code: i64, missed: bool, now: Timestamp) {
        let Some(spec) = self.docker_pool(pool) else { return };
        let Some(inc) = self.inc_mut(id, n) else { return };
        let state = inc.state();
        if !state.is_live() {
            return;
        }
        let (oom, killed) =
            inc.container.as_ref().map(|c| (c.oom, c.killed.clone())).unwrap_or((false, None));
        let asked = inc.ending.clone();
        let seen = if missed { " (seen in a listing)" } else { "" };
        let desc = format!("exited with code {code}{seen}");
        let path: &[State] = if oom {
            &[State::Failed]
        } else if let Some(Ending::Drain(why) | Ending::Kill(why)) = &asked {
            let cause = format!("{desc} ({why})");
            self.transition(id, n, State::Terminated, cause, now);
            &[]
        } else if killed.is_some() {
            &[State::Terminated]
        } else if code == 0 {
            match state {
                State::Initializing => &[State::Ready, State::Completing, State::Completed],
                State::Completing => &[State::Completed],
                _ => &[State::Completing, State::Completed],
            }
        } else {
            &[State::Failed]
        };
        let cause = if oom {
            format!("out of memory: killed by the kernel OOM killer, {desc}")
        } else if let Some(sig) = &killed {
            format!("{desc} (stopped by the engine with {sig})")
        } else {
            desc
        };
        for st in path {
            self.transition(id, n, *st, cause.clone(), now);
        }
        let Some(w) = self.workers.get(id) else { return };
        // A copy that ended before it was READY is removed; its removal fails the recycle.
        let incoming = w.incoming.as_ref().is_some_and(|i| i.n == n);
        let restarting = w.recycle.is_some() && spec.recycle == ContainerRecycle::Restart && asked.is_some();
        let container = w.find_ref(n).and_then(|i| i.container.as_ref()).map(|c| c.id.clone());
        if (incoming || spec.remove_ended && asked.is_none() && !restarting)
            && let Some(container) = container
        {
            self.stop_container(id, n, container);
        }
    }

    /// The container was removed: its run is CLEANED (after an ending if it was still running).
    fn container_destroyed(&mut self, id: &WorkerId, n: u32, role: Role, now: Timestamp) {
        let Some(inc) = self.inc_mut(id, n) else { return };
        let state = inc.state();
        if state == State::Cleaned {
            return;
        }
        if state.is_live() {
            self.transition(id, n, State::Terminated, "container removed while running".into(), now);
        }
        self.transition(id, n, State::Cleaned, "container removed".into(), now);
        self.after_cleaned(id, n, role, now);
    }

    /// Count a run's outcome for the pool's totals when it is cleaned outside `after_cleaned`.
    fn count_outcome(&mut self, id: &WorkerId, n: u32) {
        let Some(w) = self.workers.get(id) else { return };
        let Some(inc) = w.find_ref(n) else { return };
        let outcome = inc.lifecycle.outcome();
        let task_time = inc.lifecycle.task_time();
        if let Some(t) = self.totals.get_mut(&w.pool) {
            t.count_end(outcome, task_time);
        }
    }

    pub(super) fn on_container_created(&mut self, id: &WorkerId, n: u32, run: ContainerRun, _now: Timestamp) {
        if let Some(inc) = self.inc_mut(id, n)
            && inc.container.is_none()
        {
            inc.container = Some(run);
        }
    }

    pub(super) fn on_container_action_failed(&mut self, id: &WorkerId, n: u32, error: &str, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else { return };
        let pool = w.pool.clone();
        let Some((role, inc)) = w.find(n) else { return };
        match role {
            // The copy was never created (or never started): drop it, the old container keeps serving.
            Role::Incoming if !inc.announced => {
                w.incoming = None;
            }
            _ => {
                // A restart or stop that failed: the container keeps running as it was.
                if inc.state().is_live() && inc.state() != State::Completing {
                    inc.ending = None;
                }
            }
        }
        if let Some(r) = w.recycle.take() {
            self.emit(
                now,
                EventKind::RecycleFailed {
                    worker: id.clone(),
                    pool: pool.clone(),
                    reason: r.reason,
                    error: error.to_owned(),
                },
            );
        }
        self.emit(
            now,
            EventKind::SourceStatus {
                source: format!("docker:{pool}"),
                degraded: false,
                detail: format!("{id}: {error}"),
            },
        );
    }

    /// Recycle a container worker: restart it, or recreate it (copy first, old removed when the copy is
    /// READY). Planned recycles wait for the pool's `max_unavailable` budget like spawned ones.
    pub(super) fn begin_container_recycle(
        &mut self,
        id: &WorkerId,
        reason: RecycleReason,
        detail: String,
        now: Timestamp,
        manual: bool,
    ) {
        let Some(w) = self.workers.get(id) else { return };
        let pool = w.pool.clone();
        let Some(spec) = self.pool(&pool).cloned() else { return };
        let Some(docker) = self.docker_pool(&pool) else { return };
        let Some(cur) = w.current.as_ref() else { return };
        let Some(container) = cur.container.clone() else { return };
        let serving = matches!(cur.state(), State::Ready | State::Working);
        if self.queue_over_max_unavailable(id, &spec, reason, &detail, serving && !manual) {
            return;
        }
        let Some(w) = self.workers.get_mut(id) else { return };
        w.queued = None;
        let old = w.current.as_ref();
        let rec = RecycleInFlight::new(reason, detail.clone(), old, now);
        w.recycle = Some(rec);
        self.emit(
            now,
            EventKind::RecycleStarted {
                worker: id.clone(),
                pool: pool.clone(),
                reason,
                detail: format!("{detail} (container {})", container.name),
                old_process: None,
            },
        );
        if !manual && self.check_storm_before_restart(id, &spec, now) {
            return;
        }
        let grace = spec.stop_grace;
        let Some(w) = self.workers.get_mut(id) else { return };
        match docker.recycle {
            ContainerRecycle::Restart => {
                let Some(cur) = w.current.as_mut() else { return };
                let n = cur.n;
                if cur.state().is_live() {
                    cur.ending = Some(Ending::Drain(format!("restart ({reason})")));
                }
                self.push_action(Action::ContainerRestart {
                    worker: id.clone(),
                    pool,
                    incarnation: n,
                    container: container.id,
                    grace,
                });
            }
            ContainerRecycle::Recreate => {
                w.generation += 1;
                let n = w.generation;
                w.restarts += 1;
                let inc = Incarnation::new(n, None, now, &format!("recreate requested ({reason})"));
                if w.current.as_ref().is_some_and(|c| c.state().is_live()) {
                    w.incoming = Some(inc);
                } else if let Some(old) = w.current.replace(inc) {
                    // The old container has ended: the copy serves at once and the old one is removed.
                    let old_n = old.n;
                    w.outgoing.push(old);
                    self.push_action(Action::ContainerStop {
                        worker: id.clone(),
                        pool: pool.clone(),
                        incarnation: old_n,
                        container: container.id.clone(),
                        grace,
                        remove: true,
                    });
                }
                self.push_action(Action::ContainerRecreate {
                    worker: id.clone(),
                    pool,
                    incarnation: n,
                    from: container.id,
                });
            }
        }
    }

    /// Whether the engine of this pool is down (its containers' staleness is then not their fault).
    pub(super) fn engine_down(&self, spec: &super::PoolSpec) -> bool {
        matches!(&spec.kind, PoolKind::Docker(d) if self.degraded.contains_key(&source_name(&d.host)))
    }

    /// An engine is back: staleness of its containers counts from now (the first samples follow).
    pub(super) fn engine_back(&mut self, source: &str, now: Timestamp) {
        let pools: Vec<String> = self
            .pools
            .iter()
            .filter(|p| matches!(&p.kind, PoolKind::Docker(d) if source_name(&d.host) == source))
            .map(|p| p.name.clone())
            .collect();
        for w in self.workers.values_mut().filter(|w| pools.contains(&w.pool)) {
            if let Some(c) = w.current.as_mut().filter(|c| c.state().is_live()) {
                c.last_at = Some(now);
            }
        }
    }

    /// Containers without a healthcheck are READY once they ran for the pool's `start` time.
    pub(super) fn tick_containers(&mut self, now: Timestamp) {
        let mut ready = Vec::new();
        for w in self.workers.values().filter(|w| w.source == Source::Container) {
            let Some(PoolKind::Docker(d)) = self.pool(&w.pool).map(|p| &p.kind) else { continue };
            for inc in w.current.iter().chain(w.incoming.iter()) {
                if inc.announced
                    && inc.state() == State::Initializing
                    && inc.ending.is_none()
                    && inc.container.as_ref().is_some_and(|c| !c.has_health)
                    && now.since(inc.lifecycle.since()) >= d.start
                {
                    ready.push((w.id.clone(), inc.n, d.start));
                }
            }
        }
        for (id, n, start) in ready {
            self.on_ready(&id, n, &format!("running for {}", super::secs(start)), now);
        }
    }

    /// A new orphan listing for a pool's engine: the built-in alert, and removal when the pool says so.
    pub(super) fn on_orphans(&mut self, pool: &str, orphans: Vec<Orphan>, now: Timestamp) {
        let Some(d) = self.docker_pool(pool) else { return };
        let count = orphans.len();
        if d.clean_orphans && !orphans.is_empty() {
            self.push_action(Action::RemoveOrphans {
                pool: pool.to_owned(),
                containers: orphans.iter().map(|o| o.id.clone()).collect(),
            });
        }
        self.orphans.insert(pool.to_owned(), orphans);
        if let Some(max) = d.orphans_max {
            let rule = orphan_rule(max);
            let reading = Reading::Value(count as f64);
            if let Some(alert) = self.alerts.observe(&rule, pool, pool, reading, now) {
                self.emit(now, EventKind::AlertChanged { alert });
            }
        }
    }
}

/// The built-in orphan rule: more than `max` orphaned containers on the pool's engine.
pub fn orphan_rule(max: u32) -> Rule {
    Rule {
        scope: Scope::Pool,
        severity: Severity::Warning,
        flap_max: 0,
        ..Rule::threshold(ORPHAN_RULE, "orphaned_containers", Comparison::Above, f64::from(max), None)
    }
}

impl Worker {
    fn find_ref(&self, n: u32) -> Option<&Incarnation> {
        self.current.iter().chain(self.incoming.iter()).chain(self.outgoing.iter()).find(|i| i.n == n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::fleet::sim::{MB, t};
    use crate::fleet::{Observed, PoolSpec};
    use crate::model::Metrics;
    use crate::recycle::RecyclePolicy;

    fn fleet(recycle: ContainerRecycle, remove_ended: bool) -> Fleet {
        let mut spec = PoolSpec::spawn("etl", 0);
        spec.kind = PoolKind::Docker(DockerPool {
            host: "unix:///d.sock".into(),
            start: Duration::from_secs(1),
            recycle,
            remove_ended,
            orphans_max: Some(1),
            clean_orphans: false,
        });
        spec.recycle =
            RecyclePolicy { memory_bytes: Some(100 * MB), warmup: Duration::ZERO, ..Default::default() };
        let mut f = Fleet::new(vec![spec]);
        let _ = f.start(t(0));
        f
    }

    fn seen(id: &str, name: &str) -> ContainerSeen {
        ContainerSeen {
            id: id.into(),
            name: name.into(),
            worker_label: None,
            status: ContainerStatus::Running { health: Health::None },
            has_health: false,
        }
    }

    fn ev(f: &mut Fleet, id: &str, name: &str, change: ContainerChange, ms: i64) -> Output {
        f.observe(Input::Container { pool: "etl".into(), seen: seen(id, name), change }, t(ms))
    }

    fn states(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::StateChanged { incarnation, to, .. } => Some(format!("{incarnation}:{to}")),
                _ => None,
            })
            .collect()
    }

    use crate::fleet::Input;

    /// Each case: engine events in order, then the transitions of the worker they produce.
    #[test]
    fn engine_events_map_onto_the_lifecycle() {
        use ContainerChange::*;
        let cases: Vec<(&str, Vec<ContainerChange>, &[&str])> = vec![
            (
                "exit 1",
                vec![Started, Died { code: 1 }, Destroyed],
                &["1:INITIALIZING", "1:READY", "1:FAILED", "1:CLEANED"],
            ),
            (
                "exit 0",
                vec![Started, Died { code: 0 }, Destroyed],
                &["1:INITIALIZING", "1:READY", "1:COMPLETING", "1:COMPLETED", "1:CLEANED"],
            ),
            ("oom", vec![Started, Oom, Died { code: 137 }], &["1:INITIALIZING", "1:READY", "1:FAILED"]),
            (
                "docker stop",
                vec![Started, Killed { signal: Some("signal 15".into()) }, Died { code: 143 }],
                &["1:INITIALIZING", "1:READY", "1:TERMINATED"],
            ),
            (
                "docker restart",
                vec![Started, Died { code: 1 }, Started],
                &["1:INITIALIZING", "1:READY", "1:FAILED", "1:CLEANED", "2:INITIALIZING", "2:READY"],
            ),
            (
                "rm -f while running",
                vec![Started, Destroyed],
                &["1:INITIALIZING", "1:READY", "1:TERMINATED", "1:CLEANED"],
            ),
            ("healthy", vec![Started, Health(super::Health::Healthy)], &["1:INITIALIZING", "1:READY"]),
        ];
        for (name, changes, expected) in cases {
            let mut f = fleet(ContainerRecycle::Recreate, false);
            let mut events = Vec::new();
            for (i, c) in changes.into_iter().enumerate() {
                // Started at 0; everything else 2 s later (after start_secs), ticking in between.
                let ms = if i == 0 { 0 } else { 2000 + i as i64 };
                events.extend(f.observe(Input::Tick, t(ms)).events);
                events.extend(ev(&mut f, "c1", "etl-a", c, ms).events);
                events.extend(f.observe(Input::Tick, t(ms + 1500)).events);
            }
            assert_eq!(states(&events), expected, "{name}");
            if name == "oom" {
                let w = f.worker("etl-a").unwrap();
                let cause = &w.current.as_ref().unwrap().lifecycle.history().last().unwrap().cause;
                assert!(cause.contains("out of memory"), "{cause}");
            }
        }
    }

    #[test]
    fn a_listing_reconciles_missed_events() {
        let mut f = fleet(ContainerRecycle::Recreate, true);
        let a = seen("c1", "etl-a");
        let b = seen("c2", "etl-b");
        let out = f.observe(Input::Containers { pool: "etl".into(), found: vec![a.clone(), b] }, t(0));
        assert_eq!(states(&out.events), ["1:INITIALIZING", "1:INITIALIZING"]);
        // a exited unseen; b vanished unseen. A listing younger than the runs' last change is not trusted
        // (it may have been taken before the events already applied).
        let exited = ContainerSeen { status: ContainerStatus::Exited { code: 2, oom: false }, ..a };
        let early = f.observe(Input::Containers { pool: "etl".into(), found: vec![exited.clone()] }, t(500));
        assert_eq!(states(&early.events), Vec::<String>::new());
        let out = f.observe(Input::Containers { pool: "etl".into(), found: vec![exited] }, t(6000));
        assert_eq!(states(&out.events), ["1:FAILED", "1:TERMINATED", "1:CLEANED"]);
        // remove_ended: the failed one is removed.
        assert!(
            matches!(&out.actions[..], [Action::ContainerStop { container, remove: true, .. }] if container == "c1")
        );
    }

    #[test]
    fn a_memory_recycle_recreates_and_drains_the_old_container_once_the_copy_is_ready() {
        let mut f = fleet(ContainerRecycle::Recreate, false);
        ev(&mut f, "c1", "etl-a", ContainerChange::Started, 0);
        let _ = f.observe(Input::Tick, t(1500));
        assert_eq!(f.worker("etl-a").unwrap().state(), State::Ready);
        let reading = Observed {
            worker: WorkerId::new("etl-a"),
            incarnation: 1,
            metrics: Metrics { memory_bytes: Some(150 * MB), ..Default::default() },
            log_lines: None,
            requests: None,
        };
        let out = f.observe(
            Input::Samples { pool: "etl".into(), readings: vec![reading], round_done: true },
            t(2000),
        );
        assert!(
            matches!(&out.actions[..], [Action::ContainerRecreate { incarnation: 2, from, .. }] if from == "c1"),
            "{:?}",
            out.actions
        );
        // The copy starts (its start event may come before the create call returns).
        let copy = ContainerSeen { worker_label: Some("etl-a".into()), ..seen("c2", "etl-a-r2") };
        let out = f.observe(
            Input::Container { pool: "etl".into(), seen: copy.clone(), change: ContainerChange::Started },
            t(2100),
        );
        assert_eq!(states(&out.events), ["2:INITIALIZING"]);
        let _ = f.observe(
            Input::ContainerCreated {
                worker: WorkerId::new("etl-a"),
                incarnation: 2,
                container: ContainerRun::of(&copy),
            },
            t(2150),
        );
        // Old one still serves until the copy is READY; then it is drained and removed.
        let out = f.observe(Input::Tick, t(3200));
        assert_eq!(states(&out.events), ["2:READY", "1:COMPLETING"]);
        assert!(
            matches!(&out.actions[..], [Action::ContainerStop { container, remove: true, .. }] if container == "c1")
        );
        let out = ev(&mut f, "c1", "etl-a", ContainerChange::Died { code: 137 }, 4000);
        assert_eq!(states(&out.events), ["1:TERMINATED"]);
        let out = ev(&mut f, "c1", "etl-a", ContainerChange::Destroyed, 4100);
        assert_eq!(states(&out.events), ["1:CLEANED"]);
        let recycled = f.workers().next().map(|w| w.recycle.is_none());
        assert_eq!(recycled, Some(true));
        assert_eq!(f.container_watch_list("etl"), [(WorkerId::new("etl-a"), 2, "c2".to_owned())]);
    }

    #[test]
    fn orphans_above_the_limit_fire_the_built_in_alert() {
        let mut f = fleet(ContainerRecycle::Restart, false);
        let orphan = |id: &str| Orphan {
            id: id.into(),
            name: id.into(),
            pool_label: "gone".into(),
            reason: "no pool named \"gone\"".into(),
            state: "running".into(),
        };
        let out = f.observe(Input::Orphans { pool: "etl".into(), orphans: vec![orphan("o1")] }, t(0));
        assert!(out.events.is_empty() || !format!("{:?}", out.events).contains("Firing"));
        let out = f.observe(
            Input::Orphans { pool: "etl".into(), orphans: vec![orphan("o1"), orphan("o2")] },
            t(1000),
        );
        let firing = out.events.iter().any(|e| matches!(&e.kind, EventKind::AlertChanged { alert } if alert.rule == ORPHAN_RULE && alert.state == crate::rules::AlertState::Firing));
        assert!(firing, "{:?}", out.events);
        assert_eq!(f.orphans()["etl"].len(), 2);
    }
}
