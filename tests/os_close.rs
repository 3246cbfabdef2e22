//! Closing a socket that other greenlets are blocked on, and `try_clone`.

use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub;
use std::os::fd::{AsFd, AsRawFd};

use greenlet::net::{AsyncFd, TcpListener, TcpStream, UdpSocket, UnixStream};

/// A connected pair of TCP streams.
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

#[test]
fn a_reader_blocked_on_a_socket_is_woken_with_an_error_by_close() {
    let (client, server) = tcp_pair();
    let server = Rc::new(server);
    let reader = {
        let server = server.clone();
        hub::spawn(move || {
            let mut buf = [0u8; 16];
            (&*server).read(&mut buf)
        })
    };
    hub::yield_now(); // the reader blocks: nothing was sent
    assert!(!reader.is_finished());
    server.close(); // from another greenlet (main)
    let err = reader.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted);
    assert!(err.to_string().contains("closed"), "{err}");
    // Later calls fail the same way, at once; closing again is harmless.
    let err = (&*server).write(b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted);
    server.close();
    // The peer sees the end of the stream.
    let mut rest = Vec::new();
    assert_eq!((&client).read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn close_wakes_every_waiter_of_both_directions() {
    let (a, _b) = UnixStream::pair().unwrap();
    let a = Rc::new(a);
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let a = a.clone();
            hub::spawn(move || (&*a).read(&mut [0u8; 4]).map_err(|e| e.kind()))
        })
        .collect();
    hub::yield_now();
    a.close();
    for r in readers {
        assert_eq!(r.join().unwrap(), Err(ErrorKind::ConnectionAborted));
    }
}

#[test]
fn close_wakes_a_blocked_accept_and_a_blocked_recv() {
    let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let acceptor = {
        let l = listener.clone();
        hub::spawn(move || l.accept().map(drop).map_err(|e| e.kind()))
    };
    let udp = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
    let receiver = {
        let u = udp.clone();
        hub::spawn(move || u.recv(&mut [0u8; 8]).map_err(|e| e.kind()))
    };
    hub::yield_now();
    listener.close();
    udp.close();
    assert_eq!(acceptor.join().unwrap(), Err(ErrorKind::ConnectionAborted));
    assert_eq!(receiver.join().unwrap(), Err(ErrorKind::ConnectionAborted));
}

#[test]
fn a_closed_socket_dropped_later_leaves_newer_registrations_alone() {
    let (a, _a_peer) = tcp_pair();
    a.close(); // its registration slot is free for the next socket
    let (b, b_peer) = tcp_pair();
    drop(a); // must not forget b's registration
    let reader = hub::spawn(move || {
        let mut buf = [0u8; 2];
        (&b).read_exact(&mut buf).unwrap();
        buf
    });
    hub::yield_now();
    (&b_peer).write_all(b"ok").unwrap();
    assert_eq!(&reader.join().unwrap(), b"ok");
}

#[test]
fn try_clone_shares_the_connection_and_keeps_the_timeouts() {
    let (client, server) = tcp_pair();
    server
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let clone = server.try_clone().unwrap();
    assert_eq!(
        clone.read_timeout().unwrap(),
        Some(Duration::from_millis(5))
    );
    // Written by the client, read through either handle.
    (&client).write_all(b"ab").unwrap();
    let mut one = [0u8; 1];
    (&clone).read_exact(&mut one).unwrap();
    assert_eq!(&one, b"a");
    (&server).read_exact(&mut one).unwrap();
    assert_eq!(&one, b"b");
    // The copied timeout applies to the clone.
    assert_eq!(
        (&clone).read(&mut one).unwrap_err().kind(),
        ErrorKind::TimedOut
    );
    // Closing the clone shuts the stream down: a reader on the original
    // sees EOF, not an error (only the clone's own waiters get one).
    server.set_read_timeout(None).unwrap();
    let server = Rc::new(server);
    let reader = {
        let server = server.clone();
        hub::spawn(move || (&*server).read(&mut [0u8; 4]).unwrap())
    };
    hub::yield_now();
    clone.close();
    assert_eq!(reader.join().unwrap(), 0);
    assert_eq!(
        clone.try_clone().unwrap_err().kind(),
        ErrorKind::ConnectionAborted
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let l2 = listener.try_clone().unwrap();
    assert_eq!(l2.local_addr().unwrap(), listener.local_addr().unwrap());
}

/// As std's clones (the timeouts are options of the one socket there): a
/// timeout set through any handle, before or after the clone, holds for
/// every clone, a clone's clone included.
#[test]
fn try_clone_shares_timeouts_set_later_through_either_handle() {
    let ms = Duration::from_millis;
    let (_client, server) = tcp_pair();
    let clone = server.try_clone().unwrap();
    server.set_read_timeout(Some(ms(5))).unwrap();
    assert_eq!(clone.read_timeout().unwrap(), Some(ms(5)));
    assert_eq!(
        (&clone).read(&mut [0u8; 1]).unwrap_err().kind(),
        ErrorKind::TimedOut
    );
    clone.set_write_timeout(Some(ms(7))).unwrap();
    assert_eq!(server.write_timeout().unwrap(), Some(ms(7)));
    let third = clone.try_clone().unwrap();
    third.set_read_timeout(None).unwrap();
    assert_eq!(server.read_timeout().unwrap(), None);
    assert_eq!(clone.read_timeout().unwrap(), None);
    assert_eq!(third.write_timeout().unwrap(), Some(ms(7)));
    // Dropping handles leaves the others' timeouts in place.
    drop(server);
    drop(third);
    assert_eq!(clone.write_timeout().unwrap(), Some(ms(7)));

    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = a.try_clone().unwrap();
    b.set_read_timeout(Some(ms(3))).unwrap();
    assert_eq!(a.read_timeout().unwrap(), Some(ms(3)));
    assert_eq!(
        a.recv_from(&mut [0u8; 1]).unwrap_err().kind(),
        ErrorKind::TimedOut
    );
}

#[test]
fn close_on_an_async_fd_wakes_its_readers_writers_and_multi_waits() {
    // A pipe: one reader blocked on the empty read end, one writer
    // blocked on the full write end, one `wait_any` on readability.
    let (reader, writer) = std::io::pipe().unwrap();
    let reader = Rc::new(AsyncFd::new(reader).unwrap());
    let writer = Rc::new(AsyncFd::new(writer).unwrap());
    let read = {
        let reader = reader.clone();
        hub::spawn(move || (&*reader).read(&mut [0u8; 8]))
    };
    let any = {
        let reader = reader.clone();
        hub::spawn(move || hub::wait_any(&[&reader.readable() as &dyn hub::Waitable], None))
    };
    let write = {
        let writer = writer.clone();
        hub::spawn(move || {
            let chunk = [7u8; 4096];
            loop {
                (&*writer).write_all(&chunk)?;
            }
            #[allow(unreachable_code)]
            Ok::<(), std::io::Error>(())
        })
    };
    hub::yield_now(); // all three block
    assert!(!read.is_finished() && !any.is_finished() && !write.is_finished());
    reader.close();
    writer.close();
    assert!(reader.is_closed() && writer.is_closed());
    let e = read.join().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionAborted, "{e}");
    assert_eq!(
        any.join().unwrap(),
        Some(0),
        "ready: the next read fails at once"
    );
    let e = write.join().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionAborted, "{e}");
    // Later calls fail at once; closing again does nothing more; the
    // descriptors are still there until the values drop.
    let e = (&*reader).read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionAborted);
    reader.close();
    assert!(reader.get_ref().as_fd().as_raw_fd() >= 0);
    drop(Rc::try_unwrap(reader).ok().unwrap().into_inner());
}

#[test]
fn a_closed_async_fd_dropped_later_leaves_newer_registrations_alone() {
    let (r1, _w1) = std::io::pipe().unwrap();
    let old = AsyncFd::new(r1).unwrap();
    old.close(); // its registration slot is free for the next one
    let (r2, mut w2) = std::io::pipe().unwrap();
    let fresh = AsyncFd::new(r2).unwrap();
    drop(old); // must not forget the fresh registration
    let waiter = hub::spawn(move || {
        let mut b = [0u8; 1];
        (&fresh).read_exact(&mut b).map(|_| b[0])
    });
    hub::yield_now();
    w2.write_all(b"z").unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), b'z');
}

#[test]
fn an_async_fd_closed_by_the_operation_itself_ends_its_wait() {
    // The operation closes it (or another greenlet does while it yields)
    // and says "would block": the wait that follows would never end.
    for closer in ["itself", "another"] {
        let (r, _w) = std::io::pipe().unwrap();
        let a = Rc::new(AsyncFd::new(r).unwrap());
        let a2 = a.clone();
        let own = closer == "itself";
        let h = hub::spawn(move || {
            a2.read_with(|_| {
                if own {
                    a2.close();
                } else {
                    hub::yield_now();
                }
                Err::<(), _>(ErrorKind::WouldBlock.into())
            })
        });
        let a3 = a.clone();
        hub::spawn(move || a3.close());
        hub::time::pause();
        assert!(
            hub::run_timeout(Duration::from_secs(2)),
            "{closer}: still blocked"
        );
        hub::time::resume();
        let e = h.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionAborted, "{closer}: {e}");
    }
}

#[test]
fn a_close_wakes_a_wait_on_the_sockets_readiness_but_not_one_on_its_descriptor() {
    hub::time::pause();
    let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let l = listener.clone();
    let on_socket = hub::spawn(move || hub::wait_any(&[l.readable()], None));
    let l = listener.clone();
    let on_descriptor =
        hub::spawn(move || hub::wait_readable(l.as_fd(), Some(Duration::from_secs(30))));
    hub::yield_now();
    listener.close();
    // The socket's own readiness hears of the close at once; the
    // descriptor, still open and never readable, waits out its timeout.
    assert_eq!(on_socket.join().unwrap(), Some(0));
    let err = on_descriptor.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}
