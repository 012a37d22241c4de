//! The HTTP server's limits against a real `tend serve`: a client that stalls in the middle of its
//! request head is cut off, idle connections cannot exhaust the descriptors (the health probe is still
//! answered), event streams are not idle; and the edges of the API's input: the bearer scheme in any
//! case, a JSON body with garbage after it, and a UI directory with symlinks planted in it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

const REPORTED: &str = "[[pool]]\nname = \"loom\"\nsource = \"reported\"\n";

fn start_env(config: &str, env: &[(&str, &str)]) -> Tend {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(&dir, "tend.toml", config);
    let path = path.to_str().unwrap().to_owned();
    Tend::start_env(dir, &["serve", "--config", &path], env)
}

fn addr(tend: &Tend) -> String {
    tend.base.trim_start_matches("http://").to_owned()
}

/// Read until the server closes the connection: Ok(what it sent), or Err after `secs` without a close.
fn read_to_close(s: &mut TcpStream, secs: u64) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(String::from_utf8_lossy(&got).into_owned());
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Ok(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Ok(String::from_utf8_lossy(&got).into_owned()), // reset: closed too
        }
    }
}

/// Whether the server has closed `s` (a read sees the end or a reset rather than waiting).
fn is_closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

/// One raw request on `s`; the whole answer (the server is asked to close after it).
fn raw_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    read_to_close(&mut s, 10).expect("an answer and a close")
}

#[test]
fn a_client_that_stalls_in_its_request_head_is_disconnected_after_the_header_timeout() {
    let tend =
        start_env(REPORTED, &[("TEND_HTTP_HEADER_TIMEOUT_MS", "500"), ("TEND_HTTP_IDLE_TIMEOUT_MS", "1500")]);
    let addr = addr(&tend);
    let mut slow = TcpStream::connect(&addr).unwrap();
    write!(slow, "GET /api/v1/health HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").unwrap();
    let sent = Instant::now();
    let got = read_to_close(&mut slow, 15).expect("the stalled connection is closed by the server");
    assert!(got.is_empty(), "no answer to half a head: {got:?}");
    eprintln!("half a head: closed after {:?}", sent.elapsed());
    // A kept-alive connection is closed once idle for the idle timeout.
    let mut kept = TcpStream::connect(&addr).unwrap();
    write!(kept, "GET /api/v1/health HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let got = read_to_close(&mut kept, 15).expect("the idle connection is closed by the server");
    assert!(got.starts_with("HTTP/1.1 200"), "answered first: {got}");
    assert_eq!(tend.json("/api/v1/health")["status"], "ok");
}

#[test]
fn idle_connections_beyond_the_cap_leave_the_health_probe_answered() {
    // Tend gets 256 descriptors: without a cap, 400 idle connections would take them all.
    const NOFILE: libc::rlim_t = 256;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(&dir, "tend.toml", REPORTED);
    let cfg = cfg.to_str().unwrap().to_owned();
    let tend = Tend::start_with(dir, &["serve", "--config", &cfg], &[], |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit { rlim_cur: NOFILE, rlim_max: NOFILE };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let pid = tend.child.as_ref().unwrap().id();
    let addr = addr(&tend);
    let sock: std::net::SocketAddr = addr.parse().unwrap();
    let mut idle = Vec::new();
    for i in 0..400 {
        let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connection {i}: Tend no longer accepts connections: {e}"));
        if i % 2 == 0 {
            s.write_all(b"GET /api/v1/health HTTP/1.1\r\n").unwrap(); // half a head, then nothing
        }
        idle.push(s);
    }
    let fds = || std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    // At a cap of 64, the 400 connections reach Tend and the longest-waiting ones make room: the 301st
    // is closed once some 365 have been accepted.
    tend.wait_for(30, "the oldest idle connections to be closed for newer ones", |_| {
        is_closed(&mut idle[300]).then_some(())
    });
    let during = fds();
    let started = Instant::now();
    let http = http().timeout(Duration::from_secs(10)).build().unwrap();
    let r = http.get(tend.url("/api/v1/health")).send().expect("health answers during the flood");
    assert_eq!(r.status().as_u16(), 200);
    eprintln!("health during 400 idle connections: {:?}; tend holds {during} descriptors", started.elapsed());
    assert!(during < NOFILE as usize - 16, "descriptors stay well below the limit: {during}");
    assert!(!is_closed(idle.last_mut().unwrap()), "the newest idle connection stays open");
    let log = tend.stderr();
    // Without the colour codes: everything after an ESC up to its `m`.
    let mut parts = log.split('\x1b');
    let first = parts.next().unwrap_or("").to_owned();
    let plain = parts.fold(first, |acc, p| acc + p.split_once('m').map_or(p, |(_, rest)| rest));
    assert!(plain.contains("max_connections=64"), "the cap is a quarter of 256 descriptors:\n{plain}");
}

#[test]
fn an_event_stream_is_not_idle_however_long_it_streams() {
    let tend =
        start_env(REPORTED, &[("TEND_HTTP_HEADER_TIMEOUT_MS", "300"), ("TEND_HTTP_IDLE_TIMEOUT_MS", "300")]);
    let addr = addr(&tend);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(s, "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    r.read_line(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Five idle timeouts without an event: the stream must still be there.
    pause(Duration::from_millis(1500));
    let (status, v) = tend.post("/api/v1/workers", json!({"id": "w-sse", "pool": "loom"}));
    assert_eq!(status, 201, "{v}");
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).expect("the stream is still open");
        assert!(n > 0, "the stream was closed; got {lines:?}");
        if line.starts_with("data: ") && line.contains("w-sse") {
            break;
        }
        lines.push(line);
    }
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_the_token_still_checked() {
    let tend = start_env(&format!("[server]\ntoken = \"s3cret\"\n\n{REPORTED}"), &[]);
    let http = http().timeout(Duration::from_secs(10)).build().unwrap();
    let status = |auth: &str| {
        http.get(tend.url("/api/v1/workers")).header("authorization", auth).send().unwrap().status().as_u16()
    };
    for ok in ["Bearer s3cret", "bearer s3cret", "BEARER s3cret", "bEaReR s3cret"] {
        assert_eq!(status(ok), 200, "{ok}");
    }
    for refused in ["bearer s3creT", "bearer nope", "bearer s3cret-", "Basic s3cret", "s3cret", "bearer"] {
        assert_eq!(status(refused), 401, "{refused}");
    }
}

#[test]
fn a_json_body_with_garbage_after_it_is_refused() {
    let tend = start_env(REPORTED, &[]);
    let http = http().timeout(Duration::from_secs(10)).build().unwrap();
    for (path, body) in [
        ("/api/v1/workers", r#"{"id": "w1", "pool": "loom"} xyz"#),
        ("/api/v1/alerts/ack", r#"{"rule": "r", "subject": "s"} xyz"#),
        ("/api/v1/workers", r#"{"id": "w1", "pool": "loom"}{"id": "w2", "pool": "loom"}"#),
    ] {
        let r =
            http.post(tend.url(path)).header("content-type", "application/json").body(body).send().unwrap();
        assert_eq!(r.status().as_u16(), 400, "{path} {body}");
        let v: Value = r.json().unwrap();
        assert_eq!(v["error"]["code"], "bad_request", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("trailing characters at line 1 column"), "says what and where: {msg}");
    }
    assert!(tend.workers().is_empty(), "nothing was registered");
    // The same body without the garbage (and with trailing whitespace) is fine.
    let (status, v) = tend.post("/api/v1/workers", json!({"id": "w1", "pool": "loom"}));
    assert_eq!(status, 201, "{v}");
}

#[test]
fn the_ui_serves_its_regular_files_and_never_follows_a_symlink_out() {
    let ui = tempfile::tempdir().unwrap();
    write_file(&ui, "index.html", "<!doctype html><title>ui</title>");
    write_file(&ui, "hello.txt", "hello from the ui");
    std::os::unix::fs::symlink("/etc/passwd", ui.path().join("passwd.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", ui.path().join("etc")).unwrap();
    let tend = start_env(REPORTED, &[("TEND_UI_DIR", ui.path().to_str().unwrap())]);
    let addr = addr(&tend);
    let hello = raw_get(&addr, "/hello.txt");
    assert!(hello.starts_with("HTTP/1.1 200") && hello.ends_with("hello from the ui"), "{hello}");
    // Symlinks planted in the directory, and `..`: 404.
    for path in
        ["/passwd.txt", "/etc/passwd", "/etc/hostname", "/../../../../etc/passwd", "/a/../../etc/passwd"]
    {
        let answer = raw_get(&addr, path);
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
        assert!(!answer.contains("root:"), "{path} leaked /etc/passwd: {answer}");
    }
    // Percent-encoded dots are not decoded into `..`: at most a client route (index.html).
    for path in ["/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd"] {
        let answer = raw_get(&addr, path);
        assert!(!answer.contains("root:"), "{path} leaked /etc/passwd: {answer}");
    }
    // A client route of the UI still gets index.html.
    assert!(raw_get(&addr, "/workers/w1").contains("<title>ui</title>"));
}
