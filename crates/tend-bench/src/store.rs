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
    let mut benches: Vec<String> = std::fs::read_dir(&examples)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".rs").map(str::to_owned))
                .filter(|f| f.contains("bench"))
                .collect()
        })
        .unwrap_or_default();
    benches.sort();
    if benches.is_empty() {
        section.note(
            "Not yet: `crates/tend-store` has no benchmark example yet (targets: ingest ≥ 200k samples/s \
             batched; CSV export of 1M rows in < 2 s, streaming, flat memory).",
        );
        report.check(Check::new("ingest into SQLite", "≥ 200k samples/s batched", "not measured yet", None));
        report.check(Check::new("CSV export", "≥ 1M rows in < 2 s", "not measured yet", None));
        report.push(section);
        return Ok(());
    }
    if smoke {
        section.note(format!("Smoke run: the store's benchmarks ({}) are not run.", benches.join(", ")));
        report.push(section);
        return Ok(());
    }
    for name in &benches {
        let text = run_one(root, name, &mut section)?;
        checks(&text, report);
    }
    report.push(section);
    Ok(())
}

/// `cargo run --release -p tend-store --example NAME`, its output copied into the section.
fn run_one(root: &Path, name: &str, section: &mut Section) -> anyhow::Result<String> {
    let out = root.join(format!("target/bench/{name}.out"));
    std::fs::create_dir_all(root.join("target/bench"))?;
    let file = std::fs::File::create(&out)?;
    let mut child = Command::new("cargo")
        .args(["run", "--release", "--quiet", "-p", "tend-store", "--example", name])
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
    Ok(text)
}

/// The targets, read from the store benchmark's `ingest: … = R samples/s` and
/// `export: N rows, … in S s = …` lines; a line in another shape gives no verdict.
fn checks(text: &str, report: &mut Report) {
    let number_before = |line: &str, unit: &str| -> Option<f64> {
        line.split(unit).next()?.split_whitespace().last()?.parse().ok()
    };
    if let Some(line) = text.lines().find(|l| l.starts_with("ingest:"))
        && let Some(rate) = number_before(line, " samples/s")
    {
        let measured = format!("{rate:.0} samples/s");
        report.check(Check::new(
            "ingest into SQLite",
            "≥ 200k samples/s batched",
            measured,
            Some(rate >= 200e3),
        ));
    }
    if let Some(line) = text.lines().find(|l| l.starts_with("export:"))
        && let (Some(rows), Some(secs)) = (number_before(line, " rows"), number_before(line, " s ="))
    {
        let measured = format!("{rows:.0} rows in {secs:.2} s");
        report.check(Check::new(
            "CSV export",
            "≥ 1M rows in < 2 s",
            measured,
            Some(rows >= 1e6 && secs < 2.0),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_benchmark_lines_give_verdicts() {
        let mut r = Report::new(crate::os::Machine::read(), "make bench".into(), "make soak".into());
        checks(
            "history store benchmark: 1000000 samples over 100 workers, /tmp/x\n\
             ingest: 1000000 samples in 2.00 s = 500000 samples/s; 1.00 CPU-s (producer included)\n\
             export: 1000000 rows, 80.0 MiB of CSV in 2.50 s = 400000 rows/s; 2.00 CPU-s\n",
            &mut r,
        );
        let md = r.markdown();
        assert!(
            md.contains("| ingest into SQLite | ≥ 200k samples/s batched | 500000 samples/s | met |"),
            "{md}"
        );
        assert!(
            md.contains("| CSV export | ≥ 1M rows in < 2 s | 1000000 rows in 2.50 s | **not met** |"),
            "{md}"
        );
    }
}
