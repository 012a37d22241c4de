//! Opening the database: where it lives, its pragmas (WAL, incremental auto-vacuum, busy timeout, the WAL's
//! budget under a size cap), its embedded migrations, the handle every reader and writer shares, and the
//! file's identity (so a database deleted or replaced under Tend is noticed). It never decides what to keep.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use tend_core::time::Timestamp;

use crate::DB_FILE;

/// How long each tier is kept, and the cap on the database's size.
#[derive(Clone, Debug, PartialEq)]
pub struct Retention {
    pub raw: Duration,
    pub minute: Duration,
    pub hour: Duration,
    /// Bytes on disk: the database file, its WAL and its shared-memory index together; `None` = no cap.
    pub max_size_bytes: Option<u64>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            raw: Duration::from_secs(24 * 3600),
            minute: Duration::from_secs(30 * 86400),
            hour: Duration::from_secs(365 * 86400),
            max_size_bytes: None,
        }
    }
}

/// The WAL (`tend.db-wal`) and shared-memory index (`tend.db-shm`) of the database at `path`.
pub fn side_files(path: &Path) -> [PathBuf; 2] {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    [path.with_file_name(format!("{name}-wal")), path.with_file_name(format!("{name}-shm"))]
}

/// The platform's data directory for Tend (`~/.local/share/tend` on Linux), if the platform has one.
pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "tend").map(|d| d.data_dir().to_path_buf())
}

/// Without a size cap: checkpoint every ~40 MiB of WAL instead of every 4 MiB (a batch rewrites the same
/// hot leaf pages, and each checkpoint copies and fsyncs them again: ingest +40%, measured), and cut the
/// WAL back to 16 MiB after a checkpoint.
const WAL_UNCAPPED: (u64, u64) = (40 << 20, 16 << 20);

/// The WAL's share of a size cap: an eighth of it, from 256 KiB to 40 MiB. The data (pages in use) is
/// pruned down to the cap minus this budget and [`SHM_ALLOWANCE`], so the three files stay under the cap.
pub fn wal_budget(cap: u64) -> u64 {
    (cap / 8).clamp(256 << 10, 40 << 20)
}

/// Room kept for the WAL's shared-memory index (32 KiB per ~4 000 WAL pages) under a size cap.
pub const SHM_ALLOWANCE: u64 = 64 << 10;

/// (device, inode) of a file: what the open database is, whatever its path points to later.
pub(crate) fn file_id(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// An open history database. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: SqlitePool,
    /// How every connection is opened: the writer opens its own, dedicated one with them.
    pub(crate) options: SqliteConnectOptions,
    path: PathBuf,
    /// The file opened, as (device, inode).
    id: (u64, u64),
    /// The size cap (database + WAL + shared memory), if any.
    cap: Option<u64>,
}

/// The page cache of each connection, in KiB.
const CACHE_KIB: u32 = 512;

impl Store {
    /// Open (creating the directory and the file if needed) `dir/tend.db` and bring its schema up to date.
    pub async fn open_dir(dir: &Path) -> anyhow::Result<Store> {
        Self::open_dir_capped(dir, None).await
    }

    /// [`Store::open_dir`] under a size cap in bytes (database + WAL + shared memory): the WAL is
    /// checkpointed and cut back within [`wal_budget`].
    pub async fn open_dir_capped(dir: &Path, cap: Option<u64>) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        Self::open_capped(&dir.join(DB_FILE), cap).await
    }

    /// Open (creating if needed) the database file at `path` and run the embedded migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Store> {
        Self::open_capped(path, None).await
    }

    async fn open_capped(path: &Path, cap: Option<u64>) -> anyhow::Result<Store> {
        let (wal_pages, wal_limit) = match cap {
            Some(c) => (wal_budget(c) / 4096, wal_budget(c)),
            None => (WAL_UNCAPPED.0 / 4096, WAL_UNCAPPED.1),
        };
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)
            .with_context(|| format!("bad database path {}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a commit is durable against a crash of Tend (kill -9); only a power loss can
            // take back the last transactions, and never corrupts the file.
            .synchronous(SqliteSynchronous::Normal)
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(false)
            .pragma("wal_autocheckpoint", wal_pages.to_string())
            .pragma("journal_size_limit", wal_limit.to_string())
            // Each connection's page cache: SQLite's default is 2 MiB, and up to five connections are
            // open (the writer, the pool of readers and maintenance). Pages not cached are in the OS's
            // page cache, a `pread` away.
            .pragma("cache_size", format!("-{}", CACHE_KIB));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .with_context(|| format!("cannot migrate {}", path.display()))?;
        let id = file_id(path).with_context(|| format!("cannot stat {}", path.display()))?;
        Ok(Store { pool, options, path: path.to_path_buf(), id, cap })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The size cap this store was opened with.
    pub fn cap(&self) -> Option<u64> {
        self.cap
    }

    /// Why the path no longer leads to the open database (deleted, or replaced by another file), if so:
    /// writes would go to a file nobody will ever read again.
    pub fn replaced(&self) -> Option<String> {
        match file_id(&self.path) {
            Ok(id) if id == self.id => None,
            Ok(_) => Some(format!("{} was replaced by another file", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some(format!("{} was deleted", self.path.display()))
            }
            // Unreadable (permissions, I/O): not evidence of a replacement; writes will say what is wrong.
            Err(_) => None,
        }
    }

    /// Whether `path` is still the file this store opened (for readers that open it again by path).
    pub(crate) fn same_file(&self, path: &Path) -> bool {
        file_id(path).is_ok_and(|id| id == self.id)
    }

    /// Start a new run (one start of Tend) and return its id.
    pub async fn begin_run(&self, now: Timestamp) -> anyhow::Result<i64> {
        let id: i64 = sqlx::query_scalar("INSERT INTO runs(started_at) VALUES (?) RETURNING id")
            .bind(now.as_millis())
            .fetch_one(&self.pool)
            .await
            .context("cannot record the run")?;
        Ok(id)
    }

    /// Bytes in use: pages that hold data (the free list excluded).
    pub async fn used_bytes(&self) -> anyhow::Result<u64> {
        let mut conn = self.pool.acquire().await?;
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(&mut *conn).await?;
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count").fetch_one(&mut *conn).await?;
        let size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(&mut *conn).await?;
        Ok(u64::try_from((pages - free).max(0) * size).unwrap_or(0))
    }

    /// The WAL's and the shared-memory index's paths.
    pub fn side_files(&self) -> [PathBuf; 2] {
        side_files(&self.path)
    }

    /// Size on disk of the database file, its WAL and its shared-memory index: what a size cap counts.
    pub fn file_bytes(&self) -> u64 {
        let [wal, shm] = self.side_files();
        [self.path.as_path(), wal.as_path(), shm.as_path()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Size of the WAL file.
    pub fn wal_bytes(&self) -> u64 {
        std::fs::metadata(&self.side_files()[0]).map(|m| m.len()).unwrap_or(0)
    }

    /// Checkpoint the WAL into the main file and truncate it (clean shutdown). Waits for readers up to
    /// the busy timeout.
    pub async fn checkpoint(&self) -> anyhow::Result<()> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await?;
        Ok(())
    }

    /// Checkpoint and truncate the WAL if no reader or writer is in the way, without waiting for them (a
    /// waiting TRUNCATE checkpoint holds off every writer, the history writer included). True when the
    /// WAL was cut back.
    pub async fn checkpoint_now(&self) -> anyhow::Result<bool> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("PRAGMA busy_timeout = 0").execute(&mut *conn).await?;
        let r: anyhow::Result<(i64, i64, i64)> =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut *conn).await.map_err(Into::into);
        let restore = sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await;
        if restore.is_err() {
            // Never hand a connection without a busy timeout back to the pool.
            drop(conn.detach());
        }
        Ok(r?.0 == 0)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// `PRAGMA integrity_check`: "ok" for a sound file.
    pub async fn integrity_check(&self) -> anyhow::Result<String> {
        Ok(sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&self.pool).await?)
    }
}
