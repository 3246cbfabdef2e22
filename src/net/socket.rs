//! A mio socket registered with the thread's hub: the one place where a
//! socket call that would block turns into a greenlet wait.

use std::cell::{Cell, OnceCell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use mio::event::Source;

use crate::hub::reactor::{Direction, Registration};
use crate::hub::{deadline_after, hub, Hub};
use crate::stats::WaitOn;

/// `io` plus its registration and the std-style timeouts. Dropping it
/// deregisters `io` and then drops it, which closes the fd (once).
pub(crate) struct Socket<S: Source + AsRawFd> {
    io: S,
    reg: Rc<Registration>,
    hub: Rc<Hub>,
    timeouts: Timeouts,
}

/// A read and a write timeout, by [`Direction`].
type Pair = [Cell<Option<Duration>>; 2];

/// A socket's timeouts. In std they are socket options, kept by the one
/// open socket that every duplicate of its descriptor names, so a timeout
/// set through a `try_clone`d handle holds for the original too. Here they
/// are the socket's own until its first `try_clone`, which moves them
/// into [`Clones`], shared by every handle (an allocation only for sockets
/// that are cloned, none per accepted connection).
struct Timeouts {
    own: Pair,
    shared: OnceCell<Rc<Clones>>,
}

/// What the handles of one socket (the original and its `try_clone`s,
/// each registered on its own) share: the timeouts, and each handle's
/// registration, for a shutdown through one handle to wake the writers
/// blocked on the others (see [`Socket::shut_down_writes`]).
struct Clones {
    timeouts: Pair,
    /// Those of dropped handles are pruned as clones are made.
    registrations: RefCell<Vec<Weak<Registration>>>,
}

impl Timeouts {
    fn new() -> Timeouts {
        Timeouts {
            own: Default::default(),
            shared: OnceCell::new(),
        }
    }

    fn pair(&self) -> &Pair {
        self.shared
            .get()
            .map_or(&self.own, |shared| &shared.timeouts)
    }

    fn get(&self, dir: Direction) -> Option<Duration> {
        self.pair()[dir as usize].get()
    }

    fn set(&self, dir: Direction, timeout: Option<Duration>) {
        self.pair()[dir as usize].set(timeout);
    }

    /// The timeouts of a clone, whose registration is `clone`, of the
    /// socket whose registration is `own`: shared from now on.
    fn share(&self, own: &Rc<Registration>, clone: &Rc<Registration>) -> Timeouts {
        let shared = self.shared.get_or_init(|| {
            Rc::new(Clones {
                timeouts: [Cell::new(self.own[0].get()), Cell::new(self.own[1].get())],
                registrations: RefCell::new(vec![Rc::downgrade(own)]),
            })
        });
        let mut registrations = shared.registrations.borrow_mut();
        registrations.retain(|reg| reg.strong_count() > 0);
        registrations.push(Rc::downgrade(clone));
        drop(registrations);
        Timeouts {
            own: Default::default(),
            shared: OnceCell::from(shared.clone()),
        }
    }
}

impl<S: Source + AsRawFd> Socket<S> {
    /// Registers a non-blocking `io` with this thread's hub (creating the
    /// hub and its reactor if needed).
    pub(crate) fn new(io: S) -> io::Result<Socket<S>> {
        let hub = hub();
        let reg = hub.reactor_or_init()?.register(io.as_raw_fd())?;
        Ok(Socket {
            io,
            reg,
            hub,
            timeouts: Timeouts::new(),
        })
    }

    /// The mio socket.
    pub(crate) fn get(&self) -> &S {
        &self.io
    }

    /// Its readiness for `dir`, to wait for among other things.
    pub(crate) fn readiness(&self, dir: Direction) -> super::Readiness<'_> {
        // TCP urgent data alone is not readiness (see `Readiness`).
        super::Readiness::new(&self.reg, &self.hub, self.io.as_raw_fd(), dir, false)
    }

    /// Runs `op` until it says anything but `WouldBlock`, blocking the
    /// calling greenlet on `dir` in between, within the read or write
    /// timeout (`dir`'s).
    #[inline]
    pub(crate) fn io<R>(
        &self,
        dir: Direction,
        call: &'static str,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.io_trying(dir, call, false, op)
    }

    /// [`io`](Socket::io), trying `op` first whatever the readiness when
    /// `now`: for a write of no bytes, which the kernel completes at once
    /// even on a full buffer (std's blocking call returns `Ok(0)` at once),
    /// where waiting for room could wait for ever.
    #[inline]
    pub(crate) fn io_trying<R>(
        &self,
        dir: Direction,
        call: &'static str,
        now: bool,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let timeout = self.timeouts.get(dir);
        self.io_within(dir, call, timeout, now, op)
    }

    /// Runs `op` once, never blocking: a `WouldBlock` comes back as the
    /// error (and the readiness it disproves is forgotten, as in `io`).
    pub(crate) fn try_io<R>(
        &self,
        dir: Direction,
        call: &'static str,
        op: impl FnOnce(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        if self.reg.is_closed() {
            return Err(closed(call));
        }
        let seen = self.reg.events(dir);
        match op(&self.io) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Never blocking: an event since is kept for the next call.
                self.reg.would_block_since(dir, seen);
                Err(e)
            }
            done => done,
        }
    }

    /// [`io_trying`](Socket::io_trying) with an explicit timeout.
    #[inline]
    pub(crate) fn io_within<R>(
        &self,
        dir: Direction,
        call: &'static str,
        timeout: Option<Duration>,
        now: bool,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let on = IoCall {
            hub: &self.hub,
            reg: &self.reg,
            fd: self.io.as_raw_fd(),
            dir,
            call,
            timeout,
        };
        drive(on, now, || op(&self.io))
    }

    /// A stream read of up to `len` bytes by `op`. If `short_drains` (TCP),
    /// a read that fills less than its buffer marks the socket drained
    /// (see `Registration::short_read`). Unix streams do not: a read stops
    /// early at a boundary between writers with different credentials
    /// under `SO_PASSCRED`, with more data queued.
    #[inline]
    pub(crate) fn read(
        &self,
        call: &'static str,
        len: usize,
        short_drains: bool,
        op: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let n = self.io(Direction::Read, call, op)?;
        if short_drains && n > 0 && n < len {
            self.reg.short_read();
        }
        Ok(n)
    }

    /// Closes it for every greenlet sharing it: the greenlets blocked on it
    /// wake up with an error, later operations fail at once, and the hub
    /// forgets it. The descriptor itself is closed when the value drops.
    pub(crate) fn close(&self) {
        if self.reg.is_closed() {
            return;
        }
        let hub = &self.hub;
        self.reg.close(|w| {
            hub.wake(w, crate::hub::Wake::Ready);
        });
        if let Some(reactor) = hub.reactor() {
            reactor.deregister(self.io.as_raw_fd(), &self.reg);
        }
    }

    /// The mio socket itself, deregistered from the hub (unless closed,
    /// which deregistered it then) and no longer this thread's: for
    /// `into_std`. Greenlets blocked on it cannot exist, as this takes the
    /// socket by value.
    pub(crate) fn into_inner(self) -> S {
        if !self.reg.is_closed() {
            if let Some(reactor) = self.hub.reactor() {
                reactor.deregister(self.io.as_raw_fd(), &self.reg);
            }
        }
        let this = std::mem::ManuallyDrop::new(self);
        // Every field, by name: one added later fails to compile here
        // until it is read out below too.
        let Socket {
            io,
            reg,
            hub,
            timeouts,
        } = &*this;
        // SAFETY: `this` is never used again and, in a `ManuallyDrop`,
        // never dropped: `Drop for Socket` (which would deregister `io`
        // again and close it) does not run. Each of its fields (the
        // pattern above names them all) is read out once here, so each is
        // dropped or returned exactly once.
        unsafe {
            drop(std::ptr::read(reg));
            drop(std::ptr::read(hub));
            drop(std::ptr::read(timeouts));
            std::ptr::read(io)
        }
    }

    /// A duplicate of its descriptor (for `try_clone`), which the caller
    /// registers as a socket of its own, sharing the timeouts.
    pub(crate) fn dup(&self) -> io::Result<OwnedFd> {
        if self.reg.is_closed() {
            return Err(closed("net::try_clone"));
        }
        // SAFETY: the descriptor is owned by `self.io`, open while `self`
        // lives, and borrowed only for this call.
        let fd = unsafe { BorrowedFd::borrow_raw(self.io.as_raw_fd()) };
        fd.try_clone_to_owned()
    }

    /// Makes `self` share the timeouts of `other`, of which it is a clone
    /// (see [`Timeouts`]), and hear of its shutdowns.
    pub(crate) fn share_timeouts(&mut self, other: &Socket<S>) {
        self.timeouts = other.timeouts.share(&other.reg, &self.reg);
        if other.reg.is_shut(Direction::Write) {
            // A clone of a stream whose write half is shut down already.
            self.reg.shut_down(Direction::Write, |_| {});
        }
    }

    /// Its write half was shut down: wakes the greenlets blocked writing
    /// through this handle or a clone, whose retries get `EPIPE` as
    /// std's blocking writes do. Linux tells a Unix stream's epoll of no
    /// such change while the send buffer is full (it does for TCP).
    pub(crate) fn shut_down_writes(&self) {
        let hub = &self.hub;
        let wake = |w| {
            hub.wake(w, crate::hub::Wake::Ready);
        };
        match self.timeouts.shared.get() {
            None => self.reg.shut_down(Direction::Write, wake),
            Some(clones) => {
                // Upgraded first: a woken writer cannot run (and drop its
                // handle) before this returns, but the list is not
                // borrowed while the hub is called either way.
                let registrations: Vec<_> = clones
                    .registrations
                    .borrow()
                    .iter()
                    .filter_map(Weak::upgrade)
                    .collect();
                for reg in registrations {
                    reg.shut_down(Direction::Write, wake);
                }
            }
        }
    }

    pub(crate) fn set_timeout(&self, dir: Direction, timeout: Option<Duration>) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            // std's rule: a zero timeout is an error, not "never block".
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        self.timeouts.set(dir, timeout);
        Ok(())
    }

    pub(crate) fn timeout(&self, dir: Direction) -> Option<Duration> {
        self.timeouts.get(dir)
    }
}

impl<S: Source + AsRawFd> Drop for Socket<S> {
    fn drop(&mut self) {
        // A closed socket was deregistered then (and its token may belong
        // to another registration by now).
        if self.reg.is_closed() {
            return;
        }
        if let Some(reactor) = self.hub.reactor() {
            reactor.deregister(self.io.as_raw_fd(), &self.reg);
        }
        // `self.io` drops after this, closing the fd.
    }
}

/// The error of an operation on (or a wait cut short by) a closed socket
/// or `AsyncFd`.
#[cold]
pub(crate) fn closed(call: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!(
            "greenlet::{call}: the descriptor was closed (by `close`, maybe from another greenlet)"
        ),
    )
}

/// Tries `f` on each address `addr` resolves to, as std does; the last
/// error if none works. A host name is resolved on the pool (see
/// `addr.rs`).
pub(crate) fn each_addr<A: super::ToSocketAddrs, T>(
    addr: A,
    mut f: impl FnMut(std::net::SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for addr in super::addr::resolve(&addr)? {
        match f(addr) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// What [`drive`] runs an operation on: a descriptor, its registration
/// and hub, the direction it waits for, the call's name (for errors and
/// `stats`) and its timeout.
pub(crate) struct IoCall<'a> {
    pub(crate) hub: &'a Hub,
    pub(crate) reg: &'a Registration,
    pub(crate) fd: RawFd,
    pub(crate) dir: Direction,
    pub(crate) call: &'static str,
    pub(crate) timeout: Option<Duration>,
}

/// Runs `op` on descriptor `fd` (registered as `reg`) until it says
/// anything but `WouldBlock`, waiting for `dir` in between, within
/// `timeout` (counted from the first wait, not from each retry). With
/// `now`, `op` is tried first whatever the readiness: a transfer of no
/// bytes, which the kernel completes at once (std's blocking call returns
/// `Ok(0)` at once), where waiting for data or room could wait for ever.
///
/// When the wait fails, `op` is tried once more before its error is
/// returned: what came within a timeout counts even if the hub got to the
/// wait late (other greenlets ran long, or its timers fired before it
/// polled), as a blocking call returns whatever arrived by the time its
/// thread runs again; and a greenlet that unwinds, which cannot wait, still
/// gets what is there already (data, a child's exit) rather than the
/// refusal, even when the hub has not yet seen it ready.
#[inline]
pub(crate) fn drive<R>(
    on: IoCall<'_>,
    mut now: bool,
    mut op: impl FnMut() -> io::Result<R>,
) -> io::Result<R> {
    let IoCall {
        hub,
        reg,
        fd,
        dir,
        call,
        timeout,
    } = on;
    hub.coop();
    let mut deadline: Option<Option<Instant>> = None;
    loop {
        if reg.is_closed() {
            return Err(closed(call));
        }
        if reg.is_ready(dir) || std::mem::take(&mut now) {
            let seen = reg.events(dir);
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !reg.would_block_since(dir, seen) {
                        // An event came while `op` ran: try it again.
                        continue;
                    }
                }
                done => return done,
            }
        }
        let until = *deadline.get_or_insert_with(|| timeout.and_then(deadline_after));
        let on = match dir {
            Direction::Read => WaitOn::Readable { fd, until },
            Direction::Write => WaitOn::Writable { fd, until },
        };
        if let Err(e) = hub.wait_io(reg, dir, until, call, on) {
            if reg.is_closed() {
                return Err(e);
            }
            let seen = reg.events(dir);
            match op() {
                Err(again) if again.kind() == io::ErrorKind::WouldBlock => {
                    if !reg.would_block_since(dir, seen) {
                        // An event came while `op` ran: its readiness is
                        // the answer, not the timeout.
                        continue;
                    }
                    return Err(e);
                }
                done => return done,
            }
        }
    }
}

/// `r`, the result of a call that did not go through [`drive`] (a
/// connect's first step), spending budget when it is an error: a connect
/// refused at once (`ENOENT`, `ECONNREFUSED` on a Unix socket, no route,
/// no port or descriptor left) completes without blocking, as a read that
/// finds data does. A loop that retries it then lets the other greenlets
/// run (the one that binds the server, or closes a descriptor) once per
/// budget. A connect that goes on spends its unit in `drive`.
pub(crate) fn failed_at_once<T>(r: io::Result<T>) -> io::Result<T> {
    if r.is_err() {
        crate::hub::coop();
    }
    r
}

/// One look at a non-blocking connect in progress: the socket turns
/// writable when the handshake ends, with `SO_ERROR` set if it failed, and
/// has a peer once it succeeded. `WouldBlock` while it is still going.
pub(crate) fn connect_done(
    error: io::Result<Option<io::Error>>,
    peer: io::Result<()>,
) -> io::Result<()> {
    if let Some(e) = error? {
        return Err(e);
    }
    match peer {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
        done => done,
    }
}
