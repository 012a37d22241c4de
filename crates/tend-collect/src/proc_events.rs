//! The kernel's process events (the netlink process connector, `cn_proc`): which processes exec'd, were
//! renamed or exited, as they happen, so that attach pools find new processes without rescanning
//! `/proc`.
//!
//! Listening needs CAP_NET_ADMIN in the initial user namespace, and the process must be in the initial
//! PID namespace (events name processes by their pids there). [`ProcEvents::open`] says why it cannot
//! listen, and the caller falls back to scanning. The kernel drops events when the socket's buffer
//! overflows: [`ProcEvent::Overflow`] says so, and the caller rescans. This module decides nothing: it
//! reports thread-group leaders' exec and rename events, nothing else: exits are not asked for, since
//! every exit on the machine would wake the listener and the samplers see exits anyway.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;

/// One event about a process (a thread-group leader; other threads' events are left out).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProcEvent {
    /// The process ran `execve`: its command line and name are new.
    Exec { pid: u32 },
    /// It renamed itself (`prctl(PR_SET_NAME)`, writing `/proc/PID/comm`).
    Comm { pid: u32 },
    /// Events were lost (the socket's buffer overflowed): rescan to catch up.
    Overflow,
}

// <linux/connector.h>, <linux/cn_proc.h>, <linux/netlink.h>
const NETLINK_CONNECTOR: libc::c_int = 11;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const NLMSG_DONE: u16 = 3;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const PROC_EVENT_COMM: u32 = 0x0000_0200;
const NLMSG_HDR: usize = 16;
const CN_MSG: usize = 20;
/// Where `proc_event` starts in a datagram: after `nlmsghdr` and `cn_msg`.
const EVENT: usize = NLMSG_HDR + CN_MSG;
/// `proc_event`: what (u32), cpu (u32), timestamp_ns (u64), then the event's data.
const EVENT_DATA: usize = EVENT + 16;
/// The receive buffer asked for: room for ~40k events between two reads.
const RCVBUF: libc::c_int = 4 << 20;

/// A subscription to the kernel's process events.
#[derive(Debug)]
pub struct ProcEvents {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
}

impl ProcEvents {
    /// Opens the connector and subscribes to exec and rename events. The error says why Tend
    /// cannot listen (no CAP_NET_ADMIN, a PID namespace, no connector in this kernel).
    pub async fn open() -> Result<ProcEvents, String> {
        if let Some(why) = nested_namespace() {
            return Err(why);
        }
        let fd = socket().map_err(|e| format!("cannot open the process connector: {e}"))?;
        // A larger buffer loses fewer events in bursts; SO_RCVBUFFORCE passes the sysctl cap with
        // CAP_NET_ADMIN, which listening needs anyway.
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            if setsockopt_int(&fd, libc::SOL_SOCKET, opt, RCVBUF).is_ok() {
                break;
            }
        }
        bind(&fd).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => {
                "listening to process events needs CAP_NET_ADMIN, which Tend does not have".to_owned()
            }
            _ => format!("cannot join the process events group: {e}"),
        })?;
        subscribe(&fd).map_err(|e| format!("cannot subscribe to process events: {e}"))?;
        // SAFETY: `fd` is an OwnedFd moved into the AsyncFd: it stays open and names the same socket
        // until the AsyncFd drops it, and OwnedFd::as_raw_fd always returns that descriptor.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| format!("cannot poll the process connector: {e}"))?;
        let mut events = ProcEvents { fd, buf: vec![0; 8192] };
        events.await_ack().await?;
        Ok(events)
    }

    /// The kernel answers the subscription with an acknowledgement carrying an errno (0: listening).
    async fn await_ack(&mut self) -> Result<(), String> {
        let wait = async {
            loop {
                let mut guard = self.fd.readable().await.map_err(|e| e.to_string())?;
                match recv(guard.get_inner(), &mut self.buf) {
                    // The answer to our request echoes its sequence number (our pid): the kernel
                    // multicasts every listener's acknowledgement to the whole group.
                    Ok(n)
                        if n >= EVENT_DATA + 4
                            && read_u32(&self.buf, EVENT) == PROC_EVENT_NONE
                            && read_u32(&self.buf, NLMSG_HDR + 8) == std::process::id() =>
                    {
                        let err = read_u32(&self.buf, EVENT_DATA) as i32;
                        return match err {
                            0 => Ok(()),
                            libc::EPERM => Err("listening to process events needs CAP_NET_ADMIN".into()),
                            e => Err(format!(
                                "the kernel refused the subscription: {}",
                                io::Error::from_raw_os_error(e)
                            )),
                        };
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        // With a filter (kernel 6.6+) the acknowledgement is filtered out like any event we did not ask
        // for; a missing answer is not a refusal (refusals of the group show at bind).
        tokio::time::timeout(Duration::from_millis(200), wait).await.unwrap_or(Ok(()))
    }

    /// Waits for events, then appends every one already queued to `out` (a burst in one call).
    /// An error means the socket itself failed; the caller falls back to scanning.
    pub async fn next_batch(&mut self, out: &mut Vec<ProcEvent>) -> io::Result<()> {
        let start = out.len();
        while out.len() == start {
            let mut guard = self.fd.readable().await?;
            loop {
                match recv(guard.get_inner(), &mut self.buf) {
                    Ok(n) => {
                        if let Some(e) = parse(&self.buf[..n]) {
                            out.push(e);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        break;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => out.push(ProcEvent::Overflow),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// Why events cannot be had here: in a child PID or user namespace the kernel ignores the subscription
/// (and event pids would name the initial namespace's processes, not this one's).
fn nested_namespace() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:"));
    if nspid.is_some_and(|l| l.split_whitespace().count() > 2) {
        return Some("Tend runs in a child PID namespace, where the kernel sends no process events".into());
    }
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let initial = uid_map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
    (!uid_map.is_empty() && !initial)
        .then(|| "Tend runs in a user namespace, where the kernel sends no process events".into())
}

/// One event from one datagram; `None` for what is not ours to report (acknowledgements, other
/// kinds, threads other than the leader).
fn parse(msg: &[u8]) -> Option<ProcEvent> {
    if msg.len() < EVENT_DATA + 8 || read_u32(msg, NLMSG_HDR) != CN_IDX_PROC {
        return None;
    }
    let (what, pid, tgid) = (read_u32(msg, EVENT), read_u32(msg, EVENT_DATA), read_u32(msg, EVENT_DATA + 4));
    if pid != tgid {
        return None;
    }
    match what {
        PROC_EVENT_EXEC => Some(ProcEvent::Exec { pid }),
        PROC_EVENT_COMM => Some(ProcEvent::Comm { pid }),
        _ => None,
    }
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; a non-negative result is a new descriptor that we own from here on.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            NETLINK_CONNECTOR,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt_int(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: `v` lives across the call and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

fn bind(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value (nl_pid 0: the kernel assigns one).
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = CN_IDX_PROC;
    // SAFETY: `addr` is a valid sockaddr_nl and its size is passed with it.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// `PROC_CN_MCAST_LISTEN` with a filter (kernel 6.6+: only exec and comm are delivered; older
/// kernels read the first word and deliver everything, which [`parse`] filters).
fn subscribe(fd: &OwnedFd) -> io::Result<()> {
    let input_len = 8u16;
    let total = (EVENT + usize::from(input_len)) as u32;
    let mut msg = Vec::with_capacity(total as usize);
    msg.extend_from_slice(&total.to_ne_bytes()); // nlmsg_len
    msg.extend_from_slice(&NLMSG_DONE.to_ne_bytes()); // nlmsg_type
    msg.extend_from_slice(&0u16.to_ne_bytes()); // nlmsg_flags
    msg.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_seq
    msg.extend_from_slice(&std::process::id().to_ne_bytes()); // nlmsg_pid
    msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes()); // cb_id.idx
    msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes()); // cb_id.val
    msg.extend_from_slice(&std::process::id().to_ne_bytes()); // seq: echoed in the acknowledgement
    msg.extend_from_slice(&0u32.to_ne_bytes()); // ack
    msg.extend_from_slice(&input_len.to_ne_bytes()); // len
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes()); // proc_input.mcast_op
    msg.extend_from_slice(&(PROC_EVENT_EXEC | PROC_EVENT_COMM).to_ne_bytes());
    // SAFETY: `msg` is a live buffer of the length passed.
    let n = unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live, writable buffer of the length passed.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(what: u32, pid: u32, tgid: u32) -> Vec<u8> {
        let mut m = vec![0u8; EVENT_DATA + 24];
        m[NLMSG_HDR..NLMSG_HDR + 4].copy_from_slice(&CN_IDX_PROC.to_ne_bytes());
        m[EVENT..EVENT + 4].copy_from_slice(&what.to_ne_bytes());
        m[EVENT_DATA..EVENT_DATA + 4].copy_from_slice(&pid.to_ne_bytes());
        m[EVENT_DATA + 4..EVENT_DATA + 8].copy_from_slice(&tgid.to_ne_bytes());
        m
    }

    #[test]
    fn leaders_events_are_read_and_the_rest_left_out() {
        assert_eq!(parse(&datagram(PROC_EVENT_EXEC, 42, 42)), Some(ProcEvent::Exec { pid: 42 }));
        assert_eq!(parse(&datagram(PROC_EVENT_COMM, 7, 7)), Some(ProcEvent::Comm { pid: 7 }));
        assert_eq!(parse(&datagram(PROC_EVENT_COMM, 10, 9)), None, "a thread of 9, not the process");
        assert_eq!(parse(&datagram(0x8000_0000, 9, 9)), None, "exit is not reported");
        assert_eq!(parse(&datagram(0x1, 11, 11)), None, "fork is not reported");
        assert_eq!(parse(&datagram(PROC_EVENT_EXEC, 42, 42)[..20]), None, "truncated");
    }
}
