//! A TCP echo server on `net::Server`: one greenlet per connection, written
//! as plain blocking code. Each `read` and `write_all` blocks only its own
//! greenlet; the hub runs the others meanwhile, all on this one thread.
//!
//! Run with `cargo run --release --example echo_server [ADDR]` (default
//! `127.0.0.1:7878`), then talk to it with `nc 127.0.0.1 7878` or load it with
//! `cargo run --release --example echo_client`. Ctrl-C stops it cleanly.

use std::io::{self, Read, Write};
use std::time::Duration;

use greenlet::hub;
use greenlet::net::{Server, TcpStream};

/// Sends back everything `stream` receives, until the peer closes it.
fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(()); // EOF: the peer is done
        }
        stream.write_all(&buf[..n])?;
    }
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7878".to_string());
    // Connections still open when the body returns are unwound (their
    // sockets closed) while the thread's thread-locals are still alive.
    hub::run_main(|| {
        // `net::Server` accepts (backing off when descriptors run out) and
        // runs each connection in a greenlet of its own.
        let server = Server::bind(addr.as_str(), |stream: TcpStream, _peer| {
            let served = stream.set_nodelay(true).and_then(|()| echo(stream));
            if let Err(e) = served {
                eprintln!("connection error: {e}");
            }
        })?
        .start();
        println!("echo server listening on {}", server.local_addr());

        // Ctrl-C: stop accepting, give open connections a second, then
        // close the rest. A daemon: waiting for the signal alone keeps
        // nothing running.
        let sigint = hub::signal(libc::SIGINT)?;
        let handle = server.clone();
        hub::spawn_daemon(move || {
            sigint.recv();
            println!("\nSIGINT: stopping");
            handle.stop(Duration::from_secs(1));
        });

        server.wait();
        println!("stopped");
        Ok(())
    })
}
