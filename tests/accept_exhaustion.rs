//! A server that runs out of file descriptors keeps serving: `accept`
//! fails with `EMFILE` while connections wait in the backlog, and a loop
//! that logs the error and accepts again must let the greenlets that close
//! connections run. The server is a child process (this test binary, re-run
//! with an environment variable) with `RLIMIT_NOFILE` at 48; the clients are
//! plain std sockets in the parent, 100 of them at once.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub;
use greenlet::net::TcpListener;

const CHILD: &str = "GREENLET_ACCEPT_EXHAUSTION_CHILD";
const CLIENTS: usize = 100;

/// In the child: a server that accepts `CLIENTS` connections with at most
/// 48 descriptors, answering each once its client has sent everything.
fn server() {
    let cap = libc::rlimit {
        rlim_cur: 48,
        rlim_max: 48,
    };
    // SAFETY: setrlimit with a valid pointer; this process is ours alone.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &cap) }, 0);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("port {}", listener.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    let (mut accepted, mut attempts, mut errors) = (0, 0, 0);
    let served = Rc::new(Cell::new(0));
    let mut handlers = Vec::new();
    while accepted < CLIENTS {
        attempts += 1;
        match listener.accept() {
            Ok((mut conn, _)) => {
                accepted += 1;
                let served = served.clone();
                handlers.push(hub::spawn(move || {
                    let mut request = Vec::new();
                    conn.read_to_end(&mut request).unwrap();
                    conn.write_all(b"ok").unwrap();
                    served.set(served.get() + 1);
                }));
            }
            // Logged and carried on, as a server would.
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                if errors == 0 {
                    println!("limit reached");
                    std::io::stdout().flush().unwrap();
                }
                errors += 1;
            }
        }
    }
    for h in handlers {
        h.join().unwrap();
    }
    println!(
        "served {} attempts {attempts} errors {errors}",
        served.get()
    );
}

#[test]
fn accept_exhaustion_child() {
    // Only does something when re-run by the test below.
    if std::env::var(CHILD).is_ok() {
        server();
    }
}

/// Kills the server if the test fails before it exits.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn running_out_of_descriptors_neither_spins_nor_starves_the_server() {
    let mut child = Server(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "accept_exhaustion_child", "--nocapture"])
            .env(CHILD, "1")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(port) = line.strip_prefix("port ") {
            break port.parse().unwrap();
        }
    };
    // Every client connects first; the server's handlers wait for their
    // requests, so it runs out of descriptors.
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        // A bound on the whole test, should the server hang; not a timing.
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        clients.push(c);
    }
    let limit = lines.next().unwrap().unwrap();
    assert_eq!(limit, "limit reached");
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("request {i}").as_bytes()).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
    }
    for (i, mut c) in clients.into_iter().enumerate() {
        let mut reply = String::new();
        c.read_to_string(&mut reply)
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(reply, "ok", "client {i}");
    }
    // Read to the end, so the child never writes into a closed pipe.
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let stats = rest.iter().find(|l| l.starts_with("served")).unwrap();
    eprintln!("server: {stats}");
    assert!(child.0.wait().unwrap().success());
    let n: Vec<usize> = stats.split(' ').filter_map(|w| w.parse().ok()).collect();
    let (served, attempts, errors) = (n[0], n[1], n[2]);
    assert_eq!(served, CLIENTS, "{stats}");
    assert_eq!(attempts, CLIENTS + errors, "{stats}");
    // A spinning loop makes millions of attempts; backing off, a few dozen.
    assert!(errors < 200, "{stats}");
}
