//! Tend's runtime: the config, the engine task that owns the fleet, the supervisor that carries out its
//! actions, and the [`App`] facade that the HTTP server and the desktop shell both call.
//!
//! The engine crate knows tokio and the collectors; it never knows HTTP or Tauri, and it leaves every
//! decision to `tend_core::fleet`.
#![deny(unsafe_code)] // the few libc calls that need it say so with `#[allow(unsafe_code)]`

pub mod app;
pub mod clock;
pub mod config;
pub mod convert;
pub mod dto;
pub mod engine;
mod exposition;
pub mod http_client;
mod mailbox;
pub mod remote;
pub mod sinks;
mod sources;

pub use app::{App, AppError, AppOptions};
pub use sinks::{notify, webhooks};
/// The wire types, for the shells (they depend on this crate and on `tend-api` only).
pub use tend_api as api;

/// Tend's own process: its descriptor limit (the HTTP server sizes its connection cap from it) and its
/// heap's arenas (capped first thing in `main`, see `tend_collect::malloc`).
pub mod os {
    pub use tend_collect::fd_limit::{nofile_soft_limit, raise_nofile_to_hard};
    pub use tend_collect::malloc::limit_arenas as limit_malloc_arenas;
}
