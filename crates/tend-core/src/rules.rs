//! Alert rules: a condition over a worker or a pool, with hysteresis, `for`, `keep_firing_for` and
//! flapping detection, tracked per (rule, subject) in an [`AlertBook`]. Pure: readings and "now" come in
//! as arguments; the fleet decides what to read and when.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use crate::time::{Timestamp, fmt_duration};

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// What a rule is evaluated over.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Each worker of the pool on its own.
    Worker,
    /// The pool's aggregates (total memory, average CPU, totals of custom metrics...).
    Pool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparison {
    Above,
    Below,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Condition {
    /// `metric` above (or below) `fire`; once breached it stays breached until the value is back
    /// below (above) `clear` (hysteresis). No `clear` means `clear == fire`.
    Threshold { metric: String, cmp: Comparison, fire: f64, clear: Option<f64> },
    /// No sample for `after`.
    Stale { after: Duration },
    /// More than `max` recycles within `within`.
    RestartChurn { max: u32, within: Duration },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    pub scope: Scope,
    pub condition: Condition,
    /// The condition must hold this long before the alert fires (pending meanwhile).
    pub for_: Duration,
    /// ...and for at least this many consecutive readings (0 = no count condition).
    pub for_samples: u32,
    /// Once firing, stay firing until the condition has been false this long.
    pub keep_firing_for: Duration,
    pub severity: Severity,
    /// More than `flap_max` starts of firing within `flap_window` makes the alert `flapping`.
    pub flap_max: u32,
    pub flap_window: Duration,
    /// Recycle the worker when this rule fires (worker scope only).
    pub recycle: bool,
    /// Named notification channels (webhooks, desktop); empty = the defaults.
    pub channels: Vec<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
    Flapping,
    Resolved,
}

/// The current status of one (rule, subject); returned whenever it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub rule: String,
    /// Worker id for worker-scoped rules, the pool name for pool-scoped ones.
    pub subject: String,
    pub pool: String,
    pub severity: Severity,
    pub state: AlertState,
    /// The last reading that was observed.
    pub value: Option<f64>,
    /// The fire threshold, when the condition has one.
    pub threshold: Option<f64>,
    /// When the current state was entered.
    pub since: Timestamp,
    /// When the current episode started (first pending), if one is under way or just ended.
    pub started: Option<Timestamp>,
    /// A sentence for people: "memory_mb 212.0 above 150 for 5s".
    pub message: String,
    pub acknowledged: bool,
    pub silenced_until: Option<Timestamp>,
    /// The metric a threshold rule reads; None for conditions the fleet evaluates itself.
    #[serde(default)]
    pub metric: Option<String>,
    /// Where a breach clears (the effective hysteresis level; `threshold` when the rule has none).
    #[serde(default)]
    pub clear: Option<f64>,
}

/// What the fleet read for a rule at one instant.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Reading {
    /// A value for a threshold condition; hysteresis is applied by the book.
    Value(f64),
    /// A condition the fleet evaluated itself (stale, churn), with the value to show.
    Condition { active: bool, value: Option<f64> },
    /// The metric is absent from this reading: nothing changes.
    Missing,
}

/// Every (rule, subject) pair's tracker.
#[derive(Clone, Debug, Default)]
pub struct AlertBook {
    trackers: BTreeMap<(String, String), Tracker>,
}

#[derive(Clone, Debug)]
struct Tracker {
    alert: Alert,
    /// The condition's status after hysteresis; only non-missing readings change it.
    breached: bool,
    /// When `breached` last changed: the start of the current breach, or of the current calm.
    flipped_at: Timestamp,
    /// Consecutive breached readings since `flipped_at`; missing readings neither count nor break it.
    streak: u32,
    /// When the alert entered firing, pruned to the rule's flap window.
    fire_starts: VecDeque<Timestamp>,
    /// The count that made the alert flap, for its message.
    flap_count: usize,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Parse the config spelling; case-insensitive, `warn` and `crit` accepted as people type them.
    pub fn parse(s: &str) -> Option<Severity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "info" => Some(Severity::Info),
            "warning" | "warn" => Some(Severity::Warning),
            "critical" | "crit" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Flapping => "flapping",
            AlertState::Resolved => "resolved",
        }
    }

    /// Pending, firing or flapping: what [`AlertBook::active`] lists.
    pub fn is_active(self) -> bool {
        matches!(self, AlertState::Pending | AlertState::Firing | AlertState::Flapping)
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Rule {
    /// A worker-scoped warning with no delays, flapping after more than 4 firings in 10 minutes.
    pub fn new(name: impl Into<String>, condition: Condition) -> Rule {
        Rule {
            name: name.into(),
            scope: Scope::Worker,
            condition,
            for_: Duration::ZERO,
            for_samples: 0,
            keep_firing_for: Duration::ZERO,
            severity: Severity::Warning,
            flap_max: 4,
            flap_window: Duration::from_secs(600),
            recycle: false,
            channels: Vec::new(),
        }
    }

    /// [`Rule::new`] over a threshold condition.
    pub fn threshold(
        name: impl Into<String>,
        metric: impl Into<String>,
        cmp: Comparison,
        fire: f64,
        clear: Option<f64>,
    ) -> Rule {
        Rule::new(name, Condition::Threshold { metric: metric.into(), cmp, fire, clear })
    }

    /// The metric a threshold rule reads; `None` for conditions the fleet evaluates itself.
    pub fn metric(&self) -> Option<&str> {
        match &self.condition {
            Condition::Threshold { metric, .. } => Some(metric),
            Condition::Stale { .. } | Condition::RestartChurn { .. } => None,
        }
    }
}

impl Condition {
    /// Whether `v` leaves the condition breached, given whether it was breached before. A `clear`
    /// on the wrong side of `fire` is treated as `fire`: otherwise a breach would clear on the very
    /// next reading of the same value.
    fn breached_by(&self, v: f64, was: bool) -> bool {
        match *self {
            Condition::Threshold { cmp: Comparison::Above, fire, clear, .. } => {
                let clear = clear.map_or(fire, |c| c.min(fire));
                if was { v >= clear } else { v > fire }
            }
            Condition::Threshold { cmp: Comparison::Below, fire, clear, .. } => {
                let clear = clear.map_or(fire, |c| c.max(fire));
                if was { v <= clear } else { v < fire }
            }
            // A plain number for these: seconds without a sample, recycles within the window.
            Condition::Stale { after } => v > after.as_secs_f64(),
            Condition::RestartChurn { max, .. } => v > f64::from(max),
        }
    }

    /// The level at which a breach clears: `clear` when it is on the right side of `fire`, else `fire`
    /// (the same rule [`Condition::breached_by`] applies).
    fn clear_threshold(&self) -> Option<f64> {
        match *self {
            Condition::Threshold { cmp: Comparison::Above, fire, clear, .. } => {
                Some(clear.map_or(fire, |c| c.min(fire)))
            }
            Condition::Threshold { cmp: Comparison::Below, fire, clear, .. } => {
                Some(clear.map_or(fire, |c| c.max(fire)))
            }
            Condition::Stale { .. } | Condition::RestartChurn { .. } => None,
        }
    }

    fn fire_threshold(&self) -> Option<f64> {
        match *self {
            Condition::Threshold { fire, .. } => Some(fire),
            Condition::Stale { .. } | Condition::RestartChurn { .. } => None,
        }
    }

    /// The condition part of an alert's message. `lasted` is how long the current breach (or, for a
    /// firing alert waiting out `keep_firing_for`, the current calm) has lasted.
    fn describe(&self, value: Option<f64>, breached: bool, lasted: Option<Duration>) -> String {
        let lasted = lasted.filter(|d| !d.is_zero()).map(|d| format!(" for {}", fmt_duration(d)));
        let lasted = lasted.as_deref().unwrap_or("");
        match self {
            Condition::Threshold { metric, cmp, fire, clear } => {
                let (word, clear_word, undo) = match cmp {
                    Comparison::Above => ("above", "below", "not above"),
                    Comparison::Below => ("below", "above", "not below"),
                };
                let clear = clear.filter(|c| match cmp {
                    Comparison::Above => c < fire,
                    Comparison::Below => c > fire,
                });
                let clear_part =
                    clear.map(|c| format!(" (clear {clear_word} {})", fmt_number(c))).unwrap_or_default();
                let fire = fmt_number(*fire);
                match (value, breached) {
                    (Some(v), true) => format!("{metric} {} {word} {fire}{clear_part}{lasted}", fmt_value(v)),
                    (None, true) => format!("{metric} {word} {fire}{clear_part}{lasted}"),
                    (Some(v), false) => {
                        format!("{metric} {} {undo} {fire}{clear_part}{lasted}", fmt_value(v))
                    }
                    (None, false) => format!("{metric}: no value yet (fires {word} {fire})"),
                }
            }
            Condition::Stale { after } => {
                let age = value.and_then(|s| Duration::try_from_secs_f64(s).ok());
                match (breached, age) {
                    (true, Some(age)) => format!("no sample for {}", fmt_duration(age)),
                    (true, None) => format!("no sample for {}", fmt_duration(*after)),
                    (false, _) => format!("sampling (stale after {}){lasted}", fmt_duration(*after)),
                }
            }
            Condition::RestartChurn { max, within } => {
                let within = fmt_duration(*within);
                match (value, breached) {
                    (Some(n), _) => format!("{} recycles within {within} (max {max}){lasted}", fmt_number(n)),
                    (None, true) => format!("more than {max} recycles within {within}{lasted}"),
                    (None, false) => format!("at most {max} recycles within {within}"),
                }
            }
        }
    }
}

impl Alert {
    /// Silenced alerts still change state; only notifications are held back.
    pub fn is_silenced(&self, now: Timestamp) -> bool {
        self.silenced_until.is_some_and(|until| now < until)
    }
}

/// Whether notifications for `alert` are held back at `now`.
pub fn is_silenced(alert: &Alert, now: Timestamp) -> bool {
    alert.is_silenced(now)
}

impl Tracker {
    fn new(rule: &Rule, pool: &str, subject: &str, now: Timestamp) -> Self {
        Tracker {
            alert: Alert {
                rule: rule.name.clone(),
                subject: subject.to_owned(),
                pool: pool.to_owned(),
                severity: rule.severity,
                state: AlertState::Inactive,
                value: None,
                threshold: rule.condition.fire_threshold(),
                since: now,
                started: None,
                message: String::new(),
                acknowledged: false,
                silenced_until: None,
                metric: rule.metric().map(str::to_owned),
                clear: rule.condition.clear_threshold(),
            },
            breached: false,
            flipped_at: now,
            streak: 0,
            fire_starts: VecDeque::new(),
            flap_count: 0,
        }
    }

    /// Apply one reading to the breach status; states move in [`Tracker::advance`].
    fn read(&mut self, condition: &Condition, reading: Reading, now: Timestamp) {
        let (breached, value) = match reading {
            // NaN compares false both ways, which would freeze the breach status: treat it as absent.
            Reading::Missing => return,
            Reading::Value(v) if v.is_nan() => return,
            Reading::Value(v) => (condition.breached_by(v, self.breached), Some(v)),
            Reading::Condition { active, value } => (active, value),
        };
        self.alert.value = value;
        if breached != self.breached {
            self.breached = breached;
            self.flipped_at = now;
            self.streak = 0;
        }
        if breached {
            self.streak = self.streak.saturating_add(1);
        }
    }

    /// Every transition that is due at `now` given the current breach status.
    fn advance(&mut self, rule: &Rule, now: Timestamp) {
        use AlertState::*;
        if self.breached && matches!(self.alert.state, Inactive | Resolved) {
            // Only a reading flips `breached`, so the episode starts at that reading.
            self.alert.started = Some(self.flipped_at);
            self.alert.acknowledged = false;
            self.enter(Pending, now);
        }
        let lasted = now.since(self.flipped_at);
        match self.alert.state {
            Inactive | Resolved => {}
            Pending if !self.breached => self.enter(Inactive, now),
            Pending => {
                if lasted >= rule.for_ && self.streak >= rule.for_samples.max(1) {
                    self.start_firing(rule, now);
                }
            }
            Firing => {
                if !self.breached && lasted >= rule.keep_firing_for {
                    self.enter(Resolved, now);
                }
            }
            Flapping => {
                // Quiet is measured from the later of the last flip and the start of flapping, so an
                // alert that went flapping through `for_` still waits a whole window.
                let quiet = now.since(self.flipped_at.max(self.alert.since));
                if quiet >= rule.flap_window {
                    // Settling wipes the count, or the next firing would flap again at once.
                    self.fire_starts.clear();
                    self.enter(if self.breached { Firing } else { Resolved }, now);
                }
            }
        }
    }

    fn start_firing(&mut self, rule: &Rule, now: Timestamp) {
        if rule.flap_max == 0 {
            self.fire_starts.clear();
            self.enter(AlertState::Firing, now);
            return;
        }
        while self.fire_starts.front().is_some_and(|&t| now.since(t) >= rule.flap_window) {
            self.fire_starts.pop_front();
        }
        self.fire_starts.push_back(now);
        if self.fire_starts.len() > rule.flap_max as usize {
            self.flap_count = self.fire_starts.len();
            self.enter(AlertState::Flapping, now);
        } else {
            self.enter(AlertState::Firing, now);
        }
    }

    fn enter(&mut self, state: AlertState, now: Timestamp) {
        self.alert.state = state;
        self.alert.since = now;
    }

    /// Bring the rule-derived fields and the message up to date; the rule may have been reloaded.
    fn refresh(&mut self, rule: &Rule, now: Timestamp) {
        self.alert.severity = rule.severity;
        self.alert.threshold = rule.condition.fire_threshold();
        self.alert.metric = rule.metric().map(str::to_owned);
        self.alert.clear = rule.condition.clear_threshold();
        let counting = self.breached || self.alert.state == AlertState::Firing;
        let lasted = counting.then(|| now.since(self.flipped_at));
        let mut message = rule.condition.describe(self.alert.value, self.breached, lasted);
        if self.alert.state == AlertState::Flapping {
            message.push_str(&format!(
                "; flapping: {} firings within {} (max {})",
                self.flap_count,
                fmt_duration(rule.flap_window),
                rule.flap_max
            ));
        }
        self.alert.message = message;
    }
}

/// An active alert ended for a reason outside its rule (its subject or rule is gone): firing and
/// flapping become resolved, pending becomes inactive; `None` when it was not active.
pub fn ended(alert: &Alert, why: &str, now: Timestamp) -> Option<Alert> {
    let to = match alert.state {
        AlertState::Firing | AlertState::Flapping => AlertState::Resolved,
        AlertState::Pending => AlertState::Inactive,
        AlertState::Inactive | AlertState::Resolved => return None,
    };
    Some(Alert {
        state: to,
        since: now,
        message: format!("{why} (last: {})", alert.message),
        ..alert.clone()
    })
}

impl AlertBook {
    pub fn new() -> Self {
        AlertBook::default()
    }

    /// Feed one reading of `rule` for `subject`; returns the alert when its state changed.
    pub fn observe(
        &mut self,
        rule: &Rule,
        pool: &str,
        subject: &str,
        reading: Reading,
        now: Timestamp,
    ) -> Option<Alert> {
        let tracker = self
            .trackers
            .entry((rule.name.clone(), subject.to_owned()))
            .or_insert_with(|| Tracker::new(rule, pool, subject, now));
        let before = tracker.alert.state;
        if tracker.alert.pool != pool {
            tracker.alert.pool = pool.to_owned();
        }
        tracker.read(&rule.condition, reading, now);
        tracker.advance(rule, now);
        tracker.refresh(rule, now);
        (tracker.alert.state != before).then(|| tracker.alert.clone())
    }

    /// Time-based transitions of the trackers of `rules` (`for`, `keep_firing_for`, end of flapping);
    /// returns the alerts whose state changed. Trackers of rules not listed are left alone.
    pub fn tick(&mut self, rules: &[Rule], now: Timestamp) -> Vec<Alert> {
        let mut changed = Vec::new();
        for rule in rules {
            let from = (rule.name.clone(), String::new());
            for ((name, _), tracker) in self.trackers.range_mut(from..) {
                if *name != rule.name {
                    break;
                }
                let before = tracker.alert.state;
                tracker.advance(rule, now);
                tracker.refresh(rule, now);
                if tracker.alert.state != before {
                    changed.push(tracker.alert.clone());
                }
            }
        }
        changed
    }

    pub fn get(&self, rule: &str, subject: &str) -> Option<&Alert> {
        self.trackers.get(&(rule.to_owned(), subject.to_owned())).map(|t| &t.alert)
    }

    /// Every tracked alert in any state, ordered by (rule, subject).
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.trackers.values().map(|t| &t.alert)
    }

    /// Pending, firing and flapping alerts.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.alerts().filter(|a| a.state.is_active())
    }

    /// The subject (a worker) is gone: firing and flapping alerts resolve, pending ones go inactive,
    /// and every tracker of the subject is dropped. Returns the alerts that changed.
    pub fn forget_subject(&mut self, subject: &str, now: Timestamp) -> Vec<Alert> {
        self.forget(|_, s| s == subject, &format!("{subject} is gone"), now)
    }

    /// Like [`AlertBook::forget_subject`], for a rule removed from the configuration.
    pub fn forget_rule(&mut self, rule: &str, now: Timestamp) -> Vec<Alert> {
        self.forget(|r, _| r == rule, &format!("rule {rule} removed"), now)
    }

    fn forget(&mut self, doomed: impl Fn(&str, &str) -> bool, why: &str, now: Timestamp) -> Vec<Alert> {
        let mut changed = Vec::new();
        self.trackers.retain(|(rule, subject), tracker| {
            if !doomed(rule, subject) {
                return true;
            }
            changed.extend(ended(&tracker.alert, why, now));
            false
        });
        changed
    }

    /// Put back an alert an earlier run left pending, firing or flapping (read from the history store),
    /// as if its condition had held since the episode started: the next readings confirm it or clear it
    /// through the rule's hysteresis. False (nothing changed) when the alert is not active or the book
    /// already tracks that (rule, subject).
    pub fn restore(&mut self, rule: &Rule, alert: Alert) -> bool {
        let key = (rule.name.clone(), alert.subject.clone());
        if !alert.state.is_active() || alert.rule != rule.name || self.trackers.contains_key(&key) {
            return false;
        }
        let started = alert.started.unwrap_or(alert.since);
        let mut tracker = Tracker::new(rule, &alert.pool, &alert.subject, started);
        if matches!(alert.state, AlertState::Firing | AlertState::Flapping) {
            tracker.fire_starts.push_back(alert.since);
        }
        tracker.alert = Alert { severity: rule.severity, started: Some(started), ..alert };
        tracker.breached = true;
        tracker.streak = rule.for_samples;
        self.trackers.insert(key, tracker);
        true
    }

    /// Mark the alert as seen by someone; cleared when a new episode starts.
    pub fn acknowledge(&mut self, rule: &str, subject: &str) -> Option<Alert> {
        let tracker = self.trackers.get_mut(&(rule.to_owned(), subject.to_owned()))?;
        tracker.alert.acknowledged = true;
        Some(tracker.alert.clone())
    }

    /// Hold notifications back until `until`; `None` lifts the silence. Survives new episodes.
    pub fn silence(&mut self, rule: &str, subject: &str, until: Option<Timestamp>) -> Option<Alert> {
        let tracker = self.trackers.get_mut(&(rule.to_owned(), subject.to_owned()))?;
        tracker.alert.silenced_until = until;
        Some(tracker.alert.clone())
    }
}

/// A reading as people read it: `212.0`, `0.15`, at most three decimals.
fn fmt_value(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 { format!("{v:.1}") } else { fmt_number(v) }
}

/// A configured number as it was written: `150`, `0.2`.
fn fmt_number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let rounded = (v * 1000.0).round() / 1000.0;
    // Rounding can overflow to infinity for huge values; those print fine as they are.
    if rounded.is_finite() { rounded.to_string() } else { v.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertState::*;

    const T0: i64 = 1_700_000_000_000;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(T0 + ms)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn mem(fire: f64, clear: Option<f64>) -> Rule {
        Rule::threshold("mem", "memory_mb", Comparison::Above, fire, clear)
    }

    fn v(x: f64) -> Option<Reading> {
        Some(Reading::Value(x))
    }

    fn cond(active: bool) -> Option<Reading> {
        Some(Reading::Condition { active, value: None })
    }

    const MISSING: Option<Reading> = Some(Reading::Missing);
    /// A step without a reading: `tick` instead of `observe`.
    const TICK: Option<Reading> = None;

    struct Case {
        name: &'static str,
        rule: Rule,
        /// (ms after T0, reading or TICK)
        steps: Vec<(i64, Option<Reading>)>,
        /// Every returned change, exactly: (ms after T0, state).
        want: Vec<(i64, AlertState)>,
    }

    fn run(rule: &Rule, steps: &[(i64, Option<Reading>)]) -> (AlertBook, Vec<(i64, AlertState)>) {
        let mut book = AlertBook::new();
        let mut got = Vec::new();
        for &(ms, reading) in steps {
            let changed = match reading {
                Some(r) => book.observe(rule, "web", "w1", r, at(ms)).into_iter().collect(),
                None => book.tick(std::slice::from_ref(rule), at(ms)),
            };
            for a in changed {
                assert_eq!(a.since, at(ms), "a change is stamped with its instant");
                got.push((ms, a.state));
            }
        }
        (book, got)
    }

    #[test]
    fn a_restored_firing_alert_stays_until_a_reading_clears_it() {
        let rule = mem(150.0, Some(120.0));
        let (book, _) = run(&rule, &[(0, v(200.0)), (1000, v(200.0))]);
        let firing = book.get("mem", "w1").unwrap().clone();
        assert_eq!(firing.state, Firing);
        // A new book (a restarted Tend) gets it back as it was.
        let mut book = AlertBook::new();
        assert!(book.restore(&rule, firing.clone()));
        assert!(!book.restore(&rule, firing.clone()), "already tracked");
        assert_eq!(book.get("mem", "w1"), Some(&firing));
        // Inside the hysteresis band nothing changes; below the clear threshold it resolves.
        assert_eq!(book.observe(&rule, "web", "w1", Reading::Value(130.0), at(5000)), None);
        let resolved = book.observe(&rule, "web", "w1", Reading::Value(100.0), at(6000)).unwrap();
        assert_eq!((resolved.state, resolved.since), (Resolved, at(6000)));
        let mut inactive = firing;
        inactive.state = Resolved;
        assert!(!AlertBook::new().restore(&rule, inactive), "only active alerts come back");
    }

    #[test]
    fn state_changes_follow_the_brief() {
        let oscillate = |from_ms: i64, to_ms: i64| -> Vec<(i64, Option<Reading>)> {
            (from_ms..=to_ms)
                .step_by(1000)
                .map(|ms| (ms, if ms / 1000 % 2 == 0 { v(200.0) } else { v(100.0) }))
                .collect()
        };
        let cases = vec![
            Case {
                name: "for 3s fires after 3s above, not at 2.9s",
                rule: Rule { for_: secs(3), ..mem(150.0, None) },
                steps: vec![
                    (0, v(200.0)),
                    (1000, v(200.0)),
                    (2900, v(200.0)),
                    (3000, v(200.0)),
                    (4000, v(200.0)),
                ],
                want: vec![(0, Pending), (3000, Firing)],
            },
            Case {
                name: "pending is dropped when the value dips, and the next episode waits its own 3s",
                rule: Rule { for_: secs(3), ..mem(150.0, None) },
                steps: vec![
                    (0, v(200.0)),
                    (2000, v(140.0)),
                    (2500, v(200.0)),
                    (5000, v(200.0)),
                    (5500, v(200.0)),
                ],
                want: vec![(0, Pending), (2000, Inactive), (2500, Pending), (5500, Firing)],
            },
            Case {
                name: "no delay goes straight to firing; equal to the threshold neither breaches nor clears",
                rule: mem(150.0, None),
                steps: vec![
                    (0, v(150.0)),
                    (1000, v(150.1)),
                    (2000, v(150.0)),
                    (3000, v(149.9)),
                    (4000, v(150.0)),
                    (5000, v(151.0)),
                ],
                want: vec![(1000, Firing), (3000, Resolved), (5000, Firing)],
            },
            Case {
                name: "hysteresis: above 150, clear below 120",
                rule: mem(150.0, Some(120.0)),
                steps: vec![
                    (0, v(100.0)),
                    (1000, v(160.0)),
                    (2000, v(130.0)),
                    (3000, v(120.0)),
                    (4000, v(119.0)),
                    (5000, v(130.0)),
                    (6000, v(150.0)),
                    (7000, v(151.0)),
                ],
                want: vec![(1000, Firing), (4000, Resolved), (7000, Firing)],
            },
            Case {
                name: "hysteresis holds a pending alert too",
                rule: Rule { for_: secs(3), ..mem(150.0, Some(120.0)) },
                steps: vec![(0, v(160.0)), (1000, v(130.0)), (3000, v(125.0)), (4000, v(110.0))],
                want: vec![(0, Pending), (3000, Firing), (4000, Resolved)],
            },
            Case {
                name: "below 0.2, clear above 0.3",
                rule: Rule::threshold("rate", "success_rate", Comparison::Below, 0.2, Some(0.3)),
                steps: vec![
                    (0, v(0.5)),
                    (1000, v(0.2)),
                    (2000, v(0.15)),
                    (3000, v(0.25)),
                    (4000, v(0.3)),
                    (5000, v(0.31)),
                    (6000, v(0.25)),
                    (7000, v(0.1)),
                ],
                want: vec![(2000, Firing), (5000, Resolved), (7000, Firing)],
            },
            Case {
                name: "for_samples 5: the fifth consecutive breached reading fires; a dip restarts the count",
                rule: Rule { for_samples: 5, ..mem(150.0, None) },
                steps: vec![
                    (0, v(200.0)),
                    (100, v(200.0)),
                    (200, v(200.0)),
                    (300, v(100.0)),
                    (400, v(200.0)),
                    (500, v(200.0)),
                    (600, MISSING),
                    (700, v(200.0)),
                    (800, v(200.0)),
                    (900, v(200.0)),
                ],
                want: vec![(0, Pending), (300, Inactive), (400, Pending), (900, Firing)],
            },
            Case {
                name: "for 1s and 3 samples: both must hold, a tick alone cannot add samples",
                rule: Rule { for_: secs(1), for_samples: 3, ..mem(150.0, None) },
                steps: vec![(0, v(200.0)), (2000, v(200.0)), (3000, TICK), (4000, v(200.0))],
                want: vec![(0, Pending), (4000, Firing)],
            },
            Case {
                name: "keep_firing_for 5s: a breach in between restarts the wait",
                rule: Rule { keep_firing_for: secs(5), ..mem(150.0, None) },
                steps: vec![
                    (0, v(200.0)),
                    (1000, v(100.0)),
                    (3000, v(200.0)),
                    (4000, v(100.0)),
                    (8900, v(100.0)),
                    (9000, v(100.0)),
                    (10000, v(100.0)),
                ],
                want: vec![(0, Firing), (9000, Resolved)],
            },
            Case {
                name: "ticks move pending to firing and expire keep_firing_for",
                rule: Rule { for_: secs(3), keep_firing_for: secs(2), ..mem(150.0, None) },
                steps: vec![
                    (0, v(200.0)),
                    (2999, TICK),
                    (3000, TICK),
                    (3500, TICK),
                    (4000, v(100.0)),
                    (5000, TICK),
                    (6000, TICK),
                    (7000, TICK),
                ],
                want: vec![(0, Pending), (3000, Firing), (6000, Resolved)],
            },
            Case {
                name: "missing readings change nothing: no breach, no calm",
                rule: mem(150.0, None),
                steps: vec![
                    (0, MISSING),
                    (1000, v(200.0)),
                    (2000, MISSING),
                    (3000, MISSING),
                    (4000, v(100.0)),
                ],
                want: vec![(1000, Firing), (4000, Resolved)],
            },
            Case {
                name: "missing readings still let time pass like a tick",
                rule: Rule { for_: secs(3), ..mem(150.0, None) },
                steps: vec![(0, v(200.0)), (1000, MISSING), (3000, MISSING), (4000, MISSING)],
                want: vec![(0, Pending), (3000, Firing)],
            },
            Case {
                name: "fleet-evaluated conditions: breached is `active`",
                rule: Rule { for_: secs(30), ..Rule::new("stale", Condition::Stale { after: secs(30) }) },
                steps: vec![(0, cond(false)), (1000, cond(true)), (31000, TICK), (40000, cond(false))],
                want: vec![(1000, Pending), (31000, Firing), (40000, Resolved)],
            },
            Case {
                name: "oscillation flaps exactly once, then resolves after a quiet window",
                rule: Rule { flap_max: 2, flap_window: secs(60), ..mem(150.0, None) },
                steps: [
                    oscillate(0, 9000),
                    vec![(30000, v(100.0)), (68999, TICK), (69000, TICK), (70000, v(200.0))],
                ]
                .concat(),
                want: vec![
                    (0, Firing),
                    (1000, Resolved),
                    (2000, Firing),
                    (3000, Resolved),
                    (4000, Flapping),
                    (69000, Resolved),
                    (70000, Firing),
                ],
            },
            Case {
                name: "flapping settles into firing when the breach holds for a window",
                rule: Rule { flap_max: 2, flap_window: secs(60), ..mem(150.0, None) },
                steps: [
                    oscillate(0, 6000),
                    vec![(30000, v(200.0)), (65999, TICK), (66000, TICK), (67000, v(100.0))],
                ]
                .concat(),
                want: vec![
                    (0, Firing),
                    (1000, Resolved),
                    (2000, Firing),
                    (3000, Resolved),
                    (4000, Flapping),
                    (66000, Firing),
                    (67000, Resolved),
                ],
            },
            Case {
                name: "firings older than the flap window are not counted",
                rule: Rule { flap_max: 2, flap_window: secs(10), ..mem(150.0, None) },
                steps: [oscillate(0, 3000), oscillate(12000, 16000)].concat(),
                want: vec![
                    (0, Firing),
                    (1000, Resolved),
                    (2000, Firing),
                    (3000, Resolved),
                    (12000, Firing),
                    (13000, Resolved),
                    (14000, Firing),
                    (15000, Resolved),
                    (16000, Flapping),
                ],
            },
            Case {
                name: "flap_max 0 disables flapping",
                rule: Rule { flap_max: 0, flap_window: secs(60), ..mem(150.0, None) },
                steps: oscillate(0, 3000),
                want: vec![(0, Firing), (1000, Resolved), (2000, Firing), (3000, Resolved)],
            },
        ];
        for case in cases {
            let (_, got) = run(&case.rule, &case.steps);
            assert_eq!(got, case.want, "{}", case.name);
        }
    }

    #[test]
    fn alert_fields_describe_the_episode() {
        let rule = Rule { for_: secs(5), severity: Severity::Critical, ..mem(150.0, Some(120.0)) };
        let mut book = AlertBook::new();
        assert_eq!(book.observe(&rule, "web", "w1", Reading::Value(100.0), at(0)), None);
        assert_eq!(book.get("mem", "w1").map(|a| a.state), Some(Inactive), "tracked from the first reading");
        let pending = book.observe(&rule, "web", "w1", Reading::Value(180.0), at(1000)).unwrap();
        assert_eq!((pending.state, pending.since, pending.started), (Pending, at(1000), Some(at(1000))));
        let firing = book.observe(&rule, "web", "w1", Reading::Value(212.0), at(6000)).unwrap();
        assert_eq!(firing.state, Firing);
        assert_eq!(firing.since, at(6000));
        assert_eq!(firing.started, Some(at(1000)), "the episode started at the first breached reading");
        assert_eq!(firing.value, Some(212.0));
        assert_eq!(firing.threshold, Some(150.0));
        assert_eq!((firing.metric.as_deref(), firing.clear), (Some("memory_mb"), Some(120.0)));
        assert_eq!(firing.severity, Severity::Critical);
        assert_eq!(
            (firing.rule.as_str(), firing.subject.as_str(), firing.pool.as_str()),
            ("mem", "w1", "web")
        );
        assert_eq!(firing.message, "memory_mb 212.0 above 150 (clear below 120) for 5s");
        let resolved = book.observe(&rule, "web", "w1", Reading::Value(110.5), at(7000)).unwrap();
        assert_eq!(resolved.state, Resolved);
        assert_eq!(resolved.started, Some(at(1000)), "kept after the episode ends");
        assert_eq!(resolved.message, "memory_mb 110.5 not above 150 (clear below 120)");
    }

    #[test]
    fn messages_for_other_conditions_and_flapping() {
        let rule = Rule::new("churn", Condition::RestartChurn { max: 5, within: secs(60) });
        let mut book = AlertBook::new();
        let a = book
            .observe(&rule, "web", "web", Reading::Condition { active: true, value: Some(6.0) }, at(0))
            .unwrap();
        assert_eq!(a.message, "6 recycles within 1m (max 5)");
        assert_eq!((a.value, a.threshold), (Some(6.0), None));
        assert_eq!((a.metric.as_deref(), a.clear), (None, None), "no metric for a condition Tend evaluates");

        let rule = Rule::new("stale", Condition::Stale { after: secs(30) });
        let a = book.observe(&rule, "web", "w1", Reading::Condition { active: true, value: None }, at(0));
        assert_eq!(a.unwrap().message, "no sample for 30s");
        let a = book.observe(&rule, "web", "w2", Reading::Value(42.0), at(0)).unwrap();
        assert_eq!((a.state, a.message.as_str()), (Firing, "no sample for 42s"), "a number: seconds");
        assert_eq!(book.observe(&rule, "web", "w3", Reading::Value(30.0), at(0)), None);

        let rule = Rule::threshold("rate", "success_rate", Comparison::Below, 0.2, Some(0.3));
        let a = book.observe(&rule, "web", "w1", Reading::Value(0.15), at(0)).unwrap();
        assert_eq!(a.message, "success_rate 0.15 below 0.2 (clear above 0.3)");

        let rule = Rule { flap_max: 1, flap_window: secs(90), ..mem(150.0, None) };
        let mut last = None;
        for (i, x) in [200.0, 100.0, 200.0].into_iter().enumerate() {
            last = book.observe(&rule, "web", "w1", Reading::Value(x), at(i as i64 * 1000));
        }
        let a = last.unwrap();
        assert_eq!(a.state, Flapping);
        assert_eq!(a.message, "memory_mb 200.0 above 150; flapping: 2 firings within 1m30s (max 1)");
    }

    #[test]
    fn forget_subject_resolves_and_drops_its_trackers() {
        let mem = mem(150.0, None);
        let slow = Rule { name: "slow".into(), for_: secs(60), ..mem.clone() };
        let mut book = AlertBook::new();
        for (rule, subject, x) in
            [(&mem, "w1", 200.0), (&slow, "w1", 200.0), (&mem, "w2", 200.0), (&mem, "w3", 100.0)]
        {
            book.observe(rule, "web", subject, Reading::Value(x), at(0));
        }
        book.observe(&mem, "web", "w3", Reading::Value(100.0), at(0));
        let gone = book.forget_subject("w1", at(5000));
        let got: Vec<_> = gone.iter().map(|a| (a.rule.as_str(), a.state, a.since)).collect();
        assert_eq!(got, vec![("mem", Resolved, at(5000)), ("slow", Inactive, at(5000))]);
        assert!(gone[0].message.starts_with("w1 is gone"), "{}", gone[0].message);
        assert!(book.get("mem", "w1").is_none() && book.get("slow", "w1").is_none());
        assert_eq!(book.get("mem", "w2").map(|a| a.state), Some(Firing), "other subjects untouched");
        assert_eq!(book.forget_subject("w3", at(6000)), vec![], "an inactive tracker goes silently");
        assert!(book.get("mem", "w3").is_none());
        assert_eq!(book.alerts().count(), 1);
    }

    #[test]
    fn acknowledgement_lasts_one_episode_and_silence_outlives_it() {
        let rule = mem(150.0, None);
        let mut book = AlertBook::new();
        assert_eq!(book.acknowledge("mem", "w1"), None, "unknown alert");
        book.observe(&rule, "web", "w1", Reading::Value(200.0), at(0));
        assert!(book.acknowledge("mem", "w1").unwrap().acknowledged);
        let silenced = book.silence("mem", "w1", Some(at(60_000))).unwrap();
        assert!(silenced.is_silenced(at(59_999)) && !is_silenced(&silenced, at(60_000)));
        assert_eq!(book.observe(&rule, "web", "w1", Reading::Value(210.0), at(1000)), None);
        let resolved = book.observe(&rule, "web", "w1", Reading::Value(100.0), at(2000)).unwrap();
        assert!(resolved.acknowledged, "the resolved row still shows who saw it");
        let again = book.observe(&rule, "web", "w1", Reading::Value(200.0), at(3000)).unwrap();
        assert_eq!(again.state, Firing);
        assert!(!again.acknowledged, "a new episode needs a new acknowledgement");
        assert_eq!(again.silenced_until, Some(at(60_000)));
        assert_eq!(book.silence("mem", "w1", None).unwrap().silenced_until, None);
    }

    #[test]
    fn active_lists_pending_firing_and_flapping_only() {
        let fast = mem(150.0, None);
        let slow = Rule { name: "slow".into(), for_: secs(60), ..fast.clone() };
        let mut book = AlertBook::new();
        book.observe(&fast, "web", "w1", Reading::Value(200.0), at(0));
        book.observe(&slow, "web", "w1", Reading::Value(200.0), at(0));
        book.observe(&fast, "web", "w2", Reading::Value(100.0), at(0));
        let active: Vec<_> = book.active().map(|a| (a.rule.as_str(), a.subject.as_str(), a.state)).collect();
        assert_eq!(active, vec![("mem", "w1", Firing), ("slow", "w1", Pending)]);
        assert_eq!(book.alerts().count(), 3);
        assert_eq!(book.tick(std::slice::from_ref(&fast), at(60_000)), vec![], "slow was not ticked");
        let ticked = book.tick(&[fast, slow], at(60_000));
        assert_eq!(
            ticked.iter().map(|a| (a.rule.as_str(), a.state)).collect::<Vec<_>>(),
            vec![("slow", Firing)]
        );
    }

    #[test]
    fn a_clear_on_the_wrong_side_is_the_fire_threshold() {
        let (_, got) = run(&mem(150.0, Some(200.0)), &[(0, v(160.0)), (1000, v(160.0)), (2000, v(149.0))]);
        assert_eq!(got, vec![(0, Firing), (2000, Resolved)]);
    }

    #[test]
    fn names_parse_and_serialize() {
        assert_eq!(Severity::parse(" Critical "), Some(Severity::Critical));
        assert_eq!(Severity::parse("warn"), Some(Severity::Warning));
        assert_eq!(Severity::parse("loud"), None);
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        for s in [Inactive, Pending, Firing, Flapping, Resolved] {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        let rule = mem(150.0, Some(120.0));
        assert_eq!(rule.metric(), Some("memory_mb"));
        assert_eq!(Rule::new("s", Condition::Stale { after: secs(1) }).metric(), None);
    }
}
