//! A channel from any thread into a greenlet: [`channel`] gives a `Send`
//! [`Sender`] and a [`Receiver`] whose `recv` blocks only the calling
//! greenlet, woken through the hub's `mio::Waker`.

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::io::IoWaitEnd;
use super::reactor::{Direction, HoldAcrossFork, Registration, Ticket};
use super::remote::Inbox;
use super::wait::WaitKey;
use super::{deadline_after, hub, Hub, Wake};
use crate::stats::WaitOn;

/// The shared part: the items and who is still there.
struct Chan<T> {
    state: Mutex<State<T>>,
    inbox: Arc<Inbox>,
    /// The receiver's registration, which senders ask the hub to wake.
    ticket: Ticket,
    id: u64,
    /// The senders live only on threads of a thread pool (a pool job's
    /// result): in a forked child, which has none of those threads, they
    /// are gone (see `HoldAcrossFork::in_forked_child`).
    senders_on_pool_threads: bool,
    /// The fork count it was made under (see `fork.rs`): a channel made in
    /// the child itself is not the parent's.
    born: u64,
}

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    /// In a forked child: the senders were on threads of the parent (see
    /// `Chan::senders_on_pool_threads`), so none will send or drop.
    senders_left_in_parent: bool,
    receiver_alive: bool,
    /// A receiving greenlet found nothing and is (about to be) blocked:
    /// the next send must wake one. Cleared by that send, so a burst of
    /// sends to a busy receiver costs one wake-up; the woken receiver
    /// passes it on to another waiting one if more came (see
    /// `Receiver::pass_wake_on`, which a watcher the send woke calls too).
    receiver_waiting: bool,
}

impl<T> State<T> {
    /// Whether nothing more can come: every sender is dropped, or stayed
    /// with the parent of a fork.
    #[inline]
    fn senders_gone(&self) -> bool {
        self.senders == 0 || self.senders_left_in_parent
    }
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Only pushes, pops and counter updates happen under the lock; none
        // can leave the state inconsistent if a panic poisons it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Send + 'static> HoldAcrossFork for Chan<T> {
    fn hold(self: Arc<Self>) -> Box<dyn Any> {
        Box::new(super::fork::HeldLock::new(self, Chan::lock))
    }

    fn in_forked_child(&self) -> bool {
        if !self.senders_on_pool_threads || self.born == super::fork::forks() {
            return false;
        }
        let mut state = self.lock();
        state.senders_left_in_parent = true;
        true
    }
}

/// Creates a channel: the [`Sender`] may go to any thread (and be cloned),
/// the [`Receiver`] stays on this one and is drained by its greenlets.
/// Unbounded: `send` never blocks.
///
/// The errors are `std::sync::mpsc`'s: `send` fails once the receiver is
/// dropped, `recv` once every sender is dropped and nothing is left.
///
/// ```
/// use greenlet::hub;
///
/// let (tx, rx) = hub::channel();
/// let workers: Vec<_> = (0..4u64)
///     .map(|i| {
///         let tx = tx.clone();
///         std::thread::spawn(move || tx.send(i * i).unwrap())
///     })
///     .collect();
/// drop(tx);
/// let mut got: Vec<u64> = rx.iter().collect(); // ends when all senders are gone
/// got.sort();
/// assert_eq!(got, [0, 1, 4, 9]);
/// # for w in workers { w.join().unwrap(); }
/// ```
///
/// # Panics
///
/// When the thread's reactor cannot be created (see [`remote`](super::remote)).
pub fn channel<T: Send + 'static>() -> (Sender<T>, Receiver<T>) {
    channel_with(false)
}

/// A [`channel`] for a thread-pool job's result, whose senders only the
/// pool's threads hold: in a forked child, which has none of the parent's
/// threads, it ends (`recv` fails once it is empty) instead of waiting for
/// ever on a job that runs in the parent only.
pub(crate) fn pool_result_channel<T: Send + 'static>() -> (Sender<T>, Receiver<T>) {
    channel_with(true)
}

fn channel_with<T: Send + 'static>(senders_on_pool_threads: bool) -> (Sender<T>, Receiver<T>) {
    static IDS: AtomicU64 = AtomicU64::new(1);
    let hub = hub();
    let reactor = hub.reactor_or_panic("hub::channel");
    let reg = reactor.add();
    // Each receive takes one value: a send wakes one waiting receiver.
    reg.set_wake_one();
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            senders_left_in_parent: false,
            receiver_alive: true,
            receiver_waiting: false,
        }),
        inbox: reactor.inbox().clone(),
        ticket: reg.ticket(),
        id: IDS.fetch_add(1, Ordering::Relaxed),
        senders_on_pool_threads,
        born: super::fork::forks(),
    });
    let weak: std::sync::Weak<dyn HoldAcrossFork> = Arc::downgrade(&chan) as _;
    reg.set_lock(weak);
    let sender = Sender { chan: chan.clone() };
    let receiver = Receiver {
        chan,
        reg,
        hub: hub.clone(),
        watch: Watch::default(),
        _not_send: PhantomData,
    };
    (sender, receiver)
}

/// The sending half of a [`channel`]: `Send + Sync + Clone`, usable from
/// any thread.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Queues `value` for the receiver, waking it if it waits. Never blocks.
    /// Fails (giving `value` back) once the receiver is dropped, or its
    /// thread has exited.
    ///
    /// # Errors
    ///
    /// [`SendError`] holding `value` when the receiver is dropped or its
    /// thread has exited.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut state = self.chan.lock();
        if !state.receiver_alive || self.chan.inbox.is_closed() {
            return Err(SendError(value));
        }
        state.items.push_back(value);
        let wake = std::mem::replace(&mut state.receiver_waiting, false);
        drop(state);
        if wake {
            // A closed inbox means the receiver's thread is exiting; the
            // value is dropped with the channel.
            let _ = self.chan.inbox.wake_readers(self.chan.ticket);
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.chan.lock().senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.chan.lock();
        state.senders -= 1;
        let wake = state.senders_gone() && std::mem::replace(&mut state.receiver_waiting, false);
        drop(state);
        if wake {
            // The receiver must learn that nothing more will come.
            let _ = self.chan.inbox.wake_readers(self.chan.ticket);
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("channel", &self.chan.id)
            .finish()
    }
}

/// The receiving half of a [`channel`]. `!Send`: it belongs to the thread
/// (and hub) that created it; any of that thread's greenlets may receive
/// (share it with an `Rc`): each value goes to one of them, and a send
/// wakes one waiting greenlet, not all (the longest waiting; one woken and
/// killed before it runs passes the wake-up on; one woken for a value that
/// another greenlet took first, with `try_recv` say, waits again in its
/// place, before the receivers that began waiting after it).
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
    reg: Rc<Registration>,
    hub: Rc<Hub>,
    /// For `wait_any`: when the channel became ready, once something
    /// watched it.
    watch: Watch,
    _not_send: PhantomData<*const ()>,
}

impl<T> Receiver<T> {
    /// Takes the next value, blocking the calling greenlet (only it) while
    /// there is none. `Err(RecvError)` once every sender is dropped and the
    /// channel is empty.
    ///
    /// Unlike [`Queue::get`](super::Queue::get), a wait here is never
    /// reported as "would block forever": a sender may live on another
    /// thread, so the hub parks in `epoll_wait` until one sends or all are
    /// dropped. A greenlet that waits for values only it could send
    /// (holding the last `Sender` itself) waits forever, as with
    /// `std::sync::mpsc`; so does [`run`](super::run) while it waits.
    /// While its greenlet unwinds (in a destructor during a panic or a
    /// kill) it cannot wait: with nothing there it returns
    /// `Err(RecvError)`, as if the senders were gone.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once every sender is dropped and the channel is empty,
    /// or, with nothing there, while the greenlet unwinds.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](super)).
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_until(None).map_err(|_| RecvError)
    }

    /// Like [`recv`](Receiver::recv), giving up after `timeout`
    /// (`Err(Timeout)`). While its greenlet unwinds, with nothing there,
    /// it returns `Err(Disconnected)` at once, as `recv` does.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] when nothing came within `timeout`;
    /// [`RecvTimeoutError::Disconnected`] as [`recv`](Receiver::recv)'s
    /// `RecvError`.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_until(deadline_after(timeout))
    }

    /// Takes the next value if there is one, without blocking.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when there is no value;
    /// [`TryRecvError::Disconnected`] when there is none and every sender
    /// is dropped.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut state = self.chan.lock();
        let taken = state.items.pop_front();
        self.note_take(&state, taken.is_some());
        match taken {
            Some(value) => Ok(value),
            None if state.senders_gone() => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// For a watched channel: notes a receive (`took`: it took a value)
    /// and whether it left the channel empty (see `Watch`).
    #[inline]
    fn note_take(&self, state: &State<T>, took: bool) {
        if self.watch.emptied.get() != 0 {
            self.note_watched_take(state, took);
        }
    }

    fn note_watched_take(&self, state: &State<T>, took: bool) {
        let watch = &self.watch;
        self.settle(state, took);
        if took && watch.stamp.get() < watch.emptied.get() {
            // A value taken before anything stamped it (a send's
            // notification not handled yet): the channel was ready from
            // this take at the latest, for a wait that looked before
            // (a value that came while it waited and was taken at once
            // still counts for it, as a queue's item does).
            watch.stamp.set(super::wait_any::next_stamp());
        }
        if !Self::has_more(state) {
            watch.emptied.set(super::wait_any::next_stamp());
        }
    }

    /// Whether a receive would return at once: a value is there, or every
    /// sender is gone.
    #[inline]
    fn has_more(state: &State<T>) -> bool {
        !state.items.is_empty() || state.senders_gone()
    }

    /// Takes in the notification the hub handled since the last look, if
    /// any (the registration's stamp, taken then): the channel counts as
    /// ready from then if it had something then that no stamp counts yet,
    /// that is if it has something now (or `took`: a receive just took a
    /// value) and was last seen empty before. Not otherwise: the
    /// notification of a value taken before the hub handled it (a send,
    /// then a `try_recv` or a `recv` that did not block, before the hub
    /// ran its mail) was stamped after the value was gone, and a wait that
    /// began after the take would report an empty channel as ready.
    fn settle(&self, state: &State<T>, took: bool) {
        let watch = &self.watch;
        let notified = self.reg.ready_stamp(Direction::Read);
        if notified != watch.notified.get() {
            watch.notified.set(notified);
            if (took || Self::has_more(state)) && watch.stamp.get() < watch.emptied.get() {
                watch.stamp.set(notified);
            }
        }
    }

    /// An iterator of received values that ends when every sender is gone.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { receiver: self }
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        self.hub.coop();
        // Where it waits in line. Woken, it may find nothing: a send woke
        // it, the longest waiting, but another greenlet took the value
        // before it ran (a `try_recv`, a receiver that never waited, one
        // whose timeout had passed, the one woken before it, taking a
        // burst). It waits again in the same place: before those that
        // waited after it, after those that waited before.
        let mut place = None;
        loop {
            {
                let mut state = self.chan.lock();
                if let Some(end) = self.take_or_end(&mut state) {
                    return end;
                }
                // Set under the same lock the senders take: a send after
                // this point sees it and wakes a receiver.
                state.receiver_waiting = true;
            }
            let on = WaitOn::Channel {
                channel: self.chan.id,
                until: deadline,
            };
            // How it ended, not an `io::Error`: a deadline that passes
            // (a receive loop's periodic timeout) allocates nothing.
            let none = match self.hub.wait_io_ended(
                &self.reg,
                Direction::Read,
                deadline,
                "Receiver::recv",
                on,
                &mut place,
            ) {
                IoWaitEnd::Ready => continue,
                // A value may have come in just now.
                IoWaitEnd::TimedOut => RecvTimeoutError::Timeout,
                // Refused while the greenlet unwinds: then as if the
                // senders were gone, as `recv` says.
                IoWaitEnd::Unwinding => RecvTimeoutError::Disconnected,
            };
            let mut state = self.chan.lock();
            return self.take_or_end(&mut state).unwrap_or(Err(none));
        }
    }

    /// Takes the next value, or sees the end (every sender gone); `None`
    /// when there is neither. A send wakes one waiting receiver (a
    /// notification per burst of sends, see `State::receiver_waiting`), so
    /// the wake-up goes on from here: to one more waiting receiver if there
    /// is more for it (a value, or the end), else to the next send.
    fn take_or_end(&self, state: &mut State<T>) -> Option<Result<T, RecvTimeoutError>> {
        let taken = match state.items.pop_front() {
            Some(value) => Ok(value),
            None if state.senders_gone() => Err(RecvTimeoutError::Disconnected),
            None => return None,
        };
        self.note_take(state, taken.is_ok());
        self.pass_wake_on(state);
        Some(taken)
    }

    /// The wake-up a send gave one waiting greenlet goes on, now that
    /// that one is done with it: to one more waiting greenlet if there is
    /// more for it (a value, or the end), else to the next send.
    fn pass_wake_on(&self, state: &mut State<T>) {
        if self.reg.has_waiters(Direction::Read) {
            if !state.items.is_empty() || state.senders_gone() {
                self.reg
                    .wake_first(Direction::Read, |w| self.hub.wake(w, Wake::Ready));
            } else {
                state.receiver_waiting = true;
            }
        }
    }
}

impl<T> super::wait_any::sealed::Source for Receiver<T> {
    fn is_ready(&self) -> bool {
        let state = self.chan.lock();
        let ready = Self::has_more(&state);
        let watch = &self.watch;
        if watch.emptied.get() == 0 {
            // Watched from now on (stamps start at 1): the notifications
            // handled before were for receivers only.
            watch.emptied.set(1);
            watch.notified.set(self.reg.ready_stamp(Direction::Read));
        } else {
            self.settle(&state, false);
        }
        if !ready {
            watch.emptied.set(super::wait_any::next_stamp());
        } else if watch.stamp.get() < watch.emptied.get() {
            // Looked at for the first time, or its stamp is of values
            // taken since it was last seen empty: what is there came with
            // no notification handled yet (nobody waited, or the hub has
            // not run its mail), so it counts from now.
            watch.stamp.set(super::wait_any::next_stamp());
        }
        ready
    }

    fn ready_stamp(&self) -> u64 {
        // A first look stamps here too, so that things ready before any
        // wait looked count in the order a wait lists them.
        self.is_ready();
        self.watch.stamp.get()
    }

    fn add_waiter(&self, w: usize) -> usize {
        let w = WaitKey::from(w);
        self.reg.add_waiter(Direction::Read, w);
        let came = {
            let mut state = self.chan.lock();
            // Under the senders' lock: a send after this wakes a waiter.
            state.receiver_waiting = true;
            Self::has_more(&state)
        };
        if came {
            // Since the wait looked (from another thread): wake it the way
            // a send would have.
            let _ = self.chan.inbox.wake_readers(self.chan.ticket);
        }
        usize::from(self.hub.io_wait_began(w))
    }

    fn remove_waiter(&self, daemon: usize, w: usize) {
        if !self.reg.remove_waiter(Direction::Read, WaitKey::from(w)) {
            // A send's wake-up took it off the list.
            self.pass_wake_on(&mut self.chan.lock());
        }
        self.hub.io_wait_ended(daemon != 0);
    }

    fn stays_listed(&self) -> bool {
        // Counted as an I/O wait while listed (see the trait).
        false
    }
}

/// A receiver's readiness for `wait_any`, once something watched it (a
/// wait looked). A send from another thread cannot take a stamp (they are
/// per thread): the hub stamps the registration when it handles the
/// send's notification, which may be after the value was taken (a
/// `try_recv` right after a send on the hub's thread). So the channel
/// counts as ready from the first of: that notification, if the value is
/// still there (see `Receiver::settle`); a look that finds it; a receive
/// that takes it.
#[derive(Default)]
struct Watch {
    /// When the receiving side last saw the channel empty, as a stamp (0:
    /// not watched). A ready stamp older than that was the readiness of
    /// values taken since, and the channel counts as ready from when a
    /// wait next finds a value.
    emptied: Cell<u64>,
    /// When the channel became ready, as `wait_any` sees it (its
    /// `ready_stamp`).
    stamp: Cell<u64>,
    /// The registration's stamp (when the hub last handled a send's
    /// notification) as last taken in (see `Receiver::settle`).
    notified: Cell<u64>,
}

/// Ready while a receive would return at once: a value is there, or every
/// sender is gone. A send wakes one waiting greenlet, receiver or
/// watcher: a watcher woken that way passes the wake-up on when its wait
/// ends, as a receiver does when it has taken its value, so a value never
/// sits while a receiver sleeps (the receiver may then find it taken by
/// the watcher's greenlet, and wait again). A value taken before a wait
/// began does not count for it, even when the hub handles its send's
/// wake-up only during that wait; one that came while it waited does,
/// even if taken before the waiter runs again (see [`wait`](fn@super::wait)).
impl<T> super::wait_any::Waitable for Receiver<T> {}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.chan.lock();
            state.receiver_alive = false;
            // Nobody waits any more: a last sender's drop posts nothing.
            state.receiver_waiting = false;
            std::mem::take(&mut state.items)
        };
        if let Some(reactor) = self.hub.reactor() {
            reactor.remove(&self.reg);
        }
        // Dropped outside the lock (an item's destructor may send), and
        // last: one that panics leaves nothing else undone.
        drop(items);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("channel", &self.chan.id)
            .finish()
    }
}

/// The iterator of [`Receiver::iter`].
pub struct Iter<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("receiver", self.receiver)
            .finish()
    }
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.receiver.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_is_send_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Sender<String>>();
    }
}
