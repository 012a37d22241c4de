//! Scraping workers' own `/metrics` pages, off the engine task: one task per pool with a `metrics_url`
//! fetches every live worker's page each interval and pushes the parsed numbers into the mailbox. The
//! engine keeps the latest of each worker until its next sweep of the pool merges them into the sample
//! (custom metrics, request count), so a slow or dead endpoint never delays a sweep and a scrape never
//! becomes a decision by itself.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{debug, warn};

use tend_collect::scrape::{self, Scraped};
use tend_core::model::WorkerId;

use crate::convert::{PoolRuntime, Runtimes, ScrapeConfig};
use crate::mailbox::{EngineView, Mailbox, Msg};

/// How long one page may take; a scrape that is slower is dropped and retried next interval.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Start one scraping task for every pool that has a `metrics_url`.
pub(crate) fn start(pools: &Runtimes, tx: Mailbox) {
    for rt in pools.values() {
        if let Some(cfg) = rt.scrape.clone() {
            tokio::spawn(run(rt.clone(), cfg, tx.clone()));
        }
    }
}

async fn run(rt: Arc<PoolRuntime>, cfg: ScrapeConfig, tx: Mailbox) {
    let pool = rt.spec.name.clone();
    let every = rt.spec.interval.unwrap_or(Duration::from_secs(10));
    let client = match crate::http_client::builder().timeout(SCRAPE_TIMEOUT).build() {
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
        let readings = results
            .into_iter()
            .map(|(worker, n, url, result)| {
                let reading = match result {
                    Ok(s) => Some(s),
                    Err(e) => {
                        debug!(pool = %pool, worker = %worker, url = %url, error = %e, "scrape failed");
                        None
                    }
                };
                (worker, n, reading)
            })
            .collect();
        if tx.send(Msg::Scraped { readings }).is_err() {
            return;
        }
    }
}

/// Live workers of the pool with their slot, asked of the engine task. None when it has stopped.
async fn targets(tx: &Mailbox, pool: &str) -> Option<Vec<(WorkerId, u32, u32)>> {
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
