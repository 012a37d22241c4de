//! Bad input gets a clear, located error and no crash: malformed TOML, unknown keys, bad durations, a
//! command that does not exist (at check time and at run time), and the HTTP API's bad requests.

use std::process::Command;

use crate::harness::*;

fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(&dir, "tend.toml", text);
    let out = Command::new(TEND).args(["check-config", path.to_str().unwrap()]).output().unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), all.replace(path.to_str().unwrap(), "tend.toml"))
}

#[test]
fn check_config_locates_every_problem() {
    let (code, out) = check("[[pool]]\nname = \"a\"\ncommand = [\"sleep\", \"1\"\nsize = 1\n");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("tend.toml:"), "names the file: {out}");

    let (code, out) = check("[[pool]]\nname = \"a\"\ncommand = [\"sleep\", \"1\"]\nsise = 1\n");
    assert_eq!(code, 1);
    assert!(out.contains("tend.toml:4:1") && out.contains("unknown key \"sise\""), "{out}");

    let (code, out) = check(
        "[[pool]]\nname = \"a\"\ncommand = [\"sleep\", \"1\"]\nsize = 1\nstop_grace = \"five seconds\"\n",
    );
    assert_eq!(code, 1);
    assert!(out.contains("tend.toml:5:") && out.contains("invalid duration \"five seconds\""), "{out}");

    let (code, out) = check("[[pool]]\nname = \"a\"\ncommand = [\"pythn3-not-here\", \"w.py\"]\nsize = 1\n");
    assert_eq!(code, 1);
    assert!(out.contains("tend.toml:3:") && out.contains("pythn3-not-here"), "{out}");

    let (code, out) = check("[[pool]]\nname = \"a\"\ncommand = [\"sleep\", \"30\"]\nsize = 2\n");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn serve_refuses_a_bad_config_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(&dir, "tend.toml", "[[pool]]\nname = \"a\"\nsize = \"three\"\n");
    let out = Command::new(TEND).args(["serve", "--config", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":3:") && err.contains("size"), "{err}");
}

#[test]
fn a_command_that_disappears_fails_its_restarts_visibly_and_tend_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let prog = write_file(&dir, "worker.sh", "#!/bin/sh\nexec sleep 300\n");
    std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cfg = format!(
        "[[pool]]\nname = \"gone\"\ncommand = [\"{}\"]\nsize = 1\nprofile = \"intensive\"\nreadiness = {{ start_secs = 1 }}\nrecycle = {{ storm_max = 2 }}\n",
        prog.display()
    );
    let cfg_path = write_file(&dir, "tend.toml", &cfg);
    let tend = Tend::start_args(dir, &["serve", "--config", cfg_path.to_str().unwrap()]);
    let w = tend.wait_for(20, "gone-0 READY", |t| {
        by_id(&t.workers(), "gone-0").filter(|w| state_of(w) == "READY").cloned()
    });
    // The program goes away, then the worker dies: every restart now fails to spawn.
    std::fs::remove_file(&prog).unwrap();
    signal(w["pid"].as_u64().unwrap() as u32, libc::SIGKILL);
    let failed = tend.wait_for(30, "a spawn failure", |t| {
        t.events_of("state_changed").into_iter().find(|e| {
            e["to"] == "FAILED" && e["cause"].as_str().is_some_and(|c| c.starts_with("spawn failed"))
        })
    });
    assert!(failed["cause"].as_str().unwrap().contains("worker.sh"), "names the program: {failed}");
    tend.wait_for(30, "the storm breaker holding the slot", |t| {
        t.events_of("storm_tripped").first().cloned()
    });
    assert_eq!(tend.json("/api/v1/health")["status"], "ok", "tend itself is fine");
    assert_eq!(tend.worker("gone-0")["state"], "FAILED");
}

#[test]
fn the_api_answers_bad_requests_with_located_errors() {
    let tend = Tend::start(
        "[[pool]]\nname = \"p\"\ncommand = [\"$TEND_EXE\", \"demo-worker\"]\nsize = 1\nprofile = \"intensive\"\n",
    );
    let (status, body) = tend.post("/api/v1/alerts/ack", serde_json::json!({"rule": 5}));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(body["error"]["message"].as_str().unwrap().contains("rule"), "{body}");
    let (status, body) =
        tend.post("/api/v1/alerts/silence", serde_json::json!({"rule": "r", "subject": "s", "minutes": -1}));
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("minutes"), "{body}");
    let (status, body) = tend.post("/api/v1/alerts/ack", serde_json::json!({"rule": "r", "subject": "s"}));
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, body) = tend.get("/api/v1/nothing-here");
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    assert_eq!(tend.json("/api/v1/health")["status"], "ok");
}

#[test]
fn the_event_stream_sends_lifecycle_events_as_sse() {
    use std::io::{BufRead, BufReader, Write};
    let tend = Tend::start(
        "[[pool]]\nname = \"p\"\ncommand = [\"$TEND_EXE\", \"demo-worker\"]\nsize = 1\nprofile = \"intensive\"\nreadiness = { start_secs = 1 }\n",
    );
    let addr = tend.base.trim_start_matches("http://").to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    write!(s, "GET /api/v1/events?since=0 HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let mut seen_ready = false;
    let mut lines = Vec::new();
    while !seen_ready {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(data) = line.strip_prefix("data: ") {
            let v: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
            seen_ready = v["type"] == "state_changed" && v["to"] == "READY";
        }
        lines.push(line);
    }
    assert!(seen_ready, "got: {lines:?}");
    assert!(lines[0].starts_with("HTTP/1.1 200"), "{}", lines[0]);
    assert!(lines.iter().any(|l| l.to_ascii_lowercase().starts_with("content-type: text/event-stream")));
    assert!(lines.iter().any(|l| l.starts_with("event: worker_added")));
    assert!(lines.iter().any(|l| l.starts_with("id: ")));
}
