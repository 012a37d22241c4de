//! `tend export`: CSV (samples, events, alerts, recycles) and charts (PNG, SVG) straight from the history
//! database, with no server running. It parses arguments and hands over to `tend_store`; it holds no
//! logic of its own and never writes to the database. `--out F` is written under a temporary name in F's
//! directory and renamed to F only once complete: an export that fails or is killed never leaves a
//! partial F, and an existing F stays as it was.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use tend_core::time::{Clock, parse_time};
use tend_engine::clock::SystemClock;
use tend_engine::config;
use tend_store::chart::{self, Format};
use tend_store::export::{ExportRequest, Kind};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("who").args(["pool", "worker"])))]
pub struct ExportArgs {
    /// Every worker of this pool.
    #[arg(long)]
    pool: Option<String>,
    /// One worker (repeat for several in a chart).
    #[arg(long)]
    worker: Vec<String>,
    /// Start of the range: ISO-8601 (2026-11-23T10:00:00Z), epoch ms, or relative (-1h). Default: all
    /// (charts: -1h).
    #[arg(long, allow_hyphen_values = true)]
    from: Option<String>,
    /// End of the range (exclusive). Default: now.
    #[arg(long, allow_hyphen_values = true)]
    to: Option<String>,
    /// Samples: only these metric columns (comma-separated), e.g. cpu_percent,memory_bytes.
    #[arg(long, value_delimiter = ',')]
    metrics: Option<Vec<String>>,
    /// What to export as CSV.
    #[arg(long, default_value = "samples", value_parser = ["samples", "events", "alerts", "recycles"])]
    kind: String,
    /// Write here instead of stdout (charts: required unless the default tend-chart.FORMAT is fine).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Render a chart of these metrics instead of CSV: cpu, memory, threads, fds (comma-separated).
    #[arg(long, value_delimiter = ',')]
    chart: Option<Vec<String>>,
    /// Chart format.
    #[arg(long, default_value = "png", value_parser = ["png", "svg"])]
    format: String,
    #[arg(long, default_value_t = 1200)]
    width: u32,
    /// Height of the whole chart (the panels share it).
    #[arg(long, default_value_t = 800)]
    height: u32,
    /// The data directory holding tend.db (default: TEND_DATA_DIR, the config's [store] data_dir, or the
    /// platform's data directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A config file whose [store] data_dir and retention to use.
    #[arg(long, short, env = "TEND_CONFIG")]
    config: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tend export: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(export(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tend export: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let mut cfg = match &args.config {
        Some(p) => config::load(p).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => config::demo(),
    };
    cfg.apply_env(|k| std::env::var(k).ok()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = args
        .data_dir
        .clone()
        .or(cfg.store.data_dir.clone())
        .or_else(tend_store::default_data_dir)
        .context("no data directory: pass --data-dir")?;
    let path = dir.join(tend_store::DB_FILE);
    if !path.exists() {
        bail!("no history at {} (run `tend serve` first, or pass --data-dir)", path.display());
    }
    let store = tend_store::Store::open(&path).await?;
    let now = SystemClock.now();
    let time = |name: &str, v: &Option<String>, default| match v {
        Some(s) => parse_time(s, now).map_err(|e| anyhow::anyhow!("--{name}: {e}")),
        None => Ok(default),
    };
    let retention = tend_store::Retention {
        raw: cfg.store.retention.raw,
        minute: cfg.store.retention.minute,
        hour: cfg.store.retention.hour,
        max_size_bytes: None,
    };
    if let Some(names) = &args.chart {
        let from = time("from", &args.from, now.minus(std::time::Duration::from_secs(3600)))?;
        let to = time("to", &args.to, now)?;
        let format = Format::parse(&args.format).context("--format: png or svg")?;
        let metrics = names
            .iter()
            .map(|n| {
                chart::chart_metric(n)
                    .with_context(|| format!("--chart: unknown metric {n:?} (cpu, memory, threads, fds)"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let workers: Vec<String> = if !args.worker.is_empty() {
            args.worker.clone()
        } else {
            store.worker_rows(args.pool.as_deref()).await?.into_iter().map(|w| w.id).collect()
        };
        if workers.is_empty() {
            bail!(
                "no workers in the history{}",
                args.pool.map(|p| format!(" for pool {p:?}")).unwrap_or_default()
            );
        }
        let data = store.chart_data(&workers, &metrics, from, to, args.width, now, &retention).await?;
        let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("tend-chart.{}", args.format)));
        let partial = Partial::new(&out)?;
        chart::render(&data, format, partial.path(), args.width, args.height)?;
        partial.finish()?;
        eprintln!(
            "tend export: wrote {} ({} workers, {} panels)",
            out.display(),
            workers.len(),
            metrics.len()
        );
        return Ok(());
    }
    if args.worker.len() > 1 {
        bail!("--worker: CSV takes one worker (or --pool for all of a pool)");
    }
    let req = ExportRequest {
        kind: Kind::parse(&args.kind).context("--kind")?,
        worker: args.worker.first().cloned(),
        pool: args.pool.clone(),
        from: time("from", &args.from, tend_core::time::Timestamp(i64::MIN))?,
        to: time("to", &args.to, now)?,
        metrics: args.metrics.clone(),
    };
    let partial = args.out.as_deref().map(Partial::new).transpose()?;
    let mut sink: Box<dyn Write> = match &partial {
        Some(p) => Box::new(std::io::BufWriter::new(p.create()?)),
        None => Box::new(std::io::stdout().lock()),
    };
    let stats = store
        .export_csv(&req, |chunk| {
            let r = sink.write_all(&chunk);
            async move { r }
        })
        .await?;
    sink.flush()?;
    drop(sink);
    if let Some(p) = partial {
        p.finish()?;
    }
    if let Some(p) = &args.out {
        eprintln!("tend export: wrote {} rows ({} bytes) to {}", stats.rows, stats.bytes, p.display());
    }
    Ok(())
}

/// A file being exported: written at a temporary path next to its destination (same directory, so the
/// rename is atomic; same extension, which the PNG encoder goes by), renamed over it by
/// [`Partial::finish`], removed if dropped before. A `kill -9` can leave the hidden temporary file, never
/// a partial destination.
struct Partial {
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl Partial {
    fn new(dest: &std::path::Path) -> anyhow::Result<Partial> {
        let name = dest
            .file_name()
            .with_context(|| format!("--out {}: not a file name", dest.display()))?
            .to_string_lossy();
        let (stem, ext) = match name.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s.to_owned(), format!(".{e}")),
            _ => (name.to_string(), String::new()),
        };
        let tmp = dest.with_file_name(format!(".{stem}.partial-{}{ext}", std::process::id()));
        Ok(Partial { tmp, dest: dest.to_path_buf(), done: false })
    }

    fn path(&self) -> &std::path::Path {
        &self.tmp
    }

    fn create(&self) -> anyhow::Result<std::fs::File> {
        std::fs::File::create(&self.tmp).with_context(|| format!("cannot create {}", self.tmp.display()))
    }

    /// Make the file durable, then give it its name.
    fn finish(mut self) -> anyhow::Result<()> {
        std::fs::File::open(&self.tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot write {}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.dest)
            .with_context(|| format!("cannot rename {} to {}", self.tmp.display(), self.dest.display()))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
