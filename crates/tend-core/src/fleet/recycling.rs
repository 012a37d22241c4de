//! Recycling: starting a replacement, the `max_unavailable` budget and its queue, draining the old
//! incarnation once the new one serves, backoff after deaths and the storm breaker.

use super::*;

impl Fleet {
    // ---- recycling ------------------------------------------------------------------------------

    pub(super) fn begin_recycle(
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
    pub(super) fn check_storm_before_restart(
        &mut self,
        id: &WorkerId,
        spec: &PoolSpec,
        now: Timestamp,
    ) -> bool {
        let Some(w) = self.workers.get_mut(id) else { return true };
        w.storm.record(now);
        self.check_storm(id, spec, now)
    }

    pub(super) fn check_storm(&mut self, id: &WorkerId, spec: &PoolSpec, now: Timestamp) -> bool {
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
    pub(super) fn queue_over_max_unavailable(
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

    pub(super) fn observe_storm(
        &mut self,
        id: &WorkerId,
        pool: &str,
        restarts: u32,
        active: bool,
        now: Timestamp,
    ) {
        if let Some(rule) = self.storm_rules.get(pool).cloned() {
            let reading = Reading::Condition { active, value: Some(f64::from(restarts)) };
            if let Some(alert) = self.alerts.observe(&rule, pool, id.as_str(), reading, now) {
                self.emit(now, EventKind::AlertChanged { alert });
            }
        }
    }

    /// Create the next incarnation of a slot and ask for it to be spawned.
    pub(super) fn spawn_into(&mut self, id: &WorkerId, as_incoming: bool, now: Timestamp) {
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
    pub(super) fn swap_in(&mut self, id: &WorkerId, now: Timestamp) {
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
    pub(super) fn finish_recycle(&mut self, id: &WorkerId, now: Timestamp) {
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

    pub(super) fn count_recycle(&mut self, pool: &str, reason: RecycleReason, now: Timestamp) {
        if let Some(t) = self.totals.get_mut(pool) {
            *t.recycles.entry(reason).or_default() += 1;
            t.recent_recycles.push_back(now);
            while t.recent_recycles.len() > 10_000 {
                t.recent_recycles.pop_front();
            }
        }
    }

    /// Ask a serving incarnation to finish: COMPLETING, then SIGTERM with the pool's grace.
    pub(super) fn drain(&mut self, id: &WorkerId, n: u32, why: &str, now: Timestamp) {
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
            self.stop_container(id, n, container);
            return;
        }
        if let Some(process) = process {
            self.terminate(id, n, process, group);
        }
    }

    /// End every live incarnation of a worker (stop, shutdown).
    pub(super) fn end_all(&mut self, id: &WorkerId, why: &str, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else { return };
        w.recycle = None;
        let ns: Vec<u32> = w.live_incarnations().map(|i| i.n).collect();
        for n in ns {
            self.drain(id, n, why, now);
        }
    }

    pub(super) fn remove_worker(&mut self, id: &WorkerId, now: Timestamp) {
        if let Some(w) = self.workers.remove(id) {
            for alert in self.alerts.forget_subject(id.as_str(), now) {
                self.emit(now, EventKind::AlertChanged { alert });
            }
            self.emit(now, EventKind::WorkerRemoved { worker: id.clone(), pool: w.pool });
        }
    }
}
