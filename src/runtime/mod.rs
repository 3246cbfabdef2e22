//! A thread's greenlet state and the one loop that resumes coroutines.
//!
//! # The switch path
//!
//! corosensei coroutines are asymmetric (`resume` from a parent, `suspend`
//! back to it); greenlets are symmetric. The bridge: the main greenlet is the
//! thread's own stack, and every other greenlet is a coroutine that only the
//! trampoline (`switch.rs`) resumes, on the main greenlet's stack.
//!
//! - main → child: main runs the trampoline, which resumes the child.
//! - child → main: the child suspends with a null "next"; the trampoline
//!   returns.
//! - child → child: the child suspends naming the target's coroutine; the
//!   trampoline resumes the target (two stack switches).
//!
//! The value crosses in a register (see `value.rs`); its type goes beside
//! it in `Runtime::incoming`, and the receiver consumes both first thing.
//! Everything unusual (a signal, a finished greenlet whose stack must be
//! recycled, an orphan to reap) sets `incoming` to [`SLOW_LANE`] and
//! travels in [`SlowLane`], which only the cold path reads.
//!
//! # Files
//!
//! - `records.rs`: the greenlet records, at fixed addresses, behind a safe, copy-out
//!   layer; it states the borrowing rule that makes that layer sound.
//! - `switch.rs`: switch, throw, the jump between stacks, the trampoline,
//!   and what a receiver does with what arrives.
//! - `lifecycle.rs`: creation, references, kills, a greenlet's entry and
//!   finish, and the thread's teardown.
//! - this file: the runtime's state, how a thread reaches it, and the
//!   small per-greenlet services (locals, flags, what it waits on).
//!
//! # The one borrowing rule
//!
//! The runtime's state lives in `Cell`s (and, for the records and the stack
//! pool, `UnsafeCell`s behind closures that run no user code) reached through
//! a raw thread-local pointer. No reference into it is ever held across a
//! stack switch or across a call into user code (a destructor, a closure),
//! because either may re-enter the runtime.

mod lifecycle;
mod records;
mod switch;

use std::any::Any;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use crate::error::SwitchError;
use crate::stack::{Co, StackPool};
use crate::trace::Tracer;
use crate::value::{GreenletExit, ValueType, SLOW_LANE};

pub(crate) use self::records::{Key, Records, State};
use self::records::{Record, DYING, FORCES_SLOW_PATH, NO_REFUSAL, Y};
use self::switch::SlowLane;

pub(crate) struct Runtime {
    current: Cell<Key>,
    /// The current greenlet's yielder (null while main runs, and while an
    /// unstarted greenlet has not reached its entry yet).
    current_yielder: Cell<*const Y>,
    /// How many reasons force every switch onto the slow path: records
    /// carrying a `FORCES_SLOW_PATH` flag, and a switch hook (see
    /// `force_slow_path`). The fast path checks this one counter.
    slow_path_forced: Cell<u32>,
    /// The state, as a byte, that a switch's target must be in for the
    /// fast path: `Active` while nothing forces the slow path, else
    /// [`NO_STATE`]. One compare then checks both the target and the
    /// counter above.
    fast_state: Cell<u8>,
    /// The type of the value word in flight, or `&SLOW_LANE`.
    incoming: Cell<&'static ValueType>,
    /// The coroutine the trampoline resumes next, set by the child that
    /// suspends (null: return to main).
    next: Cell<*mut Co>,
    /// What travels beside the word when `incoming` is `SLOW_LANE`.
    slow_lane: Cell<Option<SlowLane>>,
    /// A greenlet that returned a value through the fast lane (see
    /// `finish`) and whose stack, which may hold that value until its
    /// receiver takes it, is recycled by the next runtime call that needs
    /// stacks or counts them (`recycle_finished`).
    finished: Cell<Option<Key>>,
    /// The finishing greenlet whose locals were all dropped, while the
    /// switch hook sees its end: its values of the `Local`s it never used
    /// count as dropped too (made there, they would be dropped later, on
    /// another greenlet).
    locals_closed: Cell<Option<Key>>,
    records: Records,
    pool: UnsafeCell<StackPool>,
    next_id: Cell<u64>,
    tracer: Tracer,
    /// The errors ending unstarted greenlets while their functions are
    /// being dropped unrun, with each greenlet's key (see
    /// `take_unrun_cause`; `None` once taken). A list, not one slot: those
    /// destructors may switch, so the drops interleave.
    unrun_causes: RefCell<Vec<(Key, Option<SwitchError>)>>,
    /// The hub greenlet, which the runtime keeps going, how a greenlet
    /// taken for a hand-off goes back to the hub's ready queue, and what
    /// the hub forgets of a greenlet that leaves its switch by a panic the
    /// runtime raises (see `set_hub`).
    hub: Cell<Option<Key>>,
    hand_back: Cell<Option<fn(Key)>>,
    raised_in: Cell<Option<fn(Key)>>,
    /// The greenlet whose hand-off (`finish_into`) is made and which has
    /// not finished yet: until it does, every switch takes the slow path,
    /// where its own switch away gives the greenlet it chose back first.
    handing_off: Cell<Option<Key>>,
    /// The victim of the last kill that the switch hook's panic stopped
    /// before it began (see `kill_all`).
    hook_stopped_kill_of: Cell<Option<Key>>,
    /// The last greenlet whose switch was routed back to itself (its
    /// target dead, and it the first live one above) and handed the value
    /// back: set there, and cleared by a caller that must tell such an
    /// echo from a value another greenlet sent (see `Generator::step`).
    /// Whose echo it was counts: other greenlets, which run while that
    /// caller waits, may switch to themselves meanwhile.
    echoed: Cell<Option<Key>>,
    /// The thread's exit is killing its greenlets (see `teardown`).
    tearing_down: Cell<bool>,
    /// How deep collections of unreachable greenlets are nested now, and
    /// the ones queued by the deepest (see `collect`).
    collecting: Cell<u32>,
    to_collect: RefCell<Vec<(Key, u64)>>,
    /// The kills whose unwinding is under way, as (greenlet number, kill
    /// number): raised, and their payload not dropped yet (dropping it is
    /// what catching it does). While a killer panics, this tells its
    /// victim's own unwinding from the killer's, which the thread-wide
    /// `std::thread::panicking` counts alike.
    kills_in_flight: RefCell<Vec<(u64, u64)>>,
    /// The greenlets that refused a kill with no reference left, by key,
    /// with their greenlet number (a key is reused once its record goes):
    /// leaked, never collected again while they live (see
    /// `keep_refuser`). A map, so that many of them cost each collection
    /// one look-up, not a scan; only a count reaching zero asks it.
    kept_refusers: RefCell<HashMap<Key, u64>>,
}

/// A byte no `State` has: `fast_state` while the slow path is forced.
const NO_STATE: u8 = u8::MAX;

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
        // Rust's runtime removed the thread's alternate signal stack when
        // its main function returned: the teardown runs greenlet code (an
        // unstarted greenlet's function is dropped on its own stack), so an
        // overflow there needs one to be reported.
        crate::overflow::ensure_alt_stack();
        // SAFETY: the pointer came from `Box::into_raw` in `init`; this is
        // the thread's last use of it, so it is freed here, once, after
        // the teardown that needed it (the marker stops any later use).
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
        // The hub's own thread-local, if it went first, left the hub for
        // the teardown's destructors (see `hub::release_at_exit`).
        crate::hub::release_at_exit();
    }
}

impl Runtime {
    /// The calling thread's runtime, created on first use.
    #[inline(always)]
    pub(crate) fn get() -> &'static Runtime {
        match Runtime::if_running() {
            Some(rt) => rt,
            None => Runtime::init(),
        }
    }

    /// The thread's runtime if it has one and it is not torn down (never
    /// makes one).
    #[inline(always)]
    pub(crate) fn if_running() -> Option<&'static Runtime> {
        let rt = RUNTIME.with(Cell::get);
        if (rt as usize) > (TORN_DOWN as usize) {
            // SAFETY: a non-null, non-marker pointer is the live runtime of
            // this thread; it is freed only by `Owner::drop`, after which the
            // pointer is the marker.
            Some(unsafe { &*rt })
        } else {
            None
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
        let records = Records::new(Record::main());
        let rt: &'static Runtime = Box::leak(Box::new(Runtime {
            current: Cell::new(records.main()),
            current_yielder: Cell::new(ptr::null()),
            slow_path_forced: Cell::new(0),
            fast_state: Cell::new(State::Active as u8),
            incoming: Cell::new(&SLOW_LANE),
            next: Cell::new(ptr::null_mut()),
            slow_lane: Cell::new(None),
            finished: Cell::new(None),
            locals_closed: Cell::new(None),
            records,
            pool: UnsafeCell::new(StackPool::new()),
            next_id: Cell::new(1),
            tracer: Tracer::new(),
            unrun_causes: RefCell::new(Vec::new()),
            hub: Cell::new(None),
            hand_back: Cell::new(None),
            raised_in: Cell::new(None),
            handing_off: Cell::new(None),
            hook_stopped_kill_of: Cell::new(None),
            echoed: Cell::new(None),
            tearing_down: Cell::new(false),
            collecting: Cell::new(0),
            to_collect: RefCell::new(Vec::new()),
            kills_in_flight: RefCell::new(Vec::new()),
            kept_refusers: RefCell::new(HashMap::new()),
        }));
        RUNTIME.with(|c| c.set(rt));
        crate::overflow::install();
        rt
    }

    /// The records, for copy-out queries.
    #[inline(always)]
    pub(crate) fn records(&self) -> &Records {
        &self.records
    }

    /// The main greenlet's key.
    #[inline(always)]
    pub(crate) fn main_key(&self) -> Key {
        self.records.main()
    }

    #[inline(always)]
    pub(crate) fn current(&self) -> Key {
        self.current.get()
    }

    /// Whether the current greenlet's stack is unwinding (see
    /// `unwinding_here`): where the hub must not block, rather than the
    /// thread-wide `std::thread::panicking`, which also counts the panic
    /// of a suspended killer whose kill the current greenlet caught.
    pub(crate) fn current_unwinds(&self) -> bool {
        self.unwinding_here(self.current.get())
    }

    /// Whether a switch by the current greenlet would be refused at once
    /// (`Unwinding`, `InSwitchHook`), told as `leave` tells it: unlike
    /// `switch_fails_at_once`, a greenlet that caught the kill of a
    /// killer that unwinds (the thread panics, the greenlet does not) may
    /// switch, and its switch is the kill's refusal.
    pub(crate) fn switch_refused_now(&self) -> bool {
        let cur = self.current.get();
        self.unwinding_here(cur)
            || self.records.flags(cur) & (DYING | NO_REFUSAL) == DYING | NO_REFUSAL
            || self.tracer.running()
    }

    /// Whether a switch by the current greenlet would go where it asks:
    /// not refused at once, and not the refusal of a kill it caught (which
    /// goes to the killer instead).
    pub(crate) fn switch_goes_now(&self) -> bool {
        let cur = self.current.get();
        !self.switch_refused_now()
            && (self.records.flags(cur) & DYING == 0 || self.records.killer(cur).is_none())
    }

    /// The parent of a live greenlet (`None` for main).
    #[inline(always)]
    pub(crate) fn parent_of(&self, key: Key) -> Option<Key> {
        self.records.parent(key)
    }

    pub(crate) fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// Forces every switch onto the slow path (or stops doing so) for a
    /// reason outside the records, such as a switch hook.
    pub(crate) fn force_slow_path(&self, on: bool) {
        let n = self.slow_path_forced.get();
        let n = if on { n + 1 } else { n - 1 };
        self.slow_path_forced.set(n);
        self.fast_state.set(if n == 0 {
            State::Active as u8
        } else {
            NO_STATE
        });
    }

    /// Runs `f` on the thread's stack pool.
    #[inline(always)]
    pub(crate) fn with_pool<T>(&self, f: impl FnOnce(&mut StackPool) -> T) -> T {
        // SAFETY: the borrowing rule: no other reference to the pool exists
        // (every use goes through here), and the pool's methods map, unmap
        // and list stacks without running user code or re-entering here.
        f(unsafe { &mut *self.pool.get() })
    }

    /// Gives `stack` back to the thread's pool: `with_pool(|pool|
    /// pool.give(stack))` without the closure, which the compiler kept out
    /// of line on the end of every greenlet (create -> finish took 415
    /// instructions instead of 391).
    #[inline(always)]
    pub(crate) fn give_stack(&self, stack: crate::stack::PooledStack) {
        // SAFETY: as in `with_pool`: the only reference to the pool for
        // the length of `give`, which runs no user code.
        unsafe { &mut *self.pool.get() }.give(stack);
    }

    /// (pooled, in use) stack counts.
    pub(crate) fn stack_counts(&self) -> (usize, usize) {
        self.recycle_finished();
        self.with_pool(|pool| (pool.pooled(), pool.in_use()))
    }

    // ----- per-greenlet services -----

    /// The current greenlet's value in greenlet-local `slot`, if set.
    pub(crate) fn local(&self, slot: usize) -> Option<*const ()> {
        self.records.local(self.current.get(), slot)
    }

    /// Stores the current greenlet's value for `slot` unless one is there
    /// already (a dropped one is replaced: callers check `local_dropped`
    /// first, and only a revivable `Local` stores again); returns the
    /// stored value.
    pub(crate) fn set_local(&self, slot: usize, value: Box<dyn Any>) -> *const () {
        let (stored, spare) = self.records.set_local(self.current.get(), slot, value);
        drop(spare);
        stored
    }

    /// Whether a switch away from `me` (the current greenlet) may go
    /// somewhere other than its target: `me` is being killed (a switch
    /// refuses the kill and goes to the killer, or fails once it may not
    /// refuse), or a switch hook is set (it may panic instead of letting
    /// the switch happen). The hub then goes through its own greenlet
    /// instead of handing off to a ready one, which would be left off
    /// every queue. So it does while `me` has made its hand-off and not
    /// finished (see `finish_into`): the greenlet it took is in no ready
    /// queue until its switch away gives it back, and a yield that chose
    /// its target first would find none but `me`. One load while nothing
    /// forces the slow path.
    #[inline(always)]
    pub(crate) fn may_divert(&self, me: Key) -> bool {
        self.slow_path_forced.get() != 0
            && (self.records.flags(me) & DYING != 0
                || self.tracer.is_set()
                || self.handing_off.get() == Some(me))
    }

    /// Makes `key` the hub greenlet, which has nobody to pass a panic to
    /// and whose loop must go on: its switches go on when the switch hook
    /// panics on them (the panic reported on stderr rather than unwinding
    /// it), and an error that reaches it before its loop first ran (a
    /// panic or throw routed up to it, see `never_ran`) is reported and it
    /// starts all the same.
    ///
    /// `hand_back` takes back (with its reference) a greenlet that the hub
    /// chose to receive the end of a finishing greenlet (`finish_into`)
    /// when that end does not go there after all: the finisher is killed
    /// first, or ends with an error (see `hand_back`).
    ///
    /// `raised_in` is told of a greenlet in which the runtime is about to
    /// raise a panic that arrived with no error to carry it (the
    /// destructor's panic of a wrong-typed value it received, see
    /// `late_panic`): if the greenlet was in a blocking call or a yield,
    /// the call unwinds without its usual way back, so the hub forgets
    /// what it keeps of the call (a ready-queue entry, main's blocked
    /// mark), as for a panic that came as an error.
    pub(crate) fn set_hub(&self, key: Key, hand_back: fn(Key), raised_in: fn(Key)) {
        self.hub.set(Some(key));
        self.hand_back.set(Some(hand_back));
        self.raised_in.set(Some(raised_in));
    }

    /// Gives the greenlet that `key`'s hand-off named, if any, back to the
    /// hub: `key` is being killed, or ends with an error, which go to its
    /// killer or parent as usual rather than into an unrelated greenlet
    /// (which would otherwise never run: it is in no ready queue).
    #[cold]
    pub(super) fn hand_back(&self, key: Key) {
        self.hand_off_over(key);
        if let Some(next) = self.records.take_hand_off(key) {
            match self.hand_back.get() {
                Some(give_back) => give_back(next),
                None => self.release_ref(next),
            }
        }
    }

    /// `key`'s hand-off, if one is pending, no longer needs its switches
    /// watched: it finishes, or gives its greenlet back.
    #[inline]
    pub(super) fn hand_off_over(&self, key: Key) {
        if self.handing_off.get() == Some(key) {
            self.handing_off.set(None);
            self.force_slow_path(false);
        }
    }

    /// Whether a switch made now fails at once, without leaving: the
    /// current greenlet unwinds, or a switch hook runs. Asked on the error
    /// path of the hub's hand-offs: the same error also comes when the
    /// greenlet, having left, is switched to again with an error (a
    /// throw), and only an error of the first kind leaves the ready
    /// greenlet it took unrun. Neither condition can hold when a greenlet
    /// is switched to again (a greenlet that unwinds, or a hook, cannot
    /// switch), so the two are told apart.
    #[cold]
    pub(crate) fn switch_fails_at_once(&self) -> bool {
        std::thread::panicking() || self.tracer.running()
    }

    /// Forgets any earlier echo (see `echoed`), before a switch whose
    /// caller asks [`take_echo`](Runtime::take_echo) afterwards.
    #[inline(always)]
    pub(crate) fn clear_echo(&self) {
        self.echoed.set(None);
    }

    /// Whether the current greenlet's switch since
    /// [`clear_echo`](Runtime::clear_echo) was routed back to it with its
    /// own value.
    pub(crate) fn take_echo(&self) -> bool {
        self.echoed.take() == Some(self.current.get())
    }

    /// Whether the current greenlet's value in `slot` was dropped.
    pub(crate) fn local_dropped(&self, slot: usize) -> bool {
        let cur = self.current.get();
        self.locals_closed.get() == Some(cur) || self.records.local_dropped(cur, slot)
    }

    /// Drops the current greenlet's local values, one at a time, each while
    /// the others are still readable, until none is left (a destructor may
    /// create values never created before, which go too). A panic in one
    /// of their destructors is returned as `Panicked` (the first one; the
    /// other values are still dropped); a kill that arrives while one of
    /// them is suspended in a switch is returned as `Killed` (it must not
    /// reach the killer as a panic).
    #[inline]
    pub(crate) fn drop_locals(&self) -> Result<(), SwitchError> {
        if !self.records.has_locals(self.current.get()) {
            return Ok(());
        }
        self.drop_locals_slow()
    }

    #[cold]
    fn drop_locals_slow(&self) -> Result<(), SwitchError> {
        let me = self.current.get();
        let mut outcome = Ok(());
        while let Some(value) = self.records.take_one_local(me) {
            // Also after a kill that came while an earlier value's
            // destructor was suspended in a switch, and was caught there.
            self.finishing_its_kill(me);
            match panic::catch_unwind(AssertUnwindSafe(move || drop(value))) {
                Ok(()) => {}
                Err(p) if p.is::<GreenletExit>() => {
                    // A kill came while that destructor was suspended. The
                    // others still go, but none may refuse the kill by
                    // switching away: their switches fail (`Unwinding`), as
                    // they would have during the kill's unwinding.
                    self.set_no_refusal(me);
                    outcome = Err(SwitchError::Killed);
                }
                Err(p) if outcome.is_ok() => outcome = Err(SwitchError::Panicked(p)),
                // A later panic's payload goes; the first one is reported.
                Err(p) => crate::error::drop_quietly(p),
            }
        }
        outcome
    }

    /// While the function of an unstarted greenlet is dropped unrun (an
    /// error or a kill reached it first), its destructor may take the
    /// error here, from that greenlet's own stack. The greenlet then ends
    /// as if its function had returned `()` instead of passing the error
    /// on. A hub spawn's closure does this so the error reaches its
    /// `JoinHandle`, not the hub.
    pub(crate) fn take_unrun_cause(&self) -> Option<SwitchError> {
        let me = self.current.get();
        let mut causes = self.unrun_causes.borrow_mut();
        causes.iter_mut().find(|(k, _)| *k == me)?.1.take()
    }

    /// Whether the thread's exit is killing its greenlets: a function
    /// dropped unrun now was refused by the exit, not killed by hand.
    pub(crate) fn is_tearing_down(&self) -> bool {
        self.tearing_down.get()
    }

    /// Whether the current greenlet is dropping its function unrun (an
    /// error or a kill reached it before its first switch in): what a
    /// destructor of that function's captures can ask to tell that from a
    /// drop elsewhere (a queue of work dropped with its thread).
    pub(crate) fn drops_its_unrun_function(&self) -> bool {
        let me = self.current.get();
        self.unrun_causes
            .try_borrow()
            .is_ok_and(|causes| causes.iter().any(|(k, _)| *k == me))
    }

    /// The function of `me` has ended (returned, unwound, or never ran),
    /// and what is left of it (its greenlet-locals, or its unrun function)
    /// is dropped next. If a kill is under way, those destructors are part
    /// of it: a switch from them fails with `SwitchError::Unwinding`, as
    /// during the kill's unwinding, rather than being taken for a refusal
    /// (which would leave `me` suspended in a destructor, its killer told
    /// it caught the kill).
    ///
    /// A greenlet that killed itself and caught that, then returned, is not
    /// being killed: it is simply no longer dying.
    pub(crate) fn finishing_its_kill(&self, me: Key) {
        if self.records.flags(me) & DYING != 0 {
            if self.records.killer(me).is_some() {
                self.set_no_refusal(me);
            } else {
                self.clear_flags(me, DYING);
            }
        }
    }

    /// Makes kills of `key` impossible to refuse (see `NO_REFUSAL`).
    pub(crate) fn set_no_refusal(&self, key: Key) {
        self.set_flags(key, NO_REFUSAL);
    }

    /// If `addr` lies in the guard page of a greenlet's stack, what the
    /// overflow message needs. The current greenlet's is looked at first;
    /// then every greenlet's, because a switch names its target current
    /// before the leaving greenlet's last frames (corosensei's suspend)
    /// are pushed on its own stack, where an overflow can land too.
    /// Called from a signal handler: it only reads.
    pub(crate) fn overflow_at(addr: usize) -> Option<crate::overflow::Overflow> {
        let rt = RUNTIME.try_with(Cell::get).ok()?;
        if (rt as usize) <= (TORN_DOWN as usize) {
            return None;
        }
        // SAFETY: a live runtime (see `get`), on the thread the fault
        // interrupted; only `Cell` reads and a copy-out follow.
        let rt = unsafe { &*rt };
        let page = crate::stack::page_size();
        let info = rt
            .records
            .guard_info(rt.current.get())
            .filter(|info| addr.wrapping_sub(info.guard_page) < page)
            .or_else(|| rt.records.guard_info_holding(addr, page))?;
        Some(crate::overflow::Overflow {
            name: info.name,
            id: info.id,
            stack_size: info.stack_size,
        })
    }

    // ----- flags -----

    fn set_flags(&self, key: Key, flags: u8) {
        let (before, after) = self.records.change_flags(key, flags, 0);
        self.count_forcing(before, after);
    }

    fn clear_flags(&self, key: Key, flags: u8) {
        let (before, after) = self.records.change_flags(key, 0, flags);
        self.count_forcing(before, after);
    }

    /// Keeps `slow_path_forced` counting the records with a
    /// `FORCES_SLOW_PATH` flag.
    fn count_forcing(&self, before: u8, after: u8) {
        match (
            before & FORCES_SLOW_PATH != 0,
            after & FORCES_SLOW_PATH != 0,
        ) {
            (false, true) => self.force_slow_path(true),
            (true, false) => self.force_slow_path(false),
            _ => {}
        }
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

    /// A fault in the guard page of a greenlet that is not current (as in
    /// a switch's last frames, after `jump` named the target current) is
    /// still that greenlet's overflow. (Only the current greenlet's guard
    /// page was looked at: such an overflow died of a bare SIGSEGV.)
    #[test]
    fn an_overflow_is_found_in_the_guard_page_of_a_greenlet_that_is_not_current() {
        let g = crate::Greenlet::builder()
            .name("switchy")
            .build(|()| crate::Greenlet::main().switch::<(), ()>(()).unwrap())
            .unwrap();
        g.switch::<(), ()>(()).unwrap(); // started, suspended: main is current
        let rt = Runtime::get();
        let guard = rt.records.guard_info(g.key()).unwrap().guard_page;
        let page = crate::stack::page_size();
        for addr in [guard, guard + page / 2, guard + page - 1] {
            let found = Runtime::overflow_at(addr).expect("the greenlet's guard page");
            assert_eq!(found.id, g.id());
            assert_eq!(found.name.map(|(_, len)| len), Some("switchy".len()));
        }
        assert!(Runtime::overflow_at(guard + page).is_none(), "its stack");
        assert!(Runtime::overflow_at(guard - 1).is_none(), "below it");
        assert!(Runtime::overflow_at(0).is_none());
        g.switch::<(), ()>(()).unwrap();
    }

    /// A finished greenlet whose handle is kept keeps its record, and the
    /// record its old guard page: the stack's new owner is named, and a
    /// stack back in the pool is nobody's (a fault there is no overflow).
    #[test]
    fn a_stack_reused_or_pooled_is_not_a_finished_greenlets() {
        let finished = crate::Greenlet::builder()
            .name("finished")
            .build(|()| ())
            .unwrap();
        finished.switch::<(), ()>(()).unwrap();
        let owner = crate::Greenlet::builder()
            .name("owner")
            .build(|()| crate::Greenlet::main().switch::<(), ()>(()).unwrap())
            .unwrap();
        owner.switch::<(), ()>(()).unwrap(); // suspended on the reused stack
        let rt = Runtime::get();
        let guard = rt.records.guard_info(owner.key()).unwrap().guard_page;
        let page = crate::stack::page_size();
        assert_eq!(
            rt.records.guard_info(finished.key()).map(|i| i.guard_page),
            Some(guard),
            "the same stack, LIFO"
        );
        assert_eq!(Runtime::overflow_at(guard).map(|o| o.id), Some(owner.id()));
        owner.switch::<(), ()>(()).unwrap(); // finishes
        rt.recycle_finished(); // its stack goes back to the pool
        assert!(Runtime::overflow_at(guard).is_none());
        assert!(rt.records.guard_info_holding(guard, page).is_none());
    }
}
