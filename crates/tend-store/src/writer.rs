//! The batched writer: one task that owns every write of samples and events. The engine hands records to
//! a [`Recorder`] (a bounded channel; `record` never waits); the task commits them in transactions every
//! second or every `batch_rows` records, on a connection of its own. Samples are appended to
//! `samples_fresh` and moved into `samples` (clustered by worker) every `settle_every`: a commit of a
//! thousand workers' samples then writes a few pages, not one per worker. When the disk fails it keeps what it
//! holds (up to a bound, dropping the oldest samples first), throws the connection away (so no
//! transaction or lock outlives the failure), retries with backoff and says so through [`StoreStatus`]
//! until a commit succeeds again. Before each flush it checks that the path still leads to the open file,
//! and opens a fresh database there if it was deleted or replaced. Under a size cap it keeps the WAL
//! within its budget and prunes as soon as the files outgrow the cap. On [`StoreHandle::close`] it
//! flushes. It never blocks its callers and never decides anything. It opens the database only while it
//! holds the data directory's lock ([`crate::lock`]), and keeps it to its end.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use tend_core::backoff::Backoff;
use tend_core::event::Event;
use tend_core::time::Clock;

use crate::db::{Retention, Store};
use crate::lock::DirLock;
use crate::record::{Problem, Record, SampleRecord};
use crate::tiers;

mod rows;
use rows::{insert_samples, write_problem};

/// How the writer is set up.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// The data directory; the database is `tend.db` in it.
    pub dir: PathBuf,
    pub retention: Retention,
    /// Records the channel holds before `record` starts dropping.
    pub capacity: usize,
    /// Commit when this many records are waiting, even before `flush_every`.
    pub batch_rows: usize,
    pub flush_every: Duration,
    /// How often committed samples move from `samples_fresh` (appended in time order: a commit touches
    /// a few pages) into `samples` (clustered by worker: each worker's rows of the period land on one
    /// page). Longer settles cost fewer pages; the fresh table stays a few seconds of samples.
    pub settle_every: Duration,
    /// Records kept while the disk fails; beyond it the oldest samples are dropped.
    pub buffer_limit: usize,
    /// How often rollups and pruning run.
    pub maintain_every: Duration,
    /// The data directory's lock, when the caller took it already (to refuse to start while another
    /// Tend holds it). Without it the writer takes the lock itself before opening the database, and
    /// treats a lock held elsewhere like any other reason it cannot open (degraded, retried).
    pub lock: Option<Arc<DirLock>>,
}

impl WriterConfig {
    pub fn new(dir: PathBuf, retention: Retention) -> Self {
        WriterConfig {
            dir,
            retention,
            capacity: 100_000,
            batch_rows: 20_000,
            flush_every: Duration::from_secs(1),
            settle_every: Duration::from_secs(10),
            buffer_limit: 500_000,
            maintain_every: Duration::from_secs(60),
            lock: None,
        }
    }
}

/// The store's health as the engine reports it (`source: "store"`).
#[derive(Clone, Debug, PartialEq)]
pub enum StoreStatus {
    Ok,
    Degraded(String),
}

#[derive(Debug, Default)]
struct Health {
    failing: Mutex<Option<String>>,
    /// Records lost: channel full, or the failure buffer over its limit.
    dropped: AtomicU64,
    written_samples: AtomicU64,
    written_events: AtomicU64,
    /// Times the database file was found deleted or replaced (a fresh one opened), and why, last.
    reopened: AtomicU64,
    reopen_reason: Mutex<Option<String>>,
    /// Records in the channel (a sweep's batch counts each of its samples): bounded by `capacity`.
    queued: AtomicU64,
    capacity: u64,
}

impl Health {
    fn set_failing(&self, v: Option<String>) {
        if let Ok(mut f) = self.failing.lock() {
            *f = v;
        }
    }
    fn failing(&self) -> Option<String> {
        self.failing.lock().ok().and_then(|f| f.clone())
    }
}

enum Msg {
    Record(Record),
    /// One sweep's samples: one message instead of one per worker.
    Samples(Vec<SampleRecord>),
    Flush(oneshot::Sender<()>),
    /// The writer's own timer: the flush interval or a retry is due.
    Tick,
    Close(oneshot::Sender<()>),
}

/// The engine's end of the writer: cheap to clone, never waits.
#[derive(Clone, Debug)]
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    health: Arc<Health>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl Recorder {
    /// Queue a record; false (and counted as dropped) when the writer is too far behind.
    pub fn record(&self, r: Record) -> bool {
        match self.tx.try_send(Msg::Record(r)) {
            Ok(()) => true,
            Err(_) => {
                self.health.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Queue a record, waiting for room: for backfills and benchmarks, never for the collection path.
    pub async fn record_wait(&self, r: Record) -> bool {
        self.tx.send(Msg::Record(r)).await.is_ok()
    }

    /// Queue one sweep's samples at once; false (all counted as dropped) when the writer is too far behind.
    pub fn samples(&self, batch: Vec<SampleRecord>) -> bool {
        let n = batch.len() as u64;
        let h = &self.health;
        if h.queued.load(Ordering::Relaxed) + n > h.capacity {
            h.dropped.fetch_add(n, Ordering::Relaxed);
            return false;
        }
        // Counted before the send: the writer may take the batch (and subtract) before this returns.
        h.queued.fetch_add(n, Ordering::Relaxed);
        match self.tx.try_send(Msg::Samples(batch)) {
            Ok(()) => true,
            Err(_) => {
                h.queued.fetch_sub(n, Ordering::Relaxed);
                h.dropped.fetch_add(n, Ordering::Relaxed);
                false
            }
        }
    }

    /// Like [`Recorder::samples`], waiting for room: for backfills and benchmarks.
    pub async fn samples_wait(&self, batch: Vec<SampleRecord>) -> bool {
        let n = batch.len() as u64;
        if self.health.queued.load(Ordering::Relaxed) + n > self.health.capacity {
            self.flush().await;
        }
        self.health.queued.fetch_add(n, Ordering::Relaxed);
        self.tx.send(Msg::Samples(batch)).await.is_ok()
    }

    pub fn sample(&self, s: SampleRecord) -> bool {
        self.record(Record::Sample(Box::new(s)))
    }

    pub fn event(&self, e: &Event) -> bool {
        self.record(Record::Event(Box::new(e.clone())))
    }

    pub fn problem(&self, p: Problem) -> bool {
        self.record(Record::Problem(Box::new(p)))
    }

    /// Records lost so far.
    pub fn dropped(&self) -> u64 {
        self.health.dropped.load(Ordering::Relaxed)
    }

    pub fn written_samples(&self) -> u64 {
        self.health.written_samples.load(Ordering::Relaxed)
    }

    /// How many times the database file was found deleted or replaced and a fresh one opened, and the
    /// last reason.
    pub fn reopened(&self) -> (u64, Option<String>) {
        let why = self.health.reopen_reason.lock().ok().and_then(|r| r.clone());
        (self.health.reopened.load(Ordering::Relaxed), why)
    }

    /// Degraded from the first failed write until a commit succeeds (with the error); the engine adds
    /// drops it has seen.
    pub fn status(&self) -> StoreStatus {
        match self.health.failing() {
            Some(e) => StoreStatus::Degraded(e),
            None => StoreStatus::Ok,
        }
    }

    /// Wait until everything queued before this call is committed (or the writer gave up on it).
    pub async fn flush(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(reply)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The running writer: its recorder, the open store once it is open, and the way to stop it.
#[derive(Clone, Debug)]
pub struct StoreHandle {
    pub recorder: Recorder,
    opened: watch::Receiver<Option<Store>>,
}

impl StoreHandle {
    /// The store, once the writer has opened it.
    pub fn store(&self) -> Option<Store> {
        self.opened.borrow().clone()
    }

    /// Wait up to `limit` for the store to open.
    pub async fn wait_open(&self, limit: Duration) -> Option<Store> {
        let mut rx = self.opened.clone();
        let _ = tokio::time::timeout(limit, rx.wait_for(|s| s.is_some())).await;
        self.store()
    }

    /// Flush everything queued, checkpoint, and stop the writer.
    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.recorder.tx.send(Msg::Close(reply)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Start the writer task (and its maintenance task) on the current tokio runtime. The database is opened
/// by the task, so a missing or read-only directory shows as a degraded status, retried, never a crash.
pub fn spawn(mut config: WriterConfig, clock: Arc<dyn Clock>) -> StoreHandle {
    if let Some(cap) = config.retention.max_size_bytes {
        // One transaction's WAL frames (~250 bytes a sample) must fit the WAL's budget.
        let fits = usize::try_from(crate::db::wal_budget(cap) / 256).unwrap_or(usize::MAX).max(500);
        config.batch_rows = config.batch_rows.min(fits);
    }
    let (tx, rx) = mpsc::channel(config.capacity.max(1));
    let health = Arc::new(Health { capacity: config.capacity.max(1) as u64, ..Health::default() });
    let (open_tx, opened) = watch::channel(None);
    let recorder = Recorder { tx, health: health.clone() };
    let lock = config.lock.clone();
    let writer = Writer {
        lock,
        config,
        clock,
        health,
        rx,
        open_tx,
        store: None,
        run: 0,
        buf: VecDeque::new(),
        wids: HashMap::new(),
        custom_seen: HashSet::new(),
        spawned: HashSet::new(),
        maintainer: None,
        conn: None,
        reopen: None,
        warned: None,
        unsettled: 0,
        settled_at: Instant::now(),
    };
    tokio::spawn(writer.run());
    StoreHandle { recorder, opened }
}

struct Writer {
    /// Held from the first open to the writer's end: only the lock holder ever opens the database.
    lock: Option<Arc<DirLock>>,
    config: WriterConfig,
    clock: Arc<dyn Clock>,
    health: Arc<Health>,
    rx: mpsc::Receiver<Msg>,
    open_tx: watch::Sender<Option<Store>>,
    store: Option<Store>,
    run: i64,
    buf: VecDeque<Record>,
    wids: HashMap<String, i64>,
    custom_seen: HashSet<(i64, String)>,
    /// Workers known to be spawned (their processes are recorded for recovery).
    spawned: HashSet<String>,
    maintainer: Option<tokio::task::JoinHandle<()>>,
    /// The writer's own connection: thrown away after any failed write, opened again on the next try.
    conn: Option<SqliteConnection>,
    /// Why the database must be opened afresh (it was deleted or replaced), until that is done.
    reopen: Option<String>,
    /// The last failure logged as a warning, and when: the same one is repeated at most every 30 s.
    warned: Option<(String, Instant)>,
    /// Samples committed to `samples_fresh` since the last settle, and when that was.
    unsettled: u64,
    settled_at: Instant,
}

struct Step {
    closing: Option<oneshot::Sender<()>>,
    /// Commit now (a caller asked, or the writer's own timer).
    forced: bool,
    /// A caller waits for the flush: settle too, so what it wrote is where maintenance looks next
    /// (a backfill that is pruned or rolled up at once).
    asked: bool,
}

/// Retries from 0.25 s, doubling, and stay frequent: writing resumes within ~2 s of the disk coming
/// back. A failed try costs one connection and one transaction.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(2));
const WARN_EVERY: Duration = Duration::from_secs(30);

impl Writer {
    async fn run(mut self) {
        let mut next_flush = Instant::now() + self.config.flush_every;
        let mut backoff = BACKOFF;
        let mut retry_at: Option<Instant> = None;
        let mut flush_waiters: Vec<oneshot::Sender<()>> = Vec::new();
        // Open at once, so a missing or read-only directory shows before the first write is due.
        if let Err(e) = self.ensure_open().await {
            let msg = format!("{e:#}");
            warn!(error = %msg, "history store unavailable; retrying");
            self.health.set_failing(Some(msg));
            retry_at = Some(Instant::now() + backoff.peek());
        }
        loop {
            let wake = retry_at.unwrap_or(next_flush);
            let msg = tokio::select! {
                m = self.rx.recv() => m,
                _ = tokio::time::sleep_until(wake) => Some(Msg::Tick),
            };
            let mut step = Step { closing: None, forced: false, asked: false };
            self.accept(msg, &mut step, &mut flush_waiters);
            // Take whatever else is already waiting, without awaiting.
            while step.closing.is_none() && self.buf.len() < self.config.batch_rows * 2 {
                match self.rx.try_recv() {
                    Ok(m) => self.accept(Some(m), &mut step, &mut flush_waiters),
                    Err(_) => break,
                }
            }
            let Step { closing, forced, asked } = step;
            let now = Instant::now();
            let due =
                forced || closing.is_some() || now >= next_flush || self.buf.len() >= self.config.batch_rows;
            let may_try = closing.is_some() || retry_at.is_none_or(|r| now >= r);
            if due && may_try {
                next_flush = now + self.config.flush_every;
                match self.flush(asked || closing.is_some()).await {
                    Ok(committed) => {
                        retry_at = None;
                        backoff.reset();
                        // Only a commit is news: a flush with nothing to write proves nothing.
                        if committed && self.health.failing().is_some() {
                            info!("history store writes again");
                            self.health.set_failing(None);
                            self.warned = None;
                        }
                    }
                    Err(e) => {
                        let msg = format!("{e:#}");
                        let wait = backoff.next();
                        let repeat = self
                            .warned
                            .as_ref()
                            .is_some_and(|(m, at)| *m == msg && now.duration_since(*at) < WARN_EVERY);
                        if !repeat {
                            warn!(error = %msg, buffered = self.buf.len(), retry_in_ms = wait.as_millis() as u64,
                                "history store write failed; keeping the buffer and retrying");
                            self.warned = Some((msg.clone(), now));
                        }
                        self.health.set_failing(Some(msg));
                        retry_at = Some(now + wait);
                    }
                }
                for w in flush_waiters.drain(..) {
                    let _ = w.send(());
                }
            } else if due {
                for w in flush_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
            if let Some(reply) = closing {
                if !self.buf.is_empty() {
                    warn!(lost = self.buf.len(), "history store closing with records it could not write");
                }
                if let Some(m) = self.maintainer.take() {
                    m.abort();
                }
                if let Some(c) = self.conn.take() {
                    let _ = c.close().await;
                }
                if let Some(store) = &self.store {
                    if let Err(e) = store.checkpoint().await {
                        warn!(error = %e, "WAL checkpoint at close failed");
                    }
                    store.close().await;
                }
                let _ = reply.send(());
                return;
            }
        }
    }

    fn accept(&mut self, m: Option<Msg>, step: &mut Step, waiters: &mut Vec<oneshot::Sender<()>>) {
        match m {
            Some(Msg::Record(r)) => self.push(r),
            Some(Msg::Samples(batch)) => {
                self.health.queued.fetch_sub(batch.len() as u64, Ordering::Relaxed);
                for s in batch {
                    self.push(Record::Sample(Box::new(s)));
                }
            }
            Some(Msg::Flush(reply)) => {
                step.forced = true;
                step.asked = true;
                waiters.push(reply);
            }
            Some(Msg::Tick) => step.forced = true,
            Some(Msg::Close(reply)) => step.closing = Some(reply),
            None => step.closing = Some(oneshot::channel().0),
        }
    }

    fn push(&mut self, r: Record) {
        if self.buf.len() >= self.config.buffer_limit {
            // Over the bound (the disk has been failing a while): lose the oldest sample, keep events.
            match self.buf.iter().position(|r| matches!(r, Record::Sample(_))) {
                Some(i) => {
                    self.buf.remove(i);
                }
                None => {
                    self.buf.pop_front();
                }
            }
            self.health.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.buf.push_back(r);
    }

    async fn ensure_open(&mut self) -> anyhow::Result<Store> {
        if let Some(s) = &self.store {
            match s.replaced() {
                None => return Ok(s.clone()),
                Some(why) => {
                    warn!(reason = %why, "the history database is gone from under Tend; opening a fresh one");
                    self.reopen = Some(why);
                    self.close_store().await;
                }
            }
        }
        if self.lock.is_none() {
            self.lock = Some(Arc::new(DirLock::acquire(&self.config.dir)?));
        }
        let store = Store::open_dir_capped(&self.config.dir, self.config.retention.max_size_bytes).await?;
        self.run = store.begin_run(self.clock.now()).await?;
        // Extended, not replaced: a fresh database (the old one deleted) knows none of the running workers.
        self.spawned.extend(
            sqlx::query_scalar::<_, String>("SELECT id FROM workers WHERE source = 'spawned'")
                .fetch_all(&store.pool)
                .await?,
        );
        info!(path = %store.path().display(), run = self.run, "history store open");
        self.store = Some(store.clone());
        let _ = self.open_tx.send(Some(store.clone()));
        self.maintainer = Some(tokio::spawn(maintain_loop(
            store.clone(),
            self.clock.clone(),
            self.config.retention.clone(),
            self.config.maintain_every,
        )));
        if let Some(why) = self.reopen.take() {
            let message =
                format!("{why}: opened a fresh history database; what was written before is not in it");
            warn!(path = %store.path().display(), "{message}");
            if let Ok(mut r) = self.health.reopen_reason.lock() {
                *r = Some(message.clone());
            }
            self.health.reopened.fetch_add(1, Ordering::Relaxed);
            // The new database's first record says what happened.
            self.buf.push_front(Record::Problem(Box::new(Problem {
                at: self.clock.now(),
                level: "error",
                worker: None,
                pool: None,
                source: Some("store".into()),
                message,
            })));
        }
        Ok(store)
    }

    /// Let go of the database that is no longer at its path (deleted or replaced): its maintenance, the
    /// writer's connection, the pool (waiting a little for readers to finish). Its leftover WAL and
    /// shared-memory files at the path go too: they are the old file's, and a database opened there
    /// must not replay them.
    async fn close_store(&mut self) {
        if let Some(m) = self.maintainer.take() {
            m.abort();
        }
        if let Some(c) = self.conn.take() {
            let _ = c.close().await;
        }
        let _ = self.open_tx.send(None);
        self.wids.clear();
        self.custom_seen.clear();
        let Some(old) = self.store.take() else { return };
        let _ = tokio::time::timeout(Duration::from_secs(2), old.close()).await;
        for f in old.side_files() {
            if let Err(e) = std::fs::remove_file(&f)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                warn!(file = %f.display(), error = %e, "cannot remove a replaced database's leftover file");
            }
        }
    }

    /// Commit everything buffered in transactions of at most `batch_rows` records; while the store is
    /// failing with nothing buffered, commit a probe instead. Records leave the buffer only once their
    /// transaction committed. Then settle the fresh samples every `settle_every`, and when `now`.
    /// True when something was committed.
    async fn flush(&mut self, now: bool) -> anyhow::Result<bool> {
        let failing = self.health.failing().is_some();
        let settle_due = now || self.settled_at.elapsed() >= self.config.settle_every;
        if self.buf.is_empty() && !failing && !(settle_due && self.unsettled > 0) {
            return Ok(false);
        }
        let store = self.ensure_open().await?;
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => (store.options.connect().await)
                .with_context(|| format!("cannot open {}", store.path().display()))?,
        };
        let mut result = self.write_all(&store, &mut conn).await;
        if result.is_ok() && settle_due && self.unsettled > 0 {
            result = self.settle(&store, &mut conn).await;
        }
        match result {
            Ok(()) => {
                self.conn = Some(conn);
                Ok(true)
            }
            Err(e) => {
                // SQLite may have rolled the transaction back itself or not (a full disk, an I/O error):
                // roll back in any case and close the connection, so no transaction, lock or read
                // snapshot outlives the failure. The next try opens a fresh connection.
                let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
                let _ = conn.close().await;
                // Interned keys may come from the rolled-back transaction.
                self.wids.clear();
                self.custom_seen.clear();
                Err(e)
            }
        }
    }

    async fn write_all(&mut self, store: &Store, conn: &mut SqliteConnection) -> anyhow::Result<()> {
        if self.buf.is_empty() {
            // A probe: a real commit, so "writes again" is said only once writing works.
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await.context("cannot begin a transaction")?;
            sqlx::query(
                "INSERT INTO meta(key, value) VALUES ('last_write', ?)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )
            .bind(self.clock.now().as_millis())
            .execute(&mut *conn)
            .await
            .context("cannot write to the history store")?;
            sqlx::query("COMMIT").execute(&mut *conn).await.context("cannot commit to the history store")?;
            return Ok(());
        }
        while !self.buf.is_empty() {
            let n = self.buf.len().min(self.config.batch_rows.max(1));
            // A burst (a buffer written out after the disk came back) settles as it goes, so a settle
            // never moves more than a batch: the size the WAL's budget is set for.
            if self.unsettled > 0 && self.unsettled + n as u64 > self.config.batch_rows as u64 {
                self.settle(store, conn).await?;
            }
            self.write_batch(conn, n).await?;
            let (mut samples, mut events) = (0u64, 0u64);
            for r in self.buf.drain(..n) {
                match r {
                    Record::Sample(_) => samples += 1,
                    _ => events += 1,
                }
            }
            self.health.written_samples.fetch_add(samples, Ordering::Relaxed);
            self.unsettled += samples;
            self.health.written_events.fetch_add(events, Ordering::Relaxed);
            keep_under_cap(store).await;
        }
        Ok(())
    }

    /// Move the fresh samples into `samples`, in a transaction of its own; then, like every commit, keep
    /// the files under a size cap (a settle writes as much WAL as the batch it follows).
    async fn settle(&mut self, store: &Store, tx: &mut SqliteConnection) -> anyhow::Result<()> {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *tx).await.context("cannot begin a transaction")?;
        let moved = rows::settle(&mut *tx).await.context("cannot move fresh samples into the history")?;
        sqlx::query("COMMIT").execute(&mut *tx).await.context("cannot commit to the history store")?;
        tracing::trace!(moved, "fresh samples settled");
        self.unsettled = 0;
        self.settled_at = Instant::now();
        keep_under_cap(store).await;
        Ok(())
    }

    /// One transaction of the buffer's first `n` records. BEGIN and COMMIT are plain statements: sqlx's
    /// own transaction bookkeeping goes wrong when SQLite rolls back by itself (a full disk), and would
    /// leave a transaction open on the connection.
    async fn write_batch(&mut self, tx: &mut SqliteConnection, n: usize) -> anyhow::Result<()> {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *tx).await.context("cannot begin a transaction")?;
        // Split borrows: the buffer is read while the interning maps change.
        let buf = std::mem::take(&mut self.buf);
        let result = async {
            let mut samples: Vec<(i64, &SampleRecord)> = Vec::with_capacity(n);
            for r in buf.iter().take(n) {
                match r {
                    Record::Sample(s) => {
                        let wid = self.wid(&mut *tx, &s.worker.0, &s.pool, None, s.at.as_millis()).await?;
                        for name in s.metrics.custom.keys() {
                            if self.custom_seen.insert((wid, name.clone())) {
                                sqlx::query("INSERT OR IGNORE INTO custom_metrics(wid, name) VALUES (?, ?)")
                                    .bind(wid)
                                    .bind(name)
                                    .execute(&mut *tx)
                                    .await?;
                            }
                        }
                        samples.push((wid, s));
                    }
                    Record::Event(ev) => self.write_event(&mut *tx, ev).await?,
                    Record::Problem(p) => write_problem(&mut *tx, p).await?,
                }
            }
            // In key order: a sweep's samples are one per worker, so in arrival order every insert seeks
            // another leaf of the (wid, at) tree; sorted, consecutive rows land on the same page.
            samples.sort_unstable_by_key(|(wid, s)| (*wid, s.at, s.incarnation));
            insert_samples(&mut *tx, &samples).await?;
            anyhow::Ok(())
        }
        .await;
        self.buf = buf;
        result.context("cannot write to the history store")?;
        sqlx::query("COMMIT").execute(&mut *tx).await.context("cannot commit to the history store")?;
        Ok(())
    }
}

/// Under a size cap, after each commit: cut the WAL back once it outgrows its budget and, when the files
/// are over the cap, prune the oldest data before writing more (so the cap holds whatever the ingest
/// rate; the maintenance task alone would trail a fast writer).
async fn keep_under_cap(store: &Store) {
    let Some(cap) = store.cap() else { return };
    if store.wal_bytes() > crate::db::wal_budget(cap)
        && let Err(e) = store.checkpoint_now().await
    {
        tracing::debug!(error = %format!("{e:#}"), "WAL checkpoint failed");
    }
    if store.file_bytes() > cap {
        let mut r = tiers::MaintainReport::default();
        match tiers::enforce_size(store, cap, &mut r).await {
            Ok(()) => tracing::debug!(
                pruned = r.size_pruned,
                bytes = store.file_bytes(),
                "over the size cap: pruned"
            ),
            Err(e) => warn!(error = %format!("{e:#}"), "cannot prune the history down to its size cap"),
        }
    }
}

async fn maintain_loop(store: Store, clock: Arc<dyn Clock>, retention: Retention, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match tiers::maintain(&store, clock.now(), &retention).await {
            Ok(r) => tracing::debug!(?r, "history maintenance"),
            Err(e) => warn!(error = %format!("{e:#}"), "history maintenance failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_writes_are_retried_from_a_quarter_second_up_to_two() {
        let mut b = BACKOFF;
        assert_eq!(b.peek(), Duration::from_millis(250), "an unopenable store is tried again after 0.25 s");
        let got: Vec<u128> = (0..6).map(|_| b.next().as_millis()).collect();
        assert_eq!(got, [250, 500, 1000, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(250), "a commit starts over");
    }
}
