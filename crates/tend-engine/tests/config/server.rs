//! `[server]`: named tokens with roles (secrets from files or the environment, never inline), TLS
//! files, and what a network address requires.
#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tend_engine::config::{self, Role};

const SECRET: &str = "0123456789abcdef0123";

fn secret_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn token(name: &str, role: &str, source: &str) -> String {
    format!("[[server.token]]\nname = \"{name}\"\nrole = \"{role}\"\n{source}\n")
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| map.get(name).cloned()
}

#[test]
fn named_tokens_read_their_secrets_from_files_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let ops = secret_file(dir.path(), "ops.token", &format!("{SECRET}\n"), 0o600);
    let text = format!(
        "{}{}",
        token("ops-laptop", "operator", &format!("secret_file = {:?}", ops.display().to_string())),
        token("wall", "viewer", "secret_env = \"TEND_WALL_TOKEN\""),
    );
    let mut cfg = super::parse(&text).unwrap();
    assert_eq!(cfg.server.token, None);
    assert_eq!(cfg.server.tokens.len(), 2);
    assert_eq!(cfg.server.tokens[0].secret.as_deref(), Some(SECRET), "the final newline is not part of it");
    assert_eq!(cfg.server.tokens[0].role, Role::Operator);
    assert_eq!(cfg.server.tokens[1].secret, None, "read from the environment later");
    cfg.apply_env(vars(&[("TEND_WALL_TOKEN", "wall-secret-0123456789"), ("TEND_TOKEN", "shared")])).unwrap();
    assert_eq!(cfg.server.token.as_deref(), Some("shared"), "the shared token stays beside the named ones");
    assert_eq!(cfg.server.tokens[1].secret.as_deref(), Some("wall-secret-0123456789"));
    let all = cfg.server.access_tokens();
    let names: Vec<(&str, Role)> = all.iter().map(|t| (t.name.as_str(), t.role)).collect();
    assert_eq!(names, [("ops-laptop", Role::Operator), ("wall", Role::Viewer), ("default", Role::Operator)]);
    assert!(!format!("{cfg:?}").contains(SECRET), "Debug never prints a named token's secret");
}

#[test]
fn a_missing_environment_secret_is_named() {
    let mut cfg = super::parse(&token("ci", "reporter", "secret_env = \"CI_TOKEN\"")).unwrap();
    let e = cfg.apply_env(vars(&[])).unwrap_err().to_string();
    assert!(e.contains("CI_TOKEN: not set: token \"ci\" reads its secret from it"), "{e}");
    let e = cfg.apply_env(vars(&[("CI_TOKEN", "short")])).unwrap_err().to_string();
    assert!(e.contains("CI_TOKEN: the secret of token \"ci\": the secret is 5 characters"), "{e}");
}

#[test]
fn a_secret_file_others_may_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        let f = secret_file(dir.path(), "t", SECRET, mode);
        let text = token("ops", "operator", &format!("secret_file = {:?}", f.display().to_string()));
        let p = super::problems(&text);
        assert_eq!(p.len(), 1, "{mode:o}: {p:?}");
        assert!(p[0].starts_with("tend.toml:4:15: [[server.token]] \"ops\": `secret_file`"), "{p:?}");
        assert!(
            p[0].contains(&format!("other users may read or change it (mode {mode:04o}): run `chmod 600")),
            "{p:?}"
        );
    }
}

#[test]
fn bad_tokens_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let good = secret_file(dir.path(), "good", SECRET, 0o600);
    let same = secret_file(dir.path(), "same", SECRET, 0o400);
    let short = secret_file(dir.path(), "short", "abc\n", 0o600);
    let two_lines = secret_file(dir.path(), "two", "0123456789abcdef\nsecond-line-here\n", 0o600);
    let q = |p: &Path| format!("secret_file = {:?}", p.display().to_string());
    let cases: Vec<(String, &str)> = vec![
        (
            token("a", "admin", &q(&good)),
            "invalid role \"admin\", expected one of: viewer, operator, reporter",
        ),
        ("[[server.token]]\nname = \"a\"\nsecret_file = \"x\"\n".into(), "missing key \"role\""),
        (token("a", "viewer", ""), "missing key \"secret_file\" or \"secret_env\""),
        (
            token("a", "viewer", "secret = \"inline\""),
            "unknown key \"secret\", expected one of: name, role, secret_file, secret_env",
        ),
        (token("a", "viewer", &format!("{}\nsecret_env = \"X\"", q(&good))), "not both"),
        (token("a", "viewer", "secret_file = \"/nonexistent/tend.token\""), "cannot read"),
        (token("a", "viewer", &q(&short)), "the secret is 3 characters: use at least 16"),
        (token("a", "viewer", &q(&two_lines)), "one line of printable characters"),
        (token("bad name", "viewer", &q(&good)), "invalid token name \"bad name\""),
        (
            format!("{}{}", token("a", "viewer", &q(&good)), token("a", "operator", "secret_env = \"X\"")),
            "duplicate token name (first defined on line 2)",
        ),
        (
            format!("{}{}", token("a", "viewer", &q(&good)), token("b", "operator", &q(&same))),
            "the same secret as token \"a\": each token needs its own",
        ),
    ];
    for (text, want) in cases {
        let p = super::problems(&text);
        assert!(p.iter().any(|m| m.contains(want)), "{text}\nwant {want:?} in {p:?}");
        assert!(p.iter().all(|m| m.starts_with("tend.toml:")), "located: {p:?}");
    }
}

#[test]
fn tls_files_must_be_readable_and_are_found_beside_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "x").unwrap();
    std::fs::write(dir.path().join("key.pem"), "x").unwrap();
    let path = dir.path().join("tend.toml");
    std::fs::write(&path, "[server]\ntls = { cert = \"cert.pem\", key = \"key.pem\" }\n").unwrap();
    let cfg = config::load(&path).unwrap();
    let tls = cfg.server.tls.unwrap();
    assert_eq!(tls.cert, dir.path().join("cert.pem"), "relative to the config file");
    assert_eq!(tls.key, dir.path().join("key.pem"));

    let p = super::problems(
        "[server]\ntls = { cert = \"/nonexistent/cert.pem\", key = \"/nonexistent/key.pem\" }\n",
    );
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].starts_with("tend.toml:2:16: [server] tls: `cert` /nonexistent/cert.pem: cannot read"),
        "{p:?}"
    );
    let p = super::problems("[server]\ntls = { cert = \"/etc\" }\n");
    assert!(p.iter().any(|m| m.contains("`cert` /etc: not a regular file")), "{p:?}");
    assert!(p.iter().any(|m| m.contains("`tls` needs `key` (a PEM file)")), "{p:?}");
}

#[test]
fn a_network_address_needs_a_token_and_tls_or_an_explicit_insecure_http() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("x.pem");
    std::fs::write(&pem, "x").unwrap();
    let tls = format!("tls = {{ cert = {0:?}, key = {0:?} }}\n", pem.display().to_string());
    let check = |server: &str, env: &[(&str, &str)]| {
        let mut cfg = super::parse(&format!("[server]\nlisten = \"0.0.0.0:7878\"\n{server}")).unwrap();
        cfg.apply_env(vars(env)).map_err(|e| e.to_string())
    };
    let e = check("", &[]).unwrap_err();
    assert!(e.contains("not a loopback address: set `token`"), "{e}");
    let e = check("", &[("TEND_TOKEN", "t")]).unwrap_err();
    assert!(e.contains("without TLS: set `tls = "), "{e}");
    assert!(e.contains("or `insecure_http = true`"), "{e}");
    check("insecure_http = true\n", &[("TEND_TOKEN", "t")]).unwrap();
    check(&tls, &[("TEND_TOKEN", "t")]).unwrap();
    let e = check(&format!("{tls}insecure_http = true\n"), &[]).unwrap_err();
    assert!(e.contains("set `token`"), "TLS does not replace a token: {e}");
    // Loopback needs neither.
    let mut cfg = super::parse("[server]\nlisten = \"127.0.0.2:7878\"\n").unwrap();
    cfg.apply_env(vars(&[])).unwrap();
}
