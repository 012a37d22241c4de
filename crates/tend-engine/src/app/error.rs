//! What can go wrong behind the facade, and the one translation of it into the wire's error
//! ([`tend_api::ApiError`]: code, message, allowed states) that both shells send as they are.

use tend_api::{ApiError, ErrorCode};
use tend_core::fleet::CommandError;

use crate::dto::ToWire;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the engine has stopped")]
    Stopped,
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A parameter or field is invalid; the message names it.
    #[error("{0}")]
    BadRequest(String),
    /// No such worker, pool or alert; the message names it.
    #[error("{0}")]
    NotFound(String),
    /// The history store is off or not open; the message says which.
    #[error("{0}")]
    StoreUnavailable(String),
    /// The history store failed to answer.
    #[error("{0}")]
    Store(String),
    /// The agent of a remote worker did not answer, or refused: its own error when it gave one.
    #[error("host {host}: {}", failure.detail)]
    Remote { host: String, failure: crate::remote::Failure },
}

impl AppError {
    /// `parameter "from": ...`: a bad parameter or field, named.
    pub fn bad_param(param: &str, message: impl std::fmt::Display) -> Self {
        AppError::BadRequest(format!("parameter {param:?}: {message}"))
    }

    pub(crate) fn store(e: anyhow::Error) -> Self {
        AppError::Store(format!("{e:#}"))
    }

    /// The wire's error for this failure.
    pub fn to_api(&self) -> ApiError {
        if let AppError::Remote { host, failure: crate::remote::Failure { api: Some(e), .. } } = self {
            return ApiError { message: format!("host {host}: {}", e.message), ..e.clone() };
        }
        let code = match self {
            AppError::Remote { .. } => ErrorCode::HostUnreachable,
            AppError::Stopped => ErrorCode::Stopping,
            AppError::BadRequest(_) => ErrorCode::BadRequest,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::StoreUnavailable(_) => ErrorCode::StoreUnavailable,
            AppError::Store(_) => ErrorCode::StoreError,
            AppError::Command(c) => match c {
                CommandError::UnknownWorker(_) | CommandError::UnknownPool(_) => ErrorCode::NotFound,
                CommandError::AlreadyRecycling(..) => ErrorCode::AlreadyRecycling,
                CommandError::ShuttingDown => ErrorCode::Stopping,
                CommandError::Transition(_) => ErrorCode::InvalidTransition,
                CommandError::NotReportedPool(..) | CommandError::NotReported(..) => ErrorCode::NotReported,
                CommandError::AlreadyRegistered(..) => ErrorCode::AlreadyRegistered,
                CommandError::Ended(_) => ErrorCode::Ended,
                CommandError::NotContainer(_) => ErrorCode::NotContainer,
            },
        };
        let allowed = match self {
            AppError::Command(CommandError::Transition(t)) => {
                Some(t.allowed.iter().map(ToWire::wire).collect())
            }
            _ => None,
        };
        ApiError { code, message: self.to_string(), allowed }
    }
}

impl From<tend_store::query::QueryError> for AppError {
    fn from(e: tend_store::query::QueryError) -> Self {
        use tend_store::query::QueryError;
        match e {
            QueryError::BadParam { param, message } => AppError::bad_param(param, message),
            QueryError::UnknownWorker(w) => AppError::NotFound(format!("no worker with id {w:?}")),
            QueryError::Db(e) => AppError::store(e),
        }
    }
}
