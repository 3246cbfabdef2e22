//! A TCP echo server: one greenlet per connection, written as plain blocking
//! code. Each `read`, `write_all` and `accept` blocks only its own greenlet;
//! the hub runs the others meanwhile, all on this one thread.
//!
//! Run with `cargo run --release --example echo_server [ADDR]` (default
//! `127.0.0.1:7878`), then talk to it with `nc 127.0.0.1 7878` or load it with
//! `cargo run --release --example echo_client`. Ctrl-C stops it cleanly.

use std::io::{self, Read, Write};
use std::rc::Rc;

use greenlet::hub;
use greenlet::net::{TcpListener, TcpStream};

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

fn serve(addr: &str) -> io::Result<()> {
    let listener = Rc::new(TcpListener::bind(addr)?);
    println!("echo server listening on {}", listener.local_addr()?);

    // Ctrl-C closes the listener, which wakes the `accept` below with an
    // error: the loop ends and `main` returns. A daemon: waiting for the
    // signal alone keeps nothing running.
    let sigint = hub::signal(libc::SIGINT)?;
    {
        let listener = listener.clone();
        hub::spawn_daemon(move || {
            sigint.recv();
            println!("\nSIGINT: closing the listener");
            listener.close();
        });
    }

    // `accept` blocks the main greenlet only: the connections' greenlets run
    // while it waits. Out of descriptors (EMFILE), it waits a little before
    // returning the error, so logging it and going on is safe.
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            // Closed by the Ctrl-C handler.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => break,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        stream.set_nodelay(true)?;
        let spawned = hub::Builder::new().name("connection").spawn(move || {
            if let Err(e) = echo(stream) {
                eprintln!("connection error: {e}");
            }
        });
        if let Err(e) = spawned {
            // Out of memory mappings: this connection is dropped (closed).
            eprintln!("cannot serve a connection: {e}");
        }
    }
    println!("stopped accepting");
    Ok(())
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7878".to_string());
    // Connections still open when `serve` returns are unwound (their
    // sockets closed) while the thread's thread-locals are still alive.
    hub::run_main(|| serve(&addr))
}
