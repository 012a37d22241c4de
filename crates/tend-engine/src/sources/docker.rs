//! The docker source at run time: one task per engine endpoint that keeps a connection (with backoff
//! while the engine is away, reported as the degraded source `docker:<host>`), lists each pool's
//! containers, forwards the engine's container events, reads stats at each pool's interval (one-shot
//! reads with our own deltas, or one engine stream per container), and looks for orphans. It also carries
//! out the fleet's container actions. It reports observations to the engine task and never decides.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use tend_collect::docker::{self as dk, Client, CpuBase};
use tend_core::backoff::Backoff;
use tend_core::fleet::{Action, Input};
use tend_core::model::Metrics;

use crate::config::DockerStatsMode;
use crate::convert::{PoolRuntime, Runtimes};
use crate::mailbox::{Mailbox, Msg};

/// How often each pool's containers are listed (reconciling missed events), at most.
pub const LIST_EVERY: Duration = Duration::from_secs(2);
/// How often the engine is searched for orphaned containers.
pub const ORPHANS_EVERY: Duration = Duration::from_secs(5);
/// Reconnection backoff: doubling from 0.25 s to 5 s.
pub const BACKOFF: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
/// Stats reads in flight at once per pool sweep. A one-shot read of dockerd 20.10 returns the next
/// sample of its once-a-second collector, so reads are not short calls: they wait up to a second. All
/// containers of a pool are read at once, so that one sweep takes one collector tick whatever the count.
const STATS_CONCURRENCY: usize = 1024;

/// The engine's handle on one endpoint: the current client (none while the engine is away).
#[derive(Clone, Default)]
pub(crate) struct Endpoint {
    pub host: String,
    client: Arc<Mutex<Option<Client>>>,
}

impl Endpoint {
    fn client(&self) -> Option<Client> {
        self.client.lock().ok().and_then(|c| c.clone())
    }
    fn set(&self, c: Option<Client>) {
        if let Ok(mut g) = self.client.lock() {
            *g = c;
        }
    }
}

/// Endpoints by pool name.
pub(crate) type Endpoints = HashMap<String, Endpoint>;

/// Start one task per distinct endpoint among the docker pools.
pub(crate) fn start(pools: &Runtimes, tx: Mailbox) -> Endpoints {
    let all: Vec<String> = pools.keys().cloned().collect();
    let mut by_host: HashMap<String, Vec<Arc<PoolRuntime>>> = HashMap::new();
    for rt in pools.values() {
        if let Some(d) = &rt.docker {
            by_host.entry(d.host.clone()).or_default().push(rt.clone());
        }
    }
    let mut endpoints = HashMap::new();
    for (host, pools) in by_host {
        let ep = Endpoint { host: host.clone(), client: Default::default() };
        for p in &pools {
            endpoints.insert(p.spec.name.clone(), ep.clone());
        }
        let source = Source { ep, pools, all: all.clone(), tx: tx.clone() };
        tokio::spawn(source.run());
    }
    endpoints
}

struct Source {
    ep: Endpoint,
    pools: Vec<Arc<PoolRuntime>>,
    all: Vec<String>,
    tx: Mailbox,
}

/// What the source remembers of a running container between reads.
#[derive(Default)]
struct Known {
    limit: Option<Option<f64>>,
    base: Option<CpuBase>,
    stream: Option<JoinHandle<()>>,
    latest: Option<Metrics>,
    /// A one-shot read is in flight (the next sweep skips this container rather than piling up reads).
    reading: bool,
}

type KnownMap = Arc<Mutex<HashMap<String, Known>>>;

impl Source {
    fn status_name(&self) -> String {
        tend_core::fleet::docker_source_name(&self.ep.host)
    }

    fn send(&self, input: Input) {
        let _ = self.tx.send(Msg::Observe(input));
    }

    fn status(&self, degraded: bool, detail: String) {
        self.send(Input::SourceStatus { source: self.status_name(), degraded, detail });
    }

    async fn run(self) {
        let mut backoff = BACKOFF;
        let mut failures = 0u32;
        loop {
            match dk::connect(&self.ep.host).await {
                Ok(client) => {
                    if failures > 0 {
                        info!(host = %self.ep.host, "docker engine reachable again");
                    }
                    failures = 0;
                    backoff.reset();
                    self.ep.set(Some(client.clone()));
                    self.status(false, format!("connected to {}", self.ep.host));
                    let why = self.session(&client).await;
                    self.ep.set(None);
                    warn!(host = %self.ep.host, error = %why, "docker engine lost; reconnecting");
                    self.status(true, format!("docker engine at {} lost: {why}; reconnecting", self.ep.host));
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        warn!(host = %self.ep.host, error = %e, "docker engine unreachable; retrying with backoff");
                    }
                    // The same words on every retry: one event per change of state, not one per attempt.
                    self.status(
                        true,
                        format!("docker engine at {} unreachable: {e}; retrying with backoff", self.ep.host),
                    );
                    tokio::time::sleep(backoff.next()).await;
                }
            }
        }
    }

    /// One connected session: returns why it ended (the events stream broke, a listing failed).
    async fn session(&self, client: &Client) -> String {
        let known: KnownMap = Default::default();
        let why = self.watch(client, &known).await;
        if let Ok(mut k) = known.lock() {
            for (_, x) in k.drain() {
                if let Some(s) = x.stream {
                    s.abort();
                }
            }
        }
        why
    }

    async fn watch(&self, client: &Client, known: &KnownMap) -> String {
        let mut events = Box::pin(dk::events(client));
        // Running containers per pool, from the last listing and the events since.
        let mut running: HashMap<String, HashSet<String>> = HashMap::new();
        let mut next_list: HashMap<String, Instant> = HashMap::new();
        let mut next_sample: HashMap<String, Instant> = HashMap::new();
        let mut next_orphans = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = events.next() => {
                    let msg = match ev {
                        None => return "events stream ended".to_owned(),
                        Some(Err(e)) => return format!("events stream: {e}"),
                        Some(Ok(m)) => m,
                    };
                    let Some(ce) = dk::container_event(msg) else { continue };
                    let mut seen = ce.seen();
                    if ce.change == tend_core::fleet::ContainerChange::Started
                        && self.pools.iter().any(|rt| {
                            rt.docker.as_ref().is_some_and(|d| d.selector.matches(&ce.attributes, &ce.name, &ce.image))
                        })
                    {
                        seen.has_health = dk::has_healthcheck(client, &ce.id).await.unwrap_or(false);
                    }
                    for rt in &self.pools {
                        let Some(d) = &rt.docker else { continue };
                        if !d.selector.matches(&ce.attributes, &ce.name, &ce.image) {
                            continue;
                        }
                        let set = running.entry(rt.spec.name.clone()).or_default();
                        match ce.change {
                            tend_core::fleet::ContainerChange::Started => {
                                set.insert(ce.id.clone());
                            }
                            tend_core::fleet::ContainerChange::Died { .. }
                            | tend_core::fleet::ContainerChange::Destroyed => {
                                set.remove(&ce.id);
                                forget(known, &ce.id);
                            }
                            _ => {}
                        }
                        debug!(pool = %rt.spec.name, container = %ce.name, change = ?ce.change, "docker event");
                        self.send(Input::Container {
                            pool: rt.spec.name.clone(),
                            seen: seen.clone(),
                            change: ce.change.clone(),
                        });
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    for rt in &self.pools {
                        let Some(d) = &rt.docker else { continue };
                        let name = rt.spec.name.clone();
                        let every = rt.spec.interval.map(|i| i.max(LIST_EVERY)).unwrap_or(LIST_EVERY);
                        if next_list.get(&name).is_none_or(|t| *t <= now) {
                            next_list.insert(name.clone(), now + every);
                            match dk::list(client, &d.selector).await {
                                Ok(found) => {
                                    let ids: HashSet<String> = found
                                        .iter()
                                        .filter(|c| matches!(c.status, tend_core::fleet::ContainerStatus::Running { .. }))
                                        .map(|c| c.id.clone())
                                        .collect();
                                    if let Ok(mut k) = known.lock() {
                                        let all_running: HashSet<&String> = ids.iter().collect();
                                        let stale: Vec<String> = k
                                            .keys()
                                            .filter(|id| !all_running.contains(id) && !self.running_elsewhere(&running, &name, id))
                                            .cloned()
                                            .collect();
                                        for id in stale {
                                            if let Some(s) = k.remove(&id).and_then(|x| x.stream) {
                                                s.abort();
                                            }
                                        }
                                    }
                                    running.insert(name.clone(), ids);
                                    self.send(Input::Containers { pool: name.clone(), found });
                                }
                                Err(e) => return format!("listing containers: {e}"),
                            }
                        }
                        let Some(interval) = rt.spec.interval else { continue };
                        let due = next_sample.get(&name).copied();
                        if due.is_none_or(|t| t <= now + Duration::from_millis(50)) {
                            let mut next = due.unwrap_or(now) + interval;
                            if next <= now {
                                next = now + interval;
                            }
                            next_sample.insert(name.clone(), next);
                            let ids: Vec<String> = running.get(&name).map(|s| s.iter().cloned().collect()).unwrap_or_default();
                            if ids.is_empty() {
                                continue;
                            }
                            match d.stats {
                                DockerStatsMode::Poll => {
                                    let (client, known, tx) = (client.clone(), known.clone(), self.tx.clone());
                                    tokio::spawn(async move {
                                        let readings = poll(&client, &known, ids).await;
                                        let _ = tx.send(Msg::ContainerSamples { pool: name, readings });
                                    });
                                }
                                DockerStatsMode::Stream => {
                                    let readings = streamed(client, known, &ids);
                                    let _ = self.tx.send(Msg::ContainerSamples { pool: name, readings });
                                }
                            }
                        }
                    }
                    if now >= next_orphans {
                        next_orphans = now + ORPHANS_EVERY;
                        let alive = |pid: u32| tend_collect::process_id(pid).is_ok();
                        match dk::orphans(client, &self.all, alive).await {
                            Ok(list) => {
                                for rt in &self.pools {
                                    self.send(Input::Orphans { pool: rt.spec.name.clone(), orphans: list.clone() });
                                }
                            }
                            Err(e) => debug!(host = %self.ep.host, error = %e, "orphan listing failed"),
                        }
                    }
                }
            }
        }
    }

    fn running_elsewhere(&self, running: &HashMap<String, HashSet<String>>, pool: &str, id: &str) -> bool {
        running.iter().any(|(p, set)| p != pool && set.contains(id))
    }
}

fn forget(known: &KnownMap, id: &str) {
    if let Ok(mut k) = known.lock()
        && let Some(x) = k.remove(id)
        && let Some(s) = x.stream
    {
        s.abort();
    }
}

/// One-shot reads of every container, CPU from our own previous read. A container that vanished since
/// the listing (404) is skipped quietly: its destroy event or the next listing ends it.
async fn poll(client: &Client, known: &KnownMap, ids: Vec<String>) -> Vec<(String, Metrics)> {
    let ids: Vec<String> = match known.lock() {
        Ok(mut k) => ids
            .into_iter()
            .filter(|id| {
                let e = k.entry(id.clone()).or_default();
                !std::mem::replace(&mut e.reading, true)
            })
            .collect(),
        Err(_) => return Vec::new(),
    };
    let reads = futures::stream::iter(ids.into_iter().map(|id| {
        let client = client.clone();
        let known = known.clone();
        async move {
            let limit = known.lock().ok().and_then(|k| k.get(&id).and_then(|x| x.limit));
            let limit = match limit {
                Some(l) => l,
                None => match dk::cpu_limit(&client, &id).await {
                    Ok(l) => l,
                    Err(e) => {
                        debug!(container = %id, error = %e, "inspect failed");
                        None
                    }
                },
            };
            let read = dk::stats_once(&client, &id).await;
            if let Ok(mut k) = known.lock()
                && let Some(e) = k.get_mut(&id)
            {
                e.reading = false;
            }
            match read {
                Ok(s) => {
                    let mut k = known.lock().ok()?;
                    let entry = k.entry(id.clone()).or_default();
                    entry.limit = Some(limit);
                    let m = dk::metrics(&s, entry.base, limit);
                    entry.base = dk::cpu_base(&s);
                    Some((id, m))
                }
                Err(e) if dk::is_not_found(&e) => {
                    debug!(container = %id, "container vanished before its stats were read");
                    None
                }
                Err(e) => {
                    debug!(container = %id, error = %e, "stats read failed");
                    None
                }
            }
        }
    }))
    .buffer_unordered(STATS_CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    reads.into_iter().flatten().collect()
}

/// The latest streamed sample of each container; starts a stream for a container that has none.
fn streamed(client: &Client, known: &KnownMap, ids: &[String]) -> Vec<(String, Metrics)> {
    let Ok(mut k) = known.lock() else { return Vec::new() };
    let mut out = Vec::new();
    for id in ids {
        let entry = k.entry(id.clone()).or_default();
        if entry.stream.as_ref().is_none_or(|s| s.is_finished()) {
            entry.stream = Some(tokio::spawn(stream_task(client.clone(), known.clone(), id.clone())));
        }
        if let Some(m) = entry.latest.take() {
            out.push((id.clone(), m));
        }
    }
    out
}

async fn stream_task(client: Client, known: KnownMap, id: String) {
    let limit = dk::cpu_limit(&client, &id).await.ok().flatten();
    let mut s = Box::pin(dk::stats_stream(&client, &id));
    while let Some(item) = s.next().await {
        match item {
            Ok(sample) => {
                // The first streamed sample has an empty precpu: no CPU figure until the second.
                let m = dk::metrics(&sample, None, limit);
                if let Ok(mut k) = known.lock()
                    && let Some(e) = k.get_mut(&id)
                {
                    e.latest = Some(m);
                }
            }
            Err(e) => {
                debug!(container = %id, error = %e, "stats stream ended");
                break;
            }
        }
    }
}

/// Carry out a container action in its own task; results come back as observations.
pub(crate) fn act(endpoints: &Endpoints, action: Action, tx: Mailbox) {
    let pool = match &action {
        Action::ContainerRestart { pool, .. }
        | Action::ContainerRecreate { pool, .. }
        | Action::ContainerStop { pool, .. }
        | Action::RemoveOrphans { pool, .. } => pool.clone(),
        _ => return,
    };
    let client = endpoints.get(&pool).and_then(Endpoint::client);
    tokio::spawn(async move {
        let fail = |worker, incarnation, error: String| {
            let _ = tx.send(Msg::Observe(Input::ContainerActionFailed { worker, incarnation, error }));
        };
        let Some(client) = client else {
            if let Some((w, n)) = worker_of(&action) {
                fail(w, n, "docker engine unreachable".into());
            }
            return;
        };
        match action {
            Action::ContainerRestart { worker, incarnation, container, grace, .. } => {
                info!(worker = %worker, container = %container, "restarting container");
                if let Err(e) = dk::restart(&client, &container, grace).await {
                    warn!(worker = %worker, error = %e, "container restart failed");
                    fail(worker, incarnation, format!("restart failed: {e}"));
                }
            }
            Action::ContainerRecreate { worker, incarnation, from, .. } => {
                info!(worker = %worker, from = %from, "recreating container");
                match dk::recreate(&client, &from, worker.as_str(), incarnation).await {
                    Ok(run) => {
                        info!(worker = %worker, container = %run.name, "container recreated and started");
                        let _ = tx.send(Msg::Observe(Input::ContainerCreated {
                            worker,
                            incarnation,
                            container: run,
                        }));
                    }
                    Err(e) => {
                        warn!(worker = %worker, error = %e, "container recreate failed");
                        fail(worker, incarnation, format!("recreate failed: {e}"));
                    }
                }
            }
            Action::ContainerStop { worker, incarnation, container, grace, remove, .. } => {
                info!(worker = %worker, container = %container, remove, "stopping container");
                if let Err(e) = dk::stop(&client, &container, grace, remove).await {
                    warn!(worker = %worker, error = %e, "container stop failed");
                    fail(worker, incarnation, format!("stop failed: {e}"));
                }
            }
            Action::RemoveOrphans { pool, containers } => {
                for id in containers {
                    match dk::remove_forced(&client, &id).await {
                        Ok(()) => info!(pool = %pool, container = %id, "orphaned container removed"),
                        Err(e) => warn!(pool = %pool, container = %id, error = %e, "orphan removal failed"),
                    }
                }
            }
            _ => {}
        }
    });
}

fn worker_of(a: &Action) -> Option<(tend_core::model::WorkerId, u32)> {
    match a {
        Action::ContainerRestart { worker, incarnation, .. }
        | Action::ContainerRecreate { worker, incarnation, .. }
        | Action::ContainerStop { worker, incarnation, .. } => Some((worker.clone(), *incarnation)),
        _ => None,
    }
}

/// Remove every listed orphan of every docker pool now (the API's "clean orphans").
pub(crate) fn clean_orphans(endpoints: &Endpoints, fleet: &tend_core::fleet::Fleet, tx: Mailbox) -> usize {
    let mut seen = HashSet::new();
    let mut n = 0;
    for (pool, list) in fleet.orphans() {
        let ids: Vec<String> =
            list.iter().map(|o| o.id.clone()).filter(|id| seen.insert(id.clone())).collect();
        n += ids.len();
        if !ids.is_empty() {
            act(endpoints, Action::RemoveOrphans { pool: pool.clone(), containers: ids }, tx.clone());
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_back_off_from_a_quarter_second_to_five() {
        let mut b = BACKOFF;
        let got: Vec<u128> = (0..7).map(|_| b.next().as_millis()).collect();
        assert_eq!(got, [250, 500, 1000, 2000, 4000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(250), "a reconnection starts over");
    }
}
