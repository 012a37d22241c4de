//! Stopping real processes: SIGTERM, the SIGKILL fallback, process groups, attached processes.

use std::time::Duration;

use tend_collect::is_running;
use tend_collect::signal::{
    Drain, Signal, Target, Termination, drain_group, gone, group_members, send, send_group, terminate,
};
use tend_core::ProcessId;

use crate::support::{DEADLINE, Kid, next_line, start, until};

#[tokio::test]
async fn a_plain_worker_ends_by_sigterm() {
    let (mut child, _rx) = start(&["sleep", "60"]).await;
    let id = child.id();
    let how = tokio::time::timeout(
        DEADLINE,
        terminate(id, Target::Group, Duration::from_secs(10), async {
            child.wait().await;
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(how, Termination::Terminated);
    assert_eq!(child.wait().await.signal, Some(libc::SIGTERM));
    // Once gone, there is nothing to stop.
    let again = terminate(id, Target::Group, Duration::from_secs(1), std::future::ready(())).await.unwrap();
    assert_eq!(again, Termination::AlreadyGone);
}

#[tokio::test]
async fn a_worker_ignoring_sigterm_is_killed_after_the_grace() {
    let (mut child, mut rx) = start(&["sh", "-c", "trap '' TERM; echo armed; sleep 60"]).await;
    // The trap must be in place before SIGTERM, or the shell would die of it.
    assert_eq!(next_line(&mut rx).await.text, "armed");
    let how = tokio::time::timeout(
        DEADLINE,
        terminate(child.id(), Target::Group, Duration::from_millis(300), async {
            child.wait().await;
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(how, Termination::Killed);
    assert_eq!(child.wait().await.signal, Some(libc::SIGKILL));
}

/// Starts `sh` that starts a grandchild in the same group, and returns the grandchild's identity.
async fn with_grandchild(
    inner: &str,
) -> (tend_collect::spawn::Child, tokio::sync::mpsc::UnboundedReceiver<tend_collect::spawn::LogLine>, ProcessId)
{
    let script = format!("sh -c '{inner}' & wait");
    let (child, mut rx) = start(&["sh", "-c", &script]).await;
    let pid: u32 = next_line(&mut rx).await.text.trim().parse().expect("the grandchild's pid");
    let grandchild = tend_collect::process_id(pid).expect("the grandchild runs");
    (child, rx, grandchild)
}

#[tokio::test]
async fn a_group_signal_reaches_the_grandchildren() {
    // The grandchild prints its own pid, then becomes `sleep`.
    let (mut child, _rx, grandchild) = with_grandchild("echo $$; exec sleep 60").await;
    assert!(is_running(grandchild));
    assert!(send_group(child.id(), Signal::Kill).unwrap());
    assert_eq!(tokio::time::timeout(DEADLINE, child.wait()).await.unwrap().signal, Some(libc::SIGKILL));
    // A zombie counts as dead: the grandchild's new parent may be slow to reap it.
    until("the grandchild dies with its group", || !is_running(grandchild)).await;
}

#[tokio::test]
async fn group_members_outliving_the_leader_are_drained_before_it_is_reaped() {
    // The grandchild ignores SIGTERM; the shell leading the group does not.
    let (mut child, _rx, grandchild) = with_grandchild("trap \"\" TERM; echo $$; exec sleep 60").await;
    let id = child.id();
    // As the supervisor does it: the leader's exit seen without reaping it (its zombie pins the group
    // id), then what is left of the group drained, then the leader reaped.
    let how = tokio::time::timeout(
        DEADLINE,
        terminate(id, Target::Group, Duration::from_secs(2), async {
            child.exited().await;
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(how, Termination::Terminated, "the leader itself obeyed SIGTERM");
    assert!(is_running(grandchild), "terminate leaves the rest of the group to drain_group");
    assert_eq!(group_members(id.pid).unwrap(), vec![grandchild], "the zombie leader is not a member");
    let drained = tokio::time::timeout(DEADLINE, drain_group(id, Duration::from_millis(300))).await.unwrap();
    assert_eq!(drained.unwrap(), Drain::Killed(1));
    assert!(!is_running(grandchild));
    assert_eq!(child.wait().await.signal, Some(libc::SIGTERM));
    // Nothing left: draining again finds nobody.
    assert_eq!(drain_group(id, Duration::from_secs(1)).await.unwrap(), Drain::Empty);
}

#[tokio::test]
async fn children_of_a_leader_that_exits_on_its_own_are_stopped_by_sigterm() {
    let (mut child, mut rx) = start(&["sh", "-c", "sleep 60 & sleep 60 & echo started; exit 0"]).await;
    assert_eq!(next_line(&mut rx).await.text, "started");
    let id = child.id();
    tokio::time::timeout(DEADLINE, child.exited()).await.unwrap();
    assert_eq!(group_members(id.pid).unwrap().len(), 2, "two sleeps left in the group");
    let drained = tokio::time::timeout(DEADLINE, drain_group(id, Duration::from_secs(10))).await.unwrap();
    assert_eq!(drained.unwrap(), Drain::Terminated(2));
    assert!(group_members(id.pid).unwrap().is_empty());
    assert_eq!(child.wait().await.code, Some(0));
}

#[tokio::test]
async fn an_attached_process_is_stopped_alone_and_watched_by_polling() {
    // Not spawned through tend-collect: no exit notification, only /proc polling.
    let mut kid = Kid::start(&["sleep", "60"]);
    let id = kid.id;
    let how =
        tokio::time::timeout(DEADLINE, terminate(id, Target::Process, Duration::from_secs(10), gone(id)))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(how, Termination::Terminated);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(kid.child.wait().unwrap().signal(), Some(libc::SIGTERM));
}

#[tokio::test]
async fn an_attached_process_ignoring_sigterm_is_killed() {
    let kid = Kid::start(&["sh", "-c", "trap '' TERM; exec sleep 60"]);
    // Wait until the shell has replaced itself with sleep: then the ignored TERM is inherited.
    until("the trap is armed", || {
        std::fs::read_to_string(format!("/proc/{}/comm", kid.pid())).is_ok_and(|c| c.trim() == "sleep")
    })
    .await;
    let how = terminate(kid.id, Target::Process, Duration::from_millis(300), gone(kid.id)).await.unwrap();
    assert_eq!(how, Termination::Killed);
}

#[tokio::test]
async fn signals_to_exited_processes_and_non_leaders_are_refused() {
    let (mut child, _rx) = start(&["sh", "-c", "exit 0"]).await;
    let id = child.id();
    child.wait().await;
    assert!(!send(id, Signal::Term).unwrap());
    assert!(!send_group(id, Signal::Term).unwrap());

    // A std child stays in our process group: it leads none, so a group signal is an error.
    let kid = Kid::sleeper(&["sleep", "30"]).await;
    let err = send_group(kid.id, Signal::Term).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(is_running(kid.id));
    assert!(send(kid.id, Signal::Hup).unwrap());
    until("SIGHUP ends sleep", || !is_running(kid.id)).await;
}
