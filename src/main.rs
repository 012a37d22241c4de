//! The `tend` command line: `serve` (the headless engine with its HTTP API), `check-config`, and
//! `demo-worker` (a sample worker for demos and tests). It parses arguments, sets up logging and
//! signals, and hands over to the engine; it holds no logic of its own.
#![deny(unsafe_code)] // the few libc calls that need it say so with `#[allow(unsafe_code)]`

mod demo_worker;
mod export;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use tend_engine::config::{self, Config, Overrides};
use tend_engine::{App, AppOptions};

#[derive(Parser, Debug)]
#[command(name = "tend", version, about = "Tend: watch, recycle and keep the history of pools of workers")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the engine headless with its HTTP API (the default). No --config: the embedded demo pool.
    Serve(ServeArgs),
    /// Validate a config file and print what it defines; exit status 1 with every problem located.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// A sample worker for demos and tests (CPU load, memory growth, requests, exit codes, a port).
    DemoWorker(demo_worker::DemoWorkerArgs),
    /// Export history as CSV or as a chart (PNG/SVG), straight from the database (no server needed).
    Export(export::ExportArgs),
}

#[derive(clap::Args, Debug, Default)]
struct ServeArgs {
    /// The config file (TOML). Without it Tend runs the embedded demo pool.
    #[arg(long, short, env = "TEND_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address of the HTTP API (overrides [server] listen and TEND_LISTEN).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Print every event as one JSON line on stdout, for scripts.
    #[arg(long)]
    events_jsonl: bool,
    /// Where the history database lives (overrides [store] data_dir and TEND_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Before any thread: a long-running Tend keeps its heap in two arenas (see tend_collect::malloc).
    tend_engine::os::limit_malloc_arenas();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::DemoWorker(args) => match demo_worker::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo-worker: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { file } => check_config(&file),
        Command::Serve(args) => serve(args),
        Command::Export(args) => export::run(args),
    }
}

/// Checks exactly what `serve` would run: the file, the `TEND_*` environment and the server rule.
fn check_config(file: &std::path::Path) -> ExitCode {
    match config::resolve(Some(file), env_var, &Overrides::default()) {
        Ok(cfg) => {
            println!("{}: ok", file.display());
            println!("  listen {}", cfg.server.listen);
            for p in &cfg.pools {
                let interval =
                    p.effective_interval().map(|d| format!("{:?}", d)).unwrap_or_else(|| "off".into());
                println!(
                    "  pool {:?}: source {}, profile {}, every {interval}, {} rule(s)",
                    p.name,
                    p.source.kind(),
                    p.profile.as_str(),
                    p.rules.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn load(args: &ServeArgs) -> Result<Config, String> {
    let overrides = Overrides { listen: args.listen, data_dir: args.data_dir.clone() };
    config::resolve(args.config.as_deref(), env_var, &overrides).map_err(|e| e.to_string())
}

fn serve(args: ServeArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("TEND_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let cfg = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tend: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_server(cfg, args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tend: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_server(cfg: Config, args: ServeArgs) -> anyhow::Result<()> {
    let server_config = cfg.server.clone();
    let demo = args.config.is_none();
    let app = App::start(
        cfg,
        AppOptions {
            config_path: args.config.clone(),
            events_jsonl: args.events_jsonl,
            exe: None,
            ..Default::default()
        },
    )?;
    if demo {
        tracing::info!(
            "no config given: running the demo pool (write a TOML file and pass --config to watch your own workers)"
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_app = app.clone();
    let server = tokio::spawn(async move {
        let scheme = if server_config.tls.is_some() { "https" } else { "http" };
        tend_server::serve(
            server_app,
            &server_config,
            |addr| {
                eprintln!("tend: listening on {scheme}://{addr}");
                tracing::info!(%addr, "HTTP API up");
            },
            async move {
                let _ = stop_rx.await;
            },
        )
        .await
    });
    let result = tokio::select! {
        r = server_stopped(server) => r,
        why = termination(&app) => {
            tracing::info!(signal = why, "stopping");
            Ok(())
        }
        end = app.engine_ended() => end.map_err(engine_failure),
    };
    tracing::info!("shutting down: stopping workers");
    app.shutdown().await;
    let _ = stop_tx.send(());
    // A panic of the engine while it was draining is a failure too, even after a clean signal.
    result.and(app.engine_ended().await.map_err(engine_failure))
}

fn engine_failure(panic: String) -> anyhow::Error {
    anyhow::anyhow!("the engine failed ({panic}); its workers were stopped")
}

async fn server_stopped(h: tokio::task::JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    match h.await {
        Ok(r) => r,
        Err(e) => Err(anyhow::anyhow!("HTTP server task failed: {e}")),
    }
}

/// Waits for a signal that stops `serve` and names it. SIGINT, SIGTERM, SIGQUIT and SIGHUP (a closed
/// terminal; config reload is not built yet) all drain the workers and exit 0. SIGUSR1 logs a status
/// line and SIGUSR2 is ignored, both instead of their default (death without draining). SIGPIPE stays
/// ignored as Rust sets it up: a write to a closed pipe fails with an error instead.
#[cfg(unix)]
async fn termination(app: &tend_engine::App) -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let kinds = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::quit(),
        SignalKind::hangup(),
        SignalKind::user_defined1(),
        SignalKind::user_defined2(),
    ];
    let mut streams = Vec::new();
    for kind in kinds {
        match signal(kind) {
            Ok(s) => streams.push(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot handle signals: stopping");
                return "none (signal setup failed)";
            }
        }
    }
    let [int, term, quit, hup, usr1, usr2] = &mut streams[..] else { return "none" };
    loop {
        tokio::select! {
            _ = int.recv() => return "SIGINT",
            _ = term.recv() => return "SIGTERM",
            _ = quit.recv() => return "SIGQUIT",
            _ = hup.recv() => return "SIGHUP",
            _ = usr1.recv() => match app.health().await {
                Ok(h) => tracing::info!(status = h.status, workers = h.workers, alerts_firing = h.alerts_firing,
                    degraded = ?h.degraded.keys().collect::<Vec<_>>(), "SIGUSR1: status"),
                Err(e) => tracing::info!(error = %e, "SIGUSR1: status unavailable"),
            },
            _ = usr2.recv() => tracing::info!("SIGUSR2: no action (reserved)"),
        }
    }
}

#[cfg(not(unix))]
async fn termination(_: &tend_engine::App) -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}
