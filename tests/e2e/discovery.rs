//! How attach pools find processes that start matching: from the kernel's process events when Tend may
//! listen (the initial PID and user namespaces; CAP_NET_ADMIN before Linux 6.6), else by scans; in
//! both modes a process that execs into a matching command line is attached and one that exits is
//! noticed, and `/api/v1/health` says which mode is in force and why.

use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::harness::*;

/// CAP_NET_ADMIN, which listening to process events needs (<linux/capability.h>).
const CAP_NET_ADMIN: libc::c_int = 12;

fn config(marker: &str, discovery: &str) -> String {
    format!(
        r#"
[discovery]
{discovery}

[[pool]]
name = "legacy"
source = "attach"
cmdline = "{marker}$"
profile = "batch"
interval = "1s"
"#
    )
}

/// A shell that execs into a sleeper whose command line ends in `marker`. The shell's own command
/// line spells the marker in two quoted halves, so only the exec'd process matches.
fn exec_into(marker: &str) -> Child {
    let (head, tail) = marker.split_at(marker.len() / 2);
    Command::new("sh")
        .args(["-c", &format!("exec perl -e 'sleep 300' '{head}''{tail}'")])
        .stdin(Stdio::null())
        .spawn()
        .expect("sh")
}

/// `tend serve` (through `wrapper`, if any) on an attach pool for `marker` whose scans, when it must
/// scan, run every second.
fn start_scanning_every_second(
    marker: &str,
    wrapper: &[&str],
    tweak: impl FnOnce(&mut std::process::Command),
) -> Tend {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(&dir, "tend.toml", &config(marker, "scan_every = \"1s\""));
    let cfg = cfg.to_str().unwrap().to_owned();
    Tend::start_under(wrapper, dir, &["serve", "--config", &cfg], &[], tweak)
}

fn discovery(tend: &Tend) -> Value {
    tend.json("/api/v1/health")["discovery"].clone()
}

/// Exec → attached, kill → ended, with the discovery mode checked first.
fn attached_then_ended(tend: &Tend, marker: &str) {
    let mut child = exec_into(marker);
    let id = format!("legacy-{}", child.id());
    let w = tend.wait_for(15, "the exec'd process attached", |t| {
        by_id(&t.workers(), &id).filter(|w| state_of(w) == "READY").cloned()
    });
    assert_eq!(w["pid"], child.id());
    assert_eq!(tend.workers().len(), 1, "the shell before the exec was not attached");
    let _ = child.kill();
    let _ = child.wait();
    tend.wait_for(15, "the ended process noticed", |t| {
        t.events_of("state_changed").into_iter().find(|e| e["worker"] == id.as_str() && e["to"] == "CLEANED")
    });
}

#[test]
fn with_process_events_an_exec_is_attached_without_waiting_for_a_scan() {
    let marker = format!("tend-exec-events-{}", std::process::id());
    // Full scans every 24 h: the only scan is the first one, before the process exists.
    let tend = Tend::start(&config(&marker, "rescan_every = \"24h\""));
    let d = tend.wait_for(10, "listening to process events", |t| {
        Some(discovery(t)).filter(|d| d["mode"] == "events")
    });
    assert_eq!(d["every_secs"], 86400.0);
    attached_then_ended(&tend, &marker);
}

#[test]
fn with_scans_chosen_an_exec_is_attached_at_the_next_scan() {
    let marker = format!("tend-exec-scan-{}", std::process::id());
    let tend = Tend::start(&config(&marker, "mode = \"scan\"\nscan_every = \"1s\""));
    let d = discovery(&tend);
    assert_eq!((d["mode"].as_str(), d["every_secs"].as_f64()), (Some("scan"), Some(1.0)));
    assert!(d["detail"].as_str().unwrap().contains("mode = \"scan\""), "{d}");
    attached_then_ended(&tend, &marker);
}

/// Linux 6.6 lets any process listen; before, the subscription needs CAP_NET_ADMIN. Without it, Tend
/// either listens (a newer kernel) or scans and names the capability: attaching works either way.
#[test]
fn without_cap_net_admin_tend_listens_or_scans_and_says_why() {
    let marker = format!("tend-exec-nocap-{}", std::process::id());
    let tend = start_scanning_every_second(&marker, &[], |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; the closure touches nothing else. Dropped from the
        // bounding set, the capability is not in root's permitted set after the exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_CAPBSET_DROP, CAP_NET_ADMIN, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", tend.child.as_ref().unwrap().id())).unwrap();
    let cap_eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim();
    let cap_eff = u64::from_str_radix(cap_eff, 16).unwrap();
    assert_eq!(cap_eff & (1 << CAP_NET_ADMIN), 0, "Tend runs without CAP_NET_ADMIN");
    let d = tend.wait_for(10, "the listener's answer", |t| {
        Some(discovery(t)).filter(|d| !d["detail"].as_str().unwrap_or("").starts_with("starting"))
    });
    if d["mode"] == "scan" {
        assert!(d["detail"].as_str().unwrap().contains("CAP_NET_ADMIN"), "{d}");
        assert!(!kernel_at_least(6, 6), "Linux 6.6 and later let any process listen: {d}");
    }
    attached_then_ended(&tend, &marker);
}

/// In a user namespace the kernel ignores the subscription: Tend scans, says why, and still attaches.
#[test]
fn in_a_user_namespace_tend_scans_and_says_why() {
    let marker = format!("tend-exec-userns-{}", std::process::id());
    let wrapper = ["unshare", "--user", "--map-root-user", "--kill-child"];
    let tend = start_scanning_every_second(&marker, &wrapper, |_| {});
    let d = discovery(&tend);
    assert_eq!((d["mode"].as_str(), d["every_secs"].as_f64()), (Some("scan"), Some(1.0)), "{d}");
    assert!(d["detail"].as_str().unwrap().contains("user namespace"), "{d}");
    attached_then_ended(&tend, &marker);
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}

#[test]
fn health_has_no_discovery_without_an_attach_pool() {
    let tend = Tend::start("[[pool]]\nname = \"api\"\ncommand = [\"sleep\", \"300\"]\nsize = 1\n");
    assert_eq!(discovery(&tend), Value::Null);
}
