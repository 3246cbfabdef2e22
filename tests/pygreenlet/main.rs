//! Python greenlet's own test suite (`src/greenlet/tests/` of
//! python-greenlet/greenlet, greenlet 3.5.4.dev0, commit 74b3c41), ported one
//! module per Python file, as crossbeam-channel's `tests/golang.rs` ports
//! Go's. Each module's header names the file it ports, how Python's
//! concepts map onto this crate, and what is not ported and why; each test
//! is named after the one it ports, and the `edge_*` tests are additions
//! that push on the same rules. Where the crate decides differently from
//! Python (`docs/semantics.md`), a test asserts the crate's rule and names
//! its row.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[path = "../support/child.rs"]
mod child;
mod fail_scripts;
mod test_contextvars;
mod test_cpp;
mod test_generator;
mod test_greenlet;
mod test_greenlet_trash;
mod test_interpreter_shutdown;
mod test_leaks;
mod test_throw;
mod test_tracing;

/// Counts its drops, on one thread.
struct Counted(Rc<Cell<usize>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// Counts its drops, across threads (a thread's exit drops it).
struct CountedSync(Arc<AtomicUsize>);

impl Drop for CountedSync {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
