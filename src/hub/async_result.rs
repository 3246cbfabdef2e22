//! `AsyncResult<T, E>`: a value or an error that arrives once, for any
//! number of waiting greenlets (gevent's `AsyncResult`, a multi-reader
//! oneshot).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use super::deadline_after;
use super::event::Event;

/// A one-shot slot for a `Result<T, E>` shared by the greenlets of one
/// thread; `Clone` gives another handle to the same slot.
///
/// [`set`](AsyncResult::set) or [`set_error`](AsyncResult::set_error)
/// fills it once and wakes every waiter; [`get`](AsyncResult::get) blocks
/// until it is filled and returns a clone of what is there, so any number
/// of greenlets may read it.
///
/// ```
/// use greenlet::hub::{self, AsyncResult};
///
/// let answer: AsyncResult<u32, String> = AsyncResult::new();
/// let readers: Vec<_> = (0..3)
///     .map(|_| {
///         let a = answer.clone();
///         hub::spawn(move || a.get())
///     })
///     .collect();
/// hub::yield_now(); // the readers block
/// answer.set(42).unwrap();
/// for r in readers {
///     assert_eq!(r.join().unwrap(), Ok(42));
/// }
/// assert_eq!(answer.set(7), Err(7), "it is set once");
/// ```
pub struct AsyncResult<T, E = String> {
    inner: Rc<Inner<T, E>>,
}

struct Inner<T, E> {
    ready: Event,
    value: RefCell<Option<Result<T, E>>>,
}

impl<T, E> AsyncResult<T, E> {
    /// An empty slot.
    pub fn new() -> AsyncResult<T, E> {
        AsyncResult {
            inner: Rc::new(Inner {
                ready: Event::new(),
                value: RefCell::new(None),
            }),
        }
    }

    /// Fills the slot with a value and wakes every waiter.
    ///
    /// # Errors
    ///
    /// Gives `value` back if the slot was already filled.
    pub fn set(&self, value: T) -> Result<(), T> {
        self.fill(Ok(value)).map_err(|r| match r {
            Ok(v) => v,
            Err(_) => unreachable!("fill gives back what it was given"),
        })
    }

    /// Fills the slot with an error and wakes every waiter.
    ///
    /// # Errors
    ///
    /// Gives `error` back if the slot was already filled.
    pub fn set_error(&self, error: E) -> Result<(), E> {
        self.fill(Err(error)).map_err(|r| match r {
            Err(e) => e,
            Ok(_) => unreachable!("fill gives back what it was given"),
        })
    }

    fn fill(&self, result: Result<T, E>) -> Result<(), Result<T, E>> {
        {
            let mut slot = self.inner.value.borrow_mut();
            if slot.is_some() {
                return Err(result);
            }
            *slot = Some(result);
        }
        self.inner.ready.set();
        Ok(())
    }

    /// Whether the slot is filled.
    pub fn is_ready(&self) -> bool {
        self.inner.value.borrow().is_some()
    }

    /// Whether the slot holds a value (not an error).
    pub fn is_successful(&self) -> bool {
        matches!(*self.inner.value.borrow(), Some(Ok(_)))
    }

    /// Blocks until the slot is filled.
    ///
    /// # Panics
    ///
    /// As any blocking call (see the [module docs](super)).
    #[inline(always)]
    pub fn wait(&self) {
        self.inner.ready.wait();
    }

    /// Blocks until the slot is filled or `timeout` passes; returns whether
    /// it was filled while this greenlet waited (as for
    /// [`wait`](AsyncResult::wait), another greenlet may have taken what
    /// was there before this one ran).
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.inner.ready.wait_timeout(timeout)
    }

    /// Takes what is in the slot out, leaving it empty (so it can be set
    /// again); never blocks.
    pub fn take(&self) -> Option<Result<T, E>> {
        let taken = self.inner.value.borrow_mut().take();
        self.inner.ready.clear();
        taken
    }
}

impl<T: Clone, E: Clone> AsyncResult<T, E> {
    /// Blocks until the slot is filled and returns a clone of it.
    ///
    /// # Errors
    ///
    /// A clone of the error when the slot was filled with one
    /// ([`set_error`](AsyncResult::set_error)).
    ///
    /// # Panics
    ///
    /// As any blocking call (see the [module docs](super)). The value is
    /// cloned while the slot is borrowed, so its `Clone` must neither use
    /// this `AsyncResult` nor block: [`set`](AsyncResult::set),
    /// [`take`](AsyncResult::take) or [`set_error`](AsyncResult::set_error)
    /// from inside it, or from another greenlet it let run, panics
    /// ("already borrowed"). The same holds for
    /// [`try_get`](AsyncResult::try_get) and
    /// [`get_timeout`](AsyncResult::get_timeout).
    #[inline(always)]
    pub fn get(&self) -> Result<T, E> {
        // Spends budget, as a wait on an `Event` does.
        super::coop();
        loop {
            if let Some(r) = self.try_get() {
                return r;
            }
            self.inner.ready.wait();
        }
    }

    /// What is in the slot, if it is filled; never blocks.
    pub fn try_get(&self) -> Option<Result<T, E>> {
        self.inner.value.borrow().clone()
    }

    /// Like [`get`](AsyncResult::get), but `None` if the slot was not
    /// filled within `timeout`. As `get`, it waits on when the slot was
    /// filled and then emptied ([`take`](AsyncResult::take)) before this
    /// greenlet ran: for the rest of `timeout`.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn get_timeout(&self, timeout: Duration) -> Option<Result<T, E>> {
        let deadline = deadline_after(timeout);
        // Spends budget in `wait_for`, also when it is filled already.
        let filled = || self.is_ready();
        self.inner
            .ready
            .wait_for(filled, deadline, "AsyncResult::get_timeout");
        self.try_get()
    }
}

impl<T, E> Clone for AsyncResult<T, E> {
    fn clone(&self) -> AsyncResult<T, E> {
        AsyncResult {
            inner: self.inner.clone(),
        }
    }
}

impl<T, E> Default for AsyncResult<T, E> {
    fn default() -> AsyncResult<T, E> {
        AsyncResult::new()
    }
}

impl<T: fmt::Debug, E: fmt::Debug> fmt::Debug for AsyncResult<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("value", &*self.inner.value.borrow())
            .finish()
    }
}

impl<T, E> super::wait_any::sealed::Source for AsyncResult<T, E> {
    fn is_ready(&self) -> bool {
        AsyncResult::is_ready(self)
    }

    fn ready_stamp(&self) -> u64 {
        self.inner.ready.ready_stamp()
    }

    fn add_waiter(&self, w: usize) -> usize {
        self.inner.ready.add_waiter(w)
    }

    fn remove_waiter(&self, node: usize, w: usize) {
        self.inner.ready.remove_waiter(node, w)
    }
}

impl<T, E> super::wait_any::Waitable for AsyncResult<T, E> {}
