//! Fixtures shared by the end-to-end tests (`tests/e2e`) and the benchmark suite (`crates/tend-bench`):
//! real parts started privately, never mocks. Test support only: nothing in Tend itself depends on it.
#![deny(unsafe_code)] // one libc call (kill) says so with `#[allow(unsafe_code)]`

pub mod dockerd;
pub mod tls;
