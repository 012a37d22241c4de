//! The history store under disk faults, end to end: a full disk (a real 16 MB tmpfs filled to the last
//! byte), a file system remounted read-only, the database files deleted under a running Tend, an export
//! whose database breaks mid-way, the size cap with the WAL counted, and a `tend export` killed mid-way.
//! Each time the store shows as degraded for as long as nothing is persisted, writes again within
//! seconds of the fault going away, and what it buffered meanwhile reaches the file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tend_core::model::{Metrics, ProcessId, WorkerId};
use tend_core::time::{ManualClock, Timestamp};
use tend_store::{Retention, SampleRecord, Store, WriterConfig};

use crate::harness::*;

/// Ten silent workers sampled every 500 ms: a steady stream of samples.
const POOL: &str = r#"
[[pool]]
name = "sf"
command = ["sleep", "600"]
size = 10
interval = "500ms"
readiness = { start_secs = 1 }
stop_grace = "1s"
"#;

/// A tmpfs of `size` mounted over a temp dir (the tests run as root, as CI does); unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(st.success(), "mounting a tmpfs needs root (CI runs as root)");
        Tmpfs(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn remount(&self, how: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(self.path())
            .status()
            .expect("run mount");
        assert!(st.success(), "remount {how}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// Fill the file system holding `path` to the last byte with one file.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    for size in [1 << 20, 4096, 1] {
        let chunk = vec![0xa5u8; size];
        while f.write_all(&chunk).and_then(|_| f.flush()).is_ok() {}
    }
    let _ = f.sync_all();
}

/// `tend serve` with [`POOL`] and its history in `data`.
fn start(data: &Path) -> Tend {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(&dir, "tend.toml", POOL);
    let cfg = cfg.to_str().unwrap().to_owned();
    Tend::start_env(dir, &["serve", "--config", &cfg], &[("TEND_DATA_DIR", data.to_str().unwrap())])
}

fn health(t: &Tend) -> Value {
    t.json("/api/v1/health")
}

fn store_degraded(h: &Value) -> Option<String> {
    h["degraded"]["store"].as_str().map(str::to_owned)
}

/// Samples of `worker` stored with a time in `[from, to)`, through the history API (raw tier).
fn stored(t: &Tend, worker: &str, from: i64, to: i64) -> i64 {
    let (status, h) =
        t.get(&format!("/api/v1/workers/{worker}/history?metric=memory_bytes&from={from}&to={to}&step=1s"));
    // 503 while the store opens (or reopens), 404 before the worker's first sample.
    if status != 200 {
        return 0;
    }
    h["points"].as_array().map(|ps| ps.iter().filter_map(|p| p["n"].as_i64()).sum()).unwrap_or(0)
}

/// The store is degraded at every poll for `secs`: from the first failed write on, no flapping back to
/// ok between retries while nothing can be written.
fn degraded_throughout(t: &Tend, secs: u64) -> String {
    let until = Instant::now() + Duration::from_secs(secs);
    let mut polls = 0;
    let mut last = String::new();
    while Instant::now() < until {
        let h = health(t);
        match store_degraded(&h) {
            Some(reason) => last = reason,
            None => panic!("health says the store is fine while nothing can be written (poll {polls}): {h}"),
        }
        polls += 1;
        pause(Duration::from_millis(200));
    }
    last
}

/// A commit from outside succeeds while Tend runs: no transaction or lock was left open by a failure.
fn outside_write_succeeds(data: &Path) {
    block_on(async {
        let store = Store::open_dir(data).await.unwrap();
        let begun =
            tokio::time::timeout(Duration::from_secs(30), store.begin_run(Timestamp(wall_ms()))).await;
        assert!(matches!(begun, Ok(Ok(_))), "an outside write failed while Tend runs: {begun:?}");
        store.close().await;
    });
}

/// Shared by the full-disk and read-only tests: a fault on, held, off; then the checks.
fn fault_then_recovery(data: &Path, on: impl FnOnce(), off: impl FnOnce(), what: &str) {
    let mut tend = start(data);
    let t0 = wall_ms();
    tend.wait_for(30, "samples of every worker in the history", |t| {
        (stored(t, "sf-9", t0 - 60_000, wall_ms() + 1000) >= 3).then_some(())
    });
    tend.wait_for(10, "a healthy store", |t| store_degraded(&health(t)).is_none().then_some(()));
    let fault_at = wall_ms();
    on();
    let reason = tend.wait_for(30, "the store degraded", |t| store_degraded(&health(t)));
    assert!(reason.contains("history not written"), "{what}: {reason}");
    let reason = degraded_throughout(&tend, 8);
    let cleared_at = wall_ms();
    off();
    // Writing resumes within seconds (the retry backoff is at most 2 s).
    tend.wait_for(20, "the store writing again", |t| store_degraded(&health(t)).is_none().then_some(()));
    eprintln!("{what}: the store wrote again {} ms after the fault ended", wall_ms() - cleared_at);
    assert!(tend.stderr().contains("history store writes again"), "{what}: the log says so");
    // The backlog is written: the samples taken while the fault lasted are in the file now.
    let expected = (cleared_at - fault_at - 2000) / 500;
    for w in ["sf-0", "sf-9"] {
        let n = stored(&tend, w, fault_at + 1000, cleared_at - 1000);
        eprintln!(
            "{what}: {n} samples of {w} stored from the fault's {} s (about {expected} taken)",
            (cleared_at - fault_at) / 1000
        );
        assert!(
            n * 10 >= expected * 6,
            "{what}: {n} samples of {w} kept from {}s of fault (about {expected} taken); reason was: {reason}\n{}",
            (cleared_at - fault_at) / 1000,
            tend.stderr()
        );
    }
    // And new samples keep coming.
    let after = wall_ms();
    tend.wait_for(15, "samples after the recovery", |t| {
        (stored(t, "sf-0", after, wall_ms() + 1000) >= 2).then_some(())
    });
    outside_write_succeeds(data);
    let status = tend.terminate(30);
    assert!(status.success());
    assert!(!tend.stderr().contains("could not write"), "{what}: nothing lost at stop:\n{}", tend.stderr());
}

#[test]
fn a_full_disk_degrades_the_store_and_writing_resumes_with_the_backlog_once_space_returns() {
    let fs = Tmpfs::mount("16m");
    let data = fs.path().join("data");
    let filler = fs.path().join("filler");
    let f2 = filler.clone();
    fault_then_recovery(
        &data,
        move || fill(&f2),
        move || std::fs::remove_file(&filler).unwrap(),
        "full disk",
    );
}

/// Linux refuses `remount,ro` while a file on it is open for writing (EBUSY), so the file system is made
/// read-only before Tend opens anything there, and made writable again while Tend runs.
#[test]
fn a_read_only_file_system_degrades_the_store_until_it_is_writable_and_the_backlog_is_written() {
    let fs = Tmpfs::mount("16m");
    let data = fs.path().join("data");
    std::fs::create_dir(&data).unwrap();
    fs.remount("ro");
    let start_at = wall_ms();
    let mut tend = start(&data);
    tend.wait_for(30, "10 READY workers", |t| {
        let ws = t.workers();
        (ws.len() == 10 && ws.iter().all(|w| state_of(w) == "READY")).then_some(())
    });
    let reason = degraded_throughout(&tend, 8);
    // The data directory cannot even be locked, let alone hold tend.db: either names the directory.
    let dir = data.to_str().unwrap();
    assert!(reason.contains("history not written") && reason.contains(dir), "{reason}");
    let writable_at = wall_ms();
    fs.remount("rw");
    tend.wait_for(20, "the store writing again", |t| store_degraded(&health(t)).is_none().then_some(()));
    eprintln!("read-only: the store wrote again {} ms after the remount rw", wall_ms() - writable_at);
    // The backlog (everything since the start) is in the file now.
    let expected = (writable_at - start_at - 6000) / 500;
    for w in ["sf-0", "sf-9"] {
        let n = stored(&tend, w, start_at, writable_at);
        eprintln!("read-only: {n} samples of {w} stored from the read-only time (about {expected} taken)");
        assert!(
            n * 10 >= expected * 6,
            "{n} samples of {w} kept from the read-only time (about {expected} taken)"
        );
    }
    outside_write_succeeds(&data);
    assert!(tend.terminate(30).success());
    assert!(!tend.stderr().contains("could not write"), "nothing lost at stop:\n{}", tend.stderr());
}

#[test]
fn a_deleted_database_is_noticed_and_a_fresh_one_takes_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut tend = start(&data);
    let t0 = wall_ms();
    tend.wait_for(30, "samples in the history", |t| {
        (stored(t, "sf-0", t0 - 60_000, wall_ms() + 1000) >= 3).then_some(())
    });
    let db = data.join(tend_store::DB_FILE);
    let deleted_at = wall_ms();
    for f in [db.clone(), data.join("tend.db-wal"), data.join("tend.db-shm")] {
        let _ = std::fs::remove_file(f);
    }
    // Noticed at the next flush: the log, an event, the health.
    tend.wait_for(15, "the log saying a fresh database was opened", |t| {
        t.stderr().contains("opened a fresh history database").then_some(())
    });
    let ev = tend.wait_for(10, "a source_status event about the store", |t| {
        t.events_of("source_status").into_iter().find(|e| e["source"] == "store" && e["degraded"] == true)
    });
    assert!(ev["detail"].as_str().unwrap().contains("deleted"), "{ev}");
    // History goes on in the new file (not in the deleted one, which no one can read).
    tend.wait_for(15, "samples after the deletion", |t| {
        (stored(t, "sf-0", deleted_at + 1000, wall_ms() + 1000) >= 3).then_some(())
    });
    assert!(db.exists(), "the database file is back");
    let status = tend.terminate(30);
    assert!(status.success());
    let (integrity, newest, problems) = block_on(async {
        let store = Store::open_dir(&data).await.unwrap();
        let (_, _, newest) = store.tier_span(tend_store::query::Tier::Raw).await.unwrap();
        let f = tend_store::query::Filter::default();
        (store.integrity_check().await.unwrap(), newest, store.errors(&f).await.unwrap())
    });
    assert_eq!(integrity, "ok");
    assert!(newest.unwrap() > deleted_at + 1000, "samples after the deletion are on disk");
    assert!(
        problems
            .iter()
            .any(|p| p["source"] == "store" && p["message"].as_str().unwrap_or("").contains("deleted")),
        "the new database says what happened: {problems:?}"
    );
}

/// A history of `workers` × `per_worker` samples over the last hour in `data` (written by the store's own
/// writer, then closed).
fn prefill(data: &Path, workers: usize, per_worker: i64) {
    block_on(async {
        let now = wall_ms();
        let clock = ManualClock::new(Timestamp(now));
        let mut cfg = WriterConfig::new(data.to_path_buf(), Retention::default());
        cfg.maintain_every = Duration::from_secs(3600);
        let h = tend_store::writer::spawn(cfg, Arc::new(clock));
        let step = 3_600_000 / per_worker;
        for i in 0..per_worker {
            let at = now - 3_600_000 + i * step;
            let batch = (0..workers).map(|w| sample(&format!("big-{w}"), "big", at)).collect();
            h.recorder.samples_wait(batch).await;
        }
        h.recorder.flush().await;
        h.close().await;
    });
}

fn sample(worker: &str, pool: &str, at: i64) -> SampleRecord {
    SampleRecord {
        worker: WorkerId::new(worker),
        pool: pool.into(),
        at: Timestamp(at),
        incarnation: 1,
        process: Some(ProcessId { pid: 4242, start_ticks: 99 }),
        state: Some("READY"),
        metrics: Metrics {
            cpu_percent: Some(12.5),
            memory_bytes: Some(123_456_789),
            threads: Some(3),
            fds: Some(12),
            ..Default::default()
        },
        requests: Some(7),
    }
}

#[test]
fn an_export_whose_database_breaks_mid_way_ends_in_an_error_the_client_sees() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // ~300 000 rows, ~45 MB of CSV: far more than the socket and the server's buffers hold.
    prefill(&data, 50, 6000);
    let tend = start(&data);
    tend.wait_for(30, "the store open", |t| (t.get("/api/v1/recycles").0 == 200).then_some(()));
    let client = http().timeout(Duration::from_secs(120)).build().unwrap();
    let mut resp = client.get(tend.url("/api/v1/export.csv?kind=samples&pool=big")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let mut head = vec![0u8; 256 * 1024];
    resp.read_exact(&mut head).unwrap();
    // The database breaks under the export: its pages are gone.
    let db = std::fs::OpenOptions::new().write(true).open(data.join(tend_store::DB_FILE)).unwrap();
    db.set_len(8192).unwrap();
    drop(db);
    let mut rest = Vec::new();
    let read = resp.read_to_end(&mut rest);
    assert!(
        read.is_err(),
        "the client read a clean end of body ({} bytes after the first 256 KiB) from an export that failed",
        rest.len()
    );
    tend.wait_for(10, "the server's log of the cut export", |t| {
        t.stderr().contains("CSV export cut short").then_some(())
    });
}

#[test]
fn the_size_cap_counts_the_wal_and_holds() {
    let dir = tempfile::tempdir().unwrap();
    let cap: u64 = 5 << 20;
    let (max, used) = block_on(async {
        let clock = ManualClock::new(Timestamp(wall_ms()));
        let ret = Retention { max_size_bytes: Some(cap), ..Retention::default() };
        let cfg = WriterConfig::new(dir.path().to_path_buf(), ret);
        let h = tend_store::writer::spawn(cfg, Arc::new(clock));
        let store = h.wait_open(Duration::from_secs(10)).await.unwrap();
        let mut max = 0;
        let t0 = wall_ms() - 3_600_000;
        // ~40 MB of samples through a 5 MB cap, measured on disk after every commit.
        for i in 0..150i64 {
            let batch =
                (0..2000i64).map(|k| sample(&format!("w{}", k % 20), "p", t0 + i * 100 + k / 20)).collect();
            h.recorder.samples_wait(batch).await;
            h.recorder.flush().await;
            max = max.max(store.file_bytes());
        }
        let used = store.used_bytes().await.unwrap();
        h.close().await;
        (max, used)
    });
    assert!(used > 0);
    eprintln!("size cap {cap}: database + WAL + shm peaked at {max} bytes");
    // The bound: the cap, plus at most one transaction's WAL frames over the WAL's budget.
    assert!(max <= cap + cap / 5, "database + WAL + shm peaked at {max} bytes under a {cap}-byte cap");
}

#[test]
fn a_killed_or_failed_export_never_leaves_a_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prefill(&data, 50, 6000);
    let out = tempfile::tempdir().unwrap();
    let f = out.path().join("samples.csv");
    std::fs::write(&f, "old\n").unwrap();
    let export = |args: &[&str]| {
        std::process::Command::new(TEND)
            .arg("export")
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .arg("--out")
            .arg(&f)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Killed mid-way: the old file is untouched.
    let mut child = export(&[]);
    let others = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p).unwrap().flatten().map(|e| e.path()).filter(|x| *x != f).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let partial = others(out.path()).iter().any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0));
        let changed = std::fs::read(&f).map(|b| b != b"old\n").unwrap_or(true);
        if partial || changed {
            break;
        }
        assert!(Instant::now() < deadline, "the export never started writing");
        assert!(child.try_wait().unwrap().is_none(), "the export ended before it could be killed");
        pause(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "old\n", "a killed export left a partial file");
    // Failed (no such worker): no file at all where there was none.
    std::fs::remove_file(&f).unwrap();
    let o = export(&["--worker", "nobody"]).wait_with_output().unwrap();
    assert!(!o.status.success());
    assert!(!f.exists(), "a failed export left {}", f.display());
    assert!(
        others(out.path()).iter().all(|p| p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".samples.partial-")),
        "only a killed export's hidden temporary file may be left: {:?}",
        others(out.path())
    );
    // A complete export replaces the file whole.
    let o = export(&["--pool", "big", "--from", "-10m"]).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut rd = csv::Reader::from_path(&f).unwrap();
    assert!(rd.records().count() > 1000);
}
