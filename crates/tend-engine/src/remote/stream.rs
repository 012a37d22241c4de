//! One agent's event stream (SSE), relayed into the hub: each event with its worker ids made the
//! hub's (`<id>@<host>`), numbered into the hub's sequence by the fleet, then taken by the hub's sinks
//! like its own (event log and stream, history, desktop notifications, webhooks). After a dropped
//! connection the stream is asked again from the last event seen (`Last-Event-ID`): the agent replays
//! what it still holds, so the hub's timeline has no hole. An agent that restarted (its start time
//! moved) is asked from its beginning.
//!
//! A hostile or broken agent costs a reconnection, never the hub: a line longer than [`MAX_LINE`]
//! ends the connection, an event that does not parse is counted and skipped.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tend_api::{HealthDto, HostStatus};
use tend_core::time::Clock;

use super::{Agent, Failure, MAX_BACKOFF, Remotes, rename_ids};
use crate::mailbox::{Mailbox, Msg};

/// The longest line of the stream the hub reads (an event is one `data:` line).
pub const MAX_LINE: usize = 1024 * 1024;

/// Where the stream of one agent stands.
#[derive(Default)]
struct Cursor {
    /// The last event relayed, by the agent's numbering.
    last: Option<u64>,
    /// When the agent started (its clock minus its uptime, milliseconds), to tell a restart.
    started: Option<i64>,
}

/// Follow `agent`'s events until the process ends.
pub(super) async fn follow(remotes: Remotes, name: String, agent: Agent, tx: Mailbox, clock: Arc<dyn Clock>) {
    let mut cursor = Cursor::default();
    let mut backoff = Duration::from_secs(1);
    loop {
        match session(&remotes, &name, &agent, &tx, &clock, &mut cursor).await {
            Ok(()) => backoff = Duration::from_secs(1),
            Err(f) => {
                tracing::debug!(host = %name, status = %f.status, detail = %f.detail, "event stream ended");
                if f.status == HostStatus::Degraded {
                    remotes.update(&name, |h| {
                        h.status = f.status;
                        h.detail = Some(f.detail.clone());
                    });
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// One connection: from where the cursor stands to the end of the stream.
async fn session(
    remotes: &Remotes,
    name: &str,
    agent: &Agent,
    tx: &Mailbox,
    clock: &Arc<dyn Clock>,
    cursor: &mut Cursor,
) -> Result<(), Failure> {
    let (health, _) = agent.get::<HealthDto>("/api/v1/health").await?;
    // Its own start time; an older agent's is estimated from its uptime, within a few seconds.
    let (started, slack) = match health.started {
        Some(t) => (t.0, 0),
        None => (clock.now().as_millis() - (health.uptime_secs * 1000.0) as i64, 5_000),
    };
    let restarted = cursor.started.is_some_and(|s| (s - started).abs() > slack);
    if restarted {
        tracing::info!(host = %name, "agent restarted: replaying its events from its start");
        cursor.last = Some(0);
    }
    cursor.started = Some(started);
    let mut res = agent.events(cursor.last).await?;
    let mut parser = Parser::default();
    loop {
        let chunk = match res.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()),
            Err(e) => return Err(agent.sort(&e)),
        };
        let events = parser.feed(&chunk).map_err(|detail| Failure::new(HostStatus::Degraded, detail))?;
        let mut relay = Vec::new();
        for (id, data) in events {
            let Some(seq) = id else { continue };
            if cursor.last.is_some_and(|l| seq <= l) {
                continue;
            }
            cursor.last = Some(seq);
            match hub_event(&data, name) {
                Some(ev) => relay.push(ev),
                None => remotes.update(name, |h| h.skipped += 1),
            }
        }
        if !relay.is_empty() {
            let _ = tx.send(Msg::Relay(relay));
        }
    }
}

/// An agent's event (its JSON on the wire) as this hub's: worker ids and alert subjects get the host.
/// None for an event this hub cannot read (a kind it does not know, from a newer agent).
fn hub_event(data: &str, host: &str) -> Option<tend_core::Event> {
    let mut v: Value = serde_json::from_str(data).ok()?;
    rename_ids(&mut v, host);
    serde_json::from_value(v).ok()
}

/// Server-Sent Events, as far as Tend's agents speak them: `id:` and `data:` lines, a blank line
/// ends an event; comments (keep-alives) and `event:` (the type is in the data too) are skipped.
#[derive(Default)]
struct Parser {
    line: Vec<u8>,
    id: Option<u64>,
    data: String,
}

impl Parser {
    /// The events completed by `bytes`: (id, data). An error when a line outgrows [`MAX_LINE`].
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<(Option<u64>, String)>, String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                if self.line.len() >= MAX_LINE {
                    return Err(format!("/api/v1/events: a line longer than {} MiB", MAX_LINE >> 20));
                }
                self.line.push(b);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let line = String::from_utf8_lossy(&line);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if !self.data.is_empty() {
                    out.push((self.id.take(), std::mem::take(&mut self.data)));
                }
                self.id = None;
            } else if let Some(v) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(v.strip_prefix(' ').unwrap_or(v));
            } else if let Some(v) = line.strip_prefix("id:") {
                self.id = v.trim().parse().ok();
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines_whatever_the_chunks() {
        let text =
            b": keep-alive\n\nevent: recycled\nid: 7\ndata: {\"a\":1}\n\nid: 8\r\ndata: x\r\ndata: y\r\n\r\n";
        for split in 1..text.len() {
            let mut p = Parser::default();
            let mut got = p.feed(&text[..split]).unwrap();
            got.extend(p.feed(&text[split..]).unwrap());
            assert_eq!(
                got,
                [(Some(7), "{\"a\":1}".to_owned()), (Some(8), "x\ny".to_owned())],
                "split at {split}"
            );
        }
    }

    #[test]
    fn a_line_without_end_is_refused_at_the_limit() {
        let mut p = Parser::default();
        let big = vec![b'['; MAX_LINE];
        assert!(p.feed(&big).unwrap().is_empty());
        let e = p.feed(b"[").unwrap_err();
        assert!(e.contains("longer than 1 MiB"), "{e}");
    }

    #[test]
    fn every_kind_of_event_crosses_from_an_agent_to_its_hub() {
        use crate::dto::ToWire;
        use tend_core::event::EventKind as K;
        use tend_core::model::{Metrics, ProcessId, Source, WorkerId};
        use tend_core::recycle::RecycleReason;
        use tend_core::time::Timestamp;
        let w = || WorkerId::new("api-0");
        let p = ProcessId { pid: 12, start_ticks: 34 };
        let alert = tend_core::rules::Alert {
            rule: "mem".into(),
            subject: "api-0".into(),
            pool: "api".into(),
            severity: tend_core::rules::Severity::Warning,
            state: tend_core::rules::AlertState::Firing,
            value: Some(70.0),
            threshold: Some(60.0),
            since: Timestamp::from_secs(3),
            started: Some(Timestamp::from_secs(2)),
            message: "memory_mb 70.0 above 60".into(),
            acknowledged: false,
            silenced_until: None,
            metric: Some("memory_mb".into()),
            clear: Some(50.0),
        };
        let kinds = vec![
            K::WorkerAdded { worker: w(), pool: "api".into(), source: Source::Spawned },
            K::WorkerRemoved { worker: w(), pool: "api".into() },
            K::StateChanged {
                worker: w(),
                pool: "api".into(),
                incarnation: 2,
                process: Some(p),
                from: Some(tend_core::lifecycle::State::Ready),
                to: tend_core::lifecycle::State::Working,
                cause: "busy".into(),
            },
            K::RecycleStarted {
                worker: w(),
                pool: "api".into(),
                reason: RecycleReason::Memory,
                detail: "d".into(),
                old_process: Some(p),
            },
            K::Recycled {
                worker: w(),
                pool: "api".into(),
                reason: RecycleReason::Manual,
                detail: "requested by hub".into(),
                old_process: Some(p),
                new_process: None,
                uptime_secs: 12.5,
                requests: 3,
                last_metrics: Some(Metrics { memory_bytes: Some(5), ..Metrics::default() }),
            },
            K::RecycleFailed {
                worker: w(),
                pool: "api".into(),
                reason: RecycleReason::Ttl,
                error: "e".into(),
            },
            K::StormTripped { worker: w(), pool: "api".into(), restarts: 5, window_secs: 60.0 },
            K::AlertChanged { alert },
            K::SourceStatus { source: "docker".into(), degraded: true, detail: "gone".into() },
            K::ProcessEscaped {
                worker: w(),
                pool: None,
                incarnation: Some(1),
                process: p,
                detail: "x".into(),
            },
            K::OperatorAction {
                by: "ops".into(),
                action: "recycle".into(),
                target: "api-0".into(),
                worker: Some(w()),
                pool: Some("api".into()),
                detail: String::new(),
            },
        ];
        for kind in kinds {
            let ev = tend_core::Event { seq: 9, at: Timestamp::from_secs(4), kind };
            let data = serde_json::to_string(&ev.wire()).unwrap();
            let got = hub_event(&data, "gpu-1").unwrap_or_else(|| panic!("unreadable: {data}"));
            assert_eq!(got.at, ev.at, "{data}");
            assert_eq!(got.kind.name(), ev.kind.name());
            if let Some(worker) = got.kind.worker() {
                assert_eq!(worker.as_str(), "api-0@gpu-1", "{data}");
            }
            if let K::AlertChanged { alert } = &got.kind {
                assert_eq!(alert.subject, "api-0@gpu-1");
                assert_eq!(alert.pool, "api");
            }
        }
        assert!(hub_event(r#"{"seq":1,"at":1,"type":"from_the_future"}"#, "gpu-1").is_none());
    }
}
