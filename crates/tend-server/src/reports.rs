//! The report API: orchestrators register their workers and report state changes, metrics, errors and
//! handled requests. Handlers parse the body (the wire types of `tend_api::report`) and hand it to the
//! facade, which checks each field (naming the one at fault); the fleet's state machine decides, and a
//! refused transition comes back as 409 with the allowed states. Nothing here keeps state of its own.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use tend_engine::api::reply::{ErrorRecorded, MetricsRecorded, Registered, RequestsAdded, StateSet};
use tend_engine::api::report::{ErrorBody, MetricsBody, RegisterBody, RequestsBody, StateBody};
use tend_engine::api::{self, State as LifecycleState};

use crate::{ApiResult, Ctx, JsonBody};

pub(crate) fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(state))
        .routes(routes!(metrics))
        .routes(routes!(error, errors))
        .routes(routes!(requests))
}

/// Register a worker of a `source = "reported"` pool: it starts INITIALIZING.
#[utoipa::path(post, path = "/workers", tag = "reports", request_body = RegisterBody,
    responses((status = 201, body = Registered),
        (status = 404, body = api::ErrorResponse, description = "No such pool"),
        (status = 409, body = api::ErrorResponse, description = "Already registered, or the pool is not a reported pool")))]
pub(crate) async fn register(
    State(ctx): State<Ctx>,
    JsonBody(b): JsonBody<RegisterBody>,
) -> ApiResult<Response> {
    let (worker, pool) = (b.id.clone(), b.pool.clone());
    ctx.app.register(b).await?;
    let out = Registered { worker, pool, state: LifecycleState::Initializing };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// A reported worker's new lifecycle state.
#[utoipa::path(post, path = "/workers/{id}/state", tag = "reports", request_body = StateBody,
    params(("id" = String, Path, description = "Worker id")),
    responses((status = 200, body = StateSet),
        (status = 404, body = api::ErrorResponse, description = "No such worker"),
        (status = 409, body = api::ErrorResponse, description = "The lifecycle refuses the transition; `allowed` lists the states it accepts")))]
pub(crate) async fn state(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<StateBody>,
) -> ApiResult<Json<StateSet>> {
    let state = ctx.app.report_state(&id, b).await?;
    Ok(Json(StateSet { worker: id, state }))
}

/// Metrics by name: `memory_mb`, `cpu_percent` and the other built-in names, or any custom name
/// (letters, digits, `_ . :`); recorded and evaluated by the rules.
#[utoipa::path(post, path = "/workers/{id}/metrics", tag = "reports",
    request_body = MetricsBody,
    params(("id" = String, Path, description = "Worker id")),
    responses((status = 202, body = MetricsRecorded),
        (status = 404, body = api::ErrorResponse, description = "No such worker"),
        (status = 409, body = api::ErrorResponse, description = "Not a reported worker, or it has ended")))]
pub(crate) async fn metrics(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    JsonBody(MetricsBody(named)): JsonBody<MetricsBody>,
) -> ApiResult<Response> {
    let n = ctx.app.report_metrics(&id, named).await? as u64;
    Ok((StatusCode::ACCEPTED, Json(MetricsRecorded { worker: id, metrics: n })).into_response())
}

/// An error or warning the worker hit.
#[utoipa::path(post, path = "/workers/{id}/errors", tag = "reports", request_body = ErrorBody,
    params(("id" = String, Path, description = "Worker id")),
    responses((status = 201, body = ErrorRecorded),
        (status = 404, body = api::ErrorResponse, description = "No such worker"),
        (status = 409, body = api::ErrorResponse, description = "The worker has ended")))]
pub(crate) async fn error(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ErrorBody>,
) -> ApiResult<Response> {
    let kind = ctx.app.report_error(&id, b).await?;
    Ok((StatusCode::CREATED, Json(ErrorRecorded { worker: id, kind })).into_response())
}

/// Reported errors and warnings, oldest first.
#[utoipa::path(get, path = "/workers/{id}/errors", tag = "reports",
    params(("id" = String, Path, description = "Worker id")),
    responses((status = 200, body = Vec<api::ErrorRecord>),
        (status = 404, body = api::ErrorResponse, description = "No such worker")))]
pub(crate) async fn errors(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<api::ErrorRecord>>> {
    Ok(Json(ctx.app.error_log(&id).await?))
}

/// Requests the worker handled since its last report, added to its count.
#[utoipa::path(post, path = "/workers/{id}/requests", tag = "reports", request_body = RequestsBody,
    params(("id" = String, Path, description = "Worker id")),
    responses((status = 200, body = RequestsAdded),
        (status = 404, body = api::ErrorResponse, description = "No such worker"),
        (status = 409, body = api::ErrorResponse, description = "Not a reported worker, or it has ended")))]
pub(crate) async fn requests(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<RequestsBody>,
) -> ApiResult<Json<RequestsAdded>> {
    let added = ctx.app.report_requests(&id, b).await?;
    Ok(Json(RequestsAdded { worker: id, added }))
}
