//! A keep-alive HTTP/1.1 "hello" server on `net::Server`: one greenlet per
//! connection, at most 10,000 at once, and a graceful stop on Ctrl-C
//! (stop accepting, give open requests 5 s, then close what is left).
//!
//! Run with `cargo run --release --example http_hello [ADDR]` (default
//! `127.0.0.1:8080`), then `curl -v http://127.0.0.1:8080/ http://127.0.0.1:8080/`
//! (two requests, one connection).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use greenlet::hub;
use greenlet::net::{Server, TcpStream};

/// The most a request's head (request line and headers) may take: a
/// client cannot make a greenlet buffer more than this.
const MAX_HEAD: u64 = 8 * 1024;
/// How long an idle keep-alive connection stays open.
const IDLE: Duration = Duration::from_secs(30);

const BODY: &str = "Hello, world!\n";

/// Serves requests on `conn` until the client closes it, asks to, or
/// sends something that is not a simple bodiless request.
fn serve(conn: TcpStream, _peer: SocketAddr) {
    if let Err(e) = serve_requests(&conn) {
        if e.kind() != io::ErrorKind::TimedOut {
            eprintln!("connection: {e}");
        }
    }
}

fn serve_requests(conn: &TcpStream) -> io::Result<()> {
    conn.set_read_timeout(Some(IDLE))?;
    let mut reader = BufReader::new(conn);
    loop {
        // Each request head gets its own budget.
        let mut head = (&mut reader).take(MAX_HEAD);
        let mut request_line = String::new();
        if head.read_line(&mut request_line)? == 0 {
            return Ok(()); // the client closed the connection
        }
        let http10 = request_line.trim_end().ends_with("HTTP/1.0");
        let mut keep_alive = !http10;
        loop {
            let mut line = String::new();
            if head.read_line(&mut line)? == 0 {
                return bad_request(conn); // the head ended early or is too long
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let (name, value) = (name.trim(), value.trim());
                if name.eq_ignore_ascii_case("connection") {
                    keep_alive = if value.eq_ignore_ascii_case("close") {
                        false
                    } else {
                        keep_alive || value.eq_ignore_ascii_case("keep-alive")
                    };
                } else if name.eq_ignore_ascii_case("content-length") && value != "0" {
                    // This server takes no request bodies.
                    return bad_request(conn);
                }
            }
        }
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: {connection}\r\n\r\n{BODY}",
            BODY.len()
        );
        let mut w = conn;
        w.write_all(response.as_bytes())?;
        if !keep_alive {
            return Ok(());
        }
    }
}

fn bad_request(mut conn: &TcpStream) -> io::Result<()> {
    conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    hub::run_main(|| {
        let server = Server::bind(addr.as_str(), serve)?
            .max_connections(10_000)
            .start();
        println!("listening on http://{}/", server.local_addr());

        // Ctrl-C: a graceful stop. A daemon: waiting for the signal alone
        // keeps nothing running.
        let sigint = hub::signal(libc::SIGINT)?;
        let handle = server.clone();
        hub::spawn_daemon(move || {
            sigint.recv();
            println!("\nSIGINT: stopping (open connections get 5 s)");
            handle.stop(Duration::from_secs(5));
        });

        server.wait();
        println!("stopped");
        Ok(())
    })
}
