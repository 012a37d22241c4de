//! The live API: health and settings, workers and their actions, pools, alerts and their actions, the
//! event stream, the Prometheus page and the OpenAPI document. Each handler is annotated with what it
//! answers; the document is generated from these annotations and the router that serves them.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use tend_engine::api::query::SinceQuery;
use tend_engine::api::reply::{Accepted, Acknowledged, AlertRef, Removing, SilenceBody, Silenced};
use tend_engine::api::{self, ErrorCode};
use tend_engine::app::Streamed;

use crate::access::Caller;
use crate::{ApiError, ApiQuery, ApiResult, Ctx, JsonBody};

pub(crate) fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(settings))
        .routes(routes!(workers))
        .routes(routes!(hosts))
        .routes(routes!(worker))
        .routes(routes!(worker_events))
        .routes(routes!(recycle))
        .routes(routes!(stop))
        .routes(routes!(remove))
        .routes(routes!(orphans))
        .routes(routes!(clean_orphans))
        .routes(routes!(pools))
        .routes(routes!(pool_metrics))
        .routes(routes!(alerts))
        .routes(routes!(ack))
        .routes(routes!(silence))
        .routes(routes!(events))
        .routes(routes!(crate::openapi::openapi_json))
}

/// Status (ok, degraded, stopping), version, uptime, worker counts by state, alerts firing, Tend's own
/// CPU and memory. The only operation that needs no token.
#[utoipa::path(get, path = "/health", tag = "workers", security(()),
    responses((status = 200, body = api::HealthDto)))]
pub(crate) async fn health(State(ctx): State<Ctx>) -> ApiResult<Json<api::HealthDto>> {
    Ok(Json(ctx.app.health().await?))
}

/// Config file, data directory, retention of each history tier, the `[notifications]` budget and, in
/// the desktop app, what the notifier sent and held back.
#[utoipa::path(get, path = "/settings", tag = "workers", responses((status = 200, body = api::SettingsDto)))]
pub(crate) async fn settings(State(ctx): State<Ctx>) -> Json<api::SettingsDto> {
    Json(ctx.app.settings())
}

/// The agents of this hub (`[[remote]]`), each with its status (`ok`, `unreachable`, `unauthorized`,
/// `tls_error`, `degraded`, `connecting`), last contact, version, workers by state and round trip.
/// Empty when this Tend watches only its own host.
#[utoipa::path(get, path = "/hosts", tag = "workers", responses((status = 200, body = Vec<api::HostDto>)))]
pub(crate) async fn hosts(State(ctx): State<Ctx>) -> Json<Vec<api::HostDto>> {
    Json(ctx.app.hosts())
}

/// Every worker: id, pool, source, state, pid, metrics, requests, errors, recycling; on a hub, its
/// agents' workers too, each with its `host` (`null` for this Tend's own) and id `<id>@<host>`.
#[utoipa::path(get, path = "/workers", tag = "workers", responses((status = 200, body = Vec<api::WorkerDto>)))]
pub(crate) async fn workers(State(ctx): State<Ctx>) -> ApiResult<Json<Vec<api::WorkerDto>>> {
    Ok(Json(ctx.app.workers().await?))
}

/// The worker with its incarnations, recent samples and alerts.
#[utoipa::path(get, path = "/workers/{id}", tag = "workers",
    params(("id" = String, Path, description = "Worker id")),
    responses((status = 200, body = api::WorkerDetailDto), (status = 404, body = api::ErrorResponse, description = "No such worker")))]
pub(crate) async fn worker(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Json<api::WorkerDetailDto>> {
    match ctx.app.worker(&id).await? {
        Some(w) => Ok(Json(w)),
        None => Err(ApiError::new(ErrorCode::NotFound, format!("no worker with id {id:?}"))),
    }
}

/// The worker's events still in memory, oldest first.
#[utoipa::path(get, path = "/workers/{id}/events", tag = "workers",
    params(("id" = String, Path, description = "Worker id"), SinceQuery),
    responses((status = 200, body = Vec<api::Event>), (status = 404, body = api::ErrorResponse, description = "No such worker")))]
pub(crate) async fn worker_events(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SinceQuery>,
) -> ApiResult<Json<Vec<api::Event>>> {
    Ok(Json(ctx.app.worker_events(&id, q.since.unwrap_or(0)).await?))
}

fn accepted(worker: String, status: &str, reason: Option<&str>) -> Response {
    let body = Accepted { worker, status: status.to_owned(), reason: reason.map(str::to_owned) };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// Recycle the worker: a replacement is started and the old one drained once it is READY (for reported
/// workers: requested from the orchestrator).
#[utoipa::path(post, path = "/workers/{id}/recycle", tag = "workers",
    params(("id" = String, Path, description = "Worker id")),
    responses((status = 202, body = Accepted), (status = 404, body = api::ErrorResponse, description = "No such worker"),
        (status = 409, body = api::ErrorResponse, description = "Already being recycled, or the worker has ended")))]
pub(crate) async fn recycle(
    State(ctx): State<Ctx>,
    by: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    ctx.app.recycle(&id, &by.name).await?;
    Ok(accepted(id, "recycling", Some("manual")))
}

/// Stop the worker: drained (SIGTERM, the pool's grace, SIGKILL) and not replaced.
#[utoipa::path(post, path = "/workers/{id}/stop", tag = "workers",
    params(("id" = String, Path, description = "Worker id")),
    responses((status = 202, body = Accepted), (status = 404, body = api::ErrorResponse, description = "No such worker"),
        (status = 409, body = api::ErrorResponse, description = "The worker has ended or cannot be stopped now")))]
pub(crate) async fn stop(State(ctx): State<Ctx>, by: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    ctx.app.stop(&id, &by.name).await?;
    Ok(accepted(id, "stopping", None))
}

/// Stop (SIGTERM, the pool's stop_grace, SIGKILL) and remove a container worker; CLEANED follows the
/// engine's destroy event.
#[utoipa::path(post, path = "/workers/{id}/remove", tag = "containers",
    params(("id" = String, Path, description = "Worker id (a container worker)")),
    responses((status = 202, body = Accepted), (status = 404, body = api::ErrorResponse, description = "No such worker"),
        (status = 409, body = api::ErrorResponse, description = "Not a container worker (code not_container)")))]
pub(crate) async fn remove(
    State(ctx): State<Ctx>,
    by: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    ctx.app.remove(&id, &by.name).await?;
    Ok(accepted(id, "removing", None))
}

/// Containers carrying Tend's pool label whose owner is gone (the label names no configured pool, or
/// the owner pid no longer runs); listed every 5 s on the engines of the docker pools.
#[utoipa::path(get, path = "/orphans", tag = "containers", responses((status = 200, body = Vec<api::Orphan>)))]
pub(crate) async fn orphans(State(ctx): State<Ctx>) -> ApiResult<Json<Vec<api::Orphan>>> {
    Ok(Json(ctx.app.orphans().await?))
}

/// Remove (forced) every listed orphan.
#[utoipa::path(post, path = "/orphans/clean", tag = "containers", responses((status = 202, body = Removing)))]
pub(crate) async fn clean_orphans(State(ctx): State<Ctx>, by: Caller) -> ApiResult<Response> {
    let removing = ctx.app.clean_orphans(&by.name).await? as u64;
    Ok((StatusCode::ACCEPTED, Json(Removing { removing })).into_response())
}

/// Every pool's aggregate metrics.
#[utoipa::path(get, path = "/pools", tag = "workers", responses((status = 200, body = Vec<api::PoolMetrics>)))]
pub(crate) async fn pools(State(ctx): State<Ctx>) -> ApiResult<Json<Vec<api::PoolMetrics>>> {
    Ok(Json(ctx.app.pools().await?))
}

/// Totals and averages: workers by state, memory, CPU, requests, errors, warnings, task time, success
/// rate, recycles by reason.
#[utoipa::path(get, path = "/pools/{name}/metrics", tag = "workers",
    params(("name" = String, Path, description = "Pool name")),
    responses((status = 200, body = api::PoolMetrics), (status = 404, body = api::ErrorResponse, description = "No such pool")))]
pub(crate) async fn pool_metrics(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
) -> ApiResult<Json<api::PoolMetrics>> {
    match ctx.app.pool_metrics(&name).await? {
        Some(m) => Ok(Json(m)),
        None => Err(ApiError::new(ErrorCode::NotFound, format!("no pool named {name:?}"))),
    }
}

/// Every tracked alert with its state.
#[utoipa::path(get, path = "/alerts", tag = "workers", responses((status = 200, body = Vec<api::Alert>)))]
pub(crate) async fn alerts(State(ctx): State<Ctx>) -> ApiResult<Json<Vec<api::Alert>>> {
    Ok(Json(ctx.app.alerts().await?))
}

/// Acknowledge an alert.
#[utoipa::path(post, path = "/alerts/ack", tag = "workers", request_body = AlertRef,
    responses((status = 200, body = Acknowledged), (status = 404, body = api::ErrorResponse, description = "No such alert")))]
pub(crate) async fn ack(
    State(ctx): State<Ctx>,
    by: Caller,
    JsonBody(r): JsonBody<AlertRef>,
) -> ApiResult<Json<Acknowledged>> {
    ctx.app.acknowledge(&r.rule, &r.subject, &by.name).await?;
    Ok(Json(Acknowledged { rule: r.rule, subject: r.subject, acknowledged: true }))
}

/// Silence an alert's notifications for `minutes` (0 lifts the silence); it keeps changing state.
#[utoipa::path(post, path = "/alerts/silence", tag = "workers", request_body = SilenceBody,
    responses((status = 200, body = Silenced), (status = 404, body = api::ErrorResponse, description = "No such alert")))]
pub(crate) async fn silence(
    State(ctx): State<Ctx>,
    by: Caller,
    JsonBody(r): JsonBody<SilenceBody>,
) -> ApiResult<Json<Silenced>> {
    let until = ctx.app.silence(&r.rule, &r.subject, r.minutes, &by.name).await?;
    Ok(Json(Silenced { rule: r.rule, subject: r.subject, silenced_until: until }))
}

/// Server-Sent Events: every event as JSON, `event:` its type, `id:` its sequence number. A client that
/// reconnects with `Last-Event-ID` (or `?since=`) first gets what it missed from the in-memory log; one
/// that falls behind gets a `lagged` event with the number it missed.
#[utoipa::path(get, path = "/events", tag = "workers", params(SinceQuery),
    responses((status = 200, description = "The event stream", content_type = "text/event-stream", body = String)))]
pub(crate) async fn events(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<SinceQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or(q.since);
    let stream = futures::StreamExt::map(ctx.app.event_stream(last).await?, |item| {
        Ok::<_, Infallible>(match item {
            Streamed::Event(ev) => to_sse(&ev),
            Streamed::Lagged(n) => SseEvent::default().event("lagged").data(json!({"missed": n}).to_string()),
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn to_sse(ev: &api::Event) -> SseEvent {
    SseEvent::default()
        .event(ev.kind.name())
        .id(ev.seq.to_string())
        .data(serde_json::to_string(ev).unwrap_or_else(|e| json!({"error": e.to_string()}).to_string()))
}

/// Prometheus/OpenMetrics text: per-worker gauges labelled by pool and worker id, state, recycles by
/// reason, alerts firing, collection duration, Tend's own CPU and memory. OpenMetrics when the client
/// accepts it (Prometheus does), else the classic text format.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "The exposition", content(
        (String = "text/plain"),
        (String = "application/openmetrics-text")))))]
pub(crate) async fn prometheus_metrics(State(ctx): State<Ctx>, headers: HeaderMap) -> ApiResult<Response> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (content_type, page) = ctx.app.prometheus_page(accept).await?;
    Ok(([(header::CONTENT_TYPE, content_type)], page).into_response())
}
