//! `Server`: a TCP server that runs a handler in its own greenlet per
//! connection, optionally limits how many run at once, and stops cleanly
//! (gevent's `StreamServer`); and [`ServerHandle`], the running server,
//! which [`DatagramServer`](super::DatagramServer) shares.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::tcp::{TcpListener, TcpStream};
use super::udp::UdpSocket;
use super::ToSocketAddrs;
use crate::hub::{self, Event, Group, JoinHandle, Pool, Sender};

/// The first pause after an accept error other than running out of
/// resources (which `accept` paces itself).
const MIN_PAUSE: Duration = Duration::from_millis(1);
/// The longest pause between two accepts that keep failing.
const MAX_PAUSE: Duration = Duration::from_millis(250);

type Handler = Rc<dyn Fn(TcpStream, SocketAddr)>;

/// A TCP server: bind (or take a listener), then [`start`](Server::start)
/// it; each accepted connection is handed to the handler in a greenlet of
/// its own.
///
/// ```
/// use std::io::{BufRead, BufReader, Read, Write};
/// use std::time::Duration;
/// use greenlet::net::{Server, TcpStream};
///
/// let server = Server::bind("127.0.0.1:0", |conn: TcpStream, _peer| {
///     // Never read an unbounded line from a peer: `take` a limit.
///     let mut line = String::new();
///     if BufReader::new((&conn).take(1024)).read_line(&mut line).is_ok() {
///         let _ = (&conn).write_all(line.to_uppercase().as_bytes());
///     }
/// })?
/// .max_connections(100)
/// .start();
///
/// let mut client = TcpStream::connect(server.local_addr())?;
/// client.write_all(b"hello\n")?;
/// let mut reply = String::new();
/// BufReader::new(client.take(1024)).read_line(&mut reply)?;
/// assert_eq!(reply, "HELLO\n");
///
/// server.stop(Duration::from_secs(1));
/// assert!(server.is_stopped());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    listener: TcpListener,
    handler: Handler,
    max_connections: Option<usize>,
    handlers: HandlerGreenlets,
}

/// How the handlers' greenlets are made.
#[derive(Clone, Debug, Default)]
pub(super) struct HandlerGreenlets {
    pub(super) name: Option<Rc<str>>,
    pub(super) stack_size: Option<usize>,
}

impl HandlerGreenlets {
    /// The builder of the greenlet that serves `peer`.
    pub(super) fn builder(&self, peer: SocketAddr) -> hub::Builder {
        let mut builder = hub::Builder::new();
        if let Some(name) = &self.name {
            builder = builder.name(format!("{name} {peer}"));
        }
        if let Some(bytes) = self.stack_size {
            builder = builder.stack_size(bytes);
        }
        builder
    }
}

impl Server {
    /// Binds a listener to `addr` (see [`TcpListener::bind`]) for a server
    /// running `handler` on each connection.
    ///
    /// # Errors
    ///
    /// As [`TcpListener::bind`].
    ///
    /// # Panics
    ///
    /// As [`TcpListener::bind`] (only for a host name).
    pub fn bind<A, F>(addr: A, handler: F) -> io::Result<Server>
    where
        A: ToSocketAddrs,
        F: Fn(TcpStream, SocketAddr) + 'static,
    {
        Ok(Server::new(TcpListener::bind(addr)?, handler))
    }

    /// A server accepting on `listener`.
    pub fn new<F>(listener: TcpListener, handler: F) -> Server
    where
        F: Fn(TcpStream, SocketAddr) + 'static,
    {
        Server {
            listener,
            handler: Rc::new(handler),
            max_connections: None,
            handlers: HandlerGreenlets::default(),
        }
    }

    /// Names each handler's greenlet `"{name} {peer address}"`, as panics,
    /// [`stats`](crate::stats) and `Debug` show it (unnamed by default).
    ///
    /// ```
    /// use std::io::Read;
    /// use greenlet::net::{Server, TcpStream};
    ///
    /// let server = Server::bind("127.0.0.1:0", |conn: TcpStream, _| {
    ///     let me = greenlet::Greenlet::current();
    ///     assert!(me.name().unwrap().starts_with("echo 127.0.0.1:"));
    ///     drop(conn);
    /// })?
    /// .handler_name("echo")
    /// .start();
    /// let mut client = TcpStream::connect(server.local_addr())?;
    /// assert_eq!(client.read(&mut [0; 1])?, 0); // served, then closed
    /// server.stop(std::time::Duration::ZERO);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn handler_name(mut self, name: impl Into<String>) -> Server {
        self.handlers.name = Some(name.into().into());
        self
    }

    /// The usable stack size of each handler's greenlet (see
    /// [`Builder::stack_size`](crate::Builder::stack_size): a size below
    /// the minimum is raised to it); the thread's
    /// [`StackPolicy`](crate::StackPolicy) size by default. A size the
    /// system refuses makes every connection fail as at the mapping limit:
    /// accepted, closed unserved and counted in
    /// [`accept_errors`](ServerHandle::accept_errors), while the server
    /// goes on.
    pub fn handler_stack_size(mut self, bytes: usize) -> Server {
        self.handlers.stack_size = Some(bytes);
        self
    }

    /// Serves at most `n` connections at once: while `n` handlers run,
    /// the server stops accepting and new connections wait in the kernel's
    /// backlog.
    ///
    /// # Panics
    ///
    /// When `n` is 0.
    pub fn max_connections(mut self, n: usize) -> Server {
        assert!(
            n > 0,
            "greenlet::net::Server::max_connections needs at least 1"
        );
        self.max_connections = Some(n);
        self
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    ///
    /// As [`TcpListener::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts accepting, in a greenlet of its own, and returns a handle to
    /// stop the server or wait for it. Nothing runs until the calling
    /// greenlet blocks or yields.
    ///
    /// # Panics
    ///
    /// As [`hub::spawn`], and when the listener's address cannot be read.
    pub fn start(self) -> ServerHandle {
        let addr = self
            .listener
            .local_addr()
            .expect("greenlet::net::Server: the listener has no local address");
        let listener = Rc::new(self.listener);
        let (handler, handlers) = (self.handler, self.handlers);
        let l = listener.clone();
        ServerHandle::start(
            Listening::Tcp(listener),
            addr,
            self.max_connections,
            "server accept",
            handler_ref(&handler),
            move |shared| accept_loop(shared, &l, &handler, &handlers),
        )
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("max_connections", &self.max_connections)
            .field("handler_name", &self.handlers.name)
            .field("handler_stack_size", &self.handlers.stack_size)
            .finish()
    }
}

/// The builder of a greenlet of the server's own (its loop, a stop, the
/// stopper's listener): not on a stack smaller than the default, whatever
/// the policy sized for the handlers (see `own_greenlet_stack_size`).
fn own_greenlet() -> hub::Builder {
    hub::Builder::new().stack_size(crate::stack::own_greenlet_stack_size())
}

/// What takes a reference to `handler` when a stop begins (see
/// `Shared::handler`): weak until then.
pub(super) fn handler_ref<H: ?Sized + 'static>(
    handler: &Rc<H>,
) -> Box<dyn Fn() -> Option<Box<dyn Any>>> {
    let weak = Rc::downgrade(handler);
    Box::new(move || weak.upgrade().map(|h| Box::new(h) as Box<dyn Any>))
}

enum Members {
    Group(Group),
    Pool(Pool),
}

/// What a server listens on, as its stop ends the listening.
pub(super) enum Listening {
    /// Closed at the stop: that wakes the acceptor's `accept`, and
    /// connections left in the backlog are reset.
    Tcp(Rc<TcpListener>),
    /// Let go at the stop (the receiver is killed): handlers in their
    /// grace still send their replies through it, and the descriptor
    /// closes with the last of them.
    Udp(Rc<UdpSocket>),
}

impl Listening {
    fn stop_listening(self) {
        match self {
            Listening::Tcp(listener) => listener.close(),
            Listening::Udp(socket) => drop(socket),
        }
    }
}

pub(super) struct Shared {
    /// Taken by `stop`: the descriptor is released once the acceptor (and,
    /// for a datagram server, every handler) is gone too.
    listener: RefCell<Option<Listening>>,
    addr: SocketAddr,
    members: Members,
    pub(super) stopping: Cell<bool>,
    /// A handler asked for a stop, which runs in a greenlet of its own
    /// from the handler's next block or yield on.
    stop_asked: Cell<bool>,
    /// Set once a stop has begun (what `is_stopping` says): what a
    /// `ServerHandle` waits for as a `Waitable`.
    stop_begun: Event,
    /// Set once `stop` has finished: before it drops the handler (see
    /// `StopRest`).
    stopped: Event,
    acceptor: RefCell<Option<JoinHandle<()>>>,
    /// The greenlet waiting for a stop from another thread, if any.
    watcher: RefCell<Option<JoinHandle<()>>>,
    stop_tx: RefCell<Option<Sender<Duration>>>,
    accept_errors: Cell<u64>,
    /// A reference to the program's handler, taken when a stop begins and
    /// kept until it has ended: the server's greenlets hold the others,
    /// which their kills drop as they unwind, where a panic in the
    /// handler's destructor (its captures') would abort the process. The
    /// stop drops this last one itself, reporting such a panic. Only for
    /// the stop: kept for the server's life, it would make a cycle with a
    /// handler that holds the server's handle (see `ServerHandle`'s
    /// example), and a server never stopped would never drop its handler.
    handler: RefCell<Option<Box<dyn Any>>>,
    /// Takes that reference (`None` if the handler is gone).
    handler_ref: Box<dyn Fn() -> Option<Box<dyn Any>>>,
}

impl Shared {
    fn group_len(&self) -> usize {
        match &self.members {
            Members::Group(g) => g.len(),
            Members::Pool(p) => p.len(),
        }
    }

    /// Spawns `serve` into the members, in a greenlet `builder` makes;
    /// `false` when no stack could be had for it (the mapping limit: what
    /// `serve` owned, a connection or a datagram, is dropped with it).
    /// Only the server's loop spawns, after waiting for a free slot of a
    /// pool: this does not block.
    /// With a pool, waits until a slot is free: meanwhile connections
    /// wait in the backlog, datagrams in the socket's buffer.
    pub(super) fn wait_for_a_slot(&self) {
        if let Members::Pool(pool) = &self.members {
            pool.wait_available();
        }
    }

    pub(super) fn spawn_handler(
        &self,
        builder: hub::Builder,
        serve: impl FnOnce() + 'static,
    ) -> bool {
        let spawned = match &self.members {
            Members::Group(g) => g.spawn_with(builder, serve).map(drop),
            Members::Pool(p) => p.spawn_with(builder, serve).map(drop),
        };
        spawned.is_ok()
    }

    /// Kills the handlers left. Allowed while unwinding too: a kill always
    /// comes back.
    /// Waits at most `grace` for the handlers to end; whether they all
    /// did. As ordinary work even for a daemon (a signal listener calling
    /// `stop`): main may be waiting for the stop in `wait`, and a daemon's
    /// grace timer would not keep it waiting. A grace of zero does not
    /// wait at all: a zero-timeout wait still lets every ready greenlet
    /// run first, handlers accepted but not started among them, which "at
    /// once" does not.
    fn grace_for_handlers(&self, grace: Duration) -> bool {
        if grace.is_zero() {
            return match &self.members {
                Members::Group(g) => g.is_empty(),
                Members::Pool(p) => p.is_empty(),
            };
        }
        hub::not_daemon(|| match &self.members {
            Members::Group(g) => g.join_timeout(grace),
            Members::Pool(p) => p.join_timeout(grace),
        })
    }

    fn kill_handlers(&self) {
        match &self.members {
            Members::Group(g) => g.kill_all(),
            Members::Pool(p) => p.kill_all(),
        }
    }
}

/// The pause of a server's loop after a failure (an accept, a receive, a
/// handler with no stack): counted in `accept_errors`, then 1 ms, twice
/// as long after each further failure up to 250 ms, until a success, so a
/// loop that keeps failing does not spin.
pub(super) struct Pacing {
    pause: Duration,
}

impl Pacing {
    pub(super) fn new() -> Pacing {
        Pacing { pause: MIN_PAUSE }
    }

    pub(super) fn succeeded(&mut self) {
        self.pause = MIN_PAUSE;
    }

    /// Counts a failure and pauses, unless the failed call `paced_itself`
    /// (a second pause would double its delays).
    pub(super) fn failed(&mut self, shared: &Shared, paced_itself: bool) {
        shared.accept_errors.set(shared.accept_errors.get() + 1);
        if !paced_itself {
            hub::sleep(self.pause);
            self.pause = (self.pause * 2).min(MAX_PAUSE);
        }
    }
}

fn accept_loop(
    shared: &Shared,
    listener: &TcpListener,
    handler: &Handler,
    handlers: &HandlerGreenlets,
) {
    let mut pacing = Pacing::new();
    while !shared.stopping.get() {
        shared.wait_for_a_slot();
        if shared.stopping.get() {
            return;
        }
        match listener.accept() {
            Ok((conn, peer)) => {
                let handler = handler.clone();
                let serve = move || handler(conn, peer);
                // No stack for it (the mapping limit): the connection was
                // closed with the function that owned it; counted and
                // paced as a failed accept, the server goes on.
                if shared.spawn_handler(handlers.builder(peer), serve) {
                    pacing.succeeded();
                } else {
                    pacing.failed(shared, false);
                }
            }
            Err(_) if shared.stopping.get() => return,
            // A peer that reset before the accept, a closed listener. A
            // resource failure was paced by `accept` itself (its own
            // back-off, the same delays).
            Err(e) => pacing.failed(shared, super::accept::is_resource_exhaustion(&e)),
        }
    }
}

/// A running [`Server`] or [`DatagramServer`](super::DatagramServer);
/// `Clone` shares it. Dropping the handles does not stop the server.
///
/// A handler reaches its own server through a cell filled once `start`
/// returned (the handler first runs after that): an idle keep-alive
/// connection then waits for its next request or the server's stop at
/// once, and lets a graceful stop finish without waiting out the grace.
///
/// ```
/// use std::cell::OnceCell;
/// use std::io::Read;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use greenlet::hub::{self, Waitable};
/// use greenlet::net::{Server, ServerHandle, TcpStream};
///
/// let me: Rc<OnceCell<ServerHandle>> = Rc::new(OnceCell::new());
/// let cell = me.clone();
/// let server = Server::bind("127.0.0.1:0", move |mut conn: TcpStream, _| {
///     let server = cell.get().expect("filled before any handler runs");
///     loop {
///         let either: [&dyn Waitable; 2] = [&conn.readable(), server];
///         if hub::wait_any(&either, None) == Some(1) {
///             return; // the server stops: close this connection now
///         }
///         let mut request = [0u8; 512];
///         if conn.read(&mut request).unwrap_or(0) == 0 {
///             return;
///         }
///         // ... answer ...
///     }
/// })?
/// .start();
/// me.set(server.clone()).ok();
///
/// let idle = TcpStream::connect(server.local_addr())?;
/// hub::yield_now(); // the server accepts it; its handler waits
/// server.stop(Duration::from_secs(3600)); // no hour-long wait for `idle`
/// assert!(server.is_stopped());
/// drop(idle);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct ServerHandle {
    shared: Rc<Shared>,
}

/// The end of [`ServerHandle::stop`], run when it drops: kills the
/// handlers left unless all are done, then the watcher, and marks the
/// server stopped.
struct StopTail<'a> {
    shared: &'a Shared,
    all_done: bool,
}

impl Drop for StopTail<'_> {
    fn drop(&mut self) {
        // The rest is a guard of its own: a handler's destructor may kill
        // this very greenlet (one the handler owns) while the kills run,
        // and the stop must still finish, the handlers left still be
        // killed, as this greenlet unwinds.
        let mut rest = StopRest {
            shared: self.shared,
            kill_left: !self.all_done,
        };
        if rest.kill_left {
            self.shared.kill_handlers();
            rest.kill_left = false;
        }
    }
}

/// The part of [`StopTail`] that also runs when its kills unwind it.
struct StopRest<'a> {
    shared: &'a Shared,
    /// Whether the kills were cut short (or not made): the handlers left
    /// are killed on the way out.
    kill_left: bool,
}

impl Drop for StopRest<'_> {
    fn drop(&mut self) {
        let shared = self.shared;
        if self.kill_left {
            shared.kill_handlers();
        }
        shared.stop_tx.borrow_mut().take();
        if let Some(watcher) = shared.watcher.borrow_mut().take() {
            if !watcher.greenlet().is_current() {
                watcher.kill();
            }
        }
        // Stopped before the handler goes: its destructor is the program's
        // code, which may stop the server again or wait for it (those
        // return), hand the wait to other greenlets that do (a join of a
        // helper that waits for the server), take a `Stopper` (which says
        // `false`) or block (as ordinary work even for a daemon's stop, as
        // the grace is). Stopped only once it has gone, `wait` would see
        // the destructors done, but any of those waited for itself. (Tried,
        // and reviewed: a helper joined by the destructor deadlocked.)
        shared.stopped.set();
        let handler = shared.handler.borrow_mut().take();
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            hub::not_daemon(move || drop(handler))
        }));
        if let Err(p) = dropped {
            // A kill or a `with_timeout` expiry of this greenlet, come
            // while the destructor blocked, goes on (not where this drop
            // runs as the greenlet unwinds already: that would abort);
            // anything else is the handler's panic, reported.
            let interruption = hub::is_kill(p.as_ref()) || p.is::<hub::timeout::Interrupt>();
            if interruption && !std::thread::panicking() {
                std::panic::resume_unwind(p);
            }
            report!(
                "greenlet: a stopped server's handler panicked as it was dropped: {}",
                crate::error::payload_message(p.as_ref()).unwrap_or("(non-text payload)")
            );
            crate::error::drop_quietly(p);
        }
    }
}

impl ServerHandle {
    /// Starts a server listening on `listening` (bound to `addr`): its
    /// loop, `serve`, runs in a greenlet named `loop_name` and spawns the
    /// handlers into `shared.members` (a pool of `max` when given).
    pub(super) fn start(
        listening: Listening,
        addr: SocketAddr,
        max: Option<usize>,
        loop_name: &'static str,
        handler_ref: Box<dyn Fn() -> Option<Box<dyn Any>>>,
        serve: impl FnOnce(&Shared) + 'static,
    ) -> ServerHandle {
        let members = match max {
            Some(n) => Members::Pool(Pool::new(n)),
            None => Members::Group(Group::new()),
        };
        let shared = Rc::new(Shared {
            listener: RefCell::new(Some(listening)),
            addr,
            members,
            stopping: Cell::new(false),
            stop_asked: Cell::new(false),
            stop_begun: Event::new(),
            stopped: Event::new(),
            acceptor: RefCell::new(None),
            watcher: RefCell::new(None),
            stop_tx: RefCell::new(None),
            accept_errors: Cell::new(0),
            handler: RefCell::new(None),
            handler_ref,
        });
        let s = shared.clone();
        let acceptor = own_greenlet()
            .name(loop_name)
            .spawn(move || serve(&s))
            .unwrap_or_else(|e| panic!("greenlet::net: starting the {loop_name} greenlet: {e}"));
        *shared.acceptor.borrow_mut() = Some(acceptor);
        ServerHandle { shared }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Connections (for a [`DatagramServer`](super::DatagramServer):
    /// datagrams) being handled now.
    pub fn connections(&self) -> usize {
        self.shared.group_len()
    }

    /// Accepts (for a [`DatagramServer`](super::DatagramServer):
    /// receives) that failed so far, and connections (datagrams) dropped
    /// unserved because no stack could be had for their handler. The server pauses
    /// after each, 1 ms and twice as long after each further one up to
    /// 250 ms, reset by the next success (after running out of descriptors,
    /// that pause is the accept's own back-off: see
    /// [`TcpListener::accept`](super::TcpListener::accept)).
    pub fn accept_errors(&self) -> u64 {
        self.shared.accept_errors.get()
    }

    /// Whether [`stop`](ServerHandle::stop) has finished.
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.is_set()
    }

    /// Whether a [`stop`](ServerHandle::stop) has begun (the listener is
    /// closed, or a datagram server's receiving ended; the handlers left
    /// are in their grace, or killed): a
    /// handler that can reach the handle may check it between requests to
    /// say goodbye and end early instead of sitting out the grace.
    ///
    /// The handler is built before the server starts, so it reaches the
    /// handle through a cell filled after [`start`](Server::start):
    ///
    /// ```
    /// use std::cell::OnceCell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use greenlet::net::{Server, ServerHandle, TcpStream};
    ///
    /// let me: Rc<OnceCell<ServerHandle>> = Rc::default();
    /// let handle = me.clone();
    /// let server = Server::bind("127.0.0.1:0", move |_conn, _peer| {
    ///     let server = handle.get().expect("set after start");
    ///     if !server.is_stopping() {
    ///         // One request, then the whole server stops.
    ///         server.stop(Duration::from_secs(1));
    ///     }
    /// })?
    /// .start();
    /// me.set(server.clone()).ok();
    /// let _client = TcpStream::connect(server.local_addr())?;
    /// server.wait();
    /// assert!(server.is_stopping() && server.is_stopped());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_stopping(&self) -> bool {
        self.shared.stopping.get() || self.shared.stop_asked.get()
    }

    /// Stops the server gracefully: stops accepting (closing the
    /// listener), lets the handlers running finish for up to `grace`, then
    /// kills those left (their greenlets unwind: sockets close, guards
    /// run). Returns when all is done. A call made while a stop is under
    /// way waits at most its own grace before it kills the handlers left,
    /// then for the first call to finish: a second stop with a shorter
    /// grace (a second Ctrl-C, `stop(Duration::ZERO)`) cuts the first
    /// one's grace short; a longer one changes nothing.
    ///
    /// Connections the kernel completed but the server had not accepted
    /// yet (still in the listener's backlog) are reset as the listener
    /// closes: their clients get `ECONNRESET` with no reply, as with
    /// gevent's servers and most others.
    ///
    /// A [`DatagramServer`](super::DatagramServer) stops receiving instead
    /// (its loop is killed; datagrams still in the socket's buffer are
    /// never handled), and its socket stays open for the handlers'
    /// replies: it closes when the last of them is done or killed.
    ///
    /// A handler waiting for the next request of an idle keep-alive
    /// connection sits out the whole grace (gevent's servers behave the
    /// same) unless it waits for the stop too: a `ServerHandle` is a
    /// [`Waitable`](hub::Waitable), ready once a stop has begun, so a
    /// [`hub::wait_any`] over the connection's
    /// [`readable`](super::TcpStream::readable) and the server (as `&dyn
    /// Waitable`s) wakes for either (see the example on the impl). Giving its reads a timeout,
    /// or checking [`is_stopping`](ServerHandle::is_stopping) between
    /// requests, also lets it end early; a grace of zero kills every
    /// handler at once. A handler that catches panics around each request
    /// (`catch_unwind`) catches that kill too: it should hand it on
    /// ([`is_runtime_unwinding`](crate::is_runtime_unwinding)), or it
    /// refuses the kill and serves on after the stop.
    ///
    /// Called from one of the server's own handlers (to stop it from a
    /// request), or from a greenlet below one in its parent chain (its
    /// generator's producer, say), it starts the stop in a greenlet of its own and returns at
    /// once: waiting would wait for the caller itself. The caller then
    /// counts among the handlers that get the grace.
    ///
    /// A caller interrupted while it waits out the grace (a
    /// [`with_timeout`](crate::hub::with_timeout) expiry, a kill, a throw)
    /// cuts the grace short: the handlers left are killed before the
    /// interruption goes on. The first caller then finishes the stop
    /// before its interruption goes on; a later one leaves that to the
    /// first, at its next turn. Either way later `stop` and
    /// [`wait`](ServerHandle::wait) calls return.
    ///
    /// The handler (the closure the server was made with) is dropped last,
    /// once the server counts as stopped: a destructor of its captures may
    /// use the server (a `stop` or [`wait`](ServerHandle::wait) there, or
    /// in a greenlet it waits for, returns; a [`Stopper`] says `false`)
    /// and may block, as ordinary work even in a daemon's stop. So `wait`
    /// elsewhere may return while such a destructor still blocks: the stop
    /// returns after it (join the greenlet that called `stop`, to know the
    /// destructors done). A kill or a `with_timeout` expiry that comes
    /// meanwhile goes on; a panic there (a throw into the stopping
    /// greenlet too, which nothing tells from one) is reported on stderr.
    ///
    /// A grace of zero kills at once: no handler runs again before its
    /// kill, also one the stop itself woke (waiting on the server as a
    /// `Waitable`), so saying goodbye needs a grace.
    ///
    /// # Panics
    ///
    /// As any blocking call (see the [hub's docs](crate::hub)); and,
    /// called from one of the server's handlers, when no stack can be had
    /// for the greenlet that would stop the server (the mapping limit):
    /// the server is then left as it was, serving, and a stop from
    /// outside its handlers (or through a [`Stopper`]) still works.
    pub fn stop(&self, grace: Duration) {
        let shared = &self.shared;
        let members = match &shared.members {
            Members::Group(g) => g.members(),
            Members::Pool(p) => p.members(),
        };
        // Called from a handler, or from a greenlet running under one (a
        // generator's producer).
        if members.iter().any(|g| g.is_current_or_above()) {
            let handle = self.clone();
            // Spawned before the stop is announced: with no stack for it,
            // the server stays as it was (not half stopping, with
            // `is_stopping` true and nobody stopping it) and the caller
            // hears why.
            match own_greenlet().spawn(move || handle.stop(grace)) {
                Ok(stopper) => drop(stopper),
                Err(e) => panic!(
                    "greenlet::net::ServerHandle::stop: no stack for the greenlet that \
                     stops the server from its handler ({e}); the server goes on"
                ),
            }
            shared.stop_asked.set(true);
            shared.stop_begun.set();
            return;
        }
        if shared.stopping.replace(true) {
            // A stop is under way: this one waits at most its own grace,
            // then kills the handlers left, so a shorter grace (a second
            // Ctrl-C) cuts the first one short; a longer one waits for
            // that one to finish.
            if !shared.stopped.is_set() {
                // Interrupted while it waits (a `with_timeout` expiry, a
                // kill), it cuts the grace short too, as the first call.
                struct CutShort<'a>(&'a Shared, bool);
                impl Drop for CutShort<'_> {
                    fn drop(&mut self) {
                        if self.1 {
                            self.0.kill_handlers();
                        }
                    }
                }
                let mut cut = CutShort(shared, true);
                cut.1 = !shared.grace_for_handlers(grace);
            }
            shared.stopped.wait();
            return;
        }
        shared.stop_begun.set();
        *shared.handler.borrow_mut() = (shared.handler_ref)();
        // The rest runs also if this greenlet is interrupted from here on:
        // by a kill from a destructor that the acceptor's kill below runs
        // (the handler's), or while it waits out the grace (a
        // `with_timeout` expiry, a kill, a throw): the grace is then over,
        // and the stop is finished on the way out, so that no later `stop`
        // or `wait` waits for it forever.
        let mut tail = StopTail {
            shared,
            all_done: false,
        };
        let listening = shared.listener.borrow_mut().take();
        if let Some(listening) = listening {
            listening.stop_listening(); // wakes the acceptor's `accept`
        }
        if let Some(acceptor) = shared.acceptor.borrow_mut().take() {
            if !acceptor.greenlet().is_current() {
                // Blocked on a full pool, it needs a kill to leave.
                acceptor.kill();
            }
        }
        tail.all_done = shared.grace_for_handlers(grace);
    }

    /// Blocks until the server has stopped (`serve_forever`).
    ///
    /// # Panics
    ///
    /// As any blocking call.
    pub fn wait(&self) {
        self.shared.stopped.wait();
    }

    /// A handle that stops the server from any thread. The first one
    /// spawns a greenlet that listens for its requests; each request is
    /// carried out in a greenlet of its own (so a second one can cut the
    /// first's grace short), or, when no stack can be had for that (the
    /// mapping limit), by the listening greenlet itself: a request is
    /// never lost.
    ///
    /// # Panics
    ///
    /// When the hub's channel cannot be created (see
    /// [`hub::channel`]), or no stack can be had for the first one's
    /// listening greenlet (see [`hub::spawn`]).
    pub fn stopper(&self) -> Stopper {
        if let Some(tx) = &*self.shared.stop_tx.borrow() {
            return Stopper { tx: tx.clone() };
        }
        if self.shared.stopped.is_set() {
            // Stopped already: a stopper with nobody to hear it, whose
            // `stop` says so. (While a stop is under way, a stopper can
            // still cut it short.)
            let (tx, _) = hub::channel::<Duration>();
            return Stopper { tx };
        }
        let (tx, rx) = hub::channel::<Duration>();
        let handle = self.clone();
        // Not a daemon: a stop from another thread may come while every
        // greenlet of the server waits on the hub's own primitives (the
        // loop on a full pool, handlers on the server's stop), and a
        // `wait` for the server must not be told it waits for ever. The
        // stop kills it. Each stop runs in a greenlet of its own, so a
        // second one, with a shorter grace, can cut the first short.
        let watcher = own_greenlet().spawn(move || {
            while let Ok(grace) = rx.recv() {
                let stopping = handle.clone();
                if own_greenlet().spawn(move || stopping.stop(grace)).is_err() {
                    // No stack for it (the mapping limit): stopped here,
                    // so the request is not lost. A second request waits
                    // for this stop to end instead of cutting it short.
                    handle.stop(grace);
                }
            }
        });
        let watcher = watcher.unwrap_or_else(|e| {
            panic!("greenlet::net::ServerHandle::stopper: no stack for the listening greenlet: {e}")
        });
        *self.shared.watcher.borrow_mut() = Some(watcher);
        *self.shared.stop_tx.borrow_mut() = Some(tx.clone());
        Stopper { tx }
    }
}

/// A `ServerHandle` is ready once a stop has begun (as
/// [`is_stopping`](ServerHandle::is_stopping) says): a handler waiting for
/// its next request can wait for a stop too, and say goodbye at once
/// instead of sitting out the grace (a stop with a grace of zero kills it
/// before it runs again).
///
/// ```
/// use std::cell::OnceCell;
/// use std::io::Write;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use greenlet::hub::{self, Waitable};
/// use greenlet::net::{Server, ServerHandle, TcpStream};
///
/// let me: Rc<OnceCell<ServerHandle>> = Rc::default();
/// let handle = me.clone();
/// let server = Server::bind("127.0.0.1:0", move |conn: TcpStream, _| {
///     let server = handle.get().expect("set after start");
///     let readable = conn.readable();
///     let either: [&dyn Waitable; 2] = [&readable, server];
///     if hub::wait_any(&either, None) == Some(1) {
///         let _ = (&conn).write_all(b"bye\n"); // stopping: leave now
///     }
/// })?
/// .start();
/// me.set(server.clone()).ok();
/// let _idle = TcpStream::connect(server.local_addr())?;
/// while server.connections() == 0 {
///     hub::yield_now();
/// }
/// hub::time::pause();
/// let start = hub::time::now();
/// server.stop(Duration::from_secs(60));
/// assert_eq!(hub::time::now(), start, "no grace sat out");
/// hub::time::resume();
/// # Ok::<(), std::io::Error>(())
/// ```
impl hub::waitable::Source for ServerHandle {
    fn is_ready(&self) -> bool {
        self.shared.stop_begun.is_ready()
    }

    fn ready_stamp(&self) -> u64 {
        self.shared.stop_begun.ready_stamp()
    }

    fn add_waiter(&self, w: usize) -> usize {
        self.shared.stop_begun.add_waiter(w)
    }

    fn remove_waiter(&self, node: usize, w: usize) {
        self.shared.stop_begun.remove_waiter(node, w);
    }
}

impl hub::Waitable for ServerHandle {}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.shared.addr)
            .field("connections", &self.connections())
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

/// Stops a [`Server`] (or a [`DatagramServer`](super::DatagramServer))
/// from another thread: `Send + Sync + Clone`. See
/// [`ServerHandle::stopper`].
#[derive(Clone)]
pub struct Stopper {
    tx: Sender<Duration>,
}

impl Stopper {
    /// Asks the server to [`stop`](ServerHandle::stop) with `grace`;
    /// returns at once. `false` when the server has already stopped (or
    /// its thread has exited); `true` when the request was sent, which a
    /// stop finishing meanwhile makes moot.
    pub fn stop(&self, grace: Duration) -> bool {
        self.tx.send(grace).is_ok()
    }
}

impl fmt::Debug for Stopper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Stopper")
    }
}
