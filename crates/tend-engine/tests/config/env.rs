//! `TEND_*` overrides, read through an injected lookup.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

const TEXT: &str = "[[pool]]\nname = \"a\"\ncommand = [\"x\"]\nsize = 1\n[[pool]]\nname = \"off\"\nsource = \"reported\"\nprofile = \"disabled\"\n";

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| map.get(name).cloned()
}

#[test]
fn overrides_apply() {
    let mut config = super::parse(&format!("[server]\ninsecure_http = true\n{TEXT}")).unwrap();
    config
        .apply_env(vars(&[
            ("TEND_LISTEN", "0.0.0.0:9999"),
            ("TEND_TOKEN", "t0ken"),
            ("TEND_DATA_DIR", "/tmp/tend-data"),
            ("TEND_INTERVAL", "500ms"),
        ]))
        .unwrap();
    assert_eq!(config.server.listen, "0.0.0.0:9999".parse().unwrap());
    assert_eq!(config.server.token.as_deref(), Some("t0ken"));
    assert_eq!(config.store.data_dir, Some(PathBuf::from("/tmp/tend-data")));
    assert_eq!(config.pools[0].effective_interval(), Some(Duration::from_millis(500)));
    // A disabled pool stays unsampled.
    assert_eq!(config.pools[1].interval, None);
    assert_eq!(config.pools[1].effective_interval(), None);
}

#[test]
fn nothing_set_changes_nothing() {
    let mut config = super::parse(TEXT).unwrap();
    let before = config.clone();
    config.apply_env(vars(&[("TEND_LISTEN", "")])).unwrap();
    assert_eq!(config, before);
}

#[test]
fn bad_values_name_the_variable() {
    let mut config = super::parse(TEXT).unwrap();
    let err = config
        .apply_env(vars(&[("TEND_LISTEN", "localhost"), ("TEND_INTERVAL", "five seconds")]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "TEND_LISTEN: invalid listen address \"localhost\": use an IP address and a port, like 127.0.0.1:7878 or \
         [::1]:7878\n\
         TEND_INTERVAL: invalid duration \"five seconds\": use a number with a unit: 500ms, 5s, 2m, 1h, 1d (combinations \
         like 1h30m are allowed)"
    );
    let err = config.apply_env(vars(&[("TEND_INTERVAL", "10ms")])).unwrap_err();
    assert_eq!(err.to_string(), "TEND_INTERVAL: interval \"10ms\" is too short: the minimum is 100ms");
}

#[test]
fn a_public_address_needs_a_token() {
    let mut config = super::parse(TEXT).unwrap();
    let err = config.apply_env(vars(&[("TEND_LISTEN", "0.0.0.0:7878")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tend.toml: the server listens on 0.0.0.0:7878, which is not a loopback address: set `token` in [server] \
         or TEND_TOKEN, or add [[server.token]] entries"
    );
}

#[test]
fn the_token_check_is_callable_after_later_overrides() {
    let mut config = super::parse("[server]\nlisten = \"0.0.0.0:7878\"\n").unwrap();
    assert_eq!(
        config.check_server().unwrap_err().to_string(),
        "tend.toml: the server listens on 0.0.0.0:7878, which is not a loopback address: set `token` in [server] \
         or TEND_TOKEN, or add [[server.token]] entries"
    );
    config.apply_env(vars(&[("TEND_TOKEN", "t"), ("TEND_INSECURE_HTTP", "true")])).unwrap();
    config.check_server().unwrap();
}
