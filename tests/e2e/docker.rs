//! Docker pools against a real private engine (`tend_testkit::dockerd`): containers found by label, metrics
//! compared with the engine's own `docker stats`, lifecycle from engine events, recycles by recreate,
//! the engine dying and coming back, orphans, and 50 containers at 1 Hz.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Tend, by_id, pause, state_of};
use tend_testkit::dockerd::{Dockerd, IMAGE};

fn pool(name: &str, d: &Dockerd, extra: &str) -> String {
    format!(
        "[[pool]]\nname = \"{name}\"\nsource = \"docker\"\nlabels = [\"tend.pool={name}\"]\n\
         docker_host = \"{}\"\ninterval = \"1s\"\nreadiness = {{ start_secs = 1 }}\nstop_grace = \"1s\"\n{extra}\n",
        d.host
    )
}

/// A shell loop that keeps `mb` MiB in a variable (busybox `sh -c 'x=..; sleep'` would exec sleep).
fn hog(mb: u32) -> String {
    format!(
        "x=$(dd if=/dev/zero bs=1048576 count={mb} 2>/dev/null | tr '\\000' a); while :; do sleep 1; done"
    )
}

/// `docker stats --no-stream` of one container: (CPU %, memory bytes).
fn docker_stats(d: &Dockerd, name: &str) -> (f64, f64) {
    let out = d.ok(&["stats", "--no-stream", "--format", "{{.CPUPerc}} {{.MemUsage}}", name]);
    let mut parts = out.split_whitespace();
    let cpu: f64 = parts.next().unwrap().trim_end_matches('%').parse().unwrap();
    let mem = parse_size(parts.next().unwrap());
    (cpu, mem)
}

fn parse_size(s: &str) -> f64 {
    let units = [("GiB", 1024.0 * 1024.0 * 1024.0), ("MiB", 1024.0 * 1024.0), ("KiB", 1024.0), ("B", 1.0)];
    for (u, f) in units {
        if let Some(n) = s.strip_suffix(u) {
            return n.parse::<f64>().unwrap() * f;
        }
    }
    panic!("unparsable size {s}")
}

fn worker_where(t: &Tend, id: &str, f: impl Fn(&Value) -> bool) -> Option<Value> {
    by_id(&t.workers(), id).filter(|w| f(w)).cloned()
}

fn transitions(t: &Tend, worker: &str) -> Vec<String> {
    t.events_of("state_changed")
        .into_iter()
        .filter(|e| e["worker"] == worker)
        .map(|e| e["to"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn labelled_containers_are_workers_with_cpu_and_memory_like_docker_stats() {
    let d = Dockerd::start();
    d.run(&["--name", "st-burn", "--label", "tend.pool=st", IMAGE, "sh", "-c", "while :; do :; done"]);
    d.run(&["--name", "st-mem", "--label", "tend.pool=st", IMAGE, "sh", "-c", &hog(48)]);
    // Not in the pool: another label value, and no label.
    d.run(&["--name", "other", "--label", "tend.pool=elsewhere", IMAGE, "sleep", "600"]);
    d.run(&["--name", "plain", IMAGE, "sleep", "600"]);
    let t = Tend::start(&pool("st", &d, ""));
    let burn = t.wait_for(30, "st-burn READY with a CPU figure", |t| {
        worker_where(t, "st-burn", |w| state_of(w) == "READY" && w["cpu_percent"].is_number())
    });
    assert_eq!(burn["source"], "container");
    assert_eq!(burn["container"], "st-burn");
    t.wait_for(30, "st-mem READY with its memory held", |t| {
        worker_where(t, "st-mem", |w| {
            state_of(w) == "READY" && w["memory_bytes"].as_f64().is_some_and(|m| m > 40.0 * 1048576.0)
        })
    });
    let ids: Vec<String> = t.workers().iter().map(|w| w["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 2, "only the pool's containers are workers: {ids:?}");

    // CPU: the engine's own figure (each `docker stats --no-stream` computes it over one ~1 s step of
    // the engine's stats collector) against Tend's samples over the same seconds. Tend reads the same
    // collector once a second and computes the same ratio, so each docker figure has a Tend sample within
    // a few points (the busy loop's share moves with the shared machine's load from second to second,
    // so averages over misaligned windows would not be a fair comparison).
    let began = Instant::now();
    let mut docker_cpu = Vec::new();
    while began.elapsed() < Duration::from_secs(8) {
        docker_cpu.push(docker_stats(&d, "st-burn").0);
    }
    let secs = began.elapsed().as_secs_f64().round() as usize + 1;
    let detail = t.worker("st-burn");
    let samples = detail["recent_samples"].as_array().unwrap();
    let tend_cpu: Vec<f64> =
        samples.iter().rev().take(secs).filter_map(|s| s["metrics"]["cpu_percent"].as_f64()).collect();
    let matched = docker_cpu.iter().filter(|a| tend_cpu.iter().any(|b| (*a - b).abs() <= 3.0)).count();
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (a, b) = (avg(&docker_cpu), avg(&tend_cpu));
    assert!(
        matched * 4 >= docker_cpu.len() * 3 && (a - b).abs() <= 15.0,
        "CPU % of the burner: docker stats {docker_cpu:?} (avg {a:.1}), tend {tend_cpu:?} (avg {b:.1})"
    );
    // The loop's share depends on the machine's load (tests run in parallel); it is busy all the same.
    assert!(b > 10.0, "a busy loop shows as busy: {tend_cpu:?}");
    let host = t.worker("st-burn")["recent_samples"].as_array().unwrap().last().unwrap()["metrics"].clone();
    assert!(host["cpu_host_percent"].as_f64().unwrap() <= host["cpu_percent"].as_f64().unwrap());

    // Memory: usage minus inactive file cache, as docker stats shows it.
    let (_, docker_mem) = docker_stats(&d, "st-mem");
    let tend_mem = t.worker("st-mem")["memory_bytes"].as_f64().unwrap();
    let rel = (docker_mem - tend_mem).abs() / docker_mem;
    assert!(rel < 0.05, "memory: docker stats {docker_mem}, tend {tend_mem}");
    let mem_pct = t.worker("st-mem")["memory_percent"].as_f64().unwrap();
    assert!(mem_pct > 0.0 && mem_pct < 100.0, "memory % of the limit (the host's here): {mem_pct}");

    // Lifecycle: INITIALIZING then READY (no healthcheck: running for start_secs).
    assert_eq!(transitions(&t, "st-burn")[..2], ["INITIALIZING", "READY"]);
    let health = t.json("/api/v1/health");
    assert_eq!(health["status"], "ok", "{health}");
}

#[test]
fn a_container_that_exits_1_goes_failed_then_cleaned_when_removed() {
    let d = Dockerd::start();
    let t = Tend::start(&pool("ex", &d, "remove_ended = true"));
    pause(Duration::from_millis(500));
    d.run(&["--name", "ex-fail", "--label", "tend.pool=ex", IMAGE, "sh", "-c", "sleep 2; exit 1"]);
    t.wait_for(30, "ex-fail CLEANED", |t| {
        let tr = transitions(t, "ex-fail");
        tr.last().is_some_and(|s| s == "CLEANED").then_some(tr)
    });
    let tr = transitions(&t, "ex-fail");
    assert_eq!(tr, ["INITIALIZING", "READY", "FAILED", "CLEANED"], "{tr:?}");
    let failed = t
        .events_of("state_changed")
        .into_iter()
        .find(|e| e["worker"] == "ex-fail" && e["to"] == "FAILED")
        .unwrap();
    assert!(failed["cause"].as_str().unwrap().contains("exited with code 1"), "{failed}");
    // remove_ended: Tend removed it.
    t.wait_for(10, "the container removed", |_| {
        (d.ok(&["ps", "-aq", "--filter", "name=ex-fail"]).is_empty()).then_some(())
    });

    // One that completes (exit 0) is COMPLETED; one killed by the OOM killer is FAILED.
    d.run(&["--name", "ex-ok", "--label", "tend.pool=ex", IMAGE, "sh", "-c", "sleep 2; exit 0"]);
    t.wait_for(30, "ex-ok CLEANED", |t| {
        transitions(t, "ex-ok").contains(&"CLEANED".to_owned()).then_some(())
    });
    let tr = transitions(&t, "ex-ok");
    assert_eq!(tr, ["INITIALIZING", "READY", "COMPLETING", "COMPLETED", "CLEANED"], "{tr:?}");

    // Stop and remove by API call: stop leaves a TERMINATED container, remove cleans it.
    d.run(&["--name", "ex-svc", "--label", "tend.pool=ex", IMAGE, "sleep", "600"]);
    t.wait_for(30, "ex-svc READY", |t| worker_where(t, "ex-svc", |w| state_of(w) == "READY"));
    let (st, v) = t.post("/api/v1/workers/ex-svc/stop", serde_json::json!({}));
    assert_eq!(st, 202, "{v}");
    t.wait_for(30, "ex-svc TERMINATED", |t| worker_where(t, "ex-svc", |w| state_of(w) == "TERMINATED"));
    assert_eq!(d.ok(&["inspect", "--format", "{{.State.Status}}", "ex-svc"]), "exited");
    let (st, v) = t.post("/api/v1/workers/ex-svc/remove", serde_json::json!({}));
    assert_eq!(st, 202, "{v}");
    t.wait_for(30, "ex-svc CLEANED", |t| {
        transitions(t, "ex-svc").contains(&"CLEANED".to_owned()).then_some(())
    });
    assert_eq!(transitions(&t, "ex-svc"), ["INITIALIZING", "READY", "COMPLETING", "TERMINATED", "CLEANED"]);
    assert!(d.ok(&["ps", "-aq", "--filter", "name=ex-svc"]).is_empty());
    let (st, v) = t.post("/api/v1/workers/nope/remove", serde_json::json!({}));
    assert_eq!(st, 404, "{v}");
}

fn inspect(d: &Dockerd, name: &str, format: &str) -> String {
    d.ok(&["inspect", "--format", format, name])
}

#[test]
fn a_memory_recycle_recreates_the_container_with_the_same_config_before_removing_the_old_one() {
    let d = Dockerd::start();
    let t = Tend::start(&pool("rc", &d, "recycle = { memory_mb = 30, warmup = \"1s\", storm_max = 50 }"));
    let hog = hog(48);
    d.run(&[
        "--name",
        "rc-hog",
        "--label",
        "tend.pool=rc",
        "--label",
        "team=blue",
        "--env",
        "FOO=bar",
        "--memory",
        "200m",
        "--cpus",
        "1.5",
        IMAGE,
        "sh",
        "-c",
        &hog,
    ]);
    let started = t.wait_for(60, "a memory recycle started", |t| {
        t.events_of("recycle_started")
            .into_iter()
            .find(|e| e["worker"] == "rc-hog" && e["reason"] == "memory")
    });
    assert!(started["detail"].as_str().unwrap().contains("rc-hog"), "{started}");
    let done = t.wait_for(60, "the recycle done", |t| {
        t.events_of("recycled").into_iter().find(|e| e["worker"] == "rc-hog")
    });
    assert_eq!(done["reason"], "memory");
    assert!(done["last_metrics"]["memory_bytes"].as_f64().unwrap() > 30.0 * 1048576.0, "{done}");

    // The copy: same image, command, env, labels and limits, plus the worker label.
    let copy = "rc-hog-r2";
    let labels: Value = serde_json::from_str(&inspect(&d, copy, "{{json .Config.Labels}}")).unwrap();
    assert_eq!(labels["tend.pool"], "rc");
    assert_eq!(labels["team"], "blue");
    assert_eq!(labels["tend.worker"], "rc-hog");
    let env = inspect(&d, copy, "{{json .Config.Env}}");
    assert!(env.contains("FOO=bar"), "{env}");
    assert_eq!(
        inspect(&d, copy, "{{json .Config.Cmd}}"),
        serde_json::to_string(&["sh", "-c", &hog]).unwrap()
    );
    assert_eq!(inspect(&d, copy, "{{.HostConfig.Memory}}"), (200 * 1048576).to_string());
    assert_eq!(inspect(&d, copy, "{{.HostConfig.NanoCpus}}"), "1500000000");
    assert_eq!(inspect(&d, copy, "{{.HostConfig.NetworkMode}}"), "none");
    assert_eq!(inspect(&d, copy, "{{.Config.Image}}"), IMAGE);

    // The copy was READY before the old one was asked to stop: the old incarnation's COMPLETING comes
    // after the new one's READY, and the old container is gone (CLEANED).
    let events = t.events_of("state_changed");
    let pos = |n: u64, to: &str| {
        events.iter().position(|e| e["worker"] == "rc-hog" && e["incarnation"] == n && e["to"] == to)
    };
    let new_ready = pos(2, "READY").expect("copy READY");
    let old_draining = pos(1, "COMPLETING").expect("old COMPLETING");
    assert!(new_ready < old_draining, "new READY before old drained: {new_ready} {old_draining}");
    t.wait_for(30, "the old container CLEANED", |t| {
        t.events_of("state_changed")
            .into_iter()
            .find(|e| e["worker"] == "rc-hog" && e["incarnation"] == 1 && e["to"] == "CLEANED")
    });
    assert!(d.docker(&["inspect", "rc-hog"]).status.code() != Some(0), "old container removed");
    // The worker keeps its id and the recycle is in the history with its reason.
    let w = t.worker("rc-hog");
    assert_eq!(w["source"], "container");
    let recycles = t.wait_for(10, "the recycle in the database", |t| {
        let r = t.json("/api/v1/recycles?pool=rc");
        r.as_array().filter(|a| !a.is_empty()).cloned()
    });
    assert_eq!(
        (recycles[0]["worker"].as_str(), recycles[0]["reason"].as_str()),
        (Some("rc-hog"), Some("memory"))
    );
}

#[test]
fn the_engine_dying_and_coming_back_is_degraded_then_recovered() {
    let mut d = Dockerd::start();
    // Stats by one-shot reads in this pool (the other tests use the default, one stream per container);
    // the engine's death fails them quietly and they resume after it.
    let t = Tend::start(&pool("dg", &d, "stats = \"poll\""));
    d.run(&["--name", "dg-a", "--label", "tend.pool=dg", IMAGE, "sleep", "600"]);
    t.wait_for(30, "dg-a READY with CPU and memory", |t| {
        worker_where(t, "dg-a", |w| {
            state_of(w) == "READY" && w["cpu_percent"].is_number() && w["memory_bytes"].is_number()
        })
    });
    let source = format!("docker:{}", d.host);
    d.kill();
    let h = t.wait_for(30, "the docker source degraded", |t| {
        let h = t.json("/api/v1/health");
        (h["status"] == "degraded" && h["degraded"][&source].is_string()).then_some(h)
    });
    assert!(h["degraded"][&source].as_str().unwrap().contains("docker engine"), "{h}");
    // Tend keeps serving while the engine is away.
    pause(Duration::from_secs(3));
    assert_eq!(t.get("/api/v1/workers").0, 200);
    d.restart();
    t.wait_for(60, "the docker source recovered", |t| {
        let h = t.json("/api/v1/health");
        (h["status"] == "ok" && h["degraded"].get(&source).is_none()).then_some(())
    });
    let recovered = t
        .events_of("source_status")
        .into_iter()
        .filter(|e| e["source"] == source.as_str())
        .map(|e| e["degraded"].as_bool().unwrap())
        .collect::<Vec<_>>();
    assert!(recovered.windows(2).any(|w| w == [true, false]), "degraded then recovered: {recovered:?}");
    // Events and listings work again: a new container is found and becomes READY.
    d.run(&["--name", "dg-b", "--label", "tend.pool=dg", IMAGE, "sleep", "600"]);
    t.wait_for(30, "dg-b READY after the restart, with stats", |t| {
        worker_where(t, "dg-b", |w| state_of(w) == "READY" && w["memory_bytes"].is_number())
    });
    // The container the engine's restart stopped (no live-restore) ended, from the listing.
    t.wait_for(30, "dg-a ended", |t| worker_where(t, "dg-a", |w| state_of(w) != "READY"));
    assert!(!t.stderr().contains("panicked"), "{}", t.stderr());
    assert!(d.pid() > 0);
}

#[test]
fn an_engine_that_is_not_running_at_start_is_degraded_until_it_comes_up() {
    let mut d = Dockerd::unstarted();
    let t = Tend::start(&pool("ns", &d, ""));
    let source = format!("docker:{}", d.host);
    let h = t.wait_for(30, "the docker source degraded", |t| {
        let h = t.json("/api/v1/health");
        (h["status"] == "degraded" && h["degraded"][&source].is_string()).then_some(h)
    });
    assert!(h["degraded"][&source].as_str().unwrap().contains("unreachable"), "{h}");
    // Retries back off: a handful of status changes, not one per 100 ms.
    pause(Duration::from_secs(4));
    let retries = t.events_of("source_status").len();
    assert!(retries <= 3, "one degraded event per change of detail, not per retry: {retries}");
    d.launch();
    d.run(&["--name", "ns-a", "--label", "tend.pool=ns", IMAGE, "sleep", "600"]);
    t.wait_for(30, "recovered and ns-a READY", |t| {
        let ok = t.json("/api/v1/health")["status"] == "ok";
        worker_where(t, "ns-a", |w| ok && state_of(w) == "READY")
    });
}

#[test]
fn orphans_are_listed_alerted_and_cleaned() {
    let d = Dockerd::start();
    let t = Tend::start(&pool("or", &d, "orphans_max = 1"));
    // Orphans: a pool Tend does not have, and an owner pid that no longer runs.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    d.run(&["--name", "lost-1", "--label", "tend.pool=retired", IMAGE, "sleep", "600"]);
    d.run(&[
        "--name",
        "lost-2",
        "--label",
        "tend.pool=or",
        "--label",
        &format!("tend.owner-pid={dead_pid}"),
        IMAGE,
        "sleep",
        "600",
    ]);
    // Not orphans: a worker of the pool, one whose owner runs (this test), one without Tend's label.
    let me = std::process::id().to_string();
    d.run(&[
        "--name",
        "or-live",
        "--label",
        "tend.pool=or",
        "--label",
        &format!("tend.owner-pid={me}"),
        IMAGE,
        "sleep",
        "600",
    ]);
    d.run(&["--name", "unrelated", IMAGE, "sleep", "600"]);
    let list = t.wait_for(30, "two orphans listed", |t| {
        let v = t.json("/api/v1/orphans");
        (v.as_array().unwrap().len() == 2).then_some(v)
    });
    let mut names: Vec<&str> = list.as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["lost-1", "lost-2"], "{list}");
    let lost2 = list.as_array().unwrap().iter().find(|o| o["name"] == "lost-2").unwrap();
    assert!(lost2["reason"].as_str().unwrap().contains(&format!("owner pid {dead_pid} is gone")), "{lost2}");
    // More than orphans_max = 1: the built-in alert fires for the pool.
    t.wait_for(30, "the orphan alert firing", |t| {
        t.json("/api/v1/alerts")
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule"] == "orphaned-containers" && a["state"] == "firing")
            .cloned()
    });
    let metrics = crate::harness::http_get(t.url("/metrics")).unwrap().text().unwrap();
    assert!(metrics.contains("tend_docker_orphaned_containers{pool=\"or\"} 2"), "{metrics}");
    let (st, v) = t.post("/api/v1/orphans/clean", serde_json::json!({}));
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["removing"], 2);
    t.wait_for(30, "the orphans removed", |_| {
        let left = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
        (!left.contains("lost-")).then_some(())
    });
    t.wait_for(30, "no orphans listed", |t| {
        t.json("/api/v1/orphans").as_array().unwrap().is_empty().then_some(())
    });
    let left = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(left.contains("or-live") && left.contains("unrelated"), "{left}");
    t.wait_for(30, "the orphan alert resolved", |t| {
        t.json("/api/v1/alerts")
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule"] == "orphaned-containers" && a["state"] == "resolved")
            .cloned()
    });
}

#[test]
fn a_pool_that_says_so_removes_orphans_by_itself() {
    let d = Dockerd::start();
    d.run(&["--name", "stray", "--label", "tend.pool=gone-pool", IMAGE, "sleep", "600"]);
    let t = Tend::start(&pool("ao", &d, "clean_orphans = true"));
    t.wait_for(30, "the stray container removed", |_| {
        d.ok(&["ps", "-a", "--format", "{{.Names}}"]).is_empty().then_some(())
    });
    drop(t);
}

/// Start `n` labelled `sleep` containers named `<prefix>-<i>`, a few `docker run`s at a time.
pub fn run_many(d: &Dockerd, label: &str, prefix: &str, n: usize) {
    let all: Vec<usize> = (0..n).collect();
    std::thread::scope(|s| {
        for chunk in all.chunks(n.div_ceil(5)) {
            s.spawn(move || {
                for i in chunk {
                    let name = format!("{prefix}-{i}");
                    d.run(&["--name", &name, "--label", label, IMAGE, "sleep", "3600"]);
                }
            });
        }
    });
}

#[test]
fn fifty_containers_are_watched_at_1_hz() {
    let d = Dockerd::start();
    run_many(&d, "tend.pool=ff", "ff", 50);
    let t = Tend::start(&pool("ff", &d, ""));
    t.wait_for(60, "50 workers READY with metrics", |t| {
        let ws = t.workers();
        let ready = ws.iter().filter(|w| state_of(w) == "READY" && w["memory_bytes"].is_number()).count();
        (ready == 50).then_some(())
    });
    pause(Duration::from_secs(8));
    // Every worker was sampled about once a second over the last 6 seconds.
    let ws = t.workers();
    let newest = ws.iter().filter_map(|w| w["last_sample_at"].as_i64()).max().unwrap();
    let mut counts = Vec::new();
    for w in &ws {
        let id = w["id"].as_str().unwrap();
        let detail = t.worker(id);
        let n = detail["recent_samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["at"].as_i64().unwrap() > newest - 6000)
            .count();
        counts.push((id.to_owned(), n));
    }
    let slow: Vec<_> = counts.iter().filter(|(_, n)| *n < 4).collect();
    assert!(slow.is_empty(), "workers sampled fewer than 4 times in 6 s: {slow:?}");
    assert_eq!(t.json("/api/v1/health")["status"], "ok");
    let tend_cpu = t.json("/api/v1/health")["tend"]["cpu_percent"].as_f64();
    eprintln!("50 containers at 1 Hz: tend cpu {tend_cpu:?} % (measured properly by tend-bench)");
}

#[test]
fn healthchecks_oom_kills_and_restart_recycles_follow_the_engine() {
    let d = Dockerd::start();
    let config = format!("{}{}", pool("hl", &d, ""), pool("rs", &d, "recycle_mode = \"restart\""));
    let t = Tend::start(&config);
    // With a healthcheck READY waits for `healthy` (not start_secs).
    d.run(&[
        "--name",
        "hl-web",
        "--label",
        "tend.pool=hl",
        "--health-cmd",
        "sleep 3",
        "--health-interval",
        "1s",
        IMAGE,
        "sleep",
        "600",
    ]);
    // A container over its memory limit is killed by the kernel: FAILED, not TERMINATED.
    d.run(&[
        "--name",
        "hl-oom",
        "--label",
        "tend.pool=hl",
        "--memory",
        "16m",
        "--memory-swap",
        "16m",
        IMAGE,
        "sh",
        "-c",
        &hog(64),
    ]);
    let ready = t.wait_for(30, "hl-web READY when healthy", |t| {
        t.events_of("state_changed").into_iter().find(|e| e["worker"] == "hl-web" && e["to"] == "READY")
    });
    assert_eq!(ready["cause"], "ready: container healthy", "{ready}");
    let failed = t.wait_for(30, "hl-oom FAILED", |t| {
        t.events_of("state_changed").into_iter().find(|e| e["worker"] == "hl-oom" && e["to"] == "FAILED")
    });
    assert!(failed["cause"].as_str().unwrap().contains("out of memory"), "{failed}");

    // recycle_mode = "restart": a manual recycle restarts the same container; the next run is READY.
    let id = d.run(&["--name", "rs-svc", "--label", "tend.pool=rs", IMAGE, "sleep", "600"]);
    t.wait_for(30, "rs-svc READY", |t| worker_where(t, "rs-svc", |w| state_of(w) == "READY"));
    let (st, v) = t.post("/api/v1/workers/rs-svc/recycle", serde_json::json!({}));
    assert_eq!(st, 202, "{v}");
    let done = t.wait_for(30, "the restart recycle done", |t| {
        t.events_of("recycled").into_iter().find(|e| e["worker"] == "rs-svc")
    });
    assert_eq!(done["reason"], "manual");
    let w = t.worker("rs-svc");
    assert_eq!((state_of(&w), w["incarnation"].as_u64()), ("READY", Some(2)), "{w}");
    assert_eq!(d.ok(&["inspect", "--format", "{{.Id}}", "rs-svc"]), id, "the same container");
    let tr: Vec<(u64, String)> = t
        .events_of("state_changed")
        .into_iter()
        .filter(|e| e["worker"] == "rs-svc")
        .map(|e| (e["incarnation"].as_u64().unwrap(), e["to"].as_str().unwrap().to_owned()))
        .collect();
    let expect: Vec<(u64, String)> = [
        (1, "INITIALIZING"),
        (1, "READY"),
        (1, "TERMINATED"),
        (1, "CLEANED"),
        (2, "INITIALIZING"),
        (2, "READY"),
    ]
    .into_iter()
    .map(|(n, s)| (n, s.to_owned()))
    .collect();
    assert_eq!(tr, expect);
}
