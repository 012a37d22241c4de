//! Where an export goes: a native save dialog (tauri-plugin-dialog), or, when `TEND_SAVE_DIR` is set
//! (scripted runs and the desktop E2E test), that directory without asking. It only picks a path; the
//! commands write the file.

use std::path::PathBuf;

use tauri_plugin_dialog::DialogExt;

pub async fn save_path<R: tauri::Runtime>(
    window: &tauri::Window<R>,
    name: &str,
    label: &str,
    extensions: &[&str],
) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TEND_SAVE_DIR") {
        return Some(PathBuf::from(dir).join(name));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    window.dialog().file().set_parent(window).set_file_name(name).add_filter(label, extensions).save_file(
        move |p| {
            let _ = tx.send(p.and_then(|p| p.into_path().ok()));
        },
    );
    rx.await.ok().flatten()
}
