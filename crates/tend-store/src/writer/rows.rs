//! The rows the writer commits: each event with the tables it feeds (workers, processes, recycles,
//! alerts, errors), and samples in multi-row INSERTs. Called inside the writer's open transaction; it
//! never begins, commits or rolls back.

use sqlx::{Sqlite, SqliteConnection};

use tend_core::event::{Event, EventKind};

use super::Writer;
use crate::record::{Problem, SampleRecord};

impl Writer {
    /// The interned key of a worker, creating its row on first sight.
    pub(super) async fn wid(
        &mut self,
        tx: &mut SqliteConnection,
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
        .fetch_one(&mut *tx)
        .await?;
        self.wids.insert(id.to_owned(), wid);
        Ok(wid)
    }

    pub(super) async fn write_event(&mut self, tx: &mut SqliteConnection, ev: &Event) -> anyhow::Result<()> {
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
                    .execute(&mut *tx)
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
                        .execute(&mut *tx)
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
                        .execute(&mut *tx)
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
                .execute(&mut *tx)
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
                .execute(&mut *tx)
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
                .execute(&mut *tx)
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
            EventKind::OperatorAction { by, action, target, worker, pool, detail } => {
                row.worker = worker.as_ref().map(|w| w.0.clone());
                row.pool = pool.clone();
                row.cause = Some(audit_line(by, action, target, detail));
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
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

fn alert_state(s: tend_core::rules::AlertState) -> &'static str {
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

pub(super) async fn write_problem(tx: &mut SqliteConnection, p: &Problem) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO errors(at, level, worker, pool, source, message) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(p.at.as_millis())
        .bind(p.level)
        .bind(&p.worker)
        .bind(&p.pool)
        .bind(&p.source)
        .bind(&p.message)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Rows per multi-row INSERT, a power of two (17 columns each: well under SQLite's 32766 parameters).
const CHUNK: usize = 512;

/// A raw sample's columns, in the order of both `samples` and `samples_fresh`.
const SAMPLE_COLUMNS: &str = "wid, at, incarnation, pid, state, cpu_percent, cpu_host_percent, memory_bytes,
    memory_percent, disk_read_bytes, disk_write_bytes, net_rx_bytes, net_tx_bytes, threads, fds, requests, custom";

/// New samples go to `samples_fresh` (appended in time order); [`settle`] moves them into `samples`.
fn insert_sql(rows: usize) -> String {
    let one = format!("({})", vec!["?"; SAMPLE_COLUMNS.split(',').count()].join(","));
    format!("INSERT OR IGNORE INTO samples_fresh({SAMPLE_COLUMNS}) VALUES {}", vec![one; rows].join(","))
}

/// Move every fresh sample into `samples`, sorted by its key so each worker's rows land on one page, in
/// the caller's transaction, and bring each worker's `last_seen` up to its newest sample (once a settle,
/// not once a commit). Returns the rows moved.
pub(super) async fn settle(tx: &mut SqliteConnection) -> anyhow::Result<u64> {
    sqlx::query(
        "UPDATE workers SET last_seen = max(workers.last_seen, f.newest)
         FROM (SELECT wid, max(at) AS newest FROM samples_fresh GROUP BY wid) AS f WHERE workers.wid = f.wid",
    )
    .execute(&mut *tx)
    .await?;
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "INSERT OR IGNORE INTO samples({SAMPLE_COLUMNS}) SELECT {SAMPLE_COLUMNS} FROM samples_fresh
             ORDER BY wid, at, incarnation"
        )
    });
    sqlx::query(sql.as_str()).execute(&mut *tx).await?;
    Ok(sqlx::query("DELETE FROM samples_fresh").execute(&mut *tx).await?.rows_affected())
}

/// The INSERT for `2^k` rows (k = 0..=9): a remainder goes in at most ten statements, and only ten
/// statements are ever prepared.
fn chunk_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| (0..=CHUNK.trailing_zeros()).map(|k| insert_sql(1 << k)).collect());
    &all[rows.trailing_zeros() as usize]
}

pub(super) async fn insert_samples(
    tx: &mut SqliteConnection,
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
        q.execute(&mut *tx).await?;
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

/// How an operator's action reads in the events table: `ops-laptop: recycle api-0 (detail)`.
fn audit_line(by: &str, action: &str, target: &str, detail: &str) -> String {
    let mut line = format!("{by}: {action} {target}");
    if !detail.is_empty() {
        line.push_str(&format!(" ({detail})"));
    }
    line
}
