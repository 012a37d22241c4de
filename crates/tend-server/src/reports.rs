//! The report API: orchestrators register their workers and report state changes, metrics, errors and
//! handled requests. Handlers parse the body (the wire types of `tend_api::report`) and hand it to the
//! facade, which checks each field (naming the one at fault); the fleet's state machine decides, and a
//! refused transition comes back as 409 with the allowed states. Nothing here keeps state of its own.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use tend_engine::api::State as LifecycleState;
use tend_engine::api::report::{ErrorBody, RegisterBody, RequestsBody, StateBody};

use crate::{ApiResult, Ctx, body, json_body};

pub(crate) fn routes() -> axum::Router<Ctx> {
    axum::Router::new()
        .route("/workers", post(register))
        .route("/workers/{id}/state", post(state))
        .route("/workers/{id}/metrics", post(metrics))
        .route("/workers/{id}/errors", post(error).get(errors))
        .route("/workers/{id}/requests", post(requests))
}

#[utoipa::path(post, path = "/api/v1/workers", tag = "reports", request_body = RegisterBody,
    responses((status = 201, description = "Registered: INITIALIZING"),
        (status = 400, description = "Invalid body, naming the field"),
        (status = 404, description = "No such pool"),
        (status = 409, description = "Already registered, or the pool is not a reported pool")))]
pub(crate) async fn register(
    State(ctx): State<Ctx>,
    raw: Result<axum::body::Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let b: RegisterBody = json_body(&body(raw)?)?;
    let (id, pool) = (b.id.clone(), b.pool.clone());
    ctx.app.register(b).await?;
    let out = json!({"worker": id, "pool": pool, "state": LifecycleState::Initializing});
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[utoipa::path(post, path = "/api/v1/workers/{id}/state", tag = "reports", request_body = StateBody,
    params(("id" = String, Path, description = "Worker id")),
    responses((status = 200, description = "The worker is in the new state"),
        (status = 400, description = "Invalid body or unknown state name"),
        (status = 404, description = "No such worker"),
        (status = 409, description = "The lifecycle refuses the transition; `allowed` lists the states it accepts")))]
pub(crate) async fn state(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    raw: Result<axum::body::Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let b: StateBody = json_body(&body(raw)?)?;
    let to = ctx.app.report_state(&id, b).await?;
    Ok(Json(json!({"worker": id, "state": to})).into_response())
}

#[utoipa::path(post, path = "/api/v1/workers/{id}/metrics", tag = "reports",
    request_body(content = BTreeMap<String, f64>, description = "Metric name to value: memory_mb, cpu_percent and the other built-in names, or any custom name (letters, digits, `_ . :`)"),
    params(("id" = String, Path, description = "Worker id")),
    responses((status = 202, description = "Recorded and evaluated by the rules"),
        (status = 400, description = "Invalid body, naming the metric"),
        (status = 404, description = "No such worker"),
        (status = 409, description = "Not a reported worker, or it has ended")))]
pub(crate) async fn metrics(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    raw: Result<axum::body::Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let named: BTreeMap<String, f64> = json_body(&body(raw)?)?;
    let n = ctx.app.report_metrics(&id, named).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"worker": id, "metrics": n}))).into_response())
}

#[utoipa::path(post, path = "/api/v1/workers/{id}/errors", tag = "reports", request_body = ErrorBody,
    params(("id" = String, Path, description = "Worker id")),
    responses((status = 201, description = "Recorded"),
        (status = 400, description = "Invalid body, naming the field"),
        (status = 404, description = "No such worker"),
        (status = 409, description = "The worker has ended")))]
pub(crate) async fn error(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    raw: Result<axum::body::Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let b: ErrorBody = json_body(&body(raw)?)?;
    let kind = ctx.app.report_error(&id, b).await?;
    Ok((StatusCode::CREATED, Json(json!({"worker": id, "kind": kind}))).into_response())
}

#[utoipa::path(get, path = "/api/v1/workers/{id}/errors", tag = "reports",
    params(("id" = String, Path, description = "Worker id")),
    responses((status = 200, description = "Reported errors and warnings, oldest first: at (ms), incarnation, kind, message"),
        (status = 404, description = "No such worker")))]
pub(crate) async fn errors(State(ctx): State<Ctx>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(ctx.app.error_log(&id).await?).into_response())
}

#[utoipa::path(post, path = "/api/v1/workers/{id}/requests", tag = "reports", request_body = RequestsBody,
    params(("id" = String, Path, description = "Worker id")),
    responses((status = 200, description = "Added to the worker's request count"),
        (status = 400, description = "Invalid body, naming the field"),
        (status = 404, description = "No such worker"),
        (status = 409, description = "Not a reported worker, or it has ended")))]
pub(crate) async fn requests(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    raw: Result<axum::body::Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let b: RequestsBody = json_body(&body(raw)?)?;
    let added = ctx.app.report_requests(&id, b).await?;
    Ok(Json(json!({"worker": id, "added": added})).into_response())
}
