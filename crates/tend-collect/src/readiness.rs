//! Readiness probes: is a starting worker ready to serve? Alive for a while, a TCP port open, an HTTP
//! endpoint answering 2xx, or a log line matching a pattern.
//!
//! This module owns the probing. It must never decide what a failed probe means (the supervisor and
//! `tend-core` do: FAILED, TIMEOUT, retry) and never reach beyond the address it is given. Probes retry
//! every [`RETRY_INTERVAL`] until they pass; [`wait_ready`] has no deadline of its own, so the caller
//! wraps it in one (or uses [`wait_ready_within`], which also says what the last attempt saw) and drops
//! it when the worker exits.
//!
//! How log lines reach a [`Probe::LogLine`]: [`crate::spawn::spawn`] sends every line to one unbounded
//! channel whose single consumer is the supervisor (it counts lines, errors and warnings and keeps
//! the tail). While a worker with a log-line probe is initializing, the supervisor also forwards each
//! line's text into a second unbounded channel, whose receiver is handed to [`wait_ready`], and drops
//! that sender once the worker is ready or failed, which ends the copying. Not a broadcast channel:
//! broadcast drops lines for a receiver that falls behind (`Lagged`), and the line that proves
//! readiness must not be the one lost. Not a second sender inside `spawn`: spawning stays ignorant of
//! lifecycle states, and lines are counted in exactly one place.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use regex::Regex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

/// Pause between two attempts (and between two liveness checks).
pub const RETRY_INTERVAL: Duration = Duration::from_millis(100);

/// One attempt (connect, or connect + request + status line) may take this long before it counts
/// as failed and the next one starts.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// An HTTP status line longer than this is not an HTTP server talking.
const MAX_STATUS_LINE: u64 = 8 * 1024;

/// What "ready" means for a pool's workers.
#[derive(Clone, Debug)]
pub enum Probe {
    /// Still running this long after the probe started (Supervisor's `startsecs`).
    Alive(Duration),
    /// A TCP connection to this address succeeds.
    Tcp(SocketAddr),
    /// `GET` on this `http://host:port/path` URL answers 2xx. `https://` is refused.
    Http(String),
    /// The worker writes a line (stdout or stderr) that matches.
    LogLine(Regex),
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Alive(d) => write!(f, "alive for {d:?}"),
            Probe::Tcp(addr) => write!(f, "tcp {addr}"),
            Probe::Http(url) => write!(f, "http GET {url}"),
            Probe::LogLine(re) => write!(f, "log line /{re}/"),
        }
    }
}

/// Waits until `probe` passes. `Ok` says what passed ("tcp 127.0.0.1:9000 open"); `Err` says why it
/// can never pass: the worker exited (`is_alive` turned false), its output ended before the log
/// line, or the probe itself is invalid. `lines` carries the worker's output lines for a
/// [`Probe::LogLine`] (required there); other probes only drain it.
pub async fn wait_ready(
    probe: &Probe,
    lines: Option<&mut UnboundedReceiver<String>>,
    is_alive: impl Fn() -> bool,
) -> Result<String, String> {
    let mut last = None;
    run(probe, lines, &is_alive, &mut last).await
}

/// [`wait_ready`] with a deadline: when it passes, the error names the deadline and what the last
/// attempt saw ("not ready after 10s; last attempt: http GET … returned 503 Service Unavailable").
pub async fn wait_ready_within(
    probe: &Probe,
    within: Duration,
    lines: Option<&mut UnboundedReceiver<String>>,
    is_alive: impl Fn() -> bool,
) -> Result<String, String> {
    let mut last = None;
    match tokio::time::timeout(within, run(probe, lines, &is_alive, &mut last)).await {
        Ok(result) => result,
        Err(_) => Err(match last {
            Some(last) => format!("{probe}: not ready after {within:?}; last attempt: {last}"),
            None => format!("{probe}: not ready after {within:?}"),
        }),
    }
}

async fn run(
    probe: &Probe,
    mut lines: Option<&mut UnboundedReceiver<String>>,
    is_alive: &impl Fn() -> bool,
    last: &mut Option<String>,
) -> Result<String, String> {
    let exited = |last: &Option<String>| match last {
        Some(l) => format!("exited before ready ({probe}); last attempt: {l}"),
        None => format!("exited before ready ({probe})"),
    };
    match probe {
        Probe::LogLine(re) => {
            let Some(rx) = lines else {
                return Err(format!("{probe}: no output to watch"));
            };
            log_line(re, rx, is_alive).await
        }
        Probe::Alive(wanted) => {
            let start = Instant::now();
            loop {
                if !is_alive() {
                    return Err(format!("exited {:?} after start, before {probe}", start.elapsed()));
                }
                let elapsed = start.elapsed();
                if elapsed >= *wanted {
                    return Ok(probe.to_string());
                }
                drain(&mut lines);
                tokio::time::sleep(RETRY_INTERVAL.min(*wanted - elapsed)).await;
            }
        }
        Probe::Tcp(addr) => loop {
            if !is_alive() {
                return Err(exited(last));
            }
            match tokio::time::timeout(ATTEMPT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(_)) => return Ok(format!("tcp {addr} open")),
                Ok(Err(e)) => *last = Some(format!("tcp {addr}: {e}")),
                Err(_) => *last = Some(format!("tcp {addr}: no answer within {ATTEMPT_TIMEOUT:?}")),
            }
            drain(&mut lines);
            tokio::time::sleep(RETRY_INTERVAL).await;
        },
        Probe::Http(url) => {
            let target = HttpTarget::parse(url)?;
            loop {
                if !is_alive() {
                    return Err(exited(last));
                }
                match tokio::time::timeout(ATTEMPT_TIMEOUT, target.status()).await {
                    Ok(Ok((code, reason))) if (200..300).contains(&code) => {
                        return Ok(format!("http GET {url} returned {code} {reason}").trim_end().to_owned());
                    }
                    Ok(Ok((code, reason))) => {
                        *last =
                            Some(format!("http GET {url} returned {code} {reason}").trim_end().to_owned());
                    }
                    Ok(Err(e)) => *last = Some(format!("http GET {url}: {e}")),
                    Err(_) => *last = Some(format!("http GET {url}: no answer within {ATTEMPT_TIMEOUT:?}")),
                }
                drain(&mut lines);
                tokio::time::sleep(RETRY_INTERVAL).await;
            }
        }
    }
}

async fn log_line(
    re: &Regex,
    rx: &mut UnboundedReceiver<String>,
    is_alive: &impl Fn() -> bool,
) -> Result<String, String> {
    loop {
        tokio::select! {
            // Lines first: a worker that prints its ready line and exits right after still printed it.
            biased;
            line = rx.recv() => match line {
                Some(line) if re.is_match(&line) => {
                    return Ok(format!("log line matched /{re}/: {}", clip(&line, 200)));
                }
                Some(_) => {}
                None => return Err(format!("output ended before a line matched /{re}/")),
            },
            _ = tokio::time::sleep(RETRY_INTERVAL) => {
                if !is_alive() {
                    return Err(format!("exited before a line matched /{re}/"));
                }
            }
        }
    }
}

/// Lines are only needed by the log-line probe; others discard what was forwarded so it cannot pile up.
fn drain(lines: &mut Option<&mut UnboundedReceiver<String>>) {
    if let Some(rx) = lines {
        while rx.try_recv().is_ok() {}
    }
}

fn clip(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The parts of an `http://` URL a one-request client needs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HttpTarget {
    /// As written in the URL (brackets kept for IPv6), for the `Host` header.
    authority: String,
    /// Without brackets, for connecting.
    host: String,
    port: u16,
    /// Path and query, at least `/`.
    path: String,
}

impl HttpTarget {
    fn parse(url: &str) -> Result<HttpTarget, String> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(if url.starts_with("https://") {
                format!("{url:?}: https is not supported by the readiness probe; use an http:// URL")
            } else {
                format!("{url:?}: not an http://host:port/path URL")
            });
        };
        let rest = rest.split('#').next().unwrap_or(rest);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        let bad = |why: &str| format!("{url:?}: {why}");
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed [ in host"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
        };
        Ok(HttpTarget { authority: authority.to_owned(), host: host.to_owned(), port, path })
    }

    /// One `GET`; returns the status code and reason phrase.
    async fn status(&self) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tend-readiness\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.path, self.authority
        );
        stream.write_all(request.as_bytes()).await?;
        let mut line = Vec::new();
        BufReader::new(stream).take(MAX_STATUS_LINE).read_until(b'\n', &mut line).await?;
        parse_status_line(&String::from_utf8_lossy(&line)).ok_or_else(|| {
            let shown = clip(String::from_utf8_lossy(&line).trim_end(), 80).to_owned();
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not an HTTP response: {shown:?}"))
        })
    }
}

/// `HTTP/1.1 200 OK` → (200, "OK"). The reason phrase is optional (HTTP/1.1 allows it empty).
fn parse_status_line(line: &str) -> Option<(u16, String)> {
    let line = line.trim_end_matches(['\r', '\n']);
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    let code: u16 = code.parse().ok()?;
    Some((code, parts.next().unwrap_or("").to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_parse() {
        let t = HttpTarget::parse("http://127.0.0.1:9000/health?x=1#frag").unwrap();
        assert_eq!(
            t,
            HttpTarget {
                authority: "127.0.0.1:9000".into(),
                host: "127.0.0.1".into(),
                port: 9000,
                path: "/health?x=1".into()
            }
        );
        let t = HttpTarget::parse("http://localhost").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("localhost", 80, "/"));
        let t = HttpTarget::parse("http://[::1]:8080?ready").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("::1", 8080, "/?ready"));
        assert_eq!(t.authority, "[::1]:8080");
    }

    #[test]
    fn unsupported_urls_say_why() {
        assert!(HttpTarget::parse("https://x/").unwrap_err().contains("https is not supported"));
        assert!(HttpTarget::parse("ftp://x/").unwrap_err().contains("not an http://"));
        assert!(HttpTarget::parse("http://:80/").unwrap_err().contains("no host"));
        assert!(HttpTarget::parse("http://h:99999/").unwrap_err().contains("invalid port"));
        assert!(HttpTarget::parse("http://u:p@h/").unwrap_err().contains("credentials"));
        assert!(HttpTarget::parse("http://[::1/").unwrap_err().contains("unclosed"));
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status_line("HTTP/1.1 200 OK\r\n"), Some((200, "OK".into())));
        assert_eq!(
            parse_status_line("HTTP/1.0 503 Service Unavailable\r\n"),
            Some((503, "Service Unavailable".into()))
        );
        assert_eq!(parse_status_line("HTTP/1.1 204\r\n"), Some((204, String::new())));
        assert_eq!(parse_status_line("SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line("HTTP/1.1 20 OK\r\n"), None);
        assert_eq!(parse_status_line(""), None);
    }

    #[test]
    fn probes_describe_themselves() {
        assert_eq!(Probe::Alive(Duration::from_secs(2)).to_string(), "alive for 2s");
        assert_eq!(Probe::Tcp("127.0.0.1:9".parse().unwrap()).to_string(), "tcp 127.0.0.1:9");
        assert_eq!(Probe::LogLine(Regex::new("ready").unwrap()).to_string(), "log line /ready/");
    }

    #[tokio::test]
    async fn an_invalid_url_fails_at_once() {
        let err = wait_ready(&Probe::Http("https://127.0.0.1/".into()), None, || true).await.unwrap_err();
        assert!(err.contains("https"), "{err}");
    }

    #[tokio::test]
    async fn a_log_line_probe_without_output_fails_at_once() {
        let err = wait_ready(&Probe::LogLine(Regex::new("x").unwrap()), None, || true).await.unwrap_err();
        assert!(err.contains("no output"), "{err}");
    }
}
