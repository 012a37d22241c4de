//! Section 3, reaction time: from the moment a worker's memory really crosses its recycle limit to the
//! `recycle_started` event. The bench watches each worker's `/proc/PID/statm` every 2 ms on its own
//! (the ground truth, independent of Tend's samples) and matches crossings with the events' `at`
//! (both are wall-clock milliseconds on the same host). Workers are `demo-worker`s leaking a known
//! rate from a small base, several at a time, each replacement leaking again.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::report::{Check, Report, Section};
use crate::stats::Summary;
use crate::tend::TendProc;
use crate::{Plan, os};

const LIMIT_MB: u64 = 40;
const POOL: &str = "leak";

pub fn run(plan: &Plan, tend_exe: &Path, report: &mut Report) -> anyhow::Result<()> {
    // Ten slots whose leak starts 0.0 s, 0.1 s, … 0.9 s after spawn: a replacement is spawned right
    // after a sweep, so without this every crossing would fall at the same phase of the 1 s sweep.
    let size = plan.trials.clamp(1, 10);
    let config = format!(
        "[[pool]]\nname = \"{POOL}\"\nsource = \"spawn\"\n\
         command = [\"$TEND_EXE\", \"demo-worker\", \"--ready-after\", \"0.$TEND_SLOT\", \"--base-mb\", \"10\", \
         \"--leak-mb-per-sec\", \"16\", \"--leak-max-mb\", \"120\"]\n\
         size = {size}\nprofile = \"intensive\"\nreadiness = {{ start_secs = 0.5, timeout = \"30s\" }}\nstop_grace = \"1s\"\n\
         recycle = {{ memory_mb = {LIMIT_MB}, max_unavailable = {size}, storm_max = 1000, storm_window = \"60s\" }}\n"
    );
    let mut tend = TendProc::start(tend_exe, "reaction", &config, true, "info")?;
    let limit = LIMIT_MB * 1024 * 1024;
    // pid -> (start ticks, first time seen above the limit, µs since the epoch)
    let mut watched: HashMap<u32, (u64, Option<i64>)> = HashMap::new();
    // (old pid, event at ms, event received ms)
    let mut started: Vec<(u32, i64, i64)> = Vec::new();
    let mut cursor = 0;
    let deadline = Instant::now() + Duration::from_secs(plan.trials as u64 * 4 + 40);
    while started.len() < plan.trials {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} memory recycles within the time limit; stderr:\n{}",
                started.len(),
                plan.trials,
                tend.stderr_tail(10)
            );
        }
        tend.each_new_event(&mut cursor, |r| {
            let e = &r.event;
            if e["pool"] != POOL {
                return;
            }
            if e["type"] == "state_changed"
                && let (Some(pid), Some(st)) =
                    (e["process"]["pid"].as_u64(), e["process"]["start_ticks"].as_u64())
            {
                watched.entry(pid as u32).or_insert((st, None));
            }
            if e["type"] == "recycle_started"
                && e["reason"] == "memory"
                && let (Some(pid), Some(at)) = (e["old_process"]["pid"].as_u64(), e["at"].as_i64())
            {
                started.push((pid as u32, at, r.rx_ms));
            }
        });
        for (pid, (st, crossed)) in watched.iter_mut() {
            if crossed.is_some() {
                continue;
            }
            let t = os::wall_us();
            if let Ok(rss) = os::rss_bytes(*pid)
                && rss > limit
                && tend_collect::process_id(*pid).is_ok_and(|id| id.start_ticks == *st)
            {
                *crossed = Some(t);
            }
        }
        os::pause(Duration::from_millis(2));
    }
    tend.stop();

    let mut lags = Vec::new();
    let mut delivery = Vec::new();
    let mut unmatched = 0;
    for (pid, at, rx) in &started {
        match watched.get(pid).and_then(|(_, c)| *c) {
            Some(crossed_us) => {
                lags.push((*at * 1000 - crossed_us) as f64 / 1000.0);
                delivery.push((rx - at) as f64);
            }
            None => unmatched += 1,
        }
    }
    let mut section =
        Section::new("3. Reaction time", &["from → to", "trials", "p50 ms", "p90 ms", "max ms", "min ms"]);
    section.note(format!(
        "Spawn pool of {size} `demo-worker`s (10 MiB base, leaking 16 MiB/s from 0.0, 0.1, … 0.9 s after \
         spawn by slot, so crossings fall at every phase of the sweep), recycle at memory_mb = {LIMIT_MB}, \
         profile intensive (1 s samples). The crossing is the first of the bench's own 2 ms polls of \
         `/proc/PID/statm` above the limit; the event time is the `at` of `recycle_started`. Expected: \
         spread over one sample interval (0–1000 ms) plus the sweep's own latency. {unmatched} recycle(s) \
         had no crossing observed and are left out."
    ));
    if let Some(s) = Summary::of(&lags) {
        section.row(vec![
            "memory crosses limit → `recycle_started`".into(),
            s.n.to_string(),
            format!("{:.0}", s.median),
            format!("{:.0}", s.p90),
            format!("{:.0}", s.max),
            format!("{:.0}", s.min),
        ]);
        report.check(Check::new(
            "memory breach → recycle started",
            "≤ 1 sample interval (1000 ms at 1 Hz)",
            format!("p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms over {} trials", s.median, s.p90, s.max, s.n),
            Some(s.max <= 1000.0),
        ));
    }
    if let Some(s) = Summary::of(&delivery) {
        section.row(vec![
            "event `at` → line read from `--events-jsonl`".into(),
            s.n.to_string(),
            format!("{:.0}", s.median),
            format!("{:.0}", s.p90),
            format!("{:.0}", s.max),
            format!("{:.0}", s.min),
        ]);
    }
    section.row(vec![
        "memory crosses limit → notification event".into(),
        "–".into(),
        "–".into(),
        "–".into(),
        "–".into(),
        "–".into(),
    ]);
    section.note("The notification event does not exist yet (no notifier sink): its row stays empty.");
    report.check(Check::new(
        "memory breach → notification",
        "(no target number)",
        "not measurable: no notification event yet",
        None,
    ));
    report.push(section);
    Ok(())
}
