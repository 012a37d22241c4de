//! The rendered diagnostics of bad configs, as `tend check-config` prints them (one problem a line,
//! `origin:line:col: message`), pinned by a snapshot (`snapshots/diagnostics.snap`): a change of any
//! message, location or order shows as a diff. The inputs are the ones errors.rs checks problem by
//! problem. Review a change with `cargo insta review`; with `CI=true` a mismatch fails, nothing is written.

use super::errors::{
    DOCKER_HEAD, MANY_PROBLEMS, MISSING_CWD, PROGRAM_NOT_ON_PATH, TYPE_ERROR_AMONG_OTHERS,
    docker_pool_with_problems,
};
use tend_engine::config::{self, ConfigError};

/// The whole text of the error, as printed.
fn rendered(r: Result<config::Config, ConfigError>, input: &str) -> String {
    match r {
        Ok(_) => panic!("expected problems, the config parsed:\n{input}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn rendered_diagnostics_match_their_snapshot() {
    let unchecked = |text: &str| rendered(super::parse(text), text);
    // These two need the programs looked up, as `tend check-config` does.
    let checked = |text: &str| rendered(config::parse(text, "tend.toml"), text);
    let docker = docker_pool_with_problems();
    let cases = [
        ("many problems at once", MANY_PROBLEMS, unchecked(MANY_PROBLEMS)),
        ("a type error among others", TYPE_ERROR_AMONG_OTHERS, unchecked(TYPE_ERROR_AMONG_OTHERS)),
        ("a docker pool without labels", DOCKER_HEAD, unchecked(DOCKER_HEAD)),
        ("a docker pool with a problem in most keys", &docker, unchecked(&docker)),
        ("a program not on PATH", PROGRAM_NOT_ON_PATH, checked(PROGRAM_NOT_ON_PATH)),
        ("a missing cwd", MISSING_CWD, checked(MISSING_CWD)),
    ];
    let text: Vec<String> = cases
        .iter()
        .map(|(name, input, out)| format!("## {name}\n{}\n--\n{out}\n", input.trim_end()))
        .collect();
    insta::with_settings!({snapshot_path => "snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("diagnostics", text.join("\n"));
    });
}
