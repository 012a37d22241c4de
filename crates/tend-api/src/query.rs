//! The query strings of the API, typed: what the OpenAPI document says about each parameter (its
//! type, its pattern, its range) is what the server parses. Unknown parameters are refused. Times and
//! spans stay text here (their forms are listed in the patterns); the server turns them into times.

use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::history::ExportKind;

/// The forms of a time the API always accepts: `now`, `-<span>` before now (`-15m`, `-2h`, `-90`
/// seconds), epoch milliseconds, a UTC date, or a UTC date-time (ISO-8601, `Z`).
pub const TIME_PATTERN: &str = r"^(now|-[0-9]{1,6}(ms|s|m|h|d)?|[0-9]{1,13}|(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?Z)?)$";
/// A bucket width: milliseconds, or a number with a unit.
pub const STEP_PATTERN: &str = r"^([1-9][0-9]{0,8}|[1-9][0-9]{0,5}(ms|s|m|h|d))$";
/// A metric: a built-in name or a custom one.
pub const METRIC_PATTERN: &str = r"^[A-Za-z0-9_.:-]{1,100}$";

/// `?since=`: only events after this sequence number.
#[derive(Clone, Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SinceQuery {
    /// Only events after this sequence number (or send `Last-Event-ID`).
    pub since: Option<u64>,
}

/// `GET /workers/{id}/history`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricHistoryQuery {
    /// A built-in metric (`cpu_percent`, the default; `memory_mb`, ...) or a custom one.
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,100}$")]
    pub metric: Option<String>,
    /// Start (default: an hour ago): ISO-8601, epoch ms, `now` or `-1h`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}(ms|s|m|h|d)?|[0-9]{1,13}|(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?Z)?)$"
    )]
    pub from: Option<String>,
    /// End (default: now); after `from`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}(ms|s|m|h|d)?|[0-9]{1,13}|(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?Z)?)$"
    )]
    pub to: Option<String>,
    /// Bucket width: a duration like `1m`, or milliseconds (default: about 300 points).
    #[param(pattern = r"^([1-9][0-9]{0,8}|[1-9][0-9]{0,5}(ms|s|m|h|d))$")]
    pub step: Option<String>,
}

/// A window of recorded rows: events or alert changes of a worker or a pool.
#[derive(Clone, Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// Start (default: the beginning): ISO-8601, epoch ms, `now` or `-1h`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}(ms|s|m|h|d)?|[0-9]{1,13}|(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?Z)?)$"
    )]
    pub from: Option<String>,
    /// End (default: now); after `from`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}(ms|s|m|h|d)?|[0-9]{1,13}|(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?Z)?)$"
    )]
    pub to: Option<String>,
    /// At most this many rows (default 10000).
    #[param(minimum = 1, maximum = 100000)]
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
        pattern = r"^(now|-[0-9]{1,6}(ms|s|m|h|d)?|[0-9]{1,13}|(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?Z)?)$"
    )]
    pub from: Option<String>,
    /// End (default: now); after `from`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}(ms|s|m|h|d)?|[0-9]{1,13}|(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?Z)?)$"
    )]
    pub to: Option<String>,
    /// At most this many rows (default 10000).
    #[param(minimum = 1, maximum = 100000)]
    pub limit: Option<u32>,
}

/// `GET /export.csv`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// What rows (default `samples`).
    pub kind: Option<ExportKind>,
    /// Only this pool.
    pub pool: Option<String>,
    /// Only this worker.
    pub worker: Option<String>,
    /// Start (default: the beginning): ISO-8601, epoch ms, `now` or `-1h`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}(ms|s|m|h|d)?|[0-9]{1,13}|(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?Z)?)$"
    )]
    pub from: Option<String>,
    /// End (default: now); after `from`.
    #[param(
        pattern = r"^(now|-[0-9]{1,6}(ms|s|m|h|d)?|[0-9]{1,13}|(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?Z)?)$"
    )]
    pub to: Option<String>,
    /// Samples: the metric columns, comma-separated (default: all).
    #[param(pattern = r"^[A-Za-z0-9_.:-]{1,100}(,[A-Za-z0-9_.:-]{1,100})*$")]
    pub metrics: Option<String>,
}

#[cfg(test)]
mod tests {
    /// The patterns in the attributes are the constants (attributes cannot name a constant).
    #[test]
    fn the_documented_patterns_are_the_constants() {
        let src = include_str!("query.rs");
        for (name, pattern) in
            [("TIME", super::TIME_PATTERN), ("STEP", super::STEP_PATTERN), ("METRIC", super::METRIC_PATTERN)]
        {
            let attr = format!("pattern = r\"{pattern}\"");
            assert!(src.contains(&attr), "{name}_PATTERN is used by the attributes");
        }
        let times = src.matches(&format!("pattern = r\"{}\"", super::TIME_PATTERN)).count();
        assert_eq!(times, 8, "every from/to carries the time pattern");
    }
}
