//! TLS on the crate's sockets with rustls: a TLS echo server on
//! `net::Server` and a hundred clients, all greenlets of one thread.
//!
//! rustls's blocking `StreamOwned` needs only `Read + Write`, which the
//! sockets are; a read or write that would block switches away, so each
//! handshake blocks only its own greenlet. The certificate is made up on
//! the spot for `localhost` (with rcgen), and the clients trust it alone.
//!
//! `cargo run --release --example tls_echo`

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use greenlet::hub;
use greenlet::net::{Server, TcpStream};
use rustls::{ClientConnection, ServerConnection, StreamOwned};

#[path = "../tests/support/tls.rs"]
mod tls;

const CLIENTS: usize = 100;

/// Sends back each line until the peer closes, then closes in turn.
fn echo_lines(stream: StreamOwned<ServerConnection, TcpStream>) -> io::Result<()> {
    // A line is at most 1 KiB: never an unbounded read from a peer.
    let mut lines = BufReader::new(stream);
    let mut line = String::new();
    while (&mut lines).take(1024).read_line(&mut line)? > 0 {
        lines.get_mut().write_all(line.as_bytes())?;
        line.clear();
    }
    let stream = lines.get_mut();
    stream.conn.send_close_notify();
    stream.flush()
}

fn main() -> io::Result<()> {
    let (server_config, client_config) = tls::localhost_configs();
    hub::run_main(|| {
        let server = Server::bind("127.0.0.1:0", move |sock: TcpStream, _peer| {
            let conn = ServerConnection::new(server_config.clone()).expect("a TLS session");
            if let Err(e) = echo_lines(StreamOwned::new(conn, sock)) {
                eprintln!("connection error: {e}");
            }
        })?
        .start();
        let addr = server.local_addr();
        println!("TLS echo server on {addr}");

        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let config = Arc::clone(&client_config);
                hub::spawn(move || -> io::Result<String> {
                    let name = "localhost".try_into().expect("a server name");
                    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
                    let mut stream = StreamOwned::new(conn, TcpStream::connect(addr)?);
                    // The handshake runs inside this first write.
                    writeln!(stream, "hello from client {i}")?;
                    let mut reply = String::new();
                    BufReader::new((&mut stream).take(1024)).read_line(&mut reply)?;
                    stream.conn.send_close_notify();
                    stream.flush()?;
                    Ok(reply)
                })
            })
            .collect();

        let mut echoed = 0;
        for (i, client) in clients.into_iter().enumerate() {
            let reply = client.join().expect("the client ran")?;
            assert_eq!(reply, format!("hello from client {i}\n"));
            echoed += 1;
        }
        println!("{echoed} clients: handshake, one line there and back, close_notify");
        server.stop(Duration::from_secs(1));
        Ok(())
    })
}
