//! The hub's side of the facade: its agents (`[[remote]]`), and the calls on a remote worker
//! (`<id>@<host>`) that go to its agent — its detail and events read there, its actions forwarded
//! there with the hub's token for that agent (the agent decides, and its audit names that token;
//! the hub's own trail names who asked the hub).

use serde_json::Value;

use tend_api as api;

use super::{App, AppError};
use crate::mailbox::Msg;
use crate::remote::{Agent, Failure, hub_id, rename_ids};

/// A remote worker's way: its host, the agent's client, its id there.
pub(super) type Route = (String, Agent, String);

impl App {
    /// The agents of this hub, each with its status (empty when it has none).
    pub fn hosts(&self) -> Vec<api::HostDto> {
        self.shared.remotes.hosts()
    }

    /// Start watching one more agent (the desktop app's Hosts screen); its name and URL are checked
    /// as the config checks them, and must not be taken.
    pub fn add_remote(&self, cfg: crate::config::RemoteConfig) -> Result<(), AppError> {
        if !crate::config::valid_name(&cfg.name) {
            let message =
                format!("invalid host name \"{}\": use letters, digits, '_', '.' and '-' only", cfg.name);
            return Err(AppError::bad_param("name", message));
        }
        crate::config::RemoteConfig::check_url(&cfg.url).map_err(|e| AppError::bad_param("url", e))?;
        if !self.shared.remotes.add(&cfg) {
            return Err(AppError::bad_param(
                "name",
                format!("a host named \"{}\" is watched already", cfg.name),
            ));
        }
        Ok(())
    }

    /// Stop watching an agent; 404 when there is none of that name.
    pub fn remove_remote(&self, name: &str) -> Result<(), AppError> {
        if self.shared.remotes.remove(name) {
            Ok(())
        } else {
            Err(AppError::NotFound(format!("no host named {name:?}")))
        }
    }

    /// Where a remote worker's calls go; None for this Tend's own workers.
    pub(super) fn remote(&self, id: &str) -> Option<Result<Route, AppError>> {
        let route = self.shared.remotes.route(id)?;
        Some(route.map_err(|failure| AppError::Remote { host: host_of(id), failure }))
    }

    /// POST the action to the agent; then record, here, who asked for it.
    pub(super) async fn forward(
        &self,
        (host, agent, id): Route,
        action: &str,
        by: &str,
    ) -> Result<(), AppError> {
        let path = format!("/api/v1/workers/{}/{action}", encode(&id));
        agent.post(&path, None).await.map_err(on(&host))?;
        self.audit_forwarded(by, action, hub_id(&id, &host), &host);
        Ok(())
    }

    /// This hub's record of an action it forwarded: who asked it, for what.
    fn audit_forwarded(&self, by: &str, action: &str, target: String, host: &str) {
        let audit = Msg::Audit {
            by: by.to_owned(),
            action: action.to_owned(),
            target,
            detail: format!("forwarded to {host}"),
        };
        let _ = self.shared.tx.send(audit);
    }

    /// POST an alert action (`ack`, or `silence` for `minutes`) to the agent of the alert's subject;
    /// its answer. Then record, here, who asked.
    pub(super) async fn forward_alert(
        &self,
        (host, agent, subject): Route,
        action: &str,
        rule: &str,
        minutes: Option<f64>,
        by: &str,
    ) -> Result<Value, AppError> {
        let mut body = serde_json::json!({ "rule": rule, "subject": subject });
        if let Some(m) = minutes {
            body["minutes"] = m.into();
        }
        let path = format!("/api/v1/alerts/{action}");
        let answer = agent.post(&path, Some(&body)).await.map_err(on(&host))?;
        let named = if action == "ack" { "acknowledge" } else { action };
        self.audit_forwarded(by, named, format!("{rule}/{}", hub_id(&subject, &host)), &host);
        Ok(answer)
    }

    /// A remote worker's detail, as its agent has it, with the hub's ids.
    pub(super) async fn remote_worker(
        &self,
        (host, agent, id): Route,
    ) -> Result<Option<api::WorkerDetailDto>, AppError> {
        let path = format!("/api/v1/workers/{}", encode(&id));
        match agent.get::<Value>(&path).await {
            Ok((mut v, _)) => {
                rename_ids(&mut v, &host);
                v["host"] = Value::String(host.clone());
                let detail = serde_json::from_value(v).map_err(|e| unreadable(&host, &path, e))?;
                Ok(Some(detail))
            }
            Err(f) if f.api.as_ref().is_some_and(|e| e.code == api::ErrorCode::NotFound) => Ok(None),
            Err(failure) => Err(AppError::Remote { host, failure }),
        }
    }

    /// A remote worker's metric history, read from its agent's store (so a 30-day chart of a remote
    /// worker works as a local one does).
    pub(super) async fn remote_history(
        &self,
        (host, agent, id): Route,
        metric: &str,
        from: api::Timestamp,
        to: api::Timestamp,
        step_ms: Option<i64>,
    ) -> Result<api::History, AppError> {
        let mut path = format!(
            "/api/v1/workers/{}/history?metric={}&from={}&to={}",
            encode(&id),
            encode(metric),
            from.0,
            to.0
        );
        if let Some(step) = step_ms {
            path.push_str(&format!("&step={step}"));
        }
        let (mut v, _) = agent.get::<Value>(&path).await.map_err(on(&host))?;
        rename_ids(&mut v, &host);
        serde_json::from_value(v).map_err(|e| unreadable(&host, &path, e))
    }

    /// A remote worker's CSV export, opened on its agent (which checks it as it would its own: its
    /// answer's error comes back before anything is sent); the rows name the worker as its agent does.
    pub(super) async fn remote_export(
        &self,
        (host, agent, id): Route,
        e: &super::history::CsvExport,
    ) -> Result<super::history::ReadyExport, AppError> {
        let mut path = format!(
            "/api/v1/export.csv?kind={}&worker={}&from={}&to={}",
            e.kind.as_str(),
            encode(&id),
            e.from.0.max(0),
            e.to.0.max(0)
        );
        if let Some(m) = &e.metrics {
            path.push_str(&format!("&metrics={}", encode(&m.join(","))));
        }
        let body = agent.open(&path, None).await.map_err(on(&host))?;
        Ok(super::history::ReadyExport::Remote { host, body })
    }

    /// A remote worker's events in its agent's memory, with the hub's ids.
    pub(super) async fn remote_events(
        &self,
        (host, agent, id): Route,
        since: u64,
    ) -> Result<Vec<api::Event>, AppError> {
        let path = format!("/api/v1/workers/{}/events?since={since}", encode(&id));
        let (mut v, _) = agent.get::<Value>(&path).await.map_err(on(&host))?;
        rename_ids(&mut v, &host);
        let Value::Array(items) = v else { return Ok(Vec::new()) };
        // An event of a kind this hub does not know (a newer agent) is left out, not an error.
        Ok(items.into_iter().filter_map(|e| serde_json::from_value(e).ok()).collect())
    }
}

/// An agent's failure, as the facade's error for a call on one of `host`'s workers.
fn on(host: &str) -> impl FnOnce(Failure) -> AppError + '_ {
    move |failure| AppError::Remote { host: host.to_owned(), failure }
}

/// An agent's answer in a shape this hub does not know (another version, or not Tend).
fn unreadable(host: &str, path: &str, e: serde_json::Error) -> AppError {
    let failure = Failure {
        status: api::HostStatus::Degraded,
        detail: format!("{path}: an answer this hub cannot read: {e}"),
        api: None,
    };
    AppError::Remote { host: host.to_owned(), failure }
}

fn host_of(id: &str) -> String {
    crate::remote::split_id(id).map_or_else(String::new, |(_, h)| h.to_owned())
}

/// A worker id as a path segment (ids are `[A-Za-z0-9_.-]` and a few more; anything else escaped).
fn encode(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_escaped_in_paths() {
        assert_eq!(encode("api-0"), "api-0");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
