//! Panics name their greenlet: a process-wide panic hook, installed when
//! the first greenlet is built, prints which greenlet (name and id)
//! panicked, then hands the panic to the hook that was set before (std's
//! "thread 'main' panicked at ..." report, or the program's own hook).
//!
//! The hook says nothing for the main greenlet (std's report names the
//! thread) and on threads that never built a greenlet, and never touches
//! the runtime of a thread that is being torn down. Kills and
//! `with_timeout` interruptions unwind with `resume_unwind`, which skips
//! panic hooks, so they print nothing. A hook set later by the program
//! replaces this one.

use std::cell::Cell;
use std::sync::Once;

use crate::runtime::Runtime;

thread_local! {
    /// This thread built a greenlet, so it has a runtime worth asking.
    static HAS_GREENLETS: Cell<bool> = const { Cell::new(false) };
}

/// Called when a greenlet is built: installs the hook once per process
/// and marks the thread.
#[inline]
pub(crate) fn note_greenlet_thread() {
    if HAS_GREENLETS.with(Cell::get) {
        return;
    }
    HAS_GREENLETS.with(|h| h.set(true));
    install();
}

#[cold]
fn install() {
    static INSTALL: Once = Once::new();
    // `take_hook` panics while the thread panics: try again next time.
    if std::thread::panicking() {
        return;
    }
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(who) = current_greenlet() {
                eprintln!("panic in {who}:");
            }
            previous(info);
        }));
    });
}

/// "greenlet 'name' (id N)" for the running greenlet, unless it is main or
/// the thread has no live runtime.
fn current_greenlet() -> Option<String> {
    if !HAS_GREENLETS.try_with(Cell::get).unwrap_or(false) {
        return None;
    }
    let rt = Runtime::try_get()?;
    let key = rt.current();
    if key == rt.main_key() {
        return None;
    }
    let id = rt.records().id(key);
    Some(match rt.records().name(key) {
        Some(name) => format!("greenlet '{name}' (id {id})"),
        None => format!("greenlet id {id}"),
    })
}
