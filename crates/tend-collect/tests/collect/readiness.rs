//! Readiness probes against real processes and real loopback sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use regex::Regex;
use tend_collect::is_running;
use tend_collect::readiness::{Probe, wait_ready, wait_ready_within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc::unbounded_channel;

use crate::support::{DEADLINE, Kid, start};

#[tokio::test]
async fn alive_passes_after_the_duration_and_fails_on_exit() {
    let kid = Kid::start(&["sleep", "30"]);
    let probe = Probe::Alive(Duration::from_millis(300));
    let ok = wait_ready_within(&probe, DEADLINE, None, || is_running(kid.id)).await.unwrap();
    assert_eq!(ok, "alive for 300ms");

    let quitter = Kid::start(&["sh", "-c", "exit 1"]);
    let err =
        wait_ready_within(&Probe::Alive(Duration::from_secs(5)), DEADLINE, None, || is_running(quitter.id))
            .await
            .unwrap_err();
    assert!(err.contains("exited"), "{err}");
}

/// A loopback port that was free a moment ago.
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("bound address")
}

#[tokio::test]
async fn tcp_passes_once_the_port_opens() {
    let addr = free_port();
    let opener = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await; // the worker "starting up"
        std::net::TcpListener::bind(addr).unwrap()
    });
    let ok = wait_ready_within(&Probe::Tcp(addr), DEADLINE, None, || true).await.unwrap();
    assert_eq!(ok, format!("tcp {addr} open"));
    drop(opener.await.unwrap());
}

#[tokio::test]
async fn tcp_on_a_closed_port_reports_the_last_attempt_at_the_deadline() {
    let addr = free_port();
    let err =
        wait_ready_within(&Probe::Tcp(addr), Duration::from_millis(400), None, || true).await.unwrap_err();
    assert!(err.contains("not ready after 400ms"), "{err}");
    assert!(err.contains("refused"), "{err}");
    // And a dead worker ends the wait at once, whatever the deadline.
    let err = wait_ready(&Probe::Tcp(addr), None, || false).await.unwrap_err();
    assert!(err.contains("exited before ready"), "{err}");
}

/// A tiny HTTP server: answers `503` to the first `failures` requests, then `200`. Returns its
/// address and how many requests it answered.
async fn http_server(failures: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => req.extend_from_slice(&buf[..k]),
                    }
                }
                assert!(req.starts_with(b"GET /health HTTP/1.1\r\n"), "{}", String::from_utf8_lossy(&req));
                let status = if n < failures { "503 Service Unavailable" } else { "200 OK" };
                let body = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                let _ = sock.write_all(body.as_bytes()).await;
            });
        }
    });
    (addr, served)
}

#[tokio::test]
async fn http_retries_until_2xx() {
    let (addr, served) = http_server(3).await;
    let url = format!("http://{addr}/health");
    let ok = wait_ready_within(&Probe::Http(url.clone()), DEADLINE, None, || true).await.unwrap();
    assert_eq!(ok, format!("http GET {url} returned 200 OK"));
    assert_eq!(served.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn http_that_never_passes_says_what_it_saw() {
    let (addr, _) = http_server(usize::MAX).await;
    let url = format!("http://{addr}/health");
    let err =
        wait_ready_within(&Probe::Http(url), Duration::from_millis(500), None, || true).await.unwrap_err();
    assert!(err.contains("returned 503 Service Unavailable"), "{err}");
}

/// What the supervisor does: consume the spawn line channel (counting every line) and forward the
/// text to the probe while the worker is initializing.
#[tokio::test]
async fn log_line_passes_on_a_matching_line_forwarded_by_the_supervisor() {
    let (child, mut lines) = start(&[
        "sh",
        "-c",
        "echo booting; echo 'warming up' >&2; sleep 0.2; echo 'listening on 9000'; sleep 30",
    ])
    .await;
    let id = child.id();
    let (probe_tx, mut probe_rx) = unbounded_channel::<String>();
    let counted = Arc::new(AtomicUsize::new(0));
    let count = counted.clone();
    let forwarder = tokio::spawn(async move {
        let mut probe_tx = Some(probe_tx);
        while let Some(line) = lines.recv().await {
            count.fetch_add(1, Ordering::SeqCst);
            if let Some(tx) = &probe_tx
                && tx.send(line.text).is_err()
            {
                probe_tx = None; // the probe is done: stop copying
            }
        }
    });
    let probe = Probe::LogLine(Regex::new(r"listening on \d+").unwrap());
    let ok = wait_ready_within(&probe, DEADLINE, Some(&mut probe_rx), || is_running(id)).await.unwrap();
    assert_eq!(ok, r"log line matched /listening on \d+/: listening on 9000");
    assert_eq!(counted.load(Ordering::SeqCst), 3);
    drop(child);
    forwarder.abort();
}

#[tokio::test]
async fn log_line_fails_when_the_output_ends_without_a_match() {
    let (mut child, mut lines) = start(&["sh", "-c", "echo booting; echo crashed >&2; exit 1"]).await;
    let (probe_tx, mut probe_rx) = unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            let _ = probe_tx.send(line.text);
        }
    });
    let probe = Probe::LogLine(Regex::new("ready").unwrap());
    let err = wait_ready_within(&probe, DEADLINE, Some(&mut probe_rx), || true).await.unwrap_err();
    assert_eq!(err, "output ended before a line matched /ready/");
    assert_eq!(child.wait().await.code, Some(1));
}
