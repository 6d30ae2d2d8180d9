//! The open-file limit. Every TCP connection, RTP socket and database file
//! is a descriptor, and the usual soft limit (1024) is far below what
//! `sip.max_tcp_connections` allows: past it accept() fails with EMFILE
//! for everyone. The hard limit is ours to take, so take it at start-up.

use tracing::{info, warn};

/// Descriptors kept for everything that is not a SIP TCP connection
/// (RTP sockets are counted separately by the operator's port range).
const RESERVE: u64 = 256;

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns (before, after).
pub fn raise_nofile() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur >= lim.rlim_max {
        return Ok((before, before));
    }
    let want = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads only the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((before, want.rlim_cur))
}

/// Raises the limit and logs it, warning when the TCP connection cap
/// cannot be reached within it.
pub fn raise_and_log(max_tcp_connections: usize) {
    let limit = match raise_nofile() {
        Ok((before, after)) if after > before => {
            info!(from = before, to = after, "open-file limit raised");
            after
        }
        Ok((_, now)) => {
            info!(limit = now, "open-file limit");
            now
        }
        Err(e) => {
            warn!(error = %e, "open-file limit could not be read or raised");
            return;
        }
    };
    let wanted = max_tcp_connections as u64 + RESERVE;
    if limit < wanted {
        warn!(
            limit,
            max_tcp_connections,
            "the open-file limit is below sip.max_tcp_connections plus a reserve; raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower the setting"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn raising_is_idempotent() {
        let (_, first) = super::raise_nofile().unwrap();
        let (before, after) = super::raise_nofile().unwrap();
        assert_eq!((before, after), (first, first));
    }
}
