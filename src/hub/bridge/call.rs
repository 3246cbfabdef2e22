//! [`Remote::call`]: async code on any thread awaits work done by a new
//! greenlet on a hub's thread.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use slab::Slab;

use super::super::is_kill;
use super::super::remote::{Remote, Reply};
use crate::error::payload_message;
use crate::greenlet::Greenlet;

/// Why a [`Remote::call`] has no value.
#[non_exhaustive]
pub enum CallError {
    /// The function panicked; the payload is the original one (give it to
    /// `std::panic::resume_unwind` to carry the panic on).
    Panicked(Box<dyn Any + Send>),
    /// The greenlet was killed before the function returned (by hand, or
    /// because the hub's thread shut down with it still running).
    Killed,
    /// The hub's thread had exited: the function never ran.
    Closed,
    /// The hub could not get a stack for the call's greenlet (the system
    /// refused the mapping: see [`Builder::spawn`](crate::hub::Builder::spawn)):
    /// the function never ran, and the hub runs on.
    NoStack,
}

impl fmt::Debug for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Panicked(p) => f
                .debug_tuple("Panicked")
                .field(&payload_message(p.as_ref()).unwrap_or("<non-text payload>"))
                .finish(),
            CallError::Killed => f.write_str("Killed"),
            CallError::Closed => f.write_str("Closed"),
            CallError::NoStack => f.write_str("NoStack"),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Panicked(p) => match payload_message(p.as_ref()) {
                Some(m) => write!(f, "the called greenlet panicked: {m}"),
                None => f.write_str("the called greenlet panicked (non-text payload)"),
            },
            CallError::Killed => f.write_str("the called greenlet was killed"),
            CallError::Closed => f.write_str("the hub's thread has exited"),
            CallError::NoStack => f.write_str("the hub could not get a stack for the call"),
        }
    }
}

impl std::error::Error for CallError {}

/// What the caller and the greenlet share.
struct Shared<R> {
    state: Mutex<State<R>>,
}

struct State<R> {
    outcome: Option<Result<R, CallError>>,
    /// The outcome was delivered (or the call abandoned): nothing more.
    done: bool,
    /// The caller's waker, from its last poll.
    waker: Option<Waker>,
    /// The running greenlet's key in `RUNNING` on the hub's thread.
    running: Option<usize>,
    /// The caller dropped the future before it resolved.
    abandoned: bool,
    /// The call's greenlet has started.
    started: bool,
}

impl<R> Shared<R> {
    fn lock(&self) -> MutexGuard<'_, State<R>> {
        // Only plain field updates happen under the lock (no user code),
        // so a poisoned lock still guards consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the outcome (the first one wins) and wakes the caller.
    fn finish(&self, outcome: Result<R, CallError>) {
        let mut state = self.lock();
        if state.done || state.outcome.is_some() {
            return;
        }
        state.outcome = Some(outcome);
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

thread_local! {
    /// The greenlets of calls running on this thread, so that an abandoned
    /// call (its future dropped on another thread) can be killed.
    static RUNNING: RefCell<Slab<Greenlet>> = const { RefCell::new(Slab::new()) };
}

/// Owned by the task posted to the hub: records an error if the call ends
/// without an outcome (the task dropped unrun with the hub's queue, at
/// thread exit or refused, or its greenlet killed by the thread's exit
/// before it started: `Closed`; its greenlet killed otherwise, before it
/// started or after: `Killed`; no stack for it: `NoStack`).
struct Completer<R> {
    shared: Arc<Shared<R>>,
    started: bool,
}

impl<R> Drop for Completer<R> {
    fn drop(&mut self) {
        let error = if self.started {
            CallError::Killed
        } else if crate::hub::io::dropping_unrun_for_want_of_a_stack() {
            CallError::NoStack
        } else if crate::runtime::Runtime::if_running()
            .is_some_and(|rt| rt.drops_its_unrun_function() && !rt.is_tearing_down())
        {
            // Its greenlet was killed before it started: the hub lives.
            // (Killed by the thread's exit, it never ran: `Closed`.)
            CallError::Killed
        } else {
            CallError::Closed
        };
        self.shared.finish(Err(error));
    }
}

/// Kept in the hub's inbox while the call is pending (see `Reply::keep`):
/// if the hub's thread exits with the call's greenlet suspended, its exit
/// leaves that greenlet as it is (the completer on its stack is never
/// dropped), and the inbox's close drops this instead, which records the
/// end (the first outcome recorded wins, so after any other end this does
/// nothing).
struct Finisher<R>(Arc<Shared<R>>);

impl<R> Drop for Finisher<R> {
    fn drop(&mut self) {
        let error = if self.0.lock().started {
            CallError::Killed
        } else {
            CallError::Closed
        };
        self.0.finish(Err(error));
    }
}

/// Takes a call's greenlet out of `RUNNING` when it ends, however it ends.
struct Running<'a, R> {
    shared: &'a Shared<R>,
    key: usize,
}

impl<R> Drop for Running<'_, R> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if state.running == Some(self.key) {
            state.running = None;
            drop(state);
            let _ = RUNNING.try_with(|r| r.borrow_mut().try_remove(self.key));
        }
    }
}

/// The body of a call's greenlet.
fn run<F, R>(mut completer: Completer<R>, f: F)
where
    F: FnOnce() -> R,
{
    completer.started = true;
    let me = Greenlet::current_owned();
    let Ok(key) = RUNNING.try_with(|r| r.borrow_mut().insert(me)) else {
        return; // the thread is exiting: `Killed`
    };
    {
        let mut state = completer.shared.lock();
        state.started = true;
        if state.abandoned {
            drop(state);
            let _ = RUNNING.try_with(|r| r.borrow_mut().try_remove(key));
            return;
        }
        state.running = Some(key);
    }
    let running = Running {
        shared: &completer.shared,
        key,
    };
    let outcome = match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Ok(value),
        // A kill must finish unwinding the stack; the completer says so.
        Err(p) if is_kill(p.as_ref()) => panic::resume_unwind(p),
        Err(p) => Err(CallError::Panicked(p)),
    };
    drop(running);
    completer.shared.finish(outcome);
}

impl Remote {
    /// Runs `f` in a new greenlet on the hub's thread and returns a future
    /// of its result, for async code on any thread (a tokio task, say) to
    /// await. `f` may block in the ordinary greenlet way (queues, sockets,
    /// `sleep`); it starts the next time the hub polls, as
    /// [`spawn`](Remote::spawn)'s work does.
    ///
    /// The future is `Send` and resolves to `f`'s value, or to a
    /// [`CallError`]: `Panicked` with the panic's payload, `Killed` when the
    /// greenlet was killed before returning, `Closed` when the hub's thread
    /// had exited, `NoStack` when the hub could not get a stack for the
    /// greenlet (the hub runs on). Dropping the future before it resolves kills the
    /// greenlet (its stack unwinds, its destructors run), or keeps `f` from
    /// starting if it has not yet.
    ///
    /// ```
    /// use greenlet::hub;
    ///
    /// // A hub thread that serves calls until told to stop.
    /// let (remote_tx, remote_rx) = std::sync::mpsc::channel();
    /// let server = std::thread::spawn(move || {
    ///     let (stop_tx, stop_rx) = hub::channel::<()>();
    ///     remote_tx.send((hub::remote(), stop_tx)).unwrap();
    ///     let _ = stop_rx.recv(); // keeps the hub polling
    /// });
    /// let (remote, stop) = remote_rx.recv().unwrap();
    ///
    /// // Async code on this thread calls into greenlet code there.
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let answer = rt.block_on(remote.call(|| {
    ///     hub::sleep(std::time::Duration::from_millis(1)); // blocks only it
    ///     6 * 7
    /// }));
    /// assert_eq!(answer.unwrap(), 42);
    ///
    /// stop.send(()).unwrap();
    /// server.join().unwrap();
    /// ```
    pub fn call<F, R>(&self, f: F) -> Call<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                outcome: None,
                done: false,
                waker: None,
                running: None,
                abandoned: false,
                started: false,
            }),
        });
        let completer = Completer {
            shared: shared.clone(),
            started: false,
        };
        // A refused post drops the task, whose completer records `Closed`
        // (so does a closed inbox's refusal to keep the finisher).
        let Ok(finisher) = Reply::keep(self, Box::new(Finisher(shared.clone()))) else {
            drop(completer);
            return Call {
                shared,
                remote: self.clone(),
            };
        };
        // Dropped unrun for want of a stack, the task drops `f` first (the
        // tuple's order), so the caller hears of it once `f` and its
        // captures are gone; then the completer, whose error (`NoStack`) is
        // the one recorded; then the finisher. (At the hub thread's exit
        // the inbox drops the kept finishers before the queued tasks, see
        // `Inbox::close`: the caller hears `Closed` first there.)
        let parts = (f, completer, finisher);
        let _ = self.spawn(move || {
            let parts = parts; // captured whole, not field by field
            let (f, completer, _finisher) = parts; // the finisher goes after `run`
            run(completer, f)
        });
        Call {
            shared,
            remote: self.clone(),
        }
    }
}

/// The future of [`Remote::call`]: `Send`, resolves to the greenlet's
/// result. Dropping it before it resolves kills the greenlet.
#[must_use = "a call's greenlet is killed when its future is dropped"]
pub struct Call<R: Send + 'static> {
    shared: Arc<Shared<R>>,
    remote: Remote,
}

impl<R: Send + 'static> Future for Call<R> {
    type Output = Result<R, CallError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.shared.lock();
        if let Some(outcome) = state.outcome.take() {
            state.done = true;
            return Poll::Ready(outcome);
        }
        assert!(!state.done, "greenlet::hub::Call polled after it resolved");
        match &mut state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<R: Send + 'static> Drop for Call<R> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if state.done || state.outcome.is_some() {
            return;
        }
        state.abandoned = true;
        state.waker = None;
        let running = state.running.is_some();
        drop(state);
        if running {
            let shared = self.shared.clone();
            // Posted as a spawn is, but made on the hub greenlet itself
            // when no stack can be had (a spawn alone was dropped unrun
            // then, and the call's greenlet ran on for good). A closed hub
            // has killed its greenlets already.
            let _ = self.remote.run_on_hub(move || kill(&shared));
        }
    }
}

/// On the hub's thread: kills the greenlet of an abandoned call, if it is
/// still running.
fn kill<R>(shared: &Shared<R>) {
    let key = shared.lock().running.take();
    let Some(key) = key else {
        return;
    };
    let greenlet = RUNNING
        .try_with(|r| r.borrow_mut().try_remove(key))
        .ok()
        .flatten();
    if let Some(greenlet) = greenlet {
        crate::hub::join::kill_spawned(&greenlet);
    }
}

impl<R: Send + 'static> fmt::Debug for Call<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Call")
            .field("resolved", &(state.done || state.outcome.is_some()))
            .finish()
    }
}
