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
//!
//! The hook also tells the runtime that the running greenlet panics (see
//! `Runtime::note_panic`): the one case where `std::thread::panicking`
//! cannot say whether that greenlet's own stack unwinds.

use std::cell::Cell;
use std::sync::Once;

use crate::runtime::Runtime;

/// What this thread knows: it has built no greenlet yet.
const NO_GREENLETS: u8 = 0;
/// It built a greenlet (so it has a runtime worth asking), but saw no hook
/// installed yet: the next build tries again.
const HOOK_PENDING: u8 = 1;
/// It built a greenlet, and the hook is installed.
const READY: u8 = 2;

thread_local! {
    /// `NO_GREENLETS`, `HOOK_PENDING` or `READY`.
    static THREAD: Cell<u8> = const { Cell::new(NO_GREENLETS) };
}

/// Called when a greenlet is built: installs the hook once per process
/// and marks the thread.
#[inline]
pub(crate) fn note_greenlet_thread() {
    if THREAD.with(Cell::get) == READY {
        return;
    }
    let installed = install();
    THREAD.with(|t| t.set(if installed { READY } else { HOOK_PENDING }));
}

/// Installs the hook unless it is; returns whether it is installed.
#[cold]
fn install() -> bool {
    static INSTALL: Once = Once::new();
    // `take_hook` panics while the thread panics: try again at the next
    // build (the thread stays `HOOK_PENDING`).
    if std::thread::panicking() {
        return INSTALL.is_completed();
    }
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(who) = current_greenlet() {
                report!("panic in {who}:");
            }
            previous(info);
        }));
    });
    true
}

/// "greenlet 'name' (id N)" for the running greenlet, unless it is main or
/// the thread has no live runtime.
fn current_greenlet() -> Option<String> {
    if THREAD.try_with(Cell::get).unwrap_or(NO_GREENLETS) == NO_GREENLETS {
        return None;
    }
    let rt = Runtime::try_get()?;
    let key = rt.current();
    if key == rt.main_key() {
        return None;
    }
    // The runtime tells this greenlet's own unwinding from a killer's.
    rt.note_panic();
    let id = rt.records().id(key);
    Some(match rt.records().name(key) {
        Some(name) => format!("greenlet '{name}' (id {id})"),
        None => format!("greenlet id {id}"),
    })
}
