//! How attach pools find their processes. Full passes: a scan of the process table for a pool's matcher,
//! off the async threads, reported as `Input::Discovered`; the engine decides when one is due (at most
//! one in flight per pool). The listener: the kernel's process events (exec and rename), each new
//! process checked against every attach pool's matcher and reported as `Input::Appeared`, so that
//! passes become a slow safety net. The listener says through the mailbox whether it is listening, and
//! when it lost events (a pass of every pool is then due).

use std::collections::BTreeSet;

use tend_collect::discover::Matcher;
use tend_collect::proc_events::{ProcEvent, ProcEvents};
use tend_core::fleet::Input;
use tend_core::time::Timestamp;
use tracing::{debug, info, warn};

use crate::mailbox::{Listener, Mailbox, Msg};

/// One pass for `pool` in a blocking task, begun at `began`; processes in `exclude` (owned ones, Tend
/// itself) are skipped.
pub(crate) fn start(pool: String, matcher: Matcher, exclude: Vec<u32>, began: Timestamp, tx: Mailbox) {
    tokio::task::spawn_blocking(move || {
        let found =
            tend_collect::discover::find(&matcher, &exclude).into_iter().map(|f| (f.id, f.name)).collect();
        let _ = tx.send(Msg::Observe(Input::Discovered { pool, found, began }));
    });
}

/// Listens to the kernel's process events for the attach pools' `matchers` until the engine is gone.
pub(crate) fn listen(matchers: Vec<(String, Matcher)>, tx: Mailbox) {
    // Shared with each batch's blocking check, not copied for it.
    let matchers = std::sync::Arc::new(matchers);
    tokio::spawn(async move {
        let mut events = match ProcEvents::open().await {
            Ok(events) => events,
            Err(why) => {
                info!(reason = %why, "attach pools scan the process table: no process events");
                let _ = tx.send(Msg::Listener(Listener::Unavailable(why)));
                return;
            }
        };
        info!("attach pools hear of new processes from the kernel's process events");
        if tx.send(Msg::Listener(Listener::Listening)).is_err() {
            return;
        }
        let mut batch = Vec::new();
        loop {
            batch.clear();
            if let Err(e) = events.next_batch(&mut batch).await {
                warn!(error = %e, "process events stopped: attach pools go back to scanning");
                let _ = tx.send(Msg::Listener(Listener::Unavailable(format!("process events stopped: {e}"))));
                return;
            }
            if batch.contains(&ProcEvent::Overflow) {
                debug!("process events were lost: scanning every attach pool");
                if tx.send(Msg::Listener(Listener::Overflowed)).is_err() {
                    return;
                }
            }
            let pids: BTreeSet<u32> = batch
                .iter()
                .filter_map(|e| match e {
                    ProcEvent::Exec { pid } | ProcEvent::Comm { pid } => Some(*pid),
                    ProcEvent::Overflow => None,
                })
                .collect();
            if pids.is_empty() {
                continue;
            }
            let m = matchers.clone();
            let Ok(appeared) = tokio::task::spawn_blocking(move || matching(&m, &pids)).await else { return };
            for (pool, found) in appeared {
                if tx.send(Msg::Observe(Input::Appeared { pool, found })).is_err() {
                    return;
                }
            }
        }
    });
}

/// For each pool, the processes among `pids` its matcher accepts. Tend itself and its own children (the
/// spawned workers, which the fleet learns of from the supervisor) are never candidates: an exec'd
/// worker is heard of before its spawn is reported.
fn matching(
    matchers: &[(String, Matcher)],
    pids: &BTreeSet<u32>,
) -> Vec<(String, Vec<(tend_core::model::ProcessId, String)>)> {
    let me = std::process::id();
    matchers
        .iter()
        .filter_map(|(pool, matcher)| {
            let found: Vec<_> = pids
                .iter()
                .filter(|&&pid| pid != me)
                .filter_map(|&pid| tend_collect::discover::inspect(pid, matcher))
                .filter(|f| f.parent != me)
                .map(|f| (f.id, f.name))
                .collect();
            (!found.is_empty()).then(|| (pool.clone(), found))
        })
        .collect()
}
