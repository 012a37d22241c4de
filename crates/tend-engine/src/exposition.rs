//! The Prometheus exposition (served as `GET /metrics`): Tend's view of its workers in the Prometheus/OpenMetrics text format, encoded by
//! `prometheus-client`. A fresh registry is filled from one consistent snapshot of the fleet on every
//! scrape, so a worker's series disappear as soon as it is CLEANED or removed (no stale series kept in a
//! long-lived registry). Workers are labelled by pool and their stable worker id, never by pid: a pid
//! changes with every recycle and would explode the number of series.

use std::collections::BTreeMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::mailbox::EngineView;
use tend_core::lifecycle::State;
use tend_core::rules::AlertState;

/// The content type of the OpenMetrics text format that Prometheus negotiates first.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format, for clients that do not ask for OpenMetrics (curl, promtool).
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One worker, as read inside the engine task.
#[derive(Debug)]
struct WorkerRow {
    pool: String,
    id: String,
    state: State,
    live: bool,
    cpu_percent: Option<f64>,
    memory_bytes: Option<u64>,
    threads: Option<u32>,
    fds: Option<u32>,
    uptime_secs: f64,
    requests: u64,
    errors: u64,
    warnings: u64,
    restarts: u32,
    custom: BTreeMap<String, f64>,
}

/// Everything one scrape shows, copied out of the engine so encoding happens off its task.
#[derive(Debug)]
pub(crate) struct Snapshot {
    workers: Vec<WorkerRow>,
    /// (pool, reason) -> recycles.
    recycles: Vec<(String, String, u64)>,
    /// (pool, rule, severity) -> alerts firing or flapping.
    alerts: BTreeMap<(String, String, String), u64>,
    pools: Vec<(String, u64)>,
    /// Docker pools: orphaned containers on each pool's engine (empty without docker pools).
    orphans: Vec<(String, u64)>,
    collection: Vec<(String, f64)>,
    self_cpu: Option<f64>,
    self_memory: Option<u64>,
}

pub(crate) fn snapshot(v: &EngineView<'_>) -> Snapshot {
    let workers = v
        .fleet
        .workers()
        .filter(|w| w.state() != State::Cleaned)
        .map(|w| {
            let c = w.current.as_ref();
            let live = c.is_some_and(|c| c.state().is_live());
            let last = c.and_then(|c| c.last.as_ref()).filter(|_| live);
            let (requests, errors, warnings) = w.totals();
            WorkerRow {
                pool: w.pool.clone(),
                id: w.id.to_string(),
                state: w.state(),
                live,
                cpu_percent: last.and_then(|m| m.cpu_percent),
                memory_bytes: last.and_then(|m| m.memory_bytes),
                threads: last.and_then(|m| m.threads),
                fds: last.and_then(|m| m.fds),
                uptime_secs: c.filter(|_| live).map(|c| c.uptime(v.now).as_secs_f64()).unwrap_or(0.0),
                requests,
                errors,
                warnings,
                restarts: w.restarts,
                custom: last.map(|m| m.custom.clone()).unwrap_or_default(),
            }
        })
        .collect();
    let mut recycles = Vec::new();
    let mut pools = Vec::new();
    for p in v.fleet.pools() {
        if let Some(pm) = v.fleet.pool_metrics(&p.name) {
            for (reason, n) in &pm.recycles_by_reason {
                recycles.push((p.name.clone(), reason.to_string(), *n));
            }
            pools.push((p.name.clone(), pm.total_workers));
        }
    }
    let orphans = v
        .fleet
        .pools()
        .iter()
        .filter(|p| matches!(p.kind, tend_core::fleet::PoolKind::Docker(_)))
        .map(|p| (p.name.clone(), v.fleet.orphans().get(&p.name).map_or(0, |o| o.len() as u64)))
        .collect();
    let mut alerts = BTreeMap::new();
    for a in v.fleet.alerts().alerts() {
        let firing = matches!(a.state, AlertState::Firing | AlertState::Flapping);
        *alerts.entry((a.pool.clone(), a.rule.clone(), a.severity.to_string())).or_default() +=
            u64::from(firing);
    }
    Snapshot {
        workers,
        recycles,
        alerts,
        pools,
        orphans,
        collection: v.collection.iter().map(|(p, d)| (p.clone(), d.as_secs_f64())).collect(),
        self_cpu: v.self_usage.cpu_percent,
        self_memory: v.self_usage.memory_bytes,
    }
}

/// The snapshot as a prometheus-client collector: each family is written straight from the rows, with
/// borrowed labels, instead of filling `Family` maps (17 000 series for 1000 workers would be as many
/// hash-map insertions and label allocations per scrape).
#[derive(Debug)]
struct SnapshotCollector(std::sync::Arc<Snapshot>);

const NO_LABELS: [(&str, &str); 0] = [];

type Enc<'a> = prometheus_client::encoding::DescriptorEncoder<'a>;

fn gauge_family<'r, L: EncodeLabelSet + 'r>(
    enc: &mut Enc<'_>,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        if v.is_finite() {
            m.encode_family(&labels)?.encode_gauge(&v)?;
        }
    }
    Ok(())
}

fn counter_family<'r, L: EncodeLabelSet + 'r>(
    enc: &mut Enc<'_>,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in series {
        m.encode_family(&labels)?.encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
    }
    Ok(())
}

/// The labels of a worker's series.
fn wl(w: &WorkerRow) -> [(&'static str, &str); 2] {
    [("pool", w.pool.as_str()), ("worker", w.id.as_str())]
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: Enc<'_>) -> Result<(), std::fmt::Error> {
        let s = &*self.0;
        let e = &mut enc;
        gauge_family(
            e,
            "tend_build_info",
            "Tend's version (always 1)",
            [([("version", env!("CARGO_PKG_VERSION"))], 1.0)],
        )?;
        let states = State::ALL.into_iter().filter(|st| *st != State::Cleaned);
        gauge_family(
            e,
            "tend_worker_state",
            "1 for the worker's lifecycle state, 0 for the others",
            s.workers.iter().flat_map(|w| {
                states.clone().map(move |st| {
                    let labels =
                        [("pool", w.pool.as_str()), ("worker", w.id.as_str()), ("state", st.as_str())];
                    (labels, if st == w.state { 1.0 } else { 0.0 })
                })
            }),
        )?;
        let opt = |name: &str, help: &str, e: &mut Enc<'_>, f: &dyn Fn(&WorkerRow) -> Option<f64>| {
            gauge_family(e, name, help, s.workers.iter().filter_map(|w| Some((wl(w), f(w)?))))
        };
        opt("tend_worker_cpu_percent", "CPU use in percent of one core", e, &|w| w.cpu_percent)?;
        opt("tend_worker_memory_bytes", "Resident memory in bytes", e, &|w| {
            w.memory_bytes.map(|b| b as f64)
        })?;
        opt("tend_worker_threads", "Threads of the worker's process", e, &|w| w.threads.map(f64::from))?;
        opt("tend_worker_open_fds", "Open file descriptors of the worker's process", e, &|w| {
            w.fds.map(f64::from)
        })?;
        opt("tend_worker_uptime_seconds", "Age of the serving incarnation", e, &|w| {
            w.live.then_some(w.uptime_secs)
        })?;
        gauge_family(
            e,
            "tend_worker_custom",
            "Custom metrics reported by or scraped from the worker",
            s.workers.iter().flat_map(|w| {
                w.custom.iter().map(move |(name, v)| {
                    ([("pool", w.pool.as_str()), ("worker", w.id.as_str()), ("metric", name.as_str())], *v)
                })
            }),
        )?;
        let count = |name: &str, help: &str, e: &mut Enc<'_>, f: &dyn Fn(&WorkerRow) -> u64| {
            counter_family(e, name, help, s.workers.iter().map(|w| (wl(w), f(w))))
        };
        count("tend_worker_requests", "Requests handled, over every incarnation", e, &|w| w.requests)?;
        count("tend_worker_errors", "Errors reported, over every incarnation", e, &|w| w.errors)?;
        count("tend_worker_warnings", "Warnings reported, over every incarnation", e, &|w| w.warnings)?;
        count("tend_worker_restarts", "Replacements of the worker", e, &|w| u64::from(w.restarts))?;
        counter_family(
            e,
            "tend_worker_recycles",
            "Recycles by pool and reason",
            s.recycles
                .iter()
                .map(|(pool, reason, n)| ([("pool", pool.as_str()), ("reason", reason.as_str())], *n)),
        )?;
        gauge_family(
            e,
            "tend_pool_workers",
            "Workers listed in the pool (not yet cleaned)",
            s.pools.iter().map(|(pool, n)| ([("pool", pool.as_str())], *n as f64)),
        )?;
        if !s.orphans.is_empty() {
            gauge_family(
                e,
                "tend_docker_orphaned_containers",
                "Containers with Tend's pool label whose owner is gone, on the pool's engine",
                s.orphans.iter().map(|(pool, n)| ([("pool", pool.as_str())], *n as f64)),
            )?;
        }
        gauge_family(
            e,
            "tend_alerts_firing",
            "Alerts firing or flapping, by pool, rule and severity",
            s.alerts.iter().map(|((pool, rule, severity), n)| {
                (
                    [("pool", pool.as_str()), ("rule", rule.as_str()), ("severity", severity.as_str())],
                    *n as f64,
                )
            }),
        )?;
        gauge_family(
            e,
            "tend_collection_duration_seconds",
            "How long the last sampling sweep of the pool took",
            s.collection.iter().map(|(pool, secs)| ([("pool", pool.as_str())], *secs)),
        )?;
        gauge_family(
            e,
            "tend_process_cpu_percent",
            "Tend's own CPU use in percent of one core",
            s.self_cpu.map(|v| (NO_LABELS, v)),
        )?;
        gauge_family(
            e,
            "tend_process_resident_memory_bytes",
            "Tend's own resident memory",
            s.self_memory.map(|v| (NO_LABELS, v as f64)),
        )?;
        Ok(())
    }
}

fn encode_snapshot(s: Snapshot) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(SnapshotCollector(std::sync::Arc::new(s))));
    let mut out = String::with_capacity(64 * 1024);
    encode(&mut out, &reg)?;
    Ok(out)
}

/// The page for one scrape and its content type: OpenMetrics when the client accepts it (Prometheus
/// does), else the classic text format.
pub(crate) fn render(snap: Snapshot, accept: &str) -> (&'static str, String) {
    // Encoding into a String cannot fail short of a bug in the encoder; an empty page is the fallback.
    let page = encode_snapshot(snap).unwrap_or_default();
    if accept.contains("application/openmetrics-text") {
        (OPENMETRICS, page)
    } else {
        (PROMETHEUS_TEXT, to_classic_text(&page))
    }
}

/// OpenMetrics text to the classic 0.0.4 format: a counter family `x` is written `x_total` in its HELP
/// and TYPE lines (as its samples are), and the `# EOF` / `# UNIT` lines go. The older parser (promtool
/// check metrics, pre-OpenMetrics scrapers) otherwise sees samples without HELP or TYPE.
pub fn to_classic_text(page: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        page.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(page.len() + 256);
    for line in page.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counter_families_like_their_samples() {
        let om = "# HELP a_x Things.\n# TYPE a_x counter\na_x_total{p=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\n# UNIT g bytes\ng 1.0\n# EOF\n";
        assert_eq!(
            to_classic_text(om),
            "# HELP a_x_total Things.\n# TYPE a_x_total counter\na_x_total{p=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1.0\n"
        );
    }
}
