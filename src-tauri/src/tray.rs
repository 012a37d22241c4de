//! The tray icon: the count of firing alerts (icon, label and tooltip) and a menu — show or hide the window,
//! pause notifications, quit. It reads the engine only through the App facade and its event stream;
//! it decides nothing, and a desktop without a tray (no StatusNotifier host) only loses the icon.

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};

use futures::StreamExt;
use tend_engine::App;
use tend_engine::api::{AlertState, EventKind};
use tend_engine::app::Streamed;
use tend_engine::notify::NotifyHandle;

const ICON: &[u8] = include_bytes!("../../icons/tray.png");
const ICON_ALERT: &[u8] = include_bytes!("../../icons/tray-alert.png");

/// Bring the main window to the front (tray "Show", or a second launch of the app).
pub fn show_main(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

pub fn start(app: &AppHandle, engine: App, notify: Option<NotifyHandle>) -> tauri::Result<()> {
    let show = MenuItem::with_id(app, "show", "Show Tend", true, None::<&str>)?;
    let hide = MenuItem::with_id(app, "hide", "Hide to tray", true, None::<&str>)?;
    let count = MenuItem::with_id(app, "alerts", "No alerts firing", false, None::<&str>)?;
    let pause =
        CheckMenuItem::with_id(app, "pause", "Pause notifications", notify.is_some(), false, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Tend", true, None::<&str>)?;
    let sep = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(app, &[&show, &hide, &count, &pause, &sep, &quit])?;
    let pause_item = pause.clone();
    let tray = TrayIconBuilder::with_id("tend")
        .icon(Image::from_bytes(ICON)?)
        .tooltip("Tend — no alerts firing")
        .menu(&menu)
        .on_menu_event(move |app, e| match e.id().as_ref() {
            "show" => show_main(app),
            // Hidden, the page renders nothing and its live feed pauses; alerts still notify.
            "hide" => {
                if let Some(w) = app.get_webview_window("main") {
                    let _ = w.hide();
                }
            }
            "pause" => {
                if let Some(n) = &notify {
                    let paused = pause_item.is_checked().unwrap_or(!n.paused());
                    n.set_paused(paused);
                    tracing::info!(paused, "desktop notifications");
                }
            }
            "quit" => app.exit(0),
            _ => {}
        })
        .build(app)?;

    // Keep the count current: recount on every alert change (and once at start).
    tauri::async_runtime::spawn(async move {
        let Ok(stream) = engine.event_stream(None).await else { return };
        let mut stream = Box::pin(stream);
        let mut shown = usize::MAX;
        loop {
            let firing = match engine.alerts().await {
                Ok(a) => {
                    a.iter().filter(|a| matches!(a.state, AlertState::Firing | AlertState::Flapping)).count()
                }
                Err(_) => return,
            };
            if firing != shown {
                shown = firing;
                let text = match firing {
                    0 => "No alerts firing".to_owned(),
                    1 => "1 alert firing".to_owned(),
                    n => format!("{n} alerts firing"),
                };
                let _ = count.set_text(&text);
                let _ = tray.set_tooltip(Some(format!("Tend — {}", text.to_lowercase())));
                let _ = tray.set_title((firing > 0).then(|| format!("▲ {firing}")));
                if let Ok(icon) = Image::from_bytes(if firing > 0 { ICON_ALERT } else { ICON }) {
                    let _ = tray.set_icon(Some(icon));
                }
            }
            loop {
                match stream.next().await {
                    Some(Streamed::Event(ev)) if matches!(ev.kind, EventKind::AlertChanged { .. }) => break,
                    Some(Streamed::Event(_)) => {}
                    Some(Streamed::Lagged(_)) => break,
                    None => return,
                }
            }
        }
    });
    Ok(())
}
