//! Restoring the alerts an earlier run left open: tracked again when their subject exists, held until
//! it appears (an attached process or container found by the first discoveries, a reporter registering
//! again), ended with an event when their rule or pool is gone or the subject never comes back.

use super::*;

impl Fleet {
    /// Alerts an earlier run left open (pending, firing, flapping), read back from the history store.
    /// One whose subject (the pool, or a worker known now) exists is tracked again in its state, and the
    /// next readings confirm or clear it (no event: that state is already published). One whose subject
    /// is not known yet (an attached process or a container found by the first discoveries, a reporter
    /// registering again) waits up to [`RESTORE_WAIT`] for it. One whose rule or pool is no longer
    /// configured ends now, with an event, so it is not left open in the history. `restart-storm`
    /// alerts come back and are checked at once against the new run's breaker (which starts closed).
    /// Returns how many were restored now, and the events of those that ended.
    pub fn restore_alerts(&mut self, alerts: Vec<Alert>, now: Timestamp) -> (usize, Output) {
        let mut restored = 0;
        for alert in alerts {
            if self.rule_of(&alert).is_none() {
                let why = format!("rule {} is no longer configured for pool {}", alert.rule, alert.pool);
                if let Some(alert) = crate::rules::ended(&alert, &why, now) {
                    self.emit(now, EventKind::AlertChanged { alert });
                }
                continue;
            }
            let known = alert.subject == alert.pool
                || self.workers.contains_key(&WorkerId::new(alert.subject.as_str()));
            if !known {
                self.awaiting_subject.push((alert, now.plus(RESTORE_WAIT)));
            } else if self.restore_alert(alert, now) {
                restored += 1;
            }
        }
        (restored, self.take())
    }

    /// The rule an alert belongs to: one of its pool's, the pool's storm breaker, or its orphan count.
    fn rule_of(&self, alert: &Alert) -> Option<Rule> {
        if alert.rule == STORM_RULE {
            return self.storm_rules.get(&alert.pool).cloned();
        }
        if alert.rule == ORPHAN_RULE {
            return self.docker_pool(&alert.pool)?.orphans_max.map(container::orphan_rule);
        }
        let spec = self.pools.iter().find(|p| p.name == alert.pool)?;
        spec.rules.iter().find(|r| r.name == alert.rule).cloned()
    }

    fn restore_alert(&mut self, alert: Alert, now: Timestamp) -> bool {
        let Some(rule) = self.rule_of(&alert) else { return false };
        let (subject, pool) = (alert.subject.clone(), alert.pool.clone());
        if !self.alerts.restore(&rule, alert) {
            return false;
        }
        if rule.name == STORM_RULE {
            // The breaker is not kept across runs: this run's worker starts with it closed, so the
            // alert is checked against that (held = still tripped).
            let id = WorkerId::new(subject);
            let held = self.workers.get(&id).is_some_and(|w| w.held.is_some());
            self.observe_storm(&id, &pool, 0, held, now);
        }
        true
    }

    /// A worker just appeared: restore the alerts of the last run that were waiting for it.
    pub(crate) fn restore_awaiting(&mut self, id: &WorkerId, now: Timestamp) {
        if self.awaiting_subject.is_empty() {
            return;
        }
        let (mine, rest) = std::mem::take(&mut self.awaiting_subject)
            .into_iter()
            .partition(|(a, _)| a.subject == id.as_str());
        self.awaiting_subject = rest;
        for (alert, _) in mine {
            self.restore_alert(alert, now);
        }
    }

    /// Alerts whose subject did not come back in time end, with an event.
    pub(super) fn expire_awaiting(&mut self, now: Timestamp) {
        if self.awaiting_subject.is_empty() {
            return;
        }
        let (expired, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.awaiting_subject).into_iter().partition(|(_, until)| now >= *until);
        self.awaiting_subject = rest;
        for (alert, _) in expired {
            let why = format!("{} was not found again after the restart", alert.subject);
            if let Some(alert) = crate::rules::ended(&alert, &why, now) {
                self.emit(now, EventKind::AlertChanged { alert });
            }
        }
    }
}
