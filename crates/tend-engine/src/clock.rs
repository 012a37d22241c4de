//! The wall clock, the one place the runtime reads it; everything below the engine gets "now" passed in.

use tend_core::time::{Clock, Timestamp};

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // this is the injected clock itself
    fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp::from_millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}
