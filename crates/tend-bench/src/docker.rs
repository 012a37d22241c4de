//! Section 6: a docker pool of N containers sampled at 1 Hz. The bench starts its own private engine
//! (Debian's `dockerd`: vfs storage, no bridge, no iptables, a socket in a temp dir), imports a busybox
//! image from the local `busybox-static` (no registry), runs N `sleep` containers with `--network none`,
//! and measures over a window the CPU of `tend serve` and of the engine (dockerd + containerd + every
//! shim of this engine) — first with no Tend (the engine's own idle cost), then with Tend reading stats
//! by one-shot polls, then by one stream per container. Everything is removed at the end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::Plan;
use crate::os;
use crate::overhead::{MIB, window};
use crate::report::{Check, Report, Section};
use crate::tend::TendProc;

const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER: &str = "/usr/bin/docker";
const IMAGE: &str = "tend-bench/busybox:1";

struct Engine {
    child: Option<Child>,
    dir: PathBuf,
    host: String,
}

impl Engine {
    fn start() -> anyhow::Result<Engine> {
        ensure!(Path::new(DOCKERD).exists(), "{DOCKERD} is not installed (apt install docker.io)");
        let dir = PathBuf::from(format!("/tmp/tbd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).context("engine dir")?;
        let host = format!("unix://{}/docker.sock", dir.display());
        let log = std::fs::File::create(dir.join("dockerd.log")).context("dockerd log")?;
        let mut cmd = Command::new(DOCKERD);
        cmd.args(["--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--shutdown-timeout", "2", "-H", &host])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        os::die_with_bench(&mut cmd, libc::SIGTERM);
        let child = cmd.spawn().context("start dockerd")?;
        let engine = Engine { child: Some(child), dir, host };
        let start = Instant::now();
        while !engine.docker(&["version"])?.status.success() {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("dockerd did not come up in 30 s");
            }
            os::pause(Duration::from_millis(100));
        }
        Ok(engine)
    }

    fn docker(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Command::new(DOCKER)
            .args(["-H", &self.host])
            .args(args)
            .env_remove("DOCKER_HOST")
            .env("DOCKER_CONFIG", self.dir.join("cli"))
            .stdin(Stdio::null())
            .output()
            .context("run the docker CLI")
    }

    fn ok(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = self.docker(args)?;
        ensure!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    }

    fn import_image(&self) -> anyhow::Result<()> {
        let root = self.dir.join("rootfs");
        std::fs::create_dir_all(root.join("bin"))?;
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context("busybox-static is not installed")?;
        std::fs::copy(busybox, root.join("bin/busybox"))?;
        for applet in ["sh", "sleep"] {
            let link = root.join("bin").join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", link)?;
            }
        }
        let script = format!(
            "tar -C {} -c . | {DOCKER} -H {} import -c 'ENV PATH=/bin' - {IMAGE} >/dev/null",
            root.display(),
            self.host
        );
        let st =
            Command::new("sh").args(["-c", &script]).env("DOCKER_CONFIG", self.dir.join("cli")).status()?;
        ensure!(st.success(), "docker import failed");
        Ok(())
    }

    /// The engine's processes: dockerd, its containerd and every shim, all named by this engine's
    /// exec root on their command line.
    fn pids(&self) -> Vec<u32> {
        let needle = self.dir.join("exec").display().to_string();
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
            if String::from_utf8_lossy(&cmd).replace('\0', " ").contains(&needle) {
                out.push(pid);
            }
        }
        out
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Ok(out) = self.docker(&["ps", "-aq"]) {
            let ids: Vec<String> =
                String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.iter().map(String::as_str));
                let _ = self.docker(&args);
            }
        }
        if let Some(mut c) = self.child.take() {
            os::kill(c.id(), libc::SIGTERM);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                os::pause(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ =
            Command::new("umount").arg(self.dir.join("exec/netns/default")).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Which part of the engine a pid is: dockerd, containerd, or a shim (by its command name).
fn part(pid: u32) -> usize {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    match comm.trim() {
        "dockerd" => 0,
        "containerd" => 1,
        _ => 2,
    }
}

/// Engine CPU % as (total, "dockerd x + containerd y + shims z").
fn split(pids: &[u32], cpu: &[f64]) -> (f64, String) {
    let mut parts = [0.0; 3];
    for (pid, c) in pids.iter().zip(cpu) {
        parts[part(*pid)] += c;
    }
    let total: f64 = parts.iter().sum();
    (
        total,
        format!("{total:.2} (dockerd {:.2}, containerd {:.2}, shims {:.2})", parts[0], parts[1], parts[2]),
    )
}

pub fn run(plan: &Plan, tend_exe: &Path, report: &mut Report) -> anyhow::Result<()> {
    let n = plan.docker_n;
    let secs = plan.overhead_secs.min(plan.docker_secs);
    let mut section = Section::new(
        &format!("6. Docker: {n} containers at 1 Hz"),
        &[
            "scenario",
            "tend serve CPU %",
            "engine CPU % (dockerd + containerd + shims)",
            "engine above idle",
            "tend RSS",
        ],
    );
    let engine = Engine::start()?;
    engine.import_image()?;
    let started = Instant::now();
    for i in 0..n {
        let name = format!("bench-{i}");
        engine.ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            &name,
            "--label",
            "tend.pool=bench",
            IMAGE,
            "sleep",
            "86400",
        ])?;
    }
    let run_secs = started.elapsed().as_secs_f64();
    os::pause(Duration::from_secs(plan.warmup_secs));
    let engine_pids = engine.pids();
    let idle = window(&engine_pids, secs, plan.block_secs)?;
    let (idle_cpu, idle_text) = split(&engine_pids, &idle.iter().map(|u| u.cpu_percent).collect::<Vec<_>>());
    section.row(vec![
        format!("no Tend: the engine with {n} idle containers"),
        "–".into(),
        idle_text,
        "–".into(),
        "–".into(),
    ]);
    let mut best: Option<(String, f64)> = None;
    for mode in ["poll", "stream"] {
        let config = format!(
            "[[pool]]\nname = \"bench\"\nsource = \"docker\"\nlabels = [\"tend.pool=bench\"]\n\
             docker_host = \"{}\"\ninterval = \"1s\"\nstats = \"{mode}\"\n",
            engine.host
        );
        let mut tend = TendProc::start(tend_exe, &format!("docker-{mode}"), &config, false, "info")?;
        tend.wait_ready(n, 90)?;
        os::pause(Duration::from_secs(plan.warmup_secs));
        let mut pids = vec![tend.pid];
        let engine_pids = engine.pids();
        pids.extend(&engine_pids);
        let load = os::load1();
        let usage = window(&pids, secs, plan.block_secs)?;
        tend.stop();
        let tend_cpu = usage[0].cpu_percent;
        let (engine_cpu, engine_text) =
            split(&engine_pids, &usage[1..].iter().map(|u| u.cpu_percent).collect::<Vec<_>>());
        let label = match mode {
            "poll" => "one-shot reads each second, own deltas (`stats = \"poll\"`)",
            _ => "one engine stream per container (`stats = \"stream\"`)",
        };
        section.row(vec![
            format!("{label}; load {load:.2}"),
            format!("{tend_cpu:.2}"),
            engine_text,
            format!("{:+.2}", engine_cpu - idle_cpu),
            format!("{:.1} MiB (peak {:.1})", usage[0].rss_median / MIB, usage[0].hwm / MIB),
        ]);
        report.check(Check::new(
            format!("backend CPU, {n} containers at 1 Hz ({mode})"),
            "< 1% of one core",
            format!("{tend_cpu:.2}% (engine {engine_cpu:.2}%, load {load:.2})"),
            Some(tend_cpu < 1.0),
        ));
        let total = tend_cpu + engine_cpu;
        if best.as_ref().is_none_or(|(_, b)| total < *b) {
            best = Some((mode.to_owned(), total));
        }
    }
    section.note(format!(
        "Private engine (Debian docker.io, vfs, `--network none`), {n} busybox `sleep` containers started in \
         {run_secs:.0} s; window {secs} s after {} s of warm-up, CPU = Δ(utime+stime) over the window, summed over \
         dockerd, its containerd and the {n} shims. Cheapest in total this run: {}.",
        plan.warmup_secs,
        best.map(|(m, t)| format!("{m} ({t:.2}% of a core, Tend + engine)")).unwrap_or_default()
    ));
    report.push(section);
    Ok(())
}
