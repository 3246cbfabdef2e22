//! `Readiness`: a socket's readiness to read or write, as something to
//! wait for beside other things in [`hub::wait_any`](crate::hub::wait_any)
//! (gevent's `select` over a socket and an event).

use std::fmt;
use std::os::fd::RawFd;

use crate::hub::reactor::{Direction, Registration};
use crate::hub::{waitable, Hub, WaitKey, Waitable};

/// A socket's readiness to read ([`TcpStream::readable`](super::TcpStream::readable),
/// [`UnixStream::readable`](super::UnixStream::readable),
/// [`UdpSocket::readable`](super::UdpSocket::readable),
/// [`AsyncFd::readable`](super::AsyncFd::readable); a listener's
/// [`TcpListener::readable`](super::TcpListener::readable) and
/// [`UnixListener::readable`](super::UnixListener::readable): a connection
/// to accept) or write (the `writable` methods), for [`hub::wait`](crate::hub::wait),
/// [`wait_any`](crate::hub::wait_any) and [`iwait`](crate::hub::iwait)
/// beside [`Event`](crate::hub::Event)s, joins and the like: a handler
/// can wait for the next request *or* a shutdown, a watcher for a change
/// *or* its client going away.
///
/// It is ready when the kernel says so, as `poll` and `select` do: data,
/// an end of stream or an error to read (the read then says which; TCP
/// urgent data alone is none of them, as an ordinary read skips it, but
/// an [`AsyncFd`](super::AsyncFd)'s `POLLPRI` counts: for some descriptors
/// it is all there is to tell); for writing, enough room in the send
/// buffer (the kernel's low-water mark: a small write may go through while
/// the socket is not yet writable), or a write half shut down, where
/// every write fails at once (for a Unix stream whose buffer is full,
/// `poll` says "not writable" then, but a write says `BrokenPipe`: its
/// [`writable`](super::UnixStream::writable) is ready, through the handle
/// that shut it down and its `try_clone`s). The kernel is asked (a
/// zero-timeout `poll`) whenever the hub cannot rule it out, so a fresh
/// connection with nothing sent is not ready. It rules it out when the
/// socket's last call said "would block" and the hub has had no event
/// for it since: data that came after that, before the hub's next poll,
/// counts once the hub polls, which a wait that blocks lets it do first,
/// but a zero-timeout wait that finds something else ready does not.
///
/// As for every item of a multi-wait, an event the hub saw while the call
/// waited counts even if the socket is no longer ready when the caller
/// runs (another greenlet read the data meanwhile; [`hub::wait`](crate::hub::wait)
/// says so): with one reader per socket, the usual case, that cannot
/// happen. Among several ready things a socket counts from the hub's last
/// event for it (new data, room, an end), or from the first look that
/// found it ready, so a stop or an event that came before a client's
/// latest data comes first once the hub has polled for that data (until
/// then, the socket still counts from its previous event). Something that
/// stays ready without a new event (a connection an accept loop cannot
/// take for want of descriptors, a socket nobody drains) keeps its place
/// before everything that became ready later: a loop that must see a stop
/// whatever its socket does checks for it first each turn (`is_set`,
/// [`is_stopping`](super::ServerHandle::is_stopping)).
///
/// ```
/// use std::io::{Read, Write};
/// use greenlet::hub::{self, Event, Waitable};
/// use greenlet::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let mut client = TcpStream::connect(listener.local_addr()?)?;
/// let (conn, _) = listener.accept()?;
/// let shutdown = Event::new();
///
/// // Nothing sent yet, nobody shutting down: neither is ready.
/// let readable = conn.readable();
/// let either: [&dyn Waitable; 2] = [&readable, &shutdown];
/// assert_eq!(hub::wait_any(&either, Some(std::time::Duration::ZERO)), None);
///
/// client.write_all(b"ping")?;
/// assert_eq!(hub::wait_any(&either, None), Some(0));
/// let mut buf = [0; 4];
/// (&conn).read_exact(&mut buf)?;
///
/// shutdown.set();
/// assert_eq!(hub::wait_any(&either, None), Some(1));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Readiness<'a> {
    reg: &'a Registration,
    hub: &'a Hub,
    fd: RawFd,
    dir: Direction,
    /// Whether `POLLPRI` is readiness to read: an `AsyncFd`'s (for some
    /// descriptors it is their only news), not a socket's (see
    /// `is_ready`).
    priority: bool,
}

impl<'a> Readiness<'a> {
    /// The readiness of `fd`, registered as `reg`, for `dir`; the caller
    /// borrows what owns `fd` for `'a`, so it stays open. `priority`:
    /// whether `POLLPRI` counts as readiness to read.
    pub(crate) fn new(
        reg: &'a Registration,
        hub: &'a Hub,
        fd: RawFd,
        dir: Direction,
        priority: bool,
    ) -> Readiness<'a> {
        Readiness {
            reg,
            hub,
            fd,
            dir,
            priority,
        }
    }
}

impl fmt::Debug for Readiness<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness")
            .field("fd", &self.fd)
            .field("direction", &self.dir)
            .finish()
    }
}

impl waitable::Source for Readiness<'_> {
    fn is_ready(&self) -> bool {
        if self.reg.is_closed() || self.reg.is_shut(self.dir) {
            // Closed by `close`, or its write half shut down: the call
            // fails at once (`poll` would say "not writable" for a Unix
            // stream's full buffer).
            return true;
        }
        if !self.reg.is_ready(self.dir) {
            // The kernel said "would block", and no event came since.
            return false;
        }
        let events = match self.dir {
            // A socket's not `POLLPRI`: TCP urgent data alone is no data
            // for a read, which skips the urgent byte and blocks (Linux
            // says `POLLPRI` until the byte is read with `MSG_OOB`). Its
            // `EPOLLPRI` still wakes the wait, this look then decides, and
            // data after the mark is `POLLIN`. An `AsyncFd`'s descriptor
            // may have nothing else to tell (a sysfs attribute that
            // changed, a pty in packet mode).
            Direction::Read if self.priority => libc::POLLIN | libc::POLLRDHUP | libc::POLLPRI,
            Direction::Read => libc::POLLIN | libc::POLLRDHUP,
            Direction::Write => libc::POLLOUT,
        };
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid `pollfd` that lives across the call;
        // the descriptor is the socket's, open while `self` borrows it,
        // and a zero timeout makes the call return at once.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        // An error of `poll` itself (`EINTR`, `ENOMEM`) counts as ready:
        // the call it stands for will say what is wrong, or block.
        let ready = n != 0;
        if ready {
            self.reg.found_ready(self.dir);
        } else {
            self.reg.would_block(self.dir);
        }
        ready
    }

    fn ready_stamp(&self) -> u64 {
        // The hub's last event for it, or the first look that found it
        // ready without one: taken here if none is yet, so that things
        // ready before any wait looked count in the order a wait lists
        // them (0: not ready, no event yet).
        let stamp = self.reg.ready_stamp(self.dir);
        if stamp == 0 {
            self.is_ready();
            return self.reg.ready_stamp(self.dir);
        }
        stamp
    }

    fn add_waiter(&self, w: usize) -> usize {
        let w = WaitKey::from(w);
        self.reg.add_waiter(self.dir, w);
        usize::from(self.hub.io_wait_began(w))
    }

    fn remove_waiter(&self, daemon: usize, w: usize) {
        self.reg.remove_waiter(self.dir, WaitKey::from(w));
        self.hub.io_wait_ended(daemon != 0);
    }

    fn stays_listed(&self) -> bool {
        // Counted as an I/O wait while listed (see the trait).
        false
    }
}

impl Waitable for Readiness<'_> {}
