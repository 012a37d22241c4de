//! Section 2, whole-process overhead: `tend serve` watching N processes at 1 Hz (profile intensive)
//! for a fixed window, its CPU time and memory read from `/proc/<tend pid>`; Glances runs over the same
//! window on the same machine (so on the same processes) and is read the same way. Two scenarios:
//! an attach pool (cmdline regex over N sleeping children) and a spawn pool of N idle `demo-worker`s
//! logging one request line a second.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::children::Sleepers;
use crate::peers::{GLANCES_ARGS, Glances, PeerProc};
use crate::report::{Check, Report, Section};
use crate::stats::Summary;
use crate::tend::TendProc;
use crate::{Plan, os};

pub(crate) const MIB: f64 = 1024.0 * 1024.0;

/// CPU and memory of one process over the window.
pub(crate) struct Usage {
    pub cpu_percent: f64,
    /// CPU % of each block of the window (the spread).
    pub blocks: Summary,
    pub rss_median: f64,
    pub rss_first: f64,
    pub rss_last: f64,
    pub hwm: f64,
}

pub fn run(plan: &Plan, tend_exe: &Path, work: &Path, report: &mut Report) -> anyhow::Result<()> {
    let mut section = Section::new(
        "2. Whole-process overhead",
        &[
            "scenario",
            "process",
            "CPU % of one core",
            "10 s blocks min–max",
            "RSS median",
            "RSS first → last",
            "RSS peak",
            "Tend / Glances CPU",
        ],
    );
    let glances = if plan.peers {
        match Glances::prepare(work) {
            Ok(g) => {
                section.note(format!(
                    "Glances {} (PyPI, virtualenv in `{}/glances-venv`), run as `glances {}` over the same \
                     window: it watches every process of the host, the same N included, as it always does.",
                    g.version,
                    work.display(),
                    GLANCES_ARGS.join(" ")
                ));
                Some(g)
            }
            Err(e) => {
                section.note(format!("**Glances could not be installed or run** ({e:#}): no peer column."));
                None
            }
        }
    } else {
        section.note("Peers skipped (`--no-peers` or smoke run).");
        None
    };
    section.note(format!(
        "Window {} s after {} s of warm-up, once every worker is READY; CPU = Δ(utime+stime) of the whole \
         process over the window; RSS from `/proc/PID/status` (VmRSS each second, VmHWM at the end). \
         Tend runs as shipped, its history store on (SQLite in a private temp directory). Containers: \
         section 6.",
        plan.overhead_secs, plan.warmup_secs
    ));
    for scenario in [Scenario::Attach, Scenario::SpawnQuiet, Scenario::Spawn] {
        match measure(plan, scenario, tend_exe, glances.as_ref(), &mut section, report) {
            Ok(()) => {}
            Err(e) => section.note(format!("**{} scenario did not complete:** {e:#}", scenario.label(plan))),
        }
    }
    report.push(section);
    Ok(())
}

#[derive(Copy, Clone)]
enum Scenario {
    Attach,
    /// Spawned workers that print nothing: sampling and the fleet only.
    SpawnQuiet,
    /// Spawned workers that log one request line a second each: plus output reading.
    Spawn,
}

impl Scenario {
    fn label(self, plan: &Plan) -> String {
        match self {
            Scenario::Attach => {
                format!("attach pool, {} sleeping processes (cmdline regex)", plan.overhead_n)
            }
            Scenario::SpawnQuiet => format!("spawn pool, {} demo-workers printing nothing", plan.overhead_n),
            Scenario::Spawn => {
                format!("spawn pool, {} demo-workers (1 request line/s each)", plan.overhead_n)
            }
        }
    }
}

fn measure(
    plan: &Plan,
    scenario: Scenario,
    tend_exe: &Path,
    glances: Option<&Glances>,
    section: &mut Section,
    report: &mut Report,
) -> anyhow::Result<()> {
    let n = plan.overhead_n;
    let mut sleepers = None;
    let config = match scenario {
        Scenario::Attach => {
            let s = Sleepers::spawn(n, &format!("overhead-{}", std::process::id()))?;
            let regex = s.cmdline_regex();
            sleepers = Some(s);
            format!(
                "[[pool]]\nname = \"attached\"\nsource = \"attach\"\ncmdline = \"{regex}\"\nprofile = \"intensive\"\n"
            )
        }
        Scenario::SpawnQuiet | Scenario::Spawn => {
            let rate = if matches!(scenario, Scenario::Spawn) { "1" } else { "0" };
            format!(
                "[[pool]]\nname = \"spawned\"\nsource = \"spawn\"\n\
                 command = [\"$TEND_EXE\", \"demo-worker\", \"--requests-per-sec\", \"{rate}\"]\nsize = {n}\n\
                 requests_log = \"^request \\\\d+ handled\"\nprofile = \"intensive\"\n\
                 readiness = {{ start_secs = 1, timeout = \"60s\" }}\nstop_grace = \"2s\"\n"
            )
        }
    };
    let mut tend = TendProc::start(tend_exe, "overhead", &config, false, "info")?;
    tend.wait_ready(n, 90)?;
    let mut peer: Option<PeerProc> = match glances.map(Glances::start).transpose() {
        Ok(p) => p,
        Err(e) => {
            section.note(format!("Glances did not start: {e:#}"));
            None
        }
    };
    os::pause(Duration::from_secs(plan.warmup_secs));
    let load = os::load1();
    let host_procs = os::process_count();
    let mut pids = vec![tend.pid];
    pids.extend(peer.as_ref().map(|p| p.pid));
    let usage = window(&pids, plan.overhead_secs, plan.block_secs)?;
    let peer_alive = peer.as_mut().is_some_and(PeerProc::alive);
    let workers = tend.workers(&mut tend.http()?)?.len();
    drop(peer);
    tend.stop();
    drop(sleepers);

    let label = scenario.label(plan);
    let tend_u = &usage[0];
    let ratio = usage.get(1).filter(|_| peer_alive).map(|g| tend_u.cpu_percent / g.cpu_percent);
    for (i, u) in usage.iter().enumerate() {
        let who = if i == 0 {
            "tend serve".to_owned()
        } else if peer_alive {
            "Glances".into()
        } else {
            "Glances (exited early!)".into()
        };
        section.row(vec![
            if i == 0 {
                format!("{label}; load {load:.2}, {host_procs} processes on the host")
            } else {
                String::new()
            },
            who,
            format!("{:.2}", u.cpu_percent),
            format!("{:.2}–{:.2}", u.blocks.min, u.blocks.max),
            format!("{:.1} MiB", u.rss_median / MIB),
            format!("{:.1} → {:.1} MiB", u.rss_first / MIB, u.rss_last / MIB),
            format!("{:.1} MiB", u.hwm / MIB),
            if i == 0 {
                ratio.map_or("–".into(), |r| format!("{r:.2} (1/{:.0})", 1.0 / r.max(1e-9)))
            } else {
                String::new()
            },
        ]);
    }
    if workers != n {
        section.note(format!("{label}: {workers} workers listed at the end, expected {n}."));
    }
    let short = match scenario {
        Scenario::Attach => format!("{n} attached"),
        Scenario::SpawnQuiet => format!("{n} spawned, silent"),
        Scenario::Spawn => format!("{n} spawned, 1 line/s each"),
    };
    report.check(Check::new(
        format!("backend CPU, {short} at 1 Hz"),
        "< 1% of one core",
        format!("{:.2}% (load {load:.2})", tend_u.cpu_percent),
        Some(tend_u.cpu_percent < 1.0),
    ));
    if let (Some(r), Some(g)) = (ratio, usage.get(1)) {
        report.check(Check::new(
            format!("CPU against Glances, {short}"),
            "≤ 1/10 of Glances",
            format!("{:.2}% vs {:.2}%: {r:.2}", tend_u.cpu_percent, g.cpu_percent),
            Some(r <= 0.1),
        ));
    }
    report.check(Check::new(
        format!("backend RSS, {short}"),
        "< 50 MB",
        format!(
            "peak {:.1} MiB, {:.1} → {:.1} MiB over the window",
            tend_u.hwm / MIB,
            tend_u.rss_first / MIB,
            tend_u.rss_last / MIB
        ),
        Some(tend_u.hwm < 50e6),
    ));
    Ok(())
}

/// Samples each pid every second for `secs` seconds.
pub(crate) fn window(pids: &[u32], secs: u64, block: u64) -> anyhow::Result<Vec<Usage>> {
    let clk = os::clock_ticks() as f64;
    let start = Instant::now();
    let mut ticks: Vec<Vec<u64>> = vec![Vec::new(); pids.len()];
    let mut rss: Vec<Vec<f64>> = vec![Vec::new(); pids.len()];
    let mut times = Vec::new();
    for s in 0..=secs {
        let due = start + Duration::from_secs(s);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            os::pause(wait);
        }
        times.push(start.elapsed().as_secs_f64());
        for (i, &pid) in pids.iter().enumerate() {
            let last = ticks[i].last().copied().unwrap_or(0);
            ticks[i].push(os::cpu_ticks(pid).unwrap_or(last));
            rss[i].push(os::status_bytes(pid, "VmRSS").map_or(f64::NAN, |b| b as f64));
        }
    }
    let elapsed = times.last().copied().unwrap_or(1.0) - times[0];
    let mut out = Vec::new();
    for (i, &pid) in pids.iter().enumerate() {
        let t = &ticks[i];
        let total = (t[t.len() - 1] - t[0]) as f64 / clk;
        let step = block.max(1) as usize;
        let blocks: Vec<f64> = (0..t.len().saturating_sub(1) / step)
            .map(|b| {
                let (a, z) = (b * step, (b + 1) * step);
                (t[z] - t[a]) as f64 / clk / (times[z] - times[a]) * 100.0
            })
            .collect();
        let r: Vec<f64> = rss[i].iter().copied().filter(|v| v.is_finite()).collect();
        out.push(Usage {
            cpu_percent: total / elapsed * 100.0,
            blocks: Summary::of(&blocks).unwrap_or(Summary {
                n: 0,
                min: 0.0,
                p10: 0.0,
                median: 0.0,
                p90: 0.0,
                max: 0.0,
            }),
            rss_median: Summary::of(&r).map_or(f64::NAN, |s| s.median),
            rss_first: r.first().copied().unwrap_or(f64::NAN),
            rss_last: r.last().copied().unwrap_or(f64::NAN),
            hwm: os::status_bytes(pid, "VmHWM").map_or(f64::NAN, |b| b as f64),
        });
    }
    Ok(out)
}
