//! Time as data: a millisecond UTC timestamp, the `Clock` trait through which the runtime injects
//! "now", and the one place where times and durations are read from text and written for people.
//! Parsing goes through jiff (ISO 8601 and its friendly durations); nothing here reads the wall clock
//! ("now" is an argument), and `ManualClock` exists for tests of other crates.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }
    pub const fn from_secs(s: i64) -> Self {
        Timestamp(s * 1000)
    }
    pub const fn as_millis(self) -> i64 {
        self.0
    }
    /// Time elapsed from `earlier` to `self`; zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }
    pub fn minus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }
}

/// Where "now" comes from. The runtime passes a system clock; tests pass a [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// A clock that only moves when told to.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX), Ordering::SeqCst);
    }
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

// ---- reading times and durations -----------------------------------------------------------------

/// Why a text is not a duration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationError {
    /// Well formed, but larger than any duration can hold (`106751991167300d`).
    TooLong,
    /// Not a duration; the reason as jiff gives it.
    Invalid(String),
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::TooLong => f.write_str("the duration is too long"),
            DurationError::Invalid(why) => f.write_str(why),
        }
    }
}

/// A duration as people write it: jiff's friendly form (`500ms`, `5s`, `1h30m`, `1h 30m`, `1.5s`,
/// `90 minutes`, `7d`) or ISO 8601 (`PT1H30M`). A day is 24 hours and a week 7 days; months and years,
/// whose length depends on a date, are refused, and so is a negative duration.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let read = |s: &str| -> Result<Duration, String> {
        let span: jiff::Span = s.parse().map_err(|e: jiff::Error| e.to_string())?;
        if span.is_negative() {
            return Err("a duration cannot be negative".into());
        }
        let d = span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).map_err(|e| e.to_string())?;
        Duration::try_from(d).map_err(|e| e.to_string())
    };
    read(s).map_err(|why| {
        // The same text with every run of digits made `1` reads: only the numbers were too large.
        let mut small = String::with_capacity(s.len());
        let mut in_digits = false;
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            if !(digit && in_digits) {
                small.push(if digit { '1' } else { c });
            }
            in_digits = digit;
        }
        if read(&small).is_ok() { DurationError::TooLong } else { DurationError::Invalid(why) }
    })
}

/// The longest span [`parse_span`] accepts, in milliseconds (about 31,700 years).
const MAX_SPAN_MS: u128 = 1_000_000_000_000_000;

/// A span in query strings: a [`parse_duration`] or a bare number of seconds (`90`, `1.5`), in
/// milliseconds. `None` when it is neither or longer than [`MAX_SPAN_MS`].
pub fn parse_span(s: &str) -> Option<i64> {
    let s = s.trim();
    let d = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        Duration::try_from_secs_f64(s.parse().ok()?).ok()?
    } else {
        parse_duration(s).ok()?
    };
    i64::try_from(d.as_millis()).ok().filter(|ms| (*ms as u128) < MAX_SPAN_MS)
}

/// Parse a time: epoch milliseconds (`1732361666000`), RFC 3339 (`2026-11-23T11:54:26Z`,
/// `...+01:00`), a date-time without zone (UTC; `T` or a space between date and time), a date
/// (`2026-11-23`, midnight UTC), `now`, or `-<span>` before `now` (`-15m`, `-2h`, `-7d`, `-90`).
pub fn parse_time(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty time".into());
    }
    if s == "now" {
        return Ok(now);
    }
    if let Some(rel) = s.strip_prefix('-') {
        let d =
            parse_span(rel).ok_or_else(|| format!("bad relative time {s:?}: use -30s, -15m, -2h, -7d"))?;
        return Ok(Timestamp::from_millis(now.as_millis().saturating_sub(d)));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .map(Timestamp::from_millis)
            .map_err(|e| format!("bad epoch milliseconds {s:?}: {e}"));
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(Timestamp::from_millis(t.as_millisecond()));
    }
    // A civil date-time (or date) is read as UTC; one that carries an offset was refused above for a
    // reason (out of range), so it is not read again with its offset dropped.
    if !has_offset(s)
        && let Ok(t) = s.parse::<jiff::civil::DateTime>()
        && let Ok(t) = jiff::tz::Offset::UTC.to_timestamp(t)
    {
        return Ok(Timestamp::from_millis(t.as_millisecond()));
    }
    Err(format!("bad time {s:?}: use ISO-8601 (2026-11-23T10:00:00Z), epoch milliseconds, `now` or -1h"))
}

/// Whether a date-time ends in a zone designator (`Z`, `+01:00`, `-0500`, `[...]`).
fn has_offset(s: &str) -> bool {
    let time = s.get(10..).unwrap_or("");
    time.contains(['Z', 'z', '+', '[']) || time.get(1..).is_some_and(|t| t.contains('-'))
}

// ---- writing durations for people -----------------------------------------------------------------

/// A duration as a config file would write it, in its largest exact unit (`100ms`, `5s`, `30d`): for
/// limits in messages.
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let units = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")];
    for (size, unit) in units {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A measured duration, rounded for reading: `500ms`, `2.9s`, `45s`, `1m30s`, `10m`, `2h`.
pub fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return if d.subsec_millis() == 0 { "0s".to_owned() } else { format!("{}ms", d.subsec_millis()) };
    }
    if secs < 60 && d.subsec_millis() != 0 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n != 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// A configured duration in seconds, as lifecycle causes write it: `5s`, `2.5s`, `300s`.
pub fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { format!("{s:.0}s") } else { format!("{s:.1}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_saturates_and_add_round_trips() {
        let t = Timestamp::from_secs(10);
        assert_eq!(t.plus(Duration::from_millis(1500)).since(t), Duration::from_millis(1500));
        assert_eq!(t.since(t.plus(Duration::from_secs(1))), Duration::ZERO);
        let c = ManualClock::new(t);
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now(), Timestamp::from_secs(12));
    }

    #[test]
    fn durations_in_every_accepted_form() {
        let ok = [
            ("250ms", Duration::from_millis(250)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1d", Duration::from_secs(86400)),
            ("1w", Duration::from_secs(7 * 86400)),
            ("1h30m", Duration::from_secs(5400)),
            ("1h 30m", Duration::from_secs(5400)),
            ("90 minutes", Duration::from_secs(5400)),
            ("PT1H30M", Duration::from_secs(5400)),
            ("1m30s500ms", Duration::from_millis(90_500)),
            ("1.5s", Duration::from_millis(1500)),
            ("0s", Duration::ZERO),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in ["", "5", "-5s", "s", ".5s", "5x", "1mo", "1y", "1h30"] {
            assert!(matches!(parse_duration(bad), Err(DurationError::Invalid(_))), "{bad:?} was accepted");
        }
        assert_eq!(parse_duration("-5s").unwrap_err().to_string(), "a duration cannot be negative");
        for huge in ["99999999999999999999d", "106751991167300d", "20000000d 1h", "9999999999999999999ms"] {
            assert_eq!(parse_duration(huge), Err(DurationError::TooLong), "{huge}");
        }
        assert_eq!(parse_span("500ms"), Some(500));
        assert_eq!(parse_span("2m"), Some(120_000));
        assert_eq!(parse_span("90"), Some(90_000));
        assert_eq!(parse_span("1.5"), Some(1500));
        assert_eq!(parse_span("x"), None);
    }

    #[test]
    fn times_in_every_accepted_form() {
        let now = Timestamp::from_secs(1_000_000);
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("-1h", now).unwrap(), Timestamp::from_secs(1_000_000 - 3600));
        assert_eq!(parse_time("-90", now).unwrap(), Timestamp::from_secs(1_000_000 - 90));
        assert_eq!(parse_time("1500", now).unwrap(), Timestamp(1500));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00", now).unwrap(), Timestamp(0));
        assert_eq!(parse_time("1970-01-01T00:00:00Z", now).unwrap(), Timestamp(0));
        assert_eq!(parse_time("1970-01-02", now).unwrap(), Timestamp::from_secs(86_400));
        assert_eq!(parse_time("1970-01-01T00:00:01.5", now).unwrap(), Timestamp(1500));
        assert_eq!(parse_time("1970-01-01 00:00:01.5", now).unwrap(), Timestamp(1500));
        assert_eq!(parse_time("1970-01-01T00:01", now).unwrap(), Timestamp(60_000));
        assert_eq!(parse_time("2000-02-29T00:00:00.000Z", now).unwrap(), Timestamp(951_782_400_000));
        assert!(parse_time("yesterday", now).unwrap_err().contains("ISO-8601"));
        assert!(parse_time("2001-02-29", now).is_err(), "not a leap year");
        assert!(parse_time("1970-01-01T00:00:00+99:00", now).is_err(), "an offset is never dropped");
        assert!(parse_time("-1y", now).is_err());
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(fmt_duration(Duration::from_millis(2900)), "2.9s");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_secs(3725)), "1h2m5s");
        assert_eq!(show_duration(Duration::from_secs(30 * 86400)), "30d");
        assert_eq!(show_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(show_duration(Duration::from_secs(90)), "90s");
        assert_eq!(fmt_secs(Duration::from_secs(300)), "300s");
        assert_eq!(fmt_secs(Duration::from_millis(2500)), "2.5s");
    }
}
