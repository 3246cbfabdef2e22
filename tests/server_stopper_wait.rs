//! `ServerHandle::wait` for a stop that a `Stopper` on another thread will
//! send, while the server's greenlets all wait on the hub's own primitives
//! (its loop on a full pool, the handler on the server's stop, the pattern
//! `ServerHandle`'s docs show): the wait must last until the stop, not be
//! told that it waits for ever (the stopper's watcher was a daemon, which
//! kept nothing waiting). Each case runs 30 times; the body runs on a
//! thread with a 60 s hang guard. Also: stops asked for when no stack can
//! be had for the greenlet that would carry them out.
use std::cell::OnceCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use greenlet::hub::{self, Waitable};
use greenlet::net::{DatagramServer, Server, ServerHandle, TcpStream, UdpSocket};

fn guard<F: FnOnce() + Send + 'static>(f: F) {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => t.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(e) = t.join() {
                std::panic::resume_unwind(e)
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("HANG: test body did not finish in 60 s"),
    }
}

/// Waits in `server.wait()` while another thread sends the stop as soon
/// as main says it is about to wait. Returns whether `wait` panicked.
fn wait_for_a_remote_stop(server: &ServerHandle) -> bool {
    let stopper = server.stopper();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        go_rx.recv().unwrap();
        stopper.stop(Duration::ZERO)
    });
    go_tx.send(()).unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| server.wait()));
    let sent = t.join().unwrap();
    assert!(sent);
    if let Err(e) = &r {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        eprintln!("wait() panicked: {msg}");
        server.stop(Duration::ZERO); // finish it locally
    }
    r.is_err()
}

fn waits_for_its_server(cell: &Rc<OnceCell<ServerHandle>>) {
    let server = cell.get().unwrap();
    let w: [&dyn Waitable; 1] = [server];
    hub::wait_any(&w, None);
}

#[test]
fn udp_wait_for_a_stopper_with_a_full_pool() {
    guard(|| {
        let mut panics = 0;
        for _ in 0..30 {
            let me: Rc<OnceCell<ServerHandle>> = Rc::default();
            let m = me.clone();
            let server =
                DatagramServer::bind("127.0.0.1:0", move |_, _, _| waits_for_its_server(&m))
                    .unwrap()
                    .max_handlers(1)
                    .start();
            me.set(server.clone()).ok();
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.send_to(b"x", server.local_addr()).unwrap();
            while server.connections() == 0 {
                hub::yield_now();
            }
            hub::yield_now(); // the receiver now waits for a free slot
            if wait_for_a_remote_stop(&server) {
                panics += 1;
            }
            assert!(server.is_stopped());
        }
        assert_eq!(
            panics, 0,
            "server.wait() panicked {panics}/30 times while a Stopper's stop was on its way"
        );
    });
}

/// The same without a limit: the receiver waits on the socket, which keeps
/// main waiting (control).
#[test]
fn udp_wait_for_a_stopper_without_a_limit() {
    guard(|| {
        let mut panics = 0;
        for _ in 0..30 {
            let me: Rc<OnceCell<ServerHandle>> = Rc::default();
            let m = me.clone();
            let server =
                DatagramServer::bind("127.0.0.1:0", move |_, _, _| waits_for_its_server(&m))
                    .unwrap()
                    .start();
            me.set(server.clone()).ok();
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.send_to(b"x", server.local_addr()).unwrap();
            while server.connections() == 0 {
                hub::yield_now();
            }
            if wait_for_a_remote_stop(&server) {
                panics += 1;
            }
        }
        assert_eq!(panics, 0);
    });
}

/// TCP: one slot, the handler waits for the server's stop (the documented
/// Waitable pattern, without the connection's readable).
#[test]
fn tcp_wait_for_a_stopper_with_a_full_pool() {
    guard(|| {
        let mut panics = 0;
        for _ in 0..30 {
            let me: Rc<OnceCell<ServerHandle>> = Rc::default();
            let m = me.clone();
            let server = Server::bind("127.0.0.1:0", move |_conn: TcpStream, _| {
                waits_for_its_server(&m)
            })
            .unwrap()
            .max_connections(1)
            .start();
            me.set(server.clone()).ok();
            let _c = TcpStream::connect(server.local_addr()).unwrap();
            while server.connections() == 0 {
                hub::yield_now();
            }
            hub::yield_now();
            if wait_for_a_remote_stop(&server) {
                panics += 1;
            }
        }
        assert_eq!(
            panics, 0,
            "server.wait() panicked {panics}/30 times while a Stopper's stop was on its way"
        );
    });
}

/// A stack size no stack can be mapped for: with it as the thread's
/// policy, every spawn without a size of its own fails as at the mapping
/// limit (`hub::Builder::spawn` says so, `hub::spawn` panics).
const UNMAPPABLE: usize = usize::MAX / 2;

/// A `Stopper`'s request is carried out even when no greenlet can be
/// spawned for it: the listening greenlet stops the server itself (the
/// request was lost, its listener dead, and later requests said the
/// server had stopped).
#[test]
fn a_stoppers_request_stops_the_server_when_no_stack_can_be_had() {
    guard(|| {
        let server = Server::bind("127.0.0.1:0", |_, _| {}).unwrap().start();
        let stopper = server.stopper();
        hub::yield_now(); // its listener and the acceptor start
        let policy =
            greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(UNMAPPABLE));
        let sent = std::thread::spawn(move || stopper.stop(Duration::ZERO));
        assert!(sent.join().unwrap(), "sent");
        server.wait();
        greenlet::set_stack_policy(policy);
        assert!(server.is_stopping());
    });
}

/// A handler's `stop` that cannot get a greenlet to stop the server
/// (no stack) panics in the handler and leaves the server as it was:
/// not half stopped (`is_stopping`, ready as a `Waitable`, with nobody
/// stopping it), so a stop from outside still works.
#[test]
fn a_handlers_stop_with_no_stack_leaves_the_server_serving() {
    guard(|| {
        let cell: Rc<OnceCell<ServerHandle>> = Default::default();
        let in_handler = cell.clone();
        let refused = Rc::new(std::cell::Cell::new(None));
        let refused_in_handler = refused.clone();
        let server = Server::bind("127.0.0.1:0", move |_, _| {
            let stopped = catch_unwind(AssertUnwindSafe(|| {
                in_handler.get().unwrap().stop(Duration::ZERO)
            }));
            refused_in_handler.set(Some(stopped.is_err()));
        })
        .unwrap()
        // Handlers have a size of their own, so they can still start.
        .handler_stack_size(256 * 1024)
        .start();
        cell.set(server.clone()).ok();
        hub::yield_now();
        let policy =
            greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(UNMAPPABLE));
        let client = TcpStream::connect(server.local_addr()).unwrap();
        let mut buf = [0u8; 1];
        // The handler ran (it closed the connection) and left the server
        // serving.
        assert_eq!(std::io::Read::read(&mut &client, &mut buf).unwrap(), 0);
        greenlet::set_stack_policy(policy);
        assert_eq!(refused.get(), Some(true), "the handler heard of it");
        assert!(!server.is_stopping());
        let waitable: [&dyn Waitable; 1] = [&server];
        assert_eq!(hub::wait_any(&waitable, Some(Duration::ZERO)), None);
        assert!(
            TcpStream::connect(server.local_addr()).is_ok(),
            "still listening"
        );
        server.stop(Duration::ZERO);
        server.wait();
    });
}
