//! Agents added from the Hosts screen: kept in the app's config directory (`hosts.json`: name, URL,
//! CA file, where the token is) and read back when the app starts. Each token goes to the session's
//! keyring (the Secret Service, `keyring.rs`) when there is one and it is open, else to a file of its
//! own that only its owner may read (`hosts/<name>.token`, mode 0600 in a 0700 directory). The engine
//! watches them like the config's `[[remote]]`; the Hosts screen says where each token is kept.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Manager, Runtime};
use tend_engine::App;
use tend_engine::api::ErrorCode;
use tend_engine::config::RemoteConfig;

use crate::error::{CmdError, CmdResult};

/// An agent as the Hosts screen sends it.
#[derive(Clone, Debug, Deserialize)]
pub struct NewHost {
    pub name: String,
    pub url: String,
    pub token: String,
    pub ca: Option<String>,
}

/// Where an agent's token is kept.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Kept {
    /// It sends none.
    None,
    Keyring,
    File,
}

/// What `hosts.json` keeps of an agent (never its token).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Saved {
    name: String,
    url: String,
    ca: Option<String>,
    token: Kept,
}

/// The app's own directory for agents (under its config directory).
fn dir<R: Runtime>(app: &AppHandle<R>) -> CmdResult<PathBuf> {
    let dir = app
        .path()
        .app_config_dir()
        .map_err(|e| CmdError::new(ErrorCode::IoError, format!("no config directory for the app: {e}")))?;
    Ok(dir)
}

fn io(what: &str, path: &Path, e: std::io::Error) -> CmdError {
    CmdError::new(ErrorCode::IoError, format!("cannot {what} {}: {e}", path.display()))
}

fn token_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("hosts").join(format!("{name}.token"))
}

fn read_saved(dir: &Path) -> Vec<Saved> {
    let path = dir.join("hosts.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), error = %e, "unreadable list of added hosts: ignored");
            Vec::new()
        }),
        Err(_) => Vec::new(),
    }
}

fn write_saved(dir: &Path, saved: &[Saved]) -> CmdResult<()> {
    let path = dir.join("hosts.json");
    let tmp = dir.join("hosts.json.tmp");
    let text =
        serde_json::to_vec_pretty(saved).map_err(|e| CmdError::new(ErrorCode::IoError, e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    std::fs::write(&tmp, text).map_err(|e| io("write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("write", &path, e))
}

/// Writes the token where only its owner may read it.
fn write_token(path: &Path, token: &str) -> CmdResult<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(|e| io("create", parent, e))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("write", path, e))?;
    f.write_all(format!("{token}\n").as_bytes()).map_err(|e| io("write", path, e))
}

/// The token of a saved agent, refused (with a warning) when others may read its file.
fn read_token(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(file = %path.display(), "a token file other users may read: not used (chmod 600 it)");
        return None;
    }
    std::fs::read_to_string(path).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

fn remote(dir: &Path, s: &Saved, token: Option<String>) -> RemoteConfig {
    let path = token_path(dir, &s.name);
    let token_source = match s.token {
        Kept::None => None,
        Kept::Keyring => Some(crate::keyring::WHERE.to_owned()),
        Kept::File => Some(format!("file {} (mode 0600)", path.display())),
    };
    RemoteConfig {
        name: s.name.clone(),
        url: s.url.trim_end_matches('/').to_owned(),
        token_source,
        token,
        token_env: None,
        ca: s.ca.as_ref().map(PathBuf::from),
        added_here: true,
    }
}

/// Watch the agents saved by earlier runs (at start).
pub fn restore<R: Runtime>(app: &AppHandle<R>, engine: &App) {
    let Ok(dir) = dir(app) else { return };
    for s in read_saved(&dir) {
        let token = match s.token {
            Kept::None => None,
            Kept::File => read_token(&token_path(&dir, &s.name)),
            Kept::Keyring => crate::keyring::load(&s.name).unwrap_or_else(|e| {
                tracing::warn!(host = %s.name, error = %e, "the host's token is not in reach");
                None
            }),
        };
        if let Err(e) = engine.add_remote(remote(&dir, &s, token)) {
            tracing::warn!(host = %s.name, error = %e, "a saved host could not be added");
        }
    }
}

/// Add an agent: watched at once, kept for the next start.
pub fn add<R: Runtime>(app: &AppHandle<R>, engine: &App, host: NewHost) -> CmdResult<()> {
    let dir = dir(app)?;
    let token = host.token.trim().to_owned();
    let name = host.name.trim().to_owned();
    let ca = host.ca.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
    if let Some(ca) = &ca
        && let Err(e) = std::fs::metadata(ca)
    {
        return Err(CmdError::new(ErrorCode::BadRequest, format!("field \"ca\": cannot read {ca}: {e}")));
    }
    // The keyring first; a file only its owner may read when there is none (or it is locked).
    let kept = if token.is_empty() {
        Kept::None
    } else if tend_engine::config::valid_name(&name)
        && crate::keyring::store(&name, &token)
            .inspect_err(|e| tracing::info!(error = %e, "token kept in a file"))
            .is_ok()
    {
        Kept::Keyring
    } else {
        Kept::File
    };
    let saved = Saved { name, url: host.url.trim().to_owned(), ca, token: kept };
    let cfg = remote(&dir, &saved, (kept != Kept::None).then(|| token.clone()));
    if let Err(e) = engine.add_remote(cfg) {
        if kept == Kept::Keyring {
            let _ = crate::keyring::delete(&saved.name);
        }
        return Err(e.into());
    }
    let path = token_path(&dir, &saved.name);
    let stored = if kept == Kept::File { write_token(&path, &token) } else { Ok(()) };
    let mut all = read_saved(&dir);
    all.retain(|s| s.name != saved.name);
    all.push(saved);
    if let Err(e) = stored.and_then(|()| write_saved(&dir, &all)) {
        let _ = engine.remove_remote(&all[all.len() - 1].name);
        return Err(e);
    }
    Ok(())
}

/// Forget an agent added here, and its token file.
pub fn remove<R: Runtime>(app: &AppHandle<R>, engine: &App, name: &str) -> CmdResult<()> {
    let dir = dir(app)?;
    let mut all = read_saved(&dir);
    if !all.iter().any(|s| s.name == name) {
        return Err(CmdError::new(
            ErrorCode::NotFound,
            format!("no host named {name:?} was added in the app"),
        ));
    }
    engine.remove_remote(name)?;
    all.retain(|s| s.name != name);
    write_saved(&dir, &all)?;
    let _ = std::fs::remove_file(token_path(&dir, name));
    if let Err(e) = crate::keyring::delete(name) {
        tracing::debug!(host = %name, error = %e, "no token to delete from the keyring");
    }
    Ok(())
}
