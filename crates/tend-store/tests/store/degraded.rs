//! A data directory that cannot be written is a degraded status with the reason, never a crash; what was
//! recorded meanwhile is kept and written once the directory works. A full disk (a tiny tmpfs) is the
//! same: degraded with the reason, records kept.

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

/// A tmpfs of 512 KiB mounted over a temp dir (the tests run as root, as CI does); unmounted on drop.
struct TinyFs(tempfile::TempDir);

impl TinyFs {
    fn mount() -> TinyFs {
        let dir = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(st.success(), "mounting a small tmpfs needs root (CI runs as root)");
        TinyFs(dir)
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[tokio::test]
async fn a_full_disk_is_degraded_with_the_reason_and_records_are_kept() {
    let fs = TinyFs::mount();
    let clock = ManualClock::new(Timestamp(T0));
    let h = writer(fs.0.path(), &clock, Retention::default());
    h.recorder.event(&added(1, T0, "w", "p"));
    // Far more than 512 KiB of samples.
    let mut i = 0;
    let s = loop {
        for _ in 0..2000 {
            h.recorder.sample(sample("w", "p", T0 + i * 1000, 1.0, 1));
            i += 1;
        }
        h.recorder.flush().await;
        let s = h.recorder.status();
        if s != StoreStatus::Ok || i > 400_000 {
            break s;
        }
    };
    let StoreStatus::Degraded(reason) = s else { panic!("a full tmpfs never failed a write") };
    assert!(reason.contains("full"), "the reason says the disk is full: {reason}");
    // The writer still takes records (kept in its bounded buffer, retried).
    assert!(h.recorder.sample(sample("w", "p", T0 + i * 1000, 1.0, 1)));
    assert_eq!(h.recorder.dropped(), 0, "nothing lost yet: the buffer holds it");
    h.close().await;
}
