//! `net::lookup_host`: resolution on a pool thread, blocking only its
//! greenlet.

use std::cell::Cell;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use greenlet::hub;
use greenlet::net::lookup_host;

#[path = "support/unwinding.rs"]
mod unwinding;

#[path = "support/child.rs"]
mod child;

#[test]
fn an_address_resolves_to_itself() {
    let addr: SocketAddr = "127.0.0.1:4242".parse().unwrap();
    let got: Vec<SocketAddr> = lookup_host(addr).unwrap().collect();
    assert_eq!(got, [addr]);
    let got: Vec<SocketAddr> = lookup_host(("::1", 7)).unwrap().collect();
    assert_eq!(got, ["[::1]:7".parse::<SocketAddr>().unwrap()]);
}

#[test]
fn an_invalid_port_is_an_error_of_the_resolver() {
    let err = lookup_host("127.0.0.1:notaport").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

/// A `ToSocketAddrs` that blocks its thread until told to go on, the way
/// `getaddrinfo` blocks on a slow name server.
struct SlowName {
    go: mpsc::Receiver<()>,
    addr: SocketAddr,
}

impl ToSocketAddrs for SlowName {
    type Iter = std::vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        self.go.recv().unwrap();
        Ok(vec![self.addr].into_iter())
    }
}

#[test]
fn a_slow_lookup_blocks_only_its_greenlet() {
    let (go, wait) = mpsc::channel();
    let addr: SocketAddr = "10.1.2.3:80".parse().unwrap();
    let ticks = Rc::new(Cell::new(0));
    let ticker = {
        let ticks = ticks.clone();
        hub::spawn(move || {
            // The other greenlets run while the lookup blocks its pool
            // thread; the third tick lets the name server answer.
            for _ in 0..3 {
                hub::yield_now();
                ticks.set(ticks.get() + 1);
            }
            go.send(()).unwrap();
        })
    };
    let got: Vec<SocketAddr> = lookup_host(SlowName { go: wait, addr }).unwrap().collect();
    assert_eq!(got, [addr]);
    assert_eq!(ticks.get(), 3);
    ticker.join().unwrap();
}

#[test]
fn a_kill_stops_the_wait_and_the_lookup_ends_on_its_own() {
    let (go, wait) = mpsc::channel::<()>();
    let addr: SocketAddr = "10.1.2.3:80".parse().unwrap();
    let looker = hub::spawn(move || lookup_host(SlowName { go: wait, addr }).map(drop));
    hub::yield_now(); // it starts, and waits for its pool thread
    looker.kill();
    assert!(matches!(looker.join(), Err(hub::JoinError::Killed)));
    // The wait no longer holds the paused clock: it jumps past an hour at
    // once although the lookup still runs on its pool thread.
    hub::time::pause();
    hub::sleep(Duration::from_secs(3600));
    hub::time::resume();
    // The lookup ends; its result is dropped on the pool thread.
    go.send(()).unwrap();
}

#[test]
fn a_panic_of_the_resolver_resumes_in_the_caller() {
    struct Panics;
    impl ToSocketAddrs for Panics {
        type Iter = std::vec::IntoIter<SocketAddr>;
        fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
            panic!("resolver broke");
        }
    }
    let caught = std::panic::catch_unwind(|| lookup_host(Panics)).unwrap_err();
    assert_eq!(caught.downcast_ref::<&str>(), Some(&"resolver broke"));
}

#[test]
fn localhost_resolves_and_connects() {
    let listener = greenlet::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let addrs: Vec<SocketAddr> = lookup_host(("localhost", port)).unwrap().collect();
    assert!(addrs
        .iter()
        .any(|a| a.ip().is_loopback() && a.port() == port));
    let v4 = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .expect("localhost has 127.0.0.1");
    greenlet::net::TcpStream::connect(*v4).unwrap();
}

#[test]
fn a_name_given_in_a_destructor_while_unwinding_is_an_error_not_an_abort() {
    let connected = unwinding::in_a_destructor_while_unwinding(|| {
        greenlet::net::TcpStream::connect("localhost:1").map_err(|e| e.kind())
    });
    assert_eq!(
        connected.err(),
        Some(io::ErrorKind::Other),
        "it could not wait"
    );
}

/// A lookup (and a connect to a host name, which looks it up) on a thread
/// whose hub has no reactor yet, out of descriptors: the error, not a
/// panic (review 44: the pool's result channel made the reactor through
/// a call that panics). In a process of its own: the limit is the
/// process's.
#[test]
fn out_of_descriptors_a_lookup_is_an_error_not_a_panic() {
    const TEST: &str = "out_of_descriptors_a_lookup_is_an_error_not_a_panic";
    const CHILD: &str = "GREENLET_NET_LOOKUP_CHILD";
    if std::env::var_os(CHILD).is_none() {
        child::assert_passes(TEST, CHILD, "1");
        return;
    }
    let errors = std::thread::spawn(|| {
        use std::os::fd::AsFd;
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is valid for `getrlimit` to fill and `setrlimit`
        // to read; this process runs this test alone.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
            limit.rlim_cur = open as libc::rlim_t + 8;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
        let null = std::fs::File::open("/dev/null").unwrap();
        let mut full = Vec::new();
        while let Ok(fd) = null.as_fd().try_clone_to_owned() {
            full.push(fd);
        }
        let looked = lookup_host("localhost:80").map(drop);
        let connected = greenlet::net::TcpStream::connect("localhost:1").map(drop);
        (
            looked.map_err(|e| e.raw_os_error()),
            connected.map_err(|e| e.raw_os_error()),
        )
    })
    .join()
    .expect("a panic, not an error");
    assert_eq!(errors, (Err(Some(libc::EMFILE)), Err(Some(libc::EMFILE))));
}
