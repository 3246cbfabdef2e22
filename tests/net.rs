//! `greenlet::net` over loopback: many concurrent connections,
//! resets, half-close, back-pressure, timeouts, kills, and the std-shaped
//! API (the main greenlet, UDP, Unix sockets, shared streams, `BufRead`).
//!
//! Nothing here sleeps to wait for something: a test that needs a greenlet
//! blocked in a socket call yields until `stats()` says it is, and a test
//! that needs a blocked writer fills the kernel's buffers.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, with_timeout, Event, JoinError, JoinHandle, Queue};
use greenlet::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use greenlet::{stats, Greenlet, WaitOn};

const LOCALHOST: &str = "127.0.0.1:0";

/// A timeout meant to expire: nothing will ever arrive.
const SHORT: Duration = Duration::from_millis(20);

/// More than the kernel can buffer between a writer whose send buffer was
/// shrunk and a reader that does not read (its receive window starts at
/// about 64 KiB and grows only as the application reads).
const BIG: usize = 4 << 20;

// ----- helpers -----

/// A connected pair, made from the main greenlet: `connect` blocks main
/// until the kernel completes the handshake, which on loopback needs no
/// `accept` (the connection waits in the backlog).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(LOCALHOST).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
    (client, server)
}

/// Bytes that differ from their neighbours and never line up with a power
/// of two, so a lost, doubled or reordered chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Echoes everything it reads until the peer's EOF; returns how many bytes.
fn echo_until_eof<S>(conn: S) -> usize
where
    for<'a> &'a S: Read + Write,
{
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    loop {
        let n = (&conn).read(&mut buf).unwrap();
        if n == 0 {
            return total;
        }
        (&conn).write_all(&buf[..n]).unwrap();
        total += n;
    }
}

/// Sets its flag when dropped: proves a killed greenlet's stack unwound.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// What greenlet `g` is blocked on, per `stats()`.
fn waiting_on(g: &Greenlet) -> Option<WaitOn> {
    stats()
        .greenlets
        .into_iter()
        .find(|info| info.id == g.id())
        .and_then(|info| info.waiting_on)
}

/// Lets the other greenlets run (main yields) until `h`'s greenlet is
/// blocked in a hub call; returns what it waits on.
fn wait_until_blocked<R: 'static>(h: &JoinHandle<R>) -> WaitOn {
    loop {
        assert!(
            !h.is_finished(),
            "the greenlet finished instead of blocking"
        );
        hub::yield_now();
        if let Some(on) = waiting_on(h.greenlet()) {
            return on;
        }
    }
}

fn is_readable(on: WaitOn, socket: &impl AsRawFd) -> bool {
    matches!(on, WaitOn::Readable { fd, .. } if fd == socket.as_raw_fd())
}

fn is_writable(on: WaitOn, socket: &impl AsRawFd) -> bool {
    matches!(on, WaitOn::Writable { fd, .. } if fd == socket.as_raw_fd())
}

/// `setsockopt(fd, level, name, &value)`.
fn setsockopt<T>(socket: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: T) {
    let fd: RawFd = socket.as_raw_fd();
    // SAFETY: `fd` is an open socket borrowed from `socket` for the call;
    // the option points to a live `T` whose size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", io::Error::last_os_error());
}

/// Makes the send buffer as small as the kernel allows, so a writer whose
/// peer does not read blocks after a few KiB.
fn shrink_send_buffer(socket: &impl AsRawFd) {
    setsockopt(
        socket,
        libc::SOL_SOCKET,
        libc::SO_SNDBUF,
        4096 as libc::c_int,
    );
}

/// Closes `stream` with `SO_LINGER` 0: the kernel sends a RST, not a FIN.
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(&stream, libc::SOL_SOCKET, libc::SO_LINGER, linger);
    drop(stream);
}

/// Sets the listen backlog of a listening socket (Linux applies a second
/// `listen` to a listening socket as a backlog change).
fn set_backlog(listener: &impl AsRawFd, backlog: libc::c_int) {
    // SAFETY: the fd is a listening socket borrowed for the call.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), backlog) };
    assert_eq!(rc, 0, "listen: {}", io::Error::last_os_error());
}

/// Raises the soft open-file limit to the hard one and checks that `needed`
/// descriptors fit.
fn raise_fd_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we own.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
        assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
    }
    assert!(
        limit.rlim_cur >= needed,
        "this test needs {needed} open files; the hard limit is {}",
        limit.rlim_cur
    );
}

/// A socket file path of its own for each test (tests run in parallel).
struct SocketPath(PathBuf);

impl SocketPath {
    fn new(tag: &str) -> SocketPath {
        let path =
            std::env::temp_dir().join(format!("greenlet-net-{}-{tag}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path); // a leftover of a killed run
        SocketPath(path)
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ----- 1. many concurrent connections -----

/// Counts open connections and remembers the most open at once.
#[derive(Clone, Default)]
struct OpenCount {
    now: Rc<Cell<usize>>,
    peak: Rc<Cell<usize>>,
}

struct Opened(OpenCount);

impl OpenCount {
    fn open(&self) -> Opened {
        self.now.set(self.now.get() + 1);
        self.peak.set(self.peak.get().max(self.now.get()));
        Opened(self.clone())
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        self.0.now.set(self.0.now.get() - 1);
    }
}

/// Client `conn`'s message for round `round`: its own length and bytes.
fn message(conn: usize, round: usize) -> Vec<u8> {
    let len = 1 + (conn * 7 + round * 131) % 300;
    (0..len).map(|k| (conn * 3 + round * 5 + k) as u8).collect()
}

#[test]
fn a_thousand_concurrent_connections_echo_every_byte() {
    const CONNS: usize = 1000;
    const ROUNDS: usize = 3;
    raise_fd_limit(2 * CONNS as u64 + 64);

    let listener = TcpListener::bind(LOCALHOST).unwrap();
    let addr = listener.local_addr().unwrap();
    let open = OpenCount::default();
    // Set once every connection is accepted: only then do clients talk, so
    // all 2,000 sockets are open at the same time.
    let all_accepted = Event::new();
    // The listener's backlog is std's 128: connections made faster than
    // they are accepted would overflow it, and a dropped SYN is retried
    // only after a second. So a client takes a slot before connecting and
    // the acceptor frees one per accept: at most 64 wait in the backlog.
    // (A loopback connect completes at once, so slots freed by the clients
    // themselves would not do.)
    let unaccepted: Queue<()> = Queue::bounded(64);

    let acceptor = {
        let (open, all_accepted, unaccepted) =
            (open.clone(), all_accepted.clone(), unaccepted.clone());
        hub::spawn(move || {
            let servers: Vec<JoinHandle<usize>> = listener
                .incoming()
                .take(CONNS)
                .map(|conn| {
                    let conn = conn.unwrap();
                    // Its client took a slot before connecting: never waits.
                    unaccepted.get();
                    let open = open.clone();
                    hub::spawn(move || {
                        let _opened = open.open();
                        echo_until_eof(conn)
                    })
                })
                .collect();
            all_accepted.set();
            servers
        })
    };

    let clients: Vec<JoinHandle<usize>> = (0..CONNS)
        .map(|i| {
            let (open, all_accepted, unaccepted) =
                (open.clone(), all_accepted.clone(), unaccepted.clone());
            hub::spawn(move || {
                unaccepted.put(());
                let mut conn = TcpStream::connect(addr).unwrap();
                let _opened = open.open();
                all_accepted.wait();
                let mut sent = 0;
                for round in 0..ROUNDS {
                    let msg = message(i, round);
                    conn.write_all(&msg).unwrap();
                    let mut back = vec![0; msg.len()];
                    conn.read_exact(&mut back).unwrap();
                    assert_eq!(back, msg, "connection {i}, round {round}");
                    sent += msg.len();
                }
                conn.shutdown(Shutdown::Write).unwrap();
                assert_eq!(
                    conn.read(&mut [0; 1]).unwrap(),
                    0,
                    "the server closes after EOF"
                );
                sent
            })
        })
        .collect();

    hub::run();

    let sent: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let echoed: usize = acceptor
        .join()
        .unwrap()
        .into_iter()
        .map(|s| s.join().unwrap())
        .sum();
    let expected: usize = (0..CONNS)
        .flat_map(|i| (0..ROUNDS).map(move |r| message(i, r).len()))
        .sum();
    assert_eq!(sent, expected);
    assert_eq!(echoed, expected);
    assert_eq!(
        open.peak.get(),
        2 * CONNS,
        "every connection was open at once"
    );
    assert_eq!(open.now.get(), 0);
}

// ----- 2. a peer that resets -----

#[test]
fn a_peer_reset_fails_a_blocked_read_with_connection_reset() {
    let (client, server) = tcp_pair();
    let server = Rc::new(server);
    let reader = {
        let server = server.clone();
        hub::spawn(move || (&*server).read(&mut [0; 16]))
    };
    assert!(is_readable(wait_until_blocked(&reader), &*server));
    reset(client);
    let err = reader.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

#[test]
fn a_write_to_a_reset_peer_fails_with_broken_pipe_or_connection_reset() {
    let (client, server) = tcp_pair();
    reset(client);
    // The RST may still be on its way: writes succeed until it lands.
    let err = loop {
        if let Err(e) = (&server).write(b"x") {
            break e;
        }
    };
    assert!(
        matches!(
            err.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
        ),
        "{err:?}"
    );
}

#[test]
fn a_peer_reset_fails_a_blocked_write() {
    let (client, server) = tcp_pair();
    shrink_send_buffer(&server);
    let server = Rc::new(server);
    let writer = {
        let server = server.clone();
        hub::spawn(move || (&*server).write_all(&pattern(BIG)))
    };
    assert!(is_writable(wait_until_blocked(&writer), &*server));
    reset(client);
    let err = writer.join().unwrap().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
        ),
        "{err:?}"
    );
}

// ----- 3. half-close and EOF -----

#[test]
fn after_a_half_close_the_server_reads_eof_and_still_replies() {
    let (mut client, server) = tcp_pair();
    let handler = hub::spawn(move || {
        let mut request = Vec::new();
        (&server).read_to_end(&mut request).unwrap(); // up to the client's FIN
        assert_eq!((&server).read(&mut [0; 8]).unwrap(), 0, "EOF stays EOF");
        (&server).write_all(b"reply to ").unwrap();
        (&server).write_all(&request).unwrap();
        request // dropping `server` closes: the client's EOF
    });
    client.write_all(b"request").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        client.write(b"more").unwrap_err().kind(),
        ErrorKind::BrokenPipe,
        "the write half is shut"
    );
    let mut reply = String::new();
    client.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "reply to request");
    assert_eq!(client.read(&mut [0; 8]).unwrap(), 0);
    assert_eq!(handler.join().unwrap(), b"request");
}

/// Data and the FIN arrive together while a reader waits: one edge
/// reports both. The first read returns the data (short of its buffer);
/// the next must return the EOF, with no further event to come.
#[test]
fn eof_arriving_with_the_last_data_is_seen_by_a_blocked_reader() {
    let (mut client, server) = tcp_pair();
    // Bounds the failure mode (a read waiting forever) to an error.
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let server = Rc::new(server);
    let reader = {
        let server = server.clone();
        hub::spawn(move || {
            let mut got = Vec::new();
            (&*server).read_to_end(&mut got).map(|_| got)
        })
    };
    // Blocked: the poll that wakes it consumes the one edge.
    assert!(is_readable(wait_until_blocked(&reader), &*server));
    client.write_all(b"abc").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let got = reader.join().unwrap();
    assert_eq!(got.map_err(|e| e.kind()), Ok(b"abc".to_vec()));
}

#[test]
fn shutting_down_the_read_half_wakes_a_blocked_reader_with_eof() {
    let (_client, server) = tcp_pair();
    let server = Rc::new(server);
    let reader = {
        let server = server.clone();
        hub::spawn(move || (&*server).read(&mut [0; 8]).map_err(|e| e.kind()))
    };
    assert!(is_readable(wait_until_blocked(&reader), &*server));
    server.shutdown(Shutdown::Read).unwrap();
    assert_eq!(reader.join().unwrap(), Ok(0));
}

#[test]
fn shutting_down_the_write_half_wakes_a_blocked_writer_with_broken_pipe() {
    let (_client, server) = tcp_pair();
    shrink_send_buffer(&server);
    let server = Rc::new(server);
    let writer = {
        let server = server.clone();
        hub::spawn(move || (&*server).write_all(&pattern(BIG)).map_err(|e| e.kind()))
    };
    assert!(is_writable(wait_until_blocked(&writer), &*server));
    server.shutdown(Shutdown::Write).unwrap();
    assert_eq!(writer.join().unwrap(), Err(ErrorKind::BrokenPipe));
}

// ----- 4. a reader that stops reading -----

#[test]
fn a_writer_blocked_by_a_slow_reader_lets_other_greenlets_run() {
    let (mut client, server) = tcp_pair();
    shrink_send_buffer(&server);
    let server = Rc::new(server);
    let writer = {
        let server = server.clone();
        hub::spawn(move || {
            (&*server).write_all(&pattern(BIG)).unwrap();
            server.shutdown(Shutdown::Write).unwrap(); // the reader's EOF
            BIG
        })
    };
    assert!(is_writable(wait_until_blocked(&writer), &*server));

    // Others run meanwhile: a counter that checks at every step that the
    // writer is still blocked, and an echo on another connection.
    let counter = {
        let writer = writer.greenlet().clone();
        hub::spawn(move || {
            let mut count = 0;
            for _ in 0..100 {
                // Blocked on the socket, or woken because the kernel made
                // room (it grows socket buffers on its own schedule) and
                // about to write more; never done, since nobody reads.
                let on = waiting_on(&writer);
                assert!(
                    matches!(on, Some(WaitOn::Writable { .. } | WaitOn::Ready)),
                    "{on:?}"
                );
                assert!(!writer.is_dead());
                count += 1;
                hub::yield_now();
            }
            count
        })
    };
    let (mut a, b) = tcp_pair();
    let echo = hub::spawn(move || echo_until_eof(b));
    a.write_all(b"still alive").unwrap();
    let mut back = [0; 11];
    a.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still alive");
    a.shutdown(Shutdown::Write).unwrap();
    assert_eq!(echo.join().unwrap(), 11);
    assert_eq!(counter.join().unwrap(), 100);
    assert!(
        !writer.is_finished(),
        "nobody read: the writer cannot be done"
    );

    // Now drain: the writer completes and every byte arrives in order. A
    // send buffer of normal size again keeps the transfer fast (it holds
    // far less than BIG: the writer still needs the reader).
    let normal: libc::c_int = 1 << 20;
    setsockopt(&*server, libc::SOL_SOCKET, libc::SO_SNDBUF, normal);
    let mut got = Vec::with_capacity(BIG);
    client.read_to_end(&mut got).unwrap();
    assert_eq!(writer.join().unwrap(), BIG);
    assert_eq!(got.len(), BIG);
    assert!(got == pattern(BIG), "the bytes arrived altered");
}

// ----- 5. timeouts -----

#[test]
fn an_expired_read_timeout_is_timed_out_and_the_stream_stays_usable() {
    let (mut client, mut server) = tcp_pair();
    assert_eq!(server.read_timeout().unwrap(), None);
    let zero = server.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(zero.kind(), ErrorKind::InvalidInput, "as std");
    server.set_read_timeout(Some(SHORT)).unwrap();
    assert_eq!(server.read_timeout().unwrap(), Some(SHORT));

    let mut buf = [0; 8];
    assert_eq!(
        server.read(&mut buf).unwrap_err().kind(),
        ErrorKind::TimedOut
    );
    // A second wait gets a fresh deadline.
    assert_eq!(
        server.read(&mut buf).unwrap_err().kind(),
        ErrorKind::TimedOut
    );

    client.write_all(b"late").unwrap();
    assert_eq!(server.read(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"late");
    server.set_read_timeout(None).unwrap();
    assert_eq!(server.read_timeout().unwrap(), None);
}

#[test]
fn an_expired_write_timeout_is_timed_out_and_the_stream_stays_usable() {
    let (mut client, mut server) = tcp_pair();
    shrink_send_buffer(&server);
    server.set_write_timeout(Some(SHORT)).unwrap();
    assert_eq!(server.write_timeout().unwrap(), Some(SHORT));
    let data = pattern(BIG);
    let mut sent = 0;
    let err = loop {
        match server.write(&data[sent..]) {
            Ok(n) => sent += n,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(sent > 0);

    // Everything accepted before the timeout arrives, and writing works
    // again once the reader catches up.
    let mut got = vec![0; sent];
    client.read_exact(&mut got).unwrap();
    assert!(got == pattern(sent), "the bytes arrived altered");
    server.write_all(b"!").unwrap();
    let mut one = [0; 1];
    client.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"!");
}

#[test]
fn with_timeout_interrupts_accept_and_read_and_the_sockets_stay_usable() {
    let listener = TcpListener::bind(LOCALHOST).unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(with_timeout(SHORT, || listener.accept().map(drop)).is_err());

    let mut client = TcpStream::connect(addr).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    let mut buf = [0; 8];
    assert!(with_timeout(SHORT, || server.read(&mut buf)).is_err());

    client.write_all(b"ok").unwrap();
    assert_eq!(
        with_timeout(SHORT * 50, || server.read(&mut buf))
            .unwrap()
            .unwrap(),
        2
    );
    assert_eq!(&buf[..2], b"ok");
}

#[test]
fn with_timeout_in_a_spawned_greenlet_leaves_no_wait_behind() {
    let listener = Rc::new(TcpListener::bind(LOCALHOST).unwrap());
    let acceptor = {
        let listener = listener.clone();
        hub::spawn(move || with_timeout(SHORT, || listener.accept().map(drop)).is_err())
    };
    // `run` returns only when nothing waits on a socket any more.
    hub::run();
    assert!(acceptor.join().unwrap(), "Err(Elapsed)");
}

#[test]
fn connect_timeout_connects_and_times_out_on_a_full_backlog() {
    let listener = TcpListener::bind(LOCALHOST).unwrap();
    let addr = listener.local_addr().unwrap();
    let zero = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
    assert_eq!(zero.kind(), ErrorKind::InvalidInput);

    // With a backlog of 0, Linux queues one connection and drops the SYNs
    // of the next ones: their handshake cannot finish until an accept.
    set_backlog(&listener, 0);
    let first = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    let err = TcpStream::connect_timeout(&addr, SHORT).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(with_timeout(SHORT, || TcpStream::connect(addr)).is_err());

    let (_, peer) = listener.accept().unwrap();
    assert_eq!(peer, first.local_addr().unwrap());
}

#[test]
fn connecting_to_a_port_nobody_listens_on_is_connection_refused() {
    // A bound socket that does not listen holds the port, so no other test
    // can take it meanwhile; a SYN to it gets a RST.
    let bound = tokio::net::TcpSocket::new_v4().unwrap();
    bound.bind(LOCALHOST.parse().unwrap()).unwrap();
    let addr = bound.local_addr().unwrap();
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

// ----- 6. kill during accept, read and write -----

/// Spawns `f` with a drop flag on its stack; returns the handle and the
/// flag.
fn spawn_guarded<R: 'static>(f: impl FnOnce() -> R + 'static) -> (JoinHandle<R>, Rc<Cell<bool>>) {
    let dropped = Rc::new(Cell::new(false));
    let guard = DropFlag(dropped.clone());
    let h = hub::spawn(move || {
        let _guard = guard;
        f()
    });
    (h, dropped)
}

/// Kills `h`, which must be blocked, and checks that it unwound and that
/// the hub has nothing left to wait for.
fn kill_and_check<R: 'static>(h: JoinHandle<R>, dropped: &Cell<bool>) {
    assert!(!dropped.get());
    h.greenlet().kill();
    assert!(dropped.get(), "the killed greenlet's destructors ran");
    assert!(h.is_finished());
    assert!(matches!(h.join(), Err(JoinError::Killed)));
    // Returns only if the kill withdrew the greenlet's interest.
    hub::run();
}

#[test]
fn a_greenlet_killed_in_accept_unwinds_and_the_listener_still_accepts() {
    let listener = Rc::new(TcpListener::bind(LOCALHOST).unwrap());
    let addr = listener.local_addr().unwrap();
    let (acceptor, dropped) = {
        let listener = listener.clone();
        spawn_guarded(move || listener.accept().map(drop))
    };
    assert!(is_readable(wait_until_blocked(&acceptor), &*listener));
    kill_and_check(acceptor, &dropped);

    let client = TcpStream::connect(addr).unwrap();
    let (_, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
}

#[test]
fn a_greenlet_killed_in_read_unwinds_and_the_stream_still_reads() {
    let (mut client, server) = tcp_pair();
    let server = Rc::new(server);
    let (reader, dropped) = {
        let server = server.clone();
        spawn_guarded(move || (&*server).read(&mut [0; 8]))
    };
    assert!(is_readable(wait_until_blocked(&reader), &*server));
    kill_and_check(reader, &dropped);

    client.write_all(b"after").unwrap();
    let mut buf = [0; 5];
    (&*server).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"after");
}

#[test]
fn a_greenlet_killed_in_write_unwinds_and_what_it_wrote_arrives() {
    let (mut client, server) = tcp_pair();
    shrink_send_buffer(&server);
    let server = Rc::new(server);
    let (writer, dropped) = {
        let server = server.clone();
        spawn_guarded(move || (&*server).write_all(&pattern(BIG)))
    };
    assert!(is_writable(wait_until_blocked(&writer), &*server));
    kill_and_check(writer, &dropped);

    // Closing sends what the kernel took before the kill, and nothing else.
    drop(server);
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert!(!got.is_empty() && got.len() < BIG, "{} bytes", got.len());
    assert!(got == pattern(got.len()), "the bytes arrived altered");
}

#[test]
fn a_greenlet_killed_in_connect_unwinds() {
    let listener = TcpListener::bind(LOCALHOST).unwrap();
    let addr = listener.local_addr().unwrap();
    set_backlog(&listener, 0);
    let _queued = TcpStream::connect(addr).unwrap();
    let (connector, dropped) = spawn_guarded(move || TcpStream::connect(addr).map(drop));
    assert!(matches!(
        wait_until_blocked(&connector),
        WaitOn::Writable { .. }
    ));
    kill_and_check(connector, &dropped);
}

// ----- the std-shaped API -----

#[test]
fn blocking_calls_work_from_the_main_greenlet_without_run() {
    let listener = TcpListener::bind(LOCALHOST).unwrap();
    let addr = listener.local_addr().unwrap();
    let client = hub::spawn(move || {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(b"hello from a greenlet").unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        reply
    });
    // Main blocks in accept and read; the client runs meanwhile.
    let (mut conn, _) = listener.accept().unwrap();
    let mut request = String::new();
    conn.read_to_string(&mut request).unwrap();
    assert_eq!(request, "hello from a greenlet");
    conn.write_all(request.to_uppercase().as_bytes()).unwrap();
    drop(conn);
    assert_eq!(client.join().unwrap(), "HELLO FROM A GREENLET");
}

#[test]
fn two_greenlets_read_and_write_one_shared_stream_at_once() {
    // One greenlet writes more than the buffers hold while another reads
    // the echo: if reads and writes on one socket could not wait at the
    // same time, this would deadlock.
    let (client, server) = tcp_pair();
    let echo = hub::spawn(move || echo_until_eof(server));
    let client = Rc::new(client);
    let writer = {
        let client = client.clone();
        hub::spawn(move || {
            (&*client).write_all(&pattern(BIG)).unwrap();
            client.shutdown(Shutdown::Write).unwrap();
        })
    };
    let reader = {
        let client = client.clone();
        hub::spawn(move || {
            let mut got = Vec::with_capacity(BIG);
            (&*client).read_to_end(&mut got).unwrap();
            got
        })
    };
    hub::run();
    writer.join().unwrap();
    let got = reader.join().unwrap();
    assert_eq!(got.len(), BIG);
    assert!(got == pattern(BIG), "the bytes arrived altered");
    assert_eq!(echo.join().unwrap(), BIG);
}

#[test]
fn buf_reader_reads_lines_split_across_writes() {
    let (client, server) = tcp_pair();
    let writer = hub::spawn(move || {
        for piece in ["hel", "lo\nwor", "ld\n", "\nno newline"] {
            (&server).write_all(piece.as_bytes()).unwrap();
            hub::yield_now(); // let the reader see each piece on its own
        }
    });
    let mut reader = BufReader::new(client);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        lines.push(line);
    }
    assert_eq!(lines, ["hello\n", "world\n", "\n", "no newline"]);
    writer.join().unwrap();
}

#[test]
fn peek_waits_for_data_and_leaves_it_to_read() {
    let (mut client, mut server) = tcp_pair();
    let writer = hub::spawn(move || client.write_all(b"peekaboo").unwrap());
    let mut buf = [0; 4];
    assert_eq!(server.peek(&mut buf).unwrap(), 4); // blocks main until data
    assert_eq!(&buf, b"peek");
    let mut all = [0; 8];
    server.read_exact(&mut all).unwrap();
    assert_eq!(&all, b"peekaboo");
    writer.join().unwrap();
}

#[test]
fn from_std_wraps_a_listener_and_a_stream() {
    let listener = TcpListener::from_std(std::net::TcpListener::bind(LOCALHOST).unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let client = hub::spawn(move || {
        // A blocking std connect (the kernel completes it on loopback),
        // then made a greenlet stream.
        let mut conn = TcpStream::from_std(std::net::TcpStream::connect(addr).unwrap()).unwrap();
        conn.write_all(b"std").unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
    });
    let (mut conn, _) = listener.accept().unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    assert_eq!(got, "std");
    client.join().unwrap();
}

#[test]
fn socket_options_round_trip() {
    let (client, _server) = tcp_pair();
    client.set_nodelay(true).unwrap();
    assert!(client.nodelay().unwrap());
    client.set_nodelay(false).unwrap();
    assert!(!client.nodelay().unwrap());
    client.set_ttl(42).unwrap();
    assert_eq!(client.ttl().unwrap(), 42);
    assert!(client.take_error().unwrap().is_none());
    let listener = TcpListener::bind(LOCALHOST).unwrap();
    listener.set_ttl(7).unwrap();
    assert_eq!(listener.ttl().unwrap(), 7);
}

// ----- UDP -----

#[test]
fn udp_send_to_and_recv_from_between_two_greenlets() {
    const PINGS: usize = 20;
    let a = UdpSocket::bind(LOCALHOST).unwrap();
    let b = UdpSocket::bind(LOCALHOST).unwrap();
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    // Lock-step ping-pong: never more than one datagram in flight.
    let server = hub::spawn(move || {
        let mut buf = [0; 64];
        for _ in 0..PINGS {
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!(from, a_addr);
            let reply = buf[..n].to_ascii_uppercase();
            assert_eq!(b.send_to(&reply, from).unwrap(), n);
        }
    });
    let client = hub::spawn(move || {
        let mut buf = [0; 64];
        (0..PINGS)
            .map(|i| {
                let ping = format!("ping {i}");
                assert_eq!(a.send_to(ping.as_bytes(), b_addr).unwrap(), ping.len());
                let (n, from) = a.recv_from(&mut buf).unwrap();
                assert_eq!(from, b_addr);
                String::from_utf8(buf[..n].to_vec()).unwrap()
            })
            .collect::<Vec<_>>()
    });
    hub::run();
    server.join().unwrap();
    let expected: Vec<String> = (0..PINGS).map(|i| format!("PING {i}")).collect();
    assert_eq!(client.join().unwrap(), expected);
}

#[test]
fn connected_udp_sockets_send_recv_and_peek() {
    let a = UdpSocket::bind(LOCALHOST).unwrap();
    let b = UdpSocket::bind(LOCALHOST).unwrap();
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    a.connect(b_addr).unwrap();
    b.connect(a_addr).unwrap();
    assert_eq!(a.peer_addr().unwrap(), b_addr);
    let receiver = hub::spawn(move || {
        let mut buf = [0; 16];
        let n = b.peek(&mut buf).unwrap(); // blocks until the datagram
        let peeked = buf[..n].to_vec();
        let (n, from) = b.peek_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&peeked[..], a_addr));
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &peeked[..], "peeks left the datagram queued");
        peeked
    });
    hub::yield_now(); // the receiver blocks first
    assert_eq!(a.send(b"datagram").unwrap(), 8);
    assert_eq!(receiver.join().unwrap(), b"datagram");
}

#[test]
fn udp_read_timeout_is_timed_out() {
    let socket = UdpSocket::bind(LOCALHOST).unwrap();
    let zero = socket.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(zero.kind(), ErrorKind::InvalidInput);
    socket.set_read_timeout(Some(SHORT)).unwrap();
    assert_eq!(socket.read_timeout().unwrap(), Some(SHORT));
    let err = socket.recv_from(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(with_timeout(SHORT, || socket.recv(&mut [0; 8])).is_err());
}

#[test]
fn udp_broadcast_and_ttl_round_trip() {
    let socket = UdpSocket::bind(LOCALHOST).unwrap();
    socket.set_broadcast(true).unwrap();
    assert!(socket.broadcast().unwrap());
    socket.set_ttl(9).unwrap();
    assert_eq!(socket.ttl().unwrap(), 9);
    assert!(socket.take_error().unwrap().is_none());
}

// ----- Unix domain sockets -----

#[test]
fn unix_stream_pair_echoes_between_two_greenlets() {
    let (a, b) = UnixStream::pair().unwrap();
    assert!(
        a.peer_addr().unwrap().as_pathname().is_none(),
        "a pair is unnamed"
    );
    let echo = hub::spawn(move || echo_until_eof(b));
    let a = Rc::new(a);
    let writer = {
        let a = a.clone();
        hub::spawn(move || {
            (&*a).write_all(&pattern(BIG / 4)).unwrap();
            a.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut got = Vec::new();
    (&*a).read_to_end(&mut got).unwrap(); // main reads while `writer` writes
    assert!(got == pattern(BIG / 4), "the bytes arrived altered");
    writer.join().unwrap();
    assert_eq!(echo.join().unwrap(), BIG / 4);
}

#[test]
fn unix_listener_serves_a_greenlet_per_connection() {
    const CLIENTS: usize = 5;
    let path = SocketPath::new("listener");
    let listener = UnixListener::bind(&path.0).unwrap();
    assert_eq!(listener.local_addr().unwrap().as_pathname(), Some(&*path.0));
    let server = hub::spawn(move || {
        for conn in listener.incoming().take(CLIENTS) {
            let conn = conn.unwrap();
            hub::spawn(move || echo_until_eof(conn));
        }
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let path = path.0.clone();
            hub::spawn(move || {
                let mut conn = UnixStream::connect(&path).unwrap();
                assert_eq!(conn.peer_addr().unwrap().as_pathname(), Some(&*path));
                let msg = format!("client {i}\n");
                conn.write_all(msg.as_bytes()).unwrap();
                let mut line = String::new();
                BufReader::new(&conn).read_line(&mut line).unwrap();
                conn.shutdown(Shutdown::Write).unwrap();
                assert_eq!(conn.read(&mut [0; 1]).unwrap(), 0);
                line
            })
        })
        .collect();
    hub::run();
    server.join().unwrap();
    for (i, c) in clients.into_iter().enumerate() {
        assert_eq!(c.join().unwrap(), format!("client {i}\n"));
    }
}

/// Lets the other greenlets run a few rounds; returns whether `h`'s
/// greenlet finished meanwhile (a woken greenlet runs in the next round).
fn finishes_soon<R: 'static>(h: &JoinHandle<R>) -> bool {
    for _ in 0..8 {
        if h.is_finished() {
            return true;
        }
        hub::yield_now();
    }
    h.is_finished()
}

/// A greenlet writing `BIG` bytes to `stream`, which nobody reads.
fn unread_writer(stream: &Rc<UnixStream>) -> JoinHandle<Result<(), ErrorKind>> {
    let stream = stream.clone();
    hub::spawn(move || (&*stream).write_all(&pattern(BIG)).map_err(|e| e.kind()))
}

// Linux tells a Unix stream's epoll nothing of its own write half shut
// down while the send buffer is full (it does for TCP, above): the
// shutdown wakes the writers itself.
#[test]
fn shutting_down_a_unix_streams_write_half_wakes_its_writers_and_its_clones_with_broken_pipe() {
    let (a, _b) = UnixStream::pair().unwrap();
    shrink_send_buffer(&a);
    let clone = Rc::new(a.try_clone().unwrap());
    let a = Rc::new(a);
    let writer = unread_writer(&a);
    assert!(is_writable(wait_until_blocked(&writer), &*a));
    let clones_writer = unread_writer(&clone);
    assert!(is_writable(wait_until_blocked(&clones_writer), &*clone));
    a.shutdown(Shutdown::Write).unwrap();
    assert!(finishes_soon(&writer), "the writer still waits");
    assert!(
        finishes_soon(&clones_writer),
        "the clone's writer still waits"
    );
    assert_eq!(writer.join().unwrap(), Err(ErrorKind::BrokenPipe));
    assert_eq!(clones_writer.join().unwrap(), Err(ErrorKind::BrokenPipe));
}

#[test]
fn a_write_after_a_unix_streams_write_half_is_shut_down_fails_at_once_after_a_full_buffer() {
    let (a, _b) = UnixStream::pair().unwrap();
    shrink_send_buffer(&a);
    let a = Rc::new(a);
    let writer = unread_writer(&a);
    wait_until_blocked(&writer); // its registration: not writable
    writer.kill();
    a.shutdown(Shutdown::Write).unwrap();
    let late = {
        let a = a.clone();
        hub::spawn(move || (&*a).write(b"x").map_err(|e| e.kind()))
    };
    assert!(finishes_soon(&late), "the write waits for room");
    assert_eq!(late.join().unwrap(), Err(ErrorKind::BrokenPipe));
}

/// A look at its readiness (which asks the kernel, whose `poll` says "not
/// writable" with the buffer full) neither hides the shutdown from a
/// writer it woke nor makes a later write wait.
#[test]
fn after_a_unix_streams_write_half_is_shut_down_it_looks_writable_and_writes_fail_at_once() {
    let (a, _b) = UnixStream::pair().unwrap();
    shrink_send_buffer(&a);
    let a = Rc::new(a);
    let writer = unread_writer(&a);
    assert!(is_writable(wait_until_blocked(&writer), &*a));
    a.shutdown(Shutdown::Write).unwrap(); // wakes `writer`, which has not run
    assert_eq!(
        hub::wait_any(&[&a.writable()], Some(Duration::ZERO)),
        Some(0)
    );
    assert!(finishes_soon(&writer), "the woken writer waits again");
    assert_eq!(writer.join().unwrap(), Err(ErrorKind::BrokenPipe));
    assert_eq!(
        hub::wait_any(&[&a.writable()], Some(Duration::ZERO)),
        Some(0)
    );
    assert_eq!((&*a).write(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    let later_clone = a.try_clone().unwrap(); // of the shut-down stream
    let look = hub::wait_any(&[&later_clone.writable()], Some(Duration::ZERO));
    assert_eq!(look, Some(0), "a clone made after the shutdown");
}

#[test]
fn unix_read_timeout_and_kill_during_accept() {
    let (a, _b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(SHORT)).unwrap();
    assert_eq!(a.read_timeout().unwrap(), Some(SHORT));
    assert_eq!(
        (&a).read(&mut [0; 4]).unwrap_err().kind(),
        ErrorKind::TimedOut
    );

    let path = SocketPath::new("kill");
    let listener = Rc::new(UnixListener::bind(&path.0).unwrap());
    let (acceptor, dropped) = {
        let listener = listener.clone();
        spawn_guarded(move || listener.accept().map(drop))
    };
    assert!(is_readable(wait_until_blocked(&acceptor), &*listener));
    kill_and_check(acceptor, &dropped);
}

#[test]
fn unix_connect_to_a_missing_or_dead_path_fails() {
    let path = SocketPath::new("missing");
    let err = UnixStream::connect(&path.0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // A socket file whose listener is gone.
    drop(UnixListener::bind(&path.0).unwrap());
    let err = UnixStream::connect(&path.0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

/// A blocking `connect` to a Unix listener whose backlog is full waits for
/// room (std's does); the non-blocking `connect(2)` says `EAGAIN` instead,
/// which must not reach the caller as `WouldBlock`.
#[test]
fn unix_connect_waits_for_room_in_a_full_backlog() {
    const CLIENTS: usize = 4;
    let path = SocketPath::new("backlog");
    let listener = UnixListener::bind(&path.0).unwrap();
    set_backlog(&listener, 1); // Linux queues two connections at most
                               // The clients are spawned first, so they all connect before the first
                               // accept.
    let clients: Vec<JoinHandle<io::Result<String>>> = (0..CLIENTS)
        .map(|i| {
            let path = path.0.clone();
            hub::spawn(move || {
                let mut conn = UnixStream::connect(&path)?;
                conn.write_all(format!("client {i}").as_bytes())?;
                conn.shutdown(Shutdown::Write)?;
                let mut reply = String::new();
                conn.read_to_string(&mut reply)?;
                Ok(reply)
            })
        })
        .collect();
    let server = hub::spawn(move || {
        for conn in listener.incoming() {
            let conn = conn.unwrap();
            hub::spawn(move || echo_until_eof(conn));
        }
    });
    // Main joins the clients while the server runs; a client that failed
    // to connect leaves the server in `accept`, hence the kill.
    let replies: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    server.kill();
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(
            reply.as_deref().map_err(io::Error::kind),
            Ok(&*format!("client {i}"))
        );
    }
}

/// TCP urgent data: Linux stops a read at the urgent mark once it has
/// copied anything, with more data queued and no new edge to come. The
/// short read must not make the next read wait for an event (a regression
/// would fail with `TimedOut` here instead of reading "world").
#[test]
fn data_after_the_urgent_mark_is_read_without_a_new_event() {
    let (client, server) = tcp_pair();
    let reader = hub::spawn(move || {
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (mut got, mut buf) = (Vec::new(), [0u8; 64]);
        // "hello" and "world" in order; the urgent byte stays out of band.
        while got.len() < 10 {
            let n = (&server).read(&mut buf)?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        io::Result::Ok(got)
    });
    // The reader blocks first, so the data arrives while it waits.
    wait_until_blocked(&reader);
    let send = |bytes: &[u8], flags: libc::c_int| {
        // SAFETY: `bytes` is a live slice for the call; the fd is the
        // client's open socket.
        let n = unsafe {
            libc::send(
                client.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                flags,
            )
        };
        assert_eq!(n, bytes.len() as isize, "{}", io::Error::last_os_error());
    };
    send(b"hello", 0);
    send(b"!", libc::MSG_OOB);
    send(b"world", 0);
    assert_eq!(reader.join().unwrap().unwrap(), b"helloworld");
}

#[test]
fn a_buffered_writer_flushing_into_a_full_socket_as_it_unwinds_fails_without_an_abort() {
    let (client, server) = tcp_pair();
    shrink_send_buffer(&server);
    // Fill the send buffer: nobody reads the client end.
    server.set_write_timeout(Some(SHORT)).unwrap();
    let data = pattern(BIG);
    while (&server).write(&data).is_ok() {}
    server.set_write_timeout(None).unwrap();
    // An expired scope unwinds through a `BufWriter` holding more than
    // the kernel can take; its drop flushes, which would have to wait.
    // Blocking is impossible while unwinding: the flush fails (and
    // `BufWriter` ignores that), where a panic in that destructor would
    // abort the process.
    let cut = with_timeout(Duration::from_millis(1), || {
        let mut w = std::io::BufWriter::with_capacity(2 * BIG, &server);
        w.write_all(&data).unwrap();
        hub::sleep(Duration::from_secs(3600));
    });
    assert!(cut.is_err());
    drop(client);
}

#[test]
fn try_peek_never_switches_and_tells_a_quiet_connection_from_a_closed_one() {
    let listener = TcpListener::bind(LOCALHOST).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let other = hub::spawn(move || r.set(true));
    let mut buf = [0; 4];
    // Quiet: `WouldBlock`, and the ready greenlet did not get to run.
    let e = client.try_peek(&mut buf).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert!(!ran.get());
    other.join().unwrap();
    // The peer closed: 0, once the close has arrived (a blocking peek
    // waits for it).
    drop(server);
    assert_eq!(client.peek(&mut buf).unwrap(), 0);
    assert_eq!(client.try_peek(&mut buf).unwrap(), 0);
    // Closed here: the same error as every other call.
    client.close();
    assert!(client.try_peek(&mut buf).is_err());
}

// ----- into_std -----

/// An accepted connection leaves this thread's hub with `into_std` and is
/// served by another thread's hub (`from_std`); the descriptor is the
/// same one, closed once, by its last owner.
#[test]
fn into_std_moves_a_connection_to_another_threads_hub() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = hub::spawn(move || {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(b"ping").unwrap();
        let mut reply = Vec::new();
        conn.read_to_end(&mut reply).unwrap();
        reply
    });
    let (conn, _) = listener.accept().unwrap();
    let fd = conn.as_raw_fd();
    let moved = conn.into_std();
    assert_eq!(moved.as_raw_fd(), fd, "the same descriptor");
    let worker = std::thread::spawn(move || {
        let conn = TcpStream::from_std(moved).unwrap();
        let mut buf = [0; 4];
        (&conn).read_exact(&mut buf).unwrap();
        (&conn).write_all(&buf.to_ascii_uppercase()).unwrap();
        // Dropped here: the client reads to the end.
    });
    assert_eq!(client.join().unwrap(), b"PING");
    worker.join().unwrap();

    // A listener, and a UDP socket, taken back for blocking use.
    let std_listener = listener.into_std();
    std_listener.set_nonblocking(false).unwrap();
    let connector = std::thread::spawn(move || std::net::TcpStream::connect(addr).is_ok());
    assert!(std_listener.accept().is_ok());
    assert!(connector.join().unwrap());
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = udp.local_addr().unwrap();
    let udp = udp.into_std();
    udp.set_nonblocking(false).unwrap();
    udp.send_to(b"x", udp_addr).unwrap();
    let mut buf = [0; 1];
    assert_eq!(udp.recv_from(&mut buf).unwrap().0, 1);
}
