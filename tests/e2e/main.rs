//! End-to-end tests: the real `tend` binary, real worker processes, real HTTP on 127.0.0.1:0.
//! One test binary (modules below) to keep link times down.
#![allow(clippy::unwrap_used)] // the whole crate is test code: a panic is a failed test

mod harness;

mod access;
mod agents;
mod api_guard;
mod attach;
mod bad_input;
mod demo;
mod deps;
mod discovery;
mod docker;
mod fleet;
mod grandchildren;
mod history;
mod http_limits;
mod layout;
mod lifecycle;
mod limits;
mod ownership;
mod prometheus;
mod readiness;
mod recycle;
mod reports;
mod rules;
mod shutdown;
mod signals;
mod snapshots;
mod store_faults;
mod webhooks;
