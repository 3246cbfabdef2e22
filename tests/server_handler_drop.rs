//! A server's stop drops its handler last, once the server counts as
//! stopped: a destructor of the handler's captures may stop the server
//! again, take a `Stopper`, or block (as ordinary work, even in a daemon's
//! stop, and interruptible); and a stop with a grace of zero kills the
//! handlers at once, those accepted but not started among them.

use std::cell::{Cell, OnceCell, RefCell};
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub;
use greenlet::net::{Server, ServerHandle, Stopper, TcpStream};

#[path = "support/hang_guard.rs"]
mod hang_guard;

/// A capture of the handler's: when dropped, runs `f` on the server.
struct OnDrop(Rc<OnceCell<ServerHandle>>, fn(&ServerHandle));

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(server) = self.0.get() {
            (self.1)(server);
        }
    }
}

/// A server whose handler captures `on_drop`, and the cell it reaches
/// the server through, filled.
fn server_whose_handler_does(on_drop: fn(&ServerHandle)) -> ServerHandle {
    let cell: Rc<OnceCell<ServerHandle>> = Rc::default();
    let capture = OnDrop(cell.clone(), on_drop);
    let server = Server::bind("127.0.0.1:0", move |_conn, _peer| {
        let _ = &capture;
    })
    .unwrap()
    .start();
    cell.set(server.clone()).ok();
    server
}

/// The handler's destructor stops the server again: it waited for the
/// stop under way, its own caller, for ever (with anything else alive on
/// the hub; alone, it panicked "would block forever", swallowed).
#[test]
fn a_stop_from_the_handlers_destructor_returns() {
    let out = hang_guard::guard(60, || {
        let other = Server::bind("127.0.0.1:0", |_c, _p| {}).unwrap().start();
        let server = server_whose_handler_does(|s| s.stop(Duration::ZERO));
        server.stop(Duration::ZERO);
        other.stop(Duration::ZERO);
        server.is_stopped()
    });
    assert_eq!(out, Ok(true));
}

thread_local! {
    static TAKEN: RefCell<Option<Stopper>> = const { RefCell::new(None) };
}

/// The handler's destructor takes a `Stopper`: it started a watcher
/// nothing ended, and the stopper said `true` for a stopped server.
#[test]
fn a_stopper_taken_by_the_handlers_destructor_says_false() {
    let out = hang_guard::guard(60, || {
        let server = server_whose_handler_does(|s| {
            TAKEN.with(|t| *t.borrow_mut() = Some(s.stopper()));
        });
        server.stop(Duration::ZERO);
        let taken = TAKEN.with(|t| t.borrow_mut().take()).expect("taken");
        let (sent, sent_again) = (
            taken.stop(Duration::ZERO),
            server.stopper().stop(Duration::ZERO),
        );
        drop((server, taken));
        hub::run(); // nothing of the server's is left to keep it going
        (sent, sent_again)
    });
    assert_eq!(out, Ok((false, false)));
}

/// The handler's destructor blocks; a `with_timeout` around the stop
/// expires meanwhile: the expiry goes on (it was caught and reported as
/// the handler's panic, and the scope returned `Ok`).
#[test]
fn a_timeout_expiring_while_the_handlers_destructor_blocks_goes_on() {
    let out = hang_guard::guard(60, || {
        let server = server_whose_handler_does(|_| hub::sleep(Duration::from_secs(100)));
        hub::time::pause();
        let start = hub::time::now();
        let r = hub::with_timeout(Duration::from_secs(1), || server.stop(Duration::ZERO));
        let waited = hub::time::now() - start;
        hub::time::resume();
        (r.is_err(), waited, server.is_stopped())
    });
    assert_eq!(out, Ok((true, Duration::from_secs(1), true)));
}

/// A daemon's stop (a signal listener) whose handler's destructor blocks:
/// main, waiting for the stop, is not told that only daemons wait.
#[test]
fn a_daemons_stop_keeps_main_waiting_while_the_handlers_destructor_blocks() {
    let out = hang_guard::guard(60, || {
        let server = server_whose_handler_does(|_| hub::sleep(Duration::from_millis(20)));
        hub::time::pause();
        let s = server.clone();
        hub::spawn_daemon(move || s.stop(Duration::from_secs(1)));
        server.wait();
        hub::time::resume();
        server.is_stopped()
    });
    assert_eq!(out, Ok(true));
}

/// A grace of zero kills at once: handlers accepted but not started when
/// the stop is called never run (a zero-timeout wait let every ready
/// greenlet run first).
#[test]
fn a_zero_grace_stop_does_not_start_handlers_not_started_yet() {
    let out = hang_guard::guard(60, || {
        let started = Rc::new(Cell::new(0usize));
        let s = started.clone();
        let server = Server::bind("127.0.0.1:0", move |conn: TcpStream, _peer| {
            s.set(s.get() + 1);
            let _ = (&conn).write_all(b"z");
            hub::sleep(Duration::from_secs(1000));
        })
        .unwrap()
        .start();
        hub::yield_now();
        let clients: Vec<_> = (0..8)
            .map(|_| TcpStream::connect(server.local_addr()).unwrap())
            .collect();
        // Yield until the server accepted a connection whose handler has
        // not run yet (a bounded number of times: the setup's own check).
        let accepted_unstarted = (0..1000).any(|_| {
            hub::yield_now();
            server.connections() > started.get()
        });
        let before = started.get();
        server.stop(Duration::ZERO);
        drop(clients);
        (accepted_unstarted, started.get() == before)
    });
    assert_eq!(out, Ok((true, true)));
}

/// The stop returns after the handler's destructors (a blocking flush
/// among them), so joining the greenlet that called it sees them done;
/// `wait` returns once the server counts as stopped, before the handler's
/// drop, so that a destructor joining a helper greenlet that waits for the
/// server does not wait for itself. (A second event set after the drop,
/// for `wait`, deadlocked there.)
#[test]
fn the_stop_returns_after_the_handlers_destructors_and_a_helper_waiting_for_the_server_ends() {
    let out = hang_guard::guard(60, || {
        thread_local! {
            static SERVER: OnceCell<ServerHandle> = const { OnceCell::new() };
        }
        struct Flush(Rc<Cell<bool>>);
        impl Drop for Flush {
            fn drop(&mut self) {
                // A helper that waits for the server, joined here.
                let helper = hub::spawn(|| SERVER.with(|s| s.get().unwrap().wait()));
                hub::sleep(Duration::from_millis(1)); // a blocking flush
                helper.join().unwrap();
                self.0.set(true);
            }
        }
        let flushed = Rc::new(Cell::new(false));
        let capture = Flush(flushed.clone());
        let other = Server::bind("127.0.0.1:0", |_c, _p| {}).unwrap().start();
        let server = Server::bind("127.0.0.1:0", move |_conn, _peer| {
            let _ = &capture;
        })
        .unwrap()
        .start();
        SERVER.with(|s| s.set(server.clone()).ok());
        hub::time::pause();
        let s = server.clone();
        let stopping = hub::spawn(move || s.stop(Duration::from_secs(1)));
        server.wait();
        stopping.join().unwrap();
        hub::time::resume();
        other.stop(Duration::ZERO);
        flushed.get()
    });
    assert_eq!(out, Ok(true));
}
