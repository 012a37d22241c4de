//! The hub's remote source: for each `[[remote]]`, a task that asks the agent for its workers every
//! second and keeps what it said (or why it said nothing). The [`App`](crate::App) serves these
//! workers beside its own, with their host, and forwards actions on them to their agent. A slow or
//! dead agent costs only its own task: nothing here waits on an agent while holding the lock, and
//! every call has a time limit.
//!
//! A remote worker's id in the hub is `<id on the agent>@<host>`: `@` is in no worker or host name,
//! and is a plain character in a URL path.

mod agent;
mod stream;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tend_api::{HealthDto, HostDto, HostStatus, WorkerDto};
use tend_core::time::{Clock, Timestamp};

pub use agent::{Agent, Failure};

use crate::config::RemoteConfig;

/// How often each agent is asked for its workers.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between attempts at an agent that does not answer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The wait after an agent refused the token: a token does not fix itself, and an agent stops
/// listening to an address that sends too many wrong ones (10 a minute), the hub's other tokens too.
pub const REFUSED_BACKOFF: Duration = Duration::from_secs(30);
/// The agent's health (its version) is read again every this many listings.
const HEALTH_EVERY: u32 = 30;

/// What the hub knows of one agent.
struct Host {
    url: String,
    agent: Result<Agent, String>,
    status: HostStatus,
    detail: Option<String>,
    last_contact: Option<Timestamp>,
    version: Option<String>,
    rtt: Option<Duration>,
    workers: Vec<WorkerDto>,
    /// The agent's alerts, as of the last answer.
    alerts: Vec<tend_api::Alert>,
    /// The agent's pools, as of the last answer.
    pools: Vec<tend_api::PoolMetrics>,
    /// Events of the agent's stream this hub could not read (a newer agent's kinds).
    skipped: u64,
    /// Where its token comes from, for the Hosts screen.
    token_source: Option<String>,
    /// Added from the desktop app's Hosts screen (and removable there).
    added_here: bool,
    /// Its polling and streaming tasks, ended when it is removed.
    tasks: Vec<tokio::task::AbortHandle>,
}

/// Every agent of the hub. Cheap to clone.
#[derive(Clone)]
pub struct Remotes {
    hosts: Arc<RwLock<BTreeMap<String, Host>>>,
    clock: Arc<dyn Clock>,
    /// Where the event streams' events go (the engine).
    tx: crate::mailbox::Mailbox,
}

impl Remotes {
    /// Per agent, a task that polls its workers and one that relays its events into the engine
    /// through `tx` (on the current tokio runtime).
    pub(crate) fn start(
        configs: &[RemoteConfig],
        clock: Arc<dyn Clock>,
        tx: crate::mailbox::Mailbox,
    ) -> Remotes {
        let remotes = Remotes { hosts: Arc::default(), clock, tx };
        for cfg in configs {
            remotes.add(cfg);
        }
        remotes
    }

    /// Start watching one more agent. False when one of that name is watched already.
    pub fn add(&self, cfg: &RemoteConfig) -> bool {
        if self.read().contains_key(&cfg.name) {
            return false;
        }
        let agent = Agent::new(cfg);
        let (status, detail) = match &agent {
            Ok(_) => (HostStatus::Connecting, None),
            Err(e) => (HostStatus::Degraded, Some(e.clone())),
        };
        let mut tasks = Vec::new();
        if let Ok(agent) = &agent {
            let name = cfg.name.clone();
            tasks.push(
                tokio::spawn(poll(self.clone(), name.clone(), agent.clone(), self.clock.clone()))
                    .abort_handle(),
            );
            let follow =
                stream::follow(self.clone(), name, agent.clone(), self.tx.clone(), self.clock.clone());
            tasks.push(tokio::spawn(follow).abort_handle());
        }
        let host = Host {
            url: cfg.url.clone(),
            agent,
            status,
            detail,
            last_contact: None,
            version: None,
            rtt: None,
            workers: Vec::new(),
            alerts: Vec::new(),
            pools: Vec::new(),
            skipped: 0,
            token_source: cfg.token_source.clone(),
            added_here: cfg.added_here,
            tasks,
        };
        self.write().insert(cfg.name.clone(), host);
        true
    }

    /// Stop watching an agent: its tasks end, its workers leave the hub's lists. False when unknown.
    pub fn remove(&self, name: &str) -> bool {
        let Some(host) = self.write().remove(name) else { return false };
        for task in host.tasks {
            task.abort();
        }
        true
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Host>> {
        self.hosts.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Host>> {
        self.hosts.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Every remote worker, with its hub id and host; stale when its agent did not answer last time.
    pub fn workers(&self) -> Vec<WorkerDto> {
        let hosts = self.read();
        let mut out = Vec::new();
        for (name, host) in hosts.iter() {
            let stale = host.status != HostStatus::Ok;
            out.extend(host.workers.iter().map(|w| {
                let mut w = w.clone();
                w.id = hub_id(&w.id, name);
                w.host = Some(name.clone());
                w.stale = stale;
                w
            }));
        }
        out
    }

    /// Every agent's alerts, subjects made the hub's (`api-0@gpu-1`; a pool's `api@gpu-1`).
    pub fn alerts(&self) -> Vec<tend_api::Alert> {
        let hosts = self.read();
        let mut out = Vec::new();
        for (name, host) in hosts.iter() {
            out.extend(host.alerts.iter().map(|a| {
                let mut a = a.clone();
                a.subject = hub_id(&a.subject, name);
                a
            }));
        }
        out
    }

    /// Every agent's pools, each with its host (the Overview's cards per host).
    pub fn pools(&self) -> Vec<tend_api::PoolMetrics> {
        let hosts = self.read();
        let mut out = Vec::new();
        for (name, host) in hosts.iter() {
            out.extend(
                host.pools.iter().map(|p| tend_api::PoolMetrics { host: Some(name.clone()), ..p.clone() }),
            );
        }
        out
    }

    /// Every agent as the Hosts screen shows it.
    pub fn hosts(&self) -> Vec<HostDto> {
        self.read()
            .iter()
            .map(|(name, h)| {
                let mut by_state = BTreeMap::new();
                for w in &h.workers {
                    *by_state.entry(w.state).or_default() += 1;
                }
                HostDto {
                    name: name.clone(),
                    url: h.url.clone(),
                    status: h.status,
                    detail: h.detail.clone(),
                    last_contact: h.last_contact.map(|t| crate::dto::ToWire::wire(&t)),
                    version_skew: h
                        .version
                        .as_deref()
                        .is_some_and(|v| minor(v) != minor(env!("CARGO_PKG_VERSION"))),
                    version: h.version.clone(),
                    by_state,
                    workers: h.workers.len(),
                    rtt_ms: h.rtt.map(|d| d.as_secs_f64() * 1000.0),
                    events_skipped: h.skipped,
                    token_source: h.token_source.clone(),
                    added_here: h.added_here,
                }
            })
            .collect()
    }

    /// Count the agents' workers into a hub's health, and each agent not answering as a degraded
    /// source named `host <name>`.
    pub fn add_to(&self, health: &mut HealthDto) {
        for (name, h) in self.read().iter() {
            for w in &h.workers {
                health.workers += 1;
                *health.by_state.entry(w.state).or_default() += 1;
            }
            if !matches!(h.status, HostStatus::Ok | HostStatus::Connecting) {
                let why = h.detail.clone().unwrap_or_else(|| h.status.to_string());
                health.degraded.insert(format!("host {name}"), why);
            }
        }
        if !health.degraded.is_empty() && health.status == "ok" {
            health.status = "degraded".to_owned();
        }
    }

    /// The agent of a hub id and the worker's id there; None for an id of this Tend's own.
    pub fn route(&self, id: &str) -> Option<Result<(String, Agent, String), Failure>> {
        let (local, host) = split_id(id)?;
        let hosts = self.read();
        let h = hosts.get(host)?;
        Some(match &h.agent {
            Ok(agent) => Ok((host.to_owned(), agent.clone(), local.to_owned())),
            Err(e) => Err(Failure { status: HostStatus::Degraded, detail: e.clone(), api: None }),
        })
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut Host)) {
        if let Some(h) = self.write().get_mut(name) {
            f(h);
        }
    }
}

/// `api-0` on `gpu-1` is `api-0@gpu-1` in the hub.
pub fn hub_id(id: &str, host: &str) -> String {
    format!("{id}@{host}")
}

/// Worker ids in an agent's answer (`id`, `worker`, an alert's `subject`), made the hub's.
pub(crate) fn rename_ids(v: &mut Value, host: &str) {
    match v {
        Value::Object(map) => {
            for key in ["id", "worker", "subject"] {
                if let Some(Value::String(s)) = map.get_mut(key) {
                    *s = hub_id(s, host);
                }
            }
            for (k, child) in map.iter_mut() {
                if !matches!(k.as_str(), "id" | "worker" | "subject") {
                    rename_ids(child, host);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rename_ids(i, host)),
        _ => {}
    }
}

/// (id on the agent, host) of a hub id; None for a local one.
pub fn split_id(id: &str) -> Option<(&str, &str)> {
    id.rsplit_once('@').filter(|(local, host)| !local.is_empty() && !host.is_empty())
}

fn minor(version: &str) -> (&str, &str) {
    let mut parts = version.split('.');
    (parts.next().unwrap_or(""), parts.next().unwrap_or(""))
}

/// Ask one agent for its workers every [`POLL_EVERY`] until the process ends; after a failure, wait
/// longer each time (up to [`MAX_BACKOFF`]).
async fn poll(remotes: Remotes, name: String, agent: Agent, clock: Arc<dyn Clock>) {
    let mut round: u32 = 0;
    let mut backoff = POLL_EVERY;
    loop {
        let listing = agent.get::<Vec<WorkerDto>>("/api/v1/workers").await;
        let (alerts, pools) = match &listing {
            Ok(_) => (
                agent.get::<Vec<tend_api::Alert>>("/api/v1/alerts").await.ok().map(|(a, _)| a),
                agent.get::<Vec<tend_api::PoolMetrics>>("/api/v1/pools").await.ok().map(|(p, _)| p),
            ),
            Err(_) => (None, None),
        };
        let health = match (&listing, round % HEALTH_EVERY) {
            (Ok(_), 0) => agent.get::<HealthDto>("/api/v1/health").await.ok().map(|(h, _)| h.version),
            _ => None,
        };
        let now = clock.now();
        let ok = listing.is_ok();
        let refused = matches!(&listing, Err(f) if f.status == HostStatus::Unauthorized);
        remotes.update(&name, |h| match listing {
            Ok((workers, rtt)) => {
                if h.status != HostStatus::Ok {
                    tracing::info!(host = %name, workers = workers.len(), "agent answered");
                }
                h.status = HostStatus::Ok;
                h.detail = None;
                h.last_contact = Some(now);
                h.rtt = Some(rtt);
                // Workers an agent shows of its own agents (a hub of hubs) stay with that hub.
                h.workers = workers.into_iter().filter(|w| w.host.is_none()).collect();
                if let Some(pools) = pools {
                    h.pools = pools.into_iter().filter(|p| p.host.is_none()).collect();
                }
                if let Some(alerts) = alerts {
                    h.alerts = alerts.into_iter().filter(|a| split_id(&a.subject).is_none()).collect();
                }
                if health.is_some() {
                    h.version = health;
                }
            }
            Err(f) => {
                if h.status != f.status || h.detail.as_deref() != Some(f.detail.as_str()) {
                    tracing::warn!(host = %name, status = %f.status, detail = %f.detail, "agent not answering");
                }
                h.status = f.status;
                h.detail = Some(f.detail);
            }
        });
        round = if ok { round.wrapping_add(1) } else { 0 };
        backoff = if ok { POLL_EVERY } else { (backoff * 2).min(MAX_BACKOFF) };
        tokio::time::sleep(if refused { REFUSED_BACKOFF } else { backoff }).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_agents_ids_become_the_hubs() {
        let mut v = json!({
            "id": "api-0", "pool": "api",
            "alerts": [{"rule": "mem", "subject": "api-0", "pool": "api"}],
            "events": [{"type": "recycled", "worker": "api-0", "detail": "id"}],
        });
        rename_ids(&mut v, "gpu-1");
        assert_eq!(v["id"], "api-0@gpu-1");
        assert_eq!(v["alerts"][0]["subject"], "api-0@gpu-1");
        assert_eq!(v["alerts"][0]["pool"], "api", "pools keep their names");
        assert_eq!(v["events"][0]["worker"], "api-0@gpu-1");
        assert_eq!(v["events"][0]["detail"], "id");
    }
}
