//! Time passing: readiness deadlines, TTLs, respawns after backoff, retention of ended workers, restored
//! alerts that waited too long, and the time-based progress of alerts (for, keep_firing_for, flapping).

use super::*;

impl Fleet {
    pub(super) fn tick(&mut self, now: Timestamp) {
        // Attached workers with nothing pending are passed over, unless their pool has deadlines a
        // tick must watch (a task timeout, a stale or churn rule) or their staleness is due.
        let pools: Vec<(&str, bool, Option<Duration>)> =
            self.pools.iter().map(|p| (p.name.as_str(), has_deadlines(p), p.stale_after)).collect();
        let ids: Vec<WorkerId> = self
            .workers
            .values()
            .filter(|w| {
                let Some(&(_, timed, stale_after)) = pools.iter().find(|(name, ..)| *name == w.pool) else {
                    return true;
                };
                timed || !idle_between_samples(w, stale_after, now)
            })
            .map(|w| w.id.clone())
            .collect();
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

    pub(super) fn tick_worker(&mut self, id: &WorkerId, now: Timestamp) {
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
                    let unsampled = inc.unsampled_for(now);
                    if spec.stale_after.is_some_and(|stale| unsampled >= stale) {
                        timeouts.push((inc.n, role, format!("no sample for {}", secs(unsampled))));
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
    pub(super) fn tick_worker_respawn(&mut self, id: &WorkerId, now: Timestamp) {
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

    pub(super) fn time_out(&mut self, id: &WorkerId, n: u32, role: Role, why: String, now: Timestamp) {
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
            self.stop_container(id, n, container);
        }
        if let Some(process) = process
            && source == Source::Spawned
        {
            self.terminate(id, n, process, true);
        }
    }
}

/// Whether a pool's workers can come due with time alone, beyond what [`idle_between_samples`] rules
/// out: a task timeout, or a worker rule on staleness or restart churn.
fn has_deadlines(p: &PoolSpec) -> bool {
    p.task_timeout.is_some()
        || p.rules.iter().any(|r| {
            r.scope == Scope::Worker
                && matches!(r.condition, Condition::Stale { .. } | Condition::RestartChurn { .. })
        })
}

/// An attached process, live and serving, with nothing pending: no recycle, queued recycle, respawn,
/// hold, second incarnation or retention to run out, and sampled within its pool's `stale_after`. A
/// tick can do nothing for it unless its pool [`has_deadlines`]; large attach pools are mostly such
/// workers, and passing over them keeps the tick's cost with the workers that have something to do.
fn idle_between_samples(w: &Worker, stale_after: Option<Duration>, now: Timestamp) -> bool {
    w.source == Source::Attached
        && w.cleaned_at.is_none()
        && w.incoming.is_none()
        && w.outgoing.is_empty()
        && w.recycle.is_none()
        && w.queued.is_none()
        && w.respawn_at.is_none()
        && w.held.is_none()
        && w.current.as_ref().is_some_and(|c| {
            let fresh = stale_after.is_none_or(|d| c.unsampled_for(now) < d);
            c.ending.is_none() && matches!(c.state(), State::Ready | State::Working) && fresh
        })
}
