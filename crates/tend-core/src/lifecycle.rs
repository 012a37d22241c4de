//! The lifecycle state machine of one worker incarnation, exactly as the design brief's table: nine
//! states, the allowed transitions, and the timings derived from them. It only checks and records; the
//! fleet decides when to ask for a transition.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

use crate::time::Timestamp;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Initializing,
    Ready,
    Working,
    Completing,
    Completed,
    Failed,
    Timeout,
    Terminated,
    Cleaned,
}

use State::*;

impl State {
    pub const ALL: [State; 9] =
        [Initializing, Ready, Working, Completing, Completed, Failed, Timeout, Terminated, Cleaned];

    pub fn as_str(self) -> &'static str {
        match self {
            Initializing => "INITIALIZING",
            Ready => "READY",
            Working => "WORKING",
            Completing => "COMPLETING",
            Completed => "COMPLETED",
            Failed => "FAILED",
            Timeout => "TIMEOUT",
            Terminated => "TERMINATED",
            Cleaned => "CLEANED",
        }
    }

    /// Parse the upper-case name (also accepts lower case), as the API and config spell it.
    pub fn parse(s: &str) -> Option<State> {
        let up = s.trim().to_ascii_uppercase();
        State::ALL.into_iter().find(|st| st.as_str() == up)
    }

    /// A process or container may still be running in this state.
    pub fn is_live(self) -> bool {
        matches!(self, Initializing | Ready | Working | Completing)
    }

    /// Ended, waiting to be cleaned.
    pub fn is_terminal(self) -> bool {
        matches!(self, Completed | Failed | Timeout | Terminated)
    }

    /// The states this one may move to, in the brief's order.
    pub fn allowed_next(self) -> &'static [State] {
        match self {
            Initializing => &[Ready, Failed, Timeout, Terminated],
            Ready => &[Working, Completing, Failed, Timeout, Terminated],
            Working => &[Ready, Completing, Failed, Timeout, Terminated],
            Completing => &[Completed, Failed, Timeout, Terminated],
            Completed | Failed | Timeout | Terminated => &[Cleaned],
            Cleaned => &[],
        }
    }

    pub fn can_move_to(self, to: State) -> bool {
        self.allowed_next().contains(&to)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused transition. The message names the allowed ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid transition {from} -> {to}; allowed from {from}: {}", allowed_list(.allowed))]
pub struct TransitionError {
    pub from: State,
    pub to: State,
    pub allowed: Vec<State>,
}

fn allowed_list(a: &[State]) -> String {
    if a.is_empty() {
        "none (final state)".to_owned()
    } else {
        a.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// One recorded transition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub from: Option<State>,
    pub to: State,
    pub at: Timestamp,
    pub cause: String,
}

/// The lifecycle of one incarnation: its current state and every transition so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    state: State,
    since: Timestamp,
    created: Timestamp,
    history: Vec<Transition>,
}

impl Lifecycle {
    /// A new incarnation enters INITIALIZING (spawned, discovered or registered).
    pub fn new(at: Timestamp, cause: impl Into<String>) -> Self {
        Lifecycle {
            state: Initializing,
            since: at,
            created: at,
            history: vec![Transition { from: None, to: Initializing, at, cause: cause.into() }],
        }
    }

    pub fn state(&self) -> State {
        self.state
    }
    pub fn since(&self) -> Timestamp {
        self.since
    }
    pub fn created(&self) -> Timestamp {
        self.created
    }
    pub fn history(&self) -> &[Transition] {
        &self.history
    }

    /// Move to `to`, or refuse naming the allowed states. Moving to the current state is refused too:
    /// callers must not record a transition that did not happen.
    pub fn transition(
        &mut self,
        to: State,
        at: Timestamp,
        cause: impl Into<String>,
    ) -> Result<&Transition, TransitionError> {
        if !self.state.can_move_to(to) {
            return Err(TransitionError {
                from: self.state,
                to,
                allowed: self.state.allowed_next().to_vec(),
            });
        }
        let t = Transition { from: Some(self.state), to, at, cause: cause.into() };
        self.state = to;
        self.since = at;
        self.history.push(t);
        Ok(self.history.last().expect("just pushed"))
    }

    /// Last time this incarnation entered `state`.
    pub fn entered(&self, state: State) -> Option<Timestamp> {
        self.history.iter().rev().find(|t| t.to == state).map(|t| t.at)
    }

    /// Spawn → first READY.
    pub fn startup_time(&self) -> Option<Duration> {
        let ready = self.history.iter().find(|t| t.to == Ready)?;
        Some(ready.at.since(self.created))
    }

    /// Last WORKING → COMPLETED (through COMPLETING).
    pub fn task_time(&self) -> Option<Duration> {
        let done = self.history.iter().rposition(|t| t.to == Completed)?;
        let start = self.history[..done].iter().rev().find(|t| t.to == Working)?;
        Some(self.history[done].at.since(start.at))
    }

    /// The terminal state this incarnation ended in, if it ended (also after CLEANED).
    pub fn outcome(&self) -> Option<State> {
        self.history.iter().rev().map(|t| t.to).find(|s| s.is_terminal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    /// The brief's table, written out as (from, to) pairs: exactly these are allowed.
    const TABLE: &[(State, State)] = &[
        (Initializing, Ready),
        (Ready, Working),
        (Working, Ready),
        (Ready, Completing),
        (Working, Completing),
        (Completing, Completed),
        (Initializing, Failed),
        (Ready, Failed),
        (Working, Failed),
        (Completing, Failed),
        (Initializing, Timeout),
        (Ready, Timeout),
        (Working, Timeout),
        (Completing, Timeout),
        (Initializing, Terminated),
        (Ready, Terminated),
        (Working, Terminated),
        (Completing, Terminated),
        (Completed, Cleaned),
        (Failed, Cleaned),
        (Timeout, Cleaned),
        (Terminated, Cleaned),
    ];

    #[test]
    fn every_pair_is_allowed_exactly_when_the_table_says_so() {
        for from in State::ALL {
            for to in State::ALL {
                let expected = TABLE.contains(&(from, to));
                assert_eq!(from.can_move_to(to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn refused_transition_names_the_allowed_ones() {
        let mut l = Lifecycle::new(t(0), "spawned");
        let err = l.transition(Completed, t(1), "x").unwrap_err();
        assert_eq!(err.from, Initializing);
        assert_eq!(err.to, Completed);
        assert_eq!(
            err.to_string(),
            "invalid transition INITIALIZING -> COMPLETED; allowed from INITIALIZING: READY, FAILED, TIMEOUT, TERMINATED"
        );
        assert_eq!(l.state(), Initializing, "a refused transition changes nothing");
        assert_eq!(l.history().len(), 1);
        let mut l = Lifecycle::new(t(0), "spawned");
        l.transition(Failed, t(1), "exit 1").unwrap();
        l.transition(Cleaned, t(1), "reaped").unwrap();
        let err = l.transition(Ready, t(2), "x").unwrap_err();
        assert!(err.to_string().ends_with("allowed from CLEANED: none (final state)"), "{err}");
    }

    #[test]
    fn timings_are_derived_from_the_history() {
        let mut l = Lifecycle::new(t(100), "spawned");
        l.transition(Ready, t(103), "port open").unwrap();
        l.transition(Working, t(110), "busy").unwrap();
        l.transition(Ready, t(120), "idle").unwrap();
        l.transition(Working, t(130), "busy").unwrap();
        l.transition(Completing, t(135), "drain").unwrap();
        l.transition(Completed, t(137), "exit 0").unwrap();
        assert_eq!(l.startup_time(), Some(Duration::from_secs(3)));
        assert_eq!(l.task_time(), Some(Duration::from_secs(7)), "from the last WORKING");
        assert_eq!(l.outcome(), Some(Completed));
        l.transition(Cleaned, t(138), "reaped").unwrap();
        assert_eq!(l.outcome(), Some(Completed));
        assert_eq!(l.since(), t(138));
        assert_eq!(l.entered(Working), Some(t(130)));
    }

    #[test]
    fn parse_accepts_both_cases_and_rejects_others() {
        assert_eq!(State::parse("working"), Some(Working));
        assert_eq!(State::parse("CLEANED"), Some(Cleaned));
        assert_eq!(State::parse("busy"), None);
        assert_eq!(serde_json::to_string(&Initializing).unwrap(), "\"INITIALIZING\"");
    }
}
