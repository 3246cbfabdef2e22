//! The hub's I/O reactor: mio's `Poll`, what is registered with it, and
//! who waits on what.
//!
//! Created on the first socket, channel or [`remote`](super::remote) of a
//! thread, so a hub that never does I/O opens no file descriptor and parks
//! with a plain sleep. Once it exists, the hub parks in `Poll::poll` with
//! the next timer's deadline as the timeout.
//!
//! Readiness is tracked per registration, as mio's edge-triggered model
//! asks: a direction is assumed ready until an operation says `WouldBlock`
//! (or, on Linux, a read fills less than its buffer, which proves the
//! socket drained), and is set again by the next event. So a greenlet only
//! waits after the kernel said "not now", and skips the syscall that would
//! only say so again.
//!
//! In a child forked without `exec`, the epoll instance is the parent's
//! too: the first use there builds the child's own (see `fork.rs`).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::ptr;
use std::rc::Rc;
use std::sync::{Arc, Weak};
use std::time::Duration;

use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use super::remote::Inbox;
use super::wait::WaitKey;

/// The token of the waker through which other threads reach the hub.
const WAKER: Token = Token(usize::MAX);

/// How many events one `poll` takes at most.
const EVENTS: usize = 1024;

/// How long a forked child's hub that could not make its own epoll
/// instance sleeps at most before it tries again (see `Reactor::poll`).
const RENEW_RETRY: Duration = Duration::from_millis(100);

/// Sticky: the socket has received TCP urgent data (`EPOLLPRI`).
const URGENT: u8 = 16;

/// Sticky: the owner closed it (`close` from some greenlet); every wait on
/// it was woken and every later operation fails.
const CLOSED: u8 = 32;

/// Sticky: the owner shut the write half down (see
/// [`Registration::shut_down`]): every write fails at once.
const WRITE_SHUT: u8 = 64;

/// Which half of a registration an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Reading, accepting, receiving.
    Read,
    /// Writing, connecting, sending.
    Write,
}

impl Direction {
    /// "Ready", cleared when the kernel says `WouldBlock`.
    fn bit(self) -> u8 {
        match self {
            Direction::Read => 1,
            Direction::Write => 2,
        }
    }

    /// "Closed" (EOF, a reset, an error): sticky, since no further edge
    /// would ever come for it. Without it, a read that takes the last bytes
    /// before an EOF (a short read, which clears "ready") would wait for
    /// an event the kernel already delivered.
    fn closed_bit(self) -> u8 {
        match self {
            Direction::Read => 4,
            Direction::Write => 8,
        }
    }

    /// "Shut down by the owner": sticky, and never cleared by a
    /// `WouldBlock` (a write cannot say it), since Linux reports no event
    /// for a Unix stream's own write shutdown while its buffer is full.
    fn shut_bit(self) -> u8 {
        match self {
            Direction::Read => 0,
            Direction::Write => WRITE_SHUT,
        }
    }
}

/// A registration as another thread names it in the hub's mail: its slot
/// and its serial number there. A slot is reused as soon as its
/// registration goes, and a wake-up posted for a channel's receiver may
/// still be in the mail then (its sender, on another thread, cannot know
/// the receiver went): by slot alone, it would wake whatever waits in the
/// slot now, a pipe's `wait_readable` told "readable" with nothing to
/// read. The serial tells the two apart. A descriptor's epoll token
/// carries it too (see [`Ticket::token`]), for an entry that outlives its
/// registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    token: usize,
    serial: u64,
}

impl Ticket {
    /// The registration it names, if it is still there.
    fn find(self, registrations: &Slab<Rc<Registration>>) -> Option<&Rc<Registration>> {
        registrations
            .get(self.token)
            .filter(|reg| reg.serial == self.serial)
    }

    /// The epoll token of a descriptor's registration: on 64-bit targets,
    /// its slot in the low half and the low half of its serial in the
    /// high half (elsewhere, its slot alone). A descriptor's entry in the
    /// epoll set normally goes before its slot is freed, but one that
    /// cannot be taken out (a descriptor swapped behind its `AsyncFd`,
    /// with a copy of it still open elsewhere, which keeps the entry
    /// alive) would otherwise report its events to the registration that
    /// took the slot since.
    #[cfg(target_pointer_width = "64")]
    fn token(self) -> Token {
        debug_assert!(
            self.token < u32::MAX as usize,
            "registrations past the token's range"
        );
        Token(self.token | ((self.serial as u32 as usize) << 32))
    }

    #[cfg(not(target_pointer_width = "64"))]
    fn token(self) -> Token {
        Token(self.token)
    }

    /// The registration epoll token `token` stands for, if it is still
    /// there (told by its serial's low half: a slot reused 2^32 times
    /// while an old entry lingers would pass).
    #[cfg(target_pointer_width = "64")]
    fn find_by_token(
        token: Token,
        registrations: &Slab<Rc<Registration>>,
    ) -> Option<&Rc<Registration>> {
        let serial = (token.0 >> 32) as u32;
        registrations
            .get(token.0 & u32::MAX as usize)
            .filter(|reg| reg.serial as u32 == serial)
    }

    #[cfg(not(target_pointer_width = "64"))]
    fn find_by_token(
        token: Token,
        registrations: &Slab<Rc<Registration>>,
    ) -> Option<&Rc<Registration>> {
        registrations.get(token.0)
    }
}

/// A wait's place in the line of waits on a registration: the order in
/// which they were first listed.
pub(crate) type Place = u64;

/// One socket (or channel) known to the reactor: the readiness last seen
/// for each direction and the waits blocked on each.
pub(crate) struct Registration {
    token: usize,
    /// Which of the registrations ever made in `token`'s slot this is
    /// (see [`Ticket`]).
    serial: u64,
    /// The descriptor registered (-1: none, a channel's), for a forked
    /// child to register again in its own epoll instance.
    fd: Cell<RawFd>,
    /// A channel's shared state, whose lock other threads take to send:
    /// held across a fork (see `fork.rs`).
    lock: RefCell<Option<Weak<dyn HoldAcrossFork>>>,
    /// `Direction::bit`s believed ready.
    ready: Cell<u8>,
    /// The waits on each direction, each with its [`Place`]: in the
    /// order of their places where a notification wakes one at a time.
    readers: RefCell<VecDeque<(WaitKey, Place)>>,
    writers: RefCell<VecDeque<(WaitKey, Place)>>,
    /// The place the next wait listed gets.
    next_place: Cell<Place>,
    /// A channel's: a notification wakes one reader, not all (see
    /// [`wake_first`](Registration::wake_first)).
    wake_one: Cell<bool>,
    /// When each direction last had an event (a `wait_any` stamp, see
    /// `hub::wait_any::next_stamp`), read and write: orders a socket's
    /// readiness among the other things of a multi-wait.
    ready_stamps: [Cell<u64>; 2],
    /// How many events each direction has had, read and write, every one
    /// counted (an urgent-data nudge too, which takes no stamp): what an
    /// operation that may switch away compares (see `would_block_since`).
    events: [Cell<u64>; 2],
}

impl Registration {
    /// Names the lock behind this registration (a channel's), for a fork
    /// to hold.
    pub(crate) fn set_lock(&self, lock: Weak<dyn HoldAcrossFork>) {
        *self.lock.borrow_mut() = Some(lock);
    }

    /// What names it, and no later registration in its slot, in mail
    /// from other threads.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket {
            token: self.token,
            serial: self.serial,
        }
    }

    /// Whether `dir` may be ready (an operation is worth a try).
    #[inline]
    pub(crate) fn is_ready(&self, dir: Direction) -> bool {
        self.ready.get() & (dir.bit() | dir.closed_bit() | dir.shut_bit()) != 0
    }

    /// Whether the owner shut `dir` down (see [`shut_down`](Registration::shut_down)).
    pub(crate) fn is_shut(&self, dir: Direction) -> bool {
        self.ready.get() & dir.shut_bit() != 0
    }

    /// Whether the owner closed it (see [`close`](Registration::close)).
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.ready.get() & CLOSED != 0
    }

    /// Marks it closed and hands every wait on it, both directions, to
    /// `wake`: the waiters' retries see [`is_closed`](Registration::is_closed).
    pub(crate) fn close(&self, mut wake: impl FnMut(WaitKey)) {
        self.ready.set(self.ready.get() | CLOSED);
        self.fire(Direction::Read, true, &mut wake);
        self.fire(Direction::Write, true, &mut wake);
    }

    /// The owner shut `dir` down (a Unix stream's write half): marks it
    /// ready for good and hands its waits to `wake`, whose retries get
    /// the kernel's error. Linux reports no readiness for it while the
    /// send buffer is full (it does for TCP), and a look at the kernel's
    /// readiness (`poll`) says "not writable" then, so no look may clear
    /// the mark either.
    pub(crate) fn shut_down(&self, dir: Direction, wake: impl FnMut(WaitKey)) {
        self.ready.set(self.ready.get() | dir.shut_bit());
        self.fire(dir, false, wake);
    }

    /// A stream read came back short, which on Linux (epoll) means the
    /// receive queue is drained: the next read waits for an event instead
    /// of asking the kernel first, saving a `WouldBlock` syscall per
    /// message (tokio does the same). Not when the read half is closed
    /// (its EOF or error is still to be read), nor on a socket that has
    /// seen TCP urgent data: Linux stops a read at the urgent mark with
    /// more data queued and no new edge to come.
    #[inline]
    pub(crate) fn short_read(&self) {
        if cfg!(target_os = "linux") && self.ready.get() & URGENT == 0 {
            self.ready.set(self.ready.get() & !Direction::Read.bit());
        }
    }

    /// The kernel said `WouldBlock`: whatever was seen is consumed (a UDP
    /// socket's error, say), so wait for the next event.
    #[inline]
    pub(crate) fn would_block(&self, dir: Direction) {
        self.ready
            .set(self.ready.get() & !(dir.bit() | dir.closed_bit()));
    }

    /// [`would_block`](Registration::would_block) for an operation that
    /// began when [`events`](Registration::events) of `dir` was `seen`,
    /// unless an event came since: an operation that runs user
    /// code (an `AsyncFd` op) may switch away after its syscall, and come
    /// back with the `WouldBlock` of a look made before the event. The
    /// registration is edge-triggered: forgotten, that readiness would
    /// never come again. Returns whether it forgot the readiness (`false`:
    /// try again).
    #[inline]
    pub(crate) fn would_block_since(&self, dir: Direction, seen: u64) -> bool {
        let forgot = self.events(dir) == seen;
        if forgot {
            self.would_block(dir);
        }
        forgot
    }

    fn waiters(&self, dir: Direction) -> &RefCell<VecDeque<(WaitKey, Place)>> {
        match dir {
            Direction::Read => &self.readers,
            Direction::Write => &self.writers,
        }
    }

    /// Adds wait `w` last among the waiters of `dir`; returns its place,
    /// for a wait that ends for nothing to list again where it was (see
    /// [`add_waiter_at`](Registration::add_waiter_at)).
    pub(crate) fn add_waiter(&self, dir: Direction, w: WaitKey) -> Place {
        let place = self.next_place.get();
        self.next_place.set(place + 1);
        self.waiters(dir).borrow_mut().push_back((w, place));
        place
    }

    /// Adds wait `w` at `place`, a place an earlier wait of the same
    /// caller had: before the waits listed after it, behind those listed
    /// before it. A channel's receiver woken for a value that another
    /// greenlet took before it ran keeps its turn so.
    pub(crate) fn add_waiter_at(&self, dir: Direction, w: WaitKey, place: Place) {
        let mut waiters = self.waiters(dir).borrow_mut();
        let i = waiters
            .iter()
            .position(|&(_, p)| p > place)
            .unwrap_or(waiters.len());
        waiters.insert(i, (w, place));
    }

    /// Removes wait `w` (woken or not) from the waiters of `dir`; returns
    /// whether it was still listed (a notification takes the waits it
    /// wakes off the list).
    pub(crate) fn remove_waiter(&self, dir: Direction, w: WaitKey) -> bool {
        let mut waiters = self.waiters(dir).borrow_mut();
        let Some(i) = waiters.iter().position(|&(x, _)| x == w) else {
            return false;
        };
        if self.wake_one.get() {
            // Woken one at a time, longest listed first: keep the order.
            waiters.remove(i);
        } else {
            waiters.swap_remove_back(i);
        }
        true
    }

    /// Makes a notification wake one reader, not all: for a channel's
    /// receivers, which take one value each (a socket's readiness is for
    /// every reader).
    pub(crate) fn set_wake_one(&self) {
        self.wake_one.set(true);
    }

    /// Whether a notification wakes one reader (see `set_wake_one`).
    pub(crate) fn wakes_one(&self) -> bool {
        self.wake_one.get()
    }

    /// Whether some wait is listed on `dir`.
    pub(crate) fn has_waiters(&self, dir: Direction) -> bool {
        !self.waiters(dir).borrow().is_empty()
    }

    /// Hands the longest-listed wait of `dir` that `wake` takes (one woken
    /// another way already, by its deadline, is passed over and dropped
    /// from the list); `false` if there was none.
    pub(crate) fn wake_first(&self, dir: Direction, mut wake: impl FnMut(WaitKey) -> bool) -> bool {
        self.ready.set(self.ready.get() | dir.bit());
        loop {
            let Some((w, _)) = self.waiters(dir).borrow_mut().pop_front() else {
                return false;
            };
            if wake(w) {
                return true;
            }
        }
    }

    /// How many events `dir` has had: an operation's `seen` for
    /// [`would_block_since`](Registration::would_block_since). Not the
    /// stamp: an urgent-data nudge takes none, and an operation that
    /// missed its event would wait for an edge already delivered.
    #[inline]
    pub(crate) fn events(&self, dir: Direction) -> u64 {
        self.events[dir as usize].get()
    }

    /// When `dir` last had an event, as a `wait_any` stamp (0: none yet).
    pub(crate) fn ready_stamp(&self, dir: Direction) -> u64 {
        self.ready_stamps[dir as usize].get()
    }

    /// `dir` became ready now, for `wait_any`'s order.
    pub(crate) fn stamp_ready(&self, dir: Direction) {
        self.ready_stamps[dir as usize].set(super::wait_any::next_stamp());
    }

    /// `dir` was found ready by asking the kernel: if no event came yet
    /// (readiness there since it was registered), it counts from now.
    pub(crate) fn found_ready(&self, dir: Direction) {
        let stamp = &self.ready_stamps[dir as usize];
        if stamp.get() == 0 {
            stamp.set(super::wait_any::next_stamp());
        }
    }

    /// Marks `dir` maybe ready and hands its waits to `wake`, to look
    /// again, without a stamp: not an event for a multi-wait's order or
    /// its "ready since" (see `Reactor::poll`). Counted in `events`, as
    /// every event.
    fn nudge(&self, dir: Direction, mut wake: impl FnMut(WaitKey)) {
        let events = &self.events[dir as usize];
        events.set(events.get() + 1);
        self.ready.set(self.ready.get() | dir.bit());
        // `drain` keeps the vector's capacity: no allocation per wake-up.
        for (w, _) in self.waiters(dir).borrow_mut().drain(..) {
            wake(w);
        }
    }

    /// Marks `dir` ready (and closed, for good) and hands its waits to
    /// `wake`: a nudge that is an event for a multi-wait too.
    fn fire(&self, dir: Direction, closed: bool, wake: impl FnMut(WaitKey)) {
        // Something came (data, room, an end): a multi-wait orders the
        // socket from here.
        self.ready_stamps[dir as usize].set(super::wait_any::next_stamp());
        if closed {
            self.ready.set(self.ready.get() | dir.closed_bit());
        }
        self.nudge(dir, wake);
    }
}

/// A lock that other threads take and a forked child needs (a channel's):
/// the thread that forks holds it across the fork, so that no other thread
/// leaves it locked in the child for ever.
pub(crate) trait HoldAcrossFork: Send + Sync {
    /// Takes the lock; it is let go when the result drops.
    fn hold(self: Arc<Self>) -> Box<dyn Any>;

    /// In a forked child, on the hub's thread, when the reactor is
    /// renewed: whether the channel ended because its senders were all on
    /// threads of the parent (a pool job's result), so that its receivers
    /// must be woken to see it.
    fn in_forked_child(&self) -> bool;
}

/// The reactor proper. Every `RefCell` here is borrowed only for the length
/// of a call that cannot switch greenlets.
pub(crate) struct Reactor {
    /// An inherited one is never dropped (see `renew`); `None` once the
    /// thread has exited (see `close_at_exit`).
    poll: RefCell<Option<Poll>>,
    events: RefCell<Events>,
    registrations: RefCell<Slab<Rc<Registration>>>,
    inbox: Arc<Inbox>,
    /// The fork count (see `fork.rs`) `poll` was made under: another one
    /// means this is a forked child, whose `poll` is still the parent's.
    born: Cell<u64>,
    /// The serial the next registration gets (see [`Ticket`]).
    next_serial: Cell<u64>,
    /// By descriptor number: 1 + the serial of the registration that
    /// holds its entry in the epoll set, 0 for none. A registration whose
    /// descriptor was closed behind its back (an `AsyncFd`'s value that
    /// closed its own) may outlive its entry, and the number go to a file
    /// that another registration added: deregistering the first must not
    /// take the second's entry out (no file's identity tells them apart:
    /// every eventfd shares one inode).
    owners: RefCell<Vec<u64>>,
}

/// What every descriptor is registered for: both directions,
/// edge-triggered.
fn interest() -> Interest {
    let interest = Interest::READABLE | Interest::WRITABLE;
    // `EPOLLPRI` tells of TCP urgent data (see `short_read`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let interest = interest | Interest::PRIORITY;
    interest
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        super::fork::watch();
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        Ok(Reactor {
            poll: RefCell::new(Some(poll)),
            events: RefCell::new(Events::with_capacity(EVENTS)),
            registrations: RefCell::new(Slab::new()),
            inbox: Arc::new(Inbox::new(waker)),
            born: Cell::new(super::fork::forks()),
            next_serial: Cell::new(0),
            owners: RefCell::new(Vec::new()),
        })
    }

    /// Makes sure `poll` is this process's own, before any use of it: in a
    /// forked child, the first call builds a new one (see `fork.rs`).
    /// Once the thread has exited, there is no instance any more: an
    /// error.
    #[inline]
    fn own(&self) -> io::Result<()> {
        if !self.inherited() && self.poll.borrow().is_some() {
            return Ok(());
        }
        self.renew()
    }

    /// In a forked child: a new epoll instance and waker, every descriptor
    /// still registered registered again there, and the inherited ones let
    /// go without a call on them (they are the parent's too), not even a
    /// `close` (see below).
    #[cold]
    #[inline(never)]
    fn renew(&self) -> io::Result<()> {
        if self.poll.borrow().is_none() {
            return Err(io::Error::other(
                "greenlet::hub: the hub's thread has exited (its I/O reactor is closed)",
            ));
        }
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        // One number can be in several registrations: a descriptor closed
        // (and its number reused) while its registration lived on, as one
        // whose `AsyncFd` over a borrowed descriptor was forgotten. The
        // parent's instance dropped a closed descriptor by itself, so only
        // the newest registration of each number is live: the others must
        // not take its events.
        let registrations = self.registrations.borrow();
        let mut live: Vec<(RawFd, u64, &Rc<Registration>)> = registrations
            .iter()
            .map(|(_, reg)| (reg.fd.get(), reg.serial, reg))
            .filter(|&(fd, _, _)| fd >= 0)
            .collect();
        live.sort_unstable_by_key(|&(fd, serial, _)| (fd, std::cmp::Reverse(serial)));
        live.dedup_by_key(|&mut (fd, _, _)| fd);
        for (fd, _, reg) in live {
            // Ready events the parent's instance took before the fork are
            // not seen again: both directions are "maybe ready" until a
            // call says otherwise, and the registration reports what is
            // ready now.
            reg.ready
                .set(reg.ready.get() | Direction::Read.bit() | Direction::Write.bit());
            // A descriptor closed behind its owner's back cannot be
            // registered: its next call finds the error, as it would have
            // in the parent.
            let _ = SourceFd(&fd).register(poll.registry(), reg.ticket().token(), interest());
        }
        // The inherited instance and waker are leaked, not dropped: their
        // drop would close the numbers they had, which in a child need not
        // name them any more. A daemon that closed every inherited
        // descriptor has its own files there, or the instance and waker
        // just made (the lowest free numbers); closing those behind their
        // owners' backs breaks the daemon or this very reactor. Nothing
        // can tell whether a number still names the inherited ones (every
        // epoll instance and eventfd shares one anonymous inode), so the
        // child keeps its two descriptors of them, unused.
        std::mem::forget(self.poll.replace(Some(poll)));
        self.inbox.replace_waker(waker);
        self.born.set(super::fork::forks());
        super::signal::renew_dispatcher();
        // Channels whose senders were the parent's threads end here; their
        // receivers hear of it as of a last sender's drop, through the
        // inbox (this may run inside a poll, whose mail comes next).
        let ended: Vec<Ticket> = self
            .registrations
            .borrow()
            .iter()
            .filter(|(_, reg)| {
                let chan = reg.lock.borrow().as_ref().and_then(|lock| lock.upgrade());
                chan.is_some_and(|chan| chan.in_forked_child())
            })
            .map(|(_, reg)| reg.ticket())
            .collect();
        for ticket in ended {
            let _ = self.inbox.wake_readers(ticket);
        }
        Ok(())
    }

    /// Whether the epoll instance and waker are a parent's, inherited
    /// across a fork and not renewed yet.
    fn inherited(&self) -> bool {
        self.born.get() != super::fork::forks()
    }

    /// Closes the inbox (see `Inbox::close`): the hub is going away.
    pub(crate) fn close_inbox(&self) {
        self.inbox.close(self.inherited());
    }

    /// At the thread's exit (see `hub::release_at_exit`): closes the inbox,
    /// and the epoll instance too, also while something keeps the hub (a
    /// greenlet that the exit left suspended, whose frames hold references
    /// to it): nothing polls on an exited thread, and every later use of
    /// the instance (a registration dropped by a thread-local's destructor)
    /// goes through `own`, which refuses from now on, so the closed number
    /// is never used again (it may name another file soon).
    pub(crate) fn close_at_exit(&self) {
        self.close_inbox();
        let poll = self.poll.borrow_mut().take();
        if let Some(poll) = poll {
            self.let_go(poll);
        }
    }

    /// Closes `poll`, unless it is a parent's, inherited across a fork and
    /// not renewed: leaked then, as `renew` leaks it.
    fn let_go(&self, poll: Poll) {
        if self.inherited() {
            std::mem::forget(poll);
        } else {
            drop(poll);
        }
    }

    /// The instance's registry; only after `own` said it is open.
    fn registry(&self) -> std::cell::Ref<'_, mio::Registry> {
        std::cell::Ref::map(self.poll.borrow(), |poll| {
            poll.as_ref()
                .expect("owned: the instance is open")
                .registry()
        })
    }

    /// The mailbox other threads reach this hub through.
    pub(crate) fn inbox(&self) -> &Arc<Inbox> {
        &self.inbox
    }

    /// A registration with no file descriptor behind it (a channel's
    /// receiving end): woken through the inbox only.
    pub(crate) fn add(&self) -> Rc<Registration> {
        let mut registrations = self.registrations.borrow_mut();
        let entry = registrations.vacant_entry();
        let serial = self.next_serial.get();
        self.next_serial.set(serial + 1);
        let reg = Rc::new(Registration {
            token: entry.key(),
            serial,
            fd: Cell::new(-1),
            lock: RefCell::new(None),
            // Both directions start "maybe ready": the first operation
            // always tries the syscall.
            ready: Cell::new(Direction::Read.bit() | Direction::Write.bit()),
            readers: RefCell::new(VecDeque::new()),
            writers: RefCell::new(VecDeque::new()),
            next_place: Cell::new(0),
            wake_one: Cell::new(false),
            ready_stamps: [Cell::new(0), Cell::new(0)],
            events: [Cell::new(0), Cell::new(0)],
        });
        entry.insert(reg.clone());
        reg
    }

    /// Registers descriptor `fd` for both directions, edge-triggered.
    pub(crate) fn register(&self, fd: RawFd) -> io::Result<Rc<Registration>> {
        self.own()?;
        let reg = self.add();
        let registered = SourceFd(&fd).register(&self.registry(), reg.ticket().token(), interest());
        if let Err(e) = registered {
            self.remove(&reg);
            return Err(e);
        }
        reg.fd.set(fd);
        let mut owners = self.owners.borrow_mut();
        let i = fd as usize; // registered: not negative
        if owners.len() <= i {
            owners.resize(i + 1, 0);
        }
        owners[i] = reg.serial + 1;
        Ok(reg)
    }

    /// Forgets `reg` (its waiters are gone: waiting borrows the socket), if
    /// it is this reactor's: another registration in its slot is left
    /// alone.
    pub(crate) fn remove(&self, reg: &Registration) {
        let mut registrations = self.registrations.borrow_mut();
        if registrations
            .get(reg.token)
            .is_some_and(|r| ptr::eq(&**r, reg))
        {
            registrations.remove(reg.token);
        }
    }

    /// Deregisters descriptor `fd` and forgets `reg`.
    pub(crate) fn deregister(&self, fd: RawFd, reg: &Registration) {
        // The fd is about to close, which removes it from the epoll set in
        // any case; an error here changes nothing. A forked child that
        // could not make an instance of its own leaves the parent's alone.
        // A number that another registration holds now (see `owners`) is
        // that one's.
        let ours = {
            let mut owners = self.owners.borrow_mut();
            match usize::try_from(fd).ok().and_then(|i| owners.get_mut(i)) {
                Some(owner) if *owner == reg.serial + 1 => {
                    *owner = 0;
                    true
                }
                _ => false,
            }
        };
        if ours && self.own().is_ok() {
            let _ = SourceFd(&fd).deregister(&self.registry());
        }
        self.remove(reg);
    }

    /// Takes the locks other threads share with this reactor's
    /// registrations (its channels'), until the result drops: for the
    /// thread that forks (see `fork.rs`).
    pub(crate) fn hold_for_fork(&self) -> Vec<Box<dyn Any>> {
        self.registrations
            .borrow()
            .iter()
            .filter_map(|(_, reg)| reg.lock.borrow().as_ref()?.upgrade())
            .map(|lock| lock.hold())
            .collect()
    }

    /// Whether another thread left work or a wake-up in the inbox.
    pub(crate) fn has_mail(&self) -> bool {
        self.inbox.has_mail()
    }

    /// Waits up to `timeout` (`None`: no limit) for events, then hands each
    /// ready registration's waits to `wake`, and runs `mail` if other
    /// threads wrote to the inbox.
    pub(crate) fn poll(
        &self,
        timeout: Option<Duration>,
        mut wake: impl FnMut(WaitKey),
        mail: impl FnOnce(&Inbox),
    ) {
        if self.own().is_err() {
            // A forked child that cannot make its own instance (out of
            // descriptors: a pre-forking server at its limit). Polling the
            // inherited one would take the parent's events, and a panic
            // here would end the hub for good: it sleeps instead, as a hub
            // without a reactor does, so timers and other greenlets go on,
            // and tries again at its next poll, after `RENEW_RETRY` at the
            // latest. Waits on descriptors wait until then (the renewal
            // registers every one again, and epoll reports what is ready
            // then); a new registration gets the error.
            std::thread::sleep(timeout.map_or(RENEW_RETRY, |t| t.min(RENEW_RETRY)));
            if self.inbox.has_mail() {
                mail(&self.inbox);
            }
            return;
        }
        let mut events = self.events.borrow_mut();
        let polled = self
            .poll
            .borrow_mut()
            .as_mut()
            .expect("owned: the instance is open")
            .poll(&mut events, timeout);
        match polled {
            Ok(()) => {}
            // A signal cut the wait short: the hub loop polls again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => events.clear(),
            Err(e) => panic!("greenlet::hub: polling for I/O failed: {e}"),
        }
        let registrations = self.registrations.borrow();
        let mut mailed = false;
        for event in events.iter() {
            if event.token() == WAKER {
                mailed = true;
                continue;
            }
            // A stale token finds nothing (see `Ticket::token`).
            let Some(reg) = Ticket::find_by_token(event.token(), &registrations) else {
                continue;
            };
            // An error or a closed half wakes the waiters too: their retry
            // gets the error or the EOF.
            if event.is_priority() {
                reg.ready.set(reg.ready.get() | URGENT);
            }
            let read_closed = event.is_read_closed() || event.is_error();
            if read_closed || (event.is_readable() && !event.is_priority()) {
                reg.fire(Direction::Read, read_closed, &mut wake);
            } else if event.is_priority() {
                // `EPOLLPRI`: on a socket, TCP urgent data, which alone is
                // no data for a read (it skips the urgent byte); on other
                // descriptors, perhaps all they tell. mio tells `EPOLLIN`
                // from `EPOLLPRI` only as this flag, so the kernel is
                // asked (one `poll`, only for such events): in-band data
                // or an end there is an event as any (a multi-wait orders
                // the socket from now); urgent data alone only makes the
                // waits look again (a socket's read retries and waits on;
                // a multi-wait asks the kernel, see `Readiness`), and is
                // no event for a multi-wait's order.
                if in_band_readable(reg.fd.get()) {
                    reg.fire(Direction::Read, false, &mut wake);
                } else {
                    reg.nudge(Direction::Read, &mut wake);
                }
            }
            let write_closed = event.is_write_closed() || event.is_error();
            if event.is_writable() || write_closed {
                reg.fire(Direction::Write, write_closed, &mut wake);
            }
        }
        drop(registrations);
        drop(events);
        if mailed || self.inbox.has_mail() {
            mail(&self.inbox);
        }
    }

    /// Wakes the readers of the registration `ticket` names, if it still
    /// exists (a channel's receiver, named by a sender on another thread):
    /// one of them if it wakes one (see `set_wake_one`), else all. `wake`
    /// says whether it woke the wait it was given. A registration made
    /// since in the same slot is not it, and is left alone.
    pub(crate) fn notify(&self, ticket: Ticket, mut wake: impl FnMut(WaitKey) -> bool) {
        let registrations = self.registrations.borrow();
        if let Some(reg) = ticket.find(&registrations) {
            if reg.wakes_one() {
                // A channel got something: a multi-wait orders it from here.
                reg.stamp_ready(Direction::Read);
                reg.wake_first(Direction::Read, wake);
            } else {
                reg.fire(Direction::Read, false, |w| {
                    wake(w);
                });
            }
        }
    }
}

/// Whether descriptor `fd` has in-band data (or an end) to read now:
/// `poll` for `POLLIN | POLLRDHUP` without `POLLPRI`, at once. An error of
/// `poll` itself counts as readable: the read will say what is wrong.
fn in_band_readable(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid `pollfd` that lives across the call; the
    // descriptor is registered (its owner has not deregistered it, which
    // it does before closing it), and a zero timeout returns at once.
    unsafe { libc::poll(&mut pfd, 1, 0) != 0 }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        // A forked child's reactor never renewed still has the inherited
        // instance and waker, whose numbers need not name them any more:
        // leaked, as `renew` leaks them.
        if let Some(poll) = self.poll.get_mut().take() {
            self.let_go(poll);
        }
        // Other threads holding a `Remote` or a `Sender` learn the hub is
        // gone; work they left is dropped here.
        self.close_inbox();
    }
}
