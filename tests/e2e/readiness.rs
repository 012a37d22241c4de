//! Readiness probes on real workers (log line, TCP port, HTTP 200, and a deadline that times out), and
//! requests counted from output lines driving READY <-> WORKING and the `max_requests` recycle.

use crate::harness::*;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn ready_cause(tend: &Tend, worker: &str) -> Option<(String, f64)> {
    let d = tend.worker(worker);
    let inc = &d["incarnations"][0];
    let t = inc["transitions"].as_array()?.iter().find(|t| t["to"] == "READY")?;
    Some((t["cause"].as_str()?.to_owned(), inc["startup_secs"].as_f64()?))
}

#[test]
fn log_tcp_and_http_probes_gate_ready_and_a_missed_deadline_times_out() {
    let (tcp, http) = (free_port(), free_port());
    let tend = Tend::start(&format!(
        r#"
[[pool]]
name = "log"
command = ["$TEND_EXE", "demo-worker", "--ready-after", "2"]
size = 1
profile = "intensive"
readiness = {{ log = "demo-worker pid=\\d+ ready", timeout = "20s" }}

[[pool]]
name = "tcp"
command = ["$TEND_EXE", "demo-worker", "--ready-after", "2", "--port", "{tcp}"]
size = 1
profile = "intensive"
readiness = {{ tcp_port = {tcp}, timeout = "20s" }}

[[pool]]
name = "http"
command = ["$TEND_EXE", "demo-worker", "--ready-after", "2", "--port", "{http}"]
size = 1
profile = "intensive"
readiness = {{ http = "http://127.0.0.1:{http}/health", timeout = "20s" }}

[[pool]]
name = "never"
command = ["$TEND_EXE", "demo-worker"]
size = 1
profile = "intensive"
readiness = {{ tcp_port = 1, timeout = "3s" }}
recycle = {{ storm_max = 1 }}
stop_grace = "1s"
"#
    ));
    for (worker, expect) in [("log-0", "log line matched"), ("tcp-0", "tcp"), ("http-0", "http")] {
        let (cause, startup) = tend.wait_for(30, &format!("{worker} READY"), |t| ready_cause(t, worker));
        assert!(cause.to_lowercase().contains(expect), "{worker}: {cause}");
        assert!(startup >= 2.0, "{worker} was not ready before its port/line existed: {startup}s");
    }
    let timeout = tend.wait_for(30, "never-0 TIMEOUT", |t| {
        t.events_of("state_changed").into_iter().find(|e| e["worker"] == "never-0" && e["to"] == "TIMEOUT")
    });
    assert_eq!(timeout["cause"], "not ready after 3s");
    let hung = tend.wait_for(15, "the hung replacement", |t| {
        t.events_of("recycle_started").into_iter().find(|e| e["worker"] == "never-0")
    });
    assert_eq!(hung["reason"], "hung");
}

#[test]
fn requests_from_output_lines_mark_working_and_recycle_at_the_limit() {
    let tend = Tend::start(
        r#"
[[pool]]
name = "req"
command = ["$TEND_EXE", "demo-worker", "--requests-per-sec", "10"]
size = 1
profile = "intensive"
readiness = { start_secs = 1 }
requests_log = "^request \\d+ handled$"
recycle = { max_requests = 40, jitter = 0.0 }
stop_grace = "2s"
"#,
    );
    let working = tend.wait_for(30, "req-0 WORKING", |t| {
        t.events_of("state_changed").into_iter().find(|e| e["worker"] == "req-0" && e["to"] == "WORKING")
    });
    assert!(working["cause"].as_str().unwrap().contains("new requests"), "{working}");
    let rec = tend.wait_for(40, "the requests recycle", |t| {
        t.events_of("recycled").into_iter().find(|e| e["reason"] == "requests")
    });
    assert!(rec["requests"].as_u64().unwrap() >= 40, "{rec}");
    assert!(rec["detail"].as_str().unwrap().contains("reached limit 40"), "{rec}");
    let m = tend.json("/api/v1/pools/req/metrics");
    assert!(m["total_requests"].as_u64().unwrap() >= 40, "{m}");
}
