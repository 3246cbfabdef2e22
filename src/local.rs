//! Greenlet-local storage ([row 18](crate::semantics)): a value per greenlet, like
//! `thread_local!` is a value per thread.
//!
//! `thread_local!` is shared by every greenlet of a thread: a greenlet that
//! sets a thread-local and switches away lets the next greenlet see (and
//! change) the same value. A [`Local`] gives each greenlet its own value,
//! created on first access and dropped when the greenlet finishes (on its own
//! stack, after its function returned or unwound); the main greenlet's values
//! are dropped when the thread exits.
//!
//! Each `Local` gets a small index, once, the first time it is used; a
//! greenlet keeps its values in a vector indexed by it.
//!
//! When a greenlet finishes, its values are dropped one at a time, from the
//! highest index down (the `Local` first used latest in the process goes
//! first), each while the others are still in place: a destructor may read
//! the values not dropped yet, and may create values the greenlet never
//! had, which are then dropped in turn, on the same greenlet. Reading a
//! value already dropped panics, as reading a destroyed `thread_local!`
//! does (so the dropping always ends). Reading a value costs
//! a thread-local load, a slab lookup and an index: no hashing and no
//! dynamic type check.
//!
//! A `Local` is meant to be a `static` (as [`greenlet_local!`] declares
//! it), like `thread_local!`: it is not gevent's `local()` object made per
//! instance. Every `Local` value ever used takes an index for the life of
//! the process, and every greenlet that touches it keeps a vector that
//! long: a `Local` made in a loop or per object (or a `const`, which is a
//! new `Local` at each use) is never given back, and makes every later
//! greenlet's vector longer. Keep per-object state in the object, keyed by
//! [`Greenlet::id`](crate::Greenlet::id) if it must be per greenlet.
//!
//! A switch hook sees a finishing greenlet's `Finish` event after its
//! values were dropped: reading a `Local` there with `with` panics (and
//! the hook is removed); [`Local::try_with`] says so instead. A [`Generator`](crate::Generator)'s producer is a greenlet of
//! its own, with its own values: what the consumer set is not seen there.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::runtime::Runtime;

/// Declares greenlet-local statics, like `thread_local!` declares
/// thread-locals.
///
/// ```
/// use std::cell::Cell;
/// use greenlet::{greenlet_local, Greenlet};
///
/// greenlet_local! {
///     static DEPTH: Cell<u32> = Cell::new(0);
/// }
///
/// DEPTH.with(|d| d.set(7));
/// let g = Greenlet::new(|()| DEPTH.with(|d| d.get()));
/// assert_eq!(g.switch::<(), u32>(()).unwrap(), 0); // its own, fresh value
/// assert_eq!(DEPTH.with(|d| d.get()), 7); // main's is untouched
/// ```
#[macro_export]
macro_rules! greenlet_local {
    ($($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr;)*) => {
        $(
            $(#[$attr])*
            // A closure, not a named `fn`: an item's name would not be
            // hygienic, and a caller's own `init()` in `$init` would call
            // it (itself, for ever).
            $vis static $name: $crate::Local<$t> = $crate::Local::new(|| -> $t { $init });
        )*
    };
}

/// A greenlet-local value; declare one with [`greenlet_local!`] or as a
/// `static` holding [`Local::new`].
///
/// Note that `thread_local!` is shared by every greenlet of a thread: a
/// greenlet that sets a thread-local and switches away lets the next
/// greenlet see (and change) the same value. A `Local` gives each greenlet
/// its own value, created on its first access and dropped when the greenlet
/// finishes (on its own stack, after its function returned or unwound); the
/// main greenlet's values are dropped when the thread exits.
///
/// Values are reached through shared references, so use `Cell` or
/// `RefCell` for mutable state, as with `thread_local!`.
///
/// When a greenlet finishes, its values are dropped one at a time, from the
/// `Local` first used latest in the process down, each while the others
/// are still in place: a destructor may read the values not dropped yet,
/// and may create values the greenlet never had, which are then dropped in
/// turn, on the same greenlet. Reading a value already dropped panics, as
/// reading a destroyed `thread_local!` does (so the dropping always ends).
/// The destructors may switch away and be switched back to, as any code
/// on the greenlet, except when the greenlet is being killed: then they
/// are part of the kill, and, as every destructor during a kill's
/// unwinding, cannot switch (a switch returns
/// [`SwitchError::Unwinding`](crate::SwitchError::Unwinding),
/// and a hub call that would block panics, which reaches the caller of
/// [`Greenlet::kill`](crate::Greenlet::kill); `JoinHandle::kill` reports it
/// on stderr instead).
///
/// Cost: a read is a thread-local load, one slab lookup of the current
/// greenlet's record and an index into its vector of values (each `Local`
/// gets a small index the first time it is used): no hashing and no dynamic
/// type check. The first access in a greenlet allocates the value's box
/// (and grows the vector).
pub struct Local<T: 'static> {
    init: fn() -> T,
    /// 1 + the slot index; 0 until first use.
    slot: AtomicUsize,
    /// Made again, fresh, when read after it was dropped, instead of
    /// panicking: the crate's own bookkeeping, which the blocking calls
    /// of a user value's destructor read while the values are dropped.
    revive: bool,
    _value: PhantomData<fn() -> T>,
}

impl<T: 'static> std::fmt::Debug for Local<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("type", &std::any::type_name::<T>())
            .field("slot", &self.slot.load(Ordering::Relaxed).checked_sub(1))
            .finish()
    }
}

/// Slot indices handed out so far, for every `Local` in the process.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

impl<T: 'static> Local<T> {
    /// A greenlet-local whose value is `init()` in each greenlet that reads
    /// it.
    pub const fn new(init: fn() -> T) -> Local<T> {
        Local {
            init,
            slot: AtomicUsize::new(0),
            revive: false,
            _value: PhantomData,
        }
    }

    /// Like [`new`](Local::new), for the crate's own bookkeeping: read
    /// after it was dropped (by a blocking call in another value's
    /// destructor), it is made again instead of panicking, and dropped in
    /// turn. Its destructor must not read other `Local`s, or the dropping
    /// might not end.
    pub(crate) const fn revivable(init: fn() -> T) -> Local<T> {
        Local {
            init,
            slot: AtomicUsize::new(0),
            revive: true,
            _value: PhantomData,
        }
    }

    fn slot(&self) -> usize {
        match self.slot.load(Ordering::Relaxed) {
            0 => self.assign_slot(),
            n => n - 1,
        }
    }

    #[cold]
    fn assign_slot(&self) -> usize {
        let fresh = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) + 1;
        match self
            .slot
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh - 1,
            // Another thread got there first; its index wins.
            Err(won) => won - 1,
        }
    }

    /// Calls `f` with the current greenlet's value, creating it first if
    /// this greenlet has not read it before.
    ///
    /// The value lives until the greenlet finishes, so `f` may switch away
    /// and come back while holding the reference.
    ///
    /// # Panics
    ///
    /// A panic of `init` or of `f` passes through (after a panicking
    /// `init`, no value is stored and the next call tries again). Called
    /// from the destructor of another value of this greenlet after this
    /// value was dropped (see [`Local`]), it panics, as
    /// `thread_local!` does after its value was destroyed.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let rt = Runtime::get();
        let slot = self.slot();
        let value = match rt.local(slot) {
            Some(value) => value,
            None => {
                if !self.revive && rt.local_dropped(slot) {
                    dropped_local::<T>();
                }
                // `init` is user code: run it with no borrow held, then
                // store (a re-entrant `with` from `init` would have stored
                // its own value meanwhile; keep the first).
                let fresh: Box<dyn Any> = Box::new((self.init)());
                rt.set_local(slot, fresh)
            }
        };
        // SAFETY: slot `slot` belongs to this `Local<T>` alone, so the box
        // holds a `T`; it stays put (boxed) until the greenlet finishes,
        // which cannot happen while this greenlet runs `f`.
        f(unsafe { &*value.cast::<T>() })
    }

    /// Calls `f` with the current greenlet's value if it has one, without
    /// creating it: `None` when the greenlet never made it (or it was
    /// dropped already), or the thread has no runtime. For the crate's
    /// own flags and stacks read on every wait, whose absent value means
    /// the same as `init`'s: reading them must not allocate in greenlets
    /// that never set them.
    #[inline]
    pub(crate) fn with_existing<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let rt = Runtime::if_running()?;
        let value = rt.local(self.slot())?;
        // SAFETY: `rt.local` found a `Set` box in this `Local<T>`'s own
        // slot of the current greenlet (no other `Local` uses that index),
        // so it holds a `T`. The box is dropped only when the greenlet's
        // values are dropped, one at a time and each taken out of its slot
        // first, never while the current greenlet runs `f` with this
        // borrow (it would have to finish or drop this value from `f`).
        Some(f(unsafe { &*value.cast::<T>() }))
    }
}

/// The error of [`Local::try_with`]: the current greenlet has finished
/// and its value of that `Local` was already dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalDropped(());

impl std::fmt::Display for LocalDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("this greenlet's value of the greenlet-local was already dropped")
    }
}

impl std::error::Error for LocalDropped {}

impl<T: 'static> Local<T> {
    /// [`with`](Local::with) that does not panic when this greenlet's value
    /// was already dropped: in the destructor of another of its values,
    /// once this one's turn has passed (a value the greenlet never had is
    /// made there and dropped in turn, so that answers `Ok`, as `with`
    /// does); in a switch hook's `Finish` event, which comes after all the
    /// values were dropped (`Err` also for `Local`s the greenlet never
    /// used: none is made for it then); or after the thread's runtime was
    /// torn down at thread exit (as `thread_local!`'s `try_with`).
    ///
    /// ```
    /// use std::cell::Cell;
    /// use greenlet::greenlet_local;
    ///
    /// greenlet_local! {
    ///     static REQUEST: Cell<u32> = Cell::new(7);
    /// }
    /// assert_eq!(REQUEST.try_with(Cell::get), Ok(7));
    /// ```
    ///
    /// # Errors
    ///
    /// [`LocalDropped`] when the value was already dropped.
    ///
    /// # Panics
    ///
    /// A panic of `init` or of `f` passes through.
    pub fn try_with<R>(&self, f: impl FnOnce(&T) -> R) -> Result<R, LocalDropped> {
        // After the thread's runtime is torn down (a thread-local's
        // destructor at thread exit), every value is gone.
        let Some(rt) = Runtime::try_get() else {
            return Err(LocalDropped(()));
        };
        let slot = self.slot();
        if !self.revive && rt.local(slot).is_none() && rt.local_dropped(slot) {
            return Err(LocalDropped(()));
        }
        Ok(self.with(f))
    }
}

/// The panic of a read of a value already dropped (see [`Local::with`]).
#[cold]
#[inline(never)]
fn dropped_local<T>() -> ! {
    panic!(
        "greenlet::Local::with: this greenlet's {} value was already dropped \
         (the greenlet finished, and its values were or are being dropped; \
         `Local::try_with` does not panic)",
        std::any::type_name::<T>()
    )
}

/// A greenlet's local values, indexed by slot.
pub(crate) type Locals = Vec<LocalSlot>;

/// One greenlet's value of one [`Local`].
pub(crate) enum LocalSlot {
    /// Not created (yet).
    Empty,
    Set(Box<dyn Any>),
    /// Dropped with the greenlet's other values (it finished); reading it
    /// again is a bug, as reading a destroyed `thread_local!` is.
    Dropped,
}
