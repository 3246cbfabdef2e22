//! TCP: [`TcpListener`] and [`TcpStream`].

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use crate::hub::reactor::Direction;

use super::accept::AcceptBackoff;
use super::socket::{connect_done, each_addr, failed_at_once, Socket};
use super::ToSocketAddrs;

/// A TCP socket server, listening for connections; `accept` blocks only the
/// calling greenlet.
///
/// ```
/// use std::io::{Read, Write};
/// use greenlet::hub;
/// use greenlet::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let server = hub::spawn(move || {
///     let (mut conn, _) = listener.accept().unwrap();
///     let mut buf = [0; 5];
///     conn.read_exact(&mut buf).unwrap();
///     conn.write_all(&buf).unwrap(); // echo
/// });
/// // The main greenlet blocks like any other: the server runs meanwhile.
/// let mut client = TcpStream::connect(addr).unwrap();
/// client.write_all(b"hello").unwrap();
/// let mut echoed = String::new();
/// client.read_to_string(&mut echoed).unwrap(); // until the server closes
/// assert_eq!(echoed, "hello");
/// server.join().unwrap();
/// ```
pub struct TcpListener {
    socket: Socket<mio::net::TcpListener>,
    backoff: AcceptBackoff,
}

impl TcpListener {
    /// The listen backlog `bind` asks for: tokio's, above std's 128, so
    /// that a thousand greenlets connecting in one round are all queued.
    pub const BACKLOG: i32 = 1024;

    /// Binds to `addr` (each address it resolves to in turn) and listens,
    /// with a backlog of [`BACKLOG`](TcpListener::BACKLOG) connections.
    ///
    /// # Errors
    ///
    /// The resolver's, for a host name (see [`ToSocketAddrs`]); the last
    /// address's `bind` or `listen` error, or `InvalidInput` when `addr`
    /// resolves to no address; the error of registering it with the thread's
    /// hub (creating the hub's reactor, or `epoll_ctl`).
    ///
    /// # Panics
    ///
    /// Only when `addr` holds a host name, which is resolved on a pool
    /// thread (see [`ToSocketAddrs`]): as any blocking hub call (see the
    /// [hub docs](crate::hub)), but while its greenlet unwinds, where it
    /// returns an `io::Error`.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let listener = each_addr(addr, mio::net::TcpListener::bind)?;
        // mio (like std) listens with a backlog of 128. One greenlet round
        // can open far more connections than that, and on loopback a
        // connect completes inside the syscall: an overflowing accept queue
        // drops SYNs, which the client retries only a second later. A
        // second `listen` raises the backlog (the kernel caps it at
        // `net.core.somaxconn`).
        // SAFETY: `listen` takes a plain fd, owned by `listener`, which
        // stays open for the call; it touches no memory of ours.
        if unsafe { libc::listen(listener.as_raw_fd(), TcpListener::BACKLOG) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TcpListener {
            socket: Socket::new(listener)?,
            backoff: AcceptBackoff::default(),
        })
    }

    /// Wraps a listener made with std, making it non-blocking.
    ///
    /// # Errors
    ///
    /// [`std::net::TcpListener::set_nonblocking`]'s, or the error of
    /// registering it with the thread's hub (creating the hub's reactor, or
    /// `epoll_ctl`).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            socket: Socket::new(mio::net::TcpListener::from_std(listener))?,
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
    /// `ConnectionAborted` once [closed](TcpListener::close), and `ErrorKind::Other`
    /// when it would have to wait while its greenlet unwinds.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let accepted = self
            .socket
            .io(Direction::Read, "net::TcpListener::accept", |l| l.accept());
        // Registering the new socket can run out of resources too.
        let accepted = accepted.and_then(|(stream, addr)| Ok((TcpStream::from_mio(stream)?, addr)));
        self.backoff.after(accepted)
    }

    /// Its readiness to accept (a connection is waiting, or an error), to
    /// wait for beside other things with
    /// [`hub::wait_any`](crate::hub::wait_any): see [`Readiness`](super::Readiness).
    pub fn readable(&self) -> super::Readiness<'_> {
        self.socket.readiness(Direction::Read)
    }

    /// An endless iterator of accepted connections.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address it listens on.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpListener::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.get().local_addr()
    }

    /// Sets the `IP_TTL` option.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpListener::set_ttl`].
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket.get().set_ttl(ttl)
    }

    /// The `IP_TTL` option.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpListener::ttl`].
    pub fn ttl(&self) -> io::Result<u32> {
        self.socket.get().ttl()
    }

    /// Takes the pending `SO_ERROR`, if any.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpListener::take_error`].
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.get().take_error()
    }
}

/// The iterator of [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

/// A TCP connection whose reads and writes block only the calling greenlet.
///
/// It implements `Read` and `Write` (also through `&TcpStream`, so two
/// greenlets sharing it in an `Rc` can read and write at once), so
/// `BufReader`, `read_to_end` and friends work unchanged inside a
/// greenlet, the main one included. `flush` has nothing to do.
pub struct TcpStream {
    socket: Socket<mio::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr` (each address it resolves to in turn), blocking
    /// the calling greenlet until the handshake is done.
    ///
    /// # Errors
    ///
    /// The resolver's, for a host name (see [`ToSocketAddrs`]); the last
    /// address's connect error (`ConnectionRefused`, say), or `InvalidInput`
    /// when `addr` resolves to no address; the error of registering it with the
    /// thread's hub (creating the hub's reactor, or `epoll_ctl`);
    /// `ErrorKind::Other` when it would have to wait while its greenlet
    /// unwinds.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |a| TcpStream::connect_within(a, None))
    }

    /// Connects to `addr`, giving up with `ErrorKind::TimedOut` after
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero `timeout`; `ErrorKind::TimedOut` when it
    /// passes before the handshake is done; otherwise as
    /// [`connect`](TcpStream::connect) for one address.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_within(*addr, Some(timeout))
    }

    fn connect_within(addr: SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let stream = TcpStream::from_mio(failed_at_once(mio::net::TcpStream::connect(addr))?)?;
        stream.socket.io_within(
            Direction::Write,
            "net::TcpStream::connect",
            timeout,
            false,
            |s| connect_done(s.take_error(), s.peer_addr().map(drop)),
        )?;
        Ok(stream)
    }

    /// Wraps a connected stream made with std, making it non-blocking.
    /// A read or write timeout set on the std socket is not carried over
    /// (std keeps it as a socket option, which non-blocking calls ignore;
    /// here it is the hub's): set it again on the result.
    ///
    /// # Errors
    ///
    /// [`std::net::TcpStream::set_nonblocking`]'s, or the error of registering
    /// it with the thread's hub (creating the hub's reactor, or `epoll_ctl`).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::from_mio(mio::net::TcpStream::from_std(stream))
    }

    fn from_mio(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            socket: Socket::new(stream)?,
        })
    }

    /// Its readiness to read (data, the end of the stream or an error is
    /// there), to wait for beside other things with
    /// [`hub::wait_any`](crate::hub::wait_any): see [`Readiness`](super::Readiness).
    pub fn readable(&self) -> super::Readiness<'_> {
        self.socket.readiness(Direction::Read)
    }

    /// Its readiness to write (room in the send buffer, or an error), as
    /// [`readable`](TcpStream::readable).
    pub fn writable(&self) -> super::Readiness<'_> {
        self.socket.readiness(Direction::Write)
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpStream::peer_addr`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.get().peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpStream::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.get().local_addr()
    }

    /// Shuts down the read half, the write half (the peer reads EOF) or
    /// both.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpStream::shutdown`].
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.get().shutdown(how)
    }

    /// Sets `TCP_NODELAY` (no Nagle delay for small writes).
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpStream::set_nodelay`].
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.socket.get().set_nodelay(nodelay)
    }

    /// The `TCP_NODELAY` option.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpStream::nodelay`].
    pub fn nodelay(&self) -> io::Result<bool> {
        self.socket.get().nodelay()
    }

    /// Sets the `IP_TTL` option.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpStream::set_ttl`].
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket.get().set_ttl(ttl)
    }

    /// The `IP_TTL` option.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpStream::ttl`].
    pub fn ttl(&self) -> io::Result<u32> {
        self.socket.get().ttl()
    }

    /// Takes the pending `SO_ERROR`, if any.
    ///
    /// # Errors
    ///
    /// As [`std::net::TcpStream::take_error`].
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.get().take_error()
    }

    /// Reads without consuming, blocking the calling greenlet until data
    /// (or EOF) is there.
    ///
    /// # Errors
    ///
    /// The OS's `recv` error; `ErrorKind::TimedOut` when the read timeout
    /// passes, `ConnectionAborted` once [closed](TcpStream::close), and
    /// `ErrorKind::Other` when it would have to wait while its greenlet
    /// unwinds.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket
            .io(Direction::Read, "net::TcpStream::peek", |s| s.peek(buf))
    }

    /// [`peek`](TcpStream::peek) that never blocks or switches: an error of
    /// kind `WouldBlock` when no data is there yet. A liveness check of an
    /// idle pooled connection: `Ok(0)` means the peer closed it,
    /// `WouldBlock` that it is open and quiet.
    ///
    /// ```
    /// use std::io::{ErrorKind, Write};
    /// use greenlet::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let client = TcpStream::connect(listener.local_addr()?)?;
    /// let (server, _) = listener.accept()?;
    /// let mut buf = [0; 8];
    /// assert_eq!(client.try_peek(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    /// (&server).write_all(b"hi")?;
    /// assert_eq!(client.peek(&mut buf)?, 2); // waits for the bytes to arrive
    /// assert_eq!(client.try_peek(&mut buf)?, 2); // still there: not consumed
    /// drop(server);
    /// let mut two = [0; 2];
    /// std::io::Read::read_exact(&mut &client, &mut two)?;
    /// assert_eq!(client.peek(&mut buf)?, 0); // waits for the close to arrive
    /// assert_eq!(client.try_peek(&mut buf)?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `WouldBlock` as above; as [`peek`](TcpStream::peek) otherwise.
    pub fn try_peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket
            .try_io(Direction::Read, "net::TcpStream::try_peek", |s| s.peek(buf))
    }
}

super::stream_io!(
    TcpStream,
    "net::TcpStream::read",
    "net::TcpStream::write",
    short_reads_drain: true
);
super::fd_impls!(TcpListener, TcpStream);
super::into_std!(TcpListener => std::net::TcpListener, TcpStream => std::net::TcpStream);
super::close_and_clone!(TcpListener, std::net::TcpListener);
super::close_and_clone!(TcpStream, std::net::TcpStream, shutdown);
super::timeouts!(TcpStream);

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("addr", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
