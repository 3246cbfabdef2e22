//! `RwLock<T>`: a value that many greenlets may read at once, or one may
//! write, served in the order they asked (tokio's fair `RwLock`; gevent
//! has none, its users build one from a `Semaphore` and a `Lock`).
//!
//! The lock keeps the number of read guards out and whether a write guard
//! is, and one list of waits tagged read or write. Whoever releases the
//! lock admits from the front of that list: a writer when the lock is
//! free, else every reader up to the first writer. A new caller that
//! finds anyone waiting queues behind them, so a stream of readers cannot
//! starve a writer, nor writers the readers queued behind one. An admitted
//! waiter owns its share from the moment it is woken; one that leaves
//! before it runs (killed, thrown into, its `with_timeout` expired) gives
//! the share back, and one that leaves the list unadmitted lets the
//! lock admit again, since it may have been what held the others back.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::wait::{Unlink, WaitNode, WaitRef, Waiter, Wake, Woken};
use super::wait_list::WaitList;
use super::{deadline_after, hub, try_hub, Hub};
use crate::stats::WaitOn;

/// What a queued wait asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
}

/// A reader-writer lock around a `T` for the greenlets of one thread.
/// Share it with an `Rc`.
///
/// [`read`](RwLock::read) blocks the calling greenlet while a writer holds
/// the lock or anyone waits for it, and returns a guard giving shared
/// access; [`write`](RwLock::write) blocks while anyone holds it or waits
/// for it, and returns a guard giving unique access. Dropping a guard
/// releases its share.
///
/// **Order.** Callers are served in the order they asked: when the lock
/// comes free, the first waiter is admitted; if it is a reader, so is
/// every reader queued behind it up to the first writer. A reader that
/// arrives while a writer waits queues behind that writer, even though
/// the readers holding the lock could let it in: readers cannot starve a
/// writer (std leaves this to the platform; tokio's `RwLock` is fair in
/// the same way).
///
/// **Not reentrant.** A greenlet holding a read guard that reads again
/// queues like anyone else: behind a waiting writer, which waits for that
/// first guard, it would wait for ever (reported as any blocking call that
/// cannot end, when nothing else can run). Take one guard and pass it
/// down, or use a [`ReentrantMutex`](super::ReentrantMutex).
///
/// A holder that is killed or panics releases its share as its guard
/// drops during the unwinding; the lock is not poisoned (as tokio's). A
/// waiter that is killed, thrown into or interrupted by a
/// [`with_timeout`](super::with_timeout) leaves the queue, and the ones
/// behind it move up; if it had already been admitted (woken but not yet
/// run), its share goes on as if it had released it.
///
/// Reading or writing a lock nobody else holds or waits for allocates
/// nothing and never switches.
///
/// ```
/// use std::rc::Rc;
/// use greenlet::hub::{self, RwLock};
///
/// let config = Rc::new(RwLock::new(String::from("v1")));
/// let readers: Vec<_> = (0..3)
///     .map(|_| {
///         let config = config.clone();
///         hub::spawn(move || {
///             let seen = config.read();
///             hub::yield_now(); // the other readers read meanwhile
///             seen.clone()
///         })
///     })
///     .collect();
/// let writer = {
///     let config = config.clone();
///     hub::spawn(move || *config.write() = String::from("v2"))
/// };
/// // The three readers shared the lock; the writer waited for them.
/// for r in readers {
///     assert_eq!(r.join().unwrap(), "v1");
/// }
/// writer.join().unwrap();
/// assert_eq!(*config.read(), "v2");
/// ```
pub struct RwLock<T: ?Sized> {
    /// Read guards out, counting those handed to admitted readers that
    /// have not run yet.
    readers: Cell<usize>,
    /// A write guard is out (or handed to an admitted writer).
    writer: Cell<bool>,
    /// Invariant: the front of the list is a wait the lock cannot admit
    /// now, or one already woken another way (a deadline) that has not
    /// left yet: the next `try_take` or `admit` drops it, or it leaves
    /// through `unlink`, which admits again.
    waiters: RefCell<WaitList<Want>>,
    value: UnsafeCell<T>,
}

impl<T> RwLock<T> {
    /// An unlocked lock holding `value`.
    pub fn new(value: T) -> RwLock<T> {
        RwLock {
            readers: Cell::new(0),
            writer: Cell::new(false),
            waiters: RefCell::new(WaitList::new()),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, taking the lock apart.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for reading, blocking the calling greenlet while a writer
    /// holds the lock or anyone waits for it (see [the order](RwLock#order)).
    ///
    /// # Panics
    ///
    /// As any blocking call (see the [module docs](super)), which includes
    /// reading from the greenlet that holds the write guard when nothing
    /// else can run; a [`with_timeout`](super::with_timeout) expiry unwinds
    /// out of it.
    // Inlined to the switch (see `wait.rs`).
    #[inline(always)]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        if !self.try_take(Want::Read) {
            self.take_slow(Want::Read, None, "RwLock::read");
        }
        RwLockReadGuard { lock: self }
    }

    /// Locks for writing, blocking the calling greenlet while anyone holds
    /// the lock or waits for it.
    ///
    /// # Panics
    ///
    /// As [`read`](RwLock::read).
    #[inline(always)]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        if !self.try_take(Want::Write) {
            self.take_slow(Want::Write, None, "RwLock::write");
        }
        RwLockWriteGuard { lock: self }
    }

    /// Locks for reading if that needs no wait: no writer holds the lock
    /// and nobody waits for it. Never blocks.
    #[inline]
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        self.try_take(Want::Read)
            .then(|| RwLockReadGuard { lock: self })
    }

    /// Locks for writing if nobody holds the lock or waits for it. Never
    /// blocks.
    #[inline]
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        self.try_take(Want::Write)
            .then(|| RwLockWriteGuard { lock: self })
    }

    /// Like [`read`](RwLock::read), but gives up (`None`) if the lock did
    /// not come within `timeout`.
    ///
    /// # Panics
    ///
    /// As [`read`](RwLock::read).
    #[inline(always)]
    pub fn read_timeout(&self, timeout: Duration) -> Option<RwLockReadGuard<'_, T>> {
        let got = self.try_take(Want::Read)
            || self.take_slow(Want::Read, deadline_after(timeout), "RwLock::read_timeout");
        got.then(|| RwLockReadGuard { lock: self })
    }

    /// Like [`write`](RwLock::write), but gives up (`None`) if the lock
    /// did not come within `timeout`.
    ///
    /// # Panics
    ///
    /// As [`read`](RwLock::read).
    #[inline(always)]
    pub fn write_timeout(&self, timeout: Duration) -> Option<RwLockWriteGuard<'_, T>> {
        let got = self.try_take(Want::Write)
            || self.take_slow(
                Want::Write,
                deadline_after(timeout),
                "RwLock::write_timeout",
            );
        got.then(|| RwLockWriteGuard { lock: self })
    }

    /// How many read guards are out (counting readers admitted that have
    /// not run yet).
    pub fn readers(&self) -> usize {
        self.readers.get()
    }

    /// Whether a write guard is out (or handed to a writer that has not
    /// run yet).
    pub fn is_write_locked(&self) -> bool {
        self.writer.get()
    }

    /// The value, through a unique borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// Takes a share at once if the lock can give it without passing
    /// anyone who waits.
    #[inline]
    fn try_take(&self, want: Want) -> bool {
        if self.writer.get() || (!self.waiters.borrow().is_empty() && !self.only_gone_wait()) {
            return false;
        }
        match want {
            Want::Read => self.add_reader(),
            Want::Write if self.readers.get() == 0 => self.writer.set(true),
            Want::Write => return false,
        }
        true
    }

    /// One more read share. (Overflowing the count would take more
    /// guards than memory can hold, unless they are forgotten: the count
    /// is checked all the same, as the soundness of the write guard rests
    /// on it.)
    #[inline]
    fn add_reader(&self) {
        let n = self.readers.get().checked_add(1);
        self.readers
            .set(n.expect("RwLock: read guard count overflowed"));
    }

    /// Whether every wait queued has given up already (woken by its
    /// deadline or a scope, not yet run to leave the queue); those are
    /// dropped from the queue now, so that nobody waits behind them.
    #[cold]
    fn only_gone_wait(&self) -> bool {
        let Some(hub) = try_hub() else {
            return false;
        };
        let mut waiters = self.waiters.borrow_mut();
        while let Some((w, _)) = waiters.front() {
            if hub.is_pending(w) {
                return false;
            }
            waiters.pop_front();
        }
        true
    }

    /// Queues for a share and blocks until it is handed over (`true`) or
    /// `deadline` passes (`false`).
    #[inline(always)]
    fn take_slow(&self, want: Want, deadline: Option<Instant>, call: &'static str) -> bool {
        let hub = hub();
        let on = WaitOn::RwLock {
            write: want == Want::Write,
            until: deadline,
        };
        let node = WaitNode::new(on);
        let mut waiter = Waiter::with_node(&hub, &node, deadline, on, |w| ShareLink {
            lock: self,
            want,
            node: self.waiters.borrow_mut().push_back_tagged(w, want),
            kept: false,
        });
        match waiter.wait(call) {
            Woken::Ready => {
                waiter.link.kept = true;
                true
            }
            Woken::TimedOut => false,
        }
    }

    /// Gives back a share of kind `want`, admitting whoever can come in.
    fn release(&self, want: Want) {
        match want {
            Want::Read => {
                let left = self.readers.get() - 1;
                self.readers.set(left);
                if left > 0 {
                    return;
                }
            }
            Want::Write => self.writer.set(false),
        }
        self.admit();
    }

    /// Wakes waits from the front of the list while the lock can admit
    /// them, giving each its share as it is woken. A wait already woken
    /// another way (its deadline) is passed over: it is on its way out.
    fn admit(&self) {
        if self.waiters.borrow().is_empty() {
            return;
        }
        let Some(hub) = try_hub() else {
            // Thread exit: the waiters are about to be unwound anyway.
            return;
        };
        loop {
            let mut waiters = self.waiters.borrow_mut();
            let Some((w, want)) = waiters.front() else {
                return;
            };
            // One that gave up already goes whether it fits or not: it
            // must not hold back the ones behind it.
            let gone = !hub.is_pending(w);
            let fits = match want {
                Want::Read => !self.writer.get(),
                Want::Write => !self.writer.get() && self.readers.get() == 0,
            };
            if !gone && !fits {
                return;
            }
            waiters.pop_front();
            drop(waiters);
            if !gone && hub.wake(w, Wake::Ready) {
                match want {
                    Want::Write => {
                        self.writer.set(true);
                        return;
                    }
                    Want::Read => self.add_reader(),
                }
            }
        }
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        if self.writer.get() {
            d.field("value", &format_args!("<write-locked>"));
        } else {
            // A read share of its own, taken past the queue (it never
            // waits, and readers queued behind a writer are not let in by
            // it) and given back before `fmt` returns: while `T`'s `Debug`
            // runs, no writer can come in. Printing while only readers
            // hold it shows the value, as `Mutex`'s when it is free.
            self.add_reader();
            let guard = RwLockReadGuard { lock: self };
            d.field("value", &&*guard);
        }
        d.field("readers", &self.readers.get()).finish()
    }
}

/// A blocked read or write's place in the queue.
struct ShareLink<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    want: Want,
    node: usize,
    /// Set once the call returns the share handed to it: it is the
    /// caller's now, not one to give back.
    kept: bool,
}

// SAFETY: the wait's only copy is its place in the queue, which `unlink`
// removes unless a wake-up (`admit`) already took it off.
unsafe impl<T: ?Sized> Unlink for ShareLink<'_, T> {
    fn unlink(&mut self, _: &Hub, wait: WaitRef, how: Wake) {
        if how == Wake::Ready {
            // `admit` took it off the queue and gave it its share. One it
            // will not keep (killed, thrown into or interrupted after the
            // wake-up) is released, admitting the next ones.
            if !self.kept {
                self.lock.release(self.want);
            }
        } else {
            self.lock.waiters.borrow_mut().remove(self.node, wait);
            // It may have been the writer at the front that held back the
            // readers behind it, while readers hold the lock.
            self.lock.admit();
        }
    }
}

/// Shared access to an [`RwLock`]'s value; releases its read share when
/// dropped.
#[must_use = "the read lock is released at once if the guard is not kept"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard holds a read share, so no write guard exists
        // (the lock admits none while `readers > 0`) and every access to
        // the value is shared. `RwLock` is `!Sync`, so no other thread
        // reaches it.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.release(Want::Read);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Unique access to an [`RwLock`]'s value; releases the lock when
/// dropped.
#[must_use = "the write lock is released at once if the guard is not kept"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// Turns the write guard into a read guard without letting a writer in
    /// between; the readers queued at the front come in with it (tokio's
    /// `downgrade`).
    ///
    /// ```
    /// use greenlet::hub::{RwLock, RwLockWriteGuard};
    ///
    /// let lock = RwLock::new(1);
    /// let mut w = lock.write();
    /// *w += 1;
    /// let r = RwLockWriteGuard::downgrade(w);
    /// assert_eq!(*r, 2);
    /// assert!(lock.try_read().is_some());
    /// assert!(lock.try_write().is_none());
    /// ```
    pub fn downgrade(this: Self) -> RwLockReadGuard<'a, T> {
        let lock = this.lock;
        std::mem::forget(this);
        lock.writer.set(false);
        lock.readers.set(1);
        lock.admit();
        RwLockReadGuard { lock }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the write share, so no other guard
        // exists; a shared borrow of the guard gives shared access.
        // `RwLock` is `!Sync`, so no other thread reaches the value.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the unique borrow of the one write guard
        // makes this the only access to the value.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.release(Want::Write);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
