//! A load generator for an echo server: C connections, one greenlet each,
//! all on this thread's hub; each does N round trips of a 64-byte message
//! (`write_all`, then `read_exact` of the echo) and the run reports round
//! trips per second (connecting included; `benches/echo.rs` times the
//! round trips alone).
//!
//! Run with `cargo run --release --example echo_client [ADDR [C [N]]]`
//! (defaults: `127.0.0.1:7878`, 100 connections, 1,000 round trips each)
//! against `cargo run --release --example echo_server`.

use std::io::{self, Read, Write};
use std::time::Instant;

use greenlet::hub;
use greenlet::net::TcpStream;

/// The size of each message.
const MESSAGE: usize = 64;

/// Connects to `addr` and does `trips` round trips on the connection.
fn client(addr: &str, trips: u64) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let msg = [b'x'; MESSAGE];
    let mut reply = [0u8; MESSAGE];
    for _ in 0..trips {
        stream.write_all(&msg)?;
        stream.read_exact(&mut reply)?;
        assert_eq!(reply, msg, "the echo differs from the message");
    }
    Ok(()) // dropping the stream closes the connection
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7878".to_string());
    let conns: u64 = args.next().map_or(100, |s| s.parse().expect("C: a number"));
    let trips: u64 = args
        .next()
        .map_or(1000, |s| s.parse().expect("N: a number"));

    let start = Instant::now();
    let clients: Vec<_> = (0..conns)
        .map(|_| {
            let addr = addr.clone();
            hub::spawn(move || client(&addr, trips))
        })
        .collect();
    hub::run(); // until every client is done
    let elapsed = start.elapsed();

    for c in clients {
        match c.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("a connection failed: {e}");
                std::process::exit(1);
            }
            Err(e) => panic!("a client greenlet died: {e}"),
        }
    }
    let total = conns * trips;
    println!(
        "{conns} connections x {trips} round trips ({MESSAGE} B) to {addr}: \
         {total} in {:.3} s, {:.0} round trips/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
    );
}
