//! Sockets that block only their greenlet (gevent's model): plain blocking
//! code, serving thousands of connections on one thread.
//!
//! Each type mirrors its `std::net` (or `std::os::unix::net`) namesake. A
//! call that would block registers interest with the thread's
//! [hub](crate::hub) and switches away; the greenlet runs again when the
//! socket is ready, meanwhile the others run. It works the same from the
//! main greenlet, which needs no [`hub::run`](crate::hub::run) for it.
//!
//! ```
//! use std::io::{BufRead, BufReader, Read, Write};
//! use greenlet::hub;
//! use greenlet::net::{TcpListener, TcpStream};
//!
//! let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//! // One greenlet per connection, written as blocking code.
//! hub::spawn(move || {
//!     for conn in listener.incoming().take(2) {
//!         let conn = conn.unwrap();
//!         hub::spawn(move || {
//!             let mut line = String::new();
//!             // Never an unbounded line from a peer: at most 1 KiB.
//!             BufReader::new((&conn).take(1024)).read_line(&mut line).unwrap();
//!             (&conn).write_all(line.to_uppercase().as_bytes()).unwrap();
//!         });
//!     }
//! });
//! let clients: Vec<_> = ["ping\n", "pong\n"]
//!     .into_iter()
//!     .map(|msg| {
//!         hub::spawn(move || {
//!             let mut conn = TcpStream::connect(addr).unwrap();
//!             conn.write_all(msg.as_bytes()).unwrap();
//!             let mut reply = String::new();
//!             BufReader::new(conn.take(1024)).read_line(&mut reply).unwrap();
//!             reply
//!         })
//!     })
//!     .collect();
//! let replies: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
//! assert_eq!(replies, ["PING\n", "PONG\n"]);
//! ```
//!
//! [`Server`] (TCP) and [`DatagramServer`] (UDP) run a handler per
//! connection or datagram in a greenlet of its own, and stop gracefully
//! through one [`ServerHandle`].
//!
//! Decisions:
//! - Sockets are `!Send`: they are registered with the hub of the thread
//!   that made them. Move a connection between threads as a
//!   `std::net::TcpStream` (`into_std` takes it off this hub, `from_std`
//!   registers it with the other thread's).
//! - An expired read or write timeout is an error of kind
//!   `ErrorKind::TimedOut` (std lets platforms say `WouldBlock` instead).
//! - [`with_timeout`](crate::hub::with_timeout) interrupts a socket wait;
//!   killing a greenlet that waits withdraws its wait. Dropping a socket
//!   deregisters it and closes its fd, once.
//! - A host name given to `connect`, `bind` or `send_to` (a
//!   [`ToSocketAddrs`]) is resolved by the system's resolver on a pool
//!   thread, blocking only the calling greenlet (std would block the
//!   thread); an address or an IP literal is read on the spot.
//!   [`lookup_host`] gives the addresses themselves.
//! - [`hub::run`](crate::hub::run) keeps going while a greenlet waits on a
//!   socket: it parks in `epoll_wait` until something is ready.
//! - `close()` (on every socket type) wakes the greenlets blocked on the
//!   socket with `ErrorKind::ConnectionAborted`; the descriptor is released
//!   when the value drops. `try_clone()` registers a duplicate. A greenlet
//!   in [`hub::wait_readable`](crate::hub::wait_readable) on a socket's
//!   descriptor waits on a duplicate of it: `close()` wakes it for a stream
//!   (through the shutdown, which the duplicate sees too), not for a
//!   listener or a UDP socket.
//! - [`AsyncFd`] gives any other descriptor (pipes, ttys, eventfds) the
//!   same treatment.
//! - Vectored reads and writes are one `readv(2)` / `writev(2)` each, as
//!   std's (the trait's default would move only the first non-empty
//!   buffer per call).
//!
//! # TLS
//!
//! The crate has no TLS of its own, and needs none: a TLS library's
//! blocking stream over these sockets blocks only its greenlet, as any
//! other read or write does. With rustls, wrap a connected [`TcpStream`]
//! in a `rustls::StreamOwned` (a `ClientConnection` or a
//! `ServerConnection` beside it) and read and write that; the handshake
//! runs inside the first read or write, or in a loop of
//! `conn.complete_io(&mut sock)` while `conn.is_handshaking()`. Read
//! timeouts, [`with_timeout`](crate::hub::with_timeout) and kills
//! interrupt a handshake as they do any socket wait. A peer gone without
//! a `close_notify` is an `ErrorKind::UnexpectedEof` error, as rustls
//! reports it on std's sockets. `examples/tls_echo.rs` runs a TLS echo
//! server on [`Server`] with a hundred clients on one thread;
//! `tests/tls.rs` covers a server's many clients, the timeouts, an
//! unclean close and a certificate the client does not trust.

mod accept;
mod addr;
mod datagram_server;
#[cfg(unix)]
pub(crate) mod fd;
mod lookup;
mod readiness;
mod server;
mod socket;
mod tcp;
mod udp;
#[cfg(unix)]
mod unix;

#[cfg(unix)]
pub use self::addr::ToSocketAddrs;
pub use self::datagram_server::{DatagramServer, ReplySocket};
pub use self::fd::AsyncFd;
pub use self::lookup::lookup_host;
pub use self::readiness::Readiness;
pub use self::server::{Server, ServerHandle, Stopper};
pub use self::tcp::{Incoming, TcpListener, TcpStream};
pub use self::udp::UdpSocket;
#[cfg(unix)]
pub use self::unix::{UnixIncoming, UnixListener, UnixStream};

/// `Read` and `Write` for a stream type and for a shared reference to it.
macro_rules! stream_io {
    ($t:ty, $read:literal, $write:literal, short_reads_drain: $drain:literal) => {
        impl std::io::Read for &$t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let len = buf.len();
                self.socket.read($read, len, $drain, |s| {
                    let mut s = s;
                    std::io::Read::read(&mut s, buf)
                })
            }

            /// One `readv(2)` filling the buffers in order, as std's.
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                // What one `readv` can fill: a read of less than this
                // drains the socket (std, as `&AsyncFd`, passes at most
                // `IOV_MAX` buffers).
                let len = bufs
                    .iter()
                    .take($crate::net::fd::IOV_MAX)
                    .map(|b| b.len())
                    .sum();
                self.socket.read($read, len, $drain, |s| {
                    let mut s = s;
                    std::io::Read::read_vectored(&mut s, bufs)
                })
            }
        }

        impl std::io::Write for &$t {
            /// A write of no bytes returns at once, as std's, even while
            /// the send buffer is full.
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let dir = $crate::hub::reactor::Direction::Write;
                self.socket.io_trying(dir, $write, buf.is_empty(), |s| {
                    let mut s = s;
                    std::io::Write::write(&mut s, buf)
                })
            }

            /// One `sendmsg(2)` of the buffers in order (the default would
            /// send only the first non-empty one per call), with
            /// `MSG_NOSIGNAL`: a peer gone gives `BrokenPipe`, as `write`
            /// does, never `SIGPIPE` (std's `write_vectored`, a `writev`,
            /// raises it).
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                let dir = $crate::hub::reactor::Direction::Write;
                let empty = $crate::net::fd::writes_nothing(bufs);
                self.socket.io_trying(dir, $write, empty, |s| {
                    $crate::net::fd::send_vectored(std::os::fd::AsRawFd::as_raw_fd(s), bufs)
                })
            }

            fn flush(&mut self) -> std::io::Result<()> {
                // Writes go straight to the kernel: nothing is buffered.
                Ok(())
            }
        }

        impl std::io::Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::io::Read::read(&mut &*self, buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                std::io::Read::read_vectored(&mut &*self, bufs)
            }
        }

        impl std::io::Write for $t {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                std::io::Write::write(&mut &*self, buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                std::io::Write::write_vectored(&mut &*self, bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}

/// `AsRawFd` and `AsFd` for socket types with a `socket` field.
macro_rules! fd_impls {
    ($($t:ty),*) => {$(
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.socket.get().as_raw_fd()
            }
        }

        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.socket.get().as_fd()
            }
        }
    )*};
}

/// `into_std` for socket types with a `socket` field, into their std
/// namesake.
macro_rules! into_std {
    ($($t:ty => $std:ty),*) => {$(
        impl $t {
            #[doc = concat!(
                "Gives the socket back as a [`", stringify!($std), "`], taken off this ",
                "thread's hub: to move it to another thread (whose `from_std` ",
                "registers it there) or to use it with blocking code. It stays in ",
                "non-blocking mode, as tokio's `into_std` leaves it: call ",
                "`set_nonblocking(false)` on it for blocking calls. The read and ",
                "write timeouts set here are not carried over (they are the hub's, ",
                "not socket options)."
            )]
            pub fn into_std(self) -> $std {
                <$std>::from(self.socket.into_inner())
            }
        }
    )*};
}

/// std's timeout setters and getters, for a type with a `socket` field.
macro_rules! timeouts {
    ($t:ty) => {
        impl $t {
            /// Sets how long a read (or receive) may wait before failing
            /// with `ErrorKind::TimedOut` (`None`: forever). `Some(ZERO)` is
            /// refused with `InvalidInput`, as std does. Data that arrived
            /// within the timeout is returned even if the hub gets back to
            /// the waiting greenlet after it (other greenlets ran long): the
            /// call tries once more before it reports `TimedOut`, as a
            /// blocking socket's returns what arrived by the time its
            /// thread runs again. The same holds for writes.
            ///
            /// # Errors
            ///
            /// `ErrorKind::InvalidInput` for `Some(Duration::ZERO)`.
            pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
                self.socket.set_timeout(Direction::Read, timeout)
            }

            /// Sets how long a write (or send) may wait before failing with
            /// `ErrorKind::TimedOut` (`None`: forever).
            ///
            /// # Errors
            ///
            /// `ErrorKind::InvalidInput` for `Some(Duration::ZERO)`.
            pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
                self.socket.set_timeout(Direction::Write, timeout)
            }

            /// The read timeout.
            ///
            /// # Errors
            ///
            /// Never: the timeout is the hub's, not a socket option; the
            /// `io::Result` is std's signature.
            pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
                Ok(self.socket.timeout(Direction::Read))
            }

            /// The write timeout.
            ///
            /// # Errors
            ///
            /// Never, as [`read_timeout`](Self::read_timeout).
            pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
                Ok(self.socket.timeout(Direction::Write))
            }
        }
    };
}

/// `close` and `try_clone` for a socket type with a `socket` field and a
/// `from_std` constructor taking `$std`. Streams pass `shutdown`: they
/// are shut down both ways on close, so the peer (and any clone) sees the
/// end too.
macro_rules! close_and_clone {
    ($t:ty, $std:ty $(, $shutdown:ident)?) => {
        impl $t {
            /// Closes it for every greenlet sharing it (gevent's
            /// `close`/`cancel_wait`): greenlets blocked on it wake up
            /// with an error of kind `ConnectionAborted`, later reads,
            /// writes, accepts, readiness waits (its `readable` and
            /// `writable`) and `try_clone`s fail the same way, and the hub
            /// forgets it. A [`hub::wait_readable`](crate::hub::wait_readable)
            /// or `wait_writable` on its descriptor is a wait on the
            /// descriptor, not on the socket: a close does not end it (as
            /// in gevent, whose `wait_read(fileno)` is not cancelled by a
            /// `close` either): wait on `readable()` instead to hear of a
            /// close. Streams are also shut
            /// down both ways, so the peer sees the end (and so do
            /// clones). The descriptor is released when the value drops,
            /// not before (its number cannot go to another file while
            /// this value can still name it): until then the calls that
            /// only ask or set something of it (`local_addr`, `peer_addr`,
            /// `shutdown`, options, timeouts, `take_error`) still reach
            /// it, where gevent's would say `EBADF`. Closing twice does
            /// nothing more.
            pub fn close(&self) {
                // Already shut down or never connected: nothing to say.
                $(let _ = self.socket.get().$shutdown(std::net::Shutdown::Both);)?
                self.socket.close();
            }

            /// A new handle to the same socket (a duplicated descriptor,
            /// registered on its own), as std's `try_clone`. The two share
            /// their read and write timeouts, as in std (where they are
            /// options of the one socket): one set through either holds
            /// for both. Closing one handle wakes its own waiters only
            /// (but shuts a stream down for both).
            ///
            /// # Errors
            ///
            /// `dup`'s or the hub's, or `ConnectionAborted` once closed.
            pub fn try_clone(&self) -> std::io::Result<$t> {
                let mut clone = <$t>::from_std(<$std>::from(self.socket.dup()?))?;
                clone.socket.share_timeouts(&self.socket);
                Ok(clone)
            }
        }
    };
}

use close_and_clone;
use fd_impls;
use into_std;
use stream_io;
use timeouts;
