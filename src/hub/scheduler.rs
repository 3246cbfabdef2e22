//! The scheduler: the hub greenlet's loop of rounds, the ready queue, and
//! the hand-off that lets a blocking greenlet switch straight to the next
//! ready one (see the [hub docs](super) for rounds).

use std::time::Duration;

use super::reactor::Reactor;
use super::time;
use super::wait::BlockedForever;
use super::{hub, try_hub, Hub};
use crate::error::{report_reaching_the_hub, SwitchError};
use crate::greenlet::Greenlet;
use crate::runtime::{Key, Runtime, State};

/// A counted reference to a greenlet, as the ready queue and the waits keep
/// it: what a [`Greenlet`] handle is, with the count changed inline (the
/// handle's own methods are calls into another unit).
pub(super) struct Counted(Key);

impl Counted {
    /// A reference to the running greenlet.
    #[inline]
    pub(super) fn current() -> Counted {
        Counted::current_in(Runtime::get())
    }

    /// A reference to the running greenlet of `rt` (the thread's runtime).
    #[inline]
    pub(super) fn current_in(rt: &Runtime) -> Counted {
        let key = rt.current();
        rt.add_ref(key);
        Counted(key)
    }

    /// A new reference to `key`, a live greenlet of `rt` (the thread's
    /// runtime).
    #[cold]
    pub(super) fn of(rt: &Runtime, key: Key) -> Counted {
        rt.add_ref(key);
        Counted(key)
    }

    /// `g`'s reference, taken over.
    #[inline]
    pub(super) fn from_greenlet(g: Greenlet) -> Counted {
        let key = g.key();
        // The handle's count goes to the `Counted`, which releases it.
        std::mem::forget(g);
        Counted(key)
    }

    #[inline]
    pub(super) fn key(&self) -> Key {
        self.0
    }

    /// For a hand-off, before the switch: gives the reference up at once
    /// when others hold the greenlet too (a handle: the count only goes
    /// down, nothing is reaped), and returns it otherwise, for the caller
    /// to keep until it runs again (released now, the greenlet would be
    /// reaped before it ran). A reference kept across the switch would
    /// keep the greenlet's record, and `stats` would list it, after it
    /// finished until the caller runs again, which a blocked caller may not
    /// do for a long time.
    #[inline(always)]
    pub(super) fn release_if_shared(self, rt: &Runtime) -> Option<Counted> {
        // One count written, and written back in the rare case it was the
        // last (cheaper than reading it first).
        if rt.records().drop_ref(self.0) != 0 {
            self.into_key();
            None
        } else {
            self.kept_after_all(rt)
        }
    }

    /// [`release_if_shared`](Counted::release_if_shared) found the
    /// reference to be the last: it is counted again and kept (rare: a
    /// detached greenlet).
    #[cold]
    #[inline(never)]
    fn kept_after_all(self, rt: &Runtime) -> Option<Counted> {
        rt.add_ref(self.0);
        Some(self)
    }

    /// Returned, panicked, or killed.
    #[inline]
    fn is_dead_in(&self, rt: &Runtime) -> bool {
        rt.records().state(self.0) == State::Dead
    }

    /// The key, with the reference it holds, taken over by the caller.
    #[inline]
    pub(super) fn into_key(self) -> Key {
        let key = self.0;
        std::mem::forget(self);
        key
    }

    /// Drops the reference through `rt`, the thread's live runtime (what
    /// the drop does after looking the runtime up).
    #[inline]
    pub(super) fn release_in(self, rt: &Runtime) {
        rt.release_ref(self.into_key());
    }
}

impl Drop for Counted {
    /// As a handle's drop: the last reference to a greenlet reaps it.
    #[inline]
    fn drop(&mut self) {
        // After the thread's runtime is torn down there is nothing to free.
        if let Some(rt) = Runtime::try_get() {
            rt.release_ref(self.0);
        }
    }
}

/// Takes back `next` (and its reference), which a finishing greenlet's
/// hand-off named and which the runtime gives back: that greenlet was
/// killed, or ended with an error, before it finished into `next`.
pub(super) fn hand_back(next: Key) {
    let next = Counted(next);
    if let Some(hub) = try_hub() {
        hub.unpop_ready(next);
    }
}

/// Forgets what the hub keeps of a blocking call or a yield of `key`,
/// which the runtime is about to leave by raising a panic that came with
/// no error (see `Runtime::set_hub`): as `switched_back_with` does for a
/// panic that came as one, so no ready-queue entry resumes `key` later
/// inside another switch, and main is no longer marked blocked.
pub(super) fn raised_in(key: Key) {
    if let Some(hub) = try_hub() {
        hub.switched_back(key == Runtime::get().main_key());
        hub.forget_ready(key);
    }
}

impl Hub {
    /// The hub greenlet's loop; see the module docs.
    pub(super) fn run_loop(&self) {
        let main = Greenlet::main();
        // Whether the last pass parked in `poll`: its events are fresh, so
        // no second look is needed before the round.
        let mut polled = false;
        loop {
            // A round's end: timers and I/O, then a new round of what is
            // ready. The hub is also switched to in the middle of a round
            // (by a greenlet whose switches must not hand off: see
            // `Runtime::may_divert`), and then carries the round on, so
            // that the order is the same as with hand-offs.
            if self.round_left.get() == 0 {
                if self.main_in_run.get()
                    && self.ready.borrow().is_empty()
                    && self.only_runs_deadlines_left()
                    && !self.daemons_ready_first()
                {
                    // Nothing left but `run`'s own deadline, due or not:
                    // the work ran out first (see below).
                    self.end_run(&main);
                    continue;
                }
                self.fire_due_timers();
                if !std::mem::take(&mut polled)
                    && self.wants_poll()
                    && !self.ready.borrow().is_empty()
                {
                    // Others are ready: collect I/O without waiting.
                    self.poll_io(Some(Duration::ZERO));
                }
                self.round_left.set(self.ready.borrow().len());
            }
            let rt = Runtime::get();
            if let Some(next) = self.pop_ready(rt) {
                // What comes back (a spawned greenlet's `()`, a self-kill's
                // error) only means "carry on"; a panic or a throw that
                // reached the hub is reported. The reference is held in
                // `handed_in` meanwhile (see there), and let go when the
                // loop is back, unless `stats` let it go first.
                let key = next.key();
                self.handed_in.set(Some(next));
                rt.hand_to(key, report_reaching_the_hub);
                if let Some(next) = self.handed_in.take() {
                    next.release_in(rt);
                }
                continue;
            }
            // Nothing left of the round, if anything was (the queue can
            // run out before the count does, and a round carried on can end
            // on greenlets killed while ready): what else is ready goes in
            // a new round, after the timers.
            self.round_left.set(0);
            if !self.ready.borrow().is_empty() {
                continue;
            }
            // Nothing ready: greenlets in `idle` run now, before the hub
            // would park (or jump a paused clock), once what is due has
            // had its turn; daemons' only after the daemons' check below.
            if self.wake_idle_waiters(false) {
                continue;
            }
            // With daemons marked, what is left may be only theirs: then
            // `run` returns, or main, blocked in a call it cannot be woken
            // from by itself, is told it would wait for ever, and so is
            // main in a switch of its own (to a greenlet now blocked in the
            // hub: nothing but a daemon could bring it back).
            // `only_daemons_wait` reads counters in the common case;
            // `main_can_wake_itself` walks the waits, so it is asked last.
            let main_is_blocked = self.main_blocked.get().is_some();
            // Main is not ready (nothing is), not in `run` and not in a
            // blocking call: it is in a switch of its own.
            let main_in_own_switch = !self.main_in_run.get() && !main_is_blocked;
            let mut main_waits_for_daemons = false;
            let only_daemons_left = self.daemons.get() > 0 && self.only_daemons_wait() && {
                main_waits_for_daemons = main_in_own_switch
                    || (main_is_blocked && !self.main_can_wake_itself(main.key()));
                self.main_in_run.get() || main_waits_for_daemons
            };
            if only_daemons_left && self.daemons_ready_first() {
                continue;
            }
            if only_daemons_left {
                // Main resumes in `run` or gets an error: not a resume the
                // ready queue made (see `Hub::note_resumed`).
                self.resuming.set(Some(main.key()));
                let back = if main_in_own_switch {
                    main.throw::<String, ()>(self.nothing_can_run(true))
                } else if main_waits_for_daemons {
                    // Main waits for what nothing but a daemon's wait could
                    // bring: as if nothing were left (gevent's `LoopExit`
                    // with only `ref=False` watchers), not a wait that
                    // daemons keep going for ever.
                    main.throw::<BlockedForever, ()>(BlockedForever::OnlyDaemons)
                } else {
                    // What is left would only keep daemons going: `run`
                    // returns.
                    self.main_in_run.set(false);
                    main.switch::<(), ()>(())
                };
                if let Err(e) = back {
                    report_reaching_the_hub(e);
                }
                continue;
            }
            if self.main_in_run.get()
                && self.only_runs_deadlines_left()
                && !self.daemons_ready_first()
            {
                // Main runs the hub inside `with_timeout` (`run_timeout`):
                // its own deadlines do not keep `run` going.
                self.end_run(&main);
                continue;
            }
            if self.wake_idle_waiters(true) {
                continue; // daemons in `idle`: run or main goes on first
            }
            let deadline = self.timers.borrow_mut().next_deadline();
            if let Some(deadline) = deadline.filter(|_| time::is_paused()) {
                // A paused clock jumps to the next timer instead of
                // waiting for it, once I/O that is ready has been taken;
                // but a thread pool's job ends when it ends: the hub waits
                // for it rather than time it out (see `time::OffHubWork`).
                if self.reactor.get().is_some() {
                    if self.off_hub_work() > 0 {
                        self.parked.set(true);
                        self.poll_io(None);
                        self.parked.set(false);
                        continue;
                    }
                    if self.poll_io(Some(Duration::ZERO)) || !self.ready.borrow().is_empty() {
                        continue;
                    }
                }
                time::jump_to(deadline);
                continue;
            }
            let timeout = deadline.map(|d| d.saturating_duration_since(time::now()));
            if self.io_waits.get() > 0 {
                // Park in `poll` until I/O, another thread's wake-up, or
                // the first timer.
                self.parked.set(true);
                self.park_io(timeout);
                self.parked.set(false);
                polled = true;
                continue;
            }
            if let Some(timeout) = timeout {
                // Only timers remain: park the thread until the first.
                self.parked.set(true);
                match self.reactor.get() {
                    // Remote work may arrive meanwhile.
                    Some(_) => {
                        self.poll_io(Some(timeout));
                        polled = true;
                    }
                    None => std::thread::sleep(timeout),
                }
                self.parked.set(false);
                continue;
            }
            if self.reactor.get().is_some_and(Reactor::has_mail) {
                // Another thread posted work since the last poll: take it
                // before deciding nothing is left.
                self.poll_io(Some(Duration::ZERO));
                continue;
            }
            // Nothing is left. Main ran `run` (which returns), or is
            // blocked in a call nothing can ever complete (H9), or is in a
            // switch of its own while the greenlets it started are all
            // blocked: then its switch gets an error saying so (gevent's
            // `LoopExit`), never a stray value.
            self.resuming.set(Some(main.key()));
            let back = if self.main_blocked.get().is_some() {
                main.throw::<BlockedForever, ()>(BlockedForever::NothingLeft)
            } else if self.main_in_run.replace(false) {
                main.switch::<(), ()>(())
            } else {
                main.throw::<String, ()>(self.nothing_can_run(false))
            };
            if let Err(e) = back {
                report_reaching_the_hub(e);
            }
        }
    }

    /// What main's own switch gets when nothing but the hub is left to
    /// run, or `only_daemons` wait (which do not keep main waiting).
    #[cold]
    fn nothing_can_run(&self, only_daemons: bool) -> String {
        let left = if only_daemons {
            "only daemon greenlets wait (their waits and timers never keep main \
             waiting; see `hub::daemon`)"
        } else {
            "no timer is pending"
        };
        format!(
            "greenlet::hub: nothing can run: no greenlet is ready and {left} (the \
             last blocking call was {}), so the hub switched back to main",
            self.last_call.get()
        )
    }

    /// Before the hub decides that what is left would only keep daemons
    /// going (`run` returns, main is told it would wait for ever): whether
    /// a daemon's descriptor became ready since the last poll (main wrote
    /// to its pipe, say), found by one poll that does not wait. That
    /// daemon then runs first, and what it does may bring main back; left
    /// unpolled, the answer would hang on whether the hub happened to poll.
    /// Once for each wait of main, like libev's one last loop iteration
    /// with only unreferenced watchers left: daemons that keep making each
    /// other ready do not keep main waiting.
    fn daemons_ready_first(&self) -> bool {
        if self.daemon_io_waits.get() == 0 || self.daemons_polled.replace(true) {
            return false;
        }
        self.poll_io(Some(Duration::ZERO)) || !self.ready.borrow().is_empty()
    }

    /// Ends main's `run`: it returns.
    #[cold]
    fn end_run(&self, main: &Greenlet) {
        self.main_in_run.set(false);
        self.resuming.set(Some(main.key()));
        if let Err(e) = main.switch::<(), ()>(()) {
            report_reaching_the_hub(e);
        }
    }

    /// The next ready greenlet of the current round, skipping dead ones.
    #[inline(always)]
    pub(super) fn pop_ready(&self, rt: &Runtime) -> Option<Counted> {
        self.rotate_ready(rt, None, false)
    }

    /// Puts `back` (a yielding greenlet) at the back of the ready queue and
    /// takes the next greenlet of the round (of a new round when
    /// `new_round`: all that is ready, `back` included), with one borrow
    /// of the queue.
    #[inline(always)]
    fn rotate_ready(
        &self,
        rt: &Runtime,
        back: Option<Counted>,
        new_round: bool,
    ) -> Option<Counted> {
        let mut ready = self.ready.borrow_mut();
        let left = if new_round {
            ready.len() + usize::from(back.is_some())
        } else {
            self.round_left.get()
        };
        // A yielding greenlet is pushed and the next one popped in one
        // step (with `back`, `left` is at least 1: a new round counts it,
        // and a round under way has some left).
        let popped = match back {
            Some(g) => Some(ready.rotate(g)),
            None if left == 0 => {
                self.round_left.set(0);
                return None;
            }
            None => ready.pop_front(),
        };
        match popped {
            Some(next) if !next.is_dead_in(rt) => {
                self.round_left.set(left - 1);
                drop(ready);
                super::budget::refill();
                self.resuming.set(Some(next.key()));
                Some(next)
            }
            other => {
                drop(ready);
                self.pop_ready_past_dead(rt, other, left - 1)
            }
        }
    }

    /// [`rotate_ready`](Hub::rotate_ready) after it popped a dead greenlet
    /// (`dead`), or nothing: drops it and takes the next live one among
    /// the round's `left` (cold: a greenlet killed while ready).
    #[cold]
    #[inline(never)]
    fn pop_ready_past_dead(
        &self,
        rt: &Runtime,
        dead: Option<Counted>,
        left: usize,
    ) -> Option<Counted> {
        let Some(dead) = dead else {
            // The queue ran out first.
            self.round_left.set(left);
            return None;
        };
        // Dropping a dead greenlet's reference runs no user code, but the
        // queue is not borrowed while it happens anyway.
        drop(dead);
        let mut left = left;
        loop {
            let next = {
                let mut ready = self.ready.borrow_mut();
                if left == 0 {
                    break;
                }
                left -= 1;
                match ready.pop_front() {
                    Some(next) => next,
                    None => break,
                }
            };
            if !next.is_dead_in(rt) {
                self.round_left.set(left);
                super::budget::refill();
                self.resuming.set(Some(next.key()));
                return Some(next);
            }
            drop(next);
        }
        self.round_left.set(left);
        None
    }

    /// The greenlet a blocking greenlet hands control to: the next ready one
    /// of this round; at a round's end, a new round starts right here when
    /// no timer is pending (the hub would do nothing else), otherwise `None`
    /// (go through the hub, which fires the timers first). A yielding
    /// greenlet passes itself as `back`, to go to the back of the queue
    /// first.
    #[inline(always)]
    pub(super) fn next_for_handoff(&self, rt: &Runtime, back: Option<Counted>) -> Option<Counted> {
        let new_round = self.round_left.get() == 0;
        if new_round && (!self.timers.borrow().is_empty() || self.wants_poll()) {
            if let Some(g) = back {
                self.push_ready(g);
            }
            return None;
        }
        self.rotate_ready(rt, back, new_round)
    }

    /// Puts `g` at the back of the ready queue.
    #[inline]
    pub(super) fn make_ready(&self, g: Greenlet) {
        self.push_ready(Counted::from_greenlet(g));
    }

    /// Makes main, driving the hub in `run`, ready (once: it may be
    /// there already), so that `run` gets control back in this round.
    #[cold]
    pub(super) fn wake_main_in_run(&self) {
        let rt = Runtime::get();
        let main = rt.main_key();
        if !self.ready.borrow().iter().any(|g| g.key() == main) {
            self.push_ready(Counted::of(rt, main));
            self.main_queued_by_run.set(true);
        }
    }

    /// Puts `g` at the back of the ready queue.
    #[inline]
    pub(super) fn push_ready(&self, g: Counted) {
        self.ready.borrow_mut().push_back(g);
    }

    /// Called by a spawned greenlet about to return: its end goes to the
    /// next ready greenlet instead of its parent (the hub), which hands
    /// control straight there instead of through the hub. Its parent stays
    /// the hub (see `Runtime::finish_into`).
    pub(super) fn hand_off_on_finish(&self, rt: &Runtime) {
        if rt.records().killer(rt.current()).is_some() {
            // A kill is under way (caught by a destructor of its locals or
            // its result): its end goes to its killer, and nothing is taken
            // off the ready queue.
            return;
        }
        if let Some(next) = self.next_for_handoff(rt, None) {
            // Straight to the runtime: the caller is a spawned greenlet
            // (never main), and no handle to it is needed.
            debug_assert_ne!(rt.current(), rt.main_key());
            // A burst of finishing greenlets resumes one parked stack after
            // another, each out of cache: start loading the one after
            // `next` while `next` runs.
            if let Some(after) = self.ready.borrow().front() {
                crate::stack::prefetch_parked_frames(rt.records().target(after.key()).coroutine);
            }
            rt.finish_into(next.into_key());
        }
    }

    /// Puts `next`, just taken for a hand-off that did not happen, back at
    /// the front of the ready queue, in the round it was taken from (see
    /// [`hand_back`]).
    #[cold]
    pub(super) fn unpop_ready(&self, next: Counted) {
        self.ready.borrow_mut().push_front(next);
        self.round_left.set(self.round_left.get() + 1);
    }

    /// A yield's work before its switch: puts the current greenlet at the
    /// back of the ready queue and takes the one to hand control to, or
    /// `None` when the hub greenlet runs next (see
    /// [`next_for_handoff`](Hub::next_for_handoff)).
    #[inline(always)]
    fn yield_next(&self, rt: &Runtime) -> Option<Counted> {
        // An expired `with_timeout` scope interrupts a yielding loop too.
        if let Some(s) = self.fired_scope() {
            super::timeout::interrupted(s);
        }
        if rt.current() == self.key {
            super::wait::blocking_in_hub(YIELD);
        }
        self.next_for_handoff(rt, Some(Counted::current_in(rt)))
    }
}

/// The name a yield gives in its panics.
const YIELD: &str = "hub::yield_now";

/// [`yield_now`] when the hub greenlet runs next: at a round's end with
/// timers or I/O to look at (once a round, so out of line).
#[cold]
#[inline(never)]
fn yield_through_hub() {
    let hub = hub();
    hub.check_alive(YIELD);
    match hub.greenlet.switch::<(), ()>(()) {
        Ok(()) => hub.note_resumed(Runtime::get().current()),
        Err(e) => {
            let rt = Runtime::get();
            if rt.switch_fails_at_once() {
                // It never left: off the ready queue again.
                hub.forget_ready(rt.current());
            }
            super::wait::switched_back_with(e, YIELD);
        }
    }
}

/// A yield whose switch failed at once (see
/// `Runtime::switch_fails_at_once`): the greenlet `next` it took goes back
/// to the front of the ready queue, and the yielder, which never left,
/// off it.
#[cold]
#[inline(never)]
fn undo_yield(rt: &Runtime, next: Key) {
    let hub = hub();
    hub.forget_ready(rt.current());
    // With a reference of its own: the yield's (if it kept one) is
    // released after this.
    hub.unpop_ready(Counted::of(rt, next));
}

/// [`yield_now`] from a greenlet whose switches may go elsewhere (to its
/// killer, refusing a kill, or failing once it may not refuse: see
/// `Runtime::may_divert`): queued, then through the hub greenlet, so that
/// no ready greenlet is taken for a hand-off that does not happen; off
/// the queue again if the switch failed.
#[cold]
#[inline(never)]
fn yield_diverted() {
    let hub = hub();
    // An expired `with_timeout` scope interrupts a yielding loop here too.
    if let Some(s) = hub.fired_scope() {
        super::timeout::interrupted(s);
    }
    hub.check_alive(YIELD);
    let rt = Runtime::get();
    hub.push_ready(Counted::current_in(rt));
    /// Takes the yielder off the ready queue if the switch unwinds
    /// instead of happening (a switch hook panicked on it): queued, it
    /// would later be resumed in whatever switch it makes next.
    struct Unqueue<'a>(&'a Hub, &'a Runtime);
    impl Drop for Unqueue<'_> {
        fn drop(&mut self) {
            self.0.forget_ready(self.1.current());
        }
    }
    let unqueue = Unqueue(&hub, rt);
    let outcome = hub.greenlet.switch::<(), ()>(());
    std::mem::forget(unqueue);
    match outcome {
        Ok(()) => hub.note_resumed(rt.current()),
        Err(e) => {
            // Still queued: this greenlet did not leave.
            hub.forget_ready(rt.current());
            super::wait::switched_back_with(e, YIELD);
        }
    }
    drop(hub);
    interrupt_if_expired();
}

/// The keys of the greenlets in this thread's ready queue (for `stats`).
pub(crate) fn ready_keys() -> Vec<Key> {
    try_hub().map_or_else(Vec::new, |hub| {
        hub.ready.borrow().iter().map(Counted::key).collect()
    })
}

/// Goes to the back of the ready queue and lets every other ready greenlet
/// run first: strict round-robin (two greenlets yielding in turn run
/// `1A 2A 1B 2B`). No allocation happens per call.
///
/// # Panics
///
/// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
// Inlined to the switch, into the caller's frame (see `wait.rs`): left to
// the compiler, a caller of some size kept it out of line, at 25 ns a
// yield between two greenlets instead of 7.4.
#[inline(always)]
pub fn yield_now() {
    #[cfg(feature = "tokio")]
    if super::tokio_context_entered() {
        super::refuse_blocking_in_tokio_context("hub::yield_now");
    }
    let rt = Runtime::get();
    if rt.may_divert(rt.current()) {
        return yield_diverted();
    }
    // No reference to the hub is kept across the switch: a parked
    // greenlet's frame holds only what it resumes with (the greenlet it
    // handed control to, whose reference it drops), a cache line less
    // for each of many parked greenlets.
    // SAFETY: the borrow ends before the switch, and nothing before it
    // (taking the next greenlet, queueing this one) ends the thread.
    let next = unsafe { &*super::hub_ptr() }.yield_next(rt);
    match next {
        Some(next) => {
            let key = next.key();
            if key == rt.current() && rt.current_unwinds() {
                // Alone, it would hand control to itself, which never
                // fails: refused as when anything else is ready.
                super::wait::switched_back_with(SwitchError::Unwinding, YIELD);
            }
            let kept = next.release_if_shared(rt);
            rt.hand_to(key, |e| {
                if rt.switch_fails_at_once() {
                    undo_yield(rt, key);
                }
                super::wait::switched_back_with(e, YIELD);
            });
            // SAFETY: the hub outlives every greenlet frame that resumes,
            // and the borrow ends here.
            unsafe { &*super::hub_ptr() }.note_resumed(rt.current());
            // The runtime outlives every greenlet frame that resumes.
            if let Some(next) = kept {
                next.release_in(rt);
            }
        }
        None => yield_through_hub(),
    }
    interrupt_if_expired();
}

/// The end of a yield: a `with_timeout` deadline that came due while this
/// greenlet waited for its turn (the hub fires timers between rounds)
/// interrupts the yield on its way out, as it would have interrupted a
/// sleep.
#[inline(always)]
fn interrupt_if_expired() {
    if !super::timeout::any_scopes() {
        return;
    }
    if let Some(hub) = super::try_hub_ptr() {
        // SAFETY: the thread's hub, live while its pointer is set; the
        // borrow ends before anything could switch (`interrupted` unwinds,
        // holding nothing of it).
        let hub = unsafe { hub.as_ref() };
        if let Some(s) = hub.fired_scope() {
            super::timeout::interrupted(s);
        }
    }
}

/// Lets the hub loop's reference to the greenlet it last handed control
/// to go when that greenlet is dead (see `Hub::handed_in`), for `stats`.
pub(crate) fn settle_handed_in() {
    if let Some(hub) = try_hub() {
        let rt = Runtime::get();
        if let Some(g) = hub.handed_in.take() {
            if g.is_dead_in(rt) {
                g.release_in(rt);
            } else {
                hub.handed_in.set(Some(g));
            }
        }
    }
}

/// Drives the hub from the main greenlet until no greenlet is ready, no
/// timer is pending and no greenlet waits on a socket or a channel.
///
/// Inside a [`with_timeout`](super::with_timeout) scope, `run` is a
/// blocking call as any other: when the scope expires, `run` unwinds out
/// (in the round where the deadline fires) and the scope returns
/// `Err(Elapsed)`, leaving the other greenlets where they are;
/// [`run_timeout`] says the same with a `bool`.
///
/// # Panics
///
/// When called from a greenlet other than main; as any blocking call
/// while main unwinds (from a destructor during a panic, a kill or a
/// `with_timeout` expiry: which, in a destructor, aborts) and inside a
/// switch hook.
pub fn run() {
    let hub = hub();
    assert!(
        Greenlet::current().is_main(),
        "greenlet::hub::run must be called from the main greenlet"
    );
    /// Clears the flag on every exit path, and takes main off the ready
    /// queue if a scope's expiry put it there and something else resumed
    /// it (a child switching to main, a panic reaching it): the hub would
    /// later switch to main wherever it is then.
    struct InRun<'a>(&'a Hub);
    impl Drop for InRun<'_> {
        fn drop(&mut self) {
            self.0.main_in_run.set(false);
            if self.0.main_queued_by_run.replace(false) {
                self.0.forget_ready(Runtime::get().main_key());
            }
        }
    }
    // Inside a `with_timeout` scope that already expired: raised at once,
    // as by any blocking call.
    if let Some(s) = hub.fired_scope() {
        super::timeout::interrupted(s);
    }
    hub.main_in_run.set(true);
    hub.daemons_polled.set(false);
    let _in_run = InRun(&hub);
    loop {
        hub.check_alive("hub::run");
        let outcome = hub.greenlet.switch::<(), ()>(());
        // A child of main panicked (or something threw into main) meanwhile:
        // it must not vanish, not even behind an expired scope. A stray
        // value (a child of main returned) only means: keep driving.
        match outcome {
            Err(SwitchError::Panicked(p) | SwitchError::Thrown(p)) => {
                crate::unwind::require_unwinding("a throw");
                std::panic::resume_unwind(p);
            }
            // Refused at once, as it would be again: a spin. `run` is a
            // blocking call of main's, and refuses as the others do.
            Err(SwitchError::Unwinding) => {
                panic!("greenlet::hub: hub::run cannot block while the greenlet unwinds")
            }
            Err(SwitchError::InSwitchHook) => {
                panic!("greenlet::hub: hub::run cannot block inside a switch hook")
            }
            _ => {}
        }
        // Made ready by the expiry of one of main's `with_timeout` scopes
        // (see `Hub::interrupt`): it unwinds out of `run`.
        if let Some(s) = hub.fired_scope() {
            super::timeout::interrupted(s);
        }
        if !hub.main_in_run.get() {
            // The hub ran out of work and cleared the flag.
            return;
        }
    }
}

/// [`run`] for at most `timeout`: `true` when the hub ran out of work
/// first, `false` when `timeout` passed (the greenlets left are where
/// they were; `run` again to carry on). gevent's `hub.join(timeout)` and
/// `gevent.wait(timeout=...)`. Timers due at the same instant fire in
/// the order they were set: one due exactly at the deadline and set after
/// this call began fires after it (its greenlet runs at the next `run`),
/// one set before (a greenlet already asleep until then) fires first, and
/// its greenlet may run and finish inside this call, which still returns
/// `false` (the deadline passed). On a
/// [paused clock](super::time), a zero timeout never lets the clock
/// jump (the deadline is always due first): poll with a small one.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub::{self, time};
///
/// time::pause(); // the test clock: no real waiting below
/// let slow = hub::spawn(|| hub::sleep(Duration::from_secs(10)));
/// assert!(!hub::run_timeout(Duration::from_secs(1)));
/// assert!(!slow.is_finished());
/// assert!(hub::run_timeout(Duration::from_secs(60)));
/// assert!(slow.is_finished());
/// ```
///
/// # Panics
///
/// As [`run`]. In a build with `panic = "abort"`, the timeout passing
/// aborts the process (with a line saying why), as any `with_timeout`
/// expiry does there.
pub fn run_timeout(timeout: Duration) -> bool {
    super::with_timeout(timeout, run).is_ok()
}

/// Runs `f` as a program's body on the main greenlet, then kills every
/// greenlet it left alive (spawned or not; the hub itself is spared) and
/// returns `f`'s value — or, if `f` panicked, kills them and then resumes
/// the panic.
///
/// Started greenlets still suspended when a thread exits are left as they
/// are, their destructors not run and their stacks leaked: the exit runs
/// after some of the thread's thread-locals are gone, which their frames
/// may borrow (see the crate's **Threads** rule). This kills them while
/// every thread-local is still there, the way a server should shut down:
/// connections' greenlets unwind, their sockets close, their guards run.
/// A greenlet whose unwinding panics (or that refuses its kill) is
/// reported on stderr in one line naming it, and the others are still
/// killed. Greenlets that destructors make meanwhile are killed too, for
/// up to 16 rounds (and at most 16 kills for each greenlet slot there was
/// as `f` returned, 4,096 at the least): destructors still making them
/// after that (a guard
/// that respawns its worker) are reported, and the last ones they made
/// left alive.
///
/// # Panics
///
/// When called from a greenlet other than main, and when `f` panics.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub;
///
/// let served = hub::run_main(|| {
///     let conn = hub::spawn(|| hub::sleep(Duration::from_secs(3600)));
///     hub::sleep(Duration::from_millis(1)); // serve a while
///     conn.is_finished()
/// });
/// assert!(!served); // the connection was still open; it has been killed
/// ```
pub fn run_main<R>(f: impl FnOnce() -> R) -> R {
    assert!(
        Greenlet::current().is_main(),
        "greenlet::hub::run_main must be called from the main greenlet"
    );
    /// Kills what `f` left, on every exit path.
    struct KillLeft;
    impl Drop for KillLeft {
        fn drop(&mut self) {
            let spare = try_hub().map(|hub| hub.key);
            Runtime::get().kill_all("when hub::run_main ended", spare);
        }
    }
    let _left = KillLeft;
    f()
}
