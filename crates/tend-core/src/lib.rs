//! Tend's pure core: the model, the lifecycle state machine, alert rules, the recycle policy and the
//! fleet that turns observations into decisions.
//!
//! This crate owns every decision Tend makes. It must never do I/O, read the wall clock, sleep or spawn:
//! time comes in as a [`time::Timestamp`] argument and effects go out as [`fleet::Action`]s and
//! [`event::Event`]s, so all of it is tested with plain function calls.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod budget;
pub mod event;
pub mod fleet;
pub mod lifecycle;
pub mod model;
pub mod recycle;
pub mod ring;
pub mod rules;
pub mod time;

pub use event::{Event, EventKind};
pub use lifecycle::{Lifecycle, State, TransitionError};
pub use model::{Metrics, ProcessId, Sample, Source, WorkerId};
pub use time::{Clock, Timestamp};
