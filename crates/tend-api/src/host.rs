//! The agents a hub watches: each host's status as the hub sees it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::model::{State, Timestamp, names};

/// How the hub's last contact with an agent went.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, TS, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    /// Not asked yet (the hub just started).
    Connecting,
    /// The agent answered, with this token.
    Ok,
    /// No answer: refused, timed out, the connection dropped.
    Unreachable,
    /// The agent refused the token (401 or 403).
    Unauthorized,
    /// The TLS handshake failed: a certificate the hub does not trust, an expired one, a name that
    /// does not match, plain HTTP on the other side.
    TlsError,
    /// The agent answered something the hub cannot use: not Tend, invalid JSON, too large.
    Degraded,
}
names!(HostStatus {
    Connecting = "connecting",
    Ok = "ok",
    Unreachable = "unreachable",
    Unauthorized = "unauthorized",
    TlsError = "tls_error",
    Degraded = "degraded",
});

/// One agent of the hub (`GET /api/v1/hosts`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS, utoipa::ToSchema)]
pub struct HostDto {
    pub name: String,
    pub url: String,
    pub status: HostStatus,
    /// What went wrong, when the status is not `ok`.
    pub detail: Option<String>,
    /// The last time the agent answered.
    pub last_contact: Option<Timestamp>,
    /// The agent's version, from its health check.
    pub version: Option<String>,
    /// The agent runs another minor version than the hub: fields it lacks are shown as absent.
    pub version_skew: bool,
    /// The agent's workers by state, as of the last contact.
    pub by_state: BTreeMap<State, usize>,
    pub workers: usize,
    /// The round trip of the last worker listing, milliseconds.
    pub rtt_ms: Option<f64>,
    /// Events of the agent's stream this hub could not read (kinds of a newer version), skipped.
    pub events_skipped: u64,
    /// Where the hub's token for this agent is kept: `file /path`, `environment VAR`, `keyring`;
    /// null when it sends none.
    pub token_source: Option<String>,
    /// Added from the desktop app's Hosts screen (removable there), not from the config file.
    pub added_here: bool,
}
