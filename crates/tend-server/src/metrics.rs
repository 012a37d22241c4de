//! `GET /metrics`: Tend's view of its workers in the Prometheus/OpenMetrics text format, encoded by
//! `prometheus-client`. A fresh registry is filled from one consistent snapshot of the fleet on every
//! scrape, so a worker's series disappear as soon as it is CLEANED or removed (no stale series kept in a
//! long-lived registry). Workers are labelled by pool and their stable worker id, never by pid: a pid
//! changes with every recycle and would explode the number of series.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use tend_core::lifecycle::State;
use tend_core::rules::AlertState;
use tend_engine::App;
use tend_engine::engine::EngineView;

/// The content type of the OpenMetrics text format that Prometheus negotiates first.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format, for clients that do not ask for OpenMetrics (curl, promtool).
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

type Labels = Vec<(&'static str, String)>;
type GaugeF = Family<Labels, Gauge<f64, AtomicU64>>;
type CounterU = Family<Labels, Counter<u64>>;

/// One worker, as read inside the engine task.
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
struct Snapshot {
    workers: Vec<WorkerRow>,
    /// (pool, reason) -> recycles.
    recycles: Vec<(String, String, u64)>,
    /// (pool, rule, severity) -> alerts firing or flapping.
    alerts: BTreeMap<(String, String, String), u64>,
    pools: Vec<(String, u64)>,
    collection: Vec<(String, f64)>,
    self_cpu: Option<f64>,
    self_memory: Option<u64>,
}

fn snapshot(v: &EngineView<'_>) -> Snapshot {
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
        collection: v.collection.iter().map(|(p, d)| (p.clone(), d.as_secs_f64())).collect(),
        self_cpu: v.self_usage.cpu_percent,
        self_memory: v.self_usage.memory_bytes,
    }
}

fn gauge(reg: &mut Registry, name: &str, help: &str) -> GaugeF {
    let f = GaugeF::default();
    reg.register(name, help, f.clone());
    f
}

fn counter(reg: &mut Registry, name: &str, help: &str) -> CounterU {
    let f = CounterU::default();
    reg.register(name, help, f.clone());
    f
}

fn encode_snapshot(s: &Snapshot) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::default();
    let build = gauge(&mut reg, "tend_build_info", "Tend's version (always 1)");
    build.get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_owned())]).set(1.0);

    let state = gauge(&mut reg, "tend_worker_state", "1 for the worker's lifecycle state, 0 for the others");
    let cpu = gauge(&mut reg, "tend_worker_cpu_percent", "CPU use in percent of one core");
    let mem = gauge(&mut reg, "tend_worker_memory_bytes", "Resident memory in bytes");
    let threads = gauge(&mut reg, "tend_worker_threads", "Threads of the worker's process");
    let fds = gauge(&mut reg, "tend_worker_open_fds", "Open file descriptors of the worker's process");
    let uptime = gauge(&mut reg, "tend_worker_uptime_seconds", "Age of the serving incarnation");
    let custom =
        gauge(&mut reg, "tend_worker_custom", "Custom metrics reported by or scraped from the worker");
    let requests = counter(&mut reg, "tend_worker_requests", "Requests handled, over every incarnation");
    let errors = counter(&mut reg, "tend_worker_errors", "Errors reported, over every incarnation");
    let warnings = counter(&mut reg, "tend_worker_warnings", "Warnings reported, over every incarnation");
    let restarts = counter(&mut reg, "tend_worker_restarts", "Replacements of the worker");
    for w in &s.workers {
        let l = || vec![("pool", w.pool.clone()), ("worker", w.id.clone())];
        for st in State::ALL.into_iter().filter(|st| *st != State::Cleaned) {
            let mut labels = l();
            labels.push(("state", st.as_str().to_owned()));
            state.get_or_create(&labels).set(if st == w.state { 1.0 } else { 0.0 });
        }
        let set = |f: &GaugeF, v: Option<f64>| {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                f.get_or_create(&l()).set(v);
            }
        };
        set(&cpu, w.cpu_percent);
        set(&mem, w.memory_bytes.map(|b| b as f64));
        set(&threads, w.threads.map(f64::from));
        set(&fds, w.fds.map(f64::from));
        if w.live {
            set(&uptime, Some(w.uptime_secs));
        }
        for (name, v) in w.custom.iter().filter(|(_, v)| v.is_finite()) {
            let mut labels = l();
            labels.push(("metric", name.clone()));
            custom.get_or_create(&labels).set(*v);
        }
        requests.get_or_create(&l()).inc_by(w.requests);
        errors.get_or_create(&l()).inc_by(w.errors);
        warnings.get_or_create(&l()).inc_by(w.warnings);
        restarts.get_or_create(&l()).inc_by(u64::from(w.restarts));
    }

    let recycles = counter(&mut reg, "tend_worker_recycles", "Recycles by pool and reason");
    for (pool, reason, n) in &s.recycles {
        recycles.get_or_create(&vec![("pool", pool.clone()), ("reason", reason.clone())]).inc_by(*n);
    }
    let workers = gauge(&mut reg, "tend_pool_workers", "Workers listed in the pool (not yet cleaned)");
    for (pool, n) in &s.pools {
        workers.get_or_create(&vec![("pool", pool.clone())]).set(*n as f64);
    }
    let alerts =
        gauge(&mut reg, "tend_alerts_firing", "Alerts firing or flapping, by pool, rule and severity");
    for ((pool, rule, severity), n) in &s.alerts {
        let labels = vec![("pool", pool.clone()), ("rule", rule.clone()), ("severity", severity.clone())];
        alerts.get_or_create(&labels).set(*n as f64);
    }
    let collection = gauge(
        &mut reg,
        "tend_collection_duration_seconds",
        "How long the last sampling sweep of the pool took",
    );
    for (pool, secs) in &s.collection {
        collection.get_or_create(&vec![("pool", pool.clone())]).set(*secs);
    }
    let self_cpu = gauge(&mut reg, "tend_process_cpu_percent", "Tend's own CPU use in percent of one core");
    if let Some(v) = s.self_cpu {
        self_cpu.get_or_create(&Vec::new()).set(v);
    }
    let self_mem = gauge(&mut reg, "tend_process_resident_memory_bytes", "Tend's own resident memory");
    if let Some(v) = s.self_memory {
        self_mem.get_or_create(&Vec::new()).set(v as f64);
    }

    let mut out = String::with_capacity(64 * 1024);
    encode(&mut out, &reg)?;
    Ok(out)
}

/// The page for one scrape and its content type: OpenMetrics when the client accepts it (Prometheus
/// does), else the classic text format.
pub async fn render(app: &App, accept: &str) -> Result<(&'static str, String), tend_engine::AppError> {
    let snap = app.query(snapshot).await?;
    // Encoding into a String cannot fail short of a bug in the encoder; an empty page is the fallback.
    let page = encode_snapshot(&snap).unwrap_or_default();
    Ok(if accept.contains("application/openmetrics-text") {
        (OPENMETRICS, page)
    } else {
        (PROMETHEUS_TEXT, to_classic_text(&page))
    })
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
