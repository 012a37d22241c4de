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
mod mailbox;
pub mod sinks;
mod sources;

pub use app::{App, AppError, AppOptions};
pub use sinks::{notify, webhooks};
