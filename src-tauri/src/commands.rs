//! The Tauri commands the UI calls: one-line wrappers over the engine's `App` facade (the same calls the
//! HTTP handlers make), plus the two that need the desktop (a native save dialog for exports and
//! charts). They parse, call, and shape; they never decide anything about workers. Every command must
//! be listed in `build.rs` and granted in `permissions/tend.toml`, or the UI cannot call it.

use std::path::PathBuf;

use serde::Deserialize;
use tauri::State;
use tauri::ipc::Channel;
use tokio::sync::broadcast::error::RecvError;

use tend_core::event::Event;
use tend_core::fleet::PoolMetrics;
use tend_core::rules::Alert;
use tend_core::time::Timestamp;
use tend_engine::App;
use tend_engine::dto::{HealthDto, SettingsDto, WorkerDetailDto, WorkerDto};
use tend_store::export::{ExportRequest, Kind};
use tend_store::query::{Filter, QueryError, RecycleRow};

use crate::error::{CmdError, CmdResult};

#[tauri::command]
pub async fn health(app: State<'_, App>) -> CmdResult<HealthDto> {
    Ok(app.health().await?)
}

#[tauri::command]
pub async fn workers(app: State<'_, App>) -> CmdResult<Vec<WorkerDto>> {
    Ok(app.workers().await?)
}

#[tauri::command]
pub async fn worker(app: State<'_, App>, id: String) -> CmdResult<WorkerDetailDto> {
    app.worker(&id).await?.ok_or_else(|| CmdError::new("not_found", format!("no worker with id {id:?}")))
}

#[tauri::command]
pub async fn worker_events(app: State<'_, App>, id: String) -> CmdResult<Vec<Event>> {
    Ok(app.events_since(0, Some(id)).await?)
}

#[tauri::command]
pub async fn pools(app: State<'_, App>) -> CmdResult<Vec<PoolMetrics>> {
    Ok(app.pools().await?)
}

#[tauri::command]
pub async fn alerts(app: State<'_, App>) -> CmdResult<Vec<Alert>> {
    Ok(app.alerts().await?)
}

#[tauri::command]
pub async fn recycle(app: State<'_, App>, id: String) -> CmdResult<()> {
    Ok(app.recycle(&id).await?)
}

#[tauri::command]
pub async fn stop(app: State<'_, App>, id: String) -> CmdResult<()> {
    Ok(app.stop(&id).await?)
}

#[tauri::command]
pub async fn acknowledge(app: State<'_, App>, rule: String, subject: String) -> CmdResult<()> {
    found(app.acknowledge(&rule, &subject).await?, &rule, &subject)
}

/// `minutes = 0` lifts the silence.
#[tauri::command]
pub async fn silence(app: State<'_, App>, rule: String, subject: String, minutes: f64) -> CmdResult<()> {
    if !minutes.is_finite() || !(0.0..=525_600.0).contains(&minutes) {
        return Err(CmdError::new("bad_request", "minutes must be a number from 0 (lift) to 525600"));
    }
    let until = (minutes > 0.0).then(|| Timestamp(app.now().as_millis() + (minutes * 60_000.0) as i64));
    found(app.silence(&rule, &subject, until).await?, &rule, &subject)
}

fn found(ok: bool, rule: &str, subject: &str) -> CmdResult<()> {
    if ok { Ok(()) } else { Err(CmdError::new("not_found", format!("no alert {rule} on {subject}"))) }
}

/// Every event after `since` from the in-memory log, then live ones, on `channel` (until the page
/// that holds it goes away). The same stream as the HTTP API's SSE.
#[tauri::command]
pub async fn subscribe(app: State<'_, App>, since: u64, channel: Channel<Event>) -> CmdResult<()> {
    // Subscribe before reading the backlog so nothing falls between the two.
    let mut rx = app.subscribe();
    let backlog = app.events_since(since, None).await?;
    tauri::async_runtime::spawn(async move {
        let mut sent = since;
        for ev in backlog {
            sent = ev.seq;
            if channel.send(ev).is_err() {
                return;
            }
        }
        loop {
            match rx.recv().await {
                Ok(ev) if ev.seq <= sent => {}
                Ok(ev) => {
                    if channel.send(ev).is_err() {
                        return;
                    }
                }
                // The UI polls the state every second; a gap in the event log only thins its timeline.
                Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "UI event channel lagged"),
                Err(RecvError::Closed) => return,
            }
        }
    });
    Ok(())
}

fn store(app: &App) -> CmdResult<tend_store::Store> {
    app.history().map_err(|e| CmdError::new("store_unavailable", e))
}

fn query_error(e: QueryError) -> CmdError {
    match e {
        QueryError::BadParam { .. } => CmdError::new("bad_request", e.to_string()),
        QueryError::UnknownWorker(_) => CmdError::new("not_found", e.to_string()),
        QueryError::Db(e) => CmdError::new("store_error", format!("{e:#}")),
    }
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
) -> CmdResult<tend_store::query::History> {
    let db = store(&app)?;
    db.history(&id, &metric, Timestamp(from), Timestamp(to), step_ms, app.now(), app.retention())
        .await
        .map_err(query_error)
}

#[tauri::command]
pub async fn recycles(app: State<'_, App>, from: i64, to: i64) -> CmdResult<Vec<RecycleRow>> {
    let f = Filter { from: Timestamp(from), to: Timestamp(to), ..Filter::default() };
    Ok(store(&app)?.recycles(&f).await?)
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
    let kind = Kind::parse(&query.kind)
        .ok_or_else(|| CmdError::new("bad_request", "kind must be samples, events, alerts or recycles"))?;
    let db = store(&app)?;
    let Some(path) = crate::dialog::save_path(&window, &name, "CSV", &["csv"]).await else {
        return Ok(None);
    };
    let req = ExportRequest {
        kind,
        worker: query.worker,
        pool: query.pool,
        from: Timestamp(query.from),
        to: Timestamp(query.to),
        metrics: query.metrics,
    };
    let file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| CmdError::new("io_error", format!("cannot write {}: {e}", path.display())))?;
    let file = std::sync::Arc::new(tokio::sync::Mutex::new(file));
    let stats = db
        .export_csv(&req, |chunk| {
            let file = file.clone();
            async move {
                use tokio::io::AsyncWriteExt;
                file.lock().await.write_all(&chunk).await
            }
        })
        .await
        .map_err(query_error)?;
    {
        use tokio::io::AsyncWriteExt;
        file.lock().await.flush().await.map_err(|e| CmdError::new("io_error", e.to_string()))?;
    }
    Ok(Some(Saved { path: path.display().to_string(), bytes: stats.bytes }))
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
    tokio::fs::write(&path, &data)
        .await
        .map_err(|e| CmdError::new("io_error", format!("cannot write {}: {e}", path.display())))?;
    Ok(Some(Saved { path: path.display().to_string(), bytes: data.len() as u64 }))
}

#[tauri::command]
pub fn settings(app: State<'_, App>) -> SettingsDto {
    app.settings()
}
