//! A real `tend serve` started by the bench: its config in a private directory, its API on
//! 127.0.0.1:0, its JSON-lines events (when asked) stamped with the time the bench received them.
//! Stopping it (also on drop, and by the kernel if the bench dies) drains its workers; any worker
//! process still alive afterwards, identified by pid *and* start time, is killed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::http::Http;
use crate::os;

/// One event line as the bench received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// Wall time at reception, ms since the epoch.
    pub rx_ms: i64,
    pub event: Value,
}

pub struct TendProc {
    child: Option<Child>,
    pub pid: u32,
    pub base: String,
    dir: PathBuf,
    events: Arc<Mutex<Vec<Received>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Worker processes seen (pid, start ticks), killed at the end if Tend left them behind.
    workers: Vec<(u32, u64)>,
}

impl TendProc {
    /// Starts `tend serve --config <dir>/<name>.toml` and waits (30 s at most) for its address.
    pub fn start(exe: &Path, name: &str, config: &str, jsonl: bool, log: &str) -> anyhow::Result<TendProc> {
        Self::start_on(exe, name, config, jsonl, log, "127.0.0.1:0")
    }

    /// Like [`TendProc::start`], listening on `listen` (another loopback address: another "host").
    pub fn start_on(
        exe: &Path,
        name: &str,
        config: &str,
        jsonl: bool,
        log: &str,
        listen: &str,
    ) -> anyhow::Result<TendProc> {
        let dir = std::env::temp_dir().join(format!("tend-bench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join("tend.toml");
        std::fs::write(&path, config).context("write the config")?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve").arg("--config").arg(&path).args(["--listen", listen]);
        if jsonl {
            cmd.arg("--events-jsonl");
        }
        // NO_COLOR: log lines are parsed (the engine's sweep timings), escape codes would split them.
        // The history store writes under the private directory, never into the user's data dir.
        cmd.env("TEND_LOG", log)
            .env("NO_COLOR", "1")
            .env("TEND_DATA_DIR", dir.join("data"))
            .stdin(Stdio::null())
            .stdout(if jsonl { Stdio::piped() } else { Stdio::null() })
            .stderr(Stdio::piped());
        // SIGTERM, not SIGKILL: Tend then stops the workers it spawned.
        os::die_with_bench(&mut cmd, libc::SIGTERM);
        let mut child = cmd.spawn().with_context(|| format!("start {}", exe.display()))?;
        let pid = child.id();
        let events = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let ev = events.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let rx_ms = os::wall_ms();
                    if let Ok(event) = serde_json::from_str::<Value>(&line) {
                        ev.lock().unwrap_or_else(PoisonError::into_inner).push(Received { rx_ms, event });
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().context("tend's stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        let se = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("tend: listening on ") {
                    let _ = tx.send(a.to_owned());
                }
                se.lock().unwrap_or_else(PoisonError::into_inner).push(line);
            }
        });
        let mut tend = TendProc {
            child: Some(child),
            pid,
            base: String::new(),
            dir,
            events,
            stderr,
            workers: Vec::new(),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => tend.base = base,
            Err(_) => bail!("tend did not start listening; stderr:\n{}", tend.stderr_tail(20)),
        }
        Ok(tend)
    }

    /// The history store's directory (`TEND_DATA_DIR`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// How it ended, if it has (it should not before `stop`).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn http(&self) -> anyhow::Result<Http> {
        Http::new(&self.base)
    }

    pub fn event_count(&self) -> usize {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Calls `f` on every event received since `*cursor`, and advances it.
    pub fn each_new_event(&self, cursor: &mut usize, mut f: impl FnMut(&Received)) {
        let evs = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        for e in evs.iter().skip(*cursor) {
            f(e);
        }
        *cursor = evs.len();
    }

    pub fn events(&self) -> Vec<Received> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Lines of stderr that contain `needle`.
    pub fn stderr_lines(&self, needle: &str) -> Vec<String> {
        let lines = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    pub fn stderr_tail(&self, n: usize) -> String {
        let lines = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().rev().take(n).rev().cloned().collect::<Vec<_>>().join("\n")
    }

    /// `GET /api/v1/workers`, remembering each worker's process for the final clean-up.
    pub fn workers(&mut self, http: &mut Http) -> anyhow::Result<Vec<Value>> {
        let r = http.get("/api/v1/workers")?;
        if r.status != 200 {
            bail!("GET /api/v1/workers: HTTP {}", r.status);
        }
        let v: Value = serde_json::from_slice(&r.body).context("workers JSON")?;
        let list = v.as_array().cloned().unwrap_or_default();
        for w in list.iter().filter(|w| w["source"] == "spawned") {
            if let (Some(pid), Some(start)) =
                (w["process"]["pid"].as_u64(), w["process"]["start_ticks"].as_u64())
                && !self.workers.contains(&(pid as u32, start))
            {
                self.workers.push((pid as u32, start));
            }
        }
        Ok(list)
    }

    /// Polls the API until `count` workers are in state READY (or WORKING), at most `secs`.
    pub fn wait_ready(&mut self, count: usize, secs: u64) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let mut http = self.http()?;
        loop {
            let ready = self
                .workers(&mut http)?
                .iter()
                .filter(|w| matches!(w["state"].as_str(), Some("READY" | "WORKING")))
                .count();
            if ready >= count {
                return Ok(start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(secs) {
                bail!(
                    "only {ready} of {count} workers READY after {secs} s; stderr:\n{}",
                    self.stderr_tail(20)
                );
            }
            os::pause(Duration::from_millis(200));
        }
    }

    /// SIGTERM, wait (20 s at most), SIGKILL; then kill any worker it spawned and left behind.
    /// Idempotent.
    pub fn stop(&mut self) {
        // Only what Tend spawned is left to kill: attached processes are the bench's own (sleepers that
        // a later Tend may watch).
        let events = self.events();
        let attached: Vec<&Value> = events
            .iter()
            .filter(|e| e.event["type"] == "worker_added" && e.event["source"] != "spawned")
            .map(|e| &e.event["worker"])
            .collect();
        for e in &events {
            if let (Some(pid), Some(start)) =
                (e.event["process"]["pid"].as_u64(), e.event["process"]["start_ticks"].as_u64())
                && !attached.contains(&&e.event["worker"])
                && !self.workers.contains(&(pid as u32, start))
            {
                self.workers.push((pid as u32, start));
            }
        }
        if let Some(mut child) = self.child.take() {
            os::kill(child.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                os::pause(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for &(pid, start) in &self.workers {
            if tend_collect::process_id(pid).is_ok_and(|id| id.start_ticks == start) {
                os::kill(pid, libc::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for TendProc {
    fn drop(&mut self) {
        self.stop();
    }
}
