//! Time as people write it: ISO-8601 / RFC 3339 in and out (UTC with `Z` on output), epoch milliseconds,
//! and `now` / `-1h` relative to a given instant. Pure functions; "now" is always an argument.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

use tend_core::time::Timestamp;

/// `2026-11-23T11:54:26.123Z`. Hand-rolled (days-from-civil) because CSV export calls it per row.
pub fn iso(t: Timestamp) -> String {
    let mut s = String::with_capacity(24);
    write_iso(&mut s, t);
    s
}

pub fn write_iso(out: &mut String, t: Timestamp) {
    use std::fmt::Write;
    let ms = t.as_millis();
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, frac) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:03}Z");
}

/// Howard Hinnant's algorithm: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parse a time: epoch milliseconds (`1732361666000`), RFC 3339 (`2026-11-23T11:54:26Z`,
/// `...+01:00`), a date-time without zone (UTC), a date (`2026-11-23`, midnight UTC), `now`, or
/// `-<duration>` before `now` (`-15m`, `-2h`, `-7d`, `-90s`).
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
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Timestamp::from_millis(t.timestamp_millis()));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(Timestamp::from_millis(Utc.from_utc_datetime(&t).timestamp_millis()));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(Timestamp::from_millis(Utc.from_utc_datetime(&t).timestamp_millis()));
    }
    Err(format!("bad time {s:?}: use ISO-8601 (2026-11-23T10:00:00Z), epoch milliseconds, `now` or -1h"))
}

/// `30s`, `15m`, `2h`, `7d`, `500ms`, or a bare number of seconds, in milliseconds.
pub fn parse_span(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let mult = match unit {
        "ms" => 1.0,
        "" | "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    let ms = v * mult;
    (0.0..1e15).contains(&ms).then_some(ms as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trips_through_the_parser() {
        for ms in
            [0, 1_732_361_666_123, 951_782_400_000 /* 2000-02-29 */, -86_400_000, 4_102_444_800_000]
        {
            let s = iso(Timestamp::from_millis(ms));
            assert_eq!(parse_time(&s, Timestamp(0)).unwrap().as_millis(), ms, "{s}");
        }
        assert_eq!(iso(Timestamp::from_millis(951_782_400_000)), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn parses_every_accepted_form() {
        let now = Timestamp::from_secs(1_000_000);
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("-1h", now).unwrap(), Timestamp::from_secs(1_000_000 - 3600));
        assert_eq!(parse_time("1500", now).unwrap(), Timestamp(1500));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00", now).unwrap(), Timestamp(0));
        assert_eq!(parse_time("1970-01-02", now).unwrap(), Timestamp::from_secs(86_400));
        assert_eq!(parse_time("1970-01-01T00:00:01.5", now).unwrap(), Timestamp(1500));
        assert!(parse_time("yesterday", now).unwrap_err().contains("ISO-8601"));
        assert!(parse_time("-1y", now).is_err());
        assert_eq!(parse_span("500ms"), Some(500));
        assert_eq!(parse_span("2m"), Some(120_000));
    }
}
