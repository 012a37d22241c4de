//! The crate boundaries, checked from `cargo metadata`: which workspace crate may depend on which, and
//! which crate alone may link the libraries behind a boundary (SQLite, Docker, Tauri, notifications).
//! A new dependency that crosses a line fails here, naming the crate and the dependency.

use std::collections::{BTreeMap, BTreeSet};

/// `cargo metadata` of the workspace's own packages.
fn metadata() -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("metadata JSON")
}

/// Each workspace package's direct dependencies of every kind (normal, dev, build), by name.
fn direct_deps() -> BTreeMap<String, BTreeSet<(String, Option<String>)>> {
    let meta = metadata();
    let mut deps = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("package name").to_owned();
        let set = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|d| {
                let dep = d["name"].as_str().expect("dependency name").to_owned();
                (dep, d["kind"].as_str().map(str::to_owned))
            })
            .collect();
        deps.insert(name, set);
    }
    deps
}

/// The normal (non-dev, non-build) dependencies of `package` that are workspace crates.
fn workspace_deps(
    all: &BTreeMap<String, BTreeSet<(String, Option<String>)>>,
    package: &str,
) -> BTreeSet<String> {
    all[package]
        .iter()
        .filter(|(dep, kind)| kind.is_none() && all.contains_key(dep))
        .map(|(dep, _)| dep.clone())
        .collect()
}

/// The packages that depend directly (any kind) on `dep`.
fn users_of(all: &BTreeMap<String, BTreeSet<(String, Option<String>)>>, dep: &str) -> BTreeSet<String> {
    all.iter().filter(|(_, ds)| ds.iter().any(|(d, _)| d == dep)).map(|(p, _)| p.clone()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_shells_reach_the_engine_only_through_its_facade_and_the_wire_types() {
    let all = direct_deps();
    for shell in ["tend-server", "tend-desktop"] {
        let deps = workspace_deps(&all, shell);
        let allowed = set(&["tend-engine", "tend-api"]);
        let extra: Vec<_> = deps.difference(&allowed).collect();
        assert!(
            extra.is_empty(),
            "{shell} depends on {extra:?}; shells may use only tend-engine (the App) and tend-api"
        );
    }
}

#[test]
fn the_core_and_the_wire_types_stand_alone() {
    let all = direct_deps();
    assert_eq!(workspace_deps(&all, "tend-api"), BTreeSet::new(), "tend-api depends on no Tend crate");
    assert_eq!(workspace_deps(&all, "tend-core"), BTreeSet::new(), "tend-core depends on no Tend crate");
    let core: BTreeSet<String> =
        all["tend-core"].iter().filter(|(_, k)| k.is_none()).map(|(d, _)| d.clone()).collect();
    assert_eq!(
        core,
        set(&["jiff", "serde", "thiserror"]),
        "tend-core does no I/O: no runtime, no clock, no OS crates"
    );
    // jiff parses times and durations there; without its default features it cannot read the system
    // clock's time zone or the tz database.
    let meta = metadata();
    let jiff = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "tend-core")
        .and_then(|p| p["dependencies"].as_array()?.iter().find(|d| d["name"] == "jiff"))
        .expect("tend-core's jiff");
    assert_eq!(jiff["uses_default_features"], false, "tend-core takes jiff without its default features");
    let features: Vec<&str> =
        jiff["features"].as_array().expect("features").iter().filter_map(|f| f.as_str()).collect();
    assert!(
        features.iter().all(|f| !f.starts_with("tz")),
        "tend-core's jiff must not read time zones: {features:?}"
    );
}

#[test]
fn each_outside_library_has_one_crate_that_knows_it() {
    let all = direct_deps();
    for (lib, only) in [
        ("sqlx", &["tend-store"][..]),
        ("rusqlite", &["tend-store"]),
        ("bollard", &["tend-collect"]),
        // The benchmark compares Tend's sampler with sysinfo's, as an outside observer.
        ("sysinfo", &["tend-collect", "tend-bench"]),
        ("tauri", &["tend-desktop"]),
        ("notify-rust", &["tend-desktop"]),
    ] {
        assert_eq!(users_of(&all, lib), set(only), "only {only:?} may depend on {lib}");
    }
}

#[test]
fn the_check_sees_a_crossing() {
    // The checks above on a made-up graph where the server reaches into the store.
    let mut all = BTreeMap::new();
    all.insert("tend-store".to_owned(), BTreeSet::from([("sqlx".to_owned(), None)]));
    all.insert("tend-engine".to_owned(), BTreeSet::new());
    all.insert(
        "tend-server".to_owned(),
        BTreeSet::from([
            ("tend-engine".to_owned(), None),
            ("tend-store".to_owned(), None),
            ("sqlx".to_owned(), None),
        ]),
    );
    assert_eq!(workspace_deps(&all, "tend-server"), set(&["tend-engine", "tend-store"]));
    assert_eq!(users_of(&all, "sqlx"), set(&["tend-server", "tend-store"]));
}
