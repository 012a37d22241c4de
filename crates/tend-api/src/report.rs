//! What orchestrators send (the report API): bodies as they are parsed, with the limits the engine
//! enforces on them. Unknown fields are refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

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

/// `POST /workers`: a worker of a `source = "reported"` pool.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
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
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateBody {
    /// One of INITIALIZING, READY, WORKING, COMPLETING, COMPLETED, FAILED, TIMEOUT, TERMINATED, CLEANED.
    pub state: String,
    /// Why, for the timeline.
    pub cause: Option<String>,
}

#[derive(Deserialize, Serialize, ToSchema, TS, Default, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKindBody {
    #[default]
    Error,
    Warning,
}

/// `POST /workers/{id}/errors`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub message: String,
    #[serde(default)]
    pub kind: ErrorKindBody,
}

/// `POST /workers/{id}/requests`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestsBody {
    /// Requests handled since the last report, 0 to 1e9.
    pub count: u64,
}
