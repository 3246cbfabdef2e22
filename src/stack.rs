//! Guarded stacks for greenlets, and the per-thread pool that supplies them.
//!
//! Every greenlet runs on a stack with an inaccessible guard page below it,
//! so an overflow faults instead of corrupting memory. Getting such a stack
//! from the kernel is the expensive part of a greenlet's life (a map, a
//! guard, an unmap, and fresh page faults: tens of microseconds against a
//! few nanoseconds per switch), so the pool here makes it rare and cheap:
//!
//! - **Batches.** Pooled stacks (see below for their size) are mapped many
//!   at a time, one `mmap` per batch (16 stacks at first, doubling up to
//!   256), and their guard pages are installed together: as lightweight
//!   guard regions (`MADV_GUARD_INSTALL`, Linux 6.13 and later) in one
//!   `process_madvise` call for the whole batch, which also keeps the batch
//!   a single memory mapping; where the kernel lacks them, with one
//!   `mprotect` per guard page as before (two mappings per stack).
//! - **Reuse.** A finished greenlet's stack goes back to the pool still
//!   mapped and still resident, and the next greenlet takes the most
//!   recently released one (LIFO): a warm stack costs no system call and no
//!   page fault. Stacks stay mapped up to [`StackPolicy::max_pooled`];
//!   beyond it a released stack is unmapped.
//! - **Cold stacks give their memory back.** A pooled stack that has not
//!   been reused for [`StackPolicy::cold_after`] is *trimmed*: its pages go
//!   back to the kernel (`MADV_DONTNEED`), so the resident set falls after a
//!   burst, while the mapping stays for the next one. The most recently
//!   released [`StackPolicy::resident`] stacks are never trimmed by age.
//!   The check runs when the pool is used (a greenlet made, or one whose
//!   stack comes back), so stacks that go cold while no greenlet is made
//!   or ends keep their memory until the next one (or [`trim_stacks`],
//!   which trims at once). `MADV_DONTNEED` rather than `MADV_FREE`: freed pages stay in
//!   the resident set until the system runs short of memory, and touching
//!   one again costs about as much as a fresh fault.
//!
//! The pool's stacks are [`StackPolicy::stack_size`] (1 MiB unless the
//! thread sets another size). Stacks of any other size (set with
//! `Builder::stack_size`) are mapped one at a time and unmapped when their
//! greenlet is done.
//!
//! The top [`RESERVED`] bytes of each stack hold the greenlet's corosensei
//! `Coroutine` object itself: it needs an address that never moves (corosensei
//! writes back into it after every resume) and that costs no heap allocation.
//! It shares one cache line with corosensei's link slot just below it
//! (see [`RESERVED`]).
//!
//! Each stack's top is moved down by its *colour*, one of 32 multiples of
//! 64 bytes, which differs from one stack to the next. Without it every
//! stack's hottest lines (the coroutine and the frames of its pending
//! switch) would sit at the same offset in their pages, so in the same few
//! sets of the CPU's caches, and switching among more greenlets than those
//! sets have ways would miss every time.

use std::io;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use corosensei::stack::valgrind::ValgrindStackRegistration;
use corosensei::stack::{Stack, StackPointer};

use crate::runtime::Runtime;
use crate::value::Word;

/// Every greenlet's coroutine has this one type: a value's word goes in and
/// out (see `value.rs`), and the coroutine never returns (it is reset after
/// its final suspend). It lives in the top [`RESERVED`] bytes of its own
/// stack.
pub(crate) type Co = corosensei::Coroutine<Word, Word, (), PooledStack>;

/// The usable size of a greenlet's stack when neither its builder nor the
/// thread's [`StackPolicy::stack_size`] sets one: 1 MiB, the same as
/// corosensei's default. Memory is only committed as the stack is touched,
/// so an idle greenlet costs about one page of it.
pub const DEFAULT_STACK_SIZE: usize = 1024 * 1024;

/// The smallest usable stack a greenlet gets: a smaller
/// [`Builder::stack_size`](crate::Builder::stack_size) or
/// [`StackPolicy::stack_size`] is raised to it. 16 KiB (the least a Linux
/// thread may have, `PTHREAD_STACK_MIN`) when this crate is built with
/// optimisation, 64 KiB when it is not (`cargo test`, `cargo run` in
/// debug), whose frames are several times larger.
///
/// It is the room for what the crate and std run on a greenlet's stack
/// beside the greenlet's own frames: a switch through a
/// [switch hook](crate::set_switch_hook), a kill's unwinding, and the
/// report of a panic, which std's panic hook prints on the panicking
/// greenlet's stack, with a backtrace when `RUST_BACKTRACE` asks for one
/// (the backtrace goes on into the frames of whatever resumed the
/// greenlet: after a hub call, the hub's loop). Below it, a panic on a
/// 4 KiB stack overflowed while its backtrace was printed, in a debug
/// build a hooked switch did, and a panic after a hub sleep overflowed
/// 32 KiB there. The greenlet's own code needs its frames on top.
///
/// ```
/// use greenlet::{Greenlet, MIN_STACK_SIZE};
///
/// let g = Greenlet::builder().stack_size(0).build(|()| 1)?;
/// assert_eq!(g.switch::<(), i32>(()).unwrap(), 1);
/// assert!(MIN_STACK_SIZE >= 16 * 1024);
/// # Ok::<(), std::io::Error>(())
/// ```
pub const MIN_STACK_SIZE: usize = if cfg!(debug_assertions) {
    64 * 1024
} else {
    16 * 1024
};

const _: () = assert!(MIN_STACK_SIZE >= corosensei::stack::MIN_STACK_SIZE);

/// How many colours (offsets of 64 bytes) stack tops cycle through: up to
/// half a page, so that a parked greenlet's frames still fit in its stack's
/// top page (a page more per greenlet would double an idle one's memory;
/// measured: 4.04 KiB per parked hub greenlet with 1, 16 or 32 colours,
/// 5.16 KiB with 64). `yield_now` among 1,000 greenlets took 1.5x tokio's
/// time with one colour and 0.9-1.0x with 32.
const COLOURS: usize = 32;

// A stack's colour and `RESERVED` stay under the smallest page, so the
// mapping's end is the first page boundary above the base (which
// `PooledStack::len` relies on).
const _: () = assert!((COLOURS - 1) * 64 + RESERVED < 4096);

/// Bytes at the top of each stack that hold the greenlet's `Coroutine`.
///
/// A resume touches two places of a parked greenlet's stack top: the
/// coroutine (its saved stack pointer, and the stack's base, which it
/// passes along) and corosensei's link to the resumer, [`LINK`] bytes
/// below the base, which the next suspend reads. The coroutine is kept to
/// 48 bytes (see [`PooledStack`]) and placed so that it and the link fill
/// one cache line: a parked greenlet costs a line less to resume, and its
/// frames start 16 bytes higher than under a whole line of its own. Among
/// 1,000 greenlets yielding in turn, with the records' and `yield_now`'s
/// lines also cut, L1 data misses went from 10.0 to 4.1 a yield
/// (callgrind's cache model); this layout's share is the one line. (Were
/// the coroutine larger, it would get whole lines of its own.)
pub(crate) const RESERVED: usize = if std::mem::size_of::<Co>() + LINK <= 64 {
    64 - LINK
} else {
    (std::mem::size_of::<Co>() + 63) & !63
};

/// The bytes below a coroutine's base that hold corosensei's link to the
/// resumer (the parent's stack pointer, stored by every resume).
const LINK: usize = 16;

/// Stacks in the first batch a thread maps; each further batch is as large
/// as everything mapped so far, up to [`MAX_BATCH`].
const FIRST_BATCH: usize = 16;
const MAX_BATCH: usize = 256;

/// How the pool keeps and gives back stacks, per thread, and what size
/// they are.
///
/// The default suits servers: every stack a burst needed stays mapped for
/// the next burst (up to 32,768 of them, about the most the kernel's stock
/// mapping limit allows live at once anyway), the 16 most recently released
/// stay resident, and the others give their memory back once they have not
/// been reused for a second. Stacks are [`DEFAULT_STACK_SIZE`]; a thread
/// that runs many shallow greenlets can pool smaller ones
/// ([`stack_size`](StackPolicy::stack_size)). Set it with
/// [`set_stack_policy`].
///
/// ```
/// use std::time::Duration;
/// use greenlet::{set_stack_policy, StackPolicy};
///
/// // A thread that wants its memory back sooner, and keeps fewer stacks.
/// let previous = set_stack_policy(
///     StackPolicy::new()
///         .max_pooled_bytes(256 << 20)
///         .resident(4)
///         .cold_after(Duration::from_millis(100)),
/// );
/// assert_eq!(previous, StackPolicy::default());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackPolicy {
    stack_size: usize,
    max_pooled: usize,
    resident: usize,
    cold_after: Duration,
}

impl StackPolicy {
    /// The default policy (see the type's docs).
    pub const fn new() -> StackPolicy {
        StackPolicy {
            stack_size: DEFAULT_STACK_SIZE,
            max_pooled: 32_768,
            resident: 16,
            cold_after: Duration::from_secs(1),
        }
    }

    /// The usable size of the stacks the pool keeps, in bytes: the stack
    /// of every greenlet this thread creates without
    /// [`Builder::stack_size`](crate::Builder::stack_size) (hub spawns and
    /// generators included), and of those whose builder asks for this very
    /// size. Stacks of any other size are mapped for their greenlet and
    /// unmapped when it is done; the hub's own greenlet keeps
    /// [`DEFAULT_STACK_SIZE`], and a [server](crate::net::Server)'s own
    /// greenlets (its loop, its stops) take at least that much.
    ///
    /// Smaller stacks cost less than their size suggests, because a stack
    /// only holds the pages it touched either way: what shrinks is the
    /// address space and the kernel's page tables. With the stack tops of
    /// many greenlets closer together, a thread that switches among
    /// thousands of them takes fewer TLB and cache misses, and a new
    /// greenlet's first page fault is cheaper. The price is the depth a
    /// greenlet may reach: one that overflows its stack aborts the process
    /// with a message naming it (see [`Builder::stack_size`](crate::Builder::stack_size)).
    ///
    /// A size below [`MIN_STACK_SIZE`] is raised to it.
    ///
    /// A new size takes effect at once: the pooled stacks of the old size
    /// are unmapped, and those still in use are unmapped when their
    /// greenlets finish (unless the two sizes round to the same mapping, a
    /// change of less than a page: such a stack is pooled, and is as good
    /// as a new one). A size too large to map makes the next creation
    /// fail: with [`InvalidInput`](std::io::ErrorKind::InvalidInput) when
    /// it is more than half the address space can express, otherwise with
    /// the kernel's refusal (`OutOfMemory`, as when the address space or
    /// the mapping limit runs out).
    ///
    /// Size small stacks for the build that runs them: without
    /// optimisation (`cargo test`, `cargo run` in debug), the hub's
    /// blocking calls, inlined for speed, leave their locals in their
    /// caller's frame, about 20 KiB each, so a handler making five of them
    /// needs a frame of about 128 KiB where a release build needs 8 KiB.
    /// A 64 KiB stack that serves in release can overflow in debug.
    ///
    /// ```
    /// use greenlet::{set_stack_policy, Greenlet, StackPolicy};
    ///
    /// // A server thread whose connection greenlets stay shallow.
    /// set_stack_policy(StackPolicy::new().stack_size(64 * 1024));
    /// let g = Greenlet::new(|()| 6 * 7);
    /// assert_eq!(g.switch::<(), i32>(()).unwrap(), 42);
    /// # set_stack_policy(StackPolicy::new());
    /// ```
    pub const fn stack_size(mut self, bytes: usize) -> StackPolicy {
        self.stack_size = bytes;
        self
    }

    /// Keeps at most `stacks` released pooled stacks mapped for
    /// reuse; a stack released beyond that is unmapped. Zero turns reuse
    /// off. A stack that is kept costs address space and, once trimmed,
    /// no memory but its page-table entries.
    pub const fn max_pooled(mut self, stacks: usize) -> StackPolicy {
        self.max_pooled = stacks;
        self
    }

    /// The same limit in bytes of mapped stack (guard page included): as
    /// many stacks of this policy's [`stack_size`](StackPolicy::stack_size)
    /// (as set so far) as fit in `bytes`.
    pub fn max_pooled_bytes(self, bytes: usize) -> StackPolicy {
        let len = mapped_len(self.stack_size).unwrap_or(usize::MAX);
        self.max_pooled(bytes / len)
    }

    /// Keeps the `stacks` most recently released stacks resident however
    /// long they wait (only [`trim_stacks`] trims them), so a thread that
    /// comes back to work after a pause finds that many warm.
    pub const fn resident(mut self, stacks: usize) -> StackPolicy {
        self.resident = stacks;
        self
    }

    /// Gives back the memory of pooled stacks (beyond the resident ones)
    /// that have not been reused for `delay`. Zero trims every stack as
    /// soon as the pool is next used after its release.
    pub const fn cold_after(mut self, delay: Duration) -> StackPolicy {
        self.cold_after = delay;
        self
    }
}

impl Default for StackPolicy {
    fn default() -> StackPolicy {
        StackPolicy::new()
    }
}

/// Sets the current thread's [`StackPolicy`] and returns the one it
/// replaces. Pooled stacks beyond a lowered [`StackPolicy::max_pooled`],
/// and all of them when the [`stack_size`](StackPolicy::stack_size)
/// changes, are unmapped at once. (At the kernel's mapping limit, the
/// unmapping of a stack in the middle of a batch can be refused, as it
/// would split the batch's mapping in two: such a stack gives its memory
/// back at once and is unmapped by a later [`trim_stacks`] or at thread
/// exit.)
pub fn set_stack_policy(policy: StackPolicy) -> StackPolicy {
    Runtime::get().with_pool(|pool| pool.set_policy(policy))
}

/// The stack size of a greenlet of the crate's own that runs beside the
/// user's (a server's accept loop, its stops): the thread's policy size,
/// pooled, unless that is below [`DEFAULT_STACK_SIZE`], which a policy
/// sized for the user's shallow greenlets says nothing about (a debug
/// build's accept loop overflowed 32 KiB, the minimum then).
pub(crate) fn own_greenlet_stack_size() -> usize {
    Runtime::get()
        .with_pool(|pool| pool.stack_size())
        .max(DEFAULT_STACK_SIZE)
}

/// Gives the memory of every stack in the current thread's pool back to
/// the kernel now, resident ones included; the stacks stay mapped for
/// reuse. The pool does this by itself for stacks that go cold (see
/// [`StackPolicy::cold_after`]); this is for a thread that knows it is done
/// with a burst, or that is about to sleep.
///
/// It also frees the blocks the hub keeps for the next spawns' join states
/// (up to a megabyte of them after a burst), and with glibc it asks the C
/// allocator to return the free memory at the ends of its heaps
/// (`malloc_trim`): a burst's greenlets leave their closures' allocations
/// freed but resident.
///
/// ```
/// use greenlet::Greenlet;
///
/// let many: Vec<Greenlet> = (0..100).map(|_| Greenlet::new(|()| ())).collect();
/// drop(many);
/// greenlet::trim_stacks();
/// assert!(greenlet::stats().stacks_pooled >= 100); // still mapped
/// ```
pub fn trim_stacks() {
    let rt = Runtime::get();
    rt.recycle_finished();
    rt.with_pool(|pool| pool.trim_all());
    crate::hub::trim_pooled_blocks();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` may be called at any time from any thread; it
    // only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A guarded stack whose top [`RESERVED`] bytes are kept out of the usable
/// stack, to hold the coroutine that runs on it. Three words, so that the
/// coroutine is 48 bytes (see [`RESERVED`]): the mapping's length and
/// whether it is the stack's own are not stored but derived.
pub(crate) struct PooledStack {
    /// The lowest address (the guard page, then the usable stack), a page
    /// boundary, with [`OWNED`] in its lowest bit: set when the stack is a
    /// mapping of its own (unmapped on drop) rather than a slot of one of
    /// the pool's batches (whose mapping the pool manages: a slot dropped
    /// outside the pool stays mapped).
    low_owned: usize,
    /// `low + len - colour - RESERVED`: the top of the usable stack (and
    /// where the coroutine lives), kept rather than computed because
    /// corosensei asks for it on every resume. The colour and `RESERVED`
    /// together stay under a page, so the mapping's end is the first page
    /// boundary above it.
    base: NonZeroUsize,
    /// Tells valgrind (when the program runs under it) that this range is
    /// a stack, so switches onto it are not taken for wild stack-pointer
    /// moves; deregistered on drop. Free otherwise (a few no-op
    /// instructions).
    _valgrind: ValgrindStackRegistration,
}

/// [`PooledStack::low_owned`]'s bit for a stack that is its own mapping.
const OWNED: usize = 1;

impl PooledStack {
    /// The stack of `len` bytes at `low`, registered with valgrind.
    fn at(low: usize, len: usize, owned: bool) -> PooledStack {
        // Consecutive stacks (a batch's slots) get consecutive colours.
        let colour = (low / len) % COLOURS * 64;
        debug_assert!(low.is_multiple_of(page_size()));
        PooledStack {
            low_owned: low | if owned { OWNED } else { 0 },
            // `low` is a mapping's address, never 0, and `len` exceeds
            // `RESERVED` plus a page (see `mapped_len`).
            base: NonZeroUsize::new(low + len - colour - RESERVED)
                .expect("stack base at address 0"),
            _valgrind: ValgrindStackRegistration::new(low as *mut u8, len),
        }
    }

    /// The lowest address: the guard page, then the usable stack.
    #[inline]
    fn low(&self) -> usize {
        self.low_owned & !OWNED
    }

    /// Bytes from `low` to the top, guard page included.
    #[inline]
    fn len(&self) -> usize {
        let page = page_size();
        (self.base.get() & !(page - 1)) + page - self.low()
    }

    /// Whether the stack is a mapping of its own.
    #[inline]
    fn owned(&self) -> bool {
        self.low_owned & OWNED != 0
    }

    /// Maps a stack of its own with at least `size` usable bytes.
    fn map_single(size: usize) -> io::Result<PooledStack> {
        let len = mapped_len(size)?;
        let low = map_batch(len, 1)?;
        Ok(PooledStack::at(low, len, true))
    }

    /// Where the coroutine that runs on this stack lives.
    pub(crate) fn coroutine_slot(&self) -> *mut Co {
        self.base.get() as *mut Co
    }

    /// The usable size in bytes (guard page and reserved bytes excluded).
    #[cfg(test)]
    pub(crate) fn usable_size(&self) -> usize {
        self.base.get() - self.low() - page_size()
    }

    /// The lowest address of the guard page below the stack.
    pub(crate) fn guard_page(&self) -> usize {
        self.low()
    }

    /// The stack's memory, guard page excluded.
    fn usable(&self) -> (usize, usize) {
        (self.low() + page_size(), self.len() - page_size())
    }

    /// Unmaps the stack: its own mapping, or its slot of a batch (the
    /// batch mapping around it stays). The kernel may refuse, at the
    /// mapping limit: unmapping a slot in the middle of a mapping splits
    /// it in two, which takes one mapping more. Then the stack comes back.
    fn unmap(self) -> Result<(), PooledStack> {
        // SAFETY: the range is this stack's own slot, which nothing else
        // uses: the pool holds it and no greenlet runs on it.
        if unsafe { libc::munmap(self.low() as *mut libc::c_void, self.len()) } != 0 {
            return Err(self);
        }
        std::mem::forget(self);
        Ok(())
    }
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        if self.owned() {
            // SAFETY: the mapping is this stack's own; the stack is being
            // dropped, so nothing runs on it any more.
            unsafe { libc::munmap(self.low() as *mut libc::c_void, self.len()) };
        }
    }
}

// SAFETY: `[low, low + page)` is the guard page (inaccessible), and the
// rest up to `low + len` is readable and writable memory owned by this
// stack. The base is moved down by the colour and `RESERVED` (multiples of
// 16, so it stays 16-byte aligned), which leaves at least `MIN_STACK_SIZE`
// (more than corosensei's minimum) usable bytes because `mapped_len` adds `RESERVED` and a page (more than
// any colour) to the requested size.
unsafe impl Stack for PooledStack {
    #[inline]
    fn base(&self) -> StackPointer {
        self.base
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        NonZeroUsize::new(self.low()).expect("stack at address 0")
    }
}

/// A pooled stack and when it came back, in the pool's clock ticks.
struct Pooled {
    stack: PooledStack,
    released: u64,
}

/// A thread's supply of stacks of its policy's size.
///
/// `free` is a LIFO: a stack is released on top and taken from the top.
/// Every stack in it was therefore released after every stack below it,
/// and the `released` ticks grow from bottom to top; the stacks that have
/// waited longest, the cold ones, are always a prefix. Trimmed stacks are
/// such a prefix too, `free[..trimmed]`: trimming only ever extends the
/// prefix, and taking a stack from within it shortens it.
pub(crate) struct StackPool {
    free: Vec<Pooled>,
    /// `free[..trimmed]` have given their memory back (or are fresh).
    trimmed: usize,
    /// Stacks currently lent to greenlets.
    in_use: usize,
    /// Pooled-size stacks mapped so far (sizes the next batch).
    mapped: usize,
    /// The mapped length of the policy's stacks, known from the first
    /// batch of that size on (0 before it): a stack of another length
    /// that comes back, made before the size changed, is unmapped.
    stack_len: usize,
    /// The last clock reading, in milliseconds (see `now_ms`).
    last_tick: u64,
    policy: StackPolicy,
    /// Stacks the kernel refused to unmap (see `PooledStack::unmap`):
    /// their memory is given back at once, and their unmapping tried
    /// again by `trim_all` (`trim_stacks`) and `clear` (thread exit).
    stranded: Vec<PooledStack>,
}

impl StackPool {
    pub(crate) const fn new() -> StackPool {
        StackPool {
            free: Vec::new(),
            trimmed: 0,
            in_use: 0,
            mapped: 0,
            stack_len: 0,
            last_tick: 0,
            policy: StackPolicy::new(),
            stranded: Vec::new(),
        }
    }

    /// Unmaps `stack`, or, if the kernel refuses, gives its memory back
    /// and keeps it among the stranded, to unmap later.
    #[cold]
    fn unmap(&mut self, stack: PooledStack) {
        if let Err(stack) = stack.unmap() {
            give_back(std::iter::once(stack.usable()));
            self.stranded.push(stack);
        }
    }

    /// Tries the unmapping of the stranded stacks again.
    fn unmap_stranded(&mut self) {
        for stack in std::mem::take(&mut self.stranded) {
            if let Err(stack) = stack.unmap() {
                self.stranded.push(stack);
            }
        }
    }

    /// The usable size of the stacks the pool keeps (the policy's).
    #[inline]
    pub(crate) fn stack_size(&self) -> usize {
        self.policy.stack_size
    }

    /// A stack with at least `size` usable bytes: a pooled one when `size`
    /// is the policy's, otherwise a fresh mapping.
    #[inline]
    pub(crate) fn take(&mut self, size: usize) -> io::Result<PooledStack> {
        if size != self.policy.stack_size {
            let stack = PooledStack::map_single(size)?;
            self.in_use += 1;
            return Ok(stack);
        }
        if self.free.len() > self.trimmed.saturating_add(self.policy.resident) {
            // Stacks that may have gone cold: check before taking one.
            self.age();
        }
        let stack = match self.free.pop() {
            Some(pooled) => {
                self.trimmed = self.trimmed.min(self.free.len());
                pooled.stack
            }
            None => self.map_more()?,
        };
        self.in_use += 1;
        Ok(stack)
    }

    /// Takes back a stack whose greenlet has finished with it.
    #[inline(always)]
    pub(crate) fn give(&mut self, stack: PooledStack) {
        self.in_use -= 1;
        if stack.owned()
            || self.free.len() >= self.policy.max_pooled
            || stack.len() != self.stack_len
        {
            self.unmap(stack);
            return;
        }
        // Below the resident reserve the stack cannot be trimmed before
        // `resident` more are released on top of it, so the last reading
        // of the clock will do for it (and keeps the ticks in order).
        if self.free.len() < self.policy.resident {
            let released = self.last_tick;
            self.free.push(Pooled { stack, released });
            return;
        }
        self.give_beyond_the_reserve(stack);
    }

    /// [`give`](StackPool::give) when the pool holds the resident reserve
    /// already. The stack this release pushes out of the reserve can be
    /// trimmed from now on: it counts as released now, as if it had just
    /// come back, or its stale reading would make it cold at once. A
    /// release checks for cold stacks too, not only a take: a burst that
    /// ends with no greenlet made after it gives back what went cold while
    /// it ended.
    #[cold]
    #[inline(never)]
    fn give_beyond_the_reserve(&mut self, stack: PooledStack) {
        let now = self.tick();
        if let Some(crossing) = self.free.len().checked_sub(self.policy.resident) {
            if crossing >= self.trimmed && crossing < self.free.len() {
                self.free[crossing].released = now;
            }
        }
        self.free.push(Pooled {
            stack,
            released: now,
        });
        if self.free.len() > self.trimmed.saturating_add(self.policy.resident) {
            self.age();
        }
    }

    /// Stacks waiting in the pool.
    pub(crate) fn pooled(&self) -> usize {
        self.free.len()
    }

    /// Stacks lent to live greenlets.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use
    }

    /// Unmaps every pooled stack (the thread is exiting). Stacks still
    /// lent out, if any, stay mapped.
    pub(crate) fn clear(&mut self) {
        let mut stacks: Vec<PooledStack> = self.free.drain(..).map(|p| p.stack).collect();
        stacks.append(&mut self.stranded);
        self.trimmed = 0;
        stacks.sort_unstable_by_key(PooledStack::low);
        // Neighbouring slots of a batch go in one call.
        let mut run: Option<(usize, usize)> = None;
        for stack in stacks {
            let (low, len) = (stack.low(), stack.len());
            std::mem::forget(stack);
            run = match run {
                Some((start, end)) if end == low => Some((start, end + len)),
                Some((start, end)) => {
                    // SAFETY: a run of pooled slots, which nothing uses.
                    unsafe { libc::munmap(start as *mut libc::c_void, end - start) };
                    Some((low, low + len))
                }
                None => Some((low, low + len)),
            };
        }
        if let Some((start, end)) = run {
            // SAFETY: as above.
            unsafe { libc::munmap(start as *mut libc::c_void, end - start) };
        }
    }

    fn set_policy(&mut self, policy: StackPolicy) -> StackPolicy {
        let old = std::mem::replace(&mut self.policy, policy);
        if policy.resident < old.resident {
            // Stacks that leave the reserve now count as released now, as
            // in `give`: their readings may be stale.
            let len = self.free.len();
            let from = len.saturating_sub(old.resident).max(self.trimmed);
            let to = len.saturating_sub(policy.resident);
            if from < to {
                let now = self.tick();
                for pooled in &mut self.free[from..to] {
                    pooled.released = now;
                }
            }
        }
        // A change of less than a page maps the same stacks: they stay.
        if policy.stack_size != old.stack_size
            && mapped_len(policy.stack_size).ok() != mapped_len(old.stack_size).ok()
        {
            // Pooled stacks of the old size are of no use any more.
            for pooled in std::mem::take(&mut self.free) {
                self.unmap(pooled.stack);
            }
            self.trimmed = 0;
            self.mapped = 0;
            self.stack_len = 0;
        }
        if self.free.len() > policy.max_pooled {
            // The coldest go: the bottom of the LIFO.
            let excess = self.free.len() - policy.max_pooled;
            let coldest: Vec<Pooled> = self.free.drain(..excess).collect();
            for pooled in coldest {
                self.unmap(pooled.stack);
            }
            self.trimmed = self.trimmed.saturating_sub(excess);
        }
        old
    }

    /// Reads the clock (coarse, a few nanoseconds) and remembers it.
    fn tick(&mut self) -> u64 {
        let now = now_ms().max(self.last_tick);
        self.last_tick = now;
        now
    }

    /// Trims the pooled stacks that have gone cold.
    #[cold]
    fn age(&mut self) {
        let now = self.tick();
        // A delay too long for u64 milliseconds never passes.
        let cold_after = u64::try_from(self.policy.cold_after.as_millis()).unwrap_or(u64::MAX);
        let end = self.free.len().saturating_sub(self.policy.resident);
        if end <= self.trimmed {
            return;
        }
        let first_warm = self.free[self.trimmed..end]
            .iter()
            .position(|p| p.released.saturating_add(cold_after) > now)
            .map_or(end, |i| self.trimmed + i);
        self.trim_to(first_warm);
    }

    /// Trims every pooled stack (and unmaps the stranded ones, if the
    /// kernel lets it now).
    fn trim_all(&mut self) {
        self.trim_to(self.free.len());
        self.unmap_stranded();
    }

    /// Trims `free[trimmed..end]`.
    fn trim_to(&mut self, end: usize) {
        if end > self.trimmed {
            give_back(
                self.free[self.trimmed..end]
                    .iter()
                    .map(|p| p.stack.usable()),
            );
            self.trimmed = end;
        }
    }

    /// Maps a batch of the policy's stacks, keeps all but one in the pool
    /// and returns that one.
    #[cold]
    fn map_more(&mut self) -> io::Result<PooledStack> {
        let len = mapped_len(self.policy.stack_size)?;
        self.stack_len = len;
        let mut count = self
            .mapped
            .clamp(FIRST_BATCH, MAX_BATCH)
            .min(self.policy.max_pooled.saturating_add(1))
            .max(1);
        // Near an address-space or mapping limit, smaller batches may
        // still fit; the error is the one for a single stack.
        let low = loop {
            match map_batch(len, count) {
                Ok(low) => break low,
                Err(_) if count > 1 => count /= 2,
                Err(e) => return Err(e),
            }
        };
        self.mapped += count;
        // Fresh stacks hold no memory yet: they count as trimmed. They go
        // in so that the lowest is taken first.
        debug_assert!(self.free.is_empty());
        let released = self.last_tick;
        self.free.extend((1..count).rev().map(|i| Pooled {
            stack: PooledStack::at(low + i * len, len, false),
            released,
        }));
        self.trimmed = self.free.len();
        Ok(PooledStack::at(low, len, false))
    }
}

/// The mapped length of a stack with `size` usable bytes: the size and the
/// reserved bytes rounded up to pages, plus the guard page.
fn mapped_len(size: usize) -> io::Result<usize> {
    let page = page_size();
    size.max(MIN_STACK_SIZE)
        // The guard page, the reserved bytes and a page (more than any colour).
        .checked_add(RESERVED + 3 * page - 1)
        .filter(|&n| n <= isize::MAX as usize / 2)
        .map(|n| n & !(page - 1))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("greenlet stack size of {size} bytes is too large"),
            )
        })
}

/// Maps `count` stacks of `len` bytes each, contiguous, with a guard page
/// at the bottom of each; returns the lowest address.
fn map_batch(len: usize, count: usize) -> io::Result<usize> {
    let total = len
        .checked_mul(count)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a fresh private anonymous mapping at an address the kernel
    // picks; nothing else refers to it yet.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let low = addr as usize;
    if let Err(e) = install_guards((0..count).map(|i| low + i * len)) {
        // SAFETY: the mapping made above, not handed out.
        unsafe { libc::munmap(addr, total) };
        return Err(e);
    }
    Ok(low)
}

/// `MADV_GUARD_INSTALL` (Linux 6.13): makes the range fault on access
/// without changing the mapping's protection, so no mapping is split.
#[cfg(target_os = "linux")]
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// The `pidfd` that names the calling process to `process_madvise`
/// (`PIDFD_SELF`, Linux 6.14).
#[cfg(target_os = "linux")]
const PIDFD_SELF: libc::c_int = -10000;

/// How guard pages are installed, found out once per process: lightweight
/// guards for a whole batch in one call, lightweight guards one call each,
/// or `mprotect`.
static GUARD_MODE: AtomicU8 = AtomicU8::new(GUARDS_BATCHED);
const GUARDS_BATCHED: u8 = 0;
const GUARDS_EACH: u8 = 1;
const GUARDS_MPROTECT: u8 = 2;

/// Whether `process_madvise` takes `MADV_DONTNEED` for this process.
static TRIM_BATCHED: AtomicU8 = AtomicU8::new(1);

/// Makes the page at each address inaccessible.
fn install_guards(pages: impl Iterator<Item = usize> + Clone) -> io::Result<()> {
    let page = page_size();
    #[cfg(target_os = "linux")]
    {
        if GUARD_MODE.load(Ordering::Relaxed) == GUARDS_BATCHED {
            if advise_batched(pages.clone().map(|p| (p, page)), MADV_GUARD_INSTALL).is_ok() {
                return Ok(());
            }
            GUARD_MODE.store(GUARDS_EACH, Ordering::Relaxed);
        }
        if GUARD_MODE.load(Ordering::Relaxed) == GUARDS_EACH {
            let mut first = true;
            for p in pages.clone() {
                // SAFETY: `p` is a page of a mapping this module just made.
                if unsafe { libc::madvise(p as *mut libc::c_void, page, MADV_GUARD_INSTALL) } != 0 {
                    let e = io::Error::last_os_error();
                    if !first || e.raw_os_error() != Some(libc::EINVAL) {
                        return Err(e);
                    }
                    // The kernel has no lightweight guards (or not for
                    // this mapping): protect every page instead.
                    GUARD_MODE.store(GUARDS_MPROTECT, Ordering::Relaxed);
                    break;
                }
                first = false;
            }
            if GUARD_MODE.load(Ordering::Relaxed) == GUARDS_EACH {
                return Ok(());
            }
        }
    }
    for p in pages {
        // SAFETY: as above.
        if unsafe { libc::mprotect(p as *mut libc::c_void, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Gives the memory of each `(address, length)` range back to the kernel.
/// Best effort: a refusal leaves the memory resident, nothing worse.
fn give_back(ranges: impl Iterator<Item = (usize, usize)> + Clone) {
    #[cfg(target_os = "linux")]
    {
        if TRIM_BATCHED.load(Ordering::Relaxed) == 1 {
            if advise_batched(ranges.clone(), libc::MADV_DONTNEED).is_ok() {
                return;
            }
            TRIM_BATCHED.store(0, Ordering::Relaxed);
        }
    }
    for (addr, len) in ranges {
        // SAFETY: the range is a pooled stack's usable memory; no greenlet
        // runs on a pooled stack, so nothing live is stored there.
        unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    }
}

/// Applies `advice` to every range, up to 1,024 ranges per system call
/// (`process_madvise` on this process).
#[cfg(target_os = "linux")]
fn advise_batched(
    ranges: impl Iterator<Item = (usize, usize)>,
    advice: libc::c_int,
) -> io::Result<()> {
    const IOV_MAX: usize = 1024;
    let mut iov: Vec<libc::iovec> = Vec::new();
    let mut ranges = ranges.peekable();
    while ranges.peek().is_some() {
        iov.clear();
        iov.extend(
            ranges
                .by_ref()
                .take(IOV_MAX)
                .map(|(addr, len)| libc::iovec {
                    iov_base: addr as *mut libc::c_void,
                    iov_len: len,
                }),
        );
        let want: usize = iov.iter().map(|v| v.iov_len).sum();
        // SAFETY: `iov` holds `iov.len()` valid entries, each a range of a
        // mapping this module made and owns.
        let done = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                PIDFD_SELF,
                iov.as_ptr(),
                iov.len(),
                advice,
                0,
            )
        };
        if done < 0 {
            return Err(io::Error::last_os_error());
        }
        if done as usize != want {
            return Err(io::Error::other("process_madvise stopped short"));
        }
    }
    Ok(())
}

/// A coarse monotonic clock in milliseconds (a few milliseconds' resolution,
/// read without a system call).
fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    #[cfg(target_os = "linux")]
    let clock = libc::CLOCK_MONOTONIC_COARSE;
    #[cfg(not(target_os = "linux"))]
    let clock = libc::CLOCK_MONOTONIC;
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
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

/// How much of a parked greenlet's stack, below its coroutine at the top,
/// [`prefetch_parked_frames`] warms.
const PARKED_FRAMES: usize = 1536;

/// Asks the CPU to start loading the top of the stack whose coroutine is
/// `co` (the frames a parked greenlet resumes through), so that a greenlet
/// resumed soon after does not wait for each of those cache lines in turn.
/// A hint only: nothing is read, and any address is allowed.
#[inline]
pub(crate) fn prefetch_parked_frames(co: *const Co) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let top = co.cast::<i8>();
        let mut offset = 64;
        while offset <= PARKED_FRAMES {
            // SAFETY: a prefetch reads nothing and never faults, whatever
            // the address (wrapping arithmetic makes no reference); SSE is
            // part of the x86_64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(top.wrapping_sub(offset)) };
            offset += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = co;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages of `[addr, addr + len)` that are resident.
    fn resident_pages(addr: usize, len: usize) -> usize {
        let page = page_size();
        let mut vec = vec![0u8; len / page];
        // SAFETY: a mapped range and a vector of one byte per page.
        let r = unsafe { libc::mincore(addr as *mut libc::c_void, len, vec.as_mut_ptr()) };
        assert_eq!(r, 0);
        vec.iter().filter(|&&b| b & 1 != 0).count()
    }

    fn touch_top(s: &PooledStack) {
        // SAFETY: the byte just below the reserved slot is usable stack.
        unsafe { ((s.base.get() - 1) as *mut u8).write_volatile(1) };
    }

    #[test]
    fn pool_reuses_default_stacks_lifo() {
        let mut pool = StackPool::new();
        let a = take(&mut pool);
        let base = a.coroutine_slot();
        assert!(a.usable_size() >= DEFAULT_STACK_SIZE);
        assert_eq!(pool.pooled(), FIRST_BATCH - 1, "the rest of the batch");
        pool.give(a);
        let b = take(&mut pool);
        assert_eq!(b.coroutine_slot(), base, "the pooled stack is reused");
        pool.give(b);

        let many: Vec<_> = (0..200).map(|_| take(&mut pool)).collect();
        assert_eq!(pool.in_use(), 200);
        let mapped = pool.mapped;
        for s in many {
            pool.give(s);
        }
        assert_eq!(pool.pooled(), mapped, "every stack kept");
        let again: Vec<_> = (0..200).map(|_| take(&mut pool)).collect();
        assert_eq!(pool.mapped, mapped, "no new mapping");
        for s in again {
            pool.give(s);
        }
        assert_eq!(pool.in_use(), 0);
        pool.clear();
    }

    #[test]
    fn max_pooled_bounds_the_pool() {
        let mut pool = StackPool::new();
        pool.set_policy(StackPolicy::new().max_pooled(20));
        let many: Vec<_> = (0..50).map(|_| take(&mut pool)).collect();
        for s in many {
            pool.give(s);
        }
        assert_eq!(pool.pooled(), 20);
        pool.set_policy(StackPolicy::new().max_pooled(5));
        assert_eq!(pool.pooled(), 5);
        pool.clear();
    }

    #[test]
    fn cold_stacks_are_trimmed_and_warm_ones_kept() {
        let mut pool = StackPool::new();
        pool.set_policy(StackPolicy::new().resident(2).cold_after(Duration::ZERO));
        let many: Vec<_> = (0..8)
            .map(|_| {
                let s = take(&mut pool);
                touch_top(&s);
                s
            })
            .collect();
        let spans: Vec<(usize, usize)> = many.iter().map(|s| s.usable()).collect();
        for s in many {
            pool.give(s);
        }
        let resident = |pool: &StackPool| {
            pool.free
                .iter()
                .map(|p| {
                    let (a, l) = p.stack.usable();
                    resident_pages(a, l)
                })
                .sum::<usize>()
        };
        // The releases aged the stacks released before them: every cold
        // one but the 2 resident.
        assert_eq!(resident(&pool), 2, "the 2 resident stacks");
        let one = take(&mut pool);
        assert_eq!(resident(&pool), 1, "only the remaining resident stack");
        pool.give(one);
        pool.trim_all();
        assert_eq!(resident(&pool), 0);
        assert!(spans.iter().all(|&(a, l)| resident_pages(a, l) == 0));
        pool.clear();
    }

    /// Lowering `resident` takes stacks out of the reserve: they count as
    /// released from then on, as one pushed out by a release does. (Their
    /// stale readings made them cold at once: a pool idle for hours, then
    /// a burst, then `resident(0)`, trimmed the burst's stacks at the next
    /// take, with an hour's `cold_after`.)
    #[test]
    fn stacks_leaving_the_reserve_by_a_lowered_resident_count_from_then() {
        let mut pool = StackPool::new();
        pool.set_policy(
            StackPolicy::new()
                .resident(16)
                .cold_after(Duration::from_secs(3600)),
        );
        let some: Vec<_> = (0..8)
            .map(|_| {
                let s = take(&mut pool);
                touch_top(&s);
                s
            })
            .collect();
        let fresh = pool.pooled(); // the rest of the batch, never used
                                   // The pool last read the clock two hours ago (it was idle).
        pool.last_tick = now_ms().saturating_sub(2 * 3600 * 1000);
        for s in some {
            pool.give(s); // all into the reserve: stamped with that reading
        }
        pool.set_policy(
            StackPolicy::new()
                .resident(0)
                .cold_after(Duration::from_secs(3600)),
        );
        let one = take(&mut pool);
        assert_eq!(pool.free.len() - pool.trimmed, 7, "none trimmed");
        assert!(pool.free[fresh..].iter().all(|p| {
            let (a, l) = p.stack.usable();
            resident_pages(a, l) > 0
        }));
        pool.give(one);
        pool.clear();
    }

    #[test]
    fn stacks_leaving_the_resident_reserve_count_from_then_not_from_a_stale_reading() {
        let mut pool = StackPool::new();
        pool.set_policy(
            StackPolicy::new()
                .resident(2)
                .cold_after(Duration::from_secs(3600)),
        );
        // The whole first batch: the pool is empty, and the first two
        // stacks given back go into the reserve.
        let many: Vec<_> = (0..FIRST_BATCH)
            .map(|_| {
                let s = take(&mut pool);
                touch_top(&s);
                s
            })
            .collect();
        assert_eq!(pool.pooled(), 0);
        // The pool last read the clock two hours ago (it was idle).
        pool.last_tick = now_ms().saturating_sub(2 * 3600 * 1000);
        for s in many {
            pool.give(s);
        }
        // Released a moment ago, all of them: taking one trims none.
        let one = take(&mut pool);
        assert_eq!(pool.free.len() - pool.trimmed, FIRST_BATCH - 1);
        let resident: Vec<usize> = pool.free[pool.trimmed..]
            .iter()
            .map(|p| {
                let (a, l) = p.stack.usable();
                resident_pages(a, l)
            })
            .collect();
        assert!(resident.iter().all(|&pages| pages > 0), "{resident:?}");
        pool.give(one);
        // A delay too long for u64 milliseconds never passes.
        pool.set_policy(StackPolicy::new().resident(0).cold_after(Duration::MAX));
        let one = take(&mut pool);
        assert!(pool.free[pool.trimmed..].iter().all(|p| {
            let (a, l) = p.stack.usable();
            resident_pages(a, l) > 0
        }));
        assert_eq!(pool.free.len() - pool.trimmed, FIRST_BATCH - 1);
        pool.give(one);
        pool.clear();
    }

    #[test]
    fn odd_sizes_are_not_pooled() {
        let mut pool = StackPool::new();
        let s = pool.take(64 * 1024).unwrap();
        assert!(s.usable_size() >= 64 * 1024);
        pool.give(s);
        assert_eq!(pool.pooled(), 0);
    }

    #[test]
    fn absurd_sizes_are_refused() {
        let mut pool = StackPool::new();
        let e = pool.take(usize::MAX).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn the_policy_sets_the_pooled_size() {
        let mut pool = StackPool::new();
        pool.set_policy(StackPolicy::new().stack_size(64 * 1024));
        assert_eq!(pool.stack_size(), 64 * 1024);
        let a = take(&mut pool);
        assert!(a.usable_size() >= 64 * 1024 && a.usable_size() < 128 * 1024);
        let base = a.coroutine_slot();
        pool.give(a);
        let pooled = pool.pooled();
        // Asking for the policy's size by name takes a pooled stack too.
        let b = pool.take(64 * 1024).unwrap();
        assert_eq!(b.coroutine_slot(), base, "the pooled stack is reused");
        // Another size (the old default included) is a mapping of its own.
        let c = pool.take(DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(pool.pooled(), pooled - 1);
        pool.give(c);
        pool.give(b);
        assert_eq!(pool.pooled(), pooled);
        pool.clear();
    }

    #[test]
    fn a_new_size_unmaps_the_stacks_of_the_old_one() {
        let mut pool = StackPool::new();
        let lent = take(&mut pool);
        let back = take(&mut pool);
        pool.give(back);
        assert!(pool.pooled() > 0);
        pool.set_policy(StackPolicy::new().stack_size(64 * 1024));
        assert_eq!(pool.pooled(), 0, "the pooled old-size stacks are unmapped");
        // One still lent when the size changed is unmapped on its return.
        pool.give(lent);
        assert_eq!(pool.pooled(), 0);
        assert_eq!(pool.in_use(), 0);
        let s = take(&mut pool);
        assert!(s.usable_size() < 128 * 1024, "the new size");
        pool.give(s);
        pool.clear();
    }

    #[test]
    fn an_absurd_policy_size_fails_the_creation() {
        let mut pool = StackPool::new();
        pool.set_policy(StackPolicy::new().stack_size(usize::MAX));
        let e = pool.take(usize::MAX).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(pool.in_use(), 0);
        // An explicit, sane size still works.
        let s = pool.take(64 * 1024).unwrap();
        pool.give(s);
    }

    fn take(pool: &mut StackPool) -> PooledStack {
        let size = pool.stack_size();
        pool.take(size).unwrap()
    }
}
