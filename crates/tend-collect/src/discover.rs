//! Attach: one pass over `/proc` that finds existing processes matching a pool's selector.
//!
//! This module owns the only full scan of the process table. It must never run on the sampling path
//! (the caller runs it at a slower cadence and hands the found [`ProcessId`]s to a sampler), and never
//! return Tend itself, a process the caller excludes, a zombie or a kernel thread.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::fs;
use std::path::Path;

use regex::Regex;
use tend_core::ProcessId;

use crate::proc_stat::{PF_KTHREAD, parse_stat};

/// Which processes a pool attaches to.
///
/// A process matches when its pid is listed in `pids`, or when at least one of `process_name` and
/// `cmdline` is set and every one that is set matches (so `process_name = "python3"` plus
/// `cmdline = "worker\.py"` narrows to the Python workers). A matcher with nothing set matches nothing.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    /// Equal to the kernel's command name (`comm`, at most 15 bytes), the executable's file name, or
    /// the file name of `argv[0]` (like `pidof`): the latter two cover names longer than 15 bytes.
    pub process_name: Option<String>,
    /// Searched in the command line, arguments joined by single spaces.
    pub cmdline: Option<Regex>,
    pub pids: Vec<u32>,
}

/// A process that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub id: ProcessId,
    /// The kernel's command name (`comm`).
    pub name: String,
    /// Arguments joined by single spaces.
    pub cmdline: String,
    /// Its parent's pid.
    pub parent: u32,
}

impl Matcher {
    fn is_empty(&self) -> bool {
        self.process_name.is_none() && self.cmdline.is_none() && self.pids.is_empty()
    }
}

/// Scans `/proc` once and returns the matching processes in pid order. `exclude` lists pids never to
/// return (Tend's own children, other pools' workers); Tend's own pid is always excluded. Processes
/// that vanish or cannot be read mid-scan are skipped.
pub fn find(matcher: &Matcher, exclude: &[u32]) -> Vec<Found> {
    if matcher.is_empty() {
        return Vec::new();
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        tracing::warn!("cannot list /proc; discovery finds nothing");
        return Vec::new();
    };
    let me = std::process::id();
    let exclude: HashSet<u32> = exclude.iter().copied().chain([me]).collect();
    let mut found: Vec<Found> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !exclude.contains(pid))
        .filter_map(|pid| inspect(pid, matcher))
        .collect();
    found.sort_by_key(|f| f.id.pid);
    found
}

/// Whether the process `pid` matches, read from `/proc` now: for processes heard of one at a time (the
/// kernel's process events), where [`find`] would scan everything.
pub fn inspect(pid: u32, matcher: &Matcher) -> Option<Found> {
    if matcher.is_empty() {
        return None;
    }
    let dir = Path::new("/proc").join(pid.to_string());
    let stat_bytes = fs::read(dir.join("stat")).ok()?;
    let stat = parse_stat(&stat_bytes)?;
    if stat.has_exited() || stat.flags & PF_KTHREAD != 0 {
        return None;
    }
    let id = ProcessId { pid, start_ticks: stat.start_ticks };
    let name = String::from_utf8_lossy(stat.comm).into_owned();
    // Read lazily and at most once: most processes fail the name test on `comm` alone.
    let raw = OnceCell::new();
    let raw_cmdline = || raw.get_or_init(|| fs::read(dir.join("cmdline")).unwrap_or_default()).as_slice();

    let listed = matcher.pids.contains(&pid);
    if !listed {
        if matcher.process_name.is_none() && matcher.cmdline.is_none() {
            return None;
        }
        if let Some(want) = &matcher.process_name {
            let exe_matches = || {
                fs::read_link(dir.join("exe"))
                    .is_ok_and(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == *want))
            };
            let argv0_matches = || first_arg_basename(raw_cmdline()).is_some_and(|a| a == *want);
            if name != *want && !exe_matches() && !argv0_matches() {
                return None;
            }
        }
        if let Some(re) = &matcher.cmdline
            && !re.is_match(&join_cmdline(raw_cmdline()))
        {
            return None;
        }
    }
    Some(Found { id, name, cmdline: join_cmdline(raw_cmdline()), parent: stat.ppid })
}

/// `/proc/PID/cmdline` is NUL-separated (and usually NUL-terminated); a process that rewrote its
/// title may use spaces instead, which joins to the same text.
fn join_cmdline(raw: &[u8]) -> String {
    let trimmed = raw.strip_suffix(b"\0").unwrap_or(raw);
    String::from_utf8_lossy(trimmed).replace('\0', " ")
}

fn first_arg_basename(raw: &[u8]) -> Option<String> {
    let first = raw.split(|&b| b == 0).next().filter(|a| !a.is_empty())?;
    let first = String::from_utf8_lossy(first);
    // A rewritten title ("nginx: worker process") has no NULs; its first word is the name.
    let first = first.split(' ').next().unwrap_or(&first);
    Some(first.rsplit('/').next().unwrap_or(first).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_joins_arguments_with_spaces() {
        assert_eq!(join_cmdline(b"python3\0-m\0worker\0--port\x009000\0"), "python3 -m worker --port 9000");
        assert_eq!(join_cmdline(b"nginx: worker process"), "nginx: worker process");
        assert_eq!(join_cmdline(b""), "");
    }

    #[test]
    fn argv0_basename_strips_directories() {
        assert_eq!(first_arg_basename(b"/usr/bin/python3\0x.py\0").as_deref(), Some("python3"));
        assert_eq!(first_arg_basename(b"node\0").as_deref(), Some("node"));
        assert_eq!(first_arg_basename(b"nginx: worker process").as_deref(), Some("nginx:"));
        assert_eq!(first_arg_basename(b""), None);
    }

    #[test]
    fn an_empty_matcher_matches_nothing() {
        assert!(find(&Matcher::default(), &[]).is_empty());
    }

    #[test]
    fn never_finds_itself() {
        let me = std::process::id();
        let m = Matcher { pids: vec![me], ..Matcher::default() };
        assert!(find(&m, &[]).is_empty());
    }
}
