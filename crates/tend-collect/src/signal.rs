//! Stopping processes: identity-checked signals, and SIGTERM → grace → SIGKILL.
//!
//! This module owns every `kill` Tend sends. It must never signal a process it cannot prove is the
//! one named by the [`ProcessId`]: a pid that now belongs to another process (different start time)
//! is refused, never signalled. On Linux ≥ 5.3 a single process is signalled through a pidfd opened
//! *before* the identity check, which makes check-then-signal free of races.
//!
//! Process groups: spawned workers lead their own group (pgid = their pid), so signalling the group
//! reaches the worker's own children too. The group is signalled as a whole (`kill(-pgid)`) only while
//! its leader is provably there — alive, or a zombie we have not reaped yet — because the leader pins
//! the number: a pid is not reused while its process, or a process group of that number, exists (POSIX
//! "process ID reuse"; Linux frees a pid number only when no task uses it as pid, group or session id).
//! What is left of a group after its leader exited is drained with [`drain_group`], which lists the
//! members in `/proc` and signals each one by identity (pid *and* start time); the supervisor runs it
//! before it reaps the leader, so the group id cannot change owner while it is drained.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::Duration;

use tend_core::ProcessId;
use tokio::time::Instant;

use crate::proc_stat::{is_running, read_stat_with};

/// How often an attached process (not our child, so no exit notification) is checked for exit.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// After SIGKILL, how long to wait for the exit before reporting [`Termination::Stuck`] (a process
/// in uninterruptible sleep cannot die until its I/O returns).
pub const KILL_WAIT: Duration = Duration::from_secs(5);

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    Term,
    Kill,
    Int,
    Hup,
}

impl Signal {
    pub fn number(self) -> i32 {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Int => libc::SIGINT,
            Signal::Hup => libc::SIGHUP,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
            Signal::Int => "SIGINT",
            Signal::Hup => "SIGHUP",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The conventional name of a signal number on this platform (`9` → `SIGKILL`).
pub fn signal_name(sig: i32) -> Option<&'static str> {
    const NAMES: &[(i32, &str)] = &[
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGSYS, "SIGSYS"),
    ];
    NAMES.iter().find(|(n, _)| *n == sig).map(|(_, name)| *name)
}

/// Sends `sig` to the process `id`. `Ok(false)` when it has exited (zombies included) or its pid now
/// belongs to another process: nothing was signalled.
pub fn send(id: ProcessId, sig: Signal) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    match pidfd::open(id.pid) {
        Ok(fd) => {
            // The pidfd pins whichever process held the pid when it was opened. If that process is
            // ours and still alive now, it was ours then too (it started before we were handed `id`).
            if !is_ours_and_alive(id)? {
                return Ok(false);
            }
            return match pidfd::send_signal(&fd, sig.number()) {
                Ok(()) => Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
                Err(e) => Err(e),
            };
        }
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(false),
        // Kernels before 5.3: fall through to check-then-kill (a window of microseconds).
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
        Err(e) => return Err(e),
    }
    if !is_ours_and_alive(id)? {
        return Ok(false);
    }
    kill(pid_t(id.pid)?, sig.number())
}

/// Sends `sig` to the process group led by `id` (the worker and every descendant that stayed in its
/// group). `Ok(false)` when no process received it. Refused (`Ok(false)`) when the leader is gone
/// (reaped) or its pid now belongs to another process: without the leader the number is not pinned,
/// and what is left of the group is [`drain_group`]'s job. A zombie leader still pins it. An error when
/// `id` runs but leads no group.
pub fn send_group(id: ProcessId, sig: Signal) -> io::Result<bool> {
    let pgid = pid_t(id.pid)?;
    match read_stat_with(id.pid, |s| (s.start_ticks == id.start_ticks, s.pgrp)) {
        Ok((false, _)) => Ok(false),
        Ok((true, pgrp)) if pgrp != id.pid => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("process {id} does not lead a process group (its group is {pgrp})"),
        )),
        Ok((true, _)) => kill(-pgid, sig.number()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The members of process group `pgid` that have not exited (zombies left out), from one pass over
/// `/proc`. Processes that vanish mid-scan are skipped.
pub fn group_members(pgid: u32) -> io::Result<Vec<ProcessId>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Ok(Some(id)) = read_stat_with(pid, |s| {
            (s.pgrp == pgid && !s.has_exited()).then_some(ProcessId { pid, start_ticks: s.start_ticks })
        }) {
            out.push(id);
        }
    }
    Ok(out)
}

/// How a [`drain_group`] ended; the counts are processes of the group other than the leader.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Drain {
    /// Nobody was left in the group.
    Empty,
    /// This many were left; SIGTERM ended them within the grace period.
    Terminated(usize),
    /// This many were left; some outlived the grace period and SIGKILL ended them.
    Killed(usize),
    /// This many still run after SIGKILL and [`KILL_WAIT`] (uninterruptible sleep).
    Stuck(usize),
}

impl fmt::Display for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drain::Empty => f.write_str("nothing left in the group"),
            Drain::Terminated(n) => write!(f, "{n} left in the group, stopped by SIGTERM"),
            Drain::Killed(n) => write!(f, "{n} left in the group, killed by SIGKILL after the grace period"),
            Drain::Stuck(n) => write!(f, "{n} still in the group after SIGKILL"),
        }
    }
}

/// After the leader `leader` exited: SIGTERM to every process still in its group, up to `grace` for
/// them to go, then SIGKILL, and up to [`KILL_WAIT`] more. Members are listed in `/proc` and signalled
/// one by one by identity, again each round, so children forked meanwhile are caught too.
///
/// The group id is the leader's pid. Call this before reaping the leader (its zombie pins the number,
/// so no unrelated process can start a group of that number meanwhile); for a leader that is not our
/// child (an orphan of a killed Tend), the members left pin it, and the one window left is a group that
/// empties and whose number is reused by a new group leader within one poll.
pub async fn drain_group(leader: ProcessId, grace: Duration) -> io::Result<Drain> {
    let deadline = Instant::now() + grace;
    let mut members = others(leader).await?;
    let left = members.len();
    if left == 0 {
        return Ok(Drain::Empty);
    }
    let mut termed = std::collections::HashSet::new();
    loop {
        for m in &members {
            if termed.insert(*m) {
                signal_member(*m, Signal::Term);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
        members = others(leader).await?;
        if members.is_empty() {
            return Ok(Drain::Terminated(left));
        }
    }
    let kill_deadline = Instant::now() + KILL_WAIT;
    tracing::debug!(process = %leader, left = members.len(), "group outlived its grace period; SIGKILL");
    loop {
        for m in &members {
            signal_member(*m, Signal::Kill);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
        members = others(leader).await?;
        if members.is_empty() {
            return Ok(Drain::Killed(left));
        }
        if Instant::now() >= kill_deadline {
            return Ok(Drain::Stuck(members.len()));
        }
    }
}

/// The group's members other than the leader itself. A scan of all of /proc: on a blocking thread, so
/// that a thousand workers drained at once do not stall the runtime's workers.
async fn others(leader: ProcessId) -> io::Result<Vec<ProcessId>> {
    let scan = move || Ok(group_members(leader.pid)?.into_iter().filter(|m| *m != leader).collect());
    tokio::task::spawn_blocking(scan).await.map_err(io::Error::other)?
}

fn signal_member(m: ProcessId, sig: Signal) {
    if let Err(e) = send(m, sig) {
        tracing::warn!(process = %m, signal = %sig, error = %e, "cannot signal a process of a worker's group");
    }
}

/// Whom [`terminate`] signals.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The process alone: for attached processes, whose group is not Tend's to stop.
    Process,
    /// The process group the process leads: for spawned workers.
    Group,
}

/// How a [`terminate`] ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Termination {
    /// Nothing was running any more: no signal was delivered.
    AlreadyGone,
    /// Exited within the grace period after SIGTERM.
    Terminated,
    /// Still running when the grace period ended; SIGKILL ended it.
    Killed,
    /// Survived SIGKILL for [`KILL_WAIT`] (uninterruptible sleep); it will die when its I/O returns.
    Stuck,
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Termination::AlreadyGone => "already gone",
            Termination::Terminated => "stopped by SIGTERM",
            Termination::Killed => "killed by SIGKILL after the grace period",
            Termination::Stuck => "still running after SIGKILL",
        })
    }
}

/// SIGTERM, then up to `grace` for `exited` to complete, then SIGKILL. `exited` resolves when the
/// process has exited: for a spawned worker `async { child.wait().await; }` (which also reaps it), for
/// an attached process [`gone`]`(id)`.
///
/// With [`Target::Group`] the whole group is signalled while its leader is there; members that outlive
/// the leader are left to [`drain_group`], which the caller runs where the group id is pinned (the
/// supervisor, before it reaps the leader). The result describes the leader.
pub async fn terminate(
    id: ProcessId,
    target: Target,
    grace: Duration,
    exited: impl Future<Output = ()>,
) -> io::Result<Termination> {
    let signal = |sig| match target {
        Target::Process => send(id, sig),
        Target::Group => send_group(id, sig),
    };
    let deadline = Instant::now() + grace;
    let mut exited = pin!(exited);
    if !signal(Signal::Term)? {
        return Ok(Termination::AlreadyGone);
    }
    if tokio::time::timeout_at(deadline, &mut exited).await.is_ok() {
        return Ok(Termination::Terminated);
    }
    tracing::debug!(process = %id, ?grace, "grace period over; sending SIGKILL");
    signal(Signal::Kill)?;
    match tokio::time::timeout(KILL_WAIT, &mut exited).await {
        Ok(()) => Ok(Termination::Killed),
        Err(_) => Ok(Termination::Stuck),
    }
}

/// Resolves once the process `id` has exited (or its pid belongs to another process), checking every
/// [`POLL_INTERVAL`]. For processes that are not our children, which give no exit notification.
pub async fn gone(id: ProcessId) {
    while is_running(id) {
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// True when `id` is the process holding its pid and it has not exited. Unreadable `/proc` entries
/// other than "no such process" are errors: better to fail loudly than to signal on a guess.
fn is_ours_and_alive(id: ProcessId) -> io::Result<bool> {
    match read_stat_with(id.pid, |s| s.start_ticks == id.start_ticks && !s.has_exited()) {
        Ok(ours) => Ok(ours),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) fn pid_t(pid: u32) -> io::Result<libc::pid_t> {
    match libc::pid_t::try_from(pid) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid pid {pid}"))),
    }
}

/// `kill(2)`: `Ok(false)` for ESRCH (nobody to signal). `pid` may be negative (a group); never 0 or -1,
/// which would signal our own group or every process we may signal.
fn kill(pid: libc::pid_t, sig: i32) -> io::Result<bool> {
    if pid == 0 || pid == -1 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "refusing kill(0) / kill(-1)"));
    }
    // SAFETY: kill takes two integers and touches no memory of ours; 0 and -1 are excluded above.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) { Ok(false) } else { Err(e) }
}

#[cfg(target_os = "linux")]
pub(crate) mod pidfd {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// `pidfd_open(2)`: a descriptor that refers to this one process, whatever happens to its pid.
    pub fn open(pid: u32) -> io::Result<OwnedFd> {
        let pid = super::pid_t(pid)?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; no pointers.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(|_| io::Error::other("pidfd out of range"))?;
        // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// `pidfd_send_signal(2)` with no siginfo.
    pub fn send_signal(fd: &OwnedFd, sig: i32) -> io::Result<()> {
        // SAFETY: the descriptor is open for the duration of the call (borrowed), the siginfo
        // pointer is null (allowed: the kernel fills in a kill()-like siginfo), flags are 0.
        let rc = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), sig, std::ptr::null::<()>(), 0)
        };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_numbers_and_names() {
        assert_eq!(signal_name(9), Some("SIGKILL"));
        assert_eq!(signal_name(Signal::Term.number()), Some("SIGTERM"));
        assert_eq!(signal_name(1000), None);
        assert_eq!(Signal::Hup.to_string(), "SIGHUP");
    }

    #[test]
    fn kill_refuses_broadcast_pids() {
        assert!(kill(0, 0).is_err());
        assert!(kill(-1, 0).is_err());
        assert!(pid_t(0).is_err());
    }

    #[test]
    fn identity_check_refuses_a_different_start_time() {
        let me = crate::process_id(std::process::id()).unwrap();
        assert!(is_ours_and_alive(me).unwrap());
        let stranger = ProcessId { pid: me.pid, start_ticks: me.start_ticks + 1 };
        assert!(!is_ours_and_alive(stranger).unwrap());
        assert!(!send(stranger, Signal::Term).unwrap());
    }
}
