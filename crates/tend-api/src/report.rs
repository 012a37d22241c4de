//! What orchestrators send (the report API): bodies as they are parsed, with the limits the engine
//! enforces on them. Unknown fields are refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, Object, ObjectBuilder, Schema, Type};

/// Longest worker id, task id, label key or value, container name.
pub const MAX_ID: usize = 128;
pub const MAX_TEXT: usize = 256;
/// Longest error message kept.
pub const MAX_MESSAGE: usize = 4096;
pub const MAX_LABELS: usize = 32;
/// Most metrics in one report.
pub const MAX_METRICS: usize = 256;
/// Most requests added by one report.
pub const MAX_REQUESTS: u64 = 1_000_000_000;

/// A reported worker's id: it ends up in URLs and Prometheus labels.
pub const ID_PATTERN: &str = r"^[A-Za-z0-9_.:-]{1,128}$";
/// A lifecycle state as reported, upper or lower case.
pub const STATE_PATTERN: &str = r"^(INITIALIZING|READY|WORKING|COMPLETING|COMPLETED|FAILED|TIMEOUT|TERMINATED|CLEANED|initializing|ready|working|completing|completed|failed|timeout|terminated|cleaned)$";
/// Text without control characters.
pub const TEXT_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";
/// A reported metric's name.
pub const METRIC_NAME_PATTERN: &str = r"^[A-Za-z0-9_.:]{1,128}$";

/// `POST /workers`: a worker of a `source = "reported"` pool.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// Stable id chosen by the orchestrator: letters, digits, `_ . - :`, at most 128.
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub id: String,
    /// A pool declared with `source = "reported"`.
    #[schema(pattern = r"^[^\x00-\x1F\x7F-\x9F]*$", max_length = 256)]
    pub pool: String,
    #[schema(pattern = r"^[^\x00-\x1F\x7F-\x9F]*$", max_length = 256)]
    pub task_id: Option<String>,
    /// The worker's pid as the orchestrator sees it (shown, never signalled).
    #[serde(default, deserialize_with = "whole_pid")]
    pub pid: Option<u32>,
    /// Its container id or name.
    #[schema(pattern = r"^[^\x00-\x1F\x7F-\x9F]*$", max_length = 256)]
    pub container: Option<String>,
    /// At most 32; keys and values without control characters, at most 256 characters each.
    #[serde(default)]
    #[schema(schema_with = labels_schema)]
    pub labels: BTreeMap<String, String>,
}

/// `POST /workers/{id}/state`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateBody {
    /// One of INITIALIZING, READY, WORKING, COMPLETING, COMPLETED, FAILED, TIMEOUT, TERMINATED, CLEANED
    /// (lower case too).
    #[schema(
        pattern = r"^(INITIALIZING|READY|WORKING|COMPLETING|COMPLETED|FAILED|TIMEOUT|TERMINATED|CLEANED|initializing|ready|working|completing|completed|failed|timeout|terminated|cleaned)$"
    )]
    pub state: String,
    /// Why, for the timeline.
    #[schema(pattern = r"^[^\x00-\x1F\x7F-\x9F]*$", max_length = 256)]
    pub cause: Option<String>,
}

#[derive(Deserialize, Serialize, ToSchema, TS, Default, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKindBody {
    #[default]
    Error,
    Warning,
}

/// `POST /workers/{id}/errors`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// Not blank; at most 4096 characters.
    #[schema(
        min_length = 1,
        max_length = 4096,
        pattern = r"[^\t\n\x0B\x0C\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub message: String,
    #[serde(default)]
    pub kind: ErrorKindBody,
}

/// `POST /workers/{id}/requests`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestsBody {
    /// Requests handled since the last report, 0 to 1e9.
    #[schema(maximum = 1_000_000_000)]
    #[serde(deserialize_with = "whole_count")]
    pub count: u64,
}

/// A whole number as JSON Schema has it: `431` and `431.0` alike (an integer is any number without a
/// fractional part), at most `max`.
fn whole_of(n: &serde_json::Number, max: u64) -> Option<u64> {
    let exact = n.as_u64();
    let float = || n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= max as f64).map(|f| f as u64);
    exact.or_else(float).filter(|v| *v <= max)
}

fn whole_pid<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let n = Option::<serde_json::Number>::deserialize(d)?;
    n.map(|n| {
        let pid = whole_of(&n, u64::from(u32::MAX)).and_then(|v| u32::try_from(v).ok());
        pid.ok_or_else(|| {
            serde::de::Error::custom(format!("invalid value: {n}, expected a pid (a whole number)"))
        })
    })
    .transpose()
}

fn whole_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    whole_of(&n, u64::MAX).ok_or_else(|| {
        serde::de::Error::custom(format!("invalid value: {n}, expected a whole number of requests"))
    })
}

fn text(max: usize) -> Object {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(TEXT_PATTERN)).max_length(Some(max)).build()
}

fn labels_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(text(MAX_TEXT)))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Object(text(MAX_TEXT))))))
        .max_properties(Some(MAX_LABELS))
        .build()
}

/// `POST /workers/{id}/metrics`: metric name to value. The built-in names (`memory_mb`, `cpu_percent`,
/// ...) with their ranges; any other name is a custom metric.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(transparent)]
pub struct MetricsBody(pub BTreeMap<String, f64>);

impl utoipa::PartialSchema for MetricsBody {
    fn schema() -> RefOr<Schema> {
        let number = |min: Option<f64>, max: Option<f64>| {
            ObjectBuilder::new().schema_type(Type::Number).minimum(min).maximum(max).build()
        };
        let mut b = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property_names(Some(
                ObjectBuilder::new().schema_type(Type::String).pattern(Some(METRIC_NAME_PATTERN)).build(),
            ))
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Object(number(
                None, None,
            ))))))
            .min_properties(Some(1))
            .max_properties(Some(MAX_METRICS));
        for name in ["cpu_percent", "cpu_host_percent", "memory_percent"] {
            b = b.property(name, number(None, None));
        }
        for name in [
            "memory_bytes",
            "memory_mb",
            "disk_read_bytes",
            "disk_write_bytes",
            "net_rx_bytes",
            "net_tx_bytes",
        ] {
            b = b.property(name, number(Some(0.0), Some(1e18)));
        }
        for name in ["threads", "fds"] {
            b = b.property(name, number(Some(0.0), Some(f64::from(u32::MAX))));
        }
        RefOr::T(Schema::Object(b.description(Some("Metric name to value")).build()))
    }
}

impl ToSchema for MetricsBody {}

#[cfg(test)]
mod tests {
    /// The patterns in the attributes are the constants (attributes cannot name a constant).
    #[test]
    fn the_documented_patterns_are_the_constants() {
        let src = include_str!("report.rs");
        for (name, pattern, uses) in [
            ("ID", super::ID_PATTERN, 1),
            ("STATE", super::STATE_PATTERN, 1),
            ("TEXT", super::TEXT_PATTERN, 4),
        ] {
            assert!(regex::Regex::new(pattern).is_ok(), "{name}_PATTERN compiles");
            let attr = format!("pattern = r\"{pattern}\"");
            assert_eq!(src.matches(&attr).count(), uses, "{name}_PATTERN is what the attributes say");
        }
    }
}
