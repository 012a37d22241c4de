//! The notification budget: decides whether one notification may go out now, is held for a digest, or
//! is only recorded. It owns the caps (per rule and overall, per sliding window), quiet hours, "record
//! only" severities and the digest that replaces a storm. It must never send anything, read the clock
//! or know the time zone: the caller passes `now` and the local minute of the day.
//!
//! Semantics:
//! - A severity listed in `record_only` never notifies (the event is still stored and shown).
//! - During quiet hours nothing is sent; what arrives is counted into the digest.
//! - Otherwise a notification is sent when fewer than `per_rule` notifications of its key and fewer
//!   than `overall` in total went out within the last `window`; else it is counted into the digest.
//! - A digest ("N more notifications: rule ×n, ...") is due once `window` has passed since the first
//!   held notification and quiet hours are over. At most one digest per window; it does not count
//!   against the caps. With `digest = false` held notifications are dropped instead (counted only).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::rules::Severity;
use crate::time::Timestamp;

/// A time of day in minutes after local midnight (0..1440).
pub type MinuteOfDay = u16;

/// Quiet hours from `from` (inclusive) to `to` (exclusive), local time; may wrap past midnight.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct QuietHours {
    pub from: MinuteOfDay,
    pub to: MinuteOfDay,
}

impl QuietHours {
    pub fn contains(&self, m: MinuteOfDay) -> bool {
        if self.from <= self.to { self.from <= m && m < self.to } else { m >= self.from || m < self.to }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BudgetConfig {
    /// Notifications of one rule (key) per window.
    pub per_rule: u32,
    /// Notifications of all rules together per window.
    pub overall: u32,
    pub window: Duration,
    pub quiet_hours: Option<QuietHours>,
    /// Severities that are recorded but never notify.
    pub record_only: Vec<Severity>,
    /// Send a digest of what the caps and quiet hours held back.
    pub digest: bool,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            per_rule: 3,
            overall: 10,
            window: Duration::from_secs(600),
            quiet_hours: None,
            record_only: vec![Severity::Info],
            digest: true,
        }
    }
}

/// What to do with one notification.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// The severity is "record only".
    RecordOnly,
    /// Held back by quiet hours (counted into the digest).
    Quiet,
    /// Held back by a cap (counted into the digest).
    Capped,
}

/// What a digest reports: how many notifications were held back, per key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Digest {
    pub held: u32,
    pub by_key: BTreeMap<String, u32>,
}

impl Digest {
    /// "12 more notifications held back: memory-high ×9, recycle:died ×3".
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self.by_key.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        let s = if self.held == 1 { "" } else { "s" };
        format!("{} more notification{s} held back: {}", self.held, parts.join(", "))
    }
}

#[derive(Clone, Debug)]
pub struct Budget {
    config: BudgetConfig,
    /// Send times within the window, overall and per key.
    sent: VecDeque<Timestamp>,
    sent_by_key: BTreeMap<String, VecDeque<Timestamp>>,
    held: Digest,
    first_held: Option<Timestamp>,
    last_digest: Option<Timestamp>,
    /// Counted when `digest` is off: what was dropped in total.
    dropped: u64,
}

impl Budget {
    pub fn new(config: BudgetConfig) -> Self {
        Budget {
            config,
            sent: VecDeque::new(),
            sent_by_key: BTreeMap::new(),
            held: Digest::default(),
            first_held: None,
            last_digest: None,
            dropped: 0,
        }
    }

    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    /// Notifications held back and not sent because the digest is off.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Decide on one notification of `key` (a rule name, or `recycle:<reason>`) at `now`.
    pub fn offer(&mut self, now: Timestamp, local: MinuteOfDay, key: &str, severity: Severity) -> Verdict {
        if self.config.record_only.contains(&severity) {
            return Verdict::RecordOnly;
        }
        self.expire(now);
        let verdict = if self.config.quiet_hours.is_some_and(|q| q.contains(local)) {
            Verdict::Quiet
        } else {
            let of_key = self.sent_by_key.get(key).map_or(0, VecDeque::len);
            if of_key >= self.config.per_rule as usize || self.sent.len() >= self.config.overall as usize {
                Verdict::Capped
            } else {
                Verdict::Send
            }
        };
        match verdict {
            Verdict::Send => {
                self.sent.push_back(now);
                self.sent_by_key.entry(key.to_owned()).or_default().push_back(now);
            }
            _ if self.config.digest => {
                self.held.held += 1;
                *self.held.by_key.entry(key.to_owned()).or_default() += 1;
                self.first_held.get_or_insert(now);
            }
            _ => self.dropped += 1,
        }
        verdict
    }

    /// The digest, when one is due at `now` (and forget what it reports).
    pub fn digest_due(&mut self, now: Timestamp, local: MinuteOfDay) -> Option<Digest> {
        let first = self.first_held?;
        if self.config.quiet_hours.is_some_and(|q| q.contains(local)) {
            return None;
        }
        let window = self.config.window;
        let waited = now.since(first) >= window;
        let spaced = self.last_digest.is_none_or(|d| now.since(d) >= window);
        if !(waited && spaced) {
            return None;
        }
        self.first_held = None;
        self.last_digest = Some(now);
        Some(std::mem::take(&mut self.held))
    }

    fn expire(&mut self, now: Timestamp) {
        let window = self.config.window;
        let old = |t: &Timestamp| now.since(*t) >= window;
        while self.sent.front().is_some_and(old) {
            self.sent.pop_front();
        }
        self.sent_by_key.retain(|_, q| {
            while q.front().is_some_and(old) {
                q.pop_front();
            }
            !q.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    const T0: Timestamp = Timestamp::from_secs(1_000_000);
    const NOON: MinuteOfDay = 12 * 60;

    fn budget(per_rule: u32, overall: u32, window_secs: u64) -> Budget {
        Budget::new(BudgetConfig {
            per_rule,
            overall,
            window: Duration::from_secs(window_secs),
            ..BudgetConfig::default()
        })
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp(T0.0 + secs * 1000)
    }

    /// (seconds after T0, key, severity, expected verdict)
    fn check(b: &mut Budget, steps: &[(i64, &str, Severity, Verdict)]) {
        for (i, (t, key, sev, want)) in steps.iter().enumerate() {
            assert_eq!(b.offer(at(*t), NOON, key, *sev), *want, "step {i}: {key} at +{t}s");
        }
    }

    use crate::rules::Severity::{Critical, Info, Warning};

    #[test]
    fn per_rule_cap_then_window_slides() {
        let mut b = budget(2, 10, 60);
        check(
            &mut b,
            &[
                (0, "mem", Warning, Send),
                (1, "mem", Warning, Send),
                (2, "mem", Warning, Capped),
                (3, "cpu", Warning, Send),
                (59, "mem", Warning, Capped),
                (60, "mem", Warning, Send), // the +0 send left the window
                (61, "mem", Warning, Send), // and the +1 one
                (62, "mem", Warning, Capped),
            ],
        );
    }

    #[test]
    fn overall_cap_across_rules() {
        let mut b = budget(5, 3, 60);
        check(
            &mut b,
            &[
                (0, "a", Warning, Send),
                (0, "b", Critical, Send),
                (0, "c", Warning, Send),
                (1, "d", Critical, Capped),
                (60, "d", Critical, Send),
            ],
        );
    }

    #[test]
    fn record_only_severities_never_notify_nor_count() {
        let mut b = budget(1, 1, 60);
        check(&mut b, &[(0, "a", Info, RecordOnly), (0, "a", Info, RecordOnly), (0, "a", Warning, Send)]);
        assert_eq!(b.digest_due(at(120), NOON), None, "record-only is not held for a digest");
    }

    #[test]
    fn quiet_hours_wrap_midnight() {
        let q = QuietHours { from: 22 * 60, to: 7 * 60 };
        let cases = [(0, true), (22 * 60, true), (23 * 60 + 59, true), (6 * 60 + 59, true), (7 * 60, false)];
        for (m, want) in cases {
            assert_eq!(q.contains(m), want, "minute {m}");
        }
        assert!(!q.contains(NOON));
        let day = QuietHours { from: 12 * 60, to: 13 * 60 };
        assert!(day.contains(NOON) && !day.contains(13 * 60) && !day.contains(11 * 60));
    }

    #[test]
    fn quiet_hours_hold_everything_for_a_digest_after_they_end() {
        let mut b = Budget::new(BudgetConfig {
            quiet_hours: Some(QuietHours { from: 22 * 60, to: 7 * 60 }),
            window: Duration::from_secs(60),
            ..BudgetConfig::default()
        });
        assert_eq!(b.offer(at(0), 23 * 60, "mem", Critical), Quiet);
        assert_eq!(b.offer(at(1), 23 * 60, "mem", Warning), Quiet);
        assert_eq!(b.digest_due(at(3600), 3 * 60), None, "still quiet");
        let d = b.digest_due(at(7200), 7 * 60).expect("digest once quiet hours end");
        assert_eq!(d.held, 2);
        assert_eq!(d.summary(), "2 more notifications held back: mem ×2");
        assert_eq!(b.offer(at(7201), 7 * 60, "mem", Warning), Send);
    }

    #[test]
    fn a_storm_of_fifty_gives_the_cap_plus_one_digest() {
        let mut b = budget(3, 10, 60);
        let mut sent = 0;
        for i in 0..50 {
            if b.offer(at(i / 10), NOON, "memory-high", Warning) == Send {
                sent += 1;
            }
        }
        assert_eq!(sent, 3);
        assert_eq!(b.digest_due(at(30), NOON), None, "not before the window has passed");
        let d = b.digest_due(at(60), NOON).expect("digest due");
        assert_eq!((d.held, d.by_key.get("memory-high")), (47, Some(&47)));
        assert_eq!(b.digest_due(at(61), NOON), None, "one digest, then nothing held");
    }

    #[test]
    fn digests_are_spaced_by_the_window() {
        let mut b = budget(1, 10, 60);
        check(&mut b, &[(0, "a", Warning, Send), (1, "a", Warning, Capped)]);
        assert!(b.digest_due(at(61), NOON).is_some());
        check(&mut b, &[(62, "a", Warning, Send), (63, "a", Warning, Capped)]);
        assert_eq!(b.digest_due(at(100), NOON), None, "63 + 60 not reached");
        assert_eq!(b.digest_due(at(123), NOON).map(|d| d.held), Some(1));
    }

    #[test]
    fn without_digest_held_notifications_are_dropped_and_counted() {
        let mut b = Budget::new(BudgetConfig { per_rule: 1, digest: false, ..BudgetConfig::default() });
        check(&mut b, &[(0, "a", Warning, Send), (1, "a", Warning, Capped), (2, "a", Warning, Capped)]);
        assert_eq!(b.dropped(), 2);
        assert_eq!(b.digest_due(at(10_000), NOON), None);
    }
}
