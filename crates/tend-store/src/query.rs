//! Reading the past: a worker's metric history from the tier that fits the range and step, its lifecycle
//! events, alert history, recycles, and what a previous run left behind (open alerts, spawned processes).
//! Read-only, except [`Store::mark_process_ended`]; it never writes samples or events.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use tend_core::model::{BUILTIN_METRICS, ProcessId};
use tend_core::rules::Alert;
use tend_core::time::Timestamp;

use crate::METRICS;
use crate::db::{Retention, Store};
use crate::tiers::{HOUR_MS, MINUTE_MS};

/// Points a history answer aims at when no step is given.
pub const TARGET_POINTS: i64 = 500;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Raw,
    Minute,
    Hour,
}

impl Tier {
    pub fn resolution_ms(self) -> i64 {
        match self {
            Tier::Raw => 1,
            Tier::Minute => MINUTE_MS,
            Tier::Hour => HOUR_MS,
        }
    }
}

/// The tier for a range and step: raw while the range starts inside raw retention and the step is under a
/// minute; 1-minute rollups while it starts inside their retention and the step is under an hour; else
/// 1-hour rollups.
pub fn pick_tier(from: Timestamp, step_ms: i64, now: Timestamp, ret: &Retention) -> Tier {
    let within = |d: Duration| from.as_millis() >= now.as_millis().saturating_sub(ms(d));
    if step_ms < MINUTE_MS && within(ret.raw) {
        Tier::Raw
    } else if step_ms < HOUR_MS && within(ret.minute) {
        Tier::Minute
    } else {
        Tier::Hour
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// Start of the bucket, epoch ms.
    pub t: i64,
    pub min: Option<f64>,
    pub avg: Option<f64>,
    pub max: Option<f64>,
    /// Samples behind the point.
    pub n: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct History {
    pub worker: String,
    pub pool: String,
    pub metric: String,
    pub tier: Tier,
    pub step_ms: i64,
    pub from: Timestamp,
    pub to: Timestamp,
    pub points: Vec<Point>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkerRow {
    pub id: String,
    pub pool: String,
    pub source: Option<String>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub removed_at: Option<Timestamp>,
}

/// A bad argument to a query, naming it (the API answers 400 with this).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("parameter {param:?}: {message}")]
    BadParam { param: &'static str, message: String },
    #[error("no worker with id {0:?} in the history")]
    UnknownWorker(String),
    #[error(transparent)]
    Db(#[from] anyhow::Error),
}

impl From<sqlx::Error> for QueryError {
    fn from(e: sqlx::Error) -> Self {
        QueryError::Db(anyhow::Error::new(e).context("history query failed"))
    }
}

/// The SQL expression for a metric over raw samples, or why the name is refused.
fn raw_expr(metric: &str) -> Result<String, String> {
    if metric == "memory_mb" {
        return Ok("memory_bytes / 1048576.0".into());
    }
    if METRICS.contains(&metric) {
        // Integer columns too: the answer's min/avg/max are floats.
        return Ok(format!("CAST({metric} AS REAL)"));
    }
    if is_custom_name(metric) {
        return Ok(format!("json_extract(custom, '$.\"{metric}\"')"));
    }
    Err(format!("bad metric name {metric:?}"))
}

pub fn is_custom_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
        && !BUILTIN_METRICS.contains(&s)
}

/// (min, avg, max) expressions over a rollup table, and the scale applied.
fn rollup_exprs(metric: &str) -> Option<[String; 3]> {
    let (col, scale) = match metric {
        "memory_mb" => ("memory_bytes", " / 1048576.0"),
        m if METRICS.contains(&m) => (m, ""),
        _ => return None,
    };
    Some([
        format!("min({col}_min){scale}"),
        format!("sum({col}_avg * n) / sum(CASE WHEN {col}_avg IS NOT NULL THEN n END){scale}"),
        format!("max({col}_max){scale}"),
    ])
}

impl Store {
    pub async fn worker_row(&self, id: &str) -> anyhow::Result<Option<WorkerRow>> {
        let row: Option<WorkerTuple> = sqlx::query_as(
            "SELECT id, pool, source, first_seen, last_seen, removed_at FROM workers WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context("cannot read workers")?;
        Ok(row.map(|(id, pool, source, f, l, r)| WorkerRow {
            id,
            pool,
            source,
            first_seen: Timestamp(f),
            last_seen: Timestamp(l),
            removed_at: r.map(Timestamp),
        }))
    }

    /// Every worker the history knows, optionally of one pool, ordered by id.
    pub async fn worker_rows(&self, pool: Option<&str>) -> anyhow::Result<Vec<WorkerRow>> {
        let rows: Vec<WorkerTuple> = sqlx::query_as(
            "SELECT id, pool, source, first_seen, last_seen, removed_at FROM workers
             WHERE ?1 IS NULL OR pool = ?1 ORDER BY id",
        )
        .bind(pool)
        .fetch_all(&self.pool)
        .await
        .context("cannot read workers")?;
        Ok(rows
            .into_iter()
            .map(|(id, pool, source, f, l, r)| WorkerRow {
                id,
                pool,
                source,
                first_seen: Timestamp(f),
                last_seen: Timestamp(l),
                removed_at: r.map(Timestamp),
            })
            .collect())
    }

    // The range, resolution and "now" are all independent inputs of one question; a struct for them
    // would only be unpacked again here.
    #[allow(clippy::too_many_arguments)]
    /// A worker's metric over `[from, to)`, from the tier that fits (see [`pick_tier`]). `step_ms` None:
    /// about [`TARGET_POINTS`] points.
    pub async fn history(
        &self,
        worker: &str,
        metric: &str,
        from: Timestamp,
        to: Timestamp,
        step_ms: Option<i64>,
        now: Timestamp,
        ret: &Retention,
    ) -> Result<History, QueryError> {
        if to <= from {
            return Err(QueryError::BadParam { param: "to", message: "must be after `from`".into() });
        }
        let raw = raw_expr(metric).map_err(|message| QueryError::BadParam { param: "metric", message })?;
        let wrow = self.worker_row(worker).await?.ok_or_else(|| QueryError::UnknownWorker(worker.into()))?;
        let span = to.as_millis() - from.as_millis();
        let step = match step_ms {
            Some(s) if s <= 0 => {
                return Err(QueryError::BadParam { param: "step", message: "must be positive".into() });
            }
            Some(s) => s,
            None => (span / TARGET_POINTS).max(1000),
        };
        let custom = !METRICS.contains(&metric) && metric != "memory_mb";
        let tier = pick_tier(from, step, now, ret);
        let res = tier.resolution_ms();
        let step = ((step + res - 1) / res).max(1) * res;
        let wid: i64 = sqlx::query_scalar("SELECT wid FROM workers WHERE id = ?")
            .bind(worker)
            .fetch_one(&self.pool)
            .await?;
        let sql = match tier {
            Tier::Raw => format!(
                "SELECT (at / ?1) * ?1 AS b, min(x), avg(x), max(x), count(x) FROM
                   (SELECT at, {raw} AS x FROM samples_all WHERE wid = ?2 AND at >= ?3 AND at < ?4)
                 WHERE x IS NOT NULL GROUP BY b ORDER BY b"
            ),
            Tier::Minute | Tier::Hour if custom => {
                let table = if tier == Tier::Minute { "custom_rollup_minute" } else { "custom_rollup_hour" };
                format!(
                    "SELECT (bucket / ?1) * ?1 AS b, min(min), sum(avg * n) / sum(n), max(max), sum(n) FROM {table}
                     WHERE wid = ?2 AND bucket >= ?3 AND bucket < ?4 AND name = ?5 GROUP BY b ORDER BY b"
                )
            }
            Tier::Minute | Tier::Hour => {
                let table = if tier == Tier::Minute { "rollup_minute" } else { "rollup_hour" };
                let [mn, avg, mx] = rollup_exprs(metric).ok_or_else(|| QueryError::BadParam {
                    param: "metric",
                    message: "not rolled up".into(),
                })?;
                format!(
                    "SELECT (bucket / ?1) * ?1 AS b, {mn}, {avg}, {mx}, sum(n) FROM {table}
                     WHERE wid = ?2 AND bucket >= ?3 AND bucket < ?4 GROUP BY b ORDER BY b"
                )
            }
        };
        let lo = from.as_millis().div_euclid(res) * res;
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(step)
            .bind(wid)
            .bind(lo)
            .bind(to.as_millis());
        if custom && tier != Tier::Raw {
            q = q.bind(metric);
        }
        let rows: Vec<PointTuple> = q.fetch_all(&self.pool).await?;
        Ok(History {
            worker: wrow.id,
            pool: wrow.pool,
            metric: metric.to_owned(),
            tier,
            step_ms: step,
            from,
            to,
            points: rows.into_iter().map(|(t, min, avg, max, n)| Point { t, min, avg, max, n }).collect(),
        })
    }

    /// Stored events (the JSON each sink saw), oldest first.
    pub async fn events(&self, f: &Filter) -> anyhow::Result<Vec<serde_json::Value>> {
        let rows: Vec<(String,)> = self
            .filtered(
                "SELECT payload FROM events WHERE (?1 IS NULL OR worker = ?1) AND (?2 IS NULL OR pool = ?2)
                 AND at >= ?3 AND at < ?4 ORDER BY at, id LIMIT ?5",
                f,
            )
            .await
            .context("cannot read events")?;
        Ok(rows.into_iter().filter_map(|(p,)| serde_json::from_str(&p).ok()).collect())
    }

    /// Stored errors and warnings (failed recycles, storms, degraded sources, reports, the store's own),
    /// oldest first, as `{at, level, worker, pool, source, message}`.
    pub async fn errors(&self, f: &Filter) -> anyhow::Result<Vec<serde_json::Value>> {
        type Row = (i64, String, Option<String>, Option<String>, Option<String>, String);
        let rows: Vec<Row> = self
            .filtered(
                "SELECT at, level, worker, pool, source, message FROM errors WHERE (?1 IS NULL OR worker = ?1)
                 AND (?2 IS NULL OR pool = ?2) AND at >= ?3 AND at < ?4 ORDER BY at, id LIMIT ?5",
                f,
            )
            .await
            .context("cannot read errors")?;
        Ok(rows
            .into_iter()
            .map(|(at, level, worker, pool, source, message)| {
                serde_json::json!({"at": at, "level": level, "worker": worker, "pool": pool, "source": source,
                    "message": message})
            })
            .collect())
    }

    /// Rows of `sql`, whose parameters are the filter's: ?1 worker, ?2 pool, ?3 from, ?4 to, ?5 limit.
    async fn filtered<T>(&self, sql: &'static str, f: &Filter) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
    {
        sqlx::query_as(sql)
            .bind(&f.worker)
            .bind(&f.pool)
            .bind(f.from.as_millis())
            .bind(f.to.as_millis())
            .bind(f.limit)
            .fetch_all(&self.pool)
            .await
    }

    /// Alert state changes, oldest first. `worker` matches the alert's subject.
    pub async fn alert_history(&self, f: &Filter) -> anyhow::Result<Vec<AlertRow>> {
        let rows: Vec<AlertTuple> = self
            .filtered(
                "SELECT at, rule, subject, pool, severity, state, value, threshold, since, started, message
                 FROM alerts WHERE (?1 IS NULL OR subject = ?1) AND (?2 IS NULL OR pool = ?2)
                 AND at >= ?3 AND at < ?4 ORDER BY at, id LIMIT ?5",
                f,
            )
            .await
            .context("cannot read alerts")?;
        Ok(rows.into_iter().map(AlertRow::from).collect())
    }

    /// Recycles (completed and failed), oldest first.
    pub async fn recycles(&self, f: &Filter) -> anyhow::Result<Vec<RecycleRow>> {
        let rows: Vec<RecycleTuple> = self
            .filtered(
                "SELECT at, worker, pool, reason, detail, outcome, old_pid, new_pid, uptime_secs, requests,
                 last_metrics FROM recycles WHERE (?1 IS NULL OR worker = ?1) AND (?2 IS NULL OR pool = ?2)
                 AND at >= ?3 AND at < ?4 ORDER BY at, id LIMIT ?5",
                f,
            )
            .await
            .context("cannot read recycles")?;
        Ok(rows.into_iter().map(RecycleRow::from).collect())
    }

    /// Alerts whose last recorded state is pending, firing or flapping: what to restore at start.
    pub async fn open_alerts(&self) -> anyhow::Result<Vec<Alert>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT payload FROM alerts a WHERE id = (SELECT max(id) FROM alerts b
                WHERE b.rule = a.rule AND b.subject = a.subject)
             AND state IN ('pending', 'firing', 'flapping') ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .context("cannot read open alerts")?;
        Ok(rows.into_iter().filter_map(|(p,)| serde_json::from_str(&p).ok()).collect())
    }

    /// Spawned processes of earlier runs that were never seen to end: candidates for cleanup.
    pub async fn unfinished_processes(&self, before_run: i64) -> anyhow::Result<Vec<LeftProcess>> {
        let rows: Vec<(i64, i64, String, String, i64)> = sqlx::query_as(
            "SELECT pid, start_ticks, worker, pool, incarnation FROM processes
             WHERE ended_at IS NULL AND run < ? ORDER BY started_at",
        )
        .bind(before_run)
        .fetch_all(&self.pool)
        .await
        .context("cannot read spawned processes")?;
        Ok(rows
            .into_iter()
            .map(|(pid, st, worker, pool, inc)| LeftProcess {
                process: ProcessId { pid: pid as u32, start_ticks: st as u64 },
                worker,
                pool,
                incarnation: inc as u32,
            })
            .collect())
    }

    /// Record that a process is gone (cleaned up by a later run).
    pub async fn mark_process_ended(&self, p: ProcessId, at: Timestamp) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE processes SET ended_at = ? WHERE pid = ? AND start_ticks = ? AND ended_at IS NULL",
        )
        .bind(at.as_millis())
        .bind(i64::from(p.pid))
        .bind(p.start_ticks as i64)
        .execute(&self.pool)
        .await
        .context("cannot update processes")?;
        Ok(())
    }

    /// The id of the newest run.
    pub async fn current_run(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar::<_, Option<i64>>("SELECT max(id) FROM runs")
            .fetch_one(&self.pool)
            .await?
            .unwrap_or(0))
    }

    /// Raw sample count (all workers), for tests and diagnostics.
    pub async fn sample_count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM samples_all").fetch_one(&self.pool).await?)
    }

    /// Rows in a tier (`raw`, `minute`, `hour`) with their time span, for tests and diagnostics.
    pub async fn tier_span(&self, tier: Tier) -> anyhow::Result<(i64, Option<i64>, Option<i64>)> {
        let (table, col) = match tier {
            Tier::Raw => ("samples_all", "at"),
            Tier::Minute => ("rollup_minute", "bucket"),
            Tier::Hour => ("rollup_hour", "bucket"),
        };
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), min({col}), max({col}) FROM {table}"
        )))
        .fetch_one(&self.pool)
        .await?)
    }
}

/// A spawned process an earlier run left without seeing it end.
#[derive(Clone, Debug, PartialEq)]
pub struct LeftProcess {
    pub process: ProcessId,
    pub worker: String,
    pub pool: String,
    pub incarnation: u32,
}

/// Which rows of events, alerts and recycles.
#[derive(Clone, Debug)]
pub struct Filter {
    pub worker: Option<String>,
    pub pool: Option<String>,
    pub from: Timestamp,
    pub to: Timestamp,
    pub limit: i64,
}

impl Default for Filter {
    fn default() -> Self {
        Filter { worker: None, pool: None, from: Timestamp(i64::MIN), to: Timestamp(i64::MAX), limit: 10_000 }
    }
}

type WorkerTuple = (String, String, Option<String>, i64, i64, Option<i64>);
type PointTuple = (i64, Option<f64>, Option<f64>, Option<f64>, i64);

type AlertTuple =
    (i64, String, String, String, String, String, Option<f64>, Option<f64>, i64, Option<i64>, String);

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertRow {
    pub at: Timestamp,
    pub rule: String,
    pub subject: String,
    pub pool: String,
    pub severity: String,
    pub state: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub since: Timestamp,
    pub started: Option<Timestamp>,
    pub message: String,
}

impl From<AlertTuple> for AlertRow {
    fn from(t: AlertTuple) -> Self {
        AlertRow {
            at: Timestamp(t.0),
            rule: t.1,
            subject: t.2,
            pool: t.3,
            severity: t.4,
            state: t.5,
            value: t.6,
            threshold: t.7,
            since: Timestamp(t.8),
            started: t.9.map(Timestamp),
            message: t.10,
        }
    }
}

type RecycleTuple = (
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<f64>,
    Option<i64>,
    Option<String>,
);

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecycleRow {
    pub at: Timestamp,
    pub worker: String,
    pub pool: String,
    pub reason: String,
    pub detail: String,
    /// `recycled` or `failed`.
    pub outcome: String,
    pub old_pid: Option<i64>,
    pub new_pid: Option<i64>,
    pub uptime_secs: Option<f64>,
    pub requests: Option<i64>,
    pub last_metrics: Option<serde_json::Value>,
}

impl From<RecycleTuple> for RecycleRow {
    fn from(t: RecycleTuple) -> Self {
        RecycleRow {
            at: Timestamp(t.0),
            worker: t.1,
            pool: t.2,
            reason: t.3,
            detail: t.4,
            outcome: t.5,
            old_pid: t.6,
            new_pid: t.7,
            uptime_secs: t.8,
            requests: t.9,
            last_metrics: t.10.and_then(|s| serde_json::from_str(&s).ok()),
        }
    }
}
