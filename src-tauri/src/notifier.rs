//! Desktop notifications through the session D-Bus (`notify-rust`, pure Rust). It implements the
//! engine's `Notifier`; the budget, the wording and the counters live in `tend_engine::notify`. Without
//! a session bus or a notification daemon `show()` fails: the error goes back to the sink, which shows
//! notifications as degraded in Settings; nothing here may panic or block the engine.

use std::sync::Arc;

use notify_rust::{Notification as DbusNotification, Timeout, Urgency};
use tend_engine::api::Severity;
use tend_engine::notify::{Notification, Notifier};

/// What a click on a notification about a worker does: gets the worker's id.
pub type OnOpen = Arc<dyn Fn(String) + Send + Sync>;

#[derive(Default)]
pub struct DesktopNotifier {
    on_open: Option<OnOpen>,
}

impl DesktopNotifier {
    /// Notifications about a worker get a default action (a click, in most daemons) that calls
    /// `on_open` with its id.
    pub fn opening(on_open: OnOpen) -> DesktopNotifier {
        DesktopNotifier { on_open: Some(on_open) }
    }
}

impl Notifier for DesktopNotifier {
    fn notify(&self, n: &Notification) -> Result<(), String> {
        let urgency = match n.severity {
            Severity::Critical => Urgency::Critical,
            Severity::Warning => Urgency::Normal,
            Severity::Info => Urgency::Low,
        };
        let mut note = DbusNotification::new();
        note.appname("Tend")
            .summary(&n.summary)
            .body(&n.body)
            .icon("dialog-warning")
            .urgency(urgency)
            .timeout(Timeout::Milliseconds(10_000));
        let open = n.worker.clone().zip(self.on_open.clone());
        if open.is_some() {
            note.action("default", "Open");
        }
        let handle = note.show().map_err(|e| format!("cannot show a desktop notification: {e}"))?;
        // Waiting for the click blocks until the notification closes (10 s at most, or when the
        // user dismisses it): one short-lived thread per notification, which the budget keeps few.
        if let Some((worker, on_open)) = open {
            let spawned = std::thread::Builder::new().name("tend-notify-click".into()).spawn(move || {
                handle.wait_for_action(|action| {
                    if action == "default" {
                        on_open(worker);
                    }
                });
            });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot wait for a notification's click");
            }
        }
        Ok(())
    }
}
