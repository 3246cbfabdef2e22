//! A thread's greenlet state and the one loop that resumes coroutines.
//!
//! # The switch path
//!
//! corosensei coroutines are asymmetric (`resume` from a parent, `suspend`
//! back to it); greenlets are symmetric. The bridge: the main greenlet is the
//! thread's own stack, and every other greenlet is a coroutine that only the
//! [`Runtime::trampoline`] resumes, on the main greenlet's stack.
//!
//! - main → child: main runs the trampoline, which resumes the child.
//! - child → main: the child suspends with `MAIN`; the trampoline returns.
//! - child → child: the child suspends with the target's key; the trampoline
//!   resumes the target (two stack switches).
//!
//! The value crosses in a register (see `value.rs`); its type goes beside
//! it in `Runtime::incoming`, and the receiver consumes both first thing.
//! Everything unusual (a signal, a finished greenlet whose stack must be
//! recycled, an orphan to reap) sets `incoming` to [`SIGNAL`] and travels in
//! [`Slow`], which only the cold path reads.
//!
//! # The one borrowing rule
//!
//! The runtime's state lives in `Cell`s and `UnsafeCell`s reached through a
//! raw thread-local pointer. No reference into it is ever held across a
//! stack switch or across a call into user code (a destructor, a closure),
//! because either may re-enter the runtime. Every `unsafe` block below relies
//! on this rule; they say so as "the borrowing rule".

use std::any::{Any, TypeId};
use std::cell::{Cell, UnsafeCell};
use std::io;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;

use corosensei::{Coroutine, CoroutineResult, Yielder};
use slab::Slab;

use crate::error::SwitchError;
use crate::local::Locals;
use crate::stack::{PooledStack, StackPool};
use crate::stats::{GreenletInfo, GreenletState, WaitOn};
use crate::trace::{SwitchKind, Tracer};
use crate::value::{cast_same, decode, encode, type_of, GreenletExit, Signal, ValueType, SIGNAL};

/// A greenlet's index in its thread's slab.
pub(crate) type Key = u32;
/// The main greenlet's key: it is inserted first and never removed.
pub(crate) const MAIN: Key = 0;
/// "No greenlet".
pub(crate) const NONE: Key = Key::MAX;

/// Every greenlet's coroutine has this one type: a value's word goes in and
/// out (see `value.rs`), and the coroutine never returns (it is reset after
/// its final suspend).
pub(crate) type Co = Coroutine<usize, usize, (), PooledStack>;
type Y = Yielder<usize, usize>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    /// Created, never switched to.
    Unstarted,
    /// Running or suspended.
    Active,
    /// Returned, panicked, or killed.
    Dead,
}

/// Record flag: a kill is unwinding this greenlet.
const DYING: u8 = 1;
/// Record flag: the last reference to this greenlet went while it was
/// running; when it switches away, the receiver kills it.
const ORPHAN: u8 = 2;
/// Record flag: this greenlet is inside `kill()` while its own stack unwinds
/// a panic; sending it a kill would unwind inside a landing pad.
const UNWINDING: u8 = 4;
/// Record flag: the greenlet's function keeps its own outcome (a hub
/// spawn, whose result goes to its `JoinHandle`). An error that ends it
/// before it started is handed to its function's destructor (see
/// `Runtime::take_unrun_cause`), and a throw that ends it unstarted comes
/// back to the thrower, as a kill does, instead of reaching its parent.
const OWNS_OUTCOME: u8 = 8;
/// Record flag: a kill of this greenlet cannot be refused; a switch after
/// catching it gets `SwitchError::Unwinding` instead (a generator's
/// producer: a close must end it, as Python's does).
const NO_REFUSAL: u8 = 16;
/// The flags that send a greenlet's switches down the slow path; the runtime
/// counts the records that carry one, so the fast path checks one counter
/// instead of the current greenlet's record.
const RESTRICTING: u8 = DYING | ORPHAN;

pub(crate) struct Record {
    /// This record's own key (the switch path starts from a record).
    key: Key,
    pub(crate) state: State,
    flags: u8,
    /// Handles, children's parent links, and victims' killer links.
    refs: u32,
    /// `CurrentGreenlet` handles: they keep the record (so their key
    /// stays valid) but not the greenlet alive.
    pins: u32,
    pub(crate) parent: Key,
    /// Who receives this greenlet's death while a kill is under way.
    killer: Key,
    /// Lives at the top of the greenlet's own stack; null for main and once
    /// the stack has gone back to the pool.
    coroutine: *mut Co,
    /// Set on first entry; null for main (which runs the trampoline instead).
    yielder: *const Y,
    /// The type the function takes, checked when a switch would start it.
    arg: &'static ValueType,
    pub(crate) id: u64,
    pub(crate) name: Option<Rc<str>>,
    /// Greenlet-local values, by `Local` slot.
    locals: Locals,
    /// What it is blocked on, as the hub records it.
    waiting_on: Option<WaitOn>,
    /// The guard page below its stack (0 for main), and the stack size it
    /// asked for: for the overflow message.
    guard_page: usize,
    stack_size: usize,
}

/// The slow lane of a transfer.
pub(crate) struct Slow {
    signal: Signal,
    /// A greenlet that has just died: the receiver recycles its stack after
    /// consuming the value (which lives on that stack).
    finished: Key,
    /// An unreachable greenlet that has just switched away: the receiver
    /// kills it.
    reap: Key,
}

/// Whether a greenlet may switch away (`Runtime::may_leave`).
enum Leave {
    Yes,
    No(SwitchError),
    /// It is being killed but caught the unwinding: its switch refuses
    /// the kill (see `Runtime::refuse_kill`).
    RefusingKill,
}

/// What a receiver does with a kill signal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnKill {
    /// Unwind the current stack (a pending switch).
    Unwind,
    /// Report it (a greenlet's entry, before its function runs).
    Report,
}

pub(crate) struct Runtime {
    current: Cell<Key>,
    /// The current greenlet's yielder (null while main runs, and while an
    /// unstarted greenlet has not reached its entry yet).
    current_yielder: Cell<*const Y>,
    /// How many records carry a `RESTRICTING` flag.
    restricted: Cell<u32>,
    /// The type of the value word in flight, or `&SIGNAL`.
    incoming: Cell<*const ValueType>,
    /// The coroutine the trampoline resumes next, set by the child that
    /// suspends (null: return to main).
    next: Cell<*mut Co>,
    slow: UnsafeCell<Option<Slow>>,
    records: UnsafeCell<Slab<Record>>,
    pool: UnsafeCell<StackPool>,
    next_id: Cell<u64>,
    tracer: Tracer,
    /// The error ending an unstarted greenlet while its function is being
    /// dropped unrun, with that greenlet's key (see `take_unrun_cause`).
    unrun_cause: Cell<Option<(Key, SwitchError)>>,
}

/// A kill the victim refused: it caught the unwinding and switched away,
/// so it is suspended, alive, at that switch.
#[derive(Debug)]
pub(crate) struct Refused;

/// The marker left in the thread-local pointer once the runtime is gone.
const TORN_DOWN: *const Runtime = ptr::dangling();

thread_local! {
    /// The thread's runtime. A `const`-initialised `Cell` with no destructor,
    /// so reaching it is a single thread-local load.
    static RUNTIME: Cell<*const Runtime> = const { Cell::new(ptr::null()) };
    /// Owns the runtime and tears it down when the thread exits.
    static OWNER: Owner = const { Owner };
}

struct Owner;

impl Drop for Owner {
    fn drop(&mut self) {
        let rt = RUNTIME.with(Cell::get);
        if rt.is_null() || rt == TORN_DOWN {
            return;
        }
        // SAFETY: the pointer came from `Box::into_raw` in `init` and is
        // only freed here, after teardown.
        unsafe {
            if (*rt).teardown() {
                RUNTIME.with(|c| c.set(TORN_DOWN));
                drop(Box::from_raw(rt as *mut Runtime));
                crate::overflow::release_alt_stack();
            } else {
                // A greenlet other than main is running the thread's exit
                // (for example it called `std::process::exit`): its stack
                // cannot be unwound from here, so everything is left as is.
                RUNTIME.with(|c| c.set(TORN_DOWN));
            }
        }
    }
}

impl Runtime {
    /// The calling thread's runtime, created on first use.
    #[inline(always)]
    pub(crate) fn get() -> &'static Runtime {
        let rt = RUNTIME.with(Cell::get);
        if (rt as usize) > (TORN_DOWN as usize) {
            // SAFETY: a non-null, non-marker pointer is the live runtime of
            // this thread; it is freed only by `Owner::drop`, after which the
            // pointer is the marker.
            unsafe { &*rt }
        } else {
            Runtime::init()
        }
    }

    /// The runtime if it is (or can be made) usable, `None` once torn down.
    #[inline]
    pub(crate) fn try_get() -> Option<&'static Runtime> {
        let rt = RUNTIME.with(Cell::get);
        if rt == TORN_DOWN {
            None
        } else {
            Some(Runtime::get())
        }
    }

    #[cold]
    #[inline(never)]
    fn init() -> &'static Runtime {
        if RUNTIME.with(Cell::get) == TORN_DOWN {
            panic!(
                "greenlet: this thread's greenlet runtime has been torn down \
                 (a thread-local destructor used greenlets after it)"
            );
        }
        if OWNER.try_with(|_| ()).is_err() {
            panic!("greenlet: cannot start a greenlet runtime while the thread is exiting");
        }
        let mut records = Slab::new();
        let main = records.insert(Record {
            key: MAIN,
            state: State::Active,
            flags: 0,
            // The main greenlet holds a reference to itself: it is never
            // unreachable and never freed before teardown.
            refs: 1,
            pins: 0,
            parent: NONE,
            killer: NONE,
            coroutine: ptr::null_mut(),
            yielder: ptr::null(),
            arg: type_of::<()>(),
            id: 0,
            name: Some(Rc::from("main")),
            locals: Vec::new(),
            waiting_on: None,
            guard_page: 0,
            stack_size: 0,
        });
        debug_assert_eq!(main, MAIN as usize);
        let rt = Box::into_raw(Box::new(Runtime {
            current: Cell::new(MAIN),
            current_yielder: Cell::new(ptr::null()),
            restricted: Cell::new(0),
            incoming: Cell::new(&SIGNAL),
            next: Cell::new(ptr::null_mut()),
            slow: UnsafeCell::new(None),
            records: UnsafeCell::new(records),
            pool: UnsafeCell::new(StackPool::new()),
            next_id: Cell::new(1),
            tracer: Tracer::new(),
            unrun_cause: Cell::new(None),
        }));
        RUNTIME.with(|c| c.set(rt));
        crate::overflow::install();
        // SAFETY: just allocated; freed only by `Owner::drop`.
        unsafe { &*rt }
    }

    /// The record of a live key.
    ///
    /// # Safety
    /// `key` is in the slab (every handle, parent link, killer link and
    /// `current` is), and the pointer is not used after the slab changes
    /// shape (an insert or remove) nor across a switch (the borrowing rule).
    #[inline(always)]
    unsafe fn record(&self, key: Key) -> *mut Record {
        // SAFETY: see above; the `&mut Slab` lives only for this call.
        unsafe { (*self.records.get()).get_unchecked_mut(key as usize) }
    }

    #[inline(always)]
    pub(crate) fn current(&self) -> Key {
        self.current.get()
    }

    /// Reads one field set of a record (for queries).
    pub(crate) fn with_record<T>(&self, key: Key, f: impl FnOnce(&Record) -> T) -> T {
        // SAFETY: handles keep their key in the slab; `f` only reads plain
        // fields and cannot reach the runtime (it gets a `&Record`, and the
        // callers pass closures that copy or clone fields).
        unsafe { f(&*self.record(key)) }
    }

    /// The current greenlet's value in greenlet-local `slot`, if set.
    pub(crate) fn local(&self, slot: usize) -> Option<*const ()> {
        // SAFETY: current is live; the borrowing rule (nothing here runs
        // user code).
        unsafe {
            let r = self.record(self.current.get());
            let locals: &Locals = &(*r).locals;
            match locals.get(slot) {
                Some(Some(value)) => Some(&**value as *const dyn Any as *const ()),
                _ => None,
            }
        }
    }

    /// Stores the current greenlet's value for `slot` unless one is there
    /// already; returns the stored value.
    pub(crate) fn set_local(&self, slot: usize, value: Box<dyn Any>) -> *const () {
        // SAFETY: as in `local`; `value` is dropped (if unused) after the
        // record pointer is no longer used.
        let (stored, spare) = unsafe {
            let locals = &mut (*self.record(self.current.get())).locals;
            if locals.len() <= slot {
                locals.resize_with(slot + 1, || None);
            }
            let spare = match &locals[slot] {
                Some(_) => Some(value),
                None => {
                    locals[slot] = Some(value);
                    None
                }
            };
            let stored = locals[slot]
                .as_deref()
                .map(|v| v as *const dyn Any as *const ());
            (stored, spare)
        };
        drop(spare);
        stored.unwrap_or(ptr::null())
    }

    /// Drops the current greenlet's local values. A panic in one of their
    /// destructors is returned as `Panicked`; a kill that arrives while one
    /// of them is suspended in a switch is returned as `Killed` (it must not
    /// reach the killer as a panic).
    pub(crate) fn drop_locals(&self) -> Result<(), SwitchError> {
        let locals = self.take_locals();
        if locals.is_empty() {
            return Ok(());
        }
        match panic::catch_unwind(AssertUnwindSafe(move || drop(locals))) {
            Ok(()) => Ok(()),
            Err(p) if p.is::<GreenletExit>() => Err(SwitchError::Killed),
            Err(p) => Err(SwitchError::Panicked(p)),
        }
    }

    /// While the function of an unstarted greenlet is dropped unrun (an
    /// error or a kill reached it first), its destructor may take the
    /// error here, from that greenlet's own stack. The greenlet then ends
    /// as if its function had returned `()` instead of passing the error
    /// on. A hub spawn's closure does this so the error reaches its
    /// `JoinHandle`, not the hub.
    pub(crate) fn take_unrun_cause(&self) -> Option<SwitchError> {
        match self.unrun_cause.take() {
            Some((key, e)) if key == self.current.get() => Some(e),
            other => {
                self.unrun_cause.set(other);
                None
            }
        }
    }

    /// Makes kills of `key` impossible to refuse (see `NO_REFUSAL`).
    pub(crate) fn set_no_refusal(&self, key: Key) {
        self.set_flags(key, NO_REFUSAL);
    }

    /// Marks `key` as keeping its own outcome (see `OWNS_OUTCOME`).
    pub(crate) fn set_owns_outcome(&self, key: Key) {
        self.set_flags(key, OWNS_OUTCOME);
    }

    /// Takes the current greenlet's local values, to be dropped by the caller.
    fn take_locals(&self) -> Locals {
        // SAFETY: as in `local`.
        unsafe { std::mem::take(&mut (*self.record(self.current.get())).locals) }
    }

    /// If `addr` lies in the guard page of the current greenlet's stack,
    /// what the overflow message needs. Called from a signal handler: it
    /// only reads.
    pub(crate) fn overflow_at(addr: usize) -> Option<crate::overflow::Overflow> {
        let rt = RUNTIME.try_with(Cell::get).ok()?;
        if (rt as usize) <= (TORN_DOWN as usize) {
            return None;
        }
        // SAFETY: a live runtime (see `get`); the fault interrupted this
        // thread, which holds no reference into the slab across user code,
        // so the records are in a consistent state; nothing is written.
        unsafe {
            let r = (*(*rt).records.get()).get((*rt).current.get() as usize)?;
            let page = crate::stack::page_size();
            if r.guard_page == 0 || addr < r.guard_page || addr >= r.guard_page + page {
                return None;
            }
            Some(crate::overflow::Overflow {
                name: r.name.as_ref().map(|n| (n.as_ptr(), n.len())),
                id: r.id,
                stack_size: r.stack_size,
            })
        }
    }

    /// The parent of a live greenlet (`NONE` for main).
    #[inline(always)]
    pub(crate) fn parent_of(&self, key: Key) -> Key {
        // SAFETY: `key` is live; a plain read.
        unsafe { (*self.record(key)).parent }
    }

    /// Records what the current greenlet is about to block on (or clears it).
    pub(crate) fn set_waiting_on(&self, what: Option<WaitOn>) {
        // SAFETY: current is live; a plain store.
        unsafe { (*self.record(self.current.get())).waiting_on = what }
    }

    /// One `GreenletInfo` per record; the suspended greenlets in `ready`
    /// (the hub's ready queue) show as `WaitOn::Ready`.
    pub(crate) fn snapshot(&self, ready: &[Key]) -> Vec<GreenletInfo> {
        let cur = self.current.get();
        // SAFETY: the borrowing rule: the walk reads plain fields and clones
        // `Rc<str>` names, which runs no user code.
        let records = unsafe { &*self.records.get() };
        let id_of = |key: Key| records.get(key as usize).map(|r| r.id);
        records
            .iter()
            .map(|(key, r)| GreenletInfo {
                id: r.id,
                name: r.name.clone(),
                state: match r.state {
                    State::Unstarted => GreenletState::Unstarted,
                    State::Active if key as Key == cur => GreenletState::Running,
                    State::Active => GreenletState::Suspended,
                    State::Dead => GreenletState::Dead,
                },
                parent: if r.parent == NONE {
                    None
                } else {
                    id_of(r.parent)
                },
                waiting_on: match r.state {
                    State::Active if key as Key != cur && ready.contains(&(key as Key)) => {
                        Some(WaitOn::Ready)
                    }
                    State::Active => r.waiting_on,
                    _ => None,
                },
            })
            .collect()
    }

    pub(crate) fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// Sends every switch down the slow path (or stops doing so) for a
    /// reason outside the records, such as a switch hook.
    pub(crate) fn restrict(&self, on: bool) {
        let n = self.restricted.get();
        self.restricted.set(if on { n + 1 } else { n - 1 });
    }

    pub(crate) fn pool(&self) -> *mut StackPool {
        self.pool.get()
    }

    /// (pooled, in use) stack counts.
    pub(crate) fn stack_counts(&self) -> (usize, usize) {
        // SAFETY: the borrowing rule; plain reads.
        unsafe { ((*self.pool()).pooled(), (*self.pool()).in_use()) }
    }

    // ----- creation and reference counting -----

    /// Creates an unstarted greenlet with one reference (the caller's handle).
    pub(crate) fn create<F, A, R>(
        &self,
        f: F,
        name: Option<Rc<str>>,
        stack_size: usize,
        parent: Key,
    ) -> io::Result<Key>
    where
        F: FnOnce(A) -> R + 'static,
        A: 'static,
        R: 'static,
    {
        // SAFETY: the borrowing rule: `take` runs no user code.
        let stack = unsafe { (*self.pool()).take(stack_size)? };
        // SAFETY: the borrowing rule; `len` is a plain read.
        if unsafe { (*self.records.get()).vacant_key() } >= NONE as usize {
            // SAFETY: as above.
            unsafe { (*self.pool()).give(stack) };
            return Err(io::Error::other(
                "greenlet: too many greenlets on this thread",
            ));
        }
        let slot = stack.coroutine_slot();
        let guard_page = stack.guard_page();
        let co = Co::with_stack(stack, move |y: &Y, word: usize| {
            entry::<F, A, R>(y, word, f)
        });
        // SAFETY: `slot` is the reserved, suitably aligned top of the stack
        // that `co` owns; it is not part of the usable stack, so nothing
        // else writes there while the coroutine lives.
        unsafe { ptr::write(slot, co) };
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        // SAFETY: the borrowing rule: `insert` runs no user code, and no
        // record pointer is live here.
        let key = unsafe {
            let records = &mut *self.records.get();
            let key = records.vacant_key() as Key;
            records.insert(Record {
                key,
                state: State::Unstarted,
                flags: 0,
                refs: 1,
                pins: 0,
                parent,
                killer: NONE,
                coroutine: slot,
                yielder: ptr::null(),
                arg: type_of::<A>(),
                id,
                name,
                locals: Vec::new(),
                waiting_on: None,
                guard_page,
                stack_size,
            })
        } as Key;
        self.add_ref(parent);
        Ok(key)
    }

    #[inline]
    pub(crate) fn add_ref(&self, key: Key) {
        // SAFETY: `key` is live (the caller holds a reference to it).
        unsafe { (*self.record(key)).refs += 1 }
    }

    /// Drops one reference; an unreachable greenlet is killed or freed.
    #[inline]
    pub(crate) fn release_ref(&self, key: Key) {
        // SAFETY: `key` is live until its last reference goes, which is
        // this one at the earliest.
        let left = unsafe {
            let r = self.record(key);
            (*r).refs -= 1;
            (*r).refs
        };
        if left == 0 {
            self.unreachable(key);
        }
    }

    /// Keeps `key`'s record (not the greenlet) alive for a
    /// `CurrentGreenlet`.
    #[inline]
    pub(crate) fn pin(&self, key: Key) {
        // SAFETY: `key` is live (the current greenlet); a plain store.
        unsafe { (*self.record(key)).pins += 1 }
    }

    /// Undoes a `pin`; frees the record if it was all that kept it.
    #[inline]
    pub(crate) fn unpin(&self, key: Key) {
        // SAFETY: `key` is live: the pin being dropped kept it.
        let free = unsafe {
            let r = self.record(key);
            (*r).pins -= 1;
            (*r).pins == 0
                && (*r).refs == 0
                && (*r).state == State::Dead
                && (*r).coroutine.is_null()
        };
        if free {
            self.free(key);
        }
    }

    /// Nobody refers to `key` any more.
    #[cold]
    fn unreachable(&self, key: Key) {
        if key == self.current() {
            // Running: reaped when it switches away, freed if it finishes.
            self.set_flags(key, ORPHAN);
            return;
        }
        // SAFETY: `key` is still in the slab (freed only below).
        let (state, pending, pinned) = unsafe {
            let r = self.record(key);
            ((*r).state, !(*r).coroutine.is_null(), (*r).pins != 0)
        };
        match state {
            // A dead greenlet whose stack is still waiting for its receiver
            // is freed by `recycle`; a pinned one by the last `unpin`.
            State::Dead if pending || pinned => {}
            State::Dead => self.free(key),
            // Row 12: killed right now, from the dropper. The kill frees it.
            State::Unstarted | State::Active => {
                if self.kill(key).is_err() {
                    self.report_refused(key, "its last handle was dropped");
                }
            }
        }
    }

    /// Removes a dead, recycled, unreferenced record, and then each
    /// ancestor that this leaves dead, recycled and unreferenced. A loop,
    /// not a recursion: a chain of finished greenlets each parented to the
    /// next (the hub's hand-off makes them) can be any length.
    fn free(&self, key: Key) {
        let mut key = key;
        loop {
            // SAFETY: the borrowing rule; the record is dead and unreferenced.
            let record = unsafe { (*self.records.get()).remove(key as usize) };
            debug_assert!(record.coroutine.is_null());
            let parent = record.parent;
            drop(record);
            if parent == NONE {
                return;
            }
            // SAFETY: `parent` is live: the removed record's link kept it.
            let (left, state, pending, pinned) = unsafe {
                let r = self.record(parent);
                (*r).refs -= 1;
                (
                    (*r).refs,
                    (*r).state,
                    !(*r).coroutine.is_null(),
                    (*r).pins != 0,
                )
            };
            if left != 0 {
                return;
            }
            if state == State::Dead && !pending && !pinned && parent != self.current() {
                key = parent; // freed by the next turn, without recursing
            } else {
                return self.unreachable(parent);
            }
        }
    }

    // ----- the switch -----

    /// Switches to `target` with `value`; returns what is later sent back.
    #[inline(always)]
    pub(crate) fn switch<T: 'static, R: 'static>(
        &self,
        target: Key,
        value: T,
    ) -> Result<R, SwitchError> {
        // SAFETY: `target` is a handle's key, so it is live; the pointer is
        // used before anything can change the slab.
        let to = unsafe { self.record(target) };
        // SAFETY: as above; a plain field read.
        let fast = unsafe { (*to).state == State::Active }
            && target != self.current.get()
            && self.restricted.get() == 0
            && !std::thread::panicking();
        if fast {
            let mut value = ManuallyDrop::new(value);
            self.incoming.set(type_of::<T>());
            // SAFETY: `to` is active and not current, the word's type is
            // published, and the value (if not in the word) stays in this
            // frame until the receiver has consumed it.
            unsafe {
                let word = encode(&mut value);
                let back = self.jump(to, word);
                self.receive::<R>(back)
            }
        } else {
            self.switch_slow(target, value)
        }
    }

    #[cold]
    #[inline(never)]
    fn switch_slow<T: 'static, R: 'static>(&self, target: Key, value: T) -> Result<R, SwitchError> {
        // The common slow case first: starting a greenlet.
        // SAFETY: `target` is a handle's key, so it is live.
        let to = unsafe { self.record(target) };
        // SAFETY: as above; plain field reads.
        if unsafe { (*to).state == State::Unstarted && (*to).arg.id == TypeId::of::<T>() }
            && self.restricted.get() == 0
            && !std::thread::panicking()
        {
            let mut value = ManuallyDrop::new(value);
            self.incoming.set(type_of::<T>());
            // SAFETY: `to` is unstarted (so not current), the argument type
            // matches, and the value stays in this frame until taken.
            return unsafe {
                let word = encode(&mut value);
                let back = self.jump(to, word);
                self.receive::<R>(back)
            };
        }
        let cur = self.current.get();
        match self.may_leave(cur) {
            Leave::Yes => {}
            Leave::No(err) => {
                drop(value);
                return Err(err);
            }
            Leave::RefusingKill => {
                if self.has_killer(cur) {
                    drop(value);
                    return self.refuse_kill::<R>(cur);
                }
                // It killed itself and caught that: it simply lives on.
                self.clear_flags(cur, DYING);
            }
        }
        let target = self.first_live(target);
        if target == cur {
            // Rows 5 and 8: a switch to oneself returns the value at once.
            return cast_same::<T, R>(value).map_err(|value| {
                drop(value);
                mismatch::<R, T>()
            });
        }
        // SAFETY: `target` is live (an ancestor of a live key).
        let (state, arg) = unsafe {
            let r = self.record(target);
            ((*r).state, (*r).arg)
        };
        if state == State::Unstarted && arg.id != TypeId::of::<T>() {
            // The greenlet stays unstarted; the sender hears of it.
            drop(value);
            return Err(SwitchError::TypeMismatch {
                expected: arg.name(),
                found: std::any::type_name::<T>(),
            });
        }
        if let Err(p) = self.tracer.emit(cur, target, SwitchKind::Switch) {
            drop(value);
            panic::resume_unwind(p);
        }
        // SAFETY: `target` is live.
        if unsafe { (*self.record(target)).state } == State::Dead {
            // The hook killed it: route again.
            return self.switch_slow(target, value);
        }
        let mut value = ManuallyDrop::new(value);
        let reap = self.orphan_key(cur);
        if reap == NONE {
            self.incoming.set(type_of::<T>());
        } else {
            self.incoming.set(&SIGNAL);
            self.set_slow(Signal::Value(type_of::<T>()), NONE, reap);
        }
        // SAFETY: `target` is live, not current, active or unstarted; the
        // word's type is published and the value stays in this frame.
        unsafe {
            let word = encode(&mut value);
            let back = self.jump(self.record(target), word);
            self.receive::<R>(back)
        }
    }

    /// Throws `payload` into `target` (row 10).
    pub(crate) fn throw<R: 'static>(
        &self,
        target: Key,
        payload: Box<dyn Any + Send>,
    ) -> Result<R, SwitchError> {
        let cur = self.current.get();
        match self.may_leave(cur) {
            Leave::Yes => {}
            Leave::No(err) => {
                drop(payload);
                return Err(err);
            }
            Leave::RefusingKill => {
                if self.has_killer(cur) {
                    drop(payload);
                    return self.refuse_kill::<R>(cur);
                }
                self.clear_flags(cur, DYING);
            }
        }
        let target = self.first_live(target);
        if target == cur {
            // Into self (or routed back to self): raised at once.
            return Err(SwitchError::Thrown(payload));
        }
        if let Err(p) = self.tracer.emit(cur, target, SwitchKind::Throw) {
            drop(payload);
            panic::resume_unwind(p);
        }
        // SAFETY: `target` is live.
        let (state, flags) = unsafe {
            let r = self.record(target);
            ((*r).state, (*r).flags)
        };
        if state == State::Dead {
            // The hook killed it: route again.
            return self.throw(target, payload);
        }
        if state == State::Unstarted && flags & OWNS_OUTCOME != 0 {
            // It ends unrun and keeps the error; its end comes back here,
            // as a kill's does, rather than going to its parent.
            // SAFETY: `target` is live; a plain store.
            unsafe { (*self.record(target)).killer = cur };
            self.add_ref(cur);
        }
        let reap = self.orphan_key(cur);
        self.incoming.set(&SIGNAL);
        self.set_slow(Signal::Thrown(payload), NONE, reap);
        // SAFETY: as in `switch_slow`.
        unsafe {
            let back = self.jump(self.record(target), 0);
            self.receive::<R>(back)
        }
    }

    /// Whether the current greenlet may switch away now.
    fn may_leave(&self, cur: Key) -> Leave {
        // SAFETY: `cur` is live.
        let flags = unsafe { (*self.record(cur)).flags };
        if std::thread::panicking() || flags & (DYING | NO_REFUSAL) == DYING | NO_REFUSAL {
            Leave::No(SwitchError::Unwinding)
        } else if flags & DYING != 0 {
            // Being killed, yet not unwinding: it caught the kill.
            Leave::RefusingKill
        } else if self.tracer.running() {
            Leave::No(SwitchError::InSwitchHook)
        } else {
            Leave::Yes
        }
    }

    /// `cur` if nobody can ever switch back to it, else `NONE`.
    fn orphan_key(&self, cur: Key) -> Key {
        // SAFETY: `cur` is live.
        let (refs, flags) = unsafe {
            let r = self.record(cur);
            ((*r).refs, (*r).flags)
        };
        if refs == 0 {
            cur
        } else {
            if flags & ORPHAN != 0 {
                // It took a new handle to itself after its last one went.
                self.clear_flags(cur, ORPHAN);
            }
            NONE
        }
    }

    fn set_flags(&self, key: Key, flags: u8) {
        // SAFETY: `key` is live; plain field access.
        let before = unsafe {
            let r = self.record(key);
            let before = (*r).flags;
            (*r).flags |= flags;
            before
        };
        if before & RESTRICTING == 0 && flags & RESTRICTING != 0 {
            self.restricted.set(self.restricted.get() + 1);
        }
    }

    fn clear_flags(&self, key: Key, flags: u8) {
        // SAFETY: `key` is live; plain field access.
        let (before, after) = unsafe {
            let r = self.record(key);
            let before = (*r).flags;
            (*r).flags &= !flags;
            (before, (*r).flags)
        };
        if before & RESTRICTING != 0 && after & RESTRICTING == 0 {
            self.restricted.set(self.restricted.get() - 1);
        }
    }

    fn set_slow(&self, signal: Signal, finished: Key, reap: Key) {
        // SAFETY: the borrowing rule; the slot is empty or stale (a value
        // left there would be a bug, caught in debug builds).
        unsafe {
            let slot = &mut *self.slow.get();
            debug_assert!(slot.is_none(), "slow lane overwritten");
            *slot = Some(Slow {
                signal,
                finished,
                reap,
            });
        }
    }

    /// The first greenlet at or above `key` that is not dead (rows 6 and 8).
    /// Main never dies, so the walk ends.
    fn first_live(&self, mut key: Key) -> Key {
        loop {
            // SAFETY: `key` is live; parents are kept alive by their
            // children's links.
            let (state, parent) = unsafe {
                let r = self.record(key);
                ((*r).state, (*r).parent)
            };
            if state != State::Dead {
                return key;
            }
            key = parent;
        }
    }

    /// Transfers control, and `word`, to the greenlet of record `to`, which
    /// must be active or unstarted and not current; returns the word that
    /// comes back when something switches here again. The sender does the
    /// bookkeeping (who is current, whose yielder is in use, which coroutine
    /// runs next) so that the trampoline is a bare resume loop.
    ///
    /// # Safety
    /// `to` points at such a record, and `incoming` describes `word`.
    #[inline(always)]
    unsafe fn jump(&self, to: *mut Record, word: usize) -> usize {
        // SAFETY: `to` is a live record; see above.
        let (key, co, yielder) = unsafe { ((*to).key, (*to).coroutine, (*to).yielder) };
        let mine = self.current_yielder.replace(yielder);
        self.current.set(key);
        if mine.is_null() {
            // SAFETY: only main runs with a null yielder (an unstarted
            // greenlet sets its own before it can switch), and main is not
            // inside the trampoline while it runs; `co` is a child's.
            unsafe { self.trampoline(co, word) }
        } else {
            self.next.set(co);
            // SAFETY: the yielder lives on the current greenlet's stack and
            // is the one the trampoline resumed it through.
            unsafe { (*mine).suspend(word) }
        }
    }

    /// The only place coroutines are resumed; runs on main's stack until a
    /// greenlet switches to main, and returns the word it sent.
    ///
    /// # Safety
    /// Called by main, with `co` the coroutine of a live greenlet that is
    /// suspended or unstarted, and `incoming` describing `word`.
    #[inline(always)]
    unsafe fn trampoline(&self, mut co: *mut Co, mut word: usize) -> usize {
        loop {
            // SAFETY: `co` belongs to a live greenlet and sits at a fixed
            // address on its own stack; no other reference to it exists
            // while it runs (only the trampoline resumes coroutines).
            match unsafe { (*co).resume(word) } {
                CoroutineResult::Yield(back) => {
                    co = self.next.get();
                    if co.is_null() {
                        return back;
                    }
                    word = back;
                }
                CoroutineResult::Return(()) => unreachable_return(),
            }
        }
    }

    // ----- receiving -----

    /// Consumes the word that arrived as an `R`.
    ///
    /// # Safety
    /// Called once, first thing after being switched back to, with the word
    /// that the switch returned.
    #[inline(always)]
    unsafe fn receive<R: 'static>(&self, word: usize) -> Result<R, SwitchError> {
        // SAFETY: `incoming` always points at a `ValueType` constant or
        // `SIGNAL`. A type's constant may have several addresses (one per
        // codegen unit), so the `TypeId`s are compared.
        if unsafe { (*self.incoming.get()).id } == TypeId::of::<R>() {
            // SAFETY: the word carries a live `R` that its suspended sender
            // will never touch again.
            Ok(unsafe { decode::<R>(word) })
        } else {
            // SAFETY: forwarded.
            unsafe { self.receive_slow(word, OnKill::Unwind) }
        }
    }

    /// Everything but a plain value of the expected type at its usual address.
    ///
    /// # Safety
    /// As for `receive`.
    #[cold]
    #[inline(never)]
    unsafe fn receive_slow<R: 'static>(
        &self,
        word: usize,
        on_kill: OnKill,
    ) -> Result<R, SwitchError> {
        let ty = self.incoming.get();
        let (signal, finished, reap) = if ptr::eq(ty, &SIGNAL) {
            // SAFETY: the borrowing rule; the sender filled the slot.
            match unsafe { (*self.slow.get()).take() } {
                Some(s) => (s.signal, s.finished, s.reap),
                None => (Signal::Killed, NONE, NONE),
            }
        } else {
            // SAFETY: `incoming` points at a `ValueType` constant.
            (Signal::Value(unsafe { &*ty }), NONE, NONE)
        };
        let mut late_panic = None;
        let result = match signal {
            Signal::Value(ty) if ty.id == TypeId::of::<R>() => {
                // SAFETY: the word carries a live `R` (equal `TypeId`s) that
                // the suspended sender will not touch again.
                Ok(unsafe { decode::<R>(word) })
            }
            Signal::Value(ty) => {
                // The value is dropped here, in the receiver; a panic in its
                // destructor is held until the housekeeping below is done.
                // SAFETY: as above, and it is dropped exactly once.
                let dropped =
                    panic::catch_unwind(AssertUnwindSafe(|| unsafe { ty.drop_word(word) }));
                late_panic = dropped.err();
                Err(SwitchError::TypeMismatch {
                    expected: std::any::type_name::<R>(),
                    found: ty.name(),
                })
            }
            Signal::Thrown(p) => Err(SwitchError::Thrown(p)),
            Signal::Panicked(p) => Err(SwitchError::Panicked(p)),
            Signal::Mismatch { expected, found } => {
                Err(SwitchError::TypeMismatch { expected, found })
            }
            // A refusal only ever goes to the killer, which consumes it in
            // `kill`; anywhere else it means only "no value".
            Signal::Killed | Signal::Refused => Err(SwitchError::Killed),
            Signal::Kill => {
                if on_kill == OnKill::Unwind {
                    // `resume_unwind` skips the panic hook: a kill prints
                    // nothing.
                    panic::resume_unwind(Box::new(GreenletExit));
                }
                Err(SwitchError::Killed)
            }
        };
        if finished != NONE {
            self.recycle(finished);
        }
        if reap != NONE {
            // The sender was unreachable when it left: kill it now, from here.
            if self.kill(reap).is_err() {
                self.report_refused(reap, "its last handle was dropped while it ran");
            }
        }
        if let Some(p) = late_panic {
            drop(result);
            panic::resume_unwind(p);
        }
        result
    }

    // ----- entry and exit -----

    /// Returns a finished greenlet's stack to the pool, once its receiver
    /// has taken the value that lived on it.
    fn recycle(&self, key: Key) {
        // SAFETY: `key` is live (freed only below); the borrowing rule.
        let (co, refs, killer) = unsafe {
            let r = self.record(key);
            let killer = (*r).killer;
            (*r).killer = NONE;
            (
                std::mem::replace(&mut (*r).coroutine, ptr::null_mut()),
                (*r).refs,
                killer,
            )
        };
        if !co.is_null() {
            // SAFETY: the coroutine lives at `co` and is taken out exactly
            // once (the record's pointer was cleared above).
            let mut co = unsafe { ptr::read(co) };
            // SAFETY: the greenlet is suspended in its final `suspend` in
            // `finish`, where nothing on its stack needs dropping: the
            // function, its argument and its result have all been consumed.
            unsafe { co.force_reset() };
            let stack = co.into_stack();
            // SAFETY: the borrowing rule; `give` runs no user code.
            unsafe { (*self.pool()).give(stack) };
        }
        // SAFETY: `key` is live; a plain read.
        if refs == 0 && unsafe { (*self.record(key)).pins } == 0 {
            self.free(key);
        }
        if killer != NONE {
            self.release_ref(killer);
        }
    }

    /// Kills `victim` (row 11): unwinds its stack so its destructors run,
    /// then returns here. See `Greenlet::kill` for the edge cases.
    ///
    /// Returns `Err(Refused)` when the victim caught the unwinding and
    /// switched away: it is then alive, suspended at that switch.
    pub(crate) fn kill(&self, victim: Key) -> Result<(), Refused> {
        if victim == MAIN {
            return Ok(());
        }
        // Hold the victim for the whole kill: the hook's event handles and
        // the destructors that run may drop its last reference, and its
        // record must not be freed (or its key reused) under this frame.
        struct Hold<'a>(&'a Runtime, Key);
        impl Drop for Hold<'_> {
            fn drop(&mut self) {
                self.0.release_ref(self.1);
            }
        }
        self.add_ref(victim);
        let hold = Hold(self, victim);
        let outcome = self.kill_held(victim);
        if outcome.is_err() {
            // Refused: the hold goes without reaping (that would only kill
            // it again); the caller reports the refusal.
            std::mem::forget(hold);
            self.forget_ref(victim);
        }
        outcome
    }

    /// Drops one reference without reaping an unreachable greenlet.
    fn forget_ref(&self, key: Key) {
        // SAFETY: `key` is live (the caller held this reference).
        unsafe { (*self.record(key)).refs -= 1 }
    }

    fn kill_held(&self, victim: Key) -> Result<(), Refused> {
        let cur = self.current.get();
        // SAFETY: `victim` is live (held by `kill`).
        let (state, flags) = unsafe {
            let r = self.record(victim);
            ((*r).state, (*r).flags)
        };
        if state == State::Dead || flags & (DYING | UNWINDING) != 0 {
            return Ok(());
        }
        if state == State::Active {
            crate::unwind::require_unwinding("a kill");
        }
        if victim == cur {
            if std::thread::panicking() {
                return Ok(());
            }
            self.set_flags(cur, DYING);
            panic::resume_unwind(Box::new(GreenletExit));
        }
        if let Err(p) = self.tracer.emit(cur, victim, SwitchKind::Kill) {
            panic::resume_unwind(p);
        }
        // SAFETY: `victim` is live.
        if unsafe { (*self.record(victim)).state } == State::Dead {
            return Ok(()); // the hook killed it
        }
        self.set_flags(victim, DYING);
        // SAFETY: `victim` is live.
        unsafe { (*self.record(victim)).killer = cur };
        self.add_ref(cur);
        let unwinding = std::thread::panicking();
        if unwinding {
            self.set_flags(cur, UNWINDING);
        }
        self.incoming.set(&SIGNAL);
        self.set_slow(Signal::Kill, NONE, NONE);
        // SAFETY: `victim` is live, not current, active or unstarted (not
        // dead, checked above), and `incoming` is published.
        let back = unsafe { self.jump(self.record(victim), 0) };
        if unwinding {
            self.clear_flags(cur, UNWINDING);
        }
        if self.take_refusal() {
            // The victim gave its killer link up (see `refuse_kill`); the
            // reference it held on this greenlet goes with it.
            self.release_ref(cur);
            return Err(Refused);
        }
        // The victim cannot switch anywhere but back here, so what arrives
        // is its death: `Killed`, or its return value or panic if its
        // function caught the kill and carried on.
        // SAFETY: first thing after being switched back to.
        let outcome = unsafe { self.receive_slow::<()>(back, OnKill::Unwind) };
        if let Err(SwitchError::Panicked(p)) = outcome {
            panic::resume_unwind(p);
        }
        Ok(())
    }

    /// Whether what just arrived is a victim's refusal of this greenlet's
    /// kill; if so it is consumed.
    fn take_refusal(&self) -> bool {
        if !ptr::eq(self.incoming.get(), &SIGNAL) {
            return false;
        }
        // SAFETY: the borrowing rule; the sender filled the slot.
        let slot = unsafe { &mut *self.slow.get() };
        if matches!(
            slot,
            Some(Slow {
                signal: Signal::Refused,
                ..
            })
        ) {
            *slot = None;
            true
        } else {
            false
        }
    }

    /// The current greenlet caught the unwinding of a kill and now tries
    /// to switch away: the kill is refused. It stops dying, and control
    /// goes back to its killer (whose `kill` reports the refusal) instead
    /// of to the switch's target; the caller's switch then waits here for
    /// whatever is later switched to this greenlet. Only for a greenlet
    /// with a killer (see `has_killer`).
    #[cold]
    fn refuse_kill<R: 'static>(&self, cur: Key) -> Result<R, SwitchError> {
        // SAFETY: `cur` is live; plain field access.
        let killer = unsafe { std::mem::replace(&mut (*self.record(cur)).killer, NONE) };
        debug_assert!(killer != NONE);
        self.clear_flags(cur, DYING);
        self.incoming.set(&SIGNAL);
        self.set_slow(Signal::Refused, NONE, NONE);
        // SAFETY: the killer is live (this greenlet's link holds it, and
        // the killer releases that link itself on seeing the refusal), it
        // is suspended in `kill`, and `incoming` is published.
        unsafe {
            let back = self.jump(self.record(killer), 0);
            self.receive::<R>(back)
        }
    }

    /// Whether a kill of `key` is under way with a killer to return to.
    fn has_killer(&self, key: Key) -> bool {
        // SAFETY: `key` is live; a plain read.
        unsafe { (*self.record(key)).killer != NONE }
    }

    /// Reports a kill that nobody can be told of (a dropped last handle,
    /// thread exit) and that the victim refused.
    pub(crate) fn report_refused(&self, victim: Key, why: &str) {
        // SAFETY: `victim` is live (the caller holds it or is killing it).
        let (name, id) = unsafe {
            let r = self.record(victim);
            ((*r).name.clone(), (*r).id)
        };
        eprintln!(
            "greenlet: {} caught the unwinding of its kill ({why}) and switched away; \
             it stays suspended, and its stack and destructors are leaked until something \
             switches to it or kills it again",
            describe(name.as_deref(), id)
        );
    }

    /// Sets `child`'s parent to `parent`, refusing cycles (row 9).
    pub(crate) fn set_parent(&self, child: Key, parent: Key) -> Result<(), Key> {
        let mut walk = parent;
        while walk != NONE {
            if walk == child {
                return Err(walk);
            }
            // SAFETY: ancestors of a live key are live.
            walk = unsafe { (*self.record(walk)).parent };
        }
        // SAFETY: `child` is live.
        let old = unsafe { std::mem::replace(&mut (*self.record(child)).parent, parent) };
        self.add_ref(parent);
        if old != NONE {
            self.release_ref(old);
        }
        Ok(())
    }

    /// Kills every greenlet of the thread but main, from main, each in
    /// isolation: a panic that escapes one greenlet's unwinding (it
    /// answered the kill with a new panic, say) or a refused kill is
    /// reported on stderr in one line naming the greenlet, and the others
    /// are still killed. Greenlets created meanwhile (by destructors) are
    /// killed too; a refusing greenlet is not asked twice.
    pub(crate) fn kill_all(&self, when: &str, spare: Option<Key>) {
        debug_assert_eq!(self.current.get(), MAIN);
        let mut refused: Vec<u64> = Vec::new();
        loop {
            let mut killed_any = false;
            let mut key = 1;
            // SAFETY: the borrowing rule; re-read every round, since kills
            // run destructors that may create or free greenlets.
            while key < unsafe { (*self.records.get()).capacity() } {
                // SAFETY: as above; `get` checks occupancy.
                let target = unsafe {
                    (*self.records.get())
                        .get(key)
                        .filter(|r| {
                            r.state != State::Dead
                                && !refused.contains(&r.id)
                                && Some(r.key) != spare
                        })
                        .map(|r| (r.name.clone(), r.id))
                };
                if let Some((name, id)) = target {
                    let k = key as Key;
                    self.add_ref(k);
                    let outcome = panic::catch_unwind(AssertUnwindSafe(|| self.kill(k)));
                    let who = describe(name.as_deref(), id);
                    match outcome {
                        Ok(Ok(())) => {}
                        Ok(Err(Refused)) => {
                            refused.push(id);
                            eprintln!(
                                "greenlet: {when}, {who} caught the unwinding of its kill and \
                                 switched away; it is left suspended and its stack is leaked"
                            );
                        }
                        Err(p) => eprintln!(
                            "greenlet: {when}, {who} panicked while its stack was unwound: {}",
                            crate::error::payload_message(p.as_ref())
                                .unwrap_or("(non-text payload)")
                        ),
                    }
                    let release = || {
                        if refused.contains(&id) {
                            self.forget_ref(k);
                        } else {
                            self.release_ref(k);
                        }
                    };
                    if let Err(p) = panic::catch_unwind(AssertUnwindSafe(release)) {
                        eprintln!(
                            "greenlet: {when}, dropping {who} panicked: {}",
                            crate::error::payload_message(p.as_ref())
                                .unwrap_or("(non-text payload)")
                        );
                    }
                    killed_any = true;
                }
                key += 1;
            }
            if !killed_any {
                break;
            }
        }
    }

    /// Kills every greenlet of the thread (row 15). Returns false when that
    /// cannot be done because main is not the current greenlet.
    fn teardown(&self) -> bool {
        if self.current.get() != MAIN {
            return false;
        }
        if cfg!(panic = "abort") {
            // Nothing can be unwound: the greenlets still alive are left as
            // they are (their destructors do not run), as the thread's own
            // stack would be by an abort.
            return false;
        }
        self.kill_all("at thread exit", None);
        // A dead greenlet whose receiver switched away before recycling it
        // (a destructor in the receiver did) still holds its stack.
        let mut key = 1;
        // SAFETY: the borrowing rule, as above.
        while key < unsafe { (*self.records.get()).capacity() } {
            // SAFETY: as above.
            let pending = unsafe {
                (*self.records.get())
                    .get(key)
                    .is_some_and(|r| !r.coroutine.is_null())
            };
            if pending {
                self.recycle(key as Key);
            }
            key += 1;
        }
        // Main's greenlet-locals go last, as its thread-locals do.
        let locals = self.take_locals();
        if let Err(p) = panic::catch_unwind(AssertUnwindSafe(move || drop(locals))) {
            eprintln!(
                "greenlet: at thread exit, a greenlet-local value of the main greenlet \
                 panicked in its destructor: {}",
                crate::error::payload_message(p.as_ref()).unwrap_or("(non-text payload)")
            );
        }
        // SAFETY: the borrowing rule; nothing runs any more.
        unsafe { (*self.pool()).clear() };
        true
    }
}

/// "greenlet 'name' (id N)", for messages.
pub(crate) fn describe(name: Option<&str>, id: u64) -> String {
    match name {
        Some(name) => format!("greenlet '{name}' (id {id})"),
        None => format!("greenlet {id}"),
    }
}

#[cold]
fn unreachable_return() -> ! {
    // Coroutines never return: `finish` ends in a final suspend.
    std::process::abort()
}

fn mismatch<R: 'static, T: 'static>() -> SwitchError {
    SwitchError::TypeMismatch {
        expected: std::any::type_name::<R>(),
        found: std::any::type_name::<T>(),
    }
}

/// The first frame of every greenlet: take the argument, run the function,
/// hand the outcome on.
fn entry<F, A, R>(y: &Y, word: usize, f: F)
where
    F: FnOnce(A) -> R,
    A: 'static,
    R: 'static,
{
    let rt = Runtime::get();
    let me = rt.current.get();
    // SAFETY: `me` is current and live.
    unsafe {
        let r = rt.record(me);
        (*r).yielder = y;
        (*r).state = State::Active;
    }
    rt.current_yielder.set(y);
    // SAFETY: first thing after being resumed, with the word it brought;
    // `incoming` points at a `ValueType` constant or `SIGNAL`.
    let arg = unsafe {
        if (*rt.incoming.get()).id == TypeId::of::<A>() {
            Ok(decode::<A>(word))
        } else {
            rt.receive_slow::<A>(word, OnKill::Report)
        }
    };
    let outcome = match arg {
        Ok(arg) => match panic::catch_unwind(AssertUnwindSafe(move || f(arg))) {
            Ok(value) => Ok(value),
            Err(p) if p.is::<GreenletExit>() => Err(SwitchError::Killed),
            Err(p) => Err(SwitchError::Panicked(p)),
        },
        // Rows 7 and 10: an error (or a kill) reached a greenlet that never
        // ran; its function is dropped unrun and the error walks on, unless
        // the function's destructor took it (see `take_unrun_cause`): then
        // the greenlet ends as if its function had returned `()`.
        Err(e) => {
            let outer = rt.unrun_cause.replace(Some((me, e)));
            let dropped = panic::catch_unwind(AssertUnwindSafe(move || drop(f)));
            let cause = rt.unrun_cause.replace(outer);
            match (dropped, cause) {
                (Err(p), _) => Err(SwitchError::Panicked(p)),
                (Ok(()), Some((_, e))) => Err(e),
                (Ok(()), None) => cast_same::<(), R>(()).map_err(|()| SwitchError::Killed),
            }
        }
    };
    // Greenlet-locals die with the greenlet, on its own stack; a panic in
    // their destructors replaces the outcome.
    let outcome = match rt.drop_locals() {
        Ok(()) => outcome,
        Err(e) => Err(e),
    };
    rt.finish(y, outcome)
}

impl Runtime {
    /// Hands a dead greenlet's outcome to its parent (or killer), walking
    /// past dead ancestors, and never comes back.
    fn finish<R: 'static>(&self, y: &Y, outcome: Result<R, SwitchError>) -> ! {
        let me = self.current.get();
        let mut slot = MaybeUninit::<ManuallyDrop<R>>::uninit();
        let mut word = 0;
        let signal = match outcome {
            Ok(value) => {
                // SAFETY: the slot is new and is not used again here; it
                // stays on this (never resumed) stack until the receiver
                // has taken the value.
                word = unsafe { encode(slot.write(ManuallyDrop::new(value))) };
                Signal::Value(type_of::<R>())
            }
            Err(SwitchError::Panicked(p)) => Signal::Panicked(p),
            Err(SwitchError::Thrown(p)) => Signal::Thrown(p),
            Err(SwitchError::TypeMismatch { expected, found }) => {
                Signal::Mismatch { expected, found }
            }
            Err(_) => Signal::Killed,
        };
        // Who receives it: its killer while a kill is under way, else its
        // parent. Read after the hook, which may change either.
        let start = || {
            // SAFETY: `me` is live; plain reads.
            unsafe {
                let r = self.record(me);
                if (*r).killer != NONE {
                    (*r).killer
                } else {
                    (*r).parent
                }
            }
        };
        if self.tracer.is_set() {
            // The hook sees this greenlet still running (not yet dead), so
            // a kill it issues from here comes back here as usual.
            let kind = match signal {
                Signal::Panicked(_) => SwitchKind::Panic,
                _ => SwitchKind::Finish,
            };
            match self.tracer.emit(me, self.first_live(start()), kind) {
                Ok(()) => {}
                // It killed this greenlet, which is ending anyway.
                Err(p) if p.is::<GreenletExit>() => {}
                Err(p) => {
                    let what =
                        crate::error::payload_message(p.as_ref()).unwrap_or("non-text payload");
                    eprintln!("greenlet: the switch hook panicked and was removed: {what}");
                }
            }
        }
        // The hook may also have dropped this greenlet's last handle (an
        // orphan flag); none of its flags matter any more.
        self.clear_flags(me, RESTRICTING);
        // SAFETY: `me` is live; no user code runs from here on.
        unsafe { (*self.record(me)).state = State::Dead };
        // Walk again: the hook may have killed the destination.
        let dest = self.first_live(start());
        self.incoming.set(&SIGNAL);
        self.set_slow(signal, me, NONE);
        // SAFETY: `dest` is live and not dead (first_live), and not `me`
        // (which is dead now); the bookkeeping matches `jump`.
        let co = unsafe {
            let to = self.record(dest);
            self.current.set(dest);
            self.current_yielder.set((*to).yielder);
            (*to).coroutine
        };
        self.next.set(co);
        // The receiver takes the value (or drops it) and then recycles this
        // stack; nothing ever resumes it.
        y.suspend(word);
        unreachable_return()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coroutine_fits_the_reserved_bytes() {
        assert!(std::mem::size_of::<Co>() <= crate::stack::RESERVED);
        assert!(std::mem::align_of::<Co>() <= 64);
    }
}
