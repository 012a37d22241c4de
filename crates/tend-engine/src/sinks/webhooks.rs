//! Webhook notifications: a sink fed by the event broadcast that POSTs alert firings and resolutions
//! and recycles as JSON, with retries and exponential backoff. It runs in its own tasks (one router,
//! one sender per webhook) so a slow or failing receiver never delays the engine or other webhooks;
//! when a sender falls too far behind, notifications are dropped with a warning rather than queued
//! without bound. It only consumes events: nothing it does feeds back into decisions.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, warn};

use tend_core::backoff::Backoff;
use tend_core::event::{Event, EventKind};
use tend_core::rules::AlertState;

use crate::config::{Config, WebhookConfig};

/// Notifications waiting per webhook before new ones are dropped.
pub const QUEUE: usize = 1024;
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The JSON body POSTed to a webhook.
#[derive(Clone, Debug, Serialize)]
pub struct Notification {
    /// `firing`, `resolved`, `recycle_started` or `recycled`.
    pub kind: &'static str,
    /// The webhook's name, so one receiver can serve several.
    pub webhook: String,
    /// The event as the SSE stream and `--events-jsonl` show it.
    pub event: tend_api::Event,
}

/// The notification kind of an event, if it is one webhooks receive.
pub fn kind_of(ev: &Event) -> Option<&'static str> {
    match &ev.kind {
        EventKind::AlertChanged { alert } => match alert.state {
            AlertState::Firing | AlertState::Flapping => Some("firing"),
            AlertState::Resolved => Some("resolved"),
            AlertState::Inactive | AlertState::Pending => None,
        },
        EventKind::RecycleStarted { .. } => Some("recycle_started"),
        EventKind::Recycled { .. } => Some("recycled"),
        _ => None,
    }
}

/// Which webhooks an event goes to: global ones that want its kind, plus those the alert's rule names
/// in its `channels`. Silenced alerts notify nobody.
pub fn targets<'a>(
    ev: &Event,
    webhooks: &'a [WebhookConfig],
    channels: &HashMap<(String, String), Vec<String>>,
) -> Vec<&'a WebhookConfig> {
    let Some(kind) = kind_of(ev) else { return Vec::new() };
    let named: &[String] = match &ev.kind {
        EventKind::AlertChanged { alert } => {
            if alert.is_silenced(ev.at) {
                return Vec::new();
            }
            channels.get(&(alert.pool.clone(), alert.rule.clone())).map(Vec::as_slice).unwrap_or(&[])
        }
        _ => &[],
    };
    webhooks
        .iter()
        .filter(|w| w.events.iter().any(|e| e == kind))
        .filter(|w| w.global || named.contains(&w.name))
        .collect()
}

/// The waits between one notification's retries: the webhook's `backoff`, doubled each time, at most
/// [`MAX_BACKOFF`].
pub fn backoff(base: Duration) -> Backoff {
    Backoff::new(base, MAX_BACKOFF)
}

/// Start the router and one sender per webhook. Nothing starts when no webhook is configured.
pub fn start(config: &Config, mut events: broadcast::Receiver<Event>) {
    if config.webhooks.is_empty() {
        return;
    }
    let channels: HashMap<(String, String), Vec<String>> = config
        .pools
        .iter()
        .flat_map(|p| p.rules.iter().map(move |r| ((p.name.clone(), r.name.clone()), r.channels.clone())))
        .collect();
    let webhooks = config.webhooks.clone();
    let mut senders: HashMap<String, mpsc::Sender<Notification>> = HashMap::new();
    for w in &webhooks {
        let (tx, rx) = mpsc::channel(QUEUE);
        senders.insert(w.name.clone(), tx);
        tokio::spawn(deliver(w.clone(), rx));
    }
    tokio::spawn(async move {
        loop {
            let ev = match events.recv().await {
                Ok(ev) => ev,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(
                        missed = n,
                        "webhooks fell behind the event stream; some notifications were skipped"
                    );
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Some(kind) = kind_of(&ev) else { continue };
            for w in targets(&ev, &webhooks, &channels) {
                let Some(tx) = senders.get(&w.name) else { continue };
                let n = Notification { kind, webhook: w.name.clone(), event: crate::dto::ToWire::wire(&ev) };
                if tx.try_send(n).is_err() {
                    warn!(webhook = %w.name, seq = ev.seq, "webhook queue full; notification dropped");
                }
            }
        }
    });
}

/// POST each notification in order, retrying with backoff; give up on one after its last retry.
async fn deliver(w: WebhookConfig, mut rx: mpsc::Receiver<Notification>) {
    let client = match crate::http_client::builder().timeout(w.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            warn!(webhook = %w.name, error = %e, "cannot build the HTTP client; webhook disabled");
            return;
        }
    };
    while let Some(n) = rx.recv().await {
        let mut attempt = 0u32;
        let mut waits = backoff(w.backoff);
        loop {
            let result = client
                .post(&w.url)
                .header("x-tend-attempt", (attempt + 1).to_string())
                .json(&n)
                .send()
                .await
                .map_err(|e| e.to_string())
                .and_then(
                    |r| if r.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", r.status())) },
                );
            match result {
                Ok(()) => {
                    debug!(webhook = %w.name, kind = n.kind, seq = n.event.seq, attempt = attempt + 1, "delivered");
                    break;
                }
                Err(e) if attempt < w.retries => {
                    attempt += 1;
                    let wait = waits.next();
                    debug!(webhook = %w.name, error = %e, attempt, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    warn!(webhook = %w.name, kind = n.kind, seq = n.event.seq, error = %e, "webhook failed; giving up");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tend_core::model::WorkerId;
    use tend_core::recycle::RecycleReason;
    use tend_core::rules::{Alert, Severity};
    use tend_core::time::Timestamp;

    fn hook(name: &str, global: bool, events: &[&str]) -> WebhookConfig {
        WebhookConfig {
            name: name.into(),
            url: "http://127.0.0.1:1/".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            global,
            retries: 3,
            backoff: Duration::from_millis(100),
            timeout: Duration::from_secs(1),
        }
    }

    fn alert_event(state: AlertState, silenced_until: Option<Timestamp>) -> Event {
        let alert = Alert {
            rule: "low".into(),
            subject: "w1".into(),
            pool: "loom".into(),
            severity: Severity::Warning,
            state,
            value: Some(0.1),
            threshold: Some(0.2),
            since: Timestamp::from_secs(5),
            started: None,
            message: "m".into(),
            acknowledged: false,
            silenced_until,
            metric: None,
            clear: None,
        };
        Event { seq: 1, at: Timestamp::from_secs(5), kind: EventKind::AlertChanged { alert } }
    }

    #[test]
    fn routing_by_kind_scope_channel_and_silence() {
        let all = ["firing", "resolved", "recycle_started", "recycled"];
        let hooks =
            vec![hook("ops", true, &all), hook("orch", false, &all), hook("quiet", true, &["recycled"])];
        let channels = HashMap::from([(("loom".to_owned(), "low".to_owned()), vec!["orch".to_owned()])]);
        let names =
            |ev: &Event| targets(ev, &hooks, &channels).iter().map(|w| w.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&alert_event(AlertState::Firing, None)), ["ops", "orch"]);
        assert_eq!(names(&alert_event(AlertState::Resolved, None)), ["ops", "orch"]);
        assert!(names(&alert_event(AlertState::Pending, None)).is_empty());
        assert!(
            names(&alert_event(AlertState::Firing, Some(Timestamp::from_secs(60)))).is_empty(),
            "silenced"
        );
        let recycled = Event {
            seq: 2,
            at: Timestamp::from_secs(6),
            kind: EventKind::RecycleStarted {
                worker: WorkerId::new("w1"),
                pool: "loom".into(),
                reason: RecycleReason::Memory,
                detail: "d".into(),
                old_process: None,
            },
        };
        assert_eq!(names(&recycled), ["ops"], "recycles go to global webhooks that want them");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Duration::from_millis(500);
        let mut waits = backoff(b);
        let got: Vec<u128> = (1..=8).map(|_| waits.next().as_millis()).collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(backoff(b).nth(200), MAX_BACKOFF);
        assert_eq!(
            backoff(Duration::from_secs(3600)).next(),
            MAX_BACKOFF,
            "a base above the cap waits the cap"
        );
    }
}
