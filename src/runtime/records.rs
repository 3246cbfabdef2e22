//! The greenlet records, at fixed addresses, behind a safe layer.
//!
//! # The borrowing rule
//!
//! The records live in slots that never move: chunks of [`CHUNK`] slots,
//! each allocated once and kept until the thread's runtime is dropped, with
//! a free list of vacant slots (linked through their records' `parent`
//! fields). A [`Key`] is the address of its slot, so a handle reaches its
//! record in one load, with no index to check and no slab to search; a
//! vacant slot holds a record that is not live, so even a stale key reads
//! valid memory (and trips a debug assertion).
//!
//! No reference into a slot ever leaves this module: every accessor copies plain data out (or
//! in) and returns, and the closures this module passes to its two private
//! doors ([`Records::read`] and [`Records::write`]) only move fields, so no
//! user code (a destructor, a closure, a hook) and no other runtime call
//! runs while a reference into a slot is alive. That is what makes the
//! layer sound: user code is the only thing that could re-enter the runtime
//! and change a record (or the chunk list, which an insert may grow) under
//! a live reference, and a stack switch is a call into user code.
//!
//! Values that can run user code when dropped (greenlet-local values, the
//! name and locals of a record being removed) are moved out whole and
//! dropped after the door has closed: by the caller, or for a removed
//! record by `remove` itself, before the slot is listed as vacant. A stale
//! key (one whose record is gone) is a bug in the runtime.

use std::any::Any;
use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};
use std::rc::Rc;

use corosensei::Yielder;

use crate::local::{LocalSlot, Locals};
use crate::stack::Co;
use crate::value::{ValueType, Word};

/// The yielder through which a greenlet's coroutine suspends.
pub(crate) type Y = Yielder<Word, Word>;

/// A greenlet: the address of its record's slot in its thread's records.
/// "No greenlet" is `Option<Key>`'s `None`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub(crate) struct Key(NonNull<Slot>);

/// Slots per chunk of records.
pub(crate) const CHUNK: usize = 64;

/// A record's place, at a fixed address from its chunk's allocation until
/// the records are dropped. Aligned to a cache line, so that a record's
/// first line holds its hot fields (see [`Record`]).
#[repr(align(64))]
pub(crate) struct Slot(UnsafeCell<Record>);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum State {
    /// Created, never switched to.
    Unstarted,
    /// Running or suspended.
    Active,
    /// Returned, panicked, or killed.
    Dead,
}

/// Record flag: a kill is unwinding this greenlet.
pub(crate) const DYING: u8 = 1;
/// Record flag: the last reference to this greenlet went while it was
/// running; when it switches away, the receiver kills it.
pub(crate) const ORPHAN: u8 = 2;
/// Record flag: this greenlet is inside `kill()` while its own stack unwinds
/// a panic; sending it a kill would unwind inside a landing pad.
pub(crate) const UNWINDING: u8 = 4;
/// Record flag: the greenlet's function keeps its own outcome (a hub
/// spawn, whose result goes to its `JoinHandle`). An error that ends it
/// before it started is handed to its function's destructor (see
/// `Runtime::take_unrun_cause`), and a throw that ends it unstarted comes
/// back to the thrower, as a kill does, instead of reaching its parent.
pub(crate) const OWNS_OUTCOME: u8 = 8;
/// Record flag: a kill of this greenlet cannot be refused; a switch after
/// catching it gets `SwitchError::Unwinding` instead (a generator's
/// producer: a close must end it, as Python's does; and any dying greenlet
/// once its function has ended, while its locals or unrun function drop).
pub(crate) const NO_REFUSAL: u8 = 16;
/// The flags that force a greenlet's switches onto the slow path; the
/// runtime counts the records that carry one, so the fast path checks one
/// counter instead of the current greenlet's record.
pub(crate) const FORCES_SLOW_PATH: u8 = DYING | ORPHAN;

/// Record flag: `killer` is set. Kept so that the common reads of the
/// killer link (every greenlet's end asks who receives it) look at the
/// record's first line only.
const HAS_KILLER: u8 = 32;
/// Record flag: `killer` holds, instead of a killer, the greenlet that
/// this one's end goes to instead of its parent: the hub's hand-off from a
/// finishing spawned greenlet to the next ready one (see
/// `Runtime::finish_into`). Never set together with [`HAS_KILLER`].
const HANDS_OFF: u8 = 128;
/// Record flag: the record may hold a name or greenlet-local values. Kept
/// so that creating and removing a record without either (most records)
/// touches its first line only.
const OWNS_VALUES: u8 = 64;

/// One greenlet's bookkeeping. Only this module sees its fields.
///
/// In declaration order (`repr(C)`), in a slot of its own cache lines. The
/// first line holds what a switch or a hub hand-off reads (the coroutine,
/// the yielder, the argument type, the counts, the state) and everything a
/// greenlet's creation writes. With the compiler's order they sat at both
/// ends of the record, two lines, and each greenlet resumed among many out
/// of cache missed on both (valgrind's lackey, 1,000 greenlets yielding in
/// turn: the record's two lines a yield became one).
///
/// The second line holds what most greenlets never set: the killer link,
/// the name and the greenlet-local values. A vacant slot keeps them empty
/// (`remove` takes them out), so filling a slot writes the second line only
/// for a name, and flags ([`HAS_KILLER`], [`OWNS_VALUES`]) say when it is
/// worth reading: a burst of 10,000 spawned greenlets (spawn, park, wake,
/// join) took about three cache misses fewer a greenlet (callgrind, 54.8
/// -> 51.8).
#[repr(C)]
pub(crate) struct Record {
    /// Lives at the top of the greenlet's own stack; null for main and once
    /// the stack has gone back to the pool.
    coroutine: *mut Co,
    /// Set on first entry; null for main (which runs the trampoline instead).
    yielder: *const Y,
    /// The type the function takes, checked when a switch would start it.
    arg: &'static ValueType,
    /// Handles, children's parent links, and victims' killer links.
    refs: u32,
    /// `CurrentGreenlet` handles: they keep the record (so its key stays
    /// valid) but not the greenlet alive.
    pins: u32,
    /// False in a vacant slot.
    live: bool,
    state: State,
    flags: u8,
    /// The stack size it asked for, in KiB (saturated), for the overflow
    /// message.
    stack_kib: u32,
    parent: Option<Key>,
    /// The guard page below its stack (0 for main), for the overflow
    /// message.
    guard_page: usize,
    id: u64,
    // ----- the second line: see `HAS_KILLER` and `OWNS_VALUES` -----
    /// Who receives this greenlet's end instead of its parent: its killer
    /// while a kill is under way ([`HAS_KILLER`]), or the greenlet the hub
    /// hands control to as it finishes ([`HANDS_OFF`]). Holds a reference.
    killer: Option<Key>,
    name: Option<Rc<str>>,
    /// Greenlet-local values, by `Local` slot.
    locals: Locals,
}

// What creation writes and a switch reads fills the first line exactly.
const _: () = assert!(std::mem::offset_of!(Record, killer) == 64);

impl Record {
    /// The main greenlet's record. It holds a reference to itself: main is
    /// never unreachable and never freed before teardown.
    #[inline]
    pub(crate) fn main() -> Record {
        let mut main = Record::unstarted(
            None,
            ptr::null_mut(),
            crate::value::type_of::<()>(),
            0,
            Some(Rc::from("main")),
            0,
            0,
        );
        main.state = State::Active;
        main
    }

    /// A new, unstarted greenlet's record with one reference (its
    /// creator's handle).
    #[inline]
    pub(crate) fn unstarted(
        parent: Option<Key>,
        coroutine: *mut Co,
        arg: &'static ValueType,
        id: u64,
        name: Option<Rc<str>>,
        guard_page: usize,
        stack_size: usize,
    ) -> Record {
        Record {
            live: true,
            state: State::Unstarted,
            flags: if name.is_some() { OWNS_VALUES } else { 0 },
            refs: 1,
            pins: 0,
            parent,
            killer: None,
            coroutine,
            yielder: ptr::null(),
            arg,
            id,
            name,
            locals: Vec::new(),
            guard_page,
            stack_kib: (stack_size >> 10).min(u32::MAX as usize) as u32,
        }
    }

    /// This new record, with `OWNS_OUTCOME` when `owns` (a hub spawn).
    #[inline]
    pub(crate) fn owning_outcome(mut self, owns: bool) -> Record {
        if owns {
            self.flags |= OWNS_OUTCOME;
        }
        self
    }
}

impl Record {
    /// What a vacant slot holds.
    fn vacant() -> Record {
        let mut r = Record::unstarted(
            None,
            ptr::null_mut(),
            crate::value::type_of::<()>(),
            0,
            None,
            0,
            0,
        );
        r.live = false;
        r.refs = 0;
        r.state = State::Dead;
        r
    }
}

/// What a switch needs of its target, copied out in one lookup.
#[derive(Clone, Copy)]
pub(crate) struct Target {
    pub(crate) state: State,
    pub(crate) arg: &'static ValueType,
    pub(crate) coroutine: *mut Co,
    pub(crate) yielder: *const Y,
}

/// What introspection shows of a record (a copy).
pub(crate) struct View {
    pub(crate) key: Key,
    pub(crate) id: u64,
    pub(crate) name: Option<Rc<str>>,
    pub(crate) state: State,
    pub(crate) parent: Option<Key>,
    /// Its stack is still held (dead, but not yet recycled).
    pub(crate) holds_stack: bool,
}

/// What the overflow message names.
pub(crate) struct GuardInfo {
    pub(crate) guard_page: usize,
    pub(crate) stack_size: usize,
    pub(crate) id: u64,
    /// The name's bytes, borrowed raw: the signal handler prints them
    /// without allocating, while the faulting greenlet (their owner) is
    /// stopped.
    pub(crate) name: Option<(*const u8, usize)>,
}

/// The thread's records.
pub(crate) struct Records {
    /// Where the slots are and which are vacant.
    store: UnsafeCell<Store>,
    main: Key,
}

/// The slots' bookkeeping, behind its own door ([`Records::store`]).
struct Store {
    /// Chunks of slots, allocated as needed and never freed nor moved
    /// before `Records` is dropped (growing this list moves the boxes,
    /// not the slots).
    chunks: Vec<Box<[Slot]>>,
    /// The last-freed vacant slot, reused first; each vacant slot's
    /// `parent` links the one freed before it (an intrusive list: freeing
    /// and reusing a slot writes a word or two, where a `Vec` of keys had
    /// its own length and capacity to keep).
    vacant: Option<Key>,
    /// Slots handed out so far (all chunks but the last are full).
    used: usize,
}

impl Store {
    /// A slot never used before, in a new chunk if the last one is full.
    #[cold]
    fn new_slot(&mut self) -> Key {
        if self.used == self.chunks.len() * CHUNK {
            self.chunks.push(
                (0..CHUNK)
                    .map(|_| Slot(UnsafeCell::new(Record::vacant())))
                    .collect(),
            );
        }
        let slot = &self.chunks[self.used / CHUNK][self.used % CHUNK];
        self.used += 1;
        Key(NonNull::from(slot))
    }

    /// The key of slot number `index` (main's is 0), if it was handed out.
    fn key_at(&self, index: usize) -> Option<Key> {
        let slot = self.chunks.get(index / CHUNK)?.get(index % CHUNK)?;
        Some(Key(NonNull::from(slot)))
    }
}

impl Records {
    /// Records holding only `main`, whose key [`main`](Records::main)
    /// returns.
    #[inline]
    pub(crate) fn new(main: Record) -> Records {
        let records = Records {
            store: UnsafeCell::new(Store {
                chunks: Vec::new(),
                vacant: None,
                used: 0,
            }),
            main: Key(NonNull::dangling()),
        };
        let main = records.insert(main);
        Records { main, ..records }
    }

    /// The main greenlet's key: inserted first and never removed.
    #[inline(always)]
    pub(crate) fn main(&self) -> Key {
        self.main
    }

    /// The one door into a record, vacant or not.
    #[inline(always)]
    fn slot<T>(&self, key: Key, f: impl FnOnce(&mut Record) -> T) -> T {
        // SAFETY: `key` is the address of a slot of this thread's records
        // (keys are made only by `Store`), which stays allocated until the
        // records are dropped and always holds an initialised record. The
        // borrowing rule (module docs): every `f` given here copies, stores
        // or swaps plain fields and runs no user code, so this is the only
        // reference into the slot while it lives, and it ends with the call.
        f(unsafe { &mut *key.0.as_ref().0.get() })
    }

    /// The door for the slots' bookkeeping.
    #[inline(always)]
    fn store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        // SAFETY: the borrowing rule (module docs): the closures given here
        // push, pop or look up slots and run no user code, so this is the
        // only reference to the store while it lives.
        f(unsafe { &mut *self.store.get() })
    }

    /// Reads a live record.
    #[inline(always)]
    fn read<T>(&self, key: Key, f: impl FnOnce(&Record) -> T) -> T {
        self.slot(key, |r| {
            debug_assert!(r.live, "greenlet: internal error: stale key");
            f(r)
        })
    }

    /// Changes a live record.
    #[inline(always)]
    fn write<T>(&self, key: Key, f: impl FnOnce(&mut Record) -> T) -> T {
        self.slot(key, |r| {
            debug_assert!(r.live, "greenlet: internal error: stale key");
            f(r)
        })
    }

    /// Adds a record.
    #[inline]
    pub(crate) fn insert(&self, record: Record) -> Key {
        let key = self.reserve();
        self.fill(key, record);
        key
    }

    /// Takes a vacant slot for [`fill`](Records::fill). Split from it so
    /// that a record built between the two is written straight into its
    /// slot, not built on the stack and copied. A reserved slot that is
    /// never filled is lost (not unsound: it stays vacant and unlisted).
    #[inline(always)]
    pub(crate) fn reserve(&self) -> Key {
        match self.store(|s| s.vacant) {
            Some(key) => {
                let next = self.slot(key, |r| r.parent.take());
                self.store(|s| s.vacant = next);
                key
            }
            None => self.store(Store::new_slot),
        }
    }

    /// Puts `record` into the slot `key` from [`reserve`](Records::reserve).
    /// Field by field: a vacant slot's second line is already empty (see
    /// [`Record`]), so only a name is written there.
    #[inline(always)]
    pub(crate) fn fill(&self, key: Key, record: Record) {
        let Record {
            coroutine,
            yielder,
            arg,
            refs,
            pins,
            live,
            state,
            flags,
            stack_kib,
            parent,
            guard_page,
            id,
            killer,
            name,
            locals,
        } = record;
        debug_assert!(killer.is_none() && locals.capacity() == 0, "a new record");
        // A new record's locals are an empty `Vec`, which owns no memory:
        // forgotten, it costs no call to its drop.
        std::mem::forget(locals);
        self.slot(key, |r| {
            debug_assert!(!r.live, "greenlet: internal error: filling a live slot");
            debug_assert!(
                r.killer.is_none() && r.name.is_none() && r.locals.capacity() == 0,
                "greenlet: internal error: a vacant slot holding values"
            );
            r.coroutine = coroutine;
            r.yielder = yielder;
            r.arg = arg;
            r.refs = refs;
            r.pins = pins;
            r.live = live;
            r.state = state;
            r.flags = flags;
            r.stack_kib = stack_kib;
            r.parent = parent;
            r.guard_page = guard_page;
            r.id = id;
            if name.is_some() {
                r.name = name;
            }
        });
    }

    /// Removes a dead record whose stack was recycled, and returns its
    /// parent link (still counted on the parent, for the caller to
    /// release). What it owned that can run code when dropped (its name,
    /// its locals) is dropped here, outside any borrow of the records and
    /// before the slot is listed as vacant, so nothing that code does can
    /// reach the slot. The slot keeps the rest, which the next `insert`
    /// overwrites.
    #[inline]
    pub(crate) fn remove(&self, key: Key) -> Option<Key> {
        debug_assert!(key != self.main, "main's record is never removed");
        let (parent, owns_values) = self.write(key, |r| {
            debug_assert!(r.coroutine.is_null(), "removed with its stack");
            debug_assert!(r.killer.is_none(), "removed with a killer link");
            r.live = false;
            (r.parent.take(), r.flags & OWNS_VALUES != 0)
        });
        // Most greenlets have neither a name nor locals: then nothing is
        // moved out and nothing is dropped.
        if owns_values {
            self.drop_values(key);
        }
        let next = self.store(|s| s.vacant.replace(key));
        self.slot(key, |r| r.parent = next);
        parent
    }

    /// Takes a removed record's name and locals out of its slot and drops
    /// them (their destructors may run user code: after the borrow ends).
    #[cold]
    #[inline(never)]
    fn drop_values(&self, key: Key) {
        let owned = self.slot(key, |r| {
            r.flags &= !OWNS_VALUES;
            (r.name.take(), std::mem::take(&mut r.locals))
        });
        drop(owned);
    }

    /// Forgets the greenlet-local values of `key` without dropping them:
    /// they belong with the frames of a greenlet left suspended for good
    /// (one that refused its kill at thread exit), whose stack is leaked.
    #[cold]
    pub(crate) fn leak_locals(&self, key: Key) {
        std::mem::forget(self.slot(key, |r| std::mem::take(&mut r.locals)));
    }

    /// One past the highest slot index in use (for walks that tolerate the
    /// records changing between steps).
    #[inline]
    pub(crate) fn key_bound(&self) -> u32 {
        self.store(|s| s.used as u32)
    }

    /// The record at slot `index`, if there is one (for walks).
    #[inline]
    pub(crate) fn view_at(&self, index: u32) -> Option<View> {
        let key = self.store(|s| s.key_at(index as usize))?;
        self.slot(key, |r| r.live.then(|| view(key, r)))
    }

    /// Every record, in slot order.
    #[inline]
    pub(crate) fn views(&self) -> Vec<View> {
        (0..self.key_bound())
            .filter_map(|i| self.view_at(i))
            .collect()
    }

    // ----- copy-out accessors -----

    /// What a switch needs of `key`.
    #[inline(always)]
    pub(crate) fn target(&self, key: Key) -> Target {
        self.read(key, |r| Target {
            state: r.state,
            arg: r.arg,
            coroutine: r.coroutine,
            yielder: r.yielder,
        })
    }

    #[inline(always)]
    pub(crate) fn state(&self, key: Key) -> State {
        self.read(key, |r| r.state)
    }

    /// A greenlet's first entry: it is active, suspending through `y`.
    #[inline]
    pub(crate) fn enter(&self, key: Key, yielder: *const Y) {
        self.write(key, |r| {
            r.state = State::Active;
            r.yielder = yielder;
        })
    }

    /// A greenlet's end: it is dead, and its flags that force the slow
    /// path are cleared. Returns the flags before and after.
    #[inline]
    pub(crate) fn mark_dead(&self, key: Key) -> (u8, u8) {
        self.write(key, |r| {
            r.state = State::Dead;
            let before = r.flags;
            r.flags &= !FORCES_SLOW_PATH;
            (before, r.flags)
        })
    }

    /// Takes a dead greenlet's stack and receiver link (its killer, or
    /// where it handed off to) out, for recycling. Returns (coroutine,
    /// receiver link, whether nothing keeps the record: no reference, no
    /// pin).
    #[inline]
    pub(crate) fn retire(&self, key: Key) -> (*mut Co, Option<Key>, bool) {
        self.write(key, |r| {
            (
                std::mem::replace(&mut r.coroutine, ptr::null_mut()),
                take_receiver_link(r),
                r.refs == 0 && r.pins == 0,
            )
        })
    }

    /// Drops one reference; when none is left, returns the liveness (as
    /// `liveness` does) for the caller to decide the record's fate.
    #[inline]
    pub(crate) fn drop_last_ref(&self, key: Key) -> Option<(State, bool, bool)> {
        self.write(key, |r| {
            r.refs -= 1;
            (r.refs == 0).then_some((r.state, !r.coroutine.is_null(), r.pins != 0))
        })
    }

    #[inline]
    pub(crate) fn flags(&self, key: Key) -> u8 {
        self.read(key, |r| r.flags)
    }

    /// Sets `set` and clears `clear`; returns the flags before and after.
    #[inline]
    pub(crate) fn change_flags(&self, key: Key, set: u8, clear: u8) -> (u8, u8) {
        self.write(key, |r| {
            let before = r.flags;
            r.flags = (before | set) & !clear;
            (before, r.flags)
        })
    }

    #[inline(always)]
    pub(crate) fn parent(&self, key: Key) -> Option<Key> {
        self.read(key, |r| r.parent)
    }

    /// Sets the parent link; returns the old one.
    #[inline]
    pub(crate) fn replace_parent(&self, key: Key, parent: Option<Key>) -> Option<Key> {
        self.write(key, |r| std::mem::replace(&mut r.parent, parent))
    }

    #[inline]
    pub(crate) fn killer(&self, key: Key) -> Option<Key> {
        self.read(key, killer)
    }

    /// Sets the killer link; returns the old receiver link (a killer, or
    /// a hand-off's destination, which a kill replaces).
    #[inline]
    pub(crate) fn replace_killer(&self, key: Key, killer: Option<Key>) -> Option<Key> {
        self.write(key, |r| {
            let old = take_receiver_link(r);
            if killer.is_some() {
                r.killer = killer;
                r.flags |= HAS_KILLER;
            }
            old
        })
    }

    /// Where a dead greenlet's outcome goes: its killer while a kill is
    /// under way, else the greenlet it hands off to, else its parent.
    #[inline]
    pub(crate) fn receiver(&self, key: Key) -> Option<Key> {
        self.read(key, |r| {
            if r.flags & (HAS_KILLER | HANDS_OFF) != 0 {
                r.killer
            } else {
                r.parent
            }
        })
    }

    /// Takes out the greenlet that `key`'s hand-off names, if any, with its
    /// reference.
    #[inline]
    pub(crate) fn take_hand_off(&self, key: Key) -> Option<Key> {
        self.write(key, |r| {
            if r.flags & HANDS_OFF != 0 {
                r.flags &= !HANDS_OFF;
                r.killer.take()
            } else {
                None
            }
        })
    }

    /// Makes the greenlet `dest` receive `key`'s end instead of its parent,
    /// taking over one reference to it (see `Runtime::finish_into`).
    #[inline]
    pub(crate) fn set_hand_off(&self, key: Key, dest: Key) {
        self.write(key, |r| {
            debug_assert!(r.flags & (HAS_KILLER | HANDS_OFF) == 0);
            r.killer = Some(dest);
            r.flags |= HANDS_OFF;
        })
    }

    /// Adds one reference.
    #[inline]
    pub(crate) fn add_ref(&self, key: Key) {
        self.write(key, |r| r.refs += 1)
    }

    /// [`add_ref`](Records::add_ref) for a handle given to the program,
    /// which may `mem::forget` any number of them: the count must not
    /// wrap (the runtime's own references are as many as its links, each
    /// owned by a record or a queued entry, so they cannot get there).
    #[inline]
    pub(crate) fn add_handle_ref(&self, key: Key) {
        if self.write(key, |r| wrapped_adding_one(&mut r.refs)) {
            count_overflow();
        }
    }

    /// Drops one reference; returns how many are left.
    #[inline]
    pub(crate) fn drop_ref(&self, key: Key) -> u32 {
        self.write(key, |r| {
            r.refs -= 1;
            r.refs
        })
    }

    #[inline]
    pub(crate) fn refs(&self, key: Key) -> u32 {
        self.read(key, |r| r.refs)
    }

    #[inline]
    pub(crate) fn pin(&self, key: Key) {
        if self.write(key, |r| wrapped_adding_one(&mut r.pins)) {
            count_overflow();
        }
    }

    /// Undoes a pin; returns whether nothing keeps the record any more (no
    /// pin, no reference, dead, its stack recycled).
    #[inline]
    pub(crate) fn unpin(&self, key: Key) -> bool {
        self.write(key, |r| {
            r.pins -= 1;
            r.pins == 0 && r.refs == 0 && r.state == State::Dead && r.coroutine.is_null()
        })
    }

    /// (state, stack still held, pinned), to decide whether an
    /// unreferenced record can go.
    #[inline]
    pub(crate) fn liveness(&self, key: Key) -> (State, bool, bool) {
        self.read(key, |r| (r.state, !r.coroutine.is_null(), r.pins != 0))
    }

    /// Whether the slot of `key` still holds the greenlet numbered `id`
    /// (not freed, nor reused by another greenlet since).
    #[inline]
    pub(crate) fn is_live_with_id(&self, key: Key, id: u64) -> bool {
        self.slot(key, |r| r.live && r.id == id)
    }

    #[inline]
    pub(crate) fn id(&self, key: Key) -> u64 {
        self.read(key, |r| r.id)
    }

    /// The name (a reference-count increment, which runs no user code).
    #[inline]
    pub(crate) fn name(&self, key: Key) -> Option<Rc<str>> {
        self.read(key, |r| r.name.clone())
    }

    /// The address of `key`'s value in greenlet-local `slot`, if set. The
    /// value is boxed, so the address stays put until the locals are
    /// taken (when the greenlet finishes).
    #[inline]
    pub(crate) fn local(&self, key: Key, slot: usize) -> Option<*const ()> {
        self.read(key, |r| {
            if r.flags & OWNS_VALUES == 0 {
                return None;
            }
            match r.locals.get(slot) {
                Some(LocalSlot::Set(value)) => Some(&**value as *const dyn Any as *const ()),
                _ => None,
            }
        })
    }

    /// Stores `value` in `slot` unless one is there already. Returns the
    /// stored value's address and, if `value` was not used, `value` (for
    /// the caller to drop outside the records).
    #[inline]
    pub(crate) fn set_local(
        &self,
        key: Key,
        slot: usize,
        value: Box<dyn Any>,
    ) -> (*const (), Option<Box<dyn Any>>) {
        self.write(key, |r| {
            r.flags |= OWNS_VALUES;
            if r.locals.len() <= slot {
                r.locals.resize_with(slot + 1, || LocalSlot::Empty);
            }
            // A dropped slot is filled again only for a revivable `Local`
            // (the caller checks).
            let spare = match &r.locals[slot] {
                LocalSlot::Empty | LocalSlot::Dropped => {
                    r.locals[slot] = LocalSlot::Set(value);
                    None
                }
                LocalSlot::Set(_) => Some(value),
            };
            let stored = match &r.locals[slot] {
                LocalSlot::Set(v) => &**v as *const dyn Any as *const (),
                LocalSlot::Empty | LocalSlot::Dropped => ptr::null(),
            };
            (stored, spare)
        })
    }

    /// Whether `key`'s value in greenlet-local `slot` was dropped.
    pub(crate) fn local_dropped(&self, key: Key, slot: usize) -> bool {
        self.read(key, |r| {
            matches!(r.locals.get(slot), Some(LocalSlot::Dropped))
        })
    }

    /// Takes one of `key`'s local values out, the one in the highest slot,
    /// for the caller to drop; its slot is marked dropped. The others stay
    /// where they are, readable by its destructor.
    pub(crate) fn take_one_local(&self, key: Key) -> Option<Box<dyn Any>> {
        self.write(key, |r| {
            let i = r
                .locals
                .iter()
                .rposition(|s| matches!(s, LocalSlot::Set(_)))?;
            match std::mem::replace(&mut r.locals[i], LocalSlot::Dropped) {
                LocalSlot::Set(value) => Some(value),
                LocalSlot::Empty | LocalSlot::Dropped => None,
            }
        })
    }

    /// Whether `key` has greenlet-local values.
    #[inline]
    pub(crate) fn has_locals(&self, key: Key) -> bool {
        self.read(key, |r| r.flags & OWNS_VALUES != 0 && !r.locals.is_empty())
    }

    /// Whether `key` has greenlet-local values not dropped yet (the slots
    /// of dropped ones stay marked, so `has_locals` still answers `true`
    /// for them).
    pub(crate) fn has_live_locals(&self, key: Key) -> bool {
        self.read(key, |r| {
            r.locals.iter().any(|s| matches!(s, LocalSlot::Set(_)))
        })
    }

    /// What the overflow message needs, if `key` has a guard page.
    ///
    /// Called from the signal handler on the faulting thread, which was
    /// interrupted outside any door of this module (a door runs no code
    /// that can fault on a guard page), so the records are consistent.
    #[inline]
    pub(crate) fn guard_info(&self, key: Key) -> Option<GuardInfo> {
        self.read(key, guard_info)
    }

    /// What the overflow message needs of the live greenlet whose guard
    /// page (of `page` bytes) holds `addr`, looking through every record:
    /// for a fault while `current` already names another greenlet (a
    /// switch's last frames, pushed on the leaving greenlet's stack after
    /// `jump` named its target current). Called from the signal handler,
    /// as [`guard_info`](Records::guard_info); the chunks of slots never
    /// move, and a switch's window is outside any door.
    pub(crate) fn guard_info_holding(&self, addr: usize, page: usize) -> Option<GuardInfo> {
        (0..self.key_bound()).find_map(|i| {
            let key = self.store(|s| s.key_at(i as usize))?;
            self.slot(key, |r| {
                // A dead greenlet's record keeps its old `guard_page`
                // after its stack went back to the pool (to be reused by
                // another greenlet, or to wait there): only a record that
                // still owns its coroutine owns that stack.
                let owns_stack = r.live && !r.coroutine.is_null();
                let holds = r.guard_page != 0 && addr.wrapping_sub(r.guard_page) < page;
                (owns_stack && holds).then(|| guard_info(r)).flatten()
            })
        })
    }
}

/// What the overflow message needs of `r`, if it has a guard page.
fn guard_info(r: &Record) -> Option<GuardInfo> {
    (r.guard_page != 0).then(|| GuardInfo {
        guard_page: r.guard_page,
        stack_size: r.stack_kib as usize * 1024,
        id: r.id,
        name: r.name.as_ref().map(|n| (n.as_ptr(), n.len())),
    })
}

/// `r`'s killer link (read only when [`HAS_KILLER`] says it is there).
#[inline(always)]
fn killer(r: &Record) -> Option<Key> {
    if r.flags & HAS_KILLER != 0 {
        r.killer
    } else {
        None
    }
}

/// Takes `r`'s receiver link out: its killer, or the greenlet it hands
/// off to.
#[inline(always)]
fn take_receiver_link(r: &mut Record) -> Option<Key> {
    if r.flags & (HAS_KILLER | HANDS_OFF) != 0 {
        r.flags &= !(HAS_KILLER | HANDS_OFF);
        r.killer.take()
    } else {
        None
    }
}

fn view(key: Key, r: &Record) -> View {
    View {
        key,
        id: r.id,
        name: r.name.clone(),
        state: r.state,
        parent: r.parent,
        holds_stack: !r.coroutine.is_null(),
    }
}

/// Adds one to a count the program can raise without bound (handles,
/// pins); whether it wrapped (then [`count_overflow`]).
#[inline(always)]
fn wrapped_adding_one(count: &mut u32) -> bool {
    *count = count.wrapping_add(1);
    *count == 0
}

/// A greenlet's count of handles (or pins) would wrap: only
/// `mem::forget` of about 2^32 of them gets there, and a wrapped count
/// would free a record that handles still name. The process aborts, as
/// `Rc`'s clone does; outside the record's door, so no reference into
/// the slab is live while the message is written.
#[cold]
#[inline(never)]
fn count_overflow() -> ! {
    report!("greenlet: a greenlet's handle count overflowed (handles forgotten?); aborting");
    std::process::abort()
}
