//! The event stream both shells serve (SSE over HTTP, a channel over IPC): what is still in memory
//! after `since`, then every live event, in order and without duplicates; a subscriber that falls
//! behind is told how many it missed and continues from the newest.

use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use tend_api as api;

use super::{App, AppError};
use crate::dto::ToWire;

/// One item of the stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Streamed {
    Event(Box<api::Event>),
    /// The subscriber fell behind the live events: this many were skipped.
    Lagged(u64),
}

impl App {
    /// Events after `since` still in memory (none without `since`), then live ones. The stream ends
    /// when the engine stops; a consumer that goes away stops its feeder at the next event.
    pub async fn event_stream(
        &self,
        since: Option<u64>,
    ) -> Result<impl Stream<Item = Streamed> + use<>, AppError> {
        // Subscribe before reading the backlog so nothing falls between the two.
        let mut rx = self.subscribe();
        let backlog = match since {
            Some(since) => self.events_since(since, None).await?,
            None => Vec::new(),
        };
        let (tx, out) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut sent = since.unwrap_or(0);
            for ev in backlog {
                sent = ev.seq;
                if tx.send(Streamed::Event(Box::new(ev))).await.is_err() {
                    return;
                }
            }
            loop {
                let item = match rx.recv().await {
                    Ok(ev) if ev.seq <= sent => continue,
                    Ok(ev) => {
                        sent = ev.seq;
                        Streamed::Event(Box::new(ev.wire()))
                    }
                    Err(RecvError::Lagged(n)) => Streamed::Lagged(n),
                    Err(RecvError::Closed) => return,
                };
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        });
        Ok(ReceiverStream::new(out))
    }
}
