//! `Semaphore` and `BoundedSemaphore`: a count of permits that greenlets
//! take and give back (gevent's `Semaphore` / `BoundedSemaphore`, tokio's
//! `Semaphore`).

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::deadline_after;
use super::permits::Permits;

/// A count of permits shared by the greenlets of one thread; `Clone` gives
/// another handle to the same count.
///
/// [`acquire`](Semaphore::acquire) takes a permit, blocking the calling
/// greenlet while none is free, and returns a guard that gives it back when
/// dropped — also when the greenlet holding it is killed or panics.
/// Waiters are served first come, first served: a permit given back while
/// greenlets wait goes straight to the first of them, never to a greenlet
/// that arrives later. A waiter that times out or is killed takes no
/// permit with it.
///
/// Taking and giving back a free permit allocates nothing and never
/// switches.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use greenlet::hub::{self, Semaphore};
///
/// // At most two of the five workers are inside at once.
/// let sem = Semaphore::new(2);
/// let inside = Rc::new(Cell::new(0));
/// let most = Rc::new(Cell::new(0));
/// let workers: Vec<_> = (0..5)
///     .map(|_| {
///         let (sem, inside, most) = (sem.clone(), inside.clone(), most.clone());
///         hub::spawn(move || {
///             let _permit = sem.acquire();
///             inside.set(inside.get() + 1);
///             most.set(most.get().max(inside.get()));
///             hub::yield_now(); // others run while this one holds a permit
///             inside.set(inside.get() - 1);
///         })
///     })
///     .collect();
/// for w in workers {
///     w.join().unwrap();
/// }
/// assert_eq!(most.get(), 2);
/// assert_eq!(sem.available_permits(), 2);
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: Rc<Inner>,
}

struct Inner {
    permits: Permits,
    /// A `BoundedSemaphore`'s initial count.
    bound: Option<usize>,
    /// Every permit there is: free, handed to a waiter, held by a guard
    /// or taken for good. Only `add_permits` changes it, and refuses to
    /// overflow it, so giving a permit back can never overflow the free
    /// count.
    total: Cell<usize>,
    /// Permits taken for good with `forget`: the ones a
    /// `BoundedSemaphore::release` may give back.
    forgotten: Cell<usize>,
}

impl Inner {
    #[inline(always)]
    fn acquire_until(&self, deadline: Option<Instant>, call: &'static str) -> bool {
        self.permits.take_until(deadline, call)
    }
}

impl Semaphore {
    /// A semaphore with `permits` free permits.
    pub fn new(permits: usize) -> Semaphore {
        Semaphore::with_bound(permits, None)
    }

    fn with_bound(permits: usize, bound: Option<usize>) -> Semaphore {
        Semaphore {
            inner: Rc::new(Inner {
                permits: Permits::new(permits),
                bound,
                total: Cell::new(permits),
                forgotten: Cell::new(0),
            }),
        }
    }

    /// Takes a permit, blocking the calling greenlet until one is free;
    /// the permit goes back when the guard drops.
    ///
    /// # Panics
    ///
    /// As any blocking call (see the [module docs](super)); a
    /// [`with_timeout`](super::with_timeout) expiry unwinds out of it.
    #[inline(always)]
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.inner.acquire_until(None, "Semaphore::acquire");
        SemaphorePermit { sem: &self.inner }
    }

    /// Takes a free permit if there is one; never blocks.
    #[inline]
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.inner
            .permits
            .try_take()
            .then(|| SemaphorePermit { sem: &self.inner })
    }

    /// Like [`acquire`](Semaphore::acquire), but gives up (`None`) if no
    /// permit came within `timeout`.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        self.inner
            .acquire_until(deadline_after(timeout), "Semaphore::acquire_timeout")
            .then(|| SemaphorePermit { sem: &self.inner })
    }

    /// Like [`acquire`](Semaphore::acquire), but the guard keeps the
    /// semaphore alive itself, so it can move into a spawned greenlet.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn acquire_owned(&self) -> OwnedSemaphorePermit {
        self.inner.acquire_until(None, "Semaphore::acquire_owned");
        OwnedSemaphorePermit {
            sem: Some(self.inner.clone()),
        }
    }

    /// Like [`try_acquire`](Semaphore::try_acquire), with an owned guard.
    pub fn try_acquire_owned(&self) -> Option<OwnedSemaphorePermit> {
        self.inner.permits.try_take().then(|| OwnedSemaphorePermit {
            sem: Some(self.inner.clone()),
        })
    }

    /// Free permits now.
    pub fn available_permits(&self) -> usize {
        self.inner.permits.available()
    }

    /// Whether no permit is free (gevent's `locked`).
    pub fn is_locked(&self) -> bool {
        self.available_permits() == 0
    }

    /// Adds `n` permits, waking as many waiters (gevent's `release`, called
    /// without a matching acquire). The work is one step per waiter woken,
    /// whatever `n` is.
    ///
    /// ```
    /// use greenlet::hub::Semaphore;
    ///
    /// let sem = Semaphore::new(0);
    /// sem.add_permits(3);
    /// assert_eq!(sem.available_permits(), 3);
    /// ```
    ///
    /// # Panics
    ///
    /// When the semaphore would then have more than `usize::MAX` permits
    /// in all (free, held or taken for good); nothing changes then.
    pub fn add_permits(&self, n: usize) {
        let inner = &self.inner;
        let total = inner.total.get().checked_add(n).unwrap_or_else(|| {
            panic!("greenlet::hub: Semaphore::add_permits({n}) would overflow the permit count")
        });
        inner.total.set(total);
        inner.permits.give_many(n);
    }
}

super::wait_any::waitable_via!(
    /// Ready while a permit is free ([`try_acquire`](Semaphore::try_acquire)
    /// would take one), for [`wait_any`](super::wait_any) (gevent's
    /// `wait([semaphore])`). Waiting takes no permit, and greenlets queued in
    /// [`acquire`](Semaphore::acquire) are served first: a permit given back
    /// while one is queued goes to it, and the semaphore does not become
    /// ready.
    Semaphore => inner.permits
);

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available", &self.available_permits())
            .finish()
    }
}

/// A permit of a [`Semaphore`] (or [`BoundedSemaphore`]), given back when
/// dropped.
#[must_use = "the permit is given back at once if the guard is not kept"]
pub struct SemaphorePermit<'a> {
    sem: &'a Inner,
}

impl SemaphorePermit<'_> {
    /// Keeps the permit taken for good: the semaphore has one fewer (a
    /// [`BoundedSemaphore`] takes it back with
    /// [`release`](BoundedSemaphore::release)).
    pub fn forget(self) {
        let forgotten = &self.sem.forgotten;
        forgotten.set(forgotten.get() + 1);
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.sem.permits.give();
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SemaphorePermit")
    }
}

/// A permit that holds its [`Semaphore`] alive; see
/// [`Semaphore::acquire_owned`].
#[must_use = "the permit is given back at once if the guard is not kept"]
pub struct OwnedSemaphorePermit {
    /// `None` once forgotten.
    sem: Option<Rc<Inner>>,
}

impl OwnedSemaphorePermit {
    /// Keeps the permit taken for good: the semaphore has one fewer (a
    /// [`BoundedSemaphore`] takes it back with
    /// [`release`](BoundedSemaphore::release)).
    pub fn forget(mut self) {
        if let Some(sem) = self.sem.take() {
            sem.forgotten.set(sem.forgotten.get() + 1);
        }
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        if let Some(sem) = &self.sem {
            sem.permits.give();
        }
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnedSemaphorePermit")
    }
}

/// The error of giving a [`BoundedSemaphore`] more permits than it started
/// with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyReleases(());

impl fmt::Display for TooManyReleases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a BoundedSemaphore was released more times than it was acquired")
    }
}

impl std::error::Error for TooManyReleases {}

/// A [`Semaphore`] that refuses to hold more permits than it started with
/// (gevent's `BoundedSemaphore`): a [`release`](BoundedSemaphore::release)
/// without a matching acquire is an error, not a silent extra permit.
///
/// ```
/// use greenlet::hub::BoundedSemaphore;
///
/// let sem = BoundedSemaphore::new(1);
/// assert!(sem.release().is_err(), "nothing was taken");
/// sem.acquire().forget(); // taken for good, as gevent's acquire()
/// assert!(sem.try_acquire().is_none());
/// assert!(sem.release().is_ok());
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    sem: Semaphore,
}

impl BoundedSemaphore {
    /// A semaphore with `permits` free permits, and at most that many.
    pub fn new(permits: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            sem: Semaphore::with_bound(permits, Some(permits)),
        }
    }

    /// See [`Semaphore::acquire`].
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.sem.acquire()
    }

    /// See [`Semaphore::try_acquire`].
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.sem.try_acquire()
    }

    /// See [`Semaphore::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        self.sem.acquire_timeout(timeout)
    }

    /// See [`Semaphore::acquire_owned`].
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn acquire_owned(&self) -> OwnedSemaphorePermit {
        self.sem.acquire_owned()
    }

    /// See [`Semaphore::available_permits`].
    pub fn available_permits(&self) -> usize {
        self.sem.available_permits()
    }

    /// See [`Semaphore::is_locked`].
    pub fn is_locked(&self) -> bool {
        self.sem.is_locked()
    }

    /// Gives back one permit taken for good (with
    /// [`SemaphorePermit::forget`]): to the first waiter, if any.
    ///
    /// Only a forgotten permit can be released. A permit still held by a
    /// guard goes back when the guard drops, and one handed to a waiter
    /// that has not run yet is that waiter's: releasing in their stead
    /// would leave the semaphore with more permits than it started with.
    ///
    /// # Errors
    ///
    /// [`TooManyReleases`] when no permit is taken for good; nothing
    /// changes then.
    pub fn release(&self) -> Result<(), TooManyReleases> {
        let inner = &self.sem.inner;
        let forgotten = inner.forgotten.get();
        if forgotten == 0 {
            return Err(TooManyReleases(()));
        }
        inner.forgotten.set(forgotten - 1);
        inner.permits.give();
        Ok(())
    }
}

super::wait_any::waitable_via!(
    /// As [`Semaphore`]'s: ready while a permit is free.
    BoundedSemaphore => sem
);

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("available", &self.available_permits())
            .field("bound", &self.sem.inner.bound)
            .finish()
    }
}
