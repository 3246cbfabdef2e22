//! Switch and throw: routing, the jump between stacks, the trampoline, and
//! what a receiver does with what arrives.

use std::any::{Any, TypeId};
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use corosensei::CoroutineResult;

use super::lifecycle::Hold;
use super::records::{Target, DYING, NO_REFUSAL, ORPHAN, OWNS_OUTCOME, UNWINDING};
use super::{Key, Runtime, State};
use crate::error::SwitchError;
use crate::stack::Co;
use crate::trace::SwitchKind;
use crate::value::{
    cast_same, decode, encode, is_type, type_of, GreenletExit, Signal, Word, EMPTY, SLOW_LANE,
};

/// The slow lane of a transfer: what travels beside the word when
/// `incoming` is `SLOW_LANE`.
pub(crate) struct SlowLane {
    pub(super) signal: Signal,
    /// A greenlet that has just died: the receiver recycles its stack after
    /// consuming the value (which lives on that stack).
    pub(super) finished: Option<Key>,
    /// An unreachable greenlet that has just switched away: the receiver
    /// kills it.
    pub(super) reap: Option<Key>,
}

/// The number under which `note_panic` lists a greenlet's own panic among
/// the kills in flight: no kill gets it (they are counted from 0).
const OWN_PANIC: u64 = u64::MAX;

/// What a receiver does with an `UnwindNow` signal.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum OnKill {
    /// Unwind the current stack (a pending switch).
    Unwind,
    /// Report it (a greenlet's entry, before its function runs).
    Report,
}

impl Runtime {
    /// Switches to `target` with `value`; returns what is later sent back.
    #[inline(always)]
    pub(crate) fn switch<T: 'static, R: 'static>(
        &self,
        target: Key,
        value: T,
    ) -> Result<R, SwitchError> {
        let to = self.records.target(target);
        // `fast_state` is `Active` unless something forces the slow path.
        if to.state as u8 == self.fast_state.get()
            && target != self.current.get()
            && !std::thread::panicking()
        {
            self.incoming.set(type_of::<T>());
            // SAFETY: `to` is active and not current, and `incoming` names
            // `T`, the type of the value sent.
            unsafe { self.send(target, to, value) }
        } else if to.state == State::Unstarted {
            self.switch_to_unstarted(target, value)
        } else {
            self.switch_slow(target, value)
        }
    }

    /// [`switch`](Runtime::switch), except that a dead `target` is not
    /// walked past: `value` goes to `if_dead` instead, whose answer this
    /// returns. Tested off the fast path only, where a dead target lands
    /// anyway, so it costs the switch nothing: a generator's yield, whose
    /// consumer may have died while its producer was blocked elsewhere.
    /// (`switch` keeps a copy of its own: written as this with a closure
    /// that routes, spawn + join took 2 instructions more, and a kill of a
    /// started greenlet about 190, from the code's new layout.)
    #[inline(always)]
    pub(crate) fn switch_unless_dead<T: 'static, R: 'static>(
        &self,
        target: Key,
        value: T,
        if_dead: impl FnOnce(T) -> Result<R, SwitchError>,
    ) -> Result<R, SwitchError> {
        let to = self.records.target(target);
        if to.state as u8 == self.fast_state.get()
            && target != self.current.get()
            && !std::thread::panicking()
        {
            self.incoming.set(type_of::<T>());
            // SAFETY: as in `switch`: `to` is active and not current, and
            // `incoming` names `T`, the type of the value sent.
            unsafe { self.send(target, to, value) }
        } else if to.state == State::Dead {
            if_dead(value)
        } else if to.state == State::Unstarted {
            self.switch_to_unstarted(target, value)
        } else {
            self.switch_slow(target, value)
        }
    }

    /// `switch` to an unstarted `target`: starting a greenlet is inlined
    /// too, because a greenlet started from `switch_slow` would finish
    /// into that frame, whose return is then mispredicted (see
    /// `hub/wait.rs`): create -> finish took 3.7-3.9x corosensei's time
    /// instead of 3.1-3.2x.
    #[inline(always)]
    fn switch_to_unstarted<T: 'static, R: 'static>(
        &self,
        target: Key,
        value: T,
    ) -> Result<R, SwitchError> {
        // Read again, from a key the compiler cannot tell is the same: the
        // fields are then loaded on this path alone, not ahead of the
        // common one's compare (which cost a round trip 10 instructions).
        let target = std::hint::black_box(target);
        let to = self.records.target(target);
        if self.starts_here::<T>(&to) {
            self.incoming.set(type_of::<T>());
            // SAFETY: `to` is unstarted (so not current) and takes a `T`;
            // `incoming` names `T`, the type of the value sent.
            unsafe { self.send(target, to, value) }
        } else {
            self.switch_slow(target, value)
        }
    }

    /// Whether unstarted `to` can be started on the inlined path with a
    /// `T`: nothing forces the slow path, `T` is the type it takes, and no
    /// panic is under way.
    #[inline(always)]
    fn starts_here<T: 'static>(&self, to: &Target) -> bool {
        self.fast_state.get() == State::Active as u8
            && is_type::<T>(to.arg)
            && !std::thread::panicking()
    }

    /// [`switch`](Runtime::switch), trying the start of an unstarted
    /// target first: the hub's blocking calls often start a spawned
    /// greenlet.
    #[inline(always)]
    pub(crate) fn switch_or_start<T: 'static, R: 'static>(
        &self,
        target: Key,
        value: T,
    ) -> Result<R, SwitchError> {
        let to = self.records.target(target);
        if to.state == State::Unstarted && self.starts_here::<T>(&to) {
            // As `switch_to_unstarted`, without reading the record again.
            self.incoming.set(type_of::<T>());
            // SAFETY: `to` is unstarted (so not current) and takes a `T`;
            // `incoming` names `T`, the type of the value sent.
            unsafe { self.send(target, to, value) }
        } else {
            self.switch(target, value)
        }
    }

    /// Switches to `target` with `()`, starting it if it is unstarted,
    /// for the hub's yields and its own loop, with no result in the
    /// caller's frame: anything but a plain `()` coming back (an error, a
    /// throw, a stray value) goes to `on_error`, on a cold path, before
    /// this returns. Returning a `Result` instead,
    /// the fast path wrote its `Ok` into a 40-byte slot of the parked
    /// greenlet's frame on every resume: among many parked greenlets, one
    /// cache line more to bring back for each (see `RESERVED` in `stack.rs`
    /// for why lines count). `on_error` should capture nothing but
    /// constants, or it is built in the frame before the switch. (The
    /// blocking calls keep `switch_or_start`: through this, spawn + join
    /// took 1,012 instructions instead of 997.)
    #[inline(always)]
    pub(crate) fn hand_to<E: FnOnce(SwitchError)>(&self, target: Key, on_error: E) {
        let to = self.records.target(target);
        // The two fast cases: an unstarted target taking a `()`, as in
        // `switch_to_unstarted`, or an active one, as in `switch`.
        let unstarted = to.state == State::Unstarted && self.starts_here::<()>(&to);
        if unstarted
            || (to.state as u8 == self.fast_state.get()
                && target != self.current.get()
                && !std::thread::panicking())
        {
            self.incoming.set(type_of::<()>());
            // SAFETY: `to` is `target`'s record, unstarted and taking a
            // `()` (so not current), or active and not current; `incoming`
            // names `()`, the type of the word sent (a `()` is no bytes: the
            // word is 0). What comes back is looked at first thing: its
            // type, and anything but a `()` received once by `receive_slow`.
            unsafe {
                let back = self.jump(target, to, EMPTY);
                if !is_type::<()>(self.incoming.get()) {
                    if let Err(e) = self.receive_slow::<()>(back, OnKill::Unwind) {
                        on_error(e);
                    }
                }
            }
        } else {
            self.hand_to_slow(target, on_error);
        }
    }

    /// [`hand_to`](Runtime::hand_to) when the fast path does not apply.
    #[cold]
    #[inline(never)]
    fn hand_to_slow<E: FnOnce(SwitchError)>(&self, target: Key, on_error: E) {
        if let Err(e) = self.switch_slow::<(), ()>(target, ()) {
            on_error(e);
        }
    }

    /// Sends `value` to `key` (whose record `to` is) and receives what
    /// later comes back.
    ///
    /// # Safety
    /// `to` is `key`'s record, active or unstarted, and `key` is not
    /// current; `incoming` describes `value` (its `T` or, through the slow
    /// lane, `Signal::Value` of `T`).
    #[inline(always)]
    unsafe fn send<T: 'static, R: 'static>(
        &self,
        key: Key,
        to: Target,
        value: T,
    ) -> Result<R, SwitchError> {
        let mut value = ManuallyDrop::new(value);
        // SAFETY: the caller's contract covers `jump`'s; the value stays in
        // this frame, which outlives the jump, and its receiver moves it
        // out exactly once (`ManuallyDrop` keeps this frame from dropping
        // it); `receive` is called first thing after coming back.
        unsafe {
            let word = encode(&mut value);
            let back = self.jump(key, to, word);
            self.receive::<R>(back)
        }
    }

    #[cold]
    #[inline(never)]
    fn switch_slow<T: 'static, R: 'static>(&self, target: Key, value: T) -> Result<R, SwitchError> {
        self.switch_routed(target, value, None)
    }

    /// [`switch_slow`](Runtime::switch_slow); `held` is this transfer's
    /// hold on `target` when an earlier pass routed it here because the
    /// switch hook killed that pass's target (see below).
    fn switch_routed<T: 'static, R: 'static>(
        &self,
        target: Key,
        value: T,
        held: Option<Hold<'_>>,
    ) -> Result<R, SwitchError> {
        // The common slow case first: starting a greenlet.
        let to = self.records.target(target);
        if to.state == State::Unstarted
            && to.arg.id == TypeId::of::<T>()
            && self.slow_path_forced.get() == 0
            && !std::thread::panicking()
        {
            if let Some(hold) = held {
                hold.let_go_into();
            }
            self.incoming.set(type_of::<T>());
            // SAFETY: `to` is unstarted (so not current), takes a `T`, and
            // `incoming` names `T`.
            return unsafe { self.send(target, to, value) };
        }
        let cur = self.current.get();
        let asked = target;
        let target = self.first_live(target);
        if target == cur {
            // A switch to oneself (or to a dead greenlet whose first live
            // ancestor is oneself) returns the value at once: it leaves
            // nothing, so it is not refused while unwinding, nor taken for
            // the refusal of a kill.
            drop(held);
            return match cast_same::<T, R>(value) {
                Ok(value) => {
                    if asked != cur {
                        // Routed back past a dead target: an echo.
                        self.echoed.set(Some(cur));
                    }
                    Ok(value)
                }
                Err(value) => {
                    drop_left_value(value, "a value that came back with the wrong type");
                    Err(mismatch::<R, T>())
                }
            };
        }
        if self.left_at_exit(target) {
            drop_left_value(value, "a value sent to a greenlet the thread's exit leaves");
            return Err(resumed_at_exit(self.tracer.running()));
        }
        let value = match self.leave(cur, value) {
            Ok(value) => value,
            Err(instead) => return instead,
        };
        let to = self.records.target(target);
        if to.state == State::Unstarted && to.arg.id != TypeId::of::<T>() {
            if self.hub.get() == Some(target) && to.arg.id == TypeId::of::<()>() {
                // A value that reaches the hub greenlet is ignored (its
                // loop takes it for a stray wake-up), also before the loop
                // first ran, which it then starts.
                drop_left_value(value, "a value that reached the hub greenlet");
                return self.switch_routed::<(), R>(target, (), held);
            }
            // The greenlet stays unstarted; the sender hears of it.
            drop(value);
            return Err(SwitchError::TypeMismatch {
                expected: to.arg.name(),
                found: std::any::type_name::<T>(),
            });
        }
        // The hook may drop the target's last reference (the event's
        // handles, a reparenting): held, its record stays while this frame
        // reads it, and the hold is let go just before the jump.
        let hold = held.or_else(|| self.tracer.is_set().then(|| self.hold(target)));
        if let Err(p) = self.tracer.emit(cur, target, SwitchKind::Switch) {
            if !self.reports_hook_panic(cur, p.as_ref()) {
                drop(value);
                self.raise_hook_panic(p);
            }
        }
        let value = match self.leave_after_hook(cur, value) {
            Ok(value) => value,
            Err(instead) => return instead,
        };
        let to = self.records.target(target);
        if to.state == State::Dead {
            // The hook killed it: route again, to its first live ancestor,
            // whose hold replaces this one (letting go of the dead target
            // may free it and the dead links above it).
            let next = self.first_live(target);
            if next == cur {
                // Routed back here: what comes back is an echo.
                self.echoed.set(Some(cur));
            }
            let hold = hold.map(|hold| hold.pass_to(next));
            return self.switch_routed(next, value, hold);
        }
        if let Some(hold) = hold {
            hold.let_go_into();
        }
        match self.orphan_key(cur) {
            None => self.incoming.set(type_of::<T>()),
            Some(reap) => {
                self.incoming.set(&SLOW_LANE);
                self.set_slow_lane(Signal::Value(type_of::<T>()), None, Some(reap));
            }
        }
        // SAFETY: `to`, read after the hook ran, is `target`'s record,
        // active or unstarted (not dead) with the argument type checked
        // above, and not current (`target != cur`); `incoming` describes
        // `value`.
        unsafe { self.send(target, to, value) }
    }

    /// Throws `payload` into `target`.
    pub(crate) fn throw<R: 'static>(
        &self,
        target: Key,
        payload: Box<dyn Any + Send>,
    ) -> Result<R, SwitchError> {
        self.throw_routed(target, payload, None)
    }

    /// [`throw`](Runtime::throw), with `held` as in `switch_routed`.
    fn throw_routed<R: 'static>(
        &self,
        target: Key,
        payload: Box<dyn Any + Send>,
        held: Option<Hold<'_>>,
    ) -> Result<R, SwitchError> {
        let cur = self.current.get();
        let target = self.first_live(target);
        if target == cur {
            // Into self (or routed back to self): raised at once, leaving
            // nothing (see `switch_slow`).
            drop(held);
            return Err(SwitchError::Thrown(payload));
        }
        if self.left_at_exit(target) {
            drop_left_value(
                payload,
                "an error thrown into a greenlet the thread's exit leaves",
            );
            return Err(resumed_at_exit(self.tracer.running()));
        }
        let payload = match self.leave(cur, payload) {
            Ok(payload) => payload,
            Err(instead) => return instead,
        };
        // Held while the hook runs, as in `switch_routed`.
        let hold = held.or_else(|| self.tracer.is_set().then(|| self.hold(target)));
        if let Err(p) = self.tracer.emit(cur, target, SwitchKind::Throw) {
            if !self.reports_hook_panic(cur, p.as_ref()) {
                drop(payload);
                self.raise_hook_panic(p);
            }
        }
        let payload = match self.leave_after_hook(cur, payload) {
            Ok(payload) => payload,
            Err(instead) => return instead,
        };
        let to = self.records.target(target);
        if to.state == State::Dead {
            // The hook killed it: route again, as in `switch_routed`.
            let next = self.first_live(target);
            let hold = hold.map(|hold| hold.pass_to(next));
            return self.throw_routed(next, payload, hold);
        }
        if let Some(hold) = hold {
            hold.let_go_into();
        }
        if to.state == State::Unstarted && self.records.flags(target) & OWNS_OUTCOME != 0 {
            // It ends unrun and keeps the error; its end comes back here,
            // as a kill's does, rather than going to its parent.
            self.records.replace_killer(target, Some(cur));
            self.records.add_ref(cur);
        }
        let reap = self.orphan_key(cur);
        self.incoming.set(&SLOW_LANE);
        self.set_slow_lane(Signal::Thrown(payload), None, reap);
        // SAFETY: `to` is `target`'s record, read after the hook ran, and
        // not dead; `target` is not current; the slow lane is filled and
        // announced, and `receive` follows first thing.
        unsafe {
            let back = self.jump(target, to, EMPTY);
            self.receive::<R>(back)
        }
    }

    /// Starts unwinding the current greenlet's stack for a kill, listed
    /// as under way until its payload is dropped (see `kills_in_flight`). `resume_unwind`
    /// skips the panic hook, so a kill prints nothing. Inlined into the
    /// (cold) receiver: every frame between the raise and the greenlet's
    /// entry costs the unwinder a look-up and a CFA program in each of its
    /// two phases (about 1,200 instructions a frame), and a kill already
    /// passes three of std's. Nothing in the receiver needs a landing pad
    /// for it: the box moves straight into `resume_unwind`, which never
    /// returns.
    #[cold]
    #[inline(always)]
    pub(super) fn unwind_now(&self) -> ! {
        let me = self.current.get();
        let kill = crate::value::next_kill();
        let id = self.records.id(me);
        let mut in_flight = self.kills_in_flight.borrow_mut();
        // An earlier kill's entry still there (its payload kept, forgotten,
        // or dropped on another thread) is over: `me` is running again.
        in_flight.retain(|&(who, _)| who != id);
        in_flight.push((id, kill));
        drop(in_flight);
        panic::resume_unwind(Box::new(GreenletExit::of(kill)))
    }

    /// Whether the current greenlet `cur` is unwinding: the thread panics,
    /// and not only because the killer of `cur` does. (`cur` may be the
    /// victim of a killer that issued the kill while unwinding, from a
    /// destructor, and have caught the kill's own unwinding since: the
    /// thread-wide `std::thread::panicking` still counts the killer's
    /// panic, but `cur` is free to refuse its kill.)
    pub(super) fn unwinding_here(&self, cur: Key) -> bool {
        if !std::thread::panicking() {
            return false;
        }
        if self.records.flags(cur) & DYING == 0 {
            return true;
        }
        let id = self.records.id(cur);
        if self
            .kills_in_flight
            .borrow()
            .iter()
            .any(|&(who, _)| who == id)
        {
            return true;
        }
        match self.records.killer(cur) {
            Some(killer) => self.records.flags(killer) & UNWINDING == 0,
            None => true,
        }
    }

    /// A `panic!` on this thread (told by the crate's panic hook): a
    /// greenlet that caught a kill from a killer that unwinds, and now
    /// panics anew, unwinds, which the thread-wide `panicking` cannot tell
    /// from its killer's panic. It is listed as unwinding (in
    /// `kills_in_flight`, under a number no kill has) until it dies or is
    /// killed again: until then its switches fail with `Unwinding`, also
    /// once it has caught that panic (the safe side: a switch in the middle
    /// of an unwinding would let another greenlet run inside it). A panic
    /// raised with `resume_unwind`, or under a hook set by the program in
    /// place of the crate's, is not seen.
    pub(crate) fn note_panic(&self) {
        let cur = self.current.get();
        if self.records.flags(cur) & DYING != 0 && !self.unwinding_here(cur) {
            if let Ok(mut in_flight) = self.kills_in_flight.try_borrow_mut() {
                in_flight.push((self.records.id(cur), OWN_PANIC));
            }
        }
    }

    /// Raises the switch hook's panic `p`, which `Tracer::emit` caught,
    /// in the current greenlet: listed again as the greenlet's own
    /// unwinding where `note_panic` lists one (`emit` took the listing
    /// back, as for a panic the crate keeps).
    /// Only where the thread panics already (a killer that unwinds), as
    /// the crate's panic hook would have listed it: where it does not,
    /// `panicking` tells this unwinding by itself, and a listing would
    /// outlive its catch (the greenlet may catch it and live on).
    #[cold]
    pub(crate) fn raise_hook_panic(&self, p: Box<dyn Any + Send>) -> ! {
        if std::thread::panicking() {
            self.note_panic();
        }
        panic::resume_unwind(p)
    }

    /// Whether `key` is listed as unwinding a panic of its own (see
    /// `note_panic`).
    pub(crate) fn own_panic_listed(&self, key: Key) -> bool {
        let id = self.records.id(key);
        self.kills_in_flight
            .try_borrow()
            .is_ok_and(|in_flight| in_flight.contains(&(id, OWN_PANIC)))
    }

    /// Takes back the listing `note_panic` made for a panic of `key`'s
    /// that the crate caught where it called the program's code (the
    /// switch hook): `key` unwinds no longer.
    pub(crate) fn own_panic_caught(&self, key: Key) {
        let id = self.records.id(key);
        if let Ok(mut in_flight) = self.kills_in_flight.try_borrow_mut() {
            if let Some(at) = in_flight.iter().position(|&e| e == (id, OWN_PANIC)) {
                in_flight.swap_remove(at);
            }
        }
    }

    /// An unwinding the crate raises in the current greenlet with a payload
    /// of its own that runs no panic hook (a `with_timeout` expiry): listed
    /// as `note_panic` lists a panic, but under a number of its own, which
    /// the payload hands to [`kill_unwinding_caught`] as it drops, where
    /// the unwinding was caught. `None` when nothing needed listing.
    ///
    /// [`kill_unwinding_caught`]: Runtime::kill_unwinding_caught
    pub(crate) fn note_unwinding(&self) -> Option<u64> {
        let cur = self.current.get();
        if self.records.flags(cur) & DYING == 0 || self.unwinding_here(cur) {
            return None;
        }
        let number = crate::value::next_kill();
        let mut in_flight = self.kills_in_flight.try_borrow_mut().ok()?;
        in_flight.push((self.records.id(cur), number));
        Some(number)
    }

    /// Forgets the kills in flight of `key`, which is dead.
    pub(super) fn forget_kills_of(&self, key: Key) {
        let id = self.records.id(key);
        let mut in_flight = self.kills_in_flight.borrow_mut();
        if !in_flight.is_empty() {
            in_flight.retain(|&(who, _)| who != id);
        }
    }

    /// The payload of kill number `kill` was dropped: if that kill was
    /// raised on this thread, its unwinding was caught (wherever the
    /// payload went since).
    pub(crate) fn kill_unwinding_caught(&self, kill: u64) {
        let mut in_flight = self.kills_in_flight.borrow_mut();
        if let Some(at) = in_flight.iter().position(|&(_, k)| k == kill) {
            in_flight.swap_remove(at);
        }
    }

    /// The hook panicked with `p` on a switch or throw of `cur`: whether
    /// that is reported on stderr and the transfer goes on (`cur` is the
    /// hub greenlet (see `set_hub`), and the hook did not kill
    /// it), instead of unwinding `cur`.
    #[cold]
    fn reports_hook_panic(&self, cur: Key, p: &(dyn Any + Send)) -> bool {
        if self.hub.get() != Some(cur) || p.is::<GreenletExit>() {
            return false;
        }
        let what = crate::error::payload_message(p).unwrap_or("non-text payload");
        report!(
            "greenlet: the switch hook panicked on a switch of the hub and was removed: {what}"
        );
        true
    }

    /// Whether the current greenlet `cur` may switch away now with what it
    /// sends: `Ok` gives that back to go on; otherwise it is dropped and
    /// `Err` holds what the switch returns instead: an error, or (when
    /// `cur` caught the unwinding of a kill) what later reaches it after
    /// the refusal sent control back to its killer (see `refuse_kill`).
    fn leave<V, R: 'static>(&self, cur: Key, sent: V) -> Result<V, Result<R, SwitchError>> {
        if self.handing_off.get() == Some(cur) {
            // It made its hand-off and switches away before finishing:
            // the greenlet it chose goes back to the hub's ready queue.
            self.hand_back(cur);
        }
        let flags = self.records.flags(cur);
        let err = if self.unwinding_here(cur) || flags & (DYING | NO_REFUSAL) == DYING | NO_REFUSAL
        {
            SwitchError::Unwinding
        } else if self.tracer.runs_on(cur) {
            // Before a caught kill's refusal: a hook running on this very
            // greenlet's stack (a victim's, on a kill it makes) cannot be
            // left, by a refusal neither. (A victim the hook killed runs on
            // a stack of its own, and refuses back into the hook.)
            SwitchError::InSwitchHook
        } else if flags & DYING != 0 {
            // Being killed, yet not unwinding: it caught the kill.
            if let Some(killer) = self.records.killer(cur) {
                if self.tracer.is_set() && !self.tracer.running() {
                    // The refusal is a transfer too, to the killer: the
                    // hook hears of it first. What the hook does may
                    // change the answer (it kills the killer, whose kill
                    // then lets `cur` go): asked again then.
                    if let Err(p) = self.tracer.emit(cur, killer, SwitchKind::Switch) {
                        if p.is::<GreenletExit>() {
                            // The hook killed `cur` again: that unwinds.
                            drop_left_value(sent, "a value whose switch refused a kill");
                            panic::resume_unwind(p);
                        }
                        if self.records.flags(killer) & UNWINDING == 0 {
                            // As for any switch: raised into `cur`.
                            drop_left_value(sent, "a value whose switch refused a kill");
                            self.raise_hook_panic(p);
                        }
                        // The killer unwinds: raised into `cur`, the panic
                        // would list it as unwinding until it dies (only
                        // the crate's panic hook tells its unwinding from
                        // its killer's), and it could then neither refuse
                        // nor die. The refusal is made; the hook's panic is
                        // reported.
                        let what =
                            crate::error::payload_message(p.as_ref()).unwrap_or("non-text payload");
                        report!(
                            "greenlet: the switch hook panicked on a refused kill and was \
                             removed: {what}"
                        );
                        crate::error::drop_quietly(p);
                    }
                    if self.records.killer(cur) != Some(killer)
                        || self.records.flags(cur) & DYING == 0
                    {
                        return self.leave(cur, sent);
                    }
                    return Err(self.refuse_kill_leaving(cur, sent));
                }
                return Err(self.refuse_kill_leaving(cur, sent));
            }
            // It killed itself and caught that: it simply lives on.
            self.clear_flags(cur, DYING);
            return Ok(sent);
        } else if self.tracer.running() {
            SwitchError::InSwitchHook
        } else {
            return Ok(sent);
        };
        drop_left_value(sent, "a value whose switch was refused");
        Err(Err(err))
    }

    /// Refuses the kill that `cur` caught (see `refuse_kill`), leaving
    /// `sent`, which is dropped once the refusal is made and `cur` switched
    /// back to: its destructor is user code, which may switch, and so refuse
    /// the kill itself first. Held meanwhile so that a second kill, which
    /// unwinds `cur` from inside the refusal, drops it as a left value,
    /// reported.
    fn refuse_kill_leaving<V, R: 'static>(&self, cur: Key, sent: V) -> Result<R, SwitchError> {
        let sent = LeftValue(Some(sent));
        let refused = self.refuse_kill::<R>(cur);
        drop(sent);
        refused
    }

    /// `leave` again once the hook has run, if `cur` was killed meanwhile
    /// (the hook, on `cur`'s stack, killed a greenlet that killed `cur`
    /// back, and caught that): a greenlet that caught a kill refuses it by
    /// switching, also when the kill came while its switch was under way.
    #[inline]
    fn leave_after_hook<V, R: 'static>(
        &self,
        cur: Key,
        sent: V,
    ) -> Result<V, Result<R, SwitchError>> {
        if self.records.flags(cur) & DYING == 0 {
            return Ok(sent);
        }
        self.leave(cur, sent)
    }

    /// `cur` if nobody can ever switch back to it.
    fn orphan_key(&self, cur: Key) -> Option<Key> {
        if self.records.refs(cur) == 0 && !self.is_kept_refuser(cur) {
            Some(cur)
        } else {
            if self.records.flags(cur) & ORPHAN != 0 {
                // It took a new handle to itself after its last one went.
                self.clear_flags(cur, ORPHAN);
            }
            None
        }
    }

    /// Fills the slow lane (which must be empty).
    pub(super) fn set_slow_lane(&self, signal: Signal, finished: Option<Key>, reap: Option<Key>) {
        let old = self.slow_lane.replace(Some(SlowLane {
            signal,
            finished,
            reap,
        }));
        debug_assert!(old.is_none(), "slow lane overwritten");
    }

    /// The first greenlet at or above `key` that is not dead: a switch or a
    /// result aimed at a dead greenlet goes to its first live ancestor.
    /// Main never dies, so the walk ends.
    pub(crate) fn first_live(&self, mut key: Key) -> Key {
        loop {
            if self.records.state(key) != State::Dead {
                return key;
            }
            match self.records.parent(key) {
                Some(parent) => key = parent,
                None => return key,
            }
        }
    }

    /// Transfers control, and `word`, to greenlet `key`, whose record is
    /// `to`; returns the word that comes back when something switches here
    /// again. The sender does the bookkeeping (who is current, whose
    /// yielder is in use, which coroutine runs next) so that the trampoline
    /// is a bare resume loop.
    ///
    /// # Safety
    /// `to` is `key`'s record, active or unstarted, and `key` is not
    /// current; `incoming` describes `word`; the caller calls `receive` (or
    /// `receive_slow`) with the returned word first thing.
    #[inline(always)]
    pub(super) unsafe fn jump(&self, key: Key, to: Target, word: Word) -> Word {
        let mine = self.current_yielder.replace(to.yielder);
        self.current.set(key);
        if mine.is_null() {
            // SAFETY: only main runs with a null yielder (an unstarted
            // greenlet sets its own before it can switch), and main is not
            // inside the trampoline while it runs; `to.coroutine` is the
            // child's, suspended or unstarted (the caller's contract).
            unsafe { self.trampoline(to.coroutine, word) }
        } else {
            self.next.set(to.coroutine);
            // SAFETY: `mine` was the current greenlet's yielder: it lives on
            // that greenlet's stack (this one, so it is live now) and is
            // the one the trampoline resumed this greenlet through.
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
    unsafe fn trampoline(&self, mut co: *mut Co, mut word: Word) -> Word {
        loop {
            // SAFETY: `co` is a live greenlet's coroutine (the caller's, or
            // the one the suspending child named in `next`), at a fixed
            // address at the top of its own stack; only this loop resumes
            // coroutines, so no other reference to it is in use.
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
    pub(super) unsafe fn receive<R: 'static>(&self, word: Word) -> Result<R, SwitchError> {
        if is_type::<R>(self.incoming.get()) {
            // SAFETY: `incoming` names `R`, so the word carries a live `R`
            // that its suspended sender will never touch again, and this
            // is its only receipt (the caller's contract).
            Ok(unsafe { decode::<R>(word) })
        } else {
            // SAFETY: forwarded: the same word, first thing, once.
            unsafe { self.receive_slow(word, OnKill::Unwind) }
        }
    }

    /// Everything but a plain value of the expected type at its usual
    /// address.
    ///
    /// # Safety
    /// As for `receive`.
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn receive_slow<R: 'static>(
        &self,
        word: Word,
        on_kill: OnKill,
    ) -> Result<R, SwitchError> {
        let ty = self.incoming.get();
        let lane = if ptr::eq(ty, &SLOW_LANE) {
            self.slow_lane.take()
        } else {
            None
        };
        let bare_kill = matches!(
            lane,
            Some(SlowLane {
                signal: Signal::UnwindNow,
                finished: None,
                reap: None,
            })
        );
        if bare_kill && on_kill == OnKill::Unwind {
            // A kill, raised before anything of this frame needs dropping
            // (the lane holds nothing to drop, and is forgotten), so the
            // unwinder passes this frame without a landing pad here: a
            // kill's cost is mostly the unwinder's, frame by frame.
            std::mem::forget(lane);
            self.unwind_now();
        }
        let (signal, finished, reap) = if ptr::eq(ty, &SLOW_LANE) {
            match lane {
                Some(s) => (s.signal, s.finished, s.reap),
                None => (Signal::Killed, None, None),
            }
        } else {
            (Signal::Value(ty), None, None)
        };
        // Who to reap, told apart from a greenlet that may take its slot
        // while a destructor below runs user code (which may let the
        // sender finish and its record go).
        let reap = reap.map(|key| (key, self.records.id(key)));
        // The same for the dead sender whose stack is recycled below: a
        // destructor that switches away may let something else recycle it
        // meanwhile (the thread's teardown), and its slot be reused.
        let finished = finished.map(|key| (key, self.records.id(key)));
        let mut late_panic = None;
        let result = match signal {
            Signal::Value(ty) if ty.id == TypeId::of::<R>() => {
                // SAFETY: the word carries a live `R` (equal `TypeId`s),
                // announced once and consumed here once; its suspended
                // sender will not touch it again.
                Ok(unsafe { decode::<R>(word) })
            }
            Signal::Value(ty) => {
                // The value is dropped here, in the receiver; a panic in its
                // destructor is held until the housekeeping below is done.
                // SAFETY: the word carries a live value of type `ty`, which
                // its sender will not touch again; it is dropped once.
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
            // (With `OnKill::Unwind`, when nothing else travels with it,
            // it was raised above.)
            Signal::UnwindNow if on_kill == OnKill::Unwind => self.unwind_now(),
            Signal::UnwindNow => Err(SwitchError::Killed),
        };
        if let Some((finished, id)) = finished {
            if self.records.is_live_with_id(finished, id) && self.records.liveness(finished).1 {
                self.recycle(finished);
            }
        }
        if let Some((reap, _)) = reap.filter(|&(key, id)| self.records.is_live_with_id(key, id)) {
            // The sender was unreachable when it left: kill it now, from here.
            let killed = if self.hub_runs() {
                // The hub greenlet unwinds only for its own kill: a panic
                // with which the reaped greenlet answers goes as a late
                // one (its receivers report it).
                match panic::catch_unwind(AssertUnwindSafe(|| self.kill(reap))) {
                    Ok(killed) => killed,
                    Err(p) if p.is::<GreenletExit>() => panic::resume_unwind(p),
                    Err(p) => {
                        match late_panic {
                            None => late_panic = Some(p),
                            Some(_) => crate::error::drop_quietly(p),
                        }
                        Ok(())
                    }
                }
            } else {
                self.kill(reap)
            };
            if killed.is_err() {
                self.report_refused(reap, "its last handle was dropped while it ran");
            }
        }
        match late_panic {
            Some(p) => self.late_panic(result, p),
            None => result,
        }
    }

    /// Whether the current greenlet is the hub's, which must not unwind
    /// but for its own kill (see `set_hub`).
    fn hub_runs(&self) -> bool {
        self.hub.get() == Some(self.current.get())
    }

    /// The panic of a wrong-typed value's destructor, which `receive_slow`
    /// ran: raised in the receiver, after the housekeeping, as a panic of
    /// its own; except where a raise would do worse than the panic. The
    /// hub greenlet gets it as `Panicked`, which its receivers report (it
    /// would die unwinding, and every greenlet with it); a receiver whose
    /// thread unwinds already (a killer in a destructor that a panic runs)
    /// reports it on stderr and keeps `result` (a panic out of such a
    /// destructor aborts the process).
    #[cold]
    #[inline(never)]
    fn late_panic<R>(
        &self,
        result: Result<R, SwitchError>,
        p: Box<dyn Any + Send>,
    ) -> Result<R, SwitchError> {
        if self.hub_runs() {
            drop(result);
            return Err(SwitchError::Panicked(p));
        }
        if std::thread::panicking() {
            report!(
                "greenlet: a value that arrived with the wrong type panicked as it was \
                 dropped, while the receiver unwound a panic: {}",
                crate::error::payload_message(p.as_ref()).unwrap_or("(non-text payload)")
            );
            crate::error::drop_quietly(p);
            return result;
        }
        drop(result);
        if let Some(raised_in) = self.raised_in.get() {
            raised_in(self.current.get());
        }
        panic::resume_unwind(p)
    }
}

/// Drops `value`, which the current greenlet's switch leaves with it
/// (`what` names it): its destructor's panic resumes in the caller, as any
/// panic does, unless the thread unwinds a panic (the switch was made by a
/// destructor), where it would abort the process: reported on stderr then,
/// as `Runtime::late_panic` does. The thread's `panicking`, not the
/// runtime's `current_unwinds`: a greenlet that caught a kill from an
/// unwinding killer and unwinds anew with `resume_unwind` is seen by the
/// first only (and one that caught such a kill and does not unwind gets its
/// panic reported too: std tells the two apart by nothing).
fn drop_left_value<T>(value: T, what: &str) {
    if std::thread::panicking() {
        crate::error::reporting_a_panic(
            what,
            " as it was dropped, while its greenlet unwound",
            move || drop(value),
        );
    } else {
        drop(value);
    }
}

/// A value a refused kill's switch leaves, held across the refusal: a
/// second kill that unwinds its greenlet from inside the refusal drops it
/// through [`drop_left_value`].
struct LeftValue<T>(Option<T>);

impl<T> Drop for LeftValue<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            drop_left_value(value, "a value whose switch refused a kill");
        }
    }
}

/// A switch or throw into a greenlet that the thread's exit leaves
/// suspended (see `Runtime::left_at_exit`), made by a destructor that the
/// teardown runs: it panics, saying so, unless the thread is unwinding
/// already (a destructor run by a panic), where a panic would abort the
/// process: the error a switch gets while unwinding, then. Made from
/// inside the switch hook (`in_hook`), it gets the hook's error, as any
/// switch made there does.
#[cold]
fn resumed_at_exit(in_hook: bool) -> SwitchError {
    if std::thread::panicking() {
        return SwitchError::Unwinding;
    }
    if in_hook {
        return SwitchError::InSwitchHook;
    }
    panic!(
        "greenlet: a started greenlet cannot be resumed while its thread exits \
         (its frames may borrow thread-locals already destroyed); it is left suspended"
    )
}

#[cold]
pub(super) fn unreachable_return() -> ! {
    // Coroutines never return: `finish` ends in a final suspend.
    std::process::abort()
}

fn mismatch<R: 'static, T: 'static>() -> SwitchError {
    SwitchError::TypeMismatch {
        expected: std::any::type_name::<R>(),
        found: std::any::type_name::<T>(),
    }
}
