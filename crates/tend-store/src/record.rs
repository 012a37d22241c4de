//! What the engine hands the writer: samples (one reading of one incarnation, with the worker's state) and
//! events. Plain data; building one never blocks and never fails.

use tend_core::event::Event;
use tend_core::model::{Metrics, ProcessId, WorkerId};
use tend_core::time::Timestamp;

/// One reading of one worker, as it will be stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleRecord {
    pub worker: WorkerId,
    pub pool: String,
    pub at: Timestamp,
    pub incarnation: u32,
    pub process: Option<ProcessId>,
    /// The worker's lifecycle state when the sample was taken (`READY`, ...).
    pub state: Option<&'static str>,
    pub metrics: Metrics,
    /// Requests handled by this incarnation so far, when counted.
    pub requests: Option<u64>,
}

/// An error or warning to keep (reported by a worker or an orchestrator, or raised by Tend).
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub at: Timestamp,
    /// `error` or `warning`.
    pub level: &'static str,
    pub worker: Option<String>,
    pub pool: Option<String>,
    pub source: Option<String>,
    pub message: String,
}

#[derive(Debug)]
pub enum Record {
    Sample(Box<SampleRecord>),
    Event(Box<Event>),
    Problem(Box<Problem>),
}
