//! The watched processes: N sleeping children of the bench, all in one process group, each of which
//! dies with the bench. They are the bench's own binary (`tend-bench sleeper --tag TAG`), so an
//! attach pool can find exactly them by a command-line regex on the tag.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use tend_core::ProcessId;

use crate::os;

pub struct Sleepers {
    children: Vec<Child>,
    pgid: Option<u32>,
    pub ids: Vec<ProcessId>,
    pub tag: String,
}

impl Sleepers {
    /// Starts `n` sleepers tagged `tag`; on failure the ones already started are killed.
    pub fn spawn(n: usize, tag: &str) -> anyhow::Result<Sleepers> {
        let exe = std::env::current_exe().context("the bench's own path")?;
        let mut s =
            Sleepers { children: Vec::with_capacity(n), pgid: None, ids: Vec::new(), tag: tag.to_owned() };
        for _ in 0..n {
            let mut cmd = Command::new(&exe);
            cmd.args(["sleeper", "--tag", tag])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(s.pgid.map_or(0, |g| g as i32));
            os::die_with_bench(&mut cmd, libc::SIGKILL);
            let child =
                cmd.spawn().with_context(|| format!("start sleeper {} of {n}", s.children.len() + 1))?;
            s.pgid.get_or_insert(child.id());
            let id = tend_collect::process_id(child.id()).context("identity of a sleeper")?;
            s.children.push(child);
            s.ids.push(id);
        }
        Ok(s)
    }

    /// A regex matching exactly these sleepers' command lines.
    pub fn cmdline_regex(&self) -> String {
        format!("tend-bench sleeper --tag {}$", self.tag)
    }

    /// SIGKILL to the whole group, then reap every child. Idempotent.
    pub fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            os::kill_group(pgid, libc::SIGKILL);
        }
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `tend-bench sleeper`: do nothing until killed (the bench's SIGKILL, or its death).
#[allow(unsafe_code)]
pub fn sleep_forever() -> ! {
    loop {
        // SAFETY: pause(2) only blocks until a signal arrives; it touches no memory.
        unsafe {
            libc::pause();
        }
    }
}
