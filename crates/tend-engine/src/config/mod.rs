//! The TOML configuration: parsed, validated, with every problem located at a line and column.
//!
//! This module owns the config file's shape, its defaults, its validation and the `TEND_*` environment
//! overrides. It produces plain data ([`Config`]) with precise types (durations as [`Duration`], regexes
//! compiled, socket addresses parsed); the engine converts that into core types. It must never start,
//! signal or watch anything: the only I/O is reading the file and the token secret files it names,
//! checking that the TLS files are readable and, when asked, that spawn commands resolve to
//! executables.
//!
//! # Shape
//! ```toml
//! [server]
//! listen = "127.0.0.1:7878"          # default 127.0.0.1:7878
//! token = "..."                      # optional shared bearer token (an operator token named "default")
//! tls = { cert = "cert.pem", key = "key.pem" }   # HTTPS; PEM files, relative to this file, reloaded
//!                                    #   when they change
//! insecure_http = false              # plain HTTP on a non-loopback `listen` (default false: refused)
//!
//! [[server.token]]                   # named tokens instead of the shared one (TOML forbids both in
//! name = "ops-laptop"                #   one file; TEND_TOKEN still adds the shared one)
//! role = "operator"                  # viewer (GETs) | operator (also acts) | reporter (report API)
//! secret_file = "/etc/tend/ops.token"  # owner-only (chmod 600); or secret_env = "VAR". Never inline.
//!
//! A `listen` address that is not loopback needs a token, and TLS unless `insecure_http = true`.
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
//! [discovery]                        # optional: how attach pools find processes that start matching
//! mode = "auto"                      # auto (default): the kernel's process events when Tend may
//!                                    #   listen, else scans | scan: scans only
//! scan_every = "5s"                  # the scan's cadence without events (default 5s)
//! rescan_every = "30s"               # with events, a full scan this often anyway (default 30s)
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
//! Durations are strings like `500ms`, `5s`, `2m`, `1h`, `1d`, combinations (`1h30m`, `1h 30m`, `1.5s`),
//! spelled-out units (`90 minutes`) or ISO 8601 (`PT1H30M`), read by `tend_core::time::parse_duration`;
//! a day is 24 hours. A bare TOML number is a number of seconds.
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
//! | `[discovery] scan_every` / `rescan_every` | 1s to 1h / 5s to 24h |
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
//! | profile | interval | readings kept in memory | metrics collected |
//! |---|---|---|---|
//! | intensive | 1 s | 60 (1 min) | cpu, memory, threads, fds, io |
//! | realtime | 5 s | 12 (1 min) | cpu, memory, threads, fds, io |
//! | standard (default) | 10 s | 10 (100 s) | cpu, memory, threads, fds |
//! | batch | 30 s | 10 (5 min) | cpu, memory |
//! | minimal | 60 s | 10 (10 min) | cpu, memory |
//! | daemon | 120 s | 10 (20 min) | cpu, memory |
//! | disabled | - | 10 (reports only) | none |
//!
//! The readings in memory follow the pool's interval (its own `interval` too): [`ring_depth`]. Older
//! ones are read from the history store.
//!
//! # Environment overrides
//! Applied by [`Config::apply_env`] after parsing; an empty value counts as unset. It ends with
//! [`Config::check_server`]: a `listen` address that is not loopback needs a token, and TLS or
//! `insecure_http`.
//! - `TEND_LISTEN`: the server's listen address (`host:port`, an IP literal).
//! - `TEND_TOKEN`: the server's shared bearer token (an operator token named `default`).
//! - `TEND_INSECURE_HTTP`: `1`/`true` or `0`/`false`, over `insecure_http`.
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

mod bounds;
mod check;
mod diagnostics;
mod env;
mod model;
mod profile;
mod raw;

pub use bounds::show_duration;
use bounds::*;
use check::Checker;
pub use diagnostics::*;
use env::parse_listen;
pub use env::{Overrides, resolve};
pub use model::*;
pub use profile::*;
use raw::*;

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
const DEMO_TOML: &str = include_str!("../demo.toml");
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

/// The embedded demo (`demo.toml`): used when no config is given.
pub fn demo() -> Config {
    // The demo is part of the binary and checked by the tests; failing here is a build defect.
    parse(DEMO_TOML, DEMO_ORIGIN).unwrap_or_else(|e| panic!("the embedded demo.toml is invalid:\n{e}"))
}

/// The embedded demo's text, for `tend check-config --demo` or showing it to the user.
pub fn demo_text() -> &'static str {
    DEMO_TOML
}

const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// A duration of the file or the environment: see [`tend_core::time::parse_duration`] for the forms
/// (`250ms`, `5s`, `1h30m`, `1h 30m`, `90 minutes`, `7d`, `PT1H30M`). Every number needs a unit. A
/// number too large for any duration reads as the longest one, so the key's bounds name its maximum.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match tend_core::time::parse_duration(s) {
        Ok(d) => Ok(d),
        Err(tend_core::time::DurationError::TooLong) => Ok(Duration::MAX),
        Err(tend_core::time::DurationError::Invalid(_)) => {
            Err(format!("invalid duration \"{s}\": {DURATION_HINT}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check::{locate, resolve_program};
    use super::*;

    /// The forms are `tend_core::time`'s (tested there); the config adds its message and reads a
    /// number too large for any duration as the longest one, for the key's bounds to refuse.
    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("106751991167300d"), Ok(Duration::MAX));
        for bad in ["", "5", "-5s", "5x", "1mo"] {
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
        let depth = |secs: f64| ring_depth(Duration::from_secs_f64(secs));
        assert_eq!(depth(1.0), 60, "intensive: a minute");
        assert_eq!(depth(2.0), 30);
        assert_eq!(depth(0.1), 60, "faster sampling keeps less time, not more memory");
        assert_eq!(depth(5.0), 12);
        assert_eq!(depth(30.0), 10, "slow pools keep at least ten readings");
        assert_eq!(depth(7.0), 10);
        assert_eq!(depth(1.5), 40);
        assert_eq!(depth(0.7), 60);
        assert_eq!(depth(1.7), 36, "a part of an interval counts as one more reading");
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

    #[test]
    fn path_search_takes_the_first_executable_file_in_order() {
        use std::os::unix::fs::PermissionsExt;
        let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
        std::fs::create_dir(dirs[0].path().join("prog")).unwrap();
        std::fs::write(dirs[1].path().join("prog"), "#!/bin/sh\n").unwrap();
        for d in &dirs[2..] {
            let file = d.path().join("prog");
            std::fs::write(&file, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = std::env::join_paths(dirs.iter().map(|d| d.path())).unwrap();
        assert_eq!(resolve_program("prog", None, Some(&path)), Ok(dirs[2].path().join("prog")));
        let unusable = std::env::join_paths(dirs[..2].iter().map(|d| d.path())).unwrap();
        let not_found = Err("command `prog` not found on PATH".to_string());
        assert_eq!(
            resolve_program("prog", None, Some(&unusable)),
            not_found,
            "a directory, a file without x"
        );
        assert_eq!(resolve_program("prog", None, None), not_found, "no PATH");
        assert_eq!(resolve_program("prog", None, Some(OsStr::new(""))), not_found, "an empty PATH");
    }
}
