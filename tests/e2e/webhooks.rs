//! Webhooks reach a real local receiver: a rule's channel gets its firing and resolved notifications,
//! retried with backoff while the receiver answers 500, in order; a global webhook gets the recycle
//! request of a reported worker. A failing receiver never holds up evaluation: the alert resolves in the
//! event stream while the firing notification is still being retried.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

/// One request the receiver got: when, on which path, which attempt, the JSON body.
#[derive(Clone, Debug)]
struct Hit {
    at: Instant,
    path: String,
    attempt: u32,
    body: Value,
}

/// An HTTP receiver on 127.0.0.1 that answers 500 to the first `fail_first` requests, then 200.
fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<Hit>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(Mutex::new(Vec::new()));
    let h = hits.clone();
    std::thread::spawn(move || {
        let mut served = 0usize;
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (mut length, mut attempt) = (0usize, 0u32);
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                let lower = header.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if let Some(v) = lower.strip_prefix("x-tend-attempt:") {
                    attempt = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            h.lock().unwrap().push(Hit { at: Instant::now(), path, attempt, body });
            let status = if served < fail_first { "500 Internal Server Error" } else { "200 OK" };
            served += 1;
            let _ = write!(conn, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (base, hits)
}

fn hits(h: &Arc<Mutex<Vec<Hit>>>) -> Vec<Hit> {
    h.lock().unwrap().clone()
}

#[test]
fn webhooks_are_retried_with_backoff_and_never_hold_up_evaluation() {
    let (base, received) = receiver(2);
    let tend = Tend::start(&format!(
        r#"
[[webhook]]
name = "orchestrator"
url = "{base}/alerts"
global = false
retries = 4
backoff = "1s"

[[webhook]]
name = "ops"
url = "{base}/ops"
events = ["recycle_started"]

[[pool]]
name = "loom"
source = "reported"
profile = "realtime"
stale_after = "10m"

[[pool.rule]]
name = "low-success"
metric = "success_rate"
below = 0.2
clear_above = 0.5
channels = ["orchestrator"]
"#
    ));
    let post = |path: &str, body: Value, want: u16| {
        let (status, v) = tend.post(&format!("/api/v1{path}"), body);
        assert_eq!(status, want, "{path}: {v}");
    };
    post("/workers", json!({"id": "w1", "pool": "loom"}), 201);
    post("/workers/w1/state", json!({"state": "READY"}), 200);
    let fired_at = Instant::now();
    post("/workers/w1/metrics", json!({"success_rate": 0.1}), 202);
    // The first attempt fails at once; while it is retried (1 s, then 2 s) evaluation goes on.
    tend.wait_for(10, "the first attempt", |_| (!hits(&received).is_empty()).then_some(()));
    post("/workers/w1/metrics", json!({"success_rate": 0.9}), 202);
    let resolved = tend.events_of("alert_changed").into_iter().find(|e| e["alert"]["state"] == "resolved");
    assert!(resolved.is_some(), "the alert resolved in the event stream while its webhook is retried");
    // The firing notification needs three attempts over about 3 s; evaluation did not wait for them.
    let delivered = hits(&received).len();
    assert!(delivered < 3, "{delivered} attempts already, {:?} after firing", fired_at.elapsed());

    let got = tend.wait_for(20, "firing and resolved delivered", |_| {
        let ok: Vec<Hit> = hits(&received).into_iter().filter(|h| h.path == "/alerts").collect();
        (ok.len() >= 4).then_some(ok)
    });
    let summary: Vec<(u32, &str)> =
        got.iter().map(|h| (h.attempt, h.body["kind"].as_str().unwrap())).collect();
    assert_eq!(summary, [(1, "firing"), (2, "firing"), (3, "firing"), (1, "resolved")], "{got:?}");
    // Exponential backoff: about 1 s, then 2 s between the attempts.
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(gap1 >= Duration::from_millis(900) && gap1 < Duration::from_millis(2500), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(1900) && gap2 < Duration::from_millis(4500), "{gap2:?}");
    let first = &got[0].body;
    assert_eq!(first["webhook"], "orchestrator");
    assert_eq!(first["event"]["type"], "alert_changed");
    assert_eq!(first["event"]["alert"]["rule"], "low-success");
    assert_eq!(first["event"]["alert"]["subject"], "w1");
    assert_eq!(first["event"]["alert"]["state"], "firing");

    // A recycle of a reported worker is a request to its orchestrator: it goes to the global webhook
    // that wants recycles, not to the rule's channel.
    post("/workers/w1/recycle", json!({}), 202);
    let ops = tend.wait_for(10, "the recycle request delivered", |_| {
        hits(&received).into_iter().find(|h| h.path == "/ops")
    });
    assert_eq!(ops.body["kind"], "recycle_started");
    assert_eq!(ops.body["event"]["worker"], "w1");
    assert_eq!(ops.body["event"]["reason"], "manual");
    pause(Duration::from_millis(500));
    assert_eq!(hits(&received).iter().filter(|h| h.path == "/alerts").count(), 4, "nothing else on /alerts");
    // The orchestrator ends the worker: the recycle is recorded.
    post("/workers/w1/state", json!({"state": "COMPLETING"}), 200);
    post("/workers/w1/state", json!({"state": "COMPLETED"}), 200);
    tend.wait_for(10, "the recycled event", |t| t.events_of("recycled").into_iter().next());
}

#[test]
fn an_unknown_channel_or_a_bad_webhook_is_refused_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        &dir,
        "tend.toml",
        r#"[[webhook]]
name = "ops"
url = "ftp://example"
events = ["firing", "exploded"]

[[pool]]
name = "loom"
source = "reported"

[[pool.rule]]
name = "r"
metric = "x"
above = 1
channels = ["pager"]
"#,
    );
    let out =
        std::process::Command::new(TEND).args(["check-config", path.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().map(|l| l.split_once("tend.toml:").map_or(l, |(_, r)| r)).collect();
    assert_eq!(
        lines,
        [
            "3:7: webhook \"ops\": invalid url \"ftp://example\": use http://host:port/path",
            "4:21: webhook \"ops\": unknown event \"exploded\", expected one of: firing, resolved, recycle_started, recycled",
            "14:13: pool \"loom\": rule \"r\": unknown channel \"pager\": use one of desktop, ops (a [[webhook]] name)",
        ],
        "{err}"
    );
}
