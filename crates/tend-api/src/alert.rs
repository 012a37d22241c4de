//! Alerts on the wire: severity, state, the alert itself with the numbers a client draws (metric,
//! threshold, clear level, unit), and the unit of each metric name.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::model::{Timestamp, names};

#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, TS, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}
names!(Severity { Info = "info", Warning = "warning", Critical = "critical" });

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, TS, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
    Flapping,
    Resolved,
}
names!(AlertState {
    Inactive = "inactive",
    Pending = "pending",
    Firing = "firing",
    Flapping = "flapping",
    Resolved = "resolved",
});

/// The current status of one (rule, subject); sent whenever it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct Alert {
    pub rule: String,
    /// Worker id for worker-scoped rules, the pool name for pool-scoped ones.
    pub subject: String,
    pub pool: String,
    pub severity: Severity,
    pub state: AlertState,
    /// The last reading that was observed, in `unit`.
    pub value: Option<f64>,
    /// The fire threshold, when the condition has one, in `unit`.
    pub threshold: Option<f64>,
    /// When the current state was entered.
    pub since: Timestamp,
    /// When the current episode started (first pending), if one is under way or just ended.
    pub started: Option<Timestamp>,
    /// A sentence for people: "memory_mb 212.0 above 150 for 5s". Never parse it: the numbers are
    /// in the fields.
    pub message: String,
    pub acknowledged: bool,
    pub silenced_until: Option<Timestamp>,
    /// The metric a threshold rule reads (`memory_mb`, `cpu_percent`, a custom name); None for the
    /// conditions Tend evaluates itself (stale, restart churn).
    #[serde(default)]
    pub metric: Option<String>,
    /// Where a breach clears (hysteresis); equal to `threshold` when the rule has no `clear`.
    #[serde(default)]
    pub clear: Option<f64>,
    /// The unit of `value`, `threshold` and `clear` ("MiB", "%", "B", "s"); None for plain numbers.
    #[serde(default)]
    pub unit: Option<String>,
}

/// The unit a metric name is expressed in, as rules and the API spell metrics. None for counts and
/// for custom metrics (whose unit Tend cannot know).
pub fn unit_of(metric: &str) -> Option<&'static str> {
    match metric {
        "memory_mb" => Some("MiB"),
        "cpu_percent" | "cpu_host_percent" | "memory_percent" => Some("%"),
        "memory_bytes" | "disk_read_bytes" | "disk_write_bytes" | "net_rx_bytes" | "net_tx_bytes" => {
            Some("B")
        }
        "task_time_secs" => Some("s"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_the_metric_names() {
        assert_eq!(unit_of("memory_mb"), Some("MiB"));
        assert_eq!(unit_of("cpu_percent"), Some("%"));
        assert_eq!(unit_of("memory_bytes"), Some("B"));
        assert_eq!(unit_of("threads"), None);
        assert_eq!(unit_of("success_rate"), None);
    }

    #[test]
    fn names_round_trip_and_match_serde() {
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::json!(s.as_str())));
        }
        for s in AlertState::ALL {
            assert_eq!(AlertState::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::json!(s.as_str())));
        }
    }
}
