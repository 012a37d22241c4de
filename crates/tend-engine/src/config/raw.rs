//! The config as deserialized: every value spanned, every key optional, so that validation can collect
//! all problems and point at each.

use super::*;

pub(super) type S<T> = Option<Spanned<T>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: S<String>,
    pub(super) token: S<String>,
    pub(super) tls: S<RawTls>,
    pub(super) insecure_http: S<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert: S<String>,
    pub(super) key: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRemote {
    pub(super) name: S<String>,
    pub(super) url: S<String>,
    pub(super) token_file: S<String>,
    pub(super) token_env: S<String>,
    pub(super) ca: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    pub(super) name: S<String>,
    pub(super) role: S<String>,
    pub(super) secret_file: S<String>,
    pub(super) secret_env: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) data_dir: S<String>,
    pub(super) retention: Option<RawRetention>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotifications {
    pub(super) enabled: S<bool>,
    pub(super) per_rule: S<i64>,
    pub(super) overall: S<i64>,
    pub(super) window: S<DurationValue>,
    pub(super) quiet_hours: Option<RawQuietHours>,
    pub(super) record_only: S<Vec<Spanned<String>>>,
    pub(super) digest: S<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscovery {
    pub(super) mode: S<String>,
    pub(super) scan_every: S<DurationValue>,
    pub(super) rescan_every: S<DurationValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuietHours {
    pub(super) from: Spanned<String>,
    pub(super) to: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    pub(super) raw: S<DurationValue>,
    pub(super) minute: S<DurationValue>,
    pub(super) hour: S<DurationValue>,
    pub(super) max_size_mb: S<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPool {
    pub(super) name: S<String>,
    pub(super) source: S<String>,
    pub(super) command: S<Vec<Spanned<String>>>,
    pub(super) env: S<BTreeMap<String, String>>,
    pub(super) cwd: S<String>,
    pub(super) size: S<i64>,
    pub(super) max_size: S<i64>,
    pub(super) restart: S<String>,
    pub(super) profile: S<String>,
    pub(super) interval: S<DurationValue>,
    pub(super) readiness: S<RawReadiness>,
    pub(super) busy_cpu_percent: S<f64>,
    pub(super) requests_log: S<String>,
    pub(super) stop_grace: S<DurationValue>,
    pub(super) stale_after: S<DurationValue>,
    pub(super) task_timeout: S<DurationValue>,
    pub(super) recycle: S<RawRecycle>,
    pub(super) cmdline: S<String>,
    pub(super) process_name: S<String>,
    pub(super) pids: S<Vec<Spanned<i64>>>,
    pub(super) labels: S<RawLabels>,
    pub(super) docker_host: S<String>,
    pub(super) container_name: S<String>,
    pub(super) image: S<String>,
    pub(super) recycle_mode: S<String>,
    pub(super) remove_ended: S<bool>,
    pub(super) stats: S<String>,
    pub(super) orphans_max: S<i64>,
    pub(super) clean_orphans: S<bool>,
    pub(super) metrics_url: S<String>,
    pub(super) requests_metric: S<String>,
    pub(super) port: S<i64>,
    /// Taken out of the table and checked rule by rule before the pool is deserialized; declared so
    /// that it is listed among the expected keys.
    #[serde(rename = "rule")]
    pub(super) _rule: Option<de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub(super) name: S<String>,
    pub(super) url: S<String>,
    pub(super) events: S<Vec<Spanned<String>>>,
    pub(super) global: Option<bool>,
    pub(super) retries: S<i64>,
    pub(super) backoff: S<DurationValue>,
    pub(super) timeout: S<DurationValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReadiness {
    pub(super) start_secs: S<f64>,
    pub(super) tcp: S<String>,
    pub(super) tcp_port: S<i64>,
    pub(super) http: S<String>,
    pub(super) log: S<String>,
    pub(super) timeout: S<DurationValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecycle {
    pub(super) memory_mb: S<i64>,
    pub(super) ttl: S<DurationValue>,
    pub(super) max_requests: S<i64>,
    pub(super) jitter: S<f64>,
    pub(super) warmup: S<DurationValue>,
    pub(super) max_unavailable: S<i64>,
    pub(super) storm_max: S<i64>,
    pub(super) storm_window: S<DurationValue>,
    pub(super) on_death: Option<bool>,
    pub(super) on_timeout: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) name: S<String>,
    pub(super) metric: S<String>,
    pub(super) above: S<f64>,
    pub(super) below: S<f64>,
    pub(super) clear_below: S<f64>,
    pub(super) clear_above: S<f64>,
    pub(super) stale: S<DurationValue>,
    pub(super) restarts: S<i64>,
    pub(super) within: S<DurationValue>,
    #[serde(rename = "for")]
    pub(super) for_: S<DurationValue>,
    pub(super) for_samples: S<i64>,
    pub(super) keep_firing_for: S<DurationValue>,
    pub(super) severity: S<String>,
    pub(super) scope: S<String>,
    pub(super) recycle: Option<bool>,
    pub(super) flap_max: S<i64>,
    pub(super) flap_window: S<DurationValue>,
    pub(super) channels: S<Vec<Spanned<String>>>,
}

/// A duration as written: a string to parse, or a number of seconds.
pub(super) enum DurationValue {
    Text(String),
    Seconds(f64),
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like \"5s\" or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationValue, E> {
                Ok(DurationValue::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(v))
            }
        }
        d.deserialize_any(V)
    }
}
