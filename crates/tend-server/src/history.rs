//! The history API: a worker's metric over time from the tier that fits, lifecycle events and alert
//! history per worker and pool, recycles with their reasons, and CSV export streamed from the database.
//! Handlers parse the query (a bad parameter is a 400 that names it), call the App, and shape the
//! answer; the App checks the worker or pool and reads the store.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use tend_engine::api::{self, ExportKind};
use tend_engine::app::{CsvExport, Subject, Window};

use crate::{ApiError, Ctx};

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/workers/{id}/history", get(history))
        .route("/workers/{id}/history/events", get(worker_events))
        .route("/workers/{id}/history/alerts", get(worker_alerts))
        .route("/pools/{name}/history/events", get(pool_events))
        .route("/pools/{name}/history/alerts", get(pool_alerts))
        .route("/recycles", get(recycles))
        .route("/export.csv", get(export_csv))
}

type Params = Query<HashMap<String, String>>;
type ApiResult<T> = Result<T, ApiError>;

fn bad(param: &str, message: impl std::fmt::Display) -> ApiError {
    tend_engine::AppError::bad_param(param, message).into()
}

/// `from` and `to` (ISO-8601, epoch ms, `now`, `-1h`); defaults: `from_default` before now, and now.
fn range(
    ctx: &Ctx,
    q: &HashMap<String, String>,
    from_default: Option<api::Timestamp>,
) -> ApiResult<(api::Timestamp, api::Timestamp)> {
    let now = ctx.app.wire_now();
    let from = match q.get("from") {
        Some(s) => ctx.app.parse_time(s).map_err(|e| bad("from", e))?,
        None => from_default.unwrap_or(api::Timestamp(i64::MIN)),
    };
    let to = match q.get("to") {
        Some(s) => ctx.app.parse_time(s).map_err(|e| bad("to", e))?,
        None => api::Timestamp(now.0.saturating_add(1)),
    };
    if to <= from {
        return Err(bad("to", "must be after `from`"));
    }
    Ok((from, to))
}

fn limit(q: &HashMap<String, String>) -> ApiResult<i64> {
    match q.get("limit") {
        None => Ok(10_000),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=100_000).contains(&n) => Ok(n),
            _ => Err(bad("limit", "must be a whole number from 1 to 100000")),
        },
    }
}

fn check_params(q: &HashMap<String, String>, allowed: &[&str]) -> ApiResult<()> {
    for k in q.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(bad(k, format!("unknown parameter; expected one of: {}", allowed.join(", "))));
        }
    }
    Ok(())
}

fn window(ctx: &Ctx, q: &HashMap<String, String>) -> ApiResult<Window> {
    let (from, to) = range(ctx, q, None)?;
    Ok(Window { from, to, limit: limit(q)? })
}

async fn history(State(ctx): State<Ctx>, Path(id): Path<String>, Query(q): Params) -> ApiResult<Response> {
    check_params(&q, &["metric", "from", "to", "step"])?;
    let metric = q.get("metric").map(String::as_str).unwrap_or("cpu_percent");
    let hour_ago = api::Timestamp(ctx.app.wire_now().0.saturating_sub(3_600_000));
    let (from, to) = range(&ctx, &q, Some(hour_ago))?;
    let step = match q.get("step") {
        None => None,
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.parse::<i64>().map_err(|e| bad("step", e))?)
        }
        Some(s) => Some(
            ctx.app
                .parse_span(s)
                .ok_or_else(|| bad("step", "use a duration like 10s, 1m, 1h, or milliseconds"))?,
        ),
    };
    if step == Some(0) {
        return Err(bad("step", "must be positive"));
    }
    Ok(Json(ctx.app.metric_history(&id, metric, from, to, step).await?).into_response())
}

async fn scoped_events(ctx: &Ctx, q: &HashMap<String, String>, subject: Subject) -> ApiResult<Response> {
    check_params(q, &["from", "to", "limit"])?;
    Ok(Json(ctx.app.event_history(subject, window(ctx, q)?).await?).into_response())
}

async fn scoped_alerts(ctx: &Ctx, q: &HashMap<String, String>, subject: Subject) -> ApiResult<Response> {
    check_params(q, &["from", "to", "limit"])?;
    Ok(Json(ctx.app.alert_history(subject, window(ctx, q)?).await?).into_response())
}

async fn worker_events(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    scoped_events(&ctx, &q, Subject::Worker(id)).await
}

async fn worker_alerts(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    scoped_alerts(&ctx, &q, Subject::Worker(id)).await
}

async fn pool_events(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    scoped_events(&ctx, &q, Subject::Pool(name)).await
}

async fn pool_alerts(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    scoped_alerts(&ctx, &q, Subject::Pool(name)).await
}

async fn recycles(State(ctx): State<Ctx>, Query(q): Params) -> ApiResult<Response> {
    check_params(&q, &["pool", "worker", "from", "to", "limit"])?;
    let w = window(&ctx, &q)?;
    Ok(Json(ctx.app.recycle_history(q.get("worker").cloned(), q.get("pool").cloned(), w).await?)
        .into_response())
}

/// CSV, streamed: the database is read as the client reads, in ~64 KiB chunks.
async fn export_csv(State(ctx): State<Ctx>, Query(q): Params) -> ApiResult<Response> {
    check_params(&q, &["kind", "pool", "worker", "from", "to", "metrics"])?;
    let kind = match q.get("kind") {
        None => ExportKind::Samples,
        Some(k) => {
            ExportKind::parse(k).ok_or_else(|| bad("kind", "one of samples, events, alerts, recycles"))?
        }
    };
    let (from, to) = range(&ctx, &q, None)?;
    let metrics = q.get("metrics").map(|m| {
        m.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect::<Vec<String>>()
    });
    let export =
        CsvExport { kind, worker: q.get("worker").cloned(), pool: q.get("pool").cloned(), from, to, metrics };
    // Checked before the status line goes out: afterwards an error can only cut the body.
    let ready = ctx.app.prepare_export(export).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let sink = tx.clone();
        let r = ready
            .run(move |chunk| {
                let sink = sink.clone();
                async move {
                    sink.send(Ok(Bytes::from(chunk)))
                        .await
                        .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
                }
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "CSV export cut short");
            // An error item aborts the chunked body (no final chunk): the client sees a failed read, not
            // a clean end of a truncated CSV.
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"tend-{}.csv\"", kind.as_str())),
        ],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response())
}
