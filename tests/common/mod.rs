//! A counting global allocator shared by the allocation tests. It counts
//! per thread (a const thread-local `Cell`, which never allocates), so test
//! threads running at the same time don't see each other's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    /// Bytes asked for by this thread's allocations and reallocations.
    static BYTES: Cell<u64> = const { Cell::new(0) };
    /// Bytes allocated and not yet freed by this thread (a block freed by
    /// another thread counts there, negative).
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn add_live(bytes: usize, sign: isize) {
    let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + sign * bytes as isize));
}

// SAFETY: forwards to the system allocator; counting touches only a const
// thread-local `Cell`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        let _ = BYTES.try_with(|c| c.set(c.get() + layout.size() as u64));
        add_live(layout.size(), 1);
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add_live(layout.size(), -1);
        // SAFETY: forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        let _ = BYTES.try_with(|c| c.set(c.get() + new_size as u64));
        add_live(new_size, 1);
        add_live(layout.size(), -1);
        // SAFETY: forwarded from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (and reallocations) made by this thread so far.
#[allow(dead_code)] // Not every test binary sharing this module uses it.
pub fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Bytes this thread's allocations and reallocations asked for so far.
#[allow(dead_code)] // Not every test binary sharing this module uses it.
pub fn bytes_allocated() -> u64 {
    BYTES.with(Cell::get)
}

/// Bytes this thread allocated and has not freed (see `LIVE_BYTES`).
#[allow(dead_code)] // Not every test binary sharing this module uses it.
pub fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}
