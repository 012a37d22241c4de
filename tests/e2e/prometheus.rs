//! Prometheus both ways, with the real programs: Tend scrapes two demo workers' own `/metrics`, each on
//! its slot's `$TEND_PORT` (request counter and custom gauge), its own `/metrics` passes `promtool check metrics`, and a real Prometheus
//! (Debian's `prometheus`, on loopback, storage in a temp dir) scrapes Tend and answers a query for a
//! Tend series through its HTTP API.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

fn free_port() -> u16 {
    crate::agents::free_port("127.0.0.1")
}

/// A port P with P + 1 free too, for a pool of two slots.
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no two consecutive free ports on 127.0.0.1");
}

/// Kills the child on drop, so a failed assertion does not leave Prometheus running.
pub struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Percent-encoding of a query parameter value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn wait_until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        pause(Duration::from_millis(250));
    }
}

#[test]
fn tend_scrapes_workers_passes_promtool_and_is_scraped_by_prometheus() {
    // Two slots, each on its own port: `$TEND_PORT` is `port` + the slot number.
    let port = free_port_pair();
    let tend = Tend::start(&format!(
        r#"
[[pool]]
name = "web"
command = ["$TEND_EXE", "demo-worker", "--port", "$TEND_PORT", "--requests-per-sec", "20", "--base-mb", "8"]
size = 2
port = {port}
profile = "intensive"
readiness = {{ log = "listening on" }}
metrics_url = "http://127.0.0.1:$TEND_PORT/metrics"
requests_metric = "demo_requests_total"
"#
    ));
    // Tend reads each worker's own page: its request counter and its custom gauge.
    for id in ["web-0", "web-1"] {
        let w = tend.wait_for(30, &format!("requests and a custom metric scraped from {id}"), |t| {
            let w = t.worker(id);
            let scraped = w["recent_samples"].as_array()?.iter().any(|s| {
                s["metrics"]["custom"]["demo_memory_bytes"].as_f64().is_some_and(|v| v >= 8.0 * 1048576.0)
            });
            (scraped && w["requests"].as_u64()? > 0).then_some(w)
        });
        let custom = w["recent_samples"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find_map(|s| s["metrics"]["custom"].as_object().cloned())
            .unwrap();
        assert!(
            !custom.contains_key("demo_requests_total"),
            "the request counter is not kept as custom: {custom:?}"
        );
        // Series of one name with different labels stay apart; a counter's are also summed by name.
        let num =
            |k: &str| custom.get(k).and_then(|v| v.as_f64()).unwrap_or_else(|| panic!("{k} in {custom:?}"));
        let reads = num("demo_requests_by_kind_total{kind=\"read\"}");
        let writes = num("demo_requests_by_kind_total{kind=\"write\"}");
        assert!(reads > writes, "reads {reads} and writes {writes} are separate series");
        assert_eq!(num("demo_requests_by_kind_total"), reads + writes);
    }

    // promtool accepts Tend's page.
    let page = http_get(tend.url("/metrics")).unwrap().text().unwrap();
    assert!(
        page.contains(r#"tend_worker_custom{pool="web",worker="web-0",metric="demo_memory_bytes"}"#),
        "{page}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; `make setup` installs it)");
    promtool.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\npage:\n{page}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A real Prometheus scrapes Tend every second.
    let dir = tempfile::tempdir().unwrap();
    let target = tend.base.trim_start_matches("http://").to_owned();
    let config = write_file(
        &dir,
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: tend\n    \
             metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    );
    let (_guard, query) = prometheus(dir.path(), &config);
    let result = wait_until(90, "Prometheus to return Tend's series", || {
        let r = query(r#"tend_worker_requests_total{pool="web",worker="web-0"}"#)?;
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(result[0]["metric"]["job"], "tend");
    let value: f64 = result[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(value > 0.0, "{result:?}");
    let up = query(r#"up{job="tend"}"#).unwrap();
    assert_eq!(up[0]["value"][1], "1", "the scrape itself succeeded: {up:?}");
    let state = wait_until(30, "the state gauge in Prometheus", || {
        let r = query(r#"tend_worker_state{worker="web-0",state="WORKING"}"#)?;
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(state[0]["value"][1], "1");
}

/// A real Prometheus with `config`, its storage and log in `dir`, on a free loopback port; and a
/// function that asks it an instant query (None until it answers).
pub fn prometheus(
    dir: &std::path::Path,
    config: &std::path::Path,
) -> (Guard, impl Fn(&str) -> Option<Vec<Value>>) {
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus (Debian package prometheus; `make setup` installs it)");
    let http = http().timeout(Duration::from_secs(5)).build().unwrap();
    let query = move |q: &str| -> Option<Vec<Value>> {
        let url = format!("http://127.0.0.1:{port}/api/v1/query?query={}", encode(q));
        let r = http.get(url).send().ok()?;
        let v: Value = r.json().ok()?;
        (v["status"] == "success").then(|| v["data"]["result"].as_array().cloned().unwrap_or_default())
    };
    (Guard(child), query)
}
