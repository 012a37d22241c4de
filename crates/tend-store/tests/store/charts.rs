//! Chart export: a PNG of the asked size and an SVG with a line per worker and a legend.

use tend_core::time::{Clock, ManualClock, Timestamp};
use tend_store::Retention;
use tend_store::chart::{self, Format, chart_metric};

use crate::support::*;

#[tokio::test]
async fn png_and_svg_charts_have_a_line_per_worker() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(T0 + 700_000));
    let h = writer(dir.path(), &clock, Retention::default());
    let workers = ["api-0", "api-1", "api-2"];
    for (i, w) in workers.iter().enumerate() {
        h.recorder.event(&added(i as u64, T0, w, "api"));
        for s in 0..600 {
            let mem = (100 + i as u64 * 20 + s as u64 / 10) << 20;
            h.recorder.sample(sample(w, "api", T0 + s * 1000, (s % 50) as f64 + i as f64 * 10.0, mem));
        }
    }
    h.recorder.flush().await;
    let store = h.store().unwrap();
    let metrics = [chart_metric("cpu").unwrap(), chart_metric("memory").unwrap()];
    let names: Vec<String> = workers.iter().map(|s| s.to_string()).collect();
    let data = store
        .chart_data(
            &names,
            &metrics,
            Timestamp(T0),
            Timestamp(T0 + 600_000),
            900,
            clock.now(),
            &Retention::default(),
        )
        .await
        .unwrap();
    assert_eq!(data.panels.len(), 2);
    assert!(data.panels.iter().all(|p| p.series.len() == 3 && p.series.iter().all(|s| s.points.len() > 100)));

    let png = dir.path().join("chart.png");
    chart::render(&data, Format::Png, &png, 900, 600).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let hgt = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((w, hgt), (900, 600));
    assert!(bytes.len() > 10_000, "a drawn chart, not a blank: {} bytes", bytes.len());

    let svg = dir.path().join("chart.svg");
    chart::render(&data, Format::Svg, &svg, 900, 600).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"));
    // Each series is a polyline with hundreds of points; legend samples are two-point lines.
    let long_lines = text
        .split("<polyline")
        .skip(1)
        .filter(|p| {
            p.split("points=\"")
                .nth(1)
                .and_then(|pts| pts.split('"').next())
                .is_some_and(|pts| pts.split(' ').count() > 100)
        })
        .count();
    assert_eq!(long_lines, 6, "one line per worker per panel");
    for w in workers {
        assert_eq!(text.matches(w).count(), 2, "{w} in both legends");
    }
    assert!(text.contains("CPU (% of one core)") && text.contains("memory (MiB)"));
    assert!(text.contains("local time"));
    h.close().await;
}
