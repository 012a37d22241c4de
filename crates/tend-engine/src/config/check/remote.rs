//! `[[remote]]`: the agents a hub shows, each with its URL, its token (from a file or the
//! environment, never inline) and, optionally, the CA to trust.

use super::*;

impl Checker<'_> {
    pub(super) fn remotes(&mut self, value: Spanned<DeValue<'_>>) -> Vec<RemoteConfig> {
        let array_error = "`remote` must be an array of tables: write each agent as [[remote]]";
        let tables =
            self.named_tables::<RawRemote>(value, "remote", "remote", Some(array_error), |r| r.name.as_ref());
        let mut out: Vec<(RemoteConfig, Range<usize>)> = Vec::new();
        for Named { raw, ctx, header, name, name_span } in tables {
            let url = match &raw.url {
                Some(u) => {
                    if let Err(why) = RemoteConfig::check_url(u.get_ref()) {
                        self.at(u.span(), &ctx, why);
                    }
                    u.get_ref().trim_end_matches('/').to_owned()
                }
                None => {
                    self.at(header.clone(), &ctx, "missing key \"url\" (like https://10.1.2.3:7878)");
                    String::new()
                }
            };
            let (token, token_env) = match (&raw.token_file, &raw.token_env) {
                (Some(file), None) => {
                    (self.secret_file_with(file, "token_file", &ctx, server::check_token), None)
                }
                (None, Some(var)) => (None, Some(var.get_ref().clone())),
                (Some(_), Some(var)) => {
                    self.at(var.span(), &ctx, "set `token_file` or `token_env`, not both");
                    (None, None)
                }
                (None, None) => (None, None),
            };
            let ca = raw.ca.as_ref().and_then(|c| self.readable_file(c, "ca", &ctx));
            let token_source = match (&raw.token_file, &raw.token_env) {
                (Some(f), _) => Some(format!("file {}", self.config_path(f.get_ref()).display())),
                (None, Some(v)) => Some(format!("environment {}", v.get_ref())),
                (None, None) => None,
            };
            self.duplicate_name(
                out.iter().map(|(r, s)| (r.name.as_str(), s)),
                (&name, &name_span),
                "remote",
                &ctx,
            );
            let remote = RemoteConfig { name, url, token, token_env, ca, token_source, added_here: false };
            out.push((remote, name_span));
        }
        out.into_iter().map(|(r, _)| r).collect()
    }
}
