//! The simulation harness the fleet's tests share: drives a [`Fleet`] the way the runtime does (answers
//! spawns with fresh pids, feeds readiness and samples at given milliseconds) and keeps what came out.

use super::*;

pub const MB: u64 = 1024 * 1024;

pub fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}
pub fn pid(p: u32) -> ProcessId {
    ProcessId { pid: p, start_ticks: u64::from(p) * 10 }
}
pub fn w(s: &str) -> WorkerId {
    WorkerId::new(s)
}

/// Drives a fleet the way the runtime does, answering Spawn actions with fresh pids.
pub struct Sim {
    pub fleet: Fleet,
    pub next_pid: u32,
    pub events: Vec<Event>,
    pub actions: Vec<Action>,
}

impl Sim {
    pub fn new(pools: Vec<PoolSpec>) -> Sim {
        let mut s = Sim { fleet: Fleet::new(pools), next_pid: 100, events: vec![], actions: vec![] };
        let out = s.fleet.start(t(0));
        s.absorb(out);
        s
    }
    pub fn absorb(&mut self, out: Output) -> Output {
        self.events.extend(out.events.iter().cloned());
        self.actions.extend(out.actions.iter().cloned());
        out
    }
    pub fn feed(&mut self, input: Input, at: i64) -> Output {
        let out = self.fleet.observe(input, t(at));
        self.absorb(out)
    }
    /// Answer every pending Spawn with Spawned (+ Ready when `ready`).
    pub fn spawn_all(&mut self, at: i64, ready: bool) -> Vec<(WorkerId, u32, ProcessId)> {
        let spawns: Vec<Action> = std::mem::take(&mut self.actions);
        let mut started = vec![];
        for a in spawns {
            match a {
                Action::Spawn { worker, incarnation, .. } => {
                    self.next_pid += 1;
                    let p = pid(self.next_pid);
                    self.feed(Input::Spawned { worker: worker.clone(), incarnation, process: p }, at);
                    if ready {
                        self.feed(
                            Input::Ready { worker: worker.clone(), incarnation, how: "alive 1s".into() },
                            at,
                        );
                    }
                    started.push((worker, incarnation, p));
                }
                other => self.actions.push(other),
            }
        }
        started
    }
    pub fn sample(&mut self, pool: &str, at: i64, mem_mb: &[(&str, u64)]) -> Output {
        self.sample_part(pool, at, mem_mb, true)
    }
    /// One part of a pool's sweep; `round_done` on its last.
    pub fn sample_part(&mut self, pool: &str, at: i64, mem_mb: &[(&str, u64)], round_done: bool) -> Output {
        let readings = mem_mb
            .iter()
            .map(|(id, mb)| {
                let c = self.fleet.worker(id).unwrap().current.as_ref().unwrap();
                Observed {
                    worker: w(id),
                    incarnation: c.n,
                    metrics: Metrics {
                        memory_bytes: Some(mb * MB),
                        cpu_percent: Some(1.0),
                        ..Default::default()
                    },
                    log_lines: None,
                    requests: None,
                }
            })
            .collect();
        self.feed(Input::Samples { pool: pool.into(), readings, round_done }, at)
    }
    pub fn states(&self, id: &str) -> Vec<(u32, State)> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::StateChanged { worker, incarnation, to, .. } if worker.as_str() == id => {
                    Some((*incarnation, *to))
                }
                _ => None,
            })
            .collect()
    }
    pub fn kinds(&self) -> Vec<&'static str> {
        self.events.iter().map(|e| e.kind.name()).collect()
    }
    pub fn live_serving(&self, pool: &str) -> usize {
        self.fleet
            .workers()
            .filter(|x| x.pool == pool)
            .map(|x| {
                x.live_incarnations().filter(|i| matches!(i.state(), State::Ready | State::Working)).count()
            })
            .sum()
    }
}
