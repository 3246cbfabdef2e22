//! `net::Readiness` in multi-waits (a socket beside events and joins), a
//! `ServerHandle` as something to wait for, and timed waits that the hub
//! gets to late: what arrived within the timeout counts.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::time::Duration;

use greenlet::hub::{self, Event, Waitable};
use greenlet::net::{TcpListener, TcpStream, UnixStream};

/// A connected pair of TCP streams on this thread's hub.
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// A peer thread that writes a byte to `client` once told to (through the
/// returned sender): data that comes from outside the hub.
fn writes_when_told(client: TcpStream) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (go, told) = mpsc::channel::<()>();
    let client = client.into_std();
    let peer = std::thread::spawn(move || {
        told.recv().unwrap();
        (&client).write_all(b"x").unwrap();
    });
    (go, peer)
}

/// Runs `f` on a thread of its own and fails if it has not returned
/// within a minute: a lost wake-up or a leaked I/O wait shows as a hang.
fn within_a_minute(f: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let t = std::thread::spawn(move || {
        f();
        done.send(()).unwrap();
    });
    match finished.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => t.join().unwrap(),
        Err(_) if t.is_finished() => std::panic::resume_unwind(t.join().unwrap_err()),
        Err(_) => panic!("hung"),
    }
}

/// Sends `bytes` on `socket` with `MSG_OOB`: its last byte is TCP urgent
/// data, the ones before it in-band.
fn send_with_an_urgent_byte(socket: &impl std::os::fd::AsRawFd, bytes: &[u8]) {
    // SAFETY: `bytes` is live for the call; the fd is an open socket,
    // borrowed from `socket`.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_OOB,
        )
    };
    assert_eq!(sent, bytes.len() as isize);
}

#[test]
fn readable_wakes_a_multi_wait_for_data_and_for_the_end_of_the_stream() {
    let (mut client, server) = pair();
    let never = Event::new();
    let readable = server.readable();
    let either: [&dyn Waitable; 2] = [&readable, &never];
    let writer = hub::spawn(move || {
        hub::yield_now();
        client.write_all(b"x").unwrap();
        client
    });
    assert_eq!(hub::wait_any(&either, None), Some(0));
    let mut byte = [0];
    (&server).read_exact(&mut byte).unwrap();
    // Drained: not ready again until the peer does something.
    assert_eq!(hub::wait_any(&either, Some(Duration::ZERO)), None);
    let client = writer.join().unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(hub::wait_any(&either, None), Some(0));
    assert_eq!(
        (&server).read(&mut byte).unwrap(),
        0,
        "the end of the stream"
    );
}

#[test]
fn writable_is_ready_while_the_send_buffer_has_room() {
    let (client, _server) = pair();
    let writable = client.writable();
    assert_eq!(hub::wait_any(&[writable], Some(Duration::ZERO)), Some(0));
    let (a, _b) = UnixStream::pair().unwrap();
    assert_eq!(hub::wait_any(&[a.writable()], None), Some(0));
}

#[test]
fn a_greenlet_killed_in_a_socket_wait_leaves_nothing_for_run_to_wait_for() {
    within_a_minute(|| {
        let (_client, server) = pair();
        let server = std::rc::Rc::new(server);
        let s = server.clone();
        let waiter = hub::spawn(move || hub::wait_any(&[s.readable()], None));
        hub::yield_now(); // it waits on the socket
        waiter.kill();
        // Had the socket wait been left counted, `run` would park in
        // `epoll_wait` for ever.
        hub::run();
    });
}

#[test]
fn a_daemons_socket_wait_does_not_keep_run_going() {
    within_a_minute(|| {
        let (client, server) = pair();
        let listener = hub::spawn_daemon(move || hub::wait_any(&[server.readable()], None));
        hub::run(); // returns although the daemon waits
        assert!(!listener.is_finished());
        (&client).write_all(b"x").unwrap();
        // Main's yields let the hub poll: the daemon's socket is ready.
        while !listener.is_finished() {
            hub::yield_now();
        }
        assert_eq!(listener.join().unwrap(), Some(0));
    });
}

#[test]
fn an_ordinary_socket_wait_keeps_run_going_until_it_is_ready() {
    within_a_minute(|| {
        let (client, server) = pair();
        let waiter = hub::spawn(move || hub::wait_any(&[server.readable()], None));
        // The data comes from another thread once the hub has nothing else
        // to run: `run` must wait for it.
        let (go, peer) = writes_when_told(client);
        hub::spawn(move || {
            hub::yield_now();
            go.send(()).unwrap();
        });
        hub::run(); // keeps going until the data comes
        assert_eq!(waiter.join().unwrap(), Some(0));
        peer.join().unwrap();
    });
}

/// Main inside `daemon`, in a multi-wait on a socket that another thread
/// will write to, waits for it, as a plain read there does (review 55: it
/// was told it would block forever).
#[test]
fn main_in_daemon_waits_on_a_socket_in_a_multi_wait() {
    within_a_minute(|| {
        let (client, server) = pair();
        let (go, peer) = writes_when_told(client);
        let _ticker = hub::spawn_daemon(move || {
            hub::yield_now();
            go.send(()).unwrap();
        });
        let got = hub::daemon(|| hub::wait_any(&[server.readable()], None));
        assert_eq!(got, Some(0));
        peer.join().unwrap();
    });
}

/// Among ready things, a socket counts from when its data came: an event
/// set before comes first (review 55: a socket always came first).
#[test]
fn an_event_set_before_a_sockets_data_comes_first() {
    let (client, server) = pair();
    let event = Event::new();
    let readable = server.readable();
    let both: [&dyn Waitable; 2] = [&readable, &event];
    // Not ready yet: nothing sent (the hub learns it would block).
    assert_eq!(hub::wait_any(&both, Some(Duration::ZERO)), None);
    event.set();
    (&client).write_all(b"x").unwrap();
    // Let the hub see the socket's event.
    while hub::wait_any(&[&readable as &dyn Waitable], Some(Duration::ZERO)).is_none() {}
    assert_eq!(hub::wait(&both, None, None), [1, 0]);
    assert_eq!(hub::wait_any(&both, None), Some(1));
}

/// The same with a socket never waited on before its data came: it counts
/// from its data's event, not from its registration (review 55).
#[test]
fn an_event_set_before_a_fresh_sockets_data_comes_first() {
    let (client, server) = pair();
    let event = Event::new();
    event.set();
    (&client).write_all(b"x").unwrap();
    let readable = server.readable();
    // Let the hub see the socket's event.
    while hub::wait_any(&[&readable as &dyn Waitable], Some(Duration::ZERO)).is_none() {}
    let both: [&dyn Waitable; 2] = [&readable, &event];
    assert_eq!(hub::wait_any(&both, None), Some(1));
}

/// Listeners (a connection to accept), UDP sockets (a datagram) and any
/// descriptor through `AsyncFd` (a pipe) have readiness too.
#[test]
fn listeners_udp_sockets_and_async_fds_have_readiness() {
    use greenlet::net::{AsyncFd, UdpSocket};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    assert_eq!(
        hub::wait_any(&[listener.readable()], Some(Duration::ZERO)),
        None
    );
    let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    assert_eq!(hub::wait_any(&[listener.readable()], None), Some(0));
    listener.accept().unwrap();

    let (a, b) = (
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    );
    assert_eq!(hub::wait_any(&[b.readable()], Some(Duration::ZERO)), None);
    assert_eq!(hub::wait_any(&[a.writable()], None), Some(0));
    a.send_to(b"d", b.local_addr().unwrap()).unwrap();
    assert_eq!(hub::wait_any(&[b.readable()], None), Some(0));

    let (reader, mut writer) = std::io::pipe().unwrap();
    let reader = AsyncFd::new(reader).unwrap();
    let event = Event::new();
    let readable = reader.readable();
    let either: [&dyn Waitable; 2] = [&readable, &event];
    assert_eq!(hub::wait_any(&either, Some(Duration::ZERO)), None);
    writer.write_all(b"p").unwrap();
    assert_eq!(hub::wait_any(&either, None), Some(0));
}

/// TCP urgent data alone does not make a stream readable: an ordinary
/// read skips the urgent byte and would block (review 44: `readable()`
/// asked `poll` for `POLLPRI` too, so a handler waiting for "a request or
/// the stop" was told "readable" and blocked in its read). Data after it
/// does.
#[test]
fn urgent_data_alone_does_not_make_a_stream_readable() {
    within_a_minute(|| {
        let (client, server) = pair();
        send_with_an_urgent_byte(&client, b"!");
        // Its event wakes the wait, which looks again and waits on.
        let ready = hub::wait_any(&[server.readable()], Some(Duration::from_millis(50)));
        assert_eq!(ready, None);
        (&client).write_all(b"x").unwrap();
        assert_eq!(hub::wait_any(&[server.readable()], None), Some(0));
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 4];
        assert_eq!((&server).read(&mut buf).unwrap(), 1);
        assert_eq!(&buf[..1], b"x");
    });
}

/// How long the timed waits below may wait, and how far past it the
/// greenlet that made them ready runs on before the hub looks (on the
/// paused clock: the hub then fires the wait's timer before it polls).
const TIMEOUT: Duration = Duration::from_millis(20);
const LATE: Duration = Duration::from_millis(50);

/// A read whose data arrived within its timeout returns the data, even if
/// the hub gets to the wait only after the deadline (a blocking socket's
/// read returns what arrived by the time its thread runs again).
#[test]
fn a_read_whose_data_came_in_time_returns_it_though_the_hub_looked_late() {
    hub::time::pause();
    let (client, server) = pair();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    let reader = hub::spawn(move || {
        let mut buf = [0u8; 8];
        (&client).read(&mut buf).map_err(|e| e.kind())
    });
    hub::yield_now(); // it waits, its deadline TIMEOUT on
    (&server).write_all(b"x").unwrap();
    hub::time::advance(LATE); // this greenlet goes on past the deadline
    assert_eq!(reader.join().unwrap(), Ok(1));
    // With nothing there, the timeout holds.
    let (client, _server) = pair();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0u8; 8];
    let waited = (&client).read(&mut buf).map_err(|e| e.kind());
    assert_eq!(waited, Err(std::io::ErrorKind::TimedOut));
    hub::time::resume();
}

/// The same for a datagram, an `AsyncFd` over a pipe, and
/// `hub::wait_readable`.
#[test]
fn datagrams_pipes_and_readiness_waits_that_came_in_time_count_though_the_hub_looked_late() {
    use greenlet::net::{AsyncFd, UdpSocket};
    hub::time::pause();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let to = udp.local_addr().unwrap();
    let receiver = hub::spawn(move || {
        let mut buf = [0u8; 8];
        udp.recv_from(&mut buf)
            .map(|(n, _)| n)
            .map_err(|e| e.kind())
    });
    let (pipe_r, mut pipe_w) = std::io::pipe().unwrap();
    let pipe_r = AsyncFd::new(pipe_r).unwrap();
    pipe_r.set_read_timeout(Some(TIMEOUT)).unwrap();
    let pipe_reader = hub::spawn(move || {
        let mut buf = [0u8; 8];
        (&pipe_r).read(&mut buf).map_err(|e| e.kind())
    });
    let (raw_r, mut raw_w) = std::io::pipe().unwrap();
    let waiter =
        hub::spawn(move || hub::wait_readable(&raw_r, Some(TIMEOUT)).map_err(|e| e.kind()));
    hub::yield_now(); // all three wait, their deadlines TIMEOUT on
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"dgram", to)
        .unwrap();
    pipe_w.write_all(b"pipe").unwrap();
    raw_w.write_all(b"raw").unwrap();
    hub::time::advance(LATE);
    assert_eq!(receiver.join().unwrap(), Ok(5));
    assert_eq!(pipe_reader.join().unwrap(), Ok(4));
    assert_eq!(waiter.join().unwrap(), Ok(()));
    hub::time::resume();
}

/// An `AsyncFd` operation may switch away after its syscall (it is the
/// program's code): data that comes meanwhile, seen by the hub's poll,
/// is not forgotten when the operation returns its earlier `WouldBlock`
/// (the registration is edge-triggered: no second event would come).
#[test]
fn data_that_comes_while_an_async_fd_op_is_switched_away_is_read() {
    within_a_minute(|| {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = std::rc::Rc::new(greenlet::net::AsyncFd::new(a).unwrap());
        // Another greenlet waits on a channel, so the hub polls between
        // rounds rather than only when nothing is ready.
        let (tx, rx) = hub::channel::<()>();
        let polls = hub::spawn(move || {
            let _ = rx.recv();
        });
        let (in_op, go) = (Event::new(), Event::new());
        let reader = {
            let (fd, in_op, go) = (fd.clone(), in_op.clone(), go.clone());
            hub::spawn(move || {
                let mut first = true;
                let mut buf = [0u8; 8];
                fd.read_with(|s| {
                    let r = (&*s).read(&mut buf);
                    if std::mem::take(&mut first) {
                        in_op.set();
                        go.wait(); // away, after the syscall said WouldBlock
                    }
                    r
                })
            })
        };
        in_op.wait();
        b.write_all(b"x").unwrap();
        hub::yield_now(); // a round: the hub polls and sees the data
        hub::yield_now();
        go.set();
        assert_eq!(reader.join().unwrap().unwrap(), 1);
        drop(tx);
        polls.join().unwrap();
    });
}

/// An `AsyncFd` operation that switches away after its `WouldBlock` (its
/// closure runs user code, here a read of a pipe) and comes back to data
/// that arrived meanwhile with a TCP urgent byte returns that data. The
/// event came as `EPOLLIN | EPOLLPRI`, which wakes waits to look again
/// without a multi-wait's stamp; the operation compared that stamp, took
/// the event for none, and waited for an edge already delivered.
#[test]
fn an_async_fd_op_that_switches_away_sees_data_that_came_with_an_urgent_byte() {
    use std::rc::Rc;

    use greenlet::net::AsyncFd;

    within_a_minute(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let tcp = AsyncFd::new(listener.accept().unwrap().0).unwrap();
        let (pipe_reader, mut pipe_writer) = std::io::pipe().unwrap();
        let pipe = Rc::new(AsyncFd::new(pipe_reader).unwrap());
        let go = Event::new();
        let sender = {
            let go = go.clone();
            hub::spawn(move || {
                go.wait();
                send_with_an_urgent_byte(&client, b"hello!"); // "hello" in-band, "!" urgent
                pipe_writer.write_all(b"x").unwrap();
                client
            })
        };
        let mut first = true;
        let mut buf = [0u8; 16];
        let n = tcp
            .read_with(|s| {
                let read = (&*s).read(&mut buf);
                if std::mem::take(&mut first) {
                    assert_eq!(
                        read.as_ref().unwrap_err().kind(),
                        std::io::ErrorKind::WouldBlock
                    );
                    go.set();
                    (&*pipe).read_exact(&mut [0u8; 1]).unwrap();
                }
                read
            })
            .unwrap();
        assert_eq!(&buf[..n], b"hello");
        drop(sender.join().unwrap());
    });
}

/// `hub::wait` orders a socket's data by when the hub's poll saw it, also
/// when an urgent byte came with the data: an event set before the data
/// came is first. (The poll took an `EPOLLIN | EPOLLPRI` event for urgent
/// data alone and gave the socket no stamp, so it counted from its
/// previous event and came first.)
#[test]
fn wait_orders_data_that_came_with_an_urgent_byte_by_when_the_poll_saw_it() {
    use std::rc::Rc;

    use greenlet::net::AsyncFd;

    within_a_minute(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let server = Rc::new(listener.accept().unwrap().0);
        // A first event on the socket, so that it has a stamp to keep.
        let first = {
            let server = server.clone();
            hub::spawn(move || (&*server).read_exact(&mut [0u8; 1]).unwrap())
        };
        hub::yield_now(); // it blocks on the empty socket
        client.write_all(b"a").unwrap();
        first.join().unwrap();
        let event = Event::new();
        event.set();
        // Then "hello" in-band and "!" urgent, which the hub's poll sees
        // while a greenlet waits on a pipe.
        send_with_an_urgent_byte(&client, b"hello!");
        let (pipe_reader, mut pipe_writer) = std::io::pipe().unwrap();
        let pipe = AsyncFd::new(pipe_reader).unwrap();
        let waiter = hub::spawn(move || (&pipe).read_exact(&mut [0u8; 1]).unwrap());
        hub::yield_now(); // it blocks on the empty pipe
        pipe_writer.write_all(b"x").unwrap();
        waiter.join().unwrap(); // the hub polled: the socket's event is in
        let readable = server.readable();
        let items: [&dyn Waitable; 2] = [&readable, &event];
        assert_eq!(hub::wait(&items, None, None), [1, 0]);
    });
}

/// Data that came with an urgent byte while `hub::wait` waited counts,
/// also once another greenlet has read it before the waiter runs (the
/// docs: an event the hub saw while the call waited counts even if the
/// socket is no longer ready then). The event took no stamp, so the
/// drained socket was neither ready nor "ready since", and the wait timed
/// out. (The timeout only bounds a failure: a passing wait returns at
/// once.)
#[test]
fn wait_counts_data_that_came_with_an_urgent_byte_and_was_read_before_it_ran() {
    use std::rc::Rc;

    within_a_minute(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let server = Rc::new(listener.accept().unwrap().0);
        let reader = {
            let server = server.clone();
            hub::spawn(move || (&*server).read(&mut [0u8; 64]).unwrap())
        };
        let waiter = {
            let server = server.clone();
            hub::spawn(move || {
                let never = Event::new();
                let readable = server.readable();
                let items: [&dyn Waitable; 2] = [&readable, &never];
                hub::wait(&items, Some(1), Some(Duration::from_secs(30)))
            })
        };
        hub::yield_now(); // both block; the reader was listed first
        send_with_an_urgent_byte(&client, b"hello!"); // "hello" in-band, "!" urgent
        assert_eq!(reader.join().unwrap(), 5, "the in-band bytes");
        assert_eq!(waiter.join().unwrap(), [0]);
    });
}
