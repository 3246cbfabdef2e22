//! More scenarios ported from gevent's `src/gevent/tests/test__server.py`
//! (those not already in `gevent_server.rs` and `server.rs`), and the
//! scenario of `src/gevent/tests/test__example_portforwarder.py` (gevent
//! 26.x, with `examples/portforwarder.py`), each test named after the one
//! it ports (`test_pool_spawn_*` for `TestPoolSpawn`'s run of a
//! `TestDefaultSpawn` test).
//!
//! How gevent's API maps here:
//! - `StreamServer(addr, handle)` / `StreamServer(listener, handle)` is
//!   `Server::bind(addr, handle)` / `Server::new(listener, handle)`; unlike
//!   gevent's, `Server::bind` listens at once (gevent binds at `start`), so
//!   where gevent asserts "connection refused" before `start`, these tests
//!   assert "connected but not served" instead.
//! - `start()` is `Server::start` (which gives the `ServerHandle`),
//!   `serve_forever()` is `start` then `ServerHandle::wait`, `stop(timeout)`
//!   is `ServerHandle::stop(grace)`, a signal handler calling `close()` is a
//!   `Stopper` (the stop from outside the hub).
//! - `spawn=2` (`TestPoolSpawn`) is `max_connections(2)`; the default
//!   `gevent.spawn` is a server without a limit.
//! - `stop_accepting()` / `start_accepting()` (the "restartable" part of
//!   `_test_server_start_stop`): a server on a `try_clone` of a listener
//!   the test keeps is stopped (its listener handle closes, the listening
//!   socket stays open), then a new server is started on another clone.
//!   Where gevent restarts a server bound to an address, a new server is
//!   bound to the same address.
//! - `SimpleStreamServer.handle` (tiny HTTP: `/ping` answers `PONG`,
//!   `/long` and `/short` answer `hello` and read until the client closes,
//!   anything else a 404) is `simple_handle`.
//! - gevent's socket timeouts (`DEFAULT_SOCKET_TIMEOUT`, `timeout=0.01`)
//!   are the client's read timeouts on the hub clock; tests that rely on
//!   one (a request not served must time out) pause the clock, so the
//!   timeout is virtual and exact.
//!
//! Not ported (no counterpart here): `test_backlog_is_not_accepted_for_socket`
//! and `test_backlog_is_accepted_for_address` (no `backlog` argument: the
//! listener's backlog is `TcpListener::BACKLOG`), `test_invalid_callback`
//! (the handler's type is checked at compile time), `test_error_in_spawn`
//! (no custom `_spawn`; a refused stack is `server.rs`'s
//! `a_connection_without_a_stack_is_closed_and_the_server_goes_on`),
//! `test_server_repr_when_handle_is_instancemethod` (repr),
//! `TestRawSpawn` (no `spawn_raw`: a handler always runs in a greenlet of
//! its own, so it repeats `TestDefaultSpawn`), `TestNoneSpawn`'s
//! `test_invalid_callback` and `test_assertion_in_blocking_func` (no
//! handler run inside the loop's callback), `TestSSLSocketNotAllowed`,
//! the file's note "non-socket.error exception in accept call: fatal"
//! (accept errors are `io::Error`s here, counted and paced, never fatal),
//! `TestSSLGetCertificate` (SSL: rustls over a `TcpStream`, not the
//! server's business), the portforwarder's real `SIGTERM` to a child
//! process (a `Stopper` stands in for the signal handler; a real signal
//! sent to the test process is shared by every test in it).

use std::cell::{Cell, OnceCell};
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, Event, Queue, Waitable};
use greenlet::net::{Server, ServerHandle, TcpListener, TcpStream};

const HOUR: Duration = Duration::from_secs(3600);
/// gevent's `DEFAULT_SOCKET_TIMEOUT` (on the hub clock).
const SOCKET_TIMEOUT: Duration = Duration::from_secs(2);

// ----- helpers: gevent's SimpleStreamServer and TestCase assertions -----

/// gevent's `SimpleStreamServer.handle`.
fn simple_handle(conn: TcpStream, _peer: SocketAddr) {
    let mut line = String::new();
    let mut reader = BufReader::new((&conn).take(1024));
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split(' ').nth(1).unwrap_or("");
    match path {
        "/ping" => {
            let _ = (&conn).write_all(b"HTTP/1.0 200 OK\r\n\r\nPONG");
        }
        "/long" | "/short" => {
            let _ = (&conn).write_all(b"hello");
            let mut b = [0u8; 1];
            while matches!((&conn).read(&mut b), Ok(1)) {}
        }
        "/panic" => panic!("expected: a handler that raises"),
        _ => {
            let _ = (&conn).write_all(b"HTTP/1.0 404 WTF?\r\n\r\n");
        }
    }
}

/// Counts the handlers unwound (killed or panicking) while it lives in
/// their frame.
struct Unwound(Rc<Cell<u32>>);

impl Drop for Unwound {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.set(self.0.get() + 1);
        }
    }
}

/// A client connection with gevent's default socket timeout.
fn makefile(addr: SocketAddr, timeout: Duration) -> TcpStream {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(timeout)).unwrap();
    conn
}

fn send_request(conn: &TcpStream, url: &str) {
    let mut c = conn;
    c.write_all(format!("GET {url} HTTP/1.0\r\n\r\n").as_bytes())
        .unwrap();
}

/// Sends a request for `url` and reads the reply to the end.
fn request(addr: SocketAddr, url: &str, timeout: Duration) -> io::Result<Vec<u8>> {
    let conn = makefile(addr, timeout);
    send_request(&conn, url);
    let mut reply = Vec::new();
    (&conn).read_to_end(&mut reply)?;
    Ok(reply)
}

fn assert_request_succeeded(addr: SocketAddr) {
    let reply = request(addr, "/ping", SOCKET_TIMEOUT).unwrap();
    assert!(reply.ends_with(b"\r\n\r\nPONG"), "{reply:?}");
}

fn assert_connection_refused(addr: SocketAddr) {
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

/// gevent's `assertNotAccepted`: the connection is made (the kernel's
/// backlog) but nothing answers before the socket timeout. Needs a paused
/// clock.
fn assert_not_accepted(addr: SocketAddr) {
    let conn = makefile(addr, SOCKET_TIMEOUT);
    send_request(&conn, "/");
    let mut b = [0u8; 64];
    let start = hub::time::now();
    let err = (&conn).read(&mut b).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(hub::time::now() - start, SOCKET_TIMEOUT);
}

/// gevent's `assertPoolFull`: a request times out (`timeout=0.01`).
fn assert_pool_full(addr: SocketAddr) {
    let err = request(addr, "/ping", Duration::from_millis(10)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
}

fn simple_server(addr: &str, pool: bool) -> Server {
    let s = Server::bind(addr, simple_handle).unwrap();
    if pool {
        s.max_connections(2)
    } else {
        s
    }
}

/// gevent's `start_server`.
fn start_server(server: Server) -> ServerHandle {
    let handle = server.start();
    assert_request_succeeded(handle.local_addr());
    assert_request_succeeded(handle.local_addr());
    handle
}

/// gevent's `stop_server` (the listener is closed for good).
fn stop_server(handle: &ServerHandle) {
    handle.stop(HOUR);
    assert!(handle.is_stopped());
    assert_connection_refused(handle.local_addr());
}

// ----- test__server.py: TestDefaultSpawn / TestPoolSpawn -----

fn subclass_just_create(pool: bool) {
    hub::time::pause();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Rc::new(Cell::new(0));
    let s = served.clone();
    let server = Server::new(listener, move |c, p| {
        s.set(s.get() + 1);
        simple_handle(c, p)
    });
    let server = if pool {
        server.max_connections(2)
    } else {
        server
    };
    assert_not_accepted(addr);
    drop(server);
    assert_eq!(served.get(), 0, "a server never started serves nothing");
    assert_connection_refused(addr);
    hub::time::resume();
}

#[test]
fn test_subclass_just_create() {
    subclass_just_create(false);
}

#[test]
fn test_pool_spawn_subclass_just_create() {
    subclass_just_create(true);
}

/// `_test_server_start_stop(restartable=True)` on a server made from a
/// listener: `stop_accepting` stops the server on a clone of the listener,
/// `start_accepting` starts a new one on another clone.
fn subclass_with_socket(pool: bool) {
    hub::time::pause();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let make = |l: &TcpListener| {
        let s = Server::new(l.try_clone().unwrap(), simple_handle);
        if pool {
            s.max_connections(2)
        } else {
            s
        }
    };
    let server = make(&listener);
    // Listening, but nobody accepts before start.
    assert_not_accepted(addr);
    let handle = start_server(server);
    // stop_accepting
    handle.stop(HOUR);
    assert!(handle.is_stopped());
    assert_not_accepted(addr);
    // start_accepting
    let handle = make(&listener).start();
    assert_request_succeeded(addr);
    drop(listener); // the last descriptor of the listening socket goes too
    stop_server(&handle);
    hub::time::resume();
}

#[test]
fn test_subclass_with_socket() {
    subclass_with_socket(false);
}

#[test]
fn test_pool_spawn_subclass_with_socket() {
    subclass_with_socket(true);
}

/// `_test_server_start_stop(restartable=True)` on a server bound to an
/// address: after the stop the address is free again, and a server bound
/// to it anew serves (gevent's restart of the same server).
fn subclass_with_address(pool: bool) {
    hub::time::pause();
    let server = simple_server("127.0.0.1:0", pool);
    let addr = server.local_addr().unwrap();
    // gevent: refused, since it binds at start; here bind listens at once.
    assert_not_accepted(addr);
    let handle = start_server(server);
    stop_server(&handle);
    // Serving after a restart, on the same address.
    let handle = start_server(simple_server(&addr.to_string(), pool));
    assert_eq!(handle.local_addr(), addr);
    stop_server(&handle);
    hub::time::resume();
}

#[test]
fn test_subclass_with_address() {
    subclass_with_address(false);
}

#[test]
fn test_pool_spawn_subclass_with_address() {
    subclass_with_address(true);
}

/// `serve_forever` on a server not started: it starts it and waits until
/// it is stopped.
fn serve_forever(pool: bool) {
    let server = simple_server("127.0.0.1:0", pool);
    let addr = server.local_addr().unwrap();
    let cell: Rc<OnceCell<ServerHandle>> = Rc::default();
    let c = cell.clone();
    let g = hub::spawn(move || {
        let handle = c.get_or_init(|| server.start());
        handle.wait();
    });
    hub::yield_now(); // serve_forever starts the server
    let handle = cell.get().expect("started by serve_forever").clone();
    assert_request_succeeded(addr);
    handle.stop(HOUR);
    assert!(handle.is_stopped());
    assert_connection_refused(addr);
    // gevent kills it; here serve_forever returned once the server stopped.
    g.join().unwrap();
    handle.stop(HOUR); // a second stop does nothing
}

#[test]
fn test_serve_forever() {
    serve_forever(false);
}

#[test]
fn test_pool_spawn_serve_forever() {
    serve_forever(true);
}

#[test]
fn test_pool_spawn_serve_forever_after_start() {
    let handle = simple_server("127.0.0.1:0", true).start();
    assert!(!handle.is_stopping());
    let h2 = handle.clone();
    let stopper = hub::spawn(move || {
        assert_request_succeeded(h2.local_addr());
        h2.stop(HOUR);
    });
    handle.wait();
    assert!(handle.is_stopped());
    stopper.join().unwrap();
    assert_connection_refused(handle.local_addr());
}

#[test]
fn test_pool_spawn_server_closes_client_sockets() {
    let handle = Server::bind("127.0.0.1:0", |_conn, _| {})
        .unwrap()
        .max_connections(2)
        .start();
    for _ in 0..3 {
        // More connections than the pool holds, each served and closed.
        match request(handle.local_addr(), "/", SOCKET_TIMEOUT) {
            Ok(rest) => assert!(rest.is_empty()),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
        }
    }
    stop_server(&handle);
}

/// gevent's `test_pool_full` as it goes: a `/short` and a `/long` request
/// fill the pool of 2; further requests time out unserved; once the
/// clients close, the server serves again.
#[test]
fn test_pool_full_until_the_clients_close() {
    hub::time::pause();
    let handle = simple_server("127.0.0.1:0", true).start();
    let addr = handle.local_addr();
    {
        let long_request = makefile(addr, SOCKET_TIMEOUT);
        let short_request = makefile(addr, SOCKET_TIMEOUT);
        send_request(&short_request, "/short");
        send_request(&long_request, "/long");
        let mut hello = [0u8; 5];
        (&short_request).read_exact(&mut hello).unwrap();
        (&long_request).read_exact(&mut hello).unwrap();
        assert_eq!(&hello, b"hello");
        assert_eq!(handle.connections(), 2);
        assert_pool_full(addr);
        assert_pool_full(addr);
        assert_pool_full(addr);
        assert_eq!(handle.connections(), 2);
    }
    // Both clients closed: their handlers end, and the three timed-out
    // connections (closed by their clients) and this one are served in
    // turn.
    assert_request_succeeded(addr);
    stop_server(&handle);
    hub::time::resume();
}

/// The file's closing note, "error in spawned handler: non-fatal": a
/// handler that panics ends its connection only; the server goes on
/// serving, and a pool's slot is given back.
fn error_in_handler(pool: bool) {
    let unwound = Rc::new(Cell::new(0));
    let u = unwound.clone();
    let server = Server::bind("127.0.0.1:0", move |c, p| {
        let _count = Unwound(u.clone());
        simple_handle(c, p)
    })
    .unwrap();
    let server = if pool {
        server.max_connections(2)
    } else {
        server
    };
    let handle = server.start();
    let addr = handle.local_addr();
    for _ in 0..3 {
        match request(addr, "/panic", SOCKET_TIMEOUT) {
            Ok(rest) => assert!(rest.is_empty(), "{rest:?}"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
        }
    }
    assert_request_succeeded(addr);
    assert_eq!(unwound.get(), 3);
    assert_eq!(handle.connections(), 0);
    assert_eq!(handle.accept_errors(), 0);
    assert!(!handle.is_stopping());
    stop_server(&handle);
}

#[test]
fn test_error_in_handler_is_not_fatal() {
    error_in_handler(false);
}

#[test]
fn test_pool_spawn_error_in_handler_is_not_fatal() {
    error_in_handler(true);
}

/// Yields until `done` holds (a hang guard bounds the rounds; no sleep).
fn yield_until(mut done: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if done() {
            return;
        }
        hub::yield_now();
    }
    panic!("never came to pass");
}

/// A client that connects and closes at once (gevent's handler then reads
/// no request line and returns): served as an empty request; the server
/// goes on. Also with a reset (linger 0) instead of a clean close.
#[test]
fn test_client_connects_and_closes_at_once() {
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    let handle = Server::bind("127.0.0.1:0", move |c, p| {
        s.set(s.get() + 1);
        simple_handle(c, p)
    })
    .unwrap()
    .max_connections(2)
    .start();
    let addr = handle.local_addr();
    for _ in 0..3 {
        drop(TcpStream::connect(addr).unwrap());
    }
    for _ in 0..3 {
        let c = std::net::TcpStream::connect(addr).unwrap();
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid fd and a `linger` that lives for the call.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&c),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        drop(c); // sends a reset
    }
    // Every one of them is either served (and ends at once) or counted as
    // a failed accept; none holds a slot.
    yield_until(|| seen.get() as u64 + handle.accept_errors() == 6 && handle.connections() == 0);
    assert_request_succeeded(addr);
    assert_eq!(seen.get() as u64 + handle.accept_errors(), 7);
    stop_server(&handle);
}

// ----- stop(timeout): gevent's BaseServer.stop(timeout) -----

/// A handler that reads a request, takes `work` of hub time, then answers
/// `done`; the events say it has read the request; the count of handlers
/// unwound.
fn slow_server(work: Duration) -> (ServerHandle, Event, Rc<Cell<u32>>) {
    let inside = Event::new();
    let killed = Rc::new(Cell::new(0));
    let (i, k) = (inside.clone(), killed.clone());
    let handle = Server::bind("127.0.0.1:0", move |conn: TcpStream, _| {
        let _count = Unwound(k.clone());
        let mut b = [0u8; 4];
        (&conn).read_exact(&mut b).unwrap();
        i.set();
        hub::sleep(work);
        (&conn).write_all(b"done").unwrap();
    })
    .unwrap()
    .start();
    (handle, inside, killed)
}

/// `stop(timeout)` with a grace longer than the slow handler's work: the
/// handler finishes and answers; new connections are refused meanwhile;
/// the stop returns as the handler ends, not at the end of the grace.
#[test]
fn test_stop_timeout_lets_a_slow_handler_finish() {
    hub::time::pause();
    let (handle, inside, killed) = slow_server(Duration::from_secs(5));
    let addr = handle.local_addr();
    let client = TcpStream::connect(addr).unwrap();
    (&client).write_all(b"slow").unwrap();
    inside.wait();
    let start = hub::time::now();
    let h = handle.clone();
    let stop = hub::spawn(move || h.stop(Duration::from_secs(10)));
    hub::yield_now(); // the stop begins: the listener closes
    assert!(handle.is_stopping() && !handle.is_stopped());
    assert_connection_refused(addr);
    let mut reply = Vec::new();
    (&client).read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"done");
    stop.join().unwrap();
    assert!(handle.is_stopped());
    assert_eq!(killed.get(), 0);
    assert_eq!(hub::time::now() - start, Duration::from_secs(5));
    hub::time::resume();
}

/// `stop(timeout)` with a grace shorter than the handler's work: the
/// handler is killed at the end of the grace, its client sees the end
/// with no answer.
#[test]
fn test_stop_timeout_kills_a_handler_that_outlives_it() {
    hub::time::pause();
    let (handle, inside, killed) = slow_server(HOUR);
    let client = TcpStream::connect(handle.local_addr()).unwrap();
    (&client).write_all(b"slow").unwrap();
    inside.wait();
    let start = hub::time::now();
    handle.stop(Duration::from_secs(10));
    assert!(handle.is_stopped());
    assert_eq!(hub::time::now() - start, Duration::from_secs(10));
    assert_eq!(killed.get(), 1);
    assert_eq!(handle.connections(), 0);
    let mut reply = Vec::new();
    (&client).read_to_end(&mut reply).unwrap();
    assert!(reply.is_empty(), "{reply:?}");
    hub::time::resume();
}

/// A stop with no grace kills the handler at once.
#[test]
fn test_stop_timeout_zero_kills_at_once() {
    hub::time::pause();
    let (handle, inside, killed) = slow_server(Duration::from_secs(1));
    let client = TcpStream::connect(handle.local_addr()).unwrap();
    (&client).write_all(b"slow").unwrap();
    inside.wait();
    let start = hub::time::now();
    handle.stop(Duration::ZERO);
    assert_eq!(hub::time::now(), start);
    assert_eq!(killed.get(), 1);
    let mut reply = Vec::new();
    (&client).read_to_end(&mut reply).unwrap();
    assert!(reply.is_empty(), "{reply:?}");
    hub::time::resume();
}

// ----- stop before start -----

/// gevent's `stop()` on a server never started: here a `Server` never
/// started is dropped, which closes its listener; its handler never ran.
#[test]
fn test_stop_before_start() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let server = Server::bind("127.0.0.1:0", move |_c, _| r.set(true)).unwrap();
    let addr = server.local_addr().unwrap();
    drop(server);
    assert_connection_refused(addr);
    assert!(!ran.get());
}

/// `stop` right after `start`, before the acceptor has ever run: the
/// connection waiting in the backlog is reset unserved (as the `stop`
/// rustdoc says), the handler never runs, and the stop completes.
#[test]
fn test_stop_right_after_start() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let server = Server::bind("127.0.0.1:0", move |_c, _| r.set(true)).unwrap();
    let addr = server.local_addr().unwrap();
    let waiting = std::net::TcpStream::connect(addr).unwrap(); // in the backlog
    let handle = server.start();
    handle.stop(HOUR);
    assert!(handle.is_stopped());
    assert!(!ran.get(), "the handler never ran");
    assert_eq!(handle.connections(), 0);
    let mut rest = Vec::new();
    let err = (&waiting).read_to_end(&mut rest).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert_connection_refused(addr);
    handle.wait();
}

// ----- test__example_portforwarder.py -----

/// Copies `source` to `dest` until the end or an error, then closes both
/// (the example's `forward`).
fn forward(source: TcpStream, dest: TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match (&source).read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if (&dest).write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    source.close();
    dest.close();
}

/// The example's `PortForwarder`: each connection is forwarded to `dest`
/// by two copying greenlets, which the handler joins.
fn port_forwarder(dest: SocketAddr, unwound: Rc<Cell<u32>>) -> Server {
    Server::bind("127.0.0.1:0", move |source: TcpStream, _| {
        let _count = Unwound(unwound.clone());
        let Ok(dest) = TcpStream::connect(dest) else {
            return;
        };
        let (s2, d2) = (source.try_clone().unwrap(), dest.try_clone().unwrap());
        let forwarders = [
            hub::spawn(move || forward(source, dest)),
            hub::spawn(move || forward(d2, s2)),
        ];
        for f in forwarders {
            f.join().unwrap();
        }
    })
    .unwrap()
}

/// The example's test: a client sends `msg1` through the forwarder, the
/// forwarder is told to stop (its signal handler closes the listener;
/// here a `Stopper` from another thread, with a grace longer than the
/// test), the client sends `msg2` on its open connection and closes it;
/// the forwarder finishes once that last connection is done, and the
/// destination got both messages.
#[test]
fn test_example_portforwarder() {
    hub::time::pause();
    let log: Queue<Option<Vec<u8>>> = Queue::new();
    let l = log.clone();
    let dest = Server::bind("127.0.0.1:0", move |conn: TcpStream, _| {
        let mut buf = [0u8; 1024];
        loop {
            match (&conn).read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => l.put(Some(buf[..n].to_vec())),
            }
        }
        l.put(None);
    })
    .unwrap()
    .start();
    let unwound = Rc::new(Cell::new(0));
    let fwd = port_forwarder(dest.local_addr(), unwound.clone()).start();
    let faddr = fwd.local_addr();

    let conn = TcpStream::connect(faddr).unwrap();
    (&conn).write_all(b"msg1").unwrap();
    let mut got = vec![log.get().expect("msg1 before the end")];
    assert_eq!(got, [b"msg1".to_vec()]);

    let start = hub::time::now();
    let stopper = fwd.stopper();
    let signal = std::thread::spawn(move || stopper.stop(HOUR));
    assert!(signal.join().unwrap());
    // The "signal" is handled: the stop begins.
    let ready = hub::wait_any(&[&fwd as &dyn Waitable], None);
    assert_eq!(ready, Some(0));
    assert!(fwd.is_stopping());
    assert_connection_refused(faddr);

    (&conn).write_all(b"msg2").unwrap();
    drop(conn);
    fwd.wait();
    assert!(fwd.is_stopped());
    assert_eq!(unwound.get(), 0, "the open connection was not cut");
    assert_eq!(hub::time::now(), start, "no grace sat out");

    while let Some(m) = log.get() {
        got.push(m);
    }
    assert_eq!(got, [b"msg1".to_vec(), b"msg2".to_vec()]);
    dest.stop(Duration::ZERO);
    hub::time::resume();
}

// ----- further edges of the scenarios above -----

/// `stop_accepting` / `start_accepting` keep the listening socket: a
/// client that connects while nobody accepts waits in the backlog and is
/// served by the server started next (gevent's restartable server).
#[test]
fn test_start_accepting_serves_the_connection_waiting_in_the_backlog() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let first = Server::new(listener.try_clone().unwrap(), simple_handle).start();
    assert_request_succeeded(addr);
    first.stop(HOUR); // stop_accepting
    let waiting = makefile(addr, SOCKET_TIMEOUT);
    send_request(&waiting, "/ping");
    let second = Server::new(listener.try_clone().unwrap(), simple_handle).start(); // start_accepting
    let mut reply = Vec::new();
    (&waiting).read_to_end(&mut reply).unwrap();
    assert!(reply.ends_with(b"\r\n\r\nPONG"), "{reply:?}");
    drop(listener);
    stop_server(&second);
}

/// A stop while the pool is full: the connection the acceptor left in the
/// backlog is reset unserved (the `stop` rustdoc), the running handlers
/// get their grace and finish, nothing is served after the stop.
#[test]
fn test_pool_spawn_stop_while_the_pool_is_full() {
    hub::time::pause();
    let served = Rc::new(Cell::new(0));
    let s = served.clone();
    let handle = Server::bind("127.0.0.1:0", move |c, p| {
        s.set(s.get() + 1);
        simple_handle(c, p)
    })
    .unwrap()
    .max_connections(2)
    .start();
    let addr = handle.local_addr();
    let long1 = makefile(addr, SOCKET_TIMEOUT);
    let long2 = makefile(addr, SOCKET_TIMEOUT);
    send_request(&long1, "/long");
    send_request(&long2, "/long");
    let mut hello = [0u8; 5];
    (&long1).read_exact(&mut hello).unwrap();
    (&long2).read_exact(&mut hello).unwrap();
    let third = std::net::TcpStream::connect(addr).unwrap(); // in the backlog
    let h = handle.clone();
    let start = hub::time::now();
    let stop = hub::spawn(move || h.stop(Duration::from_secs(10)));
    hub::yield_now(); // the stop begins
    assert!(handle.is_stopping());
    drop((long1, long2)); // the handlers end within the grace
    stop.join().unwrap();
    assert!(handle.is_stopped());
    assert_eq!(hub::time::now(), start, "no grace sat out");
    assert_eq!(served.get(), 2, "the third was never served");
    let mut rest = Vec::new();
    let err = (&third).read_to_end(&mut rest).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert_connection_refused(addr);
    hub::time::resume();
}

/// A handler that panics during the grace ends the stop as well as one
/// that returns: the stop returns at the panic, not at the end of the
/// grace.
#[test]
fn test_stop_timeout_ends_when_the_last_handler_panics() {
    hub::time::pause();
    let inside = Event::new();
    let i = inside.clone();
    let handle = Server::bind("127.0.0.1:0", move |_c: TcpStream, _| {
        i.set();
        hub::sleep(Duration::from_secs(3));
        panic!("expected: the handler fails during the grace");
    })
    .unwrap()
    .start();
    let client = TcpStream::connect(handle.local_addr()).unwrap();
    inside.wait();
    let start = hub::time::now();
    handle.stop(HOUR);
    assert!(handle.is_stopped());
    assert_eq!(hub::time::now() - start, Duration::from_secs(3));
    assert_eq!(handle.connections(), 0);
    let mut rest = Vec::new();
    assert_eq!((&client).read_to_end(&mut rest).unwrap(), 0);
    hub::time::resume();
}

/// A server started on a listener already closed: every accept fails
/// (counted, paced as `accept_errors`' rustdoc says); the server still
/// stops at once.
#[test]
fn test_server_on_a_closed_listener_counts_errors_and_still_stops() {
    hub::time::pause();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.close();
    let handle = Server::new(listener, simple_handle).start();
    hub::sleep(Duration::from_secs(1));
    // Failures at 0, 1, 3, 7, ..., 255, 505 and 755 ms (pauses of 1 ms
    // doubling up to 250 ms): eleven in the first second, no spin.
    assert_eq!(handle.accept_errors(), 11);
    let start = hub::time::now();
    handle.stop(HOUR);
    assert!(handle.is_stopped());
    assert_eq!(hub::time::now(), start);
    hub::time::resume();
}

/// The example's `close` on a second signal ("Multiple exit signals
/// received - aborting"): a second stop with no grace cuts the open
/// connection. The forwarder's handler kills its copying greenlets as it
/// unwinds (they are not members of the server), so the client sees the
/// end.
#[test]
fn test_example_portforwarder_second_signal_cuts_the_connection() {
    hub::time::pause();
    struct KillAll(Vec<hub::JoinHandle<()>>);
    impl Drop for KillAll {
        fn drop(&mut self) {
            for g in self.0.drain(..) {
                g.kill();
            }
        }
    }
    let dest = Server::bind("127.0.0.1:0", simple_handle).unwrap().start();
    let daddr = dest.local_addr();
    let unwound = Rc::new(Cell::new(0));
    let u = unwound.clone();
    let fwd = Server::bind("127.0.0.1:0", move |source: TcpStream, _| {
        let _count = Unwound(u.clone());
        let dest = TcpStream::connect(daddr).unwrap();
        let (s2, d2) = (source.try_clone().unwrap(), dest.try_clone().unwrap());
        let mut children = KillAll(vec![
            hub::spawn(move || forward(source, dest)),
            hub::spawn(move || forward(d2, s2)),
        ]);
        for g in &children.0 {
            g.wait();
        }
        children.0.clear();
    })
    .unwrap()
    .start();
    let conn = makefile(fwd.local_addr(), SOCKET_TIMEOUT);
    send_request(&conn, "/long");
    let mut hello = [0u8; 5];
    (&conn).read_exact(&mut hello).unwrap();
    assert_eq!(&hello, b"hello");
    let start = hub::time::now();
    let stopper = fwd.stopper();
    assert!(stopper.stop(HOUR)); // first signal: graceful
    assert!(stopper.stop(Duration::ZERO)); // second: cut
    fwd.wait();
    assert_eq!(hub::time::now(), start);
    assert_eq!(unwound.get(), 1, "the handler was killed");
    let mut rest = Vec::new();
    assert_eq!((&conn).read_to_end(&mut rest).unwrap(), 0);
    assert!(rest.is_empty());
    // The destination's handler sees its client gone and ends.
    dest.stop(HOUR);
    assert_eq!(hub::time::now(), start);
    hub::time::resume();
}

/// The example's `handle` when the destination cannot be reached: the
/// handler returns, the client's connection is closed, the forwarder goes
/// on serving.
#[test]
fn test_example_portforwarder_destination_refused() {
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_addr = gone.local_addr().unwrap();
    drop(gone);
    let unwound = Rc::new(Cell::new(0));
    let fwd = port_forwarder(gone_addr, unwound.clone()).start();
    for _ in 0..2 {
        let conn = makefile(fwd.local_addr(), SOCKET_TIMEOUT);
        let _ = (&conn).write_all(b"msg1");
        let mut rest = Vec::new();
        match (&conn).read_to_end(&mut rest) {
            Ok(n) => assert_eq!(n, 0),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        }
    }
    assert_eq!(unwound.get(), 0);
    assert!(!fwd.is_stopping());
    stop_server(&fwd);
}

/// The `Stopper` of a server whose thread has exited says so (its rustdoc:
/// `false` when the server has stopped or its thread has exited).
#[test]
fn test_stopper_after_the_servers_thread_exited() {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        // `run_main` kills the server's greenlets before the thread ends
        // (its exit would leave them suspended, the listener with them:
        // see the crate's **Threads** rule).
        hub::run_main(move || {
            let handle = Server::bind("127.0.0.1:0", simple_handle).unwrap().start();
            tx.send((handle.stopper(), handle.local_addr())).unwrap();
            assert_request_succeeded(handle.local_addr());
            // The work ends with the server running and its handles dropped.
        });
    });
    let (stopper, addr) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    t.join().unwrap();
    assert!(!stopper.stop(HOUR), "nobody is left to stop it");
    // The server was killed at the end of `run_main` and the thread's hub
    // torn down with the thread: nothing listens any more.
    let err = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

/// Killing the greenlet that waits on the server (gevent's `g.kill()` of
/// `serve_forever`) leaves the server running here: a `ServerHandle`'s
/// `wait` only waits (dropping or interrupting handles stops nothing, as
/// its rustdoc says); where gevent's `serve_forever` stops the server on
/// its way out.
#[test]
fn test_serve_forever_killed_leaves_the_server_serving() {
    let handle = simple_server("127.0.0.1:0", false).start();
    let h = handle.clone();
    let g = hub::spawn(move || h.wait());
    hub::yield_now();
    g.kill();
    assert!(g.is_finished());
    assert!(!handle.is_stopping());
    assert_request_succeeded(handle.local_addr());
    stop_server(&handle);
}

/// A `Stopper` made before the server is stopped through its handle: once
/// stopped, the stopper says nobody hears it, as does one made afterwards.
#[test]
fn test_stopper_made_before_a_stop_by_the_handle() {
    let handle = simple_server("127.0.0.1:0", true).start();
    let before = handle.stopper();
    assert_request_succeeded(handle.local_addr());
    stop_server(&handle);
    assert!(!before.stop(HOUR));
    assert!(!handle.stopper().stop(HOUR));
}

/// A handler of a pool of one (the pool is full while it runs: the
/// acceptor waits for a slot) stops its own server: the stop, run in a
/// greenlet of its own, lets it finish and completes.
#[test]
fn test_pool_of_one_handler_stops_its_own_server() {
    hub::time::pause();
    let me: Rc<OnceCell<ServerHandle>> = Rc::default();
    let m = me.clone();
    let handle = Server::bind("127.0.0.1:0", move |c, p| {
        let server = m.get().unwrap();
        server.stop(Duration::from_secs(60));
        hub::sleep(Duration::from_secs(2)); // within the grace
        simple_handle(c, p);
    })
    .unwrap()
    .max_connections(1)
    .start();
    me.set(handle.clone()).ok();
    let start = hub::time::now();
    let reply = request(handle.local_addr(), "/ping", SOCKET_TIMEOUT * 10).unwrap();
    assert!(reply.ends_with(b"PONG"), "{reply:?}");
    handle.wait();
    assert!(handle.is_stopped());
    assert_eq!(hub::time::now() - start, Duration::from_secs(2));
    assert_connection_refused(handle.local_addr());
    hub::time::resume();
}

/// `stop(Duration::MAX)` (gevent's `stop(timeout=None)`: wait as long as
/// it takes) waits for the handler however long it runs, with no kill.
#[test]
fn test_stop_timeout_none_waits_for_the_handler() {
    hub::time::pause();
    let (handle, inside, killed) = slow_server(Duration::from_secs(86_400));
    let client = TcpStream::connect(handle.local_addr()).unwrap();
    (&client).write_all(b"slow").unwrap();
    inside.wait();
    let start = hub::time::now();
    handle.stop(Duration::MAX);
    assert_eq!(hub::time::now() - start, Duration::from_secs(86_400));
    assert_eq!(killed.get(), 0);
    let mut reply = Vec::new();
    (&client).read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"done");
    hub::time::resume();
}

/// `stop_accepting` while a connection waits in the backlog (a pool of
/// one, full): the listening socket stays open through the kept clone, so
/// the connection is not reset; the server started next serves it.
#[test]
fn test_pool_spawn_restart_keeps_the_backlog() {
    hub::time::pause();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let first = Server::new(listener.try_clone().unwrap(), simple_handle)
        .max_connections(1)
        .start();
    let long = makefile(addr, SOCKET_TIMEOUT);
    send_request(&long, "/long");
    let mut hello = [0u8; 5];
    (&long).read_exact(&mut hello).unwrap();
    let waiting = makefile(addr, SOCKET_TIMEOUT * 10);
    send_request(&waiting, "/ping");
    assert_eq!(first.connections(), 1);
    first.stop(Duration::ZERO); // the /long handler is killed
    assert!(first.is_stopped());
    let mut rest = Vec::new();
    assert_eq!((&long).read_to_end(&mut rest).unwrap(), 0);
    let second = Server::new(listener.try_clone().unwrap(), simple_handle)
        .max_connections(1)
        .start();
    let mut reply = Vec::new();
    (&waiting).read_to_end(&mut reply).unwrap();
    assert!(reply.ends_with(b"\r\n\r\nPONG"), "{reply:?}");
    drop(listener);
    stop_server(&second);
    hub::time::resume();
}

/// Counts its drops.
struct Dropped(Rc<Cell<u32>>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// The handler (and what it holds) is dropped once the server stops, or
/// with a server never started; handles kept after the stop do not keep
/// it (no leak across `stop`, with or without a pool, after a handler
/// panic or a kill).
#[test]
fn test_stop_drops_the_handler() {
    hub::time::pause();
    let drops = Rc::new(Cell::new(0));
    let held = Dropped(drops.clone());
    let server = Server::bind("127.0.0.1:0", move |c, p| {
        let _ = &held;
        simple_handle(c, p)
    })
    .unwrap();
    drop(server);
    assert_eq!(drops.get(), 1, "never started");
    for pool in [false, true] {
        let drops = Rc::new(Cell::new(0));
        let held = Dropped(drops.clone());
        let server = Server::bind("127.0.0.1:0", move |c, p| {
            let _ = &held;
            simple_handle(c, p)
        })
        .unwrap();
        let handle = if pool {
            server.max_connections(2)
        } else {
            server
        }
        .start();
        let addr = handle.local_addr();
        assert_request_succeeded(addr);
        let _ = request(addr, "/panic", SOCKET_TIMEOUT);
        let long = makefile(addr, SOCKET_TIMEOUT);
        send_request(&long, "/long");
        (&long).read_exact(&mut [0u8; 5]).unwrap();
        assert_eq!(drops.get(), 0);
        handle.stop(Duration::from_secs(1)); // kills the /long handler
        assert_eq!(drops.get(), 1, "pool: {pool}");
        assert!(handle.is_stopped());
    }
    hub::time::resume();
}
