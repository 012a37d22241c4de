//! The checker: turns raw tables into the model, collecting located problems. This file holds its core
//! and the top-level sections; `pool` and `rule` check pools and their rules.

mod pool;
mod remote;
mod rule;
mod server;

pub(in crate::config) use server::{check_secret, check_token};

use super::*;

/// One table of an array of tables, as [`Checker::named_tables`] reads it.
pub(super) struct Named<T> {
    pub(super) raw: T,
    pub(super) ctx: String,
    pub(super) header: Range<usize>,
    pub(super) name: String,
    pub(super) name_span: Range<usize>,
}

pub(super) struct Checker<'a> {
    text: &'a str,
    origin: &'a str,
    check_programs: bool,
    /// Every key in the document with its value's span, to name the key a serde error points into.
    keys: Vec<(String, Range<usize>)>,
    /// (byte offset, message), located when the error is built.
    pub(super) problems: Vec<(usize, String)>,
    /// Every rule's `channels` entry (name, span, context), checked against the webhooks at the end.
    channel_refs: Vec<(String, Range<usize>, String)>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(
        text: &'a str,
        origin: &'a str,
        options: &ParseOptions,
        root: Option<&DeTable<'_>>,
    ) -> Self {
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

    pub(super) fn into_error(mut self) -> ConfigError {
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

    pub(super) fn toml_error(&mut self, e: &toml::de::Error, ctx: &str) {
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

    pub(super) fn config(&mut self, root: DeTable<'_>) -> Config {
        let mut config = Config {
            origin: self.origin.to_string(),
            server: ServerConfig::default(),
            store: StoreConfig::default(),
            pools: Vec::new(),
            webhooks: Vec::new(),
            remotes: Vec::new(),
            notifications: NotificationsConfig::default(),
            discovery: DiscoveryConfig::default(),
        };
        for (key, value) in root {
            match key.get_ref().as_ref() {
                "server" => config.server = self.server(value),
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
                "discovery" => {
                    if let Some(raw) = self.de::<RawDiscovery>(value, "[discovery]: ") {
                        config.discovery = self.discovery(raw);
                    }
                }
                "pool" => config.pools = self.pools(value),
                "webhook" => config.webhooks = self.webhooks(value),
                "remote" => config.remotes = self.remotes(value),
                other => self.at(
                    key.span(),
                    "",
                    format!(
                        "unknown key \"{other}\", expected one of: server, store, notifications, discovery, pool, webhook, remote"
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

    /// Each table of an array of tables (`[[webhook]]`, `[[remote]]`, `[[server.token]]`) read as
    /// `T`, with its context for messages (`webhook "x": `, or `webhook #2: ` without a name), the
    /// span of its header, and its name (checked; empty when missing) with that name's span.
    /// `array_error` is the message when the value is not an array of tables (None: say nothing).
    pub(super) fn named_tables<T: DeserializeOwned>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        label: &str,
        what: &str,
        array_error: Option<&str>,
        name_of: impl Fn(&T) -> Option<&Spanned<String>>,
    ) -> Vec<Named<T>> {
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            if let Some(message) = array_error {
                self.at(span, "", message);
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let header = item.span();
            let ctx = match item.get_ref().get("name").and_then(|v| v.get_ref().as_str()) {
                Some(name) => format!("{label} \"{name}\": "),
                None => format!("{label} #{}: ", index + 1),
            };
            let Some(raw) = self.de::<T>(item, &ctx) else { continue };
            let (name, name_span) = match name_of(&raw) {
                Some(n) => {
                    self.check_name(n, what, &ctx);
                    (n.get_ref().clone(), n.span())
                }
                None => {
                    self.at(header.clone(), &ctx, "missing key \"name\"");
                    (String::new(), header.clone())
                }
            };
            out.push(Named { raw, ctx, header, name, name_span });
        }
        out
    }

    /// A name already given in `earlier` (name, span): located, with the line of the first.
    pub(super) fn duplicate_name<'n>(
        &mut self,
        earlier: impl IntoIterator<Item = (&'n str, &'n Range<usize>)>,
        named: (&str, &Range<usize>),
        what: &str,
        ctx: &str,
    ) {
        let (name, span) = named;
        if name.is_empty() {
            return;
        }
        if let Some((_, first)) = earlier.into_iter().find(|(n, _)| *n == name) {
            let line = locate(self.text, first.start).line;
            self.at(span.clone(), ctx, format!("duplicate {what} name (first defined on line {line})"));
        }
    }

    fn webhooks(&mut self, value: Spanned<DeValue<'_>>) -> Vec<WebhookConfig> {
        let array_error = "`webhook` must be an array of tables: write each webhook as [[webhook]]";
        let tables = self
            .named_tables::<RawWebhook>(value, "webhook", "webhook", Some(array_error), |r| r.name.as_ref());
        let mut out: Vec<(WebhookConfig, Range<usize>)> = Vec::new();
        for Named { raw, ctx, header, name, name_span } in tables {
            if name == DESKTOP_CHANNEL {
                self.at(
                    name_span.clone(),
                    &ctx,
                    "the name \"desktop\" is reserved for desktop notifications",
                );
            }
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
            self.duplicate_name(
                out.iter().map(|(w, s)| (w.name.as_str(), s)),
                (&webhook.name, &name_span),
                "webhook",
                &ctx,
            );
            out.push((webhook, name_span));
        }
        out.into_iter().map(|(w, _)| w).collect()
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

    fn discovery(&mut self, raw: RawDiscovery) -> DiscoveryConfig {
        let ctx = "[discovery]: ";
        let d = DiscoveryConfig::default();
        let choices = [("auto", DiscoveryMode::Auto), ("scan", DiscoveryMode::Scan)];
        DiscoveryConfig {
            mode: raw.mode.as_ref().and_then(|m| self.choice(m, "mode", ctx, &choices)).unwrap_or(d.mode),
            scan_every: self.duration(raw.scan_every, "scan_every", ctx, SCAN_EVERY).unwrap_or(d.scan_every),
            rescan_every: self
                .duration(raw.rescan_every, "rescan_every", ctx, RESCAN_EVERY)
                .unwrap_or(d.rescan_every),
        }
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

    // ----- value helpers -----

    fn check_name(&mut self, name: &Spanned<String>, what: &str, ctx: &str) {
        let n = name.get_ref();
        if !valid_name(n) {
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
pub(in crate::config) fn locate(text: &str, offset: usize) -> Location {
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
pub(in crate::config) fn resolve_program(
    program: &str,
    cwd: Option<&Path>,
    path_var: Option<&OsStr>,
) -> Result<PathBuf, String> {
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
    // A bare name: the directories of `path_var` in order (`cwd` only matters for a name with a `/`).
    which::which_in(program, path_var, cwd.unwrap_or(Path::new("/")))
        .map_err(|_| format!("command `{program}` not found on PATH"))
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
