//! Guarded stacks for greenlets, and the per-thread pool that recycles them.
//!
//! Every greenlet runs on a corosensei [`DefaultStack`]: an `mmap`-ed region
//! with a `PROT_NONE` guard page below it, so an overflow faults instead of
//! corrupting memory. Mapping and protecting a stack costs two system calls
//! (and unmapping a third), far more than a greenlet's whole life on a warm
//! stack, so finished greenlets hand their stacks to a [`StackPool`] and the
//! next greenlet of the thread takes one from there.
//!
//! The top [`RESERVED`] bytes of each stack hold the greenlet's corosensei
//! `Coroutine` object itself: it needs an address that never moves (corosensei
//! writes back into it after every resume) and that costs no heap allocation.

use std::io;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

use corosensei::stack::{DefaultStack, Stack, StackPointer};

use crate::runtime::Co;

/// The usable size of a greenlet's stack when the builder does not set one:
/// 1 MiB, the same as corosensei's default. Memory is only committed as the
/// stack is touched, so an idle greenlet costs about one page of it.
pub const DEFAULT_STACK_SIZE: usize = 1024 * 1024;

/// How many stacks a thread keeps for reuse. Beyond this, released stacks are
/// unmapped.
pub(crate) const POOL_CAPACITY: usize = 64;

/// The pool is a stack (LIFO): the most recently released stacks are reused
/// first and stay warm. A stack pushed further down than this many places
/// has everything but its top [`KEEP_RESIDENT`] bytes given back to the
/// kernel (`MADV_DONTNEED`), once, so a burst of deep greenlets does not pin
/// memory, while a steady create/finish cycle makes no system call.
const WARM_STACKS: usize = 8;
const KEEP_RESIDENT: usize = 64 * 1024;

/// Bytes at the top of each stack that hold the greenlet's `Coroutine`.
pub(crate) const RESERVED: usize = (std::mem::size_of::<Co>() + 63) & !63;

/// A [`DefaultStack`] whose top [`RESERVED`] bytes are kept out of the
/// usable stack, to hold the coroutine that runs on it.
pub(crate) struct PooledStack {
    inner: DefaultStack,
}

impl PooledStack {
    /// Maps a new stack with at least `size` usable bytes.
    fn map(size: usize) -> io::Result<PooledStack> {
        // corosensei panics on sizes whose page rounding overflows; such a
        // request could never be mapped anyway.
        if size > isize::MAX as usize / 2 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("greenlet stack size of {size} bytes is too large"),
            ));
        }
        Ok(PooledStack {
            inner: DefaultStack::new(size + RESERVED)?,
        })
    }

    /// The bytes the mapping spans, guard page included.
    fn mapped_len(&self) -> usize {
        self.inner.base().get() - self.inner.limit().get()
    }

    /// Where the coroutine that runs on this stack lives.
    pub(crate) fn coroutine_slot(&self) -> *mut Co {
        (self.inner.base().get() - RESERVED) as *mut Co
    }

    /// The usable size in bytes (guard page and reserved bytes excluded).
    #[cfg(test)]
    pub(crate) fn usable_size(&self) -> usize {
        self.mapped_len() - page_size() - RESERVED
    }

    /// The lowest address of the guard page below the stack.
    pub(crate) fn guard_page(&self) -> usize {
        self.inner.limit().get()
    }

    /// Gives all but the top `KEEP_RESIDENT` bytes back to the kernel.
    fn trim(&self) {
        let low = self.inner.limit().get() + page_size();
        let high = self.inner.base().get().saturating_sub(KEEP_RESIDENT);
        if high > low {
            // SAFETY: [low, high) lies inside this stack's writable mapping,
            // and no greenlet runs on a stack while it is being released, so
            // nothing live is stored there.
            unsafe {
                libc::madvise(low as *mut libc::c_void, high - low, libc::MADV_DONTNEED);
            }
        }
    }
}

// SAFETY: the limit and the guard page are those of the inner
// `DefaultStack`; the base is moved down by `RESERVED` (a multiple of 64, so
// it stays 16-byte aligned), which leaves at least `MIN_STACK_SIZE` usable
// bytes because `map` adds `RESERVED` to the requested size.
unsafe impl Stack for PooledStack {
    #[inline]
    fn base(&self) -> StackPointer {
        // `RESERVED` is far smaller than any mapping, so this never hits 0.
        NonZeroUsize::new(self.inner.base().get() - RESERVED).expect("stack base underflow")
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        self.inner.limit()
    }
}

/// A thread's stash of released default-size stacks.
pub(crate) struct StackPool {
    /// Pooled stacks, most recently released last, each with whether it has
    /// been trimmed.
    stacks: Vec<(PooledStack, bool)>,
    /// Stacks currently lent to greenlets.
    in_use: usize,
}

impl StackPool {
    pub(crate) const fn new() -> StackPool {
        StackPool {
            stacks: Vec::new(),
            in_use: 0,
        }
    }

    /// A stack with at least `size` usable bytes: a pooled one when `size` is
    /// the default, otherwise a fresh mapping.
    pub(crate) fn take(&mut self, size: usize) -> io::Result<PooledStack> {
        let stack = match self.stacks.pop() {
            Some((stack, _)) if size == DEFAULT_STACK_SIZE => stack,
            other => {
                if let Some(pooled) = other {
                    self.stacks.push(pooled);
                }
                PooledStack::map(size)?
            }
        };
        self.in_use += 1;
        Ok(stack)
    }

    /// Takes back a stack whose greenlet has finished with it.
    pub(crate) fn give(&mut self, stack: PooledStack) {
        self.in_use -= 1;
        if stack.mapped_len() != default_mapped_len() || self.stacks.len() >= POOL_CAPACITY {
            return; // dropping unmaps it
        }
        if self.stacks.capacity() == 0 {
            self.stacks.reserve_exact(POOL_CAPACITY);
        }
        self.stacks.push((stack, false));
        // The stack that just left the warm top of the pool gives its
        // memory back (once).
        if let Some(cold) = self.stacks.len().checked_sub(WARM_STACKS + 1) {
            let (stack, trimmed) = &mut self.stacks[cold];
            if !*trimmed {
                stack.trim();
                *trimmed = true;
            }
        }
    }

    /// Stacks waiting in the pool.
    pub(crate) fn pooled(&self) -> usize {
        self.stacks.len()
    }

    /// Stacks lent to live greenlets.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use
    }

    /// Unmaps every pooled stack.
    pub(crate) fn clear(&mut self) {
        self.stacks = Vec::new();
    }
}

fn default_mapped_len() -> usize {
    let page = page_size();
    (DEFAULT_STACK_SIZE + RESERVED + page + page - 1) & !(page - 1)
}

/// The system page size, asked once per process.
pub(crate) fn page_size() -> usize {
    static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
    match PAGE_SIZE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf has no preconditions.
            let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            let size = if size > 0 { size as usize } else { 4096 };
            PAGE_SIZE.store(size, Ordering::Relaxed);
            size
        }
        size => size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_default_stacks_and_is_bounded() {
        let mut pool = StackPool::new();
        let a = pool.take(DEFAULT_STACK_SIZE).unwrap();
        let base = a.coroutine_slot();
        assert!(a.usable_size() >= DEFAULT_STACK_SIZE);
        pool.give(a);
        assert_eq!(pool.pooled(), 1);
        let b = pool.take(DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(b.coroutine_slot(), base, "the pooled stack is reused");
        pool.give(b);

        let many: Vec<_> = (0..POOL_CAPACITY + 5)
            .map(|_| pool.take(DEFAULT_STACK_SIZE).unwrap())
            .collect();
        assert_eq!(pool.in_use(), POOL_CAPACITY + 5);
        for s in many {
            pool.give(s);
        }
        assert_eq!(pool.pooled(), POOL_CAPACITY);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn odd_sizes_are_not_pooled() {
        let mut pool = StackPool::new();
        let s = pool.take(64 * 1024).unwrap();
        assert!(s.usable_size() >= 64 * 1024);
        pool.give(s);
        assert_eq!(pool.pooled(), 0);
    }
}
