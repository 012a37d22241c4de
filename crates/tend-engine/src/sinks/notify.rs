//! Notifications: a sink on the event broadcast that turns an alert firing (or flapping) and a recycle
//! for cause (memory, died, hung, rule) into a notification naming the worker, the value and the
//! threshold, passes it through the budget (`tend_core::budget`), and hands what may go out to a
//! [`Notifier`]. It owns the budget's state and the counters shown in Settings. It must never know how
//! a notification is shown (the desktop shell supplies the notifier; `tend serve` starts none) and never
//! slows the engine: it reads the broadcast on its own task and sends off the runtime's threads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};
use tracing::warn;

use tend_core::budget::{Budget, Verdict};
use tend_core::event::{Event, EventKind};
use tend_core::recycle::RecycleReason;
use tend_core::rules::AlertState;
use tend_core::time::Clock;

use crate::config::{Config, DESKTOP_CHANNEL};
use crate::dto::ToWire;

/// One notification, ready to show.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub summary: String,
    pub body: String,
    pub severity: tend_api::Severity,
    /// What the budget counts it under: the rule name, `recycle:<reason>`, or `digest`.
    pub key: String,
    /// The worker it is about, when it is about one: a click on it opens that worker's page.
    pub worker: Option<String>,
}

/// Shows notifications. Errors (no session bus, no notification daemon) are reported, never fatal.
pub trait Notifier: Send + Sync + 'static {
    fn notify(&self, n: &Notification) -> Result<(), String>;
}

/// What the notifier did so far, for Settings and the tray (a wire type).
pub use tend_api::NotifyStatus;

#[derive(Default)]
struct Counters {
    paused: AtomicBool,
    sent: AtomicU64,
    held: AtomicU64,
    digests: AtomicU64,
    not_notified: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A handle on the running notification sink: pause/resume and status.
#[derive(Clone, Default)]
pub struct NotifyHandle {
    counters: Arc<Counters>,
}

impl NotifyHandle {
    pub fn set_paused(&self, paused: bool) {
        self.counters.paused.store(paused, Ordering::Relaxed);
    }

    pub fn paused(&self) -> bool {
        self.counters.paused.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> NotifyStatus {
        let c = &self.counters;
        NotifyStatus {
            paused: c.paused.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            held: c.held.load(Ordering::Relaxed),
            digests: c.digests.load(Ordering::Relaxed),
            not_notified: c.not_notified.load(Ordering::Relaxed),
            last_error: c.last_error.lock().map(|e| e.clone()).unwrap_or(None),
        }
    }
}

/// The notification for an event, if it deserves one (before the budget).
pub fn notification_for(
    event: &Event,
    channels: &HashMap<(String, String), Vec<String>>,
) -> Option<Notification> {
    match &event.kind {
        EventKind::AlertChanged { alert } => {
            let firing = match alert.state {
                AlertState::Firing => "firing",
                AlertState::Flapping => "flapping",
                _ => return None,
            };
            if alert.silenced_until.is_some_and(|u| u > event.at) {
                return None;
            }
            // A rule that names channels notifies the desktop only when one of them is `desktop`.
            if let Some(ch) = channels.get(&(alert.pool.clone(), alert.rule.clone()))
                && !ch.is_empty()
                && !ch.iter().any(|c| c == DESKTOP_CHANNEL)
            {
                return None;
            }
            let num = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
            Some(Notification {
                summary: format!("{} {firing} on {}", alert.rule, alert.subject),
                body: format!(
                    "{}: value {}, threshold {} — {}",
                    alert.subject,
                    num(alert.value),
                    num(alert.threshold),
                    alert.message
                ),
                severity: alert.severity.wire(),
                key: alert.rule.clone(),
                // A pool-scoped rule's subject is its pool: that has no page of its own.
                worker: (alert.subject != alert.pool).then(|| alert.subject.clone()),
            })
        }
        EventKind::Recycled { worker, reason, detail, last_metrics, .. }
            if matches!(
                reason,
                RecycleReason::Memory | RecycleReason::Died | RecycleReason::Hung | RecycleReason::Rule
            ) =>
        {
            let memory = last_metrics
                .as_ref()
                .and_then(|m| m.memory_bytes)
                .map(|b| format!(" (last memory {:.1} MiB)", b as f64 / (1024.0 * 1024.0)))
                .unwrap_or_default();
            Some(Notification {
                summary: format!("{worker} recycled: {}", reason.as_str()),
                body: format!("{worker}: {detail}{memory}"),
                severity: tend_api::Severity::Warning,
                key: format!("recycle:{}", reason.as_str()),
                worker: Some(worker.0.clone()),
            })
        }
        _ => None,
    }
}

/// Start the sink on the current tokio runtime.
pub fn start(
    config: &Config,
    events: broadcast::Receiver<Event>,
    clock: Arc<dyn Clock>,
    notifier: Arc<dyn Notifier>,
) -> NotifyHandle {
    let handle = NotifyHandle::default();
    let channels: HashMap<(String, String), Vec<String>> = config
        .pools
        .iter()
        .flat_map(|p| p.rules.iter().map(|r| ((p.name.clone(), r.name.clone()), r.channels.clone())))
        .collect();
    let budget = Budget::new(config.notifications.budget.clone());
    tokio::spawn(run(events, clock, notifier, budget, channels, handle.counters.clone()));
    handle
}

async fn run(
    mut events: broadcast::Receiver<Event>,
    clock: Arc<dyn Clock>,
    notifier: Arc<dyn Notifier>,
    mut budget: Budget,
    channels: HashMap<(String, String), Vec<String>>,
    counters: Arc<Counters>,
) {
    // Digests are due on time, not only when another event arrives.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let out = tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    let Some(n) = notification_for(&ev, &channels) else { continue };
                    if counters.paused.load(Ordering::Relaxed) {
                        counters.not_notified.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let now = clock.now();
                    match budget.offer(now, crate::clock::local_minute_of_day(now), &n.key, crate::dto::severity_from_wire(n.severity)) {
                        Verdict::Send => n,
                        Verdict::RecordOnly => {
                            counters.not_notified.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Verdict::Quiet | Verdict::Capped => {
                            counters.held.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    warn!(missed = n, "notifications fell behind the event stream");
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                let now = clock.now();
                let Some(d) = budget.digest_due(now, crate::clock::local_minute_of_day(now)) else { continue };
                counters.digests.fetch_add(1, Ordering::Relaxed);
                Notification {
                    summary: "Tend: notifications held back".to_owned(),
                    body: d.summary(),
                    severity: tend_api::Severity::Warning,
                    key: "digest".to_owned(),
                    worker: None,
                }
            }
        };
        let sender = notifier.clone();
        let result = tokio::task::spawn_blocking(move || sender.notify(&out))
            .await
            .unwrap_or_else(|e| Err(format!("notifier panicked: {e}")));
        match result {
            Ok(()) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let first = counters.last_error.lock().map(|g| g.is_none()).unwrap_or(false);
                if first {
                    warn!(error = %e, "desktop notifications unavailable; alerts are still recorded and shown");
                }
                if let Ok(mut g) = counters.last_error.lock() {
                    *g = Some(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tend_core::rules::{Alert, Severity};
    use tend_core::time::Timestamp;

    fn alert(state: AlertState, silenced: Option<i64>) -> Event {
        Event {
            seq: 1,
            at: Timestamp::from_secs(100),
            kind: EventKind::AlertChanged {
                alert: Alert {
                    rule: "memory-high".into(),
                    subject: "demo-2".into(),
                    pool: "demo".into(),
                    severity: Severity::Warning,
                    state,
                    value: Some(63.25),
                    threshold: Some(60.0),
                    since: Timestamp::from_secs(100),
                    started: None,
                    message: "memory_mb 63.2 above 60 for 3s".into(),
                    acknowledged: false,
                    silenced_until: silenced.map(Timestamp::from_secs),
                    metric: None,
                    clear: None,
                },
            },
        }
    }

    #[test]
    fn firing_names_worker_value_and_threshold() {
        let n = notification_for(&alert(AlertState::Firing, None), &HashMap::new()).expect("notifies");
        assert_eq!(n.summary, "memory-high firing on demo-2");
        assert_eq!(n.body, "demo-2: value 63.2, threshold 60.0 — memory_mb 63.2 above 60 for 3s");
        assert_eq!(n.key, "memory-high");
    }

    #[test]
    fn only_firing_unsilenced_desktop_alerts_notify() {
        let none = HashMap::new();
        assert!(notification_for(&alert(AlertState::Pending, None), &none).is_none());
        assert!(notification_for(&alert(AlertState::Resolved, None), &none).is_none());
        assert!(notification_for(&alert(AlertState::Firing, Some(200)), &none).is_none(), "silenced");
        assert!(notification_for(&alert(AlertState::Firing, Some(50)), &none).is_some(), "silence over");
        assert!(notification_for(&alert(AlertState::Flapping, None), &none).is_some());
        let key = ("demo".to_owned(), "memory-high".to_owned());
        let webhook_only = HashMap::from([(key.clone(), vec!["orchestrator".to_owned()])]);
        assert!(notification_for(&alert(AlertState::Firing, None), &webhook_only).is_none());
        let both = HashMap::from([(key, vec!["orchestrator".to_owned(), "desktop".to_owned()])]);
        assert!(notification_for(&alert(AlertState::Firing, None), &both).is_some());
    }

    #[test]
    fn recycles_for_cause_notify_planned_ones_do_not() {
        let recycled = |reason| Event {
            seq: 2,
            at: Timestamp::from_secs(1),
            kind: EventKind::Recycled {
                worker: tend_core::WorkerId::new("demo-2"),
                pool: "demo".into(),
                reason,
                detail: "memory 81.0 MiB above 80 MiB".into(),
                old_process: None,
                new_process: None,
                uptime_secs: 20.0,
                requests: 40,
                last_metrics: Some(tend_core::Metrics {
                    memory_bytes: Some(81 * 1024 * 1024),
                    ..Default::default()
                }),
            },
        };
        let n = notification_for(&recycled(RecycleReason::Memory), &HashMap::new()).expect("notifies");
        assert_eq!(n.summary, "demo-2 recycled: memory");
        assert_eq!(n.body, "demo-2: memory 81.0 MiB above 80 MiB (last memory 81.0 MiB)");
        assert_eq!(n.key, "recycle:memory");
        for planned in [RecycleReason::Manual, RecycleReason::Ttl, RecycleReason::Requests] {
            assert!(notification_for(&recycled(planned), &HashMap::new()).is_none(), "{planned:?}");
        }
    }
}
