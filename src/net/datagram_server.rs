//! `DatagramServer`: a UDP server that runs a handler in its own greenlet
//! per datagram, optionally limits how many run at once, and stops
//! cleanly (gevent's `DatagramServer`); and [`ReplySocket`], the server's
//! socket as its handlers see it. It shares [`ServerHandle`], and so its
//! stop, with the TCP [`Server`](super::Server).

use std::fmt;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::rc::Rc;

use super::server::{HandlerGreenlets, Listening, Pacing, Shared};
use super::udp::UdpSocket;
use super::{ServerHandle, ToSocketAddrs};

/// The size of the buffer each datagram is received into: the largest
/// UDP payload (IPv6's: 65,535 bytes of payload less the 8-byte UDP
/// header; IPv4's is 20 bytes less; jumbograms aside).
const MAX_DATAGRAM: usize = 65_527;

type Handler = Rc<dyn Fn(Vec<u8>, SocketAddr, &ReplySocket)>;

/// A UDP server: bind (or take a socket), then
/// [`start`](DatagramServer::start) it; each datagram received is handed
/// to the handler, with its sender's address and the server's socket to
/// reply through (a [`ReplySocket`]), in a greenlet of its own. A datagram arrives whole (up
/// to 65,527 bytes, the largest UDP payload), in a `Vec` of its own
/// length.
///
/// ```
/// use std::time::Duration;
/// use greenlet::net::{DatagramServer, ReplySocket, UdpSocket};
///
/// let server = DatagramServer::bind("127.0.0.1:0", |data: Vec<u8>, peer, reply: &ReplySocket| {
///     let _ = reply.send_to(&data.to_ascii_uppercase(), peer);
/// })?
/// .max_handlers(100)
/// .start();
///
/// let client = UdpSocket::bind("127.0.0.1:0")?;
/// client.send_to(b"hello", server.local_addr())?;
/// let mut reply = [0u8; 16];
/// let (n, from) = client.recv_from(&mut reply)?;
/// assert_eq!((&reply[..n], from), (&b"HELLO"[..], server.local_addr()));
///
/// server.stop(Duration::from_secs(1));
/// assert!(server.is_stopped());
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Stopping
///
/// [`ServerHandle::stop`] ends the receiving at once (the receiving
/// greenlet is killed; datagrams still in the socket's buffer are never
/// handled), then gives the handlers running their grace, as for a TCP
/// server. The socket stays open for their replies meanwhile: it closes
/// when the last of them is done (or killed), so a stopped server's port
/// is free again.
///
/// # Errors while receiving
///
/// A receive that fails is counted in
/// [`accept_errors`](ServerHandle::accept_errors) and the server pauses,
/// as a TCP server after a failed accept: 1 ms, twice as long after each
/// further failure up to 250 ms, reset by the next datagram. A datagram
/// whose handler cannot have a stack (the mapping limit) is dropped and
/// counted the same way.
pub struct DatagramServer {
    socket: UdpSocket,
    handler: Handler,
    max_handlers: Option<usize>,
    handlers: HandlerGreenlets,
}

impl DatagramServer {
    /// Binds a socket to `addr` (see [`UdpSocket::bind`]) for a server
    /// running `handler` on each datagram.
    ///
    /// # Errors
    ///
    /// As [`UdpSocket::bind`].
    ///
    /// # Panics
    ///
    /// As [`UdpSocket::bind`] (only for a host name).
    pub fn bind<A, F>(addr: A, handler: F) -> io::Result<DatagramServer>
    where
        A: ToSocketAddrs,
        F: Fn(Vec<u8>, SocketAddr, &ReplySocket) + 'static,
    {
        Ok(DatagramServer::new(UdpSocket::bind(addr)?, handler))
    }

    /// A server receiving on `socket`, which it owns from now on: set its
    /// options (broadcast, TTL, buffer sizes through its descriptor)
    /// before. A read timeout set on it is cleared (the server waits for
    /// datagrams without one).
    pub fn new<F>(socket: UdpSocket, handler: F) -> DatagramServer
    where
        F: Fn(Vec<u8>, SocketAddr, &ReplySocket) + 'static,
    {
        // Cannot fail on an open socket: `None` is always a valid timeout.
        let _ = socket.set_read_timeout(None);
        DatagramServer {
            socket,
            handler: Rc::new(handler),
            max_handlers: None,
            handlers: HandlerGreenlets::default(),
        }
    }

    /// Names each handler's greenlet `"{name} {sender's address}"`, as
    /// [`Server::handler_name`](super::Server::handler_name) does.
    pub fn handler_name(mut self, name: impl Into<String>) -> DatagramServer {
        self.handlers.name = Some(name.into().into());
        self
    }

    /// The usable stack size of each handler's greenlet, as
    /// [`Server::handler_stack_size`](super::Server::handler_stack_size)
    /// (a size the system refuses drops every datagram, counted in
    /// [`accept_errors`](ServerHandle::accept_errors)).
    pub fn handler_stack_size(mut self, bytes: usize) -> DatagramServer {
        self.handlers.stack_size = Some(bytes);
        self
    }

    /// Handles at most `n` datagrams at once (gevent's `spawn=Pool(n)`):
    /// while `n` handlers run, the server stops receiving, and datagrams
    /// wait in the socket's receive buffer (which the kernel bounds:
    /// beyond it, datagrams are dropped, as UDP may).
    ///
    /// # Panics
    ///
    /// When `n` is 0.
    pub fn max_handlers(mut self, n: usize) -> DatagramServer {
        assert!(
            n > 0,
            "greenlet::net::DatagramServer::max_handlers needs at least 1"
        );
        self.max_handlers = Some(n);
        self
    }

    /// The address the socket is bound to.
    ///
    /// # Errors
    ///
    /// As [`UdpSocket::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Starts receiving, in a greenlet of its own, and returns a handle to
    /// stop the server or wait for it. Nothing runs until the calling
    /// greenlet blocks or yields.
    ///
    /// # Panics
    ///
    /// As [`hub::spawn`](crate::hub::spawn), and when the socket's address cannot be read.
    pub fn start(self) -> ServerHandle {
        let addr = self
            .socket
            .local_addr()
            .expect("greenlet::net::DatagramServer: the socket has no local address");
        let socket = Rc::new(self.socket);
        let (handler, handlers) = (self.handler, self.handlers);
        let s = ReplySocket {
            socket: socket.clone(),
        };
        ServerHandle::start(
            Listening::Udp(socket),
            addr,
            self.max_handlers,
            "datagram server receive",
            super::server::handler_ref(&handler),
            move |shared| receive_loop(shared, s, &handler, &handlers),
        )
    }
}

impl fmt::Debug for DatagramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramServer")
            .field("socket", &self.socket)
            .field("max_handlers", &self.max_handlers)
            .field("handler_name", &self.handlers.name)
            .field("handler_stack_size", &self.handlers.stack_size)
            .finish()
    }
}

/// Receives datagrams until the stop kills this greenlet, handing each to
/// a handler of its own.
fn receive_loop(
    shared: &Shared,
    socket: ReplySocket,
    handler: &Handler,
    handlers: &HandlerGreenlets,
) {
    // One buffer for the server's life; each datagram is copied out at its
    // own length.
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut pacing = Pacing::new();
    while !shared.stopping.get() {
        shared.wait_for_a_slot();
        match socket.socket.recv_from(&mut buf) {
            Ok((n, peer)) => {
                let data = buf[..n].to_vec();
                let (handler, socket) = (handler.clone(), socket.clone());
                let serve = move || handler(data, peer, &socket);
                // No stack for its handler: the datagram is dropped,
                // counted and paced as a failed receive.
                if shared.spawn_handler(handlers.builder(peer), serve) {
                    pacing.succeeded();
                } else {
                    pacing.failed(shared, false);
                }
            }
            // Not a failure, should a timeout have been set on the
            // socket after all: nothing came meanwhile.
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {}
            // An error reported on the socket (an ICMP message).
            Err(_) => pacing.failed(shared, false),
        }
    }
}

/// The server's socket as a [`DatagramServer`]'s handlers see it: it
/// sends (the replies) and says its address. Receiving, connecting,
/// timeouts and closing stay the server's, so no handler can take
/// another's datagram or leave the server deaf. `Clone` shares it: a
/// handler may hand it to a greenlet of its own to reply later; the
/// socket then stays open (and its port taken) until the last clone goes,
/// even after the server has stopped.
#[derive(Clone)]
pub struct ReplySocket {
    socket: Rc<UdpSocket>,
}

impl ReplySocket {
    /// Sends `buf` to `target` from the server's address (see
    /// [`UdpSocket::send_to`]); blocks only the calling greenlet while the
    /// socket's send buffer is full.
    ///
    /// # Errors
    ///
    /// As [`UdpSocket::send_to`].
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], target: A) -> io::Result<usize> {
        self.socket.send_to(buf, target)
    }

    /// The server's address.
    ///
    /// # Errors
    ///
    /// As [`UdpSocket::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

impl fmt::Debug for ReplySocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReplySocket").field(&self.socket).finish()
    }
}
