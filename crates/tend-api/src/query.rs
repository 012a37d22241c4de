//! The query strings of the API, typed: what the OpenAPI document says about each parameter (its
//! type, its pattern, its range) is what the server parses. Unknown parameters are refused. Times and
//! spans stay text here (their forms are listed in the patterns); the server turns them into times.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::IntoParams;

use crate::history::ExportKind;

/// The forms of a time the API accepts: `now`, `-<span>` before now (`-15m`, `-2h`, `-1.5h`, `-7d`, `-90`
/// seconds; a fraction of a day is written in hours),
/// epoch milliseconds, a date (UTC midnight), or an ISO-8601 date-time (`2026-11-23T10:00`, seconds,
/// fractions, `Z` or an offset; no zone is UTC).
pub const TIME_PATTERN: &str = r"^(now|-[0-9]{1,6}((\.[0-9]{1,3})?(ms|s|m|h)?|d)|[0-9]{1,15}|((19|20)[0-9]{2}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))|(19|20)(0[48]|[2468][048]|[13579][26])-02-29|2000-02-29)(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?)?)$";
/// A bucket width: milliseconds, or a number with a unit.
pub const STEP_PATTERN: &str = r"^([1-9][0-9]{0,8}|[1-9][0-9]{0,5}(ms|s|m|h|d))$";
/// A metric: a built-in name or a custom one.
pub const METRIC_PATTERN: &str = r"^[A-Za-z0-9_.:-]{1,100}$";
/// Metric columns: names separated by commas.
pub const METRICS_PATTERN: &str = r"^[A-Za-z0-9_.:-]{1,100}(,[A-Za-z0-9_.:-]{1,100})*$";

/// `?since=`: only events after this sequence number.
#[derive(Clone, Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SinceQuery {
    /// Only events after this sequence number (or send `Last-Event-ID`).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    #[serde(default, deserialize_with = "since")]
    pub since: Option<u64>,
}

/// `GET /workers/{id}/history`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricHistoryQuery {
    /// A built-in metric (`cpu_percent`, the default; `memory_mb`, ...) or a custom one.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,100}$")]
    #[serde(default, deserialize_with = "metric")]
    pub metric: Option<String>,
    /// Start (default: an hour ago): ISO-8601, epoch ms, `now` or `-1h`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}((\.[0-9]{1,3})?(ms|s|m|h)?|d)|[0-9]{1,15}|((19|20)[0-9]{2}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))|(19|20)(0[48]|[2468][048]|[13579][26])-02-29|2000-02-29)(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?)?)$"
    )]
    #[serde(default, deserialize_with = "time")]
    pub from: Option<String>,
    /// End (default: now); after `from`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}((\.[0-9]{1,3})?(ms|s|m|h)?|d)|[0-9]{1,15}|((19|20)[0-9]{2}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))|(19|20)(0[48]|[2468][048]|[13579][26])-02-29|2000-02-29)(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?)?)$"
    )]
    #[serde(default, deserialize_with = "time")]
    pub to: Option<String>,
    /// Bucket width: a duration like `1m`, or milliseconds (default: about 300 points).
    #[param(pattern = r"^([1-9][0-9]{0,8}|[1-9][0-9]{0,5}(ms|s|m|h|d))$")]
    #[serde(default, deserialize_with = "step")]
    pub step: Option<String>,
}

/// A window of recorded rows: events or alert changes of a worker or a pool.
#[derive(Clone, Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// Start (default: the beginning): ISO-8601, epoch ms, `now` or `-1h`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}((\.[0-9]{1,3})?(ms|s|m|h)?|d)|[0-9]{1,15}|((19|20)[0-9]{2}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))|(19|20)(0[48]|[2468][048]|[13579][26])-02-29|2000-02-29)(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?)?)$"
    )]
    #[serde(default, deserialize_with = "time")]
    pub from: Option<String>,
    /// End (default: now); after `from`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}((\.[0-9]{1,3})?(ms|s|m|h)?|d)|[0-9]{1,15}|((19|20)[0-9]{2}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))|(19|20)(0[48]|[2468][048]|[13579][26])-02-29|2000-02-29)(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?)?)$"
    )]
    #[serde(default, deserialize_with = "time")]
    pub to: Option<String>,
    /// At most this many rows (default 10000).
    #[param(minimum = 1, maximum = 100000)]
    #[serde(default, deserialize_with = "limit")]
    pub limit: Option<u32>,
}

/// `GET /recycles`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecyclesQuery {
    /// Only this pool.
    pub pool: Option<String>,
    /// Only this worker.
    pub worker: Option<String>,
    /// Start (default: the beginning): ISO-8601, epoch ms, `now` or `-1h`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}((\.[0-9]{1,3})?(ms|s|m|h)?|d)|[0-9]{1,15}|((19|20)[0-9]{2}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))|(19|20)(0[48]|[2468][048]|[13579][26])-02-29|2000-02-29)(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?)?)$"
    )]
    #[serde(default, deserialize_with = "time")]
    pub from: Option<String>,
    /// End (default: now); after `from`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}((\.[0-9]{1,3})?(ms|s|m|h)?|d)|[0-9]{1,15}|((19|20)[0-9]{2}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))|(19|20)(0[48]|[2468][048]|[13579][26])-02-29|2000-02-29)(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?)?)$"
    )]
    #[serde(default, deserialize_with = "time")]
    pub to: Option<String>,
    /// At most this many rows (default 10000).
    #[param(minimum = 1, maximum = 100000)]
    #[serde(default, deserialize_with = "limit")]
    pub limit: Option<u32>,
}

/// `GET /export.csv`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// What rows (default `samples`).
    #[serde(default, deserialize_with = "export_kind")]
    pub kind: Option<ExportKind>,
    /// Only this pool.
    pub pool: Option<String>,
    /// Only this worker.
    pub worker: Option<String>,
    /// Start (default: the beginning): ISO-8601, epoch ms, `now` or `-1h`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}((\.[0-9]{1,3})?(ms|s|m|h)?|d)|[0-9]{1,15}|((19|20)[0-9]{2}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))|(19|20)(0[48]|[2468][048]|[13579][26])-02-29|2000-02-29)(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?)?)$"
    )]
    #[serde(default, deserialize_with = "time")]
    pub from: Option<String>,
    /// End (default: now); after `from`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}((\.[0-9]{1,3})?(ms|s|m|h)?|d)|[0-9]{1,15}|((19|20)[0-9]{2}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))|(19|20)(0[48]|[2468][048]|[13579][26])-02-29|2000-02-29)(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?)?)$"
    )]
    #[serde(default, deserialize_with = "time")]
    pub to: Option<String>,
    /// Samples: the metric columns, comma-separated (default: all).
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,100}(,[A-Za-z0-9_.:-]{1,100})*$")]
    #[serde(default, deserialize_with = "metrics")]
    pub metrics: Option<String>,
}

/// The value when it matches `re`, else `message(value)` as the error.
fn checked<'de, D: Deserializer<'de>>(
    d: D,
    re: &Regex,
    message: impl Fn(&str) -> String,
) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    if re.is_match(&s) { Ok(Some(s)) } else { Err(serde::de::Error::custom(message(&s))) }
}

/// A pattern of this module, compiled once (each is a constant, checked by the tests below).
fn compiled(pattern: &'static str) -> Regex {
    Regex::new(pattern).expect("a constant pattern that compiles")
}

static TIME_RE: LazyLock<Regex> = LazyLock::new(|| compiled(TIME_PATTERN));
static STEP_RE: LazyLock<Regex> = LazyLock::new(|| compiled(STEP_PATTERN));
static METRIC_RE: LazyLock<Regex> = LazyLock::new(|| compiled(METRIC_PATTERN));
static METRICS_RE: LazyLock<Regex> = LazyLock::new(|| compiled(METRICS_PATTERN));

fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, &TIME_RE, |s| {
        format!("bad time {s:?}: use ISO-8601 (2026-11-23T10:00:00Z), epoch milliseconds, `now` or -1h")
    })
}

fn step<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, &STEP_RE, |s| {
        if !s.is_empty() && s.bytes().all(|b| b == b'0') {
            "must be positive".to_owned()
        } else {
            "use a duration like 10s, 1m, 1h, or milliseconds".to_owned()
        }
    })
}

fn metric<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, &METRIC_RE, |s| format!("bad metric name {s:?}"))
}

fn metrics<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, &METRICS_RE, |s| format!("bad metric names {s:?}: a comma-separated list of names"))
}

/// `since`: a sequence number (they fit an i64, as JSON numbers do for most clients).
fn since<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let s = String::deserialize(d)?;
    match s.parse::<u64>() {
        Ok(n) if i64::try_from(n).is_ok() => Ok(Some(n)),
        _ => Err(serde::de::Error::custom("must be a whole number from 0 to 9223372036854775807")),
    }
}

/// The most rows one answer holds.
pub const MAX_LIMIT: u32 = 100_000;

/// `limit`: a whole number from 1 to [`MAX_LIMIT`].
fn limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let s = String::deserialize(d)?;
    match s.parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(Some(n)),
        _ => Err(serde::de::Error::custom("must be a whole number from 1 to 100000")),
    }
}

/// `kind`: one of the export kinds, by name.
fn export_kind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ExportKind>, D::Error> {
    let s = String::deserialize(d)?;
    ExportKind::parse(&s).map(Some).ok_or_else(|| {
        let names: Vec<&str> = ExportKind::ALL.iter().map(|k| k.as_str()).collect();
        serde::de::Error::custom(format!("one of {}", names.join(", ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(q: &str) -> Result<T, String> {
        serde_json::from_value::<T>(serde_json::Value::Object(
            q.split('&')
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
                .collect(),
        ))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn times_steps_and_metrics_are_held_to_their_patterns() {
        for ok in [
            "now",
            "-15m",
            "-1.5h",
            "-90",
            "1732361666000",
            "2026-11-30",
            "2024-02-29",
            "2026-11-23T10:00",
            "2026-11-23T10:00:00Z",
            "2026-11-23T10:00:00.123+01:00",
            "2026-11-23T10:00:00",
        ] {
            assert!(parse::<WindowQuery>(&format!("from={ok}")).is_ok(), "{ok}");
        }
        for bad in
            ["yesterday", "2026-11-31", "2023-02-29", "1900-02-29", "2026-11-23T10:00Z", "-", "", "1e5"]
        {
            let e = parse::<WindowQuery>(&format!("from={bad}")).err().unwrap_or_default();
            assert!(e.contains("bad time"), "{bad}: {e}");
        }
        assert!(
            parse::<MetricHistoryQuery>("step=0.5").is_err()
                && parse::<MetricHistoryQuery>("step=0").is_err()
        );
        assert!(
            parse::<MetricHistoryQuery>("step=1500").is_ok()
                && parse::<MetricHistoryQuery>("step=5m").is_ok()
        );
        assert!(parse::<MetricHistoryQuery>("metric=x;drop").is_err());
        assert!(
            parse::<ExportQuery>("metrics=a,b.c").is_ok() && parse::<ExportQuery>("metrics=a,,b").is_err()
        );
        assert!(parse::<SinceQuery>("since=9223372036854775808").is_err());
        assert_eq!(parse::<SinceQuery>("since=7").map(|q| q.since), Ok(Some(7)));
    }

    #[test]
    fn limits_and_kinds_say_what_they_accept() {
        assert_eq!(parse::<WindowQuery>("limit=5").map(|q| q.limit), Ok(Some(5)));
        for bad in ["limit=0", "limit=100001", "limit=x", "limit=-1"] {
            let e = parse::<WindowQuery>(bad).err().unwrap_or_default();
            assert!(e.contains("must be a whole number from 1 to 100000"), "{bad}: {e}");
        }
        assert_eq!(parse::<ExportQuery>("kind=alerts").map(|q| q.kind), Ok(Some(ExportKind::Alerts)));
        let e = parse::<ExportQuery>("kind=bogus").err().unwrap_or_default();
        assert!(e.contains("one of samples, events, alerts, recycles"), "{e}");
        assert!(parse::<WindowQuery>("colour=blue").is_err(), "unknown parameters are refused");
    }

    /// The patterns in the attributes are the constants (attributes cannot name a constant).
    #[test]
    fn the_documented_patterns_are_the_constants() {
        let src = include_str!("query.rs");
        for (name, pattern) in [
            ("TIME", super::TIME_PATTERN),
            ("STEP", super::STEP_PATTERN),
            ("METRIC", super::METRIC_PATTERN),
            ("METRICS", super::METRICS_PATTERN),
        ] {
            assert!(regex::Regex::new(pattern).is_ok(), "{name}_PATTERN compiles");
            let attr = format!("pattern = r\"{pattern}\"");
            assert!(src.contains(&attr), "{name}_PATTERN is used by the attributes");
        }
        let times = src.matches(&format!("pattern = r\"{}\"", super::TIME_PATTERN)).count();
        assert_eq!(times, 8, "every from/to carries the time pattern");
        let metrics = src.matches(&format!("pattern = r\"{}\"", super::METRICS_PATTERN)).count();
        assert_eq!(metrics, 1, "the export's metrics carry the list pattern");
    }
}
