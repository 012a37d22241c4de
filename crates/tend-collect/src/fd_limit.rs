//! Tend's own descriptor limit (`RLIMIT_NOFILE`): read it, and raise the soft limit to the hard one at
//! start, so a burst of connections or watched processes does not hit a soft limit that an
//! unprivileged process may lift by itself. This module only reads and sets the limit; what a budget
//! of descriptors is spent on is its callers' business.

use std::io;

/// The soft limit (what `open`/`accept` are held to), or `None` when it cannot be read.
pub fn nofile_soft_limit() -> Option<u64> {
    read().ok().map(|l| l.rlim_cur)
}

/// The limit Tend was started with, recorded by the first [`raise_nofile_to_hard`]: what spawned
/// workers get back (a worker written for 1024 descriptors, `select()` or a close-every-fd loop, must
/// not inherit Tend's raised limit).
static INHERITED: std::sync::OnceLock<libc::rlimit> = std::sync::OnceLock::new();

/// The limit to hand to a spawned worker: the one Tend was started with, once it raised its own.
pub(crate) fn inherited_nofile() -> Option<libc::rlimit> {
    INHERITED.get().copied()
}

/// Raise the soft limit to the hard limit (no privilege needed) and return the soft limit now in force.
/// When the raise is refused, the error says so; the old limit still holds. Workers spawned afterwards
/// get the limit of before (see [`crate::spawn`]).
pub fn raise_nofile_to_hard() -> io::Result<u64> {
    let mut lim = read()?;
    let _ = INHERITED.set(lim);
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the one `rlimit` we pass by reference.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

fn read() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` into the struct we pass by exclusive reference.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let soft = raise_nofile_to_hard().unwrap();
        assert_eq!(nofile_soft_limit(), Some(soft));
        assert_eq!(read().unwrap().rlim_max, soft);
    }
}
