//! The web UI, served from disk at `/`: the files `npm run build` wrote to `ui/dist`. This module only
//! maps a path to a file of that directory (or to `index.html`, for the UI's own routes); it never
//! touches `/api/v1`, and it never serves anything outside the directory: a path is made only of normal
//! components (no `..`, no dot-files), and what it names must be a regular file whose canonical path
//! (symlinks resolved) is inside the directory's own canonical path.
//!
//! The directory is looked up on every request, so a UI built while `tend serve` runs is picked up:
//! `TEND_UI_DIR` when set, else `ui/dist` of the workspace this binary was built from. Without either, a
//! small page says how to build the UI.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

/// Where the built UI is, if it is built.
pub fn ui_dir() -> Option<PathBuf> {
    let candidates = std::env::var_os("TEND_UI_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::iter::once(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/dist")));
    candidates.into_iter().find(|d| d.join("index.html").is_file())
}

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tend</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}
code{background:#8882;padding:0 .25rem;border-radius:3px}</style></head>
<body><h1>Tend is running; its web UI is not built</h1>
<p>The API is up at <a href="/api/v1/health"><code>/api/v1</code></a>. To get the console in this browser,
build the UI from the repository root and reload this page:</p>
<pre><code>make ui</code></pre>
<p>(that is <code>npm ci &amp;&amp; npm run build</code> in <code>ui/</code>), or point <code>TEND_UI_DIR</code>
at a directory holding a built UI.</p></body></html>"#;

/// The fallback of the whole router: a file of the UI, `index.html` for a client route, or a note.
pub async fn serve(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, "method not allowed").into_response();
    }
    let Some(dir) = ui_dir() else {
        return Html(NOT_BUILT).into_response();
    };
    let Some(rel) = safe_relative(uri.path()) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    if !rel.as_os_str().is_empty() {
        match inside(&dir, &rel) {
            Found::File(file) => return send(&file, rel.starts_with("assets")).await,
            // Something is there, but not a regular file of the directory (a symlink out of it, a
            // directory, a device): refused, never followed and never replaced by index.html.
            Found::Refused => return (StatusCode::NOT_FOUND, "not found").into_response(),
            Found::Nothing => {}
        }
    }
    // A path with a file extension that is not there is a missing file, not a client route.
    if rel.extension().is_some() {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    match inside(&dir, Path::new("index.html")) {
        Found::File(index) => send(&index, false).await,
        Found::Refused | Found::Nothing => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

enum Found {
    /// A regular file whose canonical path is inside the directory: this path may be read.
    File(PathBuf),
    /// The path exists but leads out of the directory, or to something that is not a regular file.
    Refused,
    /// Nothing there (or a directory of the UI): the path may be one of the UI's client routes.
    Nothing,
}

/// `rel` under `dir`, only if it resolves (symlinks and all) to a regular file inside `dir`'s own
/// canonical path. A symlink planted in the UI directory that points elsewhere is `Refused`.
fn inside(dir: &Path, rel: &Path) -> Found {
    let path = dir.join(rel);
    if std::fs::symlink_metadata(&path).is_err() {
        return Found::Nothing;
    }
    let (Ok(root), Ok(real)) = (dir.canonicalize(), path.canonicalize()) else { return Found::Refused };
    if !real.starts_with(&root) {
        return Found::Refused;
    }
    match std::fs::metadata(&real) {
        Ok(m) if m.is_file() => Found::File(real),
        // A directory of the UI is no file to send; its path may be one of the UI's routes.
        Ok(m) if m.is_dir() => Found::Nothing,
        _ => Found::Refused,
    }
}

/// The path as a relative path made only of normal components, or `None` when it tries to leave.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." || seg.contains('\\') || seg.contains('\0') || seg.starts_with('.') {
            return None;
        }
        out.push(seg);
    }
    Some(out)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn send(path: &Path, immutable: bool) -> Response {
    match tokio::fs::read(path).await {
        Ok(bytes) => {
            let mut res = Response::new(Body::from(bytes));
            let h = res.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
            // Vite names assets by content hash: they never change. index.html must always be fresh.
            let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            res
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read a UI file");
            (StatusCode::NOT_FOUND, "not found").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_never_leave_the_directory() {
        assert_eq!(safe_relative("/"), Some(PathBuf::new()));
        assert_eq!(safe_relative("/assets/index-abc.js"), Some(PathBuf::from("assets/index-abc.js")));
        assert_eq!(safe_relative("/workers/demo-2"), Some(PathBuf::from("workers/demo-2")));
        assert_eq!(safe_relative("/../etc/passwd"), None);
        assert_eq!(safe_relative("/assets/../../x"), None);
        assert_eq!(safe_relative("/.git/config"), None);
        assert_eq!(safe_relative("/a\\..\\b"), None);
    }

    #[test]
    fn only_regular_files_inside_the_directory_are_found() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
        let ui = tempfile::tempdir().unwrap();
        let dir = ui.path();
        std::fs::create_dir(dir.join("assets")).unwrap();
        std::fs::write(dir.join("assets/app.js"), "js").unwrap();
        std::fs::write(dir.join("index.html"), "<html>").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), dir.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.join("out")).unwrap();
        std::os::unix::fs::symlink("assets/app.js", dir.join("alias.js")).unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("dangling.txt")).unwrap();
        let found = |rel: &str| match inside(dir, Path::new(rel)) {
            Found::File(p) => {
                format!("file {}", p.strip_prefix(dir.canonicalize().unwrap()).unwrap().display())
            }
            Found::Refused => "refused".to_owned(),
            Found::Nothing => "nothing".to_owned(),
        };
        assert_eq!(found("assets/app.js"), "file assets/app.js");
        assert_eq!(found("alias.js"), "file assets/app.js", "a link within the directory is fine");
        assert_eq!(found("leak.txt"), "refused");
        assert_eq!(found("out/secret.txt"), "refused");
        assert_eq!(found("dangling.txt"), "refused");
        assert_eq!(found("assets"), "nothing", "a directory is not a file");
        assert_eq!(found("out"), "refused", "a directory outside is refused");
        assert_eq!(found("missing.js"), "nothing");
    }

    #[test]
    fn known_types_get_their_content_type() {
        assert_eq!(content_type(Path::new("index.html")), "text/html; charset=utf-8");
        assert_eq!(content_type(Path::new("assets/x.js")), "text/javascript; charset=utf-8");
        assert_eq!(content_type(Path::new("x.unknown")), "application/octet-stream");
    }
}
