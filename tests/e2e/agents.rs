//! Agents for the fleet tests: a `tend serve` in its own PID namespace (it sees only its own
//! processes) on its own loopback address, over TLS with a certificate from the test's CA, with an
//! operator and a viewer token, and a spawn pool of two workers.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use tend_testkit::tls::{ServerCert, TestCa};

use crate::harness::*;

pub const HUB_OPS: &str = "hub-operator-3c1d9e7a5b";
pub const HUB_VIEW: &str = "hub-viewer-8f2e6a4c0d1b";

pub fn private(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A free port on `ip` (bound, then let go: the agent takes it, and takes it again after a restart).
pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

/// One agent: a `tend serve` in its own PID namespace on `ip:port`, over TLS, with an operator token
/// and a viewer token for the hub, and a spawn pool of two workers.
pub struct Agent {
    pub ip: String,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub tend: Option<Tend>,
}

impl Agent {
    pub fn new(ca: &TestCa, ip: &str) -> Agent {
        Agent::with_cert(ca.server_cert(&[ip]), ip)
    }

    pub fn with_cert(cert: ServerCert, ip: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        cert.write(dir.path());
        let ops = private(dir.path(), "hub.token", HUB_OPS);
        let view = private(dir.path(), "view.token", HUB_VIEW);
        let config = format!(
            r#"
[server]
tls = {{ cert = "cert.pem", key = "key.pem" }}

[[server.token]]
name = "hub"
role = "operator"
secret_file = "{}"

[[server.token]]
name = "hub-view"
role = "viewer"
secret_file = "{}"

[[pool]]
name = "api"
command = ["sleep", "300"]
size = 2
readiness = {{ start_secs = 0.2 }}
stop_grace = "1s"

# Fires for every worker at once (a sleeping process has some memory): an alert to act on.
[[pool.rule]]
name = "mem-any"
metric = "memory_mb"
above = 0.01
severity = "info"
"#,
            ops.display(),
            view.display()
        );
        std::fs::write(dir.path().join("tend.toml"), config).unwrap();
        let mut agent = Agent { ip: ip.to_owned(), port: free_port(ip), dir, tend: None };
        agent.start();
        agent
    }

    pub fn start(&mut self) {
        let config = self.dir.path().join("tend.toml");
        let data = self.dir.path().join("data");
        let listen = format!("{}:{}", self.ip, self.port);
        let args = ["serve", "--config", config.to_str().unwrap(), "--listen", &listen];
        let wrapper = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];
        let env = [("TEND_DATA_DIR", data.to_str().unwrap())];
        // Its own process group: stopping the agent signals unshare and the tend inside together.
        let tend = Tend::start_under(&wrapper, tempfile::tempdir().unwrap(), &args, &env, |c| {
            c.process_group(0);
        });
        self.tend = Some(tend);
    }

    pub fn url(&self) -> String {
        format!("https://{}:{}", self.ip, self.port)
    }

    /// SIGKILL to the whole group: the agent is gone at once (its workers with it: their
    /// namespace's init died).
    pub fn kill(&mut self) {
        if let Some(mut t) = self.tend.take() {
            let mut child = t.child.take().unwrap();
            signal_group(child.id(), libc::SIGKILL);
            let _ = child.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(t) = &mut self.tend
            && let Some(c) = &t.child
        {
            signal_group(c.id(), libc::SIGTERM);
            let _ = t.wait_exit(20);
        }
    }
}

fn signal_group(pgid: u32, sig: i32) {
    signal_pgid(pgid, sig);
}
