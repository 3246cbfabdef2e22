//! What an accept does when the process runs out of resources.
//!
//! `accept` fails at once with `EMFILE` (or `ENFILE`, `ENOBUFS`, `ENOMEM`)
//! while the connection is still queued, so the listener stays readable:
//! an accept loop that logs the error and tries again would never block,
//! and the greenlets that would close connections (and free descriptors)
//! would never run. So a resource failure first lets everyone else run —
//! it sleeps on the hub, 1 ms the first time and twice as long after each
//! further failure up to [`MAX_BACKOFF`] (gevent's server does the same) —
//! and then returns the error: nothing is hidden from the caller. The
//! first accept that succeeds resets the delay. An accept made while its
//! greenlet unwinds (in a destructor) cannot sleep, and returns the error
//! at once.

use std::cell::Cell;
use std::io;
use std::time::Duration;

/// The first delay after a resource failure.
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(1);
/// The longest delay between two accepts that keep failing.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// A listener's current back-off.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    next: Cell<Option<Duration>>,
}

impl AcceptBackoff {
    /// Passes `outcome` through, sleeping first if it is a resource
    /// failure (see the module docs).
    pub(crate) fn after<T>(&self, outcome: io::Result<T>) -> io::Result<T> {
        match &outcome {
            Ok(_) => self.next.set(None),
            Err(e) if is_resource_exhaustion(e) => {
                let delay = self.next.get().unwrap_or(MIN_BACKOFF);
                self.next.set(Some((delay * 2).min(MAX_BACKOFF)));
                // Not while the greenlet unwinds (an accept in a
                // destructor): the error is returned at once then.
                let until = crate::hub::time::now() + delay;
                let _ = crate::hub::pause_io("net accept", until);
            }
            Err(_) => {}
        }
        outcome
    }
}

/// Whether `e` says the process or the system ran out of descriptors or
/// memory, which only others closing or freeing something can cure.
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    ) || e.kind() == io::ErrorKind::OutOfMemory
}
