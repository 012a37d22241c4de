//! The small answers of the actions and reports, and the bodies of the alert actions.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{State, Timestamp};
use crate::report::ErrorKindBody;

/// `202` to a recycle, stop or remove: the worker and what is now under way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub worker: String,
    /// `recycling`, `stopping` or `removing`.
    pub status: String,
    /// For a recycle: why (`manual`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `202` to `POST /orphans/clean`: how many removals were started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Removing {
    pub removing: u64,
}

/// Body of `POST /alerts/ack`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRef {
    pub rule: String,
    /// A worker id for worker-scoped rules, the pool name for pool-scoped ones.
    pub subject: String,
}

/// Body of `POST /alerts/silence`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceBody {
    pub rule: String,
    pub subject: String,
    /// Minutes from now, 0 (lift the silence) to 525600.
    #[schema(minimum = 0.0, maximum = 525600.0)]
    pub minutes: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Acknowledged {
    pub rule: String,
    pub subject: String,
    pub acknowledged: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Silenced {
    pub rule: String,
    pub subject: String,
    /// Null when the silence was lifted.
    pub silenced_until: Option<Timestamp>,
}

/// `201` to a registration: the worker starts INITIALIZING.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    pub worker: String,
    pub pool: String,
    pub state: State,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StateSet {
    pub worker: String,
    pub state: State,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricsRecorded {
    pub worker: String,
    /// How many metrics the report carried.
    pub metrics: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorRecorded {
    pub worker: String,
    pub kind: ErrorKindBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestsAdded {
    pub worker: String,
    pub added: u64,
}
