//! `tend-bench`: Tend's benchmark suite (`make bench`, issue 7). It measures what the brief's §11
//! targets name — the collection sweep against the physical floor and `sysinfo`, the whole process's
//! CPU and memory against Glances, the reaction to a memory breach, the API at 1000 workers — prints
//! one Markdown table and writes it into `docs/PERFORMANCE.md`. The soak (`--only soak`, `make soak`)
//! is not part of the default run: it lasts an hour; the smoke runs it for 20 s.
//!
//! It is never part of the tests' pass/fail: it reports numbers and says which targets they meet;
//! it fails only when it cannot run. Everything it starts (sleepers, `tend serve`, peers) is killed
//! when it ends, also when it fails or is killed itself (`PR_SET_PDEATHSIG`). Only loopback traffic.
#![deny(unsafe_code)] // the few libc calls that need it say so with `#[allow(unsafe_code)]`

mod children;
mod curve;
mod docker;
mod fleet;
mod http;
mod os;
mod overhead;
mod peers;
mod reaction;
mod report;
mod scale;
mod soak;
mod stats;
mod store;
mod sweep;
mod tend;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, ValueEnum};

/// Run Tend's benchmarks and print (and optionally write) the table.
#[derive(Parser, Debug)]
#[command(name = "tend-bench")]
struct Cli {
    /// Tiny sizes and short windows, no peers: checks that the bench still runs (CI).
    #[arg(long)]
    smoke: bool,
    /// Write the table between the markers of this Markdown file.
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
    /// Only these sections (default: all but the soak; with --smoke, all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<Part>,
    /// The `tend` binary to measure (default: next to this one).
    #[arg(long)]
    tend: Option<PathBuf>,
    /// Do not install or run peers (Glances).
    #[arg(long)]
    no_peers: bool,
    /// Length of the overhead window in seconds (default 60; 3 with --smoke).
    #[arg(long)]
    overhead_secs: Option<u64>,
    /// Length of the soak in seconds (default 3600; 20 with --smoke).
    #[arg(long)]
    soak_secs: Option<u64>,
    /// Agents in the fleet section (default 10; 2 with --smoke).
    #[arg(long)]
    fleet_agents: Option<usize>,
    /// Workers on each agent in the fleet section (default 500; 10 with --smoke).
    #[arg(long)]
    fleet_workers: Option<usize>,
    /// Where the bench keeps its virtualenv and scratch files.
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    Sweep,
    Overhead,
    Reaction,
    Scale,
    Store,
    Docker,
    Curve,
    Fleet,
    Soak,
}

/// The sizes of one run.
#[derive(Debug)]
pub struct Plan {
    pub sizes: Vec<usize>,
    pub rounds: usize,
    pub overhead_n: usize,
    pub overhead_secs: u64,
    pub warmup_secs: u64,
    pub block_secs: u64,
    pub peers: bool,
    pub trials: usize,
    pub scale_n: usize,
    pub quiet_secs: u64,
    pub requests: usize,
    pub clients: usize,
    pub load_secs: u64,
    /// Containers in the docker section, and its window.
    pub docker_n: usize,
    pub docker_secs: u64,
    /// The soak: its length, its sampling period, leaking spawned workers and attached processes.
    pub soak_secs: u64,
    pub soak_every_secs: u64,
    pub soak_leakers: usize,
    pub soak_attached: usize,
    /// The cost curve: N attached processes per point, its window, and the watched/unwatched point.
    pub curve_ns: Vec<usize>,
    pub curve_secs: u64,
    pub curve_unwatched: Option<(usize, usize)>,
    /// Starts of a matching process timed to its attachment, per discovery mode (section 4).
    pub exec_trials: usize,
    /// The hub (section 9): agents, workers on each, the measuring window, lag trials.
    pub fleet_agents: usize,
    pub fleet_workers: usize,
    pub fleet_secs: u64,
    pub fleet_lag_trials: usize,
}

impl Plan {
    fn new(cli: &Cli) -> Plan {
        if cli.smoke {
            Plan {
                sizes: vec![10],
                rounds: 5,
                overhead_n: 10,
                overhead_secs: cli.overhead_secs.unwrap_or(3),
                warmup_secs: 1,
                block_secs: 1,
                peers: false,
                trials: 3,
                scale_n: 20,
                quiet_secs: 2,
                requests: 20,
                clients: 2,
                load_secs: 1,
                docker_n: 5,
                docker_secs: 3,
                soak_secs: cli.soak_secs.unwrap_or(20),
                soak_every_secs: 2,
                soak_leakers: 4,
                soak_attached: 20,
                curve_ns: vec![10, 20],
                curve_secs: 2,
                curve_unwatched: Some((10, 20)),
                exec_trials: 3,
                fleet_agents: cli.fleet_agents.unwrap_or(2),
                fleet_workers: cli.fleet_workers.unwrap_or(10),
                fleet_secs: 3,
                fleet_lag_trials: 5,
            }
        } else {
            Plan {
                sizes: vec![100, 1000],
                rounds: 31,
                overhead_n: 50,
                overhead_secs: cli.overhead_secs.unwrap_or(60),
                warmup_secs: 10,
                block_secs: 10,
                peers: !cli.no_peers,
                trials: 20,
                scale_n: 1000,
                quiet_secs: 10,
                requests: 200,
                clients: 2,
                load_secs: 5,
                docker_n: 50,
                docker_secs: 30,
                soak_secs: cli.soak_secs.unwrap_or(3600),
                soak_every_secs: 10,
                soak_leakers: 20,
                soak_attached: 200,
                curve_ns: vec![100, 500, 1000, 2000, 5000],
                curve_secs: 30,
                curve_unwatched: Some((1000, 4000)),
                exec_trials: 20,
                fleet_agents: cli.fleet_agents.unwrap_or(10),
                fleet_workers: cli.fleet_workers.unwrap_or(500),
                fleet_secs: 30,
                fleet_lag_trials: 100,
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("sleeper") {
        children::sleep_forever();
    }
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tend-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let plan = Plan::new(&cli);
    let tend = match &cli.tend {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("tend"),
    };
    anyhow::ensure!(tend.exists(), "no tend binary at {} (build it, or pass --tend)", tend.display());
    let root = std::env::current_dir().context("current directory")?;
    let command = if cli.smoke { "make bench-smoke" } else { "make bench" };
    let soak_command =
        if cli.smoke { command.to_owned() } else { format!("make soak SOAK_SECS={}", plan.soak_secs) };
    let mut report = report::Report::new(os::Machine::read(), command.to_owned(), soak_command);
    let wants = |p: Part| {
        if cli.only.is_empty() { p != Part::Soak || cli.smoke } else { cli.only.contains(&p) }
    };
    // The cost curve's plot goes beside the file the table is written into, else into the work dir.
    let plot: Option<PathBuf> = Some(match cli.write.as_ref().and_then(|w| w.parent()) {
        Some(dir) => dir.join("cost-curve.png"),
        None => cli.work_dir.join("cost-curve.png"),
    });
    let started = std::time::Instant::now();
    type Step<'a> = (Part, &'a str, Box<dyn Fn(&mut report::Report) -> anyhow::Result<()> + 'a>);
    let steps: Vec<Step<'_>> = vec![
        (Part::Sweep, "1. Collection sweep", Box::new(|r| sweep::run(&plan, r))),
        (
            Part::Overhead,
            "2. Whole-process overhead",
            Box::new(|r| overhead::run(&plan, &tend, &cli.work_dir, r)),
        ),
        (Part::Reaction, "3. Reaction time", Box::new(|r| reaction::run(&plan, &tend, r))),
        (Part::Scale, "4. Scale", Box::new(|r| scale::run(&plan, &tend, r))),
        (Part::Store, "5. Ingest and CSV export", Box::new(|r| store::run(&root, cli.smoke, r))),
        (Part::Docker, "6. Docker containers", Box::new(|r| docker::run(&plan, &tend, r))),
        (
            Part::Curve,
            "8. Cost curve",
            Box::new(|r| curve::run(&plan, &tend, &cli.work_dir, plot.as_deref(), r)),
        ),
        (Part::Fleet, "9. A hub over many agents", Box::new(|r| fleet::run(&plan, &tend, r))),
        (Part::Soak, soak::TITLE, Box::new(|r| soak::run(&plan, &tend, r))),
    ];
    let mut failures = 0;
    for (part, title, step) in steps.into_iter().filter(|(p, _, _)| wants(*p)) {
        eprintln!("tend-bench: {title} ({:.0} s so far)", started.elapsed().as_secs_f64());
        if let Err(e) = step(&mut report) {
            eprintln!("tend-bench: {title} failed: {e:#}");
            let block = if part == Part::Soak { report::Block::Soak } else { report::Block::Bench };
            report.failed(block, title, &e);
            failures += 1;
        }
    }
    let text = report.markdown();
    println!("{text}");
    if let Some(path) = &cli.write {
        report.write_into(path)?;
        eprintln!("tend-bench: wrote {}", path.display());
    }
    eprintln!("tend-bench: done in {:.0} s", started.elapsed().as_secs_f64());
    anyhow::ensure!(failures == 0, "{failures} section(s) did not complete (see the table)");
    Ok(())
}
