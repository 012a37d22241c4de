//! The Linux fast path: per-process metrics read straight from `/proc/PID/*` with descriptors kept open.
//!
//! This module owns the parsing of `/proc/PID/{stat,statm,io}` and the process identity
//! ([`process_id`], [`is_running`]). It must never scan the whole of `/proc` (that is the discovery
//! pass in [`crate::discover`]) and never report numbers for a process other than the one named by a
//! [`ProcessId`]: a pid whose start time differs is a different process and is reported [`Gone`].
//!
//! Cost model: a sweep re-reads descriptors opened the first time a pid was asked for, with
//! `pread(fd, buf, 0)`: for `stat`, `statm` and `io` that is one syscall each instead of
//! open/read/close, and an open descriptor stays bound to the original process, so a reused pid cannot
//! be read by mistake. The open-fd count is the `st_size` of `/proc/PID/fd` (Linux ≥ 6.2 reports it,
//! one `fstat`); older kernels fall back to counting the directory entries.
//!
//! RSS comes from `statm`, not from field 24 of `stat`, although both name the same counter: since
//! Linux 6.2 that counter is per-CPU, `stat` reads its approximate global part (measured here: 405
//! pages against 448 for an idle `sleep`), and recent kernels sum it exactly for `statm` and `status`.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tend_core::{Metrics, ProcessId};

use crate::{Gone, Sampler};

/// Below this window a CPU rate is mostly tick quantisation (one tick is 10 ms at 100 Hz): a sweep
/// that comes sooner reuses the previous rate and keeps the old baseline.
const MIN_CPU_WINDOW: Duration = Duration::from_millis(100);

/// Reads CPU, memory, threads, fds and disk I/O of the watched processes, one sweep at a time.
///
/// CPU percentages are rates between two sweeps: the first sweep of a process reports
/// `cpu_percent: None` (a lifetime average since the process started would mislead rules on a
/// long-running attached process), every later sweep reports the rate since the previous one.
pub struct ProcSampler {
    host: Host,
    fields: Fields,
    watched: HashMap<u32, Watched>,
    /// Descriptors kept open across sweeps; capped so the sampler never starves the rest of Tend.
    kept_fds: usize,
    fd_budget: usize,
    buf: Vec<u8>,
    sweep: u64,
}

/// Which optional files a sweep reads besides `stat` and `statm` (CPU, memory, threads), so a
/// monitoring profile that does not show disk I/O or fds does not pay for them. Measured on the
/// development VM (2 vCPUs): `stat` ≈ 4.5 µs, `statm` ≈ 1.2 µs, `io` ≈ 1.9 µs, fd count ≈ 0.7 µs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Fields {
    /// `disk_read_bytes` / `disk_write_bytes` from `/proc/PID/io`.
    pub disk_io: bool,
    /// `fds` from `/proc/PID/fd`.
    pub fds: bool,
}

impl Fields {
    pub const ALL: Fields = Fields { disk_io: true, fds: true };
    /// CPU, memory and threads only.
    pub const BASIC: Fields = Fields { disk_io: false, fds: false };
}

impl Default for Fields {
    fn default() -> Self {
        Fields::ALL
    }
}

/// What the host says once: units and totals the per-process numbers are scaled by.
#[derive(Clone, Copy, Debug)]
struct Host {
    clk_tck: u64,
    page_size: u64,
    cpus: u32,
    mem_total_bytes: u64,
    boot_time_unix_ms: u64,
    /// `fstat(/proc/PID/fd).st_size` is the number of open fds (Linux ≥ 6.2).
    fd_count_by_size: bool,
}

struct Watched {
    id: ProcessId,
    stat: ProcFile,
    statm: ProcFile,
    /// `None` once `/proc/PID/io` proved unreadable (another user's process without CAP_SYS_PTRACE).
    io: Option<ProcFile>,
    /// `None` when `/proc/PID/fd` is not ours to list.
    fd_dir: Option<ProcFile>,
    /// utime+stime (ticks) and when it was read, the baseline for the next rate.
    cpu_base: Option<(Instant, u64)>,
    cpu_percent: Option<f64>,
    seen_in_sweep: u64,
}

impl ProcSampler {
    /// A sampler that reads every metric it can ([`Fields::ALL`]).
    pub fn new() -> io::Result<Self> {
        Self::with_fields(Fields::ALL)
    }

    /// Reads the host's units and totals; fails when `/proc` is not there (not Linux, no procfs).
    pub fn with_fields(fields: Fields) -> io::Result<Self> {
        let clk_tck = sysconf(libc::_SC_CLK_TCK).unwrap_or(100);
        let page_size = sysconf(libc::_SC_PAGESIZE).unwrap_or(4096);
        let cpus = sysconf(libc::_SC_NPROCESSORS_ONLN).unwrap_or(1);
        let meminfo = std::fs::read_to_string("/proc/meminfo")?;
        let mem_total_bytes = parse_meminfo_total(&meminfo)
            .ok_or_else(|| invalid_data("/proc/meminfo has no MemTotal line"))?;
        let stat = std::fs::read_to_string("/proc/stat")?;
        let btime = parse_btime(&stat).ok_or_else(|| invalid_data("/proc/stat has no btime line"))?;
        let fd_count_by_size = std::fs::metadata("/proc/self/fd").map(|m| m.len() > 0).unwrap_or(false);
        // Keep at most half of our own descriptor limit for the sampler; the rest of Tend (sockets,
        // SQLite, pipes of spawned workers) needs the other half. Past the budget a pid is read by
        // path each sweep: slower, still correct.
        let fd_budget = crate::fd_limit::nofile_soft_limit().map(|n| (n / 2) as usize).unwrap_or(512);
        Ok(ProcSampler {
            fields,
            host: Host {
                clk_tck,
                page_size,
                cpus: u32::try_from(cpus).unwrap_or(u32::MAX),
                mem_total_bytes,
                boot_time_unix_ms: btime * 1000,
                fd_count_by_size,
            },
            watched: HashMap::new(),
            kept_fds: 0,
            fd_budget,
            buf: vec![0; 1024],
            sweep: 0,
        })
    }

    /// Online CPUs when the sampler was created (the divisor of `cpu_host_percent`).
    pub fn cpus(&self) -> u32 {
        self.host.cpus
    }

    /// Total memory of the host (the divisor of `memory_percent`).
    pub fn memory_total_bytes(&self) -> u64 {
        self.host.mem_total_bytes
    }

    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of `ProcessId::start_ticks`.
    pub fn clock_ticks_per_sec(&self) -> u64 {
        self.host.clk_tck
    }

    /// When the process started, in milliseconds since the Unix epoch (boot time has 1 s precision).
    pub fn start_time_unix_ms(&self, id: ProcessId) -> u64 {
        self.host.boot_time_unix_ms + id.start_ticks.saturating_mul(1000) / self.host.clk_tck
    }

    /// Seconds since the process started, from `CLOCK_BOOTTIME` (the clock `start_ticks` counts in),
    /// so a suspended laptop does not shorten it. Does not check that the process still runs.
    pub fn uptime_secs(&self, id: ProcessId) -> Option<f64> {
        let now = boottime()?.as_secs_f64();
        Some((now - id.start_ticks as f64 / self.host.clk_tck as f64).max(0.0))
    }

    /// How many processes currently have descriptors (or a path fallback) held by the sampler.
    pub fn watched(&self) -> usize {
        self.watched.len()
    }

    /// Reads one sweep; see [`Sampler::sample`].
    pub fn sample(&mut self, pids: &[ProcessId]) -> Vec<(ProcessId, Result<Metrics, Gone>)> {
        self.sample_part(pids, 1)
    }

    /// Reads one part of a round of `parts` calls; see [`Sampler::sample_part`].
    pub fn sample_part(&mut self, pids: &[ProcessId], parts: u32) -> Vec<(ProcessId, Result<Metrics, Gone>)> {
        self.sweep += 1;
        let sweep = self.sweep;
        let mut out = Vec::with_capacity(pids.len());
        for &id in pids {
            let result = self.sample_one(id, sweep);
            out.push((id, result));
        }
        // Forget processes nobody asked for in a round: their descriptors close here.
        let mut released = 0;
        let round = u64::from(parts.max(1));
        self.watched.retain(|_, w| {
            let keep = sweep - w.seen_in_sweep < round;
            if !keep {
                released += w.kept_fds();
            }
            keep
        });
        self.kept_fds -= released;
        out
    }

    fn sample_one(&mut self, id: ProcessId, sweep: u64) -> Result<Metrics, Gone> {
        // A different process under a known pid: drop the old descriptors first.
        if self.watched.get(&id.pid).is_some_and(|w| w.id != id) {
            self.forget(id.pid);
        }
        if !self.watched.contains_key(&id.pid) {
            let watched = self.open(id)?;
            self.kept_fds += watched.kept_fds();
            self.watched.insert(id.pid, watched);
        }
        let Self { host, watched, buf, kept_fds, .. } = self;
        let Some(w) = watched.get_mut(&id.pid) else { return Err(Gone) };
        w.seen_in_sweep = sweep;
        let held = w.kept_fds();
        let result = w.read(host, buf);
        // A read may drop a descriptor that proved unreadable (io, fd).
        *kept_fds -= held - w.kept_fds();
        if result.is_err() {
            self.forget(id.pid);
        }
        result
    }

    fn forget(&mut self, pid: u32) {
        if let Some(w) = self.watched.remove(&pid) {
            self.kept_fds -= w.kept_fds();
        }
    }

    fn open(&mut self, id: ProcessId) -> Result<Watched, Gone> {
        let dir = PathBuf::from(format!("/proc/{}", id.pid));
        let keep = |kept: usize| kept < self.fd_budget;
        let mut kept = self.kept_fds;
        let mut open = |name: &str| -> io::Result<ProcFile> {
            let f = ProcFile::open(dir.join(name), keep(kept))?;
            kept += usize::from(f.file.is_some());
            Ok(f)
        };
        // Whether this is still the process named by `id` is checked on every read (start_ticks),
        // the first one included. io and fd may be refused for another user's process: not an error.
        let stat = open("stat").map_err(|_| Gone)?;
        let statm = open("statm").map_err(|_| Gone)?;
        let io = if self.fields.disk_io { open("io").ok() } else { None };
        let fd_dir = if self.fields.fds { open("fd").ok() } else { None };
        Ok(Watched { id, stat, statm, io, fd_dir, cpu_base: None, cpu_percent: None, seen_in_sweep: 0 })
    }
}

impl Sampler for ProcSampler {
    fn sample(&mut self, pids: &[ProcessId]) -> Vec<(ProcessId, Result<Metrics, Gone>)> {
        ProcSampler::sample(self, pids)
    }

    fn spreads(&self) -> bool {
        true
    }

    fn sample_part(&mut self, pids: &[ProcessId], parts: u32) -> Vec<(ProcessId, Result<Metrics, Gone>)> {
        ProcSampler::sample_part(self, pids, parts)
    }
}

impl Watched {
    fn kept_fds(&self) -> usize {
        [Some(&self.stat), Some(&self.statm), self.io.as_ref(), self.fd_dir.as_ref()]
            .into_iter()
            .flatten()
            .filter(|f| f.file.is_some())
            .count()
    }

    fn read(&mut self, host: &Host, buf: &mut Vec<u8>) -> Result<Metrics, Gone> {
        let now = Instant::now();
        let n = self.stat.read(buf).map_err(|_| Gone)?;
        let stat = parse_stat(&buf[..n]).ok_or(Gone)?;
        if stat.start_ticks != self.id.start_ticks || stat.has_exited() {
            return Err(Gone);
        }
        let cpu_ticks = stat.utime + stat.stime;
        self.update_cpu(host, now, cpu_ticks);
        let threads = stat.threads;
        let mut m = Metrics {
            cpu_percent: self.cpu_percent,
            cpu_host_percent: self.cpu_percent.map(|p| p / f64::from(host.cpus)),
            threads: Some(threads),
            ..Metrics::default()
        };
        // A zombie leader (threads run on) has handed back its memory map: statm would read 0,
        // which looks like "no memory" rather than "unknown". A read failure means the process died
        // after its stat was read: the next sweep says Gone.
        if stat.state != b'Z'
            && let Ok(n) = self.statm.read(buf)
            && let Some(pages) = parse_statm_resident(&buf[..n])
        {
            let rss = pages * host.page_size;
            m.memory_bytes = Some(rss);
            m.memory_percent =
                (host.mem_total_bytes > 0).then(|| rss as f64 * 100.0 / host.mem_total_bytes as f64);
        }
        if let Some(io) = &self.io {
            match io.read(buf) {
                Ok(n) => {
                    let (r, w) = parse_io(&buf[..n]);
                    m.disk_read_bytes = r;
                    m.disk_write_bytes = w;
                }
                // Permission is decided per process and does not come back; a vanished process
                // is caught by the stat read of the next sweep.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => self.io = None,
                Err(_) => {}
            }
        }
        if let Some(fd_dir) = &self.fd_dir {
            match fd_dir.count_fds(host.fd_count_by_size) {
                Ok(count) => m.fds = Some(count),
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => self.fd_dir = None,
                Err(_) => {}
            }
        }
        Ok(m)
    }

    fn update_cpu(&mut self, host: &Host, now: Instant, ticks: u64) {
        match self.cpu_base {
            None => self.cpu_base = Some((now, ticks)),
            Some((then, base)) => {
                let elapsed = now.duration_since(then);
                if elapsed < MIN_CPU_WINDOW {
                    return;
                }
                let used = ticks.saturating_sub(base) as f64 / host.clk_tck as f64;
                // Tick quantisation can overshoot by a tick; more than every core busy is impossible.
                let pct = (used / elapsed.as_secs_f64() * 100.0).min(f64::from(host.cpus) * 100.0);
                self.cpu_percent = Some(pct);
                self.cpu_base = Some((now, ticks));
            }
        }
    }
}

/// A `/proc` file read again each sweep: through a descriptor kept open, or by path when the
/// descriptor budget is spent.
struct ProcFile {
    path: PathBuf,
    file: Option<File>,
}

impl ProcFile {
    fn open(path: PathBuf, keep: bool) -> io::Result<Self> {
        // Open once even when not keeping it: this is where "not permitted" and "gone" show up.
        let file = File::open(&path)?;
        Ok(ProcFile { path, file: keep.then_some(file) })
    }

    /// Reads the whole file into `buf` from offset 0 and returns its length.
    fn read(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match &self.file {
            Some(f) => pread_all(f, buf),
            None => pread_all(&File::open(&self.path)?, buf),
        }
    }

    fn count_fds(&self, by_size: bool) -> io::Result<u32> {
        if by_size {
            let size = match &self.file {
                Some(f) => f.metadata()?.len(),
                None => std::fs::metadata(&self.path)?.len(),
            };
            // 0 is also what older kernels say; only then is the directory listed.
            if size > 0 {
                return Ok(u32::try_from(size).unwrap_or(u32::MAX));
            }
        }
        let n = std::fs::read_dir(&self.path)?.count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

/// `pread` from offset 0 until a short read: procfs seq files hand out everything that fits the
/// buffer in one call, so a short read is the end. The buffer grows for unusually long contents.
fn pread_all(f: &File, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.len() < 1024 {
        buf.resize(1024, 0);
    }
    let mut filled = 0;
    loop {
        let n = f.read_at(&mut buf[filled..], filled as u64)?;
        filled += n;
        if n == 0 || filled < buf.len() {
            return Ok(filled);
        }
        let grown = buf.len() * 2;
        buf.resize(grown, 0);
    }
}

/// The fields of `/proc/PID/stat` Tend uses (numbers are `proc(5)` field numbers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stat<'a> {
    /// (2) the command name, up to 15 bytes, may hold spaces and parentheses.
    pub comm: &'a [u8],
    /// (3) R, S, D, Z, T, t, X, I …
    pub state: u8,
    /// (4) parent process.
    pub ppid: u32,
    /// (5) process group.
    pub pgrp: u32,
    /// (6) session.
    pub session: u32,
    /// (9) kernel flags; `PF_KTHREAD` marks kernel threads.
    pub flags: u64,
    /// (14, 15) CPU time in clock ticks, all threads together.
    pub utime: u64,
    pub stime: u64,
    /// (20)
    pub threads: u32,
    /// (22) clock ticks after boot.
    pub start_ticks: u64,
}

pub(crate) const PF_KTHREAD: u64 = 0x0020_0000;

/// Parses one `/proc/PID/stat` line. The command name is everything between the first `(` and the
/// LAST `)`: a process can name itself `a) R 1 (b`, so splitting on spaces or on the first `)` is wrong.
pub(crate) fn parse_stat(line: &[u8]) -> Option<Stat<'_>> {
    let open = line.iter().position(|&b| b == b'(')?;
    let close = line.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = &line[open + 1..close];
    // One forward pass from field 3: `nth(k)` skips k fields; each comment names the field taken.
    let mut rest = line[close + 1..].split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty());
    let state = *rest.next()?.first()?; // 3
    let ppid = parse_u64(rest.next()?)?; // 4
    let pgrp = parse_u64(rest.next()?)?; // 5
    let session = parse_u64(rest.next()?)?; // 6
    let flags = parse_u64(rest.nth(2)?)?; // 9
    let utime = parse_u64(rest.nth(4)?)?; // 14
    let stime = parse_u64(rest.next()?)?; // 15
    let threads = parse_u64(rest.nth(4)?)?; // 20
    let start_ticks = parse_u64(rest.nth(1)?)?; // 22
    Some(Stat {
        comm,
        state,
        ppid: u32::try_from(ppid).ok()?,
        pgrp: u32::try_from(pgrp).ok()?,
        session: u32::try_from(session).ok()?,
        flags,
        utime,
        stime,
        threads: u32::try_from(threads).ok()?,
        start_ticks,
    })
}

impl Stat<'_> {
    /// Dead (`X`) or a zombie (`Z`): exited, numbers meaningless, nothing left to signal. Except a
    /// zombie *leader* with live threads (it called `pthread_exit`): its `stat` reads `Z` while the
    /// process runs on, which shows as more than one thread.
    pub(crate) fn has_exited(&self) -> bool {
        matches!(self.state, b'X' | b'x') || (self.state == b'Z' && self.threads <= 1)
    }
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d < 10)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// The second field of `/proc/PID/statm`: resident pages.
fn parse_statm_resident(s: &[u8]) -> Option<u64> {
    parse_u64(s.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty()).nth(1)?)
}

/// `read_bytes` and `write_bytes` of `/proc/PID/io`: bytes the process caused to be fetched from or
/// sent to storage (not `rchar`/`wchar`, which count pipes and sockets too).
fn parse_io(s: &[u8]) -> (Option<u64>, Option<u64>) {
    let (mut read, mut write) = (None, None);
    for line in s.split(|&b| b == b'\n') {
        if let Some(v) = line.strip_prefix(b"read_bytes:") {
            read = parse_u64(v.trim_ascii());
        } else if let Some(v) = line.strip_prefix(b"write_bytes:") {
            write = parse_u64(v.trim_ascii());
        }
    }
    (read, write)
}

fn parse_meminfo_total(s: &str) -> Option<u64> {
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn parse_btime(s: &str) -> Option<u64> {
    s.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

fn invalid_data(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// Reads and parses `/proc/PID/stat` once (open, read, close): for identity checks, not for sweeps.
pub(crate) fn read_stat_with<T>(pid: u32, f: impl FnOnce(&Stat<'_>) -> T) -> io::Result<T> {
    let bytes = std::fs::read(format!("/proc/{pid}/stat"))?;
    let stat = parse_stat(&bytes).ok_or_else(|| invalid_data("unparsable /proc/PID/stat"))?;
    Ok(f(&stat))
}

/// The identity of the process that has `pid` now. `NotFound` when no process has it.
/// A zombie still has an identity (it is the same process until reaped); see [`is_running`].
pub fn process_id(pid: u32) -> io::Result<ProcessId> {
    read_stat_with(pid, |s| ProcessId { pid, start_ticks: s.start_ticks })
}

/// True while the process named by `id` exists and has not exited: false once it is a zombie, gone,
/// or its pid belongs to another process.
pub fn is_running(id: ProcessId) -> bool {
    read_stat_with(id.pid, |s| s.start_ticks == id.start_ticks && !s.has_exited()).unwrap_or(false)
}

/// A positive `sysconf` value; `None` for unknown selectors, errors and 0.
pub(crate) fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf takes an integer selector and touches no memory of ours; an unknown selector
    // returns -1, which is mapped to None.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|&v| v > 0)
}

/// Time since boot including suspend: the clock `/proc/PID/stat` start times count in.
fn boottime() -> Option<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one `timespec` into the struct we pass by exclusive reference.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return None;
    }
    Some(Duration::new(u64::try_from(ts.tv_sec).ok()?, u32::try_from(ts.tv_nsec).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAT: &[u8] =
        b"4213 (cat) R 4166 4166 2344 0 -1 4194304 98 0 0 0 7 3 0 0 20 0 1 0 84426 3133440 382 \
18446744073709551615 94769494736896 94769494756777 140730167076720 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn parses_a_plain_stat_line() {
        let s = parse_stat(CAT).unwrap();
        assert_eq!(s.comm, b"cat");
        assert_eq!(s.state, b'R');
        assert_eq!((s.ppid, s.pgrp, s.session), (4166, 4166, 2344));
        assert_eq!(s.flags, 4194304);
        assert_eq!((s.utime, s.stime), (7, 3));
        assert_eq!(s.threads, 1);
        assert_eq!(s.start_ticks, 84426);
    }

    #[test]
    fn comm_with_spaces_and_parentheses_splits_at_the_last_paren() {
        let line = b"77 (a) R 1 (b) c) S 1 77 77 0 -1 0 0 0 0 0 11 22 0 0 20 0 3 0 555 100 9 0\n";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.comm, b"a) R 1 (b) c");
        assert_eq!(s.state, b'S');
        assert_eq!((s.ppid, s.pgrp, s.session), (1, 77, 77));
        assert_eq!((s.utime, s.stime), (11, 22));
        assert_eq!(s.threads, 3);
        assert_eq!(s.start_ticks, 555);
    }

    #[test]
    fn truncated_or_garbled_lines_do_not_parse() {
        assert_eq!(parse_stat(b""), None);
        assert_eq!(parse_stat(b"1 (x) S 1 1 1 0 -1 0 0 0 0 0 1"), None);
        assert_eq!(parse_stat(b"1 (x) S 1 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0"), None);
        assert_eq!(parse_stat(b"1 )x( S 1 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 1 1"), None);
        assert_eq!(parse_stat(b"1 (x) S 1 1 1 0 -1 0 0 0 0 0 1 -2 0 0 20 0 1 0 5 1 1"), None);
    }

    #[test]
    fn zombies_have_exited_unless_threads_live_on() {
        let line = |state: &str, threads: u32| {
            format!("9 (w) {state} 1 9 9 0 -1 0 0 0 0 0 5 5 0 0 20 0 {threads} 0 77 100 9 0")
        };
        let exited = |state, threads| parse_stat(line(state, threads).as_bytes()).unwrap().has_exited();
        assert!(exited("Z", 1) && exited("X", 1) && exited("x", 0));
        assert!(!exited("S", 1) && !exited("R", 4) && !exited("D", 1));
        assert!(!exited("Z", 3), "a zombie leader whose threads run on is a live process");
    }

    #[test]
    fn io_file_yields_storage_bytes_only() {
        let io = b"rchar: 100\nwchar: 200\nsyscr: 3\nsyscw: 4\nread_bytes: 4096\nwrite_bytes: 8192\n\
cancelled_write_bytes: 0\n";
        assert_eq!(parse_io(io), (Some(4096), Some(8192)));
        assert_eq!(parse_io(b"rchar: 1\n"), (None, None));
    }

    #[test]
    fn host_files_parse() {
        assert_eq!(
            parse_meminfo_total("MemTotal:       16334572 kB\nMemFree: 1 kB\n"),
            Some(16334572 * 1024)
        );
        assert_eq!(parse_btime("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"), Some(1_700_000_000));
        assert_eq!(parse_btime("cpu 1\n"), None);
    }

    #[test]
    fn statm_resident_is_the_second_field() {
        assert_eq!(parse_statm_resident(b"2760 448 406 3 0 84 0\n"), Some(448));
        assert_eq!(parse_statm_resident(b"2760\n"), None);
    }

    #[test]
    fn own_identity_is_running_and_a_different_start_is_not() {
        let me = std::process::id();
        let id = process_id(me).unwrap();
        assert!(is_running(id));
        assert!(!is_running(ProcessId { pid: me, start_ticks: id.start_ticks + 1 }));
        assert_eq!(process_id(u32::MAX).unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
