//! Shared helpers: children that are always killed, and waiting on conditions.

use std::process::{Command, Stdio};
use std::time::Duration;

use tend_collect::spawn::{Child, LogLine, SpawnSpec, spawn};
use tend_core::ProcessId;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// Generous: the machine may be busy compiling other crates while these tests run.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A plain `std` child that is killed and reaped when the test ends, however it ends.
pub struct Kid {
    pub child: std::process::Child,
    pub id: ProcessId,
}

impl Kid {
    pub fn start(argv: &[&str]) -> Kid {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(argv[0]);
        // Signals ignored by whoever runs the tests (nohup, some CI wrappers ignore SIGHUP) stay ignored
        // across exec: the child gets the default actions back, as a supervised worker would.
        // SAFETY: between fork and exec only async-signal-safe calls; `signal` is one.
        unsafe {
            cmd.pre_exec(|| {
                for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        let child = cmd
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn a test child");
        let id = tend_collect::process_id(child.id()).expect("identity of a fresh child");
        Kid { child, id }
    }

    pub fn pid(&self) -> u32 {
        self.id.pid
    }

    /// Starts a process that ends up sleeping (`sleep N`) and waits until it does. Right after
    /// spawn returns, exec may still be setting up the new image: the command line reads empty and
    /// the dynamic loader is still faulting pages in, so RSS is still climbing.
    pub async fn sleeper(argv: &[&str]) -> Kid {
        let kid = Kid::start(argv);
        until("the child settles into sleep", || state(kid.pid()) == Some('S')).await;
        kid
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after [`DEADLINE`].
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Spawns through tend-collect and returns the child with its line receiver.
pub async fn start(argv: &[&str]) -> (Child, UnboundedReceiver<LogLine>) {
    let (tx, rx) = unbounded_channel();
    let spec = SpawnSpec { command: argv.iter().map(|s| s.to_string()).collect(), ..SpawnSpec::default() };
    (spawn(&spec, tx).await.expect("spawn through tend-collect"), rx)
}

/// The next line, within the deadline.
pub async fn next_line(rx: &mut UnboundedReceiver<LogLine>) -> LogLine {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("no line within the deadline")
        .expect("output ended")
}

/// Field `n` (proc(5) numbering, n ≥ 3) of `/proc/PID/stat`, read independently of the crate.
pub fn stat_field(pid: u32, n: usize) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    after.split_whitespace().nth(n - 3).map(str::to_owned)
}

pub fn state(pid: u32) -> Option<char> {
    stat_field(pid, 3)?.chars().next()
}
