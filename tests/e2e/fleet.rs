//! A hub over several hosts: three `tend serve` agents, each in its own PID namespace (it sees only
//! its own processes) on its own loopback address with a certificate from a CA the test makes, and a
//! hub (`tend serve` with `[[remote]]`) that lists their workers with their hosts, acts on them with
//! the token each agent gave it, and says which agent is down, refuses it, or cannot be trusted.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tend_testkit::tls::TestCa;

use crate::agents::*;
use crate::harness::*;

fn remote(name: &str, url: &str, token: &Path, ca: &Path) -> String {
    format!(
        "[[remote]]\nname = \"{name}\"\nurl = \"{url}\"\ntoken_file = \"{}\"\nca = \"{}\"\n\n",
        token.display(),
        ca.display()
    )
}

fn host<'a>(hosts: &'a Value, name: &str) -> &'a Value {
    hosts.as_array().unwrap().iter().find(|h| h["name"] == name).unwrap_or_else(|| panic!("{name}: {hosts}"))
}

fn workers_of(hub: &Tend, host: &str) -> Vec<Value> {
    hub.workers().into_iter().filter(|w| w["host"] == host).collect()
}

#[test]
fn a_hub_shows_three_agents_acts_on_them_and_marks_one_that_goes_away() {
    let ca = TestCa::new("fleet");
    let mut agents: Vec<Agent> =
        ["127.0.0.2", "127.0.0.3", "127.0.0.4"].iter().map(|ip| Agent::new(&ca, ip)).collect();
    let hub_dir = tempfile::tempdir().unwrap();
    let ca_file = private(hub_dir.path(), "ca.pem", ca.pem());
    let other_ca = private(hub_dir.path(), "other-ca.pem", TestCa::new("stranger").pem());
    let ops = private(hub_dir.path(), "ops.token", HUB_OPS);
    let view = private(hub_dir.path(), "view.token", HUB_VIEW);
    let config = [
        remote("gpu-1", &agents[0].url(), &ops, &ca_file),
        remote("gpu-2", &agents[1].url(), &ops, &ca_file),
        remote("gpu-3", &agents[2].url(), &view, &ca_file),
        remote("wrong-ca", &agents[0].url(), &ops, &other_ca),
    ]
    .concat();
    let hub_config = hub_dir.path().join("tend.toml");
    std::fs::write(&hub_config, config).unwrap();
    let hub =
        Tend::start_args(tempfile::tempdir().unwrap(), &["serve", "--config", hub_config.to_str().unwrap()]);

    // Every agent answers, with its two workers; the one whose certificate the hub cannot trust does not.
    let hosts = hub.wait_for(30, "three agents ok with their workers", |t| {
        let (_, hosts) = t.get("/api/v1/hosts");
        let ready = ["gpu-1", "gpu-2", "gpu-3"].iter().all(|n| {
            let h = host(&hosts, n);
            h["status"] == "ok" && h["by_state"]["READY"] == 2
        });
        ready.then_some(hosts)
    });
    let gpu1 = host(&hosts, "gpu-1");
    assert_eq!(gpu1["url"], agents[0].url());
    assert_eq!(gpu1["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(gpu1["version_skew"], false);
    assert!(gpu1["rtt_ms"].as_f64().unwrap() > 0.0, "{gpu1}");
    let wrong = host(&hosts, "wrong-ca");
    assert_eq!(wrong["status"], "tls_error", "{wrong}");
    assert!(wrong["detail"].as_str().unwrap().contains("UnknownIssuer"), "{wrong}");

    // Each worker appears once per host, with its host and a hub id; each agent sees only its own
    // processes (its own PID namespace: small pids).
    for name in ["gpu-1", "gpu-2", "gpu-3"] {
        let ws = workers_of(&hub, name);
        let mut ids: Vec<&str> = ws.iter().map(|w| w["id"].as_str().unwrap()).collect();
        ids.sort();
        assert_eq!(ids, [format!("api-0@{name}"), format!("api-1@{name}")], "{ws:?}");
        for w in &ws {
            assert_eq!(w["stale"], false);
            assert!(w["pid"].as_u64().unwrap() < 100, "a pid of the agent's namespace: {w}");
        }
    }
    assert!(hub.workers().iter().all(|w| w["host"] != "wrong-ca"));

    // A remote worker's page: its detail and events, read from its agent.
    let detail = hub.json("/api/v1/workers/api-1@gpu-1");
    assert_eq!(detail["id"], "api-1@gpu-1");
    assert_eq!(detail["host"], "gpu-1");
    assert!(!detail["incarnations"].as_array().unwrap().is_empty(), "{detail}");
    let events = hub.json("/api/v1/workers/api-1@gpu-1/events");
    assert!(events.as_array().unwrap().iter().any(|e| e["worker"] == "api-1@gpu-1"), "{events}");
    assert_eq!(hub.get("/api/v1/workers/nope@gpu-1").0, 404);

    // The agents' alerts, with the hub's subjects; an ack through the hub lands on the agent.
    let alerts = hub.wait_for(20, "remote alerts in the hub", |t| {
        let a = t.json("/api/v1/alerts");
        a.as_array()
            .unwrap()
            .iter()
            .any(|x| x["subject"] == "api-1@gpu-1" && x["state"] == "firing")
            .then_some(a)
    });
    assert!(
        alerts.as_array().unwrap().iter().all(|a| a["subject"].as_str().unwrap().contains('@')),
        "{alerts}"
    );
    let (status, e) = hub.post("/api/v1/alerts/ack", json!({"rule": "mem-any", "subject": "api-1@gpu-1"}));
    assert_eq!(status, 200, "{e}");
    let agent1 = agents[0].tend.as_ref().unwrap();
    let direct = http().use_preconfigured_tls(ca.client_config()).build().unwrap();
    let on_agent: Value =
        direct.get(agent1.url("/api/v1/alerts")).bearer_auth(HUB_VIEW).send().unwrap().json().unwrap();
    let acked = on_agent.as_array().unwrap().iter().find(|a| a["subject"] == "api-1").unwrap();
    assert_eq!(acked["acknowledged"], true, "{on_agent}");
    let (status, _) = hub.post("/api/v1/alerts/ack", json!({"rule": "nope", "subject": "api-1@gpu-1"}));
    assert_eq!(status, 404, "the agent's 404 passed on");

    // A recycle through the hub: the pid changes on that agent, for reason manual, and the agent's
    // trail names the hub's token; the hub's own trail names who asked the hub.
    let before = hub.json("/api/v1/workers/api-0@gpu-1")["pid"].as_u64().unwrap();
    let (status, e) = hub.post("/api/v1/workers/api-0@gpu-1/recycle", json!({}));
    assert_eq!(status, 202, "{e}");
    let recycled = agent1.wait_for(20, "the recycle on gpu-1", |t| {
        t.events_of("recycled").into_iter().find(|e| e["worker"] == "api-0" && e["reason"] == "manual")
    });
    assert_eq!(recycled["detail"], "requested by hub");
    let audit = agent1.events_of("operator_action");
    assert!(
        audit.iter().any(|a| a["by"] == "hub" && a["action"] == "recycle" && a["target"] == "api-0"),
        "{audit:?}"
    );
    let mine = hub.events_of("operator_action");
    assert!(
        mine.iter().any(|a| a["target"] == "api-0@gpu-1"
            && a["by"] == "anonymous"
            && a["detail"] == "forwarded to gpu-1"),
        "{mine:?}"
    );
    // The agent's own events come to the hub on its event stream, with the hub's ids.
    let relayed = hub.wait_for(20, "the recycle relayed to the hub", |t| {
        t.events_of("recycled").into_iter().find(|e| e["worker"] == "api-0@gpu-1" && e["reason"] == "manual")
    });
    assert_eq!(relayed["detail"], "requested by hub");
    assert_eq!(relayed["at"], recycled["at"], "the agent's time, not the hub's");
    hub.wait_for(20, "the new pid in the hub", |t| {
        let w = t.json("/api/v1/workers/api-0@gpu-1");
        (w["state"] == "READY" && w["pid"].as_u64() != Some(before)).then_some(())
    });

    // A remote worker's CSV, streamed from its agent's history (the rows name it as the agent does).
    let csv = hub.wait_for(20, "the recycle in the agent's history, exported through the hub", |t| {
        let r = http_get(t.url("/api/v1/export.csv?kind=recycles&worker=api-0@gpu-1&from=-1h")).ok()?;
        let text = (r.status() == 200).then(|| r.text().ok()).flatten()?;
        text.lines().any(|l| l.contains("api-0") && l.contains("manual")).then_some(text)
    });
    assert!(csv.starts_with("time,"), "{csv}");
    let (status, e) = hub.get("/api/v1/export.csv?worker=nope@gpu-1");
    assert_eq!(status, 404, "the agent's 404 passed on: {e}");

    // The agent decides: a viewer token (gpu-3's) may not recycle, and the hub says so.
    let (status, e) = hub.post("/api/v1/workers/api-0@gpu-3/recycle", json!({}));
    assert_eq!(status, 403, "{e}");
    assert_eq!(e["error"]["code"], "forbidden");
    assert!(
        e["error"]["message"].as_str().unwrap().starts_with("host gpu-3: token \"hub-view\" is a viewer"),
        "{e}"
    );

    // An agent that goes away: unreachable within 5 s, its workers stale; back when it returns.
    agents[1].kill();
    let gone = std::time::Instant::now();
    let down = hub.wait_for(10, "gpu-2 unreachable", |t| {
        let (_, hosts) = t.get("/api/v1/hosts");
        let h = host(&hosts, "gpu-2").clone();
        (h["status"] == "unreachable").then_some(h)
    });
    assert!(gone.elapsed() < Duration::from_secs(5), "took {:?}", gone.elapsed());
    assert!(down["detail"].as_str().unwrap().contains("refused"), "{down}");
    let stale = workers_of(&hub, "gpu-2");
    assert_eq!(stale.len(), 2, "still listed: {stale:?}");
    assert!(stale.iter().all(|w| w["stale"] == true), "{stale:?}");
    assert!(workers_of(&hub, "gpu-1").iter().all(|w| w["stale"] == false), "the others stay live");
    let health = hub.json("/api/v1/health");
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(health["degraded"]["host gpu-2"].as_str().unwrap().contains("refused"), "{health}");
    assert_eq!(health["workers"], 6, "the top bar counts every host's workers: {health}");
    let (status, e) = hub.post("/api/v1/workers/api-0@gpu-2/recycle", json!({}));
    assert_eq!(status, 502, "{e}");
    assert_eq!(e["error"]["code"], "host_unreachable");

    agents[1].start();
    hub.wait_for(30, "gpu-2 back with live workers", |t| {
        let ws = workers_of(t, "gpu-2");
        (ws.len() == 2 && ws.iter().all(|w| w["stale"] == false && w["state"] == "READY")).then_some(())
    });
    let (_, hosts) = hub.get("/api/v1/hosts");
    assert_eq!(host(&hosts, "gpu-2")["status"], "ok");
    // No hole in the timeline: every event of the restarted agent reaches the hub, also those it
    // sent before the hub's stream found it again (replayed from the agent's memory).
    let agent2 = agents[1].tend.as_ref().unwrap();
    let key = |e: &Value, w: &str| format!("{} {} {}", e["type"], w, e["at"]);
    hub.wait_for(20, "every event of the restarted gpu-2 in the hub", |t| {
        let theirs: Vec<String> = agent2
            .events()
            .iter()
            .filter_map(|e| e["worker"].as_str().map(|w| key(e, &format!("{w}@gpu-2"))))
            .collect();
        let mine: std::collections::HashSet<String> =
            t.events().iter().filter_map(|e| e["worker"].as_str().map(|w| key(e, w))).collect();
        let missing: Vec<&String> = theirs.iter().filter(|k| !mine.contains(*k)).collect();
        (!theirs.is_empty() && missing.is_empty()).then_some(())
    });
}

/// A server on `127.0.0.1` that answers every request with `answer` (a whole HTTP response), or
/// streams `stream` bytes of JSON-ish garbage when it is set, or (an empty answer) never answers: a
/// hostile, confused or hung "agent".
fn fake_agent(answer: &'static [u8], stream: Option<u64>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                if let Some(total) = stream {
                    let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ";
                    let _ = conn.write_all(head);
                    let _ = conn.write_all(format!("{total}\r\n\r\n[").as_bytes());
                    let chunk = vec![b'['; 64 * 1024];
                    let mut sent = 1u64;
                    while sent < total {
                        if conn.write_all(&chunk).is_err() {
                            return;
                        }
                        sent += chunk.len() as u64;
                    }
                } else if answer.is_empty() {
                    // A hung agent: it takes the request and never answers (until the client leaves).
                    while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
                } else {
                    let _ = conn.write_all(answer);
                }
            });
        }
    });
    url
}

#[test]
fn a_hub_names_what_is_wrong_with_each_bad_agent_and_stays_up() {
    let ca = TestCa::new("bad");
    let agent = Agent::new(&ca, "127.0.0.6");
    let expired = Agent::with_cert(ca.server_cert_valid(&["127.0.0.7"], -30, -1), "127.0.0.7");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = private(dir.path(), "ca.pem", ca.pem());
    let ops = private(dir.path(), "ops.token", HUB_OPS);
    let wrong = private(dir.path(), "wrong.token", "not-the-token");
    let not_tend =
        fake_agent(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 6\r\n\r\nhello!", None);
    let bad_json = fake_agent(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n[{\"id\": 1",
        None,
    );
    let huge = fake_agent(b"", Some(1 << 30));
    let hung = fake_agent(b"", None);
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = [
        remote("down", &format!("https://{closed}"), &ops, &ca_file),
        remote("not-tend", &not_tend, &ops, &ca_file),
        remote("bad-json", &bad_json, &ops, &ca_file),
        remote("huge", &huge, &ops, &ca_file),
        remote("hung", &hung, &ops, &ca_file),
        remote("plain-to-tls", &agent.url().replacen("https://", "http://", 1), &ops, &ca_file),
        remote("tls-to-plain", &not_tend.replacen("http://", "https://", 1), &ops, &ca_file),
        remote("wrong-token", &agent.url(), &wrong, &ca_file),
        remote("expired", &expired.url(), &ops, &ca_file),
        remote("fine", &agent.url(), &ops, &ca_file),
    ]
    .concat();
    let path = dir.path().join("tend.toml");
    std::fs::write(&path, config).unwrap();
    let hub = Tend::start_args(tempfile::tempdir().unwrap(), &["serve", "--config", path.to_str().unwrap()]);
    let expect = [
        ("down", "unreachable", "refused"),
        ("not-tend", "degraded", "not a Tend agent's answer"),
        ("bad-json", "degraded", "not a Tend agent's answer"),
        ("huge", "degraded", "larger than 32 MiB"),
        ("hung", "unreachable", "no answer within 2 s"),
        ("plain-to-tls", "tls_error", "use an https:// url"),
        ("tls-to-plain", "tls_error", "use an http:// url"),
        ("wrong-token", "unauthorized", "missing or wrong bearer token"),
        ("expired", "tls_error", "certificate expired"),
        ("fine", "ok", ""),
    ];
    let hosts = hub.wait_for(40, "every host sorted", |t| {
        let (_, hosts) = t.get("/api/v1/hosts");
        expect.iter().all(|(n, s, _)| host(&hosts, n)["status"] == *s).then_some(hosts)
    });
    for (name, _, why) in expect {
        let detail = host(&hosts, name)["detail"].as_str().unwrap_or("").to_owned();
        assert!(detail.contains(why), "{name}: {detail:?}");
    }
    // The hub stays up and keeps its memory: the gigabyte was refused, not read.
    assert_eq!(hub.get("/api/v1/health").0, 200);
    let rss_kb: u64 = std::fs::read_to_string(format!("/proc/{}/status", hub.child.as_ref().unwrap().id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kb < 400 * 1024, "peak RSS {rss_kb} kB");
    assert_eq!(workers_of(&hub, "fine").len(), 2);
}

/// The documented Prometheus setup (`docs/prometheus/`), with this test's paths and a 1 s interval:
/// a real Prometheus scrapes three agents over TLS with a viewer token and evaluates the rules.
#[test]
fn prometheus_scrapes_three_agents_over_tls_with_a_viewer_token_and_runs_the_rules() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/prometheus");
    let rules = docs.join("tend.rules.yml");
    let out = std::process::Command::new("promtool").arg("check").arg("rules").arg(&rules).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let ca = TestCa::new("prometheus");
    let agents: Vec<Agent> =
        ["127.0.0.2", "127.0.0.3", "127.0.0.4"].iter().map(|ip| Agent::new(&ca, ip)).collect();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = private(dir.path(), "ca.pem", ca.pem());
    let token = private(dir.path(), "tend.token", HUB_VIEW);
    std::fs::copy(&rules, dir.path().join("tend.rules.yml")).unwrap();
    let targets: Vec<String> = agents.iter().map(|a| format!("\"{}:{}\"", a.ip, a.port)).collect();
    let documented = std::fs::read_to_string(docs.join("prometheus.yml")).unwrap();
    let config = documented
        .replace("15s", "1s")
        .replace("/etc/prometheus/tend-ca.pem", ca_file.to_str().unwrap())
        .replace("/etc/prometheus/tend.token", token.to_str().unwrap())
        .replace(r#""10.1.2.3:7878", "10.1.2.4:7878", "10.1.2.5:7878""#, &targets.join(", "));
    assert_ne!(config, documented);
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, &config).unwrap();
    let out = std::process::Command::new("promtool").arg("check").arg("config").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let (_prometheus, query) = crate::prometheus::prometheus(dir.path(), &path);
    let up = crate::prometheus::wait_until(60, "three agents up", || {
        let r = query(r#"up{job="tend"} == 1"#)?;
        (r.len() == 3).then_some(r)
    });
    let mut instances: Vec<String> =
        up.iter().map(|s| s["metric"]["instance"].as_str().unwrap().to_owned()).collect();
    instances.sort();
    let mut want: Vec<String> = targets.iter().map(|t| t.trim_matches('"').to_owned()).collect();
    want.sort();
    assert_eq!(instances, want);
    // The recording rules run over every agent's series: two READY workers on each.
    let ready = crate::prometheus::wait_until(60, "the recording rule over three agents", || {
        let r = query(r#"tend:workers:count{state="READY"} == 2"#)?;
        (r.len() == 3).then_some(r)
    });
    assert_eq!(ready.len(), 3, "{ready:?}");
    let fleet = query(r#"tend:fleet_workers:count{state="READY"}"#).unwrap();
    assert_eq!(fleet[0]["value"][1], "6", "{fleet:?}");
}
