//! The ranges of duration keys: every duration of the file has one, checked at load.

use super::*;
pub use tend_core::time::show_duration;

/// The range a duration key accepts, both ends included. Every duration of the file has one, so that a
/// value no deadline arithmetic can hold (`"106751991167300d"`) is refused at load with its location.
#[derive(Copy, Clone)]
pub(super) struct Bounds {
    pub(super) min: Duration,
    pub(super) max: Duration,
}

pub(super) const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
pub(super) const DAY: u64 = 86_400;
pub(super) const NONZERO: Duration = Duration::from_millis(1);
/// `interval`, `TEND_INTERVAL`: 100ms to 1h.
pub(super) const INTERVAL: Bounds = Bounds { min: MIN_INTERVAL, max: secs(3600) };
/// `stale_after`, a rule's `stale`: above zero, up to 7 days.
pub(super) const STALE: Bounds = Bounds { min: NONZERO, max: secs(7 * DAY) };
/// `stop_grace`: zero (SIGKILL at once) to 1h.
pub(super) const STOP_GRACE: Bounds = Bounds { min: Duration::ZERO, max: secs(3600) };
/// `readiness.timeout`: above zero, up to 24h.
pub(super) const READY_TIMEOUT: Bounds = Bounds { min: NONZERO, max: secs(DAY) };
/// `recycle.ttl`: above zero, up to 365 days.
pub(super) const TTL: Bounds = Bounds { min: NONZERO, max: secs(365 * DAY) };
/// `recycle.warmup`: zero to 24h.
pub(super) const WARMUP: Bounds = Bounds { min: Duration::ZERO, max: secs(DAY) };
/// `task_timeout`, `storm_window`, a rule's `within` and `flap_window`: above zero, up to 30 days.
pub(super) const LONG: Bounds = Bounds { min: NONZERO, max: secs(30 * DAY) };
/// A rule's `for` and `keep_firing_for`: zero to 30 days.
pub(super) const LONG_OR_ZERO: Bounds = Bounds { min: Duration::ZERO, max: secs(30 * DAY) };
/// `[store] retention` tiers: above zero, up to 10 years.
pub(super) const RETENTION: Bounds = Bounds { min: NONZERO, max: secs(3650 * DAY) };
/// `[notifications] window`: above zero, up to 7 days.
pub(super) const NOTIFY_WINDOW: Bounds = Bounds { min: NONZERO, max: secs(7 * DAY) };
/// `[discovery] scan_every`: 1s to 1h.
pub(super) const SCAN_EVERY: Bounds = Bounds { min: secs(1), max: secs(3600) };
/// `[discovery] rescan_every`: 5s to 24h.
pub(super) const RESCAN_EVERY: Bounds = Bounds { min: secs(5), max: secs(DAY) };
/// A webhook's `backoff`: above zero, up to 1h.
pub(super) const WEBHOOK_BACKOFF: Bounds = Bounds { min: NONZERO, max: secs(3600) };
/// A webhook's `timeout`: above zero, up to 10 minutes.
pub(super) const WEBHOOK_TIMEOUT: Bounds = Bounds { min: NONZERO, max: secs(600) };

impl Bounds {
    /// Why `d` is out of range ("is too long: the maximum is 1h"); `None` when it fits.
    pub(super) fn refuse(self, d: Duration) -> Option<String> {
        if d < self.min {
            return Some(if self.min == NONZERO {
                "must be longer than zero".to_owned()
            } else {
                format!("is too short: the minimum is {}", show_duration(self.min))
            });
        }
        (d > self.max).then(|| format!("is too long: the maximum is {}", show_duration(self.max)))
    }
}
