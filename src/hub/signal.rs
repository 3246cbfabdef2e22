//! Unix signals delivered to greenlets: [`signal`] gives a [`Signal`]
//! whose [`recv`](Signal::recv) blocks only the calling greenlet (gevent's
//! `signal_handler`, tokio's `signal::unix::signal`).
//!
//! How it works: the first `signal(n)` installs a handler for `n` that
//! counts `n` raised once more and writes a byte to a process-wide pipe
//! (the self-pipe trick; an atomic add and `write` are async-signal-safe,
//! and the handler does nothing else). One OS thread, started with the
//! first `signal` call, is woken by that pipe and forwards each signal
//! raised since its last look to every [`Signal`] for it made before the
//! raise, through a hub
//! [`channel`](super::channel), which wakes the receiving hub with its
//! `mio::Waker`. Any thread may take the signal; no signal mask changes.

use std::fmt;
use std::io;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{channel, Receiver, Sender};

/// The write end of the self-pipe (-1 until it exists). Read by the
/// handler, so an atomic and never closed once set.
static PIPE: AtomicI32 = AtomicI32::new(-1);

/// How many times each signal was raised, by number: the handler counts
/// one, the dispatcher compares them with what it forwarded after each
/// read of the pipe, whose bytes only wake it. A byte dropped on a full
/// pipe (a burst of one signal) therefore loses no other signal: its count
/// moved. A [`Signal`] notes its signal's count when made, and is handed
/// only the raises counted after it (a signal raised while none is alive
/// is ignored, not kept for the next one made).
static RAISED: [AtomicU64; 128] = [const { AtomicU64::new(0) }; 128];

/// The raise counts when this process was forked (see `fork.rs`): the
/// child's dispatcher forwards what was raised after them.
static AT_FORK: [AtomicU64; 128] = [const { AtomicU64::new(0) }; 128];

/// Who wants which signal.
pub(super) struct Registry {
    /// Handlers installed, by signal number.
    installed: Vec<bool>,
    subscribers: Vec<Subscriber>,
}

struct Subscriber {
    id: u64,
    signum: c_int,
    /// The signal's raise count when it was made.
    since: u64,
    tx: Sender<()>,
    /// The thread whose hub receives: after a fork, only the forking
    /// thread's are in the child.
    thread: std::thread::ThreadId,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    installed: Vec::new(),
    subscribers: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    // Only pushes and removals happen under the lock: a panic cannot leave
    // the lists inconsistent.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The registry's lock, for `fork.rs` to hold across a fork (the
/// dispatcher holds it while it forwards).
pub(super) fn lock_registry() -> MutexGuard<'static, Registry> {
    registry()
}

/// In a forked child, from its `pthread_atfork` handler (on the thread
/// that forked, holding the registry's lock as `reg`): forgets the
/// subscribers of other threads, whose hubs are not in the child. Their
/// senders are leaked, not dropped: a drop would take their channels'
/// locks, which those threads may have held at the fork, for ever.
pub(super) fn forget_other_threads(reg: &mut Registry) {
    let me = std::thread::current().id();
    let (mine, theirs): (Vec<_>, Vec<_>) = std::mem::take(&mut reg.subscribers)
        .into_iter()
        .partition(|s| s.thread == me);
    reg.subscribers = mine;
    std::mem::forget(theirs);
}

/// In a forked child, from its `pthread_atfork` handler: notes the raise
/// counts, which the parent's dispatcher forwards (atomic loads and
/// stores only).
pub(super) fn note_fork() {
    for (at_fork, raised) in AT_FORK.iter().zip(&RAISED) {
        at_fork.store(raised.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// In a forked child whose parent had a dispatcher: starts the child's
/// own (the parent's thread did not come along), so a [`Signal`] made
/// before the fork hears the child's signals. A failure is not kept: the
/// next [`signal`] call tries again.
pub(super) fn renew_dispatcher() {
    let started = *STARTED.lock().unwrap_or_else(PoisonError::into_inner);
    if started.is_some_and(|forks| forks != super::fork::forks()) {
        let _ = start_dispatcher();
    }
}

/// Receives one kind of Unix signal; see [`signal`]. `!Send`: its
/// greenlets belong to the thread that made it.
pub struct Signal {
    rx: Receiver<()>,
    signum: c_int,
    id: u64,
}

impl Signal {
    /// Waits (blocking only the calling greenlet) for the next delivery of
    /// the signal.
    ///
    /// Deliveries that arrive while nobody waits are kept and returned by
    /// the next calls; several deliveries of one signal that the kernel
    /// merges (it keeps one pending instance of each standard signal), or
    /// that come faster than they are forwarded, are one.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](super)). A wait here
    /// keeps [`run`](super::run) going, as a channel receive does; wait
    /// in a [`daemon`](super::daemon) if it should not.
    pub fn recv(&self) {
        // The sender lives in the registry until this value drops.
        let _ = self.rx.recv();
    }

    /// Like [`recv`](Signal::recv), giving up after `timeout`; returns
    /// whether the signal came.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    pub fn recv_timeout(&self, timeout: Duration) -> bool {
        self.rx.recv_timeout(timeout).is_ok()
    }

    /// Takes one pending delivery if there is one, without blocking.
    pub fn try_recv(&self) -> bool {
        self.rx.try_recv().is_ok()
    }

    /// The signal's number.
    pub fn signum(&self) -> c_int {
        self.signum
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        let removed = {
            let mut reg = registry();
            reg.subscribers
                .iter()
                .position(|s| s.id == self.id)
                .map(|i| reg.subscribers.swap_remove(i))
        };
        // Dropped outside the lock.
        drop(removed);
    }
}

super::wait_any::waitable_via!(
    /// Ready while a delivery is pending ([`try_recv`](Signal::try_recv)
    /// would take it): a greenlet waits for a signal and something else at
    /// once with [`wait_any`](super::wait_any).
    Signal => rx
);

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal")
            .field("signum", &self.signum)
            .finish()
    }
}

/// Starts receiving signal `signum` (`libc::SIGINT`, `libc::SIGTERM`,
/// `libc::SIGHUP`, ...) in this thread's greenlets.
///
/// The first call for a signal replaces its disposition for the rest of
/// the process: from then on the signal no longer has its default effect
/// (`SIGINT` no longer ends the process) but is counted and handed to
/// every live [`Signal`] for it, on any thread; with none alive it is
/// ignored. Handlers installed before are replaced, not chained.
///
/// On a [paused clock](super::time), a wait for a signal does not hold
/// the clock: with nothing else ready, the clock jumps to the next timer
/// as if no signal could come. A test that signals itself sends the
/// signal first, or holds the clock ([`time::hold`](super::time::hold))
/// while it waits.
///
/// ```
/// use greenlet::hub;
///
/// let sigusr1 = hub::signal(libc::SIGUSR1).unwrap();
/// let waiter = hub::spawn(move || {
///     sigusr1.recv(); // blocks only this greenlet
///     "got SIGUSR1"
/// });
/// hub::yield_now();
/// // SAFETY: `raise` only sends a signal to the calling thread.
/// unsafe { libc::raise(libc::SIGUSR1) };
/// assert_eq!(waiter.join().unwrap(), "got SIGUSR1");
/// ```
///
/// # Errors
///
/// `InvalidInput` for a number that is not a signal, or one that cannot
/// be caught or must not be (`SIGKILL`, `SIGSTOP`, and the faults
/// `SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`, `SIGTRAP`); the OS error if the
/// pipe, the thread or the handler cannot be set up.
///
/// # Panics
///
/// When the thread's reactor cannot be created (see
/// [`channel`](super::channel)).
pub fn signal(signum: c_int) -> io::Result<Signal> {
    const FORBIDDEN: [c_int; 7] = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGTRAP,
    ];
    if signum <= 0 || signum >= max_signal() || FORBIDDEN.contains(&signum) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("greenlet::hub::signal: signal {signum} cannot be received"),
        ));
    }
    start_dispatcher()?;
    static IDS: AtomicU64 = AtomicU64::new(1);
    let (tx, rx) = channel();
    let id = IDS.fetch_add(1, Ordering::Relaxed);
    let mut reg = registry();
    let index = signum as usize;
    if reg.installed.len() <= index {
        reg.installed.resize(index + 1, false);
    }
    if !reg.installed[index] {
        install_handler(signum)?;
        reg.installed[index] = true;
    }
    // Read under the lock, which the dispatcher holds while it forwards.
    let since = RAISED[index].load(Ordering::SeqCst);
    reg.subscribers.push(Subscriber {
        id,
        signum,
        since,
        tx,
        thread: std::thread::current().id(),
    });
    Ok(Signal { rx, signum, id })
}

/// One past the highest signal number.
fn max_signal() -> c_int {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        libc::SIGRTMAX() + 1
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        32
    }
}

/// The fork count (see `fork.rs`) under which the running dispatcher was
/// started; `None` before the first.
static STARTED: Mutex<Option<u64>> = Mutex::new(None);

/// `STARTED`'s lock, for `fork.rs` to hold across a fork: a dispatcher
/// being started by another thread then holds it over a thread's spawn.
pub(super) fn lock_started() -> MutexGuard<'static, Option<u64>> {
    STARTED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The inode of the pipe `PIPE` writes to (0: none yet), to tell whether
/// a forked child's inherited write end is still that pipe.
static PIPE_INODE: AtomicU64 = AtomicU64::new(0);

/// The inode of the pipe descriptor `fd` names (0 if it is no pipe).
fn pipe_inode(fd: c_int) -> u64 {
    // SAFETY: an all-zero `stat` is a valid value for `fstat` to fill;
    // `fd` is only asked about, not used.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `st` is valid for writes.
    let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
    if ok && st.st_mode & libc::S_IFMT == libc::S_IFIFO {
        st.st_ino
    } else {
        0
    }
}

/// The read end of the pipe the dispatcher reads (-1 until it exists):
/// a forked child closes its copy of the parent's when it starts its own,
/// if the number still names that pipe.
static READ: AtomicI32 = AtomicI32::new(-1);

/// Creates the self-pipe and the thread that reads it, once per process
/// (a forked child makes its own: the parent's thread did not come along,
/// and the parent's pipe is shared with it). A failure (out of
/// descriptors, say) is not kept: the next call tries again.
fn start_dispatcher() -> io::Result<()> {
    super::fork::watch();
    let forks = super::fork::forks();
    let mut started = STARTED.lock().unwrap_or_else(PoisonError::into_inner);
    if *started == Some(forks) {
        return Ok(());
    }
    // What the new dispatcher counts as forwarded: in a forked child, the
    // counts at the fork (the parent's dispatcher forwards those); else
    // none was raised yet (no handler is installed before this succeeds).
    let forwarded: [u64; 128] = if started.is_some() {
        std::array::from_fn(|i| AT_FORK[i].load(Ordering::SeqCst))
    } else {
        [0; 128]
    };
    // The inode of the pipe a forked child inherited (0: none), taken
    // before the new pipe's replaces it.
    let parents_inode = PIPE_INODE.load(Ordering::Acquire);
    let outcome = (|| {
        let (read, write) = new_pipe()?;
        let spawned = std::thread::Builder::new()
            .name("greenlet-signals".into())
            .spawn(move || dispatch(read, forwarded));
        if let Err(e) = spawned {
            // SAFETY: both descriptors are ours and used by nobody else
            // yet (the handler is installed only after this succeeded).
            unsafe {
                libc::close(read);
                libc::close(write);
            }
            return Err(e);
        }
        // In a forked child, the parent's write end is the one the handler
        // knows: its number is made to name the new pipe instead (`dup3`
        // swaps in place), so a handler that has just loaded it writes to
        // the child's pipe, and no descriptor of the parent's pipe stays.
        let parents_write = PIPE.load(Ordering::Acquire);
        // Only if that number still names the parent's pipe: a daemon may
        // have closed its descriptors and opened files since.
        let still_ours =
            parents_write >= 0 && pipe_inode(parents_write) == PIPE_INODE.load(Ordering::Acquire);
        // SAFETY: `write` is ours; `parents_write` is the inherited write
        // end (checked just now), which nothing but the handler uses, and
        // `dup3` replaces it atomically (no moment where the number names
        // nothing).
        if still_ours && unsafe { libc::dup3(write, parents_write, libc::O_CLOEXEC) } >= 0 {
            // SAFETY: `write` is ours, and now named by `parents_write` too.
            unsafe { libc::close(write) };
            PIPE_INODE.store(pipe_inode(parents_write), Ordering::Release);
        } else {
            // The first dispatcher, the parent's number taken by something
            // else, or a `dup3` refused (which leaves the parent's write end
            // open, unused, as the price).
            PIPE_INODE.store(pipe_inode(write), Ordering::Release);
            PIPE.store(write, Ordering::Release);
        }
        // The dispatcher's first look at the counts may have come before
        // the swap above, and a raise between the two wrote to the
        // parent's pipe: one byte into the new one makes it look again
        // (a forked child lost a signal sent to it at once, about one fork
        // in 300 under load).
        let byte = 0u8;
        // SAFETY: a one-byte write from a valid buffer to the write end
        // the handler now uses (non-blocking: a full pipe has a wake-up
        // pending already).
        unsafe {
            libc::write(
                PIPE.load(Ordering::Acquire),
                std::ptr::from_ref(&byte).cast(),
                1,
            )
        };
        let parents = READ.swap(read, Ordering::AcqRel);
        // Checked as the write end is: a daemon that closed what it
        // inherited has its own file at that number by now, or the read
        // end of the pipe just made (the lowest free number), which must
        // not be closed behind its owner's back. Then the parent's read
        // end, if open still, stays open, unused.
        if parents >= 0 && parents_inode != 0 && pipe_inode(parents) == parents_inode {
            // SAFETY: a forked child's copy of the parent's read end (the
            // number names the parent's pipe, checked just now), which
            // only the parent's dispatcher (not in this process) ever
            // read; nothing here uses it again.
            unsafe { libc::close(parents) };
        }
        Ok(())
    })();
    if outcome.is_ok() {
        *started = Some(forks);
    }
    outcome
}

/// A new self-pipe, close-on-exec from birth (a child spawned by another
/// thread meanwhile inherits neither end): its read end and its write
/// end, which is non-blocking (it must never block a signal handler: a
/// full pipe drops the byte, and deliveries already queued will wake the
/// receivers).
fn new_pipe() -> io::Result<(c_int, c_int)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` is a valid array of two `c_int`s for `pipe2` to fill;
    // nothing else is touched.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read, write] = fds;
    // SAFETY: `fcntl` on the write end just created, which we own; plain
    // integer arguments.
    unsafe {
        let flags = libc::fcntl(write, libc::F_GETFL);
        libc::fcntl(write, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    Ok((read, write))
}

/// How often a dispatcher with no pipe (none could be made, out of
/// descriptors) looks at the raise counts, and tries for a pipe again.
const WITHOUT_A_PIPE: Duration = Duration::from_millis(100);

/// The dispatcher's pipe failed for good (see `dispatch`): a new one takes
/// its place for the handler and the dispatcher. Returns its read end, or
/// -1 if none could be made. `old`: the failed read end.
fn replace_pipe(old: c_int) -> c_int {
    // Under the start's lock, which a fork takes first: a child never
    // finds the statics half swapped.
    let _started = lock_started();
    let old_inode = PIPE_INODE.load(Ordering::Acquire);
    let Ok((read, write)) = new_pipe() else {
        return -1;
    };
    PIPE_INODE.store(pipe_inode(write), Ordering::Release);
    PIPE.store(write, Ordering::Release);
    READ.store(read, Ordering::Release);
    // The old numbers are closed only if they still name the old pipe (a
    // read end whose write end went: EOF); the old write end's number is
    // let be: it was closed behind the crate's back, or the handler might
    // still write to it.
    if old >= 0 && old_inode != 0 && pipe_inode(old) == old_inode {
        // SAFETY: the old pipe's read end (checked just now), which only
        // this thread read, and no more.
        unsafe { libc::close(old) };
    }
    read
}

/// The dispatcher thread: woken by the pipe, forwards each pending signal
/// to its subscribers, for the life of the process. `forwarded`: the raise
/// counts forwarded so far (by a forked child's parent, for one).
fn dispatch(mut read: c_int, mut forwarded: [u64; 128]) {
    let mut buf = [0u8; 64];
    // A forked child's first look is at once: signals raised between its
    // fork and this start woke the parent's pipe, not this one.
    let mut look = true;
    loop {
        if std::mem::take(&mut look) {
            // Straight to the counts.
        } else if read < 0 {
            // No pipe: the counts are looked at every so often instead.
            std::thread::sleep(WITHOUT_A_PIPE);
            read = replace_pipe(-1);
        } else {
            // SAFETY: `buf` is valid for writes of its length; `read` is
            // the pipe's read end, owned by this thread and closed only by
            // it (`replace_pipe`).
            let n = unsafe { libc::read(read, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                // This thread took a signal itself: read again.
                continue;
            }
            if n <= 0 {
                // The pipe was closed behind the crate's back (a process
                // closing every descriptor it has): an EOF once its write
                // end is gone, EBADF once its read end is, or whatever the
                // file now at that number says. Each would come back at
                // once for ever, and no signal would wake this thread: a
                // new pipe takes its place, and the counts are looked at
                // now (a raise meanwhile wrote to nothing).
                read = replace_pipe(read);
                look = true;
                continue;
            }
        }
        let mut reg = registry();
        for (signum, raised) in RAISED.iter().enumerate() {
            let now = raised.load(Ordering::SeqCst);
            if now == forwarded[signum] {
                continue;
            }
            forwarded[signum] = now;
            // To those made before the latest raise. A receiver dropped
            // without its `Drop` having run yet (its thread exiting)
            // refuses: forget it.
            reg.subscribers
                .retain(|s| s.signum as usize != signum || s.since >= now || s.tx.send(()).is_ok());
        }
    }
}

/// The handler: writes the signal's number to the pipe, nothing else.
extern "C" fn on_signal(signum: c_int) {
    let fd = PIPE.load(Ordering::Acquire);
    if fd < 0 {
        return;
    }
    // A lock-free atomic add is async-signal-safe.
    if let Some(raised) = RAISED.get(signum as usize) {
        raised.fetch_add(1, Ordering::SeqCst);
    }
    let byte = signum as u8;
    // The interrupted code may be between a failed call and its read of
    // errno: keep errno as it was.
    let slot = errno_slot();
    // SAFETY: `slot` is null or the calling thread's errno, valid for the
    // thread's life.
    let saved = unsafe { slot.as_ref().copied() };
    // SAFETY: `write` is async-signal-safe; `byte` lives across the call
    // and `fd` is the pipe's write end, which is never closed. A full pipe
    // (EAGAIN) drops the byte, which is harmless: the dispatcher has a
    // wake-up queued already, and the signal's flag is set.
    unsafe {
        libc::write(fd, (&byte as *const u8).cast(), 1);
    }
    if let Some(saved) = saved {
        // SAFETY: as above; `slot` is not null.
        unsafe { *slot = saved };
    }
}

/// The calling thread's errno, where libc says where it is (null
/// elsewhere: then it is not kept).
fn errno_slot() -> *mut c_int {
    #[cfg(target_os = "linux")]
    // SAFETY: returns the calling thread's errno slot; no arguments.
    let slot = unsafe { libc::__errno_location() };
    #[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
    // SAFETY: as above.
    let slot = unsafe { libc::__errno() };
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    // SAFETY: as above.
    let slot = unsafe { libc::__error() };
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd"
    )))]
    let slot = std::ptr::null_mut();
    slot
}

fn install_handler(signum: c_int) -> io::Result<()> {
    // SAFETY: `sigaction` is a plain C struct for which all-zeroes is a
    // valid value (no handler, empty mask, no flags); the fields are set
    // below before use.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as extern "C" fn(c_int) as libc::sighandler_t;
    // Interrupted system calls restart, as under the default disposition
    // of a signal that stops nothing.
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa_mask` is a valid `sigset_t` to clear; `action` is fully
    // initialised and outlives the call; the old action is not wanted. The
    // handler only reads an atomic and calls `write`, both
    // async-signal-safe.
    let installed = unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signum, &action, std::ptr::null_mut())
    };
    if installed != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_raised_while_the_pipe_is_full_still_arrives() {
        let usr2 = signal(libc::SIGUSR2).unwrap();
        let fd = PIPE.load(Ordering::Acquire);
        {
            // With the registry held, the dispatcher stops after its next
            // read; then the pipe fills up, as a burst of one signal would
            // fill it, and the byte of this raise is dropped.
            let _held = registry();
            let junk = [0u8; 4096];
            // SAFETY: writes from a valid buffer to the pipe's write end
            // (non-blocking: it stops at EAGAIN once the pipe is full).
            while unsafe { libc::write(fd, junk.as_ptr().cast(), junk.len()) } > 0 {}
            // SAFETY: raising a signal whose handler is installed.
            assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
        }
        // The pending flag brings it through (bounded only so that a lost
        // signal fails instead of hanging).
        assert!(usr2.recv_timeout(Duration::from_secs(60)));
    }
}
