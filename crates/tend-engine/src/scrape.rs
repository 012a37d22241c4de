//! Scraping workers' own `/metrics` pages, off the engine task: one task per pool with a `metrics_url`
//! fetches every live worker's page each interval and leaves the parsed numbers in a cache. The engine's
//! next sweep of the pool merges them into its sample (custom metrics, request count), so a slow or dead
//! endpoint never delays a sweep and a scrape never becomes a decision by itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use tend_collect::scrape::{self, Scraped};
use tend_core::model::WorkerId;

use crate::config::substitute;
use crate::convert::PoolRuntime;
use crate::engine::{EngineView, Msg};

/// The latest scrape of each worker's serving incarnation.
pub type ScrapeCache = Arc<Mutex<HashMap<WorkerId, (u32, Scraped)>>>;

/// How long one page may take; a scrape that is slower is dropped and retried next interval.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a pool scrapes: its URL template and the counter that counts requests.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeConfig {
    /// May contain `$TEND_SLOT` and `$TEND_PORT`, replaced as in the worker's command.
    pub url: String,
    pub requests_metric: Option<String>,
    /// The pool's `port`: slot N's `$TEND_PORT` is this plus N.
    pub port: Option<u16>,
}

impl ScrapeConfig {
    pub fn url_for_slot(&self, slot: u32) -> String {
        let port = self.port.and_then(|p| u16::try_from(u32::from(p) + slot).ok());
        substitute(&self.url, slot, port)
    }
}

/// The numbers scraped for incarnation `n` of `worker` since the last sweep took them. Taking, not
/// reading: a sweep that finds no new scrape passes no request count, so an unchanged old count cannot
/// read as "idle" between two scrapes.
pub fn take_latest(cache: &ScrapeCache, worker: &WorkerId, n: u32) -> Option<Scraped> {
    let mut map = cache.lock().ok()?;
    match map.remove(worker) {
        Some((m, s)) if m == n => Some(s),
        _ => None,
    }
}

/// Start one scraping task for every pool that has a `metrics_url`.
pub(crate) fn start(pools: &crate::convert::Runtimes, tx: mpsc::UnboundedSender<Msg>, cache: ScrapeCache) {
    for rt in pools.values() {
        if let Some(cfg) = rt.scrape.clone() {
            tokio::spawn(run(rt.clone(), cfg, tx.clone(), cache.clone()));
        }
    }
}

async fn run(rt: Arc<PoolRuntime>, cfg: ScrapeConfig, tx: mpsc::UnboundedSender<Msg>, cache: ScrapeCache) {
    let pool = rt.spec.name.clone();
    let every = rt.spec.interval.unwrap_or(Duration::from_secs(10));
    let client = match reqwest::Client::builder().timeout(SCRAPE_TIMEOUT).no_proxy().build() {
        Ok(c) => c,
        Err(e) => {
            warn!(pool = %pool, error = %e, "cannot build the HTTP client for scraping; not scraping");
            return;
        }
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(targets) = targets(&tx, &pool).await else { return };
        let fetches = targets.into_iter().map(|(worker, n, slot)| {
            let url = cfg.url_for_slot(slot);
            let client = client.clone();
            let requests_metric = cfg.requests_metric.clone();
            async move {
                let result = fetch(&client, &url, requests_metric.as_deref()).await;
                (worker, n, url, result)
            }
        });
        let results = futures::future::join_all(fetches).await;
        let Ok(mut map) = cache.lock() else { return };
        for (worker, n, url, result) in results {
            match result {
                Ok(s) => {
                    map.insert(worker, (n, s));
                }
                Err(e) => {
                    debug!(pool = %pool, worker = %worker, url = %url, error = %e, "scrape failed");
                    map.remove(&worker);
                }
            }
        }
    }
}

/// Live workers of the pool with their slot, asked of the engine task. None when it has stopped.
async fn targets(tx: &mpsc::UnboundedSender<Msg>, pool: &str) -> Option<Vec<(WorkerId, u32, u32)>> {
    let (reply, rx) = oneshot::channel();
    let pool = pool.to_owned();
    let q = Box::new(move |v: &EngineView<'_>| {
        let list = v
            .fleet
            .watch_list(&pool)
            .into_iter()
            .filter_map(|(id, n, _)| {
                let slot = v.fleet.worker(id.as_str())?.slot?;
                Some((id, n, slot))
            })
            .collect();
        let _ = reply.send(list);
    });
    tx.send(Msg::Query(q)).ok()?;
    rx.await.ok()
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    requests_metric: Option<&str>,
) -> Result<Scraped, String> {
    let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let text = resp.text().await.map_err(|e| e.to_string())?;
    scrape::parse(&text, requests_metric)
}
