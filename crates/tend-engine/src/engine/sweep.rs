//! The engine task's sampling: per-pool sweeps of the watched processes at their interval (merging the
//! scraped `/metrics` readings and the supervisor's output counters), docker pools' stats sweeps as the
//! docker source delivers them, the due discovery passes, and Tend's own usage. Part of the engine
//! loop: it runs inside the engine task and never waits on anything slow. A pool watching more than
//! [`SPREAD_OVER`] processes is swept in parts of about that many, one per engine tick within its
//! interval (a pid stays in its part), so no engine turn carries a whole large sweep; its pool rules
//! read the aggregates once a round, after the last part.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::debug;

use tend_collect::Sampler;
use tend_collect::scrape::Scraped;
use tend_core::fleet::{Input, Observed, Part};
use tend_core::model::{Metrics, ProcessId, Source, WorkerId};

use super::{Engine, TICK, history};
use crate::convert::PoolRuntime;
use crate::sources::discovery;

/// A pool watching more processes than this is swept in parts of about this many: reading 1000
/// processes takes ~10 ms of an engine turn on a 2-core VM. Smaller parts would keep turns shorter but
/// cost more: 250 a part cost ~20% more CPU than whole sweeps of 1000 (each part finds the kernel's
/// caches colder), measured in `docs/PERFORMANCE.md`.
pub(super) const SPREAD_OVER: usize = 1000;
/// At most this many parts to a round (a slow pool's round takes its first ticks, not its interval).
const MAX_PARTS: u32 = 8;

/// How many parts a round of `watched` processes sampled every `interval` takes: enough for parts of
/// at most [`SPREAD_OVER`], but no more than the engine ticks of the interval (nor [`MAX_PARTS`]).
pub(super) fn parts_for(watched: usize, interval: Duration) -> u32 {
    if watched <= SPREAD_OVER {
        return 1;
    }
    let ticks = (interval.as_millis() / TICK.as_millis()).clamp(1, u128::from(MAX_PARTS));
    (watched.div_ceil(SPREAD_OVER) as u128).min(ticks) as u32
}

/// A large pool's round under way: its next part and when that part is due.
pub(super) struct Round {
    next: Part,
    at: Instant,
    /// Time spent reading the round's parts so far (reported as the pool's sweep time at its end).
    took: Duration,
}

impl Engine {
    /// Sample every pool whose interval has come round (or the next part of its round), and start due
    /// discovery passes.
    pub(super) fn sweep_due(&mut self) {
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
                // A round still under way when the next is due (a stalled loop) is finished first, so
                // no process misses its reading.
                while self.rounds.contains_key(&name) {
                    self.sweep_next_part(&name, &rt);
                }
                // The pool's first round is whole: its sampler is made by that sweep.
                let spreads = self.samplers.get(&name).is_some_and(|s| s.spreads());
                let of = if spreads { parts_for(self.fleet.watched_count(&name), interval) } else { 1 };
                self.rounds.insert(
                    name.clone(),
                    Round { next: Part { index: 0, of }, at: now, took: Duration::ZERO },
                );
                self.sweep_next_part(&name, &rt);
            } else if self.rounds.get(&name).is_some_and(|r| r.at <= now + TICK / 2) {
                self.sweep_next_part(&name, &rt);
            }
            if let Some(matcher) = rt.matcher.clone()
                && self.discovery.as_mut().is_some_and(|d| d.due(&name, now))
            {
                let mut exclude: Vec<u32> = self.fleet.owned_processes().iter().map(|p| p.pid).collect();
                exclude.push(std::process::id());
                discovery::start(name.clone(), matcher, exclude, self.clock.now(), self.tx.clone());
            }
        }
    }

    /// Sweep the round's next part; the round ends with its last.
    fn sweep_next_part(&mut self, pool: &str, rt: &PoolRuntime) {
        let Some(round) = self.rounds.get_mut(pool) else { return };
        let part = round.next;
        round.next = Part { index: part.index + 1, of: part.of };
        round.at += TICK;
        let read = self.sweep(pool, rt, part);
        let Some(round) = self.rounds.get_mut(pool) else { return };
        round.took += read.unwrap_or_default();
        if part.is_last() {
            let took = round.took;
            self.rounds.remove(pool);
            // A round that read nothing leaves the pool's last sweep time as it was.
            if took > Duration::ZERO || read.is_some() {
                self.collection.insert(pool.to_owned(), took);
            }
        }
    }

    /// Read one part of a pool and hand the readings to the fleet; the time the reading took.
    fn sweep(&mut self, pool: &str, rt: &PoolRuntime, part: Part) -> Option<Duration> {
        let list = self.fleet.watch_list_part(pool, part);
        if list.is_empty() {
            if part.is_last() && part.of > 1 {
                // A round in parts whose last part is empty: the pool rules still read the round's
                // aggregates (a pool with nothing watched at all is not swept, as before).
                let out = self.fleet.observe(
                    Input::Samples { pool: pool.to_owned(), readings: Vec::new(), round_done: true },
                    self.clock.now(),
                );
                self.dispatch(out);
            }
            return None;
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
                    return None;
                }
            },
        };
        let pids: Vec<ProcessId> = list.iter().map(|(_, _, p)| *p).collect();
        let started = Instant::now();
        let results = sampler.sample_part(&pids, part.of);
        let took = started.elapsed();
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
                        && let Some(s) = take_scraped(&mut self.scraped, &worker, n)
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
        let round_done = part.is_last();
        let out = self.fleet.observe(Input::Samples { pool: pool.to_owned(), readings, round_done }, now);
        if let (Some(store), Some(taps)) = (&self.store, taps) {
            history::record_sweep(&store.recorder, &self.fleet, pool, now, taps);
        }
        self.dispatch(out);
        // `micros`: reading the processes; `turn_micros`: the engine's whole turn for this part.
        debug!(
            pool,
            workers = pids.len(),
            part = part.index,
            of = part.of,
            micros = took.as_micros() as u64,
            turn_micros = started.elapsed().as_micros() as u64,
            "sweep"
        );
        Some(took)
    }

    /// A docker pool's stats sweep (read by the docker source off this task), matched to the workers
    /// whose serving incarnation runs in each container.
    pub(super) fn container_sweep(&mut self, pool: &str, readings: Vec<(String, Metrics)>) {
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
        let out = self
            .fleet
            .observe(Input::Samples { pool: pool.to_owned(), readings: observed, round_done: true }, now);
        if let (Some(store), Some(taps)) = (&self.store, taps) {
            history::record_sweep(&store.recorder, &self.fleet, pool, now, taps);
        }
        self.dispatch(out);
    }

    /// A scrape round's readings, kept until the next sweep of the pool takes them; a failed scrape
    /// drops the worker's older reading.
    pub(super) fn scraped(&mut self, readings: Vec<(WorkerId, u32, Option<Scraped>)>) {
        for (worker, n, reading) in readings {
            match reading {
                Some(s) => {
                    self.scraped.insert(worker, (n, s));
                }
                None => {
                    self.scraped.remove(&worker);
                }
            }
        }
    }

    pub(super) fn sample_self(&mut self) {
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
}

/// The numbers scraped for incarnation `n` of `worker` since the last sweep took them. Taking, not
/// reading: a sweep that finds no new scrape passes no request count, so an unchanged old count cannot
/// read as "idle" between two scrapes.
fn take_scraped(
    scraped: &mut HashMap<WorkerId, (u32, Scraped)>,
    worker: &WorkerId,
    n: u32,
) -> Option<Scraped> {
    match scraped.remove(worker) {
        Some((m, s)) if m == n => Some(s),
        _ => None,
    }
}

/// The /proc reader with the fields the pool's profile collects; sysinfo where /proc is unreadable.
fn sampler_for(rt: &PoolRuntime) -> std::io::Result<Box<dyn Sampler + Send>> {
    match tend_collect::ProcSampler::with_fields(rt.fields) {
        Ok(s) => Ok(Box::new(s)),
        Err(_) => tend_collect::default_sampler(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_pools_take_a_part_per_tick_of_their_interval() {
        let s = Duration::from_secs;
        assert_eq!(parts_for(SPREAD_OVER, s(1)), 1, "up to the limit, one sweep");
        assert_eq!(parts_for(SPREAD_OVER + 1, s(1)), 2);
        assert_eq!(parts_for(3000, s(1)), 3);
        assert_eq!(parts_for(5000, s(1)), 4, "no more parts than the interval has ticks");
        assert_eq!(parts_for(5000, s(10)), 5);
        assert_eq!(parts_for(20_000, s(10)), MAX_PARTS, "a slow pool's round takes its first ticks");
        assert_eq!(parts_for(5000, Duration::from_millis(100)), 1, "faster than a tick: whole sweeps");
    }
}
