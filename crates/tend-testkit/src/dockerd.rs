//! A private Docker engine: Debian's `dockerd` (vfs storage, no bridge, no iptables) on a socket in a
//! temp dir, a busybox image imported from the local `busybox-static` rootfs (no registry), containers
//! run with `--network none`. Dropping it removes every container, stops the daemon, unmounts what it
//! left mounted and removes its directory. The CLI used is `/usr/bin/docker` (the engine's own
//! version), always with `-H`.
//!
//! Each operation comes as `try_…` (an error to report, for the bench) and as a plain call that panics
//! with that error (for tests).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

pub const DOCKERD: &str = "/usr/sbin/dockerd";
pub const DOCKER: &str = "/usr/bin/docker";
/// The image every private engine has: busybox with `sh`, `sleep` and a few other applets.
pub const IMAGE: &str = "tend-test/busybox:1";

/// How long the daemon may take to answer after it was started.
const STARTUP: Duration = Duration::from_secs(30);
/// How long a stopping daemon gets after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);

pub struct Dockerd {
    child: Option<Child>,
    /// Its directory: socket, data and exec roots, log (`dockerd.log`).
    pub dir: PathBuf,
    /// The socket address, `unix://…` (what `docker_host` and `-H` take).
    pub host: String,
    /// Applied to the daemon's command before each start (the bench makes it die with the bench).
    prepare: Option<fn(&mut Command)>,
    _tmp: tempfile::TempDir,
}

impl Dockerd {
    /// Start a daemon and import the test image.
    pub fn start() -> Dockerd {
        Self::try_start().unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn try_start() -> anyhow::Result<Dockerd> {
        let mut d = Self::try_unstarted()?;
        d.try_launch()?;
        Ok(d)
    }

    /// Its directory and socket address, no daemon yet (an engine that is down when Tend starts).
    pub fn unstarted() -> Dockerd {
        Self::try_unstarted().unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn try_unstarted() -> anyhow::Result<Dockerd> {
        ensure!(Path::new(DOCKERD).exists(), "{DOCKERD} is not installed (apt install docker.io)");
        // A short path: unix socket paths are limited to 108 bytes.
        let tmp = tempfile::Builder::new().prefix("tdk").tempdir_in("/tmp").context("temp dir")?;
        let dir = tmp.path().to_path_buf();
        let host = format!("unix://{}/docker.sock", dir.display());
        Ok(Dockerd { child: None, dir, host, prepare: None, _tmp: tmp })
    }

    /// Run `prepare` on the daemon's command before each start (e.g. to set its parent-death signal).
    pub fn prepared(mut self, prepare: fn(&mut Command)) -> Dockerd {
        self.prepare = Some(prepare);
        self
    }

    /// Start the daemon of an [`Dockerd::unstarted`] fixture and import the test image.
    pub fn launch(&mut self) {
        self.try_launch().unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn try_launch(&mut self) -> anyhow::Result<()> {
        self.spawn()?;
        self.import_image()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let dir = &self.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("dockerd.log"))
            .context("dockerd log")?;
        let mut cmd = Command::new(DOCKERD);
        cmd.args(["--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--shutdown-timeout", "2", "-H", &self.host])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("dockerd log")?)
            .stderr(log);
        if let Some(prepare) = self.prepare {
            prepare(&mut cmd);
        }
        let child = cmd.spawn().with_context(|| format!("cannot start {DOCKERD} (apt install docker.io)"))?;
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        loop {
            if self.try_docker(&["version", "--format", "{{.Server.Version}}"])?.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("dockerd did not come up in {} s; log:\n{}", STARTUP.as_secs(), self.log());
            }
            poll_pause(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// Run the CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.try_docker(args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn try_docker(&self, args: &[&str]) -> anyhow::Result<Output> {
        Command::new(DOCKER)
            .args(["-H", &self.host])
            .args(args)
            .env_remove("DOCKER_HOST")
            .env("DOCKER_CONFIG", self.dir.join("cli"))
            .stdin(Stdio::null())
            .output()
            .context("run the docker CLI")
    }

    /// Run the CLI and require success; its trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.try_ok(args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn try_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.try_docker(args)?;
        ensure!(
            out.status.success(),
            "docker {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// `docker run -d --network none` with these extra arguments; the container id.
    pub fn run(&self, args: &[&str]) -> String {
        self.try_run(args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn try_run(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["run", "-d", "--network", "none"];
        all.extend_from_slice(args);
        self.try_ok(&all)
    }

    /// The busybox-static rootfs, tarred and imported as [`IMAGE`].
    fn import_image(&self) -> anyhow::Result<()> {
        let root = self.dir.join("rootfs");
        std::fs::create_dir_all(root.join("bin")).context("rootfs")?;
        std::fs::create_dir_all(root.join("tmp")).context("rootfs")?;
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context("busybox-static is not installed (apt install busybox-static)")?;
        std::fs::copy(busybox, root.join("bin/busybox")).context("copy busybox")?;
        for applet in ["sh", "sleep", "head", "tr", "cat", "true", "false", "echo", "dd", "yes", "kill"] {
            let link = root.join("bin").join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", link).context("symlink")?;
            }
        }
        let script = format!(
            "tar -C {} -c . | {DOCKER} -H {} import -c 'ENV PATH=/bin' - {IMAGE}",
            root.display(),
            self.host
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .env("DOCKER_CONFIG", self.dir.join("cli"))
            .output()
            .context("import")?;
        ensure!(out.status.success(), "docker import failed: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL the daemon (its containers keep running under their shims).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start the daemon again on the same directories after [`Dockerd::kill`].
    pub fn restart(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("dockerd.pid"));
        self.spawn().unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        if let Ok(out) = self.try_docker(&["ps", "-aq"]) {
            let ids: Vec<String> =
                String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.iter().map(String::as_str));
                let _ = self.try_docker(&args);
            }
        }
        if let Some(mut c) = self.child.take() {
            terminate(c.id());
            let deadline = Instant::now() + STOP_GRACE;
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                poll_pause(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
        let netns = self.dir.join("exec/netns/default");
        let _ = Command::new("umount").arg(&netns).stderr(Stdio::null()).status();
        // vfs layers and container state live under data/: unmount anything left before the temp dir
        // is removed.
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            let prefix = self.dir.display().to_string();
            for line in mounts.lines() {
                if let Some(m) = line.split_whitespace().nth(1)
                    && m.starts_with(&prefix)
                {
                    let _ = Command::new("umount").args(["-l", m]).stderr(Stdio::null()).status();
                }
            }
        }
    }
}

/// The interval between two polls of a condition (the daemon answering, the daemon gone).
#[allow(clippy::disallowed_methods)]
fn poll_pause(d: Duration) {
    std::thread::sleep(d);
}

/// SIGTERM to the daemon, which stops its containers' shims and containerd itself.
#[allow(unsafe_code)]
fn terminate(pid: u32) {
    // SAFETY: kill(2) on the daemon this fixture started and has not reaped; it touches no memory.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}
