//! Chart export with plotters: per-worker CPU and memory over a range, one panel per metric, workers
//! overlaid with a legend, axes with units and local-time labels, as PNG (bitmap backend: no display
//! needed) or SVG. Text is drawn with a TrueType font read from disk (`TEND_FONT`, or DejaVu Sans from
//! Debian's `fonts-dejavu-core`), so no fontconfig is involved. It never writes to the database.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, bail};
use plotters::prelude::*;
use plotters::style::FontStyle;

use tend_core::time::Timestamp;

use crate::db::{Retention, Store};
use crate::query::QueryError;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "png" => Some(Format::Png),
            "svg" => Some(Format::Svg),
            _ => None,
        }
    }
}

/// A metric a chart can show: its history name, its axis title, and its unit scale.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct ChartMetric {
    pub metric: &'static str,
    pub title: &'static str,
}

/// `cpu` and `memory` (the names the CLI takes) and the metrics behind them.
pub fn chart_metric(name: &str) -> Option<ChartMetric> {
    match name {
        "cpu" | "cpu_percent" => Some(ChartMetric { metric: "cpu_percent", title: "CPU (% of one core)" }),
        "memory" | "memory_mb" => Some(ChartMetric { metric: "memory_mb", title: "memory (MiB)" }),
        "threads" => Some(ChartMetric { metric: "threads", title: "threads" }),
        "fds" => Some(ChartMetric { metric: "fds", title: "open files" }),
        _ => None,
    }
}

/// One worker's line on one panel.
#[derive(Clone, Debug)]
pub struct Series {
    pub worker: String,
    /// (epoch ms, value)
    pub points: Vec<(i64, f64)>,
}

#[derive(Clone, Debug)]
pub struct Panel {
    pub metric: ChartMetric,
    pub series: Vec<Series>,
}

#[derive(Clone, Debug)]
pub struct ChartData {
    pub from: Timestamp,
    pub to: Timestamp,
    pub panels: Vec<Panel>,
}

impl Store {
    #[allow(clippy::too_many_arguments)] // like `history`: independent inputs of one question
    /// The averages of each metric for each worker over the range, at about one point per 2 pixels.
    pub async fn chart_data(
        &self,
        workers: &[String],
        metrics: &[ChartMetric],
        from: Timestamp,
        to: Timestamp,
        width: u32,
        now: Timestamp,
        ret: &Retention,
    ) -> Result<ChartData, QueryError> {
        let step = ((to.as_millis() - from.as_millis()) / i64::from((width / 2).max(1))).max(1000);
        let mut panels = Vec::new();
        for m in metrics {
            let mut series = Vec::new();
            for w in workers {
                let h = self.history(w, m.metric, from, to, Some(step), now, ret).await?;
                series.push(Series {
                    worker: w.clone(),
                    points: h.points.iter().filter_map(|p| Some((p.t, p.avg?))).collect(),
                });
            }
            panels.push(Panel { metric: *m, series });
        }
        Ok(ChartData { from, to, panels })
    }
}

const FONT: &str = "sans-serif";
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// The family name charts draw text in, once [`ensure_font`] registered it.
pub const FONT_FAMILY: &str = FONT;

/// Register the chart font once: `TEND_FONT` if set, else the first known system font found. Other
/// plotters charts of the workspace (the bench's plot) call it too.
pub fn ensure_font() -> anyhow::Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let candidates: Vec<String> = std::env::var("TEND_FONT")
            .ok()
            .filter(|v| !v.is_empty())
            .into_iter()
            .chain(FONT_PATHS.iter().map(|s| s.to_string()))
            .collect();
        for path in &candidates {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "no TrueType font for chart text (tried {}): install fonts-dejavu-core or set TEND_FONT=/path/to/font.ttf",
            candidates.join(", ")
        ))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// Render `data` to `path` (PNG or SVG), `width` × `height` pixels.
pub fn render(data: &ChartData, format: Format, path: &Path, width: u32, height: u32) -> anyhow::Result<()> {
    ensure_font()?;
    if data.panels.is_empty() {
        bail!("nothing to chart: no metric given");
    }
    match format {
        Format::Png => {
            let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
            draw(&root, data)?;
            root.present().with_context(|| format!("cannot write {}", path.display()))?;
        }
        Format::Svg => {
            let root = SVGBackend::new(path, (width, height)).into_drawing_area();
            draw(&root, data)?;
            root.present().with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(())
}

/// An instant in the system's time zone (UTC when it cannot be found).
fn local(ms: i64) -> Option<jiff::ZonedDateTime> {
    let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
    Some(jiff::Timestamp::from_millisecond(ms).ok()?.to_zoned_datetime(tz))
}

fn local_label(ms: i64, span_ms: i64) -> String {
    let format = match span_ms {
        s if s > 86_400_000 => "%m-%d %H:%M",
        s if s > 600_000 => "%H:%M",
        _ => "%H:%M:%S",
    };
    local(ms).map(|t| t.strftime(format).to_string()).unwrap_or_else(|| ms.to_string())
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    data: &ChartData,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("chart drawing failed: {e}");
    root.fill(&WHITE).map_err(err)?;
    let (from, to) = (data.from.as_millis(), data.to.as_millis().max(data.from.as_millis() + 1));
    let span = to - from;
    let offset = local(from).map(|t| t.strftime("%:z").to_string()).unwrap_or_default();
    let areas = root.split_evenly((data.panels.len(), 1));
    for (panel, area) in data.panels.iter().zip(areas.iter()) {
        let max = panel.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0f64, f64::max);
        let top = if max > 0.0 { max * 1.1 } else { 1.0 };
        let mut chart = ChartBuilder::on(area)
            .caption(panel.metric.title, (FONT, 18))
            .margin(10)
            .margin_right(36)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(from..to, 0.0..top)
            .map_err(err)?;
        let fmt = |v: &i64| local_label(*v, span);
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&fmt)
            .x_desc(format!("local time (UTC{offset})"))
            .y_desc(panel.metric.title)
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(err)?;
        for (i, s) in panel.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
                .map_err(err)?
                .label(s.worker.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 12))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}
