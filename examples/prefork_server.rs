//! A pre-forking echo server: the parent binds one listener and forks
//! worker processes, each running a `net::Server` on the listener it
//! inherited (each connection goes to the worker whose accept takes it
//! first), as gunicorn runs gevent workers. Each child's hub gets an event
//! loop of its own on its first use (see the hub docs, "`fork` without
//! `exec`").
//!
//! Run with `cargo run --example prefork_server`: it forks two workers,
//! sends them requests from greenlets of the parent, prints which worker
//! answered each, then stops them with SIGTERM and reaps them.

use std::io::{self, Read, Write};
use std::time::Duration;

use greenlet::hub;
use greenlet::net::{Server, TcpListener, TcpStream};

const WORKERS: usize = 2;
const REQUESTS: usize = 8;

/// A worker: serves the inherited listener until SIGTERM, then stops,
/// giving open connections a second. Says it is ready on `ready`.
fn worker(listener: TcpListener, mut ready: std::io::PipeWriter) -> io::Result<()> {
    let me = std::process::id();
    // A SIGTERM from now on is heard (before, it would end the process).
    let sigterm = hub::signal(libc::SIGTERM)?;
    ready.write_all(b"r")?;
    drop(ready);
    let server = Server::new(listener, move |stream: TcpStream, _peer| {
        let mut buf = [0u8; 64];
        // One request per connection: answer with this worker's pid.
        if let Ok(n) = (&stream).read(&mut buf) {
            let reply = format!("{} from worker {me}\n", String::from_utf8_lossy(&buf[..n]));
            let _ = (&stream).write_all(reply.as_bytes());
        }
    })
    .start();
    let handle = server.clone();
    hub::spawn_daemon(move || {
        sigterm.recv();
        handle.stop(Duration::from_secs(1));
    });
    server.wait();
    Ok(())
}

fn main() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}, forking {WORKERS} workers");
    let (mut ready, ready_w) = std::io::pipe()?;
    let mut pids = Vec::new();
    for _ in 0..WORKERS {
        // SAFETY: the process has one thread here (nothing of the crate
        // started one yet), so the child inherits no lock held elsewhere.
        match unsafe { libc::fork() } {
            -1 => return Err(io::Error::last_os_error()),
            0 => {
                let code = match hub::run_main(|| worker(listener, ready_w)) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("worker {}: {e}", std::process::id());
                        1
                    }
                };
                std::process::exit(code);
            }
            pid => pids.push(pid),
        }
    }
    // The parent does not accept: only the workers do. It waits until
    // each is ready (a byte each; the read ends when all write ends close).
    drop(listener);
    drop(ready_w);
    let mut bytes = Vec::new();
    ready.read_to_end(&mut bytes)?;
    assert_eq!(bytes.len(), WORKERS, "a worker failed to start");

    hub::run_main(|| -> io::Result<()> {
        let clients: Vec<_> = (0..REQUESTS)
            .map(|i| {
                hub::spawn(move || -> io::Result<String> {
                    let stream = TcpStream::connect(addr)?;
                    (&stream).write_all(format!("request {i}").as_bytes())?;
                    let mut reply = String::new();
                    (&stream).read_to_string(&mut reply)?;
                    Ok(reply)
                })
            })
            .collect();
        for client in clients {
            let reply = client.join().expect("a client greenlet panicked")?;
            print!("{reply}");
        }
        Ok(())
    })?;

    for &pid in &pids {
        // SAFETY: `pid` is a child of this process, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    for pid in pids {
        let mut status = 0;
        // SAFETY: waits for that child; `status` is valid for the call.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        let clean = r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        println!("worker {pid} {}", if clean { "stopped" } else { "failed" });
    }
    Ok(())
}
