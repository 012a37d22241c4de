//! The config: the full example, every class of error with its exact location (and the rendered
//! diagnostics, snapshotted), environment overrides, the embedded demo, and fuzzing of the whole path
//! from text to the engine's pool specs.

mod demo;
mod diagnostics;
mod env;
mod errors;
mod extremes;
mod full;
mod fuzz;
mod fuzz_gen;
mod limits;
mod notifications;
mod remote;
mod server;
mod webhooks;

use tend_engine::config::{self, Config, ConfigError, ParseOptions};

/// Parses without checking that programs exist on this machine.
fn parse(text: &str) -> Result<Config, ConfigError> {
    config::parse_with(text, "tend.toml", &ParseOptions { check_programs: false })
}

/// The problems of a config that must fail, one `origin:line:col: message` string each.
fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected problems, the config parsed:\n{text}"),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

/// A minimal valid spawn pool, to append keys to.
const POOL: &str = "[[pool]]\nname = \"api\"\ncommand = [\"python3\", \"worker.py\"]\nsize = 1\n";
