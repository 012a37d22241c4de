//! Who may do what: the bearer tokens the server accepts, the role each one has, and the brake on
//! guessing. Every request under `/api/v1` (but the health check) and `/metrics` passes through
//! [`check`]; the handlers of operator actions read the [`Caller`] it leaves on the request to name
//! the token in the audit trail.
//!
//! Roles: a `viewer` may GET anything (workers, history, events, `/metrics`); a `reporter` may use
//! only the report API (an orchestrator's registrations, states, metrics, errors, requests); an
//! `operator` may do everything. Without any token (a loopback-only server), every caller is an
//! operator named `anonymous`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use tend_engine::api::ErrorCode;
use tend_engine::config::{Role, ServerConfig};

use crate::{ApiError, Ctx};

/// Wrong tokens one address may send within [`WINDOW`] before it is refused for the rest of it
/// (`TEND_AUTH_MAX_FAILURES` overrides it: an HTTP fuzzer sends wrong tokens on purpose).
pub const MAX_FAILURES: u32 = 10;
/// The window of [`MAX_FAILURES`].
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; beyond, the oldest windows are forgotten first.
const MAX_TRACKED: usize = 10_000;
/// The name of every caller when the server has no token.
pub const ANONYMOUS: &str = "anonymous";

/// The caller of a request, once its token is known: the token's name and role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// Handlers take the caller as an argument; the middleware set it on every request it let through.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Response> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            let message = "this operation needs a token (no caller was identified)";
            ApiError::new(ErrorCode::Unauthorized, message).into_response()
        })
    }
}

struct Token {
    name: String,
    role: Role,
    secret: Vec<u8>,
}

/// The tokens and the failure counts by address.
pub struct Access {
    tokens: Vec<Token>,
    max_failures: u32,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Access {
    /// Every token of the server's config (named ones and the shared one); an empty list means
    /// no authentication (allowed only on loopback, see `Config::check_server`).
    pub fn new(server: &ServerConfig) -> Access {
        let tokens = server
            .access_tokens()
            .into_iter()
            .filter_map(|t| Some(Token { secret: t.secret?.into_bytes(), name: t.name, role: t.role }))
            .collect();
        Access { tokens, max_failures: MAX_FAILURES, failures: Mutex::new(HashMap::new()) }
    }

    /// Wrong tokens an address may send within a minute (at least 1).
    pub fn with_max_failures(mut self, n: u32) -> Access {
        self.max_failures = n.max(1);
        self
    }

    /// [`MAX_FAILURES`], or `TEND_AUTH_MAX_FAILURES` read through `var` (a whole number above 0).
    pub fn max_failures_from_env(var: impl Fn(&str) -> Option<String>) -> Result<u32, String> {
        const NAME: &str = "TEND_AUTH_MAX_FAILURES";
        match var(NAME) {
            None => Ok(MAX_FAILURES),
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{NAME}={v:?}: expected a whole number above 0")),
            },
        }
    }

    /// The caller that `given` (a bearer token) names, comparing every token in constant time.
    fn identify(&self, given: Option<&[u8]>) -> Option<Caller> {
        if self.tokens.is_empty() {
            return Some(Caller { name: ANONYMOUS.to_owned(), role: Role::Operator });
        }
        let given = given?;
        // Every secret is compared, so the time taken does not tell which one nearly matched.
        let mut found = None;
        for t in &self.tokens {
            if same_secret(given, &t.secret) && found.is_none() {
                found = Some(Caller { name: t.name.clone(), role: t.role });
            }
        }
        found
    }

    /// Seconds until `ip` may try again, when it has failed too often.
    fn blocked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let (since, n) = failures.get(&ip)?;
        let left = WINDOW.checked_sub(now.duration_since(*since)).filter(|d| !d.is_zero())?;
        (*n >= self.max_failures).then(|| left.as_secs().max(1))
    }

    fn failed(&self, ip: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
        }
        if failures.len() >= MAX_TRACKED
            && let Some(oldest) = failures.iter().min_by_key(|(_, (since, _))| *since).map(|(ip, _)| *ip)
        {
            failures.remove(&oldest);
        }
        let entry = failures.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 == self.max_failures {
            tracing::warn!(%ip, window = ?WINDOW, "too many failed token attempts: refusing this address for now");
        }
    }
}

/// May `role` do `method` on `path` (the route's pattern, like `/api/v1/workers/{id}/recycle`)?
pub fn allowed(role: Role, method: &Method, path: &str) -> bool {
    match role {
        Role::Operator => true,
        Role::Viewer => method == Method::GET || method == Method::HEAD,
        Role::Reporter => is_report(method, path),
    }
}

/// The report API: what an orchestrator uses to tell Tend about its workers.
fn is_report(method: &Method, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/v1/workers") else { return false };
    match *method {
        Method::POST => {
            rest.is_empty()
                || ["state", "metrics", "errors", "requests"]
                    .iter()
                    .any(|op| rest.strip_prefix("/{id}/").is_some_and(|r| r == *op))
        }
        Method::GET => rest == "/{id}/errors",
        _ => false,
    }
}

/// The middleware: who is calling, may they, and have they failed too often?
pub(crate) async fn check(State(ctx): State<Ctx>, mut req: Request, next: Next) -> Response {
    if req.uri().path() == "/api/v1/health" {
        return next.run(req).await;
    }
    let access = &ctx.access;
    let ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let now = Instant::now();
    if let Some(ip) = ip
        && let Some(wait) = access.blocked(ip, now)
    {
        let message = format!("too many failed token attempts from {ip}: try again in {wait} s");
        let mut res = ApiError::new(ErrorCode::TooManyAttempts, message).into_response();
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return res;
    }
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| bearer(v.as_bytes()));
    let Some(caller) = access.identify(given) else {
        // A wrong token is a guess; a request without one (a browser before its token is entered) is not.
        if let (Some(ip), Some(_)) = (ip, given) {
            access.failed(ip, now);
        }
        return ApiError::new(ErrorCode::Unauthorized, "missing or wrong bearer token").into_response();
    };
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
    if !allowed(caller.role, req.method(), &path) {
        let shown = path.strip_prefix("/api/v1").filter(|p| p.starts_with('/')).unwrap_or(&path);
        let needs = if is_report(req.method(), &path) { "reporter or operator" } else { "operator" };
        let message = format!(
            "token \"{}\" is a {}: {} {shown} needs the {needs} role",
            caller.name,
            caller.role.as_str(),
            req.method()
        );
        return ApiError::new(ErrorCode::Forbidden, message).into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The credentials of an `Authorization: Bearer <token>` header. The scheme is case-insensitive (RFC
/// 7235): `bearer`, `BEARER` and `Bearer` are the same.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Equal secrets, compared in time that does not depend on where they differ (only on the length).
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && std::hint::black_box(given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b))) == 0
}

/// A shareable [`Access`].
pub type SharedAccess = Arc<Access>;

#[cfg(test)]
mod tests {
    use super::*;
    use tend_engine::config::TokenConfig;

    fn token(name: &str, role: Role, secret: &str) -> TokenConfig {
        TokenConfig { name: name.into(), role, secret: Some(secret.into()), secret_env: None }
    }

    fn access() -> Access {
        let server = ServerConfig {
            token: Some("shared-secret".into()),
            tokens: vec![
                token("ops", Role::Operator, "ops-secret-0123456789"),
                token("wall", Role::Viewer, "wall-secret-0123456789"),
                token("ci", Role::Reporter, "ci-secret-01234567890"),
            ],
            ..ServerConfig::default()
        };
        Access::new(&server)
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for h in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR   abc  "] {
            assert_eq!(bearer(h.as_bytes()), Some(&b"abc"[..]), "{h:?}");
        }
        for h in ["Basic abc", "Bearerabc", "Bearer ", "Bearer", "abc", "Bearers abc"] {
            assert_eq!(bearer(h.as_bytes()), None, "{h:?}");
        }
    }

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3creT", b"s3cret"));
        assert!(!same_secret(b"s3cret-", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
    }

    #[test]
    fn each_token_is_known_by_its_name_and_role() {
        let a = access();
        let who = |s: &str| a.identify(Some(s.as_bytes())).map(|c| (c.name, c.role));
        assert_eq!(who("ops-secret-0123456789"), Some(("ops".into(), Role::Operator)));
        assert_eq!(who("wall-secret-0123456789"), Some(("wall".into(), Role::Viewer)));
        assert_eq!(who("ci-secret-01234567890"), Some(("ci".into(), Role::Reporter)));
        assert_eq!(who("shared-secret"), Some(("default".into(), Role::Operator)));
        assert_eq!(who("ops-secret-012345678"), None);
        assert_eq!(a.identify(None), None);
        let open = Access::new(&ServerConfig::default());
        assert_eq!(open.identify(None), Some(Caller { name: ANONYMOUS.into(), role: Role::Operator }));
    }

    #[test]
    fn roles_allow_what_they_name() {
        let get = Method::GET;
        let post = Method::POST;
        let recycle = "/api/v1/workers/{id}/recycle";
        assert!(allowed(Role::Viewer, &get, "/api/v1/workers"));
        assert!(allowed(Role::Viewer, &get, "/metrics"));
        assert!(allowed(Role::Viewer, &get, "/api/v1/events"));
        assert!(!allowed(Role::Viewer, &post, recycle));
        assert!(!allowed(Role::Viewer, &post, "/api/v1/alerts/ack"));
        assert!(!allowed(Role::Viewer, &post, "/api/v1/workers"));
        assert!(allowed(Role::Operator, &post, recycle));
        assert!(allowed(Role::Operator, &post, "/api/v1/workers/{id}/state"));
        for p in ["/api/v1/workers/{id}/state", "/api/v1/workers/{id}/metrics", "/api/v1/workers/{id}/errors"]
        {
            assert!(allowed(Role::Reporter, &post, p), "{p}");
        }
        assert!(allowed(Role::Reporter, &post, "/api/v1/workers"));
        assert!(allowed(Role::Reporter, &post, "/api/v1/workers/{id}/requests"));
        assert!(allowed(Role::Reporter, &get, "/api/v1/workers/{id}/errors"));
        assert!(!allowed(Role::Reporter, &get, "/api/v1/workers"));
        assert!(!allowed(Role::Reporter, &post, recycle));
        assert!(!allowed(Role::Reporter, &post, "/api/v1/workers/{id}/stop"));
        assert!(!allowed(Role::Reporter, &get, "/metrics"));
    }

    #[test]
    fn the_brake_is_tuned_from_the_environment() {
        let var = |v: &'static str| move |_: &str| Some(v.to_owned());
        assert_eq!(Access::max_failures_from_env(|_| None), Ok(MAX_FAILURES));
        assert_eq!(Access::max_failures_from_env(var("1000")), Ok(1000));
        for bad in ["0", "-1", "many", ""] {
            let e = Access::max_failures_from_env(var(bad)).unwrap_err();
            assert!(e.starts_with("TEND_AUTH_MAX_FAILURES="), "{e}");
        }
        let a = access().with_max_failures(2);
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let t0 = Instant::now();
        a.failed(ip, t0);
        assert_eq!(a.blocked(ip, t0), None);
        a.failed(ip, t0);
        assert!(a.blocked(ip, t0).is_some());
    }

    #[test]
    fn an_address_that_keeps_failing_waits_out_the_window() {
        let a = access();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let other: IpAddr = "127.0.0.10".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            a.failed(ip, t0);
        }
        assert_eq!(a.blocked(ip, t0), None, "one attempt left");
        a.failed(ip, t0);
        assert_eq!(a.blocked(ip, t0), Some(WINDOW.as_secs()));
        assert_eq!(a.blocked(other, t0), None, "only that address");
        assert_eq!(a.blocked(ip, t0 + WINDOW), None, "the window ends");
        a.failed(ip, t0 + WINDOW);
        assert_eq!(a.blocked(ip, t0 + WINDOW), None, "a new window starts its own count");
    }
}
