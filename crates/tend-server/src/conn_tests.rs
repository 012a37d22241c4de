//! The connection limits over real TCP on 127.0.0.1, with a small router: a plain answer and a slow
//! stream (what an SSE connection looks like to this module).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::*;

const LONG: Duration = Duration::from_secs(10);

fn limits(header_ms: u64, idle_ms: u64, max: usize) -> Limits {
    Limits {
        header_timeout: Duration::from_millis(header_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        max_connections: max,
    }
}

/// A server on 127.0.0.1:0; dropping the sender shuts it down.
async fn start(limits: Limits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    // One fallback rather than routes: the OpenAPI test reads every `.route(` of this crate.
    let router = Router::new().fallback(|uri: axum::http::Uri| async move {
        if uri.path() != "/stream" {
            return Body::from("hi");
        }
        // 30 chunks 50 ms apart: 1.5 s of streaming, far past the idle and header timeouts.
        let chunks = futures::stream::unfold(0u32, |n| async move {
            if n == 30 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((Ok::<_, Infallible>(Bytes::from(format!("chunk {n}\n"))), n + 1))
        });
        Body::from_stream(chunks)
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, router, limits, None, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// Read until the peer closes (Ok with what came) or `within` passes (Err).
async fn read_to_close(s: &mut TcpStream, within: Duration) -> Result<String, String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return Err(String::from_utf8_lossy(&got).into_owned()),
        }
    }
}

/// One request on an open connection; the answer's head and body up to `until` (exclusive search).
async fn ask(s: &mut TcpStream, path: &str, until: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).await.unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !got.contains(until) {
        let n = timeout(LONG, s.read(&mut buf)).await.expect("an answer").unwrap();
        assert!(n > 0, "closed before the answer: {got:?}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    got
}

#[tokio::test]
async fn a_half_sent_head_is_cut_off_after_the_header_timeout() {
    let (addr, _stop) = start(limits(300, 60_000, 64)).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /hi HTTP/1.1\r\nHost: t\r\n").await.unwrap();
    let started = Instant::now();
    read_to_close(&mut slow, LONG).await.expect("closed by the server");
    assert!(started.elapsed() >= Duration::from_millis(250), "not before the timeout");
    // A client that sends nothing at all is closed too.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    read_to_close(&mut silent, LONG).await.expect("closed by the server");
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    let (addr, _stop) = start(limits(200, 1_000, 64)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(ask(&mut s, "/hi", "\r\n\r\nhi").await.starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    read_to_close(&mut s, LONG).await.expect("closed when idle");
    assert!(idle_from.elapsed() >= Duration::from_millis(900), "idle timeout, not the header timeout");
    // A second request head that starts after the pause and stalls gets the header timeout.
    let mut s = TcpStream::connect(addr).await.unwrap();
    ask(&mut s, "/hi", "\r\n\r\nhi").await;
    s.write_all(b"GET /hi HTTP/1.1\r\n").await.unwrap();
    let stalled_from = Instant::now();
    read_to_close(&mut s, LONG).await.expect("closed");
    assert!(stalled_from.elapsed() < Duration::from_millis(900), "header timeout for a started head");
}

#[tokio::test]
async fn a_streaming_answer_is_not_idle() {
    let (addr, _stop) = start(limits(100, 100, 64)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let got = ask(&mut s, "/stream", "chunk 29\n").await;
    assert!(got.contains("chunk 0\n"), "{got}");
    // And it is still a usable keep-alive connection afterwards.
    assert!(ask(&mut s, "/hi", "\r\n\r\nhi").await.contains("200 OK"));
}

#[tokio::test]
async fn at_the_cap_the_longest_waiting_connection_makes_room() {
    let (addr, _stop) = start(limits(60_000, 60_000, 8)).await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        ask(&mut s, "/hi", "\r\n\r\nhi").await;
        idle.push(s);
    }
    // A ninth client is served; the oldest idle connection was closed for it, the second one was not.
    let mut probe = TcpStream::connect(addr).await.unwrap();
    assert!(ask(&mut probe, "/hi", "\r\n\r\nhi").await.contains("200 OK"));
    read_to_close(&mut idle[0], LONG).await.expect("the oldest idle connection is closed");
    assert!(ask(&mut idle[1], "/hi", "\r\n\r\nhi").await.contains("200 OK"), "the others stay open");
}

#[tokio::test]
async fn at_the_cap_with_every_connection_busy_a_new_one_is_refused() {
    let (addr, _stop) = start(limits(60_000, 60_000, 2)).await;
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        ask(&mut s, "/stream", "chunk 0\n").await;
        streams.push(s);
    }
    let mut third = TcpStream::connect(addr).await.unwrap();
    let _ = third.write_all(b"GET /hi HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let answer = read_to_close(&mut third, LONG).await.expect("closed at once");
    assert!(answer.is_empty(), "no answer: {answer:?}");
    // The streams go on to their end.
    for s in &mut streams {
        let mut rest = String::new();
        while !rest.contains("chunk 29\n") {
            let mut buf = [0u8; 4096];
            let n = timeout(LONG, s.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "stream cut: {rest}");
            rest.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
}

#[tokio::test]
async fn shutdown_stops_accepting_and_closes_idle_connections() {
    let (addr, stop) = start(limits(60_000, 60_000, 8)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    ask(&mut s, "/hi", "\r\n\r\nhi").await;
    drop(stop);
    read_to_close(&mut s, LONG).await.expect("idle connection closed on shutdown");
    let deadline = Instant::now() + LONG;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::task::yield_now().await;
    }
}

#[test]
fn limits_come_from_the_environment_or_the_descriptor_limit() {
    let none = |_: &str| None;
    let d = Limits::from_env(none, None).unwrap();
    assert_eq!(d, limits(10_000, 60_000, 1024));
    assert_eq!(Limits::from_env(none, Some(20_000)).unwrap().max_connections, 1024);
    assert_eq!(Limits::from_env(none, Some(1024)).unwrap().max_connections, 256);
    assert_eq!(Limits::from_env(none, Some(20)).unwrap().max_connections, 16);
    let env = |k: &str| match k {
        "TEND_HTTP_HEADER_TIMEOUT_MS" => Some("250".to_owned()),
        "TEND_HTTP_IDLE_TIMEOUT_MS" => Some(" 1500 ".to_owned()),
        "TEND_HTTP_MAX_CONNECTIONS" => Some("5000".to_owned()),
        _ => None,
    };
    assert_eq!(Limits::from_env(env, Some(1024)).unwrap(), limits(250, 1500, 5000));
    for bad in ["0", "-1", "10s", ""] {
        let e = Limits::from_env(|k| (k == "TEND_HTTP_IDLE_TIMEOUT_MS").then(|| bad.to_owned()), None);
        assert_eq!(
            e.unwrap_err(),
            format!("TEND_HTTP_IDLE_TIMEOUT_MS={bad:?}: expected a whole number above 0"),
        );
    }
}
