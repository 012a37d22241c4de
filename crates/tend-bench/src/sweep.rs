//! Section 1, the collection sweep: one sweep over N sleeping processes by Tend's `ProcSampler` (all
//! fields and `Fields::BASIC`), by the floor (`pread` of `stat`, `statm`, `io` on descriptors kept open,
//! no parsing), by open/read/close of the same files, and by `sysinfo` (only the watched pids, and
//! the whole process table). Methods take turns within each round so that load drifting over the run
//! hits all of them alike; each is reported as the median µs per process over the rounds.

use std::fs::File;
use std::hint::black_box;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use anyhow::{Context, bail};
use regex::Regex;
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
use tend_collect::discover::{self, Matcher};
use tend_collect::{Fields, ProcSampler, SysinfoSampler};
use tend_core::ProcessId;

use crate::children::Sleepers;
use crate::report::{Check, Report, Section};
use crate::stats::Summary;
use crate::{Plan, os};

trait Method {
    fn name(&self) -> &'static str;
    /// One sweep over `ids`; fails if a process could not be read.
    fn sweep(&mut self, ids: &[ProcessId]) -> anyhow::Result<()>;
}

struct Tend {
    name: &'static str,
    sampler: ProcSampler,
}

impl Method for Tend {
    fn name(&self) -> &'static str {
        self.name
    }
    fn sweep(&mut self, ids: &[ProcessId]) -> anyhow::Result<()> {
        let out = black_box(self.sampler.sample(ids));
        if out.iter().any(|(_, r)| r.is_err()) {
            bail!("{}: a watched process vanished", self.name);
        }
        Ok(())
    }
}

/// The physical limit of reading these files: one `pread` per file on a descriptor opened once.
struct Floor {
    name: &'static str,
    files: &'static [&'static str],
    open: Vec<Vec<File>>,
    buf: Vec<u8>,
}

impl Method for Floor {
    fn name(&self) -> &'static str {
        self.name
    }
    fn sweep(&mut self, ids: &[ProcessId]) -> anyhow::Result<()> {
        if self.open.is_empty() {
            for id in ids {
                let fds = self
                    .files
                    .iter()
                    .map(|f| File::open(format!("/proc/{}/{f}", id.pid)))
                    .collect::<Result<Vec<_>, _>>()
                    .context("open /proc files")?;
                self.open.push(fds);
            }
        }
        let mut total = 0;
        for fds in &self.open {
            for f in fds {
                total += f.read_at(&mut self.buf, 0).context("pread")?;
            }
        }
        black_box(total);
        Ok(())
    }
}

/// What a collector that does not keep descriptors pays: open, read, close every file every sweep.
struct OpenReadClose {
    buf: Vec<u8>,
}

impl Method for OpenReadClose {
    fn name(&self) -> &'static str {
        "open/read/close stat+statm+io each sweep"
    }
    fn sweep(&mut self, ids: &[ProcessId]) -> anyhow::Result<()> {
        let mut total = 0;
        for id in ids {
            for f in ["stat", "statm", "io"] {
                let mut file = File::open(format!("/proc/{}/{f}", id.pid)).context("open")?;
                total += file.read(&mut self.buf).context("read")?;
            }
        }
        black_box(total);
        Ok(())
    }
}

struct Sysinfo(SysinfoSampler);

impl Method for Sysinfo {
    fn name(&self) -> &'static str {
        "sysinfo 0.40, refresh of the watched pids only"
    }
    fn sweep(&mut self, ids: &[ProcessId]) -> anyhow::Result<()> {
        let out = black_box(self.0.sample(ids));
        if out.iter().any(|(_, r)| r.is_err()) {
            bail!("sysinfo: a watched process vanished");
        }
        Ok(())
    }
}

/// What a monitor that refreshes everything pays (most peers do): the whole process table.
struct SysinfoAll(System);

impl Method for SysinfoAll {
    fn name(&self) -> &'static str {
        "sysinfo 0.40, refresh of the whole process table"
    }
    fn sweep(&mut self, _ids: &[ProcessId]) -> anyhow::Result<()> {
        let kind = ProcessRefreshKind::nothing().without_tasks().with_cpu().with_memory().with_disk_usage();
        black_box(self.0.refresh_processes_specifics(ProcessesToUpdate::All, true, kind));
        Ok(())
    }
}

const ALL: &str = "Tend ProcSampler, all fields (stat, statm, io, fd count)";
const BASIC: &str = "Tend ProcSampler, Fields::BASIC (stat, statm)";
const FLOOR3: &str = "floor: pread stat+statm+io, fds kept open";
const FLOOR2: &str = "floor: pread stat+statm, fds kept open";

pub fn run(plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let limit = os::raise_nofile()?;
    let mut section = Section::new(
        "1. Collection sweep",
        &["method", "N", "first sweep µs/proc", "median µs/proc", "p10–p90", "ms/sweep", "× floor"],
    );
    section.note(format!(
        "Sleeping children (`tend-bench sleeper`), {} rounds after one warm-up sweep; in each round every \
         method sweeps once, in rotating order. Open-files soft limit raised to {limit}. \"× floor\" divides \
         by the floor reading the same files (stat+statm+io for all fields and for the other readers, \
         stat+statm for BASIC). Processes on the host: {}.",
        plan.rounds,
        os::process_count()
    ));
    for &n in &plan.sizes {
        let sleepers = Sleepers::spawn(n, &format!("sweep-{}-{n}", std::process::id()))?;
        let ids = sleepers.ids.clone();
        let floor = |name, files| Box::new(Floor { name, files, open: Vec::new(), buf: vec![0; 1024] });
        let mut methods: Vec<Box<dyn Method>> = vec![
            Box::new(Tend { name: ALL, sampler: ProcSampler::new().context("ProcSampler")? }),
            Box::new(Tend { name: BASIC, sampler: ProcSampler::with_fields(Fields::BASIC)? }),
            floor(FLOOR3, &["stat", "statm", "io"]),
            floor(FLOOR2, &["stat", "statm"]),
            Box::new(OpenReadClose { buf: vec![0; 1024] }),
            Box::new(Sysinfo(SysinfoSampler::new().context("SysinfoSampler")?)),
            Box::new(SysinfoAll(System::new().context("sysinfo System")?)),
        ];
        // Where the floor's time goes, one file at a time (largest N only, to keep the table short).
        let largest = n == plan.sizes.iter().copied().max().unwrap_or(n);
        if largest {
            methods.push(floor("floor, one file: pread stat", &["stat"]));
            methods.push(floor("floor, one file: pread statm", &["statm"]));
            methods.push(floor("floor, one file: pread io", &["io"]));
            methods
                .push(floor("floor, one file: pread schedstat (CPU ns, main thread only)", &["schedstat"]));
        }
        let per_proc = |d: std::time::Duration| d.as_secs_f64() * 1e6 / n as f64;
        let mut first = Vec::new();
        for m in methods.iter_mut() {
            let t = Instant::now();
            m.sweep(&ids)?;
            first.push(per_proc(t.elapsed()));
        }
        let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(plan.rounds); methods.len()];
        for round in 0..plan.rounds {
            for k in 0..methods.len() {
                let i = (k + round) % methods.len();
                let t = Instant::now();
                methods[i].sweep(&ids)?;
                times[i].push(per_proc(t.elapsed()));
            }
        }
        let method_names: Vec<&'static str> = methods.iter().map(|m| m.name()).collect();
        drop(methods);
        let discovery = discovery(&sleepers, plan.rounds.div_ceil(3))?;
        drop(sleepers);
        let sums: Vec<Summary> =
            times.iter().map(|t| Summary::of(t).context("no rounds")).collect::<Result<_, _>>()?;
        let (floor3, floor2) = (sums[2].median, sums[3].median);
        for (i, s) in sums.iter().enumerate() {
            let floor = match i {
                1 | 3 => Some(floor2),
                0 | 2 | 4..=6 => Some(floor3),
                _ => None,
            };
            section.row(vec![
                method_names[i].to_owned(),
                n.to_string(),
                format!("{:.1}", first[i]),
                format!("{:.2}", s.median),
                s.spread(2),
                format!("{:.2}", s.median * n as f64 / 1000.0),
                floor.map_or("–".into(), |f| format!("{:.1}", s.median / f)),
            ]);
        }
        let (d, host) = discovery;
        section.row(vec![
            format!("attach discovery: scan of /proc ({host} processes), cmdline regex"),
            n.to_string(),
            "–".into(),
            format!("{:.2}", d.median * 1000.0 / n as f64),
            format!("{:.2}–{:.2}", d.p10 * 1000.0 / n as f64, d.p90 * 1000.0 / n as f64),
            format!("{:.2}", d.median),
            "–".into(),
        ]);
        if largest {
            for (i, label) in [(0, "all fields"), (1, "BASIC")] {
                let ms = sums[i].median * n as f64 / 1000.0;
                report.check(Check::new(
                    format!("one collection sweep of {n} processes ({label})"),
                    if n >= 1000 { "< 5 ms" } else { "< 5 ms per 1000 (scaled)" },
                    format!("{ms:.2} ms (p90 {:.2} ms)", sums[i].p90 * n as f64 / 1000.0),
                    // µs per process is ms per 1000 processes.
                    Some(sums[i].median < 5.0),
                ));
            }
            let sysinfo_ratio = sums[5].median / sums[0].median;
            report.check(Check::new(
                format!("sysinfo (watched pids) against Tend at {n}"),
                "sysinfo ~10× slower (brief)",
                format!(
                    "{sysinfo_ratio:.1}× slower than all fields, {:.1}× than BASIC",
                    sums[5].median / sums[1].median
                ),
                None,
            ));
        }
    }
    report.push(section);
    Ok(())
}

/// Times `rounds` discovery passes of an attach pool whose regex matches exactly the sleepers
/// (what `tend serve` runs every `min(interval, 2 s)` for such a pool): ms per pass, and the
/// processes on the host.
fn discovery(sleepers: &Sleepers, rounds: usize) -> anyhow::Result<(Summary, usize)> {
    let matcher = Matcher {
        cmdline: Some(Regex::new(&sleepers.cmdline_regex()).context("sleepers' regex")?),
        ..Matcher::default()
    };
    let mut ms = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        let found = black_box(discover::find(&matcher, &[]));
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if found.len() != sleepers.ids.len() {
            bail!("discovery found {} of {} sleepers", found.len(), sleepers.ids.len());
        }
    }
    Ok((Summary::of(&ms).context("no discovery rounds")?, os::process_count()))
}
