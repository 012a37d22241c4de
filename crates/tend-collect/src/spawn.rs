//! Starting workers: one child process per worker, in its own process group, its output as lines.
//!
//! This module owns `fork/exec` and the worker's pipes. It must never block or slow a worker because
//! nobody reads its output (lines go to an unbounded channel, and are drained and dropped once the
//! receiver is gone), and never let a terminal's Ctrl-C reach workers directly: each worker leads its
//! own process group, so only Tend gets the SIGINT and stops its workers in order. Every worker it
//! starts is registered with [`crate::reaper`] until reaped, and its exit can be awaited without
//! reaping it ([`Child::exited`]), so that its group can be drained while its pid is still pinned.

use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tend_core::ProcessId;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::proc_stat::process_id;
use crate::signal::signal_name;

/// Longer lines are cut here (and marked): one runaway line must not cost Tend unbounded memory.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
const TRUNCATED_MARK: &str = " …[truncated]";

/// After the worker exits, how long [`Child::wait`] lets the readers deliver its last lines. A
/// grandchild that inherited the pipes can keep them open forever; then the readers carry on
/// detached and `wait` returns anyway.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(250);

/// What to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpawnSpec {
    /// `argv`: the program (looked up in `PATH` when it has no `/`) and its arguments. No shell.
    pub command: Vec<String>,
    /// Added to (or overriding) Tend's own environment.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line a worker wrote, without its line ending, lossily decoded as UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub stream: Stream,
    pub text: String,
}

/// Why a worker did not start; the message names the program, for the operator.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("empty command: nothing to start")]
    EmptyCommand,
    #[error("cannot start {program:?}: working directory {cwd:?}: {error}")]
    Cwd { program: String, cwd: PathBuf, error: io::Error },
    #[error("cannot start {program:?}: {error}")]
    Start { program: String, error: io::Error },
    #[error("started {program:?} as pid {pid} but cannot read its identity: {error}")]
    Identity { program: String, pid: u32, error: io::Error },
}

/// How a process ended. Exactly one field is set when the status is known.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Exit {
    /// Neither code nor signal: the status could not be collected (someone else reaped the child).
    pub const UNKNOWN: Exit = Exit { code: None, signal: None };

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    fn from_status(status: ExitStatus) -> Exit {
        Exit { code: status.code(), signal: status.signal() }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exited with code {code}"),
            (None, Some(sig)) => match signal_name(sig) {
                Some(name) => write!(f, "killed by signal {sig} ({name})"),
                None => write!(f, "killed by signal {sig}"),
            },
            (None, None) => f.write_str("exit status unknown"),
        }
    }
}

/// A started worker. Dropping it kills the worker (SIGKILL to the worker itself, not its group): a
/// safety net for panics and early returns, not the way to stop one ([`crate::signal::terminate`]).
pub struct Child {
    child: tokio::process::Child,
    id: ProcessId,
    readers: Vec<JoinHandle<()>>,
    exit: Option<Exit>,
    /// Readable once the worker has exited (Linux ≥ 5.3); polled without reaping.
    #[cfg(target_os = "linux")]
    pidfd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl Drop for Child {
    fn drop(&mut self) {
        // Reaped: no longer a leader the reaper must leave alone. Not reaped: tokio's orphan queue reaps
        // it, and it stays registered so the reaper never takes its status.
        if self.exit.is_some() {
            crate::reaper::unregister(self.id);
        }
    }
}

impl Child {
    pub fn id(&self) -> ProcessId {
        self.id
    }

    /// Resolves once the worker has exited, *without* reaping it: until [`Child::wait`], its zombie
    /// keeps its pid, and so its process group id, from being reused, which is what makes draining what
    /// is left of its group safe ([`crate::signal::drain_group`]). Cancel-safe.
    pub async fn exited(&mut self) {
        if self.exit.is_some() {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.pidfd {
            match fd.readable().await {
                // Level-triggered: a pidfd stays readable once the process has exited.
                Ok(_guard) => return,
                Err(e) => tracing::debug!(process = %self.id, error = %e, "pidfd unusable; polling"),
            }
        }
        loop {
            match crate::reaper::exited_unreaped(self.id.pid) {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(process = %self.id, error = %e, "cannot poll for the exit");
                    return;
                }
            }
            tokio::time::sleep(crate::signal::POLL_INTERVAL).await;
        }
    }

    /// Waits for the worker to exit and reaps it, then gives the output readers a moment to deliver
    /// the last lines, so lines written before the exit are sent before `wait` returns. Cancel-safe,
    /// and may be called again: later calls return the same [`Exit`] at once.
    pub async fn wait(&mut self) -> Exit {
        let exit = match self.exit {
            Some(exit) => exit,
            None => {
                let exit = match self.child.wait().await {
                    Ok(status) => Exit::from_status(status),
                    Err(e) => {
                        tracing::warn!(process = %self.id, error = %e, "cannot collect exit status");
                        Exit::UNKNOWN
                    }
                };
                self.exit = Some(exit);
                crate::reaper::unregister(self.id);
                exit
            }
        };
        let deadline = tokio::time::Instant::now() + DRAIN_AFTER_EXIT;
        while let Some(reader) = self.readers.last_mut() {
            if tokio::time::timeout_at(deadline, reader).await.is_err() {
                // Dropping the handles detaches the readers; they keep draining the pipe.
                self.readers.clear();
                break;
            }
            self.readers.pop();
        }
        exit
    }

    /// The exit, if the worker has exited already; never blocks.
    pub fn try_exit(&mut self) -> Option<Exit> {
        if self.exit.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.exit = Some(Exit::from_status(status));
                    crate::reaper::unregister(self.id);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(process = %self.id, error = %e, "cannot collect exit status");
                    self.exit = Some(Exit::UNKNOWN);
                }
            }
        }
        self.exit
    }
}

/// Starts `spec` as a new process group leader with stdin from `/dev/null` and stdout/stderr piped
/// line by line into `lines`. Must be called inside a tokio runtime.
pub async fn spawn(spec: &SpawnSpec, lines: UnboundedSender<LogLine>) -> Result<Child, SpawnError> {
    let (program, args) = spec.command.split_first().ok_or(SpawnError::EmptyCommand)?;
    if program.is_empty() {
        return Err(SpawnError::EmptyCommand);
    }
    if let Some(cwd) = &spec.cwd {
        // exec reports a missing cwd as ENOENT, which reads as "program not found": say it first.
        let checked = std::fs::metadata(cwd).and_then(|m| {
            if m.is_dir() { Ok(()) } else { Err(io::Error::from(io::ErrorKind::NotADirectory)) }
        });
        if let Err(error) = checked {
            return Err(SpawnError::Cwd { program: program.clone(), cwd: cwd.clone(), error });
        }
    }
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    if let Some(lim) = crate::fd_limit::inherited_nofile() {
        // SAFETY: runs in the child between fork and exec; setrlimit is async-signal-safe and the
        // closure only reads its own copy of the limit. Lowering a soft limit cannot fail for lack of
        // privilege; if it fails anyway the worker keeps Tend's limit rather than not starting.
        unsafe {
            cmd.pre_exec(move || {
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                Ok(())
            });
        }
    }
    // Started and registered under the reaper's lock: a child of ours that is not registered yet must
    // never look adopted to it.
    let mut leaders = crate::reaper::leaders();
    let mut child = cmd.spawn().map_err(|error| SpawnError::Start { program: program.clone(), error })?;
    // `spawn` returns after a successful exec, and the child stays at least a zombie until reaped
    // (only `wait` reaps it), so its /proc entry is there to read.
    let pid = child.id().ok_or_else(|| SpawnError::Identity {
        program: program.clone(),
        pid: 0,
        error: io::Error::other("exited and reaped before its pid was read"),
    })?;
    let id =
        process_id(pid).map_err(|error| SpawnError::Identity { program: program.clone(), pid, error })?;
    crate::reaper::register(&mut leaders, id);
    drop(leaders);
    #[cfg(target_os = "linux")]
    let pidfd = open_pidfd(id);

    let mut readers = Vec::with_capacity(2);
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(pump(out, Stream::Stdout, lines.clone())));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(pump(err, Stream::Stderr, lines)));
    }
    Ok(Child {
        child,
        id,
        readers,
        exit: None,
        #[cfg(target_os = "linux")]
        pidfd,
    })
}

/// A pidfd for our unreaped child, registered with tokio; None on kernels without pidfds.
#[cfg(target_os = "linux")]
fn open_pidfd(id: ProcessId) -> Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // Our child is not reaped before `wait`, so the pid still names it (alive or a zombie).
    let fd = crate::signal::pidfd::open(id.pid)
        .map_err(|e| tracing::debug!(process = %id, error = %e, "no pidfd; exits are polled"))
        .ok()?;
    // SAFETY: `fd` is an OwnedFd, moved into the AsyncFd: it stays open and names the same
    // descriptor until the AsyncFd drops it, and OwnedFd::as_raw_fd always returns that descriptor.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| tracing::debug!(process = %id, error = %e, "pidfd not pollable; exits are polled"))
        .ok()
}

/// Reads `r` to the end, one line at a time, sending each to `tx`. Lines past [`MAX_LINE_BYTES`] are
/// cut and the rest of the line skipped. Send failures (receiver gone) are ignored on purpose: the
/// pipe must keep draining or the worker blocks on a full pipe.
async fn pump<R: AsyncRead + Unpin>(r: R, stream: Stream, tx: UnboundedSender<LogLine>) {
    let mut reader = BufReader::with_capacity(8 * 1024, r);
    let mut line: Vec<u8> = Vec::new();
    let mut truncated = false;
    loop {
        let chunk = match reader.fill_buf().await {
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::debug!(?stream, error = %e, "worker output unreadable; reader stops");
                break;
            }
        };
        if chunk.is_empty() {
            if !line.is_empty() || truncated {
                let _ = tx.send(finish(&mut line, &mut truncated, stream));
            }
            break;
        }
        let newline = chunk.iter().position(|&b| b == b'\n');
        let part = &chunk[..newline.unwrap_or(chunk.len())];
        let room = MAX_LINE_BYTES - line.len();
        if part.len() > room {
            line.extend_from_slice(&part[..room]);
            truncated = true;
        } else {
            line.extend_from_slice(part);
        }
        let used = newline.map_or(chunk.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            let _ = tx.send(finish(&mut line, &mut truncated, stream));
        }
    }
}

fn finish(line: &mut Vec<u8>, truncated: &mut bool, stream: Stream) -> LogLine {
    if !*truncated && line.last() == Some(&b'\r') {
        line.pop();
    }
    let mut text = String::from_utf8_lossy(line).into_owned();
    if *truncated {
        text.push_str(TRUNCATED_MARK);
    }
    line.clear();
    *truncated = false;
    LogLine { stream, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reads_like_a_sentence() {
        assert_eq!(Exit { code: Some(1), signal: None }.to_string(), "exited with code 1");
        assert_eq!(Exit { code: None, signal: Some(9) }.to_string(), "killed by signal 9 (SIGKILL)");
        assert_eq!(Exit { code: None, signal: Some(15) }.to_string(), "killed by signal 15 (SIGTERM)");
        assert_eq!(Exit::UNKNOWN.to_string(), "exit status unknown");
        assert!(Exit { code: Some(0), signal: None }.success());
    }

    #[tokio::test]
    async fn pump_splits_lines_strips_crlf_and_cuts_long_lines() {
        let long = "x".repeat(MAX_LINE_BYTES * 3);
        let input = format!("one\r\ntwo\n{long}\nlast-without-newline");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        pump(input.as_bytes(), Stream::Stderr, tx).await;
        let mut got = Vec::new();
        while let Some(l) = rx.recv().await {
            assert_eq!(l.stream, Stream::Stderr);
            got.push(l.text);
        }
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], "one");
        assert_eq!(got[1], "two");
        assert_eq!(got[2].len(), MAX_LINE_BYTES + TRUNCATED_MARK.len());
        assert!(got[2].ends_with(TRUNCATED_MARK));
        assert_eq!(got[3], "last-without-newline");
    }

    #[tokio::test]
    async fn pump_keeps_draining_when_nobody_listens() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        drop(rx);
        let input = "a\n".repeat(10_000);
        // Completes (reads to EOF) even though every send fails.
        pump(input.as_bytes(), Stream::Stdout, tx).await;
    }
}
