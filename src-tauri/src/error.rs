//! The one error shape commands return to the UI: `{code, message}`, the same codes as the HTTP API,
//! so the UI branches on `code`, never on message text. It only translates; it decides nothing.

use serde::Serialize;
use tend_core::fleet::CommandError;
use tend_engine::AppError;

#[derive(Debug, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CmdError {
    pub code: &'static str,
    pub message: String,
}

impl CmdError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        CmdError { code, message: message.into() }
    }
}

impl From<AppError> for CmdError {
    fn from(e: AppError) -> Self {
        let code = match &e {
            AppError::Stopped => "stopping",
            AppError::Command(c) => match c {
                CommandError::UnknownWorker(_) | CommandError::UnknownPool(_) => "not_found",
                CommandError::AlreadyRecycling(..) => "already_recycling",
                CommandError::ShuttingDown => "stopping",
                CommandError::Transition(_) => "invalid_transition",
                CommandError::NotReportedPool(..) | CommandError::NotReported(..) => "not_reported",
                CommandError::AlreadyRegistered(..) => "already_registered",
                CommandError::Ended(_) => "ended",
                CommandError::NotContainer(_) => "not_container",
            },
        };
        CmdError::new(code, e.to_string())
    }
}

impl From<anyhow::Error> for CmdError {
    fn from(e: anyhow::Error) -> Self {
        CmdError::new("store_error", format!("{e:#}"))
    }
}

pub type CmdResult<T> = Result<T, CmdError>;
