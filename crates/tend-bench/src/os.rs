//! What the bench reads from the host: the machine it runs on, a process's CPU time and memory from
//! `/proc`, wall-clock time, the open-files limit, and the guard that makes every child die with the
//! bench. Nothing here is measured; these are the bench's instruments.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

/// Milliseconds since the Unix epoch: the clock Tend stamps its events with, so a reaction time can
/// be computed across the two processes.
#[allow(clippy::disallowed_methods)] // the bench is the outside observer: wall time is what it measures
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Wall time with microseconds, for crossing times compared with events.
#[allow(clippy::disallowed_methods)] // as above
pub fn wall_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The pause between two polls or samples of the bench itself (never inside Tend).
#[allow(clippy::disallowed_methods)] // a benchmark paces itself; the rule is for Tend's logic
pub fn pause(d: Duration) {
    std::thread::sleep(d);
}

pub fn clock_ticks() -> u64 {
    sysconf(libc::_SC_CLK_TCK).unwrap_or(100)
}

pub fn page_size() -> u64 {
    sysconf(libc::_SC_PAGESIZE).unwrap_or(4096)
}

pub fn cpus() -> u64 {
    sysconf(libc::_SC_NPROCESSORS_ONLN).unwrap_or(1)
}

#[allow(unsafe_code)]
fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf takes an integer selector and touches no memory of ours.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|v| *v > 0)
}

/// utime + stime of a whole process (all threads, dead ones included), in clock ticks.
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
    // Fields after the command name start at field 3 (state); utime and stime are fields 14 and 15.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    match (field(14), field(15)) {
        (Some(u), Some(s)) => Ok(u + s),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/PID/stat")),
    }
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn status_bytes(pid: u32, key: &str) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no {key} in status")))
}

/// Resident bytes from `/proc/PID/statm` (exact, unlike `stat`'s field since Linux 6.2).
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let statm = fs::read_to_string(format!("/proc/{pid}/statm"))?;
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .map(|pages| pages * page_size())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable statm"))
}

/// Open file descriptors of a process (entries of `/proc/PID/fd`).
pub fn fd_count(pid: u32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Threads of a process (`Threads:` of `/proc/PID/status`).
pub fn thread_count(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:")?.trim().parse::<u64>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Threads in status"))
}

/// Bytes of the regular files in `dir` and its subdirectories (0 when it does not exist yet): a
/// SQLite database with its `-wal` and `-shm` files, as they are on disk.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// The 1-minute load average.
pub fn load1() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Processes on the host right now (numeric entries of `/proc`).
pub fn process_count() -> usize {
    fs::read_dir("/proc")
        .map(|d| {
            d.flatten().filter(|e| e.file_name().to_str().is_some_and(|n| n.parse::<u32>().is_ok())).count()
        })
        .unwrap_or(0)
}

/// Raises the soft open-files limit to the hard one (1000 watched processes keep up to 4000
/// descriptors open in one sampler) and returns the new soft limit.
#[allow(unsafe_code)]
pub fn raise_nofile() -> anyhow::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct we pass by exclusive reference.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the struct we pass; raising soft up to hard needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error()).context("setrlimit(RLIMIT_NOFILE)");
        }
    }
    Ok(lim.rlim_cur)
}

/// Makes the child receive `signal` when the bench dies, so nothing it started outlives it even when
/// it is killed itself (Ctrl-C in `make bench`, a CI timeout).
#[allow(unsafe_code)]
pub fn die_with_bench(cmd: &mut Command, signal: libc::c_int) {
    // SAFETY: the closure runs between fork and exec and calls only prctl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[allow(unsafe_code)]
pub fn kill(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a pid the bench started (or learned from Tend with its start time checked);
    // a stale pid yields ESRCH, which is fine.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

#[allow(unsafe_code)]
pub fn kill_group(pgid: u32, signal: libc::c_int) {
    // SAFETY: as `kill`, for a process group the bench created.
    unsafe {
        libc::killpg(pgid as libc::pid_t, signal);
    }
}

/// The machine the numbers come from, for the report's header.
#[derive(Clone, Debug)]
pub struct Machine {
    pub cores: u64,
    pub model: String,
    pub kernel: String,
    pub memory_gib: f64,
    pub date: String,
    pub commit: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_owned()))
            .unwrap_or_else(|| "unknown".into());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        let memory_gib = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
        Machine {
            cores: cpus(),
            model,
            kernel,
            memory_gib,
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "unknown".into()),
            commit: command_line("git", &["rev-parse", "--short", "HEAD"])
                .unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// The first line a short command prints, if it runs.
fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let line = String::from_utf8_lossy(&out.stdout).lines().next()?.trim().to_owned();
    (out.status.success() && !line.is_empty()).then_some(line)
}
