//! TLS over the crate's sockets with rustls's blocking `StreamOwned`: the
//! sockets are `Read + Write` and a call that would block switches away, so
//! a handshake, a read or a write blocks only its own greenlet. Both ends
//! of each test run on one thread: a call that blocked the thread would
//! never let the other end answer.

use std::io::{self, ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use greenlet::hub;
use greenlet::net::{Server, TcpListener, TcpStream};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, StreamOwned};

#[path = "support/tls.rs"]
mod tls;

type ClientStream = StreamOwned<ClientConnection, TcpStream>;
type ServerStream = StreamOwned<ServerConnection, TcpStream>;

fn client(config: &Arc<ClientConfig>, sock: TcpStream) -> ClientStream {
    let conn = ClientConnection::new(config.clone(), "localhost".try_into().unwrap()).unwrap();
    StreamOwned::new(conn, sock)
}

fn server(config: &Arc<ServerConfig>, sock: TcpStream) -> ServerStream {
    StreamOwned::new(ServerConnection::new(config.clone()).unwrap(), sock)
}

/// Runs the handshake to its end (rustls otherwise runs it inside the first
/// read or write).
fn handshake<C, D>(stream: &mut StreamOwned<C, TcpStream>) -> io::Result<()>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(())
}

/// Sends back what arrives until the peer's close_notify, then sends its
/// own.
fn echo(mut stream: ServerStream) -> io::Result<u64> {
    let mut total = 0;
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            stream.conn.send_close_notify();
            stream.conn.complete_io(&mut stream.sock)?;
            return Ok(total);
        }
        stream.write_all(&buf[..n])?;
        total += n as u64;
    }
}

#[test]
fn a_handshake_and_an_echo_share_one_thread() {
    let (server_config, client_config) = tls::localhost_configs();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = hub::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        echo(server(&server_config, sock))
    });

    let mut stream = client(&client_config, TcpStream::connect(addr).unwrap());
    handshake(&mut stream).unwrap();
    assert_eq!(
        stream.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    stream.write_all(b"hello over tls").unwrap();
    let mut reply = [0u8; 14];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"hello over tls");

    // A clean close: close_notify both ways, then end of stream.
    stream.conn.send_close_notify();
    stream.conn.complete_io(&mut stream.sock).unwrap();
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0);
    assert_eq!(serving.join().unwrap().unwrap(), 14);
}

#[test]
fn a_server_serves_many_tls_clients_at_once() {
    const CLIENTS: usize = 40;
    const BYTES: usize = 20_000;
    let (server_config, client_config) = tls::localhost_configs();
    let server = Server::bind("127.0.0.1:0", move |sock: TcpStream, _peer| {
        echo(server(&server_config, sock)).unwrap();
    })
    .unwrap()
    .start();
    let addr = server.local_addr();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let config = client_config.clone();
            hub::spawn(move || {
                let mut stream = client(&config, TcpStream::connect(addr).unwrap());
                // Each client's own bytes, so a mix-up between connections shows.
                let sent: Vec<u8> = (0..BYTES).map(|j| (i * 7 + j) as u8).collect();
                let mut back = vec![0u8; BYTES];
                // In pieces, each echoed before the next: the stream has
                // one owner, so a reader and a writer cannot run apart.
                for (out, into) in sent.chunks(5_000).zip(back.chunks_mut(5_000)) {
                    stream.write_all(out).unwrap();
                    stream.read_exact(into).unwrap();
                }
                stream.conn.send_close_notify();
                stream.conn.complete_io(&mut stream.sock).unwrap();
                back == sent
            })
        })
        .collect();
    let matched = clients
        .into_iter()
        .map(|c| c.join().unwrap())
        .filter(|&same| same)
        .count();
    assert_eq!(matched, CLIENTS);
    server.stop(Duration::from_secs(5));
    assert_eq!(server.connections(), 0);
}

/// A peer that accepts one connection, does `first` with it, then says
/// nothing more until the event returned is set.
fn quiet_peer(
    first: impl FnOnce(TcpStream) -> Box<dyn std::any::Any> + 'static,
) -> (std::net::SocketAddr, hub::Event, hub::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let quiet = hub::Event::new();
    let peer = {
        let quiet = quiet.clone();
        hub::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            let _kept = first(sock);
            quiet.wait();
        })
    };
    (addr, quiet, peer)
}

#[test]
fn a_stalled_handshake_ends_at_with_timeout() {
    hub::time::pause();
    let (_, client_config) = tls::localhost_configs();
    // Accepts and never says a word.
    let (addr, quiet, peer) = quiet_peer(|sock| Box::new(sock));

    let mut stream = client(&client_config, TcpStream::connect(addr).unwrap());
    let before = hub::time::now();
    let outcome = hub::with_timeout(Duration::from_secs(30), || handshake(&mut stream));
    assert!(outcome.is_err(), "the handshake ended: {outcome:?}");
    assert_eq!(hub::time::now() - before, Duration::from_secs(30));
    assert!(stream.conn.is_handshaking());
    quiet.set();
    peer.join().unwrap();
}

#[test]
fn a_read_timeout_ends_a_stalled_read() {
    hub::time::pause();
    let (server_config, client_config) = tls::localhost_configs();
    // Completes the handshake, then sends nothing.
    let (addr, quiet, peer) = quiet_peer(move |sock| {
        let mut stream = server(&server_config, sock);
        handshake(&mut stream).unwrap();
        Box::new(stream)
    });

    let mut stream = client(&client_config, TcpStream::connect(addr).unwrap());
    stream
        .sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    handshake(&mut stream).unwrap();
    let err = stream.read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    quiet.set();
    peer.join().unwrap();
}

#[test]
fn a_peer_gone_without_close_notify_is_an_unexpected_eof() {
    let (server_config, client_config) = tls::localhost_configs();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = hub::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let mut stream = server(&server_config, sock);
        handshake(&mut stream).unwrap();
        stream.write_all(b"partial").unwrap();
        // Dropped: the TCP connection closes with no close_notify.
    });

    let mut stream = client(&client_config, TcpStream::connect(addr).unwrap());
    let mut got = Vec::new();
    let err = stream.read_to_end(&mut got).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    // What arrived before the cut is kept.
    assert_eq!(got, b"partial");
    peer.join().unwrap();
}

#[test]
fn an_untrusted_certificate_fails_both_ends() {
    let (server_config, _) = tls::localhost_configs();
    // A client that trusts another certificate.
    let (_, stranger) = tls::localhost_configs();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = hub::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        handshake(&mut server(&server_config, sock))
    });

    let mut stream = client(&stranger, TcpStream::connect(addr).unwrap());
    let err = handshake(&mut stream).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(inner, Some(rustls::Error::InvalidCertificate(_))),
        "{err:?}"
    );
    // The server learns of it from the client's alert.
    assert!(peer.join().unwrap().is_err());
    // Nothing left waiting on this thread.
    drop(stream);
    hub::run();
}
