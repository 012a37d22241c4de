//! The history API: a worker's metric over time from the tier that fits, lifecycle events and alert
//! history per worker and pool, recycles with their reasons, and CSV export streamed from the database.
//! Handlers parse the typed query (a bad parameter is a 400 that names it), turn its times into times,
//! call the App, and shape the answer; the App checks the worker or pool and reads the store.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use tend_engine::api::query::{ExportQuery, MetricHistoryQuery, RecyclesQuery, WindowQuery};
use tend_engine::api::{self, ExportKind};
use tend_engine::app::{CsvExport, Subject, Window};

use crate::{ApiError, ApiQuery, ApiResult, Ctx};

pub(crate) fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(history))
        .routes(routes!(worker_events))
        .routes(routes!(worker_alerts))
        .routes(routes!(pool_events))
        .routes(routes!(pool_alerts))
        .routes(routes!(recycles))
        .routes(routes!(export_csv))
}

fn bad(param: &str, message: impl std::fmt::Display) -> ApiError {
    tend_engine::AppError::bad_param(param, message).into()
}

/// `from` and `to`; defaults: `from_default` (else the beginning), and now.
fn range(
    ctx: &Ctx,
    from: Option<&str>,
    to: Option<&str>,
    from_default: Option<api::Timestamp>,
) -> ApiResult<(api::Timestamp, api::Timestamp)> {
    let now = ctx.app.wire_now();
    let from = match from {
        Some(s) => ctx.app.parse_time(s).map_err(|e| bad("from", e))?,
        None => from_default.unwrap_or(api::Timestamp(i64::MIN)),
    };
    let to = match to {
        Some(s) => ctx.app.parse_time(s).map_err(|e| bad("to", e))?,
        None => api::Timestamp(now.0.saturating_add(1)),
    };
    if to <= from {
        return Err(bad("to", "must be after `from`"));
    }
    Ok((from, to))
}

/// At most this many rows (the query type checked the range).
fn limit(limit: Option<u32>) -> i64 {
    limit.map_or(10_000, i64::from)
}

fn window(ctx: &Ctx, q: &WindowQuery) -> ApiResult<Window> {
    let (from, to) = range(ctx, q.from.as_deref(), q.to.as_deref(), None)?;
    Ok(Window { from, to, limit: limit(q.limit) })
}

/// Points from the tier that fits the range (raw, minute or hour rollups). A worker the fleet knows
/// but the history has not written yet has no points.
#[utoipa::path(get, path = "/workers/{id}/history", tag = "history",
    params(("id" = String, Path, description = "Worker id"), MetricHistoryQuery),
    responses((status = 200, body = api::History),
        (status = 404, body = api::ErrorResponse, description = "No such worker")))]
pub(crate) async fn history(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<MetricHistoryQuery>,
) -> ApiResult<Json<api::History>> {
    let metric = q.metric.as_deref().unwrap_or("cpu_percent");
    let hour_ago = api::Timestamp(ctx.app.wire_now().0.saturating_sub(3_600_000));
    let (from, to) = range(&ctx, q.from.as_deref(), q.to.as_deref(), Some(hour_ago))?;
    let step = match q.step.as_deref() {
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
    Ok(Json(ctx.app.metric_history(&id, metric, from, to, step).await?))
}

/// The worker's recorded lifecycle events, oldest first.
#[utoipa::path(get, path = "/workers/{id}/history/events", tag = "history",
    params(("id" = String, Path, description = "Worker id"), WindowQuery),
    responses((status = 200, body = Vec<api::Event>),
        (status = 404, body = api::ErrorResponse, description = "No such worker")))]
pub(crate) async fn worker_events(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<WindowQuery>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    Ok(Json(ctx.app.event_history(Subject::Worker(id), window(&ctx, &q)?).await?))
}

/// The worker's recorded alert changes, oldest first.
#[utoipa::path(get, path = "/workers/{id}/history/alerts", tag = "history",
    params(("id" = String, Path, description = "Worker id"), WindowQuery),
    responses((status = 200, body = Vec<api::AlertRow>),
        (status = 404, body = api::ErrorResponse, description = "No such worker")))]
pub(crate) async fn worker_alerts(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<WindowQuery>,
) -> ApiResult<Json<Vec<api::AlertRow>>> {
    Ok(Json(ctx.app.alert_history(Subject::Worker(id), window(&ctx, &q)?).await?))
}

/// The pool's recorded lifecycle events, oldest first.
#[utoipa::path(get, path = "/pools/{name}/history/events", tag = "history",
    params(("name" = String, Path, description = "Pool name"), WindowQuery),
    responses((status = 200, body = Vec<api::Event>),
        (status = 404, body = api::ErrorResponse, description = "No such pool")))]
pub(crate) async fn pool_events(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<WindowQuery>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    Ok(Json(ctx.app.event_history(Subject::Pool(name), window(&ctx, &q)?).await?))
}

/// The pool's recorded alert changes, oldest first.
#[utoipa::path(get, path = "/pools/{name}/history/alerts", tag = "history",
    params(("name" = String, Path, description = "Pool name"), WindowQuery),
    responses((status = 200, body = Vec<api::AlertRow>),
        (status = 404, body = api::ErrorResponse, description = "No such pool")))]
pub(crate) async fn pool_alerts(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<WindowQuery>,
) -> ApiResult<Json<Vec<api::AlertRow>>> {
    Ok(Json(ctx.app.alert_history(Subject::Pool(name), window(&ctx, &q)?).await?))
}

/// Recorded recycles: reason, outcome, uptime, requests, last metrics.
#[utoipa::path(get, path = "/recycles", tag = "history", params(RecyclesQuery),
    responses((status = 200, body = Vec<api::RecycleRow>)))]
pub(crate) async fn recycles(
    State(ctx): State<Ctx>,
    ApiQuery(q): ApiQuery<RecyclesQuery>,
) -> ApiResult<Json<Vec<api::RecycleRow>>> {
    let (from, to) = range(&ctx, q.from.as_deref(), q.to.as_deref(), None)?;
    let w = Window { from, to, limit: limit(q.limit) };
    Ok(Json(ctx.app.recycle_history(q.worker, q.pool, w).await?))
}

/// CSV streamed from the store: a header row, ISO-8601 UTC times, formula cells escaped. The database
/// is read as the client reads, in ~64 KiB chunks.
#[utoipa::path(get, path = "/export.csv", tag = "history", params(ExportQuery),
    responses((status = 200, description = "The rows", content_type = "text/csv", body = String),
        (status = 404, body = api::ErrorResponse, description = "No such worker or pool")))]
pub(crate) async fn export_csv(
    State(ctx): State<Ctx>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let kind = q.kind.unwrap_or(ExportKind::Samples);
    let (from, to) = range(&ctx, q.from.as_deref(), q.to.as_deref(), None)?;
    let metrics = q.metrics.as_deref().map(|m| {
        m.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect::<Vec<String>>()
    });
    let export = CsvExport { kind, worker: q.worker, pool: q.pool, from, to, metrics };
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
