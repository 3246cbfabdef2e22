//! Waiting: the one place where a greenlet blocks.
//!
//! Every blocking call of the hub (a queue's `get` and `put`, an event's
//! `wait`, a `join`, a `sleep`, a socket or channel wait) builds a
//! [`Waiter`]: it registers a *wait* (the greenlet, why it was woken, its
//! deadline's timer), lets the primitive put the wait's key on its own list,
//! switches away until the wait is woken, and on every exit path (woken,
//! timed out, interrupted by `with_timeout`, killed, thrown into) ends the
//! wait, cancels its timer, clears the `stats` and scope bookkeeping and
//! calls the primitive's [`Unlink`] once. A primitive supplies only that
//! unlinking. (One exception: a call that has used what its wait was woken
//! for may end it with [`Waiter::end_woken`], which skips the `Unlink`
//! when it has nothing left to undo; it is `unsafe` for that reason.)
//!
//! A wait lives in one of two places. One with a deadline, or made while a
//! `with_timeout` scope is live on the thread, or one that a timer, a
//! scope, a socket or another thread must find later, is registered in the
//! hub's table under a generation-checked [`WaitKey`]. The common one, a
//! `get`, `put`, `wait`, `join` or `acquire` with no deadline, is kept in
//! a [`WaitNode`] in the blocked call's own frame ([`Waiter::with_node`]):
//! nothing will ever look it up by key, and the primitive's list holds a
//! pointer to it ([`WaitRef::Node`]) that the waiter's drop takes back on
//! every exit path. (A `Queue` links the blocked call's slot, which holds
//! the node and carries the item across: `hub/handoff.rs`.) With the wake-up of such a wait and the waiter's end
//! inlined where they are used, a ping-pong hop between two greenlets went
//! from 464 to 370 instructions, a spawn and join from 1,090 to 1,002.
//!
//! The switch should happen in the caller's own frame: a call whose frame
//! is live across a stack switch returns, once resumed, through a CPU
//! return stack filled by the other greenlet, so its return is
//! mispredicted, and so is the next greenlet's, on every block. So every
//! function from the public entry of the hub's own blocking calls down to
//! the switch is `#[inline(always)]`: `yield_now`, `sleep`, `sleep_until`,
//! `Queue` and `JoinableQueue` (`get`, `put`, `recv`, `send`, their
//! timeouts, `join`), `Event`, `AsyncResult`, `JoinHandle` (`join`, `wait`),
//! `Group`/`Pool` joins, `Mutex::lock`, `Semaphore::acquire` and their
//! timeouts. Measured: a `Mutex` handed back and forth 49.6 -> 28.7 ns a
//! lock, `yield_now` between two greenlets 25 -> 7.4 ns. Work that returns
//! before the switch (registering, waking others) may stay out of line.
//! `wait_any` / `iwait` and the I/O waits (a system call dominates them)
//! keep out-of-line frames: a block there costs those mispredictions,
//! about 20 ns (the `Mutex` figure above).

use std::cell::{Cell, RefCell};
use std::ptr::{self, NonNull};
use std::rc::Rc;
use std::time::Instant;

use super::scheduler::Counted;
use super::slots::{slot_key, SlotKey, Slots};
use super::timeout::{interrupted, ScopeKey};
use super::timer::Action;
use super::{daemon, Hub};
use crate::error::SwitchError;
use crate::runtime::{Key, Runtime};
use crate::stats::WaitOn;

slot_key! {
    /// Names one blocked call's wait. A key kept past the wait's end (in a
    /// wait list, a socket's waiters, a scope) names nothing, even after its
    /// slot is reused.
    WaitKey
}

/// The packed form, for code that keeps wait keys as plain integers.
impl From<WaitKey> for usize {
    #[inline]
    fn from(key: WaitKey) -> usize {
        key.packed()
    }
}

/// From the packed form ([`From<WaitKey> for usize`]).
impl From<usize> for WaitKey {
    #[inline]
    fn from(packed: usize) -> WaitKey {
        // With generation 0, `pack` keeps its index argument as it is, so
        // the packed form round-trips.
        WaitKey::pack(packed, 0)
    }
}

/// What a primitive keeps to wake a blocked call: the key of a wait in
/// the hub's table, or the node of a wait kept in the blocked call's own
/// frame (see [`WaitNode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitRef {
    Key(WaitKey),
    Node(NodeRef),
}

/// A pointer to a live [`WaitNode`]. Only [`Waiter::with_node`] makes one
/// (the field is private to this module), and it is valid until that
/// waiter ends: a primitive may keep copies only where its [`Unlink`]
/// takes them back, and a waker uses one it takes off such a list at once,
/// before anything can switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeRef(NonNull<WaitNode>);

impl WaitRef {
    /// The key of a wait registered by [`Waiter::new`], which is always in
    /// the hub's table.
    ///
    /// # Panics
    ///
    /// On a frame wait: only [`Waiter::with_node`] makes those.
    #[inline]
    pub(crate) fn key(self) -> WaitKey {
        match self {
            WaitRef::Key(key) => key,
            WaitRef::Node(_) => unreachable!("a frame wait has no key"),
        }
    }
}

impl WaitRef {
    /// The key of a wait in the hub's table; `None` for a frame wait.
    #[inline(always)]
    pub(crate) fn table_key(self) -> Option<WaitKey> {
        match self {
            WaitRef::Key(key) => Some(key),
            WaitRef::Node(_) => None,
        }
    }
}

impl From<WaitKey> for WaitRef {
    #[inline]
    fn from(key: WaitKey) -> WaitRef {
        WaitRef::Key(key)
    }
}

/// A packed wait key (see [`From<WaitKey> for usize`]).
impl From<usize> for WaitRef {
    #[inline]
    fn from(packed: usize) -> WaitRef {
        WaitRef::Key(WaitKey::from(packed))
    }
}

/// A wait kept in the frame of the blocked call, for the common case of a
/// wait with no deadline and no `with_timeout` scope on the thread: no
/// timer and no scope will ever look it up by key, so it needs no place in
/// the hub's table (whose insert, generation-checked look-ups and removal
/// were about a third of a queue hand-off's instructions).
///
/// The caller declares it before its [`Waiter`], which borrows it, so it
/// outlives the waiter and cannot move while the waiter lives. A
/// primitive's list holds it as a [`WaitRef::Node`] pointer, which stays
/// valid because every way out of a wait (woken, closed, killed, thrown
/// into) ends with the waiter's drop (or [`Waiter::end_woken`], whose
/// caller vouches that the pointer is off the primitive's lists), and that
/// drop takes the pointer off the primitive's list (the [`Unlink`]
/// contract) and off the hub's list of frame waits before the node can go. The stack it lives on is only
/// freed once its greenlet has finished, by when every frame on it has
/// been left (a kill unwinds them).
///
/// In this order, 16-byte aligned: what a waker reads and writes (the
/// greenlet, how it was woken) shares one 16-byte unit, so one cache line.
/// In the compiler's order they were 24 bytes apart, and a burst's
/// `Event::set` missed on two lines of each parked greenlet's node.
#[repr(C, align(16))]
pub(crate) struct WaitNode {
    /// Moved to the ready queue by the wake-up.
    greenlet: Cell<Option<Counted>>,
    /// How it was woken: [`Wake::Pending`], [`Wake::Ready`] or
    /// [`Wake::TimedOut`] (no timer or scope ever reaches a frame wait), as
    /// one byte.
    wake: Cell<NodeWake>,
    /// The hub's list of frame waits (for `stats`): the neighbours.
    prev: Cell<*const WaitNode>,
    next: Cell<*const WaitNode>,
    /// What the call waits on, for `stats`.
    on: Cell<WaitOn>,
}

impl WaitNode {
    /// A node for a wait on `on` (what `stats` shows).
    #[inline(always)]
    pub(crate) fn new(on: WaitOn) -> WaitNode {
        WaitNode {
            greenlet: Cell::new(None),
            wake: Cell::new(NodeWake::Pending),
            on: Cell::new(on),
            prev: Cell::new(ptr::null()),
            next: Cell::new(ptr::null()),
        }
    }
}

/// [`Wake`] as a frame wait keeps it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NodeWake {
    Pending,
    Ready,
    TimedOut,
}

impl NodeWake {
    #[inline(always)]
    fn of(wake: Wake) -> NodeWake {
        match wake {
            Wake::Pending => NodeWake::Pending,
            Wake::Ready => NodeWake::Ready,
            // A close; nothing else ends a frame wait early.
            Wake::TimedOut | Wake::Interrupted(_) => NodeWake::TimedOut,
        }
    }

    #[inline(always)]
    fn wake(self) -> Wake {
        match self {
            NodeWake::Pending => Wake::Pending,
            NodeWake::Ready => Wake::Ready,
            NodeWake::TimedOut => Wake::TimedOut,
        }
    }
}

/// Why a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Not yet.
    Pending,
    /// What it waited for happened.
    Ready,
    /// Its own deadline passed.
    TimedOut,
    /// The `with_timeout` scope with this key expired.
    Interrupted(ScopeKey),
}

/// How a [`Waiter::wait`] ended (an interruption unwinds instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woken {
    /// What it waited for happened.
    Ready,
    /// Its deadline passed first.
    TimedOut,
}

/// One blocked call.
pub(super) struct Wait {
    /// Moved to the ready queue by the wake-up.
    greenlet: Option<Counted>,
    pub(super) wake: Wake,
    pub(super) timer: Option<super::timer::TimerKey>,
    /// Made by a daemon greenlet: it does not keep `run` going.
    pub(super) daemon: bool,
    /// A multi-wait that includes a descriptor (a `net::Readiness`): it
    /// can be woken from outside the thread's greenlets, as a socket's own
    /// wait can.
    pub(super) on_descriptor: bool,
    /// What the call waits on, for `stats`.
    on: WaitOn,
    /// A relay's: where its wake-up goes instead of to a greenlet (see
    /// [`Relays`]).
    relay: Option<(Rc<Relays>, usize)>,
}

/// The relays of one multi-wait (`hub::iwait`): one wait in the hub's
/// table per item, listed on the item once for the whole iteration, whose
/// wake-up wakes no greenlet but notes the item's index here and wakes
/// the iteration's own wait if it blocks. So the iteration learns which
/// items fired without looking at the others, and registers on each item
/// once rather than at each block.
#[derive(Default)]
pub(crate) struct Relays {
    /// The indices of the relays woken since last taken, in wake-up order.
    pub(crate) fired: RefCell<Vec<usize>>,
    /// The iteration's wait while it blocks.
    pub(crate) waiter: Cell<Option<WaitKey>>,
}

impl Wait {
    /// Whether the greenlet `key` is the one waiting.
    pub(super) fn is_of(&self, key: Key) -> bool {
        self.greenlet.as_ref().is_some_and(|g| g.key() == key)
    }

    /// Whether what it waits for can come from outside the thread's
    /// greenlets: a descriptor, another thread's channel, a future.
    pub(super) fn waits_outside(&self) -> bool {
        self.on_descriptor
            || matches!(
                self.on,
                WaitOn::Readable { .. }
                    | WaitOn::Writable { .. }
                    | WaitOn::Channel { .. }
                    | WaitOn::Future
            )
    }
}

/// What a primitive undoes when one of its waits ends.
///
/// # Safety
///
/// `unlink` must leave no copy of a [`WaitRef::Node`] it was given (in a
/// list, a slot, anywhere the primitive keeps it): the node it points to
/// goes away once `unlink` returns, and a copy left behind would be used
/// by a later wake-up.
pub(crate) unsafe trait Unlink {
    /// Called once, on every exit path but [`Waiter::end_woken`]'s, after
    /// the wait has ended: `how` is
    /// [`Wake::Ready`] when something woke it (and so took it off the
    /// primitive's list), anything else when it is still there. A
    /// [`WaitRef::Node`] must be off every list of the primitive when this
    /// returns: its node goes away right after.
    fn unlink(&mut self, hub: &Hub, wait: WaitRef, how: Wake);
}

/// A wait nobody but the hub knows of (a `sleep`).
// SAFETY: it keeps nothing.
unsafe impl Unlink for () {
    #[inline]
    fn unlink(&mut self, _: &Hub, _: WaitRef, _: Wake) {}
}

/// A registered wait of the current greenlet; dropping it ends the wait.
pub(crate) struct Waiter<'h, U: Unlink> {
    hub: &'h Hub,
    wait: WaitRef,
    /// How the wait ended, once [`wait`](Waiter::wait) has taken it off
    /// the hub's table (`None`: it is still there, and the drop ends it).
    ended: Option<Wake>,
    /// The primitive's part (its list node, what it was woken for...).
    pub(crate) link: U,
}

impl<'h, U: Unlink> Waiter<'h, U> {
    /// Registers a wait of the current greenlet with an optional deadline;
    /// `on` says what it waits on (for `stats`), and `link` puts its key
    /// where the primitive's wakers find it.
    #[inline(always)]
    pub(crate) fn new(
        hub: &'h Hub,
        deadline: Option<Instant>,
        on: WaitOn,
        link: impl FnOnce(WaitKey) -> U,
    ) -> Waiter<'h, U> {
        Waiter::new_in_turn(hub, deadline, None, on, link)
    }

    /// [`new`](Waiter::new), whose timer fires among those of its deadline
    /// in the place `turn` took earlier (see `Timers::take_turn`; `None`:
    /// the place of a timer set now).
    #[inline(always)]
    pub(crate) fn new_in_turn(
        hub: &'h Hub,
        deadline: Option<Instant>,
        turn: Option<u64>,
        on: WaitOn,
        link: impl FnOnce(WaitKey) -> U,
    ) -> Waiter<'h, U> {
        let key = hub.register(deadline, turn, on);
        Waiter::linked(
            hub,
            WaitRef::Key(key),
            || {
                hub.end(key);
            },
            || link(key),
        )
    }

    /// [`new`](Waiter::new) for a primitive that can be woken through a
    /// [`WaitRef`]: a wait with no deadline, while no `with_timeout`
    /// scope is live on the thread, is kept in `node` (see [`WaitNode`]);
    /// any other is registered in the hub's table. `on` is the node's too,
    /// given again so that the table's path takes it as it is (read back
    /// from the node, it cost a bounded queue's items 4 instructions each).
    #[inline(always)]
    pub(crate) fn with_node(
        hub: &'h Hub,
        node: &'h WaitNode,
        deadline: Option<Instant>,
        on: WaitOn,
        link: impl FnOnce(WaitRef) -> U,
    ) -> Waiter<'h, U> {
        if deadline.is_some() || hub.has_scopes() {
            return Waiter::new(hub, deadline, on, |key| link(WaitRef::Key(key)));
        }
        debug_assert!(node.wake.get() == NodeWake::Pending);
        node.greenlet.set(Some(Counted::current()));
        hub.link_node(node);
        let wait = WaitRef::Node(NodeRef(NonNull::from(node)));
        Waiter::linked(
            hub,
            wait,
            || {
                hub.end_node(node);
            },
            || link(wait),
        )
    }

    /// The waiter of `wait`, just registered: `link` puts it where the
    /// primitive's wakers find it, and if `link` panics, `end` ends it.
    #[inline(always)]
    fn linked(
        hub: &'h Hub,
        wait: WaitRef,
        end: impl FnMut(),
        link: impl FnOnce() -> U,
    ) -> Waiter<'h, U> {
        /// Runs its function when dropped, unless forgotten.
        struct OnUnwind<F: FnMut()>(F);
        impl<F: FnMut()> Drop for OnUnwind<F> {
            fn drop(&mut self) {
                (self.0)();
            }
        }
        let guard = OnUnwind(end);
        let link = link();
        std::mem::forget(guard);
        Waiter {
            hub,
            wait,
            ended: None,
            link,
        }
    }

    /// Blocks until the wait is woken; `call` names the blocking call for
    /// errors. An expired `with_timeout` scope unwinds out of here (the
    /// wait ends as the waiter drops).
    #[inline(always)]
    pub(crate) fn wait(&mut self, call: &'static str) -> Woken {
        #[cfg(feature = "tokio")]
        if self.ended.is_none() && super::tokio_context_entered() {
            super::refuse_blocking_in_tokio_context(call);
        }
        let wake = match (self.ended, self.wait) {
            (Some(wake), _) => wake,
            (None, WaitRef::Node(NodeRef(node))) => {
                // SAFETY: the node outlives this waiter (it is borrowed
                // for `'h`), so it is live.
                let node = unsafe { node.as_ref() };
                let wake = loop {
                    self.hub.switch_away(call);
                    let wake = node.wake.get();
                    if wake != NodeWake::Pending {
                        break wake.wake();
                    }
                };
                self.hub.unlink_node(node);
                self.ended = Some(wake);
                wake
            }
            (None, WaitRef::Key(key)) => {
                let wake = self.hub.block_and_end(key, call);
                // An interruption found before blocking leaves the wait in
                // the table (the drop ends it); any other wake took it out.
                if !matches!(wake, Wake::Interrupted(_)) {
                    self.ended = Some(wake);
                }
                wake
            }
        };
        match wake {
            Wake::Ready => Woken::Ready,
            Wake::TimedOut | Wake::Pending => Woken::TimedOut,
            Wake::Interrupted(s) => interrupted(s),
        }
    }
}

impl<U: Unlink> Waiter<'_, U> {
    /// Ends the wait (as the drop does), inlined: for a call's common
    /// exit, where the drop glue would be a call of its own.
    #[inline(always)]
    pub(crate) fn end(self) {
        let mut this = std::mem::ManuallyDrop::new(self);
        this.end_in_place();
        // SAFETY: `this` is not used again; `link` is dropped once here
        // (the waiter's other fields need no drop).
        unsafe { std::ptr::drop_in_place(&mut this.link) };
    }

    /// Ends a wait that [`wait`](Waiter::wait) saw woken with
    /// [`Woken::Ready`], without calling the primitive's [`Unlink`]: the
    /// common exit of a hand-off, where `wait` already ended the wait and
    /// the caller uses what it was woken for, in 24 instructions less than
    /// [`end`](Waiter::end) on a ping-pong hop.
    ///
    /// # Safety
    ///
    /// Nothing of the wait may be left for `unlink` to undo: its
    /// `WaitRef` is on none of the primitive's lists (the wake-up took it
    /// off), and the caller has used, or goes on to use, what the wait
    /// was woken for (an `unlink(.., Wake::Ready)` would pass that on, a
    /// second time). Call it before that use, so that a panic in between
    /// cannot drop the waiter and run `unlink` after all.
    #[inline(always)]
    pub(crate) unsafe fn end_woken(self) {
        const {
            assert!(
                !std::mem::needs_drop::<U>(),
                "a link with a drop needs `end`"
            )
        };
        debug_assert!(self.ended == Some(Wake::Ready), "`wait` ended it, woken");
        std::mem::forget(self);
    }

    #[inline(always)]
    fn end_in_place(&mut self) {
        let how = match (self.ended, self.wait) {
            (Some(how), _) => how,
            // SAFETY: the node outlives this waiter (borrowed for `'h`).
            (None, WaitRef::Node(NodeRef(node))) => self.hub.end_node(unsafe { node.as_ref() }),
            (None, WaitRef::Key(key)) => self.hub.end_key(key),
        };
        self.link.unlink(self.hub, self.wait, how);
    }
}

impl<U: Unlink> Drop for Waiter<'_, U> {
    #[inline]
    fn drop(&mut self) {
        self.end_in_place();
    }
}

/// What each blocked greenlet of this thread's hub waits on (the hub
/// greenlet itself while it parks the thread), for `stats`.
pub(crate) fn blocked() -> Vec<(Key, WaitOn)> {
    let Some(hub) = super::try_hub() else {
        return Vec::new();
    };
    let waits = hub.waits.borrow();
    let mut blocked: Vec<(Key, WaitOn)> = waits
        .iter()
        .filter_map(|(_, wait)| Some((wait.greenlet.as_ref()?.key(), wait.on)))
        .collect();
    let mut at = hub.frame_waits.get();
    while !at.is_null() {
        // SAFETY: the hub's list of frame waits holds live nodes only (a
        // node leaves it before its waiter ends, see `WaitNode`).
        let node = unsafe { &*at };
        let greenlet = node.greenlet.take();
        if let Some(g) = &greenlet {
            blocked.push((g.key(), node.on.get()));
        }
        node.greenlet.set(greenlet);
        at = node.next.get();
    }
    if hub.parked.get() {
        blocked.push((hub.greenlet.key(), WaitOn::Hub));
    }
    blocked
}

/// The private payload thrown into main when it would block forever.
pub(super) enum BlockedForever {
    /// Nothing is ready, and no timer or wait is left.
    NothingLeft,
    /// What is left are waits and timers of daemon greenlets, which never
    /// keep main waiting (see `daemon.rs`).
    OnlyDaemons,
}

impl Hub {
    /// Registers a wait for the current greenlet, with an optional
    /// deadline (its timer in the place `turn` took, if any: see
    /// [`Waiter::new_in_turn`]).
    #[inline(always)]
    fn register(&self, deadline: Option<Instant>, turn: Option<u64>, on: WaitOn) -> WaitKey {
        let daemon = self.daemons.get() > 0 && daemon::current_is_daemon();
        let w = self.waits.borrow_mut().insert(Wait {
            greenlet: Some(Counted::current()),
            wake: Wake::Pending,
            timer: None,
            daemon,
            on_descriptor: false,
            on,
            relay: None,
        });
        if let Some(deadline) = deadline {
            let mut timers = self.timers.borrow_mut();
            let t = match turn {
                Some(seq) => timers.add_in_turn(deadline, Action::Wait(w), seq),
                None => timers.add(deadline, Action::Wait(w)),
            };
            drop(timers);
            if let Some(wait) = self.waits.borrow_mut().get_mut(w) {
                wait.timer = Some(t);
                if !daemon {
                    self.timed_waits.set(self.timed_waits.get() + 1);
                }
            }
        }
        w
    }

    /// Registers a relay of `relays` for the item at `index` (see
    /// [`Relays`]): a wait of nobody, with no deadline, that an item's
    /// wake-up (through its key, as any table wait's) reports there.
    pub(crate) fn register_relay(&self, relays: &Rc<Relays>, index: usize) -> WaitKey {
        self.waits.borrow_mut().insert(Wait {
            greenlet: None,
            wake: Wake::Pending,
            timer: None,
            daemon: false,
            on_descriptor: false,
            on: WaitOn::Any { until: None },
            relay: Some((relays.clone(), index)),
        })
    }

    /// Makes relay `w`, woken, wait again (its item is to be listed anew).
    pub(crate) fn rearm_relay(&self, w: WaitKey) {
        if let Some(wait) = self.waits.borrow_mut().get_mut(w) {
            wait.wake = Wake::Pending;
        }
    }

    /// Ends relay `w` (off every item's list by now).
    pub(crate) fn end_relay(&self, w: WaitKey) {
        let relay = self.waits.borrow_mut().remove(w);
        // Its `Rc` goes after the table's borrow.
        drop(relay);
    }

    /// A wait's timer is gone (fired, cancelled by a wake-up or the wait's
    /// end): one timed wait fewer keeps the hub going.
    #[inline]
    fn timer_gone(&self, daemon: bool) {
        if !daemon {
            self.timed_waits.set(self.timed_waits.get() - 1);
        }
    }

    /// [`end`](Hub::end), out of line: the drop of every waiter, inlined,
    /// needs it only on an exit that is not a wake-up.
    #[inline(never)]
    fn end_key(&self, w: WaitKey) -> Wake {
        self.end(w)
    }

    /// Ends wait `w` and says how it ended.
    #[inline]
    fn end(&self, w: WaitKey) -> Wake {
        let wait = self.waits.borrow_mut().remove(w);
        match wait {
            Some(wait) => {
                if let Some(t) = wait.timer {
                    self.timers.borrow_mut().cancel(t);
                    self.timer_gone(wait.daemon);
                }
                wait.wake
            }
            None => Wake::Pending,
        }
    }

    /// Wakes wait `w` for `reason` unless it was already woken (or has
    /// ended); returns whether this call woke it.
    #[inline(always)]
    pub(crate) fn wake(&self, w: impl Into<WaitRef>, reason: Wake) -> bool {
        match w.into() {
            WaitRef::Key(key) => self.wake_key(key, reason),
            // SAFETY: a node reference is used at once after it is taken
            // off the primitive's list, and is on that list only while its
            // waiter lives (`NodeRef`, the `Unlink` contract), so the node
            // is live.
            WaitRef::Node(NodeRef(node)) => self.wake_node(unsafe { node.as_ref() }, reason),
        }
    }

    /// Whether wait `w` still waits: not woken yet (by what it waits for,
    /// its deadline or a scope) and not ended.
    pub(crate) fn is_pending(&self, w: WaitRef) -> bool {
        match w {
            WaitRef::Key(key) => self
                .waits
                .borrow()
                .get(key)
                .is_some_and(|wait| wait.wake == Wake::Pending),
            WaitRef::Node(NodeRef(node)) => {
                // SAFETY: the caller read the reference from a primitive's
                // list, where it is only while its waiter (whose frame
                // holds the node) lives, and looks now, before anything
                // can switch to that waiter.
                let node = unsafe { node.as_ref() };
                node.wake.get() == NodeWake::Pending
            }
        }
    }

    /// [`wake`](Hub::wake) for a wait in the table.
    #[inline(never)]
    fn wake_key(&self, w: WaitKey, reason: Wake) -> bool {
        let (greenlet, timer, daemon, relay) = {
            let mut waits = self.waits.borrow_mut();
            let Some(wait) = waits.get_mut(w) else {
                return false;
            };
            if wait.wake != Wake::Pending {
                return false;
            }
            wait.wake = reason;
            (
                wait.greenlet.take(),
                wait.timer.take(),
                wait.daemon,
                wait.relay.clone(),
            )
        };
        if let Some((relays, index)) = relay {
            relays.fired.borrow_mut().push(index);
            if let Some(waiter) = relays.waiter.get() {
                self.wake_key(waiter, reason);
            }
        }
        if let Some(t) = timer {
            self.timers.borrow_mut().cancel(t);
            self.timer_gone(daemon);
        }
        if let Some(greenlet) = greenlet {
            self.push_ready(greenlet);
        }
        true
    }

    /// Wakes a frame wait for `reason` unless it was already woken.
    #[inline(always)]
    pub(crate) fn wake_node(&self, node: &WaitNode, reason: Wake) -> bool {
        if node.wake.get() != NodeWake::Pending {
            return false;
        }
        node.wake.set(NodeWake::of(reason));
        if let Some(greenlet) = node.greenlet.take() {
            self.push_ready(greenlet);
        }
        true
    }

    /// Puts a frame wait on the hub's list of them (for `stats`).
    #[inline(always)]
    fn link_node(&self, node: &WaitNode) {
        let head = self.frame_waits.get();
        debug_assert!(node.prev.get().is_null(), "a new node");
        node.next.set(head);
        if !head.is_null() {
            // SAFETY: the list holds live nodes only (see `WaitNode`).
            unsafe { &*head }.prev.set(node);
        }
        self.frame_waits.set(node);
    }

    /// Takes a frame wait off the hub's list.
    #[inline(always)]
    fn unlink_node(&self, node: &WaitNode) {
        let (prev, next) = (node.prev.get(), node.next.get());
        if prev.is_null() {
            self.frame_waits.set(next);
        } else {
            // SAFETY: the list holds live nodes only (see `WaitNode`).
            unsafe { &*prev }.next.set(next);
        }
        if !next.is_null() {
            // SAFETY: as above.
            unsafe { &*next }.prev.set(prev);
        }
    }

    /// Ends a frame wait that was not seen woken, and says how it ended
    /// (`Ready`: woken, though its greenlet had not run yet).
    #[inline]
    fn end_node(&self, node: &WaitNode) -> Wake {
        self.unlink_node(node);
        // A greenlet still waiting drops its own reference here.
        drop(node.greenlet.take());
        node.wake.get().wake()
    }

    /// Blocks the current greenlet in wait `w` until it is woken, and ends
    /// the wait in the same look-up that finds it woken; an interruption
    /// by an expired `with_timeout` scope found before blocking leaves it.
    #[inline(always)]
    fn block_and_end(&self, w: WaitKey, call: &'static str) -> Wake {
        self.block_until(w, call, |waits| {
            match waits.remove_if(w, |wait| wait.wake != Wake::Pending) {
                Some(wait) => {
                    // A wake-up takes the timer with the greenlet.
                    debug_assert!(wait.timer.is_none());
                    wait.wake
                }
                // Not woken yet (a spurious wake-up), or ended by hand.
                None if waits.get(w).is_some() => Wake::Pending,
                None => Wake::TimedOut,
            }
        })
    }

    /// Switches away until `woken` (given the table of waits) is no longer
    /// [`Wake::Pending`].
    #[inline(always)]
    fn block_until(
        &self,
        w: WaitKey,
        call: &'static str,
        mut woken: impl FnMut(&mut Slots<WaitKey, Wait>) -> Wake,
    ) -> Wake {
        // With no `with_timeout` scope on the thread, there is no scope
        // bookkeeping either (the common case: one check).
        let scoped = self.has_scopes();
        if scoped {
            // A scope that already expired interrupts right away.
            if let Some(s) = self.fired_scope() {
                return Wake::Interrupted(s);
            }
            self.set_scopes_wait(Some(w));
        }
        /// Undoes what `block` points at `w` on every exit path: a throw
        /// or a child's panic unwinds out of `switch_away`.
        struct Unblock<'a>(&'a Hub, bool);
        impl Drop for Unblock<'_> {
            #[inline]
            fn drop(&mut self) {
                if self.1 {
                    self.0.set_scopes_wait(None);
                }
            }
        }
        let unblock = Unblock(self, scoped);
        let wake = loop {
            self.switch_away(call);
            let wake = woken(&mut self.waits.borrow_mut());
            if wake != Wake::Pending {
                break wake;
            }
        };
        drop(unblock);
        wake
    }

    /// Gives control to the next ready greenlet (or the hub) until
    /// something switches back here, as a blocking call: main, blocked,
    /// is marked as blocked in `call` meanwhile, and `call` is remembered
    /// as the last blocking call (for the hub's "nothing can run"
    /// message). Inlined so that no call/return pair straddles the stack
    /// switch (the CPU's return prediction suffers). A yield, which queues
    /// itself first and marks nothing, is `scheduler::yield_now`.
    #[inline(always)]
    pub(super) fn switch_away(&self, call: &'static str) {
        // The thread's runtime, reached once for the whole hand-off (each
        // reach is a thread-local load and a check).
        let rt = Runtime::get();
        let me = rt.current();
        if me == self.key {
            blocking_in_hub(call);
        }
        let is_main = me == rt.main_key();
        if is_main {
            self.main_blocked.set(Some(call));
            self.daemons_polled.set(false);
        }
        self.last_call.set(call);
        // Each arm looks at its own outcome, before anything else: merged,
        // or kept across another call, it would be a 40-byte `Result` in
        // memory on every return.
        // A greenlet whose switches may go elsewhere (to its killer) goes
        // through the hub: a hand-off would take a ready greenlet that
        // then never runs.
        let handoff = if rt.may_divert(me) {
            None
        } else {
            self.next_for_handoff(rt, None)
        };
        match handoff {
            Some(next) => {
                let key = next.key();
                let kept = next.release_if_shared(rt);
                match rt.switch_or_start::<(), ()>(key, ()) {
                    Ok(()) => {
                        // The runtime outlives every greenlet frame that
                        // resumes.
                        if let Some(next) = kept {
                            next.release_in(rt);
                        }
                        self.switched_back(is_main);
                        self.note_resumed(me);
                    }
                    Err(e) => {
                        if rt.switch_fails_at_once() {
                            // It never left: `next` did not run, and goes
                            // back with a reference again.
                            self.unpop_ready(kept.unwrap_or_else(|| Counted::of(rt, key)));
                        } else if let Some(next) = kept {
                            // What came back when this greenlet was
                            // switched to again (a throw, say): `next` ran.
                            next.release_in(rt);
                        }
                        // Marks main as no longer blocked, too.
                        switched_back_with(e, call);
                    }
                }
            }
            None => {
                self.check_alive(call);
                /// Main is no longer blocked, also when the switch unwinds
                /// instead of happening (a switch hook panicked on it).
                struct Back<'a>(&'a Hub, bool);
                impl Drop for Back<'_> {
                    fn drop(&mut self) {
                        self.0.switched_back(self.1);
                    }
                }
                let back = Back(self, is_main);
                let outcome = self.greenlet.switch::<(), ()>(());
                drop(back);
                match outcome {
                    Ok(()) => self.note_resumed(me),
                    Err(e) => switched_back_with(e, call),
                }
            }
        }
    }

    /// Called by a blocked or yielding greenlet `me` that resumed with a
    /// plain `()`: unless the hub took it off the ready queue to run it
    /// (the common case, one compare), something else switched to it (a
    /// raw greenlet whose parent it is, returning or switching to it), and
    /// an entry a wake-up queued for it may still be there, which would
    /// later resume it inside whatever switch it makes next, with a stray
    /// value: taken off (a scan, on this rare path). Its wait then ends if
    /// it was woken, or goes on.
    #[inline(always)]
    pub(super) fn note_resumed(&self, me: Key) {
        if self.resuming.get() != Some(me) {
            self.stray_resume(me);
        }
    }

    /// [`note_resumed`](Hub::note_resumed)'s rare path, out of line.
    #[cold]
    #[inline(never)]
    fn stray_resume(&self, me: Key) {
        self.forget_ready(me);
    }

    /// Where a blocked greenlet resumes: main is no longer blocked.
    #[inline(always)]
    pub(super) fn switched_back(&self, is_main: bool) {
        if is_main {
            self.main_blocked.set(None);
        }
    }

    /// Panics if the hub greenlet is dead: a switch to it would land back
    /// in the caller (or in main) and the blocking call would spin.
    #[inline]
    pub(super) fn check_alive(&self, call: &str) {
        if self.greenlet.is_dead() {
            hub_is_dead(call);
        }
    }

    /// Takes greenlet `key` off the ready queue, if it is there: it is
    /// leaving its blocking call another way (cold path).
    #[cold]
    pub(super) fn forget_ready(&self, key: Key) {
        let mut ready = self.ready.borrow_mut();
        let found = ready.iter().position(|g| g.key() == key);
        if let Some(i) = found {
            let g = ready.remove(i);
            if i < self.round_left.get() {
                self.round_left.set(self.round_left.get() - 1);
            }
            drop(ready);
            drop(g);
        }
    }
}

/// Out of line: formatting `call` in place would keep it in the blocking
/// call's frame.
#[cold]
#[inline(never)]
pub(super) fn blocking_in_hub(call: &str) -> ! {
    panic!("greenlet::hub: {call} cannot block inside the hub greenlet")
}

#[cold]
#[inline(never)]
fn hub_is_dead(call: &str) -> ! {
    panic!(
        "greenlet::hub: {call} cannot block: this thread's hub greenlet is dead (it was \
         killed, a switch hook panicked on its switch, or the thread is exiting), so \
         nothing could ever wake the caller"
    )
}

/// What a greenlet does when its switch away from `call` came back with
/// an error instead of `()`: cold, and reaching the hub and the runtime
/// again rather than keeping them (or anything else) in every blocking
/// call's frame across the switch.
#[cold]
#[inline(never)]
pub(super) fn switched_back_with(e: SwitchError, call: &'static str) {
    let hub = super::try_hub();
    if let Some(hub) = &hub {
        // Main blocked in `call` is no longer (a yield never marks it).
        let rt = Runtime::get();
        hub.switched_back(rt.current() == rt.main_key());
    }
    match e {
        SwitchError::Thrown(p) if matches!(p.downcast_ref(), Some(BlockedForever::OnlyDaemons)) => {
            panic!(
                "greenlet::hub: {call} would block forever: no other greenlet is ready, \
                 and only daemon greenlets wait (their waits and timers never keep main \
                 waiting; see `hub::daemon`)"
            )
        }
        SwitchError::Thrown(p) if p.is::<BlockedForever>() => panic!(
            "greenlet::hub: {call} would block forever: \
             no other greenlet is ready and no timer is pending"
        ),
        SwitchError::Unwinding => {
            panic!("greenlet::hub: {call} cannot block while the greenlet unwinds")
        }
        // Blocking again would fail again: a spin, not a spurious wake-up.
        SwitchError::InSwitchHook => {
            panic!("greenlet::hub: {call} cannot block inside a switch hook")
        }
        // A panic of a child whose parent is this greenlet, or a throw
        // into it: it must not vanish, so it unwinds out of the blocking
        // call (whose waiter ends the wait), as `resume_unwind`.
        SwitchError::Panicked(p) | SwitchError::Thrown(p) => {
            if let Some(hub) = hub {
                // Back on this greenlet, so it is the runtime's current.
                hub.forget_ready(Runtime::get().current());
            }
            crate::unwind::require_unwinding("a throw into a blocked greenlet");
            std::panic::resume_unwind(p)
        }
        // Anything else (a stray value) is a spurious wake-up: the
        // caller checks its wait, and blocks again unless it was woken;
        // a queued wake-up's entry goes (see `Hub::note_resumed`).
        _ => {
            if let Some(hub) = hub {
                hub.forget_ready(Runtime::get().current());
            }
        }
    }
}
