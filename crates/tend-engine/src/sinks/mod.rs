//! The engine's sinks: what consumes the fleet's events and readings without ever deciding or slowing
//! the engine — the history store's taps, webhooks and desktop notifications. Sinks know the config and
//! the event broadcast; none of them knows the engine loop or its mailbox.

pub(crate) mod history;
pub mod notify;
pub mod webhooks;
