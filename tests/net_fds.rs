//! File-descriptor accounting: every socket closes its fd, on
//! every path (normal drop, reset, refused or timed-out connect, kill in
//! accept, read, write or connect, `with_timeout`, `hub::run_main` ending
//! with greenlets still blocked), and a thread's hub closes its own epoll
//! and waker fds when the thread exits, also while other threads still
//! hold its `Remote` or a channel `Sender`, or a greenlet the exit left
//! suspended holds the hub.
//!
//! A thread's exit alone kills no started greenlet: it leaves them
//! suspended, what their frames own leaked (see the crate's **Threads**
//! rule), so the threads here end their greenlets first, with
//! `hub::run_main`.
//!
//! ONE test in this binary: tests of one binary run on parallel threads
//! that share the process's fd table, so any other test would disturb the
//! counts.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use greenlet::hub::{self, with_timeout, JoinHandle};
use greenlet::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use greenlet::{stats, WaitOn};

const LOCALHOST: &str = "127.0.0.1:0";
const SHORT: Duration = Duration::from_millis(10);

/// The process's open fds, sorted.
fn open_fds() -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // The listing's own fd is closed by now: drop it by that sign.
    fds.retain(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok());
    fds.sort();
    fds
}

/// What `/proc/self/fd/N` points to, for a useful failure message.
fn describe(fds: &[String]) -> Vec<String> {
    fds.iter()
        .map(|fd| {
            let target = std::fs::read_link(format!("/proc/self/fd/{fd}"));
            format!(
                "{fd} -> {}",
                target.map_or("?".into(), |t| t.display().to_string())
            )
        })
        .collect()
}

/// Fails with the fds in `after` that were not in `before`.
fn assert_same_fds(before: &[String], after: &[String], what: &str) {
    let new: Vec<String> = after
        .iter()
        .filter(|fd| !before.contains(fd))
        .cloned()
        .collect();
    let gone: Vec<String> = before
        .iter()
        .filter(|fd| !after.contains(fd))
        .cloned()
        .collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "{what}: fds opened and not closed: {:?}; closed but not opened here: {gone:?}",
        describe(&new)
    );
}

#[test]
fn every_fd_is_closed_and_a_hubs_own_fds_go_with_its_thread() {
    let before = open_fds();
    thread::spawn(workload).join().unwrap();
    assert_same_fds(&before, &open_fds(), "after a thread that used sockets");
    thread::spawn(|| hub::run_main(end_with_greenlets_blocked))
        .join()
        .unwrap();
    assert_same_fds(
        &before,
        &open_fds(),
        "after run_main ended with greenlets blocked",
    );
    let (remote, sender) = thread::spawn(|| hub::run_main(outlived_by_its_mailbox))
        .join()
        .unwrap();
    assert_same_fds(
        &before,
        &open_fds(),
        "after a thread whose Remote and channel Sender live on",
    );
    assert!(remote.spawn(|| ()).is_err(), "the hub's thread has exited");
    assert!(sender.send(1).is_err(), "the receiver's hub has exited");
    // A thread that exits with a greenlet left blocked (no `run_main`):
    // the greenlet stays suspended and its frames keep the hub, but the
    // hub's epoll instance and waker close all the same (the epoll one
    // used to stay open, one per such thread).
    for _ in 0..3 {
        thread::spawn(|| {
            // First used before the runtime, so destroyed after the hub's
            // exit: its socket then leaves the closed instance alone.
            LATE.with(|_| ());
            let _remote = hub::remote(); // the reactor opens its fds
            LATE.with(|late| *late.borrow_mut() = Some(UdpSocket::bind(LOCALHOST).unwrap()));
            hub::spawn(|| hub::sleep(Duration::from_secs(3600)));
            hub::yield_now(); // it blocks in its sleep
        })
        .join()
        .unwrap();
    }
    assert_same_fds(
        &before,
        &open_fds(),
        "after threads that exited with a greenlet left blocked",
    );
}

thread_local! {
    /// A socket dropped by a thread-local's destructor after the hub's exit.
    static LATE: std::cell::RefCell<Option<UdpSocket>> = const { std::cell::RefCell::new(None) };
}

/// A thread whose hub's mailbox outlives it: a `Remote` and a channel
/// `Sender` given to another thread. The hub's waker fd closes with the
/// hub, not with the last of them.
fn outlived_by_its_mailbox() -> (hub::Remote, hub::Sender<u8>) {
    let (tx, rx) = hub::channel::<u8>();
    hub::spawn(move || rx.recv());
    hub::yield_now(); // blocked in `recv` when `run_main` ends
    (hub::remote(), tx)
}

/// Every phase runs with the hub's reactor already open, and must leave the
/// fds as it found them.
fn workload() {
    let remote = hub::remote(); // creates the reactor: its fds stay open
    let base = open_fds();
    let phases: [(&str, fn()); 11] = [
        ("tcp echo", tcp_echo),
        ("resets", resets),
        ("refused connect", refused_connect),
        ("connect timeouts", connect_timeouts),
        ("kills", kills),
        ("timeouts", timeouts),
        ("udp", udp),
        ("unix", unix),
        ("from_std", from_std),
        ("channels", channels),
        ("remote", remote_work),
    ];
    for (name, phase) in phases {
        phase();
        assert_eq!(
            blocked(),
            0,
            "{name}: a greenlet is still blocked:\n{}",
            stats()
        );
        assert_same_fds(&base, &open_fds(), name);
    }
    drop(remote);
}

/// Work that ends with greenlets blocked in accept, read, connect and
/// recv: `run_main` ending unwinds them, which must close their sockets.
fn end_with_greenlets_blocked() {
    let listener = TcpListener::bind(LOCALHOST).unwrap();
    let addr = listener.local_addr().unwrap();
    hub::spawn(move || listener.accept().map(drop));
    let (client, server) = tcp_pair();
    hub::spawn(move || (&server).read(&mut [0; 8]));
    let full = full_listener();
    let full_addr = full.local_addr().unwrap();
    hub::spawn(move || TcpStream::connect(full_addr).map(drop));
    let (tx, rx) = hub::channel::<u8>();
    hub::spawn(move || rx.recv());
    hub::yield_now(); // they all block
    assert_eq!(blocked(), 4, "{}", stats());
    // `tx`, `client` and `full` go first, the blocked greenlets when
    // `run_main` ends.
    drop((tx, client, full, addr));
}

/// How many greenlets are blocked in a hub call (the hub's own loop aside).
fn blocked() -> usize {
    stats()
        .greenlets
        .iter()
        .filter(|g| !matches!(g.waiting_on, None | Some(WaitOn::Hub)))
        .count()
}

// ----- phases -----

/// A connected pair, made from main (the handshake needs no accept).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(LOCALHOST).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

fn echo_until_eof<S>(conn: S) -> usize
where
    for<'a> &'a S: Read + Write,
{
    let mut buf = [0u8; 4096];
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

fn tcp_echo() {
    const CONNS: usize = 50;
    let listener = TcpListener::bind(LOCALHOST).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = hub::spawn(move || {
        let handlers: Vec<_> = listener
            .incoming()
            .take(CONNS)
            .map(|conn| {
                let conn = conn.unwrap();
                hub::spawn(move || echo_until_eof(conn))
            })
            .collect();
        handlers
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum::<usize>()
    });
    let clients: Vec<_> = (0..CONNS)
        .map(|i| {
            hub::spawn(move || {
                let mut conn = TcpStream::connect(addr).unwrap();
                let msg = format!("message {i}");
                conn.write_all(msg.as_bytes()).unwrap();
                conn.shutdown(Shutdown::Write).unwrap();
                let mut back = String::new();
                conn.read_to_string(&mut back).unwrap();
                assert_eq!(back, msg);
                msg.len()
            })
        })
        .collect();
    hub::run();
    let sent: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(server.join().unwrap(), sent);
}

fn setsockopt<T>(socket: &impl AsRawFd, name: libc::c_int, value: T) {
    // SAFETY: the fd is an open socket borrowed for the call; the option
    // points to a live `T` whose size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", io::Error::last_os_error());
}

/// Closes with a RST (`SO_LINGER` 0).
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(&stream, libc::SO_LINGER, linger);
    drop(stream);
}

fn resets() {
    // A blocked reader sees the reset.
    let (client, server) = tcp_pair();
    let reader = hub::spawn(move || (&server).read(&mut [0; 8]).map_err(|e| e.kind()));
    hub::yield_now();
    reset(client);
    assert_eq!(reader.join().unwrap(), Err(ErrorKind::ConnectionReset));
    // A writer does too.
    let (client, server) = tcp_pair();
    reset(client);
    let err = loop {
        if let Err(e) = (&server).write(b"x") {
            break e;
        }
    };
    assert!(matches!(
        err.kind(),
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
    ));
}

fn refused_connect() {
    // A bound, non-listening socket holds the port; a SYN to it gets a RST.
    let bound = tokio::net::TcpSocket::new_v4().unwrap();
    bound.bind(LOCALHOST.parse().unwrap()).unwrap();
    let addr = bound.local_addr().unwrap();
    for _ in 0..3 {
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    }
}

/// A listener with one connection queued and a backlog of 0: Linux drops
/// further SYNs, so other connects wait.
struct FullListener {
    listener: TcpListener,
    _queued: TcpStream,
}

impl FullListener {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

fn full_listener() -> FullListener {
    let listener = TcpListener::bind(LOCALHOST).unwrap();
    // SAFETY: the fd is a listening socket borrowed for the call; a second
    // `listen` only changes the backlog.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let queued = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    FullListener {
        listener,
        _queued: queued,
    }
}

fn connect_timeouts() {
    let full = full_listener();
    let addr = full.local_addr().unwrap();
    let err = TcpStream::connect_timeout(&addr, SHORT).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(with_timeout(SHORT, || TcpStream::connect(addr)).is_err());
}

/// Blocks `h` (main yields until it waits), kills it, checks the hub has
/// nothing left to wait for.
fn kill_when_blocked<R: 'static>(h: JoinHandle<R>) {
    while !stats()
        .greenlets
        .iter()
        .any(|g| g.id == h.greenlet().id() && g.waiting_on.is_some())
    {
        assert!(!h.is_finished());
        hub::yield_now();
    }
    h.kill();
    assert!(h.is_finished());
    hub::run(); // returns only if the kill withdrew the wait
}

fn kills() {
    let listener = TcpListener::bind(LOCALHOST).unwrap();
    kill_when_blocked(hub::spawn(move || listener.accept().map(drop)));

    let (client, server) = tcp_pair();
    kill_when_blocked(hub::spawn(move || (&server).read(&mut [0; 8])));
    drop(client);

    let (client, server) = tcp_pair();
    setsockopt(&server, libc::SO_SNDBUF, 4096 as libc::c_int);
    kill_when_blocked(hub::spawn(move || (&server).write_all(&vec![7; 4 << 20])));
    drop(client);

    let full = full_listener();
    let addr = full.local_addr().unwrap();
    kill_when_blocked(hub::spawn(move || TcpStream::connect(addr).map(drop)));
    drop(full);
}

fn timeouts() {
    let (client, server) = tcp_pair();
    server.set_read_timeout(Some(SHORT)).unwrap();
    let err = (&server).read(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(with_timeout(SHORT, || (&client).read(&mut [0; 8])).is_err());

    let listener = Rc::new(TcpListener::bind(LOCALHOST).unwrap());
    let acceptor = {
        let listener = listener.clone();
        hub::spawn(move || with_timeout(SHORT, || listener.accept().map(drop)).is_err())
    };
    hub::run();
    assert!(acceptor.join().unwrap());
}

fn udp() {
    let a = UdpSocket::bind(LOCALHOST).unwrap();
    let b = UdpSocket::bind(LOCALHOST).unwrap();
    let b_addr = b.local_addr().unwrap();
    let receiver = hub::spawn(move || {
        let mut buf = [0; 16];
        let (n, _) = b.recv_from(&mut buf).unwrap();
        b.set_read_timeout(Some(SHORT)).unwrap();
        let timed_out = b.recv_from(&mut buf).unwrap_err().kind();
        (buf[..n].to_vec(), timed_out)
    });
    hub::yield_now();
    a.send_to(b"dgram", b_addr).unwrap();
    assert_eq!(
        receiver.join().unwrap(),
        (b"dgram".to_vec(), ErrorKind::TimedOut)
    );
}

fn unix() {
    let (a, b) = UnixStream::pair().unwrap();
    let echo = hub::spawn(move || echo_until_eof(b));
    (&a).write_all(b"pair").unwrap();
    a.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    (&a).read_to_end(&mut back).unwrap();
    assert_eq!(back, b"pair");
    assert_eq!(echo.join().unwrap(), 4);

    let path = std::env::temp_dir().join(format!("greenlet-fds-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = Rc::new(UnixListener::bind(&path).unwrap());
    let server = {
        let listener = listener.clone();
        hub::spawn(move || echo_until_eof(listener.accept().unwrap().0))
    };
    let mut conn = UnixStream::connect(&path).unwrap();
    conn.write_all(b"listener").unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    conn.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"listener");
    assert_eq!(server.join().unwrap(), 8);
    kill_when_blocked(hub::spawn(move || listener.accept().map(drop)));
    std::fs::remove_file(&path).unwrap();
}

fn from_std() {
    let listener = TcpListener::from_std(std::net::TcpListener::bind(LOCALHOST).unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::from_std(std::net::TcpStream::connect(addr).unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (&client).write_all(b"std").unwrap();
    let mut buf = [0; 3];
    (&server).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"std");
}

fn channels() {
    let (tx, rx) = hub::channel::<usize>();
    let senders: Vec<_> = (0..2)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || (0..1000).for_each(|i| tx.send(t * 1000 + i).unwrap()))
        })
        .collect();
    drop(tx);
    let total: usize = rx.iter().count();
    senders.into_iter().for_each(|s| s.join().unwrap());
    assert_eq!(total, 2000);
    let (tx, rx) = hub::channel::<u8>();
    assert!(rx.recv_timeout(SHORT).is_err());
    drop((tx, rx));
}

fn remote_work() {
    let (tx, rx) = hub::channel();
    let remote = hub::remote();
    thread::spawn(move || {
        remote
            .spawn(move || tx.send(thread::current().id()).unwrap())
            .unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(rx.recv(), Ok(thread::current().id()));
}
