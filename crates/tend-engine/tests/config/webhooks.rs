//! `[[webhook]]` sections, the channels that name them, and a pool's `metrics_url` and `port`.

use std::time::Duration;

use super::{POOL, parse, problems};

#[test]
fn webhooks_parse_with_defaults_and_rules_name_them() {
    let text = format!(
        r#"
[[webhook]]
name = "orchestrator"
url = "http://127.0.0.1:9000/tend"
global = false
retries = 2
backoff = "250ms"
timeout = "1s"
events = ["firing", "resolved"]

[[webhook]]
name = "ops"
url = "http://127.0.0.1:9001/"

{POOL}metrics_url = "http://127.0.0.1:910$TEND_SLOT/metrics"
requests_metric = "demo_requests_total"

[[pool.rule]]
name = "r"
metric = "x"
above = 1
channels = ["orchestrator", "desktop"]
"#
    );
    let cfg = parse(&text).unwrap();
    let [orch, ops] = &cfg.webhooks[..] else { panic!("{:?}", cfg.webhooks) };
    assert_eq!((orch.name.as_str(), orch.global, orch.retries), ("orchestrator", false, 2));
    assert_eq!((orch.backoff, orch.timeout), (Duration::from_millis(250), Duration::from_secs(1)));
    assert_eq!(orch.events, ["firing", "resolved"]);
    assert_eq!((ops.global, ops.retries, ops.backoff), (true, 5, Duration::from_millis(500)));
    assert_eq!(ops.events, ["firing", "resolved", "recycle_started", "recycled"]);
    let pool = &cfg.pools[0];
    assert_eq!(pool.metrics_url.as_deref(), Some("http://127.0.0.1:910$TEND_SLOT/metrics"));
    assert_eq!(pool.requests_metric.as_deref(), Some("demo_requests_total"));
    assert_eq!(pool.rules[0].channels, ["orchestrator", "desktop"]);
}

#[test]
fn webhook_and_scrape_problems_are_located() {
    let text = r#"[[webhook]]
name = "desktop"
url = "https://hooks.example/x"
retries = -1

[[webhook]]
name = "a"
url = "http://127.0.0.1:1/"
events = []

[[webhook]]
name = "a"
url = "http://127.0.0.1:2/"

[[pool]]
name = "loom"
source = "reported"
metrics_url = "http://127.0.0.1:1/metrics"

[[pool]]
name = "api"
command = ["python3", "w.py"]
size = 1
metrics_url = "127.0.0.1:1/metrics"
requests_metric = "bad name"
"#;
    assert_eq!(
        problems(text),
        [
            "tend.toml:2:8: webhook \"desktop\": the name \"desktop\" is reserved for desktop notifications",
            "tend.toml:3:7: webhook \"desktop\": https webhooks are not supported by this build: use http://",
            "tend.toml:4:11: webhook \"desktop\": `retries` must be between 0 and 100, not -1",
            "tend.toml:9:10: webhook \"a\": `events` must not be empty (remove the webhook instead)",
            "tend.toml:12:8: webhook \"a\": duplicate webhook name (first defined on line 7)",
            "tend.toml:18:15: pool \"loom\": key \"metrics_url\" applies only to source = \"spawn\", not \"reported\"",
            "tend.toml:24:15: pool \"api\": invalid metrics_url \"127.0.0.1:1/metrics\": use http://host:port/metrics",
            "tend.toml:25:19: pool \"api\": invalid metric name \"bad name\"",
        ]
    );
}

#[test]
fn port_gives_each_slot_its_own_tend_port() {
    let text = r#"[[pool]]
name = "web"
command = ["python3", "w.py", "--port", "$TEND_PORT", "--slot=$TEND_SLOT"]
env = { LISTEN = "127.0.0.1:$TEND_PORT" }
size = 3
port = 9100
metrics_url = "http://127.0.0.1:$TEND_PORT/metrics"
"#;
    let cfg = parse(text).unwrap();
    let tend_engine::config::SourceConfig::Spawn(spawn) = &cfg.pools[0].source else { panic!() };
    let argv: Vec<String> = spawn
        .argv_for_slot(std::path::Path::new("/bin/tend"), 2)
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
    assert_eq!(argv, ["python3", "w.py", "--port", "9102", "--slot=2"]);
    assert_eq!(spawn.env_for_slot(1)["LISTEN"], "127.0.0.1:9101");
    let rt = tend_engine::convert::pool(&cfg.pools[0]).unwrap();
    assert_eq!(rt.scrape.unwrap().url_for_slot(2), "http://127.0.0.1:9102/metrics");
}

#[test]
fn tend_port_without_port_and_ports_that_do_not_fit_are_located() {
    let text = r#"[[pool]]
name = "a"
command = ["python3", "w.py", "--port", "$TEND_PORT"]
size = 1
metrics_url = "http://127.0.0.1:$TEND_PORT/metrics"

[[pool]]
name = "b"
command = ["python3", "w.py"]
size = 3
port = 65534
"#;
    assert_eq!(
        problems(text),
        [
            "tend.toml:3:41: pool \"a\": `$TEND_PORT` needs the pool's `port` (slot N gets port + N)",
            "tend.toml:5:15: pool \"a\": `$TEND_PORT` needs the pool's `port` (slot N gets port + N)",
            "tend.toml:11:8: pool \"b\": `port` 65534 + 3 slots must fit in 1..=65535",
        ]
    );
}
