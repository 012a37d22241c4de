//! The data directory's lock: one Tend per data directory.
//!
//! This module owns `tend.lock`, an exclusive advisory lock (`flock`, through `File::try_lock`) on a file
//! in the data directory, holding the holder's pid as text. The kernel releases the lock when the
//! holder's descriptor closes, so a Tend that was killed (`kill -9`, a crash) never leaves a stale lock;
//! the pid in the file only names the holder in the error message, it is never trusted for anything.
//! It must never be taken by readers (`tend export` opens the database without it), and the descriptor
//! is close-on-exec (std's default), so workers never inherit the lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "tend.lock";

/// Held while this value lives; dropping it (or the process dying) releases the lock.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    dir: PathBuf,
}

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock: another Tend uses this data directory.
    #[error(
        "the data directory {} is in use by another Tend ({}): stop it first, or give this one its own \
         data directory (--data-dir or TEND_DATA_DIR)",
        dir.display(),
        holder(*pid)
    )]
    Held { dir: PathBuf, pid: Option<u32> },
    /// The directory or the lock file cannot be created or locked (read-only, missing, no space).
    #[error("cannot lock the data directory {}: {error}", dir.display())]
    Io { dir: PathBuf, error: io::Error },
}

fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".into(),
    }
}

impl DirLock {
    /// Creates `dir` if needed and takes its lock without waiting; writes our pid into the lock file.
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let io_err = |error| LockError::Io { dir: dir.to_path_buf(), error };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held { dir: dir.to_path_buf(), pid: read_holder(&path) });
            }
            Err(TryLockError::Error(error)) => return Err(io_err(error)),
        }
        // The pid is for the message of whoever comes second; failing to write it (a full disk) does
        // not make the lock any less held.
        let pid = format!("{}\n", std::process::id());
        if let Err(e) = file.set_len(0).and_then(|()| file.write_all_at(pid.as_bytes(), 0)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write our pid into the lock file");
        }
        Ok(DirLock { _file: file, dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The pid in the lock file. The holder writes it just after locking: in that moment (microseconds)
/// the file is empty and the holder is "pid unknown".
fn read_holder(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DirLock::acquire(&data).unwrap();
        let text = std::fs::read_to_string(data.join(LOCK_FILE)).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // flock locks belong to the open file description: a second open in this process conflicts.
        let err = DirLock::acquire(&data).unwrap_err();
        assert!(matches!(err, LockError::Held { pid: Some(p), .. } if p == std::process::id()), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("pid {}", std::process::id())), "{msg}");
        assert!(msg.contains(&data.display().to_string()), "{msg}");
        drop(first);
        DirLock::acquire(&data).unwrap();
    }

    #[test]
    fn an_unusable_directory_is_an_io_error_naming_it() {
        let err = DirLock::acquire(Path::new("/sys/tend-lock-test")).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err}");
        assert!(err.to_string().contains("/sys/tend-lock-test"), "{err}");
    }
}
