//! The TOML configuration: parsed, validated, with every problem located at a line and column.
//!
//! This module owns the config file's shape, its defaults, its validation and the `TEND_*` environment
//! overrides. It produces plain data ([`Config`]) with precise types (durations as [`Duration`], regexes
//! compiled, socket addresses parsed); the engine converts that into core types. It must never start,
//! signal or watch anything: the only I/O is reading the file and, when asked, checking that spawn
//! commands resolve to executables.
//!
//! # Shape
//! ```toml
//! [server]
//! listen = "127.0.0.1:7878"          # default 127.0.0.1:7878
//! token = "..."                      # optional bearer token; required when `listen` is not loopback
//!
//! [store]                            # optional
//! data_dir = "/var/lib/tend"         # default: the engine's choice
//! retention = { raw = "24h", minute = "30d", hour = "365d", max_size_mb = 500 }   # these defaults
//!
//! [notifications]                    # optional: desktop notifications and their budget
//! enabled = true                     # default true (the desktop app; `tend serve` pops nothing)
//! per_rule = 3                       # at most 3 notifications of one rule per window (default 3)
//! overall = 10                       # at most 10 of all rules together per window (default 10)
//! window = "10m"                     # the sliding window of both caps (default 10m)
//! quiet_hours = { from = "22:00", to = "07:00" }   # local time; held for the digest (default none)
//! record_only = ["info"]             # severities that never notify (default ["info"])
//! digest = true                      # one "N more held back" notification per window (default true)
//!
//! [[pool]]
//! name = "api"                       # unique, [A-Za-z0-9_.-]+
//! source = "spawn"                   # spawn (default) | attach | reported | docker
//! command = ["python3", "worker.py"] # spawn: argv, required
//! env = { PYTHONUNBUFFERED = "1" }   # spawn: optional
//! cwd = "/srv/api"                   # spawn: optional, must be a directory
//! size = 3                           # spawn: required, 1 to 1024
//! max_size = 4000                    # spawn: optional, acknowledges a size above 1024 (at most 16384)
//! restart = "always"                 # spawn: always (default) | on-failure | never
//! profile = "standard"               # see "Profiles"
//! interval = "2s"                    # overrides the profile's interval (>= 100ms)
//! readiness = { start_secs = 1 }     # or tcp = "127.0.0.1:9000" | tcp_port = 9000 | http = "http://..." |
//!                                    # log = "regex"; plus timeout = "30s". Default: start_secs = 1.
//! busy_cpu_percent = 50              # READY -> WORKING above this CPU % (of one core)
//! requests_log = "request .* handled" # spawn: each output line matching counts one request
//! port = 9100                       # spawn: slot N's `$TEND_PORT` is 9100 + N
//! metrics_url = "http://127.0.0.1:$TEND_PORT/metrics"  # spawn: scrape the worker's own Prometheus page
//! requests_metric = "demo_requests_total"  # with metrics_url: the counter of handled requests
//! stop_grace = "5s"                  # SIGTERM -> SIGKILL grace (default 5s)
//! stale_after = "30s"                # no sample this long -> TIMEOUT (default 3 intervals, at least 5s)
//! task_timeout = "10m"               # WORKING longer than this -> TIMEOUT
//! recycle = { memory_mb = 200, ttl = "1h", max_requests = 1000, jitter = 0.1, warmup = "10s",
//!             max_unavailable = 1, storm_max = 5, storm_window = "60s", on_death = true, on_timeout = true }
//!
//! [[pool.rule]]
//! name = "memory-high"               # unique in the pool, [A-Za-z0-9_.-]+
//! metric = "memory_mb"               # built-in or custom metric; with above/below only
//! above = 150                        # exactly one condition: above | below | stale = "30s" |
//!                                    #   restarts = 5 (more than 5 restarts) with within = "10m"
//! clear_below = 120                  # hysteresis: clear_below (<= above) with above,
//!                                    #   clear_above (>= below) with below
//! for = "5s"                         # and/or for_samples = 5
//! keep_firing_for = "30s"
//! severity = "warning"               # info | warning (default) | critical
//! scope = "worker"                   # worker (default) | pool
//! recycle = true                     # recycle the worker when it fires (worker scope only)
//! flap_max = 4                       # with flap_window (default 10m)
//! channels = ["desktop"]
//!
//! [[webhook]]                       # optional, any number
//! name = "orchestrator"              # unique, [A-Za-z0-9_.-]+; rules name it in `channels`
//! url = "http://127.0.0.1:9000/tend" # http:// only in this build
//! events = ["firing", "resolved", "recycle_started", "recycled"]   # these defaults
//! global = true                      # true (default): every rule's alerts and every recycle;
//!                                    #   false: only alerts of rules whose `channels` name it
//! retries = 5                        # after the first attempt (default 5), backoff doubling from
//! backoff = "500ms"                  #   `backoff` (default 500ms) up to 30s
//! timeout = "5s"                     # per attempt (default 5s)
//!
//! [[pool]]
//! name = "legacy"
//! source = "attach"
//! cmdline = "gunicorn: worker"       # attach: a regex on the command line, and/or
//! process_name = "gunicorn"          #   the exact process name, and/or pids = [123, 456]
//! ```
//! A `reported` pool takes neither command nor selector: workers register themselves through the API.
//!
//! ```toml
//! [[pool]]
//! name = "etl"
//! source = "docker"
//! labels = ["tend.pool=etl"]         # docker: required; "key=value" or "key" (any value); or a table
//!                                    #   { "tend.pool" = "etl" } ("" matches any value)
//! container_name = "^etl-"           # docker: optional regex on the container name
//! image = "registry/etl:1"           # docker: optional, the image the container was created from
//! docker_host = "unix:///run/docker.sock"  # docker: unix://, tcp://, http://, https://; default
//!                                    #   $DOCKER_HOST, else unix:///var/run/docker.sock. TLS: tcp:// with
//!                                    #   DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH, or https://
//! readiness = { start_secs = 2 }     # docker: without a healthcheck, running this long is READY
//!                                    #   (with one, READY waits for `healthy`)
//! recycle_mode = "recreate"          # docker: recreate (default: copy started first, old one removed
//!                                    #   once the copy is READY) | restart (`docker restart`)
//! remove_ended = false               # docker: remove containers that end on their own (-> CLEANED)
//! stats = "stream"                   # docker: stream (default: one engine stream per container) |
//!                                    #   poll (one-shot reads each interval, own deltas)
//! orphans_max = 0                    # docker: alert when more orphaned containers than this
//! clean_orphans = false              # docker: remove orphaned containers automatically
//! ```
//!
//! Durations are strings like `500ms`, `5s`, `2m`, `1h`, `1d` or combinations (`1h30m`, `1.5s`); a bare
//! TOML number is a number of seconds.
//!
//! # Limits
//! Every value has a range, checked at load with the value's location:
//!
//! | key | range |
//! |---|---|
//! | `interval`, `TEND_INTERVAL` | 100ms to 1h |
//! | `stale_after`, a rule's `stale` | above zero, up to 7d |
//! | `stop_grace` | 0 to 1h |
//! | `readiness.timeout` | above zero, up to 24h |
//! | `recycle.ttl` | above zero, up to 365d |
//! | `recycle.warmup` | 0 to 24h |
//! | `task_timeout`, `storm_window`, a rule's `within` and `flap_window` | above zero, up to 30d |
//! | a rule's `for`, `keep_firing_for` | 0 to 30d |
//! | `[store] retention` tiers | above zero, up to 3650d |
//! | `[notifications] window` | above zero, up to 7d |
//! | a webhook's `backoff` / `timeout` | above zero, up to 1h / 10m |
//! | `recycle.memory_mb` / `retention.max_size_mb` | 1 to 16777216 (16 TiB) / 1 to 1048576 (1 TiB) |
//! | `size` | 1 to 1024; up to `max_size` (at most 16384) when the pool sets it |
//! | `command` + `env` of a spawn pool | each string under 128 KiB, all together under 1 MiB (the kernel refuses larger with E2BIG) |
//! | the file | a regular file of at most 4 MiB |
//!
//! # Placeholders in spawn commands
//! - `$TEND_EXE` as `command[0]` means the running tend executable (so the embedded demo does not depend
//!   on `PATH`); the validator accepts it and [`SpawnConfig::argv_for_slot`] substitutes it.
//! - `$TEND_SLOT` anywhere in an argument (not argv\[0\]) or an `env` value is replaced by the worker's
//!   slot number (0-based) at spawn time.
//! - `$TEND_PORT`, with the pool's `port = 9100`, is replaced by that port plus the slot number (9100,
//!   9101, ...) in arguments, `env` values and `metrics_url`: one port per worker, known to Tend.
//!
//! # Profiles
//! | profile | interval | samples kept in memory | metrics collected |
//! |---|---|---|---|
//! | intensive | 1 s | 900 (15 min) | cpu, memory, threads, fds, io |
//! | realtime | 5 s | 360 (30 min) | cpu, memory, threads, fds, io |
//! | standard (default) | 10 s | 180 (30 min) | cpu, memory, threads, fds |
//! | batch | 30 s | 120 (1 h) | cpu, memory |
//! | minimal | 60 s | 60 (1 h) | cpu, memory |
//! | daemon | 120 s | 30 (1 h) | cpu, memory |
//! | disabled | - | 0 | none |
//!
//! # Environment overrides
//! Applied by [`Config::apply_env`] after parsing; an empty value counts as unset. It ends with
//! [`Config::check_server`]: a `listen` address that is not loopback needs a token.
//! - `TEND_LISTEN`: the server's listen address (`host:port`, an IP literal).
//! - `TEND_TOKEN`: the server's bearer token.
//! - `TEND_DATA_DIR`: the store's data directory.
//! - `DOCKER_HOST`: the engine of docker pools that name no `docker_host`.
//! - `TEND_INTERVAL`: a duration that replaces the interval of every pool whose profile is not
//!   `disabled`.
//!
//! # Errors
//! Every problem found is reported, each as `origin:line:col: message`, sorted by position. A syntax
//! error stops at the first one; a type error or unknown key stops checking the table it is in (other
//! tables are still checked); everything else (values, ranges, cross-key rules) is collected.

use regex::Regex;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Visitor};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

pub use tend_core::rules::{Comparison, Scope, Severity};

/// `command[0]` placeholder for the running tend executable.
pub const TEND_EXE: &str = "$TEND_EXE";
/// Placeholder, in arguments and `env` values, for the worker's slot number.
pub const TEND_SLOT: &str = "$TEND_SLOT";
/// Placeholder, in arguments, `env` values and `metrics_url`, for the pool's `port` plus the slot number.
pub const TEND_PORT: &str = "$TEND_PORT";
/// The origin that [`demo`] reports problems under.
pub const DEMO_ORIGIN: &str = "<demo>";
/// The address the server listens on when neither the file nor `TEND_LISTEN` says otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7878);

const DURATION_HINT: &str =
    "use a number with a unit: 500ms, 5s, 2m, 1h, 1d (combinations like 1h30m are allowed)";
const DEMO_TOML: &str = include_str!("demo.toml");
/// The most workers a spawn pool may have without `max_size`.
pub const MAX_SIZE: u32 = 1024;
/// The longest single argument or environment entry the kernel accepts (`MAX_ARG_STRLEN`, NUL included).
const MAX_ARG_BYTES: usize = 128 * 1024;
/// The most a spawn pool's `command` and `env` may take together: the kernel's whole limit is a quarter
/// of the stack limit (2 MiB at the usual 8 MiB), and Tend's own environment is passed on as well.
const MAX_EXEC_BYTES: usize = 1024 * 1024;
/// `recycle.memory_mb` at most (16 TiB): bytes of it must fit a `u64` with room to spare.
const MAX_MEMORY_MB: u64 = 16 << 20;
/// `[store] retention.max_size_mb` at most (1 TiB).
const MAX_DB_MB: u64 = 1 << 20;
/// The most workers a spawn pool may have at all (`max_size` included).
pub const HARD_MAX_SIZE: u32 = 16_384;

// ---------------------------------------------------------------------------------------------------
// The validated model
// ---------------------------------------------------------------------------------------------------

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
    /// `[notifications]`: desktop notifications and their budget.
    pub notifications: NotificationsConfig,
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
    /// Bearer token; required (see [`Config::check_server`]) when `listen` is not a loopback address.
    pub token: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { listen: DEFAULT_LISTEN, token: None }
    }
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
enum RawLabels {
    List(Vec<String>),
    Table(BTreeMap<String, String>),
}

/// A compiled regex that compares by its source text.
#[derive(Clone, Debug)]
pub struct Pattern(Regex);

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
    const CHOICES: &[(&str, RestartPolicy)] = &[
        ("always", RestartPolicy::Always),
        ("on-failure", RestartPolicy::OnFailure),
        ("never", RestartPolicy::Never),
    ];
}

/// A monitoring profile: how often a pool is sampled, how much history is kept in memory and which
/// metrics are collected.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    Intensive,
    Realtime,
    #[default]
    Standard,
    Batch,
    Minimal,
    Daemon,
    Disabled,
}

impl Profile {
    pub const ALL: [Profile; 7] = [
        Profile::Intensive,
        Profile::Realtime,
        Profile::Standard,
        Profile::Batch,
        Profile::Minimal,
        Profile::Daemon,
        Profile::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Intensive => "intensive",
            Profile::Realtime => "realtime",
            Profile::Standard => "standard",
            Profile::Batch => "batch",
            Profile::Minimal => "minimal",
            Profile::Daemon => "daemon",
            Profile::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The sampling interval; `None` for `disabled`.
    pub fn interval(self) -> Option<Duration> {
        let secs = match self {
            Profile::Intensive => 1,
            Profile::Realtime => 5,
            Profile::Standard => 10,
            Profile::Batch => 30,
            Profile::Minimal => 60,
            Profile::Daemon => 120,
            Profile::Disabled => return None,
        };
        Some(Duration::from_secs(secs))
    }

    /// How many samples per worker are kept in memory (older ones live only in the store).
    pub fn history_depth(self) -> usize {
        match self {
            Profile::Intensive => 900,
            Profile::Realtime => 360,
            Profile::Standard => 180,
            Profile::Batch => 120,
            Profile::Minimal => 60,
            Profile::Daemon => 30,
            Profile::Disabled => 0,
        }
    }

    /// The metric groups collected.
    pub fn metric_groups(self) -> &'static [MetricGroup] {
        use MetricGroup::*;
        match self {
            Profile::Intensive | Profile::Realtime => &[Cpu, Memory, Threads, Fds, Io],
            Profile::Standard => &[Cpu, Memory, Threads, Fds],
            Profile::Batch | Profile::Minimal | Profile::Daemon => &[Cpu, Memory],
            Profile::Disabled => &[],
        }
    }

    pub fn collects(self, group: MetricGroup) -> bool {
        self.metric_groups().contains(&group)
    }

    /// Whether a built-in metric (by its rule name) is collected; custom metrics always are.
    pub fn collects_metric(self, metric: &str) -> bool {
        match MetricGroup::of(metric) {
            Some(group) => self.collects(group),
            None => self != Profile::Disabled,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Groups of built-in metrics that a profile switches on or off.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MetricGroup {
    Cpu,
    Memory,
    Threads,
    Fds,
    /// Disk and network bytes.
    Io,
}

impl MetricGroup {
    /// The built-in metric names (as rules spell them) in this group.
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            MetricGroup::Cpu => &["cpu_percent", "cpu_host_percent"],
            MetricGroup::Memory => &["memory_bytes", "memory_mb", "memory_percent"],
            MetricGroup::Threads => &["threads"],
            MetricGroup::Fds => &["fds"],
            MetricGroup::Io => &["disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes"],
        }
    }

    /// The group of a built-in metric; `None` for custom metrics.
    pub fn of(metric: &str) -> Option<MetricGroup> {
        [MetricGroup::Cpu, MetricGroup::Memory, MetricGroup::Threads, MetricGroup::Fds, MetricGroup::Io]
            .into_iter()
            .find(|g| g.metrics().contains(&metric))
    }
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

const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

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

// ---------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------

/// A 1-based line and column (in characters).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub line: usize,
    pub col: usize,
}

/// One problem with a config: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file (or `<demo>`, or the environment variable for overrides).
    pub origin: String,
    pub location: Option<Location>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(Location { line, col }) => write!(f, "{}:{line}:{col}: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

/// Everything wrong with a config; displays one problem per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn single(origin: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![Problem { origin: origin.into(), location: None, message: message.into() }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct ParseOptions {
    /// Check that every spawn command resolves to an executable (and `cwd` is a directory). Tests that
    /// name programs absent from this machine turn it off.
    pub check_programs: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions { check_programs: true }
    }
}

/// Parses and validates a config; `origin` names it in problems (usually the file's path).
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    parse_with(text, origin, &ParseOptions::default())
}

pub fn parse_with(text: &str, origin: &str, options: &ParseOptions) -> Result<Config, ConfigError> {
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let mut checker = Checker::new(text, origin, options, None);
            checker.toml_error(&e, "");
            return Err(checker.into_error());
        }
    };
    let mut checker = Checker::new(text, origin, options, Some(root.get_ref()));
    let config = checker.config(root.into_inner());
    if checker.problems.is_empty() { Ok(config) } else { Err(checker.into_error()) }
}

/// Reads and parses the file at `path`; problems are reported under the path as given.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, &ParseOptions::default())
}

pub fn load_with(path: &Path, options: &ParseOptions) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let text = read_limited(path).map_err(|e| ConfigError::single(&origin, e))?;
    parse_with(&text, &origin, options)
}

/// The largest config file Tend reads.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Reads a config file: a regular file (a device, FIFO or directory is refused before any read, so
/// `/dev/zero` or a pipe cannot make Tend hang or fill its memory) of at most [`MAX_FILE_BYTES`], in UTF-8.
fn read_limited(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("cannot read: not a regular file (a config must be a file, not a device, pipe or \
                    directory)"
            .into());
    }
    let too_big = || format!("cannot read: the file is larger than {} MiB", MAX_FILE_BYTES / (1024 * 1024));
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big());
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    // One byte more than allowed: a file that grew since the check is still caught.
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes)
        .map_err(|e| format!("cannot read: not UTF-8 text (byte {})", e.utf8_error().valid_up_to()))
}

/// What the command line sets over the file and the environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

/// The one validation path of `tend serve` and `tend check-config`: the file (the embedded demo when
/// there is none), then the `TEND_*` environment read through `vars`, then the command line, then the
/// server check (a non-loopback `listen` needs a token). Problems of the file and of the environment
/// are reported together.
pub fn resolve(
    file: Option<&Path>,
    vars: impl Fn(&str) -> Option<String>,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let mut cfg = match file.map(load) {
        Some(Ok(cfg)) => cfg,
        Some(Err(mut file_error)) => {
            // The environment is still checked, on an empty config, so one run names every problem.
            if let Ok(mut empty) = parse("", "<environment>")
                && let Err(env_error) = empty.apply_env(&vars)
            {
                file_error.problems.extend(env_error.problems);
            }
            return Err(file_error);
        }
        None => demo(),
    };
    cfg.apply_env(vars)?;
    if let Some(dir) = &overrides.data_dir {
        cfg.store.data_dir = Some(dir.clone());
    }
    if let Some(listen) = overrides.listen {
        cfg.server.listen = listen;
        cfg.check_server()?;
    }
    Ok(cfg)
}

/// The embedded demo (`demo.toml`): used when no config is given.
pub fn demo() -> Config {
    // The demo is part of the binary and checked by the tests; failing here is a build defect.
    parse(DEMO_TOML, DEMO_ORIGIN).unwrap_or_else(|e| panic!("the embedded demo.toml is invalid:\n{e}"))
}

/// The embedded demo's text, for `tend check-config --demo` or showing it to the user.
pub fn demo_text() -> &'static str {
    DEMO_TOML
}

impl Config {
    /// Applies the `TEND_*` overrides (see the module docs) read through `vars`, then checks that a
    /// non-loopback `listen` has a token ([`Config::check_server`]). Every bad value is reported, each
    /// under its variable's name.
    pub fn apply_env(&mut self, vars: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |name: &str| vars(name).filter(|v| !v.is_empty());
        let mut problems = Vec::new();
        let mut problem = |var: &str, message: String| {
            problems.push(Problem { origin: var.to_string(), location: None, message })
        };
        if let Some(v) = get("TEND_LISTEN") {
            match parse_listen(&v) {
                Ok(addr) => self.server.listen = addr,
                Err(e) => problem("TEND_LISTEN", e),
            }
        }
        if let Some(v) = get("TEND_TOKEN") {
            self.server.token = Some(v);
        }
        if let Some(v) = get("DOCKER_HOST") {
            for pool in &mut self.pools {
                if let SourceConfig::Docker(d) = &mut pool.source
                    && d.docker_host.is_none()
                {
                    d.docker_host = Some(v.clone());
                }
            }
        }
        if let Some(v) = get("TEND_DATA_DIR") {
            self.store.data_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("TEND_INTERVAL") {
            match parse_duration(&v) {
                Ok(d) => match INTERVAL.refuse(d) {
                    Some(why) => problem("TEND_INTERVAL", format!("interval \"{v}\" {why}")),
                    None => {
                        for pool in self.pools.iter_mut().filter(|p| p.profile != Profile::Disabled) {
                            pool.interval = Some(d);
                        }
                    }
                },
                Err(e) => problem("TEND_INTERVAL", e),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        self.check_server()
    }

    /// A server on a non-loopback address must have a token (brief §10). [`Config::apply_env`] ends
    /// with this check; call it again after any later override of `listen` or `token` (CLI flags).
    pub fn check_server(&self) -> Result<(), ConfigError> {
        if self.server.listen.ip().is_loopback() || self.server.token.is_some() {
            return Ok(());
        }
        Err(ConfigError::single(
            &self.origin,
            format!(
                "the server listens on {}, which is not a loopback address: \
                 set `token` in [server] or TEND_TOKEN",
                self.server.listen
            ),
        ))
    }
}

const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Parses `250ms`, `5s`, `2m`, `1h`, `1d`, combinations (`1h30m`, `1m30s500ms`) and decimals (`1.5s`).
/// No spaces, no sign, every number needs a unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration \"{s}\": {DURATION_HINT}");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
            return Err(bad());
        }
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_secs = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        let part = Duration::try_from_secs_f64(value * unit_secs).map_err(|_| bad())?;
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = tail;
    }
    Ok(total)
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        format!(
            "invalid listen address \"{s}\": use an IP address and a port, like 127.0.0.1:7878 or [::1]:7878"
        )
    })
}

// ---------------------------------------------------------------------------------------------------
// Raw, as deserialized: every value spanned, every key optional, so that validation can collect all
// problems and point at each.
// ---------------------------------------------------------------------------------------------------

type S<T> = Option<Spanned<T>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: S<String>,
    token: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    data_dir: S<String>,
    retention: Option<RawRetention>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifications {
    enabled: S<bool>,
    per_rule: S<i64>,
    overall: S<i64>,
    window: S<DurationValue>,
    quiet_hours: Option<RawQuietHours>,
    record_only: S<Vec<Spanned<String>>>,
    digest: S<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuietHours {
    from: Spanned<String>,
    to: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    raw: S<DurationValue>,
    minute: S<DurationValue>,
    hour: S<DurationValue>,
    max_size_mb: S<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    name: S<String>,
    source: S<String>,
    command: S<Vec<Spanned<String>>>,
    env: S<BTreeMap<String, String>>,
    cwd: S<String>,
    size: S<i64>,
    max_size: S<i64>,
    restart: S<String>,
    profile: S<String>,
    interval: S<DurationValue>,
    readiness: S<RawReadiness>,
    busy_cpu_percent: S<f64>,
    requests_log: S<String>,
    stop_grace: S<DurationValue>,
    stale_after: S<DurationValue>,
    task_timeout: S<DurationValue>,
    recycle: S<RawRecycle>,
    cmdline: S<String>,
    process_name: S<String>,
    pids: S<Vec<Spanned<i64>>>,
    labels: S<RawLabels>,
    docker_host: S<String>,
    container_name: S<String>,
    image: S<String>,
    recycle_mode: S<String>,
    remove_ended: S<bool>,
    stats: S<String>,
    orphans_max: S<i64>,
    clean_orphans: S<bool>,
    metrics_url: S<String>,
    requests_metric: S<String>,
    port: S<i64>,
    /// Taken out of the table and checked rule by rule before the pool is deserialized; declared so
    /// that it is listed among the expected keys.
    #[serde(rename = "rule")]
    _rule: Option<de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    name: S<String>,
    url: S<String>,
    events: S<Vec<Spanned<String>>>,
    global: Option<bool>,
    retries: S<i64>,
    backoff: S<DurationValue>,
    timeout: S<DurationValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReadiness {
    start_secs: S<f64>,
    tcp: S<String>,
    tcp_port: S<i64>,
    http: S<String>,
    log: S<String>,
    timeout: S<DurationValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecycle {
    memory_mb: S<i64>,
    ttl: S<DurationValue>,
    max_requests: S<i64>,
    jitter: S<f64>,
    warmup: S<DurationValue>,
    max_unavailable: S<i64>,
    storm_max: S<i64>,
    storm_window: S<DurationValue>,
    on_death: Option<bool>,
    on_timeout: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: S<String>,
    metric: S<String>,
    above: S<f64>,
    below: S<f64>,
    clear_below: S<f64>,
    clear_above: S<f64>,
    stale: S<DurationValue>,
    restarts: S<i64>,
    within: S<DurationValue>,
    #[serde(rename = "for")]
    for_: S<DurationValue>,
    for_samples: S<i64>,
    keep_firing_for: S<DurationValue>,
    severity: S<String>,
    scope: S<String>,
    recycle: Option<bool>,
    flap_max: S<i64>,
    flap_window: S<DurationValue>,
    channels: S<Vec<Spanned<String>>>,
}

/// A duration as written: a string to parse, or a number of seconds.
enum DurationValue {
    Text(String),
    Seconds(f64),
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like \"5s\" or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationValue, E> {
                Ok(DurationValue::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(v))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------------
// The checker: turns raw tables into the model, collecting located problems.
// ---------------------------------------------------------------------------------------------------

/// The range a duration key accepts, both ends included. Every duration of the file has one, so that a
/// value no deadline arithmetic can hold (`"106751991167300d"`) is refused at load with its location.
#[derive(Copy, Clone)]
struct Bounds {
    min: Duration,
    max: Duration,
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
const DAY: u64 = 86_400;
const NONZERO: Duration = Duration::from_millis(1);
/// `interval`, `TEND_INTERVAL`: 100ms to 1h.
const INTERVAL: Bounds = Bounds { min: MIN_INTERVAL, max: secs(3600) };
/// `stale_after`, a rule's `stale`: above zero, up to 7 days.
const STALE: Bounds = Bounds { min: NONZERO, max: secs(7 * DAY) };
/// `stop_grace`: zero (SIGKILL at once) to 1h.
const STOP_GRACE: Bounds = Bounds { min: Duration::ZERO, max: secs(3600) };
/// `readiness.timeout`: above zero, up to 24h.
const READY_TIMEOUT: Bounds = Bounds { min: NONZERO, max: secs(DAY) };
/// `recycle.ttl`: above zero, up to 365 days.
const TTL: Bounds = Bounds { min: NONZERO, max: secs(365 * DAY) };
/// `recycle.warmup`: zero to 24h.
const WARMUP: Bounds = Bounds { min: Duration::ZERO, max: secs(DAY) };
/// `task_timeout`, `storm_window`, a rule's `within` and `flap_window`: above zero, up to 30 days.
const LONG: Bounds = Bounds { min: NONZERO, max: secs(30 * DAY) };
/// A rule's `for` and `keep_firing_for`: zero to 30 days.
const LONG_OR_ZERO: Bounds = Bounds { min: Duration::ZERO, max: secs(30 * DAY) };
/// `[store] retention` tiers: above zero, up to 10 years.
const RETENTION: Bounds = Bounds { min: NONZERO, max: secs(3650 * DAY) };
/// `[notifications] window`: above zero, up to 7 days.
const NOTIFY_WINDOW: Bounds = Bounds { min: NONZERO, max: secs(7 * DAY) };
/// A webhook's `backoff`: above zero, up to 1h.
const WEBHOOK_BACKOFF: Bounds = Bounds { min: NONZERO, max: secs(3600) };
/// A webhook's `timeout`: above zero, up to 10 minutes.
const WEBHOOK_TIMEOUT: Bounds = Bounds { min: NONZERO, max: secs(600) };

impl Bounds {
    /// Why `d` is out of range ("is too long: the maximum is 1h"); `None` when it fits.
    fn refuse(self, d: Duration) -> Option<String> {
        if d < self.min {
            return Some(if self.min == NONZERO {
                "must be longer than zero".to_owned()
            } else {
                format!("is too short: the minimum is {}", show_duration(self.min))
            });
        }
        (d > self.max).then(|| format!("is too long: the maximum is {}", show_duration(self.max)))
    }
}

/// A duration as the file would write it (`100ms`, `5s`, `30d`): for limits in messages.
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let units = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")];
    for (size, unit) in units {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

struct Checker<'a> {
    text: &'a str,
    origin: &'a str,
    check_programs: bool,
    /// Every key in the document with its value's span, to name the key a serde error points into.
    keys: Vec<(String, Range<usize>)>,
    /// (byte offset, message), located when the error is built.
    problems: Vec<(usize, String)>,
    /// Every rule's `channels` entry (name, span, context), checked against the webhooks at the end.
    channel_refs: Vec<(String, Range<usize>, String)>,
}

impl<'a> Checker<'a> {
    fn new(text: &'a str, origin: &'a str, options: &ParseOptions, root: Option<&DeTable<'_>>) -> Self {
        let mut keys = Vec::new();
        if let Some(root) = root {
            collect_keys(root, &mut keys);
        }
        Checker {
            text,
            origin,
            check_programs: options.check_programs,
            keys,
            problems: Vec::new(),
            channel_refs: Vec::new(),
        }
    }

    fn into_error(mut self) -> ConfigError {
        self.problems.sort_by_key(|(offset, _)| *offset);
        self.problems.dedup();
        let problems = self
            .problems
            .iter()
            .map(|(offset, message)| Problem {
                origin: self.origin.to_string(),
                location: Some(locate(self.text, *offset)),
                message: message.clone(),
            })
            .collect();
        ConfigError { problems }
    }

    fn at(&mut self, span: Range<usize>, ctx: &str, message: impl fmt::Display) {
        self.problems.push((span.start, format!("{ctx}{message}")));
    }

    fn toml_error(&mut self, e: &toml::de::Error, ctx: &str) {
        let span = e.span().unwrap_or(0..0);
        let snippet = self.text.get(span.clone()).unwrap_or("");
        let key = self.key_at(&span);
        let message = describe_toml_error(e.message(), key.as_deref(), snippet);
        self.at(span, ctx, message);
    }

    /// The innermost key whose value contains `span`.
    fn key_at(&self, span: &Range<usize>) -> Option<String> {
        self.keys
            .iter()
            .filter(|(_, v)| v.start <= span.start && span.end <= v.end && v.start < v.end)
            .min_by_key(|(_, v)| v.end - v.start)
            .map(|(k, _)| k.clone())
    }

    fn de<T: DeserializeOwned>(&mut self, value: Spanned<DeValue<'_>>, ctx: &str) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(v) => Some(v),
            Err(e) => {
                self.toml_error(&e, ctx);
                None
            }
        }
    }

    fn config(&mut self, root: DeTable<'_>) -> Config {
        let mut config = Config {
            origin: self.origin.to_string(),
            server: ServerConfig::default(),
            store: StoreConfig::default(),
            pools: Vec::new(),
            webhooks: Vec::new(),
            notifications: NotificationsConfig::default(),
        };
        for (key, value) in root {
            match key.get_ref().as_ref() {
                "server" => {
                    if let Some(raw) = self.de::<RawServer>(value, "[server]: ") {
                        config.server = self.server(raw);
                    }
                }
                "store" => {
                    if let Some(raw) = self.de::<RawStore>(value, "[store]: ") {
                        config.store = self.store(raw);
                    }
                }
                "notifications" => {
                    if let Some(raw) = self.de::<RawNotifications>(value, "[notifications]: ") {
                        config.notifications = self.notifications(raw);
                    }
                }
                "pool" => config.pools = self.pools(value),
                "webhook" => config.webhooks = self.webhooks(value),
                other => self.at(
                    key.span(),
                    "",
                    format!(
                        "unknown key \"{other}\", expected one of: server, store, notifications, pool, webhook"
                    ),
                ),
            }
        }
        // A rule's channel is a webhook's name or the desktop.
        for (name, span, ctx) in std::mem::take(&mut self.channel_refs) {
            if name != DESKTOP_CHANNEL
                && !name.trim().is_empty()
                && !config.webhooks.iter().any(|w| w.name == name)
            {
                let known: Vec<&str> = std::iter::once(DESKTOP_CHANNEL)
                    .chain(config.webhooks.iter().map(|w| w.name.as_str()))
                    .collect();
                self.at(
                    span,
                    &ctx,
                    format!(
                        "unknown channel \"{name}\": use one of {} (a [[webhook]] name)",
                        known.join(", ")
                    ),
                );
            }
        }
        config
    }

    fn webhooks(&mut self, value: Spanned<DeValue<'_>>) -> Vec<WebhookConfig> {
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.at(span, "", "`webhook` must be an array of tables: write each webhook as [[webhook]]");
            return Vec::new();
        };
        let mut out: Vec<(WebhookConfig, Range<usize>)> = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let header = item.span();
            let ctx = match item.get_ref().get("name").and_then(|v| v.get_ref().as_str()) {
                Some(name) => format!("webhook \"{name}\": "),
                None => format!("webhook #{}: ", index + 1),
            };
            let Some(raw) = self.de::<RawWebhook>(item, &ctx) else { continue };
            let name_span = raw.name.as_ref().map_or(header.clone(), |n| n.span());
            let name = match &raw.name {
                Some(n) => {
                    self.check_name(n, "webhook", &ctx);
                    if n.get_ref() == DESKTOP_CHANNEL {
                        self.at(n.span(), &ctx, "the name \"desktop\" is reserved for desktop notifications");
                    }
                    n.get_ref().clone()
                }
                None => {
                    self.at(header.clone(), &ctx, "missing key \"name\"");
                    String::new()
                }
            };
            let url = match &raw.url {
                Some(u) => {
                    let v = u.get_ref();
                    if v.starts_with("https://") {
                        self.at(
                            u.span(),
                            &ctx,
                            "https webhooks are not supported by this build: use http://",
                        );
                    } else if !v.starts_with("http://") || v.len() <= "http://".len() {
                        self.at(u.span(), &ctx, format!("invalid url \"{v}\": use http://host:port/path"));
                    }
                    v.clone()
                }
                None => {
                    self.at(header.clone(), &ctx, "missing key \"url\"");
                    String::new()
                }
            };
            let events = match raw.events {
                None => WEBHOOK_EVENTS.iter().map(|e| e.to_string()).collect(),
                Some(list) => {
                    let list_span = list.span();
                    let list = list.into_inner();
                    if list.is_empty() {
                        self.at(list_span, &ctx, "`events` must not be empty (remove the webhook instead)");
                    }
                    for e in &list {
                        if !WEBHOOK_EVENTS.contains(&e.get_ref().as_str()) {
                            self.at(
                                e.span(),
                                &ctx,
                                format!(
                                    "unknown event \"{}\", expected one of: {}",
                                    e.get_ref(),
                                    WEBHOOK_EVENTS.join(", ")
                                ),
                            );
                        }
                    }
                    list.into_iter().map(Spanned::into_inner).collect()
                }
            };
            let webhook = WebhookConfig {
                name,
                url,
                events,
                global: raw.global.unwrap_or(true),
                retries: self.int(raw.retries, "retries", &ctx, 0, 100).unwrap_or(5),
                backoff: self
                    .duration(raw.backoff, "backoff", &ctx, WEBHOOK_BACKOFF)
                    .unwrap_or(Duration::from_millis(500)),
                timeout: self
                    .duration(raw.timeout, "timeout", &ctx, WEBHOOK_TIMEOUT)
                    .unwrap_or(Duration::from_secs(5)),
            };
            if let Some((_, first)) = out.iter().find(|(w, _)| w.name == webhook.name && !w.name.is_empty()) {
                let line = locate(self.text, first.start).line;
                self.at(
                    name_span.clone(),
                    &ctx,
                    format!("duplicate webhook name (first defined on line {line})"),
                );
            }
            out.push((webhook, name_span));
        }
        out.into_iter().map(|(w, _)| w).collect()
    }

    fn server(&mut self, raw: RawServer) -> ServerConfig {
        let ctx = "[server]: ";
        let mut server = ServerConfig::default();
        if let Some(listen) = raw.listen {
            match parse_listen(listen.get_ref()) {
                Ok(addr) => server.listen = addr,
                Err(e) => self.at(listen.span(), ctx, e),
            }
        }
        if let Some(token) = raw.token {
            if token.get_ref().trim().is_empty() {
                self.at(token.span(), ctx, "`token` must not be empty (remove the key for no token)");
            }
            server.token = Some(token.into_inner());
        }
        server
    }

    fn store(&mut self, raw: RawStore) -> StoreConfig {
        let ctx = "[store]: ";
        let mut store = StoreConfig::default();
        if let Some(dir) = raw.data_dir {
            if dir.get_ref().is_empty() {
                self.at(dir.span(), ctx, "`data_dir` must not be empty");
            }
            store.data_dir = Some(PathBuf::from(dir.into_inner()));
        }
        if let Some(r) = raw.retention {
            let d = RetentionConfig::default();
            let retention = &mut store.retention;
            retention.raw = self.duration(r.raw, "raw", ctx, RETENTION).unwrap_or(d.raw);
            retention.minute = self.duration(r.minute, "minute", ctx, RETENTION).unwrap_or(d.minute);
            retention.hour = self.duration(r.hour, "hour", ctx, RETENTION).unwrap_or(d.hour);
            retention.max_size_mb = self.int(r.max_size_mb, "max_size_mb", ctx, 1, MAX_DB_MB);
        }
        store
    }

    fn notifications(&mut self, raw: RawNotifications) -> NotificationsConfig {
        let ctx = "[notifications]: ";
        let mut n = NotificationsConfig::default();
        let b = &mut n.budget;
        if let Some(v) = raw.enabled {
            n.enabled = *v.get_ref();
        }
        if let Some(v) = raw.digest {
            b.digest = *v.get_ref();
        }
        b.per_rule = self.int(raw.per_rule, "per_rule", ctx, 1u32, 10_000).unwrap_or(b.per_rule);
        b.overall = self.int(raw.overall, "overall", ctx, 1u32, 10_000).unwrap_or(b.overall);
        b.window = self.duration(raw.window, "window", ctx, NOTIFY_WINDOW).unwrap_or(b.window);
        if let Some(q) = raw.quiet_hours {
            let from = self.minute_of_day(&q.from, "from", ctx);
            let to = self.minute_of_day(&q.to, "to", ctx);
            if let (Some(from), Some(to)) = (from, to) {
                if from == to {
                    self.at(q.to.span(), ctx, "quiet_hours `to` must differ from `from`");
                } else {
                    b.quiet_hours = Some(tend_core::budget::QuietHours { from, to });
                }
            }
        }
        if let Some(list) = raw.record_only {
            let choices =
                [("info", Severity::Info), ("warning", Severity::Warning), ("critical", Severity::Critical)];
            b.record_only =
                list.into_inner().iter().filter_map(|s| self.choice(s, "severity", ctx, &choices)).collect();
        }
        n
    }

    /// "HH:MM" (24-hour clock) as minutes after midnight.
    fn minute_of_day(&mut self, value: &Spanned<String>, key: &str, ctx: &str) -> Option<u16> {
        let text = value.get_ref();
        let parsed = text.split_once(':').and_then(|(h, m)| {
            let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
            (h < 24 && m < 60 && text.len() == 5).then_some(h * 60 + m)
        });
        if parsed.is_none() {
            self.at(
                value.span(),
                ctx,
                format!("invalid time \"{text}\" for quiet_hours `{key}`: use HH:MM on a 24-hour clock"),
            );
        }
        parsed
    }

    fn pools(&mut self, value: Spanned<DeValue<'_>>) -> Vec<PoolConfig> {
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.at(span, "", "`pool` must be an array of tables: write each pool as [[pool]]");
            return Vec::new();
        };
        let mut pools: Vec<(PoolConfig, Range<usize>)> = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let item_span = item.span();
            let DeValue::Table(mut table) = item.into_inner() else {
                self.at(item_span, "", "`pool` must be an array of tables: write each pool as [[pool]]");
                continue;
            };
            let ctx = match table.get("name").and_then(|v| v.get_ref().as_str()) {
                Some(name) => format!("pool \"{name}\": "),
                None => format!("pool #{}: ", index + 1),
            };
            let rules = table.remove("rule");
            let header = item_span.clone();
            let raw = self.de::<RawPool>(Spanned::new(item_span, DeValue::Table(table)), &ctx);
            let rules = rules.map(|r| self.rules(r, &ctx)).unwrap_or_default();
            let Some(raw) = raw else { continue };
            if let Some((mut pool, name_span)) = self.pool(raw, header, &ctx) {
                self.check_rules_against_pool(&pool, &rules, &ctx);
                pool.rules = rules.into_iter().map(|(rule, _)| rule).collect();
                if let Some((_, first)) =
                    pools.iter().find(|(p, _)| p.name == pool.name && !p.name.is_empty())
                {
                    let line = locate(self.text, first.start).line;
                    self.at(
                        name_span.clone(),
                        &ctx,
                        format!("duplicate pool name (first defined on line {line})"),
                    );
                }
                pools.push((pool, name_span));
            }
        }
        pools.into_iter().map(|(pool, _)| pool).collect()
    }

    /// Builds one pool; `None` (with problems recorded) when it cannot be built at all.
    fn pool(&mut self, raw: RawPool, header: Range<usize>, ctx: &str) -> Option<(PoolConfig, Range<usize>)> {
        let name_span = raw.name.as_ref().map_or(header.clone(), |n| n.span());
        let name = match &raw.name {
            Some(name) => {
                self.check_name(name, "pool", ctx);
                name.get_ref().clone()
            }
            None => {
                self.at(header.clone(), ctx, "missing key \"name\"");
                String::new()
            }
        };

        let source_kind = match &raw.source {
            Some(s) => self.choice(
                s,
                "source",
                ctx,
                &[("spawn", "spawn"), ("attach", "attach"), ("reported", "reported"), ("docker", "docker")],
            ),
            None => Some("spawn"),
        };
        // An unknown source still has every other key checked; only the source's own keys are not.
        let checked_source = source_kind;
        let source_kind = source_kind.unwrap_or("");

        // Keys that belong to another source.
        let spawn_only: &[&str] = &["spawn"];
        let owners = [
            ("command", raw.command.as_ref().map(|v| v.span()), spawn_only),
            ("env", raw.env.as_ref().map(|v| v.span()), spawn_only),
            ("cwd", raw.cwd.as_ref().map(|v| v.span()), spawn_only),
            ("size", raw.size.as_ref().map(|v| v.span()), spawn_only),
            ("max_size", raw.max_size.as_ref().map(|v| v.span()), spawn_only),
            ("requests_log", raw.requests_log.as_ref().map(|v| v.span()), spawn_only),
            ("restart", raw.restart.as_ref().map(|v| v.span()), &["spawn", "docker"]),
            ("cmdline", raw.cmdline.as_ref().map(|v| v.span()), &["attach"]),
            ("process_name", raw.process_name.as_ref().map(|v| v.span()), &["attach"]),
            ("pids", raw.pids.as_ref().map(|v| v.span()), &["attach"]),
            ("labels", raw.labels.as_ref().map(|v| v.span()), &["docker"]),
            ("docker_host", raw.docker_host.as_ref().map(|v| v.span()), &["docker"]),
            ("container_name", raw.container_name.as_ref().map(|v| v.span()), &["docker"]),
            ("image", raw.image.as_ref().map(|v| v.span()), &["docker"]),
            ("recycle_mode", raw.recycle_mode.as_ref().map(|v| v.span()), &["docker"]),
            ("remove_ended", raw.remove_ended.as_ref().map(|v| v.span()), &["docker"]),
            ("stats", raw.stats.as_ref().map(|v| v.span()), &["docker"]),
            ("orphans_max", raw.orphans_max.as_ref().map(|v| v.span()), &["docker"]),
            ("clean_orphans", raw.clean_orphans.as_ref().map(|v| v.span()), &["docker"]),
            ("metrics_url", raw.metrics_url.as_ref().map(|v| v.span()), spawn_only),
            ("requests_metric", raw.requests_metric.as_ref().map(|v| v.span()), spawn_only),
            ("port", raw.port.as_ref().map(|v| v.span()), spawn_only),
        ];
        for (key, span, sources) in owners {
            if let Some(span) = span
                && checked_source.is_some()
                && !sources.contains(&source_kind)
            {
                let allowed = sources.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(" or ");
                self.at(
                    span,
                    ctx,
                    format!("key \"{key}\" applies only to source = {allowed}, not \"{source_kind}\""),
                );
            }
        }

        if source_kind == "docker"
            && let Some(r) = &raw.restart
        {
            self.at(
                r.span(),
                ctx,
                "key \"restart\" does not apply to docker pools: a container's restarts are its own restart \
                 policy (docker run --restart); Tend records each run as an incarnation",
            );
        }
        let source = match source_kind {
            "spawn" => Some(SourceConfig::Spawn(self.spawn(&raw, &header, ctx))),
            "attach" => Some(SourceConfig::Attach(self.attach(&raw, &header, ctx))),
            "docker" => Some(SourceConfig::Docker(self.docker(&raw, &header, ctx))),
            "reported" => Some(SourceConfig::Reported),
            _ => None,
        };

        let restart = match &raw.restart {
            Some(r) => self.choice(r, "restart", ctx, RestartPolicy::CHOICES).unwrap_or_default(),
            None => RestartPolicy::default(),
        };
        let profile_choices: Vec<(&str, Profile)> = Profile::ALL.iter().map(|p| (p.as_str(), *p)).collect();
        let profile = match &raw.profile {
            Some(p) => self.choice(p, "profile", ctx, &profile_choices).unwrap_or_default(),
            None => Profile::default(),
        };
        let interval_span = raw.interval.as_ref().map(|i| i.span());
        let interval = self.duration(raw.interval, "interval", ctx, INTERVAL);
        if let (Some(_), Some(span)) = (interval, interval_span.clone())
            && profile == Profile::Disabled
        {
            self.at(span, ctx, "`interval` has no effect with profile = \"disabled\"");
        }

        let readiness_span = raw.readiness.as_ref().map(|r| r.span());
        let readiness = match raw.readiness {
            Some(r) => self.readiness(r, ctx),
            None => ReadinessConfig::default(),
        };
        if source_kind == "docker"
            && !matches!(readiness.check, ReadinessCheck::StartSecs(_))
            && let Some(span) = readiness_span
        {
            self.at(
                span,
                ctx,
                "a docker pool takes readiness = { start_secs = N } only: a container with a healthcheck is \
                 READY when healthy, one without once it ran start_secs",
            );
        }
        let busy_cpu_percent = raw.busy_cpu_percent.map(|b| {
            let v = *b.get_ref();
            if !(v.is_finite() && v > 0.0) {
                self.at(b.span(), ctx, format!("`busy_cpu_percent` must be above 0, not {v}"));
            }
            v
        });
        let requests_log = raw.requests_log.as_ref().and_then(|p| self.pattern(p, "requests_log", ctx));
        let stop_grace =
            self.duration(raw.stop_grace, "stop_grace", ctx, STOP_GRACE).unwrap_or(Duration::from_secs(5));
        let stale_after = self.duration(raw.stale_after, "stale_after", ctx, STALE);
        let task_timeout = self.duration(raw.task_timeout, "task_timeout", ctx, LONG);
        let recycle = match raw.recycle {
            Some(r) => self.recycle(r.into_inner(), ctx),
            None => RecycleConfig::default(),
        };
        let has_port = raw.port.is_some();
        let metrics_url = raw.metrics_url.map(|u| {
            let v = u.get_ref();
            if v.contains(TEND_PORT) && !has_port {
                self.at(u.span(), ctx, "`$TEND_PORT` needs the pool's `port` (slot N gets port + N)");
            }
            if !v.starts_with("http://") || v.len() <= "http://".len() {
                self.at(u.span(), ctx, format!("invalid metrics_url \"{v}\": use http://host:port/metrics"));
            }
            u.into_inner()
        });
        let requests_metric = raw.requests_metric.map(|m| {
            if metrics_url.is_none() {
                self.at(m.span(), ctx, "`requests_metric` needs `metrics_url`");
            }
            let v = m.get_ref();
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                self.at(m.span(), ctx, format!("invalid metric name \"{v}\""));
            }
            m.into_inner()
        });

        let pool = PoolConfig {
            name,
            source: source?,
            restart,
            profile,
            interval,
            readiness,
            busy_cpu_percent,
            requests_log,
            stop_grace,
            stale_after,
            task_timeout,
            recycle,
            rules: Vec::new(),
            metrics_url,
            requests_metric,
        };
        Some((pool, name_span))
    }

    fn spawn(&mut self, raw: &RawPool, header: &Range<usize>, ctx: &str) -> SpawnConfig {
        let command: Vec<String> = match &raw.command {
            None => {
                self.at(
                    header.clone(),
                    ctx,
                    "missing key \"command\": a spawn pool needs its argv, \
                     like command = [\"python3\", \"worker.py\"]",
                );
                Vec::new()
            }
            Some(c) if c.get_ref().is_empty() || c.get_ref()[0].get_ref().is_empty() => {
                self.at(c.span(), ctx, "`command` must not be empty: give the program and its arguments");
                Vec::new()
            }
            Some(c) => c.get_ref().iter().map(|a| a.get_ref().clone()).collect(),
        };
        let cwd = raw.cwd.as_ref().map(|c| PathBuf::from(c.get_ref()));
        let env = raw.env.as_ref().map(|e| e.get_ref().clone()).unwrap_or_default();
        self.check_exec_size(raw, &env, ctx);
        if let Some(e) = &raw.env
            && let Some(bad) = e.get_ref().keys().find(|k| k.is_empty() || k.contains('='))
        {
            self.at(e.span(), ctx, format!("invalid environment variable name \"{bad}\""));
        }
        if self.check_programs {
            if let (Some(dir), Some(c)) = (&cwd, &raw.cwd)
                && !dir.is_dir()
            {
                self.at(c.span(), ctx, format!("`cwd` \"{}\" is not a directory", dir.display()));
            }
            if let Some(program) = raw.command.as_ref().and_then(|c| c.get_ref().first())
                && !program.get_ref().is_empty()
                && program.get_ref() != TEND_EXE
            {
                let path = env.get("PATH").map(OsString::from).or_else(|| std::env::var_os("PATH"));
                if let Err(e) = resolve_program(program.get_ref(), cwd.as_deref(), path.as_deref()) {
                    self.at(program.span(), ctx, e);
                }
            }
        }
        let size = match &raw.size {
            None => {
                self.at(header.clone(), ctx, "missing key \"size\": how many workers to run (>= 1)");
                0
            }
            Some(s) => self.size(s, raw.max_size.as_ref(), ctx),
        };
        let port = raw.port.as_ref().and_then(|p| {
            let first = *p.get_ref();
            let last = first.saturating_add(i64::from(size.max(1)) - 1);
            if !(1..=65535).contains(&first) || last > 65535 {
                self.at(p.span(), ctx, format!("`port` {first} + {size} slots must fit in 1..=65535"));
                None
            } else {
                u16::try_from(first).ok()
            }
        });
        if raw.port.is_none() {
            let uses = |t: &str| t.contains(TEND_PORT);
            let in_command =
                raw.command.as_ref().and_then(|c| c.get_ref().iter().find(|a| uses(a.get_ref())));
            if let Some(arg) = in_command {
                self.at(arg.span(), ctx, "`$TEND_PORT` needs the pool's `port` (slot N gets port + N)");
            } else if let Some(e) = raw.env.as_ref().filter(|e| e.get_ref().values().any(|v| uses(v))) {
                self.at(e.span(), ctx, "`$TEND_PORT` needs the pool's `port` (slot N gets port + N)");
            }
        }
        SpawnConfig { command, env, cwd, size, port }
    }

    /// What the kernel would refuse with E2BIG at every spawn: one argument or `NAME=value` over
    /// [`MAX_ARG_BYTES`], or all of them over [`MAX_EXEC_BYTES`].
    fn check_exec_size(&mut self, raw: &RawPool, env: &BTreeMap<String, String>, ctx: &str) {
        let args = raw.command.as_ref().map(|c| c.get_ref().as_slice()).unwrap_or_default();
        let mut total = 0;
        for a in args {
            let n = a.get_ref().len() + 1;
            total += n;
            if n > MAX_ARG_BYTES {
                self.at(a.span(), ctx, format!("a `command` argument of {n} bytes is over the kernel's limit of {MAX_ARG_BYTES} bytes for one argument"));
            }
        }
        for (k, v) in env {
            let n = k.len() + v.len() + 2;
            total += n;
            if n > MAX_ARG_BYTES
                && let Some(e) = &raw.env
            {
                self.at(e.span(), ctx, format!("`env` {k} is {n} bytes, over the kernel's limit of {MAX_ARG_BYTES} bytes for one variable"));
            }
        }
        if total > MAX_EXEC_BYTES
            && let Some(span) = raw.command.as_ref().map(|c| c.span())
        {
            self.at(span, ctx, format!("`command` and `env` take {total} bytes: at most {MAX_EXEC_BYTES} (with Tend's own environment the kernel would refuse to start the worker)"));
        }
    }

    /// `size`: 1 to [`MAX_SIZE`], or up to the pool's `max_size` (itself at most [`HARD_MAX_SIZE`]), the
    /// operator's acknowledgement that this many processes are meant.
    fn size(&mut self, size: &Spanned<i64>, max_size: Option<&Spanned<i64>>, ctx: &str) -> u32 {
        let limit = match max_size {
            Some(m) => self.int(Some(m.clone()), "max_size", ctx, 1, HARD_MAX_SIZE).unwrap_or(HARD_MAX_SIZE),
            None => MAX_SIZE,
        };
        let v = *size.get_ref();
        if max_size.is_none() && v > i64::from(MAX_SIZE) {
            self.at(
                size.span(),
                ctx,
                format!(
                    "`size` {v} is over the limit of {MAX_SIZE} workers a pool: set `max_size = {v}` in the \
                     pool to acknowledge a pool this large (at most {HARD_MAX_SIZE})"
                ),
            );
            return 0;
        }
        self.int(Some(size.clone()), "size", ctx, 1, limit).unwrap_or(0)
    }

    fn docker(&mut self, raw: &RawPool, header: &Range<usize>, ctx: &str) -> DockerConfig {
        let mut labels = BTreeMap::new();
        match &raw.labels {
            None => self.at(
                header.clone(),
                ctx,
                "a docker pool needs `labels` (e.g. labels = [\"tend.pool=etl\"]): Tend watches only the \
                 containers that carry them",
            ),
            Some(l) => {
                match l.get_ref() {
                    RawLabels::List(items) => {
                        for item in items {
                            let (k, v) = item.split_once('=').unwrap_or((item.as_str(), ""));
                            if k.trim().is_empty() {
                                self.at(
                                    l.span(),
                                    ctx,
                                    format!("invalid label {item:?}: write \"key=value\" or \"key\""),
                                );
                            }
                            labels.insert(k.trim().to_owned(), v.to_owned());
                        }
                    }
                    RawLabels::Table(t) => {
                        for (k, v) in t {
                            if k.trim().is_empty() {
                                self.at(l.span(), ctx, "a label key must not be empty");
                            }
                            labels.insert(k.clone(), v.clone());
                        }
                    }
                }
                if labels.is_empty() {
                    self.at(l.span(), ctx, "`labels` must not be empty");
                }
            }
        }
        let docker_host = raw.docker_host.as_ref().map(|h| {
            let v = h.get_ref();
            if !["unix://", "tcp://", "http://", "https://"].iter().any(|p| v.starts_with(p) && v.len() > p.len()) {
                self.at(
                    h.span(),
                    ctx,
                    format!("invalid docker_host {v:?}: expected unix:///path, tcp://host:port, http://... or https://..."),
                );
            }
            v.clone()
        });
        let container_name = raw.container_name.as_ref().and_then(|p| self.pattern(p, "container_name", ctx));
        let image = raw.image.as_ref().map(|i| {
            if i.get_ref().trim().is_empty() {
                self.at(i.span(), ctx, "`image` must not be empty");
            }
            i.get_ref().clone()
        });
        let recycle_mode = match &raw.recycle_mode {
            Some(m) => self
                .choice(
                    m,
                    "recycle_mode",
                    ctx,
                    &[("recreate", DockerRecycleMode::Recreate), ("restart", DockerRecycleMode::Restart)],
                )
                .unwrap_or_default(),
            None => DockerRecycleMode::default(),
        };
        let stats = match &raw.stats {
            Some(m) => self
                .choice(
                    m,
                    "stats",
                    ctx,
                    &[("poll", DockerStatsMode::Poll), ("stream", DockerStatsMode::Stream)],
                )
                .unwrap_or_default(),
            None => DockerStatsMode::default(),
        };
        let orphans_max = self.int(raw.orphans_max.clone(), "orphans_max", ctx, 0u32, 1_000_000u32);
        DockerConfig {
            labels,
            docker_host,
            container_name,
            image,
            recycle_mode,
            remove_ended: raw.remove_ended.as_ref().is_some_and(|b| *b.get_ref()),
            stats,
            orphans_max,
            clean_orphans: raw.clean_orphans.as_ref().is_some_and(|b| *b.get_ref()),
        }
    }

    fn attach(&mut self, raw: &RawPool, header: &Range<usize>, ctx: &str) -> AttachConfig {
        if raw.cmdline.is_none() && raw.process_name.is_none() && raw.pids.is_none() {
            self.at(header.clone(), ctx, "an attach pool needs at least one of: cmdline, process_name, pids");
        }
        let cmdline = raw.cmdline.as_ref().and_then(|c| self.pattern(c, "cmdline", ctx));
        let process_name = raw.process_name.as_ref().map(|p| {
            if p.get_ref().is_empty() {
                self.at(p.span(), ctx, "`process_name` must not be empty");
            }
            p.get_ref().clone()
        });
        let mut pids = Vec::new();
        if let Some(list) = &raw.pids {
            if list.get_ref().is_empty() {
                self.at(list.span(), ctx, "`pids` must not be empty");
            }
            for pid in list.get_ref() {
                if let Some(p) = self.int(Some(pid.clone()), "pids", ctx, 1, i32::MAX as u32) {
                    pids.push(p);
                }
            }
        }
        AttachConfig { cmdline, process_name, pids }
    }

    fn readiness(&mut self, raw: Spanned<RawReadiness>, ctx: &str) -> ReadinessConfig {
        let span = raw.span();
        let r = raw.into_inner();
        let timeout =
            self.duration(r.timeout, "timeout", ctx, READY_TIMEOUT).unwrap_or(DEFAULT_READY_TIMEOUT);
        let kinds: Vec<(&str, Range<usize>)> = [
            ("start_secs", r.start_secs.as_ref().map(|v| v.span())),
            ("tcp", r.tcp.as_ref().map(|v| v.span())),
            ("tcp_port", r.tcp_port.as_ref().map(|v| v.span())),
            ("http", r.http.as_ref().map(|v| v.span())),
            ("log", r.log.as_ref().map(|v| v.span())),
        ]
        .into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect();
        let fallback = ReadinessConfig { timeout, ..ReadinessConfig::default() };
        match kinds.as_slice() {
            [] => {
                self.at(span, ctx, "`readiness` needs exactly one of: start_secs, tcp, tcp_port, http, log");
                return fallback;
            }
            [_] => {}
            [_, (_, second), ..] => {
                let names = kinds.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
                self.at(
                    second.clone(),
                    ctx,
                    format!(
                        "`readiness` has {names}: use exactly one of start_secs, tcp, tcp_port, http, log"
                    ),
                );
                return fallback;
            }
        }
        let check = if let Some(s) = r.start_secs {
            let v = *s.get_ref();
            match Duration::try_from_secs_f64(v) {
                Ok(d) => ReadinessCheck::StartSecs(d),
                Err(_) => {
                    self.at(s.span(), ctx, format!("`start_secs` must be a number of seconds >= 0, not {v}"));
                    return fallback;
                }
            }
        } else if let Some(t) = r.tcp {
            let text = t.get_ref();
            let local = text.strip_prefix("localhost:").map(|port| format!("127.0.0.1:{port}"));
            match local.as_deref().unwrap_or(text).parse::<SocketAddr>() {
                Ok(addr) if addr.port() != 0 => ReadinessCheck::Tcp(addr),
                _ => {
                    self.at(
                        t.span(),
                        ctx,
                        format!(
                            "invalid tcp address \"{text}\": use an IP address and a port, \
                             like 127.0.0.1:9000"
                        ),
                    );
                    return fallback;
                }
            }
        } else if let Some(p) = r.tcp_port {
            match self.int(Some(p), "tcp_port", ctx, 1, u16::MAX) {
                Some(port) => ReadinessCheck::TcpPort(port),
                None => return fallback,
            }
        } else if let Some(h) = r.http {
            let url = h.get_ref();
            let host = url.strip_prefix("http://").map(|rest| rest.split(['/', '?']).next().unwrap_or(""));
            if host.is_none_or(str::is_empty) {
                self.at(
                    h.span(),
                    ctx,
                    format!(
                        "invalid http readiness URL \"{url}\": \
                         use http://host:port/path (https is not supported)"
                    ),
                );
                return fallback;
            }
            ReadinessCheck::Http(url.clone())
        } else if let Some(l) = r.log {
            match self.pattern(&l, "log", ctx) {
                Some(p) => ReadinessCheck::Log(p),
                None => return fallback,
            }
        } else {
            return fallback;
        };
        ReadinessConfig { check, timeout }
    }

    fn recycle(&mut self, r: RawRecycle, ctx: &str) -> RecycleConfig {
        let d = RecycleConfig::default();
        let jitter = match r.jitter {
            Some(j) => {
                let v = *j.get_ref();
                if !(0.0..=0.5).contains(&v) {
                    self.at(j.span(), ctx, format!("`jitter` must be between 0 and 0.5, not {v}"));
                }
                v
            }
            None => d.jitter,
        };
        RecycleConfig {
            memory_mb: self.int(r.memory_mb, "memory_mb", ctx, 1, MAX_MEMORY_MB),
            ttl: self.duration(r.ttl, "ttl", ctx, TTL),
            max_requests: self.int(r.max_requests, "max_requests", ctx, 1, u64::MAX),
            jitter,
            warmup: self.duration(r.warmup, "warmup", ctx, WARMUP).unwrap_or(d.warmup),
            max_unavailable: self
                .int(r.max_unavailable, "max_unavailable", ctx, 1, u32::MAX)
                .unwrap_or(d.max_unavailable),
            storm_max: self.int(r.storm_max, "storm_max", ctx, 1, u32::MAX).unwrap_or(d.storm_max),
            storm_window: self.duration(r.storm_window, "storm_window", ctx, LONG).unwrap_or(d.storm_window),
            on_death: r.on_death.unwrap_or(d.on_death),
            on_timeout: r.on_timeout.unwrap_or(d.on_timeout),
        }
    }

    /// Deserializes and checks every `[[pool.rule]]` of one pool; returns the rules with their name spans.
    fn rules(&mut self, value: Spanned<DeValue<'_>>, pool_ctx: &str) -> Vec<(RuleConfig, Range<usize>)> {
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.at(span, pool_ctx, "`rule` must be an array of tables: write each rule as [[pool.rule]]");
            return Vec::new();
        };
        let mut rules: Vec<(RuleConfig, Range<usize>)> = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let header = item.span();
            let ctx = match item.get_ref().get("name").and_then(|v| v.get_ref().as_str()) {
                Some(name) => format!("{pool_ctx}rule \"{name}\": "),
                None => format!("{pool_ctx}rule #{}: ", index + 1),
            };
            let Some(raw) = self.de::<RawRule>(item, &ctx) else { continue };
            let name_span = raw.name.as_ref().map_or(header.clone(), |n| n.span());
            let rule = self.rule(raw, header, &ctx);
            if let Some((_, first)) = rules.iter().find(|(r, _)| r.name == rule.name && !rule.name.is_empty())
            {
                let line = locate(self.text, first.start).line;
                self.at(
                    name_span.clone(),
                    &ctx,
                    format!("duplicate rule name (first defined on line {line})"),
                );
            }
            rules.push((rule, name_span));
        }
        rules
    }

    fn rule(&mut self, r: RawRule, header: Range<usize>, ctx: &str) -> RuleConfig {
        let name = match &r.name {
            Some(name) => {
                self.check_name(name, "rule", ctx);
                name.get_ref().clone()
            }
            None => {
                self.at(header.clone(), ctx, "missing key \"name\"");
                String::new()
            }
        };

        let kinds: Vec<(&str, Range<usize>)> = [
            ("above", r.above.as_ref().map(|v| v.span())),
            ("below", r.below.as_ref().map(|v| v.span())),
            ("stale", r.stale.as_ref().map(|v| v.span())),
            ("restarts", r.restarts.as_ref().map(|v| v.span())),
        ]
        .into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect();
        let placeholder = RuleCondition::Stale { after: Duration::from_secs(1) };
        let condition = match kinds.as_slice() {
            [] => {
                self.at(header.clone(), ctx, "a rule needs one condition: above, below, stale or restarts");
                placeholder
            }
            [_, (_, second), ..] => {
                let names = kinds.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
                self.at(
                    second.clone(),
                    ctx,
                    format!(
                        "a rule has exactly one condition, this one has {names}: \
                         use one of above, below, stale, restarts"
                    ),
                );
                placeholder
            }
            [(kind, _)] => self.condition(kind, &r, &header, ctx).unwrap_or(placeholder),
        };

        // Keys that only go with some conditions.
        let is = |k: &str| kinds.len() == 1 && kinds[0].0 == k;
        let misplaced: [(&str, Option<Range<usize>>, bool, &str); 4] = [
            ("metric", r.metric.as_ref().map(|v| v.span()), is("above") || is("below"), "above or below"),
            ("clear_below", r.clear_below.as_ref().map(|v| v.span()), is("above"), "above"),
            ("clear_above", r.clear_above.as_ref().map(|v| v.span()), is("below"), "below"),
            ("within", r.within.as_ref().map(|v| v.span()), is("restarts"), "restarts"),
        ];
        for (key, span, fits, with) in misplaced {
            if let Some(span) = span
                && !fits
                && kinds.len() == 1
            {
                self.at(span, ctx, format!("key \"{key}\" goes only with {with}, not {}", kinds[0].0));
            }
        }

        let severity = match &r.severity {
            Some(s) => self
                .choice(
                    s,
                    "severity",
                    ctx,
                    &[
                        ("info", Severity::Info),
                        ("warning", Severity::Warning),
                        ("critical", Severity::Critical),
                    ],
                )
                .unwrap_or(Severity::Warning),
            None => Severity::Warning,
        };
        let scope = match &r.scope {
            Some(s) => self
                .choice(s, "scope", ctx, &[("worker", Scope::Worker), ("pool", Scope::Pool)])
                .unwrap_or(Scope::Worker),
            None => Scope::Worker,
        };
        let recycle = r.recycle.unwrap_or(false);
        if recycle && scope == Scope::Pool {
            let span = r.scope.as_ref().map_or(header.clone(), |s| s.span());
            self.at(span, ctx, "`recycle = true` applies only to scope = \"worker\"");
        }
        let flap_window_given = r.flap_window.is_some();
        let flap_window =
            self.duration(r.flap_window, "flap_window", ctx, LONG).unwrap_or(Duration::from_secs(600));
        let flap_max = self.int(r.flap_max, "flap_max", ctx, 1, u32::MAX);
        if flap_max.is_none() && flap_window_given {
            self.at(header.clone(), ctx, "`flap_window` needs `flap_max`");
        }
        let mut channels = Vec::new();
        for c in r.channels.map(Spanned::into_inner).unwrap_or_default() {
            if c.get_ref().trim().is_empty() {
                self.at(c.span(), ctx, "a channel name must not be empty");
            }
            self.channel_refs.push((c.get_ref().clone(), c.span(), ctx.to_owned()));
            channels.push(c.into_inner());
        }

        RuleConfig {
            name,
            scope,
            condition,
            for_: self.duration(r.for_, "for", ctx, LONG_OR_ZERO).unwrap_or(Duration::ZERO),
            for_samples: self.int(r.for_samples, "for_samples", ctx, 0, u32::MAX).unwrap_or(0),
            keep_firing_for: self
                .duration(r.keep_firing_for, "keep_firing_for", ctx, LONG_OR_ZERO)
                .unwrap_or(Duration::ZERO),
            severity,
            flap_max,
            flap_window,
            recycle,
            channels,
        }
    }

    fn condition(
        &mut self,
        kind: &str,
        r: &RawRule,
        header: &Range<usize>,
        ctx: &str,
    ) -> Option<RuleCondition> {
        match kind {
            "above" | "below" => {
                let (cmp, fire, clear, clear_key) = if kind == "above" {
                    (Comparison::Above, r.above.as_ref()?, r.clear_below.as_ref(), "clear_below")
                } else {
                    (Comparison::Below, r.below.as_ref()?, r.clear_above.as_ref(), "clear_above")
                };
                let metric = match &r.metric {
                    None => {
                        self.at(
                            header.clone(),
                            ctx,
                            format!("missing key \"metric\": `{kind}` compares a metric"),
                        );
                        return None;
                    }
                    Some(m) => {
                        let name = m.get_ref();
                        if name.is_empty() || name.chars().any(char::is_whitespace) {
                            self.at(m.span(), ctx, format!("invalid metric name \"{name}\""));
                        }
                        name.clone()
                    }
                };
                let fire_v = *fire.get_ref();
                if !fire_v.is_finite() {
                    self.at(fire.span(), ctx, format!("`{kind}` must be a finite number"));
                }
                if let Some(c) = clear {
                    let c_v = *c.get_ref();
                    let wrong_side = match cmp {
                        Comparison::Above => c_v > fire_v,
                        Comparison::Below => c_v < fire_v,
                    };
                    if wrong_side || !c_v.is_finite() {
                        let rel = if cmp == Comparison::Above { "<=" } else { ">=" };
                        self.at(
                            c.span(),
                            ctx,
                            format!("`{clear_key}` ({c_v}) must be {rel} `{kind}` ({fire_v})"),
                        );
                    }
                }
                Some(RuleCondition::Threshold {
                    metric,
                    cmp,
                    fire: fire_v,
                    clear: clear.map(|c| *c.get_ref()),
                })
            }
            "stale" => {
                let after = self.duration_ref(r.stale.as_ref()?, "stale", ctx, STALE)?;
                Some(RuleCondition::Stale { after })
            }
            _ => {
                let max = self.int(r.restarts.clone(), "restarts", ctx, 0, u32::MAX)?;
                let Some(within) = &r.within else {
                    self.at(
                        header.clone(),
                        ctx,
                        "missing key \"within\": `restarts` counts restarts within a window, \
                         like within = \"10m\"",
                    );
                    return None;
                };
                let within = self.duration_ref(within, "within", ctx, LONG)?;
                Some(RuleCondition::RestartChurn { max, within })
            }
        }
    }

    /// Rules checked against their pool.
    fn check_rules_against_pool(
        &mut self,
        pool: &PoolConfig,
        rules: &[(RuleConfig, Range<usize>)],
        ctx: &str,
    ) {
        for (rule, span) in rules {
            if pool.profile == Profile::Disabled
                && !matches!(rule.condition, RuleCondition::RestartChurn { .. })
            {
                self.at(
                    span.clone(),
                    ctx,
                    format!(
                        "rule \"{}\": the pool is not sampled (profile = \"disabled\"), so it can never fire",
                        rule.name
                    ),
                );
            }
        }
    }

    // ----- value helpers -----

    fn check_name(&mut self, name: &Spanned<String>, what: &str, ctx: &str) {
        let n = name.get_ref();
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            self.at(
                name.span(),
                ctx,
                format!("invalid {what} name \"{n}\": use letters, digits, '_', '.' and '-' only"),
            );
        }
    }

    fn choice<T: Copy>(
        &mut self,
        value: &Spanned<String>,
        key: &str,
        ctx: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let v = value.get_ref();
        if let Some((_, t)) = choices.iter().find(|(name, _)| *name == v) {
            return Some(*t);
        }
        let names = choices.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        self.at(value.span(), ctx, format!("invalid {key} \"{v}\", expected one of: {names}"));
        None
    }

    fn int<T: TryFrom<i64> + Into<u128> + Copy + fmt::Display>(
        &mut self,
        value: S<i64>,
        key: &str,
        ctx: &str,
        min: T,
        max: T,
    ) -> Option<T> {
        let value = value?;
        let v = *value.get_ref();
        let in_range = v >= 0 && (v as u128) >= min.into() && (v as u128) <= max.into();
        match T::try_from(v) {
            Ok(t) if in_range => Some(t),
            _ => {
                let bound = if max.into() >= u128::from(u32::MAX) {
                    format!("at least {min}")
                } else {
                    format!("between {min} and {max}")
                };
                self.at(value.span(), ctx, format!("`{key}` must be {bound}, not {v}"));
                None
            }
        }
    }

    fn duration(
        &mut self,
        value: S<DurationValue>,
        key: &str,
        ctx: &str,
        bounds: Bounds,
    ) -> Option<Duration> {
        self.duration_ref(value.as_ref()?, key, ctx, bounds)
    }

    fn duration_ref(
        &mut self,
        value: &Spanned<DurationValue>,
        key: &str,
        ctx: &str,
        bounds: Bounds,
    ) -> Option<Duration> {
        let parsed = match value.get_ref() {
            DurationValue::Text(text) => parse_duration(text)
                .map_err(|_| format!("invalid duration \"{text}\" for key \"{key}\": {DURATION_HINT}")),
            DurationValue::Seconds(secs) if *secs < 0.0 => {
                Err(format!("invalid duration {secs} for key \"{key}\": seconds must be >= 0"))
            }
            DurationValue::Seconds(secs) => Duration::try_from_secs_f64(*secs)
                .map_err(|_| format!("`{key}` is too long: the maximum is {}", show_duration(bounds.max))),
        };
        let checked =
            parsed.and_then(|d| bounds.refuse(d).map_or(Ok(d), |why| Err(format!("`{key}` {why}"))));
        match checked {
            Ok(d) => Some(d),
            Err(message) => {
                self.at(value.span(), ctx, message);
                None
            }
        }
    }

    fn pattern(&mut self, value: &Spanned<String>, key: &str, ctx: &str) -> Option<Pattern> {
        let text = value.get_ref();
        if text.is_empty() {
            self.at(value.span(), ctx, format!("`{key}` must not be empty"));
            return None;
        }
        match Regex::new(text) {
            Ok(re) => Some(Pattern(re)),
            Err(e) => {
                self.at(
                    value.span(),
                    ctx,
                    format!("invalid regex \"{text}\" for key \"{key}\": {}", regex_reason(&e)),
                );
                None
            }
        }
    }
}

/// Every key of the document with its value's span (array-of-tables elements included).
fn collect_keys(table: &DeTable<'_>, out: &mut Vec<(String, Range<usize>)>) {
    for (k, v) in table {
        out.push((k.get_ref().to_string(), v.span()));
        collect_value_keys(v.get_ref(), out);
    }
}

fn collect_value_keys(value: &DeValue<'_>, out: &mut Vec<(String, Range<usize>)>) {
    match value {
        DeValue::Table(t) => collect_keys(t, out),
        DeValue::Array(items) => {
            for item in items.iter() {
                collect_value_keys(item.get_ref(), out);
            }
        }
        _ => {}
    }
}

/// Line and column (1-based, in characters) of a byte offset.
fn locate(text: &str, offset: usize) -> Location {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Location { line, col: before[line_start..].chars().count() + 1 }
}

/// Turns serde's and toml's wording into the config's: keys quoted, choices listed, key named.
fn describe_toml_error(message: &str, key: Option<&str>, snippet: &str) -> String {
    let message = message.trim_end();
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (field, expected) = rest.split_once(", ").unwrap_or((rest, ""));
        let field = field.trim_matches('`');
        let expected =
            expected.strip_prefix("expected one of ").or_else(|| expected.strip_prefix("expected "));
        return match expected {
            Some(list) => {
                format!(
                    "unknown key \"{field}\", expected one of: {}",
                    list.replace("` or `", ", ").replace('`', "")
                )
            }
            None => format!("unknown key \"{field}\""),
        };
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        return format!("missing key \"{}\"", rest.trim_matches('`'));
    }
    if message == "duplicate key" && !snippet.is_empty() {
        return format!("duplicate key \"{}\"", snippet.trim_matches(['"', '\'']));
    }
    let mut m = message.to_string();
    for (rust, toml) in [
        ("expected i64", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        ("expected a borrowed string", "expected a string"),
        ("expected a boolean", "expected true or false"),
    ] {
        m = m.replace(rust, toml);
    }
    if let Some(i) = m.find("expected struct ") {
        m.truncate(i);
        m.push_str("expected a table");
    }
    let is_value_error = m.starts_with("invalid type") || m.starts_with("invalid value");
    match key {
        Some(key) if is_value_error => format!("{m} for key \"{key}\""),
        _ => m,
    }
}

/// The last line of a regex error ("error: unclosed group"), without the pattern drawing above it.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(&text);
    last.trim().trim_start_matches("error: ").to_string()
}

/// Checks that `program` names an executable file: a path (relative to `cwd` when given) or a name
/// found on `path_var`.
fn resolve_program(program: &str, cwd: Option<&Path>, path_var: Option<&OsStr>) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = match cwd {
            Some(dir) if Path::new(program).is_relative() => dir.join(program),
            _ => PathBuf::from(program),
        };
        return match std::fs::metadata(&path) {
            Err(_) => Err(format!("command `{program}` not found")),
            Ok(m) if m.is_dir() => Err(format!("command `{program}` is a directory")),
            Ok(m) if !is_executable(&m) => Err(format!("command `{program}` is not executable")),
            Ok(_) => Ok(path),
        };
    }
    let found = path_var
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && is_executable(&m)));
    found.ok_or_else(|| format!("command `{program}` not found on PATH"))
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("250ms", Duration::from_millis(250)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1d", Duration::from_secs(86400)),
            ("1h30m", Duration::from_secs(5400)),
            ("1m30s500ms", Duration::from_millis(90_500)),
            ("1.5s", Duration::from_millis(1500)),
            ("0s", Duration::ZERO),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in
            ["", "5", "5 s", "5 sec", "-5s", "s", "1.s", ".5s", "5x", "1h 30m", "99999999999999999999d"]
        {
            let e = parse_duration(bad).unwrap_err();
            assert_eq!(e, format!("invalid duration \"{bad}\": {DURATION_HINT}"));
        }
    }

    #[test]
    fn locate_counts_lines_and_chars() {
        let text = "a\nbé = 1\n";
        assert_eq!(locate(text, 0), Location { line: 1, col: 1 });
        assert_eq!(locate(text, 2), Location { line: 2, col: 1 });
        assert_eq!(locate(text, 6), Location { line: 2, col: 4 });
        assert_eq!(locate(text, 100), Location { line: 3, col: 1 });
    }

    #[test]
    fn profiles() {
        assert_eq!(Profile::Intensive.interval(), Some(Duration::from_secs(1)));
        assert_eq!(Profile::Daemon.interval(), Some(Duration::from_secs(120)));
        assert_eq!(Profile::Disabled.interval(), None);
        assert_eq!(Profile::Intensive.history_depth(), 900);
        assert!(Profile::Realtime.collects(MetricGroup::Io));
        assert!(Profile::Standard.collects(MetricGroup::Fds));
        assert!(!Profile::Standard.collects(MetricGroup::Io));
        assert!(!Profile::Batch.collects_metric("threads"));
        assert!(Profile::Batch.collects_metric("memory_mb"));
        assert!(Profile::Batch.collects_metric("queue_depth"));
        assert!(!Profile::Disabled.collects_metric("queue_depth"));
        for p in Profile::ALL {
            assert_eq!(Profile::parse(p.as_str()), Some(p));
        }
    }

    #[test]
    fn program_resolution() {
        let path = std::env::var_os("PATH");
        assert!(resolve_program("sh", None, path.as_deref()).is_ok());
        assert_eq!(
            resolve_program("pythn3", None, path.as_deref()),
            Err("command `pythn3` not found on PATH".to_string())
        );
        assert!(resolve_program("/bin/sh", None, None).is_ok());
        assert_eq!(resolve_program("/", None, None), Err("command `/` is a directory".to_string()));
        assert_eq!(
            resolve_program("./nope", Some(Path::new("/")), None),
            Err("command `./nope` not found".to_string())
        );
        assert_eq!(
            resolve_program("etc/passwd", Some(Path::new("/")), None),
            Err("command `etc/passwd` is not executable".to_string())
        );
    }
}
