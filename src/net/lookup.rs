//! `lookup_host`: name resolution that blocks only the calling greenlet
//! (gevent's thread-pool resolver, tokio's `net::lookup_host`).
//!
//! The system's resolver (`getaddrinfo`) has no non-blocking form, so the
//! lookup runs on the process-wide [`ThreadPool`](crate::hub::ThreadPool)
//! while the caller waits on a channel and the hub runs the others.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::vec;

use crate::hub::ThreadPool;

/// Resolves `host` (anything std's [`ToSocketAddrs`] takes: `"host:port"`,
/// `("host", port)`, a `SocketAddr`) to its addresses, blocking only the
/// calling greenlet: the system's resolver runs on the pool of
/// [`spawn_blocking`](crate::hub::spawn_blocking) meanwhile.
///
/// The calls of this module taking a [`net::ToSocketAddrs`](super::ToSocketAddrs)
/// ([`TcpStream::connect`](super::TcpStream::connect), `bind`, `send_to`)
/// resolve a host name through this function. Call it yourself to see the
/// addresses, to try them your own way, or with a `ToSocketAddrs` of std's
/// of your own (a resolver with its own cache).
///
/// ```
/// use greenlet::net::{lookup_host, TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let port = listener.local_addr()?.port();
/// // "localhost" may resolve to ::1 first: try each, as connect would.
/// let mut connected = None;
/// for addr in lookup_host(("localhost", port))? {
///     if let Ok(stream) = TcpStream::connect(addr) {
///         connected = Some(stream);
///         break;
///     }
/// }
/// assert!(connected.is_some());
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// A [`with_timeout`](crate::hub::with_timeout) expiry or a kill stops the
/// wait at once; the lookup itself runs to its end on its pool thread (the
/// system's resolver cannot be interrupted), its result dropped there. On
/// the [paused clock](crate::hub::time) the lookup counts as work off the
/// hub: the clock waits for it rather than jumping past it to a timeout.
///
/// # Errors
///
/// What [`ToSocketAddrs::to_socket_addrs`] returns (an unknown host, an
/// invalid port); an error of the system when no pool thread can be
/// started and none is alive, or when the thread's hub has no I/O reactor
/// yet and cannot make one (out of descriptors: `EMFILE`); and
/// `ErrorKind::Other` when called while its greenlet unwinds, where no
/// wait can be made.
///
/// # Panics
///
/// As any blocking hub call (see the [hub docs](crate::hub)), but while
/// its greenlet unwinds (an error then); a panic of the `ToSocketAddrs`
/// implementation resumes here.
pub fn lookup_host<A>(host: A) -> io::Result<vec::IntoIter<SocketAddr>>
where
    A: ToSocketAddrs + Send + 'static,
{
    ThreadPool::global()
        .run(move || host.to_socket_addrs().map(Iterator::collect::<Vec<_>>))?
        .map(Vec::into_iter)
}
