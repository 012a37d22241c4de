//! The one validation path of `tend serve` and `tend check-config`: the file, then the `TEND_*`
//! environment, then the command line, then the server check.

use super::*;

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
        if let Some(v) = get("TEND_INSECURE_HTTP") {
            match v.as_str() {
                "1" | "true" => self.server.insecure_http = true,
                "0" | "false" => self.server.insecure_http = false,
                _ => problem("TEND_INSECURE_HTTP", format!("invalid value \"{v}\": use 1, true, 0 or false")),
            }
        }
        for remote in &mut self.remotes {
            let Some(var) = remote.token_env.clone() else { continue };
            match get(&var).map(|v| check::check_token(&v)) {
                Some(Ok(secret)) => remote.token = Some(secret),
                Some(Err(why)) => problem(&var, format!("the token of remote \"{}\": {why}", remote.name)),
                None => problem(&var, format!("not set: remote \"{}\" reads its token from it", remote.name)),
            }
        }
        for token in &mut self.server.tokens {
            let Some(var) = token.secret_env.clone() else { continue };
            match get(&var).map(|v| check::check_secret(&v)) {
                Some(Ok(secret)) => token.secret = Some(secret),
                Some(Err(why)) => problem(&var, format!("the secret of token \"{}\": {why}", token.name)),
                None => problem(&var, format!("not set: token \"{}\" reads its secret from it", token.name)),
            }
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

    /// A server on a non-loopback address must have a token (brief §10), and TLS unless
    /// `insecure_http = true` says plain HTTP is meant. [`Config::apply_env`] ends with this check;
    /// call it again after any later override of `listen` or `token` (CLI flags).
    pub fn check_server(&self) -> Result<(), ConfigError> {
        match self.server.exposure_problem() {
            Some(message) => Err(ConfigError::single(&self.origin, message)),
            None => Ok(()),
        }
    }
}

impl ServerConfig {
    /// Why this server may not listen where it would: a non-loopback address without a token, or
    /// without TLS unless `insecure_http` says so. `tend serve` asks again before it binds.
    pub fn exposure_problem(&self) -> Option<String> {
        if self.listen.ip().is_loopback() {
            return None;
        }
        if !self.has_tokens() {
            return Some(format!(
                "the server listens on {}, which is not a loopback address: \
                 set `token` in [server] or TEND_TOKEN, or add [[server.token]] entries",
                self.listen
            ));
        }
        if self.tls.is_none() && !self.insecure_http {
            return Some(format!(
                "the server listens on {}, which is not a loopback address, without TLS: \
                 set `tls = {{ cert = \"cert.pem\", key = \"key.pem\" }}` in [server], \
                 or `insecure_http = true` (TEND_INSECURE_HTTP=1) if plain HTTP on this network is meant",
                self.listen
            ));
        }
        None
    }
}

pub(super) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        format!(
            "invalid listen address \"{s}\": use an IP address and a port, like 127.0.0.1:7878 or [::1]:7878"
        )
    })
}
