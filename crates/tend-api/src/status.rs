//! Tend's own status on the wire: health, and what the Settings screen shows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::alert::Severity;
use crate::model::{State, Timestamp};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct SelfUsage {
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct HealthDto {
    /// "ok", "degraded" (a source is failing) or "stopping".
    pub status: String,
    pub version: String,
    /// When this Tend started: a hub tells an agent's restart by it.
    #[serde(default)]
    pub started: Option<Timestamp>,
    pub uptime_secs: f64,
    pub degraded: BTreeMap<String, String>,
    pub workers: usize,
    pub by_state: BTreeMap<State, usize>,
    pub alerts_firing: usize,
    pub config: Option<String>,
    pub demo: bool,
    pub tend: SelfUsage,
    /// How attach pools find new processes; absent when there is no attach pool.
    pub discovery: Option<DiscoveryDto>,
    /// How the HTTP API is served.
    pub transport: TransportDto,
}

/// How `tend serve` serves its API: over TLS or not, and whether plain HTTP on a network address
/// was asked for (`insecure_http = true`: the UI shows a warning).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct TransportDto {
    pub tls: bool,
    /// Plain HTTP on an address that is not loopback.
    pub insecure_http: bool,
    /// Requests must carry a bearer token.
    pub tokens: bool,
}

/// Where attach pools hear of processes that start matching.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryMode {
    /// The kernel's process events, with a full scan every `every_secs` as a safety net.
    Events,
    /// Scans of the process table every `every_secs`.
    Scan,
}
crate::model::names!(DiscoveryMode { Events = "events", Scan = "scan" });

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct DiscoveryDto {
    pub mode: DiscoveryMode,
    /// The cadence of full scans.
    pub every_secs: f64,
    /// Why this mode: chosen in the config, or why the kernel's events could not be used.
    pub detail: String,
}

/// What the Settings screen shows (read from the config and the running notifier).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct SettingsDto {
    /// The config file, None when running the embedded demo.
    pub config: Option<String>,
    /// Where the history database lives; None when history is off.
    pub data_dir: Option<String>,
    pub retention: RetentionDto,
    pub notifications: NotificationsDto,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct RetentionDto {
    pub raw_secs: f64,
    pub minute_secs: f64,
    pub hour_secs: f64,
    pub max_size_mb: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct NotificationsDto {
    pub enabled: bool,
    pub per_rule: u32,
    pub overall: u32,
    pub window_secs: f64,
    /// Local "HH:MM" times, from and to.
    #[schema(value_type = Option<Vec<String>>, min_items = 2, max_items = 2)]
    pub quiet_hours: Option<(String, String)>,
    pub record_only: Vec<Severity>,
    pub digest: bool,
    /// The running notifier's counters; None when this Tend shows no notifications (`tend serve`).
    pub status: Option<NotifyStatus>,
}

/// What the notifier did so far, for Settings and the tray.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct NotifyStatus {
    pub paused: bool,
    pub sent: u64,
    /// Held back by the caps or quiet hours (reported later in a digest).
    pub held: u64,
    pub digests: u64,
    /// Recorded only (their severity never notifies), or arrived while paused.
    pub not_notified: u64,
    /// The last sending error (e.g. no notification daemon): notifications are degraded, not fatal.
    pub last_error: Option<String>,
}
