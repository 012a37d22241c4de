//! Peers measured beside Tend: Glances from PyPI, installed into a virtualenv under the bench's work
//! directory (once; later runs reuse it and need no network) and run headless at 1 s refresh.
//! A peer that cannot be installed is reported as such; it never fails the bench.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::os;

pub struct Glances {
    exe: PathBuf,
    pub version: String,
}

/// The Glances command line the bench runs: stdout mode (no curses), 1 s refresh, no update check
/// (the only network call it would make); every plugin left at its default, the process list included.
pub const GLANCES_ARGS: &[&str] =
    &["--stdout", "cpu.total,mem.used,processcount.total", "-t", "1", "--disable-check-update"];

impl Glances {
    /// Finds or installs Glances in `<work>/glances-venv`. Installing runs `python3 -m venv` and
    /// `pip install glances` (five minutes at most).
    pub fn prepare(work: &Path) -> anyhow::Result<Glances> {
        let venv = work.join("glances-venv");
        let exe = venv.join("bin/glances");
        if !exe.exists() {
            std::fs::create_dir_all(work).with_context(|| format!("create {}", work.display()))?;
            let log = work.join("glances-install.log");
            run_bounded(Command::new("python3").args(["-m", "venv"]).arg(&venv), &log, 120)
                .context("python3 -m venv")?;
            let pip = venv.join("bin/pip");
            run_bounded(
                Command::new(pip).args(["install", "--quiet", "--disable-pip-version-check", "glances"]),
                &log,
                300,
            )
            .context("pip install glances")?;
        }
        let out = Command::new(&exe).arg("--version").output().context("glances --version")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("Glances version:"))
            .map(|v| v.trim().to_owned())
            .context("glances --version printed no version")?;
        Ok(Glances { exe, version })
    }

    pub fn start(&self) -> anyhow::Result<PeerProc> {
        let mut cmd = Command::new(&self.exe);
        cmd.args(GLANCES_ARGS).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        os::die_with_bench(&mut cmd, libc::SIGKILL);
        let child = cmd.spawn().context("start glances")?;
        Ok(PeerProc { pid: child.id(), child: Some(child) })
    }
}

/// A running peer; killed on drop.
pub struct PeerProc {
    pub pid: u32,
    child: Option<Child>,
}

impl PeerProc {
    /// Still running (a peer that crashed must not be reported as idle).
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for PeerProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a command to completion within `secs`, killing it past that; its output goes to `log`.
fn run_bounded(cmd: &mut Command, log: &Path, secs: u64) -> anyhow::Result<()> {
    let out = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let mut child = cmd.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).spawn()?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            let err = std::fs::read_to_string(log).unwrap_or_default();
            let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_owned();
            bail!("exited with {status}: {last}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("still running after {secs} s");
        }
        os::pause(Duration::from_millis(200));
    }
}
