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

/// Minutes after local midnight at `t`, in the machine's time zone (for quiet hours); UTC when the
/// time zone cannot be read.
pub fn local_minute_of_day(t: Timestamp) -> u16 {
    let secs = t.as_millis().div_euclid(1000);
    let utc = u16::try_from(secs.rem_euclid(86_400) / 60).unwrap_or(0);
    let time: libc::time_t = secs;
    // SAFETY: `localtime_r` writes only into the `tm` we pass; both pointers are valid for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&time, &mut tm).is_null() };
    if ok { u16::try_from(tm.tm_hour * 60 + tm.tm_min).unwrap_or(utc) } else { utc }
}
