//! Readiness on any file descriptor: [`AsyncFd`] (tokio's `AsyncFd` is the
//! model) keeps one registered with the hub, and [`wait_readable`] /
//! [`wait_writable`] wait once on a descriptor nobody registered (gevent's
//! `wait_read` / `wait_write`).

use std::cell::Cell;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::hub::reactor::{Direction, Registration};
use crate::hub::{hub, Hub};
use crate::stats::WaitOn;

/// Blocks the calling greenlet (only it) until `fd` is readable, or has
/// hung up or failed (the next read then says so), or `timeout` passes
/// (`ErrorKind::TimedOut`). Returns at once when `fd` is ready already.
///
/// For a descriptor read in a loop, an [`AsyncFd`] is cheaper: it stays
/// registered, where this call registers `fd` with the hub's epoll and
/// removes it again each time. `fd` may be registered elsewhere (a
/// [`TcpStream`](super::TcpStream) of the same hub, say): the wait then
/// uses a duplicate of it (whose close, as the wait ends, lets go of the
/// process's `fcntl` record locks on the file, as any close of one of its
/// descriptors does on Linux). While it waits, `fd` is registered: an
/// [`AsyncFd::new`] of it meanwhile is refused (`EEXIST`). A regular file
/// is always ready. Priority data (`POLLPRI`) counts as readable, as for
/// [`AsyncFd::readable`]: for some descriptors (a sysfs attribute, a
/// cgroup's events file) it is all they tell; on a TCP socket it is urgent
/// data, which an ordinary read skips, so the read after such a wake-up
/// may say `WouldBlock` (the sockets of [`net`](crate::net) wait on their
/// `readable()` instead, which urgent data alone does not make ready).
///
/// ```
/// use std::io::Write;
/// use greenlet::hub;
///
/// let (reader, mut writer) = std::io::pipe().unwrap();
/// let waiter = hub::spawn(move || hub::wait_readable(&reader, None));
/// hub::yield_now(); // the waiter blocks: the pipe is empty
/// assert!(!waiter.is_finished());
/// writer.write_all(b"x").unwrap();
/// waiter.join().unwrap().unwrap();
/// ```
///
/// It waits on the descriptor, whatever owns it: given a socket of
/// [`net`](crate::net), it is not woken by that socket's
/// [`close`](crate::net::TcpListener::close) (which wakes the socket's own
/// calls and its [`readable`](crate::net::TcpListener::readable) waits),
/// and a listener or datagram socket closed so stays as it was, never
/// readable: wait on the socket's `readable()` to hear of a close.
///
/// Like a read of a socket, it spends the greenlet's cooperative budget
/// (see the [hub docs](crate::hub)): a loop over a descriptor that is
/// always ready lets the other greenlets run now and then.
///
/// # Errors
///
/// `ErrorKind::TimedOut` when `timeout` passes first; the error of `poll`
/// or `epoll_ctl` for a descriptor that cannot be waited on (a closed one
/// says `EBADF`); the error of creating the hub's reactor on a thread's
/// first wait (out of descriptors, say); `ErrorKind::Other` when it would
/// have to wait while the greenlet unwinds (from a destructor during a
/// panic or a kill), where blocking is impossible.
///
/// # Panics
///
/// As any blocking hub call (see the [hub docs](crate::hub)).
pub fn wait_readable(fd: impl AsFd, timeout: Option<Duration>) -> io::Result<()> {
    wait_once(fd.as_fd(), Direction::Read, timeout, "hub::wait_readable")
}

/// Blocks the calling greenlet (only it) until `fd` is writable, or has
/// hung up or failed (the next write then says so), or `timeout` passes
/// (`ErrorKind::TimedOut`). See [`wait_readable`].
///
/// ```
/// use greenlet::hub;
///
/// let (_reader, writer) = std::io::pipe().unwrap();
/// hub::wait_writable(&writer, None).unwrap(); // an empty pipe has room
/// ```
///
/// # Errors
///
/// As [`wait_readable`].
///
/// # Panics
///
/// As [`wait_readable`].
pub fn wait_writable(fd: impl AsFd, timeout: Option<Duration>) -> io::Result<()> {
    wait_once(fd.as_fd(), Direction::Write, timeout, "hub::wait_writable")
}

fn wait_once(
    fd: BorrowedFd<'_>,
    dir: Direction,
    timeout: Option<Duration>,
    call: &'static str,
) -> io::Result<()> {
    let hub = hub();
    hub.coop();
    // A timeout too long for an `Instant` is no deadline at all.
    let deadline = timeout.and_then(crate::hub::deadline_after);
    // Ready now? One `poll` saves registering at all (and answers for
    // regular files, which epoll refuses).
    if poll_now(fd, dir)? {
        return Ok(());
    }
    let reactor = hub.reactor_or_init()?;
    let raw = fd.as_raw_fd();
    // The descriptor itself, not a duplicate, unless it must be: closing a
    // duplicate after the wait would let go of the process's `fcntl`
    // record locks on the file (Linux lets them all go at the close of any
    // descriptor of it).
    let mut dup = None;
    let reg = match reactor.register(raw) {
        Ok(reg) => reg,
        // Already in this epoll set (its owner registered it): a duplicate
        // is a separate entry, with readiness of its own.
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            let copy = fd.try_clone_to_owned()?;
            let reg = reactor.register(copy.as_raw_fd())?;
            dup = Some(copy);
            reg
        }
        // Files and other descriptors epoll does not support are always
        // ready.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Ok(()),
        Err(e) => return Err(e),
    };
    let registered = dup.as_ref().map_or(raw, AsRawFd::as_raw_fd);
    /// Deregisters on every exit path (a kill or a `with_timeout`
    /// unwinds through the wait), before a duplicate closes.
    struct Registered<'a> {
        hub: &'a Hub,
        reg: Rc<Registration>,
        fd: RawFd,
    }
    impl Drop for Registered<'_> {
        fn drop(&mut self) {
            if let Some(reactor) = self.hub.reactor() {
                reactor.deregister(self.fd, &self.reg);
            }
        }
    }
    let guard = Registered {
        hub: &hub,
        reg,
        fd: registered,
    };
    let on = wait_on(raw, dir, deadline);
    let waited = hub.wait_io(&guard.reg, dir, deadline, call, on);
    drop(guard);
    drop(dup);
    match waited {
        // Ready by the time the hub got to this wait, however late: as for
        // a socket call's timeout (see `socket::drive`), that counts.
        Err(e) if e.kind() == io::ErrorKind::TimedOut && poll_now(fd, dir).unwrap_or(false) => {
            Ok(())
        }
        waited => waited,
    }
}

/// Whether `fd` is ready for `dir` right now (or hung up, or failed).
fn poll_now(fd: BorrowedFd<'_>, dir: Direction) -> io::Result<bool> {
    let events = match dir {
        Direction::Read => libc::POLLIN | libc::POLLPRI,
        Direction::Write => libc::POLLOUT,
    };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid `pollfd` that lives across the call, and
    // a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    if pfd.revents & libc::POLLNVAL != 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(n > 0 && pfd.revents != 0)
}

fn wait_on(fd: RawFd, dir: Direction, until: Option<Instant>) -> WaitOn {
    match dir {
        Direction::Read => WaitOn::Readable { fd, until },
        Direction::Write => WaitOn::Writable { fd, until },
    }
}

/// A file descriptor registered with the thread's hub, so that reading or
/// writing it blocks only the calling greenlet: pipes, ttys, eventfds,
/// FIFOs, character devices, sockets made by other libraries.
///
/// [`AsyncFd::new`] puts the descriptor in non-blocking mode; reads and
/// writes then try the operation and, on `WouldBlock`, wait for the hub to
/// report the descriptor ready. [`Read`] and [`Write`] work through it
/// when the wrapped type has them, and through `&AsyncFd<T>` for any `T`
/// (as `read(2)` and `write(2)` on the descriptor), so `BufReader`,
/// `read_to_end` and friends block only their greenlet. For other calls,
/// [`read_with`](AsyncFd::read_with) and [`write_with`](AsyncFd::write_with)
/// run any operation in that loop.
///
/// ```
/// use std::io::{Read, Write};
/// use greenlet::hub;
/// use greenlet::net::AsyncFd;
///
/// let (reader, writer) = std::io::pipe().unwrap();
/// let mut reader = AsyncFd::new(reader).unwrap();
/// let writer = hub::spawn(move || {
///     let mut writer = AsyncFd::new(writer).unwrap();
///     for word in ["hello ", "pipe"] {
///         writer.write_all(word.as_bytes()).unwrap();
///         hub::yield_now();
///     }
///     // Dropping the writer closes it: the reader sees EOF.
/// });
/// let mut text = String::new();
/// reader.read_to_string(&mut text).unwrap(); // blocks only main
/// assert_eq!(text, "hello pipe");
/// writer.join().unwrap();
/// ```
///
/// Decisions:
/// - `O_NONBLOCK` belongs to the open file, shared by every duplicate of
///   the descriptor, so wrapping a terminal the parent shell shares sets
///   it for the shell too (as every event loop does); [`into_inner`]
///   leaves it set.
/// - `!Send`: it is registered with the hub of the thread that made it.
/// - Regular files are refused (`epoll` cannot wait on them; they never
///   block for readiness): use [`spawn_blocking`](crate::hub::spawn_blocking).
/// - Dropping it deregisters the descriptor, then drops the wrapped value
///   (which closes it, if it owns it).
///
/// [`into_inner`]: AsyncFd::into_inner
pub struct AsyncFd<T: AsFd> {
    /// `None` only after `into_inner` took it.
    inner: Option<T>,
    /// The descriptor registered, as `inner` named it then: what the
    /// registration and its deregistration go by, whatever a later
    /// `as_fd` says (`AsFd` promises no stable answer).
    fd: RawFd,
    /// The file `fd` named then (see [`file_id`]), for the drop to tell
    /// whether the number still names it (see `deregister_now`).
    file: Option<FileId>,
    reg: Rc<Registration>,
    hub: Rc<Hub>,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
}

impl<T: AsFd> AsyncFd<T> {
    /// Puts `inner`'s descriptor in non-blocking mode and registers it
    /// with this thread's hub.
    ///
    /// # Errors
    ///
    /// `fcntl`'s or `epoll_ctl`'s: `EPERM` for a regular file, `EEXIST`
    /// when the descriptor is already registered with this hub (by another
    /// `AsyncFd` or a socket, or for the time of a greenlet's
    /// [`wait_readable`] or [`wait_writable`] on it: wrap a duplicate
    /// instead), `EBADF` for a closed one; and the reactor's, if
    /// it cannot be created. A refused descriptor is left blocking if it
    /// was.
    pub fn new(inner: T) -> io::Result<AsyncFd<T>> {
        // Asked once: the descriptor made non-blocking is the one
        // registered, and the one given back its mode on a refusal.
        let fd = inner.as_fd();
        let raw = fd.as_raw_fd();
        let was_blocking = set_o_nonblock(fd, true)?;
        let hub = hub();
        let reg = match hub
            .reactor_or_init()
            .and_then(|reactor| reactor.register(raw))
        {
            Ok(reg) => reg,
            Err(e) => {
                // Refused: the open file (which duplicates elsewhere may
                // share) goes back to blocking, as it came. Its own error,
                // if any, is dropped: the refusal is the one to report.
                if was_blocking {
                    let _ = set_o_nonblock(fd, false);
                }
                return Err(e);
            }
        };
        Ok(AsyncFd {
            inner: Some(inner),
            fd: raw,
            file: file_id(raw),
            reg,
            hub,
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
        })
    }

    /// Its descriptor's readiness to read, to wait for beside other things
    /// with [`hub::wait_any`](crate::hub::wait_any): see
    /// [`Readiness`](super::Readiness).
    pub fn readable(&self) -> super::Readiness<'_> {
        self.readiness(Direction::Read)
    }

    /// Its descriptor's readiness to write, as [`readable`](AsyncFd::readable).
    pub fn writable(&self) -> super::Readiness<'_> {
        self.readiness(Direction::Write)
    }

    fn readiness(&self, dir: Direction) -> super::Readiness<'_> {
        // `POLLPRI` counts: it may be all the descriptor tells.
        super::Readiness::new(&self.reg, &self.hub, self.fd, dir, true)
    }

    /// The wrapped value.
    ///
    /// # Panics
    ///
    /// Never: the value is there until [`into_inner`](AsyncFd::into_inner)
    /// consumes the `AsyncFd` (the `expect` inside states that invariant).
    pub fn get_ref(&self) -> &T {
        self.inner.as_ref().expect("present until into_inner")
    }

    /// The wrapped value, mutably, to use it (set options, say), not to
    /// swap its descriptor: the registration is the descriptor's that was
    /// wrapped, so reads and writes on another one would wait for
    /// readiness that is never reported, and the old descriptor's entry
    /// could not be taken out of the epoll set (it stays while a copy of
    /// it is open elsewhere; its events then reach nobody). Rewrap a new descriptor with [`new`](AsyncFd::new) instead
    /// (tokio's `AsyncFd` has the same rule).
    ///
    /// # Panics
    ///
    /// Never: the value is there until [`into_inner`](AsyncFd::into_inner)
    /// consumes the `AsyncFd` (the `expect` inside states that invariant).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.as_mut().expect("present until into_inner")
    }

    /// Closes it for every greenlet sharing it, as the sockets' `close`
    /// (gevent's `cancel_wait`): greenlets blocked on it in a read or a
    /// write wake up with an error of kind `ConnectionAborted`, and so do
    /// those whose operation closed it before its wait; a
    /// [`readable`](AsyncFd::readable)/[`writable`](AsyncFd::writable)
    /// wait in [`hub::wait_any`](crate::hub::wait_any) comes back ready, and
    /// the next read or write gives the error. Later reads and writes fail
    /// the same way, and the hub forgets the descriptor. The wrapped value stays
    /// (so does its descriptor, if it owns one) until this drops or
    /// [`into_inner`](AsyncFd::into_inner) gives it back; closing twice
    /// does nothing more.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::rc::Rc;
    /// use greenlet::hub;
    /// use greenlet::net::AsyncFd;
    ///
    /// let (reader, _writer) = std::io::pipe().unwrap();
    /// let reader = Rc::new(AsyncFd::new(reader).unwrap());
    /// let r = reader.clone();
    /// let blocked = hub::spawn(move || (&*r).read(&mut [0; 8]));
    /// hub::yield_now(); // the pipe is empty: it waits
    /// reader.close();
    /// let err = blocked.join().unwrap().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
    /// ```
    pub fn close(&self) {
        if self.reg.is_closed() {
            return;
        }
        let hub = &self.hub;
        self.reg.close(|w| {
            hub.wake(w, crate::hub::Wake::Ready);
        });
        self.deregister_now();
    }

    /// Whether [`close`](AsyncFd::close) was called.
    pub fn is_closed(&self) -> bool {
        self.reg.is_closed()
    }

    /// Deregisters the descriptor and gives the wrapped value back (still
    /// in non-blocking mode).
    ///
    /// # Panics
    ///
    /// Never: the value is there until this consumes the `AsyncFd` (the
    /// `expect` inside states that invariant).
    pub fn into_inner(mut self) -> T {
        self.deregister();
        self.inner.take().expect("present until into_inner")
    }

    /// Runs `op` until it returns anything but `WouldBlock`, blocking the
    /// calling greenlet until the descriptor is readable in between (up to
    /// the [read timeout](AsyncFd::set_read_timeout)).
    ///
    /// # Errors
    ///
    /// `op`'s; `ErrorKind::TimedOut` when the read timeout passes,
    /// `ConnectionAborted` once [closed](AsyncFd::close), and
    /// `ErrorKind::Other` when it would have to wait while its greenlet
    /// unwinds.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn read_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io_with(Direction::Read, "net::AsyncFd::read", false, op)
    }

    /// Runs `op` until it returns anything but `WouldBlock`, blocking the
    /// calling greenlet until the descriptor is writable in between (up to
    /// the [write timeout](AsyncFd::set_write_timeout)).
    ///
    /// # Errors
    ///
    /// `op`'s; `ErrorKind::TimedOut` when the write timeout passes,
    /// `ConnectionAborted` once [closed](AsyncFd::close), and
    /// `ErrorKind::Other` when it would have to wait while its greenlet
    /// unwinds.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn write_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io_with(Direction::Write, "net::AsyncFd::write", false, op)
    }

    /// Sets how long a read may wait before failing with
    /// `ErrorKind::TimedOut` (`None`: forever). `Some(ZERO)` is refused
    /// with `InvalidInput`, as std's sockets do.
    ///
    /// # Errors
    ///
    /// `ErrorKind::InvalidInput` for `Some(Duration::ZERO)`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.read_timeout.set(check_timeout(timeout)?);
        Ok(())
    }

    /// Sets how long a write may wait before failing with
    /// `ErrorKind::TimedOut` (`None`: forever).
    ///
    /// # Errors
    ///
    /// `ErrorKind::InvalidInput` for `Some(Duration::ZERO)`, as
    /// [`set_read_timeout`](AsyncFd::set_read_timeout).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.write_timeout.set(check_timeout(timeout)?);
        Ok(())
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout.get()
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout.get()
    }

    /// `now`: try `op` first whatever the readiness (see `drive`).
    fn io_with<R>(
        &self,
        dir: Direction,
        call: &'static str,
        now: bool,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        let inner = self.get_ref();
        let parts = Parts {
            reg: &self.reg,
            hub: &self.hub,
            fd: self.fd,
            read_timeout: self.read_timeout.get(),
            write_timeout: self.write_timeout.get(),
        };
        drive(parts, dir, call, now, &mut || op(inner))
    }

    /// The loop's parts and the wrapped value, borrowed apart.
    fn split(&mut self) -> (Parts<'_>, &mut T) {
        let inner = self.inner.as_mut().expect("present until into_inner");
        let parts = Parts {
            reg: &self.reg,
            hub: &self.hub,
            fd: self.fd,
            read_timeout: self.read_timeout.get(),
            write_timeout: self.write_timeout.get(),
        };
        (parts, inner)
    }

    /// Takes the descriptor out of the hub's epoll set, unless `close`
    /// did already.
    fn deregister(&self) {
        if !self.reg.is_closed() {
            self.deregister_now();
        }
    }

    fn deregister_now(&self) {
        if let (Some(_), Some(reactor)) = (&self.inner, self.hub.reactor()) {
            // Once the wrapped value closed the descriptor (one swapped
            // through `get_mut`, or one that closes its own), the number
            // may have gone to a file that something else registered.
            // The reactor leaves that registration alone when it made
            // it; a file that names another file tells of the rest (the
            // waker a forked child's hub made anew, which the reactor
            // does not count as a registration).
            if self.file.is_none() || file_id(self.fd) == self.file {
                reactor.deregister(self.fd, &self.reg);
            } else {
                reactor.remove(&self.reg);
            }
        }
    }
}

/// What the operation loop needs, borrowed apart from the wrapped value
/// (which `Read for AsyncFd<T>` borrows mutably at the same time).
struct Parts<'a> {
    reg: &'a Registration,
    hub: &'a Hub,
    fd: RawFd,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

/// Runs `op` until it says anything but `WouldBlock`, waiting for `dir`
/// in between, within its timeout (see `socket::drive`, which this is for
/// a `Parts`).
fn drive<R>(
    parts: Parts<'_>,
    dir: Direction,
    call: &'static str,
    now: bool,
    op: &mut dyn FnMut() -> io::Result<R>,
) -> io::Result<R> {
    let timeout = match dir {
        Direction::Read => parts.read_timeout,
        Direction::Write => parts.write_timeout,
    };
    let on = super::socket::IoCall {
        hub: parts.hub,
        reg: parts.reg,
        fd: parts.fd,
        dir,
        call,
        timeout,
    };
    super::socket::drive(on, now, op)
}

fn check_timeout(timeout: Option<Duration>) -> io::Result<Option<Duration>> {
    if timeout == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(timeout)
}

/// Clears `O_NONBLOCK` on `fd`'s open file (for a descriptor handed on to
/// blocking code, a child process above all).
pub(crate) fn set_blocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_o_nonblock(fd, false).map(drop)
}

/// Which file a descriptor names: its device and inode.
type FileId = (libc::dev_t, libc::ino_t);

/// The file descriptor number `fd` names now (`None`: none, it is
/// closed). Only asked: `fstat` reads the file's metadata whatever
/// owns the number.
fn file_id(fd: RawFd) -> Option<FileId> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fstat` writes a whole `stat` to the pointer, which is valid
    // for it, on success, and reads no memory of ours; a number that names
    // nothing is `EBADF`, not undefined.
    let rc = unsafe { libc::fstat(fd, stat.as_mut_ptr()) };
    (rc == 0).then(|| {
        // SAFETY: `fstat` succeeded, so it initialised `stat`.
        let stat = unsafe { stat.assume_init() };
        (stat.st_dev, stat.st_ino)
    })
}

/// Sets or clears `O_NONBLOCK` on `fd`'s open file, if it is not so yet;
/// `true` if it changed it.
fn set_o_nonblock(fd: BorrowedFd<'_>, on: bool) -> io::Result<bool> {
    let raw = fd.as_raw_fd();
    // SAFETY: `F_GETFL` and `F_SETFL` take and return plain integers and
    // touch no memory of ours; `fd` is borrowed, so open, for the calls.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let wanted = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if wanted == flags {
            return Ok(false);
        }
        if libc::fcntl(raw, libc::F_SETFL, wanted) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(true)
}

impl<T: AsFd> Drop for AsyncFd<T> {
    fn drop(&mut self) {
        // Before `inner` drops (and maybe closes the descriptor).
        self.deregister();
    }
}

impl<T: AsFd + Read> Read for AsyncFd<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (parts, inner) = self.split();
        let now = buf.is_empty();
        drive(
            parts,
            Direction::Read,
            "net::AsyncFd::read",
            now,
            &mut || inner.read(buf),
        )
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let (parts, inner) = self.split();
        let now = reads_nothing(bufs);
        drive(
            parts,
            Direction::Read,
            "net::AsyncFd::read",
            now,
            &mut || inner.read_vectored(bufs),
        )
    }
}

impl<T: AsFd + Write> Write for AsyncFd<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (parts, inner) = self.split();
        let now = buf.is_empty();
        drive(
            parts,
            Direction::Write,
            "net::AsyncFd::write",
            now,
            &mut || inner.write(buf),
        )
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let (parts, inner) = self.split();
        let now = writes_nothing(bufs);
        drive(
            parts,
            Direction::Write,
            "net::AsyncFd::write",
            now,
            &mut || inner.write_vectored(bufs),
        )
    }

    /// Tried first whatever the readiness, as a write of no bytes: a
    /// value that buffers nothing (a pipe, a socket) flushes at once, even
    /// with its descriptor full; one that has bytes to write out says
    /// `WouldBlock` and waits for room.
    fn flush(&mut self) -> io::Result<()> {
        let (parts, inner) = self.split();
        drive(
            parts,
            Direction::Write,
            "net::AsyncFd::flush",
            true,
            &mut || inner.flush(),
        )
    }
}

/// Reads the descriptor itself with `read(2)`, whatever `T` is, so that
/// greenlets sharing an `AsyncFd` (in an `Rc`, say) can all read it.
impl<T: AsFd> Read for &AsyncFd<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let now = buf.is_empty();
        let registered = self.fd;
        self.io_with(Direction::Read, "net::AsyncFd::read", now, |inner| {
            let fd = the_registered_fd(inner, registered)?;
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes for
            // the call, and the descriptor is borrowed from `inner`, so
            // open.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            byte_count(n)
        })
    }

    /// One `readv(2)`, filling the buffers in order.
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let now = reads_nothing(bufs);
        let registered = self.fd;
        self.io_with(Direction::Read, "net::AsyncFd::read", now, |inner| {
            let fd = the_registered_fd(inner, registered)?;
            let count = bufs.len().min(IOV_MAX);
            // SAFETY: `IoSliceMut` has `iovec`'s layout on Unix (std
            // guarantees it), so the pointer names `count` valid iovecs,
            // each valid for writes of its length for the call; the
            // descriptor is borrowed from `inner`, so open.
            let n = unsafe {
                libc::readv(
                    fd,
                    bufs.as_ptr().cast::<libc::iovec>(),
                    count as libc::c_int,
                )
            };
            byte_count(n)
        })
    }
}

/// The descriptor `inner` names, if it is the one `registered`: a read
/// or a write through `&AsyncFd` on another one would not be woken by its
/// readiness, and could block the thread (it may not be non-blocking).
/// Another one comes only from a value swapped through
/// [`AsyncFd::get_mut`] or an `AsFd` whose answer changes.
fn the_registered_fd(inner: &impl AsFd, registered: RawFd) -> io::Result<RawFd> {
    let fd = inner.as_fd().as_raw_fd();
    if fd == registered {
        Ok(fd)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "net::AsyncFd: the wrapped value names another descriptor than the one registered",
        ))
    }
}

/// What `read(2)`/`write(2)` and their vectored forms return, as a
/// `Result`.
fn byte_count(n: isize) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// At most this many buffers go to one `readv`/`writev` (the kernel's
/// `UIO_MAXIOV`; more is `EINVAL`): the rest wait for the next call, as
/// with std's.
pub(crate) const IOV_MAX: usize = 1024;

/// Whether one `writev` of `bufs` would write no bytes (and so completes
/// at once, whatever the readiness).
pub(crate) fn writes_nothing(bufs: &[IoSlice<'_>]) -> bool {
    bufs.iter().take(IOV_MAX).all(|b| b.is_empty())
}

/// One `sendmsg(2)` of `bufs` (the first [`IOV_MAX`]) on socket `fd`,
/// with `MSG_NOSIGNAL`: a peer gone makes it fail with `EPIPE`, as std's
/// `write` on a socket does (its `send` passes the flag), where a
/// `writev(2)`, std's `write_vectored`, raises `SIGPIPE`, which kills a
/// process that restored that signal's default action.
pub(crate) fn send_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: all-zero is a valid `msghdr` (no address, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` (std's guarantee on Unix),
    // and `sendmsg` only reads the vector and the bytes it names.
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len().min(IOV_MAX) as _;
    // SAFETY: `msg` names `bufs`, valid for reads for the call; `fd` is a
    // socket its caller borrows, so open.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Whether one `readv` into `bufs` would read no bytes.
fn reads_nothing(bufs: &[IoSliceMut<'_>]) -> bool {
    bufs.iter().take(IOV_MAX).all(|b| b.is_empty())
}

/// Writes the descriptor itself with `write(2)`, whatever `T` is.
impl<T: AsFd> Write for &AsyncFd<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let now = buf.is_empty();
        let registered = self.fd;
        self.io_with(Direction::Write, "net::AsyncFd::write", now, |inner| {
            let fd = the_registered_fd(inner, registered)?;
            // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the
            // call, and the descriptor is borrowed from `inner`, so open.
            let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
            byte_count(n)
        })
    }

    /// One `writev(2)` of the buffers in order.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let now = writes_nothing(bufs);
        let registered = self.fd;
        self.io_with(Direction::Write, "net::AsyncFd::write", now, |inner| {
            let fd = the_registered_fd(inner, registered)?;
            let count = bufs.len().min(IOV_MAX);
            // SAFETY: `IoSlice` has `iovec`'s layout on Unix (std
            // guarantees it), so the pointer names `count` valid iovecs,
            // each valid for reads of its length for the call; the
            // descriptor is borrowed from `inner`, so open.
            let n = unsafe {
                libc::writev(
                    fd,
                    bufs.as_ptr().cast::<libc::iovec>(),
                    count as libc::c_int,
                )
            };
            byte_count(n)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        // `write(2)` buffers nothing in this process.
        Ok(())
    }
}

impl<T: AsFd> AsFd for AsyncFd<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsFd> AsRawFd for AsyncFd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl<T: AsFd + fmt::Debug> fmt::Debug for AsyncFd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFd")
            .field("inner", &self.inner)
            .finish()
    }
}
