//! Tend's own descriptor limit (`RLIMIT_NOFILE`): read it, and raise the soft limit to the hard one at
//! start, so a burst of connections or watched processes does not hit a soft limit that an
//! unprivileged process may lift by itself. This module only reads and sets the limit; what a budget
//! of descriptors is spent on is its callers' business.

use std::io;

/// The soft limit (what `open`/`accept` are held to), or `None` when it cannot be read.
pub fn nofile_soft_limit() -> Option<u64> {
    read().ok().map(|l| l.rlim_cur)
}

/// Raise the soft limit to the hard limit (no privilege needed) and return the soft limit now in force.
/// When the raise is refused, the error says so; the old limit still holds.
pub fn raise_nofile_to_hard() -> io::Result<u64> {
    let mut lim = read()?;
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
