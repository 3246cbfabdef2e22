//! Scenarios ported from gevent's `src/gevent/tests/test__server.py`
//! (gevent 26.x), each test named after the one it ports; a plain echo
//! handler stands in for gevent's tiny HTTP handler.
//!
//! Not ported (no counterpart here): backlog and subclassing tests
//! (`test_backlog_is_*`, `test_subclass_*`), callback validation
//! (`test_invalid_callback`; the handler's type is checked at compile
//! time), `test_error_in_spawn` (a custom spawn), `TestRawSpawn` /
//! `TestNoneSpawn` (other spawn strategies), the SSL classes, and
//! `test_server_repr_*`.

use std::io::{Read, Write};
use std::time::Duration;

use greenlet::hub::{self, Event};
use greenlet::net::{Server, TcpStream};

fn echo(mut conn: TcpStream, _peer: std::net::SocketAddr) {
    let mut buf = [0u8; 16];
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 || conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn assert_request_succeeded(addr: std::net::SocketAddr) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
}

#[test]
fn test_serve_forever_after_start() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.start();
    assert_request_succeeded(addr);
    let h2 = handle.clone();
    // serve_forever is `wait`; something else stops it.
    hub::spawn(move || h2.stop(Duration::from_secs(1)));
    handle.wait();
    assert!(TcpStream::connect(addr).is_err(), "connection refused");
}

#[test]
fn test_server_closes_client_sockets() {
    // A handler that returns at once: the server closes the connection,
    // so the client reads the end.
    let handle = Server::bind("127.0.0.1:0", |_conn, _| {}).unwrap().start();
    let mut conn = TcpStream::connect(handle.local_addr()).unwrap();
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    match conn.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty()),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    handle.stop(Duration::from_secs(1));
}

#[test]
fn test_pool_full() {
    // TestPoolSpawn (a pool of 2): with both slots taken by long requests,
    // a third connection is not served until one finishes.
    let release = Event::new();
    let r = release.clone();
    let handle = Server::bind("127.0.0.1:0", move |conn, peer| {
        r.wait();
        echo(conn, peer);
    })
    .unwrap()
    .max_connections(2)
    .start();
    let addr = handle.local_addr();
    let _long1 = TcpStream::connect(addr).unwrap();
    let _long2 = TcpStream::connect(addr).unwrap();
    let mut third = TcpStream::connect(addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    third.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    let err = third.read_exact(&mut b).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "pool full");
    assert_eq!(handle.connections(), 2);
    release.set();
    third.set_read_timeout(None).unwrap();
    drop((_long1, _long2));
    third.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"x");
    drop(third);
    handle.stop(Duration::from_secs(1));
}
