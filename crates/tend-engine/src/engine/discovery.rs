//! When attach pools scan: the engine's side of discovery. With the kernel's process events new
//! processes arrive as they exec, and full passes are a safety net every `rescan_every`; without them
//! (no CAP_NET_ADMIN, a PID namespace, `mode = "scan"`) passes run every `scan_every`. Lost events
//! make a pass of every pool due at once. What is in force is what `/api/v1/health` shows.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tend_api::{DiscoveryDto, DiscoveryMode as WireMode};
use tracing::warn;

use crate::config::{DiscoveryConfig, DiscoveryMode};
use crate::convert::Runtimes;
use crate::mailbox::{Listener, Mailbox};
use crate::sources::discovery as source;

pub(super) struct Discovery {
    cfg: DiscoveryConfig,
    /// Whether the kernel's events are heard, and why not.
    listening: Result<bool, String>,
    next: HashMap<String, Instant>,
    in_flight: HashSet<String>,
    /// What `/api/v1/health` shows, remade when `listening` changes (None: no attach pool).
    shown: Option<DiscoveryDto>,
}

impl Discovery {
    /// Starts the listener when the config allows it and some pool attaches.
    pub(super) fn start(cfg: DiscoveryConfig, pools: &Runtimes, tx: &Mailbox) -> Discovery {
        let matchers: Vec<_> =
            pools.iter().filter_map(|(name, rt)| Some((name.clone(), rt.matcher.clone()?))).collect();
        let idle = matchers.is_empty();
        let listening = match cfg.mode {
            DiscoveryMode::Scan => Err("scans chosen in the config ([discovery] mode = \"scan\")".to_owned()),
            DiscoveryMode::Auto if idle => Err("no attach pool".to_owned()),
            DiscoveryMode::Auto => {
                source::listen(matchers, tx.clone());
                // Until the listener answers, passes keep the scan cadence.
                Ok(false)
            }
        };
        let mut d =
            Discovery { cfg, listening, next: HashMap::new(), in_flight: HashSet::new(), shown: None };
        if !idle {
            d.shown = Some(d.describe());
        }
        d
    }

    /// The cadence of full passes now.
    fn every(&self) -> Duration {
        if self.listening == Ok(true) { self.cfg.rescan_every } else { self.cfg.scan_every }
    }

    /// Whether `pool`'s pass is due at `now`; if so it is marked in flight and the next one scheduled.
    pub(super) fn due(&mut self, pool: &str, now: Instant) -> bool {
        if self.next.get(pool).is_some_and(|t| *t > now) || self.in_flight.contains(pool) {
            return false;
        }
        self.next.insert(pool.to_owned(), now + self.every());
        self.in_flight.insert(pool.to_owned());
        true
    }

    /// A pass of `pool` reported back.
    pub(super) fn done(&mut self, pool: &str) {
        self.in_flight.remove(pool);
    }

    pub(super) fn on_listener(&mut self, msg: Listener, now: Instant) {
        match msg {
            Listener::Listening => {
                self.listening = Ok(true);
                // Passes already scheduled move to the safety-net cadence.
                let every = self.cfg.rescan_every;
                self.next.values_mut().for_each(|t| *t = (*t).max(now + every));
            }
            Listener::Unavailable(why) => {
                if self.listening == Ok(true) {
                    warn!(reason = %why, "attach pools go back to scanning");
                }
                self.listening = Err(why);
                let every = self.cfg.scan_every;
                self.next.values_mut().for_each(|t| *t = (*t).min(now + every));
            }
            Listener::Overflowed => self.next.values_mut().for_each(|t| *t = now),
        }
        if self.shown.is_some() {
            self.shown = Some(self.describe());
        }
    }

    /// What `/api/v1/health` says of it (None without attach pools).
    pub(super) fn wire(&self) -> Option<&DiscoveryDto> {
        self.shown.as_ref()
    }

    fn describe(&self) -> DiscoveryDto {
        let every_secs = self.every().as_secs_f64();
        match &self.listening {
            Ok(true) => DiscoveryDto {
                mode: WireMode::Events,
                every_secs,
                detail: "the kernel's process events; a full scan every rescan_every".into(),
            },
            Ok(false) => DiscoveryDto {
                mode: WireMode::Scan,
                every_secs,
                detail: "starting to listen to the kernel's process events".into(),
            },
            Err(why) => DiscoveryDto { mode: WireMode::Scan, every_secs, detail: why.clone() },
        }
    }
}
