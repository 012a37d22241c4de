//! The live feed of a window (`tend_api::live`): once a second, the changes the screen in view draws,
//! computed against what this feed already sent, so the receiver's model is always the last update
//! applied to the ones before. A hidden window is sent nothing; the first update after it is shown
//! carries every change it missed, in one step.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use tend_api::{LiveScope, LiveUpdate, WorkerDto};

use super::{App, alerts_of, pools_of, workers_of};
use crate::dto::ToWire;

/// How often a visible window is updated: the UI draws at most once a second.
pub const LIVE_PERIOD: Duration = Duration::from_secs(1);

/// Changes the screen a running feed serves. Dropping it ends the feed.
pub struct LiveControl {
    scope: watch::Sender<LiveScope>,
}

impl LiveControl {
    /// A change of screen is answered at once (with what the new screen needs and was not sent).
    pub fn set_scope(&self, scope: LiveScope) {
        self.scope.send_replace(scope);
    }
}

impl App {
    /// Start a feed for one window. It ends when the control is dropped, the stream's consumer goes
    /// away, or the engine stops.
    pub fn live_feed(&self, scope: LiveScope) -> (LiveControl, impl Stream<Item = LiveUpdate> + use<>) {
        let (control, mut scope_rx) = watch::channel(scope);
        let (tx, out) = mpsc::channel(2);
        let app = self.clone();
        tokio::spawn(async move {
            let mut sent = Sent::default();
            loop {
                let scope = scope_rx.borrow_and_update().clone();
                if scope != LiveScope::Hidden {
                    let Some(update) = app.live_update(&mut sent, &scope).await else { return };
                    if tx.send(update).await.is_err() {
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(LIVE_PERIOD) => continue,
                        changed = scope_rx.changed() => if changed.is_err() { return },
                    }
                } else if scope_rx.changed().await.is_err() {
                    return;
                }
            }
        });
        (LiveControl { scope: control }, ReceiverStream::new(out))
    }

    /// One update for `scope`, and what it sent remembered in `sent`; None when the engine stopped.
    async fn live_update(&self, sent: &mut Sent, scope: &LiveScope) -> Option<LiveUpdate> {
        let facts = self.health_facts();
        let full = !sent.started;
        let (at, mut health, mut pools, mut workers, mut alerts) = self
            .query(move |v| {
                let alerts = full.then(|| alerts_of(v));
                (v.now.wire(), facts.health(v), pools_of(v), workers_of(v), alerts)
            })
            .await
            .ok()?;
        // A hub's agents: their workers, alerts and health figures, as `workers()` and `health()` give.
        let remotes = &self.shared.remotes;
        remotes.add_to(&mut health);
        workers.extend(remotes.workers());
        pools.extend(remotes.pools());
        if let Some(a) = &mut alerts {
            a.extend(remotes.alerts());
        }
        sent.started = true;
        let (workers, removed) = sent.changes(workers, scope);
        Some(LiveUpdate { at, full, health, pools, workers, removed, alerts })
    }
}

/// What a feed has sent of each worker: the receiver's copy.
#[derive(Default)]
struct Sent {
    started: bool,
    workers: HashMap<String, WorkerDto>,
}

impl Sent {
    /// The workers to send for `scope` (new ones, and changed ones the screen draws) and the ids of
    /// those gone, oldest order kept.
    fn changes(&mut self, now: Vec<WorkerDto>, scope: &LiveScope) -> (Vec<WorkerDto>, Vec<String>) {
        let mut changed = Vec::new();
        let mut present = HashSet::with_capacity(now.len());
        for w in now {
            present.insert(w.id.clone());
            let send = match self.workers.get(&w.id) {
                None => true,
                Some(old) => old != &w && (draws_samples(scope, &w.id) || !same_summary(old, &w)),
            };
            if send {
                self.workers.insert(w.id.clone(), w.clone());
                changed.push(w);
            }
        }
        let mut removed: Vec<String> =
            self.workers.keys().filter(|id| !present.contains(*id)).cloned().collect();
        removed.sort();
        for id in &removed {
            self.workers.remove(id);
        }
        (changed, removed)
    }
}

/// Whether the screen draws this worker's numbers (so a new sample is worth sending).
fn draws_samples(scope: &LiveScope, id: &str) -> bool {
    match scope {
        LiveScope::Workers => true,
        LiveScope::Worker { id: shown } => shown == id,
        LiveScope::Summary | LiveScope::Hidden => false,
    }
}

/// Equal in everything but what each sample changes (usage, counters, uptime, sample time).
fn same_summary(a: &WorkerDto, b: &WorkerDto) -> bool {
    a.pool == b.pool
        && a.source == b.source
        && a.slot == b.slot
        && a.process == b.process
        && a.state == b.state
        && a.incarnation == b.incarnation
        && a.restarts == b.restarts
        && a.recycling == b.recycling
        && a.held == b.held
        && a.last_event == b.last_event
        && a.memory_limit_bytes == b.memory_limit_bytes
        && a.task_id == b.task_id
        && a.container == b.container
        && a.labels == b.labels
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use futures::StreamExt;
    use tend_api::report::{RegisterBody, StateBody};

    use super::*;
    use crate::AppOptions;

    fn worker(id: &str, cpu: f64) -> WorkerDto {
        serde_json::from_value(serde_json::json!({
            "id": id, "pool": "p", "source": "reported", "slot": null, "pid": null, "process": null,
            "state": "WORKING", "incarnation": 1, "cpu_percent": cpu, "memory_bytes": 1000,
            "memory_percent": null, "memory_limit_bytes": null, "threads": null, "fds": null,
            "uptime_secs": 1.0, "restarts": 0, "requests": 0, "log_lines": 0, "errors": 0, "warnings": 0,
            "recycling": null, "held": null, "last_event": null, "last_sample_at": 1000
        }))
        .unwrap()
    }

    fn ids(ws: &[WorkerDto]) -> Vec<&str> {
        ws.iter().map(|w| w.id.as_str()).collect()
    }

    #[test]
    fn each_screen_gets_the_changes_it_draws_and_a_change_of_screen_catches_it_up() {
        let mut sent = Sent::default();
        let (new, gone) = sent.changes(vec![worker("a", 1.0), worker("b", 1.0)], &LiveScope::Summary);
        assert_eq!((ids(&new), gone.len()), (vec!["a", "b"], 0), "new workers are always sent");
        // New samples only: the summary screens draw none of them.
        let (new, _) = sent.changes(vec![worker("a", 2.0), worker("b", 2.0)], &LiveScope::Summary);
        assert!(new.is_empty(), "{:?}", ids(&new));
        // A change of state is drawn everywhere.
        let mut failed = worker("b", 2.0);
        failed.state = tend_api::State::Failed;
        let (new, _) = sent.changes(vec![worker("a", 2.0), failed.clone()], &LiveScope::Summary);
        assert_eq!(ids(&new), vec!["b"]);
        // One worker's page: that worker's samples, not the others'.
        let page = LiveScope::Worker { id: "a".into() };
        let (new, _) = sent.changes(vec![worker("a", 3.0), failed.clone()], &page);
        assert_eq!(ids(&new), vec!["a"]);
        assert_eq!(new[0].cpu_percent, Some(3.0));
        // Back on the summary, "b" changes numbers unseen; the Workers screen then gets it at once,
        // and only what differs from what was sent.
        let mut later = failed.clone();
        later.cpu_percent = Some(9.0);
        let (new, _) = sent.changes(vec![worker("a", 3.0), later.clone()], &LiveScope::Summary);
        assert!(new.is_empty());
        let (new, _) = sent.changes(vec![worker("a", 3.0), later.clone()], &LiveScope::Workers);
        assert_eq!(ids(&new), vec!["b"]);
        assert_eq!(new[0].cpu_percent, Some(9.0));
        let (new, gone) = sent.changes(vec![later], &LiveScope::Workers);
        assert!(new.is_empty());
        assert_eq!(gone, vec!["a".to_owned()], "a worker that left is named once");
        let (_, gone) = sent.changes(vec![], &LiveScope::Workers);
        assert_eq!(gone, vec!["b".to_owned()]);
    }

    async fn next(feed: &mut (impl Stream<Item = LiveUpdate> + Unpin)) -> LiveUpdate {
        tokio::time::timeout(Duration::from_secs(10), feed.next()).await.expect("an update").expect("open")
    }

    /// A real engine with a reported pool: the feed's first update is full, then it carries the
    /// changes of the screen in view, nothing while hidden, and the missed changes once shown.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_feed_follows_the_screen_and_is_silent_while_hidden() {
        let cfg = crate::config::parse("[[pool]]\nname = \"loom\"\nsource = \"reported\"\n", "test").unwrap();
        let app = App::start(cfg, AppOptions { no_history: true, ..Default::default() }).unwrap();
        let (control, feed) = app.live_feed(LiveScope::Summary);
        let mut feed = Box::pin(feed);
        let first = next(&mut feed).await;
        assert!(first.full && first.workers.is_empty() && first.alerts.is_some());
        assert_eq!(first.pools.len(), 1);

        let body = |id: &str| RegisterBody {
            id: id.into(),
            pool: "loom".into(),
            task_id: None,
            pid: None,
            container: None,
            labels: BTreeMap::new(),
        };
        app.register(body("w1")).await.unwrap();
        loop {
            let u = next(&mut feed).await;
            assert!(!u.full);
            if ids(&u.workers) == vec!["w1"] {
                break;
            }
        }
        let cpu = BTreeMap::from([("cpu_percent".to_owned(), 42.0)]);
        app.report_metrics("w1", cpu).await.unwrap();
        for _ in 0..2 {
            let u = next(&mut feed).await;
            assert!(
                u.workers.is_empty(),
                "a new sample is not sent to a summary screen: {:?}",
                ids(&u.workers)
            );
        }
        control.set_scope(LiveScope::Workers);
        let u = next(&mut feed).await;
        assert_eq!(ids(&u.workers), vec!["w1"], "the Workers screen is caught up at once");
        assert_eq!(u.workers[0].cpu_percent, Some(42.0));

        control.set_scope(LiveScope::Hidden);
        app.report_metrics("w1", BTreeMap::from([("cpu_percent".to_owned(), 7.0)])).await.unwrap();
        let quiet = tokio::time::timeout(LIVE_PERIOD * 3, feed.next()).await;
        assert!(quiet.is_err(), "a hidden window is sent nothing: {quiet:?}");
        control.set_scope(LiveScope::Workers);
        let u = next(&mut feed).await;
        assert_eq!(u.workers.first().and_then(|w| w.cpu_percent), Some(7.0), "shown again: one catch-up");

        // Back on a summary screen, a change of state is sent; a new sample is not.
        control.set_scope(LiveScope::Summary);
        next(&mut feed).await;
        let state = StateBody { state: "READY".into(), cause: Some("loaded".into()) };
        app.report_state("w1", state).await.unwrap();
        loop {
            let u = next(&mut feed).await;
            if let Some(w) = u.workers.first() {
                assert_eq!(w.state, tend_api::State::Ready);
                break;
            }
        }
        drop(control);
        assert!(next_or_end(&mut feed).await, "the feed ends with its control");
        app.shutdown().await;
    }

    async fn next_or_end(feed: &mut (impl Stream<Item = LiveUpdate> + Unpin)) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, feed.next()).await {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(_) => return false,
            }
        }
        false
    }
}
