//! The TypeScript bindings of the wire types live in `ui/src/generated/` (committed): one file per type
//! from ts-rs, and `enums.ts` with each enum's names in order and each error code's HTTP status, so the
//! UI never retypes them. This test regenerates them into a temp dir and fails when the committed ones
//! differ. To regenerate: `TEND_UPDATE_BINDINGS=1 cargo test -p tend-api --lib bindings`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ts_rs::{Config, TS};

use crate::*;

fn export(dir: &Path) {
    // serde_json writes u64 as a plain JSON number: `number`, not `bigint`.
    let cfg = Config::new().with_large_int("number".to_owned()).with_out_dir(dir);
    WorkerDto::export_all(&cfg).expect("export WorkerDto");
    WorkerDetailDto::export_all(&cfg).expect("export WorkerDetailDto");
    HealthDto::export_all(&cfg).expect("export HealthDto");
    PoolMetrics::export_all(&cfg).expect("export PoolMetrics");
    Orphan::export_all(&cfg).expect("export Orphan");
    ErrorRecord::export_all(&cfg).expect("export ErrorRecord");
    Event::export_all(&cfg).expect("export Event");
    Alert::export_all(&cfg).expect("export Alert");
    SettingsDto::export_all(&cfg).expect("export SettingsDto");
    History::export_all(&cfg).expect("export History");
    AlertRow::export_all(&cfg).expect("export AlertRow");
    RecycleRow::export_all(&cfg).expect("export RecycleRow");
    ApiError::export_all(&cfg).expect("export ApiError");
    LiveScope::export_all(&cfg).expect("export LiveScope");
    LiveUpdate::export_all(&cfg).expect("export LiveUpdate");
    HostDto::export_all(&cfg).expect("export HostDto");
    std::fs::write(dir.join("enums.ts"), enums()).expect("write enums.ts");
}

/// `export const STATES = [...] as const;` for each enum, and the status of each error code.
fn enums() -> String {
    fn list<T: Copy>(out: &mut String, name: &str, ty: &str, all: &[T], s: impl Fn(T) -> &'static str) {
        let names: Vec<String> = all.iter().map(|v| format!("\"{}\"", s(*v))).collect();
        let _ = writeln!(out, "export const {name}: readonly {ty}[] = [{}];", names.join(", "));
    }
    let mut out = String::from(
        "// Generated from the Rust wire types (tend-api); do not edit. Regenerate with\n\
         // `TEND_UPDATE_BINDINGS=1 cargo test -p tend-api --lib bindings`.\n",
    );
    let _ = writeln!(out, "import type {{ AlertState }} from \"./AlertState\";");
    let _ = writeln!(out, "import type {{ ErrorCode }} from \"./ErrorCode\";");
    let _ = writeln!(out, "import type {{ HostStatus }} from \"./HostStatus\";");
    let _ = writeln!(out, "import type {{ Event }} from \"./Event\";");
    let _ = writeln!(out, "import type {{ RecycleReason }} from \"./RecycleReason\";");
    let _ = writeln!(out, "import type {{ Severity }} from \"./Severity\";");
    let _ = writeln!(out, "import type {{ Source }} from \"./Source\";");
    let _ = writeln!(out, "import type {{ State }} from \"./State\";\n");
    list(&mut out, "STATES", "State", State::ALL, State::as_str);
    list(&mut out, "SOURCES", "Source", Source::ALL, Source::as_str);
    list(&mut out, "RECYCLE_REASONS", "RecycleReason", RecycleReason::ALL, RecycleReason::as_str);
    list(&mut out, "SEVERITIES", "Severity", Severity::ALL, Severity::as_str);
    list(&mut out, "ALERT_STATES", "AlertState", AlertState::ALL, AlertState::as_str);
    list(&mut out, "ERROR_CODES", "ErrorCode", ErrorCode::ALL, ErrorCode::as_str);
    list(&mut out, "HOST_STATUSES", "HostStatus", HostStatus::ALL, HostStatus::as_str);
    let types: Vec<String> = EventKind::TYPES.iter().map(|t| format!("\"{t}\"")).collect();
    let _ = writeln!(out, "export const EVENT_TYPES: readonly Event[\"type\"][] = [{}];", types.join(", "));
    let statuses: Vec<String> =
        ErrorCode::ALL.iter().map(|c| format!("{}: {}", c.as_str(), c.status())).collect();
    let _ = writeln!(
        out,
        "\n/** The HTTP status that goes with each error code. */\nexport const ERROR_STATUS: Record<ErrorCode, number> = {{ {} }};",
        statuses.join(", ")
    );
    out
}

fn read_dir(dir: &Path) -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return BTreeMap::new() };
    entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "ts"))
        .map(|p| {
            let name = p.file_name().expect("file name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("read binding"))
        })
        .collect()
}

#[test]
fn ts_bindings_are_fresh() {
    let committed: PathBuf =
        [env!("CARGO_MANIFEST_DIR"), "..", "..", "ui", "src", "generated"].iter().collect();
    if std::env::var_os("TEND_UPDATE_BINDINGS").is_some() {
        for name in read_dir(&committed).keys() {
            std::fs::remove_file(committed.join(name)).expect("remove stale binding");
        }
        export(&committed);
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    export(tmp.path());
    let fresh = read_dir(tmp.path());
    let old = read_dir(&committed);
    assert!(fresh.len() > 20, "too few bindings generated: {}", fresh.len());
    for (name, text) in &fresh {
        assert_eq!(
            old.get(name),
            Some(text),
            "ui/src/generated/{name} is stale or missing; regenerate with \
             `TEND_UPDATE_BINDINGS=1 cargo test -p tend-api --lib bindings`"
        );
    }
    for name in old.keys() {
        assert!(fresh.contains_key(name), "ui/src/generated/{name} is no longer generated; delete it");
    }
}
