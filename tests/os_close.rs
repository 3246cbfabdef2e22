//! Closing a socket that other greenlets are blocked on, and `try_clone`.

use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub;
use greenlet::net::{TcpListener, TcpStream, UdpSocket, UnixStream};

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
