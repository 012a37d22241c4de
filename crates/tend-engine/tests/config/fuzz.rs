//! Fuzzing the config path that `tend serve` takes: text → [`config::parse_with`] (and
//! [`config::load_with`] from a real file) → [`Config::apply_env`] → [`convert::pools`] →
//! [`Fleet::new`]. Property: nothing panics, and every problem reported names where it is (a
//! `line:col` inside the text, or the environment variable).
//!
//! Inputs come from a fixed seed, so a run is deterministic: structured configs (random tables and
//! keys of the real schema with plausible, extreme and wrong-typed values), byte mutations of the
//! full valid example, and generated `TEND_*` values. Each test runs a fixed number of cases and
//! collects every distinct failure (by panic site or message) with the shortest input that caused it,
//! so one run lists all of them; the known reproducers are also their own tests below.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, Once};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use tend_engine::config::{self, Config, ConfigError, ParseOptions};

use super::fuzz_gen::{Mode, VALID, config_text, edits, env_values, mutate};

const SEED: [u8; 32] = *b"tend-config-fuzz-seed-2026-12-02";
const ORIGIN: &str = "fuzz.toml";

// ---------------------------------------------------------------------------------------------------
// The pipeline and the property
// ---------------------------------------------------------------------------------------------------

/// Everything `tend serve` does with a config before it runs anything: `Ok(true)` when the config is
/// valid (and converted), `Ok(false)` when refused with located problems, `Err` when a problem is
/// reported without saying where.
fn pipeline(text: &str, env: &[(&'static str, String)]) -> Result<bool, String> {
    let options = ParseOptions { check_programs: false };
    let mut cfg = match config::parse_with(text, ORIGIN, &options) {
        Ok(c) => c,
        Err(e) => return located(&e, text).map(|()| false),
    };
    if let Err(e) = cfg.apply_env(|k| env.iter().find(|(name, _)| *name == k).map(|(_, v)| v.clone())) {
        return env_located(&e, env).map(|()| false);
    }
    serve_side(&cfg).map(|()| true)
}

/// What the engine makes of a valid config (`App::start`): core pool specs, runtimes, the fleet.
fn serve_side(cfg: &Config) -> Result<(), String> {
    let _ = cfg.check_server();
    for p in &cfg.pools {
        let _ = (p.effective_interval(), p.effective_stale_after());
    }
    match tend_engine::convert::pools(cfg) {
        Ok((specs, _runtimes)) => {
            let _fleet = tend_core::fleet::Fleet::new(specs);
            Ok(())
        }
        // A valid config that the engine refuses is a problem without a location.
        Err(e) => Err(format!("valid config refused by convert::pools: {e:#}")),
    }
}

/// Every problem of a parse error points into the text.
fn located(e: &ConfigError, text: &str) -> Result<(), String> {
    let lines = text.split('\n').count();
    for p in &e.problems {
        match p.location {
            Some(l) if p.origin == ORIGIN && l.line >= 1 && l.line <= lines && l.col >= 1 => {}
            _ => return Err(format!("problem without a location in the text: {p}")),
        }
        if p.message.trim().is_empty() {
            return Err(format!("problem with an empty message: {p}"));
        }
    }
    Ok(())
}

/// Every problem of an override names the variable that was set.
fn env_located(e: &ConfigError, env: &[(&'static str, String)]) -> Result<(), String> {
    for p in &e.problems {
        if !env.iter().any(|(name, v)| *name == p.origin && !v.is_empty()) && !p.message.contains("TEND_") {
            return Err(format!("override problem that names no variable: {p}"));
        }
    }
    Ok(())
}

thread_local! {
    /// Set while a census runs on this thread: its panics are recorded, not printed.
    static QUIET: RefCell<bool> = const { RefCell::new(false) };
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Where a panic happened: the first frame in this workspace's sources (a panic inside the standard
/// library, like a `Duration` overflow, is reported at its caller).
pub fn panic_site(info: &panic::PanicHookInfo<'_>) -> String {
    let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
    if !at.starts_with("/rustc/") {
        return at;
    }
    // Frames of this package are printed relative to it (`./src/...`), others by their path.
    let trace = std::backtrace::Backtrace::force_capture().to_string();
    trace
        .lines()
        .filter_map(|l| l.trim().strip_prefix("at "))
        .find(|l| !l.starts_with("/rustc/") && !l.contains("/.cargo/") && !l.contains("tests/"))
        .map(|l| l.strip_prefix("./").map_or(l.to_owned(), |rest| format!("crates/tend-engine/{rest}")))
        .unwrap_or(at)
}

/// Panics on threads whose name starts with [`ENGINE_THREADS`] (the runtimes of extremes.rs):
/// (thread name, site and message).
pub static ENGINE_PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
pub const ENGINE_THREADS: &str = "extremes-";

/// Records where a census's panics, and the engine runtimes' panics, happen (instead of printing them);
/// other panics print as usual.
pub fn record_panic_sites() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            if QUIET.with(|q| *q.borrow()) {
                let site = panic_site(info);
                PANIC_AT.with(|p| *p.borrow_mut() = Some(site));
            } else if thread.starts_with(ENGINE_THREADS) {
                let msg = info.payload_as_str().unwrap_or("").to_owned();
                let entry = (thread, format!("{}: {msg}", panic_site(info)));
                ENGINE_PANICS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(entry);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `cases` inputs from `strategy` (fixed seed) through `check`; fails listing every distinct
/// problem with the shortest input that showed it.
fn census<T: Debug>(
    name: &str,
    strategy: impl Strategy<Value = T>,
    cases: u32,
    check: impl Fn(&T) -> Result<bool, String>,
) {
    record_panic_sites();
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig { failure_persistence: None, ..RunnerConfig::default() },
        TestRng::from_seed(RngAlgorithm::ChaCha, &SEED),
    );
    let mut found: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let started = std::time::Instant::now();
    let mut accepted = 0;
    for _ in 0..cases {
        let input = strategy.new_tree(&mut runner).expect("generate an input").current();
        QUIET.with(|q| *q.borrow_mut() = true);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(&input)));
        QUIET.with(|q| *q.borrow_mut() = false);
        let problem = match outcome {
            Ok(Ok(true)) => {
                accepted += 1;
                continue;
            }
            Ok(Ok(false)) => continue,
            Ok(Err(m)) => m.chars().take(160).collect(),
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let at = PANIC_AT.with(|p| p.borrow_mut().take()).unwrap_or_default();
                format!("PANIC at {at}: {msg}")
            }
        };
        let repro = format!("{input:?}");
        let entry = found.entry(problem).or_insert((0, repro.clone()));
        entry.0 += 1;
        if repro.len() < entry.1.len() {
            entry.1 = repro;
        }
    }
    eprintln!(
        "{name}: {cases} cases in {:.1} s, {accepted} valid (reached the engine's conversion), {} distinct problem(s)",
        started.elapsed().as_secs_f64(),
        found.len()
    );
    let report: Vec<String> = found
        .iter()
        .map(|(problem, (n, repro))| format!("- {problem}\n  ({n} case(s)); shortest input: {repro}"))
        .collect();
    assert!(
        report.is_empty(),
        "{name}: {} distinct problem(s) in {cases} cases:\n{}",
        report.len(),
        report.join("\n")
    );
}

/// The mutated bytes from a real file through `load_with` (a file that is not UTF-8 is reported
/// under its path), and as text through the rest of the pipeline.
fn check_bytes(bytes: &[u8], dir: &std::path::Path) -> Result<bool, String> {
    let path = dir.join("tend.toml");
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    let options = ParseOptions { check_programs: false };
    match (config::load_with(&path, &options), std::str::from_utf8(bytes)) {
        (Err(e), Err(_)) => match e.problems.as_slice() {
            [p] if p.origin == path.display().to_string() => Ok(false),
            _ => Err(format!("unreadable file reported without its path: {e}")),
        },
        (Ok(_), Err(_)) => Err("a file that is not UTF-8 was accepted".into()),
        (Ok(cfg), Ok(_)) => serve_side(&cfg).map(|()| true),
        (Err(_), Ok(text)) => pipeline(text, &[]),
    }
}

// ---------------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------------

#[test]
fn the_seed_of_the_mutations_is_valid() {
    let cfg = super::parse(VALID).unwrap();
    assert_eq!(cfg.pools.len(), 4);
    serve_side(&cfg).unwrap();
}

#[test]
fn generated_configs_never_panic_and_locate_their_problems() {
    census("generated configs", config_text(Mode::Wild), 2000, |text| pipeline(text, &[]));
}

#[test]
fn generated_near_valid_configs_never_panic_and_locate_their_problems() {
    census("generated near-valid configs", config_text(Mode::Lean), 4000, |text| pipeline(text, &[]));
}

#[test]
fn mutated_configs_never_panic_and_locate_their_problems() {
    let dir = tempfile::tempdir().unwrap();
    census("mutated configs", edits(), 2000, |e| check_bytes(&mutate(e), dir.path()));
}

#[test]
fn environment_overrides_never_panic_and_name_their_variable() {
    census("environment overrides", env_values(), 1000, |env| pipeline(VALID, env));
}
