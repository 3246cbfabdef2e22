//! Unix domain sockets: [`UnixListener`] and [`UnixStream`].

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::hub::reactor::Direction;

use super::accept::AcceptBackoff;
use super::socket::{connect_done, failed_at_once, Socket};

/// A Unix domain socket server; `accept` blocks only the calling greenlet.
pub struct UnixListener {
    socket: Socket<mio::net::UnixListener>,
    backoff: AcceptBackoff,
}

impl UnixListener {
    /// Binds to the socket file `path` and listens.
    ///
    /// # Errors
    ///
    /// As [`std::os::unix::net::UnixListener::bind`] (`AddrInUse` when the file
    /// exists, say); the error of registering it with the thread's hub
    /// (creating the hub's reactor, or `epoll_ctl`).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        Ok(UnixListener {
            socket: Socket::new(mio::net::UnixListener::bind(path)?)?,
            backoff: AcceptBackoff::default(),
        })
    }

    /// Wraps a listener made with std, making it non-blocking.
    ///
    /// # Errors
    ///
    /// [`std::os::unix::net::UnixListener::set_nonblocking`]'s, or the error of
    /// registering it with the thread's hub (creating the hub's reactor, or
    /// `epoll_ctl`).
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            socket: Socket::new(mio::net::UnixListener::from_std(listener))?,
            backoff: AcceptBackoff::default(),
        })
    }

    /// Waits (blocking the calling greenlet only) for a connection.
    ///
    /// # Errors
    ///
    /// The OS's accept error. When it says the process ran out of
    /// descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`), the
    /// call first sleeps, so the greenlets that would close connections
    /// get to run: 1 ms, doubling with each further failure up to 250 ms,
    /// reset by the next success. A loop that logs the error and accepts
    /// again therefore neither spins nor starves the others. Also
    /// `ConnectionAborted` once [closed](UnixListener::close), and `ErrorKind::Other`
    /// when it would have to wait while its greenlet unwinds.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let accepted = self
            .socket
            .io(Direction::Read, "net::UnixListener::accept", |l| l.accept());
        // Registering the new socket can run out of resources too.
        let accepted =
            accepted.and_then(|(stream, addr)| Ok((UnixStream::from_mio(stream)?, addr)));
        self.backoff.after(accepted)
    }

    /// Its readiness to accept (a connection is waiting, or an error), to
    /// wait for beside other things with
    /// [`hub::wait_any`](crate::hub::wait_any): see [`Readiness`](super::Readiness).
    pub fn readable(&self) -> super::Readiness<'_> {
        self.socket.readiness(Direction::Read)
    }

    /// An endless iterator of accepted connections.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The address it listens on.
    ///
    /// # Errors
    ///
    /// As [`std::os::unix::net::UnixListener::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.get().local_addr()
    }

    /// Takes the pending `SO_ERROR`, if any.
    ///
    /// # Errors
    ///
    /// As [`std::os::unix::net::UnixListener::take_error`].
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.get().take_error()
    }
}

/// The iterator of [`UnixListener::incoming`].
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

/// A Unix domain stream whose reads and writes block only the calling
/// greenlet; `Read` and `Write` as for [`TcpStream`](super::TcpStream).
///
/// ```
/// use std::io::{Read, Write};
/// use greenlet::net::UnixStream;
///
/// let (mut a, mut b) = UnixStream::pair().unwrap();
/// a.write_all(b"ping").unwrap();
/// let mut buf = [0; 4];
/// b.read_exact(&mut buf).unwrap();
/// assert_eq!(&buf, b"ping");
/// ```
pub struct UnixStream {
    socket: Socket<mio::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket file `path`, blocking the calling greenlet
    /// while the connection is in progress.
    ///
    /// A listener whose backlog is full makes the non-blocking `connect(2)`
    /// fail with `EAGAIN`, with nothing to wait on (Linux queues no
    /// connection and gives no event): then it retries after a short
    /// [`hub::sleep`](crate::hub::sleep), from 1 ms doubling up to 64 ms,
    /// as long as it takes, the way std's blocking `connect` waits for
    /// room.
    ///
    /// # Errors
    ///
    /// The OS's `connect` error (`NotFound`, `ConnectionRefused`, say), but for
    /// `EAGAIN` which is retried as above; the error of registering it with the
    /// thread's hub (creating the hub's reactor, or `epoll_ctl`);
    /// `ErrorKind::Other` when it would have to wait (or pause) while its
    /// greenlet unwinds.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let path = path.as_ref();
        let mut backoff = Duration::from_millis(1);
        let stream = loop {
            match mio::net::UnixStream::connect(path) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let until = crate::hub::time::now() + backoff;
                    crate::hub::pause_io("net::UnixStream::connect", until)?;
                    backoff = (backoff * 2).min(Duration::from_millis(64));
                }
                connected => break failed_at_once(connected)?,
            }
        };
        let stream = UnixStream::from_mio(stream)?;
        stream
            .socket
            .io(Direction::Write, "net::UnixStream::connect", |s| {
                connect_done(s.take_error(), s.peer_addr().map(drop))
            })?;
        Ok(stream)
    }

    /// A connected pair.
    ///
    /// # Errors
    ///
    /// `socketpair`'s, or the error of registering them with the thread's
    /// hub (creating the hub's reactor, or `epoll_ctl`).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream::from_mio(a)?, UnixStream::from_mio(b)?))
    }

    /// Wraps a stream made with std, making it non-blocking.
    /// A read or write timeout set on the std socket is not carried over
    /// (std keeps it as a socket option, which non-blocking calls ignore;
    /// here it is the hub's): set it again on the result.
    ///
    /// # Errors
    ///
    /// [`std::os::unix::net::UnixStream::set_nonblocking`]'s, or the error of
    /// registering it with the thread's hub (creating the hub's reactor, or
    /// `epoll_ctl`).
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        UnixStream::from_mio(mio::net::UnixStream::from_std(stream))
    }

    fn from_mio(stream: mio::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            socket: Socket::new(stream)?,
        })
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As [`std::os::unix::net::UnixStream::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.get().local_addr()
    }

    /// Its readiness to read (data, the end of the stream or an error is
    /// there), to wait for beside other things with
    /// [`hub::wait_any`](crate::hub::wait_any): see [`Readiness`](super::Readiness).
    pub fn readable(&self) -> super::Readiness<'_> {
        self.socket.readiness(Direction::Read)
    }

    /// Its readiness to write (room in the send buffer, or an error), as
    /// [`readable`](UnixStream::readable).
    pub fn writable(&self) -> super::Readiness<'_> {
        self.socket.readiness(Direction::Write)
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// As [`std::os::unix::net::UnixStream::peer_addr`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.get().peer_addr()
    }

    /// Shuts down the read half, the write half or both. Shutting down
    /// the write half wakes the greenlets blocked writing to it, through
    /// this handle or its [`try_clone`](UnixStream::try_clone)s, with
    /// `BrokenPipe`, as std's blocking writes wake, and later writes fail
    /// at once. Handles of the socket made otherwise (through `into_std`
    /// and `from_std`, or on another thread) are not told, nor is a
    /// [`hub::wait_writable`](crate::hub::wait_writable) on its descriptor:
    /// those blocked on a full buffer wait as described next.
    ///
    /// A peer that shuts down *its read half* is another matter: Linux
    /// tells epoll nothing of it while this end's send buffer is full, so
    /// a write blocked then (or one made after a write found the buffer
    /// full) waits until the peer reads, closes, or shuts down both halves,
    /// or until the write timeout, after which it returns `BrokenPipe`.
    /// Set a [write timeout](UnixStream::set_write_timeout) where a peer
    /// may do that.
    ///
    /// # Errors
    ///
    /// As [`std::os::unix::net::UnixStream::shutdown`].
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.get().shutdown(how)?;
        if how != Shutdown::Read {
            self.socket.shut_down_writes();
        }
        Ok(())
    }

    /// Takes the pending `SO_ERROR`, if any.
    ///
    /// # Errors
    ///
    /// As [`std::os::unix::net::UnixStream::take_error`].
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.get().take_error()
    }
}

super::stream_io!(
    UnixStream,
    "net::UnixStream::read",
    "net::UnixStream::write",
    short_reads_drain: false
);
super::fd_impls!(UnixListener, UnixStream);
super::into_std!(UnixListener => std::os::unix::net::UnixListener, UnixStream => std::os::unix::net::UnixStream);
super::close_and_clone!(UnixListener, std::os::unix::net::UnixListener);
super::close_and_clone!(UnixStream, std::os::unix::net::UnixStream, shutdown);
super::timeouts!(UnixStream);

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
