//! `ToSocketAddrs`: the addresses the connecting and binding calls take,
//! resolved without blocking the hub (tokio's `ToSocketAddrs`; gevent's
//! sockets resolve on its thread pool the same way).
//!
//! An address, or a string or `(host, port)` whose host is an IP literal,
//! is read on the spot: no system call, no allocation, no switch. A host
//! name goes to [`lookup_host`](super::lookup_host), which runs the
//! system's resolver on a pool thread while the caller's greenlet waits.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::{option, vec};

use super::lookup_host;

/// What [`TcpStream::connect`](super::TcpStream::connect),
/// [`TcpListener::bind`](super::TcpListener::bind), the
/// [`UdpSocket`](super::UdpSocket) calls and
/// [`Server::bind`](super::Server::bind) take: the types std's
/// [`std::net::ToSocketAddrs`] is implemented for, resolved without
/// blocking the hub.
///
/// A `SocketAddr`, a `(IpAddr, u16)`, or a string or `(&str, u16)` whose
/// host is an IP literal (`"127.0.0.1:80"`, `"[::1]:80"`, `("::1", 80)`)
/// is read at once. A host name (`"localhost:80"`, `("example.com", 443)`)
/// is resolved by the system's resolver on the pool of
/// [`spawn_blocking`](crate::hub::spawn_blocking), blocking only the
/// calling greenlet, as [`lookup_host`](super::lookup_host) does (std's
/// `ToSocketAddrs` would block the whole thread, every greenlet with it).
/// A call given a host name is therefore a blocking hub call, with its
/// `# Panics` (in the hub greenlet itself, say), even where the call
/// itself never waits, as `bind`; in a destructor while its greenlet
/// unwinds, where no wait can be made, it returns an `io::Error` instead
/// (as a socket's read does there).
///
/// The trait is sealed: it cannot be implemented outside this crate. To
/// resolve with a resolver of your own, resolve first and pass the
/// `SocketAddr`s (a slice of them is taken too).
///
/// ```
/// use greenlet::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("localhost:0")?; // resolved on the pool
/// let addr = listener.local_addr()?;
/// let _client = TcpStream::connect(addr)?; // an address: no resolution
/// let _also = TcpStream::connect(("localhost", addr.port()));
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait ToSocketAddrs: sealed::Resolve {}

pub(crate) mod sealed {
    use super::*;

    /// The resolution itself, out of users' reach.
    pub trait Resolve {
        /// The addresses, in the resolver's order.
        fn resolve(&self) -> io::Result<Addrs>;
    }

    /// Addresses from [`Resolve::resolve`]: one read on the spot, or a
    /// resolver's list.
    #[derive(Debug)]
    pub enum Addrs {
        One(option::IntoIter<SocketAddr>),
        Many(vec::IntoIter<SocketAddr>),
    }

    impl Iterator for Addrs {
        type Item = SocketAddr;

        fn next(&mut self) -> Option<SocketAddr> {
            match self {
                Addrs::One(one) => one.next(),
                Addrs::Many(many) => many.next(),
            }
        }
    }
}

use sealed::{Addrs, Resolve};

/// Resolves `addr`: at once when it is an address, else on the pool.
pub(crate) fn resolve<A: ToSocketAddrs + ?Sized>(addr: &A) -> io::Result<Addrs> {
    addr.resolve()
}

fn one(addr: impl Into<SocketAddr>) -> io::Result<Addrs> {
    Ok(Addrs::One(Some(addr.into()).into_iter()))
}

macro_rules! addresses {
    ($($t:ty),*) => {$(
        impl ToSocketAddrs for $t {}
        impl Resolve for $t {
            fn resolve(&self) -> io::Result<Addrs> {
                one(*self)
            }
        }
    )*};
}

addresses!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl ToSocketAddrs for [SocketAddr] {}
impl Resolve for [SocketAddr] {
    fn resolve(&self) -> io::Result<Addrs> {
        Ok(Addrs::Many(Vec::from(self).into_iter()))
    }
}

impl ToSocketAddrs for str {}
impl Resolve for str {
    fn resolve(&self) -> io::Result<Addrs> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return one(addr);
        }
        // "host:port", split and checked as std does before it asks the
        // resolver: a malformed one is an error without a lookup.
        let invalid = |what| io::Error::new(io::ErrorKind::InvalidInput, what);
        let (host, port) = self
            .rsplit_once(':')
            .ok_or_else(|| invalid("invalid socket address"))?;
        let port: u16 = port.parse().map_err(|_| invalid("invalid port value"))?;
        (host, port).resolve()
    }
}

impl ToSocketAddrs for String {}
impl Resolve for String {
    fn resolve(&self) -> io::Result<Addrs> {
        self.as_str().resolve()
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl Resolve for (&str, u16) {
    fn resolve(&self) -> io::Result<Addrs> {
        let (host, port) = *self;
        match host.parse::<IpAddr>() {
            Ok(ip) => one((ip, port)),
            Err(_) => Ok(Addrs::Many(lookup_host((host.to_owned(), port))?)),
        }
    }
}

impl ToSocketAddrs for (String, u16) {}
impl Resolve for (String, u16) {
    fn resolve(&self) -> io::Result<Addrs> {
        (self.0.as_str(), self.1).resolve()
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrs + ?Sized> Resolve for &T {
    fn resolve(&self) -> io::Result<Addrs> {
        (**self).resolve()
    }
}
