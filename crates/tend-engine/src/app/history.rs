//! The history behind the facade: a worker's metric over time, events and alert history of a worker or
//! a pool, recycles, and CSV export. Both shells call these; they check that the worker or pool is
//! known (to the history or the live fleet), translate the store's answers into wire types and its
//! errors into [`AppError`]s. Nothing here writes to the store.

use std::future::Future;

use tend_api as api;
use tend_core::time::Timestamp;
use tend_store::export::{ExportRequest, Kind};
use tend_store::query::{Filter, QueryError};

use super::{App, AppError};
use crate::dto::ToWire;

/// Whose history a request asks for.
#[derive(Clone, Debug)]
pub enum Subject {
    Worker(String),
    Pool(String),
}

/// A time window and a row limit (`from` inclusive, `to` exclusive, epoch ms).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub from: api::Timestamp,
    pub to: api::Timestamp,
    pub limit: i64,
}

impl Window {
    fn filter(&self, worker: Option<String>, pool: Option<String>) -> Filter {
        Filter { worker, pool, from: Timestamp(self.from.0), to: Timestamp(self.to.0), limit: self.limit }
    }
}

/// A CSV export: which rows, of whom, over which window, which metric columns (samples only).
#[derive(Clone, Debug)]
pub struct CsvExport {
    pub kind: api::ExportKind,
    pub worker: Option<String>,
    pub pool: Option<String>,
    pub from: api::Timestamp,
    pub to: api::Timestamp,
    pub metrics: Option<Vec<String>>,
}

/// An export that passed its checks: [`ReadyExport::run`] streams it.
pub enum ReadyExport {
    /// From this Tend's history store.
    Local(Box<(tend_store::Store, ExportRequest)>),
    /// A remote worker's, streamed from its agent's store as the agent writes it.
    Remote { host: String, body: reqwest::Response },
}

impl ReadyExport {
    /// Stream the CSV through `emit` in ~64 KiB chunks; the number of bytes written.
    pub async fn run<F, Fut>(self, mut emit: F) -> Result<u64, AppError>
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = std::io::Result<()>>,
    {
        match self {
            ReadyExport::Local(local) => {
                let (db, req) = *local;
                Ok(db.export_csv(&req, emit).await?.bytes)
            }
            ReadyExport::Remote { host, mut body } => {
                let mut bytes = 0u64;
                loop {
                    let chunk = body.chunk().await.map_err(|e| AppError::Remote {
                        host: host.clone(),
                        failure: crate::remote::Failure::new(
                            api::HostStatus::Unreachable,
                            format!("export cut: {e}"),
                        ),
                    })?;
                    let Some(chunk) = chunk else { return Ok(bytes) };
                    bytes += chunk.len() as u64;
                    emit(chunk.to_vec()).await.map_err(|e| AppError::Store(format!("export cut: {e}")))?;
                }
            }
        }
    }
}

/// A recorded alert event as the live stream shows it: the store keeps the core's alert, which has its
/// metric but not the unit the wire derives from it.
fn with_unit(event: &mut serde_json::Value) {
    let Some(alert) = event.get_mut("alert").and_then(|a| a.as_object_mut()) else { return };
    if alert.contains_key("unit") {
        return;
    }
    let unit = alert.get("metric").and_then(|m| m.as_str()).and_then(api::unit_of);
    alert.insert("unit".to_owned(), unit.map_or(serde_json::Value::Null, serde_json::Value::from));
}

impl App {
    /// The history database, or why there is none right now (off, or not open: the reason).
    fn store(&self) -> Result<tend_store::Store, AppError> {
        let Some(h) = &self.shared.store else {
            return Err(AppError::StoreUnavailable("the history store is off".into()));
        };
        h.store().ok_or_else(|| {
            AppError::StoreUnavailable(match h.recorder.status() {
                tend_store::StoreStatus::Degraded(e) => format!("the history store is unavailable: {e}"),
                tend_store::StoreStatus::Ok => "the history store is not open yet".into(),
            })
        })
    }

    /// 404 unless the history or the live fleet knows the worker.
    async fn known_worker(&self, db: &tend_store::Store, id: &str) -> Result<(), AppError> {
        if db.worker_row(id).await.map_err(AppError::store)?.is_some() || self.worker(id).await?.is_some() {
            Ok(())
        } else {
            Err(AppError::NotFound(format!("no worker with id {id:?}")))
        }
    }

    /// 404 unless the history or the live fleet knows the pool.
    async fn known_pool(&self, db: &tend_store::Store, name: &str) -> Result<(), AppError> {
        let known = !db.worker_rows(Some(name)).await.map_err(AppError::store)?.is_empty()
            || self.pool_metrics(name).await?.is_some();
        if known { Ok(()) } else { Err(AppError::NotFound(format!("no pool named {name:?}"))) }
    }

    async fn scoped(&self, subject: Subject, w: Window) -> Result<(tend_store::Store, Filter), AppError> {
        let db = self.store()?;
        let f = match subject {
            Subject::Worker(id) => {
                self.known_worker(&db, &id).await?;
                w.filter(Some(id), None)
            }
            Subject::Pool(name) => {
                self.known_pool(&db, &name).await?;
                w.filter(None, Some(name))
            }
        };
        Ok((db, f))
    }

    /// A worker's metric over `[from, to)` from the tier that fits (`step_ms`: the bucket, or chosen).
    /// A worker the fleet knows but the history has not written yet has an empty history.
    pub async fn metric_history(
        &self,
        id: &str,
        metric: &str,
        from: api::Timestamp,
        to: api::Timestamp,
        step_ms: Option<i64>,
    ) -> Result<api::History, AppError> {
        if let Some(remote) = self.remote(id) {
            return self.remote_history(remote?, metric, from, to, step_ms).await;
        }
        let db = self.store()?;
        self.known_worker(&db, id).await?;
        let (from, to) = (Timestamp(from.0), Timestamp(to.0));
        match db.history(id, metric, from, to, step_ms, self.now(), &self.shared.retention).await {
            Ok(h) => Ok(h.wire()),
            Err(QueryError::UnknownWorker(_)) => Ok(api::History {
                worker: id.to_owned(),
                pool: String::new(),
                metric: metric.to_owned(),
                tier: api::Tier::Raw,
                step_ms: step_ms.unwrap_or(0),
                from: from.wire(),
                to: to.wire(),
                points: Vec::new(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Lifecycle events of a worker or a pool from the history, oldest first.
    pub async fn event_history(
        &self,
        subject: Subject,
        w: Window,
    ) -> Result<Vec<serde_json::Value>, AppError> {
        let (db, f) = self.scoped(subject, w).await?;
        let mut events = db.events(&f).await.map_err(AppError::store)?;
        events.iter_mut().for_each(with_unit);
        Ok(events)
    }

    /// Alert state changes of a worker or a pool from the history, oldest first.
    pub async fn alert_history(&self, subject: Subject, w: Window) -> Result<Vec<api::AlertRow>, AppError> {
        let (db, f) = self.scoped(subject, w).await?;
        Ok(db.alert_history(&f).await.map_err(AppError::store)?.iter().map(ToWire::wire).collect())
    }

    /// Recycles with their reasons, of one worker, one pool or all.
    pub async fn recycle_history(
        &self,
        worker: Option<String>,
        pool: Option<String>,
        w: Window,
    ) -> Result<Vec<api::RecycleRow>, AppError> {
        let db = self.store()?;
        let rows = db.recycles(&w.filter(worker, pool)).await.map_err(AppError::store)?;
        Ok(rows.iter().map(ToWire::wire).collect())
    }

    /// Check an export before anything is written (an unknown worker or pool, a bad metric name), so
    /// that a shell can still answer with an error; then [`ReadyExport::run`] streams it.
    pub async fn prepare_export(&self, e: CsvExport) -> Result<ReadyExport, AppError> {
        if let Some(remote) = e.worker.as_deref().and_then(|w| self.remote(w)) {
            return self.remote_export(remote?, &e).await;
        }
        let db = self.store()?;
        if let Some(names) = &e.metrics {
            for n in names {
                if !tend_store::export::is_exportable_metric(n) {
                    return Err(AppError::bad_param("metrics", format!("bad metric name {n:?}")));
                }
            }
        }
        if let Some(w) = &e.worker {
            let Some(row) = db.worker_row(w).await.map_err(AppError::store)? else {
                return Err(AppError::NotFound(format!("no worker with id {w:?}")));
            };
            // Both named: the worker must be of that pool, or the export would select nothing.
            if let Some(p) = e.pool.as_ref().filter(|p| **p != row.pool) {
                return Err(AppError::NotFound(format!("no worker with id {w:?} in pool {p:?}")));
            }
        } else if let Some(p) = &e.pool {
            // A pool the fleet knows but the history has no worker of yet has nothing to export.
            if db.worker_rows(Some(p)).await.map_err(AppError::store)?.is_empty() {
                self.known_pool(&db, p).await?;
                return Err(AppError::NotFound(format!("no worker of pool {p:?} in the history")));
            }
        }
        let kind = match e.kind {
            api::ExportKind::Samples => Kind::Samples,
            api::ExportKind::Events => Kind::Events,
            api::ExportKind::Alerts => Kind::Alerts,
            api::ExportKind::Recycles => Kind::Recycles,
        };
        let req = ExportRequest {
            kind,
            worker: e.worker,
            pool: e.pool,
            from: Timestamp(e.from.0),
            to: Timestamp(e.to.0),
            metrics: e.metrics,
        };
        Ok(ReadyExport::Local(Box::new((db, req))))
    }

    /// A time as the API accepts it (ISO-8601, epoch ms, `now`, `-1h`), relative to now.
    pub fn parse_time(&self, s: &str) -> Result<api::Timestamp, String> {
        tend_core::time::parse_time(s, self.now()).map(|t| t.wire())
    }

    /// A span as the API accepts it (`10s`, `1m`, `1h`), in milliseconds.
    pub fn parse_span(&self, s: &str) -> Option<i64> {
        tend_core::time::parse_span(s)
    }

    /// Now, as the wire counts time.
    pub fn wire_now(&self) -> api::Timestamp {
        self.now().wire()
    }
}

#[cfg(test)]
mod tests {
    use tend_api::query::{STEP_PATTERN, TIME_PATTERN};
    use tend_core::time::{Timestamp, parse_span, parse_time};

    /// What the API's documented patterns admit, the parsers read: a schema-valid time or step is never
    /// refused by the handler behind it.
    #[test]
    fn every_form_the_api_patterns_admit_is_read() {
        let time = regex::Regex::new(TIME_PATTERN).unwrap();
        let now = Timestamp::from_secs(2_000_000_000);
        for s in [
            "now",
            "-90",
            "-1.5",
            "-999999",
            "-0.001ms",
            "-999999.999h",
            "-1.5m",
            "-999999d",
            "-7d",
            "0",
            "999999999999999",
            "1900-01-01",
            "2000-02-29",
            "2096-02-29T00:00",
            "2099-12-31T23:59:59",
            "2026-11-23T10:00:00.123456789",
            "2026-11-23T10:00:00Z",
            "2026-11-23T10:00:00.5+13:59",
            "2026-11-23T10:00:00-09:30",
        ] {
            assert!(time.is_match(s), "{s} is not admitted by the pattern");
            assert!(parse_time(s, now).is_ok(), "{s}: {:?}", parse_time(s, now));
        }
        for s in ["-1.5d", "2100-01-01", "2001-02-29", "2026-11-23T24:00", "-1y", "yesterday"] {
            assert!(!time.is_match(s), "{s} is admitted by the pattern");
        }
        let step = regex::Regex::new(STEP_PATTERN).unwrap();
        for s in ["1", "999999999", "999999d", "500ms", "15m", "1h"] {
            assert!(step.is_match(s), "{s} is not admitted by the step pattern");
            assert!(parse_span(s).is_some_and(|ms| ms >= 0), "{s}");
        }
    }
}
