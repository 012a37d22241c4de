//! The HTTP client of one agent: HTTPS with the CA its `[[remote]]` names (or the system's roots),
//! its bearer token, a time limit on every call and a cap on every answer, and failures sorted into
//! what the Hosts screen says (unreachable, unauthorized, TLS, not a Tend agent).

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use tend_api::HostStatus;

use crate::config::RemoteConfig;

/// A call that takes longer than this counts as no answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest answer read from an agent (a listing of 5 000 workers is ~5 MB).
pub const MAX_ANSWER: usize = 32 * 1024 * 1024;
/// The most of an error answer read while opening a stream or an export.
const MAX_ERROR: usize = 64 * 1024;

/// Why a call to an agent failed, as the Hosts screen shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub status: HostStatus,
    pub detail: String,
    /// The agent's own error, when it answered with one (forwarded actions pass it on as is).
    pub api: Option<tend_api::ApiError>,
}

impl Failure {
    pub fn new(status: HostStatus, detail: impl Into<String>) -> Failure {
        Failure { status, detail: detail.into(), api: None }
    }
}

/// An event stream's silence after which the connection counts as dead (the agent sends a keep-alive
/// every 15 s).
pub const STREAM_SILENCE: Duration = Duration::from_secs(40);

#[derive(Clone)]
pub struct Agent {
    client: reqwest::Client,
    /// For the event stream: no limit on the whole call, one on each silence.
    streaming: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Agent {
    /// The client of `cfg`'s agent; an error names the CA file that could not be used.
    pub fn new(cfg: &RemoteConfig) -> Result<Agent, String> {
        let tls = cfg.ca.as_deref().map(trusting).transpose()?;
        let build = |b: reqwest::ClientBuilder| {
            let b = b.connect_timeout(CALL_TIMEOUT);
            let b = match &tls {
                Some(tls) => b.use_preconfigured_tls(tls.clone()),
                None => b,
            };
            b.build().map_err(|e| format!("cannot build the HTTP client: {e}"))
        };
        let client = build(crate::http_client::builder().timeout(CALL_TIMEOUT))?;
        let streaming = build(crate::http_client::builder().read_timeout(STREAM_SILENCE))?;
        Ok(Agent { client, streaming, url: cfg.url.clone(), token: cfg.token.clone() })
    }

    /// The agent's event stream (SSE), from after `since` when given (the agent replays what it still
    /// has in memory), else from now.
    pub async fn events(&self, since: Option<u64>) -> Result<reqwest::Response, Failure> {
        self.open("/api/v1/events", since).await
    }

    /// GET `path` for a body read as it comes (a stream, an export): no limit on the whole call, one
    /// on each silence. `last_event` goes as `Last-Event-ID`.
    pub async fn open(&self, path: &str, last_event: Option<u64>) -> Result<reqwest::Response, Failure> {
        let mut req = self.streaming.get(format!("{}{path}", self.url));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(s) = last_event {
            req = req.header("last-event-id", s.to_string());
        }
        let mut res = req.send().await.map_err(|e| self.sort(&e))?;
        let status = res.status();
        if !status.is_success() {
            // Its error is small; what a confused server sends beyond that is not read.
            let body = self.read(&mut res, path, MAX_ERROR).await.unwrap_or_default();
            let (api, detail) = refusal(path, status, &body);
            let kind = if token_refused(status) { HostStatus::Unauthorized } else { HostStatus::Degraded };
            return Err(Failure { status: kind, detail, api });
        }
        Ok(res)
    }

    /// GET `path` (like `/api/v1/workers`) as `T`, and how long the round trip took.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<(T, Duration), Failure> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// POST `path` with a JSON body (or none); the agent's answer as JSON.
    pub async fn post(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, Failure> {
        self.call(reqwest::Method::POST, path, body).await.map(|(v, _)| v)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(T, Duration), Failure> {
        let started = Instant::now();
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let mut res = req.send().await.map_err(|e| self.sort(&e))?;
        let status = res.status();
        let bytes = self.read(&mut res, path, MAX_ANSWER).await?;
        let rtt = started.elapsed();
        if !status.is_success() {
            let (api, detail) = refusal(path, status, &bytes);
            let kind = match api {
                _ if token_refused(status) => HostStatus::Unauthorized,
                // The agent answered, with an error of its own: the host is fine.
                Some(_) => HostStatus::Ok,
                None => HostStatus::Degraded,
            };
            return Err(Failure { status: kind, detail, api });
        }
        serde_json::from_slice(&bytes).map(|v| (v, rtt)).map_err(|e| {
            Failure::new(
                HostStatus::Degraded,
                format!("{path}: not a Tend agent's answer (invalid JSON: {e})"),
            )
        })
    }

    /// The body of `res`, at most `cap` bytes (more is a `degraded` failure).
    async fn read(&self, res: &mut reqwest::Response, path: &str, cap: usize) -> Result<Vec<u8>, Failure> {
        let mut bytes = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| self.sort(&e))? {
            if bytes.len() + chunk.len() > cap {
                let detail = format!("{path}: the answer is larger than {} MiB", cap >> 20);
                return Err(Failure::new(HostStatus::Degraded, detail));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// A transport failure, named the way an operator fixes it (also one while a body streams).
    pub fn sort(&self, e: &reqwest::Error) -> Failure {
        let chain = chain(e);
        let https = self.url.starts_with("https://");
        if e.is_timeout() {
            return Failure::new(
                HostStatus::Unreachable,
                format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
            );
        }
        if let Some(tls) = tls_cause(&chain) {
            let hint = if tls.contains("InvalidContentType") || tls.contains("corrupt message") {
                " (is the agent serving plain HTTP? then use an http:// url)"
            } else {
                ""
            };
            return Failure::new(HostStatus::TlsError, format!("TLS: {tls}{hint}"));
        }
        let confused = ["connection closed before message completed", "reset", "invalid HTTP", "Parse"];
        if !https && confused.iter().any(|c| chain.contains(c)) {
            return Failure::new(
                HostStatus::TlsError,
                "the agent closed the connection without an answer: if it serves HTTPS, use an https:// url",
            );
        }
        Failure::new(HostStatus::Unreachable, last_cause(e))
    }
}

/// The agent refused the token (or this address, after too many wrong ones).
fn token_refused(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 401 | 403 | 429)
}

/// What a non-2xx answer says: the agent's own error when its body is one, and the detail to show
/// (its message, else the status).
fn refusal(path: &str, status: reqwest::StatusCode, body: &[u8]) -> (Option<tend_api::ApiError>, String) {
    let api = serde_json::from_slice::<tend_api::ErrorResponse>(body).ok().map(|r| r.error);
    let said = api.as_ref().map_or_else(|| format!("HTTP {status}"), |e| e.message.clone());
    (api, format!("{path}: {said}"))
}

/// A TLS configuration that trusts the certificates of the PEM file `ca` (a private CA, or the
/// agent's self-signed certificate) and nothing else.
fn trusting(ca: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let shown = ca.display();
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("ca {shown}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("ca {shown}: no PEM certificate in it"));
    }
    for cert in certs {
        roots.add(cert).map_err(|e| format!("ca {shown}: {e}"))?;
    }
    crate::http_client::install_provider();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| format!("TLS: {e}"))
}

/// Every cause of `e`, innermost last, in one line (the outer one in its Debug form, which names
/// the kinds the Display forms leave out).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = format!("{e:?}");
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(" / ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The rustls error in a failure's causes, if TLS is what failed: the innermost cause that names it.
fn tls_cause(chain: &str) -> Option<String> {
    const SIGNS: [&str; 8] = [
        "invalid peer certificate",
        "InvalidCertificate",
        "UnknownIssuer",
        "Expired",
        "NotValidForName",
        "InvalidContentType",
        "received corrupt message",
        "HandshakeFailure",
    ];
    let sign = SIGNS.iter().find(|s| chain.contains(*s))?;
    let causes: Vec<&str> = chain.split(" / ").skip(1).collect();
    let readable = causes.iter().rev().find(|c| SIGNS.iter().any(|s| c.contains(s))).copied();
    Some(readable.unwrap_or(sign).trim().to_owned())
}

/// The innermost cause, which says what happened ("Connection refused (os error 111)").
fn last_cause(e: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}
