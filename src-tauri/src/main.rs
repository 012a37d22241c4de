//! `tend-desktop`: the desktop app. It parses its few flags, sets up logging and hands over to
//! [`tend_desktop::run`]; `tend-desktop demo-worker` is the embedded demo's worker (the demo spawns the
//! running executable), the same code as `tend demo-worker`. It holds no logic of its own.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

#[path = "../../src/demo_worker.rs"]
mod demo_worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "tend-desktop",
    version,
    about = "Tend's desktop app: watch, recycle and keep the history of pools of workers"
)]
struct Cli {
    /// The config file (TOML). Without it the app runs the embedded demo pool.
    #[arg(long, short, env = "TEND_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Where the history database lives (overrides [store] data_dir and TEND_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A sample worker (what the embedded demo runs).
    DemoWorker(demo_worker::DemoWorkerArgs),
}

/// WebKitGTK turns the POSIX locale (`LANG=C` or unset: CI machines, containers, service managers) into
/// `navigator.language = "C"`, which `Intl.NumberFormat` rejects, and the UI would not start. Such a
/// locale means "no preference": use English with UTF-8.
fn posix_locale_to_english() {
    let lang = ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    if lang.as_deref().is_none_or(|l| l == "C" || l == "POSIX" || l.starts_with("C.")) {
        // SAFETY: called at the start of main, before any other thread exists.
        unsafe {
            std::env::remove_var("LC_ALL");
            std::env::set_var("LANG", "en_US.UTF-8");
        }
    }
}

/// The console draws text, tables and a few small charts: WebKit's accelerated compositing buys it
/// nothing, and without a GPU (a server's desktop, a VM, Xvfb) it runs on Mesa's software GL, which
/// costs ~100 MiB more in the page's process and more CPU. Composite in software unless the user asks
/// (`TEND_DESKTOP_GPU=1`) or set WebKit's own switch.
fn software_compositing() {
    let gpu = std::env::var("TEND_DESKTOP_GPU").is_ok_and(|v| v == "1");
    let chosen = ["WEBKIT_DISABLE_COMPOSITING_MODE", "WEBKIT_FORCE_COMPOSITING_MODE"]
        .iter()
        .any(|k| std::env::var_os(k).is_some());
    if !gpu && !chosen {
        // SAFETY: called at the start of main, before any other thread exists.
        unsafe { std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1") }
    }
}

fn main() -> ExitCode {
    // Before any thread: the heap in two arenas, like `tend serve` (see tend_collect::malloc).
    tend_engine::os::limit_malloc_arenas();
    // tauri-driver and WebKitWebDriver pass arguments of their own: ignore what we do not know.
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!(
                "tend-desktop: ignoring the command line ({}); starting with TEND_CONFIG or the demo",
                e.kind()
            );
            Cli { config: std::env::var_os("TEND_CONFIG").map(PathBuf::from), data_dir: None, command: None }
        }
    };
    if let Some(Command::DemoWorker(args)) = cli.command {
        return match demo_worker::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo-worker: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    posix_locale_to_english();
    software_compositing();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("TEND_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    match tend_desktop::run(tend_desktop::Options { config: cli.config, data_dir: cli.data_dir }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tend-desktop: {e:#}");
            ExitCode::FAILURE
        }
    }
}
