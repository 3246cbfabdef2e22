//! Reaching a hub from other threads: [`remote`] gives a `Send + Sync`
//! handle whose work the hub's thread picks up at its next poll, woken
//! through `mio::Waker`.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mio::Waker;
use slab::Slab;

use super::fork::HeldLock;
use super::hub;
use super::reactor::Ticket;

/// Work another thread hands to the hub.
pub(crate) enum Task {
    /// Run in a greenlet of its own ([`Remote::spawn`]).
    Spawn(Box<dyn FnOnce() + Send>),
    /// Run as `Spawn`, or, when no stack can be had for its greenlet, on
    /// the hub greenlet itself after the poll: the crate's own short work
    /// that must not be dropped for want of a stack (the kill of an
    /// abandoned call's greenlet). It must not block.
    OnHub(Box<dyn FnOnce() + Send>),
}

/// What other threads have left for the hub since it last looked.
#[derive(Default)]
pub(crate) struct Mail {
    closed: bool,
    /// Closures to spawn as greenlets, or to run on the hub greenlet.
    tasks: VecDeque<Task>,
    /// Registrations (channel receivers) whose readers to wake.
    wakeups: VecDeque<Ticket>,
    /// The buffers the hub took last time (see [`Drained`]), given back
    /// empty with their capacity: [`Inbox::take`] leaves them in place of
    /// those it takes, so that posts in steady state allocate nothing
    /// (two buffers of each kind take turns).
    spare_tasks: VecDeque<Task>,
    spare_wakeups: VecDeque<Ticket>,
    /// The reply senders of `call_blocking`s in flight, kept here rather
    /// than on the greenlet running the call: a thread's exit leaves that
    /// greenlet suspended if the call is blocked then (see the crate's
    /// **Threads** rule), and the close drops these, so the callers hear
    /// `RemoteClosed` instead of waiting for ever.
    replies: Slab<Box<dyn Any + Send>>,
}

/// The hub's mailbox, shared with every `Remote` and channel `Sender`.
pub(crate) struct Inbox {
    /// The hub's `mio::Waker` (an eventfd on Linux), taken out and closed
    /// when the hub goes: a `Remote`, a channel `Sender` or a thread-pool
    /// job that outlives the hub's thread keeps this mailbox, not the fd.
    /// A lock of its own, so a wake-up's system call is not made under the
    /// mail's lock.
    waker: Mutex<Option<Waker>>,
    /// Something is in `mail`: lets the hub skip the lock, and lets senders
    /// skip the waker's syscall when a wake-up is already on its way.
    pending: AtomicBool,
    /// `mail.closed`, readable without the lock (a channel's send looks).
    closed: AtomicBool,
    mail: Mutex<Mail>,
}

impl Inbox {
    pub(crate) fn new(waker: Waker) -> Inbox {
        Inbox {
            waker: Mutex::new(Some(waker)),
            pending: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            mail: Mutex::new(Mail::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Mail> {
        lock(&self.mail)
    }

    pub(crate) fn has_mail(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Leaves something for the hub and wakes it if it was not already
    /// woken; `Err` (with nothing posted) once the hub is gone.
    fn post(&self, write: impl FnOnce(&mut Mail)) -> Result<(), RemoteClosed> {
        let mut mail = self.lock();
        if mail.closed {
            return Err(RemoteClosed(()));
        }
        write(&mut mail);
        let first = !self.pending.swap(true, Ordering::AcqRel);
        drop(mail);
        if first {
            // Gone only when the hub closed since the mail was posted (and
            // then nobody is left to wake). An eventfd write; it fails
            // only if the counter would overflow, and then the hub is
            // already due to wake.
            if let Some(waker) = &*lock(&self.waker) {
                let _ = waker.wake();
            }
        }
        Ok(())
    }

    /// Asks the hub to wake the readers of the registration `ticket`
    /// names, if it is still there when the hub reads its mail.
    pub(crate) fn wake_readers(&self, ticket: Ticket) -> Result<(), RemoteClosed> {
        self.post(|mail| mail.wakeups.push_back(ticket))
    }

    /// Takes everything posted so far (on the hub's thread), leaving the
    /// spare buffers in its place; each taken buffer comes back as the
    /// spare once walked (see [`Drained`]).
    pub(crate) fn take(&self) -> Taken<'_> {
        let mut mail = self.lock();
        self.pending.store(false, Ordering::Release);
        let mail = &mut *mail;
        let tasks = std::mem::replace(&mut mail.tasks, std::mem::take(&mut mail.spare_tasks));
        let wakeups = std::mem::replace(&mut mail.wakeups, std::mem::take(&mut mail.spare_wakeups));
        Taken {
            tasks: Drained {
                items: tasks,
                inbox: self,
                spare: |mail| &mut mail.spare_tasks,
            },
            wakeups: Drained {
                items: wakeups,
                inbox: self,
                spare: |mail| &mut mail.spare_wakeups,
            },
        }
    }

    /// Keeps a call's reply sender until [`take_reply`](Inbox::take_reply)
    /// or the close; `Err` (dropping it) once the hub is gone.
    fn keep_reply(&self, reply: Box<dyn Any + Send>) -> Result<usize, RemoteClosed> {
        let mut mail = self.lock();
        if mail.closed {
            return Err(RemoteClosed(()));
        }
        Ok(mail.replies.insert(reply))
    }

    /// Takes back the reply sender kept under `key`: `None` once the close
    /// dropped it. Each key is taken once (see `Reply`), and none is
    /// handed out again after the close, so a key never names another
    /// call's sender.
    fn take_reply(&self, key: usize) -> Option<Box<dyn Any + Send>> {
        self.lock().replies.try_remove(key)
    }

    /// In a forked child: the waker of the child's own epoll instance (see
    /// `fork.rs`) in place of the inherited one, which is leaked, not
    /// dropped: its drop would close its number, which may name another
    /// file by now (see `Reactor::renew`). A closed inbox stays closed.
    ///
    /// Mail may be pending already (posted by another thread before the
    /// fork and not yet taken, or by a thread of the child before this),
    /// its wake-up written to the inherited waker: a post finding mail
    /// pending makes none, so the new waker is woken here, or the hub
    /// would not look until a timer woke it.
    pub(crate) fn replace_waker(&self, waker: Waker) {
        let old = {
            let mut slot = lock(&self.waker);
            if slot.is_none() {
                return;
            }
            slot.replace(waker)
        };
        std::mem::forget(old);
        // After the swap: a post that set `pending` before it woke the old
        // waker (or none), and one after it wakes the new one itself.
        if self.has_mail() {
            if let Some(waker) = &*lock(&self.waker) {
                let _ = waker.wake();
            }
        }
    }

    /// Holds both locks until the result drops: the thread that forks
    /// takes them just before the fork, so that no other thread (a
    /// `Remote`, a channel's sender, a pool thread handing a result back)
    /// holds one in the child, where it would never be let go.
    pub(crate) fn hold_for_fork(self: &Arc<Self>) -> ForkHold {
        // Never held together elsewhere, so any order is deadlock-free.
        let waker = HeldLock::new(self.clone(), |inbox| lock(&inbox.waker));
        let mail = HeldLock::new(self.clone(), |inbox| lock(&inbox.mail));
        ForkHold {
            _mail: mail,
            _waker: waker,
        }
    }

    /// The hub is going away: refuse further posts, drop what is queued,
    /// close the waker (leak it if `inherited`: a forked child's, whose
    /// number may name another file by now, see `Reactor::renew`).
    pub(crate) fn close(&self, inherited: bool) {
        let waker = lock(&self.waker).take();
        if inherited {
            std::mem::forget(waker);
        } else {
            drop(waker);
        }
        let (tasks, replies) = {
            let mut mail = self.lock();
            mail.closed = true;
            self.closed.store(true, Ordering::Release);
            mail.wakeups = VecDeque::new();
            mail.spare_wakeups = VecDeque::new();
            mail.spare_tasks = VecDeque::new();
            (
                std::mem::take(&mut mail.tasks),
                std::mem::take(&mut mail.replies),
            )
        };
        // Senders only: dropping one wakes its caller, with no user code.
        // First: among them are those of calls whose greenlets this exit
        // leaves suspended, whose callers a destructor of the tasks below
        // may wait for. (So the caller of a call still queued hears
        // `RemoteClosed` just before its function is dropped, below.)
        drop(replies);
        // Dropped outside the lock: a closure's destructor may use a
        // `Remote` itself. Each on its own: this runs in a thread-local's
        // destructor, where a panic would abort the process, and work
        // another thread posted must not take this one down.
        for task in tasks {
            crate::error::drop_reporting(
                task,
                "a task posted through Remote::spawn, dropped unrun with its hub,",
            );
        }
    }

    /// Whether the hub is gone (its thread exited): posts fail.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// What [`Inbox::take`] took: the mail posted since the hub last looked.
pub(crate) struct Taken<'a> {
    /// Closures to spawn as greenlets.
    pub(crate) tasks: Drained<'a, Task>,
    /// Registrations (channel receivers) whose readers to wake.
    pub(crate) wakeups: Drained<'a, Ticket>,
}

/// Buffers kept as the spare only up to this many items: a burst's big
/// buffer is freed rather than held for the life of the hub.
const SPARE_MAX: usize = 4096;

/// One kind of mail taken from the inbox, walked in the order posted.
/// Dropped (walked or not), it drops what is left, with no lock held (a
/// task's destructor is user code), then gives its buffer back to the
/// inbox, empty, as the spare the next `take` leaves in its place: a
/// wake-up posted from any thread then finds room, where a fresh buffer
/// per take cost an allocation per wake-up. The lock is taken again only
/// for that hand-back, a swap.
pub(crate) struct Drained<'a, T> {
    items: VecDeque<T>,
    inbox: &'a Inbox,
    /// The inbox's spare buffer of this kind.
    spare: fn(&mut Mail) -> &mut VecDeque<T>,
}

impl<T> Drained<'_, T> {
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<T> Iterator for Drained<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.items.len(), Some(self.items.len()))
    }
}

impl<T> Drop for Drained<'_, T> {
    fn drop(&mut self) {
        self.items.clear();
        let capacity = self.items.capacity();
        if capacity == 0 || capacity > SPARE_MAX {
            return;
        }
        let mut mail = self.inbox.lock();
        // Not after the close: the inbox may outlive the hub, held by a
        // sender, and would hold the buffer for nothing.
        if mail.closed {
            return;
        }
        let spare = (self.spare)(&mut mail);
        // A take made since (a nested poll) may have left a spare already;
        // this buffer is freed then.
        if spare.capacity() == 0 {
            std::mem::swap(spare, &mut self.items);
        }
    }
}

/// A `call_blocking`'s hold on its reply sender, kept in the inbox (see
/// `Mail::replies`): dropped unsent (the call's greenlet killed, or its
/// function dropped unrun), it drops the sender, which tells the caller.
/// (`Remote::call` keeps what finishes its future there the same way.)
pub(super) struct Reply {
    inbox: Arc<Inbox>,
    key: Option<usize>,
}

impl Reply {
    /// Keeps `value` in `remote`'s inbox until this hold is dropped (which
    /// drops it) or the inbox closes first, when the hub's thread exits
    /// (which drops it then): for what tells a caller about a call whose
    /// greenlet that exit may leave suspended, never unwound (see the
    /// crate's **Threads** rule). `Err` once the inbox is closed.
    pub(super) fn keep(remote: &Remote, value: Box<dyn Any + Send>) -> Result<Reply, RemoteClosed> {
        Ok(Reply {
            inbox: remote.inbox.clone(),
            key: Some(remote.inbox.keep_reply(value)?),
        })
    }

    /// The sender, unless the inbox's close dropped it already.
    fn take(&mut self) -> Option<Box<dyn Any + Send>> {
        self.key.take().and_then(|key| self.inbox.take_reply(key))
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        drop(self.take());
    }
}

/// A `call_blocking`'s function and its hold on the reply sender, posted
/// as one task. Dropped unrun for want of a stack, the function goes
/// first, in field order, then the sender, which tells the caller: so the
/// caller's `RemoteClosed` comes once the function and what it captured
/// are gone. (At the hub thread's exit the inbox drops every kept sender
/// first, see `Inbox::close`.)
struct Posted<F> {
    f: F,
    reply: Reply,
}

impl<F: FnOnce() -> R, R: Send + 'static> Posted<F> {
    fn run(self) {
        let Posted { f, mut reply } = self;
        let ran = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            // Killed while `f` ran (`run_main` ending, say): the kill
            // finishes unwinding this greenlet, and `reply` drops the
            // sender, so the caller hears `RemoteClosed`, not the crate's
            // private kill signal.
            Err(p) if super::is_kill(p.as_ref()) => std::panic::resume_unwind(p),
            ran => ran,
        };
        // The caller waits until this is sent or the sender dropped.
        if let Some(tx) = reply.take() {
            if let Ok(tx) = tx.downcast::<std::sync::mpsc::SyncSender<std::thread::Result<R>>>() {
                let _ = tx.send(ran);
            }
        }
    }
}

/// An inbox's locks, held across a fork (see
/// [`hold_for_fork`](Inbox::hold_for_fork)), each with an `Arc` that
/// keeps the inbox alive while it is held.
pub(crate) struct ForkHold {
    _mail: HeldLock<Inbox, Mail>,
    _waker: HeldLock<Inbox, Option<Waker>>,
}

/// Locks `m`. Its holders make plain pushes, swaps and a waker's call: a
/// panic cannot leave the data half-written, so a poisoned lock is still
/// sound to use.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The error of handing something to a hub whose thread has exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteClosed(());

impl fmt::Display for RemoteClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the hub's thread has exited")
    }
}

impl std::error::Error for RemoteClosed {}

/// A handle to one thread's hub that any thread may hold: `Send + Sync +
/// Clone`. See [`remote`].
#[derive(Clone)]
pub struct Remote {
    inbox: Arc<Inbox>,
}

impl Remote {
    /// Runs `f` on the hub's thread, in a new greenlet spawned the next
    /// time that hub polls (see [`remote`]). A panic in `f` is reported by
    /// the panic hook and goes no further, as for a
    /// [`spawn`](super::spawn)ed greenlet nobody joins.
    ///
    /// Fails with [`RemoteClosed`] (dropping `f`) once the hub's thread has
    /// exited.
    ///
    /// `Ok` means *queued*, not *run*: work posted while the hub's thread
    /// is exiting can be accepted and then dropped unrun with the queue
    /// (its closure's destructors run; nothing reports it), and work that
    /// gets no stack on the hub's thread (see
    /// [`Builder::spawn`](super::Builder::spawn)) is dropped unrun with a
    /// line on stderr, the hub running on. Wait for a
    /// reply (a channel the work answers on) when it matters that the work
    /// ran. The queue is unbounded and takes no backpressure: a thread that
    /// posts faster than the hub runs the work grows it until memory runs
    /// out, so throttle with a bounded channel of replies or a counter.
    ///
    /// # Errors
    ///
    /// [`RemoteClosed`] (`f` dropped unrun) once the hub's thread has
    /// exited.
    pub fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) -> Result<(), RemoteClosed> {
        self.inbox
            .post(|mail| mail.tasks.push_back(Task::Spawn(Box::new(f))))
    }

    /// Runs `f` on the hub's thread as [`spawn`](Remote::spawn) does, in
    /// turn with the work posted before it, or, when no stack can be had
    /// for its greenlet, on the hub greenlet itself once the poll that
    /// took it is over: work of the crate's that must not be dropped for
    /// want of a stack. `f` must be short and must not block (a panic
    /// there is reported on stderr and goes no further).
    pub(crate) fn run_on_hub<F: FnOnce() + Send + 'static>(
        &self,
        f: F,
    ) -> Result<(), RemoteClosed> {
        self.inbox
            .post(|mail| mail.tasks.push_back(Task::OnHub(Box::new(f))))
    }

    /// Runs `f` on the hub's thread, as [`spawn`](Remote::spawn) does, and
    /// blocks the calling OS thread until it has returned its value: how a
    /// plain (not async, not greenlet) thread calls into a hub. A panic in
    /// `f` resumes here, in the caller. From a greenlet it blocks its whole
    /// thread, every greenlet of its hub with it (two hubs calling each
    /// other this way deadlock): there, block only the greenlet with
    /// `hub::block_on(remote.call(f))` (see [`Remote::call`]), or post `f`
    /// with [`spawn`](Remote::spawn) and wait on a
    /// [`channel`](super::channel) for its answer.
    ///
    /// ```
    /// use greenlet::hub;
    ///
    /// let remote = hub::remote();
    /// let (tx, rx) = hub::channel();
    /// let caller = std::thread::spawn(move || {
    ///     let id = remote.call_blocking(|| std::thread::current().id()).unwrap();
    ///     tx.send(id).unwrap();
    /// });
    /// // The hub picks the call up while main waits for the answer.
    /// assert_eq!(rx.recv(), Ok(std::thread::current().id()));
    /// caller.join().unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`RemoteClosed`] when the hub's thread has exited, or drops `f`
    /// unrun (it exits first, or has no stack for the greenlet), or the
    /// greenlet running `f` is killed while `f` runs (as when
    /// [`run_main`](super::run_main) ends while `f` is blocked) and the
    /// kill unwinds out of `f` (an `f` that catches it and returns gives
    /// its value), or the hub's thread exits while `f` is blocked (`f` is
    /// then left suspended with the thread's other greenlets, and the
    /// caller hears `RemoteClosed`).
    ///
    /// # Panics
    ///
    /// When called on the hub's own thread, whose hub could never run `f`
    /// while this waits (use [`spawn`](super::spawn) there); and as `f`.
    pub fn call_blocking<F, R>(&self, f: F) -> Result<R, RemoteClosed>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        if super::try_hub()
            .and_then(|hub| hub.reactor().map(|r| Arc::ptr_eq(r.inbox(), &self.inbox)))
            .unwrap_or(false)
        {
            panic!(
                "greenlet::hub::Remote::call_blocking on the hub's own thread would wait \
                 for itself (use hub::spawn and join there)"
            );
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<std::thread::Result<R>>(1);
        let reply = Reply {
            inbox: self.inbox.clone(),
            key: Some(self.inbox.keep_reply(Box::new(tx))?),
        };
        let posted = Posted { f, reply };
        self.spawn(move || posted.run())?;
        match rx.recv() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(payload)) => std::panic::resume_unwind(payload),
            Err(_) => Err(RemoteClosed(())),
        }
    }

    /// Whether the hub's thread has exited (so `spawn` fails).
    pub fn is_closed(&self) -> bool {
        self.inbox.is_closed()
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// A handle to this thread's hub through which other OS threads hand it
/// work ([`Remote::spawn`]); values go through a [`channel`](super::channel).
///
/// The hub picks remote work up whenever it polls: between rounds while
/// any greenlet waits on a socket or a channel, and once more before
/// [`run`](super::run) returns, so work posted before that point runs.
/// Remote work does not keep `run` going on its own: a thread that serves
/// remote work keeps a greenlet blocked in
/// [`Receiver::recv`](super::Receiver::recv) (or a socket call).
///
/// A `Remote` (or a channel [`Sender`](super::Sender)) that outlives the
/// hub's thread keeps only a small shared mailbox alive: the hub's own file
/// descriptors close when its thread exits, and every later call fails
/// with [`RemoteClosed`].
///
/// ```
/// use greenlet::hub;
///
/// // Offload a blocking computation to an OS thread, get the result back
/// // in a greenlet, without blocking the hub's other greenlets.
/// let (tx, rx) = hub::channel();
/// let remote = hub::remote();
/// std::thread::spawn(move || {
///     let sum: u64 = (1..=100).sum();
///     remote.spawn(move || println!("hello from the hub's thread")).unwrap();
///     tx.send(sum).unwrap();
/// });
/// assert_eq!(rx.recv(), Ok(5050));
/// ```
///
/// # Panics
///
/// When the thread's reactor cannot be created (`epoll_create` or the
/// waker's `eventfd` failed, at the open-file limit).
pub fn remote() -> Remote {
    let hub = hub();
    Remote {
        inbox: hub.reactor_or_panic("hub::remote").inbox().clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Remote>();
    }
}
