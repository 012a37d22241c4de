//! Section 9, a hub over many agents: N `tend serve` agents, each on its own loopback address with a
//! reported pool of M registered workers, and a hub (`tend serve` with N `[[remote]]`, no pools of
//! its own) that polls their listings every second and follows their event streams. Measured: the
//! hub's CPU and peak RSS over a window, and the lag of an event from its agent to the hub (a state
//! reported on an agent, until the hub's event log has it), which the hub's `--events-jsonl` lines
//! stamp as they arrive.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::report::{Check, Report, Section};
use crate::stats::Summary;
use crate::tend::TendProc;
use crate::{Plan, os};

const POOL: &str = "jobs";

pub fn run(plan: &Plan, tend_exe: &Path, report: &mut Report) -> anyhow::Result<()> {
    let (n, m) = (plan.fleet_agents, plan.fleet_workers);
    // No staleness within the run: nothing reports metrics, and the listings are what is measured.
    let agent_config = format!("[[pool]]\nname = \"{POOL}\"\nsource = \"reported\"\nstale_after = \"1h\"\n");
    let mut agents = Vec::new();
    for i in 0..n {
        let listen = format!("127.0.0.{}:0", i + 2);
        let agent =
            TendProc::start_on(tend_exe, &format!("agent-{i}"), &agent_config, false, "warn", &listen)?;
        let mut http = agent.http()?;
        for w in 0..m {
            let body = format!("{{\"id\": \"job-{w}\", \"pool\": \"{POOL}\"}}");
            let r = http.post_json("/api/v1/workers", &body)?;
            if r.status != 201 {
                bail!("register job-{w} on agent {i}: HTTP {}", r.status);
            }
            // 409: READY already (a reported worker may be made READY by its agent first).
            let r = http.post_json(&format!("/api/v1/workers/job-{w}/state"), "{\"state\": \"READY\"}")?;
            if r.status != 200 && r.status != 409 {
                bail!("job-{w} READY on agent {i}: HTTP {} {}", r.status, String::from_utf8_lossy(&r.body));
            }
        }
        agents.push(agent);
    }
    let hub_config: String = agents
        .iter()
        .enumerate()
        .map(|(i, a)| format!("[[remote]]\nname = \"a{i}\"\nurl = \"{}\"\n\n", a.base))
        .collect();
    let mut hub = TendProc::start(tend_exe, "hub", &hub_config, true, "warn")?;
    let mut http = hub.http()?;
    let started = Instant::now();
    loop {
        let listed = hub.workers(&mut http)?.len();
        if listed >= n * m {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the hub lists {listed} of {} workers after 60 s; stderr:\n{}", n * m, hub.stderr_tail(10));
        }
        os::pause(Duration::from_millis(200));
    }
    os::pause(Duration::from_secs(plan.warmup_secs));

    // The window: CPU and peak RSS of the hub while it polls and follows every agent.
    let ticks = os::clock_ticks() as f64;
    let cpu0 = os::cpu_ticks(hub.pid)?;
    let t0 = Instant::now();
    let mut peak = 0u64;
    while t0.elapsed() < Duration::from_secs(plan.fleet_secs) {
        peak = peak.max(os::rss_bytes(hub.pid)?);
        os::pause(Duration::from_millis(500));
    }
    let cpu = (os::cpu_ticks(hub.pid)? - cpu0) as f64 / ticks / t0.elapsed().as_secs_f64() * 100.0;
    peak = peak.max(os::status_bytes(hub.pid, "VmHWM")?);

    // The lag: a state reported on an agent, until the hub received its relayed event.
    let mut lags = Vec::new();
    let mut cursor = hub.event_count();
    for k in 0..plan.fleet_lag_trials {
        // Each worker in turn (agent by agent), READY → WORKING on its first visit, back on the next.
        let (i, w, visit) = (k % n, (k / n) % m, k / (n * m));
        let state = if visit % 2 == 0 { "WORKING" } else { "READY" };
        let mut ahttp = agents[i].http()?;
        let sent = os::wall_ms();
        let r = ahttp
            .post_json(&format!("/api/v1/workers/job-{w}/state"), &format!("{{\"state\": \"{state}\"}}"))?;
        if r.status != 200 {
            bail!("job-{w} {state} on agent {i}: HTTP {}", r.status);
        }
        let want = format!("job-{w}@a{i}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = None;
        while got.is_none() {
            hub.each_new_event(&mut cursor, |e| {
                if e.event["type"] == "state_changed"
                    && e.event["worker"] == want.as_str()
                    && e.event["to"] == state
                {
                    got = Some(e.rx_ms);
                }
            });
            if Instant::now() > deadline {
                bail!("the hub did not relay {want} → {state} within 10 s");
            }
            os::pause(Duration::from_millis(2));
        }
        lags.push((got.context("lag")? - sent) as f64);
        os::pause(Duration::from_millis(100));
    }
    let lag = Summary::of(&lags).context("no lag measured")?;
    let p99 = Summary::quantile(&lags, 0.99).context("no lag measured")?;
    let mib = peak as f64 / (1024.0 * 1024.0);
    let mut s = Section::new(
        "9. A hub over many agents",
        &["agents × workers", "hub CPU, % of one core", "hub peak RSS", "agent → hub lag p50", "p99", "max"],
    );
    s.row(vec![
        format!("{n} × {m}"),
        format!("{cpu:.2}"),
        format!("{mib:.1} MiB"),
        format!("{:.0} ms", lag.median),
        format!("{p99:.0} ms"),
        format!("{:.0} ms", lag.max),
    ]);
    s.note(format!(
        "{n} `tend serve` agents on 127.0.0.2-{} with a reported pool of {m} READY workers each; a hub with \
         {n} `[[remote]]` and no pools of its own, polling each agent's worker list and alerts every second \
         and following its event stream. CPU over {} s after {} s of warm-up; lag: {} state reports on the \
         agents, from the report's send to the hub's receipt of the relayed event (its `--events-jsonl` line).",
        n + 1,
        plan.fleet_secs,
        plan.warmup_secs,
        lags.len()
    ));
    report.push(s);
    let workers = n * m;
    report.check(Check::new(
        format!("hub over {workers} remote workers: CPU"),
        "≤ 2% of a core",
        format!("{cpu:.2}%"),
        Some(cpu <= 2.0),
    ));
    report.check(Check::new(
        format!("hub over {workers} remote workers: memory"),
        "≤ 150 MB",
        format!("{:.0} MB", peak as f64 / 1e6),
        Some(peak as f64 <= 150e6),
    ));
    report.check(Check::new(
        "agent → hub event lag p99",
        "< 500 ms",
        format!("{p99:.0} ms"),
        Some(p99 < 500.0),
    ));
    drop(hub);
    drop(agents);
    Ok(())
}
