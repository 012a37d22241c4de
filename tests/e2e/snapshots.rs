//! Snapshots of today's answers (`tests/e2e/snapshots/*.snap`): the JSON of every GET endpoint under
//! `/api/v1` (the SSE stream's replayed frames included), its error bodies, the OpenAPI document, the
//! Prometheus exposition and the header row of each CSV export, from a real `tend serve` with a spawn
//! pool whose rule fires and an attach pool. What varies from run to run (times, pids, metric values,
//! durations, temp paths, sequence numbers) is redacted; arrays whose order is not part of the contract
//! are sorted. A change of any answer's shape shows as a snapshot diff: review it with `cargo insta
//! review`, or accept every change with `INSTA_UPDATE=always` (docs/ARCHITECTURE.md, "Checks a
//! maintainer runs"). With `CI=true` a mismatch fails and nothing is written.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use insta::internals::Content;
use serde_json::Value;

use crate::harness::*;

/// Kills the attached process on drop, so a failed assertion does not leave it running.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(attached_pid: u32) -> String {
    format!(
        r#"
[[pool]]
name = "work"
command = ["$TEND_EXE", "demo-worker", "--base-mb", "8"]
size = 1
interval = "250ms"
readiness = {{ start_secs = 1 }}
stop_grace = "2s"

[[pool.rule]]
name = "mem-high"
metric = "memory_mb"
above = 1
for_samples = 2
severity = "warning"

[[pool]]
name = "legacy"
source = "attach"
pids = [{attached_pid}]
interval = "250ms"
"#
    )
}

/// Numbers that vary between runs, by the key that holds them; a `null` stays `null`, so a value that
/// appears or disappears still shows in the diff.
const REDACTED: &[(&str, &str)] = &[
    ("at", "[time]"),
    ("since", "[time]"),
    ("started", "[time]"),
    ("last_sample_at", "[time]"),
    ("silenced_until", "[time]"),
    ("t", "[time]"),
    ("from", "[time]"),
    ("to", "[time]"),
    ("seq", "[seq]"),
    ("id", "[seq]"), // an SSE frame's id (worker ids are strings, kept)
    ("pid", "[pid]"),
    ("start_ticks", "[ticks]"),
    ("uptime_secs", "[secs]"),
    ("startup_secs", "[secs]"),
    ("task_secs", "[secs]"),
    ("cpu_percent", "[value]"),
    ("cpu_host_percent", "[value]"),
    ("memory_bytes", "[bytes]"),
    ("memory_percent", "[value]"),
    ("total_memory_bytes", "[bytes]"),
    ("average_cpu_percent", "[value]"),
    ("threads", "[count]"),
    ("fds", "[count]"),
    ("log_lines", "[count]"),
    ("value", "[value]"),
    ("min", "[value]"),
    ("avg", "[value]"),
    ("max", "[value]"),
    ("n", "[count]"),
];

/// Insta settings with [`REDACTED`] applied at any depth (`.**.key`), and the numbers and durations of
/// alert messages (`memory_mb 20.211 above 1 for 249ms`) replaced. Error messages stay as they are.
fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.set_prepend_module_to_snapshot(false);
    for (key, label) in REDACTED {
        let label = *label;
        s.add_redaction(
            &format!(".**.{key}"),
            insta::dynamic_redaction(move |v, _| match v {
                Content::U64(_) | Content::I64(_) | Content::F64(_) | Content::U32(_) | Content::I32(_) => {
                    Content::from(label)
                }
                other => other,
            }),
        );
    }
    // Alerts: in the alert lists, in a worker's detail, inside `alert_changed` events and SSE frames.
    for selector in ["[].message", ".alerts[].message", "[].alert.message", "[].data.alert.message"] {
        s.add_redaction(
            selector,
            insta::dynamic_redaction(|v, _| match v.as_str() {
                Some(m) => Content::from(alert_message_shape(m)),
                None => v,
            }),
        );
    }
    s
}

/// An alert message with each number as `N` and each duration (`249ms`, `5.8s`, `1m5s`) as `[duration]`.
fn alert_message_shape(s: &str) -> String {
    let words: Vec<String> = s
        .split(' ')
        .map(|w| {
            let mut out = String::with_capacity(w.len());
            let mut in_number = false;
            for c in w.chars() {
                if c.is_ascii_digit() || (in_number && c == '.') {
                    if !in_number {
                        out.push('N');
                    }
                    in_number = true;
                } else {
                    in_number = false;
                    out.push(c);
                }
            }
            let is_duration = out.starts_with('N')
                && out.len() > 1
                && out.chars().all(|c| c == 'N' || matches!(c, 'm' | 's' | 'h' | 'd'));
            if is_duration { "[duration]".to_owned() } else { out }
        })
        .collect();
    words.join(" ")
}

/// Replaces run-specific text inside strings (pids in ids and causes, the temp directory).
struct Scrub(Vec<(String, &'static str)>);

impl Scrub {
    fn text(&self, s: &str) -> String {
        self.0.iter().fold(s.to_owned(), |acc, (from, to)| acc.replace(from.as_str(), to))
    }

    fn json(&self, v: Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(&s)),
            Value::Array(a) => Value::Array(a.into_iter().map(|x| self.json(x)).collect()),
            Value::Object(o) => Value::Object(
                o.into_iter().map(|(k, x)| (self.text(&k), self.json(x))).collect::<serde_json::Map<_, _>>(),
            ),
            other => other,
        }
    }
}

/// Sorts an array by a key computed from each element (the order of these lists is not a contract).
fn sorted_by(mut v: Value, key: impl Fn(&Value) -> String) -> Value {
    if let Some(a) = v.as_array_mut() {
        a.sort_by_key(|x| key(x));
    }
    v
}

/// Events in a stable order: by kind, then what they are about (their times and seq are redacted).
fn events_sorted(v: Value) -> Value {
    sorted_by(v, event_key)
}

fn event_key(e: &Value) -> String {
    format!(
        "{}|{}|{}|{}",
        e["type"].as_str().unwrap_or(""),
        e["worker"].as_str().or(e["alert"]["subject"].as_str()).unwrap_or(""),
        e["to"].as_str().unwrap_or(""),
        e["alert"]["state"].as_str().or(e["state"].as_str()).unwrap_or("")
    )
}

/// Keeps only the last element of `v[key]`: its shape, not how many there happened to be.
fn keep_last(mut v: Value, key: &str) -> Value {
    if let Some(a) = v[key].as_array_mut() {
        let last = a.pop();
        a.clear();
        a.extend(last);
    }
    v
}

/// The frames of the SSE stream replayed from the start (`?since=0`): `{event, id, data}` each, read
/// until `done` holds for what arrived (the backlog comes first, in order, so nothing before it is
/// missed); the connection is then dropped.
fn sse_backlog(tend: &Tend, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let client = http().timeout(std::time::Duration::from_secs(10)).build().expect("client");
    let r = client.get(tend.url("/api/v1/events?since=0")).send().expect("GET /api/v1/events");
    assert_eq!(r.status().as_u16(), 200);
    let mut frames = Vec::new();
    let mut frame = serde_json::Map::new();
    for line in BufReader::new(r).lines() {
        let line = line.expect("a line of the stream (or its deadline passed)");
        if line.is_empty() {
            if !frame.is_empty() {
                frames.push(Value::Object(std::mem::take(&mut frame)));
                if done(&frames) {
                    return frames;
                }
            }
            continue;
        }
        let Some((field, value)) = line.split_once(": ") else { continue };
        let value = match field {
            "id" => Value::from(value.parse::<u64>().expect("numeric id")),
            "data" => serde_json::from_str(value).expect("JSON data"),
            _ => Value::from(value),
        };
        frame.insert(field.to_owned(), value);
    }
    panic!("the stream ended after {} frames: {frames:?}", frames.len());
}

fn text(tend: &Tend, path: &str) -> (u16, String) {
    let r = http_get(tend.url(path)).expect("GET");
    (r.status().as_u16(), r.text().expect("body"))
}

/// The Prometheus exposition with every sample's value replaced by `_`, families in name order and the
/// samples of each family sorted: names, HELP and TYPE lines and labels stay.
fn exposition_shape(text: &str) -> String {
    let mut families: Vec<Vec<String>> = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line.starts_with("# HELP ") || families.is_empty() {
            families.push(Vec::new());
        }
        let line = if line.starts_with('#') {
            line.to_owned()
        } else {
            match line.rsplit_once(' ') {
                Some((series, _value)) => format!("{series} _"),
                None => line.to_owned(),
            }
        };
        families.last_mut().expect("a family").push(line);
    }
    for f in &mut families {
        let samples = f.iter().position(|l| !l.starts_with('#')).unwrap_or(f.len());
        f[samples..].sort();
    }
    families.sort();
    families.concat().join("\n")
}

#[test]
fn api_answers_match_their_snapshots() {
    let sleeper = Sleeper(Command::new("sleep").arg("600").stdin(Stdio::null()).spawn().expect("sleep"));
    let attached_pid = sleeper.0.id();
    let attached = format!("legacy-{attached_pid}");
    let tend = Tend::start(&config(attached_pid));

    // A state that does not change any more: both workers READY with full samples, the alert firing,
    // and the history file holding what the snapshots read from it.
    let spawned_pid = tend.wait_for(30, "both workers READY with samples", |t| {
        let ws = t.workers();
        let ready = |id: &str| {
            by_id(&ws, id)
                .filter(|w| state_of(w) == "READY" && w["cpu_percent"].is_number() && w["fds"].is_number())
                .cloned()
        };
        let work = ready("work-0")?;
        ready(&attached)?;
        work["pid"].as_u64()
    });
    tend.wait_for(30, "the alert firing, Tend's own CPU measured and the discovery mode settled", |t| {
        let firing = t.json("/api/v1/alerts").as_array()?.iter().any(|a| a["state"] == "firing");
        let health = t.json("/api/v1/health");
        let settled = !health["discovery"]["detail"].as_str().unwrap_or("starting").starts_with("starting");
        (firing && health["tend"]["cpu_percent"].is_number() && settled).then_some(())
    });
    tend.wait_for(30, "the history written", |t| {
        let has =
            |path: &str, f: &dyn Fn(&Value) -> bool| t.json(path).as_array().is_some_and(|a| a.iter().any(f));
        let ready = |e: &Value| e["to"] == "READY";
        let fired = |e: &Value| e["alert"]["state"] == "firing";
        let alerts = t.json("/api/v1/workers/work-0/history/alerts");
        let points = t.json("/api/v1/workers/work-0/history?metric=memory_bytes&from=-1m&step=1s");
        (alerts.as_array()?.len() == 2
            && has("/api/v1/workers/work-0/history/events", &ready)
            && has("/api/v1/workers/work-0/history/events", &fired)
            && has("/api/v1/pools/legacy/history/events", &ready)
            && !points["points"].as_array()?.is_empty())
        .then_some(())
    });

    let dir = tend.data_dir.parent().expect("temp dir").to_str().expect("utf-8").to_owned();
    let scrub = Scrub(vec![
        (dir, "[tmp]"),
        (format!("-{attached_pid}"), "-[pid]"),
        (format!("pid {attached_pid}"), "pid [pid]"),
        (format!("pid {spawned_pid}"), "pid [pid]"),
    ]);
    let get = |path: &str| scrub.json(tend.json(path));
    let by_id_key = |w: &Value| w["id"].as_str().unwrap_or("").to_owned();
    let by_pool_key = |p: &Value| p["pool"].as_str().unwrap_or("").to_owned();
    let legacy = format!("/api/v1/workers/{attached}");

    settings().bind(|| {
        insta::assert_json_snapshot!("health", get("/api/v1/health"));
        insta::assert_json_snapshot!("settings", get("/api/v1/settings"));
        insta::assert_json_snapshot!("workers", sorted_by(get("/api/v1/workers"), by_id_key));
        insta::assert_json_snapshot!(
            "worker_spawned",
            keep_last(get("/api/v1/workers/work-0"), "recent_samples")
        );
        insta::assert_json_snapshot!("worker_attached", keep_last(get(&legacy), "recent_samples"));
        insta::assert_json_snapshot!("worker_events", events_sorted(get("/api/v1/workers/work-0/events")));
        insta::assert_json_snapshot!("worker_errors", get("/api/v1/workers/work-0/errors"));
        insta::assert_json_snapshot!("orphans", get("/api/v1/orphans"));
        insta::assert_json_snapshot!("pools", sorted_by(get("/api/v1/pools"), by_pool_key));
        insta::assert_json_snapshot!("pool_metrics", get("/api/v1/pools/work/metrics"));
        insta::assert_json_snapshot!("alerts", get("/api/v1/alerts"));
        insta::assert_json_snapshot!(
            "history",
            keep_last(get("/api/v1/workers/work-0/history?metric=memory_bytes&from=-1m&step=1s"), "points")
        );
        insta::assert_json_snapshot!(
            "history_worker_events",
            events_sorted(get("/api/v1/workers/work-0/history/events"))
        );
        insta::assert_json_snapshot!(
            "history_worker_alerts",
            events_sorted(get("/api/v1/workers/work-0/history/alerts"))
        );
        insta::assert_json_snapshot!(
            "history_pool_events",
            events_sorted(get("/api/v1/pools/legacy/history/events"))
        );
        insta::assert_json_snapshot!(
            "history_pool_alerts",
            events_sorted(get("/api/v1/pools/work/history/alerts"))
        );
        insta::assert_json_snapshot!("recycles", get("/api/v1/recycles"));
        let frames = sse_backlog(&tend, |f| {
            let seen = |p: &dyn Fn(&Value) -> bool| f.iter().filter(|x| p(&x["data"])).count();
            seen(&|d| d["to"] == "READY") == 2 && seen(&|d| d["alert"]["state"] == "firing") == 1
        });
        let frames = sorted_by(scrub.json(Value::Array(frames)), |f| event_key(&f["data"]));
        insta::assert_json_snapshot!("event_stream", frames);
        insta::assert_json_snapshot!("openapi", get("/api/v1/openapi.json"));

        // Error answers: status and body.
        let errors: Vec<Value> = [
            "/api/v1/workers/nope",
            "/api/v1/workers/nope/events",
            "/api/v1/workers/nope/history",
            "/api/v1/pools/nope/metrics",
            "/api/v1/pools/nope/history/events",
            "/api/v1/nowhere",
            "/api/v1/recycles?bogus=1",
            "/api/v1/recycles?limit=x",
            "/api/v1/recycles?from=yesterday",
            "/api/v1/workers/work-0/history?step=0",
            "/api/v1/export.csv?kind=bogus",
            "/api/v1/export.csv?worker=nope",
        ]
        .iter()
        .map(|path| {
            let (status, body) = tend.get(path);
            serde_json::json!({"request": path, "status": status, "body": scrub.json(body)})
        })
        .collect();
        insta::assert_json_snapshot!("errors", errors);
    });

    let (status, metrics) = text(&tend, "/metrics");
    assert_eq!(status, 200, "{metrics}");
    insta::with_settings!({snapshot_path => "snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("metrics", scrub.text(&exposition_shape(&metrics)));
    });

    // CSV exports: the header row and its column count, per kind.
    let headers: Vec<String> = ["samples", "events", "alerts", "recycles"]
        .iter()
        .map(|kind| {
            let (status, body) = text(&tend, &format!("/api/v1/export.csv?kind={kind}"));
            assert_eq!(status, 200, "{kind}: {body}");
            let header = body.lines().next().unwrap_or("").to_owned();
            format!("{kind} ({} columns): {header}", header.split(',').count())
        })
        .collect();
    insta::with_settings!({snapshot_path => "snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("csv_headers", headers.join("\n"));
    });
}
