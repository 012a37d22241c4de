//! Tend's desktop shell (Tauri v2): the only crate that knows Tauri. It starts the engine (the embedded
//! demo when there is no config), exposes the App facade to the UI as commands (`commands`) and a
//! `Channel` of events, shows desktop notifications through the engine's budget (`notifier`), and owns
//! the tray, single instance and window state. It must never decide anything about workers: every
//! decision is the engine's, every command a thin call to the facade.

pub mod commands;
mod dialog;
pub mod error;
pub mod hosts;
mod keyring;
pub mod notifier;
mod tray;

use std::path::PathBuf;
use std::sync::Arc;

use tauri::{Emitter, Manager, RunEvent};
use tend_engine::config::{self, Config};
use tend_engine::{App, AppOptions};

/// The event the window receives (a worker id) when a notification about that worker is clicked.
pub const OPEN_WORKER: &str = "open-worker";

/// What the command line gave.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
}

/// The config file, or the embedded demo; then the `TEND_*` overrides and `--data-dir`.
pub fn load_config(opts: &Options) -> anyhow::Result<Config> {
    let overrides = config::Overrides { listen: None, data_dir: opts.data_dir.clone() };
    config::resolve(opts.config.as_deref(), |k| std::env::var(k).ok(), &overrides)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Ctrl-C or SIGTERM.
async fn termination() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// What `$TEND_EXE` (the demo's workers) runs: the headless `tend` beside this executable when there is
/// one, else this executable (`tend-desktop demo-worker` works too). `tend` is preferred because a
/// process of `tend-desktop` maps WebKitGTK at start: ~55 MiB more resident memory per demo worker,
/// which would put the demo's well-behaved workers over its 60 MiB alert.
fn worker_exe() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let tend = me.with_file_name("tend");
    tend.is_file().then_some(tend)
}

/// The Tauri builder with every plugin and command, without the engine (which `run` starts).
pub fn builder<R: tauri::Runtime>() -> tauri::Builder<R> {
    tauri::Builder::<R>::new()
        .plugin(tauri_plugin_dialog::init())
        .manage(commands::LiveFeeds::default())
        .invoke_handler(tauri::generate_handler![
            commands::health,
            commands::hosts,
            commands::add_host,
            commands::remove_host,
            commands::workers,
            commands::worker,
            commands::worker_events,
            commands::pools,
            commands::alerts,
            commands::recycle,
            commands::stop,
            commands::acknowledge,
            commands::silence,
            commands::subscribe,
            commands::history,
            commands::recycles,
            commands::export_csv,
            commands::save_file,
            commands::settings,
            commands::live,
            commands::live_scope,
        ])
}

/// Run the desktop app until its window closes or the tray says quit; workers are drained on the way out.
pub fn run(opts: Options) -> anyhow::Result<()> {
    let cfg = load_config(&opts)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    tauri::async_runtime::set(runtime.handle().clone());
    let rt = runtime.handle().clone();
    let config_path = opts.config.clone();
    let app = builder()
        // First: a second launch only brings the running window forward (and starts no engine).
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| tray::show_main(app)))
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .setup(move |tauri_app| {
            let _guard = rt.enter();
            let demo = config_path.is_none();
            let engine =
                App::start(cfg, AppOptions { config_path, exe: worker_exe(), ..Default::default() })?;
            if demo {
                tracing::info!("no config given: running the demo pool (tend-desktop --config tend.toml)");
            }
            // A click on a notification about a worker brings the window forward on that worker's page.
            let opener = tauri_app.handle().clone();
            let on_open: notifier::OnOpen = Arc::new(move |worker: String| {
                tray::show_main(&opener);
                if let Err(e) = opener.emit_to("main", OPEN_WORKER, worker) {
                    tracing::warn!(error = %e, "cannot open the worker's page");
                }
            });
            let notify = engine.start_notifications(Arc::new(notifier::DesktopNotifier::opening(on_open)));
            tauri_app.manage(engine.clone());
            hosts::restore(tauri_app.handle(), &engine);
            let failed = engine.clone();
            if let Err(e) = tray::start(tauri_app.handle(), engine, notify) {
                tracing::warn!(error = %e, "no tray icon");
            }
            // A failed engine (a defect) has drained its workers: quit with a failure, never a window
            // that shows a fleet nobody watches any more.
            let handle = tauri_app.handle().clone();
            tauri::async_runtime::spawn(async move {
                if let Err(e) = failed.engine_ended().await {
                    tracing::error!(error = %e, "the engine failed; its workers were stopped: quitting");
                    handle.exit(1);
                }
            });
            // SIGTERM or Ctrl-C quit like the window's close button: workers drained, window state saved.
            let handle = tauri_app.handle().clone();
            tauri::async_runtime::spawn(async move {
                termination().await;
                tracing::info!("signal received: quitting");
                handle.exit(0);
            });
            Ok(())
        })
        .build(tauri::generate_context!())?;
    app.run(|handle, event| {
        if let RunEvent::Exit = event
            && let Some(engine) = handle.try_state::<App>()
        {
            tracing::info!("shutting down: stopping workers");
            tauri::async_runtime::block_on(engine.shutdown());
        }
    });
    drop(runtime);
    Ok(())
}
