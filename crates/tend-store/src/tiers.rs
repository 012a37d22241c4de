//! The three tiers and their retention: raw samples roll up into 1-minute buckets, those into 1-hour
//! buckets (min/avg/max per built-in metric, and per custom metric name in `custom_rollup_*`); each tier is pruned by age, and the oldest data goes first
//! when the database is over its size cap. Work is done per worker in short transactions so the writer
//! is never held up for long. It never reads the clock: `now` is an argument.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use tend_core::time::Timestamp;

use crate::METRICS;
use crate::db::{Retention, Store};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
/// Samples this recent are not rolled up yet: the writer may still be committing them.
const LAG_MS: i64 = 5_000;

/// What one maintenance pass did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MaintainReport {
    pub minute_buckets: u64,
    pub hour_buckets: u64,
    pub raw_pruned: u64,
    pub minute_pruned: u64,
    pub hour_pruned: u64,
    pub size_pruned: u64,
    pub used_bytes: u64,
}

/// Roll up what is complete, prune by age, then enforce the size cap.
pub async fn maintain(
    store: &Store,
    now: Timestamp,
    retention: &Retention,
) -> anyhow::Result<MaintainReport> {
    let mut r = MaintainReport::default();
    let minute_done = roll_minutes(store, now, &mut r).await.context("1-minute rollup")?;
    let hour_done = roll_hours(store, minute_done, &mut r).await.context("1-hour rollup")?;
    prune_age(store, now, retention, minute_done, hour_done, &mut r).await.context("pruning by age")?;
    if let Some(cap) = retention.max_size_bytes {
        enforce_size(store, cap, &mut r).await.context("pruning by size")?;
    }
    r.used_bytes = store.used_bytes().await?;
    Ok(r)
}

async fn meta(store: &Store, key: &str) -> anyhow::Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
        .bind(key)
        .fetch_optional(&store.pool)
        .await?)
}

async fn set_meta(store: &Store, key: &str, v: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(v)
    .execute(&store.pool)
    .await?;
    Ok(())
}

async fn wids(store: &Store, since: i64) -> anyhow::Result<Vec<i64>> {
    Ok(sqlx::query_scalar("SELECT wid FROM workers WHERE last_seen >= ? ORDER BY wid")
        .bind(since)
        .fetch_all(&store.pool)
        .await?)
}

async fn all_wids(store: &Store) -> anyhow::Result<Vec<i64>> {
    wids(store, i64::MIN).await
}

fn floor(t: i64, unit: i64) -> i64 {
    t.div_euclid(unit) * unit
}

fn minute_select() -> String {
    let cols: Vec<String> = METRICS.iter().map(|m| format!("min({m}), avg({m}), max({m})")).collect();
    format!(
        "INSERT OR REPLACE INTO rollup_minute SELECT wid, (at / {MINUTE_MS}) * {MINUTE_MS} AS b, count(*), {}
         FROM samples_all WHERE wid = ? AND at >= ? AND at < ? GROUP BY b",
        cols.join(", ")
    )
}

fn hour_select() -> String {
    let cols: Vec<String> = METRICS
        .iter()
        .map(|m| {
            format!(
                "min({m}_min), sum({m}_avg * n) / sum(CASE WHEN {m}_avg IS NOT NULL THEN n END), max({m}_max)"
            )
        })
        .collect();
    format!(
        "INSERT OR REPLACE INTO rollup_hour SELECT wid, (bucket / {HOUR_MS}) * {HOUR_MS} AS b, sum(n), {}
         FROM rollup_minute WHERE wid = ? AND bucket >= ? AND bucket < ? GROUP BY b",
        cols.join(", ")
    )
}

/// Custom metrics: one row per (worker, name, minute), from the JSON of each sample (non-numbers, e.g.
/// a non-finite value stored as null, are skipped).
const CUSTOM_MINUTE: &str = "INSERT OR REPLACE INTO custom_rollup_minute
     SELECT s.wid, j.key, (s.at / 60000) * 60000 AS b, count(*), min(j.value), avg(j.value), max(j.value)
     FROM samples_all AS s, json_each(s.custom) AS j
     WHERE s.wid = ? AND s.at >= ? AND s.at < ? AND s.custom IS NOT NULL AND j.type IN ('integer', 'real')
     GROUP BY j.key, b";

const CUSTOM_HOUR: &str = "INSERT OR REPLACE INTO custom_rollup_hour
     SELECT wid, name, (bucket / 3600000) * 3600000 AS b, sum(n), min(min), sum(avg * n) / sum(n), max(max)
     FROM custom_rollup_minute WHERE wid = ? AND bucket >= ? AND bucket < ? GROUP BY name, b";

/// Workers that ever had a custom metric (the rest have nothing for the custom rollups).
async fn custom_wids(store: &Store) -> anyhow::Result<std::collections::HashSet<i64>> {
    Ok(sqlx::query_scalar("SELECT DISTINCT wid FROM custom_metrics")
        .fetch_all(&store.pool)
        .await?
        .into_iter()
        .collect())
}

/// Roll `sql` (built-in) and `custom_sql` over `[start, end)` for every worker seen since `start`.
async fn roll(
    store: &Store,
    sql: &str,
    custom_sql: &'static str,
    start: i64,
    end: i64,
) -> anyhow::Result<u64> {
    let custom = custom_wids(store).await?;
    let mut buckets = 0;
    for wid in wids(store, start).await? {
        let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .bind(wid)
            .bind(start)
            .bind(end)
            .execute(&store.pool)
            .await?;
        buckets += done.rows_affected();
        if custom.contains(&wid) {
            sqlx::query(custom_sql).bind(wid).bind(start).bind(end).execute(&store.pool).await?;
        }
    }
    Ok(buckets)
}

/// Roll raw samples into complete minutes after the watermark. Returns the new watermark (exclusive end).
async fn roll_minutes(store: &Store, now: Timestamp, r: &mut MaintainReport) -> anyhow::Result<Option<i64>> {
    let end = floor(now.as_millis() - LAG_MS, MINUTE_MS);
    let start = match meta(store, "minute_done").await? {
        Some(s) => s,
        None => {
            let mut oldest: Option<i64> = None;
            for wid in all_wids(store).await? {
                let t: Option<i64> = sqlx::query_scalar("SELECT min(at) FROM samples_all WHERE wid = ?")
                    .bind(wid)
                    .fetch_one(&store.pool)
                    .await?;
                oldest = match (oldest, t) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            match oldest {
                Some(t) => floor(t, MINUTE_MS),
                None => return Ok(None),
            }
        }
    };
    if end <= start {
        return Ok(Some(start));
    }
    r.minute_buckets += roll(store, &minute_select(), CUSTOM_MINUTE, start, end).await?;
    set_meta(store, "minute_done", end).await?;
    Ok(Some(end))
}

/// Roll 1-minute buckets into complete hours (hours whose minutes are all rolled up).
async fn roll_hours(
    store: &Store,
    minute_done: Option<i64>,
    r: &mut MaintainReport,
) -> anyhow::Result<Option<i64>> {
    let Some(minute_done) = minute_done else { return Ok(None) };
    let end = floor(minute_done, HOUR_MS);
    let start = match meta(store, "hour_done").await? {
        Some(s) => s,
        None => {
            let t: Option<i64> =
                sqlx::query_scalar("SELECT min(bucket) FROM rollup_minute").fetch_one(&store.pool).await?;
            match t {
                Some(t) => floor(t, HOUR_MS),
                None => return Ok(None),
            }
        }
    };
    if end <= start {
        return Ok(Some(start));
    }
    r.hour_buckets += roll(store, &hour_select(), CUSTOM_HOUR, start, end).await?;
    set_meta(store, "hour_done", end).await?;
    Ok(Some(end))
}

/// A tier's tables (the built-in one first: its span decides what a size cut drops) and time column.
struct TierTables {
    tables: &'static [&'static str],
    time: &'static str,
}

/// Oldest first: the order in which the size cap drops data.
const TIERS: [TierTables; 3] = [
    // The fresh samples are seconds old, but a burst may hold older ones: age pruning covers them.
    TierTables { tables: &["samples", "samples_fresh"], time: "at" },
    TierTables { tables: &["rollup_minute", "custom_rollup_minute"], time: "bucket" },
    TierTables { tables: &["rollup_hour", "custom_rollup_hour"], time: "bucket" },
];

/// Delete one worker's rows of a tier older than `cut`; the count is of the built-in table's rows.
async fn delete_before(store: &Store, tier: &TierTables, wid: &i64, cut: i64) -> anyhow::Result<u64> {
    let mut first = None;
    for table in tier.tables {
        let sql = format!("DELETE FROM {table} WHERE wid = ? AND {} < ?", tier.time);
        let n = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(wid).bind(cut).execute(&store.pool).await?;
        first.get_or_insert(n.rows_affected());
    }
    Ok(first.unwrap_or(0))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

async fn prune_age(
    store: &Store,
    now: Timestamp,
    ret: &Retention,
    minute_done: Option<i64>,
    hour_done: Option<i64>,
    r: &mut MaintainReport,
) -> anyhow::Result<()> {
    let now = now.as_millis();
    // Never drop what has not been rolled into the next tier yet.
    let raw_cut = (now.saturating_sub(ms(ret.raw))).min(minute_done.unwrap_or(i64::MIN));
    let minute_cut = (now.saturating_sub(ms(ret.minute))).min(hour_done.unwrap_or(i64::MIN));
    let hour_cut = now.saturating_sub(ms(ret.hour));
    for wid in all_wids(store).await? {
        let [raw, minute, hour] = &TIERS;
        r.raw_pruned += delete_before(store, raw, &wid, raw_cut).await?;
        r.minute_pruned += delete_before(store, minute, &wid, minute_cut).await?;
        r.hour_pruned += delete_before(store, hour, &wid, hour_cut).await?;
    }
    // Events, alerts, recycles and errors live as long as the longest tier.
    for table in ["events", "alerts", "recycles", "errors"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE at < ?")))
            .bind(hour_cut)
            .execute(&store.pool)
            .await?;
    }
    sqlx::query("DELETE FROM processes WHERE ended_at IS NOT NULL AND ended_at < ?")
        .bind(hour_cut)
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// Over the cap: drop the oldest quarter of the oldest tier that still has data (raw first: it is
/// already rolled up), until the data fits the cap less the WAL's budget and the shared-memory index's
/// room (the cap counts all three files), or nothing is left to drop.
pub(crate) async fn enforce_size(store: &Store, cap: u64, r: &mut MaintainReport) -> anyhow::Result<()> {
    let target = cap.saturating_sub(crate::db::wal_budget(cap) + crate::db::SHM_ALLOWANCE);
    for _ in 0..64 {
        if store.used_bytes().await? <= target {
            break;
        }
        let mut dropped = 0;
        for tier in &TIERS {
            let (table, col) = (tier.tables[0], tier.time);
            let (mut lo, mut hi) = (i64::MAX, i64::MIN);
            let wids = all_wids(store).await?;
            for wid in &wids {
                let (a, b): (Option<i64>, Option<i64>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT min({col}), max({col}) FROM {table} WHERE wid = ?"
                )))
                .bind(wid)
                .fetch_one(&store.pool)
                .await?;
                if let (Some(a), Some(b)) = (a, b) {
                    lo = lo.min(a);
                    hi = hi.max(b);
                }
            }
            if lo > hi {
                continue;
            }
            let cut = lo + ((hi - lo) / 4).max(1);
            for wid in &wids {
                dropped += delete_before(store, tier, wid, cut).await?;
            }
            if dropped > 0 {
                break;
            }
        }
        if dropped == 0 {
            // Only the newest rows of every tier are left: drop the oldest events instead.
            dropped = sqlx::query(
                "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT (SELECT count(*) / 4 + 1 FROM events))",
            )
            .execute(&store.pool)
            .await?
            .rows_affected();
        }
        r.size_pruned += dropped;
        if dropped == 0 {
            break;
        }
    }
    // Give freed pages back to the file system.
    sqlx::query("PRAGMA incremental_vacuum").execute(&store.pool).await.context("incremental vacuum")?;
    // And cut the WAL back, without waiting: a waiting TRUNCATE checkpoint would hold off the writer while
    // a reader (an export) keeps its snapshot. The writer tries again as the WAL outgrows its budget.
    store.checkpoint_now().await.context("checkpoint")?;
    Ok(())
}
