//! The one error shape of the API and the desktop commands: `{"error": {"code", "message"}}` over HTTP,
//! `{code, message}` over IPC. Clients branch on `code`, never on the message's text.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::model::{State, names};

/// What went wrong, for machines. Each code has one HTTP status ([`ErrorCode::status`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, TS, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A parameter or body field is invalid; the message names it.
    BadRequest,
    /// The bearer token is missing or wrong.
    Unauthorized,
    /// The token is valid but its role may not do this (a viewer asking to recycle).
    Forbidden,
    /// Too many failed token attempts from this address: wait (`Retry-After`).
    TooManyAttempts,
    /// No such worker, pool, alert or route.
    NotFound,
    /// The request body is larger than the server accepts.
    TooLarge,
    AlreadyRecycling,
    AlreadyRegistered,
    /// The lifecycle refuses the transition; `allowed` lists the states it accepts.
    InvalidTransition,
    /// The worker or pool is not a reported one.
    NotReported,
    /// The worker is not a container.
    NotContainer,
    /// The worker has ended.
    Ended,
    /// Tend is shutting down.
    Stopping,
    /// The history store is off or not open.
    StoreUnavailable,
    /// The history store failed to answer.
    StoreError,
    /// A file could not be written (desktop exports).
    IoError,
    /// A hub could not reach the agent of a remote worker (or could not use its answer).
    HostUnreachable,
}
names!(ErrorCode {
    BadRequest = "bad_request",
    Unauthorized = "unauthorized",
    Forbidden = "forbidden",
    TooManyAttempts = "too_many_attempts",
    NotFound = "not_found",
    TooLarge = "too_large",
    AlreadyRecycling = "already_recycling",
    AlreadyRegistered = "already_registered",
    InvalidTransition = "invalid_transition",
    NotReported = "not_reported",
    NotContainer = "not_container",
    Ended = "ended",
    Stopping = "stopping",
    StoreUnavailable = "store_unavailable",
    StoreError = "store_error",
    IoError = "io_error",
    HostUnreachable = "host_unreachable",
});

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::TooManyAttempts => 429,
            ErrorCode::NotFound => 404,
            ErrorCode::TooLarge => 413,
            ErrorCode::AlreadyRecycling
            | ErrorCode::AlreadyRegistered
            | ErrorCode::InvalidTransition
            | ErrorCode::NotReported
            | ErrorCode::NotContainer
            | ErrorCode::Ended => 409,
            ErrorCode::Stopping | ErrorCode::StoreUnavailable => 503,
            ErrorCode::StoreError | ErrorCode::IoError => 500,
            ErrorCode::HostUnreachable => 502,
        }
    }
}

/// An error: its code, a sentence for people, and (for a refused transition) the allowed states.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// For `invalid_transition`: the states the worker's lifecycle accepts from where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub allowed: Option<Vec<State>>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), allowed: None }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The body of every failing HTTP answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct ErrorResponse {
    pub error: ApiError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_names() {
        for c in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(c).ok(), Some(serde_json::json!(c.as_str())));
            assert!((400..600).contains(&c.status()), "{c}");
        }
    }

    #[test]
    fn allowed_appears_only_when_set() {
        let plain = serde_json::to_string(&ErrorResponse { error: ApiError::new(ErrorCode::NotFound, "no") });
        assert_eq!(plain.ok().as_deref(), Some(r#"{"error":{"code":"not_found","message":"no"}}"#));
        let refused = ApiError {
            allowed: Some(vec![State::Ready]),
            ..ApiError::new(ErrorCode::InvalidTransition, "x")
        };
        assert_eq!(
            serde_json::to_value(&refused).ok(),
            Some(serde_json::json!({"code": "invalid_transition", "message": "x", "allowed": ["READY"]}))
        );
    }
}
