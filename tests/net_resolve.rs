//! The sockets' `ToSocketAddrs`: an address (or an IP literal) is read on
//! the spot, a host name is resolved on the `spawn_blocking` pool, not on
//! the hub's thread. One test, so that it alone uses the global pool of
//! this process and can count its threads.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use greenlet::hub::{self, ThreadPool};
use greenlet::net::{Server, TcpListener, TcpStream, UdpSocket};

fn pool_threads() -> usize {
    ThreadPool::global().threads()
}

#[test]
fn addresses_are_read_on_the_spot_and_names_resolved_on_the_pool() {
    // Literals of every form: no pool thread is started.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let port = addr.port();
    let accepter = hub::spawn(move || {
        let mut n = 0;
        while n < 8 {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"k").unwrap();
            n += 1;
        }
    });
    let check = |s: io::Result<TcpStream>| {
        let mut s = s.unwrap();
        let mut b = [0];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"k");
    };
    let text = format!("127.0.0.1:{port}");
    check(TcpStream::connect(addr));
    check(TcpStream::connect(&text)); // references, as std's trait takes
    check(TcpStream::connect(text.as_str()));
    check(TcpStream::connect(text.clone()));
    check(TcpStream::connect(("127.0.0.1", port)));
    check(TcpStream::connect((IpAddr::V4(Ipv4Addr::LOCALHOST), port)));
    check(TcpStream::connect(&[addr][..]));
    // Malformed ones are refused as std refuses them, without a lookup.
    for bad in ["127.0.0.1:99999", "127.0.0.1", "localhost", "[::1]:x"] {
        let e = UdpSocket::bind(bad).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}: {e}");
    }
    assert_eq!(pool_threads(), 0, "no literal went to the pool");

    // A host name is resolved on the pool.
    check(
        TcpStream::connect(format!("localhost:{port}")).or_else(|_| {
            // "localhost" may resolve to ::1 only, where nobody listens:
            // std's order, each tried in turn, as here.
            TcpStream::connect(("localhost", port))
        }),
    );
    assert_eq!(pool_threads(), 1, "the name was resolved on a pool thread");
    accepter.kill();

    // Binding to a name, and a server bound to one.
    let l = TcpListener::bind(("localhost", 0)).unwrap();
    assert!(l.local_addr().unwrap().ip().is_loopback());
    let server = Server::bind("localhost:0", |_, _| {}).unwrap();
    assert!(server.local_addr().unwrap().ip().is_loopback());

    // UDP: bind, connect and send_to with names.
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("localhost:0").unwrap();
    let a_port = a.local_addr().unwrap().port();
    let b_addr: SocketAddr = b.local_addr().unwrap();
    if b_addr.is_ipv4() {
        b.send_to(b"hi", format!("localhost:{a_port}")).unwrap();
        let mut buf = [0; 8];
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"hi"[..], b_addr));
        a.connect(("localhost", b_addr.port())).unwrap();
        a.send(b"yo").unwrap();
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"yo");
    }

    // The resolver's errors come back as they are.
    let e = TcpStream::connect("localhost:notaport").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    let e = TcpStream::connect(&[][..]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
}
