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
#[allow(unsafe_code)] // localtime_r: libc has the time zone rules
pub fn local_minute_of_day(t: Timestamp) -> u16 {
    let secs = t.as_millis().div_euclid(1000);
    let utc = u16::try_from(secs.rem_euclid(86_400) / 60).unwrap_or(0);
    let time: libc::time_t = secs;
    // SAFETY: `localtime_r` writes only into the `tm` we pass; both pointers are valid for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&time, &mut tm).is_null() };
    if ok { u16::try_from(tm.tm_hour * 60 + tm.tm_min).unwrap_or(utc) } else { utc }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_minutes_advance_with_time_and_wrap_at_midnight() {
        // 2026-01-15 00:00 UTC: no time zone changes its offset in mid-January at these minutes.
        let day = Timestamp::from_secs(1_768_435_200);
        let offset = |t: Timestamp| {
            let utc = i64::from(u16::try_from((t.as_millis() / 60_000).rem_euclid(1440)).unwrap_or(0));
            (i64::from(local_minute_of_day(t)) - utc).rem_euclid(1440)
        };
        let first = offset(day);
        for minutes in [1, 59, 61, 719, 1439, 1441] {
            let t = Timestamp::from_secs(1_768_435_200 + minutes * 60);
            assert!(local_minute_of_day(t) < 1440);
            assert_eq!(offset(t), first, "the machine's offset is the same {minutes} min later");
        }
    }
}
