//! The full example from the design parses to the expected values.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tend_engine::config::{
    self, Comparison, Profile, ReadinessCheck, RestartPolicy, RuleCondition, Scope, Severity, SourceConfig,
};

const FULL: &str = r#"
[server]
listen = "127.0.0.1:7878"
token = "s3cret"
[store]
data_dir = "/var/lib/tend"
[[pool]]
name = "api"
source = "spawn"
command = ["python3", "worker.py"]
env = { PYTHONUNBUFFERED = "1" }
cwd = "/srv/api"
size = 3
restart = "always"
profile = "intensive"
interval = "2s"
readiness = { start_secs = 1 }
busy_cpu_percent = 50
stop_grace = "5s"
stale_after = "30s"
task_timeout = "10m"
recycle = { memory_mb = 200, ttl = "1h", max_requests = 1000, jitter = 0.1, warmup = "10s", max_unavailable = 1, storm_max = 5, storm_window = "60s", on_death = true }
[[pool.rule]]
name = "memory-high"
metric = "memory_mb"
above = 150
clear_below = 120
for = "5s"
keep_firing_for = "30s"
severity = "warning"
scope = "worker"
recycle = true
flap_max = 4
flap_window = "10m"
channels = ["desktop"]
[[pool.rule]]
name = "quiet"
stale = "30s"
severity = "critical"
[[pool.rule]]
name = "churn"
restarts = 5
within = "10m"
scope = "pool"
for_samples = 2
[[pool.rule]]
name = "low-success"
metric = "success_rate"
below = 0.2
clear_above = 0.3
for_samples = 5
severity = "info"
[[pool]]
name = "legacy"
source = "attach"
cmdline = "gunicorn: worker"
profile = "standard"
"#;

#[test]
fn the_full_example_parses() {
    let config = super::parse(FULL).unwrap();
    assert_eq!(config.origin, "tend.toml");
    assert_eq!(config.server.listen, "127.0.0.1:7878".parse::<SocketAddr>().unwrap());
    assert_eq!(config.server.token.as_deref(), Some("s3cret"));
    assert_eq!(config.store.data_dir, Some(PathBuf::from("/var/lib/tend")));
    assert_eq!(config.store.retention.raw, Duration::from_secs(86400));
    assert_eq!(config.pools.len(), 2);

    let api = &config.pools[0];
    assert_eq!(api.name, "api");
    let SourceConfig::Spawn(spawn) = &api.source else { panic!("{:?}", api.source) };
    assert_eq!(spawn.command, ["python3", "worker.py"]);
    assert_eq!(spawn.env, BTreeMap::from([("PYTHONUNBUFFERED".to_string(), "1".to_string())]));
    assert_eq!(spawn.cwd.as_deref(), Some(Path::new("/srv/api")));
    assert_eq!(spawn.size, 3);
    assert_eq!(api.restart, RestartPolicy::Always);
    assert_eq!(api.profile, Profile::Intensive);
    assert_eq!(api.interval, Some(Duration::from_secs(2)));
    assert_eq!(api.effective_interval(), Some(Duration::from_secs(2)));
    assert_eq!(api.readiness.check, ReadinessCheck::StartSecs(Duration::from_secs(1)));
    assert_eq!(api.readiness.timeout, Duration::from_secs(30));
    assert_eq!(api.busy_cpu_percent, Some(50.0));
    assert_eq!(api.stop_grace, Duration::from_secs(5));
    assert_eq!(api.stale_after, Some(Duration::from_secs(30)));
    assert_eq!(api.effective_stale_after(), Some(Duration::from_secs(30)));
    assert_eq!(api.task_timeout, Some(Duration::from_secs(600)));

    let r = &api.recycle;
    assert_eq!(r.memory_mb, Some(200));
    assert_eq!(r.ttl, Some(Duration::from_secs(3600)));
    assert_eq!(r.max_requests, Some(1000));
    assert_eq!(r.jitter, 0.1);
    assert_eq!(r.warmup, Duration::from_secs(10));
    assert_eq!(r.max_unavailable, 1);
    assert_eq!(r.storm_max, 5);
    assert_eq!(r.storm_window, Duration::from_secs(60));
    assert!(r.on_death);
    assert!(r.on_timeout);

    assert_eq!(api.rules.len(), 4);
    let mem = &api.rules[0];
    assert_eq!(mem.name, "memory-high");
    assert_eq!(
        mem.condition,
        RuleCondition::Threshold {
            metric: "memory_mb".into(),
            cmp: Comparison::Above,
            fire: 150.0,
            clear: Some(120.0)
        }
    );
    assert_eq!(mem.for_, Duration::from_secs(5));
    assert_eq!(mem.for_samples, 0);
    assert_eq!(mem.keep_firing_for, Duration::from_secs(30));
    assert_eq!(mem.severity, Severity::Warning);
    assert_eq!(mem.scope, Scope::Worker);
    assert!(mem.recycle);
    assert_eq!(mem.flap_max, Some(4));
    assert_eq!(mem.flap_window, Duration::from_secs(600));
    assert_eq!(mem.channels, ["desktop"]);

    let quiet = &api.rules[1];
    assert_eq!(quiet.condition, RuleCondition::Stale { after: Duration::from_secs(30) });
    assert_eq!(quiet.severity, Severity::Critical);
    assert_eq!(quiet.flap_max, None);
    assert!(!quiet.recycle);

    let churn = &api.rules[2];
    assert_eq!(churn.condition, RuleCondition::RestartChurn { max: 5, within: Duration::from_secs(600) });
    assert_eq!(churn.scope, Scope::Pool);
    assert_eq!(churn.for_samples, 2);

    let low = &api.rules[3];
    assert_eq!(
        low.condition,
        RuleCondition::Threshold {
            metric: "success_rate".into(),
            cmp: Comparison::Below,
            fire: 0.2,
            clear: Some(0.3)
        }
    );
    assert_eq!(low.severity, Severity::Info);
    assert_eq!(low.for_samples, 5);

    let legacy = &config.pools[1];
    assert_eq!(legacy.name, "legacy");
    let SourceConfig::Attach(attach) = &legacy.source else { panic!("{:?}", legacy.source) };
    assert_eq!(attach.cmdline.as_ref().map(|p| p.as_str()), Some("gunicorn: worker"));
    assert!(attach.cmdline.as_ref().unwrap().regex().is_match("gunicorn: worker [api]"));
    assert_eq!(attach.process_name, None);
    assert!(attach.pids.is_empty());
    assert_eq!(legacy.profile, Profile::Standard);
    assert_eq!(legacy.effective_interval(), Some(Duration::from_secs(10)));
    assert_eq!(legacy.effective_stale_after(), Some(Duration::from_secs(30)));
    assert!(legacy.rules.is_empty());
}

#[test]
fn defaults_for_a_minimal_pool() {
    let config = super::parse(super::POOL).unwrap();
    assert_eq!(config.server.listen, "127.0.0.1:7878".parse::<SocketAddr>().unwrap());
    assert_eq!(config.server.token, None);
    assert_eq!(config.store.data_dir, None);
    let pool = &config.pools[0];
    assert_eq!(pool.source.kind(), "spawn");
    assert_eq!(pool.restart, RestartPolicy::Always);
    assert_eq!(pool.profile, Profile::Standard);
    assert_eq!(pool.interval, None);
    assert_eq!(pool.effective_interval(), Some(Duration::from_secs(10)));
    assert_eq!(pool.effective_stale_after(), Some(Duration::from_secs(30)));
    assert_eq!(pool.readiness.check, ReadinessCheck::StartSecs(Duration::from_secs(1)));
    assert_eq!(pool.stop_grace, Duration::from_secs(5));
    assert_eq!(pool.recycle.memory_mb, None);
    assert_eq!(pool.recycle.jitter, 0.1);
    assert_eq!(pool.recycle.max_unavailable, 1);
}

#[test]
fn stale_after_defaults_to_three_intervals_but_at_least_five_seconds() {
    let fast = super::parse(&format!("{}profile = \"intensive\"\n", super::POOL)).unwrap();
    assert_eq!(fast.pools[0].effective_stale_after(), Some(Duration::from_secs(5)));
    let slow = super::parse(&format!("{}profile = \"daemon\"\n", super::POOL)).unwrap();
    assert_eq!(slow.pools[0].effective_stale_after(), Some(Duration::from_secs(360)));
    let off = super::parse(&format!("{}profile = \"disabled\"\n", super::POOL)).unwrap();
    assert_eq!(off.pools[0].effective_interval(), None);
    assert_eq!(off.pools[0].effective_stale_after(), None);
}

#[test]
fn readiness_kinds() {
    let cases = [
        ("{ tcp = \"127.0.0.1:9000\" }", ReadinessCheck::Tcp("127.0.0.1:9000".parse().unwrap())),
        ("{ tcp = \"localhost:9000\" }", ReadinessCheck::Tcp("127.0.0.1:9000".parse().unwrap())),
        ("{ tcp_port = 9000 }", ReadinessCheck::TcpPort(9000)),
        (
            "{ http = \"http://127.0.0.1:9000/health\" }",
            ReadinessCheck::Http("http://127.0.0.1:9000/health".into()),
        ),
        ("{ start_secs = 0.5 }", ReadinessCheck::StartSecs(Duration::from_millis(500))),
    ];
    for (readiness, want) in cases {
        let config = super::parse(&format!("{}readiness = {readiness}\n", super::POOL)).unwrap();
        assert_eq!(config.pools[0].readiness.check, want, "{readiness}");
    }
    let config = super::parse(&format!(
        "{}readiness = {{ log = \"listening on .*:\\\\d+\", timeout = \"1m\" }}\n",
        super::POOL
    ))
    .unwrap();
    let ReadinessCheck::Log(p) = &config.pools[0].readiness.check else { panic!() };
    assert!(p.regex().is_match("listening on 127.0.0.1:4000"));
    assert_eq!(config.pools[0].readiness.timeout, Duration::from_secs(60));
}

#[test]
fn other_sources() {
    let text = r#"
[[pool]]
name = "agents"
source = "docker"
labels = { "com.example.pool" = "agents" }
docker_host = "unix:///var/run/docker.sock"
[[pool]]
name = "etl"
source = "docker"
labels = ["tend.pool=etl", "team"]
container_name = "^etl-"
image = "busybox:1"
recycle_mode = "restart"
remove_ended = true
stats = "poll"
orphans_max = 3
clean_orphans = true
readiness = { start_secs = 2 }
[[pool]]
name = "jobs"
source = "reported"
profile = "batch"
[[pool]]
name = "pinned"
source = "attach"
process_name = "nginx"
pids = [1, 42]
"#;
    let config = super::parse(text).unwrap();
    let SourceConfig::Docker(docker) = &config.pools[0].source else { panic!() };
    assert_eq!(docker.labels.get("com.example.pool").map(String::as_str), Some("agents"));
    assert_eq!(docker.docker_host.as_deref(), Some("unix:///var/run/docker.sock"));
    let SourceConfig::Docker(etl) = &config.pools[1].source else { panic!() };
    assert_eq!(etl.labels.get("tend.pool").map(String::as_str), Some("etl"));
    assert_eq!(etl.labels.get("team").map(String::as_str), Some(""));
    assert_eq!(etl.container_name.as_ref().map(|p| p.as_str()), Some("^etl-"));
    assert_eq!(etl.image.as_deref(), Some("busybox:1"));
    assert_eq!(etl.recycle_mode, config::DockerRecycleMode::Restart);
    assert_eq!(etl.stats, config::DockerStatsMode::Poll);
    let SourceConfig::Docker(agents) = &config.pools[0].source else { panic!() };
    assert_eq!(agents.stats, config::DockerStatsMode::Stream, "the default");
    assert!(etl.remove_ended && etl.clean_orphans);
    assert_eq!(etl.orphans_max, Some(3));
    // DOCKER_HOST fills in the engine of pools that name none.
    let mut config = config;
    config.apply_env(|k| (k == "DOCKER_HOST").then(|| "tcp://10.0.0.5:2376".to_owned())).unwrap();
    let SourceConfig::Docker(etl) = &config.pools[1].source else { panic!() };
    assert_eq!(etl.docker_host.as_deref(), Some("tcp://10.0.0.5:2376"));
    let SourceConfig::Docker(agents) = &config.pools[0].source else { panic!() };
    assert_eq!(agents.docker_host.as_deref(), Some("unix:///var/run/docker.sock"));
    assert_eq!(config.pools[2].source, SourceConfig::Reported);
    let SourceConfig::Attach(attach) = &config.pools[3].source else { panic!() };
    assert_eq!(attach.process_name.as_deref(), Some("nginx"));
    assert_eq!(attach.pids, [1, 42]);
}

#[test]
fn durations_may_be_bare_seconds() {
    let config = super::parse(&format!("{}stop_grace = 2\ntask_timeout = 1.5\n", super::POOL)).unwrap();
    assert_eq!(config.pools[0].stop_grace, Duration::from_secs(2));
    assert_eq!(config.pools[0].task_timeout, Some(Duration::from_millis(1500)));
}

#[test]
fn placeholders_are_substituted_per_slot() {
    let text = "[[pool]]\nname = \"d\"\ncommand = [\"$TEND_EXE\", \"demo-worker\", \"--slot\", \"$TEND_SLOT\", \"--name=w$TEND_SLOT\"]\nenv = { SLOT = \"$TEND_SLOT\" }\nsize = 2\n";
    // The placeholder program resolves even with program checks on.
    let config = tend_engine::config::parse(text, "tend.toml").unwrap();
    let SourceConfig::Spawn(spawn) = &config.pools[0].source else { panic!() };
    let argv = spawn.argv_for_slot(Path::new("/opt/tend/bin/tend"), 1);
    assert_eq!(argv, ["/opt/tend/bin/tend", "demo-worker", "--slot", "1", "--name=w1"]);
    assert_eq!(spawn.env_for_slot(1).get("SLOT").map(String::as_str), Some("1"));
}

#[test]
fn programs_resolve_on_path_and_by_path() {
    let text = "[[pool]]\nname = \"a\"\ncommand = [\"sh\", \"-c\", \"sleep 1\"]\nsize = 1\n[[pool]]\nname = \"b\"\ncommand = [\"/bin/sh\"]\nsize = 1\n";
    tend_engine::config::parse(text, "tend.toml").unwrap();
}

#[test]
fn load_reads_a_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tend.toml");
    std::fs::write(&path, "[[pool]]\nname = \"a\"\ncommand = [\"sh\"]\nsize = 0\n").unwrap();
    let err = tend_engine::config::load(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}:4:8: pool \"a\": `size` must be between 1 and 1024, not 0", path.display())
    );
    let missing = dir.path().join("absent.toml");
    let err = tend_engine::config::load(&missing).unwrap_err();
    assert!(err.to_string().starts_with(&format!("{}: cannot read: ", missing.display())), "{err}");
}

/// A pool reads `io` and the fd count when its profile shows them or a rule watches them; a `batch`
/// pool with neither reads only `stat` and `statm`.
#[test]
fn a_sweep_reads_io_and_fds_only_when_the_profile_or_a_rule_needs_them() {
    let pool = |profile: &str, rule: &str| {
        let text = format!(
            "[[pool]]\nname = \"p\"\nsource = \"attach\"\ncmdline = \"x\"\nprofile = \"{profile}\"\n{rule}"
        );
        let cfg = super::parse(&text).unwrap();
        let f = tend_engine::convert::fields(&cfg.pools[0]);
        (f.disk_io, f.fds)
    };
    let rule = |metric: &str| format!("[[pool.rule]]\nname = \"r\"\nmetric = \"{metric}\"\nabove = 1\n");
    assert_eq!(pool("batch", ""), (false, false));
    assert_eq!(pool("standard", ""), (false, true));
    assert_eq!(pool("intensive", ""), (true, true));
    assert_eq!(pool("batch", &rule("fds")), (false, true));
    assert_eq!(pool("batch", &rule("disk_write_bytes")), (true, false));
    assert_eq!(pool("batch", &rule("memory_mb")), (false, false));
    assert_eq!(pool("batch", "[[pool.rule]]\nname = \"s\"\nstale = \"1m\"\n"), (false, false));
}
