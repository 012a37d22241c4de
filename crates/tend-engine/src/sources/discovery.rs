//! Discovery passes of attach pools: a scan of the process table for the pool's matcher, off the async
//! threads, reported through the mailbox as `Input::Discovered`. The engine decides when a pass is due
//! (at most one in flight per pool) and what the fleet makes of what is found.

use tend_collect::discover::Matcher;
use tend_core::fleet::Input;

use crate::mailbox::{Mailbox, Msg};

/// One pass for `pool` in a blocking task; processes in `exclude` (owned ones, Tend itself) are skipped.
pub(crate) fn start(pool: String, matcher: Matcher, exclude: Vec<u32>, tx: Mailbox) {
    tokio::task::spawn_blocking(move || {
        let found =
            tend_collect::discover::find(&matcher, &exclude).into_iter().map(|f| (f.id, f.name)).collect();
        let _ = tx.send(Msg::Observe(Input::Discovered { pool, found }));
    });
}
