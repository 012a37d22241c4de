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

/// A metric column an export can be asked for: a built-in, `requests`, or any well-formed custom name
/// (one the history has not seen yet is an empty column).
pub fn is_exportable_metric(name: &str) -> bool {
    METRICS.contains(&name) || name == "requests" || crate::query::is_custom_name(name)
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

/// CSV being built: the current line and the chunk it goes into. No I/O: a full chunk is taken out.
struct Csv {
    csv: csv::Writer<Vec<u8>>,
    line: csv::ByteRecord,
    num: String,
    stats: ExportStats,
}

impl Csv {
    fn new() -> Self {
        Csv {
            csv: new_csv(),
            line: csv::ByteRecord::new(),
            num: String::with_capacity(32),
            stats: ExportStats::default(),
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
    /// The chunk built so far, once it is full (or whatever there is, with `force`).
    fn take_chunk(&mut self, force: bool) -> anyhow::Result<Option<Vec<u8>>> {
        if force {
            self.csv.flush()?;
        }
        if !force && self.csv.get_ref().len() < CHUNK {
            return Ok(None);
        }
        let full = std::mem::replace(&mut self.csv, new_csv());
        let chunk = full.into_inner().map_err(|e| anyhow::anyhow!("cannot write CSV: {}", e.error()))?;
        self.stats.bytes += chunk.len() as u64;
        Ok(Some(chunk).filter(|c| !c.is_empty()))
    }
}

/// A [`Csv`] whose chunks go to the caller's `emit` as they fill.
struct Out<F> {
    csv: Csv,
    emit: F,
}

impl<F> std::ops::Deref for Out<F> {
    type Target = Csv;
    fn deref(&self) -> &Csv {
        &self.csv
    }
}

impl<F> std::ops::DerefMut for Out<F> {
    fn deref_mut(&mut self) -> &mut Csv {
        &mut self.csv
    }
}

impl<F, Fut> Out<F>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: Future<Output = std::io::Result<()>>,
{
    fn new(emit: F) -> Self {
        Out { csv: Csv::new(), emit }
    }
    async fn maybe_emit(&mut self, force: bool) -> anyhow::Result<()> {
        if let Some(chunk) = self.csv.take_chunk(force)? {
            (self.emit)(chunk).await.context("cannot write the export")?;
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
            Kind::Events => self.export_table(req, &mut out, &EVENTS).await?,
            Kind::Alerts => self.export_table(req, &mut out, &ALERTS).await?,
            Kind::Recycles => self.export_table(req, &mut out, &RECYCLES).await?,
        }
        out.maybe_emit(true).await?;
        Ok(out.csv.stats.clone())
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
                if !custom.contains(m) && !is_exportable_metric(m) {
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
        // The rows are read and formatted on a blocking thread, through a read-only connection of
        // `rusqlite` to the same file, while this task hands the chunks to `emit`: sqlx's async
        // row-by-row path costs ~5 µs a row (each value copied and sent through its worker's channel),
        // which is most of a large export. One read transaction: one snapshot across all workers.
        let columns = Columns { builtin, with_requests, custom };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let header_chunk = out.csv.take_chunk(true)?;
        let (store, from, to) = (self.clone(), req.from.as_millis(), req.to.as_millis());
        let reader =
            tokio::task::spawn_blocking(move || read_samples(&store, &workers, &columns, from, to, &tx));
        if let Some(chunk) = header_chunk {
            (out.emit)(chunk).await.context("cannot write the export")?;
        }
        let mut emitted = Ok(());
        while let Some(chunk) = rx.recv().await {
            out.csv.stats.bytes += chunk.len() as u64;
            if let Err(e) = (out.emit)(chunk).await {
                // Dropping the receiver stops the reader at its next chunk.
                emitted = Err(e);
                break;
            }
        }
        drop(rx);
        let rows = reader
            .await
            .map_err(|e| QueryError::Db(anyhow::Error::new(e).context("export reader failed")))?;
        emitted.context("cannot write the export")?;
        out.csv.stats.rows += rows.map_err(QueryError::Db)?;
        Ok(())
    }

    /// An events, alerts or recycles export: one query, each column written by its kind.
    async fn export_table<F, Fut>(
        &self,
        req: &ExportRequest,
        out: &mut Out<F>,
        table: &Table,
    ) -> Result<(), QueryError>
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = std::io::Result<()>>,
    {
        for name in table.columns.iter().map(|(name, _)| name) {
            out.text(name);
        }
        out.end_row(false)?;
        let mut rows = sqlx::query(table.sql)
            .bind(&req.worker)
            .bind(&req.pool)
            .bind(req.from.as_millis())
            .bind(req.to.as_millis())
            .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            for (i, (_, col)) in table.columns.iter().enumerate() {
                match col {
                    Col::Time => out.time(row.try_get(i)?),
                    Col::Int => out.int(row.try_get(i)?),
                    Col::Float => out.float(row.try_get(i)?),
                    Col::Text => out.opt_text(row.try_get(i)?),
                }
            }
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

/// How a column is written: times as ISO-8601, numbers as they are, text escaped (NULL: empty).
enum Col {
    Time,
    Int,
    Float,
    Text,
}

/// A table exported as it is: its query (?1 worker, ?2 pool, ?3 from, ?4 to) and its columns in order.
struct Table {
    sql: &'static str,
    columns: &'static [(&'static str, Col)],
}

const EVENTS: Table = Table {
    sql: "SELECT at, seq, kind, worker, pool, incarnation, pid, from_state, to_state, cause, payload FROM events
          WHERE (?1 IS NULL OR worker = ?1) AND (?2 IS NULL OR pool = ?2) AND at >= ?3 AND at < ?4
          ORDER BY at, id",
    columns: &[
        ("time", Col::Time),
        ("seq", Col::Int),
        ("type", Col::Text),
        ("worker", Col::Text),
        ("pool", Col::Text),
        ("incarnation", Col::Int),
        ("pid", Col::Int),
        ("from", Col::Text),
        ("to", Col::Text),
        ("cause", Col::Text),
        ("json", Col::Text),
    ],
};

const ALERTS: Table = Table {
    sql: "SELECT at, rule, subject, pool, severity, state, value, threshold, since, message FROM alerts
          WHERE (?1 IS NULL OR subject = ?1) AND (?2 IS NULL OR pool = ?2) AND at >= ?3 AND at < ?4
          ORDER BY at, id",
    columns: &[
        ("time", Col::Time),
        ("rule", Col::Text),
        ("subject", Col::Text),
        ("pool", Col::Text),
        ("severity", Col::Text),
        ("state", Col::Text),
        ("value", Col::Float),
        ("threshold", Col::Float),
        ("since", Col::Time),
        ("message", Col::Text),
    ],
};

const RECYCLES: Table = Table {
    sql: "SELECT at, worker, pool, reason, detail, outcome, old_pid, new_pid, uptime_secs, requests,
            json_extract(last_metrics, '$.memory_bytes'), json_extract(last_metrics, '$.cpu_percent'),
            last_metrics FROM recycles
          WHERE (?1 IS NULL OR worker = ?1) AND (?2 IS NULL OR pool = ?2) AND at >= ?3 AND at < ?4
          ORDER BY at, id",
    columns: &[
        ("time", Col::Time),
        ("worker", Col::Text),
        ("pool", Col::Text),
        ("reason", Col::Text),
        ("detail", Col::Text),
        ("outcome", Col::Text),
        ("old_pid", Col::Int),
        ("new_pid", Col::Int),
        ("uptime_secs", Col::Float),
        ("requests", Col::Int),
        ("last_memory_bytes", Col::Int),
        ("last_cpu_percent", Col::Float),
        ("last_metrics", Col::Text),
    ],
};

/// The metric columns of a samples export: built-ins by index into [`METRICS`], then requests, then
/// custom metrics by name.
struct Columns {
    builtin: Vec<usize>,
    with_requests: bool,
    custom: Vec<String>,
}

/// Read the samples of `workers` between `from` and `to` and send them as CSV chunks (no header).
/// Returns the rows written; stops early, without error, when the receiver is gone.
fn read_samples(
    store: &Store,
    workers: &[(i64, String, String)],
    cols: &Columns,
    from: i64,
    to: i64,
    tx: &tokio::sync::mpsc::Sender<Vec<u8>>,
) -> anyhow::Result<u64> {
    use rusqlite::types::ValueRef;
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let path = store.path();
    let conn = rusqlite::Connection::open_with_flags(path, flags)
        .with_context(|| format!("cannot open {} for reading", path.display()))?;
    // The path must still lead to the file the rest of the export read (workers, columns).
    if !store.same_file(path) {
        anyhow::bail!("{} was deleted or replaced under Tend", path.display());
    }
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch("BEGIN")?;
    let sql = format!(
        "SELECT at, incarnation, pid, state, {}, requests, custom FROM samples_all
         WHERE wid = ?1 AND at >= ?2 AND at < ?3 ORDER BY at, incarnation",
        METRICS.join(", ")
    );
    let mut stmt = conn.prepare(&sql)?;
    let custom_at = 5 + METRICS.len();
    let int = |v: ValueRef<'_>| match v {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(f) => Some(f as i64),
        _ => None,
    };
    let real = |v: ValueRef<'_>| match v {
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(f) => Some(f),
        _ => None,
    };
    let mut csv = Csv::new();
    let mut values: Vec<Option<f64>> = vec![None; cols.custom.len()];
    for (wid, id, pool) in workers {
        let mut rows = stmt.query(rusqlite::params![wid, from, to])?;
        while let Some(row) = rows.next()? {
            csv.time(int(row.get_ref(0)?).unwrap_or(0));
            csv.text(id);
            csv.text(pool);
            csv.int(int(row.get_ref(1)?));
            csv.int(int(row.get_ref(2)?));
            csv.opt_text(text(row.get_ref(3)?));
            for i in &cols.builtin {
                let v = row.get_ref(4 + i)?;
                match METRIC_IS_INT[*i] {
                    true => csv.int(int(v)),
                    false => csv.float(real(v)),
                }
            }
            if cols.with_requests {
                csv.int(int(row.get_ref(4 + METRICS.len())?));
            }
            if !cols.custom.is_empty() {
                values.iter_mut().for_each(|v| *v = None);
                if let Some(json) = text(row.get_ref(custom_at)?) {
                    let map: std::collections::BTreeMap<&str, f64> =
                        serde_json::from_str(json).context("bad custom metrics in the history")?;
                    for (k, v) in map {
                        if let Some(i) = cols.custom.iter().position(|c| c == k) {
                            values[i] = Some(v);
                        }
                    }
                }
                for v in &values {
                    csv.float(*v);
                }
            }
            csv.end_row(true)?;
            if let Some(chunk) = csv.take_chunk(false)?
                && tx.blocking_send(chunk).is_err()
            {
                return Ok(csv.stats.rows);
            }
        }
    }
    if let Some(chunk) = csv.take_chunk(true)? {
        let _ = tx.blocking_send(chunk);
    }
    Ok(csv.stats.rows)
}

fn text(v: rusqlite::types::ValueRef<'_>) -> Option<&str> {
    match v {
        rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t).ok(),
        _ => None,
    }
}

/// Which of [`METRICS`] are integers (bytes, counts); the rest are floats (percentages).
const METRIC_IS_INT: [bool; 10] = [false, false, true, false, true, true, true, true, true, true];
const _: () = assert!(METRIC_IS_INT.len() == METRICS.len());
