//! Build script: generates Tauri's context (config, capabilities, embedded UI) and one `allow-<command>`
//! permission per command of `commands.rs`; the capability grants the set `allow-tend-commands`.

const COMMANDS: &[&str] = &[
    "health",
    "workers",
    "hosts",
    "add_host",
    "remove_host",
    "worker",
    "worker_events",
    "pools",
    "alerts",
    "recycle",
    "stop",
    "acknowledge",
    "silence",
    "subscribe",
    "history",
    "recycles",
    "export_csv",
    "save_file",
    "settings",
    "live",
    "live_scope",
];

fn main() {
    // A fresh clone has no built UI yet; Tauri refuses a missing `frontendDist`. Leave a page that
    // says how to build it (`make ui` replaces it with the real console).
    let dist = std::path::Path::new("../ui/dist");
    if !dist.join("index.html").exists() {
        let _ = std::fs::create_dir_all(dist);
        let _ = std::fs::write(
            dist.join("index.html"),
            "<!doctype html><title>Tend</title><p>The web UI is not built: run <code>make ui</code>, then rebuild.</p>",
        );
    }
    tauri_build::try_build(
        tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri build script");
}
