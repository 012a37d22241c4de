//! Docker engines through bollard: connecting (unix socket, TCP, TLS), listing a pool's containers,
//! the events stream, stats turned into Tend's metrics the way `docker stats` computes them, and the
//! container actions (restart, recreate from the inspected config, stop, remove). Only this module knows
//! bollard. It decides nothing: the fleet maps what it returns onto the lifecycle.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, ContainerStatsResponse, ContainerSummary, EventMessage};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, InspectContainerOptions,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder,
    StatsOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::{Stream, StreamExt};
use regex::Regex;
use tend_core::fleet::{
    ContainerChange, ContainerRun, ContainerSeen, ContainerStatus, Health, OWNER_PID_LABEL, Orphan,
    POOL_LABEL, WORKER_LABEL,
};
use tend_core::model::Metrics;

pub use bollard::Docker as Client;
pub use bollard::models::ContainerStatsResponse as Stats;

/// The default endpoint when neither the pool nor `DOCKER_HOST` names one.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// Per-request timeout (response headers; streams may last longer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("{0}")]
    Engine(#[from] bollard::errors::Error),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, DockerError>;

/// The endpoint a pool uses: its own `docker_host`, else `DOCKER_HOST`, else the local socket.
pub fn endpoint(configured: Option<&str>, env: Option<&str>) -> String {
    configured.or(env.filter(|e| !e.is_empty())).unwrap_or(DEFAULT_HOST).to_owned()
}

/// A client for `host` (unix://, tcp://, http://, https://; tcp with `DOCKER_TLS_VERIFY` uses TLS with
/// the certificates in `DOCKER_CERT_PATH`), its API version negotiated with the engine (an older engine
/// refuses a newer client version).
pub async fn connect(host: &str) -> Result<Docker> {
    let docker = Docker::connect_with_host(host)?.with_timeout(REQUEST_TIMEOUT);
    let docker = docker.negotiate_version().await?;
    docker.ping().await?;
    Ok(docker)
}

/// Which containers belong to a pool.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    /// `key=value`, or `key` alone for any value.
    pub labels: Vec<(String, Option<String>)>,
    /// Matches (unanchored) the container name without the leading `/`.
    pub name: Option<Regex>,
    /// The image as the container was created with (`busybox:1`), or its id prefix.
    pub image: Option<String>,
}

impl Selector {
    fn filters(&self) -> HashMap<String, Vec<String>> {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect();
        let mut f = HashMap::new();
        if !labels.is_empty() {
            f.insert("label".to_owned(), labels);
        }
        f
    }

    /// Whether a container with these labels, name and image belongs to the pool.
    pub fn matches(&self, labels: &HashMap<String, String>, name: &str, image: &str) -> bool {
        let labels_ok = self.labels.iter().all(|(k, v)| match (labels.get(k), v) {
            (Some(have), Some(want)) => have == want,
            (Some(_), None) => true,
            (None, _) => false,
        });
        let name_ok = self.name.as_ref().is_none_or(|r| r.is_match(name.trim_start_matches('/')));
        let image_ok = self.image.as_deref().is_none_or(|i| image == i || image.starts_with(i));
        labels_ok && name_ok && image_ok
    }
}

/// Every container of the pool (running or not).
pub async fn list(docker: &Docker, selector: &Selector) -> Result<Vec<ContainerSeen>> {
    let opts = ListContainersOptionsBuilder::default().all(true).filters(&selector.filters()).build();
    let all = docker.list_containers(Some(opts)).await?;
    let mut seen = all
        .into_iter()
        .filter(|c| {
            let labels = c.labels.clone().unwrap_or_default();
            selector.matches(&labels, &summary_name(c), c.image.as_deref().unwrap_or(""))
        })
        .map(|c| seen_from_summary(&c))
        .collect::<Vec<_>>();
    // A listing says "Exited (137)" for a kill and for the kernel's OOM killer alike; the `oom` event
    // that tells them apart is missed for a container that died before the pool first saw it.
    for s in &mut seen {
        if let ContainerStatus::Exited { code: 137, oom } = &mut s.status
            && let Ok(info) = docker.inspect_container(&s.id, None::<InspectContainerOptions>).await
        {
            *oom = info.state.and_then(|st| st.oom_killed).unwrap_or(false);
        }
    }
    Ok(seen)
}

fn summary_name(c: &ContainerSummary) -> String {
    c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_owned()).unwrap_or_default()
}

/// A listing entry as the fleet sees it. The list gives health and exit code only in its `Status`
/// text ("Up 5 seconds (healthy)", "Exited (1) 2 seconds ago"), on every API version.
pub fn seen_from_summary(c: &ContainerSummary) -> ContainerSeen {
    use bollard::models::ContainerSummaryStateEnum as S;
    let text = c.status.clone().unwrap_or_default();
    let health = parse_health(&text);
    let status = match c.state {
        Some(S::RUNNING) => ContainerStatus::Running { health },
        Some(S::EXITED) | Some(S::DEAD) => {
            ContainerStatus::Exited { code: parse_exit(&text).unwrap_or(-1), oom: false }
        }
        other => {
            ContainerStatus::Other { state: other.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into()) }
        }
    };
    ContainerSeen {
        id: c.id.clone().unwrap_or_default(),
        name: summary_name(c),
        worker_label: c.labels.as_ref().and_then(|l| l.get(WORKER_LABEL).cloned()),
        status,
        has_health: health != Health::None,
    }
}

fn parse_health(status: &str) -> Health {
    if status.contains("(healthy)") {
        Health::Healthy
    } else if status.contains("(unhealthy)") {
        Health::Unhealthy
    } else if status.contains("(health: starting)") {
        Health::Starting
    } else {
        Health::None
    }
}

fn parse_exit(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split(')').next()?.trim().parse().ok()
}

/// The engine's container events, from now on.
pub fn events(
    docker: &Docker,
) -> impl Stream<Item = std::result::Result<EventMessage, bollard::errors::Error>> + use<> {
    let mut filters = HashMap::new();
    filters.insert("type".to_owned(), vec!["container".to_owned()]);
    docker.events(Some(EventsOptionsBuilder::default().filters(&filters).build()))
}

/// A container event's id, labels (attributes), name, image and what it says; `None` for actions the
/// lifecycle ignores (create, exec, attach, ...).
pub struct ContainerEvent {
    pub id: String,
    pub name: String,
    pub image: String,
    pub attributes: HashMap<String, String>,
    pub change: ContainerChange,
}

impl ContainerEvent {
    /// The event's container as a listing entry would show it (status as implied by the change).
    pub fn seen(&self) -> ContainerSeen {
        let status = match &self.change {
            ContainerChange::Started => ContainerStatus::Running { health: Health::None },
            ContainerChange::Health(h) => ContainerStatus::Running { health: *h },
            ContainerChange::Died { code } => ContainerStatus::Exited { code: *code, oom: false },
            _ => ContainerStatus::Other { state: "unknown".into() },
        };
        ContainerSeen {
            id: self.id.clone(),
            name: self.name.clone(),
            worker_label: self.attributes.get(WORKER_LABEL).cloned(),
            status,
            has_health: matches!(self.change, ContainerChange::Health(_)),
        }
    }
}

pub fn container_event(ev: EventMessage) -> Option<ContainerEvent> {
    let action = ev.action?;
    let actor = ev.actor?;
    let id = actor.id?;
    let attributes = actor.attributes.unwrap_or_default();
    let change = match action.as_str() {
        "start" => ContainerChange::Started,
        "die" => ContainerChange::Died {
            code: attributes.get("exitCode").and_then(|c| c.parse().ok()).unwrap_or(-1),
        },
        "kill" => ContainerChange::Killed { signal: attributes.get("signal").map(|s| format!("signal {s}")) },
        "oom" => ContainerChange::Oom,
        "destroy" => ContainerChange::Destroyed,
        a if a.starts_with("health_status") => {
            ContainerChange::Health(match a.rsplit(':').next().map(str::trim) {
                Some("healthy") => Health::Healthy,
                Some("unhealthy") => Health::Unhealthy,
                _ => Health::Starting,
            })
        }
        _ => return None,
    };
    Some(ContainerEvent {
        name: attributes.get("name").cloned().unwrap_or_default(),
        image: attributes.get("image").cloned().unwrap_or_default(),
        id,
        attributes,
        change,
    })
}

/// What the CPU percentage is computed from: the container's and the host's cumulative CPU time (ns).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct CpuBase {
    pub container: u64,
    pub system: u64,
}

/// The container's CPU limit in cores: `NanoCpus`, else `CpuQuota / CpuPeriod`; `None` = unlimited.
pub async fn cpu_limit(docker: &Docker, id: &str) -> Result<Option<f64>> {
    let info = docker.inspect_container(id, None::<InspectContainerOptions>).await?;
    let hc = info.host_config.unwrap_or_default();
    Ok(limit_cores(hc.nano_cpus, hc.cpu_quota, hc.cpu_period))
}

/// Whether the container has a healthcheck (its READY then waits for `healthy`). The start event does
/// not say; a listing does only once the first check ran.
pub async fn has_healthcheck(docker: &Docker, id: &str) -> Result<bool> {
    let info = docker.inspect_container(id, None::<InspectContainerOptions>).await?;
    let test = info.config.and_then(|c| c.healthcheck).and_then(|h| h.test);
    Ok(test.is_some_and(|t| t.first().is_some_and(|f| f != "NONE")))
}

pub fn limit_cores(nano: Option<i64>, quota: Option<i64>, period: Option<i64>) -> Option<f64> {
    match (nano, quota, period) {
        (Some(n), _, _) if n > 0 => Some(n as f64 / 1e9),
        (_, Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
        (_, Some(q), _) if q > 0 => Some(q as f64 / 100_000.0),
        _ => None,
    }
}

/// One stats read (no waiting for a second sample: the caller keeps the previous one).
pub async fn stats_once(docker: &Docker, id: &str) -> Result<ContainerStatsResponse> {
    let opts = StatsOptionsBuilder::default().stream(false).one_shot(true).build();
    let mut s = docker.stats(id, Some(opts));
    match s.next().await {
        Some(r) => Ok(r?),
        None => Err(DockerError::Other("no stats returned".into())),
    }
}

/// The engine's own stream of stats, one sample a second, each with the previous one in `precpu`.
pub fn stats_stream(
    docker: &Docker,
    id: &str,
) -> impl Stream<Item = std::result::Result<ContainerStatsResponse, bollard::errors::Error>> + use<> {
    let opts = StatsOptionsBuilder::default().stream(true).one_shot(false).build();
    docker.stats(id, Some(opts))
}

/// The CPU base of a sample, when it has one (a stopped container's sample has none).
pub fn cpu_base(s: &ContainerStatsResponse) -> Option<CpuBase> {
    let c = s.cpu_stats.as_ref()?;
    Some(CpuBase { container: c.cpu_usage.as_ref()?.total_usage?, system: c.system_cpu_usage? })
}

/// Tend's metrics from a stats sample, the way `docker stats` computes them. CPU needs a previous base:
/// `prev` (our own last read), else the sample's own `precpu` (streamed samples after the first); the
/// first read has neither and gives no CPU figure.
///
/// - `cpu_percent` = Δcontainer / Δsystem × online CPUs × 100 (of one core, like `docker stats`);
///   `cpu_host_percent` = that / online CPUs; custom `cpu_limit_percent` = of the container's limit.
/// - `memory_bytes` = usage − inactive file cache (`total_inactive_file` on cgroup v1,
///   `inactive_file` on v2); `memory_percent` of the container's limit (the host's memory when none).
/// - network rx/tx summed over interfaces; block I/O read/write from `io_service_bytes_recursive`;
///   `threads` = the pids controller's count (tasks in the container).
pub fn metrics(s: &ContainerStatsResponse, prev: Option<CpuBase>, limit_cores: Option<f64>) -> Metrics {
    let mut m = Metrics::default();
    let online = s
        .cpu_stats
        .as_ref()
        .and_then(|c| {
            c.online_cpus.filter(|n| *n > 0).or_else(|| {
                c.cpu_usage.as_ref().and_then(|u| u.percpu_usage.as_ref()).map(|p| p.len() as u32)
            })
        })
        .filter(|n| *n > 0);
    let pre = prev.or_else(|| {
        s.precpu_stats.as_ref().and_then(|p| {
            Some(CpuBase { container: p.cpu_usage.as_ref()?.total_usage?, system: p.system_cpu_usage? })
        })
    });
    if let (Some(cur), Some(pre), Some(online)) = (cpu_base(s), pre, online) {
        let dc = cur.container.saturating_sub(pre.container) as f64;
        let ds = cur.system.saturating_sub(pre.system) as f64;
        if ds > 0.0 {
            let pct = dc / ds * f64::from(online) * 100.0;
            m.cpu_percent = Some(pct);
            m.cpu_host_percent = Some(pct / f64::from(online));
            if let Some(l) = limit_cores.filter(|l| *l > 0.0) {
                m.custom.insert("cpu_limit_percent".into(), pct / l);
            }
        }
    }
    if let Some(mem) = &s.memory_stats
        && let Some(usage) = mem.usage
    {
        let stats = mem.stats.as_ref();
        let inactive = stats
            .and_then(|st| st.get("total_inactive_file").or_else(|| st.get("inactive_file")))
            .copied()
            .unwrap_or(0);
        let used = if inactive < usage { usage - inactive } else { usage };
        m.memory_bytes = Some(used);
        if let Some(limit) = mem.limit.filter(|l| *l > 0) {
            m.memory_percent = Some(used as f64 / limit as f64 * 100.0);
        }
    }
    if let Some(nets) = &s.networks {
        m.net_rx_bytes = Some(nets.values().filter_map(|n| n.rx_bytes).sum());
        m.net_tx_bytes = Some(nets.values().filter_map(|n| n.tx_bytes).sum());
    }
    if let Some(entries) = s.blkio_stats.as_ref().and_then(|b| b.io_service_bytes_recursive.as_ref()) {
        let sum = |op: &str| {
            entries
                .iter()
                .filter(|e| e.op.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(op)))
                .filter_map(|e| e.value)
                .sum::<u64>()
        };
        m.disk_read_bytes = Some(sum("read"));
        m.disk_write_bytes = Some(sum("write"));
    }
    if let Some(p) = s.pids_stats.as_ref().and_then(|p| p.current) {
        m.threads = u32::try_from(p).ok();
    }
    m
}

/// Whether an engine error says the container does not exist (it vanished between list and stats).
pub fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::Engine(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
    )
}

fn grace_secs(grace: Duration) -> i32 {
    i32::try_from(grace.as_secs().max(u64::from(grace.subsec_nanos() > 0))).unwrap_or(i32::MAX)
}

/// `docker restart`: stop (SIGTERM, `grace`, SIGKILL) and start again.
pub async fn restart(docker: &Docker, id: &str, grace: Duration) -> Result<()> {
    let opts = RestartContainerOptionsBuilder::default().t(grace_secs(grace)).build();
    Ok(docker.restart_container(id, Some(opts)).await?)
}

/// Stop (SIGTERM, `grace`, SIGKILL) and, when `remove`, remove. A container already stopped or gone
/// is not an error.
pub async fn stop(docker: &Docker, id: &str, grace: Duration, remove: bool) -> Result<()> {
    let opts = StopContainerOptionsBuilder::default().t(grace_secs(grace)).build();
    match docker.stop_container(id, Some(opts)).await {
        Ok(()) => {}
        // 304: already stopped.
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 304 | 404, .. }) => {}
        Err(e) => return Err(e.into()),
    }
    if remove {
        remove_forced(docker, id).await?;
    }
    Ok(())
}

/// Remove a container, running or not.
pub async fn remove_forced(docker: &Docker, id: &str) -> Result<()> {
    let opts = RemoveContainerOptionsBuilder::default().force(true).build();
    match docker.remove_container(id, Some(opts)).await {
        Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Create a copy of `from` from its inspected config — same image, command, entrypoint, env, labels,
/// user, working dir, healthcheck and host config (limits, network mode, mounts, restart policy) — with
/// `tend.worker = worker` added, named `<name>-r<incarnation>` (a previous `-rN` suffix replaced), and
/// start it.
pub async fn recreate(docker: &Docker, from: &str, worker: &str, incarnation: u32) -> Result<ContainerRun> {
    let info = docker.inspect_container(from, None::<InspectContainerOptions>).await?;
    let cfg = info.config.unwrap_or_default();
    let old_name = info.name.unwrap_or_default().trim_start_matches('/').to_owned();
    let base = match old_name.rfind("-r") {
        Some(i) if old_name[i + 2..].chars().all(|c| c.is_ascii_digit()) && i + 2 < old_name.len() => {
            &old_name[..i]
        }
        _ => old_name.as_str(),
    };
    let name = format!("{base}-r{incarnation}");
    let mut labels = cfg.labels.unwrap_or_default();
    labels.insert(WORKER_LABEL.to_owned(), worker.to_owned());
    let has_health = cfg
        .healthcheck
        .as_ref()
        .and_then(|h| h.test.as_ref())
        .is_some_and(|t| t.first().is_some_and(|f| f != "NONE"));
    let body = ContainerCreateBody {
        hostname: None,
        domainname: cfg.domainname,
        user: cfg.user,
        env: cfg.env,
        cmd: cfg.cmd,
        healthcheck: cfg.healthcheck,
        image: cfg.image,
        working_dir: cfg.working_dir,
        entrypoint: cfg.entrypoint,
        labels: Some(labels),
        stop_signal: cfg.stop_signal,
        stop_timeout: cfg.stop_timeout,
        tty: cfg.tty,
        open_stdin: cfg.open_stdin,
        host_config: info.host_config,
        ..Default::default()
    };
    let opts = CreateContainerOptionsBuilder::default().name(&name).build();
    let created = docker.create_container(Some(opts), body).await?;
    if let Err(e) = docker.start_container(&created.id, None).await {
        let _ = remove_forced(docker, &created.id).await;
        return Err(e.into());
    }
    Ok(ContainerRun { id: created.id, name, has_health, killed: None, oom: false })
}

/// Containers carrying Tend's pool label whose owner is gone: the label names no configured pool, or
/// their `tend.owner-pid` process no longer runs (`alive` decides).
pub async fn orphans(docker: &Docker, pools: &[String], alive: impl Fn(u32) -> bool) -> Result<Vec<Orphan>> {
    let mut filters = HashMap::new();
    filters.insert("label".to_owned(), vec![POOL_LABEL.to_owned()]);
    let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let all = docker.list_containers(Some(opts)).await?;
    let mut out = Vec::new();
    for c in all {
        let labels = c.labels.clone().unwrap_or_default();
        let Some(pool) = labels.get(POOL_LABEL) else { continue };
        let reason = if !pools.iter().any(|p| p == pool) {
            format!("no pool named {pool:?}")
        } else if let Some(pid) = labels.get(OWNER_PID_LABEL) {
            match pid.parse::<u32>() {
                Ok(p) if alive(p) => continue,
                Ok(p) => format!("owner pid {p} is gone"),
                Err(_) => continue,
            }
        } else {
            continue;
        };
        out.push(Orphan {
            id: c.id.clone().unwrap_or_default(),
            name: summary_name(&c),
            pool_label: pool.clone(),
            reason,
            state: c.state.map(|s| s.to_string()).unwrap_or_default(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats};

    fn sample(total: u64, system: u64, pre: Option<(u64, u64)>, usage: u64, stats: &[(&str, u64)]) -> Stats {
        let cpu = |t, s| ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage { total_usage: Some(t), ..Default::default() }),
            system_cpu_usage: Some(s),
            online_cpus: Some(2),
            ..Default::default()
        };
        Stats {
            cpu_stats: Some(cpu(total, system)),
            precpu_stats: pre.map(|(t, s)| cpu(t, s)),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(usage),
                limit: Some(1000),
                stats: Some(stats.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn cpu_like_docker_stats_from_precpu_or_our_previous_read() {
        // 0.5 s of container CPU over 2 s of host time (2 CPUs: 1 s wall) = 50 % of one core.
        let s = sample(1_500_000_000, 12_000_000_000, Some((1_000_000_000, 10_000_000_000)), 0, &[]);
        let m = metrics(&s, None, Some(0.5));
        assert!((m.cpu_percent.unwrap() - 50.0).abs() < 1e-9);
        assert!((m.cpu_host_percent.unwrap() - 25.0).abs() < 1e-9);
        assert!((m.custom["cpu_limit_percent"] - 100.0).abs() < 1e-9);
        // First one-shot read: empty precpu and no previous read: no CPU figure.
        let first = sample(1_500_000_000, 12_000_000_000, None, 0, &[]);
        assert_eq!(metrics(&first, None, None).cpu_percent, None);
        let prev = CpuBase { container: 1_000_000_000, system: 10_000_000_000 };
        assert!((metrics(&first, Some(prev), None).cpu_percent.unwrap() - 50.0).abs() < 1e-9);
    }

    #[test]
    fn memory_is_usage_minus_inactive_file_on_v1_and_v2() {
        let v1 = sample(0, 0, None, 800, &[("total_inactive_file", 300), ("inactive_file", 1)]);
        assert_eq!(metrics(&v1, None, None).memory_bytes, Some(500));
        assert_eq!(metrics(&v1, None, None).memory_percent, Some(50.0));
        let v2 = sample(0, 0, None, 800, &[("inactive_file", 200)]);
        assert_eq!(metrics(&v2, None, None).memory_bytes, Some(600));
    }

    #[test]
    fn listing_status_text_gives_health_and_exit_code() {
        assert_eq!(parse_health("Up 3 seconds (healthy)"), Health::Healthy);
        assert_eq!(parse_health("Up 3 seconds (health: starting)"), Health::Starting);
        assert_eq!(parse_health("Up 3 seconds"), Health::None);
        assert_eq!(parse_exit("Exited (137) 2 seconds ago"), Some(137));
        assert_eq!(limit_cores(Some(500_000_000), None, None), Some(0.5));
        assert_eq!(limit_cores(None, Some(50_000), Some(100_000)), Some(0.5));
        assert_eq!(limit_cores(Some(0), Some(0), Some(0)), None);
    }

    #[test]
    fn engine_events_become_container_changes() {
        use bollard::models::{EventActor, EventMessage};
        let ev = |action: &str, attrs: &[(&str, &str)]| EventMessage {
            action: Some(action.to_owned()),
            actor: Some(EventActor {
                id: Some("abc".into()),
                attributes: Some(attrs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            }),
            ..Default::default()
        };
        let die =
            container_event(ev("die", &[("exitCode", "3"), ("name", "etl-1"), ("tend.worker", "etl-x")]))
                .unwrap();
        assert_eq!(die.change, ContainerChange::Died { code: 3 });
        assert_eq!(die.name, "etl-1");
        assert_eq!(die.seen().worker_label.as_deref(), Some("etl-x"));
        let healthy = container_event(ev("health_status: healthy", &[])).unwrap();
        assert_eq!(healthy.change, ContainerChange::Health(Health::Healthy));
        assert!(healthy.seen().has_health);
        let kill = container_event(ev("kill", &[("signal", "15")])).unwrap();
        assert_eq!(kill.change, ContainerChange::Killed { signal: Some("signal 15".into()) });
        assert_eq!(container_event(ev("oom", &[])).unwrap().change, ContainerChange::Oom);
        assert_eq!(container_event(ev("destroy", &[])).unwrap().change, ContainerChange::Destroyed);
        assert!(container_event(ev("exec_create: sh", &[])).is_none());
        assert!(container_event(ev("attach", &[])).is_none());
    }

    #[test]
    fn endpoint_prefers_the_pool_then_docker_host_then_the_local_socket() {
        assert_eq!(endpoint(Some("tcp://h:2376"), Some("unix:///x.sock")), "tcp://h:2376");
        assert_eq!(endpoint(None, Some("unix:///x.sock")), "unix:///x.sock");
        assert_eq!(endpoint(None, Some("")), DEFAULT_HOST);
        assert_eq!(endpoint(None, None), DEFAULT_HOST);
    }

    #[test]
    fn selector_matches_labels_name_and_image() {
        let sel = Selector {
            labels: vec![("tend.pool".into(), Some("etl".into())), ("team".into(), None)],
            name: Some(Regex::new("^etl-").unwrap()),
            image: Some("busybox".into()),
        };
        let l: HashMap<String, String> =
            [("tend.pool".to_owned(), "etl".to_owned()), ("team".to_owned(), "x".to_owned())].into();
        assert!(sel.matches(&l, "/etl-1", "busybox:1"));
        assert!(!sel.matches(&l, "/web-1", "busybox:1"));
        assert!(!sel.matches(&l, "/etl-1", "alpine"));
        let other: HashMap<String, String> = [("tend.pool".to_owned(), "web".to_owned())].into();
        assert!(!sel.matches(&other, "/etl-1", "busybox"));
    }
}
