//! The portable sampler: per-process metrics through `sysinfo`, for platforms without `/proc` and as
//! the baseline the `/proc` fast path is benchmarked against.
//!
//! This module owns Tend's only use of `sysinfo`. It must never refresh the whole process table (only
//! `ProcessesToUpdate::Some(watched pids)`), and never attribute numbers to a process whose start time
//! differs from the asked [`ProcessId`].
//!
//! Differences from [`crate::proc_stat::ProcSampler`]: `threads` is not reported (sysinfo lists
//! threads as tasks, which costs a directory scan per process and per sweep), and `fds` is counted by
//! listing `/proc/PID/fd` (sysinfo's own way).

use std::collections::HashMap;
use std::io;

use sysinfo::{Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System};
use tend_core::{Metrics, ProcessId};

use crate::proc_stat::sysconf;
use crate::{Gone, Sampler};

/// sysinfo keeps every process it ever refreshed; past this many stale entries the `System` is
/// rebuilt (costing one sweep of CPU baselines) so memory stays flat over a day of churn.
const MAX_STALE: usize = 256;

pub struct SysinfoSampler {
    system: System,
    watched: HashMap<u32, Watched>,
    cpus: u32,
    mem_total_bytes: u64,
    /// Linux: (boot time in Unix seconds, clock ticks per second) to check `start_ticks` exactly.
    ticks_to_unix: Option<(u64, u64)>,
}

struct Watched {
    id: ProcessId,
    /// Start time as sysinfo reports it (Unix seconds), remembered on first sight: on platforms
    /// where `start_ticks` cannot be checked, a change of this is how a reused pid shows.
    start_time: u64,
    sweeps: u32,
}

impl SysinfoSampler {
    pub fn new() -> io::Result<Self> {
        let mut system = System::new().map_err(io::Error::other)?;
        system.refresh_memory();
        let cpus = sysconf(libc::_SC_NPROCESSORS_ONLN).unwrap_or(1);
        let clk_tck = sysconf(libc::_SC_CLK_TCK);
        let ticks_to_unix =
            if cfg!(target_os = "linux") { System::boot_time().ok().zip(clk_tck) } else { None };
        Ok(SysinfoSampler {
            mem_total_bytes: system.total_memory(),
            system,
            watched: HashMap::new(),
            cpus: u32::try_from(cpus).unwrap_or(u32::MAX),
            ticks_to_unix,
        })
    }

    /// Reads one sweep; see [`Sampler::sample`].
    pub fn sample(&mut self, pids: &[ProcessId]) -> Vec<(ProcessId, Result<Metrics, Gone>)> {
        let sys_pids: Vec<Pid> = pids.iter().map(|id| Pid::from_u32(id.pid)).collect();
        let kind = ProcessRefreshKind::nothing().without_tasks().with_cpu().with_memory().with_disk_usage();
        self.system.refresh_processes_specifics(ProcessesToUpdate::Some(&sys_pids), true, kind);

        let mut asked: HashMap<u32, ProcessId> = HashMap::with_capacity(pids.len());
        let mut out = Vec::with_capacity(pids.len());
        for &id in pids {
            asked.insert(id.pid, id);
            out.push((id, self.read(id)));
        }
        self.watched.retain(|pid, w| asked.get(pid) == Some(&w.id));
        if self.system.processes().len() > self.watched.len() + MAX_STALE {
            if let Ok(fresh) = System::new() {
                self.system = fresh;
            }
            self.watched.clear();
        }
        out
    }

    fn read(&mut self, id: ProcessId) -> Result<Metrics, Gone> {
        let Some(p) = self.system.process(Pid::from_u32(id.pid)) else {
            self.watched.remove(&id.pid);
            return Err(Gone);
        };
        let start_time = p.start_time();
        let exact_match = self.ticks_to_unix.map(|(boot, tck)| {
            // sysinfo computes start_time the same way, in whole seconds; allow one for rounding.
            (boot + id.start_ticks / tck).abs_diff(start_time) <= 1
        });
        let w = self.watched.entry(id.pid).or_insert(Watched { id, start_time, sweeps: 0 });
        if w.id != id {
            *w = Watched { id, start_time, sweeps: 0 };
        }
        let same = exact_match.unwrap_or(w.start_time == start_time);
        if !same || !p.exists() || matches!(p.status(), ProcessStatus::Zombie | ProcessStatus::Dead) {
            self.watched.remove(&id.pid);
            return Err(Gone);
        }
        w.sweeps = w.sweeps.saturating_add(1);
        // sysinfo reports 0 until it has two readings; say "unknown" rather than "idle".
        let cpu = (w.sweeps >= 2).then(|| f64::from(p.cpu_usage()));
        let rss = p.memory();
        let disk = p.disk_usage();
        Ok(Metrics {
            cpu_percent: cpu,
            cpu_host_percent: cpu.map(|c| c / f64::from(self.cpus)),
            memory_bytes: Some(rss),
            memory_percent: (self.mem_total_bytes > 0)
                .then(|| rss as f64 * 100.0 / self.mem_total_bytes as f64),
            disk_read_bytes: Some(disk.total_read_bytes),
            disk_write_bytes: Some(disk.total_written_bytes),
            fds: p.open_files().and_then(|n| u32::try_from(n).ok()),
            ..Metrics::default()
        })
    }
}

impl Sampler for SysinfoSampler {
    fn sample(&mut self, pids: &[ProcessId]) -> Vec<(ProcessId, Result<Metrics, Gone>)> {
        SysinfoSampler::sample(self, pids)
    }
}
