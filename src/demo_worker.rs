//! `tend demo-worker`: a small, real worker process for demos and tests.
//!
//! It owns nothing but its own behaviour: burn a share of one core, hold and grow real (touched)
//! memory, log `request N handled` lines at a steady rate, answer `GET /health` and `GET /metrics` on
//! 127.0.0.1, exit with a chosen code after a while, and drain on SIGTERM (or ignore it, to test SIGKILL
//! escalation). It must stay independent of the engine: it is driven only by its flags, as any worker
//! would be, and uses std threads, no async runtime.
//!
//! Output (stdout, one line each): `listening on 127.0.0.1:PORT` once bound, `demo-worker pid=N ready`,
//! `request N handled`, `SIGTERM ignored`, `draining`, `exiting with code N`.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

const MIB: f64 = 1024.0 * 1024.0;
/// The main loop's longest sleep: SIGTERM is noticed within this.
const TICK: Duration = Duration::from_millis(100);
/// CPU burn is duty-cycled in slices of this length.
const SLICE: Duration = Duration::from_millis(100);

/// Flags of `tend demo-worker`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct DemoWorkerArgs {
    /// Busy-loop this share of one core (0-100), duty-cycled in 100 ms slices.
    #[arg(long, value_name = "PERCENT", default_value_t = 0.0, value_parser = percent)]
    pub cpu: f64,
    /// Allocate and touch this many MiB at start.
    #[arg(long, value_name = "MIB", default_value_t = 0)]
    pub base_mb: u64,
    /// Grow memory by this many MiB per second once ready (allocated and touched, so RSS grows).
    #[arg(long, value_name = "MIB", default_value_t = 0.0, value_parser = non_negative)]
    pub leak_mb_per_sec: f64,
    /// Stop growing once the worker holds this many MiB in total (base included).
    #[arg(long, value_name = "MIB", value_parser = non_negative)]
    pub leak_max_mb: Option<f64>,
    /// This worker's slot number (a pool passes `$TEND_SLOT`).
    #[arg(long, value_name = "N")]
    pub slot: Option<u32>,
    /// Leak only when `--slot` equals N; the other slots ignore the leak flags.
    #[arg(long, value_name = "N")]
    pub leak_if_slot: Option<u32>,
    /// Log `request N handled` at this rate once ready.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = non_negative)]
    pub requests_per_sec: f64,
    /// Exit after this many seconds (from start) with `--exit-code`.
    #[arg(long, value_name = "SECS", value_parser = non_negative)]
    pub exit_after: Option<f64>,
    /// The exit status used by `--exit-after`.
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true)]
    pub exit_code: i32,
    /// Listen on 127.0.0.1:P (0 = any free port) for `GET /health` and `GET /metrics`.
    #[arg(long, value_name = "P")]
    pub port: Option<u16>,
    /// Wait this many seconds before binding the port and printing `ready`.
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = non_negative)]
    pub ready_after: f64,
    /// Keep running on SIGTERM (only SIGKILL stops it).
    #[arg(long)]
    pub ignore_sigterm: bool,
    /// Hold memory in phases after ready, e.g. `70:8,45:6,5:600` = 70 MiB for 8 s, then 45 MiB for 6 s,
    /// then 5 MiB (the last phase lasts). Memory really rises and falls; replaces --base-mb and the leak.
    #[arg(long, value_name = "MIB:SECS,...", value_parser = phases)]
    pub memory_phases: Option<Phases>,
}

/// Memory targets over time: (MiB, seconds) pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct Phases(pub Vec<(f64, f64)>);

impl Phases {
    /// The MiB to hold `elapsed` seconds after ready.
    pub fn target_at(&self, elapsed: f64) -> f64 {
        let mut t = 0.0;
        for (mib, secs) in &self.0 {
            t += secs;
            if elapsed < t {
                return *mib;
            }
        }
        self.0.last().map_or(0.0, |(mib, _)| *mib)
    }
}

fn phases(s: &str) -> Result<Phases, String> {
    let parsed: Result<Vec<(f64, f64)>, String> = s
        .split(',')
        .map(|p| {
            let (m, t) = p.split_once(':').ok_or_else(|| format!("phase {p:?}: expected MIB:SECS"))?;
            Ok((non_negative(m.trim())?, non_negative(t.trim())?))
        })
        .collect();
    let v = parsed?;
    if v.is_empty() {
        return Err("expected at least one MIB:SECS phase".into());
    }
    Ok(Phases(v))
}

impl DemoWorkerArgs {
    /// MiB per second this worker leaks, after `--leak-if-slot` is applied.
    pub fn leak_rate(&self) -> f64 {
        match self.leak_if_slot {
            Some(only) if self.slot != Some(only) => 0.0,
            _ => self.leak_mb_per_sec,
        }
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected a number >= 0, not {s:?}")),
    }
}

fn percent(s: &str) -> Result<f64, String> {
    match non_negative(s) {
        Ok(v) if v <= 100.0 => Ok(v),
        _ => Err(format!("expected a percentage of one core between 0 and 100, not {s:?}")),
    }
}

/// Runs the worker until SIGTERM (exit 0), `--exit-after` (its code), or SIGKILL.
pub fn run(args: DemoWorkerArgs) -> anyhow::Result<()> {
    signals::install()?;
    let start = Instant::now();
    let stats = Arc::new(Stats::default());
    let mut ballast = Ballast::default();
    ballast.grow_to(mib_to_bytes(args.base_mb as f64));
    stats.memory_bytes.store(ballast.bytes() as u64, Ordering::Relaxed);
    if args.cpu > 0.0 {
        let share = args.cpu / 100.0;
        std::thread::Builder::new()
            .name("cpu".into())
            .spawn(move || burn(share))
            .context("cannot start the CPU thread")?;
    }

    let exit_at = args.exit_after.map(|s| start + Duration::from_secs_f64(s));
    let ready_at = start + Duration::from_secs_f64(args.ready_after);
    while Instant::now() < ready_at {
        if let Some(end) = stop_requested(&args, exit_at) {
            return end.finish();
        }
        pause(TICK.min(ready_at.saturating_duration_since(Instant::now())));
    }

    if let Some(port) = args.port {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        say(format_args!("listening on {}", listener.local_addr()?));
        let stats = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("http".into())
            .spawn(move || serve(listener, stats))
            .context("cannot start the HTTP thread")?;
    }
    say(format_args!("demo-worker pid={} ready", std::process::id()));

    let ready = Instant::now();
    let leak_rate = args.leak_rate();
    let base = mib_to_bytes(args.base_mb as f64);
    let cap = args.leak_max_mb.map_or(usize::MAX, mib_to_bytes);
    let request_gap =
        (args.requests_per_sec > 0.0).then(|| Duration::from_secs_f64(1.0 / args.requests_per_sec));
    let mut next_request = request_gap.map(|gap| ready + gap);
    loop {
        if let Some(end) = stop_requested(&args, exit_at) {
            return end.finish();
        }
        let now = Instant::now();
        if let Some(p) = &args.memory_phases {
            let target = mib_to_bytes(p.target_at(now.duration_since(ready).as_secs_f64()));
            if target >= ballast.bytes() {
                ballast.grow_to(target);
            } else {
                ballast.shrink_to(target);
            }
            stats.memory_bytes.store(ballast.bytes() as u64, Ordering::Relaxed);
        } else if leak_rate > 0.0 {
            let grown = mib_to_bytes(leak_rate * now.duration_since(ready).as_secs_f64());
            ballast.grow_to(base.saturating_add(grown).min(cap.max(base)));
            stats.memory_bytes.store(ballast.bytes() as u64, Ordering::Relaxed);
        }
        if let (Some(gap), Some(next)) = (request_gap, next_request.as_mut()) {
            while *next <= now {
                let n = stats.requests.fetch_add(1, Ordering::Relaxed) + 1;
                say(format_args!("request {n} handled"));
                *next += gap;
            }
        }
        let mut wait = TICK;
        if let Some(next) = next_request {
            wait = wait.min(next.saturating_duration_since(now));
        }
        if let Some(end) = exit_at {
            wait = wait.min(end.saturating_duration_since(now));
        }
        pause(wait);
    }
}

/// Why the main loop ends.
enum End {
    Drained,
    ExitAfter(i32),
}

impl End {
    fn finish(self) -> anyhow::Result<()> {
        match self {
            End::Drained => Ok(()),
            End::ExitAfter(0) => Ok(()),
            End::ExitAfter(code) => {
                let _ = io::stdout().flush();
                std::process::exit(code)
            }
        }
    }
}

fn stop_requested(args: &DemoWorkerArgs, exit_at: Option<Instant>) -> Option<End> {
    if signals::take_sigterm() {
        if args.ignore_sigterm {
            say(format_args!("SIGTERM ignored"));
        } else {
            say(format_args!("draining"));
            return Some(End::Drained);
        }
    }
    if exit_at.is_some_and(|end| Instant::now() >= end) {
        say(format_args!("exiting with code {}", args.exit_code));
        return Some(End::ExitAfter(args.exit_code));
    }
    None
}

/// One line on stdout. A closed stdout (the supervisor went away) must not kill the worker.
fn say(line: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

// A demo worker's job is to pass time, so here (and only here) it sleeps.
#[allow(clippy::disallowed_methods)]
fn pause(d: Duration) {
    std::thread::sleep(d);
}

fn mib_to_bytes(mib: f64) -> usize {
    (mib * MIB) as usize
}

/// Busy-loops `share` (0..=1) of every 100 ms slice, forever.
fn burn(share: f64) {
    let busy = SLICE.mul_f64(share.clamp(0.0, 1.0));
    let mut x: u64 = 1;
    loop {
        let slice_start = Instant::now();
        while slice_start.elapsed() < busy {
            for _ in 0..1000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        pause(SLICE.saturating_sub(slice_start.elapsed()));
    }
}

/// Memory held on purpose, every page written so that it counts in RSS.
#[derive(Default)]
struct Ballast {
    chunks: Vec<Vec<u8>>,
    bytes: usize,
}

impl Ballast {
    const CHUNK: usize = 1 << 20;

    fn bytes(&self) -> usize {
        self.bytes
    }

    /// Free chunks down to `target`, and hand the freed pages back to the kernel so RSS really falls
    /// (glibc keeps freed heap memory otherwise).
    #[allow(unsafe_code)] // malloc_trim
    fn shrink_to(&mut self, target: usize) {
        while self.bytes > target {
            match self.chunks.pop() {
                Some(c) => self.bytes -= c.len(),
                None => break,
            }
        }
        // SAFETY: malloc_trim only releases free heap memory; it touches no live allocation.
        #[cfg(target_env = "gnu")]
        unsafe {
            libc::malloc_trim(0);
        }
    }

    fn grow_to(&mut self, target: usize) {
        while self.bytes < target {
            let n = Self::CHUNK.min(target - self.bytes);
            // A non-zero fill writes every byte: a zeroed allocation could stay untouched (and out of RSS).
            self.chunks.push(vec![0xA5; n]);
            self.bytes += n;
        }
    }
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    memory_bytes: AtomicU64,
}

/// The Prometheus text page served on `/metrics`. Every fourth request counts as a write, the rest
/// as reads: one labelled counter, so scrapers see series of one name with different labels.
pub fn metrics_page(requests: u64, memory_bytes: u64) -> String {
    let writes = requests / 4;
    let reads = requests - writes;
    format!(
        "# HELP demo_requests_total Requests this demo worker has handled.\n\
         # TYPE demo_requests_total counter\n\
         demo_requests_total {requests}\n\
         # HELP demo_requests_by_kind_total Requests by kind.\n\
         # TYPE demo_requests_by_kind_total counter\n\
         demo_requests_by_kind_total{{kind=\"read\"}} {reads}\n\
         demo_requests_by_kind_total{{kind=\"write\"}} {writes}\n\
         # HELP demo_memory_bytes Memory this demo worker holds on purpose (base plus leak), in bytes.\n\
         # TYPE demo_memory_bytes gauge\n\
         demo_memory_bytes {memory_bytes}\n"
    )
}

/// Status line, content type and body for a request line like `GET /health HTTP/1.1`.
fn respond(request_line: &str, stats: &Stats) -> (&'static str, &'static str, String) {
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/health") => ("200 OK", "text/plain; charset=utf-8", "ok\n".into()),
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics_page(stats.requests.load(Ordering::Relaxed), stats.memory_bytes.load(Ordering::Relaxed)),
        ),
        ("GET", _) => ("404 Not Found", "text/plain; charset=utf-8", "not found\n".into()),
        _ => ("405 Method Not Allowed", "text/plain; charset=utf-8", "method not allowed\n".into()),
    }
}

fn serve(listener: TcpListener, stats: Arc<Stats>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let stats = Arc::clone(&stats);
        // One thread a connection, so that a slow client cannot hold up health checks.
        let _ = std::thread::Builder::new().name("http-conn".into()).spawn(move || {
            let _ = handle(stream, &stats);
        });
    }
}

fn handle(mut stream: TcpStream, stats: &Stats) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let (status, content_type, body) = respond(text.lines().next().unwrap_or(""), stats);
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// SIGTERM sets a flag that the main loop polls.
mod signals {
    use std::sync::atomic::{AtomicBool, Ordering};

    static SIGTERM: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_sigterm(_: libc::c_int) {
        SIGTERM.store(true, Ordering::SeqCst);
    }

    #[allow(unsafe_code)] // signal(2)
    pub(super) fn install() -> anyhow::Result<()> {
        let handler = on_sigterm as extern "C" fn(libc::c_int);
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let previous = unsafe { libc::signal(libc::SIGTERM, handler as libc::sighandler_t) };
        if previous == libc::SIG_ERR {
            anyhow::bail!("cannot install the SIGTERM handler: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether a SIGTERM arrived since the last call.
    pub(super) fn take_sigterm() -> bool {
        SIGTERM.swap(false, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: DemoWorkerArgs,
    }

    fn parse(argv: &[&str]) -> Result<DemoWorkerArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("demo-worker").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn defaults_do_nothing_much() {
        let args = parse(&[]).unwrap();
        assert_eq!(
            args,
            DemoWorkerArgs {
                cpu: 0.0,
                base_mb: 0,
                leak_mb_per_sec: 0.0,
                leak_max_mb: None,
                slot: None,
                leak_if_slot: None,
                requests_per_sec: 0.0,
                exit_after: None,
                exit_code: 0,
                port: None,
                ready_after: 0.0,
                ignore_sigterm: false,
                memory_phases: None,
            }
        );
        assert_eq!(args.leak_rate(), 0.0);
    }

    #[test]
    fn memory_phases_parse_and_pick_the_phase_by_time() {
        let p = parse(&["--memory-phases", "70:8, 45:6,5:600"]).unwrap().memory_phases.unwrap();
        assert_eq!(p, Phases(vec![(70.0, 8.0), (45.0, 6.0), (5.0, 600.0)]));
        assert_eq!(p.target_at(0.0), 70.0);
        assert_eq!(p.target_at(7.99), 70.0);
        assert_eq!(p.target_at(8.0), 45.0);
        assert_eq!(p.target_at(13.9), 45.0);
        assert_eq!(p.target_at(14.0), 5.0);
        assert_eq!(p.target_at(10_000.0), 5.0, "the last phase lasts");
        let err = parse(&["--memory-phases", "70"]).unwrap_err().to_string();
        assert!(err.contains("expected MIB:SECS"), "{err}");
        assert!(parse(&["--memory-phases", "70:-1"]).is_err());
    }

    #[test]
    fn flags_parse() {
        let args = parse(&[
            "--cpu",
            "30",
            "--base-mb",
            "20",
            "--leak-mb-per-sec",
            "2.5",
            "--leak-max-mb",
            "100",
            "--requests-per-sec",
            "4",
            "--exit-after",
            "1.5",
            "--exit-code",
            "-3",
            "--port",
            "0",
            "--ready-after",
            "2",
            "--ignore-sigterm",
        ])
        .unwrap();
        assert_eq!(args.cpu, 30.0);
        assert_eq!(args.base_mb, 20);
        assert_eq!(args.leak_rate(), 2.5);
        assert_eq!(args.leak_max_mb, Some(100.0));
        assert_eq!(args.requests_per_sec, 4.0);
        assert_eq!(args.exit_after, Some(1.5));
        assert_eq!(args.exit_code, -3);
        assert_eq!(args.port, Some(0));
        assert_eq!(args.ready_after, 2.0);
        assert!(args.ignore_sigterm);
    }

    #[test]
    fn bad_values_are_refused() {
        for argv in
            [&["--cpu", "150"][..], &["--cpu", "-1"], &["--leak-mb-per-sec", "x"], &["--port", "70000"]]
        {
            assert!(parse(argv).is_err(), "{argv:?}");
        }
    }

    #[test]
    fn the_leak_follows_the_slot() {
        let leaky = |slot: &str| {
            parse(&["--slot", slot, "--leak-if-slot", "2", "--leak-mb-per-sec", "3"]).unwrap().leak_rate()
        };
        assert_eq!(leaky("0"), 0.0);
        assert_eq!(leaky("1"), 0.0);
        assert_eq!(leaky("2"), 3.0);
        // Without --slot, --leak-if-slot never matches.
        assert_eq!(parse(&["--leak-if-slot", "2", "--leak-mb-per-sec", "3"]).unwrap().leak_rate(), 0.0);
    }

    #[test]
    fn the_metrics_page() {
        assert_eq!(
            metrics_page(7, 20_971_520),
            "# HELP demo_requests_total Requests this demo worker has handled.\n\
             # TYPE demo_requests_total counter\n\
             demo_requests_total 7\n\
             # HELP demo_requests_by_kind_total Requests by kind.\n\
             # TYPE demo_requests_by_kind_total counter\n\
             demo_requests_by_kind_total{kind=\"read\"} 6\n\
             demo_requests_by_kind_total{kind=\"write\"} 1\n\
             # HELP demo_memory_bytes Memory this demo worker holds on purpose (base plus leak), in bytes.\n\
             # TYPE demo_memory_bytes gauge\n\
             demo_memory_bytes 20971520\n"
        );
    }

    #[test]
    fn routes() {
        let stats = Stats::default();
        stats.requests.store(3, Ordering::Relaxed);
        assert_eq!(respond("GET /health HTTP/1.1", &stats).0, "200 OK");
        let (status, content_type, body) = respond("GET /metrics?x=1 HTTP/1.1", &stats);
        assert_eq!((status, content_type), ("200 OK", "text/plain; version=0.0.4; charset=utf-8"));
        assert!(body.contains("demo_requests_total 3\n"), "{body}");
        assert_eq!(respond("GET /nope HTTP/1.1", &stats).0, "404 Not Found");
        assert_eq!(respond("POST /health HTTP/1.1", &stats).0, "405 Method Not Allowed");
        assert_eq!(respond("", &stats).0, "405 Method Not Allowed");
    }

    #[test]
    fn serves_over_tcp() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        stats.memory_bytes.store(42, Ordering::Relaxed);
        std::thread::spawn(move || serve(listener, stats));
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.ends_with("demo_memory_bytes 42\n"), "{reply}");
    }

    #[test]
    fn ballast_holds_what_it_is_asked_to() {
        let mut b = Ballast::default();
        b.grow_to(2 * Ballast::CHUNK + 10);
        assert_eq!(b.bytes(), 2 * Ballast::CHUNK + 10);
        assert_eq!(b.chunks.len(), 3);
        b.grow_to(5);
        assert_eq!(b.bytes(), 2 * Ballast::CHUNK + 10);
        assert!(b.chunks.iter().all(|c| c.iter().all(|&x| x == 0xA5)));
    }
}
