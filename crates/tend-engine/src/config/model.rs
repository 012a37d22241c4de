//! The validated model: what a config file means, with precise types (durations, compiled regexes,
//! socket addresses) and defaults.

use super::*;

/// A parsed and validated config file.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Where it came from (a path, or [`DEMO_ORIGIN`]); problems are reported under this name.
    pub origin: String,
    pub server: ServerConfig,
    pub store: StoreConfig,
    /// In file order.
    pub pools: Vec<PoolConfig>,
    /// `[[webhook]]` sections, in file order.
    pub webhooks: Vec<WebhookConfig>,
    /// `[[remote]]` sections: the agents this Tend shows beside its own workers (a hub).
    pub remotes: Vec<RemoteConfig>,
    /// `[notifications]`: desktop notifications and their budget.
    pub notifications: NotificationsConfig,
    /// `[discovery]`: how attach pools find new processes.
    pub discovery: DiscoveryConfig,
}

/// `[discovery]`: how attach pools find processes that start matching.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoveryConfig {
    pub mode: DiscoveryMode,
    /// The scan's cadence when the kernel's process events are not used.
    pub scan_every: Duration,
    /// With process events, a full scan this often anyway (a safety net for what events cannot say,
    /// like a command line rewritten without a rename).
    pub rescan_every: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            mode: DiscoveryMode::Auto,
            scan_every: Duration::from_secs(5),
            rescan_every: Duration::from_secs(30),
        }
    }
}

/// Where attach pools hear of new processes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryMode {
    /// The kernel's process events when Tend may listen (root or CAP_NET_ADMIN, the initial PID
    /// namespace), else scans.
    Auto,
    /// Scans of `/proc` only, every `scan_every`.
    Scan,
}

/// `[notifications]`: whether desktop notifications are on, and the budget they go through.
#[derive(Clone, Debug, PartialEq)]
pub struct NotificationsConfig {
    pub enabled: bool,
    pub budget: tend_core::budget::BudgetConfig,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig { enabled: true, budget: tend_core::budget::BudgetConfig::default() }
    }
}

/// Where alert and recycle notifications are POSTed as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    pub name: String,
    /// An `http://` URL.
    pub url: String,
    /// Which notifications: `firing`, `resolved`, `recycle_started`, `recycled`.
    pub events: Vec<String>,
    /// Every rule and recycle (true), or only alerts of rules whose `channels` name this webhook.
    pub global: bool,
    /// Attempts after the first one that failed.
    pub retries: u32,
    /// Wait before the first retry; doubled after each one, at most 30 s.
    pub backoff: Duration,
    pub timeout: Duration,
}

/// The notifications a webhook can receive.
pub const WEBHOOK_EVENTS: &[&str] = &["firing", "resolved", "recycle_started", "recycled"];
/// The channel name that means desktop notifications (not a webhook).
pub const DESKTOP_CHANNEL: &str = "desktop";

#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The one shared bearer token of `token = "..."` or `TEND_TOKEN`: an operator token named
    /// [`DEFAULT_TOKEN_NAME`].
    pub token: Option<String>,
    /// `[[server.token]]`: named tokens, each with a role.
    pub tokens: Vec<TokenConfig>,
    /// `tls = { cert, key }`: HTTPS with these PEM files, reloaded when they change.
    pub tls: Option<TlsConfig>,
    /// A non-loopback `listen` without `tls` is refused unless this says plain HTTP is meant.
    pub insecure_http: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN,
            token: None,
            tokens: Vec::new(),
            tls: None,
            insecure_http: false,
        }
    }
}

impl ServerConfig {
    /// Every token the server accepts: the named ones, then the shared one as an operator token.
    pub fn access_tokens(&self) -> Vec<TokenConfig> {
        let shared = self.token.iter().map(|secret| TokenConfig {
            name: DEFAULT_TOKEN_NAME.to_owned(),
            role: Role::Operator,
            secret: Some(secret.clone()),
            secret_env: None,
        });
        self.tokens.iter().cloned().chain(shared).collect()
    }

    /// Whether any token is set: then every request but the health check must carry one.
    pub fn has_tokens(&self) -> bool {
        self.token.is_some() || !self.tokens.is_empty()
    }
}

/// One `[[remote]]`: an agent (another `tend serve`) whose workers this one shows and acts on.
#[derive(Clone, PartialEq)]
pub struct RemoteConfig {
    /// Unique, `[A-Za-z0-9_.-]+`; the agent's workers are `<id>@<name>` here.
    pub name: String,
    /// `https://host:port` (or `http://` for an agent with `insecure_http`).
    pub url: String,
    /// The bearer token, once read (from `token_file` by the parser, from `token_env` by
    /// [`Config::apply_env`]); None: the agent needs none.
    pub token: Option<String>,
    pub token_env: Option<String>,
    /// A PEM file of the CA (or the agent's self-signed certificate) to trust instead of the system's.
    pub ca: Option<PathBuf>,
    /// Where the token is kept, as the Hosts screen says it: `file /path`, `environment VAR`,
    /// `keyring`; None without a token.
    pub token_source: Option<String>,
    /// Added from the desktop app's Hosts screen rather than the config file.
    pub added_here: bool,
}

impl RemoteConfig {
    /// An agent's URL: `https://` or `http://`, a host and a port, no path.
    pub fn check_url(url: &str) -> Result<(), String> {
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).ok_or_else(|| {
            format!("invalid url \"{url}\": use https://host:port (or http:// for an agent without TLS)")
        })?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', ' ', '@']) {
            return Err(format!(
                "invalid url \"{url}\": give the agent's address only, like https://10.1.2.3:7878"
            ));
        }
        Ok(())
    }
}

/// A name of the config (a pool, rule, webhook, token, remote): `[A-Za-z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_env", &self.token_env)
            .field("ca", &self.ca)
            .field("token_source", &self.token_source)
            .field("added_here", &self.added_here)
            .finish()
    }
}

/// The name the shared `token` / `TEND_TOKEN` goes by in the audit trail.
pub const DEFAULT_TOKEN_NAME: &str = "default";
/// The shortest secret a named token may have.
pub const MIN_SECRET_LEN: usize = 16;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Every GET: workers, history, events (SSE), `/metrics`.
    Viewer,
    /// A viewer that may also act: recycle, stop, remove, ack, silence, clean orphans, and report.
    Operator,
    /// Only the report API (an orchestrator registering its workers and their states).
    Reporter,
}

impl Role {
    pub const ALL: [(&'static str, Role); 3] =
        [("viewer", Role::Viewer), ("operator", Role::Operator), ("reporter", Role::Reporter)];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Reporter => "reporter",
        }
    }
}

/// One `[[server.token]]`.
#[derive(Clone, PartialEq)]
pub struct TokenConfig {
    /// Unique, `[A-Za-z0-9_.-]+`; the audit trail names it.
    pub name: String,
    pub role: Role,
    /// The secret, once read (from `secret_file` by the parser, from `secret_env` by
    /// [`Config::apply_env`]).
    pub secret: Option<String>,
    /// The environment variable holding the secret, when the token names one.
    pub secret_env: Option<String>,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_env", &self.secret_env)
            .finish()
    }
}

/// `[server] tls = { cert = "...", key = "..." }`, resolved against the config file's directory.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsConfig {
    /// PEM: the server's certificate, then its chain.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreConfig {
    /// `None`: the engine picks its default location.
    pub data_dir: Option<PathBuf>,
    pub retention: RetentionConfig,
}

/// How long each history tier is kept (brief §9).
#[derive(Clone, Debug, PartialEq)]
pub struct RetentionConfig {
    /// Raw samples (default 24 h).
    pub raw: Duration,
    /// 1-minute rollups (default 30 days).
    pub minute: Duration,
    /// 1-hour rollups (default 365 days).
    pub hour: Duration,
    /// Cap on the database size, oldest data dropped first; `None` = no cap.
    pub max_size_mb: Option<u64>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            raw: Duration::from_secs(24 * 3600),
            minute: Duration::from_secs(30 * 86400),
            hour: Duration::from_secs(365 * 86400),
            max_size_mb: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PoolConfig {
    pub name: String,
    pub source: SourceConfig,
    /// Meaningful for spawn and docker pools; `Always` elsewhere.
    pub restart: RestartPolicy,
    pub profile: Profile,
    /// Explicit interval; overrides the profile's. Use [`PoolConfig::effective_interval`].
    pub interval: Option<Duration>,
    pub readiness: ReadinessConfig,
    /// READY -> WORKING when CPU % (of one core) is above this.
    pub busy_cpu_percent: Option<f64>,
    /// Spawn pools: a regex on the worker's output; every matching line counts one handled request
    /// (for `max_requests`, READY -> WORKING and the request figures).
    pub requests_log: Option<Pattern>,
    /// SIGTERM -> SIGKILL grace period.
    pub stop_grace: Duration,
    /// Explicit staleness limit. Use [`PoolConfig::effective_stale_after`].
    pub stale_after: Option<Duration>,
    /// WORKING longer than this -> TIMEOUT.
    pub task_timeout: Option<Duration>,
    pub recycle: RecycleConfig,
    /// In file order.
    pub rules: Vec<RuleConfig>,
    /// Spawn pools: the worker's own Prometheus page; `$TEND_SLOT` is replaced by the slot number.
    pub metrics_url: Option<String>,
    /// With `metrics_url`: the counter whose value is the worker's request count.
    pub requests_metric: Option<String>,
}

impl PoolConfig {
    /// The sampling interval: the explicit `interval`, else the profile's; `None` when disabled.
    pub fn effective_interval(&self) -> Option<Duration> {
        if self.profile == Profile::Disabled {
            return None;
        }
        self.interval.or(self.profile.interval())
    }

    /// No sample for this long -> TIMEOUT: `stale_after`, else 3 intervals but at least 5 s; `None`
    /// when the pool is not sampled.
    pub fn effective_stale_after(&self) -> Option<Duration> {
        let interval = self.effective_interval()?;
        Some(self.stale_after.unwrap_or_else(|| (interval * 3).max(Duration::from_secs(5))))
    }
}

/// Where a pool's workers come from, with what each source needs.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceConfig {
    Spawn(SpawnConfig),
    Attach(AttachConfig),
    /// Workers register and report through the API.
    Reported,
    Docker(DockerConfig),
}

impl SourceConfig {
    /// The name as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Spawn(_) => "spawn",
            SourceConfig::Attach(_) => "attach",
            SourceConfig::Reported => "reported",
            SourceConfig::Docker(_) => "docker",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SpawnConfig {
    /// argv; non-empty. May contain the [`TEND_EXE`] and [`TEND_SLOT`] placeholders.
    pub command: Vec<String>,
    /// Added to the inherited environment; values may contain [`TEND_SLOT`].
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    /// Number of slots, >= 1.
    pub size: u32,
    /// `port`: slot N's [`TEND_PORT`] is this plus N.
    pub port: Option<u16>,
}

impl SpawnConfig {
    /// The argv of the worker in `slot`, placeholders substituted: `$TEND_EXE` as argv\[0\] becomes
    /// `tend_exe`, `$TEND_SLOT` in the other arguments becomes the slot number.
    pub fn argv_for_slot(&self, tend_exe: &Path, slot: u32) -> Vec<OsString> {
        let port = self.port_for_slot(slot);
        self.command
            .iter()
            .enumerate()
            .map(|(i, arg)| {
                if i == 0 {
                    if arg == TEND_EXE { tend_exe.as_os_str().to_owned() } else { OsString::from(arg) }
                } else {
                    OsString::from(substitute(arg, slot, port))
                }
            })
            .collect()
    }

    /// The extra environment of the worker in `slot`, `$TEND_SLOT` substituted in values.
    pub fn env_for_slot(&self, slot: u32) -> BTreeMap<String, String> {
        let port = self.port_for_slot(slot);
        self.env.iter().map(|(k, v)| (k.clone(), substitute(v, slot, port))).collect()
    }

    /// Slot `slot`'s port: the pool's `port` plus the slot number (validated to fit).
    pub fn port_for_slot(&self, slot: u32) -> Option<u16> {
        self.port.and_then(|p| u16::try_from(u32::from(p) + slot).ok())
    }
}

/// `$TEND_SLOT` and (when the pool has a `port`) `$TEND_PORT` replaced in `text`.
pub fn substitute(text: &str, slot: u32, port: Option<u16>) -> String {
    let s = text.replace(TEND_SLOT, &slot.to_string());
    match port {
        Some(p) => s.replace(TEND_PORT, &p.to_string()),
        None => s,
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AttachConfig {
    /// Matches (unanchored) against the full command line, arguments joined by spaces.
    pub cmdline: Option<Pattern>,
    /// Matches the process name exactly.
    pub process_name: Option<String>,
    pub pids: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DockerConfig {
    /// Containers carrying all these labels (an empty value matches any value of that label).
    pub labels: BTreeMap<String, String>,
    /// e.g. `unix:///var/run/docker.sock`; `None` = `DOCKER_HOST`, else the local socket.
    pub docker_host: Option<String>,
    /// A regex on the container name.
    pub container_name: Option<Pattern>,
    /// The image the containers were created from.
    pub image: Option<String>,
    pub recycle_mode: DockerRecycleMode,
    pub remove_ended: bool,
    pub stats: DockerStatsMode,
    pub orphans_max: Option<u32>,
    pub clean_orphans: bool,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum DockerRecycleMode {
    #[default]
    Recreate,
    Restart,
}

/// How container stats are read: one engine stream per container (default: the cheaper of the two for
/// Tend and for the engine, see docs/PERFORMANCE.md), or one-shot reads each interval with our own deltas.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum DockerStatsMode {
    Poll,
    #[default]
    Stream,
}

/// `labels` as a list of `key=value` / `key` strings or as a table.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawLabels {
    List(Vec<String>),
    Table(BTreeMap<String, String>),
}

/// A compiled regex that compares by its source text.
#[derive(Clone, Debug)]
pub struct Pattern(pub(super) Regex);

impl Pattern {
    pub fn regex(&self) -> &Regex {
        &self.0
    }
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub(super) const CHOICES: &[(&str, RestartPolicy)] = &[
        ("always", RestartPolicy::Always),
        ("on-failure", RestartPolicy::OnFailure),
        ("never", RestartPolicy::Never),
    ];
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReadinessConfig {
    pub check: ReadinessCheck,
    /// INITIALIZING longer than this -> TIMEOUT (default 30 s).
    pub timeout: Duration,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        ReadinessConfig {
            check: ReadinessCheck::StartSecs(Duration::from_secs(1)),
            timeout: DEFAULT_READY_TIMEOUT,
        }
    }
}

pub(super) const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq)]
pub enum ReadinessCheck {
    /// Alive this long.
    StartSecs(Duration),
    /// A TCP connect to this address succeeds (`localhost` is read as 127.0.0.1).
    Tcp(SocketAddr),
    /// A TCP connect to 127.0.0.1 on this port succeeds.
    TcpPort(u16),
    /// `GET` on this `http://` URL answers 200.
    Http(String),
    /// A line of the worker's stdout or stderr matches.
    Log(Pattern),
}

/// When to recycle a worker (brief §8). Every trigger is optional; whichever comes first wins.
#[derive(Clone, Debug, PartialEq)]
pub struct RecycleConfig {
    /// RSS above this many MiB (checked on every sample, after `warmup`).
    pub memory_mb: Option<u64>,
    /// Age limit.
    pub ttl: Option<Duration>,
    pub max_requests: Option<u64>,
    /// Fraction (0..=0.5) by which `ttl` and `max_requests` are randomly shortened per worker (default 0.1).
    pub jitter: f64,
    /// No memory recycle during this long after READY (default 0).
    pub warmup: Duration,
    /// At most this many workers of the pool recycling at once (default 1).
    pub max_unavailable: u32,
    /// After `storm_max` restarts within `storm_window` the worker is left FAILED (defaults 5 in 60 s).
    pub storm_max: u32,
    pub storm_window: Duration,
    /// Replace a worker that died (default true).
    pub on_death: bool,
    /// Replace a worker that timed out, i.e. hung (default true).
    pub on_timeout: bool,
}

impl Default for RecycleConfig {
    fn default() -> Self {
        RecycleConfig {
            memory_mb: None,
            ttl: None,
            max_requests: None,
            jitter: 0.1,
            warmup: Duration::ZERO,
            max_unavailable: 1,
            storm_max: 5,
            storm_window: Duration::from_secs(60),
            on_death: true,
            on_timeout: true,
        }
    }
}

/// An alert rule, field for field what `tend_core::rules::Rule` needs.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleConfig {
    pub name: String,
    pub scope: Scope,
    pub condition: RuleCondition,
    /// `for`: how long the condition must hold before firing (default 0).
    pub for_: Duration,
    /// ...and for at least this many consecutive samples (0 = no count condition).
    pub for_samples: u32,
    pub keep_firing_for: Duration,
    pub severity: Severity,
    /// More than this many firings within `flap_window` = flapping; `None` = no flap detection.
    pub flap_max: Option<u32>,
    pub flap_window: Duration,
    /// Recycle the worker when the rule fires (worker scope only).
    pub recycle: bool,
    pub channels: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RuleCondition {
    /// `above`/`below` with its optional `clear_below`/`clear_above`.
    Threshold { metric: String, cmp: Comparison, fire: f64, clear: Option<f64> },
    /// `stale`: no sample for `after`.
    Stale { after: Duration },
    /// `restarts` + `within`: more than `max` restarts within `within`.
    RestartChurn { max: u32, within: Duration },
}
