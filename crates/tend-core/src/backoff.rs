//! Exponential backoff: the delays between retries of anything that fails and is tried again (the
//! history writer, webhook deliveries, reconnecting to a docker engine) and between restarts of a worker
//! that keeps dying. It owns only the arithmetic: `base`, multiplied by `factor` at each retry, never
//! above `cap`. It never sleeps and never reads a clock; the caller waits.

use std::time::Duration;

/// The delays of one retry loop: `base`, `base × factor`, `base × factor²`, … capped at `cap` (the first
/// one too: a `base` above the cap waits the cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    factor: u32,
    /// Delays handed out since the last reset.
    attempts: u32,
}

impl Backoff {
    /// Doubling from `base` up to `cap`.
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Backoff { base, cap, factor: 2, attempts: 0 }
    }

    /// The same with another factor (at least 1).
    pub const fn with_factor(self, factor: u32) -> Self {
        Backoff { factor: if factor == 0 { 1 } else { factor }, ..self }
    }

    /// The delay before the next retry; the one after it grows by the factor.
    #[allow(clippy::should_implement_trait)] // never ends, so not an `Iterator` (no `Option` to unwrap)
    pub fn next(&mut self) -> Duration {
        self.attempts = self.attempts.saturating_add(1);
        self.nth(self.attempts)
    }

    /// What [`Backoff::next`] will return, without counting it.
    pub fn peek(&self) -> Duration {
        self.nth(self.attempts.saturating_add(1))
    }

    /// Back to `base`: the thing retried works again.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// The `n`-th delay after a reset (1 = the first, `base`); zero for `n = 0`.
    pub fn nth(&self, n: u32) -> Duration {
        if n == 0 {
            return Duration::ZERO;
        }
        let times = self.factor.checked_pow(n - 1).unwrap_or(u32::MAX);
        self.base.saturating_mul(times).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(b: &mut Backoff, n: usize) -> Vec<u128> {
        (0..n).map(|_| b.next().as_millis()).collect()
    }

    #[test]
    fn doubles_from_the_base_up_to_the_cap_and_starts_over_after_a_reset() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        assert_eq!(b.peek(), Duration::from_millis(250));
        assert_eq!(millis(&mut b, 8), [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        b.reset();
        assert_eq!(millis(&mut b, 3), [250, 500, 1000]);
    }

    #[test]
    fn peek_does_not_count() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        b.next();
        assert_eq!(b.peek(), Duration::from_millis(200));
        assert_eq!(b.peek(), Duration::from_millis(200));
        assert_eq!(b.next(), Duration::from_millis(200));
    }

    #[test]
    fn a_base_above_the_cap_waits_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(3600), Duration::from_secs(30));
        assert_eq!(millis(&mut b, 2), [30_000, 30_000]);
    }

    #[test]
    fn other_factors_and_the_nth_delay() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).with_factor(3);
        assert_eq!(millis(&mut b, 6), [100, 300, 900, 2700, 8100, 10_000]);
        let flat = Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).with_factor(0);
        assert_eq!(flat.nth(5), Duration::from_millis(100), "a factor of 0 is taken as 1");
        let d = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(d.nth(0), Duration::ZERO);
        assert_eq!(d.nth(3), Duration::from_millis(2000));
    }

    #[test]
    fn huge_attempt_counts_saturate_at_the_cap() {
        let d = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(d.nth(33), Duration::from_secs(30));
        assert_eq!(d.nth(u32::MAX), Duration::from_secs(30));
        let mut b = Backoff { attempts: u32::MAX, ..d };
        assert_eq!(b.next(), Duration::from_secs(30));
    }
}
