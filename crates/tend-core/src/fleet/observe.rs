//! Observations: what the sources saw (spawns, readiness, exits, samples, listings, ticks) turned into
//! lifecycle changes, alerts and recycle triggers.

use std::collections::{HashMap, HashSet};

use super::*;

impl Fleet {
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
            Input::Samples { pool, readings, round_done } => {
                self.on_samples(&pool, readings, round_done, now)
            }
            Input::Discovered { pool, found, began } => self.on_discovered(&pool, found, began, now),
            Input::Appeared { pool, found } => self.attach_found(&pool, found, now),
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
    pub(super) fn on_spawned(&mut self, id: &WorkerId, n: u32, process: ProcessId, now: Timestamp) {
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
            self.terminate(id, n, process, true);
        }
    }

    pub(super) fn on_spawn_failed(&mut self, id: &WorkerId, n: u32, error: &str, now: Timestamp) {
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

    pub(super) fn on_ready(&mut self, id: &WorkerId, n: u32, how: &str, now: Timestamp) {
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

    pub(super) fn on_not_ready(&mut self, id: &WorkerId, n: u32, error: &str, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else { return };
        let Some((_, inc)) = w.find(n) else { return };
        if inc.state() != State::Initializing {
            return;
        }
        let process = inc.process;
        inc.ending = Some(Ending::Kill("readiness failed".into()));
        self.transition(id, n, State::Failed, format!("readiness failed: {error}"), now);
        if let Some(process) = process {
            self.terminate(id, n, process, true);
        }
    }

    /// The process of incarnation `n` ended (`exit` None: not our child, status unknown).
    pub(super) fn on_exit(&mut self, id: &WorkerId, n: u32, exit: Option<ExitInfo>, now: Timestamp) {
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

    pub(super) fn after_cleaned(&mut self, id: &WorkerId, n: u32, role: Role, now: Timestamp) {
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

    pub(super) fn on_samples(
        &mut self,
        pool: &str,
        readings: Vec<Observed>,
        round_done: bool,
        now: Timestamp,
    ) {
        let Some(spec) = self.pool(pool).cloned() else { return };
        for r in readings {
            self.on_reading(&spec, r, now);
        }
        if !round_done {
            return;
        }
        // Pool-scope rules read the aggregates after the sweep's last part.
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

    pub(super) fn on_reading(&mut self, spec: &PoolSpec, r: Observed, now: Timestamp) {
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
            w.recent.push(now, &r.metrics, spec.history);
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

    pub(super) fn on_discovered(
        &mut self,
        pool: &str,
        found: Vec<(ProcessId, String)>,
        began: Timestamp,
        now: Timestamp,
    ) {
        // Watched processes that are no longer listed (or whose pid now names another process) ended;
        // one attached while the scan ran (heard of as it exec'd) may be missing from it and stays.
        let listed: HashSet<ProcessId> = found.iter().map(|(p, _)| *p).collect();
        let mut gone: Vec<(WorkerId, u32)> = self
            .live_in(pool)
            .into_values()
            .flatten()
            .filter(|(_, _, p, created)| !listed.contains(p) && *created <= began)
            .map(|(id, n, _, _)| (id, n))
            .collect();
        gone.sort();
        for (id, n) in gone {
            self.on_exit(&id, n, None, now);
        }
        self.attach_found(pool, found, now);
    }

    /// The live incarnations of `pool`'s workers by pid: worker, incarnation, process, and since when.
    fn live_in(&self, pool: &str) -> HashMap<u32, Vec<(WorkerId, u32, ProcessId, Timestamp)>> {
        let mut live: HashMap<u32, Vec<_>> = HashMap::new();
        for w in self.workers.values().filter(|w| w.pool == pool) {
            if let Some(c) = w.current.as_ref().filter(|c| c.state().is_live())
                && let Some(p) = c.process
            {
                live.entry(p.pid).or_default().push((w.id.clone(), c.n, p, c.lifecycle.created()));
            }
        }
        live
    }

    /// Attach what is not watched yet among `found` (Tend's own processes are never attached).
    fn attach_found(&mut self, pool: &str, found: Vec<(ProcessId, String)>, now: Timestamp) {
        if !self.pools.iter().any(|p| p.name == pool && matches!(p.kind, PoolKind::Attach)) {
            return;
        }
        let owned: HashSet<ProcessId> = self.owned_processes().into_iter().collect();
        // Found processes have distinct pids, so this index stays true for each of them in turn.
        let live = self.live_in(pool);
        for (process, name) in found.into_iter().filter(|(p, _)| !owned.contains(p)) {
            let same_pid = live.get(&process.pid).map(Vec::as_slice).unwrap_or_default();
            if same_pid.iter().any(|(_, _, p, _)| *p == process) {
                continue;
            }
            // A watched process with the same pid and another start time is gone: the pid is this
            // process's now. It ends first, so the new one takes its id.
            for (id, n, _, _) in same_pid {
                self.on_exit(id, *n, None, now);
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
}
