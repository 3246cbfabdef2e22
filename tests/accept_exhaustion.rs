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

use greenlet::hub::{self, time, Event};
use greenlet::net::{Server as NetServer, TcpListener};

const CHILD: &str = "GREENLET_ACCEPT_EXHAUSTION_CHILD";
const SERVER_CHILD: &str = "GREENLET_ACCEPT_EXHAUSTION_SERVER_CHILD";
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

/// The server's output, line by line.
type Lines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// Re-runs this binary as the server of test `test` (with `var` set), and
/// reads the port it prints first.
fn start_server(test: &str, var: &str) -> (Server, Lines, u16) {
    let mut child = Server(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture"])
            .env(var, "1")
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
    (child, lines, port)
}

#[test]
fn running_out_of_descriptors_neither_spins_nor_starves_the_server() {
    let (mut child, mut lines, port) = start_server("accept_exhaustion_child", CHILD);
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

/// In the child: a `net::Server` whose handlers hold their connections,
/// so that it runs out of descriptors; on the paused clock, it prints the
/// hub times of its first failed accepts (sampled every 100 µs).
fn paced_server() {
    let cap = libc::rlimit {
        rlim_cur: 48,
        rlim_max: 48,
    };
    // SAFETY: setrlimit with a valid pointer; this process is ours alone.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &cap) }, 0);
    time::pause();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("port {}", listener.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    let release = Event::new();
    let r = release.clone();
    let server = NetServer::new(listener, move |conn, _| {
        r.wait();
        drop(conn);
    })
    .start();
    let mut errors_at = Vec::new();
    while errors_at.len() < 5 {
        hub::sleep(Duration::from_micros(100));
        while errors_at.len() < server.accept_errors() as usize {
            errors_at.push(time::now());
        }
    }
    let gaps: Vec<String> = errors_at
        .windows(2)
        .map(|w| (w[1] - w[0]).as_micros().to_string())
        .collect();
    println!("gaps {}", gaps.join(" "));
    std::io::stdout().flush().unwrap();
    release.set();
    server.stop(Duration::from_secs(1));
}

#[test]
fn accept_exhaustion_server_child() {
    // Only does something when re-run by the test below.
    if std::env::var(SERVER_CHILD).is_ok() {
        paced_server();
    }
}

#[test]
fn a_server_out_of_descriptors_pauses_once_per_failed_accept() {
    // `accept` sleeps 1, 2, 4, 8 ms after successive resource failures;
    // the server's loop paused as long again after each (gaps of 3, 6,
    // 12 ms): it now counts the failure and accepts again.
    let (mut child, mut lines, port) = start_server("accept_exhaustion_server_child", SERVER_CHILD);
    // The server may be done (its listener closed) before the last ones
    // connect: those are refused, which is fine.
    let clients: Vec<_> = (0..CLIENTS)
        .map_while(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    let gaps = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(gaps) = line.strip_prefix("gaps ") {
            break gaps.to_string();
        }
    };
    drop(clients);
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.0.wait().unwrap().success(), "{rest:?}");
    let gaps: Vec<u128> = gaps.split(' ').map(|g| g.parse().unwrap()).collect();
    eprintln!("gaps between failed accepts, hub time: {gaps:?} µs");
    // Sampled every 100 µs: each gap within a sample of 2, 4, 8, 16 ms.
    for (gap, expected) in gaps.iter().zip([2_000u128, 4_000, 8_000, 16_000]) {
        assert!(gap.abs_diff(expected) <= 100, "gaps {gaps:?} µs");
    }
}

const UNWINDING_CHILD: &str = "GREENLET_ACCEPT_EXHAUSTION_UNWINDING_CHILD";

/// In the child: an `accept` made by a destructor while its greenlet
/// unwinds from a kill, with a connection in the backlog and no
/// descriptor left. Prints what the accept returned.
fn accept_while_unwinding() {
    use std::cell::RefCell;
    use std::os::fd::{AsFd, OwnedFd};

    let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    // Queued: the kernel's accept fails with `EMFILE` (not `EAGAIN`) once
    // no descriptor is left.
    let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let cap = libc::rlimit {
        rlim_cur: open + 4,
        rlim_max: open + 1000,
    };
    // SAFETY: setrlimit with a valid pointer; this process is ours alone.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &cap) }, 0);
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let mut fill: Vec<OwnedFd> = Vec::new();
    while let Ok(fd) = devnull.as_fd().try_clone_to_owned() {
        fill.push(fd);
    }
    struct AcceptOnDrop(Rc<TcpListener>, Rc<RefCell<Option<String>>>);
    impl Drop for AcceptOnDrop {
        fn drop(&mut self) {
            let accepted = self.0.accept().map(drop).map_err(|e| e.kind());
            *self.1.borrow_mut() = Some(format!("{accepted:?}"));
        }
    }
    let result = Rc::new(RefCell::new(None));
    let guard = AcceptOnDrop(listener.clone(), result.clone());
    let victim = hub::spawn(move || {
        let _guard = guard;
        hub::sleep(Duration::from_secs(3600));
    });
    hub::yield_now(); // it sleeps
    victim.kill(); // the guard's accept runs while the victim unwinds
    drop(fill);
    println!(
        "accepted {}",
        result.borrow().as_deref().unwrap_or("nothing")
    );
}

#[test]
fn accept_exhaustion_unwinding_child() {
    if std::env::var(UNWINDING_CHILD).is_ok() {
        accept_while_unwinding();
    }
}

/// Out of descriptors, an `accept` in a destructor during a kill returns
/// the error at once: it cannot pause (a greenlet that unwinds cannot
/// sleep), and the attempt, a panic in a destructor while unwinding,
/// aborted the process.
#[test]
fn an_accept_out_of_descriptors_while_unwinding_returns_the_error() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "accept_exhaustion_unwinding_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(UNWINDING_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?}: {stdout}", out.status);
    assert!(stdout.contains("accepted Err("), "{stdout}");
}
