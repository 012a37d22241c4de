//! Tend's HTTP face: the REST API under `/api/v1` and the Server-Sent Events stream, over the engine's
//! [`App`] facade. Handlers are thin: parse, call the facade, shape the answer. This crate knows HTTP
//! and nothing else; it never decides anything about workers.
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;

use tend_engine::api::{self, ErrorCode};
use tend_engine::app::Streamed;
use tend_engine::{App, AppError};

pub mod conn;
mod history;
pub mod openapi;
mod reports;
pub mod ui;

/// Largest request body accepted; larger ones are answered 413. Reports are a few hundred bytes.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
struct Ctx {
    app: App,
    token: Option<String>,
}

/// The router, for tests and for embedding.
pub fn router(app: App, token: Option<String>) -> Router {
    let ctx = Ctx { app, token };
    let api = Router::new()
        .route("/health", get(health))
        .route("/settings", get(settings))
        .route("/workers", get(workers))
        .route("/workers/{id}", get(worker))
        .route("/workers/{id}/events", get(worker_events))
        .route("/workers/{id}/recycle", post(recycle))
        .route("/workers/{id}/stop", post(stop))
        .route("/workers/{id}/remove", post(remove))
        .route("/orphans", get(orphans))
        .route("/orphans/clean", post(clean_orphans))
        .route("/pools", get(pools))
        .route("/pools/{name}/metrics", get(pool_metrics))
        .route("/alerts", get(alerts))
        .route("/alerts/ack", post(ack))
        .route("/alerts/silence", post(silence))
        .route("/events", get(events))
        .merge(reports::routes())
        .merge(history::routes())
        .route("/openapi.json", get(openapi::serve))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(ctx.clone(), auth))
        .layer(middleware::from_fn(refuse_oversized))
        .with_state(ctx.clone());
    // Scraped by Prometheus: outside /api/v1 by convention, behind the same token when one is set.
    let exposition = Router::new()
        .route("/metrics", get(prometheus_metrics))
        .layer(middleware::from_fn_with_state(ctx.clone(), auth))
        .with_state(ctx);
    Router::new().nest("/api/v1", api).merge(exposition).fallback(ui_or_not_found)
}

/// Bind and serve until `shutdown` resolves. Returns the bound address through `bound` first.
pub async fn serve(
    app: App,
    listen: SocketAddr,
    token: Option<String>,
    bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() && token.is_none() {
        anyhow::bail!(
            "refusing to listen on {listen} without a token: set [server] token or TEND_TOKEN, or listen on 127.0.0.1"
        );
    }
    // Idle connections cost a descriptor each: take the whole allowance, then keep a share of it.
    let nofile = tend_engine::os::raise_nofile_to_hard()
        .inspect_err(|e| tracing::warn!(error = %e, "cannot raise the descriptor limit to its hard limit"))
        .ok()
        .or_else(tend_engine::os::nofile_soft_limit);
    let limits = conn::Limits::from_env(|k| std::env::var(k).ok(), nofile).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    bound(listener.local_addr()?);
    tracing::info!(
        header_timeout = ?limits.header_timeout,
        idle_timeout = ?limits.idle_timeout,
        max_connections = limits.max_connections,
        descriptor_limit = ?nofile,
        "HTTP connection limits"
    );
    conn::serve(listener, router(app, token), limits, shutdown).await;
    Ok(())
}

/// An error answer: `{"error": {"code": "...", "message": "..."}}` with the status that goes with the
/// code. Clients branch on `code`.
struct ApiError(api::ApiError);

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(api::ApiError::new(code, message))
    }

    fn bad(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::BadRequest, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(api::ErrorResponse { error: self.0 })).into_response()
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e.to_api())
    }
}

type ApiResult<T> = Result<T, ApiError>;

async fn auth(State(ctx): State<Ctx>, headers: HeaderMap, req: Request, next: Next) -> Response {
    if let Some(token) = &ctx.token
        && req.uri().path() != "/health"
    {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| bearer(v.as_bytes()));
        if !given.is_some_and(|g| same_secret(g, token.as_bytes())) {
            return ApiError::new(ErrorCode::Unauthorized, "missing or wrong bearer token").into_response();
        }
    }
    next.run(req).await
}

/// The credentials of an `Authorization: Bearer <token>` header. The scheme is case-insensitive (RFC
/// 7235): `bearer`, `BEARER` and `Bearer` are the same.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Equal secrets, compared in time that does not depend on where they differ (only on the length).
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && std::hint::black_box(given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b))) == 0
}

/// Outside the API, paths belong to the web UI (its files, or `index.html` for its routes).
async fn ui_or_not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        return not_found(req).await.into_response();
    }
    ui::serve(req.method().clone(), req.uri().clone()).await
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no route for {} {}", req.method(), req.uri().path()))
}

async fn health(State(ctx): State<Ctx>) -> ApiResult<Response> {
    Ok(Json(ctx.app.health().await?).into_response())
}

async fn settings(State(ctx): State<Ctx>) -> Json<api::SettingsDto> {
    Json(ctx.app.settings())
}

async fn workers(State(ctx): State<Ctx>) -> ApiResult<Response> {
    Ok(Json(ctx.app.workers().await?).into_response())
}

async fn worker(State(ctx): State<Ctx>, Path(id): Path<String>) -> ApiResult<Response> {
    match ctx.app.worker(&id).await? {
        Some(w) => Ok(Json(w).into_response()),
        None => Err(ApiError::new(ErrorCode::NotFound, format!("no worker with id {id:?}"))),
    }
}

#[derive(Deserialize)]
struct SinceQuery {
    since: Option<u64>,
}

async fn worker_events(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Query<SinceQuery>,
) -> ApiResult<Response> {
    Ok(Json(ctx.app.worker_events(&id, q.since.unwrap_or(0)).await?).into_response())
}

async fn recycle(State(ctx): State<Ctx>, Path(id): Path<String>) -> ApiResult<Response> {
    ctx.app.recycle(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"worker": id, "status": "recycling", "reason": "manual"})))
        .into_response())
}

async fn stop(State(ctx): State<Ctx>, Path(id): Path<String>) -> ApiResult<Response> {
    ctx.app.stop(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"worker": id, "status": "stopping"}))).into_response())
}

async fn remove(State(ctx): State<Ctx>, Path(id): Path<String>) -> ApiResult<Response> {
    ctx.app.remove(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"worker": id, "status": "removing"}))).into_response())
}

async fn orphans(State(ctx): State<Ctx>) -> ApiResult<Response> {
    Ok(Json(ctx.app.orphans().await?).into_response())
}

async fn clean_orphans(State(ctx): State<Ctx>) -> ApiResult<Response> {
    let removing = ctx.app.clean_orphans().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"removing": removing}))).into_response())
}

async fn pools(State(ctx): State<Ctx>) -> ApiResult<Response> {
    Ok(Json(ctx.app.pools().await?).into_response())
}

async fn pool_metrics(State(ctx): State<Ctx>, Path(name): Path<String>) -> ApiResult<Response> {
    match ctx.app.pool_metrics(&name).await? {
        Some(m) => Ok(Json(m).into_response()),
        None => Err(ApiError::new(ErrorCode::NotFound, format!("no pool named {name:?}"))),
    }
}

async fn alerts(State(ctx): State<Ctx>) -> ApiResult<Response> {
    Ok(Json(ctx.app.alerts().await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertRef {
    rule: String,
    subject: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    rule: String,
    subject: String,
    /// Minutes from now; 0 lifts the silence.
    minutes: f64,
}

/// What an oversized request may still send before Tend stops reading it and closes the connection.
const DRAIN_MAX: u64 = 4 * 1024 * 1024;

/// A body announced larger than [`MAX_BODY`] gets its 413 without a handler; what the client is still
/// sending (up to [`DRAIN_MAX`]) is read and dropped first, so the client receives the answer instead of
/// a connection reset in the middle of its upload. Chunked bodies are limited by the handlers.
async fn refuse_oversized(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(len) = announced.filter(|len| *len > MAX_BODY as u64) else {
        return next.run(req).await;
    };
    if len <= DRAIN_MAX {
        use futures::StreamExt;
        let mut rest = req.into_body().into_data_stream();
        while let Some(Ok(_)) = rest.next().await {}
    }
    ApiError::new(ErrorCode::TooLarge, format!("request body larger than {MAX_BODY} bytes")).into_response()
}

/// The body, or 413 (too large) / 400 (unreadable) in the API's error shape.
fn body(
    raw: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<axum::body::Bytes> {
    raw.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::TooLarge, format!("request body larger than {MAX_BODY} bytes"))
        } else {
            ApiError::bad(e.body_text())
        }
    })
}

async fn prometheus_metrics(State(ctx): State<Ctx>, headers: HeaderMap) -> ApiResult<Response> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (content_type, page) = ctx.app.prometheus_page(accept).await?;
    Ok(([(header::CONTENT_TYPE, content_type)], page).into_response())
}

/// Parse a JSON body, naming the field at fault: `field "rule": invalid type: integer, expected a string`.
/// The body must be that one JSON value: anything but whitespace after it is refused.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let message = if path == "." {
            format!("invalid request body: {}", e.inner())
        } else {
            format!("field {path:?}: {}", e.inner())
        };
        ApiError::bad(message)
    })?;
    de.end().map_err(|e| {
        ApiError::bad(format!("invalid request body: {e} (after the JSON value; send exactly one)"))
    })?;
    Ok(value)
}

async fn ack(
    State(ctx): State<Ctx>,
    raw: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let r: AlertRef = json_body(&body(raw)?)?;
    ctx.app.acknowledge(&r.rule, &r.subject).await?;
    Ok(Json(json!({"rule": r.rule, "subject": r.subject, "acknowledged": true})).into_response())
}

async fn silence(
    State(ctx): State<Ctx>,
    raw: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let r: SilenceBody = json_body(&body(raw)?)?;
    let until = ctx.app.silence(&r.rule, &r.subject, r.minutes).await?;
    Ok(Json(json!({"rule": r.rule, "subject": r.subject, "silenced_until": until})).into_response())
}

/// Server-Sent Events: every event as JSON, `event:` its type, `id:` its sequence number. A client that
/// reconnects with `Last-Event-ID` (or `?since=`) first gets what it missed from the in-memory log.
async fn events(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Query(q): Query<SinceQuery>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for h in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR   abc  "] {
            assert_eq!(bearer(h.as_bytes()), Some(&b"abc"[..]), "{h:?}");
        }
        for h in ["Basic abc", "Bearerabc", "Bearer ", "Bearer", "abc", "Bearers abc"] {
            assert_eq!(bearer(h.as_bytes()), None, "{h:?}");
        }
    }

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3creT", b"s3cret"));
        assert!(!same_secret(b"s3cret-", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
    }

    #[test]
    fn a_json_body_is_one_value_and_nothing_after_it() {
        let ok: serde_json::Value = json_body(b" {\"a\": 1} \n").map_err(|e| e.0.message).unwrap();
        assert_eq!(ok, json!({"a": 1}));
        let e = json_body::<serde_json::Value>(b"{\"a\":1} xyz").err().unwrap();
        assert_eq!(e.0.code, ErrorCode::BadRequest);
        assert!(e.0.message.contains("trailing characters at line 1 column 9"), "{}", e.0.message);
        assert!(json_body::<serde_json::Value>(b"{\"a\":1}{\"b\":2}").is_err());
    }
}
