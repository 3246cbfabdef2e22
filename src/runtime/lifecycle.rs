//! A greenlet's life: creation, references, its entry and finish, kills
//! (and their refusal), and the thread's teardown.

use std::any::Any;
use std::io;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;

use super::records::{Record, DYING, ORPHAN, UNWINDING, Y};
use super::switch::{unreachable_return, OnKill};
use super::{Key, Runtime, State};
use crate::error::SwitchError;
use crate::stack::Co;
use crate::trace::SwitchKind;
use crate::value::{
    cast_same, decode, encode, fits, is_type, type_of, GreenletExit, Signal, Word, EMPTY, SLOW_LANE,
};

/// The largest function (closure and captures) moved onto a new stack as
/// it is: corosensei refuses more than 1,024 bytes there ("type is too big
/// to transfer"), and the bytes it moves count against the stack too.
const MAX_CLOSURE_ON_STACK: usize = 512;

/// How deep the collections of unreachable greenlets nest before the
/// next ones are queued (see `Runtime::collect`).
const MAX_NESTED_COLLECTIONS: u32 = 8;

/// How many times a thread's exit goes round its steps (kill what is
/// alive, drop the hook, drop main's locals) while each round's
/// destructors leave more to do.
const TEARDOWN_ROUNDS: usize = 16;

/// The fewest kills a `kill_all` or a thread's teardown may make (see
/// `Runtime::kill_budget`).
const MIN_KILL_BUDGET: usize = 4096;

/// A kill the victim refused: it caught the unwinding and switched away,
/// so it is suspended, alive, at that switch.
#[derive(Debug)]
pub(crate) struct Refused;

/// What [`Runtime::kill_past_the_hook`] did: the kill's outcome (`None`
/// if hooks kept stopping it), and the first hook's panic, if one stopped
/// it.
pub(crate) type PastTheHook = (Option<Result<(), Refused>>, Option<Box<dyn Any + Send>>);

impl Runtime {
    // ----- creation and reference counting -----

    /// Creates an unstarted greenlet with one reference (the caller's
    /// handle); `OWNS`: a hub spawn, whose function keeps its own outcome
    /// (see `OWNS_OUTCOME`; a constant, so a plain greenlet's creation
    /// pays nothing for it).
    ///
    /// The function is moved onto the new stack, where corosensei takes at
    /// most `MAX_CLOSURE_ON_STACK` bytes: a larger one is boxed, and the
    /// box moved there instead (a constant choice: small closures, nearly
    /// all, pay nothing for it).
    #[inline(always)]
    pub(crate) fn create<F, A, R, const OWNS: bool>(
        &self,
        f: F,
        name: Option<Rc<str>>,
        stack_size: Option<usize>,
        parent: Key,
    ) -> io::Result<Key>
    where
        F: FnOnce(A) -> R + 'static,
        A: 'static,
        R: 'static,
    {
        if std::mem::size_of::<F>() > MAX_CLOSURE_ON_STACK {
            // Boxed as a `dyn FnOnce`, so that every large function with
            // the same argument and result types shares one compiled
            // creation and entry instead of adding its own.
            let f: Box<dyn FnOnce(A) -> R> = Box::new(f);
            self.create_with::<Box<dyn FnOnce(A) -> R>, A, R, OWNS>(f, name, stack_size, parent)
        } else {
            self.create_with::<F, A, R, OWNS>(f, name, stack_size, parent)
        }
    }

    /// [`create`](Runtime::create), for a function that fits on the stack.
    #[inline(always)]
    fn create_with<F, A, R, const OWNS: bool>(
        &self,
        f: F,
        name: Option<Rc<str>>,
        stack_size: Option<usize>,
        parent: Key,
    ) -> io::Result<Key>
    where
        F: FnOnce(A) -> R + 'static,
        A: 'static,
        R: 'static,
    {
        self.recycle_finished();
        let (stack, stack_size) = self.with_pool(|pool| {
            let size = stack_size.unwrap_or(pool.stack_size());
            // What the overflow message names: the size asked for, or the
            // minimum if that is more (the stack has at least that much).
            let named = size.max(crate::MIN_STACK_SIZE);
            pool.take(size).map(|stack| (stack, named))
        })?;
        let slot = stack.coroutine_slot();
        let guard_page = stack.guard_page();
        let co = Co::with_stack(stack, move |y: &Y, word: Word| entry::<F, A, R>(y, word, f));
        // SAFETY: `slot` is the reserved, suitably aligned top of the stack
        // that `co` owns; it is not part of the usable stack, so nothing
        // else writes there while the coroutine lives.
        unsafe { ptr::write(slot, co) };
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let key = self.records.reserve();
        let record = Record::unstarted(
            Some(parent),
            slot,
            type_of::<A>(),
            id,
            name,
            guard_page,
            stack_size,
        )
        .owning_outcome(OWNS);
        self.records.fill(key, record);
        self.records.add_ref(parent);
        Ok(key)
    }

    #[inline]
    pub(crate) fn add_ref(&self, key: Key) {
        self.records.add_ref(key)
    }

    /// [`add_ref`](Runtime::add_ref) for a handle given to the program
    /// (see `Records::add_handle_ref`).
    #[inline]
    pub(crate) fn add_handle_ref(&self, key: Key) {
        self.records.add_handle_ref(key)
    }

    /// Drops one reference; an unreachable greenlet is killed or freed.
    #[inline]
    pub(crate) fn release_ref(&self, key: Key) {
        if self.records.drop_ref(key) == 0 {
            if self.finished.get() == Some(key) {
                // The common last drop, a joined greenlet's handle: it has
                // just finished through the fast lane, and its receiver
                // has its value, so it is recycled (and freed) now, as
                // `unreachable` would, without that cold call's checks.
                debug_assert!(
                    matches!(self.records.liveness(key), (State::Dead, true, _)),
                    "greenlet: internal error: the fast lane's finished greenlet is dead \
                     and holds its stack until recycled"
                );
                self.recycle_finished();
            } else {
                self.unreachable(key);
            }
        }
    }

    /// Drops one reference without reaping an unreachable greenlet.
    fn forget_ref(&self, key: Key) {
        self.records.drop_ref(key);
    }

    /// Holds `key` for a frame of the runtime that reads its record while
    /// user code runs (a switch hook, the destructors of a kill), which may
    /// drop its last reference: the record must not be freed, nor its key
    /// reused, under that frame.
    pub(super) fn hold(&self, key: Key) -> Hold<'_> {
        self.add_ref(key);
        Hold { rt: self, key }
    }

    /// Keeps `key`'s record (not the greenlet) alive for a
    /// `CurrentGreenlet`.
    #[inline]
    pub(crate) fn pin(&self, key: Key) {
        self.records.pin(key)
    }

    /// Undoes a `pin`; frees the record if it was all that kept it.
    #[inline]
    pub(crate) fn unpin(&self, key: Key) {
        if self.records.unpin(key) {
            self.free(key);
        }
    }

    /// Nobody refers to `key` any more.
    #[cold]
    fn unreachable(&self, key: Key) {
        if self.is_kept_refuser(key) {
            // Leaked for good: it refused its collection already.
            return;
        }
        if key == self.current() {
            // Running: reaped when it switches away, freed if it finishes.
            self.set_flags(key, ORPHAN);
            return;
        }
        let (state, holds_stack, pinned) = self.records.liveness(key);
        match state {
            // The fast lane's finished greenlet: its receiver has its
            // value, so it is recycled (and freed) now, as if that had
            // happened on receipt.
            State::Dead if holds_stack && self.finished.get() == Some(key) => {
                self.recycle_finished()
            }
            // A dead greenlet whose stack is still waiting for its receiver
            // is freed by `recycle`; a pinned one by the last `unpin`.
            State::Dead if holds_stack || pinned => {}
            State::Dead => self.free(key),
            // Collected: killed from the dropper. The kill frees it.
            State::Unstarted | State::Active => self.collect(key),
        }
    }

    /// Kills `key`, live and unreachable, now, unless collections are
    /// already nested `MAX_NESTED_COLLECTIONS` deep (a kill's end frees the
    /// victim's parent, which may be unreachable in turn, and so on up a
    /// chain of any length; each level nests on the dropper's stack): then
    /// it is queued, and the outermost collection kills it after its own
    /// victim, in a loop, also if that victim's kill unwinds (its panic,
    /// or a kill of the collector). Python's greenlet defers deep
    /// deallocations the same way (its trashcan).
    fn collect(&self, key: Key) {
        let depth = self.collecting.get();
        if depth >= MAX_NESTED_COLLECTIONS {
            let id = self.records.id(key);
            self.to_collect.borrow_mut().push((key, id));
            return;
        }
        /// Ends a nesting level on every way out; the outermost kills what
        /// deeper ones queued.
        struct Nested<'a> {
            rt: &'a Runtime,
            outermost: bool,
            /// Its own kill returned: this is the normal way out, not an
            /// unwinding, so a panic may be raised from here.
            returned: bool,
        }
        impl Drop for Nested<'_> {
            fn drop(&mut self) {
                // Raising from a destructor that runs during an unwinding
                // (a handle dropped then) would abort the process.
                let raise = if self.outermost {
                    self.rt.collect_queued(
                        self.returned && !self.rt.unwinding_here(self.rt.current.get()),
                    )
                } else {
                    None
                };
                self.rt.collecting.set(self.rt.collecting.get() - 1);
                if let Some(p) = raise {
                    panic::resume_unwind(p);
                }
            }
        }
        self.collecting.set(depth + 1);
        let mut nested = Nested {
            rt: self,
            outermost: depth == 0,
            returned: false,
        };
        self.kill_collected(key);
        nested.returned = true;
    }

    /// Kills what deeper collections queued, each only if it is still the
    /// same greenlet, alive and unreachable (something may have taken a
    /// handle to it meanwhile, or let it finish). Runs in a destructor:
    /// when that runs on the normal way out (`may_raise`), the first panic
    /// out of those kills (a victim's, or, before it, a kill of the
    /// collector itself) is returned, to be raised once all are done, as a
    /// collection that had not been queued would have raised it; while
    /// unwinding, the victims' panics are reported instead (and a kill of
    /// the collector, which would only unwind it again, dropped).
    #[cold]
    fn collect_queued(&self, may_raise: bool) -> Option<Box<dyn Any + Send>> {
        let unwinding = !may_raise;
        let mut first = None;
        loop {
            let next = self.to_collect.borrow_mut().pop();
            let Some((key, id)) = next else { break };
            if !(self.records.is_live_with_id(key, id)
                && self.records.refs(key) == 0
                && self.records.state(key) != State::Dead
                && !self.is_kept_refuser(key))
            {
                continue;
            }
            let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| self.kill_collected(key))) else {
                continue;
            };
            if !unwinding && first.is_none() {
                first = Some(p);
                continue;
            }
            if !p.is::<GreenletExit>() {
                report!(
                    "greenlet: a panic as greenlet {id}, whose last handle was dropped, was \
                     killed: {}",
                    crate::error::payload_message(p.as_ref()).unwrap_or("(non-text payload)")
                );
            }
            // Its destructor may switch, and the collector be killed
            // meanwhile: that kill goes on (raised after the others), unless
            // the collector is unwinding already.
            let dropped = panic::catch_unwind(AssertUnwindSafe(move || drop(p)));
            if let Err(again) = dropped {
                if again.is::<GreenletExit>() && !unwinding {
                    // The collector's own kill comes first: the victim's
                    // panic kept until now is reported and goes.
                    if let Some(kept) = first.replace(again) {
                        report!(
                            "greenlet: a panic as a greenlet whose last handle was dropped \
                             was killed: {}",
                            crate::error::payload_message(kept.as_ref())
                                .unwrap_or("(non-text payload)")
                        );
                        crate::error::drop_quietly(kept);
                    }
                } else {
                    crate::error::drop_quietly(again);
                }
            }
        }
        first
    }

    /// Kills `key`, which nobody refers to, reporting a refusal.
    fn kill_collected(&self, key: Key) {
        if self.kill(key).is_err() {
            self.report_refused(key, "its last handle was dropped");
        }
    }

    /// A greenlet that refused a kill (of its collection, or by hand) with
    /// no reference left to it is leaked, as Python's greenlet leaks one that
    /// refuses to die unresurrected: listed, it is never collected again
    /// while it lives, so no temporary handle, hold or hook event made
    /// later collects it anew. Once it dies (it is switched to and returns,
    /// or is killed by hand) its record goes as any other. One that is
    /// referred to after its refusal (a handle it took to itself, a child's
    /// parent link) is collected again when the last of those goes, as in
    /// Python.
    fn keep_refuser(&self, key: Key) {
        if self.records.refs(key) == 0 {
            let id = self.records.id(key);
            self.kept_refusers.borrow_mut().insert(key, id);
        }
    }

    /// Whether `key`, alive, is a leaked refuser (see `keep_refuser`).
    /// Asked only when a greenlet's count reaches zero; an entry left by a
    /// refuser that has died since goes here.
    #[cold]
    pub(super) fn is_kept_refuser(&self, key: Key) -> bool {
        let mut kept = self.kept_refusers.borrow_mut();
        if kept.is_empty() {
            return false;
        }
        let Some(&id) = kept.get(&key) else {
            return false;
        };
        if self.records.is_live_with_id(key, id) && self.records.state(key) != State::Dead {
            return true;
        }
        kept.remove(&key);
        false
    }

    /// Removes a dead, recycled, unreferenced record, and then each
    /// ancestor that this leaves dead, recycled and unreferenced. A loop,
    /// not a recursion: a chain of finished greenlets each parented to the
    /// next (the hub's hand-off makes them) can be any length.
    fn free(&self, key: Key) {
        let mut key = key;
        loop {
            let Some(parent) = self.records.remove(key) else {
                return;
            };
            let Some((state, holds_stack, pinned)) = self.records.drop_last_ref(parent) else {
                return;
            };
            if state == State::Dead && !holds_stack && !pinned && parent != self.current() {
                key = parent; // freed by the next turn, without recursing
            } else {
                return self.unreachable(parent);
            }
        }
    }

    /// Takes the coroutine out of the stack top it lives at.
    fn take_coroutine_at(&self, co: *mut Co) -> Co {
        // SAFETY: `co` was a record's coroutine pointer, which the caller
        // has just taken out of the record (or never put into one), so the
        // coroutine is moved out exactly once; it sits, initialised, at
        // the top of its stack. It is suspended in its final
        // `suspend` in `finish`, where nothing on its stack needs dropping
        // (the function, its argument and its result have been consumed),
        // so resetting it without unwinding leaks nothing.
        unsafe {
            let mut co = ptr::read(co);
            co.force_reset();
            co
        }
    }

    /// Recycles the stack of the greenlet that last finished through the
    /// fast lane, if that is still to do. Its receiver has taken its value:
    /// a receiver takes what arrives first thing, before it can call here.
    #[inline]
    pub(crate) fn recycle_finished(&self) {
        if let Some(key) = self.finished.take() {
            self.recycle_out_of_line(key);
        }
    }

    /// Returns a finished greenlet's stack to the pool, once its receiver
    /// has taken the value that lived on it. A greenlet waiting in the fast
    /// lane's slot leaves it, so nothing recycles (and frees) it twice.
    #[inline]
    pub(super) fn recycle(&self, key: Key) {
        if self.finished.get() == Some(key) {
            self.finished.set(None);
        }
        self.recycle_out_of_line(key);
    }

    /// [`recycle`](Runtime::recycle) once `key` is off the fast lane's slot.
    #[inline(never)]
    fn recycle_out_of_line(&self, key: Key) {
        self.recycle_inline(key);
    }

    /// `recycle`, inlined into `finish`: a finishing greenlet recycles its
    /// predecessor on its own stack, below the frames it had used, and
    /// every call level there writes lines that a chain of thousands of
    /// greenlets has long evicted (a 30,000-link chain's later runs: 19.4
    /// -> 17.7 misses to memory a link).
    #[inline(always)]
    fn recycle_inline(&self, key: Key) {
        let (co, receiver, unkept) = self.records.retire(key);
        if !co.is_null() {
            let stack = self.take_coroutine_at(co).into_stack();
            self.give_stack(stack);
        }
        if unkept {
            self.free(key);
        }
        if let Some(receiver) = receiver {
            self.release_ref(receiver);
        }
    }

    // ----- kills -----

    /// Kills `victim`: unwinds its stack so its destructors run, then
    /// returns here. See `Greenlet::kill` for the edge cases.
    ///
    /// Returns `Err(Refused)` when the victim caught the unwinding and
    /// switched away: it is then alive, suspended at that switch.
    pub(crate) fn kill(&self, victim: Key) -> Result<(), Refused> {
        if victim == self.main_key() {
            return Ok(());
        }
        if self.left_at_exit(victim) {
            // Its frames may borrow thread-locals already destroyed: it is
            // not resumed, not even to unwind (see `teardown`).
            self.keep_refuser(victim);
            return Ok(());
        }
        // The victim's destructors run on its stack; an overflow there is
        // reported only from an alternate signal stack, which Rust's
        // runtime removes as the thread exits, before the thread-locals'
        // destructors run (one of which may be killing this victim).
        crate::overflow::ensure_alt_stack();
        // Hold the victim for the whole kill: the hook's event handles and
        // the destructors that run may drop its last reference.
        let hold = self.hold(victim);
        let outcome = self.kill_held(victim);
        if outcome.is_err() {
            // Refused: the hold goes without reaping (that would only kill
            // it again); the caller reports the refusal. With no reference
            // left (a collection, or a victim that dropped its own last
            // handle while it refused), it is leaked.
            hold.forget();
            self.keep_refuser(victim);
        }
        outcome
    }

    fn kill_held(&self, victim: Key) -> Result<(), Refused> {
        let cur = self.current.get();
        if victim == cur {
            // Unwinding already, nothing; otherwise it unwinds, also after
            // catching the unwinding of a kill (it is running, so it is
            // not waiting for one).
            if self.unwinding_here(cur) {
                return Ok(());
            }
            crate::unwind::require_unwinding("a kill");
            self.set_flags(cur, DYING);
            self.unwind_now();
        }
        let state = self.records.state(victim);
        if state == State::Dead || self.records.flags(victim) & (DYING | UNWINDING) != 0 {
            return Ok(());
        }
        if state == State::Active {
            crate::unwind::require_unwinding("a kill");
        }
        // Asked before the hook runs: a hook may kill the killer itself
        // (a watchdog), and that kill's unwinding must go on.
        let killer_unwinds = self.unwinding_here(cur);
        if let Err(p) = self.tracer.emit(cur, victim, SwitchKind::Kill) {
            if killer_unwinds && !p.is::<GreenletExit>() {
                // Raised here, in a destructor during an unwinding (a last
                // handle dropped then), it would abort the process: it is
                // reported, and the kill goes on without the hook (removed).
                let what = crate::error::payload_message(p.as_ref()).unwrap_or("non-text payload");
                report!(
                    "greenlet: the switch hook panicked on a kill made while unwinding, \
                     and was removed: {what}"
                );
                crate::error::drop_quietly(p);
            } else {
                // The hook's own panic, raised instead of the kill (told
                // apart from the victim's by `kill_all`).
                self.hook_stopped_kill_of.set(Some(victim));
                self.raise_hook_panic(p);
            }
        }
        let to = self.records.target(victim);
        if to.state == State::Dead {
            return Ok(()); // the hook killed it
        }
        self.set_flags(victim, DYING);
        // A finishing victim's end goes to its killer, not where the hub
        // chose to hand off (a greenlet-local's destructor blocked after
        // the hand-off was made, say).
        self.hand_back(victim);
        // A link this kill replaces (a thrower's, waiting for the end of
        // the unstarted spawn it threw into: that end now comes here) lets
        // its greenlet go once the kill is over, whatever its outcome:
        // nothing else will send that greenlet anything.
        let _replaced = self
            .records
            .replace_killer(victim, Some(cur))
            .map(|key| Hold { rt: self, key });
        self.add_ref(cur);
        let unwinding = std::thread::panicking();
        if unwinding {
            self.set_flags(cur, UNWINDING);
        }
        // Whether this greenlet's own stack unwinds (the panic under way may
        // be its killer's, on another stack, when it caught a kill): then the
        // victim's panic cannot be raised here.
        let unwinding_here = unwinding && self.unwinding_here(cur);
        self.incoming.set(&SLOW_LANE);
        self.set_slow_lane(Signal::UnwindNow, None, None);
        // SAFETY: `to` is the victim's record, read after the hook ran: not
        // dead, so active or unstarted; the victim is not current; the
        // slow lane is filled and announced. What comes back is read first
        // thing (a refusal, or else through `receive_slow`).
        let back = unsafe { self.jump(victim, to, EMPTY) };
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
        // function caught the kill and carried on; or, if it caught the
        // kill and killed this greenlet in turn, this greenlet's own kill,
        // which unwinds it out of here. The victim must not then refuse
        // into this frame, gone: it is let go (see `Abandon`).
        let abandon = Abandon {
            rt: self,
            victim,
            killer: cur,
        };
        // SAFETY: the word `jump` returned, received once, and first thing
        // but for `take_refusal`, which only looked at the slow lane.
        let outcome = unsafe { self.receive_slow::<()>(back, OnKill::Unwind) };
        std::mem::forget(abandon);
        // Dead: no kill of it is in flight any more (one whose payload it
        // kept, or sent away, is left listed otherwise).
        self.forget_kills_of(victim);
        if let Err(SwitchError::Panicked(p)) = outcome {
            if unwinding_here {
                // Raised here, in a destructor that runs while this
                // greenlet unwinds (a handle dropped then), it would abort
                // the process: it is reported instead.
                self.report_victims_panic(victim, p);
            } else {
                panic::resume_unwind(p);
            }
        }
        Ok(())
    }

    /// Reports on stderr the panic with which `victim` answered a kill
    /// made while the killer unwinds, and drops it.
    #[cold]
    fn report_victims_panic(&self, victim: Key, p: Box<dyn Any + Send>) {
        report!(
            "greenlet: {}, killed while its killer unwound a panic, panicked: {}",
            describe(
                self.records.name(victim).as_deref(),
                self.records.id(victim)
            ),
            crate::error::payload_message(p.as_ref()).unwrap_or("(non-text payload)")
        );
        crate::error::drop_quietly(p);
    }

    /// A victim let go by its killer: no longer dying, its killer link (and
    /// the reference that link held) gone. It caught the kill and lives
    /// on, as after a refusal that nobody hears of.
    #[cold]
    #[inline(never)]
    fn abandon_victim(&self, victim: Key, killer: Key) {
        if self.records.killer(victim) == Some(killer) {
            self.records.replace_killer(victim, None);
            self.clear_flags(victim, DYING);
            self.release_ref(killer);
        }
    }

    /// Whether what just arrived is a victim's refusal of this greenlet's
    /// kill; if so it is consumed.
    fn take_refusal(&self) -> bool {
        if !ptr::eq(self.incoming.get(), &SLOW_LANE) {
            return false;
        }
        match self.slow_lane.take() {
            Some(lane) if matches!(lane.signal, Signal::Refused) => true,
            other => {
                self.slow_lane.set(other);
                false
            }
        }
    }

    /// The current greenlet caught the unwinding of a kill and now tries
    /// to switch away: the kill is refused. It stops dying, and control
    /// goes back to its killer (whose `kill` reports the refusal) instead
    /// of to the switch's target; the caller's switch then waits here for
    /// whatever is later switched to this greenlet. Only for a greenlet
    /// with a killer.
    #[cold]
    pub(super) fn refuse_kill<R: 'static>(&self, cur: Key) -> Result<R, SwitchError> {
        let killer = self
            .records
            .replace_killer(cur, None)
            .expect("a refusing greenlet has a killer");
        self.clear_flags(cur, DYING);
        self.incoming.set(&SLOW_LANE);
        self.set_slow_lane(Signal::Refused, None, None);
        let to = self.records.target(killer);
        // SAFETY: the killer is live (this greenlet's link held it, and the
        // killer releases that link itself on seeing the refusal), active
        // and suspended in `kill`, so not current; the slow lane is filled
        // and announced, and `receive` follows first thing.
        unsafe {
            let back = self.jump(killer, to, EMPTY);
            self.receive::<R>(back)
        }
    }

    /// Reports a kill that nobody can be told of (a dropped last handle,
    /// thread exit) and that the victim refused.
    pub(crate) fn report_refused(&self, victim: Key, why: &str) {
        let name = self.records.name(victim);
        let id = self.records.id(victim);
        report!(
            "greenlet: {} caught the unwinding of its kill ({why}) and switched away; \
             it stays suspended, and its stack and destructors are leaked until something \
             switches to it or kills it again (or, if a handle still holds it, until the \
             last handle goes)",
            describe(name.as_deref(), id)
        );
    }

    /// Makes the outcome of the current greenlet, which is about to
    /// finish, go to `dest` instead of its parent, without touching its
    /// parent link: how the hub hands control from a finishing spawned
    /// greenlet straight to the next ready one, while the finished one
    /// keeps the hub as its parent (a switch or throw into it later, or the
    /// end of a child that outlived it, still goes up to the hub). Takes
    /// over one reference to `dest`, which the record keeps until the
    /// finisher's stack is recycled, as a killer link's. A kill under way
    /// takes the outcome to the killer instead, so the hub hands off only
    /// from a greenlet that is not being killed.
    pub(crate) fn finish_into(&self, dest: Key) {
        let me = self.current.get();
        self.records.set_hand_off(me, dest);
        // Until it finishes, a switch away (a late greenlet-local's
        // destructor that blocks) must give `dest` back first: it is in
        // no ready queue meanwhile. The slow path, where `leave` does it.
        if let Some(other) = self.handing_off.replace(Some(me)) {
            debug_assert!(false, "two hand-offs pending");
            self.handing_off.set(Some(other));
        } else {
            self.force_slow_path(true);
        }
    }

    /// Sets `child`'s parent to `parent`; returns false (changing
    /// nothing) if that would make a cycle.
    pub(crate) fn set_parent(&self, child: Key, parent: Key) -> bool {
        let mut walk = Some(parent);
        while let Some(k) = walk {
            if k == child {
                return false;
            }
            walk = self.records.parent(k);
        }
        let old = self.records.replace_parent(child, Some(parent));
        self.add_ref(parent);
        if let Some(old) = old {
            self.release_ref(old);
        }
        true
    }

    /// Kills `victim`, as [`kill`](Runtime::kill), from a caller that
    /// reports what goes wrong rather than raising it (the hub's kills):
    /// a switch hook that panics on the kill stops it before it began, and
    /// is removed; the kill is then made again, without it, and the hook's
    /// panic is given back beside the outcome for the caller to report.
    /// The outcome is `None` when hooks stopped it `TEARDOWN_ROUNDS` times
    /// (each one's destructor set another that panicked too): the victim
    /// is then left as it was. A kill of the caller (a watchdog hook's)
    /// unwinds on.
    pub(crate) fn kill_past_the_hook(&self, victim: Key) -> PastTheHook {
        let mut hooks_panic = None;
        let me = self.current.get();
        let listed = self.own_panic_listed(me);
        for _ in 0..TEARDOWN_ROUNDS {
            self.hook_stopped_kill_of.set(None);
            match panic::catch_unwind(AssertUnwindSafe(|| self.kill(victim))) {
                Ok(outcome) => return (Some(outcome), hooks_panic),
                Err(p)
                    if !p.is::<GreenletExit>()
                        && self.hook_stopped_kill_of.take() == Some(victim) =>
                {
                    // Caught here for good (raised again by `close`, which
                    // lists it again): the caller unwinds no longer.
                    if !listed {
                        self.own_panic_caught(me);
                    }
                    // A later hook's panic (one set by the last one's
                    // destructor) is dropped: the first is reported.
                    match hooks_panic {
                        None => hooks_panic = Some(p),
                        Some(_) => crate::error::drop_quietly(p),
                    }
                }
                Err(p) => {
                    // The victim's panic (or a kill of the caller) goes
                    // on; the hook's, which cannot be raised beside it, is
                    // reported.
                    if let Some(h) = hooks_panic {
                        report!(
                            "greenlet: the switch hook panicked on a kill and was removed (the \
                             kill was made without it): {}",
                            crate::error::payload_message(h.as_ref())
                                .unwrap_or("(non-text payload)")
                        );
                        crate::error::drop_quietly(h);
                    }
                    panic::resume_unwind(p)
                }
            }
        }
        (None, hooks_panic)
    }

    /// Kills every greenlet of the thread but main (and `spare`), from
    /// main, each in isolation: a panic that escapes one greenlet's
    /// unwinding (it answered the kill with a new panic, say) or a refused
    /// kill is reported on stderr in one line naming the greenlet, and the
    /// others are still killed. Greenlets created meanwhile (by
    /// destructors) are killed too; a refusing greenlet is not asked twice.
    pub(crate) fn kill_all(&self, when: &str, spare: Option<Key>) {
        let mut budget = self.kill_budget();
        if !self.kill_all_but(when, spare, &mut Vec::new(), &mut budget) {
            report!(
                "greenlet: {when}, destructors were still making greenlets after \
                 {TEARDOWN_ROUNDS} rounds of kills; the ones they made last are left alive"
            );
        }
    }

    /// How many kills a `kill_all` (or a thread's whole teardown) makes at
    /// most: `TEARDOWN_ROUNDS` for each greenlet slot there is when it
    /// begins, and never fewer than `MIN_KILL_BUDGET` (a destructor that
    /// makes a few hundred clean-up greenlets once is served). Passes
    /// alone bound a guard that respawns one worker per kill, but not
    /// destructors (or a hook, which hears of each kill twice) that make
    /// two greenlets per kill: those double what is alive at every pass.
    fn kill_budget(&self) -> usize {
        (self.records.key_bound() as usize)
            .saturating_mul(TEARDOWN_ROUNDS)
            .max(MIN_KILL_BUDGET)
    }

    /// [`kill_all`](Runtime::kill_all), sparing the greenlets numbered in
    /// `refused` too; adds those that refuse their kills to it.
    ///
    /// Destructors that make a new greenlet for each one killed (a guard
    /// that respawns its worker) would keep it going for ever: it makes
    /// at most `TEARDOWN_ROUNDS` passes, each over the slots there were
    /// when it began, and at most `budget` kills (counted down), and
    /// returns whether the last pass found nothing left.
    fn kill_all_but(
        &self,
        when: &str,
        spare: Option<Key>,
        refused: &mut Vec<u64>,
        budget: &mut usize,
    ) -> bool {
        debug_assert_eq!(self.current.get(), self.main_key());
        for _ in 0..TEARDOWN_ROUNDS {
            let mut killed_any = false;
            // Kills run destructors that may create or free greenlets:
            // those made in slots past this pass's bound wait for the
            // next pass.
            let bound = self.records.key_bound();
            let mut index = 1;
            while index < bound.min(self.records.key_bound()) {
                let target = self.records.view_at(index).filter(|v| {
                    v.state != State::Dead
                        && !refused.contains(&v.id)
                        && Some(v.key) != spare
                        && !self.left_at_exit(v.key)
                });
                index += 1;
                let Some(view) = target else { continue };
                if *budget == 0 {
                    return false;
                }
                *budget -= 1;
                let (k, id) = (view.key, view.id);
                let who = describe(view.name.as_deref(), id);
                // Discarded unrun, on its own stack: what can panic there
                // is its function's destructor (its captures').
                let unstarted = view.state == State::Unstarted;
                drop(view);
                self.add_ref(k);
                self.hook_stopped_kill_of.set(None);
                let outcome = panic::catch_unwind(AssertUnwindSafe(|| self.kill(k)));
                match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(Refused)) => {
                        refused.push(id);
                        report!(
                            "greenlet: {when}, {who} caught the unwinding of its kill and \
                             switched away; it is left suspended and its stack is leaked"
                        );
                    }
                    Err(p) => {
                        let what = crate::error::payload_message(p.as_ref())
                            .unwrap_or("(non-text payload)");
                        if self.hook_stopped_kill_of.take() == Some(k) {
                            report!(
                                "greenlet: {when}, the switch hook panicked on the kill of {who} \
                                 and was removed: {what}"
                            );
                        } else if unstarted {
                            report!(
                                "greenlet: {when}, {who} never ran; dropping its function \
                                 panicked: {what}"
                            );
                        } else {
                            report!(
                                "greenlet: {when}, {who} panicked while its stack was unwound: \
                                 {what}"
                            );
                        }
                        // Its destructor may panic too: not out of here.
                        crate::error::drop_quietly(p);
                    }
                }
                let release = || {
                    if refused.contains(&id) {
                        self.forget_ref(k);
                        self.keep_refuser(k);
                    } else {
                        self.release_ref(k);
                    }
                };
                if let Err(p) = panic::catch_unwind(AssertUnwindSafe(release)) {
                    report!(
                        "greenlet: {when}, dropping {who} panicked: {}",
                        crate::error::payload_message(p.as_ref()).unwrap_or("(non-text payload)")
                    );
                }
                killed_any = true;
            }
            if !killed_any {
                return true;
            }
        }
        false
    }

    /// Ends the thread's greenlets at its exit: the unstarted ones are
    /// discarded and the hub greenlet is killed, and the started ones are
    /// left suspended (see `left_at_exit`). Returns false when that cannot
    /// be done because main is not the current greenlet.
    pub(super) fn teardown(&self) -> bool {
        if self.current.get() != self.main_key() {
            return false;
        }
        // Destructors run by each step may make more to do for the others
        // (a greenlet-local of main whose destructor creates a greenlet, a
        // hook whose destructor sets another): the steps go round until
        // nothing is left, a bounded number of times.
        // From here on, every switch takes the slow path, where one into a
        // greenlet left at exit is refused (see `left_at_exit`).
        self.tearing_down.set(true);
        self.force_slow_path(true);
        let mut refused = Vec::new();
        let mut budget = self.kill_budget();
        for _ in 0..TEARDOWN_ROUNDS {
            // Not done within its rounds: this one's next round goes on.
            let _ = self.kill_all_but("at thread exit", None, &mut refused, &mut budget);
            self.recycle_finished();
            // A dead greenlet whose receiver switched away before recycling
            // it (a destructor in the receiver did) still holds its stack.
            // One still alive refused its kill: it stays suspended, its
            // stack leaked with the frames on it, and its greenlet-locals
            // with them (dropped on main, they would read main's values,
            // and after the runtime is gone, no runtime at all).
            let mut index = 1;
            while index < self.records.key_bound() {
                if let Some(view) = self.records.view_at(index) {
                    if view.state != State::Dead {
                        self.records.leak_locals(view.key);
                    } else if view.holds_stack {
                        self.recycle(view.key);
                    }
                }
                index += 1;
            }
            // The switch hook and main's greenlet-locals go last, as the
            // thread-locals do, while their destructors can still use the
            // runtime.
            let hook = self.drop_hook_at_exit();
            let locals = self.records.has_live_locals(self.main_key());
            if let Err(SwitchError::Panicked(p)) = self.drop_locals() {
                report!(
                    "greenlet: at thread exit, a greenlet-local value of the main greenlet \
                     panicked in its destructor: {}",
                    crate::error::payload_message(p.as_ref()).unwrap_or("(non-text payload)")
                );
                crate::error::drop_quietly(p);
            }
            if !hook && !locals && !self.any_alive_but(&refused) {
                break;
            }
        }
        // Whatever is still there now goes without its destructors: a
        // hook left set, greenlets refusing their kills (reported), and
        // what destructors kept making round after round (reported here).
        if self.tracer.is_set()
            || self.records.has_live_locals(self.main_key())
            || self.any_alive_but(&refused)
        {
            report!(
                "greenlet: at thread exit, destructors were still making greenlets, switch \
                 hooks or main's greenlet-locals after {TEARDOWN_ROUNDS} rounds of teardown; \
                 what is left is leaked without its destructors"
            );
        }
        if let Some(hook) = self.tracer.take() {
            std::mem::forget(hook);
        }
        self.with_pool(|pool| pool.clear());
        true
    }

    /// Whether `key` is a greenlet the thread's exit leaves suspended, its
    /// stack and what its frames own leaked: a started, unfinished one
    /// other than main, the hub greenlet and the current one, once the
    /// teardown began.
    ///
    /// The teardown runs from a thread-local destructor, after the
    /// destructors of the thread-locals first used after the runtime was
    /// made (they run in the reverse order). A suspended greenlet's frames
    /// may hold a borrow that `LocalKey::with` lent into one of those:
    /// resuming it, even to unwind, would run its destructors over freed
    /// memory, and nothing tells which frames hold such a borrow. So none
    /// is resumed. The hub greenlet's frames are the crate's own loop,
    /// which holds no such borrow: it is killed, and the hub with it
    /// unless a greenlet left here keeps it. Unstarted greenlets have no
    /// frames: their functions are dropped unrun, as ever. (A build with
    /// `panic = "abort"` tears down the same way, but for the hub
    /// greenlet, which it cannot unwind either: it used to skip the
    /// teardown whole, and every thread's exit leaked its pooled stacks.)
    pub(crate) fn left_at_exit(&self, key: Key) -> bool {
        self.tearing_down.get()
            && key != self.main_key()
            && key != self.current.get()
            // A build that cannot unwind leaves the hub greenlet too.
            && (Some(key) != self.hub.get() || cfg!(panic = "abort"))
            && self.records.state(key) == State::Active
    }

    /// Whether a greenlet other than main is alive, but for those
    /// numbered in `refused` and those left at exit.
    fn any_alive_but(&self, refused: &[u64]) -> bool {
        let mut index = 1;
        while index < self.records.key_bound() {
            if let Some(view) = self.records.view_at(index) {
                if view.state != State::Dead
                    && !refused.contains(&view.id)
                    && !self.left_at_exit(view.key)
                {
                    return true;
                }
            }
            index += 1;
        }
        false
    }

    /// Drops the switch hook, if one is set, at thread exit; returns
    /// whether there was one.
    fn drop_hook_at_exit(&self) -> bool {
        let Some(hook) = self.tracer.take() else {
            return false;
        };
        if let Err(p) = panic::catch_unwind(AssertUnwindSafe(move || drop(hook))) {
            report!(
                "greenlet: at thread exit, the switch hook panicked in its destructor: {}",
                crate::error::payload_message(p.as_ref()).unwrap_or("(non-text payload)")
            );
            crate::error::drop_quietly(p);
        }
        true
    }

    // ----- finishing -----

    /// Tells the switch hook that greenlet `me` finishes towards the first
    /// live greenlet at or above `receiver()` (cold and out of line: its
    /// locals would widen the frame of every greenlet's end). The hook
    /// sees `me` still running (not yet dead), so a kill it issues from
    /// here comes back here as usual. A hook that changes where the end
    /// goes (it kills the receiver, or reparents `me`) hears of it again,
    /// with the new receiver, until it leaves that be (a bounded number of
    /// times: one that moves it on every call is not told again).
    #[cold]
    #[inline(never)]
    fn trace_finish(&self, me: Key, receiver: impl Fn() -> Key, kind: SwitchKind) {
        let mut told = None;
        for _ in 0..TEARDOWN_ROUNDS {
            let to = self.first_live(receiver());
            if told == Some(to) || !self.tracer.is_set() {
                break;
            }
            self.trace_finish_to(me, to, kind);
            told = Some(to);
        }
    }

    /// One call of the hook for [`trace_finish`](Runtime::trace_finish).
    fn trace_finish_to(&self, me: Key, to: Key, kind: SwitchKind) {
        // The event's handles drop after the hook, outside its catch: one
        // may be the last of a greenlet, collected there (see
        // `unwound_in_finish`).
        let traced = panic::catch_unwind(AssertUnwindSafe(|| self.tracer.emit(me, to, kind)));
        match traced {
            Ok(Ok(())) => {}
            // It killed this greenlet, which is ending anyway.
            Ok(Err(p)) if p.is::<GreenletExit>() => {}
            Ok(Err(p)) => {
                let what = crate::error::payload_message(p.as_ref()).unwrap_or("non-text payload");
                report!("greenlet: the switch hook panicked and was removed: {what}");
                // Its destructor may panic too: nothing here may unwind,
                // out of the greenlet's first frame.
                crate::error::drop_quietly(p);
            }
            Err(p) => self.unwound_in_finish(p),
        }
    }

    /// What unwound into a finishing greenlet from the collection of
    /// another one, whose last reference went with the recycling of the
    /// greenlet before it or with the switch hook's event. A kill of this
    /// greenlet (a destructor of the collected one made it) is its end,
    /// which it is making anyway: the outcome goes to the killer. A panic
    /// (the collected greenlet answered its kill with one) has nobody to
    /// resume in, as for a handle dropped during an unwinding: it is
    /// reported on stderr and dropped.
    #[cold]
    #[inline(never)]
    fn unwound_in_finish(&self, p: Box<dyn Any + Send>) {
        if !p.is::<GreenletExit>() {
            let what = crate::error::payload_message(p.as_ref()).unwrap_or("(non-text payload)");
            report!(
                "greenlet: a greenlet collected while {} finished panicked: {what}",
                describe(
                    self.records.name(self.current.get()).as_deref(),
                    self.records.id(self.current.get())
                )
            );
        }
        crate::error::drop_quietly(p);
    }

    /// Hands a dead greenlet's outcome to its parent (or killer), walking
    /// past dead ancestors, and never comes back.
    fn finish<R: 'static>(&self, y: &Y, outcome: Result<R, SwitchError>) -> ! {
        let me = self.current.get();
        self.hand_off_over(me);
        // At most one greenlet waits in the fast lane's recycling slot.
        if let Some(key) = self.finished.take() {
            // Its links may hold the last reference of another greenlet,
            // collected here: its destructors are user code, which may
            // panic or kill this greenlet, and nothing may unwind out of
            // a greenlet's first frames.
            if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| self.recycle_inline(key))) {
                self.unwound_in_finish(p);
            }
        }
        let mut slot = MaybeUninit::<ManuallyDrop<R>>::uninit();
        let mut word = EMPTY;
        let signal = match outcome {
            Ok(value) => {
                // SAFETY: the slot is new and is not used again here; it
                // stays on this (never resumed) stack until the receiver
                // has taken the value.
                word = unsafe { encode(slot.write(ManuallyDrop::new(value))) };
                Signal::Value(type_of::<R>())
            }
            // Out of line: matched here, the error's variants made a jump
            // table that every plain return went through. Only a plain end
            // is handed off: an error (a late local's panic, a throw) goes
            // to the parent, the hub, as any other.
            Err(e) => {
                self.hand_back(me);
                error_signal(e)
            }
        };
        // Who receives it: its killer while a kill is under way, else the
        // greenlet the hub hands control to (`finish_into`), else its
        // parent. Read after the hook, which may change either link.
        let start = || self.records.receiver(me).unwrap_or(self.main_key());
        if self.tracer.is_set() {
            let kind = match signal {
                Signal::Panicked(_) => SwitchKind::Panic,
                _ => SwitchKind::Finish,
            };
            // The hook is the only user code left before the greenlet is
            // dead, and its locals are gone: it may not make new ones.
            let outer = self.locals_closed.replace(Some(me));
            self.trace_finish(me, start, kind);
            self.locals_closed.set(outer);
        }
        // The hook may also have dropped this greenlet's last handle (an
        // orphan flag); none of its flags matter any more.
        let (before, after) = self.records.mark_dead(me);
        self.count_forcing(before, after);
        // Walk again: the hook may have killed the destination.
        let dest = self.first_live(start());
        match signal {
            // The fast lane: a plain value to a receiver that is not a
            // killer travels as any switch's value does (the receiver's
            // fast path takes it), and this stack is recycled later, by
            // `recycle_finished`. Only for a value that travels in the word
            // itself: one that lives on this stack could be dropped in
            // place by a receiver that expected another type, and that
            // drop may call into the runtime, which would recycle this
            // stack under it. And only while a handle keeps the record:
            // recycling an unreferenced one frees it and releases its
            // parent, which must happen as the receiver gets the value.
            Signal::Value(ty)
                if fits::<R>()
                    && self.records.killer(me).is_none()
                    && self.records.refs(me) > 0 =>
            {
                self.incoming.set(ty);
                self.finished.set(Some(me));
            }
            signal => {
                self.incoming.set(&SLOW_LANE);
                self.set_slow_lane(signal, Some(me), None);
            }
        }
        // The bookkeeping of `jump`, done here because this greenlet
        // suspends through its own `y` for the last time.
        let to = self.records.target(dest);
        self.current.set(dest);
        self.current_yielder.set(to.yielder);
        self.next.set(to.coroutine);
        // The receiver takes the value (or drops it) and then recycles this
        // stack; nothing ever resumes it.
        y.suspend(word);
        unreachable_return()
    }
}

/// What a greenlet that ended with error `e` sends on (see `finish`).
#[cold]
#[inline(never)]
fn error_signal(e: SwitchError) -> Signal {
    match e {
        SwitchError::Panicked(p) => Signal::Panicked(p),
        SwitchError::Thrown(p) => Signal::Thrown(p),
        SwitchError::TypeMismatch { expected, found } => Signal::Mismatch { expected, found },
        _ => Signal::Killed,
    }
}

/// "greenlet 'name' (id N)", for messages.
pub(crate) fn describe(name: Option<&str>, id: u64) -> String {
    match name {
        Some(name) => format!("greenlet '{name}' (id {id})"),
        None => format!("greenlet {id}"),
    }
}

/// What a greenlet that never ran ends with: an error (or a kill) reached
/// it before its first switch in; its function is dropped unrun and the
/// error walks on, unless the function's destructor took it (see
/// `take_unrun_cause`): then the greenlet ends as if its function had
/// returned `()`. Out of line, so that its locals do not widen `entry`'s
/// frame, which every parked greenlet keeps in the cache lines of its
/// stack top. Only the drop of `f` and the cast to `R` depend on the
/// types; the rest is [`drop_unrun`], compiled once for every greenlet
/// function of the program rather than once for each.
#[cold]
#[inline(never)]
fn never_ran<F, R: 'static>(rt: &Runtime, me: Key, e: SwitchError, f: F) -> Result<R, SwitchError> {
    let mut f = Some(f);
    drop_unrun(rt, me, e, &mut || drop(f.take()))?;
    cast_same::<(), R>(()).map_err(|()| SwitchError::Killed)
}

/// [`never_ran`] without its types: `drop_f` drops the function. `Ok`
/// when its destructor took the error (the greenlet ends as if its
/// function had returned `()`).
fn drop_unrun(
    rt: &Runtime,
    me: Key,
    e: SwitchError,
    drop_f: &mut dyn FnMut(),
) -> Result<(), SwitchError> {
    rt.finishing_its_kill(me);
    rt.unrun_causes.borrow_mut().push((me, Some(e)));
    // The destructor may switch away (no borrow is held): other greenlets'
    // functions may be dropped unrun meanwhile, in any order.
    let dropped = panic::catch_unwind(AssertUnwindSafe(drop_f));
    let cause = {
        let mut causes = rt.unrun_causes.borrow_mut();
        let at = causes.iter().position(|(k, _)| *k == me);
        at.and_then(|at| causes.swap_remove(at).1)
    };
    match (dropped, cause) {
        (Err(p), cause) => {
            crate::error::drop_quietly(cause);
            if p.is::<GreenletExit>() {
                // A kill unwound the destructor, suspended in a switch.
                Err(SwitchError::Killed)
            } else {
                Err(SwitchError::Panicked(p))
            }
        }
        (Ok(()), Some(e)) => Err(e),
        (Ok(()), None) => Ok(()),
    }
}

/// The hub greenlet's start when an error reached it first (a panic or a
/// throw routed up to it before its loop first ran): reported, and the
/// loop starts all the same (see `Runtime::set_hub`). A kill by hand still
/// ends it unrun.
fn hub_starts_anyway<A: 'static>(rt: &Runtime, e: SwitchError) -> Result<A, SwitchError> {
    if rt.records.flags(rt.current.get()) & DYING != 0 {
        // Its own kill, not the end of a greenlet that reached it.
        return Err(e);
    }
    match cast_same::<(), A>(()) {
        Ok(arg) => {
            crate::error::report_reaching_the_hub(e);
            Ok(arg)
        }
        Err(()) => Err(e),
    }
}

/// Runs a greenlet's function: its outcome, a kill's unwinding caught as
/// `Killed`.
#[inline(always)]
fn run<F, A, R>(f: F, arg: A) -> Result<R, SwitchError>
where
    F: FnOnce(A) -> R,
{
    match panic::catch_unwind(AssertUnwindSafe(move || f(arg))) {
        Ok(value) => Ok(value),
        Err(p) if p.is::<GreenletExit>() => Err(SwitchError::Killed),
        Err(p) => Err(SwitchError::Panicked(p)),
    }
}

/// The first frame of every greenlet: take the argument, run the function,
/// hand the outcome on.
fn entry<F, A, R>(y: &Y, word: Word, f: F)
where
    F: FnOnce(A) -> R,
    A: 'static,
    R: 'static,
{
    let rt = Runtime::get();
    let me = rt.current.get();
    rt.records.enter(me, y);
    rt.current_yielder.set(y);
    // SAFETY: first thing after being resumed, with the word it brought,
    // received once: decoded as an `A` where `incoming` says it is one,
    // otherwise read as whatever `incoming` says it is.
    let arg = unsafe {
        if is_type::<A>(rt.incoming.get()) {
            Ok(decode::<A>(word))
        } else {
            receive_first_slow::<A>(rt, word)
        }
    };
    let outcome = match arg {
        Ok(arg) => run(f, arg),
        Err(e) => never_ran(rt, me, e, f),
    };
    // Greenlet-locals die with the greenlet, on its own stack; a panic in
    // their destructors replaces the outcome.
    let outcome = match rt.drop_locals() {
        Ok(()) => outcome,
        Err(e) => {
            // The outcome it replaces is dropped here: `finish` never
            // returns, so a shadowed binding would never be.
            crate::error::drop_quietly(outcome);
            // Its destructor may have made greenlet-locals anew: they go
            // here too, on this greenlet, not with its record later on
            // another (a panic among them goes: the first one is the
            // outcome).
            if let Err(again) = rt.drop_locals() {
                crate::error::drop_quietly(again);
            }
            Err(e)
        }
    };
    rt.finish(y, outcome)
}

/// What an unstarted greenlet receives on its first switch in when it is
/// not a plain `A`: an error, a kill, a value of another type. A panic on
/// the way (a mismatched value's destructor, an unreachable sender reaped
/// here that answers its kill with a panic) is this greenlet's outcome:
/// unwound out of its first frame, it would leave the coroutine. The hub
/// greenlet starts all the same (`hub_starts_anyway`).
///
/// # Safety
///
/// As `receive_slow`'s: first thing after being resumed, with the word it
/// brought, received once.
#[cold]
#[inline(never)]
unsafe fn receive_first_slow<A: 'static>(rt: &Runtime, word: Word) -> Result<A, SwitchError> {
    // SAFETY: the caller's contract is `receive_slow`'s.
    let received = panic::catch_unwind(AssertUnwindSafe(|| unsafe {
        rt.receive_slow::<A>(word, OnKill::Report)
    }));
    let arg = match received {
        Ok(arg) => arg,
        Err(p) if p.is::<GreenletExit>() => Err(SwitchError::Killed),
        Err(p) => Err(SwitchError::Panicked(p)),
    };
    match arg {
        Err(e) if rt.hub.get() == Some(rt.current.get()) => hub_starts_anyway(rt, e),
        arg => arg,
    }
}

/// Lets the victim of a kill go if its killer unwinds out of `kill_held`
/// instead of hearing of the victim's death or refusal (the victim caught
/// the kill and killed its killer). Forgotten on every other way out.
struct Abandon<'a> {
    rt: &'a Runtime,
    victim: Key,
    killer: Key,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        self.rt.abandon_victim(self.victim, self.killer);
    }
}

/// A reference to a greenlet held by a frame of the runtime (see
/// [`Runtime::hold`]). Dropped, it is released as a handle's is, which
/// may reap the greenlet.
pub(super) struct Hold<'a> {
    rt: &'a Runtime,
    key: Key,
}

impl<'a> Hold<'a> {
    /// Holds `next` instead: taken before this hold is let go, which may
    /// free a dead greenlet and the dead links above it, and must not
    /// collect `next`.
    pub(super) fn pass_to(self, next: Key) -> Hold<'a> {
        let rt = self.rt;
        let next = rt.hold(next);
        drop(self);
        next
    }

    /// Lets go without reaping (a refused kill: reaping would only kill
    /// the victim again).
    pub(super) fn forget(self) {
        let this = ManuallyDrop::new(self);
        this.rt.forget_ref(this.key);
    }

    /// Lets go just before the holder switches to the held greenlet. If
    /// that was its last reference, it is unreachable but about to run:
    /// it is then what a running greenlet that lost its last handle is
    /// (`unreachable`), reaped once it switches away, freed if it finishes.
    pub(super) fn let_go_into(self) {
        let this = ManuallyDrop::new(self);
        if this.rt.records.drop_ref(this.key) == 0 && !this.rt.is_kept_refuser(this.key) {
            this.rt.set_flags(this.key, ORPHAN);
        }
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.rt.release_ref(self.key);
    }
}
