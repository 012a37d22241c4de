//! Desktop notifications through the session D-Bus (`notify-rust`, pure Rust). It implements the
//! engine's `Notifier`; the budget, the wording and the counters live in `tend_engine::notify`. Without
//! a session bus or a notification daemon `show()` fails: the error goes back to the sink, which shows
//! notifications as degraded in Settings; nothing here may panic or block the engine.

use notify_rust::{Notification as DbusNotification, Timeout, Urgency};
use tend_engine::api::Severity;
use tend_engine::notify::{Notification, Notifier};

#[derive(Debug, Default)]
pub struct DesktopNotifier;

impl Notifier for DesktopNotifier {
    fn notify(&self, n: &Notification) -> Result<(), String> {
        let urgency = match n.severity {
            Severity::Critical => Urgency::Critical,
            Severity::Warning => Urgency::Normal,
            Severity::Info => Urgency::Low,
        };
        DbusNotification::new()
            .appname("Tend")
            .summary(&n.summary)
            .body(&n.body)
            .icon("dialog-warning")
            .urgency(urgency)
            .timeout(Timeout::Milliseconds(10_000))
            .show()
            .map(|_| ())
            .map_err(|e| format!("cannot show a desktop notification: {e}"))
    }
}
