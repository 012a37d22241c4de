//! `[[remote]]`: the agents of a hub, with their URLs, tokens (from a file or the environment) and CAs.
#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn remote(body: &str) -> String {
    format!("[[remote]]\nname = \"gpu-1\"\n{body}\n")
}

#[test]
fn a_remote_reads_its_token_and_ca() {
    let dir = tempfile::tempdir().unwrap();
    let token = file(dir.path(), "gpu-1.token", "t0ken\n", 0o600);
    let ca = file(dir.path(), "ca.pem", "-----BEGIN CERTIFICATE-----\n", 0o644);
    let text = remote(&format!(
        "url = \"https://10.1.2.3:7878/\"\ntoken_file = {:?}\nca = {:?}",
        token.display().to_string(),
        ca.display().to_string()
    ));
    let cfg = super::parse(&text).unwrap();
    let r = &cfg.remotes[0];
    assert_eq!(r.name, "gpu-1");
    assert_eq!(r.url, "https://10.1.2.3:7878", "a trailing slash is dropped");
    assert_eq!(r.token.as_deref(), Some("t0ken"), "the agent decides how long its tokens are");
    assert_eq!(r.ca.as_deref(), Some(ca.as_path()));
    assert!(!format!("{cfg:?}").contains("t0ken"), "Debug never prints the token");

    let mut cfg =
        super::parse(&remote("url = \"http://127.0.0.2:7878\"\ntoken_env = \"GPU1_TOKEN\"")).unwrap();
    let e = cfg.apply_env(|_| None).unwrap_err().to_string();
    assert!(e.contains("GPU1_TOKEN: not set: remote \"gpu-1\" reads its token from it"), "{e}");
    cfg.apply_env(|k| (k == "GPU1_TOKEN").then(|| "abc".to_owned())).unwrap();
    assert_eq!(cfg.remotes[0].token.as_deref(), Some("abc"));
}

#[test]
fn bad_remotes_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let open = file(dir.path(), "open.token", "t0ken\n", 0o644);
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    let cases = [
        (remote("url = \"10.1.2.3:7878\""), "invalid url \"10.1.2.3:7878\": use https://host:port"),
        (remote("url = \"https://10.1.2.3:7878/api/v1\""), "give the agent's address only"),
        (remote(""), "missing key \"url\""),
        (
            remote(&format!("url = \"https://h:1\"\ntoken_file = {}", q(&open))),
            "other users may read or change it",
        ),
        (
            remote("url = \"https://h:1\"\ntoken_file = \"/nonexistent/t\""),
            "`token_file` /nonexistent/t: cannot read",
        ),
        (
            remote("url = \"https://h:1\"\nca = \"/nonexistent/ca.pem\""),
            "`ca` /nonexistent/ca.pem: cannot read",
        ),
        (remote("url = \"https://h:1\"\ntoken = \"inline\""), "unknown key \"token\""),
        (remote("url = \"https://h:1\"\ntoken_file = \"x\"\ntoken_env = \"Y\""), "not both"),
        (
            format!("{}{}", remote("url = \"https://a:1\""), remote("url = \"https://b:1\"")),
            "duplicate remote name",
        ),
        ("[[remote]]\nname = \"a b\"\nurl = \"https://h:1\"\n".to_owned(), "invalid remote name \"a b\""),
        ("remote = 3\n".to_owned(), "write each agent as [[remote]]"),
    ];
    for (text, want) in cases {
        let p = super::problems(&text);
        assert!(p.iter().any(|m| m.contains(want)), "{text}\nwant {want:?} in {p:?}");
        assert!(p.iter().all(|m| m.starts_with("tend.toml:")), "located: {p:?}");
    }
}
