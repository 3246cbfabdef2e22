//! TCP echo round trips per second: this crate's echo server (a greenlet per
//! connection) beside a tokio current-thread echo server written the
//! ordinary way (tokio's own echo example), in the same run, driven by the
//! same client.
//!
//! - Each server runs on a `std::thread` of its own, started for the run and
//!   stopped after it (every connection closed, the thread joined).
//! - The client is this crate's: one greenlet per connection on another
//!   thread's hub. It opens its C connections and does one untimed round
//!   trip on each (so every connection is accepted and has its handler);
//!   then the clock runs while every connection does N round trips of a
//!   64-byte message (`write_all`, then `read_exact` of the echo), all at
//!   once. Connections close after the clock stops.
//! - Every socket, on both ends, has `TCP_NODELAY`.
//! - The greenlet server runs twice: with the hub's default idle spin
//!   (it polls for up to 50 µs before parking) and with the spin off
//!   (`hub::set_idle_spin(Duration::ZERO)`), which parks at once as tokio
//!   does. The client keeps the default.
//! - Each row (C = 1, 100, 1,000 connections) is measured 7 times per
//!   server, the servers back to back in each run (rotating which goes
//!   first). The table gives each server's median, greenlet / tokio as the
//!   median of the runs' ratios (above 1 means the greenlet server is
//!   faster; pairing the runs cancels the machine's slow drifts), and each
//!   server's spread, (max - min) / median.
//! - A second table gives the CPU time (user + system) each server's
//!   thread spent per round trip while the clock ran, read from the
//!   thread's CPU clock, and the share of a core that makes. The client
//!   is the same for all servers, so a server that needs less CPU per
//!   round trip leaves more CPU to it where cores are few.
//!
//! - A churn row: 1,000 connections opened in a burst, one round trip
//!   each, closed; repeated. Every connection is a new handler greenlet
//!   (or task) on the server, so this row measures the stack supply.
//!   Connections per second, greenlet (default spin) and tokio servers
//!   back to back in each run.
//!
//! - A flood row: 100 connections doing round trips one at a time while
//!   one more connection sends as fast as it can (a thread writing 64 KiB
//!   blocks, another draining the echo); the median and p99 of the 100
//!   connections' round trips, with the flood off and on, for both servers.
//!   Without the hub's cooperative budget the flooding connection's
//!   greenlet would hold the server's thread as long as its reads succeed.
//!
//! `cargo bench --bench echo`; `cargo test --benches` does a quick smoke
//! run.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::thread::JoinHandleExt;
use std::sync::mpsc as std_mpsc;
use std::thread;
use std::time::{Duration, Instant};

use greenlet::hub::{self, Event};
use greenlet::net;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The size of one message.
const MESSAGE: usize = 64;

/// Timed runs per row and server.
const RUNS: usize = 7;

/// Connections, and round trips per connection in one run (a timed run
/// takes 0.5 to 1.5 s here).
const ROWS: [(u64, u64); 3] = [(1, 10_000), (100, 1_200), (1_000, 300)];

/// A running echo server.
struct Server {
    addr: SocketAddr,
    /// The CPU-time clock of the server's thread (user + system time).
    cpu: libc::clockid_t,
    stop: Box<dyn FnOnce()>,
    thread: thread::JoinHandle<()>,
}

impl Server {
    /// The server listening on `addr` and running on `thread`; `stop` tells
    /// it to stop.
    fn new(
        addr: SocketAddr,
        thread: thread::JoinHandle<()>,
        stop: impl FnOnce() + 'static,
    ) -> Server {
        Server {
            addr,
            cpu: cpu_clock(&thread),
            stop: Box::new(stop),
            thread,
        }
    }

    /// Stops accepting, lets the remaining connections end and joins the
    /// server's thread.
    fn shutdown(self) {
        (self.stop)();
        self.thread.join().expect("the server thread panicked");
    }
}

/// The CPU-time clock of `thread`, which is running.
fn cpu_clock<T>(thread: &thread::JoinHandle<T>) -> libc::clockid_t {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the pthread handle is the live thread's (it is joined only
    // in `Server::shutdown`, after the last reading), and the call writes
    // only `clock`, which lives on this stack.
    let rc = unsafe { libc::pthread_getcpuclockid(thread.as_pthread_t(), &mut clock) };
    assert_eq!(rc, 0, "pthread_getcpuclockid: error {rc}");
    clock
}

/// The CPU time `clock` has counted so far.
fn cpu_time(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes only `ts`, which lives on this stack.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime: {}", io::Error::last_os_error());
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Spawns a thread named `name` (for profilers) running `f`.
fn named<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .expect("spawn a thread")
}

/// Echoes everything `stream` receives until the peer closes it.
fn greenlet_echo(mut stream: net::TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

/// The greenlet echo server (as `examples/echo_server.rs`): an accept loop
/// spawning a greenlet per connection. The main greenlet waits on a
/// channel for the stop; then the accept loop is killed (which closes the
/// listener) and `hub::run` returns once every connection has ended.
fn greenlet_server() -> Server {
    greenlet_server_with(None)
}

/// The same server with the hub's idle spin turned off
/// (`hub::set_idle_spin(Duration::ZERO)`): it parks in `epoll_wait` as
/// soon as nothing is ready, as tokio does.
fn greenlet_server_no_spin() -> Server {
    greenlet_server_with(Some(Duration::ZERO))
}

fn greenlet_server_with(spin: Option<Duration>) -> Server {
    let (tx, rx) = std_mpsc::channel();
    let thread = named("greenlet-server", move || {
        if let Some(spin) = spin {
            hub::set_idle_spin(spin);
        }
        let listener = net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let (stop_tx, stop_rx) = hub::channel::<()>();
        tx.send((listener.local_addr().expect("local_addr"), stop_tx))
            .unwrap();
        let acceptor = hub::spawn(move || {
            for stream in listener.incoming() {
                let stream = stream.expect("accept");
                stream.set_nodelay(true).expect("set_nodelay");
                hub::spawn(move || greenlet_echo(stream));
            }
        });
        let _ = stop_rx.recv(); // the server runs meanwhile
        acceptor.kill();
        hub::run();
    });
    let (addr, stop_tx) = rx.recv().expect("the server did not start");
    Server::new(addr, thread, move || {
        let _ = stop_tx.send(());
    })
}

/// The tokio echo server: a current-thread runtime, an accept loop and a
/// task per connection that reads into a 4 KiB buffer and `write_all`s it
/// back, as in tokio's `examples/echo.rs`. The accept loop is a task of its
/// own so that the stop (a oneshot awaited by `block_on`) can abort it;
/// dropping the runtime then drops every connection's task.
fn tokio_server() -> Server {
    let (tx, rx) = std_mpsc::channel();
    let thread = named("tokio-server", move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async move {
            // The same listen backlog as the greenlet server's (tokio's
            // `TcpListener::bind` takes std's 128: a burst of a thousand
            // connects would overflow it, and each dropped SYN is retried
            // only a second later).
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .expect("bind");
            let listener = socket
                .listen(net::TcpListener::BACKLOG as u32)
                .expect("listen");
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            tx.send((listener.local_addr().expect("local_addr"), stop_tx))
                .unwrap();
            let acceptor = tokio::spawn(async move {
                loop {
                    let (mut socket, _) = listener.accept().await.expect("accept");
                    socket.set_nodelay(true).expect("set_nodelay");
                    tokio::spawn(async move {
                        let mut buf = vec![0; 4096];
                        loop {
                            let n = match socket.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if socket.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
            let _ = stop_rx.await;
            acceptor.abort();
        });
    });
    let (addr, stop_tx) = rx.recv().expect("the server did not start");
    Server::new(addr, thread, move || {
        let _ = stop_tx.send(());
    })
}

/// One round trip on `stream`.
fn round_trip(stream: &mut net::TcpStream, msg: &[u8; MESSAGE]) -> io::Result<()> {
    let mut reply = [0u8; MESSAGE];
    stream.write_all(msg)?;
    stream.read_exact(&mut reply)?;
    assert_eq!(&reply, msg, "the echo differs from the message");
    Ok(())
}

/// The client, on a thread (and hub) of its own: `conns` connections to
/// `addr`, `trips` round trips on each at once. Returns the time of the
/// timed round trips alone, and the CPU time the server's thread (whose
/// clock is `server_cpu`) spent meanwhile.
fn client(
    addr: SocketAddr,
    server_cpu: libc::clockid_t,
    conns: u64,
    trips: u64,
) -> (Duration, Duration) {
    named("client", move || {
        let go = Event::new();
        let clients: Vec<_> = (0..conns)
            .map(|i| {
                let mut stream = net::TcpStream::connect(addr).expect("connect");
                stream.set_nodelay(true).expect("set_nodelay");
                let go = go.clone();
                hub::spawn(move || -> io::Result<net::TcpStream> {
                    let msg = [i as u8; MESSAGE];
                    round_trip(&mut stream, &msg)?; // untimed
                    go.wait();
                    for _ in 0..trips {
                        round_trip(&mut stream, &msg)?;
                    }
                    Ok(stream) // closed after the clock stops
                })
            })
            .collect();
        hub::run(); // every connection made its first round trip
        let start = Instant::now();
        let cpu_start = cpu_time(server_cpu);
        go.set();
        hub::run();
        let cpu = cpu_time(server_cpu) - cpu_start;
        let elapsed = start.elapsed();
        for c in clients {
            let stream = c.join().expect("a client greenlet died");
            drop(stream.expect("a connection failed"));
        }
        (elapsed, cpu)
    })
    .join()
    .expect("the client thread panicked")
}

/// Churn: `rounds` times, `conns` connections opened at once, one round
/// trip each, closed; returns connections per second.
fn churn(addr: SocketAddr, conns: u64, rounds: u64) -> f64 {
    named("churn", move || {
        let start = Instant::now();
        for _ in 0..rounds {
            let clients: Vec<_> = (0..conns)
                .map(|i| {
                    hub::spawn(move || -> io::Result<()> {
                        let mut stream = net::TcpStream::connect(addr)?;
                        stream.set_nodelay(true)?;
                        round_trip(&mut stream, &[i as u8; MESSAGE])
                    })
                })
                .collect();
            hub::run();
            for c in clients {
                c.join()
                    .expect("a client greenlet died")
                    .expect("a connection failed");
            }
        }
        (conns * rounds) as f64 / start.elapsed().as_secs_f64()
    })
    .join()
    .expect("the churn thread panicked")
}

/// One churn run against a fresh server.
fn measure_churn(server: fn() -> Server, conns: u64, rounds: u64) -> f64 {
    let server = server();
    let rate = churn(server.addr, conns, rounds);
    server.shutdown();
    rate
}

/// One run against a fresh server.
struct Sample {
    /// Round trips per second.
    rate: f64,
    /// The server thread's CPU time per round trip, in microseconds.
    cpu_us: f64,
}

/// Measures one run against a fresh server.
fn measure(server: fn() -> Server, conns: u64, trips: u64) -> Sample {
    let server = server();
    let (elapsed, cpu) = client(server.addr, server.cpu, conns, trips);
    server.shutdown();
    let n = (conns * trips) as f64;
    Sample {
        rate: n / elapsed.as_secs_f64(),
        cpu_us: cpu.as_secs_f64() * 1e6 / n,
    }
}

/// The round trips of `conns` connections doing `trips` each against a
/// fresh server, while (if `flood`) one more connection floods it.
fn flood_round_trips(server: fn() -> Server, flood: bool, conns: u64, trips: u64) -> Vec<f64> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let server = server();
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood.then(|| {
        let mut writer = std::net::TcpStream::connect(addr).expect("connect");
        writer.set_nodelay(true).expect("set_nodelay");
        let mut reader = writer.try_clone().expect("try_clone");
        let drain = named("flood-reader", move || {
            let mut buf = vec![0u8; 1 << 16];
            while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
        });
        let stop = stop.clone();
        let fill = named("flood-writer", move || {
            let block = vec![0x5au8; 1 << 16];
            while !stop.load(Ordering::Relaxed) {
                if writer.write_all(&block).is_err() {
                    break;
                }
            }
            let _ = writer.shutdown(std::net::Shutdown::Write);
        });
        (drain, fill)
    });
    let times = named("client", move || {
        let go = Event::new();
        let clients: Vec<_> = (0..conns)
            .map(|i| {
                let mut stream = net::TcpStream::connect(addr).expect("connect");
                stream.set_nodelay(true).expect("set_nodelay");
                let go = go.clone();
                hub::spawn(move || -> io::Result<Vec<f64>> {
                    let msg = [i as u8; MESSAGE];
                    round_trip(&mut stream, &msg)?; // untimed
                    go.wait();
                    let mut times = Vec::with_capacity(trips as usize);
                    for _ in 0..trips {
                        let t = Instant::now();
                        round_trip(&mut stream, &msg)?;
                        times.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                    Ok(times)
                })
            })
            .collect();
        hub::run();
        go.set();
        hub::run();
        clients
            .into_iter()
            .flat_map(|c| {
                c.join()
                    .expect("a client greenlet died")
                    .expect("a connection failed")
            })
            .collect::<Vec<f64>>()
    })
    .join()
    .expect("the client thread panicked");
    stop.store(true, Ordering::Relaxed);
    if let Some((drain, fill)) = flooder {
        fill.join().expect("the flood writer panicked");
        drain.join().expect("the flood reader panicked");
    }
    server.shutdown();
    times
}

/// The median and the 99th percentile of `samples`.
fn median_p99(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)];
    (at(50), at(99))
}

/// The median of `samples`, and their spread: (max - min) / median.
fn median(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let mid = samples[samples.len() / 2];
    (mid, (samples[samples.len() - 1] - samples[0]) / mid)
}

/// Raises the soft limit on open files to the hard one: 1,000 connections
/// are 2,000 descriptors in this process (both ends live here).
fn raise_fd_limit(needed: libc::rlim_t) {
    // SAFETY: `getrlimit` and `setrlimit` only read and write the `rlimit`
    // passed to them, which lives on this stack.
    let soft = unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            panic!("getrlimit: {}", io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                panic!("setrlimit: {}", io::Error::last_os_error());
            }
        }
        lim.rlim_cur
    };
    assert!(
        soft >= needed,
        "RLIMIT_NOFILE is {soft} (hard limit), the bench needs about {needed}; raise it with ulimit -Hn"
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it with no
    // argument: then only a quick smoke run.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (runs, scale) = if quick { (1, 100) } else { (RUNS, 1) };
    let max_conns = ROWS.iter().map(|r| r.0).max().unwrap_or(0);
    raise_fd_limit(2 * max_conns + 64);

    let servers: [fn() -> Server; 3] = [greenlet_server, tokio_server, greenlet_server_no_spin];
    // Warm-up: page in the servers and the client once.
    for server in servers {
        measure(server, 100, (100 / scale).max(1));
    }

    println!("echo round trips per second ({MESSAGE}-byte messages, median of {runs} runs)\n");
    println!(
        "| connections | round trips / conn | greenlet rt/s | tokio rt/s | greenlet / tokio \
         | greenlet, idle spin off, rt/s | spin off / tokio | spread greenlet / tokio / spin off |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut cpu_rows = Vec::new();
    for (conns, trips) in ROWS {
        let trips = (trips / scale).max(1);
        let mut samples: [Vec<Sample>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for run in 0..runs {
            // Rotate which server goes first.
            for i in 0..servers.len() {
                let k = (run + i) % servers.len();
                samples[k].push(measure(servers[k], conns, trips));
            }
        }
        // Ratios within each run cancel the machine's slow drifts.
        let ratio = |k: usize| {
            let ratios = samples[k]
                .iter()
                .zip(&samples[1])
                .map(|(g, t)| g.rate / t.rate);
            median(ratios.collect()).0
        };
        let (spin_ratio, off_ratio) = (ratio(0), ratio(2));
        let rates = samples
            .each_ref()
            .map(|s| median(s.iter().map(|x| x.rate).collect()));
        let cpu = samples
            .each_ref()
            .map(|s| median(s.iter().map(|x| x.cpu_us).collect()).0);
        let [(ours, our_spread), (theirs, their_spread), (off, off_spread)] = rates;
        println!(
            "| {conns} | {trips} | {ours:.0} | {theirs:.0} | {spin_ratio:.2} | {off:.0} | {off_ratio:.2} \
             | {:.0}% / {:.0}% / {:.0}% |",
            our_spread * 100.0,
            their_spread * 100.0,
            off_spread * 100.0,
        );
        // The share of one core the server used while the clock ran.
        let busy = |k: usize| cpu[k] * rates[k].0 / 1e4;
        cpu_rows.push(format!(
            "| {conns} | {:.2} | {:.2} | {:.2} | {:.0}% | {:.0}% | {:.0}% |",
            cpu[0],
            cpu[1],
            cpu[2],
            busy(0),
            busy(1),
            busy(2),
        ));
    }
    // Churn: greenlet and tokio servers back to back, rotating.
    let (conns, rounds) = (1_000 / scale, 5);
    let churners: [fn() -> Server; 2] = [greenlet_server, tokio_server];
    let mut churn_rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for run in 0..runs {
        for i in 0..2 {
            let k = (run + i) % 2;
            churn_rates[k].push(measure_churn(churners[k], conns, rounds));
        }
    }
    let churn_ratio = median(
        churn_rates[0]
            .iter()
            .zip(&churn_rates[1])
            .map(|(g, t)| g / t)
            .collect(),
    )
    .0;
    let [(ours, our_spread), (theirs, their_spread)] =
        churn_rates.each_ref().map(|r| median(r.clone()));
    println!("\nchurn: {conns} connections opened at once, one round trip each, closed; {rounds} times a run (median of {runs} runs)\n");
    println!("| connections / burst | greenlet conn/s | tokio conn/s | greenlet / tokio | spread greenlet / tokio |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {conns} | {ours:.0} | {theirs:.0} | {churn_ratio:.2} | {:.0}% / {:.0}% |",
        our_spread * 100.0,
        their_spread * 100.0
    );

    // Flood: 100 connections' round trips, one more connection flooding.
    let (conns, trips) = (100, (300 / scale).max(1));
    println!("\nflood: {conns} connections doing {trips} round trips each, one more connection sending 64 KiB blocks as fast as it can; round trip in µs\n");
    println!("| server | flood | median µs | p99 µs |");
    println!("|---|---|---:|---:|");
    type MakeServer = fn() -> Server;
    let flooded: [(&str, MakeServer); 2] = [("greenlet", greenlet_server), ("tokio", tokio_server)];
    for (name, server) in flooded {
        for flood in [false, true] {
            let (median, p99) = median_p99(flood_round_trips(server, flood, conns, trips));
            let on = if flood { "on" } else { "off" };
            println!("| {name} | {on} | {median:.0} | {p99:.0} |");
        }
    }

    println!("\nserver thread CPU time (user + system) per round trip, in µs, and the server's share of a core (medians)\n");
    println!(
        "| connections | greenlet µs | tokio µs | greenlet, spin off µs \
         | greenlet busy | tokio busy | spin off busy |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for row in cpu_rows {
        println!("{row}");
    }
}
