//! SIGINT and SIGTERM that arrive while `aviary run` is still setting up (checking image
//! digests, writing Ignition configs) are remembered here instead of killing the process,
//! so the runner starts no test and still writes reports that say the run was interrupted.
//! Once the runner listens (tokio's handlers), it takes over; it reads `early()` first.

use std::sync::atomic::{AtomicI32, Ordering};

static EARLY: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    EARLY.store(sig, Ordering::SeqCst);
}

/// From now on SIGINT and SIGTERM are remembered, not fatal.
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `remember` is async-signal-safe (a single atomic store) and lives forever.
        unsafe {
            libc::signal(sig, remember as *const () as libc::sighandler_t);
        }
    }
}

/// The signal that arrived before the runner listened, if any.
pub fn early() -> Option<&'static str> {
    name(EARLY.load(Ordering::SeqCst))
}

fn name(sig: libc::c_int) -> Option<&'static str> {
    match sig {
        libc::SIGINT => Some("SIGINT"),
        libc::SIGTERM => Some("SIGTERM"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_after_install_is_remembered_not_fatal() {
        install();
        assert_eq!(early(), None);
        // SAFETY: raising a signal whose handler was just installed.
        unsafe { libc::raise(libc::SIGTERM) };
        assert_eq!(early(), Some("SIGTERM"));
        assert_eq!(name(libc::SIGHUP), None);
    }
}
