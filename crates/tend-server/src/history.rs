//! The history API: a worker's metric over time from the tier that fits, lifecycle events and alert
//! history per worker and pool, recycles with their reasons, and CSV export streamed from the database.
//! Handlers parse (a bad parameter is a 400 that names it), call the App's store, and shape the answer;
//! they never write to the store.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use tend_core::time::Timestamp;
use tend_store::export::{ExportRequest, Kind};
use tend_store::query::{Filter, QueryError};
use tend_store::timefmt::{parse_span, parse_time};

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
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", format!("parameter {param:?}: {message}"))
}

fn store(ctx: &Ctx) -> ApiResult<tend_store::Store> {
    ctx.app.history().map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e))
}

fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::BadParam { param, message } => bad(param, message),
        QueryError::UnknownWorker(w) => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no worker with id {w:?}"))
        }
        QueryError::Db(e) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store_error", format!("{e:#}"))
        }
    }
}

fn internal(e: anyhow::Error) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store_error", format!("{e:#}"))
}

/// `from` and `to` (ISO-8601, epoch ms, `now`, `-1h`); defaults: `from_default` before now, and now.
fn range(
    ctx: &Ctx,
    q: &HashMap<String, String>,
    from_default: Option<Timestamp>,
) -> ApiResult<(Timestamp, Timestamp)> {
    let now = ctx.app.now();
    let from = match q.get("from") {
        Some(s) => parse_time(s, now).map_err(|e| bad("from", e))?,
        None => from_default.unwrap_or(Timestamp(i64::MIN)),
    };
    let to = match q.get("to") {
        Some(s) => parse_time(s, now).map_err(|e| bad("to", e))?,
        None => Timestamp(now.as_millis().saturating_add(1)),
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

/// 404 unless the history or the live fleet knows the worker.
async fn known_worker(ctx: &Ctx, db: &tend_store::Store, id: &str) -> ApiResult<()> {
    if db.worker_row(id).await.map_err(internal)?.is_some() || ctx.app.worker(id).await?.is_some() {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no worker with id {id:?}")))
    }
}

async fn history(State(ctx): State<Ctx>, Path(id): Path<String>, Query(q): Params) -> ApiResult<Response> {
    check_params(&q, &["metric", "from", "to", "step"])?;
    let db = store(&ctx)?;
    let metric = q.get("metric").map(String::as_str).unwrap_or("cpu_percent");
    let now = ctx.app.now();
    let (from, to) = range(&ctx, &q, Some(now.minus(std::time::Duration::from_secs(3600))))?;
    let step = match q.get("step") {
        None => None,
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.parse::<i64>().map_err(|e| bad("step", e))?)
        }
        Some(s) => Some(
            parse_span(s).ok_or_else(|| bad("step", "use a duration like 10s, 1m, 1h, or milliseconds"))?,
        ),
    };
    if step == Some(0) {
        return Err(bad("step", "must be positive"));
    }
    known_worker(&ctx, &db, &id).await?;
    match db.history(&id, metric, from, to, step, now, ctx.app.retention()).await {
        Ok(h) => Ok(Json(h).into_response()),
        // Known to the fleet, not written yet: an empty history rather than a 404.
        Err(QueryError::UnknownWorker(_)) => Ok(Json(serde_json::json!({
            "worker": id, "metric": metric, "tier": "raw", "from": from, "to": to, "points": []
        }))
        .into_response()),
        Err(e) => Err(query_error(e)),
    }
}

async fn filter(
    ctx: &Ctx,
    q: &HashMap<String, String>,
    worker: Option<String>,
    pool: Option<String>,
) -> ApiResult<Filter> {
    let (from, to) = range(ctx, q, None)?;
    Ok(Filter { worker, pool, from, to, limit: limit(q)? })
}

/// Whose history a request asks for.
enum Subject {
    Worker(String),
    Pool(String),
}

/// The shared front of the per-worker and per-pool history handlers: only `from`, `to` and `limit` are
/// accepted, the worker or pool must be known (404 otherwise), and the filter is scoped to it.
async fn scoped(
    ctx: &Ctx,
    q: &HashMap<String, String>,
    subject: Subject,
) -> ApiResult<(tend_store::Store, Filter)> {
    check_params(q, &["from", "to", "limit"])?;
    let db = store(ctx)?;
    let f = match subject {
        Subject::Worker(id) => {
            known_worker(ctx, &db, &id).await?;
            filter(ctx, q, Some(id), None).await?
        }
        Subject::Pool(name) => {
            known_pool(ctx, &db, &name).await?;
            filter(ctx, q, None, Some(name)).await?
        }
    };
    Ok((db, f))
}

async fn worker_events(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let (db, f) = scoped(&ctx, &q, Subject::Worker(id)).await?;
    Ok(Json(db.events(&f).await.map_err(internal)?).into_response())
}

async fn worker_alerts(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let (db, f) = scoped(&ctx, &q, Subject::Worker(id)).await?;
    Ok(Json(db.alert_history(&f).await.map_err(internal)?).into_response())
}

async fn known_pool(ctx: &Ctx, db: &tend_store::Store, name: &str) -> ApiResult<()> {
    let known = !db.worker_rows(Some(name)).await.map_err(internal)?.is_empty()
        || ctx.app.pool_metrics(name).await?.is_some();
    if known {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no pool named {name:?}")))
    }
}

async fn pool_events(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let (db, f) = scoped(&ctx, &q, Subject::Pool(name)).await?;
    Ok(Json(db.events(&f).await.map_err(internal)?).into_response())
}

async fn pool_alerts(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let (db, f) = scoped(&ctx, &q, Subject::Pool(name)).await?;
    Ok(Json(db.alert_history(&f).await.map_err(internal)?).into_response())
}

async fn recycles(State(ctx): State<Ctx>, Query(q): Params) -> ApiResult<Response> {
    check_params(&q, &["pool", "worker", "from", "to", "limit"])?;
    let db = store(&ctx)?;
    let f = filter(&ctx, &q, q.get("worker").cloned(), q.get("pool").cloned()).await?;
    Ok(Json(db.recycles(&f).await.map_err(internal)?).into_response())
}

/// CSV, streamed: the database is read as the client reads, in ~64 KiB chunks.
async fn export_csv(State(ctx): State<Ctx>, Query(q): Params) -> ApiResult<Response> {
    check_params(&q, &["kind", "pool", "worker", "from", "to", "metrics"])?;
    let db = store(&ctx)?;
    let kind = match q.get("kind") {
        None => Kind::Samples,
        Some(k) => Kind::parse(k).ok_or_else(|| bad("kind", "one of samples, events, alerts, recycles"))?,
    };
    let (from, to) = range(&ctx, &q, None)?;
    let metrics = match q.get("metrics") {
        None => None,
        Some(m) => {
            let names: Vec<String> =
                m.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            for n in &names {
                let builtin = tend_store::METRICS.contains(&n.as_str()) || n == "requests";
                if !builtin && !tend_store::query::is_custom_name(n) {
                    return Err(bad("metrics", format!("bad metric name {n:?}")));
                }
            }
            Some(names)
        }
    };
    // Check the selection before the status line goes out: afterwards an error can only cut the body.
    if let Some(w) = q.get("worker") {
        if db.worker_row(w).await.map_err(internal)?.is_none() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no worker with id {w:?}"),
            ));
        }
    } else if let Some(p) = q.get("pool") {
        known_pool(&ctx, &db, p).await?;
    }
    let req = ExportRequest {
        kind,
        worker: q.get("worker").cloned(),
        pool: q.get("pool").cloned(),
        from,
        to,
        metrics,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let sink = tx.clone();
        let r = db
            .export_csv(&req, move |chunk| {
                let sink = sink.clone();
                async move {
                    sink.send(Ok(Bytes::from(chunk)))
                        .await
                        .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
                }
            })
            .await;
        if let Err(e) = r {
            let e = match e {
                QueryError::Db(e) => format!("{e:#}"),
                e => e.to_string(),
            };
            tracing::warn!(error = %e, "CSV export cut short");
            // An error item aborts the chunked body (no final chunk): the client sees a failed read, not
            // a clean end of a truncated CSV.
            let _ = tx.send(Err(std::io::Error::other(e))).await;
        }
    });
    let name = match kind {
        Kind::Samples => "samples",
        Kind::Events => "events",
        Kind::Alerts => "alerts",
        Kind::Recycles => "recycles",
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"tend-{name}.csv\"")),
        ],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response())
}
