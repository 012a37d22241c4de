//! Section 5, ingest and CSV export rates: these belong to the history store (`crates/tend-store`),
//! whose own benchmark, when it exists, is an example of that crate whose name contains `bench`. The
//! suite runs it (release, ten minutes at most) and copies what it prints; it never measures the
//! store itself, so the store's numbers have one author.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::os;
use crate::report::{Check, Report, Section};

pub fn run(root: &Path, smoke: bool, report: &mut Report) -> anyhow::Result<()> {
    let mut section = Section::new("5. Ingest and CSV export (history store)", &[]);
    let examples = root.join("crates/tend-store/examples");
    let bench = std::fs::read_dir(&examples).ok().and_then(|d| {
        d.flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter_map(|f| f.strip_suffix(".rs").map(str::to_owned))
            .find(|f| f.contains("bench"))
    });
    let Some(name) = bench else {
        section.note(
            "Not yet: `crates/tend-store` has no benchmark example yet (targets: ingest ≥ 200k samples/s \
             batched; CSV export of 1M rows in < 2 s, streaming, flat memory).",
        );
        report.check(Check::new("ingest into SQLite", "≥ 200k samples/s batched", "not measured yet", None));
        report.check(Check::new("CSV export", "≥ 1M rows in < 2 s", "not measured yet", None));
        report.push(section);
        return Ok(());
    };
    if smoke {
        section.note(format!("Smoke run: the store's benchmark (`{name}`) is not run."));
        report.push(section);
        return Ok(());
    }
    let out = root.join("target/bench/store-bench.out");
    let file = std::fs::File::create(&out)?;
    let mut child = Command::new("cargo")
        .args(["run", "--release", "--quiet", "-p", "tend-store", "--example", &name])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::inherit())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the store's benchmark `{name}` ran longer than 10 minutes");
        }
        os::pause(Duration::from_millis(500));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    if !status.success() {
        bail!("`cargo run -p tend-store --example {name}` failed ({status}):\n{text}");
    }
    section.note(format!(
        "From `cargo run --release -p tend-store --example {name}` (the store's own benchmark):\n\n```\n{}\n```",
        text.trim_end()
    ));
    report.push(section);
    Ok(())
}
