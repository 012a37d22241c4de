//! Three tiers under simulated time: raw rolls into minutes and hours, each tier is pruned at its age,
//! the history query picks the tier that fits, and a size cap drops the oldest data first.

use std::time::Duration;

use tend_core::time::{Clock, ManualClock, Timestamp};
use tend_store::Retention;
use tend_store::query::Tier;
use tend_store::tiers::maintain;

use crate::support::*;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

#[tokio::test]
async fn raw_minute_and_hour_tiers_roll_up_and_age_out() {
    let dir = tempfile::tempdir().unwrap();
    let start = T0 - T0 % HOUR;
    let clock = ManualClock::new(Timestamp(start));
    let ret = Retention::default();
    let h = writer(dir.path(), &clock, ret.clone());
    h.recorder.event(&added(1, start, "w", "p"));
    // Three days of one sample every 30 s; CPU is the minute of the hour, so rollups are checkable.
    let mut t = start;
    while t < start + 3 * DAY {
        let minute = ((t % HOUR) / 60_000) as f64;
        h.recorder.sample(sample("w", "p", t, minute, 100 << 20));
        t += 30_000;
    }
    h.recorder.flush().await;
    let store = h.store().unwrap();
    clock.set(Timestamp(start + 3 * DAY));
    let r = maintain(&store, clock.now(), &ret).await.unwrap();
    assert!(r.minute_buckets >= 3 * 1440 - 1, "{r:?}");
    assert!(r.hour_buckets >= 71, "{r:?}");
    // Raw keeps 24 h; minute and hour tiers cover the three days.
    let (n, lo, _) = store.tier_span(Tier::Raw).await.unwrap();
    assert_eq!(lo, Some(start + 2 * DAY));
    assert_eq!(n, 2 * 60 * 24);
    let (_, lo, _) = store.tier_span(Tier::Minute).await.unwrap();
    assert_eq!(lo, Some(start));
    let (_, lo, _) = store.tier_span(Tier::Hour).await.unwrap();
    assert_eq!(lo, Some(start));
    // A minute bucket: two samples of the same minute value.
    let now = clock.now();
    let m = store
        .history(
            "w",
            "cpu_percent",
            Timestamp(start),
            Timestamp(start + 10 * 60_000),
            Some(60_000),
            now,
            &ret,
        )
        .await
        .unwrap();
    assert_eq!(m.tier, Tier::Minute);
    assert_eq!(m.points.len(), 10);
    assert_eq!((m.points[7].min, m.points[7].max, m.points[7].n), (Some(7.0), Some(7.0), 2));
    // An hour bucket: minutes 0..59, average 29.5.
    let hr = store
        .history("w", "cpu_percent", Timestamp(start), Timestamp(start + DAY), Some(HOUR), now, &ret)
        .await
        .unwrap();
    assert_eq!(hr.tier, Tier::Hour);
    assert_eq!(hr.points.len(), 24);
    assert_eq!(
        (hr.points[0].min, hr.points[0].avg, hr.points[0].max, hr.points[0].n),
        (Some(0.0), Some(29.5), Some(59.0), 120)
    );
    // The last hour at a fine step comes from raw samples.
    let raw = store.history("w", "cpu_percent", Timestamp(now.0 - HOUR), now, None, now, &ret).await.unwrap();
    assert_eq!(raw.tier, Tier::Raw);
    assert!(!raw.points.is_empty());
    let mem = store
        .history("w", "memory_mb", Timestamp(start), Timestamp(start + DAY), Some(HOUR), now, &ret)
        .await
        .unwrap();
    assert_eq!(mem.points[0].avg, Some(100.0));

    // 40 days on: raw gone, minutes gone (30 d), hours still there.
    clock.advance(Duration::from_secs(40 * 86_400));
    maintain(&store, clock.now(), &ret).await.unwrap();
    assert_eq!(store.tier_span(Tier::Raw).await.unwrap().0, 0);
    assert_eq!(store.tier_span(Tier::Minute).await.unwrap().0, 0);
    assert_eq!(store.tier_span(Tier::Hour).await.unwrap().0, 72);
    let old = store
        .history("w", "cpu_percent", Timestamp(start), Timestamp(start + DAY), None, clock.now(), &ret)
        .await
        .unwrap();
    assert_eq!(old.tier, Tier::Hour, "a range older than the minute tier is answered from hours");
    assert_eq!(old.points.len(), 24);
    // A year and more: everything is gone.
    clock.advance(Duration::from_secs(366 * 86_400));
    maintain(&store, clock.now(), &ret).await.unwrap();
    assert_eq!(store.tier_span(Tier::Hour).await.unwrap().0, 0);
    h.close().await;
}

#[tokio::test]
async fn over_the_size_cap_the_oldest_samples_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(T0));
    let ret = Retention { max_size_bytes: Some(2 << 20), ..Retention::default() };
    let h = writer(dir.path(), &clock, ret.clone());
    for w in 0..4 {
        h.recorder.event(&added(w, T0, &format!("w{w}"), "p"));
    }
    // ~4 × 20k samples over 5.5 hours: several MB.
    for i in 0..20_000i64 {
        for w in 0..4 {
            h.recorder.sample(sample(&format!("w{w}"), "p", T0 + i * 1000, 1.0, 1 << 20));
        }
    }
    h.recorder.flush().await;
    let store = h.store().unwrap();
    clock.set(Timestamp(T0 + 20_000_000));
    let r = maintain(&store, clock.now(), &ret).await.unwrap();
    assert!(r.used_bytes <= 2 << 20, "{r:?}");
    // The writer pruned as the files outgrew the cap; maintenance keeps them under it.
    let (n, lo, hi) = store.tier_span(Tier::Raw).await.unwrap();
    assert!(n > 0 && n < 80_000, "{n} of 80 000 samples kept");
    assert!(lo.unwrap() > T0, "the oldest samples went");
    assert_eq!(hi, Some(T0 + 19_999_000), "the newest stayed");
    // The files themselves (database, WAL, shared memory) stay within the cap (incremental vacuum,
    // checkpoints), give or take one transaction.
    assert!(store.file_bytes() < (2 << 20) + (1 << 20), "{} bytes on disk", store.file_bytes());
    h.close().await;
}

#[tokio::test]
async fn custom_metrics_roll_up_and_outlive_the_raw_tier() {
    let dir = tempfile::tempdir().unwrap();
    let start = T0 - T0 % HOUR;
    let clock = ManualClock::new(Timestamp(start));
    let ret = Retention::default();
    let h = writer(dir.path(), &clock, ret.clone());
    h.recorder.event(&added(1, start, "w", "p"));
    // Two days, a sample every 30 s: `success_rate` is the minute of the hour, `queue` is 10 × it.
    let mut t = start;
    while t < start + 2 * DAY {
        let minute = ((t % HOUR) / 60_000) as f64;
        let mut s = sample("w", "p", t, 1.0, 1 << 20);
        s.metrics.custom.insert("success_rate".into(), minute);
        s.metrics.custom.insert("queue".into(), minute * 10.0);
        h.recorder.sample(s);
        t += 30_000;
    }
    h.recorder.flush().await;
    let store = h.store().unwrap();
    clock.set(Timestamp(start + 2 * DAY));
    maintain(&store, clock.now(), &ret).await.unwrap();
    let now = clock.now();
    // Minute tier (an hour of the first day at 1-minute steps).
    let m = store
        .history("w", "success_rate", Timestamp(start), Timestamp(start + HOUR), Some(60_000), now, &ret)
        .await
        .unwrap();
    assert_eq!(m.tier, Tier::Minute);
    assert_eq!(m.points.len(), 60);
    assert_eq!((m.points[42].min, m.points[42].max, m.points[42].n), (Some(42.0), Some(42.0), 2));
    // Hour tier: minutes 0..59 average 29.5, max 59; the other metric keeps its own values.
    let hr = store
        .history("w", "queue", Timestamp(start), Timestamp(start + DAY), Some(HOUR), now, &ret)
        .await
        .unwrap();
    assert_eq!(hr.tier, Tier::Hour);
    assert_eq!(hr.points.len(), 24);
    assert_eq!(
        (hr.points[5].min, hr.points[5].avg, hr.points[5].max, hr.points[5].n),
        (Some(0.0), Some(295.0), Some(590.0), 120)
    );
    // Ten days on: raw samples are gone, the custom metric's history is not.
    clock.advance(Duration::from_secs(10 * 86_400));
    maintain(&store, clock.now(), &ret).await.unwrap();
    assert_eq!(store.tier_span(Tier::Raw).await.unwrap().0, 0);
    let old = store
        .history("w", "success_rate", Timestamp(start), Timestamp(start + DAY), None, clock.now(), &ret)
        .await
        .unwrap();
    assert_ne!(old.tier, Tier::Raw);
    assert!(!old.points.is_empty(), "custom history survives the raw tier: {old:?}");
    assert!(old.points.iter().all(|p| p.max <= Some(59.0)), "{old:?}");
    // A year and more: the custom rollups age out with the built-in ones.
    clock.advance(Duration::from_secs(366 * 86_400));
    maintain(&store, clock.now(), &ret).await.unwrap();
    let gone = store
        .history("w", "success_rate", Timestamp(start), Timestamp(start + DAY), None, clock.now(), &ret)
        .await
        .unwrap();
    assert!(gone.points.is_empty(), "{gone:?}");
    h.close().await;
}
