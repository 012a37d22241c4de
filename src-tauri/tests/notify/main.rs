//! Desktop notifications end to end, with real parts: the engine (`App`) on a config with a reported
//! pool, the notification sink and its budget, the notify-rust `DesktopNotifier`, a private session
//! D-Bus (`dbus-daemon`) and a real notification daemon (`dunst -print` on its own `Xvfb` display), whose
//! printed notifications are what the test reads.
//!
//! One scenario in one test function (it points this process's session bus at the private one, which
//! must happen before any other thread reads the environment): 50 workers breach a threshold at once →
//! the first notification names the worker, the value and the threshold; the budget lets `per_rule`
//! through and then exactly one digest reporting the other 47. Then the app is a hub: an agent (a real
//! `tend serve` on 127.0.0.2) fires an alert, and the desktop notification names the agent's host.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tend_desktop::notifier::DesktopNotifier;
use tend_engine::api::report::RegisterBody;
use tend_engine::{App, AppOptions, config};

const CONFIG: &str = r#"
[[pool]]
name = "jobs"
source = "reported"

[[pool.rule]]
name = "mem-high"
metric = "memory_mb"
above = 100
severity = "warning"

[notifications]
per_rule = 3
overall = 10
window = "3s"
"#;

/// Children killed (by their own pid) when the test ends, pass or fail.
struct Kill(Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Wait (on a condition, not a duration) until `f` gives something, or fail naming `what`.
async fn until<T>(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The notifications dunst printed so far: (summary, body) of each.
fn printed(log: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = Vec::new();
    let mut summary = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix("summary: '") {
            summary = Some(s.trim_end_matches('\'').to_owned());
        } else if let Some(b) = line.strip_prefix("body: '")
            && let Some(s) = summary.take()
        {
            out.push((s, b.trim_end_matches('\'').to_owned()));
        }
    }
    out
}

fn bus_has_notifications_daemon() -> bool {
    Command::new("dbus-send")
        .args([
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            "string:org.freedesktop.Notifications",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
        .unwrap_or(false)
}

const AGENT: &str = r#"
[[pool]]
name = "gpu-jobs"
source = "reported"

[[pool.rule]]
name = "gpu-mem"
metric = "memory_mb"
above = 100
severity = "critical"
"#;

/// A `tend serve` agent on 127.0.0.2 (the binary this workspace built beside this test); its URL.
fn start_agent(dir: &Path, children: &mut Kill) -> String {
    let exe = std::env::current_exe().expect("test exe");
    let tend = exe.parent().and_then(Path::parent).map(|d| d.join("tend")).expect("target dir");
    assert!(tend.exists(), "{} (cargo build --bin tend)", tend.display());
    let config = dir.join("agent.toml");
    std::fs::write(&config, AGENT).expect("agent config");
    let mut child = Command::new(tend)
        .args(["serve", "--listen", "127.0.0.2:0", "--config", config.to_str().expect("utf-8")])
        .env("TEND_DATA_DIR", dir.join("agent-data"))
        .env("TEND_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the agent");
    let mut lines = BufReader::new(child.stderr.take().expect("agent stderr")).lines();
    children.0.push(child);
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("tend: listening on ").map(str::to_owned))
        .expect("the agent's address");
    // The rest of its log is read and dropped, so its writes never meet a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    url
}

/// POST a JSON body over plain HTTP/1.1 (the agent is on loopback, without TLS); fails on non-2xx.
fn post(base: &str, path: &str, body: &str) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the agent");
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 2"), "POST {path}: {answer}");
}

#[test]
fn threshold_breach_notifies_and_a_storm_of_fifty_gives_the_cap_plus_one_digest() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut children = Kill(Vec::new());

    // A private session bus; this process (notify-rust, zbus) talks to it.
    let mut bus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("dbus-daemon (apt: dbus) must be installed");
    let mut address = String::new();
    BufReader::new(bus.stdout.take().expect("bus stdout")).read_line(&mut address).expect("bus address");
    children.0.push(bus);
    let address = address.trim().to_owned();
    assert!(address.starts_with("unix:"), "bus address {address:?}");
    // SAFETY: no other thread of this test binary exists yet that could read the environment (this is
    // the binary's only test, and the tokio runtime is built below).
    unsafe { std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &address) };

    // dunst on its own X display (Xvfb picks a free display number and prints it).
    let mut xvfb = Command::new("Xvfb")
        .args(["-displayfd", "1", "-screen", "0", "640x480x24", "-nolisten", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb (apt: xvfb) must be installed");
    let mut display = String::new();
    BufReader::new(xvfb.stdout.take().expect("Xvfb stdout")).read_line(&mut display).expect("display");
    children.0.push(xvfb);
    let log = tmp.path().join("dunst.log");
    let out = std::fs::File::create(&log).expect("dunst log");
    children.0.push(
        Command::new("dunst")
            .arg("-print")
            .env("DISPLAY", format!(":{}", display.trim()))
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("dunst (apt: dunst) must be installed"),
    );

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    rt.block_on(async {
        until("dunst to own org.freedesktop.Notifications", Duration::from_secs(20), async || {
            bus_has_notifications_daemon().then_some(())
        })
        .await;

        let agent = start_agent(tmp.path(), &mut children);
        let hub = format!("{CONFIG}\n[[remote]]\nname = \"gpu-1\"\nurl = \"{agent}\"\n");
        let cfg = config::parse(&hub, "notify-test.toml").expect("config");
        let app = App::start(cfg, AppOptions { no_history: true, ..Default::default() }).expect("engine");
        let (opened_tx, opened) = std::sync::mpsc::channel::<String>();
        let on_open = Arc::new(move |w: String| {
            let _ = opened_tx.send(w);
        });
        let notify = app
            .start_notifications(Arc::new(DesktopNotifier::opening(on_open)))
            .expect("notifications enabled");

        // 50 workers breach `memory_mb > 100` at once.
        for i in 0..50 {
            let id = format!("job-{i}");
            let reg = RegisterBody {
                id: id.clone(),
                pool: "jobs".into(),
                task_id: None,
                pid: None,
                container: None,
                labels: Default::default(),
            };
            app.register(reg).await.expect("register");
            let metrics = [("memory_mb".to_owned(), 150.0)].into_iter().collect();
            app.report_metrics(&id, metrics).await.expect("metrics");
        }
        until("50 firing alerts", Duration::from_secs(10), async || {
            app.alerts().await.ok().filter(|a| a.len() == 50).map(|_| ())
        })
        .await;

        // The cap (3), then one digest once the 3 s window has passed.
        let shown = until("three notifications and a digest", Duration::from_secs(20), async || {
            let p = printed(&log);
            (p.len() >= 4).then_some(p)
        })
        .await;
        let status = notify.status();
        assert_eq!(status.last_error, None);
        assert_eq!((status.sent, status.held, status.digests), (4, 47, 1), "{status:?}");

        let (summary, body) = &shown[0];
        assert!(summary.starts_with("mem-high firing on job-"), "{summary}");
        let worker = summary.trim_start_matches("mem-high firing on ");
        assert!(body.starts_with(&format!("{worker}: value 150.0, threshold 100.0")), "{body}");
        assert!(shown[..3].iter().all(|(s, _)| s.starts_with("mem-high firing on job-")), "{shown:?}");
        assert_eq!(shown[3].0, "Tend: notifications held back");
        assert_eq!(shown[3].1, "47 more notifications held back: mem-high ×47");
        // At most the cap plus one digest: nothing else was sent (the sink counts every send it made).
        assert_eq!(printed(&log).len(), 4, "{:?}", printed(&log));

        // A remote alert: the agent's worker breaches its rule there; the hub's notification names
        // the worker with its host, through the same budget.
        until("the agent in the hub", Duration::from_secs(20), async || {
            app.hosts().iter().any(|h| h.status == tend_engine::api::HostStatus::Ok).then_some(())
        })
        .await;
        post(&agent, "/api/v1/workers", r#"{"id": "train-7", "pool": "gpu-jobs"}"#);
        post(&agent, "/api/v1/workers/train-7/metrics", r#"{"memory_mb": 180}"#);
        let remote = until("the remote alert's notification", Duration::from_secs(20), async || {
            printed(&log).into_iter().find(|(s, _)| s.starts_with("gpu-mem"))
        })
        .await;
        assert_eq!(remote.0, "gpu-mem firing on train-7@gpu-1");
        assert!(remote.1.starts_with("train-7@gpu-1: value 180.0, threshold 100.0"), "{}", remote.1);
        assert_eq!(notify.status().sent, 5);

        // A click (dunst's default action on the newest notification) opens that worker's page.
        let clicked =
            Command::new("dunstctl").arg("action").arg("0").status().expect("dunstctl (apt: dunst)");
        assert!(clicked.success());
        let opened = opened.recv_timeout(Duration::from_secs(10)).expect("the click reached the app");
        assert_eq!(opened, "train-7@gpu-1");
        app.shutdown().await;
    });
    drop(children);
}
