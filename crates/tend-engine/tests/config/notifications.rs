//! `[notifications]`: defaults, every key, and located errors for bad values.

use std::time::Duration;

use super::{parse, problems};
use tend_core::budget::{BudgetConfig, QuietHours};
use tend_engine::config::Severity;

#[test]
fn defaults_when_absent() {
    let c = parse("").expect("empty config parses");
    assert!(c.notifications.enabled);
    assert_eq!(c.notifications.budget, BudgetConfig::default());
}

#[test]
fn every_key() {
    let c = parse(
        "[notifications]\nenabled = false\nper_rule = 2\noverall = 5\nwindow = \"5m\"\n\
         quiet_hours = { from = \"22:30\", to = \"07:00\" }\nrecord_only = [\"info\", \"warning\"]\ndigest = false\n",
    )
    .expect("parses");
    let n = c.notifications;
    assert!(!n.enabled);
    assert_eq!(
        n.budget,
        BudgetConfig {
            per_rule: 2,
            overall: 5,
            window: Duration::from_secs(300),
            quiet_hours: Some(QuietHours { from: 22 * 60 + 30, to: 7 * 60 }),
            record_only: vec![Severity::Info, Severity::Warning],
            digest: false,
        }
    );
}

#[test]
fn bad_values_are_located() {
    assert_eq!(
        problems(
            "[notifications]\nper_rule = 0\nwindow = \"soon\"\nquiet_hours = { from = \"25:00\", to = \"7\" }\n\
             record_only = [\"loud\"]\n"
        ),
        [
            "tend.toml:2:12: [notifications]: `per_rule` must be between 1 and 10000, not 0",
            "tend.toml:3:10: [notifications]: invalid duration \"soon\" for key \"window\": use a number with a \
             unit: 500ms, 5s, 2m, 1h, 1d (combinations like 1h30m are allowed)",
            "tend.toml:4:24: [notifications]: invalid time \"25:00\" for quiet_hours `from`: use HH:MM on a 24-hour clock",
            "tend.toml:4:38: [notifications]: invalid time \"7\" for quiet_hours `to`: use HH:MM on a 24-hour clock",
            "tend.toml:5:16: [notifications]: invalid severity \"loud\", expected one of: info, warning, critical",
        ]
    );
    assert_eq!(
        problems("[notifications]\nquiet = true\n"),
        [
            "tend.toml:2:1: [notifications]: unknown key \"quiet\", expected one of: enabled, per_rule, overall, \
             window, quiet_hours, record_only, digest"
        ]
    );
}
