//! `tend serve` as an agent that is safe on a network: HTTPS with a certificate from a CA the test
//! makes (rotated without a restart), named tokens with roles, the audit trail of who acted, and the
//! brake on guessing tokens.

use std::path::Path;
use std::time::Duration;

use reqwest::blocking::Client;
use serde_json::{Value, json};
use tend_testkit::tls::TestCa;

use crate::agents::private;
use crate::harness::*;

const OPS: &str = "ops-secret-7f3a9c2e41b8d5";
const WALL: &str = "wall-secret-0c9d8e7f6a5b4c";
const CI: &str = "ci-secret-1a2b3c4d5e6f7a8b";

/// A client that trusts `ca` only, optionally sending from another loopback address.
fn client(ca: &TestCa, from: Option<&str>) -> Client {
    let mut b = http().timeout(Duration::from_secs(10)).use_preconfigured_tls(ca.client_config());
    if let Some(ip) = from {
        b = b.local_address(ip.parse::<std::net::IpAddr>().unwrap());
    }
    b.build().unwrap()
}

fn call(c: &Client, method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut r = match method {
        "GET" => c.get(url),
        _ => c.post(url),
    };
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().unwrap_or_else(|e| panic!("{method} {url}: {e:?}"));
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

fn start(ca: &TestCa) -> Tend {
    let dir = tempfile::tempdir().unwrap();
    ca.server_cert(&["127.0.0.1"]).write(dir.path());
    let config = format!(
        r#"
[server]
tls = {{ cert = "cert.pem", key = "key.pem" }}

[[server.token]]
name = "ops-laptop"
role = "operator"
secret_file = "{ops}"

[[server.token]]
name = "wall"
role = "viewer"
secret_file = "{wall}"

[[server.token]]
name = "ci"
role = "reporter"
secret_env = "TEND_TEST_CI_TOKEN"

[[pool]]
name = "api"
command = ["sleep", "300"]
size = 1
readiness = {{ start_secs = 0.2 }}
stop_grace = "1s"

[[pool]]
name = "batch"
source = "reported"
"#,
        ops = private(dir.path(), "ops.token", OPS).display(),
        wall = private(dir.path(), "wall.token", WALL).display(),
    );
    let path = dir.path().join("tend.toml");
    std::fs::write(&path, config).unwrap();
    let args = ["serve", "--config", path.to_str().unwrap()];
    let data = dir.path().join("data");
    Tend::start_env(dir, &args, &[("TEND_DATA_DIR", data.to_str().unwrap()), ("TEND_TEST_CI_TOKEN", CI)])
}

#[test]
fn an_agent_over_tls_lets_each_token_do_what_its_role_allows_and_names_who_acted() {
    let ca = TestCa::new("agent");
    let tend = start(&ca);
    assert!(tend.base.starts_with("https://127.0.0.1:"), "{}", tend.base);
    let c = client(&ca, None);
    let url = |p: &str| tend.url(p);

    // The health check needs no token, and says how it is served.
    let (status, health) = call(&c, "GET", &url("/api/v1/health"), None, None);
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["transport"], json!({"tls": true, "insecure_http": false, "tokens": true}));

    // No token, a wrong one: 401.
    assert_eq!(call(&c, "GET", &url("/api/v1/workers"), None, None).0, 401);
    assert_eq!(call(&c, "GET", &url("/api/v1/workers"), Some("nope-nope-nope-nope"), None).0, 401);

    // A viewer sees everything, and acts on nothing.
    let pid = tend.wait_for(20, "api-0 READY", |_| {
        let (s, w) = call(&c, "GET", &url("/api/v1/workers/api-0"), Some(WALL), None);
        (s == 200 && w["state"] == "READY").then(|| w["pid"].as_u64().unwrap())
    });
    assert_eq!(call(&c, "GET", &url("/metrics"), Some(WALL), None).0, 200);
    let (status, e) = call(&c, "POST", &url("/api/v1/workers/api-0/recycle"), Some(WALL), None);
    assert_eq!(status, 403, "{e}");
    assert_eq!(e["error"]["code"], "forbidden");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("token \"wall\" is a viewer"), "{message}");
    assert!(message.contains("POST /workers/{id}/recycle needs the operator role"), "{message}");
    let ack = json!({"rule": "r", "subject": "api-0"});
    assert_eq!(call(&c, "POST", &url("/api/v1/alerts/ack"), Some(WALL), Some(ack)).0, 403);

    // A reporter uses the report API and nothing else.
    let reg = json!({"id": "job-1", "pool": "batch"});
    let (status, e) = call(&c, "POST", &url("/api/v1/workers"), Some(CI), Some(reg));
    assert!(status == 200 || status == 201, "{status} {e}");
    let (status, e) =
        call(&c, "POST", &url("/api/v1/workers/job-1/state"), Some(CI), Some(json!({"state": "READY"})));
    assert_eq!(status, 200, "{e}");
    assert_eq!(call(&c, "GET", &url("/api/v1/workers"), Some(CI), None).0, 403);
    assert_eq!(call(&c, "POST", &url("/api/v1/workers/api-0/stop"), Some(CI), None).0, 403);

    // An operator recycles; the new pid comes with reason manual, and the trail names the token.
    let (status, e) = call(&c, "POST", &url("/api/v1/workers/api-0/recycle"), Some(OPS), None);
    assert_eq!(status, 202, "{e}");
    let recycled = tend.wait_for(20, "the manual recycle", |t| {
        t.events_of("recycled").into_iter().find(|e| e["worker"] == "api-0" && e["reason"] == "manual")
    });
    assert_eq!(recycled["detail"], "requested by ops-laptop");
    let new_pid = tend.wait_for(20, "api-0 READY again", |_| {
        let (_, w) = call(&c, "GET", &url("/api/v1/workers/api-0"), Some(WALL), None);
        (w["state"] == "READY" && w["pid"].as_u64() != Some(pid)).then(|| w["pid"].as_u64().unwrap())
    });
    assert_ne!(new_pid, pid);
    let audit = tend.events_of("operator_action");
    assert_eq!(audit.len(), 1, "only what was allowed is in the trail: {audit:?}");
    assert_eq!(audit[0]["by"], "ops-laptop");
    assert_eq!(audit[0]["action"], "recycle");
    assert_eq!(audit[0]["target"], "api-0");
    assert_eq!(audit[0]["worker"], "api-0");
    assert_eq!(audit[0]["pool"], "api");

    // The trail is in the history, and in the worker's timeline of the API (what the UI shows).
    let history = tend.wait_for(20, "the audit event in the history", |_| {
        let (_, h) = call(&c, "GET", &url("/api/v1/workers/api-0/history/events"), Some(WALL), None);
        h.as_array()?.iter().find(|e| e["type"] == "operator_action").cloned()
    });
    assert_eq!(history["by"], "ops-laptop");
    let (_, timeline) = call(&c, "GET", &url("/api/v1/workers/api-0/events"), Some(WALL), None);
    assert!(
        timeline
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "operator_action" && e["by"] == "ops-laptop"),
        "{timeline}"
    );

    // A client that does not trust the CA, or speaks plain HTTP to the TLS port, gets nothing.
    let stranger = http()
        .timeout(Duration::from_secs(5))
        .use_preconfigured_tls(TestCa::new("other").client_config())
        .build()
        .unwrap();
    let err = stranger.get(url("/api/v1/health")).send().unwrap_err();
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
    let plain = url("/api/v1/health").replacen("https://", "http://", 1);
    assert!(http().build().unwrap().get(plain).timeout(Duration::from_secs(5)).send().is_err());
    assert_eq!(call(&c, "GET", &url("/api/v1/health"), None, None).0, 200, "still serving");
}

#[test]
fn guessing_tokens_is_braked_per_address() {
    let ca = TestCa::new("brake");
    let tend = start(&ca);
    let guesser = client(&ca, Some("127.0.0.5"));
    let url = tend.url("/api/v1/workers");
    for i in 0..10 {
        let (status, _) = call(&guesser, "GET", &url, Some(&format!("guess-{i:016}")), None);
        assert_eq!(status, 401, "attempt {i}");
    }
    let r = guesser.get(&url).bearer_auth(OPS).send().unwrap();
    assert_eq!(r.status().as_u16(), 429, "even the right token waits out the window");
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
    // Another address is not affected; the health check never is.
    assert_eq!(call(&client(&ca, None), "GET", &url, Some(OPS), None).0, 200);
    assert_eq!(call(&guesser, "GET", &tend.url("/api/v1/health"), None, None).0, 200);
}

#[test]
fn a_rotated_certificate_is_served_without_a_restart_and_a_broken_one_is_refused() {
    let ca = TestCa::new("first");
    let tend = start(&ca);
    let dir = Path::new(&tend.data_dir).parent().unwrap().to_path_buf();
    let health = tend.url("/api/v1/health");
    assert_eq!(call(&client(&ca, None), "GET", &health, None, None).0, 200);

    let next = TestCa::new("second");
    next.server_cert(&["127.0.0.1"]).write(&dir);
    let fresh = client(&next, None);
    tend.wait_for(15, "the new certificate served", |_| {
        fresh.get(&health).send().ok().filter(|r| r.status() == 200)
    });
    assert!(client(&ca, None).get(&health).send().is_err(), "the old CA no longer matches");

    // A broken pair (a key of another certificate) is refused; the one in use stays.
    // (Counted: the rotation above may have caught the new certificate before its key, and refused
    // that pair for a moment.)
    let refusals = |t: &Tend| t.stderr().matches("does not go with cert").count();
    let before = refusals(&tend);
    let other = next.server_cert(&["127.0.0.1"]);
    std::fs::write(dir.join("key.pem"), other.key_pem).unwrap();
    tend.wait_for(15, "the refusal logged", |t| (refusals(t) > before).then_some(()));
    assert_eq!(call(&fresh, "GET", &health, None, None).0, 200, "still the previous certificate");
}

#[test]
fn an_expired_certificate_is_refused_by_clients_and_bad_tls_files_stop_the_start() {
    let ca = TestCa::new("expired");
    let dir = tempfile::tempdir().unwrap();
    ca.server_cert_valid(&["127.0.0.1"], -30, -1).write(dir.path());
    let path = dir.path().join("tend.toml");
    std::fs::write(&path, "[server]\ntls = { cert = \"cert.pem\", key = \"key.pem\" }\n").unwrap();
    let tend = Tend::start_args(dir, &["serve", "--config", path.to_str().unwrap()]);
    let err = client(&ca, None).get(tend.url("/api/v1/health")).send().unwrap_err();
    assert!(format!("{err:?}").contains("Expired"), "{err:?}");
    drop(tend);

    // Not PEM at all: `tend serve` exits at once, naming the file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    let path = dir.path().join("tend.toml");
    std::fs::write(&path, "[server]\ntls = { cert = \"cert.pem\", key = \"key.pem\" }\n").unwrap();
    let out = std::process::Command::new(TEND)
        .args(["serve", "--config", path.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env("TEND_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cert.pem: no PEM certificate in it"), "{stderr}");
}

#[test]
fn plain_http_on_a_network_address_is_refused_unless_insecure_http_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(TEND);
        cmd.args(["serve", "--listen", "0.0.0.0:0"])
            .env("TEND_DATA_DIR", dir.path().join("data"))
            .env("TEND_TOKEN", "s3cret-s3cret-s3cret")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let out = serve(&[]).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("which is not a loopback address, without TLS"), "{stderr}");
    assert!(stderr.contains("insecure_http = true"), "{stderr}");

    // Said so: it serves, warns in its log, and its health tells the UI to show a warning.
    let mut child = serve(&[("TEND_INSECURE_HTTP", "1")]);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut log = Vec::new();
    let mut port = None;
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(addr) = line.strip_prefix("tend: listening on http://0.0.0.0:") {
            port = Some(addr.to_owned());
            break;
        }
        log.push(line);
    }
    // The rest of its log is read (and dropped), so that its writes never meet a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let port = port.unwrap_or_else(|| panic!("no listening line:\n{}", log.join("\n")));
    assert!(log.iter().any(|l| l.contains("serving plain HTTP on a network address")), "{}", log.join("\n"));
    let health: Value = http_get(format!("http://127.0.0.1:{port}/api/v1/health")).unwrap().json().unwrap();
    assert_eq!(health["transport"], json!({"tls": false, "insecure_http": true, "tokens": true}));
    signal(child.id(), libc::SIGTERM);
    assert!(child.wait().unwrap().success());
}
