//! The `tokio` feature: a tokio runtime's context entered around every
//! poll of [`block_on`](super::block_on) on this thread.

use std::cell::RefCell;

use tokio::runtime::Handle;

thread_local! {
    /// The runtime whose context this thread's polls run in.
    static HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Makes every poll by [`block_on`](super::block_on) (and so by
/// [`spawn_local`](super::spawn_local)) on this thread run inside the
/// context of the tokio runtime `handle` belongs to, so that tokio's timer
/// and I/O futures work from greenlets; `None` stops it. Returns the
/// previous handle. Requires the `tokio` cargo feature.
///
/// The runtime itself runs on other threads (a multi-thread runtime, or a
/// current-thread one driven by another thread): its workers drive timers
/// and sockets and wake the greenlets through their wakers. A tokio future
/// needs the context when it is *created* too, so create it inside the
/// `async` block given to `block_on`, which runs during a poll.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub;
///
/// let rt = tokio::runtime::Builder::new_multi_thread()
///     .worker_threads(1)
///     .enable_all()
///     .build()
///     .unwrap();
/// hub::set_tokio_handle(Some(rt.handle().clone()));
/// let sleeper = hub::spawn(|| {
///     hub::block_on(async { tokio::time::sleep(Duration::from_millis(1)).await });
///     "slept"
/// });
/// assert_eq!(sleeper.join().unwrap(), "slept");
/// hub::set_tokio_handle(None);
/// ```
///
/// A future polled inside the context must not block its greenlet from
/// inside `poll` or its drop (calling a blocking hub function there, or
/// resuming a greenlet that does): the context is the thread's, and
/// another greenlet entering it meanwhile would leave it out of order. Such
/// a call panics (every hub wait, `yield_now` and a `block_on` that would
/// wait check), and the cooperative budget does not yield there. Plain
/// switches are not checked (that would cost every switch a look): a
/// [`Generator`](crate::Generator)'s `yield_` or a `Greenlet::switch` from
/// inside such a poll leaves the context entered while others run, and
/// tokio panics when two of them finish out of order. Blocking
/// calls between `.await`s of a [`spawn_local`](super::spawn_local) future
/// are fine when no handle is set.
pub fn set_tokio_handle(handle: Option<Handle>) -> Option<Handle> {
    // During thread exit (a guard restoring the previous handle as the
    // thread's greenlets are killed) the cell may be gone: there is then
    // nothing to set, and no handle to give back.
    HANDLE
        .try_with(|h| std::mem::replace(&mut *h.borrow_mut(), handle))
        .unwrap_or(None)
}

thread_local! {
    /// How many entries of this thread's runtime context by [`in_context`]
    /// (a poll, or a future's drop) are under way, on any greenlet: a
    /// greenlet that switches to another inside one (a generator's
    /// consumer resuming its producer) leaves it entered.
    static ENTERED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether this thread's runtime context is entered by a poll or a drop
/// under way: a greenlet that blocks (or yields) now would switch away
/// with it entered, and another greenlet entering it meanwhile leaves
/// tokio's context stack out of order. Every hub wait refuses then (see
/// `Waiter::wait`), and the budget's yields are skipped.
pub(crate) fn entered() -> bool {
    ENTERED.try_with(|n| n.get() > 0).unwrap_or(false)
}

/// Runs `f` inside this thread's runtime context, if one is set.
#[inline]
pub(super) fn in_context<R>(f: impl FnOnce() -> R) -> R {
    // A clone, so that no borrow of the cell is held while `f` runs (it
    // may set another handle).
    match HANDLE.try_with(|h| h.borrow().clone()).ok().flatten() {
        // During thread exit tokio's own thread-local may be gone before
        // this one (a future dropped as the thread's greenlets are killed):
        // entering would panic, and abort the unwinding; `f` then runs
        // without the context.
        Some(handle) if !context_destroyed() => {
            struct Counted;
            impl Drop for Counted {
                fn drop(&mut self) {
                    let _ = ENTERED.try_with(|n| n.set(n.get().saturating_sub(1)));
                }
            }
            let _ = ENTERED.try_with(|n| n.set(n.get() + 1));
            let _counted = Counted;
            let _entered = handle.enter();
            f()
        }
        _ => f(),
    }
}

/// Whether tokio's context thread-local is destroyed (thread exit).
fn context_destroyed() -> bool {
    matches!(Handle::try_current(), Err(e) if e.is_thread_local_destroyed())
}
