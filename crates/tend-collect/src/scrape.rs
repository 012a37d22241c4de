//! Reading a worker's own Prometheus endpoint: the text exposition format parsed by `prometheus-parse`
//! into one number per metric name. This module only parses; fetching and scheduling belong to the
//! engine, and what the numbers mean (requests, custom metrics) to the fleet.

use std::collections::BTreeMap;

/// What one scrape of a worker yielded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scraped {
    /// The value of the counter named by the pool's `requests_metric`, when present.
    pub requests: Option<u64>,
    /// Every other counter, gauge or untyped series. An unlabelled series is kept under its name; a
    /// labelled one under its name and labels, sorted, as in a PromQL selector
    /// (`http_total{code="200",method="get"}`), so series of one name are never merged. The labelled
    /// series of a counter (or of an untyped metric, mostly counters without a `# TYPE` line) are also
    /// summed under the bare name: a sum is what counters mean, while a sum of gauges would be a number
    /// nobody measured. At most [`MAX_SERIES`] in all.
    pub custom: BTreeMap<String, f64>,
}

/// Series kept from one scrape at the most (names and label sets of a worker that exposes thousands
/// would swell every stored sample); the rest are skipped.
pub const MAX_SERIES: usize = 200;

/// Parse a scrape. `requests_metric` is taken out of the custom metrics and returned as the request
/// count. Histogram buckets and summary quantiles are skipped (a single number cannot stand for them);
/// their `_sum` and `_count` series are kept like any counter.
pub fn parse(text: &str, requests_metric: Option<&str>) -> Result<Scraped, String> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape =
        prometheus_parse::Scrape::parse(lines).map_err(|e| format!("not a Prometheus text page: {e}"))?;
    let mut series: BTreeMap<String, f64> = BTreeMap::new();
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    let mut requests: Option<f64> = None;
    for sample in scrape.samples {
        // Untyped series are summed like counters: a page without `# TYPE` lines is mostly counters.
        let (v, summed) = match sample.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => (v, true),
            prometheus_parse::Value::Gauge(v) => (v, false),
            prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => continue,
        };
        if !v.is_finite() {
            continue;
        }
        if Some(sample.metric.as_str()) == requests_metric {
            // The request count: every series of that name together, whatever its labels or type.
            *requests.get_or_insert(0.0) += v;
            continue;
        }
        let mut labels: Vec<(&String, &String)> = sample.labels.iter().collect();
        let key = if labels.is_empty() {
            sample.metric
        } else {
            if summed {
                *totals.entry(sample.metric.clone()).or_default() += v;
            }
            labels.sort();
            let selector: Vec<String> = labels
                .iter()
                .map(|(k, val)| format!("{k}=\"{}\"", val.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            format!("{}{{{}}}", sample.metric, selector.join(","))
        };
        if series.len() < MAX_SERIES || series.contains_key(&key) {
            series.insert(key, v);
        }
    }
    // An unlabelled series of the same name wins over the sum of labelled ones.
    for (name, total) in totals {
        if series.len() < MAX_SERIES {
            series.entry(name).or_insert(total);
        }
    }
    let requests = requests.map(|v| v.max(0.0) as u64);
    Ok(Scraped { requests, custom: series })
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
        assert_eq!(s.custom.get("http_total"), Some(&10.0), "a counter's series are summed by name");
        assert_eq!(s.custom.get("http_total{code=\"200\"}"), Some(&7.0));
        assert_eq!(s.custom.get("http_total{code=\"500\"}"), Some(&3.0));
        assert!(!s.custom.contains_key("demo_requests_total"));
        assert_eq!(s.custom.get("latency_count"), Some(&2.0));
        assert!(
            !s.custom.contains_key("latency") && !s.custom.contains_key("latency_bucket"),
            "{:?}",
            s.custom
        );
    }

    #[test]
    fn gauges_with_different_labels_stay_apart_and_are_not_summed() {
        let page = "# TYPE temp gauge\ntemp{sensor=\"b\",zone=\"x\"} 40\ntemp{zone=\"x\",sensor=\"a\"} 30\n\
                    # TYPE queue gauge\nqueue 5\n";
        let s = parse(page, None).unwrap();
        assert_eq!(
            s.custom.get("temp{sensor=\"a\",zone=\"x\"}"),
            Some(&30.0),
            "labels sorted: {:?}",
            s.custom
        );
        assert_eq!(s.custom.get("temp{sensor=\"b\",zone=\"x\"}"), Some(&40.0));
        assert_eq!(s.custom.get("temp"), None, "no made-up sum of gauges");
        assert_eq!(s.custom.get("queue"), Some(&5.0));
    }

    #[test]
    fn series_are_capped_labelled_or_not() {
        let page: String =
            (0..MAX_SERIES + 50).map(|i| format!("# TYPE g{i} gauge\ng{i}{{a=\"{i}\"}} 1\n")).collect();
        assert_eq!(parse(&page, None).unwrap().custom.len(), MAX_SERIES);
        let page: String = (0..MAX_SERIES * 50).map(|i| format!("u{i} 1\n")).collect();
        assert_eq!(parse(&page, None).unwrap().custom.len(), MAX_SERIES);
    }

    #[test]
    fn a_labelled_or_untyped_requests_metric_is_still_the_request_count() {
        let page = "reqs{code=\"200\"} 7\nreqs{code=\"500\"} 2\nother{a=\"x\"} 1\nother{a=\"y\"} 2\n";
        let s = parse(page, Some("reqs")).unwrap();
        assert_eq!(s.requests, Some(9), "every series of the requests metric, summed");
        assert!(s.custom.keys().all(|k| !k.starts_with("reqs")), "{:?}", s.custom);
        assert_eq!(s.custom.get("other"), Some(&3.0), "untyped series are summed like counters");
    }

    #[test]
    fn without_a_requests_metric_everything_is_custom() {
        let s = parse(PAGE, None).unwrap();
        assert_eq!(s.requests, None);
        assert_eq!(s.custom.get("demo_requests_total"), Some(&42.0));
        assert_eq!(parse("", Some("x")).unwrap(), Scraped::default());
    }
}
