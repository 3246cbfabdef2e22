//! Scenarios ported from gevent's (26.x) `src/gevent/tests/`
//! `test__socket_errors.py`, `test__socket_ex.py`, `test__socket_timeout.py`,
//! `test__socketpair.py`, `test__socket_send_memoryview.py`,
//! `test__makefile_ref.py` (`TestSocket`), `test__socket_dns.py` (what maps
//! to `net::lookup_host` and to the names the sockets take, on loopback
//! names and numeric addresses), and the example tests
//! `test__example_echoserver.py`, `test__example_udp_server.py`,
//! `test__example_udp_client.py` and `test__example_webproxy.py` (with
//! gevent's `examples/echoserver.py`, `udp_server.py`, `udp_client.py`,
//! `webproxy.py` as greenlets of the test). Each test is named after the
//! one it ports; a suffix marks a variant of the same scenario.
//!
//! How gevent's API maps here:
//! - `socket.socket()` / `create_connection` / `accept` -> `net::TcpStream`
//!   / `TcpStream::connect` / `TcpListener::accept`; `socketpair()` ->
//!   `UnixStream::pair`; `SOCK_DGRAM` -> `net::UdpSocket`; `settimeout` ->
//!   `set_read_timeout` / `set_write_timeout`, `socket.timeout` -> an
//!   `io::Error` of kind `TimedOut` (text "... timed out").
//! - `makefile()` and `socket.fromfd()` -> `try_clone()` (a duplicated
//!   descriptor, registered on its own), wrapped in a `BufReader` where a
//!   file reads lines. gevent's `close()` of a socket leaves its files
//!   working; here a stream's `close()` shuts the connection down both
//!   ways, so its clones see the end too (documented), and the ports
//!   *drop* the original where gevent closes it; the crate's way has tests
//!   of its own (`test_fromfd_close_shuts_down_the_clone_too`,
//!   `test_server_makefile1_close*`). A listener's or a UDP socket's
//!   `close()` affects that handle only (`test_makefile1_close`,
//!   `test_makefile2_*`).
//! - `close()`: later I/O fails with `ConnectionAborted` (gevent: `EBADF`),
//!   and the descriptor is kept until the value drops (documented), so
//!   gevent's "fd closed" checks come after the drop. gevent asks psutil
//!   which descriptors are open; here a descriptor is known by its
//!   socket's inode (`fstat`), as tests of one binary share the fd table
//!   and a closed number can be taken again at once.
//! - `gevent.socket.getaddrinfo` compared with the system's ->
//!   `net::lookup_host` (and the crate's own `ToSocketAddrs`, through
//!   `send_to` and `connect`) compared with std's blocking
//!   `ToSocketAddrs`, run on a thread of its own.
//! - `StreamServer(addr, handle)` / `DatagramServer(addr, handle)` ->
//!   `net::Server::bind` / `net::DatagramServer::bind` then `start`;
//!   `DatagramServer.socket.sendto` in a handler -> `ReplySocket::send_to`;
//!   `server.close()` -> `ServerHandle::stop`. The examples' clients are
//!   greenlets of the test (one is a blocking std socket on the
//!   `spawn_blocking` pool, as gevent runs the example in a process).
//! - `switch_expected = False` -> a probe greenlet that must not have run
//!   across the call.
//! - Tests involving time run on the paused hub clock (`time::pause()`), so
//!   timeouts are exact and virtual; except `test_returns_none_after_timeout`
//!   (a timeout interrupting an endless loop of lookups), which runs on
//!   the real clock, asserting only that it ends: on the paused clock a
//!   lookup in flight holds the clock (documented;
//!   `test_returns_none_after_timeout_paused_clock`).
//!
//! Every test body runs on a thread of its own under a hang guard.
//!
//! A timeout set on a socket after `try_clone` reaches the clone, as
//! std's clones (socket options) and gevent's files (the socket's timeout)
//! see it (`test_timeout_set_after_makefile`; this port found the clone
//! kept a copy made at the clone).
//!
//! Already ported elsewhere (not repeated): refusal by a `connect_timeout`
//! (`gevent_socket.rs::test_refuses`) and connecting to "localhost"
//! (`gevent_socket.rs::test_create_connection_localhost`,
//! `net_lookup.rs::localhost_resolves_and_connects`); numeric addresses
//! read on the spot without the pool, binding and sending by name
//! (`net_resolve.rs`); a lookup killed or slow (`net_lookup.rs`); a
//! connected UDP socket's refusal (`gevent_socket.rs::test_refuses_udp`);
//! the file of a dropped socket closing the connection
//! (`gevent_socket.rs::test_del_closes_socket`); the port forwarder
//! example (`gevent_server_more.rs`).
//!
//! Not ported (no counterpart here):
//! - `test__socket_ex.py` `TestRef` (`sock.ref = False`): sockets have no
//!   ref flag; a daemon greenlet's wait is the counterpart
//!   (`net_readiness.rs::a_daemons_socket_wait_does_not_keep_run_going`).
//! - `test__makefile_ref.py` `TestSSL`: no TLS in the crate.
//! - `test__socket_dns.py`: `gethostbyname`, `gethostbyname_ex`,
//!   `gethostbyaddr`, `getnameinfo` (`Test_getnameinfo_*`) and
//!   `AI_CANONNAME`: no reverse or canonical-name lookup here;
//!   `TestTypeError` (`None`, `25` as a host) and ports `None`, `-1`,
//!   `65536` given as numbers: refused at compile time by the types;
//!   `TestFamily`, `test1`-`test3`, `test_enums` (family/type/proto
//!   filters: `lookup_host` takes none); `TestGeventOrg`,
//!   `TestInternational`, `TestNonexistent`, `TestBadName`,
//!   `ip6-localhost` (not in this system's hosts file) and the
//!   `notexistent` names: they need a name server (gevent skips them
//!   without network); `TestBroadcast` (`'<broadcast>'` is Python's
//!   spelling); `TestHostname` (`gethostname`: resolving the machine's name
//!   may need a name server).
//! - `test__example_webproxy.py` `test_a_blocking_client` (skipped by
//!   gevent as not applicable); the WSGI layer itself (no WSGI here: the
//!   application speaks a minimal HTTP/1.0).

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, time, with_timeout};
use greenlet::net::{
    lookup_host, DatagramServer, ReplySocket, Server, TcpListener, TcpStream, UdpSocket, UnixStream,
};
use greenlet::WaitOn;

#[path = "support/hang_guard.rs"]
mod hang_guard;

const MS: Duration = Duration::from_millis(1);

/// Runs `body` on a thread of its own (with its own hub) under a generous
/// hang guard: a hang fails the test instead of the run.
fn no_hang<F: FnOnce() + Send + 'static>(body: F) {
    if let Err(e) = hang_guard::guard(30, body) {
        panic!("{e}");
    }
}

fn tcp_listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// A connected TCP pair: the client and the connection its listener
/// accepted (the kernel completes the handshake without a waiting accept).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let (listener, addr) = tcp_listener();
    let client = TcpStream::connect(addr).unwrap();
    let (conn, _) = listener.accept().unwrap();
    (client, conn)
}

/// A TCP port nothing listens on (gevent's `support.find_unused_port`).
fn unused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A UDP port nothing listens on.
fn unused_udp_addr() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

/// A greenlet that only records that it ran: while `ran()` stays false
/// the caller has not switched away (gevent's `switch_expected = False`).
struct SwitchProbe {
    ran: Rc<Cell<bool>>,
    handle: hub::JoinHandle<()>,
}

impl SwitchProbe {
    fn new() -> SwitchProbe {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let handle = hub::spawn(move || r.set(true));
        SwitchProbe { ran, handle }
    }

    fn ran(&self) -> bool {
        self.ran.get()
    }

    fn finish(self) {
        self.handle.join().unwrap();
        assert!(self.ran.get());
    }
}

// ----- test__socket_errors.py: TestSocketErrors -----

/// A connect to a port nobody listens on fails with `ConnectionRefused`,
/// and the error's text says "refused" (gevent checks the errno and the
/// message).
#[test]
fn test_connection_refused() {
    no_hang(|| {
        let port = unused_port();
        let err = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
        assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{err:?}");
        assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
    });
}

/// The same from a spawned greenlet while another one runs: the refusal
/// reaches the connecting greenlet only, the other one goes on.
#[test]
fn test_connection_refused_in_greenlet() {
    no_hang(|| {
        let port = unused_port();
        let ticks = Rc::new(Cell::new(0));
        let t = ticks.clone();
        let ticker = hub::spawn(move || {
            for _ in 0..3 {
                t.set(t.get() + 1);
                hub::yield_now();
            }
        });
        let connector = hub::spawn(move || {
            TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| e.kind())
        });
        assert_eq!(connector.join().unwrap(), Err(ErrorKind::ConnectionRefused));
        ticker.join().unwrap();
        assert_eq!(ticks.get(), 3);
    });
}

// ----- test__socket_ex.py: TestClosedSocket -----

/// A send (with a timeout) on a closed socket fails at once, without a
/// switch (`switch_expected = False`). gevent says `EBADF`; here `close()`
/// keeps the descriptor until the drop, and every later I/O call fails
/// with `ConnectionAborted` (documented).
#[test]
fn test_closed_socket() {
    no_hang(|| {
        let (client, _conn) = tcp_pair();
        client.close();
        client
            .set_write_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let probe = SwitchProbe::new();
        let err = (&client).write(b"a").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err:?}");
        let err = (&client).write_all(b"a").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err:?}");
        assert!(!probe.ran(), "a send on a closed socket switched");
        probe.finish();
    });
}

/// The same for a UDP socket (gevent's `socket.socket()` is unconnected;
/// a connected UDP socket is the closest here that can `send`).
#[test]
fn test_closed_socket_udp() {
    no_hang(|| {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.connect(unused_udp_addr()).unwrap();
        s.close();
        s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        let probe = SwitchProbe::new();
        assert_eq!(
            s.send(b"a").unwrap_err().kind(),
            ErrorKind::ConnectionAborted
        );
        assert_eq!(
            s.send_to(b"a", unused_udp_addr()).unwrap_err().kind(),
            ErrorKind::ConnectionAborted
        );
        assert!(!probe.ran(), "a send on a closed socket switched");
        probe.finish();
    });
}

// ----- test__socket_timeout.py: Test -----

/// A listener with a backlog of one and a greenlet accepting on it; a
/// client connects and reads with a 100 ms timeout: the read fails with
/// `TimedOut` after exactly 100 ms of hub time, with "timed out" in its
/// text (gevent: `socket.timeout('timed out')`). The acceptor is killed at
/// the end, as gevent's `tearDown` does, and the listener closed.
#[test]
fn test_timeout() {
    no_hang(|| {
        time::pause();
        let (listener, addr) = tcp_listener();
        let listener = Rc::new(listener);
        let accepted = Rc::new(RefCell::new(None));
        let acceptor = {
            let (listener, accepted) = (listener.clone(), accepted.clone());
            hub::spawn(move || {
                if let Ok((conn, _)) = listener.accept() {
                    *accepted.borrow_mut() = Some(conn);
                }
            })
        };
        hub::yield_now();
        let mut sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(100 * MS)).unwrap();
        let start = time::now();
        let err = sock.read(&mut [0u8; 1024]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err:?}");
        assert!(err.to_string().contains("timed out"), "{err}");
        assert_eq!(time::now() - start, 100 * MS);
        // gevent's `tearDown`: the acceptor is killed (it has most likely
        // accepted the connection meanwhile, while the client waited).
        acceptor.kill();
        assert!(matches!(
            acceptor.join(),
            Ok(()) | Err(hub::JoinError::Killed)
        ));
        listener.close();
        drop(accepted);
    });
}

/// The acceptor of gevent's `setUp` may still be in `accept` at the
/// teardown (no client came): the kill ends it, and the listener closes.
#[test]
fn test_timeout_teardown_kills_a_waiting_acceptor() {
    no_hang(|| {
        let (listener, _addr) = tcp_listener();
        let acceptor = hub::spawn(move || listener.accept().map(drop));
        hub::yield_now();
        acceptor.kill();
        assert!(matches!(acceptor.join(), Err(hub::JoinError::Killed)));
    });
}

/// std's reference for the next test: a timeout is a socket option of
/// the shared socket, so one set on a handle after `try_clone` holds for
/// the clone too (and gevent's file reads with its socket's timeout).
#[test]
fn test_timeout_set_after_makefile_std() {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let c = a.try_clone().unwrap();
    a.set_read_timeout(Some(100 * MS)).unwrap();
    assert_eq!(c.read_timeout().unwrap(), Some(100 * MS));
}

/// gevent's `f = sock.makefile(); sock.settimeout(0.1); f.read()` times
/// out after 0.1 s; std's clone sees a timeout set later too (above), and
/// so does the clone here (bounded by a 1 s `with_timeout` in case not).
#[test]
fn test_timeout_set_after_makefile() {
    no_hang(|| {
        time::pause();
        let (a, _b) = UnixStream::pair().unwrap();
        let c = a.try_clone().unwrap();
        a.set_read_timeout(Some(100 * MS)).unwrap();
        assert_eq!(
            c.read_timeout().unwrap(),
            Some(100 * MS),
            "the clone's timeout"
        );
        let start = time::now();
        let r = with_timeout(Duration::from_secs(1), || {
            (&c).read(&mut [0u8; 8]).map_err(|e| e.kind())
        });
        assert_eq!(r, Ok(Err(ErrorKind::TimedOut)));
        assert_eq!(time::now() - start, 100 * MS);
    });
}

// ----- test__socketpair.py: TestSocketpair -----

/// `socketpair()`: one end sends and closes, the other reads everything
/// through its "file" (a `BufReader`) to the end.
#[test]
fn test_makefile() {
    no_hang(|| {
        let msg = b"hello world";
        let (mut x, y) = UnixStream::pair().unwrap();
        x.write_all(msg).unwrap();
        x.close();
        let mut f = BufReader::new(&y);
        let mut read = Vec::new();
        f.read_to_end(&mut read).unwrap();
        assert_eq!(read, msg);
    });
}

/// `fromfd`: new handles on duplicated descriptors (`try_clone`) outlive
/// the originals. gevent closes the originals; here `close()` would shut
/// the connection down for the clones too (documented), so they are
/// dropped, which only releases their own descriptors.
#[test]
fn test_fromfd() {
    no_hang(|| {
        let msg = b"hello world";
        let (x, y) = UnixStream::pair().unwrap();
        let mut xx = x.try_clone().unwrap();
        assert_ne!(xx.as_raw_fd(), x.as_raw_fd());
        drop(x);
        let yy = y.try_clone().unwrap();
        drop(y);
        xx.write_all(msg).unwrap();
        drop(xx);
        let mut read = Vec::new();
        BufReader::new(&yy).read_to_end(&mut read).unwrap();
        assert_eq!(read, msg);
    });
}

/// `fromfd` through std: a descriptor duplicated by hand, wrapped by
/// `from_std`, works as the original did.
#[test]
fn test_fromfd_from_std() {
    no_hang(|| {
        let msg = b"hello world";
        let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut xx = UnixStream::from_std(x.try_clone().unwrap()).unwrap();
        drop(x);
        let yy = UnixStream::from_std(y.try_clone().unwrap()).unwrap();
        drop(y);
        // The reader waits first: the data and the end wake it.
        let reader = hub::spawn(move || {
            let mut read = Vec::new();
            BufReader::new(&yy).read_to_end(&mut read).unwrap();
            read
        });
        hub::yield_now();
        xx.write_all(msg).unwrap();
        drop(xx);
        assert_eq!(reader.join().unwrap(), msg);
    });
}

/// Where the crate differs: gevent's `x.close()` after `fromfd` leaves
/// `xx` working; here `close()` shuts the connection down both ways, so
/// the clone's send fails (`BrokenPipe`) and the peer reads the end.
#[test]
fn test_fromfd_close_shuts_down_the_clone_too() {
    no_hang(|| {
        let (x, y) = UnixStream::pair().unwrap();
        let mut xx = x.try_clone().unwrap();
        x.close();
        assert_eq!(xx.write(b"late").unwrap_err().kind(), ErrorKind::BrokenPipe);
        let mut read = Vec::new();
        BufReader::new(&y).read_to_end(&mut read).unwrap();
        assert_eq!(read, b"");
    });
}

// ----- test__socket_send_memoryview.py -----

/// gevent's `AnStructure` (a `ctypes.Structure` with one `c_int`).
#[repr(C)]
struct AnStructure {
    x: libc::c_int,
}

/// The bytes of a plain `#[repr(C)]` value: what a `memoryview` of a
/// ctypes structure gives.
fn struct_bytes(s: &AnStructure) -> &[u8] {
    // SAFETY: `AnStructure` is `repr(C)` with one `c_int` and no padding.
    unsafe {
        std::slice::from_raw_parts(
            (s as *const AnStructure).cast::<u8>(),
            std::mem::size_of::<AnStructure>(),
        )
    }
}

/// Sending a structure's bytes over a connected UDP socket,
/// with `sendall` and `send`, without and with a timeout; each send on a
/// fresh socket, as gevent's. UDP has no `Write` here: a datagram is sent
/// whole by one `send`, so `sendall` is `send` and gevent's `send` is also
/// tried as `send_to` the connected address.
#[test]
fn test_send() {
    no_hang(|| {
        let target = unused_udp_addr();
        let s = AnStructure { x: 0 };
        let bytes = struct_bytes(&s);
        assert_eq!(bytes.len(), 4);
        for by_address in [false, true] {
            for timeout in [None, Some(Duration::from_secs(1))] {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                sock.connect(target).unwrap();
                sock.set_write_timeout(timeout).unwrap();
                let sent = if by_address {
                    sock.send_to(bytes, target)
                } else {
                    sock.send(bytes)
                };
                assert_eq!(sent.unwrap(), bytes.len());
                sock.close();
            }
        }
    });
}

/// The structure's bytes arrive whole at a receiver that is there.
#[test]
fn test_send_received() {
    no_hang(|| {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(receiver.local_addr().unwrap()).unwrap();
        sock.set_write_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let s = AnStructure { x: 0x0102_0304 };
        assert_eq!(sock.send(struct_bytes(&s)).unwrap(), 4);
        let mut buf = [0u8; 16];
        let (n, from) = receiver.recv_from(&mut buf).unwrap();
        assert_eq!(from, sock.local_addr().unwrap());
        assert_eq!(&buf[..n], &0x0102_0304i32.to_ne_bytes());
    });
}

// ----- test__makefile_ref.py: TestSocket -----
//
// gevent checks with psutil which descriptors are open. Here a descriptor
// is known by its socket's inode (`fstat`): tests of this binary run on
// parallel threads sharing the fd table, so a closed number may be taken
// again at once by another socket, which has another inode.

/// The identity (device, inode) of what `fd` names, if it is open.
fn fd_identity(fd: RawFd) -> Option<(u64, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fstat` writes a `stat` into the buffer or fails.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: `fstat` succeeded, so the buffer is written.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ by target
    Some((st.st_dev as u64, st.st_ino as u64))
}

/// What `g` waits on, if it is blocked in a hub call.
fn waiting_on(g: &greenlet::Greenlet) -> Option<WaitOn> {
    greenlet::stats()
        .greenlets
        .into_iter()
        .find(|info| info.id == g.id())
        .and_then(|info| info.waiting_on)
}

/// A descriptor number and what it named when it was taken.
#[derive(Clone, Copy, Debug)]
struct Fd {
    fd: RawFd,
    id: (u64, u64),
}

impl Fd {
    fn of(s: &impl AsRawFd) -> Fd {
        let fd = s.as_raw_fd();
        Fd {
            fd,
            id: fd_identity(fd).expect("an open descriptor"),
        }
    }

    fn is_open(&self) -> bool {
        fd_identity(self.fd) == Some(self.id)
    }

    fn assert_open(&self) {
        assert!(self.is_open(), "{self:?} is not open");
    }

    fn assert_closed(&self) {
        assert!(!self.is_open(), "{self:?} is not closed");
    }
}

/// gevent's `make_open_socket`: a bound, listening socket.
fn make_open_socket() -> (TcpListener, SocketAddr, Fd) {
    let (s, addr) = tcp_listener();
    let fd = Fd::of(&s);
    (s, addr, fd)
}

/// Something listens at `addr`: a connection is accepted by `listener`.
fn assert_listening(listener: &TcpListener, addr: SocketAddr) {
    let client = TcpStream::connect(addr).unwrap();
    let (conn, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    drop((client, conn));
}

/// gevent's `assert_closed` of a closed listener: accepting fails
/// (gevent: `EBADF`; here `ConnectionAborted` after `close()`).
fn assert_accept_aborted(listener: &TcpListener) {
    let err = listener.accept().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err:?}");
}

/// `close()` of a listening socket: accepting fails at once; the
/// descriptor itself is kept until the drop (documented: its number
/// cannot go to another file meanwhile, and `local_addr` still answers
/// where gevent's `getsockname` says `EBADF`), then it is closed.
#[test]
fn test_simple_close() {
    no_hang(|| {
        let (s, addr, fd) = make_open_socket();
        fd.assert_open();
        s.close();
        assert_accept_aborted(&s);
        fd.assert_open();
        assert_eq!(s.local_addr().unwrap(), addr);
        drop(s);
        fd.assert_closed();
    });
}

/// A "file" (here a clone: a duplicated descriptor) of a listening socket
/// keeps the socket listening after the original goes: dropping the
/// original closes only its own descriptor; the clone's drop closes the
/// socket (connecting is then refused).
#[test]
fn test_makefile1() {
    no_hang(|| {
        let (s, addr, fileno) = make_open_socket();
        let f = s.try_clone().unwrap();
        let f_fd = Fd::of(&f);
        fileno.assert_open();
        f_fd.assert_open();
        drop(s);
        fileno.assert_closed();
        f_fd.assert_open();
        assert_listening(&f, addr);
        drop(f);
        f_fd.assert_closed();
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
    });
}

/// As `test_makefile1` with `close()` for gevent's `s.close()`: a
/// listener's close does not shut the socket down, so its clone still
/// accepts, also a clone already waiting in `accept` when the original
/// closes.
#[test]
fn test_makefile1_close() {
    no_hang(|| {
        let (s, addr, fileno) = make_open_socket();
        let f = s.try_clone().unwrap();
        let f_fd = Fd::of(&f);
        let waiting = hub::spawn(move || {
            let (conn, _) = f.accept().unwrap();
            drop(conn);
            f
        });
        hub::yield_now();
        s.close();
        assert_accept_aborted(&s);
        fileno.assert_open();
        let _client = TcpStream::connect(addr).unwrap();
        let f = waiting.join().unwrap();
        assert_listening(&f, addr);
        drop(s);
        fileno.assert_closed();
        f_fd.assert_open();
        drop(f);
        f_fd.assert_closed();
    });
}

/// Closing the "file" first leaves the socket open and listening; the
/// socket's own drop then closes it.
#[test]
fn test_makefile2() {
    no_hang(|| {
        let (s, addr, fileno) = make_open_socket();
        let f = s.try_clone().unwrap();
        let f_fd = Fd::of(&f);
        f.close();
        drop(f);
        f_fd.assert_closed();
        fileno.assert_open();
        assert_listening(&s, addr);
        drop(s);
        fileno.assert_closed();
    });
}

/// A listener with a backlog of one, a connector in another greenlet
/// (gevent's patched thread), the accepted socket: open until closed.
/// `close()` ends the connection (the connector reads the end) and every
/// later I/O call fails; the descriptor goes with the drop.
fn accepted_connection() -> (TcpStream, hub::JoinHandle<TcpStream>) {
    let (listener, addr) = tcp_listener();
    let connector = hub::spawn(move || TcpStream::connect(addr).unwrap());
    let (client_socket, _) = listener.accept().unwrap();
    (client_socket, connector)
}

/// Reads `r` to its end.
fn read_to_end(mut r: impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    got
}

#[test]
fn test_server_simple() {
    no_hang(|| {
        let (client_socket, connector) = accepted_connection();
        let fileno = Fd::of(&client_socket);
        fileno.assert_open();
        client_socket.close();
        let err = (&client_socket).read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err:?}");
        let connector = connector.join().unwrap();
        assert_eq!(read_to_end(&connector), b"");
        drop(client_socket);
        fileno.assert_closed();
    });
}

/// The accepted socket with a "file": dropping the socket leaves the
/// connection open through the file (it still writes, the connector
/// still waits for more); the file's drop ends it.
#[test]
fn test_server_makefile1() {
    no_hang(|| {
        let (client_socket, connector) = accepted_connection();
        let fileno = Fd::of(&client_socket);
        let mut f = client_socket.try_clone().unwrap();
        let f_fd = Fd::of(&f);
        fileno.assert_open();
        drop(client_socket);
        fileno.assert_closed();
        f_fd.assert_open();
        let connector = connector.join().unwrap();
        // The end has not come: the connection is open.
        let mut buf = [0u8; 8];
        assert_eq!(
            connector.try_peek(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        f.write_all(b"still here").unwrap();
        drop(f);
        f_fd.assert_closed();
        assert_eq!(read_to_end(&connector), b"still here");
    });
}

/// Where the crate differs: `close()` of the socket (gevent's
/// `client_socket.close()`, which leaves the file working) shuts the
/// connection down for the file too (documented): a greenlet reading
/// through the file wakes with the end, its writes fail.
#[test]
fn test_server_makefile1_close() {
    no_hang(|| {
        let (client_socket, connector) = accepted_connection();
        let f = client_socket.try_clone().unwrap();
        let f_fd = Fd::of(&f);
        let reader = hub::spawn(move || {
            let n = (&f).read(&mut [0u8; 8]).unwrap();
            (n, f)
        });
        hub::yield_now();
        client_socket.close();
        let (n, mut f) = reader.join().unwrap();
        assert_eq!(n, 0);
        assert_eq!(f.write(b"late").unwrap_err().kind(), ErrorKind::BrokenPipe);
        let connector = connector.join().unwrap();
        assert_eq!(read_to_end(&connector), b"");
        f_fd.assert_open();
        drop(f);
        f_fd.assert_closed();
    });
}

/// Closing the "file" first does not close the socket: it still reads
/// and writes; its own close ends the connection.
#[test]
fn test_server_makefile2() {
    no_hang(|| {
        let (mut client_socket, connector) = accepted_connection();
        let fileno = Fd::of(&client_socket);
        let f = client_socket.try_clone().unwrap();
        let f_fd = Fd::of(&f);
        drop(f);
        f_fd.assert_closed();
        fileno.assert_open();
        let mut connector = connector.join().unwrap();
        connector.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        client_socket.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        client_socket.write_all(b"pong").unwrap();
        client_socket.close();
        assert_eq!(read_to_end(&connector), b"pong");
        drop(client_socket);
        fileno.assert_closed();
    });
}

/// Where the crate differs: gevent's `f.close()` of the file leaves the
/// socket working; here `close()` of the clone shuts the connection down
/// for the socket too (documented): a greenlet reading on the socket
/// wakes with the end (not an error: only the clone's own waiters get
/// `ConnectionAborted`).
#[test]
fn test_server_makefile2_close() {
    no_hang(|| {
        let (client_socket, connector) = accepted_connection();
        let fileno = Fd::of(&client_socket);
        let f = client_socket.try_clone().unwrap();
        let reader = hub::spawn(move || {
            let r = (&client_socket).read(&mut [0u8; 4]).map_err(|e| e.kind());
            (r, client_socket)
        });
        hub::yield_now();
        f.close();
        let (r, client_socket) = reader.join().unwrap();
        assert_eq!(r, Ok(0));
        assert_eq!(read_to_end(&connector.join().unwrap()), b"");
        fileno.assert_open();
        drop(client_socket);
        fileno.assert_closed();
    });
}

/// A closed socket makes no more "files": `try_clone` after `close()`
/// fails with `ConnectionAborted` (documented), and opens no descriptor.
#[test]
fn test_makefile_after_close() {
    no_hang(|| {
        let (client_socket, _connector) = accepted_connection();
        client_socket.close();
        let err = client_socket.try_clone().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err:?}");
        let (s, _addr, fileno) = make_open_socket();
        s.close();
        assert_eq!(
            s.try_clone().unwrap_err().kind(),
            ErrorKind::ConnectionAborted
        );
        drop(s);
        fileno.assert_closed();
    });
}

/// Closing one handle of a datagram socket wakes only its own waiters:
/// a clone waiting in `recv` goes on waiting, and receives what comes.
#[test]
fn test_makefile2_udp_clone_outlives_close() {
    no_hang(|| {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        let f = s.try_clone().unwrap();
        let receiver = hub::spawn(move || {
            let mut buf = [0u8; 16];
            let n = f.recv(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        hub::yield_now();
        s.close();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"to the clone", addr).unwrap();
        assert_eq!(receiver.join().unwrap(), b"to the clone");
    });
}

/// The reverse of `test_makefile1_close`: closing the clone leaves the
/// original waiting in `accept`, and it accepts what comes.
#[test]
fn test_makefile2_close_leaves_the_original_accepting() {
    no_hang(|| {
        let (s, addr, fileno) = make_open_socket();
        let f = s.try_clone().unwrap();
        let waiting = hub::spawn(move || {
            let (conn, _) = s.accept().unwrap();
            drop(conn);
            s
        });
        hub::yield_now();
        f.close();
        assert_accept_aborted(&f);
        let _client = TcpStream::connect(addr).unwrap();
        let s = waiting.join().unwrap();
        fileno.assert_open();
        drop(s);
        fileno.assert_closed();
    });
}

/// A clone blocked writing into a full connection wakes when the other
/// handle's `close()` shuts the connection down: its write fails
/// (`BrokenPipe`) instead of waiting for a reader that will never come.
#[test]
fn test_server_makefile1_close_wakes_a_blocked_writer() {
    no_hang(|| {
        let (client_socket, connector) = accepted_connection();
        let f = client_socket.try_clone().unwrap();
        let writer_fd = Fd::of(&f);
        let writer = hub::spawn(move || {
            let chunk = vec![b'x'; 1 << 16];
            loop {
                if let Err(e) = (&f).write(&chunk) {
                    return e.kind();
                }
            }
        });
        let _connector = connector.join().unwrap();
        // The writer fills the connection (nobody reads) and blocks.
        let fd = writer_fd.fd;
        loop {
            assert!(!writer.is_finished());
            hub::yield_now();
            if matches!(waiting_on(writer.greenlet()), Some(WaitOn::Writable { fd: w, .. }) if w == fd)
            {
                break;
            }
        }
        client_socket.close();
        assert_eq!(writer.join().unwrap(), ErrorKind::BrokenPipe);
    });
}

// ----- test__socket_dns.py -----
//
// gevent compares its resolver's answers with the system's (`socket`'s
// own functions). Here `net::lookup_host` and the names the sockets take
// (`net::ToSocketAddrs`) are compared with std's `ToSocketAddrs` (the
// system's `getaddrinfo`, blocking), only for loopback names, names in
// `/etc/hosts` and numeric addresses: no outside network is reachable.

/// What std's (blocking) resolver says, on a thread of its own so as not
/// to block the hub: the addresses or the error's kind.
fn system_lookup(host: String) -> Result<Vec<SocketAddr>, ErrorKind> {
    std::thread::spawn(move || {
        host.as_str()
            .to_socket_addrs()
            .map(Iterator::collect)
            .map_err(|e| e.kind())
    })
    .join()
    .unwrap()
}

/// `lookup_host` of `"host:port"` gives what the system gives, in the same
/// order (gevent's `_test('getaddrinfo', host, port)`).
fn assert_lookup_as_system(host_port: &str) {
    let ours = lookup_host(host_port.to_owned())
        .map(Iterator::collect::<Vec<_>>)
        .map_err(|e| e.kind());
    assert_eq!(ours, system_lookup(host_port.to_owned()), "{host_port}");
}

/// `add(TestLocalhost, 'localhost')`: `getaddrinfo('localhost', port)`.
#[test]
fn test_localhost_getaddrinfo_http() {
    no_hang(|| {
        assert_lookup_as_system("localhost:80");
        let got: Vec<SocketAddr> = lookup_host(("localhost", 80)).unwrap().collect();
        assert!(got.iter().any(|a| a.ip().is_loopback() && a.port() == 80));
        // A service name is no port here, as in std: both refuse it.
        assert_lookup_as_system("localhost:http");
        assert_eq!(
            lookup_host("localhost:http").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    });
}

/// `add(Test127001, '127.0.0.1')`, `add(Test1234, '1.2.3.4')` and the
/// IPv6 loopback: a numeric address resolves to itself, as the system's.
#[test]
fn test_127_0_0_1_getaddrinfo_http() {
    no_hang(|| {
        for host in ["127.0.0.1:80", "1.2.3.4:80", "[::1]:80", "127.0.0.1:0"] {
            assert_lookup_as_system(host);
        }
        let got: Vec<SocketAddr> = lookup_host("1.2.3.4:80").unwrap().collect();
        assert_eq!(got, ["1.2.3.4:80".parse::<SocketAddr>().unwrap()]);
    });
}

/// `add(TestBadIP, '1.2.3.400')`: not an address, so a name for the
/// system's resolver, which does not know it: ours fails as it does.
#[test]
fn test_1_2_3_400_getaddrinfo_http() {
    no_hang(|| {
        assert_lookup_as_system("1.2.3.400:80");
        assert!(lookup_host("1.2.3.400:80").is_err());
    });
}

/// `Test_getaddrinfo.test_int_string` / `test_0`: the port as a number
/// or in the text, and port 0, give the same answers.
#[test]
fn test_int_string() {
    no_hang(|| {
        let text: Vec<SocketAddr> = lookup_host("localhost:80").unwrap().collect();
        let number: Vec<SocketAddr> = lookup_host(("localhost", 80)).unwrap().collect();
        assert_eq!(text, number);
        assert_lookup_as_system("localhost:0");
        let zero: Vec<SocketAddr> = lookup_host(("localhost", 0)).unwrap().collect();
        assert!(zero.iter().all(|a| a.port() == 0) && !zero.is_empty());
    });
}

/// `TestInvalidPort` (`-1`, `65536`, a word): a port that is no `u16`
/// cannot be written as a number here (the type refuses it at compile
/// time); in a text it is refused before any lookup, as std refuses it.
#[test]
fn test_overflow_port_too_large() {
    no_hang(|| {
        for bad in [
            "localhost:65536",
            "localhost:-1",
            "localhost:x",
            "localhost",
        ] {
            assert_lookup_as_system(bad);
            let ours = TcpStream::connect(bad).unwrap_err();
            assert_eq!(Err(ours.kind()), system_lookup(bad.to_owned()), "{bad}");
            let ours = UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .send_to(b"x", bad)
                .unwrap_err();
            assert_eq!(ours.kind(), ErrorKind::InvalidInput, "{bad}");
        }
    });
}

/// `TestEtcHosts`: each name of the system's hosts file (at most 10, and
/// none ending in "local", as gevent's) resolves as the system resolves it.
#[test]
fn test_etc_hosts() {
    no_hang(|| {
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let mut names: Vec<String> = hosts
            .lines()
            .map(|l| l.split('#').next().unwrap())
            .flat_map(|l| l.split_whitespace().skip(1).map(str::to_owned))
            .filter(|n| !n.ends_with("local"))
            .collect();
        names.sort();
        names.dedup();
        names.truncate(10);
        for name in &names {
            assert_lookup_as_system(&format!("{name}:80"));
        }
        for ip in hosts
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|ip| !ip.starts_with('#'))
            .take(10)
        {
            match ip.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(_)) => assert_lookup_as_system(&format!("{ip}:80")),
                Ok(std::net::IpAddr::V6(_)) => assert_lookup_as_system(&format!("[{ip}]:80")),
                Err(_) => {}
            }
        }
    });
}

/// The names the sockets take are resolved as the system resolves them:
/// a datagram sent to each spelling of the receiver's address (numeric
/// forms only `getaddrinfo` reads, a name of the hosts file) reaches it;
/// one the system cannot resolve fails as the system's lookup does.
#[test]
fn test_getaddrinfo_spellings_reach_the_same_socket() {
    no_hang(|| {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = receiver.local_addr().unwrap().port();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let spellings = [
            format!("127.0.0.1:{port}"),
            format!("127.1:{port}"),
            format!("127.000.000.001:{port}"),
            format!("0x7f.0.0.1:{port}"),
            format!("localhost:{port}"),
        ];
        let mut buf = [0u8; 64];
        for target in &spellings {
            let system = system_lookup(target.clone());
            let Ok(addrs) = system else {
                // The system does not read this form: neither do we.
                assert!(sender.send_to(b"x", target.as_str()).is_err(), "{target}");
                continue;
            };
            if addrs.first() != Some(&receiver.local_addr().unwrap()) {
                continue; // e.g. localhost is ::1 first on this system
            }
            assert_eq!(
                sender.send_to(target.as_bytes(), target.as_str()).unwrap(),
                target.len()
            );
            let (n, from) = receiver.recv_from(&mut buf).unwrap();
            assert_eq!(
                (&buf[..n], from),
                (target.as_bytes(), sender.local_addr().unwrap())
            );
        }
        // As a `(host, port)` pair too.
        for host in ["127.0.0.1", "127.1", "localhost"] {
            let system = system_lookup(format!("{host}:{port}")).unwrap();
            if system.first() != Some(&receiver.local_addr().unwrap()) {
                continue;
            }
            sender.send_to(host.as_bytes(), (host, port)).unwrap();
            let (n, _) = receiver.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], host.as_bytes());
        }
    });
}

/// gevent's `create_connection` tries each address `getaddrinfo` gives
/// in turn (a name such as "localhost" may give `::1` first, where nothing
/// listens): here a list of addresses stands for such a name. The first
/// that accepts is used; when none does, the last refusal is the error;
/// binding likewise takes the first address free.
#[test]
fn test_getaddrinfo_each_address_in_turn() {
    no_hang(|| {
        let (listener, good) = tcp_listener();
        let refused: SocketAddr = ([127, 0, 0, 1], unused_port()).into();
        let v6_refused: SocketAddr = "[::1]:1".parse().unwrap();
        let client = TcpStream::connect(&[v6_refused, refused, good][..]).unwrap();
        assert_eq!(client.peer_addr().unwrap(), good);
        let (conn, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        drop(conn);
        let err = TcpStream::connect(&[v6_refused, refused][..]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");

        let busy = UdpSocket::bind("127.0.0.1:0").unwrap();
        let free = unused_udp_addr();
        let s = UdpSocket::bind(&[busy.local_addr().unwrap(), free][..]).unwrap();
        assert_eq!(s.local_addr().unwrap(), free);
    });
}

/// `resolver.pool.size = 1` and many lookups at once: every greenlet gets
/// the system's answer, each blocking only itself.
#[test]
fn test_concurrent_lookups() {
    no_hang(|| {
        let expected = system_lookup("localhost:80".into()).unwrap();
        let lookers: Vec<_> = (0..10)
            .map(|i| {
                hub::spawn(move || {
                    let host = if i % 2 == 0 {
                        "localhost:80"
                    } else {
                        "127.0.0.1:80"
                    };
                    lookup_host(host).unwrap().collect::<Vec<_>>()
                })
            })
            .collect();
        for (i, l) in lookers.into_iter().enumerate() {
            let got = l.join().unwrap();
            if i % 2 == 0 {
                assert_eq!(got, expected);
            } else {
                assert_eq!(got, ["127.0.0.1:80".parse::<SocketAddr>().unwrap()]);
            }
        }
    });
}

/// `TestInterrupted_gethostbyname`: an endless loop of lookups under a
/// timeout is interrupted by it (on the real clock: on the paused one a
/// lookup in flight holds the clock, see below), and the lookups in
/// flight end on their own pool threads.
#[test]
fn test_returns_none_after_timeout() {
    no_hang(|| {
        let done = Rc::new(Cell::new(0u32));
        let d = done.clone();
        let r = with_timeout(20 * MS, move || loop {
            let _ = lookup_host("localhost:80");
            d.set(d.get() + 1);
        });
        assert!(r.is_err());
        // Later lookups still work.
        assert_lookup_as_system("localhost:80");
    });
}

/// On the paused clock a lookup counts as work off the hub (documented):
/// a timeout around one lookup does not expire while it runs, however
/// short.
#[test]
fn test_returns_none_after_timeout_paused_clock() {
    no_hang(|| {
        time::pause();
        let start = time::now();
        let r = with_timeout(MS, || lookup_host("localhost:80").map(Iterator::count));
        assert!(matches!(r, Ok(Ok(n)) if n > 0), "{r:?}");
        assert_eq!(time::now(), start);
    });
}

// ----- test__example_echoserver.py (examples/echoserver.py) -----

const WELCOME: &[u8] = b"Welcome to the echo server! Type quit to exit.\r\n";

/// gevent's `DEFAULT_XPC_SOCKET_TIMEOUT` for the clients, on the paused
/// hub clock.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// `examples/echoserver.py`'s `echo`: a welcome line, then every line
/// echoed back (read through a "file", `rfileobj`) until the client
/// disconnects or says `quit`. Records how each connection ended.
fn echo_handler(log: Rc<RefCell<Vec<&'static str>>>) -> impl Fn(TcpStream, SocketAddr) {
    move |socket: TcpStream, _address| {
        (&socket).write_all(WELCOME).unwrap();
        let mut rfileobj = BufReader::new(socket.try_clone().unwrap());
        loop {
            let mut line = Vec::new();
            rfileobj.read_until(b'\n', &mut line).unwrap();
            if line.is_empty() {
                log.borrow_mut().push("client disconnected");
                break;
            }
            if line.trim_ascii().eq_ignore_ascii_case(b"quit") {
                log.borrow_mut().push("client quit");
                break;
            }
            (&socket).write_all(&line).unwrap();
        }
    }
}

/// gevent's `test_client`: the welcome line, the message echoed, then
/// nothing more: a one-byte read times out after exactly the client's
/// timeout.
fn echo_test_client(addr: SocketAddr, message: &'static [u8]) {
    let mut conn = TcpStream::connect(addr).unwrap();
    let mut rfile = BufReader::new(conn.try_clone().unwrap());
    let mut welcome = Vec::new();
    rfile.read_until(b'\n', &mut welcome).unwrap();
    assert!(welcome.windows(7).any(|w| w == b"Welcome"), "{welcome:?}");
    conn.write_all(message).unwrap();
    let mut received = vec![0u8; message.len()];
    rfile.read_exact(&mut received).unwrap();
    assert_eq!(received, message);
    // gevent sets the timeout at the start; it is set here for the last
    // read only, so that the paused clock, which does not wait for bytes
    // still on their way through the kernel, cannot time out the others.
    conn.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    let start = time::now();
    let err = conn.read(&mut [0u8; 1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err:?}");
    assert_eq!(time::now() - start, CLIENT_TIMEOUT);
}

#[test]
fn test_example_echoserver() {
    no_hang(|| {
        time::pause();
        let log = Rc::new(RefCell::new(Vec::new()));
        let server = Server::bind("127.0.0.1:0", echo_handler(log.clone()))
            .unwrap()
            .start();
        let addr = server.local_addr();
        let client1 = hub::spawn(move || echo_test_client(addr, b"hello\r\n"));
        let client2 = hub::spawn(move || echo_test_client(addr, b"world\r\n"));
        client1.join().unwrap();
        client2.join().unwrap();
        // Both clients are gone: their handlers see the end.
        while server.connections() > 0 {
            hub::idle();
        }
        assert_eq!(
            *log.borrow(),
            ["client disconnected", "client disconnected"]
        );
        server.stop(Duration::ZERO);
        assert!(server.is_stopped());
    });
}

/// The other way out of the example's loop: `quit` (any case, with
/// blanks around) ends the connection from the server's side; lines
/// written in pieces are echoed whole, in order.
#[test]
fn test_example_echoserver_quit() {
    no_hang(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let server = Server::bind("127.0.0.1:0", echo_handler(log.clone()))
            .unwrap()
            .start();
        let mut conn = TcpStream::connect(server.local_addr()).unwrap();
        let mut rfile = BufReader::new(conn.try_clone().unwrap());
        let mut line = Vec::new();
        rfile.read_until(b'\n', &mut line).unwrap();
        assert_eq!(line, WELCOME);
        conn.write_all(b"one ").unwrap();
        conn.write_all(b"line\r\ntwo\r").unwrap();
        conn.write_all(b"\n  QUIT \r\nnever echoed\r\n").unwrap();
        let mut rest = Vec::new();
        rfile.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"one line\r\ntwo\r\n");
        assert_eq!(*log.borrow(), ["client quit"]);
        server.stop(Duration::ZERO);
    });
}

// ----- test__example_udp_server.py (examples/udp_server.py) -----

/// `examples/udp_server.py`'s `EchoServer.handle` answers every
/// datagram with "Received N bytes", to its sender; the test's client
/// sends one through a connected socket.
#[test]
fn test_example_udp_server() {
    no_hang(|| {
        let server = DatagramServer::bind(
            "127.0.0.1:0",
            |data: Vec<u8>, address, socket: &ReplySocket| {
                let reply = format!("Received {} bytes", data.len());
                socket.send_to(reply.as_bytes(), address).unwrap();
            },
        )
        .unwrap()
        .start();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(server.local_addr()).unwrap();
        sock.send(b"Test udp_server").unwrap();
        let mut buf = [0u8; 8192];
        let (n, address) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"Received 15 bytes");
        assert_eq!(address, server.local_addr());
        sock.close();
        server.stop(Duration::ZERO);
        assert!(server.is_stopped());
    });
}

/// The example's handler counts what came: an empty datagram is one too
/// ("Received 0 bytes"), and so is a large one; the replies come back in
/// the order the datagrams went (one client, one handler each).
#[test]
fn test_example_udp_server_empty_and_large_datagrams() {
    no_hang(|| {
        let server = DatagramServer::bind(
            "127.0.0.1:0",
            |data: Vec<u8>, address, socket: &ReplySocket| {
                let reply = format!("Received {} bytes", data.len());
                socket.send_to(reply.as_bytes(), address).unwrap();
            },
        )
        .unwrap()
        .start();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(server.local_addr()).unwrap();
        let mut buf = [0u8; 64];
        for len in [0usize, 1, 0, 60_000] {
            assert_eq!(sock.send(&vec![b'u'; len]).unwrap(), len);
            let n = sock.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], format!("Received {len} bytes").as_bytes());
        }
        assert_eq!(server.accept_errors(), 0);
        server.stop(Duration::ZERO);
    });
}

/// The reply may be empty too: the client's `recv_from` gets an empty
/// datagram (not an end: UDP has none) from the server's address.
#[test]
fn test_example_udp_client_empty_reply() {
    no_hang(|| {
        let server = DatagramServer::bind(
            "127.0.0.1:0",
            |_: Vec<u8>, address, socket: &ReplySocket| {
                assert_eq!(socket.send_to(b"", address).unwrap(), 0);
            },
        )
        .unwrap()
        .start();
        let address = server.local_addr();
        let client = hub::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.connect(address).unwrap();
            sock.send(b"Test_udp_client").unwrap();
            let mut data = [0u8; 8192];
            sock.recv_from(&mut data).unwrap()
        });
        assert_eq!(client.join().unwrap(), (0, address));
        server.stop(Duration::ZERO);
    });
}

// ----- test__example_udp_client.py (examples/udp_client.py) -----

/// The test's server logs each message and replies "reply-from-server";
/// `udp_client.py` (here a greenlet) connects, sends its argument and
/// receives the reply from the server's address.
fn udp_client_server(log: Rc<RefCell<Vec<Vec<u8>>>>) -> greenlet::net::ServerHandle {
    DatagramServer::bind(
        "127.0.0.1:0",
        move |message: Vec<u8>, address, server: &ReplySocket| {
            log.borrow_mut().push(message);
            server.send_to(b"reply-from-server", address).unwrap();
        },
    )
    .unwrap()
    .start()
}

fn udp_client_example(address: SocketAddr, message: &[u8]) -> (Vec<u8>, SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(address).unwrap();
    assert_eq!(sock.send(message).unwrap(), message.len());
    let mut data = [0u8; 8192];
    let (n, from) = sock.recv_from(&mut data).unwrap();
    sock.close();
    (data[..n].to_vec(), from)
}

#[test]
fn test_example_udp_client() {
    no_hang(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let server = udp_client_server(log.clone());
        let address = server.local_addr();
        let client = hub::spawn(move || udp_client_example(address, b"Test_udp_client"));
        let (data, from) = client.join().unwrap();
        assert_eq!((&data[..], from), (&b"reply-from-server"[..], address));
        server.stop(Duration::ZERO);
        assert_eq!(*log.borrow(), [b"Test_udp_client".to_vec()]);
    });
}

/// The example as gevent runs it: another process, with plain blocking
/// sockets (here a thread of the blocking pool with std's socket) while
/// the server serves in the hub.
#[test]
fn test_example_udp_client_blocking() {
    no_hang(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let server = udp_client_server(log.clone());
        let address = server.local_addr();
        let (data, from) = hub::spawn_blocking(move || {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.connect(address).unwrap();
            sock.send(b"Test_udp_client").unwrap();
            let mut data = [0u8; 8192];
            let (n, from) = sock.recv_from(&mut data).unwrap();
            (data[..n].to_vec(), from)
        })
        .join()
        .unwrap();
        assert_eq!((&data[..], from), (&b"reply-from-server"[..], address));
        server.stop(Duration::ZERO);
        assert_eq!(*log.borrow(), [b"Test_udp_client".to_vec()]);
    });
}

// ----- test__example_webproxy.py (examples/webproxy.py) -----
//
// The example is a WSGI application fetching other sites with `urllib`;
// gevent's test reads `/` (the form) and `/http://www.google.com` through
// it. Here the application runs under a `net::Server` with a minimal
// HTTP/1.0 reader and writer, and the "other site" is an origin server in
// the same hub (no outside network): the proxied page, its status, its
// headers (less `Transfer-Encoding` and `Set-Cookie`) and its links
// rewritten to go through the proxy, as `fix_links` does.

const FORM: &str = "<html><head>\n<title>Web Proxy - gevent example</title></head><body>\n\
<form action=/ method=post>\n<input size=80 name=url value=\"http://www.gevent.org\"/>\n\
</form></body></html>\n";

/// A request or a response as read off the wire.
#[derive(Debug, Default)]
struct Http {
    /// The request line or the status line.
    first: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads the first line, the headers, and a body of `Content-Length`
    /// bytes (or, with `to_end`, to the end of the stream).
    fn read(r: &mut impl BufRead, to_end: bool) -> io::Result<Http> {
        let mut msg = Http::default();
        let mut line = String::new();
        r.read_line(&mut line)?;
        msg.first = line.trim_end().to_owned();
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap_or((l, ""));
            msg.headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        if to_end {
            r.read_to_end(&mut msg.body)?;
        } else if let Some(n) = msg.header("Content-Length") {
            msg.body = vec![0; n.parse().unwrap_or(0)];
            r.read_exact(&mut msg.body)?;
        }
        Ok(msg)
    }

    fn write(&self, w: &mut impl Write) -> io::Result<()> {
        let mut out = format!("{}\r\n", self.first);
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        w.write_all(out.as_bytes())?;
        w.write_all(&self.body)
    }
}

/// `webproxy.join`: URL pieces joined with exactly one `/` between them.
fn url_join(parts: &[&str]) -> String {
    let mut url = parts[0].to_owned();
    for p in &parts[1..] {
        match (url.ends_with('/'), p.starts_with('/')) {
            (true, true) => url.push_str(&p[1..]),
            (false, false) => {
                url.push('/');
                url.push_str(p);
            }
            _ => url.push_str(p),
        }
    }
    url
}

/// `webproxy.fix_links`: each `href=`, `src=` or `action=` link (quoted or
/// not, not a `#` anchor) made to go through the proxy.
fn fix_links(data: &str, proxy_url: &str, host_url: &str) -> String {
    let mut out = String::new();
    let mut rest = data;
    'scan: while !rest.is_empty() {
        for attr in ["href=", "src=", "action="] {
            if let Some(after) = rest.strip_prefix(attr) {
                let (quoted, url_start) = match after.chars().next() {
                    Some(q @ ('"' | '\'')) => (Some(q), &after[1..]),
                    _ => (None, after),
                };
                let end = match quoted {
                    Some(q) => url_start.find(q),
                    None => url_start.find([' ', '>']).or(Some(url_start.len())),
                };
                if let Some(end) = end.filter(|&e| e > 0 && !url_start.starts_with('#')) {
                    let url = &url_start[..end];
                    let fixed = if url.contains("://") {
                        url_join(&[proxy_url, url])
                    } else {
                        url_join(&[proxy_url, host_url, url])
                    };
                    out.push_str(&format!("{attr}\"{fixed}\""));
                    rest = &url_start[end + usize::from(quoted.is_some())..];
                    continue 'scan;
                }
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `%XX` escapes decoded (`unquote`).
fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn response(status: &str, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Http {
    Http {
        first: format!("HTTP/1.0 {status}"),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.into(),
    }
}

/// `webproxy.proxy`: fetches `path` (a URL, `http://` added if missing)
/// and answers with its status, headers and links fixed, or `502`.
fn proxy(path: &str, proxy_url: &str) -> Http {
    let url = if path.contains("://") {
        path.to_owned()
    } else {
        format!("http://{path}")
    };
    let fetched = (|| -> io::Result<(Http, String)> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "not http"))?;
        let (netloc, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let netloc_with_port = if netloc.contains(':') {
            netloc.to_owned()
        } else {
            format!("{netloc}:80")
        };
        let mut conn = TcpStream::connect(netloc_with_port.as_str())?;
        write!(conn, "GET {target} HTTP/1.0\r\nHost: {netloc}\r\n\r\n")?;
        let got = Http::read(&mut BufReader::new(conn), true)?;
        Ok((got, format!("http://{netloc}")))
    })();
    match fetched {
        Err(ex) => response(
            "502 Bad Gateway",
            &[("Content-Type", "text/html")],
            format!("<h1>{ex}</h1><h2>{url}</h2>"),
        ),
        Ok((upstream, host)) => {
            let status = upstream.first.split_once(' ').map_or("", |(_, s)| s);
            let headers: Vec<(&str, &str)> = upstream
                .headers
                .iter()
                .filter(|(k, _)| {
                    !["transfer-encoding", "set-cookie", "content-length"]
                        .contains(&k.to_ascii_lowercase().as_str())
                })
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let body = fix_links(&String::from_utf8_lossy(&upstream.body), proxy_url, &host);
            response(status, &headers, body)
        }
    }
}

/// `webproxy.application`.
fn application(request: &Http) -> Http {
    let proxy_url = format!("http://{}/", request.header("Host").unwrap_or(""));
    let mut parts = request.first.split(' ');
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("").trim_start_matches('/');
    match (method, path) {
        ("GET", "") => response("200 OK", &[("Content-Type", "text/html")], FORM),
        ("GET", path) => proxy(path, &proxy_url),
        ("POST", "") => {
            let body = String::from_utf8_lossy(&request.body);
            let (key, value) = body.trim().split_once('=').unwrap_or(("", ""));
            assert_eq!(key, "url");
            let location = url_join(&[&proxy_url, &unquote(value)]);
            response("302 Found", &[("Location", &location)], "")
        }
        ("POST", _) => response("404 Not Found", &[], ""),
        _ => response("501 Not Implemented", &[], ""),
    }
}

fn webproxy_server() -> greenlet::net::ServerHandle {
    Server::bind("127.0.0.1:0", |conn: TcpStream, _| {
        let mut r = BufReader::new(conn.try_clone().unwrap());
        if let Ok(request) = Http::read(&mut r, false) {
            let _ = application(&request).write(&mut &conn);
        }
    })
    .unwrap()
    .start()
}

/// The "other site": a page with links of every form, a cookie and a 404.
fn origin_server() -> greenlet::net::ServerHandle {
    Server::bind("127.0.0.1:0", |conn: TcpStream, _| {
        let mut r = BufReader::new(conn.try_clone().unwrap());
        let request = Http::read(&mut r, false).unwrap();
        let page = if request.first.starts_with("GET / ") {
            response(
                "200 OK",
                &[("Content-Type", "text/html"), ("Set-Cookie", "a=b")],
                "<a href=\"/about\">Google</a><img src=images/hp0.gif width=158>\
                 <a href='http://other.example/'>x</a><a href=\"#top\">t</a>",
            )
        } else {
            response("404 Not Found", &[], "<h1>Not Found</h1>")
        };
        page.write(&mut &conn).unwrap();
    })
    .unwrap()
    .start()
}

/// gevent's `Test_wsgiserver.read`: the status and the body of a GET.
fn http_read(addr: SocketAddr, method: &str, path: &str, body: &str) -> Http {
    let mut conn = TcpStream::connect(addr).unwrap();
    // A guard only (real clock): urlopen's timeout.
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    Http::read(&mut BufReader::new(conn), true).unwrap()
}

#[test]
fn test_example_webproxy() {
    no_hang(|| {
        let origin = origin_server();
        let server = webproxy_server();
        let addr = server.local_addr();
        let got = http_read(addr, "GET", "/", "");
        assert_eq!(got.first, "HTTP/1.0 200 OK");
        assert!(String::from_utf8_lossy(&got.body).contains("gevent example"));

        let site = format!("http://{}", origin.local_addr());
        let got = http_read(addr, "GET", &format!("/{site}/"), "");
        assert_eq!(got.first, "HTTP/1.0 200 OK");
        let body = String::from_utf8(got.body.clone()).unwrap();
        assert!(body.to_lowercase().contains("google"), "{body}");
        let proxy_url = format!("http://{addr}/");
        assert_eq!(
            body,
            format!(
                "<a href=\"{proxy_url}{site}/about\">Google</a>\
                 <img src=\"{proxy_url}{site}/images/hp0.gif\" width=158>\
                 <a href=\"{proxy_url}http://other.example/\">x</a><a href=\"#top\">t</a>"
            )
        );
        assert_eq!(got.header("Content-Type"), Some("text/html"));
        assert_eq!(got.header("Set-Cookie"), None);
        server.stop(Duration::ZERO);
        origin.stop(Duration::ZERO);
    });
}

/// The rest of the application: the proxied site's own error status, a
/// site refusing connections (`502 Bad Gateway`), the form's `POST` (a
/// redirect into the proxy), and the other methods and paths.
#[test]
fn test_example_webproxy_statuses() {
    no_hang(|| {
        let origin = origin_server();
        let server = webproxy_server();
        let addr = server.local_addr();
        let site = format!("http://{}", origin.local_addr());

        let got = http_read(addr, "GET", &format!("/{site}/missing"), "");
        assert_eq!(got.first, "HTTP/1.0 404 Not Found");
        assert_eq!(got.body, b"<h1>Not Found</h1>");

        let refused = format!("127.0.0.1:{}", unused_port());
        let got = http_read(addr, "GET", &format!("/{refused}/"), "");
        assert_eq!(got.first, "HTTP/1.0 502 Bad Gateway");
        assert!(String::from_utf8_lossy(&got.body)
            .to_lowercase()
            .contains("refused"));

        // By name: the site's host is resolved on the pool.
        let by_name = format!("http://localhost:{}/", origin.local_addr().port());
        if system_lookup(format!("localhost:{}", origin.local_addr().port()))
            .is_ok_and(|a| a.contains(&origin.local_addr()))
        {
            let got = http_read(addr, "GET", &format!("/{by_name}"), "");
            assert_eq!(got.first, "HTTP/1.0 200 OK");
        }

        let got = http_read(addr, "POST", "/", "url=http%3A%2F%2Fwww.gevent.org");
        assert_eq!(got.first, "HTTP/1.0 302 Found");
        assert_eq!(
            got.header("Location"),
            Some(format!("http://{addr}/http://www.gevent.org").as_str())
        );
        assert_eq!(
            http_read(addr, "POST", "/elsewhere", "").first,
            "HTTP/1.0 404 Not Found"
        );
        assert_eq!(
            http_read(addr, "PUT", "/", "").first,
            "HTTP/1.0 501 Not Implemented"
        );
        server.stop(Duration::ZERO);
        origin.stop(Duration::ZERO);
    });
}

/// The example binds `':9000'`: Python's empty host is every interface.
/// Here a text without a host is no address and goes to the system's
/// resolver, which refuses it as std's does; every interface is spelled
/// `0.0.0.0`, and a server bound there answers on loopback, from the
/// address the client sent to.
#[test]
fn test_example_udp_server_all_interfaces() {
    no_hang(|| {
        let ours = DatagramServer::bind(":0", |_: Vec<u8>, _, _: &ReplySocket| {}).map(drop);
        assert_eq!(
            ours.map_err(|e| e.kind()),
            system_lookup(":0".into()).map(drop)
        );
        let server = DatagramServer::bind(
            "0.0.0.0:0",
            |data: Vec<u8>, address, socket: &ReplySocket| {
                let reply = format!("Received {} bytes", data.len());
                socket.send_to(reply.as_bytes(), address).unwrap();
            },
        )
        .unwrap()
        .start();
        let port = server.local_addr().port();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(("127.0.0.1", port)).unwrap();
        sock.send(b"Test udp_server").unwrap();
        let mut buf = [0u8; 8192];
        let (n, address) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"Received 15 bytes");
        assert_eq!(address, SocketAddr::from(([127, 0, 0, 1], port)));
        server.stop(Duration::ZERO);
    });
}
