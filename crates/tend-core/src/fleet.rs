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
use crate::model::{Metrics, ProcessId, Source, WorkerId};
use crate::recycle::{RecyclePolicy, RecycleReason, StormBreaker, Usage, seed};
use crate::rules::{Alert, AlertBook, AlertState, Condition, Reading, Rule, Scope, Severity};
use crate::time::{Timestamp, fmt_secs as secs};

mod container;
mod observe;
mod recycling;
mod report;
mod restore;
#[cfg(test)]
pub(crate) mod sim;
mod tick;
mod types;

pub use container::{
    ContainerChange, ContainerRecycle, ContainerRun, ContainerSeen, ContainerStatus, DockerPool, Health,
    ORPHAN_RULE, OWNER_PID_LABEL, Orphan, POOL_LABEL, WORKER_LABEL, source_name as docker_source_name,
};
pub use report::{ERROR_LOG, ErrorKind, ErrorRecord, Registration, Report, ReportLog, metrics_from_named};
use types::Role;
pub use types::*;

/// How long an ended worker that no slot will reuse (attached, reported) stays listed.
pub const CLEANED_RETENTION: Duration = Duration::from_secs(300);
/// Ended incarnations remembered per worker, for its timeline.
pub const PAST_INCARNATIONS: usize = 10;
/// Name of the built-in rule raised when the storm breaker trips.
pub const STORM_RULE: &str = "restart-storm";

/// How long a restored alert waits for its subject (a worker found by discovery or registering again).
pub const RESTORE_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

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
        self.watch_list_part(pool, Part::WHOLE)
    }

    /// The part of [`Fleet::watch_list`] whose processes belong to `part`.
    pub fn watch_list_part(&self, pool: &str, part: Part) -> Vec<(WorkerId, u32, ProcessId)> {
        self.watched(pool)
            .filter(|(_, _, p)| part.holds(p.pid))
            .map(|(w, n, p)| (w.id.clone(), n, p))
            .collect()
    }

    /// How many processes [`Fleet::watch_list`] would list.
    pub fn watched_count(&self, pool: &str) -> usize {
        self.watched(pool).count()
    }

    fn watched<'a>(&'a self, pool: &'a str) -> impl Iterator<Item = (&'a Worker, u32, ProcessId)> + 'a {
        self.workers.values().filter(move |w| w.pool == pool).filter_map(|w| {
            let c = w.current.as_ref()?;
            (c.state().is_live()).then_some((w, c.n, c.process?))
        })
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

    /// Record who asked for an action (see [`EventKind::OperatorAction`]); `target` is a worker id
    /// or an alert's `rule/subject`, whose subject may be a worker.
    pub fn audit(&mut self, by: &str, action: &str, target: &str, detail: String, now: Timestamp) -> Output {
        let subject = target.split_once('/').map_or(target, |(_, s)| s);
        let known = [target, subject].into_iter().find_map(|id| self.workers.get(&WorkerId::new(id)));
        let (worker, pool) = match known {
            Some(w) => (Some(w.id.clone()), Some(w.pool.clone())),
            None => (None, None),
        };
        let kind = EventKind::OperatorAction {
            by: by.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            worker,
            pool,
            detail,
        };
        self.emit(now, kind);
        self.take()
    }

    /// Events another Tend decided (a hub's agents), numbered into this fleet's sequence so that the
    /// sinks (event log, stream, history, notifications) take them like its own. The fleet's state
    /// does not change: it decides nothing about workers it does not run.
    pub fn relay(&mut self, events: impl IntoIterator<Item = (Timestamp, EventKind)>) -> Output {
        for (at, kind) in events {
            self.emit(at, kind);
        }
        self.take()
    }

    fn emit(&mut self, at: Timestamp, kind: EventKind) {
        self.seq += 1;
        self.out.events.push(Event { seq: self.seq, at, kind });
    }

    fn push_action(&mut self, a: Action) {
        self.out.actions.push(a);
    }

    /// Stop and remove an incarnation's container, with its pool's grace.
    fn stop_container(&mut self, id: &WorkerId, n: u32, container: String) {
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

    /// SIGTERM, the pool's grace, SIGKILL to an incarnation's process (its whole group when `group`).
    fn terminate(&mut self, id: &WorkerId, n: u32, process: ProcessId, group: bool) {
        let grace = self.grace_of(id);
        self.push_action(Action::Terminate { worker: id.clone(), incarnation: n, process, grace, group });
    }

    fn take(&mut self) -> Output {
        std::mem::take(&mut self.out)
    }
}

/// For tests and the API: the alert of a (rule, subject), if tracked.
pub fn alert_of<'a>(fleet: &'a Fleet, rule: &str, subject: &str) -> Option<&'a Alert> {
    fleet.alerts.get(rule, subject)
}

#[cfg(test)]
mod tests {
    use super::sim::*;
    use super::*;
    use crate::rules::Comparison;

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
        s.feed(Input::Samples { pool: "api".into(), readings, round_done: true }, 61_000);
        let last = s.events.iter().rev().find(|e| e.kind.name() == "recycle_started").unwrap();
        assert!(matches!(&last.kind, EventKind::RecycleStarted { reason: RecycleReason::Rule, .. }));
    }

    /// Ticks pass over attached workers with nothing pending, but never over their deadlines: a pool
    /// with `stale_after` times a silent process out, a stale rule fires, and a pool without either
    /// leaves its workers as they are.
    #[test]
    fn ticks_skip_idle_attached_workers_but_not_their_deadlines() {
        let attach = |name: &str| {
            let mut spec = PoolSpec::spawn(name, 0);
            spec.kind = PoolKind::Attach;
            spec
        };
        let plain = attach("plain");
        let mut stale = attach("stale");
        stale.stale_after = Some(Duration::from_secs(5));
        let mut ruled = attach("ruled");
        ruled.rules = vec![Rule {
            condition: Condition::Stale { after: Duration::from_secs(5) },
            ..Rule::threshold("silent", "memory_mb", Comparison::Above, 0.0, None)
        }];
        let mut s = Sim::new(vec![plain, stale, ruled]);
        for (i, pool) in ["plain", "stale", "ruled"].into_iter().enumerate() {
            let p = ProcessId { pid: 100 + i as u32, start_ticks: 1 };
            s.feed(Input::Discovered { pool: pool.into(), found: vec![(p, "app".into())], began: t(0) }, 0);
            s.sample(pool, 1000, &[(&format!("{pool}-{}", p.pid), 10)]);
        }
        let before = s.events.len();
        for ms in (1250..=8000).step_by(250) {
            s.feed(Input::Tick, ms);
        }
        let state = |s: &Sim, id: &str| s.fleet.worker(id).unwrap().state();
        assert_eq!(state(&s, "plain-100"), State::Ready, "nothing is due for a plain attached worker");
        assert!(
            !s.events[before..].iter().any(|e| e.kind.worker().is_some_and(|w| w.as_str() == "plain-100")),
            "and ticks say nothing about it"
        );
        assert_ne!(state(&s, "stale-101"), State::Ready, "stale_after still times a silent process out");
        assert!(
            s.events[before..].iter().any(|e| matches!(&e.kind, EventKind::AlertChanged { alert }
                if alert.rule == "silent" && alert.subject == "ruled-102" && alert.state == AlertState::Firing)),
            "a stale rule still fires"
        );
    }

    #[test]
    fn attach_discovers_and_tells_a_reused_pid_from_the_old_process() {
        let mut spec = PoolSpec::spawn("legacy", 0);
        spec.kind = PoolKind::Attach;
        let mut s = Sim::new(vec![spec]);
        let old = ProcessId { pid: 4242, start_ticks: 1000 };
        s.feed(
            Input::Discovered { pool: "legacy".into(), found: vec![(old, "gunicorn".into())], began: t(0) },
            0,
        );
        assert_eq!(s.fleet.watch_list("legacy"), vec![(w("legacy-4242"), 1, old)]);
        s.sample("legacy", 1000, &[("legacy-4242", 30)]);
        assert_eq!(s.fleet.worker("legacy-4242").unwrap().state(), State::Ready);
        // The process died and a new one got the same pid before the next discovery pass.
        let reused = ProcessId { pid: 4242, start_ticks: 5000 };
        s.feed(
            Input::Discovered {
                pool: "legacy".into(),
                found: vec![(reused, "gunicorn".into())],
                began: t(2000),
            },
            2000,
        );
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

    /// A process heard of as it exec'd is attached; the ones already watched stay as they are (an
    /// appearance says nothing of them), and Tend's own spawned workers are never attached.
    #[test]
    fn appeared_processes_are_attached_and_the_others_left_alone() {
        let mut attach = PoolSpec::spawn("legacy", 0);
        attach.kind = PoolKind::Attach;
        let mut s = Sim::new(vec![attach, PoolSpec::spawn("api", 1)]);
        let mine = s.spawn_all(0, true)[0].2;
        let first = ProcessId { pid: 4242, start_ticks: 1000 };
        s.feed(
            Input::Discovered { pool: "legacy".into(), found: vec![(first, "gunicorn".into())], began: t(0) },
            0,
        );
        let second = ProcessId { pid: 4343, start_ticks: 2000 };
        let found = vec![(second, "gunicorn".into()), (first, "gunicorn".into()), (mine, "demo".into())];
        s.feed(Input::Appeared { pool: "legacy".into(), found }, 500);
        let watched: Vec<ProcessId> = s.fleet.watch_list("legacy").into_iter().map(|(_, _, p)| p).collect();
        assert_eq!(watched, vec![first, second]);
        assert_eq!(s.fleet.worker("legacy-4242").unwrap().generation, 1, "the first one was not re-attached");
        // Appearing again (a rename after the exec) changes nothing; an appearance in a spawn pool is ignored.
        let before = s.events.len();
        s.feed(Input::Appeared { pool: "legacy".into(), found: vec![(second, "renamed".into())] }, 600);
        s.feed(
            Input::Appeared {
                pool: "api".into(),
                found: vec![(ProcessId { pid: 9, start_ticks: 9 }, "x".into())],
            },
            600,
        );
        assert_eq!(s.events.len(), before);
        // A scan that began before the appearance and missed it leaves it; one that began after ends it.
        let began_before = vec![(first, "gunicorn".into())];
        s.feed(Input::Discovered { pool: "legacy".into(), found: began_before.clone(), began: t(400) }, 700);
        assert_eq!(s.fleet.watch_list("legacy").len(), 2);
        s.feed(Input::Discovered { pool: "legacy".into(), found: began_before, began: t(800) }, 900);
        assert!(!s.fleet.worker("legacy-4343").unwrap().state().is_live(), "the later scan ended it");
        // The first one's pid appears again with another start time: the old process ended, and the
        // new one takes the id.
        let reused = ProcessId { pid: 4242, start_ticks: 9000 };
        s.feed(Input::Appeared { pool: "legacy".into(), found: vec![(reused, "gunicorn".into())] }, 1000);
        assert_eq!(s.fleet.watch_list("legacy"), vec![(w("legacy-4242"), 1, reused)]);
        assert_eq!(s.states("legacy-4242").last(), Some(&(1, State::Initializing)));
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

    /// The parts of a round list every watched process exactly once.
    #[test]
    fn a_rounds_parts_list_every_watched_process_once() {
        let mut s = Sim::new(vec![PoolSpec::spawn("api", 7)]);
        s.spawn_all(0, true);
        let mut whole = s.fleet.watch_list("api");
        assert_eq!(whole.len(), 7);
        assert_eq!(s.fleet.watched_count("api"), 7);
        let mut parts: Vec<_> =
            (0..3).flat_map(|index| s.fleet.watch_list_part("api", Part { index, of: 3 })).collect();
        let sizes: Vec<usize> =
            (0..3).map(|index| s.fleet.watch_list_part("api", Part { index, of: 3 }).len()).collect();
        assert!(sizes.iter().all(|n| (2..=3).contains(n)), "consecutive pids spread evenly: {sizes:?}");
        whole.sort_by_key(|(_, _, p)| p.pid);
        parts.sort_by_key(|(_, _, p)| p.pid);
        assert_eq!(parts, whole);
        assert!(
            Part { index: 2, of: 3 }.is_last()
                && !Part { index: 1, of: 3 }.is_last()
                && Part::WHOLE.is_last()
        );
    }

    /// A pool swept in parts: each part's readings land at once, the pool-scope rules read the
    /// aggregates once, after the last part (a part alone would see half the pool's memory).
    #[test]
    fn pool_rules_read_the_aggregates_once_a_round_when_a_sweep_comes_in_parts() {
        let mut spec = PoolSpec::spawn("api", 2);
        spec.rules = vec![Rule {
            scope: Scope::Pool,
            for_samples: 2,
            ..Rule::threshold("pool-memory", "memory_mb", Comparison::Above, 300.0, None)
        }];
        let mut s = Sim::new(vec![spec]);
        s.spawn_all(0, true);
        let firing = |s: &Sim| {
            s.events
                .iter()
                .filter(|e| matches!(&e.kind, EventKind::AlertChanged { alert } if alert.state == AlertState::Firing))
                .count()
        };
        // Round 1: 200 + 200 MiB, over the 300 MiB line only once both parts are in.
        s.sample_part("api", 1000, &[("api-0", 200)], false);
        assert_eq!(
            s.fleet.worker("api-0").unwrap().current.as_ref().unwrap().last.as_ref().unwrap().memory_bytes,
            Some(200 * MB),
            "a part's readings land at once"
        );
        let pending = |s: &Sim| {
            s.events.iter().filter(|e| matches!(&e.kind, EventKind::AlertChanged { alert } if alert.state == AlertState::Pending)).count()
        };
        assert_eq!(pending(&s), 0, "no pool rule reads a half round");
        s.sample_part("api", 1250, &[("api-1", 200)], true);
        assert_eq!(pending(&s), 1, "the round's end is the rule's first sample over the line");
        // Round 2, in two parts again: the rule's second sample, so it fires; a part is not a sample.
        s.sample_part("api", 2000, &[("api-0", 200)], false);
        assert_eq!(firing(&s), 0, "for_samples counts rounds, not parts");
        s.sample_part("api", 2250, &[("api-1", 200)], true);
        assert_eq!(firing(&s), 1);
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
            round_done: true,
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
            metric: None,
            clear: None,
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
        s.feed(
            Input::Discovered { pool: "legacy".into(), found: vec![(p, "gunicorn".into())], began: t(1000) },
            1000,
        );
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
