//! A minimal HTTP/1.1 client over one kept-alive loopback connection: GET and POST with
//! `Content-Length` or chunked answers. Small on purpose, so a latency figure is the server's and
//! not a client library's (no runtime, no pool, one syscall to send).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, bail};

pub struct Http {
    /// `127.0.0.1:PORT`
    addr: String,
    conn: Option<BufReader<TcpStream>>,
    accept: &'static str,
}

/// Prometheus 2.x/3.x's scrape `Accept` header.
pub const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Http {
    /// `base` is `http://127.0.0.1:PORT` as Tend prints it; only loopback addresses are accepted.
    pub fn new(base: &str) -> anyhow::Result<Http> {
        let addr = base.trim_start_matches("http://").trim_end_matches('/').to_owned();
        if !(addr.starts_with("127.") || addr.starts_with("[::1]") || addr.starts_with("localhost:")) {
            bail!("the bench only talks to loopback, not {addr}");
        }
        Ok(Http { addr, conn: None, accept: "*/*" })
    }

    pub fn get(&mut self, path: &str) -> anyhow::Result<Response> {
        self.request("GET", path, None)
    }

    /// GET with the `Accept` header a Prometheus server sends (it negotiates OpenMetrics first).
    pub fn scrape(&mut self, path: &str) -> anyhow::Result<Response> {
        self.accept = PROMETHEUS_ACCEPT;
        let r = self.request("GET", path, None);
        self.accept = "*/*";
        r
    }

    pub fn post_json(&mut self, path: &str, body: &str) -> anyhow::Result<Response> {
        self.request("POST", path, Some(body))
    }

    /// One request; a connection the server closed in between is reopened once.
    fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<Response> {
        match self.try_request(method, path, body) {
            Ok(r) => Ok(r),
            Err(_) => {
                self.conn = None;
                self.try_request(method, path, body)
            }
        }
    }

    fn try_request(&mut self, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<Response> {
        if self.conn.is_none() {
            let s = TcpStream::connect(&self.addr).with_context(|| format!("connect {}", self.addr))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            self.conn = Some(BufReader::with_capacity(64 * 1024, s));
        }
        let conn = self.conn.as_mut().context("connection")?;
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: {}\r\n", self.addr, self.accept);
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            ));
        } else {
            req.push_str("\r\n");
        }
        conn.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        conn.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            if conn.read_line(&mut line)? == 0 {
                bail!("connection closed in the headers");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let Some((k, v)) = l.split_once(':') else { continue };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            match k.as_str() {
                "content-length" => length = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.contains("chunked"),
                "connection" => close = v == "close",
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                conn.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .with_context(|| format!("bad chunk size {line:?}"))?;
                let start = body.len();
                body.resize(start + size + 2, 0);
                conn.read_exact(&mut body[start..])?;
                body.truncate(start + size);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            conn.read_exact(&mut body)?;
        } else {
            conn.read_to_end(&mut body)?;
            close = true;
        }
        if close {
            self.conn = None;
        }
        Ok(Response { status, body })
    }
}
