//! Tend's own heap. glibc's malloc gives a thread that finds its arena busy an arena of its own, up to
//! eight per core, and memory freed in one arena is not reused by another. Tend's tokio pools start
//! and retire blocking threads under load, so over hours its heap spread over up to 16 arenas (on two
//! cores) with free memory stranded in each: the soak measured the resident size still climbing after
//! an hour while the memory in use stayed flat (about 60 MiB). Two arenas, as `MALLOC_ARENA_MAX=2`
//! would, keep the memory in use where it was and stop the climb. An operator's own
//! `MALLOC_ARENA_MAX` wins.

/// How many arenas Tend's heap may use.
pub const ARENAS: i32 = 2;

/// Cap the heap's arenas at [`ARENAS`] unless `MALLOC_ARENA_MAX` says otherwise. Call it first thing,
/// before any thread starts. True when the cap was set here.
pub fn limit_arenas() -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    set_arena_max(ARENAS)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(n: i32) -> bool {
    // SAFETY: mallopt takes two integers and changes an allocator setting; no memory of ours is read.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, n) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_cap() {
        // mallopt answers 1 when it accepts the setting; a wrong parameter would answer 0.
        assert!(super::set_arena_max(super::ARENAS));
    }
}
