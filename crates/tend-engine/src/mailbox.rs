//! The engine task's mailbox: the one way into the engine for the App facade and for every task that
//! runs beside it (the supervisor's, the docker source's, scraping, discovery). It owns the message
//! type and what a query sees; it holds no state and runs nothing. Sources and sinks know this module and
//! the runtime types (`convert`), never the engine loop itself, so data flows one way: into the mailbox.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use tend_collect::scrape::Scraped;
use tend_core::event::Event;
use tend_core::fleet::{CommandError, Fleet, Input, Report};
use tend_core::model::{Metrics, WorkerId};
use tend_core::time::Timestamp;

/// The sending side of the engine's mailbox; cheap to clone, never blocks.
pub(crate) type Mailbox = mpsc::UnboundedSender<Msg>;

pub(crate) type Query = Box<dyn FnOnce(&EngineView<'_>) + Send>;

/// What queries see: the fleet plus runtime figures.
pub struct EngineView<'a> {
    pub fleet: &'a Fleet,
    pub now: Timestamp,
    pub events: &'a VecDeque<Event>,
    pub self_usage: &'a crate::dto::SelfUsage,
    /// How long the last sampling sweep of each pool took.
    pub collection: &'a HashMap<String, Duration>,
    /// How attach pools find new processes (None without attach pools).
    pub discovery: Option<&'a tend_api::DiscoveryDto>,
}

/// What the listener for the kernel's process events says about itself.
#[derive(Clone, Debug)]
pub(crate) enum Listener {
    Listening,
    /// It cannot listen, or stopped: why.
    Unavailable(String),
    /// Events were lost: a full scan of every attach pool is due.
    Overflowed,
}

pub(crate) enum Msg {
    Observe(Input),
    Listener(Listener),
    Recycle {
        id: String,
        /// Who asks, for the audit trail.
        by: String,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    Stop {
        id: String,
        /// Who asks, for the audit trail.
        by: String,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    /// Remove a container worker.
    Remove {
        id: String,
        /// Who asks, for the audit trail.
        by: String,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    /// Remove every orphaned container now; replies with how many removals were started.
    CleanOrphans {
        by: String,
        reply: oneshot::Sender<usize>,
    },
    /// One stats sweep of a docker pool: metrics by container id.
    ContainerSamples {
        pool: String,
        readings: Vec<(String, Metrics)>,
    },
    /// One scrape round of a pool's `/metrics` pages: for each incarnation, what its page said, or None
    /// when the scrape failed (an older reading of that worker is then dropped, not used).
    Scraped {
        readings: Vec<(WorkerId, u32, Option<Scraped>)>,
    },
    Ack {
        rule: String,
        subject: String,
        by: String,
        reply: oneshot::Sender<bool>,
    },
    Silence {
        rule: String,
        subject: String,
        until: Option<Timestamp>,
        by: String,
        reply: oneshot::Sender<bool>,
    },
    /// Events an agent of this hub sent (worker ids already `<id>@<host>`), for the sinks.
    Relay(Vec<tend_core::Event>),
    /// An action taken elsewhere (forwarded to an agent), for this Tend's audit trail.
    Audit {
        by: String,
        action: String,
        target: String,
        detail: String,
    },
    Query(Query),
    Report {
        report: Report,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}
