//! The samplers against real children: what a sweep reads, CPU rates, exits and reused pids.

use std::time::{Duration, Instant};

use tend_collect::signal::{Signal, send};
use tend_collect::{Fields, Gone, ProcSampler, Sampler, SysinfoSampler, default_sampler, is_running};
use tend_core::{Metrics, ProcessId};

use crate::support::{DEADLINE, Kid, state, until};

fn one(sampler: &mut dyn Sampler, id: ProcessId) -> Result<Metrics, Gone> {
    let mut out = sampler.sample(&[id]);
    assert_eq!(out.len(), 1);
    let (got, result) = out.remove(0);
    assert_eq!(got, id);
    result
}

#[tokio::test]
async fn a_sleeping_child_is_sampled() {
    let kid = Kid::sleeper(&["sleep", "30"]).await;
    let mut sampler = ProcSampler::new().unwrap();
    let first = one(&mut sampler, kid.id).unwrap();
    assert!(first.memory_bytes.unwrap() > 0, "{first:?}");
    assert!(first.memory_percent.unwrap() > 0.0 && first.memory_percent.unwrap() < 100.0, "{first:?}");
    assert!(first.threads.unwrap() >= 1, "{first:?}");
    assert!(first.fds.unwrap() >= 3, "{first:?}");
    assert!(first.disk_read_bytes.is_some() && first.disk_write_bytes.is_some(), "{first:?}");
    assert_eq!(first.cpu_percent, None, "the first sweep has no rate yet");
    assert_eq!(sampler.watched(), 1);
}

#[tokio::test]
async fn a_second_sweep_gives_a_cpu_rate_for_an_idle_child() {
    let kid = Kid::start(&["sleep", "30"]);
    let mut sampler = ProcSampler::new().unwrap();
    one(&mut sampler, kid.id).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // the measuring window, not an assertion
    let m = one(&mut sampler, kid.id).unwrap();
    let cpu = m.cpu_percent.unwrap();
    assert!(cpu < 20.0, "sleep should be idle: {cpu}");
    assert_eq!(m.cpu_host_percent.unwrap(), cpu / f64::from(sampler.cpus()));
}

/// Nanoseconds the (single-threaded) process has run, from the scheduler: an account independent of
/// the utime/stime ticks the sampler reads.
fn ran_ns(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).expect("schedstat");
    s.split_whitespace().next().and_then(|f| f.parse().ok()).expect("schedstat run time")
}

#[tokio::test]
async fn a_cpu_burner_shows_about_one_core() {
    let kid = Kid::start(&["sh", "-c", "while :; do :; done"]);
    let mut sampler = ProcSampler::new().unwrap();
    one(&mut sampler, kid.id).unwrap();
    let (mut ran, mut at) = (ran_ns(kid.pid()), Instant::now());
    // Each 500 ms window is checked against the scheduler's own account of the burner's run time.
    // Expected: about one core (50–110 %). If other work on this machine holds the burner below
    // that, the sampler must still agree with the scheduler in every window.
    let mut seen = Vec::new();
    for window in 1.. {
        tokio::time::sleep(Duration::from_millis(500)).await; // the measuring window
        let m = one(&mut sampler, kid.id).unwrap();
        let (ran_now, now) = (ran_ns(kid.pid()), Instant::now());
        let truth = (ran_now - ran) as f64 / now.duration_since(at).as_nanos() as f64 * 100.0;
        (ran, at) = (ran_now, now);
        let cpu = m.cpu_percent.unwrap();
        seen.push((cpu, truth));
        assert!((cpu - truth).abs() <= 10.0, "sampler vs scheduler, (cpu, truth) per window: {seen:?}");
        assert!(cpu <= 110.0, "one single-threaded shell cannot use more than a core: {seen:?}");
        assert!((m.cpu_host_percent.unwrap() - cpu / f64::from(sampler.cpus())).abs() < 1e-9);
        if cpu >= 50.0 {
            break;
        }
        assert!(truth > 5.0, "the burner hardly ran at all: {seen:?}");
        if window >= 8 {
            eprintln!("busy machine: the burner never got half a core, sampler agreed throughout: {seen:?}");
            break;
        }
    }
}

#[tokio::test]
async fn an_exited_child_is_gone_reaped_or_zombie() {
    let mut sampler = ProcSampler::new().unwrap();

    // Reaped: the pid no longer exists.
    let mut kid = Kid::start(&["sleep", "30"]);
    one(&mut sampler, kid.id).unwrap();
    kid.child.kill().unwrap();
    kid.child.wait().unwrap();
    assert_eq!(one(&mut sampler, kid.id), Err(Gone));
    assert_eq!(sampler.watched(), 0, "descriptors of a gone process are dropped");

    // Zombie: exited, not yet reaped by its parent (us).
    let zombie = Kid::start(&["sleep", "30"]);
    one(&mut sampler, zombie.id).unwrap();
    assert!(send(zombie.id, Signal::Kill).unwrap());
    until("the child becomes a zombie", || state(zombie.pid()) == Some('Z')).await;
    assert_eq!(one(&mut sampler, zombie.id), Err(Gone));
    assert!(!is_running(zombie.id));
    assert!(!send(zombie.id, Signal::Term).unwrap(), "an exited process is not signalled");
}

#[test]
fn a_reused_pid_is_gone_and_is_never_signalled() {
    let kid = Kid::start(&["sleep", "30"]);
    let stranger = ProcessId { pid: kid.pid(), start_ticks: kid.id.start_ticks.wrapping_sub(1) };
    let mut sampler = ProcSampler::new().unwrap();
    assert_eq!(one(&mut sampler, stranger), Err(Gone));
    assert_eq!(sampler.watched(), 0);
    assert!(!send(stranger, Signal::Kill).unwrap(), "signal::send must refuse a different process");
    assert!(!tend_collect::signal::send_group(stranger, Signal::Kill).unwrap());
    assert!(is_running(kid.id), "the real process was not touched");
    // The genuine identity still samples, also after the stranger was asked under the same pid.
    one(&mut sampler, kid.id).unwrap();
    assert_eq!(one(&mut sampler, stranger), Err(Gone));
    one(&mut sampler, kid.id).unwrap();
}

/// How many of this test process's descriptors point into `/proc/PID/` (the sampler's kept files).
fn held_for(pid: u32) -> usize {
    let prefix = format!("/proc/{pid}/");
    std::fs::read_dir("/proc/self/fd")
        .expect("list our own fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with(&prefix))
        .count()
}

#[test]
fn pids_no_longer_asked_for_are_forgotten_and_their_descriptors_closed() {
    let kids: Vec<Kid> = (0..5).map(|_| Kid::start(&["sleep", "30"])).collect();
    let ids: Vec<ProcessId> = kids.iter().map(|k| k.id).collect();
    let mut sampler = ProcSampler::new().unwrap();
    let out = sampler.sample(&ids);
    assert!(out.iter().all(|(_, r)| r.is_ok()));
    assert_eq!(out.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids, "results come in the asked order");
    assert_eq!(sampler.watched(), 5);
    // stat, statm, io and the fd directory stay open between sweeps.
    assert!(
        ids.iter().all(|id| held_for(id.pid) == 4),
        "{:?}",
        ids.iter().map(|id| held_for(id.pid)).collect::<Vec<_>>()
    );
    sampler.sample(&ids[..2]);
    assert_eq!(sampler.watched(), 2);
    assert!(ids[2..].iter().all(|id| held_for(id.pid) == 0));
    assert_eq!(held_for(ids[0].pid), 4);
    sampler.sample(&[]);
    assert_eq!(sampler.watched(), 0);
    assert!(ids.iter().all(|id| held_for(id.pid) == 0));
}

#[tokio::test]
async fn basic_fields_skip_disk_io_and_fds() {
    let kid = Kid::sleeper(&["sleep", "30"]).await;
    let mut sampler = ProcSampler::with_fields(Fields::BASIC).unwrap();
    let m = one(&mut sampler, kid.id).unwrap();
    assert!(m.memory_bytes.unwrap() > 0 && m.threads == Some(1));
    assert_eq!((m.disk_read_bytes, m.disk_write_bytes, m.fds), (None, None, None));
    assert_eq!(held_for(kid.pid()), 2, "only stat and statm are kept open");
}

#[test]
fn uptime_and_start_time_come_from_start_ticks() {
    let kid = Kid::start(&["sleep", "30"]);
    let sampler = ProcSampler::new().unwrap();
    let up = sampler.uptime_secs(kid.id).unwrap();
    assert!((0.0..DEADLINE.as_secs_f64()).contains(&up), "just started, yet uptime {up}");
    #[allow(clippy::disallowed_methods)] // a test comparing against the wall clock on purpose
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let started = sampler.start_time_unix_ms(kid.id);
    // btime has one-second precision, and the child started moments ago.
    assert!(started.abs_diff(now_ms) < 2_000 + DEADLINE.as_millis() as u64, "{started} vs {now_ms}");
    let init = tend_collect::process_id(1).unwrap();
    assert!(sampler.uptime_secs(init).unwrap() >= up);
}

#[tokio::test]
async fn the_sysinfo_sampler_reads_the_same_processes() {
    let kid = Kid::sleeper(&["sleep", "30"]).await;
    let mut sampler = SysinfoSampler::new().unwrap();
    let first = one(&mut sampler, kid.id).unwrap();
    assert!(first.memory_bytes.unwrap() > 0, "{first:?}");
    assert!(first.fds.unwrap() >= 3, "{first:?}");
    assert_eq!(first.cpu_percent, None);
    tokio::time::sleep(Duration::from_millis(200)).await; // the measuring window
    let second = one(&mut sampler, kid.id).unwrap();
    assert!(second.cpu_percent.unwrap() < 20.0, "{second:?}");

    let stranger = ProcessId { pid: kid.pid(), start_ticks: kid.id.start_ticks + 1000 };
    assert_eq!(one(&mut sampler, stranger), Err(Gone));

    let mut other = Kid::start(&["sleep", "30"]);
    one(&mut sampler, other.id).unwrap();
    other.child.kill().unwrap();
    other.child.wait().unwrap();
    assert_eq!(one(&mut sampler, other.id), Err(Gone));
}

#[tokio::test]
async fn both_samplers_agree_on_memory() {
    let kid = Kid::sleeper(&["sleep", "30"]).await;
    let a = one(&mut ProcSampler::new().unwrap(), kid.id).unwrap().memory_bytes.unwrap();
    let b = one(&mut SysinfoSampler::new().unwrap(), kid.id).unwrap().memory_bytes.unwrap();
    // A sleeping process's RSS does not move; both read the same kernel counter.
    assert_eq!(a, b);
}

#[tokio::test]
async fn the_default_sampler_works() {
    let kid = Kid::sleeper(&["sleep", "30"]).await;
    let mut sampler = default_sampler().unwrap();
    let m = one(sampler.as_mut(), kid.id).unwrap();
    assert!(m.memory_bytes.unwrap() > 0);
    // On Linux the default is the /proc sampler, the one that reports threads.
    assert!(m.threads.is_some());
}

#[tokio::test]
async fn a_zombie_leader_whose_threads_run_on_is_still_running() {
    // The main thread calls pthread_exit while another thread keeps the process alive: /proc/PID/stat
    // then reads `Z`, yet the process is very much there.
    let kid = Kid::start(&[
        "python3",
        "-c",
        "import threading, time, ctypes\n\
         threading.Thread(target=time.sleep, args=(30,)).start()\n\
         ctypes.CDLL(None).pthread_exit(None)",
    ]);
    until("the leader thread exits", || state(kid.pid()) == Some('Z')).await;
    assert!(is_running(kid.id));
    let m = one(&mut ProcSampler::new().unwrap(), kid.id).unwrap();
    assert_eq!(m.threads, Some(2));
    assert_eq!(m.memory_bytes, None, "the leader's memory map is gone: unknown, not zero");
    assert!(send(kid.id, Signal::Term).unwrap());
    until("SIGTERM ends it", || !is_running(kid.id)).await;
}

/// A round read in parts: a process keeps its descriptors and its CPU baseline while other parts are
/// read, and is forgotten once a whole round has gone by without it.
#[test]
fn a_round_in_parts_keeps_every_process_until_a_round_passes_without_it() {
    let kids: Vec<Kid> = (0..4).map(|_| Kid::start(&["sleep", "30"])).collect();
    let ids: Vec<ProcessId> = kids.iter().map(|k| k.id).collect();
    let mut sampler = ProcSampler::new().unwrap();
    let (a, b) = ids.split_at(2);
    for _ in 0..2 {
        assert!(sampler.sample_part(a, 2).iter().all(|(_, r)| r.is_ok()));
        assert!(sampler.sample_part(b, 2).iter().all(|(_, r)| r.is_ok()));
        assert_eq!(sampler.watched(), 4, "the other part's processes are kept");
        assert!(ids.iter().all(|id| held_for(id.pid) == 4));
    }
    // CPU percentages need 100 ms between two readings of a process: rounds go on until then, and
    // a baseline dropped by the other part's read would never get there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let again = sampler.sample_part(a, 2);
        if again.iter().all(|(_, r)| r.as_ref().is_ok_and(|m| m.cpu_percent.is_some())) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the CPU baseline survives the other part's read");
        sampler.sample_part(b, 2);
    }
    // b's part now goes unread for a whole round: forgotten, descriptors closed.
    sampler.sample_part(a, 2);
    assert_eq!(sampler.watched(), 2);
    assert!(b.iter().all(|id| held_for(id.pid) == 0));
}
