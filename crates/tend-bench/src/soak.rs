//! Section 7, soak (`make soak`, one hour by default; 20 s in the smoke): a `tend serve` kept busy
//! for a long time, to see whether anything grows that should not. Its load: a spawn pool of
//! `demo-worker`s that leak memory and are recycled every few seconds (memory limit), an attach pool
//! watching sleeping processes, a client polling `GET /api/v1/workers` 5 times a second and one
//! client reading the SSE stream `GET /api/v1/events`. At a fixed period it samples Tend's RSS, CPU,
//! open descriptors, threads and the history database on disk (db + wal + shm); at the end it reports
//! the series and the RSS slope over the last half of the run (least squares, MiB per minute).
//! Every request goes to 127.0.0.1; the load stops by itself at the end of the window.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::children::Sleepers;
use crate::report::{Block, Report, Section, table};
use crate::stats::{Summary, slope};
use crate::tend::TendProc;
use crate::{Plan, os};

pub const TITLE: &str = "7. Soak";
const LIMIT_MB: u64 = 40;
const LEAK_MB_PER_SEC: u64 = 8;
const POLLS_PER_SEC: u64 = 5;
const POOL: &str = "leakers";

/// What the load threads count, read by the sampler.
#[derive(Default)]
struct Counters {
    stop: AtomicBool,
    polls_ok: AtomicU64,
    polls_failed: AtomicU64,
    workers_seen: AtomicU64,
    sse_events: AtomicU64,
    sse_recycles: AtomicU64,
    sse_reconnects: AtomicU64,
}

/// One sample of Tend.
#[derive(Clone, Debug)]
struct Point {
    secs: f64,
    rss_mib: f64,
    cpu_percent: f64,
    fds: usize,
    threads: u64,
    db_mib: f64,
    recycles: u64,
    workers: u64,
}

pub fn run(plan: &Plan, tend_exe: &Path, report: &mut Report) -> anyhow::Result<()> {
    let (leakers, attached) = (plan.soak_leakers, plan.soak_attached);
    let secs = plan.soak_secs;
    os::raise_nofile()?;
    let sleepers = Sleepers::spawn(attached, &format!("soak-{}", std::process::id()))?;
    // Retention of raw samples is short so that the run reaches the steady state in which the store
    // deletes as much as it writes; storms are allowed, the churn is the point.
    let config = format!(
        "[store]\nretention = {{ raw = \"10m\", minute = \"1h\" }}\n\n\
         [[pool]]\nname = \"{POOL}\"\nsource = \"spawn\"\n\
         command = [\"$TEND_EXE\", \"demo-worker\", \"--base-mb\", \"10\", \"--leak-mb-per-sec\", \"{LEAK_MB_PER_SEC}\", \
         \"--leak-max-mb\", \"200\"]\n\
         size = {leakers}\nprofile = \"intensive\"\nreadiness = {{ start_secs = 0.5, timeout = \"30s\" }}\nstop_grace = \"1s\"\n\
         recycle = {{ memory_mb = {LIMIT_MB}, max_unavailable = {leakers}, storm_max = 100000, storm_window = \"60s\" }}\n\n\
         [[pool]]\nname = \"watched\"\nsource = \"attach\"\ncmdline = \"{}\"\nprofile = \"intensive\"\n",
        sleepers.cmdline_regex()
    );
    let mut tend = TendProc::start(tend_exe, "soak", &config, false, "warn")?;
    tend.wait_ready(attached + 1, 120)?;
    let counters = Arc::new(Counters::default());
    let mut threads = vec![poller(&tend.base, counters.clone())?];
    match sse_reader(&tend.base, counters.clone()) {
        Ok(t) => threads.push(t),
        Err(e) => {
            counters.stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
    }

    let every = Duration::from_secs(plan.soak_every_secs);
    let start = Instant::now();
    let mut last = (start, os::cpu_ticks(tend.pid)?);
    let mut points = Vec::new();
    let outcome = loop {
        let next = start + every * (points.len() as u32 + 1);
        os::pause(next.saturating_duration_since(Instant::now()));
        if let Some(status) = tend.exited() {
            break Err(anyhow::anyhow!(
                "tend serve exited during the soak ({status}); stderr:\n{}",
                tend.stderr_tail(30)
            ));
        }
        match sample(&tend, &counters, start, &mut last) {
            Ok(p) => {
                eprintln!(
                    "tend-bench: soak t={:.0}s rss={:.1}MiB cpu={:.1}% fds={} threads={} db={:.2}MiB recycles={} workers={} polls={}/{} sse={}",
                    p.secs,
                    p.rss_mib,
                    p.cpu_percent,
                    p.fds,
                    p.threads,
                    p.db_mib,
                    p.recycles,
                    p.workers,
                    counters.polls_ok.load(Ordering::Relaxed),
                    counters.polls_failed.load(Ordering::Relaxed),
                    counters.sse_events.load(Ordering::Relaxed),
                );
                points.push(p);
            }
            Err(e) => break Err(e),
        }
        if start.elapsed() >= Duration::from_secs(secs) {
            break Ok(());
        }
    };
    counters.stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let api_recycles = pool_recycles(&tend).ok();
    tend.stop();
    drop(sleepers);
    outcome?;

    let section = summarize(plan, &points, &counters, api_recycles)?;
    report.push(section);
    Ok(())
}

fn sample(tend: &TendProc, c: &Counters, start: Instant, last: &mut (Instant, u64)) -> anyhow::Result<Point> {
    let now = Instant::now();
    let ticks = os::cpu_ticks(tend.pid)?;
    let cpu_percent = (ticks - last.1) as f64
        / os::clock_ticks() as f64
        / now.duration_since(last.0).as_secs_f64().max(1e-3)
        * 100.0;
    *last = (now, ticks);
    Ok(Point {
        secs: now.duration_since(start).as_secs_f64(),
        rss_mib: os::rss_bytes(tend.pid)? as f64 / 1048576.0,
        cpu_percent,
        fds: os::fd_count(tend.pid)?,
        threads: os::thread_count(tend.pid)?,
        db_mib: os::dir_bytes(&tend.data_dir()) as f64 / 1048576.0,
        recycles: c.sse_recycles.load(Ordering::Relaxed),
        workers: c.workers_seen.load(Ordering::Relaxed),
    })
}

/// `GET /api/v1/workers` five times a second, on one kept-alive connection.
fn poller(base: &str, c: Arc<Counters>) -> anyhow::Result<JoinHandle<()>> {
    let mut http = crate::http::Http::new(base)?;
    Ok(std::thread::spawn(move || {
        let period = Duration::from_millis(1000 / POLLS_PER_SEC);
        let start = Instant::now();
        let mut n = 0u32;
        while !c.stop.load(Ordering::Relaxed) {
            match http.get("/api/v1/workers") {
                Ok(r) if r.status == 200 => {
                    c.polls_ok.fetch_add(1, Ordering::Relaxed);
                    if let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(&r.body) {
                        c.workers_seen.store(list.len() as u64, Ordering::Relaxed);
                    }
                }
                _ => {
                    c.polls_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            n += 1;
            os::pause((start + period * n).saturating_duration_since(Instant::now()));
        }
    }))
}

/// One SSE client on `GET /api/v1/events`, counting events (and recycles among them); it reconnects
/// when the stream ends, and counts that too.
fn sse_reader(base: &str, c: Arc<Counters>) -> anyhow::Result<JoinHandle<()>> {
    crate::http::Http::new(base)?; // the loopback check
    let addr = base.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let first = sse_connect(&addr)?;
    Ok(std::thread::spawn(move || {
        let mut conn = Some(first);
        let mut line = Vec::new();
        while !c.stop.load(Ordering::Relaxed) {
            let Some(reader) = conn.as_mut() else {
                os::pause(Duration::from_millis(500));
                conn = sse_connect(&addr).ok();
                c.sse_reconnects.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => conn = None,
                Ok(_) if line.ends_with(b"\n") => {
                    if let Some(kind) = line.strip_prefix(b"event:") {
                        c.sse_events.fetch_add(1, Ordering::Relaxed);
                        if kind.trim_ascii() == b"recycle_started" {
                            c.sse_recycles.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    line.clear();
                }
                Ok(_) => {}
                // The read timeout: a partial line stays in `line`.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => conn = None,
            }
        }
    }))
}

fn sse_connect(addr: &str) -> anyhow::Result<BufReader<TcpStream>> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    write!(s, "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")?;
    let mut reader = BufReader::new(s);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("GET /api/v1/events: {}", status.trim());
    }
    Ok(reader)
}

/// Recycles as Tend counts them (`recycles_by_reason` of the leaking pool's metrics), to compare
/// with the SSE client's count.
fn pool_recycles(tend: &TendProc) -> anyhow::Result<u64> {
    let r = tend.http()?.get(&format!("/api/v1/pools/{POOL}/metrics"))?;
    let v: Value = serde_json::from_slice(&r.body).context("pools JSON")?;
    fn sum(v: &Value) -> u64 {
        match v {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("recycles_by_reason", Value::Object(r)) => r.values().filter_map(Value::as_u64).sum(),
                    _ => sum(v),
                })
                .sum(),
            Value::Array(a) => a.iter().map(sum).sum(),
            _ => 0,
        }
    }
    Ok(sum(&v))
}

fn summarize(
    plan: &Plan,
    points: &[Point],
    c: &Counters,
    api_recycles: Option<u64>,
) -> anyhow::Result<Section> {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        bail!("no sample taken");
    };
    let half: Vec<(f64, f64)> =
        points.iter().filter(|p| p.secs >= last.secs / 2.0).map(|p| (p.secs / 60.0, p.rss_mib)).collect();
    let rss = Summary::of(&points.iter().map(|p| p.rss_mib).collect::<Vec<_>>()).context("rss")?;
    let cpu = Summary::of(&points.iter().map(|p| p.cpu_percent).collect::<Vec<_>>()).context("cpu")?;
    let range = |f: fn(&Point) -> f64| {
        points.iter().map(f).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    let (fd_lo, fd_hi) = range(|p| p.fds as f64);
    let (th_lo, th_hi) = range(|p| p.threads as f64);
    let (_, db_hi) = range(|p| p.db_mib);
    let minutes = last.secs / 60.0;
    let mut s = Section::new(TITLE, &["measure", "value", "detail"]).in_block(Block::Soak);
    s.note(format!(
        "`tend serve` for {minutes:.1} min with: a spawn pool of {} `demo-worker`s leaking {LEAK_MB_PER_SEC} MiB/s \
         from 10 MiB, recycled at memory_mb = {LIMIT_MB} (every ~4-5 s each); an attach pool watching {} sleeping \
         processes (cmdline regex); both at profile intensive (1 s samples); raw history kept 10 min. A client polls \
         `GET /api/v1/workers` {POLLS_PER_SEC}×/s and one reads `GET /api/v1/events` (SSE). Tend is sampled every \
         {} s: RSS (`/proc/PID/statm`), CPU, open fds, threads, and the data directory's size (db + wal + shm).",
        plan.soak_leakers, plan.soak_attached, plan.soak_every_secs
    ));
    let slope_text = match slope(&half) {
        Some(m) => format!("{m:+.3} MiB/min"),
        None => "–".into(),
    };
    s.row(vec![
        "RSS slope, last half (least squares)".into(),
        slope_text,
        format!("{} samples from {:.1} min on", half.len(), minutes / 2.0),
    ]);
    s.row(vec![
        "RSS".into(),
        format!("{:.1} MiB at the end", last.rss_mib),
        format!(
            "first {:.1}, min {:.1}, median {:.1}, max {:.1} MiB",
            first.rss_mib, rss.min, rss.median, rss.max
        ),
    ]);
    s.row(vec![
        "CPU".into(),
        format!("{:.1}% median", cpu.median),
        format!("p90 {:.1}%, max {:.1}% of one core", cpu.p90, cpu.max),
    ]);
    s.row(vec!["open fds".into(), format!("{fd_lo:.0}–{fd_hi:.0}"), "min–max".into()]);
    s.row(vec!["threads".into(), format!("{th_lo:.0}–{th_hi:.0}"), "min–max".into()]);
    s.row(vec![
        "history database on disk".into(),
        format!("{db_hi:.2} MiB max"),
        format!("{:.2} MiB at the end (db + wal + shm)", last.db_mib),
    ]);
    let polls = (c.polls_ok.load(Ordering::Relaxed), c.polls_failed.load(Ordering::Relaxed));
    s.row(vec![
        "recycles done".into(),
        last.recycles.to_string(),
        format!(
            "`recycle_started` events read over SSE; Tend's own count: {}",
            api_recycles.map_or("unavailable".into(), |n| n.to_string())
        ),
    ]);
    s.row(vec![
        "API polls".into(),
        format!("{} ok, {} failed", polls.0, polls.1),
        format!("last list: {} workers", last.workers),
    ]);
    s.row(vec![
        "SSE".into(),
        format!("{} events", c.sse_events.load(Ordering::Relaxed)),
        format!("{} reconnects", c.sse_reconnects.load(Ordering::Relaxed)),
    ]);
    // The series, thinned to at most 13 rows (the first, the last, and evenly in between).
    let step = (points.len().saturating_sub(1) / 12).max(1);
    let rows: Vec<Vec<String>> = points
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i == points.len() - 1)
        .map(|(_, p)| {
            vec![
                format!("{:.1}", p.secs / 60.0),
                format!("{:.1}", p.rss_mib),
                format!("{:.1}", p.cpu_percent),
                p.fds.to_string(),
                p.threads.to_string(),
                format!("{:.2}", p.db_mib),
                p.recycles.to_string(),
            ]
        })
        .collect();
    let header: Vec<String> =
        ["min", "RSS MiB", "CPU %", "fds", "threads", "DB MiB", "recycles"].map(String::from).to_vec();
    s.note(format!(
        "The series ({} samples, thinned):\n\n{}",
        points.len(),
        table(&header, &rows).trim_end()
    ));
    Ok(s)
}
