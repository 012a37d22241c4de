//! From the validated config to what runs: core `PoolSpec`s for the fleet's decisions, and per-pool
//! runtime settings (how to spawn, probe, discover, scrape, reach docker): the runtime types that the
//! engine loop and its sources share. Plain data; it runs nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use tend_collect::discover::Matcher;
use tend_collect::proc_stat::Fields;
use tend_core::fleet::{ContainerRecycle, DockerPool, PoolKind, PoolSpec, Restart};
use tend_core::recycle::RecyclePolicy;
use tend_core::rules::{Condition, Rule};

use crate::config::{
    Config, DockerRecycleMode, DockerStatsMode, MetricGroup, PoolConfig, ReadinessCheck, RestartPolicy,
    RuleCondition, RuleConfig, SourceConfig, SpawnConfig, ring_depth, substitute,
};

/// What a pool's sweep reads beyond `stat` and `statm`: `io` and the fd count when its profile shows
/// them or one of its rules watches them, and not otherwise (each costs a read per process per sweep).
pub fn fields(p: &PoolConfig) -> Fields {
    let watched = |group: MetricGroup| {
        p.rules.iter().any(|r| match &r.condition {
            RuleCondition::Threshold { metric, .. } => MetricGroup::of(metric) == Some(group),
            RuleCondition::Stale { .. } | RuleCondition::RestartChurn { .. } => false,
        })
    };
    let needs = |group| p.profile.collects(group) || watched(group);
    Fields { disk_io: needs(MetricGroup::Io), fds: needs(MetricGroup::Fds) }
}

/// What the runtime needs beside the fleet's view of a pool.
#[derive(Clone, Debug)]
pub struct PoolRuntime {
    pub spec: PoolSpec,
    pub spawn: Option<SpawnConfig>,
    pub readiness: ReadinessCheck,
    pub readiness_timeout: Duration,
    pub matcher: Option<Matcher>,
    /// Lines of a spawned worker's output that count as one handled request.
    pub request_pattern: Option<Regex>,
    /// What the pool's monitoring profile reads beyond CPU and memory.
    pub fields: Fields,
    /// The worker's own Prometheus page, scraped each interval off the engine task.
    pub scrape: Option<ScrapeConfig>,
    /// Docker pools: which engine, which containers, how stats are read.
    pub docker: Option<DockerRuntime>,
}

#[derive(Clone, Debug)]
pub struct DockerRuntime {
    /// The endpoint (`unix://...`, `tcp://...`); the config's `DOCKER_HOST` fallback already applied.
    pub host: String,
    pub selector: tend_collect::docker::Selector,
    pub stats: DockerStatsMode,
}

/// What a pool scrapes: its URL template and the counter that counts requests.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeConfig {
    /// May contain `$TEND_SLOT` and `$TEND_PORT`, replaced as in the worker's command.
    pub url: String,
    pub requests_metric: Option<String>,
    /// The pool's `port`: slot N's `$TEND_PORT` is this plus N.
    pub port: Option<u16>,
}

impl ScrapeConfig {
    pub fn url_for_slot(&self, slot: u32) -> String {
        let port = self.port.and_then(|p| u16::try_from(u32::from(p) + slot).ok());
        substitute(&self.url, slot, port)
    }
}

/// Per-pool runtime settings by pool name.
pub type Runtimes = BTreeMap<String, Arc<PoolRuntime>>;

/// Convert every pool.
pub fn pools(config: &Config) -> anyhow::Result<(Vec<PoolSpec>, Runtimes)> {
    let mut specs = Vec::new();
    let mut runtimes = BTreeMap::new();
    for p in &config.pools {
        let rt = pool(p)?;
        specs.push(rt.spec.clone());
        runtimes.insert(p.name.clone(), Arc::new(rt));
    }
    Ok((specs, runtimes))
}

pub fn pool(p: &PoolConfig) -> anyhow::Result<PoolRuntime> {
    let restart = match p.restart {
        RestartPolicy::Always => Restart::Always,
        RestartPolicy::OnFailure => Restart::OnFailure,
        RestartPolicy::Never => Restart::Never,
    };
    let mut docker = None;
    let (kind, spawn, matcher) = match &p.source {
        SourceConfig::Spawn(s) => (PoolKind::Spawn { size: s.size, restart }, Some(s.clone()), None),
        SourceConfig::Attach(a) => (
            PoolKind::Attach,
            None,
            Some(Matcher {
                process_name: a.process_name.clone(),
                cmdline: a.cmdline.as_ref().map(|c| c.regex().clone()),
                pids: a.pids.clone(),
            }),
        ),
        SourceConfig::Reported => (PoolKind::Reported, None, None),
        SourceConfig::Docker(d) => {
            let host = tend_collect::docker::endpoint(d.docker_host.as_deref(), None);
            let start = match &p.readiness.check {
                ReadinessCheck::StartSecs(s) => *s,
                _ => Duration::from_secs(1),
            };
            docker = Some(DockerRuntime {
                host: host.clone(),
                selector: tend_collect::docker::Selector {
                    labels: d
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), (!v.is_empty()).then(|| v.clone())))
                        .collect(),
                    name: d.container_name.as_ref().map(|r| r.regex().clone()),
                    image: d.image.clone(),
                },
                stats: d.stats,
            });
            let kind = PoolKind::Docker(DockerPool {
                host,
                start,
                recycle: match d.recycle_mode {
                    DockerRecycleMode::Recreate => ContainerRecycle::Recreate,
                    DockerRecycleMode::Restart => ContainerRecycle::Restart,
                },
                remove_ended: d.remove_ended,
                orphans_max: d.orphans_max,
                clean_orphans: d.clean_orphans,
            });
            (kind, None, None)
        }
    };
    let r = &p.recycle;
    let recycle = RecyclePolicy {
        ttl: r.ttl,
        max_requests: r.max_requests,
        jitter: r.jitter,
        memory_bytes: r.memory_mb.map(|m| m * 1024 * 1024),
        warmup: r.warmup,
        max_unavailable: r.max_unavailable.max(1),
        on_death: r.on_death,
        storm_max: r.storm_max,
        storm_window: r.storm_window,
    };
    let interval = p.effective_interval();
    let spec = PoolSpec {
        name: p.name.clone(),
        kind,
        interval,
        // Reports still arrive where sampling is disabled: they keep the shortest ring.
        history: interval.map_or(10, ring_depth),
        readiness_timeout: p.readiness.timeout,
        stale_after: p.effective_stale_after(),
        task_timeout: p.task_timeout,
        busy_cpu_percent: p.busy_cpu_percent,
        stop_grace: p.stop_grace,
        recycle,
        rules: p.rules.iter().map(rule).collect(),
    };
    Ok(PoolRuntime {
        spec,
        spawn,
        readiness: p.readiness.check.clone(),
        readiness_timeout: p.readiness.timeout,
        matcher,
        request_pattern: p.requests_log.as_ref().map(|r| r.regex().clone()),
        fields: fields(p),
        scrape: p.metrics_url.as_ref().map(|url| ScrapeConfig {
            url: url.clone(),
            requests_metric: p.requests_metric.clone(),
            port: match &p.source {
                SourceConfig::Spawn(s) => s.port,
                _ => None,
            },
        }),
        docker,
    })
}

pub fn rule(r: &RuleConfig) -> Rule {
    let condition = match &r.condition {
        RuleCondition::Threshold { metric, cmp, fire, clear } => {
            Condition::Threshold { metric: metric.clone(), cmp: *cmp, fire: *fire, clear: *clear }
        }
        RuleCondition::Stale { after } => Condition::Stale { after: *after },
        RuleCondition::RestartChurn { max, within } => Condition::RestartChurn { max: *max, within: *within },
    };
    Rule {
        name: r.name.clone(),
        scope: r.scope,
        condition,
        for_: r.for_,
        for_samples: r.for_samples,
        keep_firing_for: r.keep_firing_for,
        severity: r.severity,
        flap_max: r.flap_max.unwrap_or(0),
        flap_window: r.flap_window,
        recycle: r.recycle,
        channels: r.channels.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readings kept in memory per worker follow the interval the pool is sampled at, its own included.
    #[test]
    fn rings_are_sized_by_the_pools_interval() {
        let cfg = crate::config::parse(
            r#"
[[pool]]
name = "fast"
source = "attach"
cmdline = "^a$"
profile = "intensive"

[[pool]]
name = "faster"
source = "attach"
cmdline = "^b$"
profile = "intensive"
interval = "100ms"

[[pool]]
name = "slow"
source = "attach"
cmdline = "^c$"
profile = "batch"

[[pool]]
name = "off"
source = "attach"
cmdline = "^d$"
profile = "disabled"
"#,
            "test.toml",
        )
        .unwrap();
        let depth: Vec<usize> = cfg.pools.iter().map(|p| pool(p).unwrap().spec.history).collect();
        assert_eq!(depth, [60, 60, 10, 10]);
    }
}
