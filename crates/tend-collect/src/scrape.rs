//! Reading a worker's own Prometheus endpoint: the text exposition format parsed by `prometheus-parse`
//! into one number per metric name. This module only parses; fetching and scheduling belong to the
//! engine, and what the numbers mean (requests, custom metrics) to the fleet.

use std::collections::BTreeMap;

/// What one scrape of a worker yielded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scraped {
    /// The value of the counter named by the pool's `requests_metric`, when present.
    pub requests: Option<u64>,
    /// Every other counter, gauge or untyped metric, by name. Series of one name with different
    /// labels are summed (a worker's `http_requests_total{code=...}` becomes its total).
    pub custom: BTreeMap<String, f64>,
}

/// Parse a scrape. `requests_metric` is taken out of the custom metrics and returned as the request
/// count. Histogram buckets and summary quantiles are skipped (a single number cannot stand for them);
/// their `_sum` and `_count` series are kept like any counter.
pub fn parse(text: &str, requests_metric: Option<&str>) -> Result<Scraped, String> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape =
        prometheus_parse::Scrape::parse(lines).map_err(|e| format!("not a Prometheus text page: {e}"))?;
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for sample in scrape.samples {
        let v = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => continue,
        };
        if v.is_finite() {
            *sums.entry(sample.metric).or_default() += v;
        }
    }
    let requests = requests_metric.and_then(|name| sums.remove(name)).map(|v| v.max(0.0) as u64);
    Ok(Scraped { requests, custom: sums })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "\
# HELP demo_requests_total Requests handled.
# TYPE demo_requests_total counter
demo_requests_total 42
# HELP demo_memory_bytes Memory held.
# TYPE demo_memory_bytes gauge
demo_memory_bytes 2.5e6
# TYPE http_total counter
http_total{code=\"200\"} 7
http_total{code=\"500\"} 3
# TYPE latency histogram
latency_bucket{le=\"1\"} 1
latency_bucket{le=\"+Inf\"} 2
latency_sum 1.5
latency_count 2
";

    #[test]
    fn requests_are_taken_out_and_the_rest_kept_summed_by_name() {
        let s = parse(PAGE, Some("demo_requests_total")).unwrap();
        assert_eq!(s.requests, Some(42));
        assert_eq!(s.custom.get("demo_memory_bytes"), Some(&2.5e6));
        assert_eq!(s.custom.get("http_total"), Some(&10.0));
        assert!(!s.custom.contains_key("demo_requests_total"));
        assert_eq!(s.custom.get("latency_count"), Some(&2.0));
        assert!(
            !s.custom.contains_key("latency") && !s.custom.contains_key("latency_bucket"),
            "{:?}",
            s.custom
        );
    }

    #[test]
    fn without_a_requests_metric_everything_is_custom() {
        let s = parse(PAGE, None).unwrap();
        assert_eq!(s.requests, None);
        assert_eq!(s.custom.get("demo_requests_total"), Some(&42.0));
        assert_eq!(parse("", Some("x")).unwrap(), Scraped::default());
    }
}
