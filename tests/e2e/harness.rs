//! A real `tend serve` in a child process: its config in a temp dir, its HTTP API on 127.0.0.1:0, its
//! events read from `--events-jsonl`. Tests wait on conditions with deadlines, never on fixed sleeps.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const TEND: &str = env!("CARGO_BIN_EXE_tend");

/// An HTTP client builder for the tests: rustls with ring, like Tend's own clients.
pub fn http() -> reqwest::blocking::ClientBuilder {
    tend_engine::http_client::install_provider();
    reqwest::blocking::Client::builder()
}

/// GET `url` with a default client.
pub fn http_get(url: impl AsRef<str>) -> reqwest::Result<reqwest::blocking::Response> {
    http().build()?.get(url.as_ref()).send()
}

pub struct Tend {
    pub child: Option<Child>,
    pub base: String,
    /// The history store's directory (inside the temp dir: tests never write to the real home).
    pub data_dir: PathBuf,
    /// Keeps the config directory alive as long as tend runs.
    _dir: tempfile::TempDir,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    http: reqwest::blocking::Client,
}

impl Tend {
    /// Start `tend serve` with this config text (a `[server]` section is not needed).
    pub fn start(config: &str) -> Tend {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tend.toml");
        std::fs::write(&path, config).expect("write config");
        Self::start_args(dir, &["serve", "--config", path.to_str().expect("utf-8 path")])
    }

    pub fn start_args(dir: tempfile::TempDir, args: &[&str]) -> Tend {
        let data_dir = dir.path().join("data");
        Self::start_env(dir, args, &[("TEND_DATA_DIR", data_dir.to_str().expect("utf-8 path"))])
    }

    /// Like [`Tend::start_args`] with extra environment variables (set after the defaults, so a test
    /// can point `TEND_DATA_DIR` elsewhere).
    pub fn start_env(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Tend {
        Self::start_with(dir, args, env, |_| {})
    }

    /// Like [`Tend::start_env`], with a last say on the command (e.g. a `pre_exec` setting limits).
    pub fn start_with(
        dir: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, &str)],
        tweak: impl FnOnce(&mut Command),
    ) -> Tend {
        Self::start_under(&[], dir, args, env, tweak)
    }

    /// Like [`Tend::start_with`], run through `wrapper` (e.g. `unshare --user`): the program and its
    /// arguments, then Tend's.
    pub fn start_under(
        wrapper: &[&str],
        dir: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, &str)],
        tweak: impl FnOnce(&mut Command),
    ) -> Tend {
        let data_dir = dir.path().join("data");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(TEND);
                c
            }
            None => Command::new(TEND),
        };
        cmd.args(args);
        // A test that names its own address (an agent on 127.0.0.2) keeps it.
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.arg("--events-jsonl")
            .env("TEND_LOG", "info,tend_engine=debug")
            .env("TEND_DATA_DIR", &data_dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tweak(&mut cmd);
        let mut child = cmd.spawn().expect("start tend");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let ev = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => ev.lock().unwrap().push(v),
                    Err(e) => panic!("stdout line is not JSON ({e}): {line}"),
                }
            }
        });
        let err = child.stderr.take().expect("stderr");
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let se = stderr_lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("tend: listening on ") {
                    let _ = addr_tx.send(a.to_owned());
                }
                se.lock().unwrap().push(line);
            }
        });
        let base = match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("tend did not start listening; stderr:\n{}", stderr_lines.lock().unwrap().join("\n"));
            }
        };
        let http = http().timeout(Duration::from_secs(10)).build().expect("client");
        let data_dir = env
            .iter()
            .find(|(k, _)| *k == "TEND_DATA_DIR")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or(data_dir);
        Tend { child: Some(child), base, data_dir, _dir: dir, events, stderr: stderr_lines, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().expect("GET");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn json(&self, path: &str) -> Value {
        let (status, v) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(self.url(path)).json(&body).send().expect("POST");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn workers(&self) -> Vec<Value> {
        self.json("/api/v1/workers").as_array().cloned().unwrap_or_default()
    }

    pub fn worker(&self, id: &str) -> Value {
        self.json(&format!("/api/v1/workers/{id}"))
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    pub fn events_of(&self, kind: &str) -> Vec<Value> {
        self.events().into_iter().filter(|e| e["type"] == kind).collect()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Poll `f` every 100 ms until it returns Some, or fail after `secs` with `what` and the log.
    pub fn wait_for<T>(&self, secs: u64, what: &str, mut f: impl FnMut(&Tend) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if Instant::now() > deadline {
                let tail: Vec<String> = self.events().iter().rev().take(40).map(|e| e.to_string()).collect();
                panic!(
                    "timed out after {secs}s waiting for {what}\nlast events (newest first):\n{}\nstderr:\n{}",
                    tail.join("\n"),
                    self.stderr()
                );
            }
            pause(Duration::from_millis(100));
        }
    }

    /// SIGTERM and wait for the exit status (at most `secs`).
    pub fn terminate(&mut self, secs: u64) -> std::process::ExitStatus {
        self.stop_with(libc::SIGTERM, secs)
    }

    /// Send `sig` and wait for the exit status (at most `secs`).
    pub fn stop_with(&mut self, sig: i32, secs: u64) -> std::process::ExitStatus {
        signal(self.child.as_ref().expect("running").id(), sig);
        self.wait_exit(secs)
    }

    /// Wait for tend to exit by itself (at most `secs`) and return its status.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("tend did not exit within {secs}s; stderr:\n{}", self.stderr());
            }
            pause(Duration::from_millis(50));
        }
    }

    /// Whether the tend process is still running.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Tend {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                pause(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The interval between two polls of a condition, or a watch for something that must NOT happen.
#[allow(clippy::disallowed_methods)]
pub fn pause(d: Duration) {
    std::thread::sleep(d);
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we started; a stale pid only yields ESRCH.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// `sig` to every process of the group `pgid`.
pub fn signal_pgid(pgid: u32, sig: i32) {
    // SAFETY: kill(2) of a process group we started; a stale group only yields ESRCH.
    unsafe {
        libc::kill(-(pgid as i32), sig);
    }
}

/// (pid, start time) of a live process, from /proc.
pub fn identity(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    Some((pid, fields.get(19)?.parse().ok()?))
}

pub fn alive(pid: u32, start: u64) -> bool {
    identity(pid).is_some_and(|(_, s)| s == start)
}

/// Pids of every live process whose process group is `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        if f.first() != Some(&"Z") && f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            out.push(pid);
        }
    }
    out
}

pub fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    let mut f = std::fs::File::create(&p).expect("create");
    f.write_all(text.as_bytes()).expect("write");
    p
}

pub fn state_of(w: &Value) -> &str {
    w["state"].as_str().unwrap_or("?")
}

pub fn by_id<'a>(ws: &'a [Value], id: &str) -> Option<&'a Value> {
    ws.iter().find(|w| w["id"] == id)
}

/// The test's own wall clock in epoch milliseconds, to compare with the times Tend stored.
#[allow(clippy::disallowed_methods)]
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Run a future of the store's API to completion from a test.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}
