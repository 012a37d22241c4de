//! Adopted processes: Tend as a child subreaper, so that what a worker leaves behind comes back to it.
//!
//! With `PR_SET_CHILD_SUBREAPER` (Linux ≥ 3.4), a process whose parent dies is re-parented to Tend
//! instead of to init: the children of a worker that exited, and a worker's daemon that left the
//! worker's process group (`setsid`, double fork). This module owns finding them, reaping them and
//! naming the escaped ones. It must never reap a child it did not adopt: the spawned workers are
//! tokio's to reap (their exit status is the worker's), so there is no `waitpid(-1)` here — every child
//! is classified under the registry's lock and only adopted ones are reaped, each by its own pid.
//!
//! The registry is the set of worker leaders [`crate::spawn`] started and has not reaped yet. A child
//! of Tend is *adopted* when it is not such a leader and is not in Tend's own process group (helpers
//! Tend runs itself stay in its group). An adopted child in the group of a registered leader is a
//! leftover the supervisor is draining; any other live adopted child whose environment names a worker
//! (`TEND_WORKER_ID`) has *escaped* its worker's group. Adopted processes nothing ties to a worker are
//! reaped when they exit and otherwise never touched.

use std::collections::HashSet;
use std::io;
use std::sync::{Mutex, MutexGuard};

use tend_core::ProcessId;

use crate::proc_stat::read_stat_with;
use crate::signal::pid_t;

static LEADERS: Mutex<Option<HashSet<ProcessId>>> = Mutex::new(None);

/// The registry, locked. Held by [`crate::spawn`] across fork/exec and registration, and by
/// [`Reaper::pass`] across classification and reaping, so a worker that was just started can never be
/// taken for an adopted child.
pub(crate) fn leaders() -> MutexGuard<'static, Option<HashSet<ProcessId>>> {
    LEADERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn register(guard: &mut MutexGuard<'static, Option<HashSet<ProcessId>>>, id: ProcessId) {
    guard.get_or_insert_with(HashSet::new).insert(id);
}

/// Called once the leader is reaped (its group drained before).
pub(crate) fn unregister(id: ProcessId) {
    if let Some(set) = leaders().as_mut() {
        set.remove(&id);
    }
}

/// Makes this process a child subreaper. `Ok(false)` where the platform has no such thing.
pub fn become_subreaper() -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory of ours.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(true)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(false)
}

/// A live process that left its worker's process group and was re-parented to Tend. Only processes
/// whose environment names a worker (`TEND_WORKER_ID`, inherited from the worker) count: an adopted
/// process nothing ties to a worker is reaped when it exits and otherwise left alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escaped {
    pub id: ProcessId,
    /// Whether it leads its own process group (then its group is stopped with it).
    pub leads_group: bool,
    /// `TEND_WORKER_ID` and `TEND_INCARNATION` from its environment: the worker whose descendant it
    /// is (the environment is inherited unless the program cleared it).
    pub worker: String,
    pub incarnation: Option<u32>,
    /// The kernel's command name.
    pub name: String,
}

/// Tracks adopted children across passes: which escaped ones were reported, which still run.
#[derive(Debug, Default)]
pub struct Reaper {
    escaped: Vec<Escaped>,
    /// Adopted processes whose environment names no worker: left alone.
    strangers: HashSet<ProcessId>,
}

impl Reaper {
    pub fn new() -> Self {
        Reaper::default()
    }

    /// One pass over Tend's children: reaps the adopted ones that exited, and returns the escaped ones
    /// not seen before. Blocking (reads `/proc`); cheap (Tend's children only).
    pub fn pass(&mut self) -> Vec<Escaped> {
        let me = std::process::id();
        let Ok(my_group) = read_stat_with(me, |s| s.pgrp) else { return Vec::new() };
        let none = HashSet::new();
        let guard = leaders();
        let registered = guard.as_ref().unwrap_or(&none);
        let mut found = Vec::new();
        for pid in children(me) {
            let Ok((ppid, pgrp, exited, id, name)) = read_stat_with(pid, |s| {
                let id = ProcessId { pid, start_ticks: s.start_ticks };
                (s.ppid, s.pgrp, s.has_exited(), id, String::from_utf8_lossy(s.comm).into_owned())
            }) else {
                continue;
            };
            if ppid != me || pgrp == my_group || registered.contains(&id) {
                continue;
            }
            if exited {
                reap(pid);
                continue;
            }
            let in_a_worker_group = registered.iter().any(|l| l.pid == pgrp);
            if in_a_worker_group || self.escaped.iter().any(|e| e.id == id) || self.strangers.contains(&id) {
                continue;
            }
            let Some((worker, incarnation)) = worker_of(pid) else {
                // Mid-exec (the new image's environment is not set up yet): look again next pass.
                continue;
            };
            let Some(worker) = worker else {
                // Not a worker's descendant as far as we can tell (a helper of a library Tend uses,
                // orphaned): reaped when it exits, never reported or stopped.
                tracing::debug!(pid, name = %name, "adopted a process no worker's environment names");
                self.strangers.insert(id);
                continue;
            };
            let e = Escaped { id, leads_group: pgrp == pid, worker, incarnation, name };
            self.escaped.push(e.clone());
            found.push(e);
        }
        drop(guard);
        self.escaped.retain(|e| crate::is_running(e.id));
        self.strangers.retain(|s| crate::is_running(*s));
        found
    }

    /// The escaped processes still running.
    pub fn escaped(&self) -> &[Escaped] {
        &self.escaped
    }
}

/// Reaps one adopted child that has exited. It is our child, so its pid cannot be reused before this.
fn reap(pid: u32) {
    let Ok(p) = pid_t(pid) else { return };
    let mut status = 0;
    // SAFETY: waitpid on one pid (never -1 or a group) with WNOHANG; `status` is a valid out pointer.
    let rc = unsafe { libc::waitpid(p, &mut status, libc::WNOHANG) };
    if rc < 0 {
        tracing::debug!(pid, error = %io::Error::last_os_error(), "cannot reap an adopted process");
    }
}

/// Tend's children: `/proc/self/task/*/children` (each thread's own), else a scan of `/proc`.
fn children(me: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut listed = false;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                listed = true;
                out.extend(text.split_ascii_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    if listed {
        return out;
    }
    // Kernels without CONFIG_PROC_CHILDREN.
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if read_stat_with(pid, |s| s.ppid == me).unwrap_or(false) {
            out.push(pid);
        }
    }
    out
}

/// `TEND_WORKER_ID` and `TEND_INCARNATION` from `/proc/PID/environ`; None while it reads empty (a
/// process in the middle of an exec shows no environment for a moment) or cannot be read.
fn worker_of(pid: u32) -> Option<(Option<String>, Option<u32>)> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok().filter(|e| !e.is_empty())?;
    let var = |name: &str| {
        env.split(|&b| b == 0).find_map(|kv| {
            let v = kv.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
            Some(String::from_utf8_lossy(v).into_owned())
        })
    };
    Some((var("TEND_WORKER_ID"), var("TEND_INCARNATION").and_then(|n| n.parse().ok())))
}

/// Whether our child `pid` has exited, without reaping it (`waitid` with `WNOWAIT`).
pub(crate) fn exited_unreaped(pid: u32) -> io::Result<bool> {
    let p = libc::id_t::try_from(pid_t(pid)?).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: siginfo_t is plain data; all-zero is a valid value and what WNOHANG leaves when no child
    // has changed state.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on one pid with WNOWAIT (the child stays waitable) and WNOHANG (never blocks);
    // `info` is a valid out pointer for the duration of the call.
    let rc =
        unsafe { libc::waitid(libc::P_PID, p, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after a successful waitid the pid field is initialised (0 when nothing exited).
    Ok(unsafe { info.si_pid() } != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_the_worker_from_the_environment() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("TEND_WORKER_ID", "pool-3")
            .env("TEND_INCARNATION", "7")
            .spawn()
            .unwrap();
        // With posix_spawn the parent may resume before the new image has its environment set up.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut got = worker_of(child.id());
        while got.is_none() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            got = worker_of(child.id());
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(got, Some((Some("pool-3".into()), Some(7))));
    }

    #[tokio::test]
    async fn an_exited_child_is_seen_without_being_reaped() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !exited_unreaped(pid).unwrap() {
            assert!(std::time::Instant::now() < deadline, "true did not exit");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // Still there to be reaped, with its status.
        assert!(child.wait().unwrap().success());
    }
}
