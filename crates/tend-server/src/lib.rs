//! Tend's HTTP face: the REST API under `/api/v1` and the Server-Sent Events stream, over the engine's
//! [`App`] facade. Handlers are thin: parse, call the facade, shape the answer. This crate knows HTTP
//! and nothing else; it never decides anything about workers.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use tend_engine::api::{self, ErrorCode};
use tend_engine::config::ServerConfig;
use tend_engine::{App, AppError};

pub mod access;
pub mod conn;
mod history;
pub mod openapi;
mod reports;
pub mod tls;
pub mod ui;
mod workers;

/// Largest request body accepted; larger ones are answered 413. Reports are a few hundred bytes.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
struct Ctx {
    app: App,
    access: access::SharedAccess,
}

/// Every operation of the API with its documentation, before state is attached: `/api/v1/...` and
/// `/metrics`. The OpenAPI document is generated from this (see [`openapi::document`]).
pub(crate) fn operations() -> OpenApiRouter<Ctx> {
    let api = OpenApiRouter::new().merge(workers::routes()).merge(reports::routes()).merge(history::routes());
    OpenApiRouter::new().nest("/api/v1", api).routes(routes!(workers::prometheus_metrics))
}

/// The router, for tests and for embedding: `access` says which tokens it accepts.
pub fn router(app: App, access: access::Access) -> Router {
    let ctx = Ctx { app, access: std::sync::Arc::new(access) };
    let (ops, _) = operations().split_for_parts();
    // Paths under /api/ that match no operation answer in the API's error shape, not with the UI.
    let api_fallback = Router::new().route("/api/v1/{*rest}", get(not_found).fallback(not_found));
    ops.merge(api_fallback)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(ctx.clone(), access::check))
        .layer(middleware::from_fn(refuse_oversized))
        .with_state(ctx)
        .fallback(ui_or_not_found)
}

/// Bind and serve, as `[server]` says (address, tokens, TLS), until `shutdown` resolves. Returns the
/// bound address through `bound` first. The certificate files are watched for changes meanwhile.
pub async fn serve(
    app: App,
    server: &ServerConfig,
    bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listen = server.listen;
    if let Some(problem) = server.exposure_problem() {
        anyhow::bail!("refusing to start: {problem}");
    }
    let tls = match &server.tls {
        Some(files) => {
            let certificates = tls::Certificates::load(files)?;
            let acceptor = certificates.acceptor()?;
            tokio::spawn(certificates.watch());
            Some(acceptor)
        }
        None => None,
    };
    if tls.is_none() && !listen.ip().is_loopback() {
        tracing::warn!(%listen, "serving plain HTTP on a network address (insecure_http = true): tokens cross it in clear text");
    }
    // Idle connections cost a descriptor each: take the whole allowance, then keep a share of it.
    let nofile = tend_engine::os::raise_nofile_to_hard()
        .inspect_err(|e| tracing::warn!(error = %e, "cannot raise the descriptor limit to its hard limit"))
        .ok()
        .or_else(tend_engine::os::nofile_soft_limit);
    let limits = conn::Limits::from_env(|k| std::env::var(k).ok(), nofile).map_err(anyhow::Error::msg)?;
    let max_failures =
        access::Access::max_failures_from_env(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    bound(listener.local_addr()?);
    tracing::info!(
        header_timeout = ?limits.header_timeout,
        idle_timeout = ?limits.idle_timeout,
        max_connections = limits.max_connections,
        descriptor_limit = ?nofile,
        tls = tls.is_some(),
        "HTTP connection limits"
    );
    let access = access::Access::new(server).with_max_failures(max_failures);
    conn::serve(listener, router(app, access), limits, tls, shutdown).await;
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

/// Outside the API, paths belong to the web UI (its files, or `index.html` for its routes).
async fn ui_or_not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        return not_found(req).await.into_response();
    }
    ui::serve(req.method().clone(), req.uri().clone()).await
}

/// No operation at this path: named as the API sees it (without `/api/v1`).
async fn not_found(req: Request) -> ApiError {
    let path = req.uri().path();
    let path = path.strip_prefix("/api/v1").filter(|p| p.starts_with('/')).unwrap_or(path);
    ApiError::new(ErrorCode::NotFound, format!("no route for {} {path}", req.method()))
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

/// A JSON body of `T`: 413 when too large, 400 naming the field at fault, or when anything but
/// whitespace follows the value.
pub(crate) struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let raw = axum::body::Bytes::from_request(req, state).await;
        Ok(JsonBody(json_body(&body(raw)?)?))
    }
}

/// A query string of `T` (a type of `tend_api::query`): an unknown parameter is refused with the list
/// of known ones, a bad value is a 400 naming its parameter.
pub(crate) struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned + utoipa::IntoParams,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let known: Vec<String> = T::into_params(|| None).into_iter().map(|p| p.name).collect();
        for (k, _) in form_urlencoded::parse(query.as_bytes()) {
            if !known.iter().any(|n| *n == k) {
                let message = format!("unknown parameter; expected one of: {}", known.join(", "));
                return Err(AppError::bad_param(&k, message).into());
            }
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| {
            let path = e.path().to_string();
            let param = if path == "." { "query" } else { path.as_str() };
            AppError::bad_param(param, e.inner()).into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
