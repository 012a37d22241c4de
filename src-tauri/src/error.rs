//! The one error shape commands return to the UI: the wire's `{code, message, allowed}`
//! (`tend_api::ApiError`), the same codes and messages as the HTTP API, so the UI branches on `code`,
//! never on message text. It only wraps; the facade decides the code.

use tend_engine::AppError;
use tend_engine::api::{ApiError, ErrorCode};

#[derive(Debug, serde::Serialize, thiserror::Error)]
#[error(transparent)]
#[serde(transparent)]
pub struct CmdError(ApiError);

impl CmdError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CmdError(ApiError::new(code, message))
    }
}

impl From<AppError> for CmdError {
    fn from(e: AppError) -> Self {
        CmdError(e.to_api())
    }
}

pub type CmdResult<T> = Result<T, CmdError>;
