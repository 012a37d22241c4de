//! Checking a `[[pool]]`: its source and the source's own keys, sampling, readiness, recycling and limits.

use super::super::*;
use super::{Checker, locate, resolve_program};

impl Checker<'_> {
    pub(super) fn pools(&mut self, value: Spanned<DeValue<'_>>) -> Vec<PoolConfig> {
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
    pub(super) fn pool(
        &mut self,
        raw: RawPool,
        header: Range<usize>,
        ctx: &str,
    ) -> Option<(PoolConfig, Range<usize>)> {
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

    pub(super) fn spawn(&mut self, raw: &RawPool, header: &Range<usize>, ctx: &str) -> SpawnConfig {
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
    pub(super) fn check_exec_size(&mut self, raw: &RawPool, env: &BTreeMap<String, String>, ctx: &str) {
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
    pub(super) fn size(&mut self, size: &Spanned<i64>, max_size: Option<&Spanned<i64>>, ctx: &str) -> u32 {
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

    pub(super) fn docker(&mut self, raw: &RawPool, header: &Range<usize>, ctx: &str) -> DockerConfig {
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

    pub(super) fn attach(&mut self, raw: &RawPool, header: &Range<usize>, ctx: &str) -> AttachConfig {
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

    pub(super) fn readiness(&mut self, raw: Spanned<RawReadiness>, ctx: &str) -> ReadinessConfig {
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

    pub(super) fn recycle(&mut self, r: RawRecycle, ctx: &str) -> RecycleConfig {
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
}
