//! Spawning real workers: output lines, exits, errors, process groups.

use std::path::PathBuf;
use std::time::Duration;

use tend_collect::signal::{Signal, send};
use tend_collect::spawn::{Exit, LogLine, SpawnError, SpawnSpec, Stream, spawn};
use tokio::sync::mpsc::unbounded_channel;

use crate::support::{DEADLINE, next_line, start, stat_field};

fn spec(argv: &[&str]) -> SpawnSpec {
    SpawnSpec { command: argv.iter().map(|s| s.to_string()).collect(), ..SpawnSpec::default() }
}

#[tokio::test]
async fn stdout_and_stderr_arrive_as_lines_before_wait_returns() {
    let (mut child, mut rx) =
        start(&["sh", "-c", "echo out1; echo err1 >&2; printf 'out2\\r\\n'; exit 0"]).await;
    let exit = tokio::time::timeout(DEADLINE, child.wait()).await.unwrap();
    assert_eq!(exit, Exit { code: Some(0), signal: None });
    assert!(exit.success());
    // wait() let the readers finish, so every line is already in the channel.
    let mut lines = Vec::new();
    while let Ok(l) = rx.try_recv() {
        lines.push(l);
    }
    let of = |s: Stream| lines.iter().filter(|l| l.stream == s).map(|l| l.text.as_str()).collect::<Vec<_>>();
    assert_eq!(of(Stream::Stdout), ["out1", "out2"]);
    assert_eq!(of(Stream::Stderr), ["err1"]);
    // Calling wait again returns the same exit at once.
    assert_eq!(child.wait().await, exit);
    assert_eq!(child.try_exit(), Some(exit));
}

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    let (mut child, _rx) = start(&["sh", "-c", "exit 3"]).await;
    let exit = child.wait().await;
    assert_eq!(exit.code, Some(3));
    assert_eq!(exit.to_string(), "exited with code 3");

    let (mut child, _rx) = start(&["sleep", "30"]).await;
    assert_eq!(child.try_exit(), None);
    assert!(send(child.id(), Signal::Kill).unwrap());
    let exit = tokio::time::timeout(DEADLINE, child.wait()).await.unwrap();
    assert_eq!(exit, Exit { code: None, signal: Some(9) });
    assert_eq!(exit.to_string(), "killed by signal 9 (SIGKILL)");
}

#[tokio::test]
async fn a_missing_program_is_a_clear_error() {
    let (tx, _rx) = unbounded_channel();
    let err = spawn(&spec(&["pythn3-tend-no-such-program", "x.py"]), tx.clone()).await.err().unwrap();
    assert!(matches!(err, SpawnError::Start { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        r#"cannot start "pythn3-tend-no-such-program": No such file or directory (os error 2)"#
    );

    let err = spawn(&spec(&[]), tx.clone()).await.err().unwrap();
    assert!(matches!(err, SpawnError::EmptyCommand));
    assert_eq!(err.to_string(), "empty command: nothing to start");

    let mut missing_cwd = spec(&["sleep", "1"]);
    missing_cwd.cwd = Some(PathBuf::from("/nonexistent/tend/dir"));
    let err = spawn(&missing_cwd, tx).await.err().unwrap();
    assert!(matches!(err, SpawnError::Cwd { .. }), "{err:?}");
    assert!(err.to_string().contains("working directory \"/nonexistent/tend/dir\""), "{err}");
}

#[tokio::test]
async fn env_and_cwd_are_applied() {
    let (tx, mut rx) = unbounded_channel();
    let mut s = spec(&["sh", "-c", "echo \"$TEND_TEST_VAR\"; pwd"]);
    s.env = vec![("TEND_TEST_VAR".into(), "hello worker".into())];
    s.cwd = Some(PathBuf::from("/"));
    let mut child = spawn(&s, tx).await.unwrap();
    assert_eq!(next_line(&mut rx).await.text, "hello worker");
    assert_eq!(next_line(&mut rx).await.text, "/");
    assert!(child.wait().await.success());
}

#[tokio::test]
async fn a_worker_leads_its_own_group_with_stdin_from_dev_null() {
    let (child, _rx) = start(&["sleep", "30"]).await;
    let id = child.id();
    assert_eq!(id, tend_collect::process_id(id.pid).unwrap());
    assert_eq!(stat_field(id.pid, 5), Some(id.pid.to_string()), "pgrp == pid");
    let me = std::process::id();
    assert_ne!(stat_field(id.pid, 5), stat_field(me, 5), "not in Tend's group, so Ctrl-C misses it");
    let stdin = std::fs::read_link(format!("/proc/{}/fd/0", id.pid)).unwrap();
    assert_eq!(stdin, PathBuf::from("/dev/null"));
    drop(child);
    // kill_on_drop: dropping the handle kills the worker.
    crate::support::until("dropped child is killed", || !tend_collect::is_running(id)).await;
}

#[tokio::test]
async fn a_chatty_worker_never_blocks_when_nobody_reads() {
    let (tx, rx) = unbounded_channel::<LogLine>();
    drop(rx);
    // 8 MB of output, far beyond a pipe's 64 KiB: it finishes only if the pipes keep draining.
    let mut child =
        spawn(&spec(&["sh", "-c", "yes 'a line of output' | head -c 8000000; echo done >&2"]), tx)
            .await
            .unwrap();
    let exit = tokio::time::timeout(DEADLINE, child.wait()).await.expect("worker blocked on its pipe");
    assert!(exit.success(), "{exit}");
}

#[tokio::test]
async fn a_very_long_line_is_truncated() {
    let (mut child, mut rx) =
        start(&["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; echo; echo next"]).await;
    let long = next_line(&mut rx).await;
    assert!(long.text.len() < 20_000, "{}", long.text.len());
    assert!(long.text.starts_with("xxxx") && long.text.ends_with("[truncated]"));
    assert_eq!(next_line(&mut rx).await.text, "next");
    assert!(tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap().success());
}

#[tokio::test]
async fn a_worker_gets_the_descriptor_limit_tend_was_started_with_not_the_raised_one() {
    // A soft limit below the hard one, as on most machines; then Tend raises its own.
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read or write the one struct passed by reference.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let started_with = 512.min(lim.rlim_max);
    lim.rlim_cur = started_with;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let raised = tend_collect::fd_limit::raise_nofile_to_hard().unwrap();
    let (mut child, mut rx) = start(&["sh", "-c", "ulimit -Sn"]).await;
    let line = next_line(&mut rx).await;
    assert_eq!(line.text, started_with.to_string(), "Tend itself runs with {raised}");
    child.wait().await;
}
