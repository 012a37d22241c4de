//! CSV export, streamed: rows go from a SQLite cursor through the `csv` writer into chunks of ~64 KiB
//! handed to the caller (a file, stdout, an HTTP body), so memory stays flat for any number of rows.
//! Timestamps are ISO-8601 UTC; text cells that a spreadsheet would run as a formula are escaped. It
//! never writes to the database.

use std::future::Future;

use anyhow::Context;
use futures::TryStreamExt;
use serde::Serialize;
use sqlx::Row;

use tend_core::time::Timestamp;

use crate::METRICS;
use crate::db::Store;
use crate::query::QueryError;
use crate::timefmt::write_iso;

/// What to export.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Samples,
    Events,
    Alerts,
    Recycles,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "samples" => Some(Kind::Samples),
            "events" => Some(Kind::Events),
            "alerts" => Some(Kind::Alerts),
            "recycles" => Some(Kind::Recycles),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ExportRequest {
    pub kind: Kind,
    /// One worker, or every worker of `pool`, or (both None) everything.
    pub worker: Option<String>,
    pub pool: Option<String>,
    pub from: Timestamp,
    pub to: Timestamp,
    /// Samples: the metric columns to include (None: every built-in metric, requests and every custom
    /// metric seen).
    pub metrics: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExportStats {
    pub rows: u64,
    pub bytes: u64,
}

const CHUNK: usize = 64 * 1024;
/// Samples fetched per query in a samples export.
const PAGE: i64 = 4096;

/// One sample row of a page, in `json_array` column order.
#[derive(serde::Deserialize)]
struct PageRow<'a> {
    at: i64,
    incarnation: i64,
    pid: Option<i64>,
    #[serde(borrow)]
    state: Option<std::borrow::Cow<'a, str>>,
    cpu_percent: Option<f64>,
    cpu_host_percent: Option<f64>,
    memory_bytes: Option<i64>,
    memory_percent: Option<f64>,
    disk_read_bytes: Option<i64>,
    disk_write_bytes: Option<i64>,
    net_rx_bytes: Option<i64>,
    net_tx_bytes: Option<i64>,
    threads: Option<i64>,
    fds: Option<i64>,
    requests: Option<i64>,
    custom: Option<std::collections::BTreeMap<String, f64>>,
}

#[derive(Copy, Clone)]
enum Num {
    F(Option<f64>),
    I(Option<i64>),
}

/// A cell as written: text that starts like a formula (`= + - @`, tab, CR) gets a leading `'`.
pub fn escape_cell(s: &str) -> std::borrow::Cow<'_, str> {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => std::borrow::Cow::Owned(format!("'{s}")),
        _ => std::borrow::Cow::Borrowed(s),
    }
}

fn new_csv() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new().from_writer(Vec::with_capacity(CHUNK + 4096))
}

struct Out<F> {
    csv: csv::Writer<Vec<u8>>,
    emit: F,
    stats: ExportStats,
    line: csv::ByteRecord,
    num: String,
}

impl<F, Fut> Out<F>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: Future<Output = std::io::Result<()>>,
{
    fn new(emit: F) -> Self {
        Out {
            csv: new_csv(),
            emit,
            stats: ExportStats::default(),
            line: csv::ByteRecord::new(),
            num: String::with_capacity(32),
        }
    }
    fn text(&mut self, s: &str) {
        self.line.push_field(escape_cell(s).as_bytes());
    }
    fn opt_text(&mut self, s: Option<&str>) {
        self.text(s.unwrap_or(""));
    }
    fn time(&mut self, ms: i64) {
        self.num.clear();
        write_iso(&mut self.num, Timestamp(ms));
        self.line.push_field(self.num.as_bytes());
    }
    fn int(&mut self, v: Option<i64>) {
        match v {
            Some(v) => {
                let mut b = itoa::Buffer::new();
                self.line.push_field(b.format(v).as_bytes());
            }
            None => self.line.push_field(b""),
        }
    }
    fn float(&mut self, v: Option<f64>) {
        match v {
            Some(v) if v.is_finite() => {
                let mut b = ryu::Buffer::new();
                let s = b.format(v);
                self.line.push_field(s.strip_suffix(".0").unwrap_or(s).as_bytes());
            }
            _ => self.line.push_field(b""),
        }
    }
    fn header(&mut self, names: &[String]) -> anyhow::Result<()> {
        for n in names {
            self.text(n);
        }
        self.end_row(false)
    }
    fn end_row(&mut self, count: bool) -> anyhow::Result<()> {
        self.csv.write_byte_record(&self.line)?;
        self.line.clear();
        if count {
            self.stats.rows += 1;
        }
        Ok(())
    }
    async fn maybe_emit(&mut self, force: bool) -> anyhow::Result<()> {
        if force {
            self.csv.flush()?;
        }
        if force || self.csv.get_ref().len() >= CHUNK {
            let full = std::mem::replace(&mut self.csv, new_csv());
            let chunk = full.into_inner().map_err(|e| anyhow::anyhow!("cannot write CSV: {}", e.error()))?;
            if !chunk.is_empty() {
                self.stats.bytes += chunk.len() as u64;
                (self.emit)(chunk).await.context("cannot write the export")?;
            }
        }
        Ok(())
    }
}

impl Store {
    /// Stream `req` as CSV into `emit`, one chunk at a time (awaited: the caller's pace is the export's).
    pub async fn export_csv<F, Fut>(&self, req: &ExportRequest, emit: F) -> Result<ExportStats, QueryError>
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let mut out = Out::new(emit);
        match req.kind {
            Kind::Samples => self.export_samples(req, &mut out).await?,
            Kind::Events => self.export_events(req, &mut out).await?,
            Kind::Alerts => self.export_alerts(req, &mut out).await?,
            Kind::Recycles => self.export_recycles(req, &mut out).await?,
        }
        out.maybe_emit(true).await?;
        Ok(out.stats)
    }

    /// The workers a request covers: (wid, id, pool), ordered by id.
    async fn selected(&self, req: &ExportRequest) -> Result<Vec<(i64, String, String)>, QueryError> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT wid, id, pool FROM workers WHERE (?1 IS NULL OR id = ?1) AND (?2 IS NULL OR pool = ?2)
             ORDER BY id",
        )
        .bind(&req.worker)
        .bind(&req.pool)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            if let Some(w) = &req.worker {
                return Err(QueryError::UnknownWorker(w.clone()));
            }
            if let Some(p) = &req.pool {
                return Err(QueryError::BadParam {
                    param: "pool",
                    message: format!("no worker of pool {p:?} in the history"),
                });
            }
        }
        Ok(rows)
    }

    async fn export_samples<F, Fut>(&self, req: &ExportRequest, out: &mut Out<F>) -> Result<(), QueryError>
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let workers = self.selected(req).await?;
        let mut custom: Vec<String> = Vec::new();
        for (wid, _, _) in &workers {
            let names: Vec<String> =
                sqlx::query_scalar("SELECT name FROM custom_metrics WHERE wid = ? ORDER BY name")
                    .bind(wid)
                    .fetch_all(&self.pool)
                    .await?;
            for n in names {
                if !custom.contains(&n) {
                    custom.push(n);
                }
            }
        }
        custom.sort();
        // Columns: the built-ins (by index into the SELECT), requests, then custom metrics by name.
        let mut builtin: Vec<usize> = (0..METRICS.len()).collect();
        let mut with_requests = true;
        if let Some(wanted) = &req.metrics {
            for m in wanted {
                let known = METRICS.contains(&m.as_str()) || m == "requests" || custom.contains(m);
                if !known && !crate::query::is_custom_name(m) {
                    return Err(QueryError::BadParam {
                        param: "metrics",
                        message: format!("unknown metric {m:?}"),
                    });
                }
            }
            builtin.retain(|i| wanted.iter().any(|m| m == METRICS[*i]));
            with_requests = wanted.iter().any(|m| m == "requests");
            custom.retain(|c| wanted.contains(c));
            for m in wanted {
                if !METRICS.contains(&m.as_str()) && m != "requests" && !custom.contains(m) {
                    custom.push(m.clone());
                }
            }
        }
        let mut header: Vec<String> =
            ["time", "worker", "pool", "incarnation", "pid", "state"].iter().map(|s| s.to_string()).collect();
        header.extend(builtin.iter().map(|i| METRICS[*i].to_string()));
        if with_requests {
            header.push("requests".into());
        }
        header.extend(custom.iter().cloned());
        out.header(&header)?;
        // Rows come from SQLite in pages of PAGE, each page one JSON array built by SQLite: a row at a
        // time through the driver costs several times more than the CSV writing itself.
        let sql = format!(
            "SELECT json_group_array(json_array(at, incarnation, pid, state, {}, requests, json(custom))), count(*)
             FROM (SELECT * FROM samples WHERE wid = ?1 AND at >= ?2 AND at < ?3 AND (at, incarnation) > (?4, ?5)
                   ORDER BY at, incarnation LIMIT {PAGE})",
            METRICS.join(", ")
        );
        let mut values: Vec<Option<f64>> = vec![None; custom.len()];
        // The next page is fetched (by SQLite's thread) while this one is written out: two cores busy.
        let fetch = |wid: i64, after: (i64, i64)| {
            let q = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql.clone()))
                .bind(wid)
                .bind(req.from.as_millis())
                .bind(req.to.as_millis())
                .bind(after.0)
                .bind(after.1);
            let pool = self.pool.clone();
            tokio::spawn(async move { q.fetch_one(&pool).await })
        };
        for (wid, id, pool) in &workers {
            let mut next = Some(fetch(*wid, (i64::MIN, i64::MIN)));
            while let Some(pending) = next.take() {
                let (page, n) = pending.await.map_err(|e| {
                    QueryError::Db(anyhow::Error::new(e).context("export page task failed"))
                })??;
                let rows: Vec<PageRow<'_>> = serde_json::from_str(&page)
                    .map_err(|e| QueryError::Db(anyhow::Error::new(e).context("bad sample page")))?;
                if let Some(last) = rows.last()
                    && n >= PAGE
                {
                    next = Some(fetch(*wid, (last.at, last.incarnation)));
                }
                for row in &rows {
                    out.time(row.at);
                    out.text(id);
                    out.text(pool);
                    out.int(Some(row.incarnation));
                    out.int(row.pid);
                    out.opt_text(row.state.as_deref());
                    let metric = [
                        Num::F(row.cpu_percent),
                        Num::F(row.cpu_host_percent),
                        Num::I(row.memory_bytes),
                        Num::F(row.memory_percent),
                        Num::I(row.disk_read_bytes),
                        Num::I(row.disk_write_bytes),
                        Num::I(row.net_rx_bytes),
                        Num::I(row.net_tx_bytes),
                        Num::I(row.threads),
                        Num::I(row.fds),
                    ];
                    for i in &builtin {
                        match metric[*i] {
                            Num::F(v) => out.float(v),
                            Num::I(v) => out.int(v),
                        }
                    }
                    if with_requests {
                        out.int(row.requests);
                    }
                    if !custom.is_empty() {
                        values.iter_mut().for_each(|v| *v = None);
                        if let Some(map) = &row.custom {
                            for (k, v) in map {
                                if let Some(i) = custom.iter().position(|c| c == k) {
                                    values[i] = Some(*v);
                                }
                            }
                        }
                        for v in &values {
                            out.float(*v);
                        }
                    }
                    out.end_row(true)?;
                }
                out.maybe_emit(false).await?;
            }
        }
        Ok(())
    }

    async fn export_events<F, Fut>(&self, req: &ExportRequest, out: &mut Out<F>) -> Result<(), QueryError>
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let header =
            ["time", "seq", "type", "worker", "pool", "incarnation", "pid", "from", "to", "cause", "json"];
        out.header(&header.map(String::from))?;
        let mut rows = sqlx::query(
            "SELECT at, seq, kind, worker, pool, incarnation, pid, from_state, to_state, cause, payload FROM events
             WHERE (?1 IS NULL OR worker = ?1) AND (?2 IS NULL OR pool = ?2) AND at >= ?3 AND at < ?4
             ORDER BY at, id",
        )
        .bind(&req.worker)
        .bind(&req.pool)
        .bind(req.from.as_millis())
        .bind(req.to.as_millis())
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            out.time(row.try_get(0)?);
            out.int(row.try_get(1)?);
            out.text(row.try_get(2)?);
            out.opt_text(row.try_get(3)?);
            out.opt_text(row.try_get(4)?);
            out.int(row.try_get(5)?);
            out.int(row.try_get(6)?);
            out.opt_text(row.try_get(7)?);
            out.opt_text(row.try_get(8)?);
            out.opt_text(row.try_get(9)?);
            out.text(row.try_get(10)?);
            out.end_row(true)?;
            out.maybe_emit(false).await?;
        }
        Ok(())
    }

    async fn export_alerts<F, Fut>(&self, req: &ExportRequest, out: &mut Out<F>) -> Result<(), QueryError>
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let header = [
            "time",
            "rule",
            "subject",
            "pool",
            "severity",
            "state",
            "value",
            "threshold",
            "since",
            "message",
        ];
        out.header(&header.map(String::from))?;
        let mut rows = sqlx::query(
            "SELECT at, rule, subject, pool, severity, state, value, threshold, since, message FROM alerts
             WHERE (?1 IS NULL OR subject = ?1) AND (?2 IS NULL OR pool = ?2) AND at >= ?3 AND at < ?4
             ORDER BY at, id",
        )
        .bind(&req.worker)
        .bind(&req.pool)
        .bind(req.from.as_millis())
        .bind(req.to.as_millis())
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            out.time(row.try_get(0)?);
            for i in 1..6 {
                out.text(row.try_get(i)?);
            }
            out.float(row.try_get(6)?);
            out.float(row.try_get(7)?);
            out.time(row.try_get(8)?);
            out.text(row.try_get(9)?);
            out.end_row(true)?;
            out.maybe_emit(false).await?;
        }
        Ok(())
    }

    async fn export_recycles<F, Fut>(&self, req: &ExportRequest, out: &mut Out<F>) -> Result<(), QueryError>
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let header = [
            "time",
            "worker",
            "pool",
            "reason",
            "detail",
            "outcome",
            "old_pid",
            "new_pid",
            "uptime_secs",
            "requests",
            "last_memory_bytes",
            "last_cpu_percent",
            "last_metrics",
        ];
        out.header(&header.map(String::from))?;
        let mut rows = sqlx::query(
            "SELECT at, worker, pool, reason, detail, outcome, old_pid, new_pid, uptime_secs, requests,
                json_extract(last_metrics, '$.memory_bytes'), json_extract(last_metrics, '$.cpu_percent'),
                last_metrics FROM recycles
             WHERE (?1 IS NULL OR worker = ?1) AND (?2 IS NULL OR pool = ?2) AND at >= ?3 AND at < ?4
             ORDER BY at, id",
        )
        .bind(&req.worker)
        .bind(&req.pool)
        .bind(req.from.as_millis())
        .bind(req.to.as_millis())
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            out.time(row.try_get(0)?);
            for i in 1..6 {
                out.text(row.try_get(i)?);
            }
            out.int(row.try_get(6)?);
            out.int(row.try_get(7)?);
            out.float(row.try_get(8)?);
            out.int(row.try_get(9)?);
            out.int(row.try_get(10)?);
            out.float(row.try_get(11)?);
            out.opt_text(row.try_get(12)?);
            out.end_row(true)?;
            out.maybe_emit(false).await?;
        }
        Ok(())
    }
}

impl From<csv::Error> for QueryError {
    fn from(e: csv::Error) -> Self {
        QueryError::Db(anyhow::Error::new(e).context("cannot write CSV"))
    }
}
