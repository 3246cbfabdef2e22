//! Async code and greenlets together: [`block_on`] awaits any `Future`
//! from a greenlet (blocking only that greenlet), [`spawn_local`] runs a
//! future on the hub's thread beside the greenlets, and
//! [`Remote::call`](super::Remote::call) lets async code on any thread
//! await work done by a greenlet.
//!
//! # How a greenlet awaits
//!
//! Each waiting greenlet borrows a *slot* from a per-thread pool: a waker
//! and a channel-like registration with the hub's reactor. The future is
//! polled on the greenlet's own stack; when it is pending, the greenlet
//! blocks on the registration like a channel receiver. The waker sets a
//! flag and then wakes that registration's waiter: from the hub's own
//! thread by putting it on the ready queue directly, from any other thread
//! through the hub's mailbox and `mio::Waker`, which coalesces wake-ups
//! the hub has not taken yet. A wake-up that finds the flag already set
//! does nothing more, and a mailbox wake-up still in flight from an
//! earlier wait finds the flag clear and only sends the greenlet back to
//! waiting, without polling its future.
//!
//! Slots go back to the pool when the wait ends, so a warmed-up thread
//! awaits without allocating. The price: a waker is the slot's, not the
//! wait's. One kept by a future after it completed (as tokio's channels
//! keep the receiver's last waker) and woken later wakes whatever wait
//! holds that slot then, which polls its future once for nothing. Futures
//! take spurious polls by contract; a waker of the wait's own would cost
//! an allocation per `block_on`.

mod call;
#[cfg(feature = "tokio")]
mod tokio;

#[cfg(feature = "tokio")]
pub(crate) use self::tokio::entered as tokio_context_entered;

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake as TaskWake, Waker};

use super::reactor::{Direction, Registration, Ticket};
use super::remote::Inbox;
use super::{hub, try_hub, Hub, JoinHandle, Wake};
use crate::runtime::Runtime;
use crate::stats::WaitOn;

pub use self::call::{Call, CallError};
#[cfg(feature = "tokio")]
pub use self::tokio::set_tokio_handle;

/// What a waker of a waiting greenlet points at; shared with whatever
/// thread holds the waker.
struct Signal {
    /// Set by a wake-up since the greenlet last cleared it (before a poll).
    woken: AtomicBool,
    /// The mailbox of the hub the greenlet belongs to.
    inbox: Arc<Inbox>,
    /// The registration the greenlet waits on.
    ticket: Ticket,
}

impl TaskWake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Only the first wake-up since the last poll goes any further: the
        // others would find the greenlet already woken.
        if self.woken.swap(true, Ordering::AcqRel) {
            return;
        }
        // On the hub's own thread: straight to the ready queue.
        if let Some(hub) = try_hub() {
            if let Some(reactor) = hub.reactor() {
                if Arc::ptr_eq(reactor.inbox(), &self.inbox) {
                    reactor.notify(self.ticket, |w| hub.wake(w, Wake::Ready));
                    return;
                }
            }
        }
        // From elsewhere: through the mailbox. A closed one means the hub's
        // thread has exited, and nobody is left to wake.
        let _ = self.inbox.wake_readers(self.ticket);
    }
}

/// A waker and what it wakes, reused from wait to wait.
struct Slot {
    signal: Arc<Signal>,
    waker: Waker,
    reg: Rc<Registration>,
}

impl Slot {
    fn new(hub: &Hub) -> Slot {
        let reactor = hub.reactor_or_panic("hub::block_on");
        let reg = reactor.add();
        let signal = Arc::new(Signal {
            woken: AtomicBool::new(false),
            inbox: reactor.inbox().clone(),
            ticket: reg.ticket(),
        });
        Slot {
            waker: Waker::from(signal.clone()),
            signal,
            reg,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Its registration goes with it. A future may have kept a clone of
        // its waker: a wake-up through that names the registration by its
        // ticket, and finds nobody.
        if let Some(reactor) = try_hub().as_deref().and_then(Hub::reactor) {
            reactor.remove(&self.reg);
        }
    }
}

thread_local! {
    /// Slots not in use on this thread, at most [`KEEP_SLOTS`].
    static POOL: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// How many unused slots a thread keeps (about 250 bytes each, and a
/// registration in the reactor): a steady load of up to this many
/// `block_on`s at once allocates nothing, and a burst of more gives the
/// surplus back as it ends.
const KEEP_SLOTS: usize = 1024;

/// A slot borrowed from the pool for one `block_on`; given back on every
/// exit path (a kill or a timeout unwinds through here).
struct Lease(Option<Slot>);

impl Lease {
    fn take(hub: &Hub) -> Lease {
        let pooled = POOL.try_with(|pool| pool.borrow_mut().pop()).ok().flatten();
        Lease(Some(pooled.unwrap_or_else(|| Slot::new(hub))))
    }

    fn slot(&self) -> &Slot {
        self.0
            .as_ref()
            .expect("a lease holds its slot until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            // During thread exit the pool may be gone: the slot just drops
            // (as one past the pool's room does, outside its borrow).
            let surplus = POOL
                .try_with(|pool| {
                    let mut pool = pool.borrow_mut();
                    if pool.len() < KEEP_SLOTS {
                        pool.push(slot);
                        None
                    } else {
                        Some(slot)
                    }
                })
                .ok()
                .flatten();
            drop(surplus);
        }
    }
}

/// Runs `fut` to completion, blocking only the calling greenlet (main
/// included) while it is pending; other greenlets run meanwhile. Works for
/// any future, `Send` or not: it is polled on the caller's own stack.
///
/// The future's waker may be used from any thread. Woken from the hub's
/// thread (by another greenlet, or a future of [`spawn_local`]), the
/// caller goes on the ready queue; woken from another thread (a tokio
/// runtime's worker, a `oneshot` sent from an OS thread), it is woken
/// through the hub's poll, as a [`channel`](super::channel) receiver is. A
/// future that wakes itself while polled (a yield) lets the other ready
/// greenlets run before it is polled again.
///
/// ```
/// use greenlet::hub;
///
/// // A oneshot answered by another OS thread, awaited by a greenlet.
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// let waiter = hub::spawn(move || hub::block_on(rx).unwrap() * 2);
/// std::thread::spawn(move || tx.send(21).unwrap());
/// assert_eq!(waiter.join().unwrap(), 42);
/// ```
///
/// A [`with_timeout`](super::with_timeout) that expires, or a
/// [`kill`](crate::Greenlet::kill), interrupts the wait: the future is
/// dropped on the greenlet's stack as the call unwinds, exactly once (with
/// the `tokio` feature, inside the context set with `set_tokio_handle`,
/// as its polls are: a destructor may spawn a tokio task).
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub;
///
/// let never = std::future::pending::<()>();
/// let r = hub::with_timeout(Duration::from_millis(5), || hub::block_on(never));
/// assert!(r.is_err());
/// ```
///
/// # tokio
///
/// tokio's I/O and timer futures need a tokio runtime's context when they
/// are created and polled. With a runtime running on other threads, give
/// the thread that context: with the `tokio` cargo feature,
/// `hub::set_tokio_handle(Some(handle))` makes `block_on` enter the
/// runtime around every poll on this thread (create the future inside an
/// `async` block passed to `block_on`, so that it is made during a poll);
/// without it, keep a `handle.enter()` guard alive in the main greenlet
/// for as long as the thread uses tokio.
///
/// Do not call it from *inside* a tokio task (an `async fn` run by a
/// runtime, `#[tokio::main]` included), as no executor's `block_on` may
/// be: the task's thread is taken while it waits. On a current-thread
/// runtime, tokio's timers and I/O then never make progress; on a
/// multi-thread one, tokio's own budget of the enclosing task (128
/// operations) is never given back, and its futures stay pending after
/// that many. Run the hub on a thread of its own (`spawn_blocking`, or a
/// `std::thread`) and hand it the runtime's handle as above.
///
/// # Panics
///
/// When the future panics (the panic unwinds out of `block_on` into the
/// caller); as any blocking hub call (see the [hub docs](super)); and when
/// a tokio future is polled without a runtime context: the message then
/// names the remedies above; when the thread's I/O reactor cannot be
/// created (`epoll_create` or the waker's `eventfd` failed, at the
/// open-file limit), as for [`remote`](super::remote). With a tokio handle set
/// (`hub::set_tokio_handle`, `tokio` feature), also when called from
/// inside the poll or the drop of a future polled in that context (a
/// `block_on` in an `async` block given to `block_on`) on a future that is
/// not ready: it would block its greenlet with the context entered;
/// `.await` the inner future instead. A future that keeps waking itself
/// while the greenlet unwinds (a `block_on` in a destructor during a kill,
/// which cannot switch) is polled again at once, up to 1,024 times, then
/// refused the same way; a panic in a destructor during an unwinding
/// aborts the process, as any does. A wait here, like a channel's, is never
/// reported as "would block forever", since a waker may be on another
/// thread: a future that nothing will ever wake blocks its greenlet (and a
/// `run` waiting for it) forever.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut held = DroppedInContext::new(fut);
    // SAFETY: `held` stays in this frame and is never moved after this
    // (only this pinned reference to its future is used), and its `Drop`
    // drops the future in place: the pinning guarantee holds (as `pin!`).
    let mut fut = unsafe { Pin::new_unchecked(&mut *held.fut) };
    let hub = hub();
    // A future that is always ready (a tokio channel that is never empty)
    // would otherwise keep the other greenlets from running for good. Not
    // inside the tokio context (a `block_on` nested in a poll, or in a
    // future's drop): the yield would switch away with it entered.
    #[cfg(feature = "tokio")]
    if !self::tokio::entered() {
        hub.coop();
    }
    #[cfg(not(feature = "tokio"))]
    hub.coop();
    let lease = Lease::take(&hub);
    let slot = lease.slot();
    let mut cx = Context::from_waker(&slot.waker);
    // Self-wakes polled again at once while the greenlet unwinds.
    let mut repolls = 0;
    loop {
        // Cleared before the poll: a wake-up during or after it is seen.
        slot.signal.woken.swap(false, Ordering::AcqRel);
        if let Poll::Ready(value) = poll_in_context(fut.as_mut(), &mut cx) {
            // Dropped here, `value` a local still (see `drop_now`).
            held.drop_now();
            return value;
        }
        #[cfg(feature = "tokio")]
        if self::tokio::entered() {
            refuse_blocking_in_an_entered_poll();
        }
        if slot.signal.woken.load(Ordering::Acquire) {
            // It woke itself while polled: a yield, so let the others run;
            // but a greenlet that unwinds (a `block_on` in a destructor
            // during a kill) cannot switch, so it polls again at once, up
            // to a bound (a future that yields for ever would spin), after
            // which it refuses as a wait does.
            if Runtime::get().current_unwinds() {
                repolls += 1;
                if repolls > MAX_REPOLLS_UNWINDING {
                    panic!(
                        "greenlet::hub: hub::block_on cannot block while the greenlet \
                         unwinds (its future kept yielding)"
                    );
                }
            } else {
                super::yield_now();
            }
            continue;
        }
        // Wake-ups for an earlier wait find the flag clear: wait again
        // without polling.
        while !slot.signal.woken.load(Ordering::Acquire) {
            wait(&hub, &slot.reg);
        }
    }
}

/// A `block_on` inside the poll (or the drop) of a future polled with a
/// tokio handle set, whose future is not ready: it would switch away with
/// tokio's context entered, which another greenlet entering it meanwhile
/// leaves out of order (tokio then panics in whichever greenlet resumes
/// first).
/// A blocking hub call (`call`) while this thread's tokio context is
/// entered by a poll or a drop (see `tokio::entered`): refused, as a
/// nested `block_on` is.
#[cfg(feature = "tokio")]
#[cold]
#[inline(never)]
pub(crate) fn refuse_blocking_in_tokio_context(call: &str) -> ! {
    panic!(
        "greenlet::hub: {call} inside the poll (or the drop) of a future polled in the \
         tokio context (hub::set_tokio_handle) would block its greenlet with the context \
         entered; .await instead"
    );
}

#[cfg(feature = "tokio")]
#[cold]
fn refuse_blocking_in_an_entered_poll() -> ! {
    panic!(
        "greenlet::hub::block_on: a future polled inside the tokio context \
         (hub::set_tokio_handle) called block_on on a future that is not ready, \
         which would block its greenlet with the context entered; .await the \
         inner future instead"
    );
}

/// How many times `block_on` polls a future that keeps waking itself
/// while its greenlet unwinds (and so cannot yield) before refusing.
const MAX_REPOLLS_UNWINDING: u32 = 1024;

/// Blocks on `reg` until it is woken (a kill or a timeout unwinds).
///
/// # Panics
///
/// When the greenlet unwinds (a `block_on` in a destructor during a panic
/// or a kill), as every blocking call that cannot fail with an error: the
/// I/O wait refuses at once, and waiting again would spin.
fn wait(hub: &Hub, reg: &Registration) {
    // Without a deadline the wait can only end woken, unwinding, or
    // refused because the greenlet unwinds.
    if hub
        .wait_io(reg, Direction::Read, None, "hub::block_on", WaitOn::Future)
        .is_err()
    {
        panic!("greenlet::hub: hub::block_on cannot block while the greenlet unwinds");
    }
}

/// The future of a [`block_on`], dropped inside this thread's tokio
/// context if one is set, as it is polled: a wait cancelled by a kill or a
/// `with_timeout` drops it as the greenlet unwinds, and a future whose
/// destructor needs the runtime (a pooled connection that spawns a task to
/// give itself back) would panic outside it, which aborts during an
/// unwinding.
struct DroppedInContext<F> {
    fut: ManuallyDrop<F>,
    /// The future has been dropped (or its drop begun) already.
    dropped: bool,
}

impl<F> Drop for DroppedInContext<F> {
    fn drop(&mut self) {
        self.drop_now();
    }
}

impl<F> DroppedInContext<F> {
    fn new(fut: F) -> Self {
        DroppedInContext {
            fut: ManuallyDrop::new(fut),
            dropped: false,
        }
    }

    /// The future, no longer dropped by this.
    fn into_inner(self) -> F {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so its `Drop` does not drop the
        // future again, and the future is moved out exactly once (it is
        // not dropped yet: only `block_on` drops it early, and this is not
        // called there); it was never pinned where it is (`block_on` pins
        // only its own holder).
        unsafe { ManuallyDrop::take(&mut this.fut) }
    }

    /// Drops the future in place, inside the tokio context if one is set,
    /// unless that was done (or begun: a destructor that unwinds) before.
    /// `block_on` calls it before it returns the output, while the output
    /// is still a local of its own: a destructor that unwinds then (a
    /// timeout or a kill while it blocks, or a panic) drops the output on
    /// the way, where a return slot would be leaked (rust-lang/rust#47949).
    fn drop_now(&mut self) {
        if std::mem::replace(&mut self.dropped, true) {
            return;
        }
        #[cfg(feature = "tokio")]
        self::tokio::in_context(|| self.drop_future());
        #[cfg(not(feature = "tokio"))]
        self.drop_future();
    }

    fn drop_future(&mut self) {
        // SAFETY: called once (`dropped` was false, and is set before):
        // the future is dropped in place (it may be pinned), and never
        // used again.
        unsafe { ManuallyDrop::drop(&mut self.fut) }
    }
}

/// Polls `fut` inside this thread's tokio context, if one is set, turning
/// tokio's "no runtime" panic into one that says what to do.
#[inline]
fn poll_in_context<F: Future + ?Sized>(
    fut: std::pin::Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    let poll = std::panic::AssertUnwindSafe(|| {
        #[cfg(feature = "tokio")]
        return self::tokio::in_context(|| fut.poll(cx));
        #[cfg(not(feature = "tokio"))]
        fut.poll(cx)
    });
    match std::panic::catch_unwind(poll) {
        Ok(poll) => poll,
        Err(p) => match crate::error::payload_message(p.as_ref()) {
            Some(m) if is_no_runtime(m) => no_runtime(m),
            _ => std::panic::resume_unwind(p),
        },
    }
}

/// Whether a panic message is tokio's "not in a runtime" one (tokio 1's
/// own words, not any message that mentions a reactor: another panic
/// keeps its payload).
fn is_no_runtime(message: &str) -> bool {
    // Not once more for a nested `block_on`'s message, which quotes it.
    message.contains("must be called from the context of a Tokio 1.x runtime")
        && !message.starts_with(NO_RUNTIME)
}

/// How [`no_runtime`]'s message begins.
const NO_RUNTIME: &str = "greenlet::hub::block_on: a tokio future was polled outside";

#[cold]
#[inline(never)]
fn no_runtime(message: &str) -> ! {
    panic!(
        "{NO_RUNTIME} a tokio runtime's context ({message}). Remedy: run a tokio runtime (on other threads) and give this \
         thread its context, either with the `tokio` cargo feature and \
         `greenlet::hub::set_tokio_handle(Some(runtime.handle().clone()))` (then create the \
         future inside the `async` block given to block_on), or by keeping a \
         `runtime.handle().enter()` guard alive in the main greenlet"
    )
}

/// Runs `fut` on this thread's hub, beside the greenlets, and returns a
/// handle to its output: the future may be `!Send` and may use anything of
/// this thread (`Rc`s, the crate's queues and events, sockets), and its
/// wakers work from any thread, as [`block_on`]'s do.
///
/// The future is driven by a greenlet of its own that [`block_on`]s it, so
/// it may also call blocking hub functions directly (a `hub::sleep` inside
/// an `async` block blocks only that future). Like [`spawn`](super::spawn),
/// it starts when the caller blocks or yields; a panic becomes the
/// handle's [`JoinError::Panicked`](super::JoinError::Panicked), and
/// [`JoinHandle::kill`] drops the future.
///
/// ```
/// use std::rc::Rc;
/// use std::cell::Cell;
/// use greenlet::hub;
///
/// let seen = Rc::new(Cell::new(0)); // !Send: fine on the hub's thread
/// let s = seen.clone();
/// let task = hub::spawn_local(async move {
///     let (tx, rx) = tokio::sync::oneshot::channel();
///     std::thread::spawn(move || tx.send(7).unwrap());
///     s.set(rx.await.unwrap());
///     "done"
/// });
/// assert_eq!(task.join().unwrap(), "done");
/// assert_eq!(seen.get(), 7);
/// ```
///
/// # Panics
///
/// As [`spawn`](super::spawn) when no stack can be had.
pub fn spawn_local<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    // Held so that, dropped unrun (killed before it started, or by the
    // kills that end `run_main` and the thread), it drops in the tokio
    // context too, as `block_on` drops it.
    let held = DroppedInContext::new(fut);
    super::spawn(move || block_on(held.into_inner()))
}

/// An iterator over the items of an async stream, for a greenlet: each
/// `next` [`block_on`]s the stream's next item, blocking only the calling
/// greenlet, and the iterator ends when the stream does.
///
/// The stream is given as its poll function, so that any stream type
/// works without a dependency on a stream trait: `|cx| rx.poll_recv(cx)`
/// for a tokio `mpsc::Receiver`, `|cx| stream.as_mut().poll_next(cx)` for
/// a pinned `futures::Stream`.
///
/// ```
/// use greenlet::hub;
///
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// std::thread::spawn(move || {
///     for i in 1..=3 {
///         tx.send(i).unwrap();
///     }
/// });
/// let got: Vec<u32> = hub::block_on_stream(|cx| rx.poll_recv(cx)).collect();
/// assert_eq!(got, [1, 2, 3]);
/// ```
///
/// Never panics itself; its iterator's `next` panics as [`block_on`] does.
pub fn block_on_stream<T, P>(poll_next: P) -> BlockOnStream<P>
where
    P: FnMut(&mut Context<'_>) -> Poll<Option<T>>,
{
    BlockOnStream { poll_next }
}

/// The iterator of [`block_on_stream`].
pub struct BlockOnStream<P> {
    poll_next: P,
}

/// Says nothing of the polling function (a closure, not `Debug`).
impl<P> fmt::Debug for BlockOnStream<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockOnStream").finish_non_exhaustive()
    }
}

impl<T, P> Iterator for BlockOnStream<P>
where
    P: FnMut(&mut Context<'_>) -> Poll<Option<T>>,
{
    type Item = T;

    /// The stream's next item, blocking the calling greenlet until it is
    /// there (`None` once the stream ends).
    ///
    /// # Panics
    ///
    /// As [`block_on`].
    fn next(&mut self) -> Option<T> {
        block_on(std::future::poll_fn(&mut self.poll_next))
    }
}
