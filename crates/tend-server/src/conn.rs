//! The HTTP server's connections: Tend's own accept loop over hyper's HTTP/1 connections, because
//! `axum::serve` has no header-read timeout, no idle timeout and no cap on open connections, so idle
//! sockets could pile up until the process ran out of descriptors. This module owns how long a
//! connection may take to send a request head, how long it may sit idle, and how many may be open; it
//! never looks at what a request asks for (that is the router's).
//!
//! A connection is always in one of three phases:
//! - *head*: waiting for a request head, or reading one. Closed when the head is not complete within
//!   [`Limits::header_timeout`], counted from the accept, or from the first byte after an idle pause.
//! - *busy*: answering a request, from its parsed head to the last byte of its response body. A
//!   Server-Sent Events stream is busy for as long as it streams: no timeout of this module closes it.
//! - *idle*: kept alive between requests; closed after [`Limits::idle_timeout`].
//!
//! At [`Limits::max_connections`] a new connection first closes the one that has been waiting (head or
//! idle) the longest, so a new client such as a health probe is still served; when every open
//! connection is busy, the new one is closed at once and a warning is logged.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// A request head must be complete this long after the accept (or after its first byte).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A kept-alive connection with no request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Open connections at most, unless a quarter of the descriptor limit is lower.
pub const MAX_CONNECTIONS: usize = 1024;
/// The floor of the derived cap, however low the descriptor limit.
const MIN_CONNECTIONS: usize = 16;
/// On shutdown, connections still answering (an event stream) get this long before they are dropped.
const GRACE: Duration = Duration::from_secs(5);
/// hyper's read buffer per connection, at most: a request head must fit (bodies stream through it).
const MAX_BUF: usize = 64 * 1024;

/// The limits of the HTTP server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The defaults, each overridable through the environment: `TEND_HTTP_HEADER_TIMEOUT_MS`,
    /// `TEND_HTTP_IDLE_TIMEOUT_MS`, `TEND_HTTP_MAX_CONNECTIONS`. Without an override the cap is
    /// [`MAX_CONNECTIONS`], or a quarter of `nofile` (the descriptor limit) when that is lower: the rest
    /// is for the sampler, the database and the workers' pipes. A value that is not a whole number
    /// above 0 is an error naming the variable.
    pub fn from_env(var: impl Fn(&str) -> Option<String>, nofile: Option<u64>) -> Result<Limits, String> {
        let number = |name: &str| -> Result<Option<u64>, String> {
            let Some(v) = var(name) else { return Ok(None) };
            match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(format!("{name}={v:?}: expected a whole number above 0")),
            }
        };
        let derived = nofile.map_or(MAX_CONNECTIONS, |n| {
            usize::try_from(n / 4).unwrap_or(usize::MAX).clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
        });
        let ms = |name: &str, default: Duration| {
            Ok::<_, String>(number(name)?.map_or(default, Duration::from_millis))
        };
        Ok(Limits {
            header_timeout: ms("TEND_HTTP_HEADER_TIMEOUT_MS", HEADER_TIMEOUT)?,
            idle_timeout: ms("TEND_HTTP_IDLE_TIMEOUT_MS", IDLE_TIMEOUT)?,
            max_connections: number("TEND_HTTP_MAX_CONNECTIONS")?
                .map_or(derived, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        })
    }
}

/// Serve `router` on `listener` within `limits` until `shutdown` resolves; then stop accepting, let
/// the connections finish their answers for up to [`GRACE`], and drop what is left.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let registry = Arc::new(Registry::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    let mut warned: Option<Instant> = None;
    let mut warn = |what: &str, error: Option<&io::Error>| {
        if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            warned = Some(Instant::now());
            tracing::warn!(max_connections = limits.max_connections, error = ?error, "{what}");
        }
    };
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if registry.len() >= limits.max_connections && !registry.close_longest_waiting() {
                        warn("HTTP connection refused: every allowed connection is answering a request", None);
                        continue;
                    }
                    let (slot, entry) = registry.add();
                    let conn = Conn { peer, slot, _entry: entry, router: router.clone(), limits, stop: stop_rx.clone() };
                    tasks.spawn(conn.run(stream, tls.clone()));
                }
                // The peer gave up before the accept: nothing to do.
                Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) => {}
                // Out of descriptors or memory: free a waiting connection and retry, else pause.
                Err(e) => {
                    warn("cannot accept an HTTP connection", Some(&e));
                    let pause = if registry.close_longest_waiting() { 10 } else { 100 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(GRACE, async { while tasks.join_next().await.is_some() {} }).await;
}

/// One connection: hyper serves it while this task closes it when its phase's time is up, when the
/// acceptor needs its place, or (gracefully) on shutdown.
struct Conn {
    peer: SocketAddr,
    slot: Arc<Slot>,
    _entry: Entry,
    router: Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
}

impl Conn {
    /// With TLS, the handshake comes first: it must be done within the header timeout, like a head.
    async fn run(mut self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        let Some(acceptor) = tls else { return self.http(stream).await };
        let handshake = tokio::time::timeout(self.limits.header_timeout, acceptor.accept(stream));
        let stream = tokio::select! {
            done = handshake => match done {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                    return;
                }
            },
            () = self.slot.kill.notified() => return,
            _ = self.stop.changed() => return,
        };
        self.http(stream).await
    }

    async fn http<IO>(self, stream: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Conn { peer, slot, _entry, router, limits, mut stop } = self;
        let io = TokioIo::new(Watched { io: stream, slot: slot.clone() });
        let service_slot = slot.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let busy = Busy::begin(service_slot.clone());
            let mut router = router.clone();
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            async move {
                let res = match tower_service::Service::call(&mut router, req).await {
                    Ok(res) => res,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(res.map(|body| Tracked { body, _busy: busy }))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.max_buf_size(MAX_BUF).header_read_timeout(None::<Duration>);
        let mut conn = pin!(builder.serve_connection(io, service));
        let mut draining = false;
        loop {
            let due = slot.deadline(&limits);
            let timer = async move {
                match due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                    return;
                }
                () = slot.kill.notified() => {
                    tracing::debug!("HTTP connection closed: its place is needed (connection cap)");
                    return;
                }
                () = slot.wake.notified() => {}
                () = timer => {
                    if slot.deadline(&limits).is_some_and(|at| at <= Instant::now()) {
                        tracing::debug!(phase = slot.phase_name(), "HTTP connection closed: timed out");
                        return;
                    }
                }
                _ = stop.changed(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// What the acceptor and a connection's parts share about it.
struct Slot {
    state: Mutex<Phase>,
    /// The phase changed: the connection task recomputes its deadline.
    wake: Notify,
    /// The acceptor closes this connection to make room.
    kill: Notify,
}

#[derive(Clone, Copy)]
struct Phase {
    /// Requests being answered (at most one on HTTP/1; a count keeps the guard simple).
    busy: u32,
    /// At least one answer was sent: from now on a quiet connection is idle, not late with a head.
    served: bool,
    /// Bytes of a new request head arrived after an idle pause.
    head_started: bool,
    /// When the current phase began.
    since: Instant,
}

impl Slot {
    fn new() -> Slot {
        let phase = Phase { busy: 0, served: false, head_started: false, since: Instant::now() };
        Slot { state: Mutex::new(phase), wake: Notify::new(), kill: Notify::new() }
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the connection is to be closed, or `None` while it answers a request.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let p = *self.lock();
        let idle = p.served && !p.head_started;
        (p.busy == 0).then(|| p.since + if idle { limits.idle_timeout } else { limits.header_timeout })
    }

    /// Since when the connection has waited for a request (head or idle phase); `None` while busy.
    fn waiting_since(&self) -> Option<Instant> {
        let p = *self.lock();
        (p.busy == 0).then_some(p.since)
    }

    fn phase_name(&self) -> &'static str {
        let p = *self.lock();
        match (p.busy > 0, p.served && !p.head_started) {
            (true, _) => "busy",
            (false, true) => "idle",
            (false, false) => "head",
        }
    }

    fn update(&self, f: impl FnOnce(&mut Phase) -> bool) {
        let changed = f(&mut self.lock());
        if changed {
            self.wake.notify_one();
        }
    }

    fn bytes_arrived(&self) {
        self.update(|p| {
            let starts = p.busy == 0 && p.served && !p.head_started;
            if starts {
                p.head_started = true;
                p.since = Instant::now();
            }
            starts
        });
    }
}

/// A request being answered: created when hyper hands over a parsed head, dropped with the response
/// body (after its last byte, or when the connection goes away).
struct Busy(Arc<Slot>);

impl Busy {
    fn begin(slot: Arc<Slot>) -> Busy {
        slot.update(|p| {
            p.busy += 1;
            true
        });
        Busy(slot)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.update(|p| {
            p.busy = p.busy.saturating_sub(1);
            if p.busy == 0 {
                p.served = true;
                p.head_started = false;
                p.since = Instant::now();
            }
            true
        });
    }
}

/// The response body, carrying the [`Busy`] guard of its request until hyper drops it.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket (or the TLS stream over it), telling its slot when bytes of a new request arrive after
/// an idle pause.
struct Watched<IO> {
    io: IO,
    slot: Arc<Slot>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.slot.bytes_arrived();
        }
        read
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The open connections, for the cap.
#[derive(Default)]
struct Registry {
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    next: AtomicU64,
}

/// A connection's place in the registry, given back when its task ends.
struct Entry {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(self: &Arc<Self>) -> (Arc<Slot>, Entry) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::new());
        self.lock().insert(id, slot.clone());
        (slot, Entry { registry: self.clone(), id })
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Close the connection that has waited longest for a request, and give up its place at once.
    /// `false` when every open connection is answering one.
    fn close_longest_waiting(&self) -> bool {
        let mut slots = self.lock();
        let longest = slots.iter().filter_map(|(id, s)| s.waiting_since().map(|t| (t, *id))).min();
        let Some(slot) = longest.and_then(|(_, id)| slots.remove(&id)) else { return false };
        slot.kill.notify_one();
        true
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
