//! The report API: orchestrators register their workers and report state changes, metrics, errors and
//! handled requests. Handlers validate the body (naming the field at fault) and hand a
//! [`tend_core::fleet::Report`] to the facade; the fleet's state machine decides, and a refused
//! transition comes back as 409 with the allowed states. Nothing here keeps state of its own.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use tend_core::fleet::{ErrorKind, Registration, Report, metrics_from_named};
use tend_core::lifecycle::State as LifecycleState;
use tend_core::model::WorkerId;

use crate::{ApiError, ApiResult, Ctx, body, json_body};

/// Longest worker id, task id, label key or value, container name.
pub const MAX_ID: usize = 128;
pub const MAX_TEXT: usize = 256;
/// Longest error message kept.
pub const MAX_MESSAGE: usize = 4096;
pub const MAX_LABELS: usize = 32;
/// Most metrics in one report.
pub const MAX_METRICS: usize = 256;
/// Most requests added by one report.
pub const MAX_REQUESTS: u64 = 1_000_000_000;

pub(crate) fn routes() -> axum::Router<Ctx> {
    axum::Router::new()
        .route("/workers", post(register))
        .route("/workers/{id}/state", post(state))
        .route("/workers/{id}/metrics", post(metrics))
        .route("/workers/{id}/errors", post(error).get(errors))
        .route("/workers/{id}/requests", post(requests))
}

/// `POST /workers`: a worker of a `source = "reported"` pool.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// Stable id chosen by the orchestrator: letters, digits, `_ . - :`, at most 128.
    pub id: String,
    /// A pool declared with `source = "reported"`.
    pub pool: String,
    pub task_id: Option<String>,
    /// The worker's pid as the orchestrator sees it (shown, never signalled).
    pub pid: Option<u32>,
    /// Its container id or name.
    pub container: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `POST /workers/{id}/state`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateBody {
    /// One of INITIALIZING, READY, WORKING, COMPLETING, COMPLETED, FAILED, TIMEOUT, TERMINATED, CLEANED.
    pub state: String,
    /// Why, for the timeline.
    pub cause: Option<String>,
}

#[derive(Deserialize, Serialize, ToSchema, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKindBody {
    #[default]
    Error,
    Warning,
}

/// `POST /workers/{id}/errors`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub message: String,
    #[serde(default)]
    pub kind: ErrorKindBody,
}

/// `POST /workers/{id}/requests`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestsBody {
    /// Requests handled since the last report, 0 to 1e9.
    pub count: u64,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn check_text(field: &str, v: &str, max: usize) -> ApiResult<()> {
    if v.chars().count() > max {
        return Err(bad(format!("field {field:?} is longer than {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(bad(format!("field {field:?} must not contain control characters")));
    }
    Ok(())
}

/// Worker ids end up in URLs and Prometheus labels: keep them to a safe alphabet.
fn check_id(field: &str, id: &str) -> ApiResult<()> {
    if id.is_empty()
        || id.len() > MAX_ID
        || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
    {
        return Err(bad(format!(
            "field {field:?} must be 1 to {MAX_ID} letters, digits, '_', '.', '-' or ':', not {id:?}"
        )));
    }
    Ok(())
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
    check_id("id", &b.id)?;
    check_text("pool", &b.pool, MAX_TEXT)?;
    if let Some(t) = &b.task_id {
        check_text("task_id", t, MAX_TEXT)?;
    }
    if let Some(c) = &b.container {
        check_text("container", c, MAX_TEXT)?;
    }
    if b.labels.len() > MAX_LABELS {
        return Err(bad(format!("field \"labels\" has more than {MAX_LABELS} labels")));
    }
    for (k, v) in &b.labels {
        check_text(&format!("labels.{k}"), k, MAX_TEXT)?;
        check_text(&format!("labels.{k}"), v, MAX_TEXT)?;
    }
    let reg = Registration {
        id: WorkerId::new(b.id.clone()),
        pool: b.pool.clone(),
        task_id: b.task_id,
        pid: b.pid,
        process: None,
        container: b.container,
        labels: b.labels,
    };
    ctx.app.report(Report::Register(reg)).await?;
    let out = json!({"worker": b.id, "pool": b.pool, "state": LifecycleState::Initializing});
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
    let Some(to) = LifecycleState::parse(&b.state) else {
        let names: Vec<&str> = LifecycleState::ALL.iter().map(|s| s.as_str()).collect();
        return Err(bad(format!(
            "field \"state\": unknown state {:?}, expected one of {}",
            b.state,
            names.join(", ")
        )));
    };
    if let Some(c) = &b.cause {
        check_text("cause", c, MAX_TEXT)?;
    }
    ctx.app.report(Report::State { worker: WorkerId::new(id.clone()), state: to, cause: b.cause }).await?;
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
    if named.is_empty() {
        return Err(bad("the body must name at least one metric, like {\"memory_mb\": 256.5}"));
    }
    if named.len() > MAX_METRICS {
        return Err(bad(format!("at most {MAX_METRICS} metrics per report")));
    }
    let metrics = metrics_from_named(&named).map_err(bad)?;
    ctx.app.report(Report::Metrics { worker: WorkerId::new(id.clone()), metrics }).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"worker": id, "metrics": named.len()}))).into_response())
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
    if b.message.trim().is_empty() {
        return Err(bad("field \"message\" must not be empty"));
    }
    if b.message.chars().count() > MAX_MESSAGE {
        return Err(bad(format!("field \"message\" is longer than {MAX_MESSAGE} characters")));
    }
    let kind = match b.kind {
        ErrorKindBody::Error => ErrorKind::Error,
        ErrorKindBody::Warning => ErrorKind::Warning,
    };
    ctx.app.report(Report::Error { worker: WorkerId::new(id.clone()), kind, message: b.message }).await?;
    Ok((StatusCode::CREATED, Json(json!({"worker": id, "kind": b.kind}))).into_response())
}

#[utoipa::path(get, path = "/api/v1/workers/{id}/errors", tag = "reports",
    params(("id" = String, Path, description = "Worker id")),
    responses((status = 200, description = "Reported errors and warnings, oldest first: at (ms), incarnation, kind, message"),
        (status = 404, description = "No such worker")))]
pub(crate) async fn errors(State(ctx): State<Ctx>, Path(id): Path<String>) -> ApiResult<Response> {
    match ctx.app.error_log(&id).await? {
        Some(log) => Ok(Json(log).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no worker with id {id:?}"))),
    }
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
    if b.count > MAX_REQUESTS {
        return Err(bad(format!("field \"count\" must be at most {MAX_REQUESTS}")));
    }
    ctx.app.report(Report::Requests { worker: WorkerId::new(id.clone()), count: b.count }).await?;
    Ok(Json(json!({"worker": id, "added": b.count})).into_response())
}
