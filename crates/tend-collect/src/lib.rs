//! Tend's sources for process workers: sampling, discovery, spawning, signals and readiness probes.
//!
//! This crate owns every contact with the operating system's process table: `/proc`, `sysinfo`,
//! `fork/exec`, `kill`. It must never decide anything (no lifecycle states, no rules, no recycle
//! policy — that is `tend-core`), and it must never signal a process it cannot prove is the one it
//! was asked about: processes are named by [`ProcessId`] (pid *and* start time), never by pid alone.
//!
//! The pieces, in the order a supervisor uses them:
//! - [`spawn`] starts a worker in its own process group and streams its output as [`spawn::LogLine`]s;
//! - [`discover`] finds existing processes to attach to, and [`proc_events`] hears of new ones from the
//!   kernel as they exec;
//! - [`readiness`] waits until a worker is ready (alive for a while, port open, HTTP 2xx, log line);
//! - [`Sampler`] ([`proc_stat::ProcSampler`] on Linux, [`sysinfo_sampler::SysinfoSampler`] elsewhere)
//!   reads CPU, memory, threads, fds and disk I/O of exactly the watched processes each sweep;
//! - [`signal`] stops them: identity-checked signals and SIGTERM → grace → SIGKILL, and drains what is
//!   left of a worker's process group after it exited;
//! - [`reaper`] makes Tend a child subreaper, reaps what it adopts and names processes that escaped
//!   their worker's group.

pub mod discover;
pub mod docker;
pub mod fd_limit;
pub mod malloc;
pub mod proc_events;
pub mod proc_stat;
pub mod readiness;
pub mod reaper;
pub mod scrape;
pub mod signal;
pub mod spawn;
pub mod sysinfo_sampler;

use tend_core::{Metrics, ProcessId};

pub use proc_stat::{Fields, ProcSampler, is_running, process_id};
pub use sysinfo_sampler::SysinfoSampler;

/// The process asked about no longer exists: it exited (zombies count as exited), or its pid now
/// belongs to another process (the start time differs). Either way the worker's process is over.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("process is gone")]
pub struct Gone;

/// One reading per watched process. Implementations keep per-process state between sweeps (CPU
/// counters, open descriptors) and forget a process as soon as it is no longer asked for.
pub trait Sampler {
    /// Reads exactly `pids` (never the whole process table) and returns one result per pid, in
    /// order. CPU percentages need two sweeps: the first sweep of a process gives `cpu_percent: None`.
    fn sample(&mut self, pids: &[ProcessId]) -> Vec<(ProcessId, Result<Metrics, Gone>)>;

    /// Whether a round may be split over several calls ([`Sampler::sample_part`]).
    fn spreads(&self) -> bool {
        false
    }

    /// Reads `pids` as one of `parts` calls that together read every watched process once: what the
    /// sampler holds for a process (descriptors, the CPU baseline) is kept until it has gone unasked
    /// for `parts` calls. Only for samplers that [`Sampler::spreads`]; others read a whole sweep.
    fn sample_part(&mut self, pids: &[ProcessId], parts: u32) -> Vec<(ProcessId, Result<Metrics, Gone>)> {
        let _ = parts;
        self.sample(pids)
    }
}

/// The fastest sampler for this platform: direct `/proc` reads where `/proc` exists (Linux), `sysinfo`
/// elsewhere or when procfs is not mounted. Fails only when neither can read the host.
pub fn default_sampler() -> std::io::Result<Box<dyn Sampler + Send>> {
    match ProcSampler::new() {
        Ok(s) => Ok(Box::new(s)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read /proc directly; sampling through sysinfo");
            Ok(Box::new(SysinfoSampler::new()?))
        }
    }
}
