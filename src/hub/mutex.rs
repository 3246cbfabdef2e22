//! `Mutex<T>`: a value that one greenlet at a time may use, the others
//! waiting their turn in order (gevent's `Lock`, with the data inside as
//! in std and tokio).

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use super::deadline_after;
use super::permits::Permits;

/// A lock around a `T` for the greenlets of one thread. Share it with an
/// `Rc`.
///
/// [`lock`](Mutex::lock) blocks the calling greenlet while another holds
/// the lock, and returns a guard giving access to the value; dropping the
/// guard unlocks. Waiters get the lock in the order they asked for it: an
/// unlock with waiters hands the lock straight to the first of them
/// (no barging). A holder that is killed or panics unlocks as its guard
/// drops during the unwinding; the lock is not poisoned (as tokio's), the
/// value is as the holder left it.
///
/// Locking and unlocking a free lock allocates nothing and never switches.
///
/// ```
/// use std::rc::Rc;
/// use greenlet::hub::{self, Mutex};
///
/// let log = Rc::new(Mutex::new(Vec::new()));
/// let writers: Vec<_> = (0..3)
///     .map(|i| {
///         let log = log.clone();
///         hub::spawn(move || {
///             let mut log = log.lock();
///             log.push(i);
///             hub::yield_now(); // the others queue up meanwhile
///             log.push(i);
///         })
///     })
///     .collect();
/// for w in writers {
///     w.join().unwrap();
/// }
/// // Each writer's two entries are adjacent, in the order they locked.
/// assert_eq!(*log.lock(), [0, 0, 1, 1, 2, 2]);
/// ```
pub struct Mutex<T: ?Sized> {
    /// One permit: the lock is free when it is available.
    lock: Permits,
    value: UnsafeCell<T>,
}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub fn new(value: T) -> Mutex<T> {
        Mutex {
            lock: Permits::new(1),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, taking the mutex apart.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, blocking the calling greenlet while another greenlet holds
    /// the lock.
    ///
    /// # Panics
    ///
    /// As any blocking call (see the [module docs](super)), which includes
    /// locking again from the greenlet that holds the lock when nothing
    /// else can run; a [`with_timeout`](super::with_timeout) expiry unwinds
    /// out of it.
    #[inline(always)]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.lock.take_until(None, "Mutex::lock");
        MutexGuard { mutex: self }
    }

    /// [`lock`](Mutex::lock) for another blocking call (a `Condvar` wait
    /// locking again), named as that call in panics and `stats`.
    #[inline(always)]
    pub(super) fn lock_for(&self, call: &'static str) -> MutexGuard<'_, T> {
        self.lock.take_until(None, call);
        MutexGuard { mutex: self }
    }

    /// Locks if the lock is free; never blocks.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.lock.try_take().then(|| MutexGuard { mutex: self })
    }

    /// Like [`lock`](Mutex::lock), but gives up (`None`) if the lock did
    /// not come within `timeout`.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn lock_timeout(&self, timeout: Duration) -> Option<MutexGuard<'_, T>> {
        self.lock
            .take_until(deadline_after(timeout), "Mutex::lock_timeout")
            .then(|| MutexGuard { mutex: self })
    }

    /// Whether some greenlet holds the lock.
    pub fn is_locked(&self) -> bool {
        self.lock.available() == 0
    }

    /// The value, through a unique borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(guard) => d.field("value", &&*guard),
            None => d.field("value", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Access to a [`Mutex`]'s value; unlocks when dropped.
#[must_use = "the mutex unlocks at once if the guard is not kept"]
pub struct MutexGuard<'a, T: ?Sized> {
    /// The locked mutex (a `Condvar` wait unlocks and locks it again).
    pub(super) mutex: &'a Mutex<T>,
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard owns the mutex's single permit, so no other
        // guard exists; a shared borrow of the guard gives shared access.
        // `Mutex` is `!Sync`, so no other thread reaches the value.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the unique borrow of the one guard makes
        // this the only access to the value.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.mutex.lock.give();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
