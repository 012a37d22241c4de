//! The batched writer: one task that owns every write of samples and events. The engine hands records to
//! a [`Recorder`] (a bounded channel; `record` never waits); the task commits them in transactions every
//! second or every `batch_rows` records. When the disk fails it keeps what it holds (up to a bound,
//! dropping the oldest samples first), retries with backoff and says so through [`StoreStatus`]; on
//! [`StoreHandle::close`] it flushes. It never blocks its callers and never decides anything. It opens the
//! database only while it holds the data directory's lock ([`crate::lock`]), and keeps it to its end.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use sqlx::{Sqlite, Transaction};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use tend_core::event::{Event, EventKind};
use tend_core::time::Clock;

use crate::db::{Retention, Store};
use crate::lock::DirLock;
use crate::record::{Problem, Record, SampleRecord};
use crate::tiers;

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

    /// Degraded while writes fail (with the error); the engine adds drops it has seen.
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
pub fn spawn(config: WriterConfig, clock: Arc<dyn Clock>) -> StoreHandle {
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
}

struct Step {
    closing: Option<oneshot::Sender<()>>,
    forced: bool,
}

const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Writer {
    async fn run(mut self) {
        let mut next_flush = Instant::now() + self.config.flush_every;
        let mut backoff = MIN_BACKOFF;
        let mut retry_at: Option<Instant> = None;
        let mut flush_waiters: Vec<oneshot::Sender<()>> = Vec::new();
        // Open at once, so a missing or read-only directory shows before the first write is due.
        if let Err(e) = self.ensure_open().await {
            let msg = format!("{e:#}");
            warn!(error = %msg, "history store unavailable; retrying");
            self.health.set_failing(Some(msg));
            retry_at = Some(Instant::now() + backoff);
        }
        loop {
            let wake = retry_at.unwrap_or(next_flush);
            let msg = tokio::select! {
                m = self.rx.recv() => m,
                _ = tokio::time::sleep_until(wake) => Some(Msg::Flush(oneshot::channel().0)),
            };
            let mut step = Step { closing: None, forced: false };
            self.accept(msg, &mut step, &mut flush_waiters);
            // Take whatever else is already waiting, without awaiting.
            while step.closing.is_none() && self.buf.len() < self.config.batch_rows * 2 {
                match self.rx.try_recv() {
                    Ok(m) => self.accept(Some(m), &mut step, &mut flush_waiters),
                    Err(_) => break,
                }
            }
            let Step { closing, forced } = step;
            let now = Instant::now();
            let due =
                forced || closing.is_some() || now >= next_flush || self.buf.len() >= self.config.batch_rows;
            let may_try = closing.is_some() || retry_at.is_none_or(|r| now >= r);
            if due && may_try {
                next_flush = now + self.config.flush_every;
                match self.flush().await {
                    Ok(()) => {
                        retry_at = None;
                        backoff = MIN_BACKOFF;
                        if self.health.failing().is_some() {
                            info!("history store writes again");
                            self.health.set_failing(None);
                        }
                    }
                    Err(e) => {
                        let msg = format!("{e:#}");
                        warn!(error = %msg, buffered = self.buf.len(), retry_in_ms = backoff.as_millis() as u64,
                            "history store write failed; keeping the buffer and retrying");
                        self.health.set_failing(Some(msg));
                        retry_at = Some(now + backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
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
                waiters.push(reply);
            }
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
            return Ok(s.clone());
        }
        if self.lock.is_none() {
            self.lock = Some(Arc::new(DirLock::acquire(&self.config.dir)?));
        }
        let store = Store::open_dir(&self.config.dir).await?;
        self.run = store.begin_run(self.clock.now()).await?;
        self.spawned = sqlx::query_scalar::<_, String>("SELECT id FROM workers WHERE source = 'spawned'")
            .fetch_all(&store.pool)
            .await?
            .into_iter()
            .collect();
        info!(path = %store.path().display(), run = self.run, "history store open");
        self.store = Some(store.clone());
        let _ = self.open_tx.send(Some(store.clone()));
        self.maintainer = Some(tokio::spawn(maintain_loop(
            store.clone(),
            self.clock.clone(),
            self.config.retention.clone(),
            self.config.maintain_every,
        )));
        Ok(store)
    }

    /// Commit everything buffered in transactions of at most `batch_rows` records. Records leave the
    /// buffer only once their transaction committed.
    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let store = self.ensure_open().await?;
        while !self.buf.is_empty() {
            let n = self.buf.len().min(self.config.batch_rows.max(1));
            let result = self.write_batch(&store, n).await;
            if let Err(e) = result {
                // Interned keys may come from the rolled-back transaction.
                self.wids.clear();
                self.custom_seen.clear();
                return Err(e);
            }
            let (mut samples, mut events) = (0u64, 0u64);
            for r in self.buf.drain(..n) {
                match r {
                    Record::Sample(_) => samples += 1,
                    _ => events += 1,
                }
            }
            self.health.written_samples.fetch_add(samples, Ordering::Relaxed);
            self.health.written_events.fetch_add(events, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn write_batch(&mut self, store: &Store, n: usize) -> anyhow::Result<()> {
        let mut tx = store.pool.begin().await.context("cannot begin a transaction")?;
        // Split borrows: the buffer is read while the interning maps change.
        let buf = std::mem::take(&mut self.buf);
        let result = async {
            let mut samples: Vec<(i64, &SampleRecord)> = Vec::with_capacity(n);
            let mut last_seen: HashMap<i64, i64> = HashMap::new();
            for r in buf.iter().take(n) {
                match r {
                    Record::Sample(s) => {
                        let wid = self.wid(&mut tx, &s.worker.0, &s.pool, None, s.at.as_millis()).await?;
                        for name in s.metrics.custom.keys() {
                            if self.custom_seen.insert((wid, name.clone())) {
                                sqlx::query("INSERT OR IGNORE INTO custom_metrics(wid, name) VALUES (?, ?)")
                                    .bind(wid)
                                    .bind(name)
                                    .execute(&mut *tx)
                                    .await?;
                            }
                        }
                        let e = last_seen.entry(wid).or_insert(s.at.as_millis());
                        *e = (*e).max(s.at.as_millis());
                        samples.push((wid, s));
                    }
                    Record::Event(ev) => self.write_event(&mut tx, ev).await?,
                    Record::Problem(p) => write_problem(&mut tx, p).await?,
                }
            }
            // In key order: a sweep's samples are one per worker, so in arrival order every insert seeks
            // another leaf of the (wid, at) tree; sorted, consecutive rows land on the same page.
            samples.sort_unstable_by_key(|(wid, s)| (*wid, s.at, s.incarnation));
            insert_samples(&mut tx, &samples).await?;
            if !last_seen.is_empty() {
                // One statement for every worker of the batch: a round trip per worker costs more than
                // the batch's inserts.
                let pairs: Vec<[i64; 2]> = last_seen.iter().map(|(w, t)| [*w, *t]).collect();
                sqlx::query(
                    "UPDATE workers SET last_seen = max(workers.last_seen, json_extract(j.value, '$[1]'))
                     FROM json_each(?) AS j WHERE workers.wid = json_extract(j.value, '$[0]')",
                )
                .bind(serde_json::to_string(&pairs)?)
                .execute(&mut *tx)
                .await?;
            }
            anyhow::Ok(())
        }
        .await;
        self.buf = buf;
        result.context("cannot write to the history store")?;
        tx.commit().await.context("cannot commit to the history store")?;
        Ok(())
    }

    /// The interned key of a worker, creating its row on first sight.
    async fn wid(
        &mut self,
        tx: &mut Transaction<'static, Sqlite>,
        id: &str,
        pool: &str,
        source: Option<&str>,
        at: i64,
    ) -> anyhow::Result<i64> {
        if source.is_none()
            && let Some(w) = self.wids.get(id)
        {
            return Ok(*w);
        }
        let wid: i64 = sqlx::query_scalar(
            "INSERT INTO workers(id, pool, source, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET pool = excluded.pool,
                source = coalesce(excluded.source, workers.source), removed_at = NULL,
                last_seen = max(workers.last_seen, excluded.last_seen)
             RETURNING wid",
        )
        .bind(id)
        .bind(pool)
        .bind(source)
        .bind(at)
        .bind(at)
        .fetch_one(&mut **tx)
        .await?;
        self.wids.insert(id.to_owned(), wid);
        Ok(wid)
    }

    async fn write_event(&mut self, tx: &mut Transaction<'static, Sqlite>, ev: &Event) -> anyhow::Result<()> {
        let at = ev.at.as_millis();
        let payload = serde_json::to_string(ev)?;
        let mut row = EventRow { kind: ev.kind.name(), ..Default::default() };
        match &ev.kind {
            EventKind::WorkerAdded { worker, pool, source } => {
                let src = match source {
                    tend_core::Source::Spawned => "spawned",
                    tend_core::Source::Attached => "attached",
                    tend_core::Source::Container => "container",
                    tend_core::Source::Reported => "reported",
                };
                if *source == tend_core::Source::Spawned {
                    self.spawned.insert(worker.0.clone());
                }
                self.wid(tx, &worker.0, pool, Some(src), at).await?;
                row.worker = Some(worker.0.clone());
                row.pool = Some(pool.clone());
            }
            EventKind::WorkerRemoved { worker, pool } => {
                sqlx::query("UPDATE workers SET removed_at = ? WHERE id = ?")
                    .bind(at)
                    .bind(&worker.0)
                    .execute(&mut **tx)
                    .await?;
                row.worker = Some(worker.0.clone());
                row.pool = Some(pool.clone());
            }
            EventKind::StateChanged { worker, pool, incarnation, process, from, to, cause } => {
                row.worker = Some(worker.0.clone());
                row.pool = Some(pool.clone());
                row.incarnation = Some(i64::from(*incarnation));
                row.pid = process.map(|p| i64::from(p.pid));
                row.from_state = from.map(|s| s.as_str());
                row.to_state = Some(to.as_str());
                row.cause = Some(cause.clone());
                if let Some(p) = process
                    && self.spawned.contains(&worker.0)
                {
                    if *to == tend_core::State::Cleaned {
                        sqlx::query(
                            "UPDATE processes SET ended_at = ? WHERE pid = ? AND start_ticks = ? AND ended_at IS NULL",
                        )
                        .bind(at)
                        .bind(i64::from(p.pid))
                        .bind(p.start_ticks as i64)
                        .execute(&mut **tx)
                        .await?;
                    } else if to.is_live() {
                        sqlx::query(
                            "INSERT OR IGNORE INTO processes(pid, start_ticks, run, worker, pool, incarnation, started_at)
                             VALUES (?, ?, ?, ?, ?, ?, ?)",
                        )
                        .bind(i64::from(p.pid))
                        .bind(p.start_ticks as i64)
                        .bind(self.run)
                        .bind(&worker.0)
                        .bind(pool)
                        .bind(i64::from(*incarnation))
                        .bind(at)
                        .execute(&mut **tx)
                        .await?;
                    }
                }
            }
            EventKind::RecycleStarted { worker, pool, reason, detail, old_process } => {
                row.worker = Some(worker.0.clone());
                row.pool = Some(pool.clone());
                row.pid = old_process.map(|p| i64::from(p.pid));
                row.cause = Some(format!("{}: {detail}", reason.as_str()));
            }
            EventKind::Recycled {
                worker,
                pool,
                reason,
                detail,
                old_process,
                new_process,
                uptime_secs,
                requests,
                last_metrics,
            } => {
                row.worker = Some(worker.0.clone());
                row.pool = Some(pool.clone());
                row.pid = new_process.map(|p| i64::from(p.pid));
                row.cause = Some(format!("{}: {detail}", reason.as_str()));
                let metrics = last_metrics.as_ref().map(serde_json::to_string).transpose()?;
                sqlx::query(
                    "INSERT INTO recycles(at, worker, pool, reason, detail, outcome, old_pid, new_pid,
                        uptime_secs, requests, last_metrics) VALUES (?, ?, ?, ?, ?, 'recycled', ?, ?, ?, ?, ?)",
                )
                .bind(at)
                .bind(&worker.0)
                .bind(pool)
                .bind(reason.as_str())
                .bind(detail)
                .bind(old_process.map(|p| i64::from(p.pid)))
                .bind(new_process.map(|p| i64::from(p.pid)))
                .bind(*uptime_secs)
                .bind(i64::try_from(*requests).unwrap_or(i64::MAX))
                .bind(metrics)
                .execute(&mut **tx)
                .await?;
            }
            EventKind::RecycleFailed { worker, pool, reason, error } => {
                row.worker = Some(worker.0.clone());
                row.pool = Some(pool.clone());
                row.cause = Some(format!("{}: {error}", reason.as_str()));
                sqlx::query(
                    "INSERT INTO recycles(at, worker, pool, reason, detail, outcome) VALUES (?, ?, ?, ?, ?, 'failed')",
                )
                .bind(at)
                .bind(&worker.0)
                .bind(pool)
                .bind(reason.as_str())
                .bind(error)
                .execute(&mut **tx)
                .await?;
                let p = Problem {
                    at: ev.at,
                    level: "error",
                    worker: Some(worker.0.clone()),
                    pool: Some(pool.clone()),
                    source: Some("recycle".into()),
                    message: format!("recycle ({}) failed: {error}", reason.as_str()),
                };
                write_problem(tx, &p).await?;
            }
            EventKind::StormTripped { worker, pool, restarts, window_secs } => {
                row.worker = Some(worker.0.clone());
                row.pool = Some(pool.clone());
                let p = Problem {
                    at: ev.at,
                    level: "error",
                    worker: Some(worker.0.clone()),
                    pool: Some(pool.clone()),
                    source: Some("fleet".into()),
                    message: format!("{restarts} restarts in {window_secs}s: held in FAILED"),
                };
                write_problem(tx, &p).await?;
            }
            EventKind::AlertChanged { alert } => {
                row.worker = Some(alert.subject.clone());
                row.pool = Some(alert.pool.clone());
                row.to_state = Some(alert_state(alert.state));
                row.cause = Some(alert.rule.clone());
                sqlx::query(
                    "INSERT INTO alerts(at, rule, subject, pool, severity, state, value, threshold, since, started,
                        message, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(at)
                .bind(&alert.rule)
                .bind(&alert.subject)
                .bind(&alert.pool)
                .bind(alert.severity.as_str())
                .bind(alert_state(alert.state))
                .bind(alert.value)
                .bind(alert.threshold)
                .bind(alert.since.as_millis())
                .bind(alert.started.map(|t| t.as_millis()))
                .bind(&alert.message)
                .bind(serde_json::to_string(alert)?)
                .execute(&mut **tx)
                .await?;
            }
            EventKind::SourceStatus { source, degraded, detail } => {
                row.cause = Some(format!("{source}: {detail}"));
                let p = Problem {
                    at: ev.at,
                    level: if *degraded { "warning" } else { "info" },
                    worker: None,
                    pool: None,
                    source: Some(source.clone()),
                    message: if *degraded { detail.clone() } else { format!("recovered: {detail}") },
                };
                write_problem(tx, &p).await?;
            }
            EventKind::ProcessEscaped { worker, pool, incarnation, process, detail } => {
                row.worker = Some(worker.0.clone());
                row.pool = pool.clone();
                row.incarnation = incarnation.map(i64::from);
                row.pid = Some(i64::from(process.pid));
                row.cause = Some(detail.clone());
                let p = Problem {
                    at: ev.at,
                    level: "error",
                    worker: row.worker.clone(),
                    pool: pool.clone(),
                    source: Some("processes".into()),
                    message: detail.clone(),
                };
                write_problem(tx, &p).await?;
            }
        }
        sqlx::query(
            "INSERT INTO events(run, seq, at, kind, worker, pool, incarnation, pid, from_state, to_state, cause,
                payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(self.run)
        .bind(i64::try_from(ev.seq).unwrap_or(i64::MAX))
        .bind(at)
        .bind(row.kind)
        .bind(row.worker)
        .bind(row.pool)
        .bind(row.incarnation)
        .bind(row.pid)
        .bind(row.from_state)
        .bind(row.to_state)
        .bind(row.cause)
        .bind(payload)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

pub(crate) fn alert_state(s: tend_core::rules::AlertState) -> &'static str {
    use tend_core::rules::AlertState::*;
    match s {
        Inactive => "inactive",
        Pending => "pending",
        Firing => "firing",
        Flapping => "flapping",
        Resolved => "resolved",
    }
}

#[derive(Default)]
struct EventRow {
    kind: &'static str,
    worker: Option<String>,
    pool: Option<String>,
    incarnation: Option<i64>,
    pid: Option<i64>,
    from_state: Option<&'static str>,
    to_state: Option<&'static str>,
    cause: Option<String>,
}

async fn write_problem(tx: &mut Transaction<'static, Sqlite>, p: &Problem) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO errors(at, level, worker, pool, source, message) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(p.at.as_millis())
        .bind(p.level)
        .bind(&p.worker)
        .bind(&p.pool)
        .bind(&p.source)
        .bind(&p.message)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Rows per multi-row INSERT, a power of two (17 columns each: well under SQLite's 32766 parameters).
const CHUNK: usize = 512;
const SAMPLE_COLS: usize = 17;

fn insert_sql(rows: usize) -> String {
    let one = format!("({})", vec!["?"; SAMPLE_COLS].join(","));
    format!(
        "INSERT OR IGNORE INTO samples(wid, at, incarnation, pid, state, cpu_percent, cpu_host_percent,
            memory_bytes, memory_percent, disk_read_bytes, disk_write_bytes, net_rx_bytes, net_tx_bytes,
            threads, fds, requests, custom) VALUES {}",
        vec![one; rows].join(",")
    )
}

/// The INSERT for `2^k` rows (k = 0..=9): a remainder goes in at most ten statements, and only ten
/// statements are ever prepared.
fn chunk_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| (0..=CHUNK.trailing_zeros()).map(|k| insert_sql(1 << k)).collect());
    &all[rows.trailing_zeros() as usize]
}

async fn insert_samples(
    tx: &mut Transaction<'static, Sqlite>,
    mut rows: &[(i64, &SampleRecord)],
) -> anyhow::Result<()> {
    while !rows.is_empty() {
        // The largest power of two that fits.
        let n = 1usize << (usize::BITS - 1 - rows.len().min(CHUNK).leading_zeros());
        let (now, rest) = rows.split_at(n);
        let mut q = sqlx::query(chunk_sql(n));
        for (wid, s) in now {
            q = bind_sample(q, *wid, s);
        }
        q.execute(&mut **tx).await?;
        rows = rest;
    }
    Ok(())
}

type Q<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;

fn bind_sample<'q>(q: Q<'q>, wid: i64, s: &SampleRecord) -> Q<'q> {
    let m = &s.metrics;
    let u = |v: Option<u64>| v.map(|x| i64::try_from(x).unwrap_or(i64::MAX));
    let custom = if m.custom.is_empty() { None } else { serde_json::to_string(&m.custom).ok() };
    q.bind(wid)
        .bind(s.at.as_millis())
        .bind(i64::from(s.incarnation))
        .bind(s.process.map(|p| i64::from(p.pid)))
        .bind(s.state)
        .bind(m.cpu_percent)
        .bind(m.cpu_host_percent)
        .bind(u(m.memory_bytes))
        .bind(m.memory_percent)
        .bind(u(m.disk_read_bytes))
        .bind(u(m.disk_write_bytes))
        .bind(u(m.net_rx_bytes))
        .bind(u(m.net_tx_bytes))
        .bind(m.threads.map(i64::from))
        .bind(m.fds.map(i64::from))
        .bind(u(s.requests))
        .bind(custom)
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
