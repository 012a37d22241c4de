//! The nouns on the wire: times, worker ids, sources, lifecycle states, processes, metrics, samples.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Milliseconds since the Unix epoch, UTC.
#[derive(
    Copy,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    TS,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// A worker's stable id: `pool-N` for a spawned slot, `pool-PID` for an attached process, the
/// orchestrator's own id for a reported worker.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, TS, utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct WorkerId(pub String);

/// Declares a fieldless wire enum with its names: `ALL` in declaration order, `as_str` as serialized
/// and `parse` (exact name only). One list per enum; the UI's constant arrays are generated from `ALL`.
macro_rules! names {
    ($ty:ident { $($variant:ident = $name:literal),* $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }
            pub fn parse(s: &str) -> Option<$ty> {
                match s { $($name => Some($ty::$variant),)* _ => None }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use names;

/// Where a worker comes from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, TS, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Tend started it and supervises it.
    Spawned,
    /// An existing process Tend found by name, command line or pid.
    Attached,
    /// A Docker container.
    Container,
    /// Known only through an orchestrator's reports.
    Reported,
}
names!(Source { Spawned = "spawned", Attached = "attached", Container = "container", Reported = "reported" });

/// A lifecycle state.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS, utoipa::ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Initializing,
    Ready,
    Working,
    Completing,
    Completed,
    Failed,
    Timeout,
    Terminated,
    Cleaned,
}
names!(State {
    Initializing = "INITIALIZING",
    Ready = "READY",
    Working = "WORKING",
    Completing = "COMPLETING",
    Completed = "COMPLETED",
    Failed = "FAILED",
    Timeout = "TIMEOUT",
    Terminated = "TERMINATED",
    Cleaned = "CLEANED",
});

/// Why a worker was recycled.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RecycleReason {
    Ttl,
    Requests,
    Memory,
    Died,
    Hung,
    Manual,
    Rule,
}
names!(RecycleReason {
    Ttl = "ttl",
    Requests = "requests",
    Memory = "memory",
    Died = "died",
    Hung = "hung",
    Manual = "manual",
    Rule = "rule",
});

/// A process as the kernel knows it: a pid alone is reused, (pid, start time) is not.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct ProcessId {
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat` (clock ticks after boot).
    pub start_ticks: u64,
}

/// One reading of a worker's resource use. Absent fields are left out, not null.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
#[ts(optional_fields)]
pub struct Metrics {
    /// CPU use in percent of one core (200 = two cores busy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// CPU use in percent of the whole host (all cores = 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_host_percent: Option<f64>,
    /// Resident memory in bytes (containers: usage minus inactive file cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Memory in percent of the host's memory (containers: of their limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_read_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_write_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_rx_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_tx_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fds: Option<u32>,
    /// Any other numeric metric, reported by an orchestrator or scraped from the worker.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, f64>,
}

/// A reading of one worker at one instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct Sample {
    pub worker: WorkerId,
    pub at: Timestamp,
    pub metrics: Metrics,
}

/// One recorded lifecycle transition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct Transition {
    pub from: Option<State>,
    pub to: State,
    pub at: Timestamp,
    pub cause: String,
}
