//! The edges of the HTTP server's input against a real `tend serve`: the bearer scheme in any case, a
//! JSON body with garbage after it, and a UI directory with symlinks planted in it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
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

/// One raw request on `s`; the whole answer (the server is asked to close after it).
fn raw_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    read_to_close(&mut s, 10).expect("an answer and a close")
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_the_token_still_checked() {
    let tend = start_env(&format!("[server]\ntoken = \"s3cret\"\n\n{REPORTED}"), &[]);
    let http = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
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
    let http = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
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
