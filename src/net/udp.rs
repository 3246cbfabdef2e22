//! UDP: [`UdpSocket`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use crate::hub::reactor::Direction;

use super::socket::{each_addr, Socket};
use super::ToSocketAddrs;

/// A UDP socket whose receives (and full-buffer sends) block only the
/// calling greenlet.
///
/// ```
/// use greenlet::net::UdpSocket;
///
/// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
/// a.send_to(b"hi", b.local_addr().unwrap()).unwrap();
/// let mut buf = [0; 8];
/// let (n, from) = b.recv_from(&mut buf).unwrap();
/// assert_eq!((&buf[..n], from), (&b"hi"[..], a.local_addr().unwrap()));
/// ```
pub struct UdpSocket {
    socket: Socket<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr` (each address it resolves to in turn).
    ///
    /// # Errors
    ///
    /// The resolver's, for a host name (see [`ToSocketAddrs`]); the last
    /// address's `bind` error, or `InvalidInput` when `addr` resolves to no
    /// address; the error of registering it with the thread's hub (creating the
    /// hub's reactor, or `epoll_ctl`).
    ///
    /// # Panics
    ///
    /// Only when `addr` holds a host name, as
    /// [`TcpListener::bind`](super::TcpListener::bind).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        let socket = each_addr(addr, mio::net::UdpSocket::bind)?;
        Ok(UdpSocket {
            socket: Socket::new(socket)?,
        })
    }

    /// Wraps a socket made with std, making it non-blocking.
    /// A read or write timeout set on the std socket is not carried over
    /// (std keeps it as a socket option, which non-blocking calls ignore;
    /// here it is the hub's): set it again on the result.
    ///
    /// # Errors
    ///
    /// [`std::net::UdpSocket::set_nonblocking`]'s, or the error of registering
    /// it with the thread's hub (creating the hub's reactor, or `epoll_ctl`).
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket {
            socket: Socket::new(mio::net::UdpSocket::from_std(socket))?,
        })
    }

    /// Sets the default peer for `send` and the only source for `recv`.
    ///
    /// # Errors
    ///
    /// The resolver's, for a host name (see [`ToSocketAddrs`]); the last
    /// address's `connect` error, or `InvalidInput` when `addr` resolves to no
    /// address.
    ///
    /// # Panics
    ///
    /// Only when `addr` holds a host name, as
    /// [`TcpListener::bind`](super::TcpListener::bind).
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| self.socket.get().connect(a))
    }

    /// Sends a datagram to `target` (its first address).
    ///
    /// # Errors
    ///
    /// The resolver's, for a host name (see [`ToSocketAddrs`]), or
    /// `InvalidInput` when `target` resolves to no address; the OS's `sendto`
    /// error; `ErrorKind::TimedOut` when the write timeout passes,
    /// `ConnectionAborted` once [closed](UdpSocket::close), and
    /// `ErrorKind::Other` when it would have to wait while its greenlet
    /// unwinds.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], target: A) -> io::Result<usize> {
        let target = super::addr::resolve(&target)?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.socket
            .io(Direction::Write, "net::UdpSocket::send_to", |s| {
                s.send_to(buf, target)
            })
    }

    /// Receives a datagram, waiting for one.
    ///
    /// # Errors
    ///
    /// The OS's `recvfrom` error; `ErrorKind::TimedOut` when the read timeout
    /// passes, `ConnectionAborted` once [closed](UdpSocket::close), and
    /// `ErrorKind::Other` when it would have to wait while its greenlet
    /// unwinds.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket
            .io(Direction::Read, "net::UdpSocket::recv_from", |s| {
                s.recv_from(buf)
            })
    }

    /// Like `recv_from`, leaving the datagram queued.
    ///
    /// # Errors
    ///
    /// The OS's `recvfrom` error; `ErrorKind::TimedOut` when the read timeout
    /// passes, `ConnectionAborted` once [closed](UdpSocket::close), and
    /// `ErrorKind::Other` when it would have to wait while its greenlet
    /// unwinds.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket
            .io(Direction::Read, "net::UdpSocket::peek_from", |s| {
                s.peek_from(buf)
            })
    }

    /// Sends a datagram to the connected peer.
    ///
    /// # Errors
    ///
    /// The OS's `send` error (without a peer, say); `ErrorKind::TimedOut` when
    /// the write timeout passes, `ConnectionAborted` once
    /// [closed](UdpSocket::close), and `ErrorKind::Other` when it would have to
    /// wait while its greenlet unwinds.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.socket
            .io(Direction::Write, "net::UdpSocket::send", |s| s.send(buf))
    }

    /// Receives a datagram from the connected peer, waiting for one.
    ///
    /// # Errors
    ///
    /// The OS's `recv` error; `ErrorKind::TimedOut` when the read timeout
    /// passes, `ConnectionAborted` once [closed](UdpSocket::close), and
    /// `ErrorKind::Other` when it would have to wait while its greenlet
    /// unwinds.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket
            .io(Direction::Read, "net::UdpSocket::recv", |s| s.recv(buf))
    }

    /// Like `recv`, leaving the datagram queued.
    ///
    /// # Errors
    ///
    /// The OS's `recv` error; `ErrorKind::TimedOut` when the read timeout
    /// passes, `ConnectionAborted` once [closed](UdpSocket::close), and
    /// `ErrorKind::Other` when it would have to wait while its greenlet
    /// unwinds.
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket
            .io(Direction::Read, "net::UdpSocket::peek", |s| s.peek(buf))
    }

    /// Its readiness to receive (a datagram or an error is there), to wait
    /// for beside other things with [`hub::wait_any`](crate::hub::wait_any):
    /// see [`Readiness`](super::Readiness).
    pub fn readable(&self) -> super::Readiness<'_> {
        self.socket.readiness(Direction::Read)
    }

    /// Its readiness to send, as [`readable`](UdpSocket::readable).
    pub fn writable(&self) -> super::Readiness<'_> {
        self.socket.readiness(Direction::Write)
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// As [`std::net::UdpSocket::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.get().local_addr()
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// As [`std::net::UdpSocket::peer_addr`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.get().peer_addr()
    }

    /// Sets `SO_BROADCAST`.
    ///
    /// # Errors
    ///
    /// As [`std::net::UdpSocket::set_broadcast`].
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.socket.get().set_broadcast(on)
    }

    /// The `SO_BROADCAST` option.
    ///
    /// # Errors
    ///
    /// As [`std::net::UdpSocket::broadcast`].
    pub fn broadcast(&self) -> io::Result<bool> {
        self.socket.get().broadcast()
    }

    /// Sets the `IP_TTL` option.
    ///
    /// # Errors
    ///
    /// As [`std::net::UdpSocket::set_ttl`].
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket.get().set_ttl(ttl)
    }

    /// The `IP_TTL` option.
    ///
    /// # Errors
    ///
    /// As [`std::net::UdpSocket::ttl`].
    pub fn ttl(&self) -> io::Result<u32> {
        self.socket.get().ttl()
    }

    /// Takes the pending `SO_ERROR`, if any.
    ///
    /// # Errors
    ///
    /// As [`std::net::UdpSocket::take_error`].
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.get().take_error()
    }
}

super::fd_impls!(UdpSocket);
super::into_std!(UdpSocket => std::net::UdpSocket);
super::close_and_clone!(UdpSocket, std::net::UdpSocket);
super::timeouts!(UdpSocket);

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
