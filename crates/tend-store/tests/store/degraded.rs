//! A data directory that cannot be written is a degraded status with the reason, never a crash; what was
//! recorded meanwhile is kept and written once the directory works.

use std::time::Duration;

use tend_core::time::{ManualClock, Timestamp};
use tend_store::{Retention, StoreStatus};

use crate::support::*;

async fn wait_status(h: &tend_store::StoreHandle, want: impl Fn(&StoreStatus) -> bool) -> StoreStatus {
    for _ in 0..200 {
        let s = h.recorder.status();
        if want(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.recorder.status()
}

#[tokio::test]
async fn read_only_file_system_is_degraded_with_the_reason() {
    let clock = ManualClock::new(Timestamp(T0));
    // sysfs is read-only even for root.
    let h = writer(std::path::Path::new("/sys/tend-test-data"), &clock, Retention::default());
    h.recorder.event(&added(1, T0, "w", "p"));
    let s = wait_status(&h, |s| *s != StoreStatus::Ok).await;
    let StoreStatus::Degraded(reason) = s else { panic!("not degraded") };
    assert!(reason.contains("/sys/tend-test-data"), "{reason}");
    assert!(h.store().is_none());
    // Still accepting (buffering) records.
    assert!(h.recorder.sample(sample("w", "p", T0, 1.0, 1)));
    h.close().await;
}

#[tokio::test]
async fn a_directory_that_comes_back_gets_the_buffered_records() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("data");
    std::fs::write(&blocker, "a file where the directory should be").unwrap();
    let clock = ManualClock::new(Timestamp(T0));
    let h = writer(&blocker, &clock, Retention::default());
    h.recorder.event(&added(1, T0, "w", "p"));
    for i in 0..50 {
        h.recorder.sample(sample("w", "p", T0 + i * 1000, 1.0, 1));
    }
    let s = wait_status(&h, |s| *s != StoreStatus::Ok).await;
    assert!(matches!(&s, StoreStatus::Degraded(r) if r.contains("data")), "{s:?}");
    std::fs::remove_file(&blocker).unwrap();
    let s = wait_status(&h, |s| *s == StoreStatus::Ok).await;
    assert_eq!(s, StoreStatus::Ok);
    h.recorder.flush().await;
    let store = h.store().unwrap();
    assert_eq!(store.sample_count().await.unwrap(), 50, "nothing recorded while failing was lost");
    h.close().await;
}
