//! Reports from orchestrators: workers Tend does not own register themselves, say which lifecycle state
//! they are in, and report metrics, errors and handled requests. This module turns each report into the
//! fleet's own transitions and readings, so reported workers go through the same state machine, rules
//! and recycle policy as sampled ones. It never trusts a report to skip the state machine: a transition
//! the table refuses is refused here with the allowed states.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{CommandError, Fleet, Incarnation, Observed, Output, PoolKind, RecycleInFlight, Role, Worker};
use crate::event::EventKind;
use crate::lifecycle::{State, TransitionError};
use crate::model::{Metrics, ProcessId, Source, WorkerId};
use crate::time::Timestamp;

/// Errors and warnings remembered per worker for the API (oldest dropped first).
pub const ERROR_LOG: usize = 200;

/// What an orchestrator says about a worker when it registers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    pub id: WorkerId,
    pub pool: String,
    pub task_id: Option<String>,
    /// The worker's pid as the orchestrator sees it. Tend never signals it.
    pub pid: Option<u32>,
    /// That pid's identity in this host's process table, when the runtime found it: the process is then
    /// sampled like an attached one (CPU, memory...), and its disappearance ends the worker.
    #[serde(skip)]
    pub process: Option<ProcessId>,
    /// The worker's container id or name, when it runs in one.
    pub container: Option<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    Error,
    Warning,
}

/// One reported error or warning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub at: Timestamp,
    pub incarnation: u32,
    pub kind: ErrorKind,
    pub message: String,
}

/// What the orchestrator told about a worker beyond its lifecycle: identity details and its error log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportLog {
    /// Set for reported workers: the latest registration.
    pub registration: Option<Registration>,
    pub errors: VecDeque<ErrorRecord>,
}

/// One report from an orchestrator.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    /// A new worker (or a new incarnation of an id whose last one ended): INITIALIZING.
    Register(Registration),
    /// The worker moved to `state`; the lifecycle table decides whether it may.
    State {
        worker: WorkerId,
        state: State,
        cause: Option<String>,
    },
    /// A reading: built-in metrics and custom ones in [`Metrics::custom`].
    Metrics {
        worker: WorkerId,
        metrics: Metrics,
    },
    Error {
        worker: WorkerId,
        kind: ErrorKind,
        message: String,
    },
    /// `count` more requests handled.
    Requests {
        worker: WorkerId,
        count: u64,
    },
}

impl Registration {
    /// A registration with only the required fields.
    pub fn new(id: impl Into<String>, pool: impl Into<String>) -> Self {
        Registration {
            id: WorkerId::new(id),
            pool: pool.into(),
            task_id: None,
            pid: None,
            process: None,
            container: None,
            labels: BTreeMap::new(),
        }
    }
}

impl Report {
    pub fn worker(&self) -> &WorkerId {
        match self {
            Report::Register(r) => &r.id,
            Report::State { worker, .. }
            | Report::Metrics { worker, .. }
            | Report::Error { worker, .. }
            | Report::Requests { worker, .. } => worker,
        }
    }
}

/// Metrics as an orchestrator names them: the built-in names of [`crate::model::BUILTIN_METRICS`]
/// (`memory_mb` is converted to bytes) and any other name as a custom metric. The error names the
/// metric at fault.
pub fn metrics_from_named(named: &BTreeMap<String, f64>) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    for (name, &v) in named {
        if !v.is_finite() {
            return Err(format!("metric {name:?} must be a finite number"));
        }
        let count = |what: &str| -> Result<u64, String> {
            if v < 0.0 || v > u64::MAX as f64 {
                return Err(format!("metric {name:?} must be a non-negative {what}, not {v}"));
            }
            Ok(v as u64)
        };
        let small = |what: &str| -> Result<u32, String> {
            u32::try_from(count(what)?).map_err(|_| format!("metric {name:?} is too large: {v}"))
        };
        match name.as_str() {
            "cpu_percent" => m.cpu_percent = Some(v),
            "cpu_host_percent" => m.cpu_host_percent = Some(v),
            "memory_percent" => m.memory_percent = Some(v),
            "memory_bytes" => m.memory_bytes = Some(count("number of bytes")?),
            "memory_mb" => {
                count("number of MiB")?;
                m.memory_bytes = Some((v * 1024.0 * 1024.0) as u64);
            }
            "disk_read_bytes" => m.disk_read_bytes = Some(count("number of bytes")?),
            "disk_write_bytes" => m.disk_write_bytes = Some(count("number of bytes")?),
            "net_rx_bytes" => m.net_rx_bytes = Some(count("number of bytes")?),
            "net_tx_bytes" => m.net_tx_bytes = Some(count("number of bytes")?),
            "threads" => m.threads = Some(small("count")?),
            "fds" => m.fds = Some(small("count")?),
            other => {
                if other.is_empty()
                    || other.len() > 128
                    || !other.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == ':')
                {
                    return Err(format!(
                        "invalid metric name {other:?}: use letters, digits, '_', '.' and ':' (at most 128)"
                    ));
                }
                m.custom.insert(other.to_owned(), v);
            }
        }
    }
    Ok(m)
}

impl Fleet {
    /// A process escaped its worker's group: an event, and an error in the worker's log when the fleet
    /// knows the worker.
    pub(super) fn on_escaped(
        &mut self,
        worker: WorkerId,
        incarnation: Option<u32>,
        process: ProcessId,
        detail: String,
        now: Timestamp,
    ) {
        let known = self.workers.get_mut(&worker);
        let pool = known.as_ref().map(|w| w.pool.clone());
        if let Some(w) = known {
            let n = incarnation.or(w.current.as_ref().map(|c| c.n)).unwrap_or(0);
            let message = detail.clone();
            w.reports.errors.push_back(ErrorRecord {
                at: now,
                incarnation: n,
                kind: ErrorKind::Error,
                message,
            });
            while w.reports.errors.len() > ERROR_LOG {
                w.reports.errors.pop_front();
            }
        }
        self.emit(now, EventKind::ProcessEscaped { worker, pool, incarnation, process, detail });
    }

    /// Apply one orchestrator report. Refusals change nothing.
    pub fn report(&mut self, report: Report, now: Timestamp) -> Result<Output, CommandError> {
        if self.shutting_down {
            return Err(CommandError::ShuttingDown);
        }
        match report {
            Report::Register(reg) => self.register(reg, now)?,
            Report::State { worker, state, cause } => {
                let n = self.reported_live(&worker, true)?;
                self.report_state(&worker, n, state, cause, now)?;
            }
            Report::Metrics { worker, metrics } => {
                let n = self.reported_live(&worker, true)?;
                self.report_reading(&worker, n, metrics, None, now);
            }
            Report::Error { worker, kind, message } => {
                let n = self.reported_live(&worker, false)?;
                let Some(w) = self.workers.get_mut(&worker) else { return Ok(self.take()) };
                if let Some(c) = w.current.as_mut() {
                    match kind {
                        ErrorKind::Error => c.errors += 1,
                        ErrorKind::Warning => c.warnings += 1,
                    }
                }
                w.reports.errors.push_back(ErrorRecord { at: now, incarnation: n, kind, message });
                while w.reports.errors.len() > ERROR_LOG {
                    w.reports.errors.pop_front();
                }
                // Rules on `errors` / `warnings` see the new count at once.
                if w.source == Source::Reported {
                    self.report_reading(&worker, n, Metrics::default(), None, now);
                }
            }
            Report::Requests { worker, count } => {
                let n = self.reported_live(&worker, true)?;
                let total = self
                    .workers
                    .get(&worker)
                    .and_then(|w| w.current.as_ref())
                    .map(|c| c.requests.saturating_add(count))
                    .unwrap_or(count);
                self.report_reading(&worker, n, Metrics::default(), Some(total), now);
            }
        }
        Ok(self.take())
    }

    /// Reported errors and warnings of a worker, oldest first.
    pub fn error_log(&self, id: &str) -> Option<&VecDeque<ErrorRecord>> {
        self.worker(id).map(|w| &w.reports.errors)
    }

    /// The serving incarnation of a worker that may still run. `reported_only`: refuse workers that Tend
    /// samples itself (their state and metrics come from their process, not from reports).
    fn reported_live(&self, id: &WorkerId, reported_only: bool) -> Result<u32, CommandError> {
        let w = self.workers.get(id).ok_or_else(|| CommandError::UnknownWorker(id.to_string()))?;
        if reported_only && w.source != Source::Reported {
            return Err(CommandError::NotReported(id.to_string(), w.source));
        }
        match w.current.as_ref() {
            Some(c) if c.state() != State::Cleaned => Ok(c.n),
            _ => Err(CommandError::Ended(id.to_string())),
        }
    }

    fn register(&mut self, reg: Registration, now: Timestamp) -> Result<(), CommandError> {
        let spec =
            self.pool(&reg.pool).cloned().ok_or_else(|| CommandError::UnknownPool(reg.pool.clone()))?;
        if spec.kind != PoolKind::Reported {
            return Err(CommandError::NotReportedPool(reg.pool.clone(), spec.kind.source()));
        }
        let id = reg.id.clone();
        let pool = reg.pool.clone();
        let process = reg.process;
        let n = match self.workers.get_mut(&id) {
            Some(w) if w.pool != pool => {
                return Err(CommandError::AlreadyRegistered(id.to_string(), w.pool.clone()));
            }
            Some(w) if w.current.as_ref().is_some_and(|c| c.state() != State::Cleaned) => {
                return Err(CommandError::AlreadyRegistered(id.to_string(), w.pool.clone()));
            }
            Some(w) => {
                // The last incarnation was cleaned: this registration starts the next one.
                w.generation += 1;
                w.restarts += 1;
                w.cleaned_at = None;
                w.recycle = None;
                let mut inc = Incarnation::new(w.generation, process, now, "registered");
                inc.announced = true;
                if let Some(old) = w.current.replace(inc) {
                    w.retire(old);
                }
                w.reports.registration = Some(reg);
                w.generation
            }
            None => {
                let mut w = Worker::new(id.clone(), &pool, Source::Reported, None);
                w.generation = 1;
                let mut inc = Incarnation::new(1, process, now, "registered");
                inc.announced = true;
                w.current = Some(inc);
                w.reports.registration = Some(reg);
                self.workers.insert(id.clone(), w);
                self.emit(
                    now,
                    EventKind::WorkerAdded {
                        worker: id.clone(),
                        pool: pool.clone(),
                        source: Source::Reported,
                    },
                );
                self.restore_awaiting(&id, now);
                1
            }
        };
        self.emit(
            now,
            EventKind::StateChanged {
                worker: id,
                pool,
                incarnation: n,
                process,
                from: None,
                to: State::Initializing,
                cause: "registered through the API".to_owned(),
            },
        );
        Ok(())
    }

    fn report_state(
        &mut self,
        id: &WorkerId,
        n: u32,
        to: State,
        cause: Option<String>,
        now: Timestamp,
    ) -> Result<(), CommandError> {
        let Some(w) = self.workers.get_mut(id) else {
            return Err(CommandError::UnknownWorker(id.to_string()));
        };
        let Some(c) = w.current.as_mut() else { return Err(CommandError::Ended(id.to_string())) };
        let from = c.state();
        if !from.can_move_to(to) {
            return Err(TransitionError { from, to, allowed: from.allowed_next().to_vec() }.into());
        }
        // A state report is also a heartbeat: staleness counts from the last report of any kind.
        c.last_at = Some(now);
        let cause = match cause.filter(|c| !c.trim().is_empty()) {
            Some(c) => format!("reported: {c}"),
            None => "reported".to_owned(),
        };
        self.transition(id, n, to, cause, now);
        if to.is_terminal() {
            self.finish_reported_recycle(id, now);
        }
        if to == State::Cleaned {
            self.after_cleaned(id, n, Role::Current, now);
        }
        Ok(())
    }

    /// The orchestrator ended a worker Tend had asked it to recycle: publish the record.
    fn finish_reported_recycle(&mut self, id: &WorkerId, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else { return };
        let Some(r) = w.recycle.take() else { return };
        let pool = w.pool.clone();
        self.emit(
            now,
            EventKind::Recycled {
                worker: id.clone(),
                pool,
                reason: r.reason,
                detail: r.detail,
                old_process: None,
                new_process: None,
                uptime_secs: r.old_uptime.as_secs_f64(),
                requests: r.old_requests,
                last_metrics: r.old_metrics,
            },
        );
    }

    /// Feed a report to the same path as a sampled reading: rules, recycle limits, pool rules.
    fn report_reading(
        &mut self,
        id: &WorkerId,
        n: u32,
        metrics: Metrics,
        requests: Option<u64>,
        now: Timestamp,
    ) {
        let Some(pool) = self.workers.get(id).map(|w| w.pool.clone()) else { return };
        let readings =
            vec![Observed { worker: id.clone(), incarnation: n, metrics, log_lines: None, requests }];
        // A report is a round of its own: pool rules read the aggregates after each.
        self.on_samples(&pool, readings, true, now);
    }

    /// A reported worker that ended (COMPLETED, FAILED, TIMEOUT, TERMINATED) and that its orchestrator
    /// has not reported CLEANED within [`super::CLEANED_RETENTION`] is cleaned by Tend, so that it stops
    /// being listed and its series leave `/metrics`. True when it was.
    pub(super) fn clean_abandoned(&mut self, id: &WorkerId, now: Timestamp) -> bool {
        let Some(c) = self.workers.get(id).and_then(|w| w.current.as_ref()) else { return false };
        if !c.state().is_terminal() || now.since(c.lifecycle.since()) < super::CLEANED_RETENTION {
            return false;
        }
        let n = c.n;
        self.transition(id, n, State::Cleaned, "not reported cleaned: cleaned by Tend".to_owned(), now);
        self.after_cleaned(id, n, Role::Current, now);
        true
    }

    pub(super) fn reported_recycle_in_flight(&mut self, id: &WorkerId, rec: RecycleInFlight) {
        if let Some(w) = self.workers.get_mut(id) {
            w.recycle = Some(rec);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::Event;
    use crate::fleet::PoolSpec;
    use crate::fleet::sim::{MB, t};
    use crate::recycle::RecycleReason;
    use crate::rules::{AlertState, Comparison, Rule};

    fn reported_pool(rules: Vec<Rule>) -> PoolSpec {
        let mut spec = PoolSpec::spawn("loom", 0);
        spec.kind = PoolKind::Reported;
        spec.stale_after = Some(Duration::from_secs(30));
        spec.rules = rules;
        spec
    }

    fn fleet(rules: Vec<Rule>) -> Fleet {
        let mut spawn = PoolSpec::spawn("api", 1);
        spawn.interval = None;
        let mut f = Fleet::new(vec![reported_pool(rules), spawn]);
        let _ = f.start(t(0));
        f
    }

    fn reg(id: &str) -> Report {
        Report::Register(Registration {
            task_id: Some(format!("task-{id}")),
            pid: Some(4242),
            labels: BTreeMap::from([("ceremony".to_owned(), "a".to_owned())]),
            ..Registration::new(id, "loom")
        })
    }

    fn state(id: &str, s: State) -> Report {
        Report::State { worker: WorkerId::new(id), state: s, cause: None }
    }

    fn custom(id: &str, name: &str, v: f64) -> Report {
        let mut metrics = Metrics::default();
        metrics.custom.insert(name.to_owned(), v);
        Report::Metrics { worker: WorkerId::new(id), metrics }
    }

    fn kinds(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match &e.kind {
                EventKind::StateChanged { to, .. } => format!("state:{to}"),
                EventKind::AlertChanged { alert } => format!("alert:{}:{}", alert.rule, alert.state),
                other => other.name().to_owned(),
            })
            .collect()
    }

    /// Each case: reports applied in order (all but the last must succeed), then the last one's
    /// expected outcome: the event kinds it produced, or the refusal's message.
    #[test]
    fn reports_drive_the_state_machine_or_are_refused_naming_the_allowed_states() {
        type Case = (&'static str, Vec<Report>, Result<Vec<&'static str>, &'static str>);
        let cases: Vec<Case> = vec![
            ("register", vec![reg("w1")], Ok(vec!["worker_added", "state:INITIALIZING"])),
            ("ready", vec![reg("w1"), state("w1", State::Ready)], Ok(vec!["state:READY"])),
            (
                "working",
                vec![reg("w1"), state("w1", State::Ready), state("w1", State::Working)],
                Ok(vec!["state:WORKING"]),
            ),
            (
                "INITIALIZING -> WORKING is refused",
                vec![reg("w1"), state("w1", State::Working)],
                Err(
                    "invalid transition INITIALIZING -> WORKING; allowed from INITIALIZING: READY, FAILED, TIMEOUT, TERMINATED",
                ),
            ),
            (
                "same state is refused",
                vec![reg("w1"), state("w1", State::Ready), state("w1", State::Ready)],
                Err(
                    "invalid transition READY -> READY; allowed from READY: WORKING, COMPLETING, FAILED, TIMEOUT, TERMINATED",
                ),
            ),
            (
                "completed then cleaned",
                vec![
                    reg("w1"),
                    state("w1", State::Ready),
                    state("w1", State::Working),
                    state("w1", State::Completing),
                    state("w1", State::Completed),
                    state("w1", State::Cleaned),
                ],
                Ok(vec!["state:CLEANED"]),
            ),
            (
                "a cleaned worker takes no more reports",
                vec![
                    reg("w1"),
                    state("w1", State::Failed),
                    state("w1", State::Cleaned),
                    custom("w1", "x", 1.0),
                ],
                Err("worker w1 has ended: register it again"),
            ),
            (
                "a cleaned id registers again as a new incarnation",
                vec![reg("w1"), state("w1", State::Failed), state("w1", State::Cleaned), reg("w1")],
                Ok(vec!["state:INITIALIZING"]),
            ),
            (
                "double registration",
                vec![reg("w1"), reg("w1")],
                Err("worker w1 is already registered in pool loom"),
            ),
            ("unknown worker", vec![state("nope", State::Ready)], Err("no worker with id \"nope\"")),
            (
                "a spawned worker's state comes from its process",
                vec![state("api-0", State::Ready)],
                Err("worker api-0 is not a reported worker (source spawned)"),
            ),
            (
                "registering into a spawn pool",
                vec![Report::Register(Registration::new("x", "api"))],
                Err("pool api does not take reported workers (source spawned)"),
            ),
            (
                "registering into an unknown pool",
                vec![Report::Register(Registration::new("x", "zzz"))],
                Err("no pool named \"zzz\""),
            ),
            (
                "metrics alone change no state",
                vec![reg("w1"), custom("w1", "khipu_updates", 3.0)],
                Ok(vec![]),
            ),
        ];
        for (name, reports, expected) in cases {
            let mut f = fleet(vec![]);
            let last = reports.len() - 1;
            let mut result = None;
            for (i, r) in reports.into_iter().enumerate() {
                let out = f.report(r, t(1000 + i as i64));
                if i < last {
                    assert!(out.is_ok(), "{name}: step {i} refused: {out:?}");
                } else {
                    result = Some(out);
                }
            }
            match (result.unwrap(), expected) {
                (Ok(out), Ok(kinds_expected)) => assert_eq!(kinds(&out.events), kinds_expected, "{name}"),
                (Err(e), Err(msg)) => assert_eq!(e.to_string(), msg, "{name}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn named_metrics_map_builtins_and_keep_the_rest_as_custom() {
        let named = |pairs: &[(&str, f64)]| pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let m = metrics_from_named(&named(&[
            ("memory_mb", 256.5),
            ("khipu_updates", 3.0),
            ("cpu_percent", 12.0),
        ]))
        .unwrap();
        assert_eq!(m.memory_bytes, Some((256.5 * 1024.0 * 1024.0) as u64));
        assert_eq!(m.cpu_percent, Some(12.0));
        assert_eq!(m.custom.get("khipu_updates"), Some(&3.0));
        assert_eq!(m.get("memory_mb"), Some(256.5));
        for (bad, msg) in [
            (
                named(&[("memory_mb", -1.0)]),
                "metric \"memory_mb\" must be a non-negative number of MiB, not -1",
            ),
            (named(&[("threads", 1e12)]), "metric \"threads\" is too large: 1000000000000"),
            (
                named(&[("bad name", 1.0)]),
                "invalid metric name \"bad name\": use letters, digits, '_', '.' and ':' (at most 128)",
            ),
        ] {
            assert_eq!(metrics_from_named(&bad).unwrap_err(), msg);
        }
    }

    #[test]
    fn a_registered_process_is_watched_and_its_end_ends_the_worker() {
        let mut f = fleet(vec![]);
        let process = ProcessId { pid: 4242, start_ticks: 77 };
        let r = Registration { pid: Some(4242), process: Some(process), ..Registration::new("w1", "loom") };
        f.report(Report::Register(r), t(0)).unwrap();
        f.report(Report::Register(Registration::new("w2", "loom")), t(0)).unwrap();
        f.report(state("w1", State::Ready), t(1)).unwrap();
        assert_eq!(
            f.watch_list("loom"),
            vec![(WorkerId::new("w1"), 1, process)],
            "only the one with a process"
        );
        let out = f.observe(super::super::Input::Gone { worker: "w1".into(), incarnation: 1 }, t(2000));
        assert_eq!(kinds(&out.events), vec!["state:COMPLETING", "state:COMPLETED", "state:CLEANED"]);
    }

    #[test]
    fn invalid_transition_is_a_transition_error_with_the_allowed_list() {
        let mut f = fleet(vec![]);
        f.report(reg("w1"), t(0)).unwrap();
        let err = f.report(state("w1", State::Completed), t(1)).unwrap_err();
        match err {
            CommandError::Transition(e) => {
                assert_eq!(e.from, State::Initializing);
                assert_eq!(e.allowed, vec![State::Ready, State::Failed, State::Timeout, State::Terminated]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(f.worker("w1").unwrap().state(), State::Initializing, "a refusal changes nothing");
    }

    #[test]
    fn custom_metric_below_for_five_samples_fires_and_clears_above() {
        let mut rule = Rule::threshold("low-success", "success_rate", Comparison::Below, 0.2, Some(0.5));
        rule.for_samples = 5;
        let mut f = fleet(vec![rule]);
        f.report(reg("w1"), t(0)).unwrap();
        f.report(state("w1", State::Ready), t(1)).unwrap();
        let mut states = Vec::new();
        for (i, v) in [0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 0.6].into_iter().enumerate() {
            let out = f.report(custom("w1", "success_rate", v), t(1000 * (i as i64 + 1))).unwrap();
            for e in out.events {
                if let EventKind::AlertChanged { alert } = e.kind {
                    states.push((i, alert.state));
                }
            }
        }
        // Pending on the first low sample, firing on the fifth, still firing at 0.3 (hysteresis), resolved above 0.5.
        assert_eq!(
            states,
            vec![(0, AlertState::Pending), (4, AlertState::Firing), (6, AlertState::Resolved)]
        );
        let w = f.worker("w1").unwrap();
        assert_eq!(w.recent.len(), 7);
        assert_eq!(w.current.as_ref().unwrap().last.as_ref().unwrap().custom.get("success_rate"), Some(&0.6));
    }

    #[test]
    fn metrics_merge_so_a_partial_report_keeps_the_others_for_the_pool() {
        let mut f = fleet(vec![]);
        f.report(reg("w1"), t(0)).unwrap();
        let mem = Metrics { memory_bytes: Some(256 * MB), cpu_percent: Some(50.0), ..Default::default() };
        f.report(Report::Metrics { worker: "w1".into(), metrics: mem }, t(1)).unwrap();
        f.report(custom("w1", "khipu_updates", 3.0), t(2)).unwrap();
        let last = f.worker("w1").unwrap().current.as_ref().unwrap().last.clone().unwrap();
        assert_eq!(last.memory_bytes, Some(256 * MB));
        assert_eq!(last.custom.get("khipu_updates"), Some(&3.0));
        assert_eq!(f.pool_metrics("loom").unwrap().total_memory_bytes, 256 * MB);
    }

    #[test]
    fn an_escaped_process_is_an_event_and_an_error_in_its_workers_log() {
        let mut f = fleet(vec![]);
        f.report(reg("w1"), t(0)).unwrap();
        let process = ProcessId { pid: 4321, start_ticks: 9 };
        let escaped = |worker: &str| crate::fleet::Input::Escaped {
            worker: WorkerId::new(worker),
            incarnation: Some(1),
            process,
            detail: "process 4321 (sleep) left the process group".into(),
        };
        let out = f.observe(escaped("w1"), t(5));
        let [ev] = out.events.as_slice() else { panic!("one event: {:?}", out.events) };
        assert_eq!(
            ev.kind,
            EventKind::ProcessEscaped {
                worker: "w1".into(),
                pool: Some("loom".into()),
                incarnation: Some(1),
                process,
                detail: "process 4321 (sleep) left the process group".into(),
            }
        );
        let log = f.error_log("w1").unwrap();
        let last = log.back().unwrap();
        assert_eq!((last.kind, last.incarnation, last.at), (ErrorKind::Error, 1, t(5)));
        assert!(last.message.contains("4321"));
        // A worker the fleet does not know: the event still says what escaped, without a pool.
        let out = f.observe(escaped("nobody"), t(6));
        assert!(
            matches!(&out.events[0].kind, EventKind::ProcessEscaped { pool: None, .. }),
            "{:?}",
            out.events
        );
    }

    #[test]
    fn errors_and_requests_are_counted_per_worker_and_pool() {
        let mut rule = Rule::threshold("errors-high", "errors", Comparison::Above, 1.0, None);
        rule.for_samples = 0;
        let mut f = fleet(vec![rule]);
        for id in ["w1", "w2"] {
            f.report(reg(id), t(0)).unwrap();
            f.report(state(id, State::Ready), t(1)).unwrap();
        }
        let err = |id: &str, kind| Report::Error { worker: id.into(), kind, message: "boom".into() };
        f.report(err("w1", ErrorKind::Error), t(10)).unwrap();
        f.report(err("w1", ErrorKind::Warning), t(11)).unwrap();
        let out = f.report(err("w1", ErrorKind::Error), t(12)).unwrap();
        assert_eq!(kinds(&out.events), vec!["alert:errors-high:firing"]);
        f.report(err("w2", ErrorKind::Error), t(13)).unwrap();
        f.report(Report::Requests { worker: "w1".into(), count: 5 }, t(20)).unwrap();
        f.report(Report::Requests { worker: "w1".into(), count: 2 }, t(21)).unwrap();
        f.report(Report::Requests { worker: "w2".into(), count: 1 }, t(22)).unwrap();
        let log = f.error_log("w1").unwrap();
        assert_eq!(log.len(), 3);
        assert_eq!((log[1].at, log[1].kind), (t(11), ErrorKind::Warning));
        let w1 = f.worker("w1").unwrap().current.as_ref().unwrap();
        assert_eq!((w1.requests, w1.errors, w1.warnings), (7, 2, 1));
        let pm = f.pool_metrics("loom").unwrap();
        assert_eq!((pm.total_requests, pm.total_errors, pm.total_warnings), (8, 3, 1));
        // Requests alone do not flip a reported worker to WORKING: the orchestrator says when it is busy.
        assert_eq!(f.worker("w1").unwrap().state(), State::Ready);
    }

    #[test]
    fn a_recycle_of_a_reported_worker_is_a_request_published_once_and_recorded_when_it_ends() {
        let mut spec = reported_pool(vec![]);
        spec.recycle.memory_bytes = Some(100 * MB);
        let mut f = Fleet::new(vec![spec]);
        f.report(reg("w1"), t(0)).unwrap();
        f.report(state("w1", State::Ready), t(1)).unwrap();
        let big = || Report::Metrics {
            worker: "w1".into(),
            metrics: Metrics { memory_bytes: Some(150 * MB), ..Default::default() },
        };
        let out = f.report(big(), t(1000)).unwrap();
        assert_eq!(kinds(&out.events), vec!["recycle_started"]);
        assert!(out.actions.is_empty(), "Tend does not own the process: no action");
        let out = f.report(big(), t(2000)).unwrap();
        assert!(out.events.is_empty(), "asked once: {:?}", kinds(&out.events));
        assert!(matches!(
            f.recycle("w1", RecycleReason::Manual, "", t(2500)),
            Err(CommandError::AlreadyRecycling(_, RecycleReason::Memory))
        ));
        f.report(state("w1", State::Completing), t(3000)).unwrap();
        let out = f.report(state("w1", State::Completed), t(4000)).unwrap();
        assert_eq!(kinds(&out.events), vec!["state:COMPLETED", "recycled"]);
        let out = f.report(state("w1", State::Cleaned), t(5000)).unwrap();
        assert_eq!(kinds(&out.events), vec!["state:CLEANED"]);
        let pm = f.pool_metrics("loom").unwrap();
        assert_eq!(pm.completed_workers, 1);
        assert_eq!(pm.recycles_by_reason.get(&RecycleReason::Memory), Some(&1));
        // Removed after the retention of ended workers.
        let out = f.observe(super::super::Input::Tick, t(5000).plus(super::super::CLEANED_RETENTION));
        assert_eq!(kinds(&out.events), vec!["worker_removed"]);
    }

    #[test]
    fn an_ended_worker_the_orchestrator_forgets_to_clean_is_cleaned_then_removed() {
        let mut f = fleet(vec![]);
        f.report(reg("w1"), t(0)).unwrap();
        f.report(state("w1", State::Failed), t(1000)).unwrap();
        let retention = super::super::CLEANED_RETENTION;
        let out =
            f.observe(super::super::Input::Tick, t(1000).plus(retention).minus(Duration::from_millis(1)));
        assert!(out.events.is_empty());
        let out = f.observe(super::super::Input::Tick, t(1000).plus(retention));
        assert_eq!(kinds(&out.events), vec!["state:CLEANED"]);
        assert_eq!(f.pool_metrics("loom").unwrap().failed_workers, 1, "counted once cleaned");
        let out = f.observe(super::super::Input::Tick, t(1000).plus(retention * 2));
        assert_eq!(kinds(&out.events), vec!["worker_removed"]);
    }

    #[test]
    fn a_silent_reported_worker_times_out_but_reports_of_any_kind_keep_it_alive() {
        let mut f = fleet(vec![]);
        f.report(reg("w1"), t(0)).unwrap();
        f.report(state("w1", State::Ready), t(0)).unwrap();
        f.report(Report::Requests { worker: "w1".into(), count: 1 }, t(20_000)).unwrap();
        let _ = f.observe(super::super::Input::Tick, t(45_000));
        assert_eq!(f.worker("w1").unwrap().state(), State::Ready);
        let out = f.observe(super::super::Input::Tick, t(50_000));
        assert_eq!(kinds(&out.events), vec!["state:TIMEOUT"]);
        assert!(out.actions.is_empty());
    }
}
