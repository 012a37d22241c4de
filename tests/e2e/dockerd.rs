//! A private Docker engine per test: Debian's `dockerd` (vfs storage, no bridge, no iptables) on a
//! socket in a temp dir, a busybox image imported from a local rootfs (no registry), containers run
//! with `--network none`. Dropping it removes every container, stops the daemon and unmounts what it
//! left mounted. The CLI used is `/usr/bin/docker` (the engine's own version), always with `-H`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{pause, signal};

pub const DOCKERD: &str = "/usr/sbin/dockerd";
pub const DOCKER: &str = "/usr/bin/docker";
pub const IMAGE: &str = "tend-test/busybox:1";

pub struct Dockerd {
    child: Option<Child>,
    pub dir: PathBuf,
    pub host: String,
    _tmp: tempfile::TempDir,
}

impl Dockerd {
    /// Start a daemon and import the test image.
    pub fn start() -> Dockerd {
        let mut d = Dockerd::unstarted();
        d.launch();
        d
    }

    /// Its directory and socket address, no daemon yet (an engine that is down when Tend starts).
    pub fn unstarted() -> Dockerd {
        // A short path: unix socket paths are limited to 108 bytes.
        let tmp = tempfile::Builder::new().prefix("tdk").tempdir_in("/tmp").expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let host = format!("unix://{}/docker.sock", dir.display());
        Dockerd { child: None, dir, host, _tmp: tmp }
    }

    /// Start the daemon of an [`Dockerd::unstarted`] fixture and import the test image.
    pub fn launch(&mut self) {
        self.spawn();
        self.import_image();
    }

    fn spawn(&mut self) {
        let dir = &self.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("dockerd.log"))
            .expect("dockerd log");
        let child = Command::new(DOCKERD)
            .args(["--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--shutdown-timeout", "2", "-H", &self.host])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {DOCKERD} (apt install docker.io): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.docker(&["version", "--format", "{{.Server.Version}}"]).status.success() {
                return;
            }
            if Instant::now() > deadline {
                panic!("dockerd did not come up in 30 s; log:\n{}", self.log());
            }
            pause(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// Run the CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .args(["-H", &self.host])
            .args(args)
            .env_remove("DOCKER_HOST")
            .env("DOCKER_CONFIG", self.dir.join("cli"))
            .stdin(Stdio::null())
            .output()
            .expect("run docker CLI")
    }

    /// Run the CLI and require success; its trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `docker run -d --network none` with these extra arguments; the container id.
    pub fn run(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "-d", "--network", "none"];
        all.extend_from_slice(args);
        self.ok(&all)
    }

    /// The busybox-static rootfs, tarred and imported as [`IMAGE`].
    fn import_image(&self) {
        let root = self.dir.join("rootfs");
        std::fs::create_dir_all(root.join("bin")).expect("rootfs");
        std::fs::create_dir_all(root.join("tmp")).expect("rootfs");
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static is not installed (apt install busybox-static)");
        std::fs::copy(busybox, root.join("bin/busybox")).expect("copy busybox");
        for applet in ["sh", "sleep", "head", "tr", "cat", "true", "false", "echo", "dd", "yes", "kill"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
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
            .expect("import");
        assert!(out.status.success(), "docker import failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL the daemon (its containers keep running under their shims).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGKILL);
            let _ = c.wait();
        }
    }

    /// Start the daemon again on the same directories after [`Dockerd::kill`].
    pub fn restart(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("dockerd.pid"));
        self.spawn();
    }

    fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let ids = self.docker(&["ps", "-aq"]);
        let ids: Vec<String> =
            String::from_utf8_lossy(&ids.stdout).split_whitespace().map(str::to_owned).collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = self.docker(&args);
        }
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                pause(Duration::from_millis(50));
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
