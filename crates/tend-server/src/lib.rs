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
use tokio::sync::broadcast::error::RecvError;

use tend_core::fleet::CommandError;
use tend_core::time::Timestamp;
use tend_engine::{App, AppError};

pub mod conn;
mod history;
mod metrics;
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
    let nofile = tend_collect::fd_limit::raise_nofile_to_hard()
        .inspect_err(|e| tracing::warn!(error = %e, "cannot raise the descriptor limit to its hard limit"))
        .ok()
        .or_else(tend_collect::fd_limit::nofile_soft_limit);
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

/// An error answer: `{"error": {"code": "...", "message": "..."}}`. Clients branch on `code`.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Machine-readable details beside code and message (e.g. `allowed` states).
    extra: Option<(&'static str, serde_json::Value)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), extra: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let (Some((k, v)), Some(obj)) = (self.extra, error.as_object_mut()) {
            obj.insert(k.to_owned(), v);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", e.to_string()),
            AppError::Command(c) => match &c {
                CommandError::UnknownWorker(_) => {
                    ApiError::new(StatusCode::NOT_FOUND, "not_found", c.to_string())
                }
                CommandError::AlreadyRecycling(..) => {
                    ApiError::new(StatusCode::CONFLICT, "already_recycling", c.to_string())
                }
                CommandError::ShuttingDown => {
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", c.to_string())
                }
                CommandError::Transition(t) => ApiError {
                    extra: Some(("allowed", json!(t.allowed))),
                    ..ApiError::new(StatusCode::CONFLICT, "invalid_transition", c.to_string())
                },
                CommandError::UnknownPool(_) => {
                    ApiError::new(StatusCode::NOT_FOUND, "not_found", c.to_string())
                }
                CommandError::NotReportedPool(..) | CommandError::NotReported(..) => {
                    ApiError::new(StatusCode::CONFLICT, "not_reported", c.to_string())
                }
                CommandError::AlreadyRegistered(..) => {
                    ApiError::new(StatusCode::CONFLICT, "already_registered", c.to_string())
                }
                CommandError::Ended(_) => ApiError::new(StatusCode::CONFLICT, "ended", c.to_string()),
                CommandError::NotContainer(_) => {
                    ApiError::new(StatusCode::CONFLICT, "not_container", c.to_string())
                }
            },
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

async fn auth(State(ctx): State<Ctx>, headers: HeaderMap, req: Request, next: Next) -> Response {
    if let Some(token) = &ctx.token
        && req.uri().path() != "/health"
    {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| bearer(v.as_bytes()));
        if !given.is_some_and(|g| same_secret(g, token.as_bytes())) {
            return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong bearer token")
                .into_response();
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
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

async fn health(State(ctx): State<Ctx>) -> ApiResult<Response> {
    Ok(Json(ctx.app.health().await?).into_response())
}

async fn settings(State(ctx): State<Ctx>) -> Json<tend_engine::dto::SettingsDto> {
    Json(ctx.app.settings())
}

async fn workers(State(ctx): State<Ctx>) -> ApiResult<Response> {
    Ok(Json(ctx.app.workers().await?).into_response())
}

async fn worker(State(ctx): State<Ctx>, Path(id): Path<String>) -> ApiResult<Response> {
    match ctx.app.worker(&id).await? {
        Some(w) => Ok(Json(w).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no worker with id {id:?}"))),
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
    if ctx.app.worker(&id).await?.is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no worker with id {id:?}")));
    }
    Ok(Json(ctx.app.events_since(q.since.unwrap_or(0), Some(id)).await?).into_response())
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
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no pool named {name:?}"))),
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
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("request body larger than {MAX_BODY} bytes"),
    )
    .into_response()
}

/// The body, or 413 (too large) / 400 (unreadable) in the API's error shape.
fn body(
    raw: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<axum::body::Bytes> {
    raw.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("request body larger than {MAX_BODY} bytes"),
            )
        } else {
            ApiError::new(e.status(), "bad_request", e.body_text())
        }
    })
}

async fn prometheus_metrics(State(ctx): State<Ctx>, headers: HeaderMap) -> ApiResult<Response> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (content_type, page) = metrics::render(&ctx.app, accept).await?;
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
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    })?;
    de.end().map_err(|e| {
        let message = format!("invalid request body: {e} (after the JSON value; send exactly one)");
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    })?;
    Ok(value)
}

async fn ack(
    State(ctx): State<Ctx>,
    raw: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let r: AlertRef = json_body(&body(raw)?)?;
    if ctx.app.acknowledge(&r.rule, &r.subject).await? {
        Ok(Json(json!({"rule": r.rule, "subject": r.subject, "acknowledged": true})).into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no alert {} on {}", r.rule, r.subject),
        ))
    }
}

async fn silence(
    State(ctx): State<Ctx>,
    raw: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let r: SilenceBody = json_body(&body(raw)?)?;
    if !r.minutes.is_finite() || r.minutes < 0.0 || r.minutes > 60.0 * 24.0 * 365.0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "field \"minutes\" must be a number from 0 (lift) to 525600",
        ));
    }
    let until = (r.minutes > 0.0)
        .then(|| Timestamp::from_millis(ctx.app.now().as_millis() + (r.minutes * 60_000.0) as i64));
    if ctx.app.silence(&r.rule, &r.subject, until).await? {
        Ok(Json(json!({"rule": r.rule, "subject": r.subject, "silenced_until": until})).into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no alert {} on {}", r.rule, r.subject),
        ))
    }
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
    // Subscribe before reading the backlog so nothing falls between the two.
    let mut rx = ctx.app.subscribe();
    let backlog = match last {
        Some(since) => ctx.app.events_since(since, None).await?,
        None => Vec::new(),
    };
    let stream = async_stream(move |tx| async move {
        let mut sent = 0u64;
        for ev in backlog {
            sent = ev.seq;
            if tx.send(to_sse(&ev)).await.is_err() {
                return;
            }
        }
        loop {
            match rx.recv().await {
                Ok(ev) if ev.seq <= sent => continue,
                Ok(ev) => {
                    if tx.send(to_sse(&ev)).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    let note = SseEvent::default().event("lagged").data(json!({"missed": n}).to_string());
                    if tx.send(note).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn to_sse(ev: &tend_core::Event) -> SseEvent {
    SseEvent::default()
        .event(ev.kind.name())
        .id(ev.seq.to_string())
        .data(serde_json::to_string(ev).unwrap_or_else(|e| json!({"error": e.to_string()}).to_string()))
}

/// A stream fed by a task through a small channel: backpressure reaches the producer.
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<SseEvent>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    futures::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), Ok::<_, Infallible>)
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
        let ok: serde_json::Value = json_body(b" {\"a\": 1} \n").map_err(|e| e.message).unwrap();
        assert_eq!(ok, json!({"a": 1}));
        let e = json_body::<serde_json::Value>(b"{\"a\":1} xyz").err().unwrap();
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "bad_request"));
        assert!(e.message.contains("trailing characters at line 1 column 9"), "{}", e.message);
        assert!(json_body::<serde_json::Value>(b"{\"a\":1}{\"b\":2}").is_err());
    }
}
