//! The kernel's process events, heard for real: a child that execs, and one that renames itself, is
//! reported with its pid. The suite runs as root in the initial namespaces (as CI does), where
//! listening works.

use std::process::Command;
use std::time::Duration;

use tend_collect::proc_events::{ProcEvent, ProcEvents};

/// Collects events until `want` is among them (10 s at most).
async fn until(events: &mut ProcEvents, want: ProcEvent) -> Vec<ProcEvent> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut batch = Vec::new();
            events.next_batch(&mut batch).await.expect("the socket keeps working");
            seen.extend(batch);
            if seen.contains(&want) {
                return;
            }
        }
    })
    .await;
    assert!(found.is_ok(), "{want:?} not heard within 10 s; heard {} events", seen.len());
    seen
}

#[tokio::test]
async fn an_exec_is_heard_with_the_process_pid() {
    let mut events = ProcEvents::open().await.expect("root in the initial namespaces can listen");
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id();
    let seen = until(&mut events, ProcEvent::Exec { pid }).await;
    assert!(seen.iter().all(|e| !matches!(e, ProcEvent::Overflow)), "no overflow in a quiet test");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn a_rename_is_heard() {
    let mut events = ProcEvents::open().await.expect("root in the initial namespaces can listen");
    // The shell renames itself through /proc/self/comm, then waits to be killed.
    let mut child =
        Command::new("sh").args(["-c", "printf renamed > /proc/self/comm; sleep 30"]).spawn().unwrap();
    let pid = child.id();
    until(&mut events, ProcEvent::Comm { pid }).await;
    child.kill().unwrap();
    child.wait().unwrap();
}
