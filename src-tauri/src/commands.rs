//! The Tauri commands the UI calls: one-line wrappers over the engine's `App` facade (the same calls the
//! HTTP handlers make), plus the two that need the desktop (a native save dialog for exports and
//! charts). They parse, call, and shape; they never decide anything about workers. Every command must
//! be listed in `build.rs` and granted in `permissions/tend.toml`, or the UI cannot call it.

use std::path::PathBuf;

use futures::StreamExt;
use serde::Deserialize;
use tauri::State;
use tauri::ipc::Channel;

use tend_engine::App;
use tend_engine::api::{self, HealthDto, SettingsDto, WorkerDetailDto, WorkerDto};
use tend_engine::app::live::LiveControl;
use tend_engine::app::{CsvExport, Streamed, Window};

use crate::error::{CmdError, CmdResult};

/// Who the audit trail names for actions taken in the desktop app's window.
const DESKTOP: &str = "desktop";

#[tauri::command]
pub async fn health(app: State<'_, App>) -> CmdResult<HealthDto> {
    Ok(app.health().await?)
}

#[tauri::command]
pub async fn workers(app: State<'_, App>) -> CmdResult<Vec<WorkerDto>> {
    Ok(app.workers().await?)
}

/// The agents of `[[remote]]` in the desktop app's config, each with its status.
#[tauri::command]
pub fn hosts(app: State<'_, App>) -> Vec<api::HostDto> {
    app.hosts()
}

/// Add an agent from the Hosts screen (kept for the next start; see `hosts.rs`); every host after.
/// Async: it runs on the engine's runtime, where the agent's tasks start.
#[tauri::command]
pub async fn add_host<R: tauri::Runtime>(
    handle: tauri::AppHandle<R>,
    app: State<'_, App>,
    host: crate::hosts::NewHost,
) -> CmdResult<Vec<api::HostDto>> {
    crate::hosts::add(&handle, &app, host)?;
    Ok(app.hosts())
}

/// Forget an agent added from the Hosts screen; every host after.
#[tauri::command]
pub async fn remove_host<R: tauri::Runtime>(
    handle: tauri::AppHandle<R>,
    app: State<'_, App>,
    name: String,
) -> CmdResult<Vec<api::HostDto>> {
    crate::hosts::remove(&handle, &app, &name)?;
    Ok(app.hosts())
}

#[tauri::command]
pub async fn worker(app: State<'_, App>, id: String) -> CmdResult<WorkerDetailDto> {
    app.worker(&id)
        .await?
        .ok_or_else(|| CmdError::new(api::ErrorCode::NotFound, format!("no worker with id {id:?}")))
}

#[tauri::command]
pub async fn worker_events(app: State<'_, App>, id: String) -> CmdResult<Vec<api::Event>> {
    Ok(app.worker_events(&id, 0).await?)
}

#[tauri::command]
pub async fn pools(app: State<'_, App>) -> CmdResult<Vec<api::PoolMetrics>> {
    Ok(app.pools().await?)
}

#[tauri::command]
pub async fn alerts(app: State<'_, App>) -> CmdResult<Vec<api::Alert>> {
    Ok(app.alerts().await?)
}

#[tauri::command]
pub async fn recycle(app: State<'_, App>, id: String) -> CmdResult<()> {
    Ok(app.recycle(&id, DESKTOP).await?)
}

#[tauri::command]
pub async fn stop(app: State<'_, App>, id: String) -> CmdResult<()> {
    Ok(app.stop(&id, DESKTOP).await?)
}

#[tauri::command]
pub async fn acknowledge(app: State<'_, App>, rule: String, subject: String) -> CmdResult<()> {
    Ok(app.acknowledge(&rule, &subject, DESKTOP).await?)
}

/// `minutes = 0` lifts the silence.
#[tauri::command]
pub async fn silence(app: State<'_, App>, rule: String, subject: String, minutes: f64) -> CmdResult<()> {
    app.silence(&rule, &subject, minutes, DESKTOP).await?;
    Ok(())
}

/// Every event after `since` from the in-memory log, then live ones, on `channel` (until the page
/// that holds it goes away). The same stream as the HTTP API's SSE.
#[tauri::command]
pub async fn subscribe(app: State<'_, App>, since: u64, channel: Channel<api::Event>) -> CmdResult<()> {
    let mut stream = Box::pin(app.event_stream(Some(since)).await?);
    tauri::async_runtime::spawn(async move {
        while let Some(item) = stream.next().await {
            match item {
                Streamed::Event(ev) => {
                    if channel.send(*ev).is_err() {
                        return;
                    }
                }
                // The UI polls the state every second; a gap in the event log only thins its timeline.
                Streamed::Lagged(n) => tracing::warn!(missed = n, "UI event channel lagged"),
            }
        }
    });
    Ok(())
}

/// The live feed of each window, by label: what `live_scope` steers.
#[derive(Default)]
pub struct LiveFeeds(std::sync::Mutex<std::collections::HashMap<String, LiveControl>>);

/// Start the window's live feed on `channel`: once a second, the changes the screen in view draws
/// (instead of the UI polling). A new call (a reload of the page) replaces and ends the window's
/// earlier feed.
#[tauri::command]
pub async fn live<R: tauri::Runtime>(
    window: tauri::Window<R>,
    app: State<'_, App>,
    feeds: State<'_, LiveFeeds>,
    scope: api::LiveScope,
    channel: Channel<api::LiveUpdate>,
) -> CmdResult<()> {
    let (control, stream) = app.live_feed(scope);
    feeds.0.lock().unwrap_or_else(|e| e.into_inner()).insert(window.label().to_owned(), control);
    tauri::async_runtime::spawn(async move {
        let mut stream = Box::pin(stream);
        while let Some(update) = stream.next().await {
            if channel.send(update).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// The screen in view changed, or the window was hidden (`hidden`) or shown again.
#[tauri::command]
pub fn live_scope<R: tauri::Runtime>(
    window: tauri::Window<R>,
    feeds: State<'_, LiveFeeds>,
    scope: api::LiveScope,
) -> CmdResult<()> {
    let feeds = feeds.0.lock().unwrap_or_else(|e| e.into_inner());
    let control = feeds.get(window.label()).ok_or_else(|| {
        CmdError::new(api::ErrorCode::NotFound, "this window has no live feed: call live first")
    })?;
    control.set_scope(scope);
    Ok(())
}

/// A worker's metric over `[from, to)` (epoch ms) from the history tier that fits.
#[tauri::command]
pub async fn history(
    app: State<'_, App>,
    id: String,
    metric: String,
    from: i64,
    to: i64,
    step_ms: Option<i64>,
) -> CmdResult<api::History> {
    Ok(app.metric_history(&id, &metric, api::Timestamp(from), api::Timestamp(to), step_ms).await?)
}

#[tauri::command]
pub async fn recycles(app: State<'_, App>, from: i64, to: i64) -> CmdResult<Vec<api::RecycleRow>> {
    let w = Window { from: api::Timestamp(from), to: api::Timestamp(to), limit: 10_000 };
    Ok(app.recycle_history(None, None, w).await?)
}

#[derive(Deserialize)]
pub struct ExportQuery {
    kind: String,
    pool: Option<String>,
    worker: Option<String>,
    from: i64,
    to: i64,
    metrics: Option<Vec<String>>,
}

/// Where the file was written (`bytes`, `rows`), or None when the user cancelled the dialog.
#[derive(serde::Serialize)]
pub struct Saved {
    path: String,
    bytes: u64,
}

/// CSV from the history store, written where the user chooses in a native save dialog.
#[tauri::command]
pub async fn export_csv<R: tauri::Runtime>(
    window: tauri::Window<R>,
    app: State<'_, App>,
    query: ExportQuery,
    name: String,
) -> CmdResult<Option<Saved>> {
    let kind = api::ExportKind::parse(&query.kind).ok_or_else(|| {
        CmdError::new(api::ErrorCode::BadRequest, "kind must be samples, events, alerts or recycles")
    })?;
    let export = CsvExport {
        kind,
        worker: query.worker,
        pool: query.pool,
        from: api::Timestamp(query.from),
        to: api::Timestamp(query.to),
        metrics: query.metrics,
    };
    let ready = app.prepare_export(export).await?;
    let Some(path) = crate::dialog::save_path(&window, &name, "CSV", &["csv"]).await else {
        return Ok(None);
    };
    let file = tokio::fs::File::create(&path).await.map_err(|e| io_error(&path, e))?;
    let file = std::sync::Arc::new(tokio::sync::Mutex::new(file));
    let bytes = ready
        .run(|chunk| {
            let file = file.clone();
            async move {
                use tokio::io::AsyncWriteExt;
                file.lock().await.write_all(&chunk).await
            }
        })
        .await?;
    {
        use tokio::io::AsyncWriteExt;
        file.lock().await.flush().await.map_err(|e| io_error(&path, e))?;
    }
    Ok(Some(Saved { path: path.display().to_string(), bytes }))
}

fn io_error(path: &std::path::Path, e: std::io::Error) -> CmdError {
    CmdError::new(api::ErrorCode::IoError, format!("cannot write {}: {e}", path.display()))
}

/// Save bytes the UI made (a chart as SVG or PNG, a CSV built from memory) through a native dialog.
#[tauri::command]
pub async fn save_file<R: tauri::Runtime>(
    window: tauri::Window<R>,
    name: String,
    data: Vec<u8>,
) -> CmdResult<Option<Saved>> {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_owned()).unwrap_or_default();
    let Some(path): Option<PathBuf> =
        crate::dialog::save_path(&window, &name, &ext.to_uppercase(), &[ext.as_str()]).await
    else {
        return Ok(None);
    };
    tokio::fs::write(&path, &data).await.map_err(|e| io_error(&path, e))?;
    Ok(Some(Saved { path: path.display().to_string(), bytes: data.len() as u64 }))
}

#[tauri::command]
pub fn settings(app: State<'_, App>) -> SettingsDto {
    app.settings()
}
