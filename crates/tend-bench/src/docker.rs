//! Section 6: a docker pool of N containers sampled at 1 Hz. The bench starts its own private engine
//! (`tend_testkit::dockerd`: Debian's `dockerd` on a socket in a temp dir, a busybox image from the
//! local `busybox-static`, no registry), runs N `sleep` containers with `--network none`,
//! and measures over a window the CPU of `tend serve` and of the engine (dockerd + containerd + every
//! shim of this engine) — first with no Tend (the engine's own idle cost), then with Tend reading stats
//! by one-shot polls, then by one stream per container. Everything is removed at the end.

use std::path::Path;
use std::time::{Duration, Instant};

use tend_testkit::dockerd::{Dockerd, IMAGE};

use crate::Plan;
use crate::os;
use crate::overhead::{MIB, window};
use crate::report::{Check, Report, Section};
use crate::tend::TendProc;

/// The private engine, made to die with the bench (Ctrl-C in `make bench`, a CI timeout).
fn start_engine() -> anyhow::Result<Dockerd> {
    let mut engine = Dockerd::try_unstarted()?.prepared(|cmd| os::die_with_bench(cmd, libc::SIGTERM));
    engine.try_launch()?;
    Ok(engine)
}

/// The engine's processes: dockerd, its containerd and every shim, all named by this engine's exec root
/// on their command line.
fn pids_of(engine: &Dockerd) -> Vec<u32> {
    let needle = engine.dir.join("exec").display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        if String::from_utf8_lossy(&cmd).replace('\0', " ").contains(&needle) {
            out.push(pid);
        }
    }
    out
}

/// Which part of the engine a pid is: dockerd, containerd, or a shim (by its command name).
fn part(pid: u32) -> usize {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    match comm.trim() {
        "dockerd" => 0,
        "containerd" => 1,
        _ => 2,
    }
}

/// Engine CPU % as (total, "dockerd x + containerd y + shims z").
fn split(pids: &[u32], cpu: &[f64]) -> (f64, String) {
    let mut parts = [0.0; 3];
    for (pid, c) in pids.iter().zip(cpu) {
        parts[part(*pid)] += c;
    }
    let total: f64 = parts.iter().sum();
    (
        total,
        format!("{total:.2} (dockerd {:.2}, containerd {:.2}, shims {:.2})", parts[0], parts[1], parts[2]),
    )
}

pub fn run(plan: &Plan, tend_exe: &Path, report: &mut Report) -> anyhow::Result<()> {
    let n = plan.docker_n;
    let secs = plan.overhead_secs.min(plan.docker_secs);
    let mut section = Section::new(
        &format!("6. Docker: {n} containers at 1 Hz"),
        &[
            "scenario",
            "tend serve CPU %",
            "engine CPU % (dockerd + containerd + shims)",
            "engine above idle",
            "tend RSS",
        ],
    );
    let engine = start_engine()?;
    let started = Instant::now();
    for i in 0..n {
        let name = format!("bench-{i}");
        engine.try_run(&["--name", &name, "--label", "tend.pool=bench", IMAGE, "sleep", "86400"])?;
    }
    let run_secs = started.elapsed().as_secs_f64();
    os::pause(Duration::from_secs(plan.warmup_secs));
    let engine_pids = pids_of(&engine);
    let idle = window(&engine_pids, secs, plan.block_secs)?;
    let (idle_cpu, idle_text) = split(&engine_pids, &idle.iter().map(|u| u.cpu_percent).collect::<Vec<_>>());
    section.row(vec![
        format!("no Tend: the engine with {n} idle containers"),
        "–".into(),
        idle_text,
        "–".into(),
        "–".into(),
    ]);
    let mut best: Option<(String, f64)> = None;
    for mode in ["poll", "stream"] {
        let config = format!(
            "[[pool]]\nname = \"bench\"\nsource = \"docker\"\nlabels = [\"tend.pool=bench\"]\n\
             docker_host = \"{}\"\ninterval = \"1s\"\nstats = \"{mode}\"\n",
            engine.host
        );
        let mut tend = TendProc::start(tend_exe, &format!("docker-{mode}"), &config, false, "info")?;
        tend.wait_ready(n, 90)?;
        os::pause(Duration::from_secs(plan.warmup_secs));
        let mut pids = vec![tend.pid];
        let engine_pids = pids_of(&engine);
        pids.extend(&engine_pids);
        let load = os::load1();
        let usage = window(&pids, secs, plan.block_secs)?;
        tend.stop();
        let tend_cpu = usage[0].cpu_percent;
        let (engine_cpu, engine_text) =
            split(&engine_pids, &usage[1..].iter().map(|u| u.cpu_percent).collect::<Vec<_>>());
        let label = match mode {
            "poll" => "one-shot reads each second, own deltas (`stats = \"poll\"`)",
            _ => "one engine stream per container (`stats = \"stream\"`)",
        };
        section.row(vec![
            format!("{label}; load {load:.2}"),
            format!("{tend_cpu:.2}"),
            engine_text,
            format!("{:+.2}", engine_cpu - idle_cpu),
            format!("{:.1} MiB (peak {:.1})", usage[0].rss_median / MIB, usage[0].hwm / MIB),
        ]);
        report.check(Check::new(
            format!("backend CPU, {n} containers at 1 Hz ({mode})"),
            "< 1% of one core",
            format!("{tend_cpu:.2}% (engine {engine_cpu:.2}%, load {load:.2})"),
            Some(tend_cpu < 1.0),
        ));
        let total = tend_cpu + engine_cpu;
        if best.as_ref().is_none_or(|(_, b)| total < *b) {
            best = Some((mode.to_owned(), total));
        }
    }
    section.note(format!(
        "Private engine (Debian docker.io, vfs, `--network none`), {n} busybox `sleep` containers started in \
         {run_secs:.0} s; window {secs} s after {} s of warm-up, CPU = Δ(utime+stime) over the window, summed over \
         dockerd, its containerd and the {n} shims. Cheapest in total this run: {}.",
        plan.warmup_secs,
        best.map(|(m, t)| format!("{m} ({t:.2}% of a core, Tend + engine)")).unwrap_or_default()
    ));
    report.push(section);
    Ok(())
}
