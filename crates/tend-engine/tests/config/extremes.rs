//! Extreme but well-typed values (durations at the limit of `Duration` and `Instant`, sizes whose
//! byte count overflows u64, huge floats): a config holding one is either refused with a located
//! problem, or it runs — the engine, started on it with a real worker (`sleep`), samples it, keeps
//! answering, and stops — without a panic anywhere. The cases are reproducers found by the config
//! fuzzer (fuzz.rs) and by running `tend serve` on them; each runs on its own runtime, all at once.

use std::time::{Duration, Instant};

use tend_engine::{App, AppOptions};

use super::fuzz::{ENGINE_PANICS, ENGINE_THREADS, record_panic_sites};

const MAX_SECS: &str = "9223372036854775807";

/// Pool keys (appended to a spawn pool of one `sleep`), and the rest of the file after it.
fn cases() -> Vec<(String, String)> {
    let pool = |keys: &str| (keys.to_owned(), String::new());
    let rule = |keys: &str| {
        (String::new(), format!("[[pool.rule]]\nname = \"r\"\nmetric = \"memory_mb\"\nabove = 1\n{keys}\n"))
    };
    vec![
        pool("interval = \"106751991167300d\""),
        pool(&format!("interval = {MAX_SECS}")),
        pool(&format!("interval = {MAX_SECS}\nstale_after = \"30s\"")),
        pool("interval = \"106751991167299d\"\nstale_after = \"30s\""),
        pool(&format!("stop_grace = {MAX_SECS}")),
        pool(&format!("stale_after = {MAX_SECS}")),
        pool(&format!("task_timeout = {MAX_SECS}")),
        pool("busy_cpu_percent = 1e300"),
        pool("readiness = { start_secs = 1e300 }"),
        pool(&format!("readiness = {{ start_secs = 0.1, timeout = {MAX_SECS} }}")),
        pool("recycle = { memory_mb = 17592186044416 }"),
        pool(&format!("recycle = {{ memory_mb = {MAX_SECS} }}")),
        pool(&format!("recycle = {{ ttl = {MAX_SECS} }}")),
        pool(&format!("recycle = {{ ttl = \"1h\", warmup = {MAX_SECS} }}")),
        pool("recycle = { ttl = \"1h\", jitter = 1e300 }"),
        pool(&format!("recycle = {{ storm_window = {MAX_SECS} }}")),
        pool(&format!("recycle = {{ max_requests = {MAX_SECS} }}")),
        rule(&format!("for = {MAX_SECS}")),
        rule(&format!("keep_firing_for = {MAX_SECS}")),
        rule(&format!("flap_max = 1\nflap_window = {MAX_SECS}")),
        rule(&format!("for_samples = {MAX_SECS}")),
        (String::new(), format!("[[pool.rule]]\nname = \"r\"\nstale = {MAX_SECS}\n")),
        (String::new(), format!("[[pool.rule]]\nname = \"r\"\nrestarts = 1\nwithin = {MAX_SECS}\n")),
    ]
}

/// Parses `text`, and when it is valid runs the engine on it; the problem, if any.
fn run(case: usize, text: &str) -> Result<(), String> {
    let cfg = match super::parse(text) {
        Ok(c) => c,
        Err(e) if e.problems.iter().all(|p| p.location.is_some()) => return Ok(()),
        Err(e) => return Err(format!("refused without a location: {e}")),
    };
    let threads = format!("{ENGINE_THREADS}{case}-");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(threads.clone())
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            let app = App::start(cfg, AppOptions { no_history: true, ..AppOptions::default() })
                .map_err(|e| format!("App::start: {e:#}"))?;
            // Up to a sample of the worker (its memory known), asking the engine every 50 ms.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let workers = app.workers().await.map_err(|e| format!("the engine stopped: {e}"))?;
                if workers.iter().any(|w| w.memory_bytes.is_some()) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("no sample of the worker in 10 s: {workers:?}"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            app.workers().await.map_err(|e| format!("the engine stopped after a sample: {e}"))?;
            tokio::time::timeout(Duration::from_secs(15), app.shutdown())
                .await
                .map_err(|_| "shutdown did not finish in 15 s".to_owned())
        })
    }));
    rt.shutdown_timeout(Duration::from_secs(5));
    let panics: Vec<String> = ENGINE_PANICS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|(t, _)| t.starts_with(&threads))
        .map(|(t, p)| format!("panic on {t}: {p}"))
        .collect();
    match outcome {
        Err(_) => Err(format!("panicked while starting: {}", panics.join("; "))),
        Ok(_) if !panics.is_empty() => Err(panics.join("; ")),
        Ok(r) => r,
    }
}

#[test]
fn extreme_values_are_refused_or_run_without_a_panic() {
    record_panic_sites();
    let dir = tempfile::tempdir().unwrap();
    let texts: Vec<String> = cases()
        .iter()
        .map(|(keys, rest)| {
            format!(
                "[store]\ndata_dir = {:?}\n[[pool]]\nname = \"api\"\ncommand = [\"sleep\", \"30\"]\nsize = 1\n\
                 profile = \"intensive\"\nreadiness = {{ start_secs = 0.1 }}\n{keys}\n{rest}",
                dir.path().display().to_string()
            )
        })
        .collect();
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                // Named so that a panic on it is recorded with the case's runtime panics.
                let name = format!("{ENGINE_THREADS}{i}-case");
                std::thread::Builder::new().name(name).spawn_scoped(s, move || run(i, t)).unwrap()
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("the case thread panicked".into())))
            .collect()
    });
    let failures: Vec<String> = cases()
        .iter()
        .zip(&results)
        .filter_map(|((keys, rest), r)| {
            r.as_ref().err().map(|e| format!("- {:?}\n  {e}", format!("{keys}{rest}").trim()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} inputs fail:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}
