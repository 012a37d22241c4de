//! Section 8, the cost curve: Tend attached to N sleeping processes at 1 Hz (profile `intensive`) and
//! Glances beside it over the same window, for N from 100 to 5000, and N = 1000 watched among 4000
//! unwatched ones. CPU is Δ(utime+stime) over the window, RSS the peak (VmHWM). Tend's cost should grow
//! with the watched processes only; Glances watches every process of the host. A PNG plot of both
//! against N goes beside the table when the bench writes its file.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use plotters::prelude::*;

use crate::children::Sleepers;
use crate::overhead::window;
use crate::peers::Glances;
use crate::report::{Check, Report, Section};
use crate::tend::TendProc;
use crate::{Plan, os};

const MIB: f64 = 1024.0 * 1024.0;

/// One point of the curve.
struct Point {
    watched: usize,
    unwatched: usize,
    tend_cpu: f64,
    tend_hwm: f64,
    glances: Option<(f64, f64)>,
}

pub fn run(
    plan: &Plan,
    tend_exe: &Path,
    work: &Path,
    plot: Option<&Path>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut section = Section::new(
        "8. Cost curve",
        &[
            "watched",
            "unwatched",
            "Tend CPU %",
            "Tend RSS peak",
            "Glances CPU %",
            "Glances RSS peak",
            "Tend / Glances",
        ],
    );
    let glances = if plan.peers {
        Glances::prepare(work).map_err(|e| section.note(format!("**Glances unavailable** ({e:#})."))).ok()
    } else {
        None
    };
    section.note(format!(
        "Each point: N `tend-bench sleeper`s, `tend serve` with one attach pool (cmdline regex, profile \
         intensive, process events for discovery), {} s of warm-up once all are READY, then a {} s window \
         with {} running beside it over the same window. CPU = Δ(utime+stime) of the process over the \
         window, % of one core; RSS peak = VmHWM. {}",
        plan.warmup_secs.min(5),
        plan.curve_secs,
        glances.as_ref().map_or("no peer".to_owned(), |g| format!("Glances {}", g.version)),
        plan.curve_unwatched.map_or(String::new(), |(w, u)| format!(
            "The last row watches {w} while {u} more sleepers match no pool."
        )),
    ));
    let mut points = Vec::new();
    let runs: Vec<(usize, usize)> =
        plan.curve_ns.iter().map(|&n| (n, 0)).chain(plan.curve_unwatched).collect();
    for (watched, unwatched) in runs {
        match point(plan, tend_exe, glances.as_ref(), watched, unwatched) {
            Ok(p) => points.push(p),
            Err(e) => section.note(format!("**N = {watched} (+{unwatched}) did not complete:** {e:#}")),
        }
    }
    for p in &points {
        section.row(vec![
            p.watched.to_string(),
            p.unwatched.to_string(),
            format!("{:.2}", p.tend_cpu),
            format!("{:.1} MiB", p.tend_hwm / MIB),
            p.glances.map_or("–".into(), |g| format!("{:.2}", g.0)),
            p.glances.map_or("–".into(), |g| format!("{:.1} MiB", g.1 / MIB)),
            p.glances.map_or("–".into(), |g| format!("{:.2}", p.tend_cpu / g.0.max(1e-9))),
        ]);
    }
    let at = |n: usize| points.iter().find(|p| p.watched == n && p.unwatched == 0);
    if let Some(p) = at(1000) {
        report.check(Check::new(
            "1000 attached at 1 Hz: CPU",
            "≤ 1.0% of one core",
            format!("{:.2}%", p.tend_cpu),
            Some(p.tend_cpu <= 1.0),
        ));
        if let Some((g, _)) = p.glances {
            report.check(Check::new(
                "1000 attached: CPU against Glances",
                "≤ 0.15 × Glances",
                format!("{:.2}% vs {g:.2}%: {:.2}", p.tend_cpu, p.tend_cpu / g.max(1e-9)),
                Some(p.tend_cpu <= 0.15 * g),
            ));
        }
        report.check(Check::new(
            "1000 attached: RSS",
            "≤ 40 MB",
            format!("{:.1} MiB peak", p.tend_hwm / MIB),
            Some(p.tend_hwm <= 40e6),
        ));
    }
    if let Some(p) = at(5000) {
        report.check(Check::new(
            "5000 attached at 1 Hz: CPU and RSS",
            "≤ 5% and ≤ 80 MB",
            format!("{:.2}%, {:.1} MiB peak", p.tend_cpu, p.tend_hwm / MIB),
            Some(p.tend_cpu <= 5.0 && p.tend_hwm <= 80e6),
        ));
    }
    if let Some(path) = plot {
        match draw(&points, path) {
            Ok(()) => section.note(format!("Plot: `{}`.", path.display())),
            Err(e) => section.note(format!("**The plot could not be drawn:** {e:#}")),
        }
    }
    report.push(section);
    Ok(())
}

fn point(
    plan: &Plan,
    tend_exe: &Path,
    glances: Option<&Glances>,
    watched: usize,
    unwatched: usize,
) -> anyhow::Result<Point> {
    let tag = format!("curve-{}-{watched}", std::process::id());
    let sleepers = Sleepers::spawn(watched, &tag)?;
    let others = Sleepers::spawn(unwatched, &format!("curve-other-{}", std::process::id()))?;
    let config = format!(
        "[[pool]]\nname = \"many\"\nsource = \"attach\"\ncmdline = \"{}\"\nprofile = \"intensive\"\n",
        sleepers.cmdline_regex()
    );
    let mut tend = TendProc::start(tend_exe, "curve", &config, false, "info")?;
    tend.wait_ready(watched, 180).with_context(|| format!("{watched} attached"))?;
    let peer = glances.map(Glances::start).transpose()?;
    os::pause(Duration::from_secs(plan.warmup_secs.min(5)));
    let mut pids = vec![tend.pid];
    pids.extend(peer.as_ref().map(|p| p.pid));
    let usage = window(&pids, plan.curve_secs, plan.curve_secs)?;
    drop(peer);
    tend.stop();
    drop(others);
    drop(sleepers);
    Ok(Point {
        watched,
        unwatched,
        tend_cpu: usage[0].cpu_percent,
        tend_hwm: usage[0].hwm,
        glances: usage.get(1).map(|g| (g.cpu_percent, g.hwm)),
    })
}

/// CPU (left) and RSS (right) against N, Tend and Glances, as a PNG.
fn draw(points: &[Point], path: &Path) -> anyhow::Result<()> {
    tend_store::chart::ensure_font()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let font = tend_store::chart::FONT_FAMILY;
    let curve: Vec<&Point> = points.iter().filter(|p| p.unwatched == 0).collect();
    let max_n = curve.iter().map(|p| p.watched).max().unwrap_or(1) as f64;
    let root = BitMapBackend::new(path, (1100, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(550);
    let series = |f: &dyn Fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
        curve.iter().filter_map(|p| Some((p.watched as f64, f(p)?))).collect()
    };
    for (area, title, tend, peer, unit) in [
        (
            &left,
            "CPU, % of one core",
            series(&|p| Some(p.tend_cpu)),
            series(&|p| p.glances.map(|g| g.0)),
            "%",
        ),
        (
            &right,
            "RSS peak, MiB",
            series(&|p| Some(p.tend_hwm / MIB)),
            series(&|p| p.glances.map(|g| g.1 / MIB)),
            "MiB",
        ),
    ] {
        let top = tend.iter().chain(&peer).map(|p| p.1).fold(0.0f64, f64::max).max(1.0) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(title, (font, 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..max_n * 1.05, 0.0..top)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("attached processes")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc(unit)
            .label_style((font, 12))
            .axis_desc_style((font, 13))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (data, color, name) in [(tend, BLUE, "tend serve"), (peer, RED, "Glances")] {
            if data.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            chart
                .draw_series(data.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((font, 13))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    root.present().with_context(|| format!("cannot write {}", path.display()))
}
