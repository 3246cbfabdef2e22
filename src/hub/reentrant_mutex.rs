//! `ReentrantMutex<T>`: a lock the greenlet holding it may take again
//! (gevent's `RLock`), giving shared access to its value, as
//! `parking_lot`'s `ReentrantMutex` does.

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use super::deadline_after;
use super::permits::Permits;
use crate::runtime::Runtime;

/// A lock that the greenlet holding it may lock again, for the greenlets
/// of one thread (gevent's `RLock`). Share it with an `Rc`.
///
/// [`lock`](ReentrantMutex::lock) from the holder returns at once and
/// counts one more level; from another greenlet it blocks until the
/// holder has dropped every guard, and waiters get the lock in the order
/// they asked, as with [`Mutex`](super::Mutex). Because the holder can
/// hold several guards at once, a guard gives shared access only (`&T`):
/// put a `Cell` or `RefCell` inside for what changes. Greenlets are told
/// apart by [`Greenlet::id`](crate::Greenlet::id), which is never reused,
/// so a lock left held by a greenlet that finished without unlocking (its
/// guard forgotten) is never taken for another's. A [`Generator`]'s body
/// and a greenlet started with [`Greenlet::new`](crate::Greenlet::new) are
/// greenlets of their own: one that locks while the greenlet driving it
/// holds the lock waits for it, like any other greenlet (and when nothing
/// else can run, that wait is reported as one that cannot end).
///
/// [`Generator`]: crate::Generator
///
/// A holder that is killed or panics unlocks as its guards drop during
/// the unwinding; the lock is not poisoned. Locking a free lock, or one
/// the caller holds, never switches (and spends no cooperative budget:
/// see [`COOP_BUDGET`](super::COOP_BUDGET)).
///
/// ```
/// use std::cell::RefCell;
/// use greenlet::hub::ReentrantMutex;
///
/// let log = ReentrantMutex::new(RefCell::new(Vec::new()));
/// fn append(log: &ReentrantMutex<RefCell<Vec<u32>>>, n: u32) {
///     let guard = log.lock(); // taken again when called with it held
///     guard.borrow_mut().push(n);
/// }
/// let outer = log.lock();
/// append(&log, 1);
/// append(&log, 2);
/// assert_eq!(log.lock_count(), 1);
/// drop(outer);
/// assert_eq!(*log.lock().borrow(), [1, 2]);
/// ```
pub struct ReentrantMutex<T: ?Sized> {
    /// One permit: free when available.
    lock: Permits,
    /// The holder's greenlet id, meaningful while `count > 0`.
    owner: Cell<u64>,
    /// How many guards the holder has out.
    count: Cell<usize>,
    value: UnsafeCell<T>,
}

/// The calling greenlet's id.
#[inline]
fn me() -> u64 {
    let rt = Runtime::get();
    rt.records().id(rt.current())
}

impl<T> ReentrantMutex<T> {
    /// An unlocked lock holding `value`.
    pub fn new(value: T) -> ReentrantMutex<T> {
        ReentrantMutex {
            lock: Permits::new(1),
            owner: Cell::new(0),
            count: Cell::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, taking the lock apart.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> ReentrantMutex<T> {
    /// Locks: at once when the calling greenlet holds the lock already
    /// (one level more) or nobody does, else blocking the calling
    /// greenlet until the holder lets go of it entirely.
    ///
    /// # Panics
    ///
    /// As any blocking call (see the [module docs](super)); a
    /// [`with_timeout`](super::with_timeout) expiry unwinds out of it.
    // Inlined to the switch (see `wait.rs`).
    #[inline(always)]
    pub fn lock(&self) -> ReentrantMutexGuard<'_, T> {
        let me = me();
        if !self.again(me) {
            self.lock.take_until(None, "ReentrantMutex::lock");
            self.first(me);
        }
        ReentrantMutexGuard { mutex: self }
    }

    /// Locks if that needs no wait (the caller holds the lock, or nobody
    /// does). Never blocks.
    pub fn try_lock(&self) -> Option<ReentrantMutexGuard<'_, T>> {
        let me = me();
        if !self.again(me) {
            if !self.lock.try_take() {
                return None;
            }
            self.first(me);
        }
        Some(ReentrantMutexGuard { mutex: self })
    }

    /// Like [`lock`](ReentrantMutex::lock), but gives up (`None`) if the
    /// lock did not come within `timeout`.
    ///
    /// # Panics
    ///
    /// As [`lock`](ReentrantMutex::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> Option<ReentrantMutexGuard<'_, T>> {
        let me = me();
        if !self.again(me) {
            if !self
                .lock
                .take_until(deadline_after(timeout), "ReentrantMutex::lock_timeout")
            {
                return None;
            }
            self.first(me);
        }
        Some(ReentrantMutexGuard { mutex: self })
    }

    /// Whether some greenlet holds the lock, or it is handed to a waiter
    /// that has not run yet.
    pub fn is_locked(&self) -> bool {
        self.count.get() > 0 || self.lock.available() == 0
    }

    /// Whether the calling greenlet holds the lock (gevent's
    /// `RLock._is_owned`).
    pub fn is_owned_by_current(&self) -> bool {
        self.count.get() > 0 && self.owner.get() == me()
    }

    /// How many guards the holder has out: 0 when it is unlocked, and
    /// also while it is handed to a waiter that has not run yet (which
    /// [`is_locked`](ReentrantMutex::is_locked) tells apart).
    pub fn lock_count(&self) -> usize {
        self.count.get()
    }

    /// The value, through a unique borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// One level more if `me` holds the lock.
    #[inline]
    fn again(&self, me: u64) -> bool {
        let n = self.count.get();
        if n > 0 && self.owner.get() == me {
            // Overflowing the count takes forgotten guards; refused all
            // the same, as the release rests on it.
            self.count.set(
                n.checked_add(1)
                    .expect("ReentrantMutex: lock count overflowed"),
            );
            true
        } else {
            false
        }
    }

    /// `me` took the permit: the first level.
    #[inline]
    fn first(&self, me: u64) {
        self.owner.set(me);
        self.count.set(1);
    }
}

impl<T: Default> Default for ReentrantMutex<T> {
    fn default() -> ReentrantMutex<T> {
        ReentrantMutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ReentrantMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ReentrantMutex");
        match self.try_lock() {
            Some(guard) => d.field("value", &&*guard),
            None => d.field("value", &format_args!("<locked>")),
        };
        d.field("locked", &self.is_locked())
            .field("lock_count", &self.count.get())
            .finish()
    }
}

/// Shared access to a [`ReentrantMutex`]'s value; unlocks one level when
/// dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct ReentrantMutexGuard<'a, T: ?Sized> {
    mutex: &'a ReentrantMutex<T>,
}

impl<T: ?Sized> Deref for ReentrantMutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a guard exists only while its greenlet holds the lock,
        // and every guard gives shared access only, so no `&mut T` exists
        // beside this borrow (`get_mut` needs the lock unborrowed).
        // `ReentrantMutex` is `!Sync`, so no other thread reaches it.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized> Drop for ReentrantMutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let n = self.mutex.count.get() - 1;
        self.mutex.count.set(n);
        if n == 0 {
            self.mutex.lock.give();
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ReentrantMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
