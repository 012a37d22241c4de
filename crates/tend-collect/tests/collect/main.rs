//! Integration tests of tend-collect against the real kernel: real child processes, real /proc,
//! real sockets on 127.0.0.1. Nothing here is mocked, and nothing waits a fixed time as an assertion:
//! every wait is on a condition with a generous deadline.

mod discover;
mod proc;
mod proc_events;
mod readiness;
mod signal;
mod spawn;
mod support;
