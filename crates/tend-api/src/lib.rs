//! Tend's wire types: every shape the HTTP API, the SSE stream, the webhooks' payloads and the desktop
//! shell hand to a client, and the shapes clients send. The engine builds them from its own types; the
//! shells serialize them; the UI gets their TypeScript bindings (`ui/src/generated/`).
//!
//! This crate depends on no other Tend crate: a client (the web console, a hub reading other agents)
//! needs only these types. It holds no logic beyond naming things: enum names and units.

#![forbid(unsafe_code)]

pub mod alert;
pub mod error;
pub mod event;
pub mod history;
pub mod host;
pub mod live;
pub mod model;
pub mod query;
pub mod reply;
pub mod report;
pub mod status;
pub mod worker;

#[cfg(test)]
mod bindings;

pub use alert::{Alert, AlertState, Severity, unit_of};
pub use error::{ApiError, ErrorCode, ErrorResponse};
pub use event::{Event, EventKind};
pub use history::{AlertRow, ExportKind, History, HistoryPoint, RecycleRow, Tier};
pub use host::{HostDto, HostStatus};
pub use live::{LiveScope, LiveUpdate};
pub use model::{Metrics, ProcessId, RecycleReason, Sample, Source, State, Timestamp, Transition, WorkerId};
pub use status::{
    DiscoveryDto, DiscoveryMode, HealthDto, NotificationsDto, NotifyStatus, RetentionDto, SelfUsage,
    SettingsDto, TransportDto,
};
pub use worker::{ErrorRecord, IncarnationDto, LastEvent, Orphan, PoolMetrics, WorkerDetailDto, WorkerDto};
