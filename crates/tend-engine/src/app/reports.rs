//! The report API behind the facade: orchestrators' bodies (wire types) are checked field by field
//! (an error names the field) and handed to the fleet as a [`Report`]; the fleet's state machine
//! decides. Both shells would call these; today only the HTTP server exposes them.

use std::collections::BTreeMap;

use tend_api as api;
use tend_api::report::{
    ErrorBody, ErrorKindBody, MAX_ID, MAX_LABELS, MAX_MESSAGE, MAX_METRICS, MAX_REQUESTS, MAX_TEXT,
    RegisterBody, RequestsBody, StateBody,
};
use tend_core::fleet::{ErrorKind, Registration, Report, metrics_from_named};
use tend_core::lifecycle::State;
use tend_core::model::WorkerId;

use super::{App, AppError};
use crate::dto::ToWire;

fn bad(message: impl Into<String>) -> AppError {
    AppError::BadRequest(message.into())
}

fn check_text(field: &str, v: &str, max: usize) -> Result<(), AppError> {
    if v.chars().count() > max {
        return Err(bad(format!("field {field:?} is longer than {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(bad(format!("field {field:?} must not contain control characters")));
    }
    Ok(())
}

/// Worker ids end up in URLs and Prometheus labels: keep them to a safe alphabet.
fn check_id(field: &str, id: &str) -> Result<(), AppError> {
    if id.is_empty()
        || id.len() > MAX_ID
        || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
    {
        return Err(bad(format!(
            "field {field:?} must be 1 to {MAX_ID} letters, digits, '_', '.', '-' or ':', not {id:?}"
        )));
    }
    Ok(())
}

impl App {
    /// Register a worker of a reported pool; it starts INITIALIZING.
    pub async fn register(&self, b: RegisterBody) -> Result<(), AppError> {
        check_id("id", &b.id)?;
        check_text("pool", &b.pool, MAX_TEXT)?;
        if let Some(t) = &b.task_id {
            check_text("task_id", t, MAX_TEXT)?;
        }
        if let Some(c) = &b.container {
            check_text("container", c, MAX_TEXT)?;
        }
        if b.labels.len() > MAX_LABELS {
            return Err(bad(format!("field \"labels\" has more than {MAX_LABELS} labels")));
        }
        for (k, v) in &b.labels {
            check_text(&format!("labels.{k}"), k, MAX_TEXT)?;
            check_text(&format!("labels.{k}"), v, MAX_TEXT)?;
        }
        let reg = Registration {
            id: WorkerId::new(b.id),
            pool: b.pool,
            task_id: b.task_id,
            pid: b.pid,
            process: None,
            container: b.container,
            labels: b.labels,
        };
        self.report(Report::Register(reg)).await
    }

    /// A reported worker's new lifecycle state; the state it is in afterwards.
    pub async fn report_state(&self, id: &str, b: StateBody) -> Result<api::State, AppError> {
        let Some(to) = State::parse(&b.state) else {
            let names: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
            return Err(bad(format!(
                "field \"state\": unknown state {:?}, expected one of {}",
                b.state,
                names.join(", ")
            )));
        };
        if let Some(c) = &b.cause {
            check_text("cause", c, MAX_TEXT)?;
        }
        self.report(Report::State { worker: WorkerId::new(id), state: to, cause: b.cause }).await?;
        Ok(to.wire())
    }

    /// A reported worker's metrics by name (built-in or custom); how many were recorded.
    pub async fn report_metrics(&self, id: &str, named: BTreeMap<String, f64>) -> Result<usize, AppError> {
        if named.is_empty() {
            return Err(bad("the body must name at least one metric, like {\"memory_mb\": 256.5}"));
        }
        if named.len() > MAX_METRICS {
            return Err(bad(format!("at most {MAX_METRICS} metrics per report")));
        }
        let metrics = metrics_from_named(&named).map_err(bad)?;
        self.report(Report::Metrics { worker: WorkerId::new(id), metrics }).await?;
        Ok(named.len())
    }

    /// An error or warning a reported worker hit.
    pub async fn report_error(&self, id: &str, b: ErrorBody) -> Result<ErrorKindBody, AppError> {
        if b.message.trim().is_empty() {
            return Err(bad("field \"message\" must not be empty"));
        }
        if b.message.chars().count() > MAX_MESSAGE {
            return Err(bad(format!("field \"message\" is longer than {MAX_MESSAGE} characters")));
        }
        let kind = match b.kind {
            ErrorKindBody::Error => ErrorKind::Error,
            ErrorKindBody::Warning => ErrorKind::Warning,
        };
        self.report(Report::Error { worker: WorkerId::new(id), kind, message: b.message }).await?;
        Ok(b.kind)
    }

    /// Requests a reported worker handled since its last report.
    pub async fn report_requests(&self, id: &str, b: RequestsBody) -> Result<u64, AppError> {
        if b.count > MAX_REQUESTS {
            return Err(bad(format!("field \"count\" must be at most {MAX_REQUESTS}")));
        }
        self.report(Report::Requests { worker: WorkerId::new(id), count: b.count }).await?;
        Ok(b.count)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::string::string_regex;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use regex::Regex;
    use tend_api::report::{ID_PATTERN, MAX_TEXT, STATE_PATTERN, TEXT_PATTERN};

    use super::*;

    /// A seeded runner: the same cases on every run, nothing written to disk.
    fn runner() -> TestRunner {
        TestRunner::new_with_rng(
            Config { cases: 2000, failure_persistence: None, ..Config::default() },
            TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
        )
    }

    /// Strings that sit near the patterns' edges: their alphabet, control and non-ASCII characters,
    /// and lengths on both sides of the limits.
    fn near_edges() -> impl Strategy<Value = String> {
        prop_oneof![
            string_regex("[A-Za-z0-9_.:\\-]{0,130}").unwrap(),
            string_regex("[A-Za-z0-9_.:\\- /\\x00-\\x1F\\x7F-\\x9Fé☃]{0,12}").unwrap(),
            string_regex("[a-z\\x7F-\\xA0]{250,260}").unwrap(),
            any::<String>(),
        ]
    }

    /// The schema's patterns and the checks behind them agree on every string: what the OpenAPI
    /// document admits, the App accepts, and what it refuses, the App refuses too.
    #[test]
    fn the_report_checks_are_the_documented_patterns() {
        let (id, text) = (Regex::new(ID_PATTERN).unwrap(), Regex::new(TEXT_PATTERN).unwrap());
        runner()
            .run(&near_edges(), |s| {
                prop_assert_eq!(check_id("id", &s).is_ok(), id.is_match(&s), "id {:?}", s);
                let documented = text.is_match(&s) && s.chars().count() <= MAX_TEXT;
                prop_assert_eq!(check_text("pool", &s, MAX_TEXT).is_ok(), documented, "text {:?}", s);
                Ok(())
            })
            .unwrap();
        let state = Regex::new(STATE_PATTERN).unwrap();
        runner()
            .run(&string_regex(STATE_PATTERN.trim_matches(['^', '$'])).unwrap(), |s| {
                prop_assert!(state.is_match(&s) && State::parse(&s).is_some(), "state {:?}", s);
                Ok(())
            })
            .unwrap();
    }
}
