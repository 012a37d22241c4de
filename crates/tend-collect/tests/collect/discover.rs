//! Discovery against the real process table.

use regex::Regex;
use tend_collect::discover::{Matcher, find};
use tend_collect::signal::{Signal, send};

use crate::support::{Kid, state, until};

fn found_pids(m: &Matcher, exclude: &[u32]) -> Vec<u32> {
    find(m, exclude).iter().map(|f| f.id.pid).collect()
}

#[tokio::test]
async fn finds_children_by_cmdline_name_and_pid_and_honours_exclusions() {
    // Settled: a process caught mid-exec has an empty command line (discovery finds it next pass).
    let a = Kid::sleeper(&["sleep", "12345"]).await;
    let b = Kid::sleeper(&["sleep", "12345"]).await;
    let by_cmdline = Matcher { cmdline: Some(Regex::new(r"^sleep 12345$").unwrap()), ..Matcher::default() };

    let found = find(&by_cmdline, &[]);
    let a_found = found.iter().find(|f| f.id == a.id).expect("first child found");
    assert_eq!(a_found.name, "sleep");
    assert_eq!(a_found.cmdline, "sleep 12345");
    assert!(found.iter().any(|f| f.id == b.id));

    let pids = found_pids(&by_cmdline, &[a.pid()]);
    assert!(!pids.contains(&a.pid()), "an excluded pid is never matched");
    assert!(pids.contains(&b.pid()));

    // Name and command line together narrow: both must hold.
    let narrowed = Matcher { process_name: Some("sleep".into()), ..by_cmdline.clone() };
    assert!(found_pids(&narrowed, &[]).contains(&a.pid()));
    let wrong_name = Matcher { process_name: Some("python3".into()), ..by_cmdline.clone() };
    assert!(!found_pids(&wrong_name, &[]).contains(&a.pid()));

    // By name alone.
    let by_name = Matcher { process_name: Some("sleep".into()), ..Matcher::default() };
    let pids = found_pids(&by_name, &[]);
    assert!(pids.contains(&a.pid()) && pids.contains(&b.pid()));

    // Listed pids match whatever they run.
    let by_pid = Matcher { pids: vec![b.pid()], ..Matcher::default() };
    let found = find(&by_pid, &[]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, b.id);
    assert_eq!(found_pids(&by_pid, &[b.pid()]), Vec::<u32>::new());

    // A zombie is not a worker to attach to.
    assert!(send(a.id, Signal::Kill).unwrap());
    until("the child becomes a zombie", || state(a.pid()) == Some('Z')).await;
    let pids = found_pids(&by_cmdline, &[]);
    assert!(!pids.contains(&a.pid()) && pids.contains(&b.pid()));
}

#[tokio::test]
async fn a_name_longer_than_comm_matches_by_argv0() {
    // comm is cut to 15 bytes; a long name still matches through argv[0] / the executable.
    let dir = std::env::temp_dir().join(format!("tend-collect-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let long = dir.join("a-very-long-worker-name");
    std::os::unix::fs::symlink("/bin/sleep", &long).unwrap();
    let kid = Kid::sleeper(&[long.to_str().unwrap(), "54321"]).await;
    let m = Matcher { process_name: Some("a-very-long-worker-name".into()), ..Matcher::default() };
    let found = find(&m, &[]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(found.iter().any(|f| f.id == kid.id), "{found:?}");
}
