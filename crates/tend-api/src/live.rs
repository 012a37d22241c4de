//! The live feed a window of the desktop app gets instead of polling: once a second, what the screen
//! in view needs, as changes since the last update. The UI says which screen is in view (`LiveScope`);
//! a hidden window gets nothing until it is shown again, then one `full` update catches it up.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::alert::Alert;
use crate::model::Timestamp;
use crate::status::HealthDto;
use crate::worker::{PoolMetrics, WorkerDto};

/// What the window shows, so the feed carries only the changes that screen draws.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "view", rename_all = "lowercase")]
pub enum LiveScope {
    /// Screens that draw no per-worker numbers (Overview, Alerts, Recycles, Export, Settings): a worker
    /// is sent when it comes, goes, or changes state, incarnation, hold or recycle; not for new samples.
    Summary,
    /// Screens that draw every worker's numbers (Workers, Compare): every worker that changed.
    Workers,
    /// One worker's page: that worker on every change, the others as in `Summary`.
    Worker { id: String },
    /// The window is hidden or minimized: nothing is sent; showing it again sends one full update.
    Hidden,
}

/// One update of the live feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS)]
pub struct LiveUpdate {
    pub at: Timestamp,
    /// True: `workers` is the whole fleet and `alerts` is set; the receiver replaces what it holds.
    /// False: `workers` holds only the ones added or changed, `removed` the ones gone.
    pub full: bool,
    pub health: HealthDto,
    /// Every pool's aggregates (one short row per pool).
    pub pools: Vec<PoolMetrics>,
    pub workers: Vec<WorkerDto>,
    pub removed: Vec<String>,
    /// Every alert, in full updates only (between them, alert changes come as events).
    pub alerts: Option<Vec<Alert>>,
}
