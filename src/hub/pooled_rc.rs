//! A single-threaded reference-counted box whose memory goes back to a
//! per-thread pool: the state every `spawn` shares between the spawned
//! greenlet and its handle.
//!
//! `Rc::new` and the last `Rc` drop are a `malloc` and a `free`, about a
//! tenth of a spawn and join. Here each thread keeps up to [`KEEP_BYTES`]
//! of freed blocks of each of a few sizes, so a steady stream of spawns
//! takes its blocks back from the pool and allocates nothing. A value too large (or
//! too aligned) for the size classes is allocated as `Rc` would be.
//!
//! The safe surface is `new`, `clone`, `Deref` and `Drop`, as for `Rc`. The
//! unsafe parts are the block handling: a block is allocated with its
//! class's layout (or the value's own) and freed with the same one, and a
//! pooled block is only ever handed out again for a value that fits it.
//! `PooledRc` is neither `Send` nor `Sync` (it holds a raw pointer), so a
//! block is freed on the thread that allocated it.

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

/// Block sizes, smallest first; every block is aligned to [`ALIGN`], a
/// cache line, so that a block of 64 bytes is one line, not two.
const CLASSES: [usize; 3] = [64, 128, 256];
const ALIGN: usize = 64;
/// Bytes of freed blocks a thread keeps per class; the rest go back to the
/// allocator ([`trim`] gives back all). Enough for a burst of 10,000 hub
/// spawns to take the next burst's join states from the pool. Taken from
/// the allocator, they cost more cache misses than the states themselves
/// (callgrind, a burst of 10,000 with 128 blocks kept: 11.7 misses a
/// greenlet in `malloc` and `free`, 2.4 before the blocks were
/// line-aligned; none with the blocks kept).
const KEEP_BYTES: usize = 1 << 20;

/// Each class's free blocks, as an intrusive list: a free block's first
/// word points at the next free block. The thread-local has no destructor,
/// so reaching it is a plain thread-local load (one with a destructor is
/// checked for its registration on every use). A `spawn` + `join` made
/// and released its join state's block in 68 instructions with a
/// `RefCell<Vec<_>>` per class behind such a thread-local, 43 with these
/// lists. [`OWNER`] frees what is left at thread exit.
struct Pool {
    heads: [Cell<Option<NonNull<u8>>>; CLASSES.len()],
    counts: [Cell<usize>; CLASSES.len()],
    /// Whether blocks may be kept: [`OWNER`] is registered to free them at
    /// thread exit. `Unowned` until the first block is kept; `Gone` once
    /// the owner has run, after which freed blocks go to the allocator.
    owner: Cell<Owner>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    Unowned,
    Owned,
    Gone,
}

thread_local! {
    static POOL: Pool = const {
        Pool {
            heads: [const { Cell::new(None) }; CLASSES.len()],
            counts: [const { Cell::new(0) }; CLASSES.len()],
            owner: Cell::new(Owner::Unowned),
        }
    };
    /// Frees the pool's blocks when the thread exits.
    static OWNER: PoolOwner = const { PoolOwner };
}

struct PoolOwner;

impl Drop for PoolOwner {
    fn drop(&mut self) {
        // Blocks released after this (by other thread-locals' destructors)
        // go to the allocator.
        let _ = POOL.try_with(|pool| {
            pool.owner.set(Owner::Gone);
            pool.free_all();
        });
    }
}

impl Pool {
    /// A free block of `class`, if the pool has one.
    #[inline]
    fn take(&self, class: usize) -> Option<NonNull<u8>> {
        let block = self.heads[class].get()?;
        // SAFETY: a block on the list is a free block of this class (at
        // least 64 bytes, line-aligned) owned by the pool, whose first word
        // was written by `keep` as the next block's address.
        let next = unsafe { block.cast::<Option<NonNull<u8>>>().read() };
        self.heads[class].set(next);
        self.counts[class].set(self.counts[class].get() - 1);
        Some(block)
    }

    /// Keeps `block` of `class` for reuse; `false` (the caller frees it)
    /// when the class holds its [`KEEP_BYTES`] already or the thread's
    /// owner is gone.
    #[inline]
    fn keep(&self, class: usize, block: NonNull<u8>) -> bool {
        let count = self.counts[class].get();
        if count >= KEEP_BYTES / CLASSES[class] || !self.owned() {
            return false;
        }
        // SAFETY: `block` is a free block of this class, given to the pool
        // (so nothing else uses it) and line-aligned, so its first word can
        // hold the list's link.
        unsafe {
            block
                .cast::<Option<NonNull<u8>>>()
                .write(self.heads[class].get())
        };
        self.heads[class].set(Some(block));
        self.counts[class].set(count + 1);
        true
    }

    /// Whether the thread's [`OWNER`] will free kept blocks; registers it
    /// on the first call.
    #[inline]
    fn owned(&self) -> bool {
        match self.owner.get() {
            Owner::Owned => true,
            Owner::Gone => false,
            Owner::Unowned => {
                // Reaching the owner registers its destructor; during
                // thread exit it may be gone already.
                let owned = OWNER.try_with(|_| ()).is_ok();
                self.owner
                    .set(if owned { Owner::Owned } else { Owner::Gone });
                owned
            }
        }
    }

    /// Gives every block back to the allocator.
    fn free_all(&self) {
        for class in 0..CLASSES.len() {
            while let Some(block) = self.take(class) {
                // SAFETY: every pooled block was allocated by `alloc_block`
                // with this class's layout and is owned by the pool alone
                // (`take` just took it off the list).
                unsafe { alloc::dealloc(block.as_ptr(), class_layout(class)) }
            }
        }
    }
}

/// Gives every freed block this thread keeps back to the allocator.
pub(crate) fn trim() {
    let _ = POOL.try_with(Pool::free_all);
}

/// The layout of a block of class `class`.
fn class_layout(class: usize) -> Layout {
    // A power-of-two alignment and a size that is a multiple of it.
    Layout::from_size_align(CLASSES[class], ALIGN).expect("a valid class layout")
}

/// The class a value of `layout` is allocated in, if any.
const fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > ALIGN {
        return None;
    }
    let mut class = 0;
    while class < CLASSES.len() {
        if layout.size() <= CLASSES[class] {
            return Some(class);
        }
        class += 1;
    }
    None
}

/// A new block of `layout` from the allocator.
fn alloc_block(layout: Layout) -> NonNull<u8> {
    // SAFETY: `layout` has a non-zero size (an `Inner` holds a count).
    let raw = unsafe { alloc::alloc(layout) };
    NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout))
}

struct Inner<T> {
    count: Cell<usize>,
    value: T,
}

/// A shared, single-threaded, reference-counted `T` (like `Rc<T>`, without
/// weak references), whose memory is pooled per thread.
pub(crate) struct PooledRc<T> {
    ptr: NonNull<Inner<T>>,
    /// Owns an `Inner<T>` (for drop check and variance).
    _owns: PhantomData<Inner<T>>,
}

impl<T> PooledRc<T> {
    const CLASS: Option<usize> = class_of(Layout::new::<Inner<T>>());

    /// The layout a block for an `Inner<T>` is allocated and freed with.
    fn block_layout() -> Layout {
        match Self::CLASS {
            Some(class) => class_layout(class),
            None => Layout::new::<Inner<T>>(),
        }
    }

    /// Moves `value` into a block from the pool (or a new one).
    #[cfg(test)]
    pub(crate) fn new(value: T) -> PooledRc<T> {
        PooledRc::new_with(|| value)
    }

    /// Makes the value straight into a block from the pool (or a new one):
    /// `make` runs once the block is at hand, so a value built from
    /// constants is written in place rather than built on the stack and
    /// copied (a `memcpy` call for `spawn`'s join state).
    ///
    /// If `make` panics, the block goes back to the pool.
    #[inline]
    pub(crate) fn new_with(make: impl FnOnce() -> T) -> PooledRc<T> {
        // `try_with`: where thread-locals live under OS keys, even one
        // without a destructor can be gone at thread exit (then the block
        // comes from the allocator); with native thread-locals this costs
        // nothing over `with`.
        let pooled = Self::CLASS.and_then(|class| POOL.try_with(|pool| pool.take(class)).ok()?);
        let block = pooled.unwrap_or_else(|| alloc_block(Self::block_layout()));
        let ptr = block.cast::<Inner<T>>();
        let unwritten = GiveBack(ptr);
        // SAFETY: `block` is unused memory of `block_layout()`, which is at
        // least as large and as aligned as an `Inner<T>` (`class_of`).
        unsafe {
            ptr.as_ptr().write(Inner {
                count: Cell::new(1),
                value: make(),
            })
        };
        std::mem::forget(unwritten);
        PooledRc {
            ptr,
            _owns: PhantomData,
        }
    }

    fn inner(&self) -> &Inner<T> {
        // SAFETY: the block holds a live `Inner<T>` while any `PooledRc` to
        // it exists (it is dropped and freed only when the count reaches
        // zero), and only shared references to it are ever made.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Deref for PooledRc<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.inner().value
    }
}

impl<T> Clone for PooledRc<T> {
    #[inline]
    fn clone(&self) -> PooledRc<T> {
        let count = &self.inner().count;
        // Counting past `usize::MAX` needs more handles than memory holds;
        // abort as `Rc` does rather than wrap.
        let Some(n) = count.get().checked_add(1) else {
            std::process::abort()
        };
        count.set(n);
        PooledRc {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T> Drop for PooledRc<T> {
    #[inline]
    fn drop(&mut self) {
        let count = &self.inner().count;
        let n = count.get() - 1;
        count.set(n);
        if n == 0 {
            release(self.ptr);
        }
    }
}

/// Gives a block back (to the pool, or to the allocator) when dropped: on
/// every exit of `release`, and of `new_with` if its `make` panics. Holds
/// no value: the block's `Inner<T>` has been dropped, or was never written.
struct GiveBack<T>(NonNull<Inner<T>>);

impl<T> Drop for GiveBack<T> {
    fn drop(&mut self) {
        let block = self.0.cast::<u8>();
        if let Some(class) = PooledRc::<T>::CLASS {
            if POOL.try_with(|pool| pool.keep(class, block)) == Ok(true) {
                return;
            }
        }
        // SAFETY: the block was allocated with `block_layout()` (by
        // `alloc_block` or for a pooled block of the same class), and holds
        // no live value (see the type's invariant).
        unsafe { alloc::dealloc(block.as_ptr(), PooledRc::<T>::block_layout()) }
    }
}

/// Drops the value of the last reference and gives its block back (even
/// if the value's destructor panics).
#[inline(never)]
fn release<T>(ptr: NonNull<Inner<T>>) {
    let give_back = GiveBack(ptr);
    // SAFETY: the count reached zero, so this was the last reference: the
    // value is dropped exactly once, and nothing reads it afterwards (the
    // block is only reused for a new value written over it).
    unsafe { std::ptr::drop_in_place(&raw mut (*ptr.as_ptr()).value) };
    drop(give_back);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn values_are_shared_and_dropped_once() {
        let drops = Rc::new(Cell::new(0));
        struct Counted(Rc<Cell<u32>>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let a = PooledRc::new(Counted(drops.clone()));
        let b = a.clone();
        drop(a);
        assert_eq!(drops.get(), 0);
        drop(b);
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn a_freed_block_is_reused_for_the_next_value_of_its_class() {
        let a = PooledRc::new([1u64; 4]);
        let first = a.ptr.cast::<u8>();
        drop(a);
        let b = PooledRc::new([2u64; 5]);
        assert_eq!(b.ptr.cast::<u8>(), first, "same class, same block");
        assert_eq!(*b, [2u64; 5]);
    }

    #[test]
    fn large_and_overaligned_values_use_the_allocator() {
        #[repr(align(128))]
        struct Wide(u8);
        assert_eq!(PooledRc::<[u8; 4096]>::CLASS, None);
        assert_eq!(PooledRc::<Wide>::CLASS, None);
        let big = PooledRc::new([7u8; 4096]);
        assert_eq!(big[4095], 7);
        let wide = PooledRc::new(Wide(3));
        assert_eq!(wide.0, 3);
        assert_eq!(std::ptr::from_ref(&*wide) as usize % 128, 0);
    }

    /// How many freed blocks of `class` this thread keeps.
    fn kept(class: usize) -> usize {
        POOL.with(|pool| pool.counts[class].get())
    }

    #[test]
    fn the_pool_keeps_at_most_its_bytes_and_trim_gives_them_all_back() {
        trim();
        let limit = KEEP_BYTES / CLASSES[0];
        let many: Vec<PooledRc<u64>> = (0..limit as u64 + 10).map(PooledRc::new).collect();
        assert_eq!(kept(0), 0);
        drop(many);
        assert_eq!(kept(0), limit, "the rest went back to the allocator");
        trim();
        assert_eq!(kept(0), 0);
        let again = PooledRc::new(5u64);
        assert_eq!(*again, 5);
    }

    #[test]
    fn blocks_freed_during_thread_exit_are_not_lost() {
        /// Drops its value from a thread-local's destructor, which may run
        /// before or after the pool's owner.
        struct DropsLate(Cell<Option<PooledRc<u64>>>);
        impl Drop for DropsLate {
            fn drop(&mut self) {
                drop(self.0.take());
                // A value made and dropped this late goes through the pool
                // or the allocator, whichever is still there.
                drop(PooledRc::new(9u64));
            }
        }
        thread_local! {
            static LATE: DropsLate = const { DropsLate(Cell::new(None)) };
        }
        std::thread::spawn(|| {
            drop(PooledRc::new(1u64));
            assert_eq!(kept(0), 1, "kept: the pool's owner is registered");
            LATE.with(|late| late.0.set(Some(PooledRc::new(2u64))));
        })
        .join()
        .expect("the thread exits cleanly");
    }

    #[test]
    fn blocks_are_line_aligned() {
        let blocks: Vec<PooledRc<u64>> = (0..8).map(PooledRc::new).collect();
        for b in &blocks {
            assert_eq!(b.ptr.as_ptr() as usize % 64, 0);
        }
    }

    #[test]
    fn a_panicking_destructor_still_gives_the_block_back() {
        struct Boom;
        impl Drop for Boom {
            fn drop(&mut self) {
                panic!("boom");
            }
        }
        let a = PooledRc::new(Boom);
        let block = a.ptr.cast::<u8>();
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(a))).is_err());
        let b = PooledRc::new(0u64);
        assert_eq!(b.ptr.cast::<u8>(), block);
    }

    #[test]
    fn a_panicking_make_gives_the_block_back() {
        let a = PooledRc::new(1u64);
        let block = a.ptr.cast::<u8>();
        drop(a);
        let made = std::panic::catch_unwind(|| PooledRc::<u64>::new_with(|| panic!("no value")));
        assert!(made.is_err());
        let b = PooledRc::new(2u64);
        assert_eq!(b.ptr.cast::<u8>(), block, "the block went back to the pool");
        assert_eq!(*b, 2);
    }
}
