//! Section 4, scale: Tend attached to N (1000) sleeping processes at 1 Hz. Measured: how long until
//! all are READY and the event rate of that burst; the engine's own sweep time (its debug log);
//! latency and throughput of `GET /metrics` when the server has it, and of `GET /api/v1/workers`;
//! Tend's CPU with N watched; and the event burst when all N vanish at once. Every request goes to
//! 127.0.0.1, in bounded loops.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::children::Sleepers;
use crate::http::Http;
use crate::overhead::window;
use crate::report::{Check, Report, Section};
use crate::stats::Summary;
use crate::tend::TendProc;
use crate::{Plan, os};

pub fn run(plan: &Plan, tend_exe: &Path, report: &mut Report) -> anyhow::Result<()> {
    let n = plan.scale_n;
    let mut section = Section::new("4. Scale", &["measure", "value", "spread / detail"]);
    let mut sleepers = Sleepers::spawn(n, &format!("scale-{}", std::process::id()))?;
    let config = format!(
        "[[pool]]\nname = \"many\"\nsource = \"attach\"\ncmdline = \"{}\"\nprofile = \"intensive\"\n",
        sleepers.cmdline_regex()
    );
    // First the same N watched by scans of /proc every second (the cadence before process events), so
    // that both figures come from one run: what listening to the kernel saves.
    let scan_row = scanning(plan, tend_exe, &sleepers);
    let mut tend = TendProc::start(tend_exe, "scale", &config, true, "info,tend_engine=debug")?;
    let ready_after = tend.wait_ready(n, 120)?;
    let evs = tend.events();
    let ready_rx: Vec<i64> = evs.iter().filter(|e| e.event["to"] == "READY").map(|e| e.rx_ms).collect();
    let first_rx = evs.first().map_or(0, |e| e.rx_ms);
    section.row(vec![
        format!("{n} processes attached: start → all READY"),
        format!("{:.1} s", ready_after.as_secs_f64()),
        format!(
            "{} events in {} ms from the first to the last READY",
            evs.len(),
            ready_rx.last().map_or(0, |l| l - first_rx)
        ),
    ]);

    // Tend's CPU and its own sweep timings with N watched and nobody asking anything.
    let quiet = plan.quiet_secs;
    let before = tend.stderr_lines("sweep").len();
    let (cpu, rss) = quiet_cost(&tend, quiet)?;
    let mode = discovery_mode(&tend);
    let sweeps: Vec<f64> = tend.stderr_lines("sweep")[before..]
        .iter()
        .filter(|l| l.contains(&format!("workers={n}")))
        .filter_map(|l| l.split("micros=").nth(1)?.split_whitespace().next()?.parse::<f64>().ok())
        .collect();
    section.row(vec![
        format!("tend serve CPU with {n} attached at 1 Hz, discovery: {mode}"),
        format!("{cpu:.2}% of one core"),
        format!("over {quiet} s; RSS {rss:.1} MiB"),
    ]);
    match scan_row {
        Ok(rows) => rows.into_iter().for_each(|r| section.row(r)),
        Err(e) => section.note(format!("**The scanning comparison did not complete:** {e:#}")),
    }
    match exec_to_attached(&tend, &sleepers.tag, plan.exec_trials) {
        Ok(s) => section.row(latency_row(&mode, &s)),
        Err(e) => section.note(format!("**exec → attached did not complete:** {e:#}")),
    }
    if let Some(s) = Summary::of(&sweeps) {
        section.row(vec![
            format!("engine sweep of {n} (its debug log)"),
            format!("{:.2} ms median", s.median / 1000.0),
            format!("p10–p90 {:.2}–{:.2} ms, {} sweeps", s.p10 / 1000.0, s.p90 / 1000.0, s.n),
        ]);
        report.check(Check::new(
            format!("engine sweep of {n} attached, in `tend serve`"),
            "< 5 ms per 1000",
            format!("{:.2} ms median (p90 {:.2})", s.median / 1000.0, s.p90 / 1000.0),
            Some(s.median / 1000.0 * 1000.0 / n as f64 <= 5.0),
        ));
    }

    // The endpoints, sequential latency then throughput on parallel connections.
    let mut http = tend.http()?;
    let metrics_path = ["/metrics", "/api/v1/metrics"]
        .into_iter()
        .find(|p| http.get(p).is_ok_and(|r| r.status == 200 && r.body.starts_with(b"#")));
    let mut paths = vec!["/api/v1/workers".to_owned()];
    match &metrics_path {
        Some(p) => paths.insert(0, (*p).to_owned()),
        None => section.note(
            "`GET /metrics` does not exist in this build yet (the integration API is in progress): \
             `GET /api/v1/workers` stands in for it.",
        ),
    }
    for path in &paths {
        let (lat, page) = latency(&mut http, path, plan.requests)?;
        let rps = throughput(&tend.base, path, plan.clients, Duration::from_secs(plan.load_secs))?;
        section.row(vec![
            format!("`GET {path}` with {n} workers, sequential"),
            format!("{:.2} ms p50", lat.median),
            format!("p90 {:.2} ms, max {:.2} ms over {} requests; {page}", lat.p90, lat.max, lat.n),
        ]);
        section.row(vec![
            format!("`GET {path}` throughput, {} connections", plan.clients),
            format!("{rps:.0} req/s"),
            format!("{} s, keep-alive", plan.load_secs),
        ]);
        if path.ends_with("metrics") {
            report.check(Check::new(
                format!("`/metrics` with {n} workers"),
                "< 50 ms",
                format!("p50 {:.2} ms, p90 {:.2} ms", lat.median, lat.p90),
                Some(lat.median < 50.0),
            ));
        }
    }
    if metrics_path.is_none() {
        report.check(Check::new(
            format!("`/metrics` with {n} workers"),
            "< 50 ms",
            "not measurable yet: no `/metrics` endpoint in this build",
            None,
        ));
    }

    // All N vanish at once: the burst of events that follows.
    let mut cursor = tend.event_count();
    let killed_ms = os::wall_ms();
    sleepers.kill();
    let mut rx = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_new = Instant::now();
    while Instant::now() < deadline && last_new.elapsed() < Duration::from_secs(3) {
        let before = rx.len();
        tend.each_new_event(&mut cursor, |e| rx.push(e.rx_ms));
        if rx.len() > before {
            last_new = Instant::now();
        }
        os::pause(Duration::from_millis(50));
    }
    if let (Some(first), Some(last)) = (rx.first(), rx.last()) {
        let span = (last - first).max(1) as f64;
        section.row(vec![
            format!("all {n} processes killed at once: event burst"),
            format!("{:.0} events/s", rx.len() as f64 / span * 1000.0),
            format!(
                "{} events over {span:.0} ms (first {} ms after the kill, last {} ms): detection waits for the next 1 s sweep",
                rx.len(),
                first - killed_ms,
                last - killed_ms
            ),
        ]);
    }
    tend.stop();
    drop(sleepers);
    if let Err(e) = reported(plan, tend_exe, &mut section, report) {
        section.note(format!("**Reported workers did not complete:** {e:#}"));
    }
    report.push(section);
    Ok(())
}

/// Tend's CPU (% of one core) and RSS at the end (MiB) over `secs` with nobody asking anything.
fn quiet_cost(tend: &TendProc, secs: u64) -> anyhow::Result<(f64, f64)> {
    let u = window(&[tend.pid], secs, secs)?.remove(0);
    Ok((u.cpu_percent, u.rss_last / 1024.0 / 1024.0))
}

/// How Tend says its attach pools discover processes (`/api/v1/health`).
fn discovery_mode(tend: &TendProc) -> String {
    let health = tend.http().and_then(|mut h| h.get("/api/v1/health"));
    let d = health.ok().and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok());
    match d.as_ref().map(|v| &v["discovery"]) {
        Some(d) if d["mode"] == "events" => format!("process events, full scan every {} s", d["every_secs"]),
        Some(d) if d["mode"] == "scan" => format!("scan every {} s", d["every_secs"]),
        _ => "not reported".to_owned(),
    }
}

/// A Tend on the sleepers whose attach pool scans /proc every second: its rows of the table.
fn scanning(plan: &Plan, tend_exe: &Path, sleepers: &Sleepers) -> anyhow::Result<Vec<Vec<String>>> {
    let n = plan.scale_n;
    let config = format!(
        "[discovery]\nmode = \"scan\"\nscan_every = \"1s\"\n\n[[pool]]\nname = \"many\"\nsource = \"attach\"\ncmdline = \"{}\"\nprofile = \"intensive\"\n",
        sleepers.cmdline_regex()
    );
    let mut tend = TendProc::start(tend_exe, "scale-scan", &config, false, "info")?;
    tend.wait_ready(n, 120)?;
    let (cpu, rss) = quiet_cost(&tend, plan.quiet_secs)?;
    let mode = discovery_mode(&tend);
    let latency = exec_to_attached(&tend, &sleepers.tag, plan.exec_trials)?;
    tend.stop();
    Ok(vec![
        vec![
            format!("tend serve CPU with {n} attached at 1 Hz, discovery: {mode}"),
            format!("{cpu:.2}% of one core"),
            format!(
                "over {} s; RSS {rss:.1} MiB; the cadence attach pools had before process events",
                plan.quiet_secs
            ),
        ],
        latency_row(&mode, &latency),
    ])
}

/// From the moment a new process with a matching command line is started (fork + exec of a sleeper
/// with the pool's tag) to the first answer of `GET /api/v1/workers/{id}` that lists it; 20 ms polls.
/// The new sleepers are killed before it returns.
fn exec_to_attached(tend: &TendProc, tag: &str, trials: usize) -> anyhow::Result<Summary> {
    let mut http = tend.http()?;
    let mut ms = Vec::new();
    let mut started = Vec::new();
    for i in 0..trials {
        // Each start follows the last attachment (so, with scans, the last scan) by a different
        // delay: the starts land at every phase of the scans, not always just after one.
        os::pause(Duration::from_millis(20 + (i as u64 * 397) % 1000));
        let t0 = Instant::now();
        let one = Sleepers::spawn(1, tag)?;
        let path = format!("/api/v1/workers/many-{}", one.ids[0].pid);
        started.push(one);
        loop {
            if http.get(&path)?.status == 200 {
                ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            anyhow::ensure!(t0.elapsed() < Duration::from_secs(15), "{path} not attached after 15 s");
            os::pause(Duration::from_millis(20));
        }
    }
    drop(started);
    Summary::of(&ms).context("no trials")
}

fn latency_row(mode: &str, s: &Summary) -> Vec<String> {
    vec![
        format!("exec of a matching process → attached, discovery: {mode}"),
        format!("{:.0} ms median", s.median),
        format!("p90 {:.0} ms, max {:.0} ms over {} starts (API polled every 20 ms)", s.p90, s.max, s.n),
    ]
}

/// N workers of a `source = "reported"` pool: registration, then metric reports as fast as
/// `plan.clients` connections can send them, then `/metrics` with N reported workers.
fn reported(plan: &Plan, tend_exe: &Path, section: &mut Section, report: &mut Report) -> anyhow::Result<()> {
    let n = plan.scale_n;
    let config =
        "[[pool]]\nname = \"fleet\"\nsource = \"reported\"\nprofile = \"realtime\"\nstale_after = \"10m\"\n";
    let mut tend = TendProc::start(tend_exe, "reported", config, false, "warn")?;
    let mut http = tend.http()?;
    let t = Instant::now();
    for i in 0..n {
        let r = http.post_json("/api/v1/workers", &format!("{{\"id\":\"r-{i}\",\"pool\":\"fleet\"}}"))?;
        anyhow::ensure!(
            r.status == 201,
            "register r-{i}: HTTP {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        let r = http.post_json(&format!("/api/v1/workers/r-{i}/state"), "{\"state\":\"READY\"}")?;
        anyhow::ensure!(
            r.status == 200,
            "r-{i} READY: HTTP {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    let setup = t.elapsed().as_secs_f64();
    section.row(vec![
        format!("{n} reported workers: register + READY"),
        format!("{:.0} workers/s", n as f64 / setup),
        format!("{} sequential POSTs in {setup:.2} s", 2 * n),
    ]);
    let dur = Duration::from_secs(plan.load_secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..plan.clients)
        .map(|c| {
            let base = tend.base.clone();
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let mut http = Http::new(&base)?;
                let mut done: u64 = 0;
                while start.elapsed() < dur {
                    let id = (done as usize * 7 + c * 13) % n;
                    let body =
                        format!("{{\"memory_mb\":{},\"cpu_percent\":{}}}", 100 + done % 50, done % 100);
                    let r = http.post_json(&format!("/api/v1/workers/r-{id}/metrics"), &body)?;
                    anyhow::ensure!(r.status == 202, "report: HTTP {}", r.status);
                    done += 1;
                }
                Ok(done)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.join().map_err(|_| anyhow::anyhow!("a report thread panicked"))??;
    }
    let rps = total as f64 / start.elapsed().as_secs_f64();
    section.row(vec![
        format!("metric reports to {n} reported workers, {} connections", plan.clients),
        format!("{rps:.0} reports/s"),
        format!(
            "{total} `POST /api/v1/workers/{{id}}/metrics` (2 metrics each) in {} s, keep-alive",
            plan.load_secs
        ),
    ]);
    let (lat, page) = latency(&mut http, "/metrics", plan.requests)?;
    section.row(vec![
        format!("`GET /metrics` with {n} reported workers, sequential"),
        format!("{:.2} ms p50", lat.median),
        format!("p90 {:.2} ms, max {:.2} ms over {} requests; {page}", lat.p90, lat.max, lat.n),
    ]);
    report.check(Check::new(
        format!("`/metrics` with {n} reported workers"),
        "< 50 ms",
        format!("p50 {:.2} ms, p90 {:.2} ms", lat.median, lat.p90),
        Some(lat.median < 50.0),
    ));
    report.check(Check::new(
        format!("API report throughput, {n} reported workers"),
        "(no target number)",
        format!("{rps:.0} reports/s on {} connections", plan.clients),
        None,
    ));
    tend.stop();
    Ok(())
}

/// Sequential GETs on one connection after 5 warm-up requests: latency in ms and the body size.
/// `/metrics` is asked for as a Prometheus server asks (OpenMetrics first).
fn latency(http: &mut Http, path: &str, count: usize) -> anyhow::Result<(Summary, String)> {
    let scrape = path.ends_with("metrics");
    let get = |http: &mut Http| if scrape { http.scrape(path) } else { http.get(path) };
    let mut body = Vec::new();
    for _ in 0..5 {
        body = get(http)?.body;
    }
    let size = body.len() as f64 / 1024.0;
    let page = if scrape {
        let text = String::from_utf8_lossy(&body);
        let series = text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count();
        format!("{size:.0} KiB, {series} series")
    } else {
        format!("{size:.0} KiB")
    };
    let mut ms = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        let r = get(http)?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(r.status == 200, "GET {path}: HTTP {}", r.status);
    }
    Ok((Summary::of(&ms).context("no requests")?, page))
}

/// Requests per second over `clients` keep-alive connections for `dur`.
fn throughput(base: &str, path: &str, clients: usize, dur: Duration) -> anyhow::Result<f64> {
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (base, path) = (base.to_owned(), path.to_owned());
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let mut http = Http::new(&base)?;
                let mut done = 0;
                while start.elapsed() < dur {
                    let r = if path.ends_with("metrics") { http.scrape(&path)? } else { http.get(&path)? };
                    anyhow::ensure!(r.status == 200, "GET {path}: HTTP {}", r.status);
                    done += 1;
                }
                Ok(done)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}
