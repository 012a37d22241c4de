//! The `[server]` section: where it listens, its TLS files, and its tokens with their roles.

use super::*;

impl Checker<'_> {
    pub(super) fn server(&mut self, value: Spanned<DeValue<'_>>) -> ServerConfig {
        let ctx = "[server]: ";
        let span = value.span();
        // `token` is either the one shared secret (a string) or the named tokens ([[server.token]]).
        let mut named = None;
        let value = match value.into_inner() {
            DeValue::Table(table) => {
                let mut rest = DeTable::new();
                for (k, v) in table {
                    if k.get_ref().as_ref() == "token" && matches!(v.get_ref(), DeValue::Array(_)) {
                        named = Some(v);
                    } else {
                        rest.insert(k, v);
                    }
                }
                DeValue::Table(rest)
            }
            other => other,
        };
        let mut server = ServerConfig::default();
        let Some(raw) = self.de::<RawServer>(Spanned::new(span, value), ctx) else { return server };
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
        server.insecure_http = raw.insecure_http.is_some_and(Spanned::into_inner);
        if let Some(tls) = raw.tls {
            let span = tls.span();
            let tls = tls.into_inner();
            let mut file = |key: &str, v: S<String>| match v {
                Some(p) => self.readable_file(&p, key, "[server] tls: "),
                None => {
                    self.at(span.clone(), ctx, format!("`tls` needs `{key}` (a PEM file)"));
                    None
                }
            };
            let cert = file("cert", tls.cert);
            let key = file("key", tls.key);
            if let (Some(cert), Some(key)) = (cert, key) {
                server.tls = Some(TlsConfig { cert, key });
            }
        }
        if let Some(named) = named {
            server.tokens = self.tokens(named);
        }
        server
    }

    fn tokens(&mut self, value: Spanned<DeValue<'_>>) -> Vec<TokenConfig> {
        let tables =
            self.named_tables::<RawToken>(value, "[[server.token]]", "token", None, |r| r.name.as_ref());
        let mut out: Vec<(TokenConfig, Range<usize>)> = Vec::new();
        for Named { raw, ctx, header, name, name_span } in tables {
            let role = match &raw.role {
                Some(r) => self.choice(r, "role", &ctx, &Role::ALL),
                None => {
                    self.at(header.clone(), &ctx, "missing key \"role\" (viewer, operator or reporter)");
                    None
                }
            };
            let (secret, secret_env) = match (&raw.secret_file, &raw.secret_env) {
                (Some(file), None) => (self.secret_file(file, "secret_file", &ctx), None),
                (None, Some(var)) => {
                    if var.get_ref().is_empty() {
                        self.at(var.span(), &ctx, "`secret_env` must name an environment variable");
                    }
                    (None, Some(var.get_ref().clone()))
                }
                (Some(_), Some(var)) => {
                    self.at(var.span(), &ctx, "set `secret_file` or `secret_env`, not both");
                    (None, None)
                }
                (None, None) => {
                    self.at(
                        header.clone(),
                        &ctx,
                        "missing key \"secret_file\" or \"secret_env\" (a secret is never written inline)",
                    );
                    (None, None)
                }
            };
            self.duplicate_name(
                out.iter().map(|(t, s)| (t.name.as_str(), s)),
                (&name, &name_span),
                "token",
                &ctx,
            );
            if let Some(secret) = &secret
                && let Some((other, _)) = out.iter().find(|(t, _)| t.secret.as_ref() == Some(secret))
            {
                let message =
                    format!("the same secret as token \"{}\": each token needs its own", other.name);
                self.at(name_span.clone(), &ctx, message);
            }
            let Some(role) = role else { continue };
            out.push((TokenConfig { name, role, secret, secret_env }, name_span));
        }
        out.into_iter().map(|(t, _)| t).collect()
    }

    /// A path of the config, relative to the config file's directory.
    pub(super) fn config_path(&self, p: &str) -> PathBuf {
        let path = PathBuf::from(p);
        match Path::new(self.origin).parent() {
            Some(dir) if path.is_relative() && !self.origin.starts_with('<') => dir.join(path),
            _ => path,
        }
    }

    /// A file that must exist and be readable (the server reads it at start and on every change).
    pub(super) fn readable_file(&mut self, value: &Spanned<String>, key: &str, ctx: &str) -> Option<PathBuf> {
        let path = self.config_path(value.get_ref());
        match std::fs::File::open(&path).and_then(|f| f.metadata()) {
            Ok(m) if m.is_file() => Some(path),
            Ok(_) => {
                self.at(value.span(), ctx, format!("`{key}` {}: not a regular file", path.display()));
                None
            }
            Err(e) => {
                self.at(value.span(), ctx, format!("`{key}` {}: cannot read: {e}", path.display()));
                None
            }
        }
    }

    /// A secret from its file: readable by its owner only, one line, long enough.
    pub(super) fn secret_file(&mut self, value: &Spanned<String>, key: &str, ctx: &str) -> Option<String> {
        self.secret_file_with(value, key, ctx, check_secret)
    }

    pub(super) fn secret_file_with(
        &mut self,
        value: &Spanned<String>,
        key: &str,
        ctx: &str,
        check: fn(&str) -> Result<String, String>,
    ) -> Option<String> {
        let path = self.readable_file(value, key, ctx)?;
        let refuse = |c: &mut Self, why: String| {
            c.at(value.span(), ctx, format!("`{key}` {}: {why}", path.display()));
            None
        };
        if let Some(mode) = file_mode(&path)
            && mode & 0o077 != 0
        {
            return refuse(
                self,
                format!(
                    "other users may read or change it (mode {:04o}): run `chmod 600 {}`",
                    mode & 0o7777,
                    path.display()
                ),
            );
        }
        let text = match read_small(&path) {
            Ok(t) => t,
            Err(e) => return refuse(self, e),
        };
        match check(&text) {
            Ok(secret) => Some(secret),
            Err(why) => refuse(self, why),
        }
    }
}

/// A secret as written in its file or variable: surrounding whitespace (the final newline) dropped,
/// one line, at least [`MIN_SECRET_LEN`] characters.
pub(in crate::config) fn check_secret(text: &str) -> Result<String, String> {
    check_secret_min(text, MIN_SECRET_LEN)
}

/// A token to send (a remote's): one line, not empty; its length is the agent's business.
pub(in crate::config) fn check_token(text: &str) -> Result<String, String> {
    check_secret_min(text, 1)
}

fn check_secret_min(text: &str, min: usize) -> Result<String, String> {
    let secret = text.trim();
    if secret.is_empty() {
        return Err("the secret is empty".into());
    }
    if secret.contains(['\n', '\r']) || secret.chars().any(char::is_control) {
        return Err("the secret must be one line of printable characters".into());
    }
    if secret.len() < min {
        return Err(format!(
            "the secret is {} characters: use at least {min} (e.g. `openssl rand -hex 32`)",
            secret.len()
        ));
    }
    Ok(secret.to_owned())
}

fn read_small(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_string(&mut text))
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(text)
}

#[cfg(unix)]
fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode())
}

#[cfg(not(unix))]
fn file_mode(_: &Path) -> Option<u32> {
    None
}
