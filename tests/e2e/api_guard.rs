//! The API's guard: with a token configured, requests without it (or with a wrong one) are refused,
//! health stays readable; then malformed JSON, wrong types, huge and deeply nested bodies, invalid
//! UTF-8 and byte-level mutations of valid bodies are thrown at every mutating endpoint. Each answer is a
//! 4xx in the API's error shape (the mutations: never a 5xx), and the server stays up throughout.

use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::harness::*;

const TOKEN: &str = "s3cret-token";

fn client(token: Option<&str>) -> Client {
    let mut headers = HeaderMap::new();
    if let Some(t) = token {
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
    }
    http().timeout(Duration::from_secs(10)).default_headers(headers).build().unwrap()
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Byte-level mutations of a valid body: flips, truncations, insertions of JSON punctuation.
fn mutate(valid: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = valid.to_vec();
    for _ in 0..1 + rng.below(3) {
        if b.is_empty() {
            break;
        }
        let i = rng.below(b.len());
        match rng.below(4) {
            0 => b[i] = (rng.next() & 0xff) as u8,
            1 => b.truncate(i),
            2 => {
                let punct = b"{}[]\",:-0e\\\x00\xff";
                b.insert(i, punct[rng.below(punct.len())]);
            }
            _ => {
                b.remove(i);
            }
        }
    }
    b
}

/// The JSON type of a value, to pick values of another type.
fn kind(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

#[test]
fn without_the_token_requests_are_refused_and_health_is_readable() {
    let tend = Tend::start(&format!(
        "[server]\ntoken = \"{TOKEN}\"\n\n[[pool]]\nname = \"loom\"\nsource = \"reported\"\n"
    ));
    let anon = client(None);
    let wrong = client(Some("nope"));
    let good = client(Some(TOKEN));
    let url = |p: &str| tend.url(p);
    for c in [&anon, &wrong] {
        for (method, path) in [
            ("GET", "/api/v1/workers"),
            ("GET", "/api/v1/pools/loom/metrics"),
            ("GET", "/api/v1/openapi.json"),
            ("GET", "/metrics"),
            ("POST", "/api/v1/workers"),
            ("POST", "/api/v1/workers/w1/state"),
            ("POST", "/api/v1/workers/w1/recycle"),
            ("POST", "/api/v1/alerts/ack"),
        ] {
            let req = if method == "GET" { c.get(url(path)) } else { c.post(url(path)).json(&json!({})) };
            let r = req.send().unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path}");
            let v: Value = r.json().unwrap();
            assert_eq!(v["error"]["code"], "unauthorized");
        }
    }
    assert_eq!(anon.get(url("/api/v1/health")).send().unwrap().status().as_u16(), 200);
    let r = good.post(url("/api/v1/workers")).json(&json!({"id": "w1", "pool": "loom"})).send().unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(good.get(url("/metrics")).send().unwrap().status().as_u16(), 200);
    let doc: Value = good.get(url("/api/v1/openapi.json")).send().unwrap().json().unwrap();
    assert!(doc["paths"]["/api/v1/workers/{id}/state"]["post"].is_object(), "{doc}");
}

#[test]
fn malformed_bodies_at_every_endpoint_get_4xx_and_the_server_stays_up() {
    let tend = Tend::start("[[pool]]\nname = \"loom\"\nsource = \"reported\"\n");
    let http = client(None);
    let (s, _) = tend.post("/api/v1/workers", json!({"id": "w1", "pool": "loom"}));
    assert_eq!(s, 201);
    // Each endpoint with a valid body, to mutate.
    let endpoints: Vec<(&str, Value)> = vec![
        ("/api/v1/workers", json!({"id": "w2", "pool": "loom", "task_id": "t", "labels": {"a": "b"}})),
        ("/api/v1/workers/w1/state", json!({"state": "READY", "cause": "up"})),
        ("/api/v1/workers/w1/metrics", json!({"memory_mb": 12.5, "khipu_updates": 3})),
        ("/api/v1/workers/w1/errors", json!({"message": "boom", "kind": "warning"})),
        ("/api/v1/workers/w1/requests", json!({"count": 5})),
        ("/api/v1/alerts/ack", json!({"rule": "r", "subject": "w1"})),
        ("/api/v1/alerts/silence", json!({"rule": "r", "subject": "w1", "minutes": 5})),
    ];
    // Under the size limit, far over serde_json's nesting limit.
    let nested = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let huge = format!("{{\"message\": \"{}\"}}", "x".repeat(200 * 1024));
    let malformed: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"}".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"42".to_vec(),
        b"\"text\"".to_vec(),
        b"{\"a\":}".to_vec(),
        b"{'single': 1}".to_vec(),
        b"\xff\xfe\x00garbage".to_vec(),
        b"{\"id\": \"\xff\"}".to_vec(),
        nested.into_bytes(),
        huge.into_bytes(),
    ];
    let wrong_values =
        [json!(null), json!(-1), json!(1e300), json!("s"), json!([1]), json!({"x": 1}), json!(true)];
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut send = |path: &str, body: Vec<u8>| -> (u16, Value) {
        let r = http.post(tend.url(path)).header(CONTENT_TYPE, "application/json").body(body).send().unwrap();
        let status = r.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        (status, r.json().unwrap_or(Value::Null))
    };
    for (path, valid) in &endpoints {
        for body in &malformed {
            let (status, v) = send(path, body.clone());
            assert!(
                (400..500).contains(&status),
                "{path} with {:?}: {status} {v}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
            assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string(), "{path}: {v}");
        }
        // Every field of the valid body replaced by a value of each other JSON type: 400 naming the field.
        for (key, good) in valid.as_object().unwrap() {
            for bad in wrong_values.iter().filter(|b| !b.is_null() && kind(b) != kind(good)) {
                let mut b = valid.clone();
                b[key] = bad.clone();
                let (status, v) = send(path, serde_json::to_vec(&b).unwrap());
                assert_eq!(status, 400, "{path} {b}: {v}");
                let msg = v["error"]["message"].as_str().unwrap_or("");
                assert!(msg.contains(&format!("{key:?}")), "{path} {b}: the message names the field: {msg}");
            }
        }
        // Unknown fields are refused by name.
        if !path.ends_with("/metrics") {
            let mut b = valid.clone();
            b["surprise"] = json!(1);
            let (status, v) = send(path, serde_json::to_vec(&b).unwrap());
            assert_eq!(status, 400, "{path}: {v}");
            assert!(v["error"]["message"].as_str().unwrap().contains("surprise"), "{v}");
        }
        // Mutations of the valid body: whatever they turn into, never a server error.
        let valid_bytes = serde_json::to_vec(valid).unwrap();
        for _ in 0..60 {
            let body = mutate(&valid_bytes, &mut rng);
            let (status, v) = send(path, body.clone());
            assert!(status < 500, "{path} {:?}: {status} {v}", String::from_utf8_lossy(&body));
        }
    }
    assert!(statuses.keys().all(|s| *s < 500), "{statuses:?}");
    assert!(statuses.get(&413).copied().unwrap_or(0) >= endpoints.len(), "huge bodies get 413: {statuses:?}");
    // Still up and still correct.
    assert_eq!(tend.get("/api/v1/health").0, 200);
    let (s, v) = tend.post("/api/v1/workers/w1/requests", json!({"count": 1}));
    assert_eq!(s, 200, "{v}");
    eprintln!("answers by status: {statuses:?}");
}
