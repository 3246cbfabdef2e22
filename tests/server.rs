//! `net::Server`: a greenlet per connection, the connection limit, a
//! graceful stop that kills what outlives the grace, and a stop from
//! another thread.

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, Event};
use greenlet::net::{Server, TcpStream};

const HOUR: Duration = Duration::from_secs(3600);

/// Counts the handlers unwound (killed) while it lives in their frame.
struct Count(Rc<Cell<u32>>);

impl Drop for Count {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.set(self.0.get() + 1);
        }
    }
}

/// A handler that echoes one read back.
fn echo_once(mut conn: TcpStream, _peer: std::net::SocketAddr) {
    let mut buf = [0u8; 64];
    if let Ok(n) = conn.read(&mut buf) {
        let _ = conn.write_all(&buf[..n]);
    }
}

fn round_trip(addr: std::net::SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(msg).unwrap();
    let mut reply = vec![0u8; msg.len()];
    c.read_exact(&mut reply).unwrap();
    reply
}

#[test]
fn each_connection_gets_its_own_greenlet() {
    let server = Server::bind("127.0.0.1:0", echo_once).unwrap().start();
    let addr = server.local_addr();
    let clients: Vec<_> = (0..5u8)
        .map(|i| hub::spawn(move || round_trip(addr, &[i; 3])))
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        assert_eq!(c.join().unwrap(), [i as u8; 3]);
    }
    server.stop(HOUR);
    assert!(server.is_stopped());
    assert_eq!(server.connections(), 0);
    assert!(TcpStream::connect(addr).is_err(), "no longer listening");
}

#[test]
fn the_connection_limit_holds_further_connections_in_the_backlog() {
    let (gate, two_inside) = (Event::new(), Event::new());
    let inside = Rc::new(Cell::new(0));
    let most = Rc::new(Cell::new(0));
    let (g, t, i, m) = (
        gate.clone(),
        two_inside.clone(),
        inside.clone(),
        most.clone(),
    );
    let server = Server::bind("127.0.0.1:0", move |conn, peer| {
        i.set(i.get() + 1);
        m.set(m.get().max(i.get()));
        if i.get() == 2 {
            t.set();
        }
        g.wait();
        echo_once(conn, peer);
        i.set(i.get() - 1);
    })
    .unwrap()
    .max_connections(2)
    .start();
    let addr = server.local_addr();
    let clients: Vec<_> = (0..5u8)
        .map(|n| hub::spawn(move || round_trip(addr, &[n])))
        .collect();
    two_inside.wait();
    // Every client has had rounds to connect; the acceptor waits for a slot.
    for _ in 0..10 {
        hub::yield_now();
    }
    assert_eq!(server.connections(), 2);
    gate.set();
    for (n, c) in clients.into_iter().enumerate() {
        assert_eq!(c.join().unwrap(), [n as u8]);
    }
    assert_eq!(most.get(), 2);
    server.stop(HOUR);
}

#[test]
fn stop_lets_handlers_finish_within_the_grace_then_kills_the_rest() {
    let finished = Rc::new(Cell::new(0));
    let killed = Rc::new(Cell::new(0));
    let (f, k) = (finished.clone(), killed.clone());
    let server = Server::bind("127.0.0.1:0", move |mut conn: TcpStream, _| {
        let _count = Count(k.clone());
        let mut b = [0u8; 1];
        conn.read_exact(&mut b).unwrap();
        if b[0] == b's' {
            hub::sleep(Duration::from_millis(1)); // finishes within the grace
            f.set(f.get() + 1);
        } else {
            hub::sleep(HOUR); // outlives it
        }
    })
    .unwrap()
    .start();
    let addr = server.local_addr();
    let mut quick = TcpStream::connect(addr).unwrap();
    let mut slow = TcpStream::connect(addr).unwrap();
    quick.write_all(b"s").unwrap();
    slow.write_all(b"l").unwrap();
    // Both handlers have read their byte once the quick one is done.
    while finished.get() == 0 || server.connections() < 1 {
        hub::yield_now();
    }
    assert!(!server.is_stopping());
    server.stop(Duration::from_millis(50));
    assert!(server.is_stopping() && server.is_stopped());
    assert_eq!(finished.get(), 1);
    assert_eq!(killed.get(), 1, "the slow handler was killed and unwound");
    assert_eq!(server.connections(), 0);
    // The killed handler's socket was closed: its peer sees the end.
    let mut rest = Vec::new();
    assert_eq!(slow.read_to_end(&mut rest).unwrap(), 0);
    drop(quick);
}

#[test]
fn a_stopper_stops_the_server_from_another_thread() {
    let server = Server::bind("127.0.0.1:0", echo_once).unwrap().start();
    let stopper = server.stopper();
    let addr = server.local_addr();
    let t = std::thread::spawn(move || {
        // A blocking client on a plain thread, then the stop.
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        assert!(stopper.stop(Duration::from_secs(5)));
        b
    });
    server.wait();
    assert!(server.is_stopped());
    assert_eq!(t.join().unwrap(), *b"x");
}

#[test]
fn a_handler_can_stop_its_own_server() {
    let slot: Rc<Cell<Option<greenlet::net::ServerHandle>>> = Rc::new(Cell::new(None));
    let s = slot.clone();
    let server = Server::bind("127.0.0.1:0", move |_conn, _| {
        if let Some(h) = s.take() {
            h.stop(Duration::from_secs(1));
        }
    })
    .unwrap()
    .start();
    slot.set(Some(server.clone()));
    let _c = TcpStream::connect(server.local_addr()).unwrap();
    server.wait();
    assert!(server.is_stopped());
}

#[test]
fn an_interrupted_stop_kills_the_handlers_left_and_still_stops() {
    let (inside, gate) = (Event::new(), Event::new());
    let killed = Rc::new(Cell::new(0));
    let (i, g, k) = (inside.clone(), gate.clone(), killed.clone());
    let server = Server::bind("127.0.0.1:0", move |_conn, _| {
        let _count = Count(k.clone());
        i.set();
        g.wait(); // never set: only the stop ends this handler
    })
    .unwrap()
    .start();
    let _client = TcpStream::connect(server.local_addr()).unwrap();
    inside.wait();
    // The stop is cut short while it waits out its hour of grace.
    let cut = hub::with_timeout(Duration::from_millis(1), || server.stop(HOUR));
    assert!(cut.is_err(), "the scope expired inside stop");
    assert!(
        server.is_stopped(),
        "the interrupted stop finished on its way out"
    );
    assert_eq!(killed.get(), 1, "the handler left was killed");
    assert_eq!(server.connections(), 0);
    // Later calls return at once instead of waiting for the first stop.
    server.stop(HOUR);
    server.wait();
}

#[test]
fn a_stopper_made_after_the_stop_says_so() {
    let server = Server::bind("127.0.0.1:0", echo_once).unwrap().start();
    server.stop(HOUR);
    assert!(!server.stopper().stop(HOUR), "nothing is left to stop");
}

/// The greenlet running `stop` may belong to a handler: the handler's
/// guard kills it when the stop kills the handler. The stop still finishes
/// (later `stop` and `wait` return) and the other handlers are still
/// killed.
#[test]
fn a_stop_killed_by_a_handler_it_kills_still_finishes() {
    /// Kills the greenlet it holds as it drops.
    struct KillsOnDrop(Option<hub::JoinHandle<()>>);
    impl Drop for KillsOnDrop {
        fn drop(&mut self) {
            if let Some(h) = self.0.take() {
                h.kill();
            }
        }
    }
    let (inside, gate) = (Event::new(), Event::new());
    let slot: Rc<Cell<Option<greenlet::net::ServerHandle>>> = Rc::new(Cell::new(None));
    let killed = Rc::new(Cell::new(0));
    let (i, g, s, k) = (inside.clone(), gate.clone(), slot.clone(), killed.clone());
    let server = Server::bind("127.0.0.1:0", move |_conn, _| {
        let _count = Count(k.clone());
        // The first handler owns the greenlet that stops the server, once
        // a second handler is in.
        let owned = s.take().map(|h| {
            let i = i.clone();
            hub::spawn(move || {
                i.wait();
                h.stop(Duration::ZERO);
            })
        });
        if owned.is_none() {
            i.set();
        }
        let _guard = KillsOnDrop(owned);
        g.wait(); // never set: only the stop ends a handler
    })
    .unwrap()
    .start();
    slot.set(Some(server.clone()));
    let _first = TcpStream::connect(server.local_addr()).unwrap();
    let _second = TcpStream::connect(server.local_addr()).unwrap();
    server.wait();
    assert!(server.is_stopped());
    assert_eq!(killed.get(), 2, "both handlers were killed");
    assert_eq!(server.connections(), 0);
    server.stop(HOUR);
}

/// A connection the server has no stack for (here a policy whose stacks
/// the system refuses; at the mapping limit, the same) is closed and
/// counted as an accept error; the server goes on accepting.
#[test]
fn a_connection_without_a_stack_is_closed_and_the_server_goes_on() {
    let server = Server::bind("127.0.0.1:0", echo_once).unwrap().start();
    hub::yield_now(); // the acceptor waits for a connection
    let old = greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(usize::MAX));
    let mut refused = TcpStream::connect(server.local_addr()).unwrap();
    let mut rest = Vec::new();
    assert_eq!(refused.read_to_end(&mut rest).unwrap(), 0, "closed");
    assert_eq!(server.accept_errors(), 1);
    greenlet::set_stack_policy(old);
    assert_eq!(round_trip(server.local_addr(), b"x"), b"x");
    server.stop(HOUR);
}

/// The handler closure's destructor (run as `stop` kills the acceptor,
/// which holds the closure) kills the greenlet running `stop`: the stop
/// still finishes.
#[test]
fn a_stop_killed_as_it_kills_the_acceptor_still_finishes() {
    type Slot = Rc<std::cell::RefCell<Option<hub::JoinHandle<()>>>>;
    struct KillsWhenDropped(Slot);
    impl Drop for KillsWhenDropped {
        fn drop(&mut self) {
            if let Some(h) = self.0.borrow_mut().take() {
                h.kill();
            }
        }
    }
    let slot: Slot = Rc::default();
    let kills = KillsWhenDropped(slot.clone());
    let server = Server::bind("127.0.0.1:0", move |_conn, _| {
        let _ = &kills;
    })
    .unwrap()
    .start();
    hub::yield_now(); // the acceptor blocks in accept
    let h = server.clone();
    let stopper = hub::spawn(move || h.stop(Duration::ZERO));
    let g = stopper.greenlet().clone();
    *slot.borrow_mut() = Some(stopper);
    drop(slot);
    server.wait();
    assert!(g.is_dead());
    assert!(server.is_stopped());
}

#[test]
fn handlers_get_their_name_and_stack_size() {
    let server = Server::bind("127.0.0.1:0", |conn: TcpStream, peer| {
        let me = greenlet::Greenlet::current();
        assert_eq!(me.name().unwrap().as_ref(), format!("conn {peer}"));
        echo_once(conn, peer);
    })
    .unwrap()
    .handler_name("conn")
    .handler_stack_size(64 * 1024)
    .start();
    assert_eq!(round_trip(server.local_addr(), b"y"), b"y");
    server.stop(HOUR);
}

/// A stop asked for from a handler runs in a greenlet of its own, from the
/// handler's next block or yield on; it counts as begun at once.
#[test]
fn a_stop_asked_for_by_a_handler_counts_as_begun_at_once() {
    let me: Rc<std::cell::OnceCell<greenlet::net::ServerHandle>> = Rc::default();
    let seen = Rc::new(Cell::new(None));
    let (handle, s) = (me.clone(), seen.clone());
    let server = Server::bind("127.0.0.1:0", move |_conn, _| {
        let server = handle.get().unwrap();
        server.stop(HOUR);
        s.set(Some(server.is_stopping()));
    })
    .unwrap()
    .start();
    me.set(server.clone()).ok();
    let _client = TcpStream::connect(server.local_addr()).unwrap();
    server.wait();
    assert_eq!(seen.get(), Some(true));
}

/// A stop run by a daemon (a signal listener, a `Stopper`'s watcher) while
/// main waits in `wait` and a handler waits on something only the stop
/// ends: main waits out the grace (review 51: main panicked "would block
/// forever", the daemon's grace timer not counting, and the server was
/// left half stopped).
#[test]
fn a_stop_run_by_a_daemon_is_waited_for_by_main() {
    hub::time::pause();
    let never = Event::new();
    let n = never.clone();
    let server = Server::bind("127.0.0.1:0", move |_conn: TcpStream, _| n.wait())
        .unwrap()
        .start();
    let _client = TcpStream::connect(server.local_addr()).unwrap();
    while server.connections() == 0 {
        hub::yield_now();
    }
    let trigger = Event::new();
    let (t, h) = (trigger.clone(), server.clone());
    hub::spawn_daemon(move || {
        t.wait(); // stands in for `signal.recv()`
        h.stop(Duration::from_secs(30));
    });
    trigger.set();
    let start = hub::time::now();
    server.wait();
    assert!(server.is_stopped());
    assert_eq!(server.connections(), 0);
    assert_eq!(hub::time::now() - start, Duration::from_secs(30));
    hub::time::resume();
}

#[test]
fn a_second_stop_with_a_shorter_grace_cuts_the_first_short() {
    // An idle client holds its handler; a stop with an hour of grace is
    // under way when a stop with none comes (a second Ctrl-C): both end
    // at once. The same through a `Stopper`, as a signal handler sends.
    hub::time::pause();
    for through_stopper in [false, true] {
        let (server, killed, _client) = idle_server();
        let start = hub::time::now();
        let stopper = server.stopper();
        let first = first_stop(&server);
        hub::yield_now(); // the first stop waits out its grace
        assert!(server.is_stopping() && !server.is_stopped());
        if through_stopper {
            assert!(stopper.stop(Duration::ZERO));
            server.wait();
        } else {
            server.stop(Duration::ZERO);
        }
        first.join().unwrap();
        assert!(server.is_stopped());
        assert_eq!(killed.get(), 1, "the idle handler was killed");
        assert_eq!(hub::time::now(), start, "nobody waited out the hour");
    }
}

/// A stop with an hour of grace, under way in a greenlet of its own.
fn first_stop(server: &greenlet::net::ServerHandle) -> hub::JoinHandle<()> {
    let server = server.clone();
    hub::spawn(move || server.stop(HOUR))
}

/// A server whose one handler waits on an idle client; the count of
/// handlers killed; the client.
fn idle_server() -> (greenlet::net::ServerHandle, Rc<Cell<u32>>, TcpStream) {
    let killed = Rc::new(Cell::new(0));
    let k = killed.clone();
    let server = Server::bind("127.0.0.1:0", move |mut conn: TcpStream, _| {
        let _count = Count(k.clone());
        let _ = conn.read(&mut [0u8; 1]); // never sent
    })
    .unwrap()
    .start();
    let client = TcpStream::connect(server.local_addr()).unwrap();
    while server.connections() < 1 {
        hub::yield_now();
    }
    (server, killed, client)
}

#[test]
fn a_second_stop_interrupted_while_it_waits_cuts_the_grace_short_too() {
    hub::time::pause();
    for how in ["with_timeout", "kill"] {
        let (server, killed, _client) = idle_server();
        let start = hub::time::now();
        let first = first_stop(&server);
        hub::yield_now();
        if how == "with_timeout" {
            let r = hub::with_timeout(Duration::from_secs(1), || {
                server.stop(Duration::from_secs(30))
            });
            assert!(r.is_err());
        } else {
            let second = {
                let server = server.clone();
                hub::spawn(move || server.stop(Duration::from_secs(30)))
            };
            hub::sleep(Duration::from_secs(1));
            second.kill();
        }
        first.join().unwrap();
        assert!(server.is_stopped(), "{how}");
        assert_eq!(killed.get(), 1, "{how}");
        assert_eq!(hub::time::now() - start, Duration::from_secs(1), "{how}");
    }
}

#[test]
fn a_stopper_made_while_a_stop_is_under_way_can_cut_it_short() {
    hub::time::pause();
    let (server, killed, _client) = idle_server();
    let start = hub::time::now();
    let first = first_stop(&server);
    hub::yield_now();
    let stopper = server.stopper();
    assert!(stopper.stop(Duration::ZERO));
    first.join().unwrap();
    assert_eq!(killed.get(), 1);
    assert_eq!(hub::time::now(), start);
    assert!(!stopper.stop(Duration::ZERO), "stopped: nobody hears it");
}

/// Counts its drops, then panics.
struct PanicsAsItDrops(Rc<Cell<u32>>);

impl Drop for PanicsAsItDrops {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
        panic!("a handler's capture panics as it drops");
    }
}

/// The server's greenlets hold the handler, and a stop kills them: the
/// stop keeps a reference to it until they are gone and drops that last
/// one itself, so a capture that panics as it drops is reported rather
/// than aborting the process from a killed greenlet's unwinding.
#[test]
fn a_stopped_servers_handler_drops_once_outside_the_kills() {
    use greenlet::net::DatagramServer;
    let drops = Rc::new(Cell::new(0));
    let capture = PanicsAsItDrops(drops.clone());
    let server = Server::bind("127.0.0.1:0", move |_conn, _peer| {
        let _ = &capture;
        hub::sleep(HOUR);
    })
    .unwrap()
    .start();
    let _client = TcpStream::connect(server.local_addr()).unwrap();
    hub::yield_now(); // accepted: a handler holds the handler too, and sleeps
    hub::yield_now();
    server.stop(Duration::ZERO);
    assert!(server.is_stopped());
    assert_eq!(drops.get(), 1);

    let capture = PanicsAsItDrops(drops.clone());
    let server = DatagramServer::bind("127.0.0.1:0", move |_data, _peer, _reply| {
        let _ = &capture;
    })
    .unwrap()
    .start();
    hub::yield_now(); // its receive loop waits
    server.stop(Duration::ZERO);
    assert_eq!(drops.get(), 2);
    assert_eq!(hub::spawn(|| 3).join().unwrap(), 3, "the thread goes on");
}

/// A handler that reaches its own server through a cell (as
/// `ServerHandle`'s example does) makes no cycle that outlives the
/// server's greenlets: a server never stopped drops its handler when
/// `hub::run_main` ends and kills them. (The thread's exit alone kills no
/// started greenlet: it would leave the accept loop suspended, the handler
/// with it; see the crate's **Threads** rule.)
#[test]
fn a_never_stopped_server_whose_handler_holds_its_handle_drops_it_when_run_main_ends() {
    use std::cell::OnceCell;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    struct SetsOnDrop(Arc<AtomicBool>);
    impl Drop for SetsOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    std::thread::spawn(move || {
        hub::run_main(move || {
            let capture = SetsOnDrop(flag);
            let me: Rc<OnceCell<greenlet::net::ServerHandle>> = Rc::new(OnceCell::new());
            let cell = me.clone();
            let server = Server::bind("127.0.0.1:0", move |_conn, _peer| {
                let _ = (&capture, cell.get());
            })
            .unwrap()
            .start();
            me.set(server).ok();
            hub::yield_now(); // its accept loop waits; run_main ends
        });
    })
    .join()
    .unwrap();
    assert!(
        dropped.load(Ordering::SeqCst),
        "the handler was never dropped"
    );
}

#[test]
fn a_stop_from_a_handlers_generator_does_not_wait_for_its_own_handler() {
    use greenlet::net::ServerHandle;
    use greenlet::{Generator, Yielder};
    use std::cell::OnceCell;
    hub::time::pause();
    let me: Rc<OnceCell<ServerHandle>> = Rc::default();
    let handle = me.clone();
    let server = Server::bind("127.0.0.1:0", move |_conn: TcpStream, _peer| {
        let handle = handle.clone();
        // The handler serves its requests through a generator, whose
        // producer takes a "quit" and stops the server, with a long grace.
        let mut requests = Generator::new(move |y: &Yielder<u32>| {
            handle.get().unwrap().stop(Duration::from_secs(3600));
            y.yield_(1);
        });
        requests.next();
    })
    .unwrap()
    .start();
    me.set(server.clone()).unwrap();
    let _client = TcpStream::connect(server.local_addr()).unwrap();
    let start = hub::time::now();
    server.wait();
    assert!(
        hub::time::now() - start < Duration::from_secs(3600),
        "the stop waited out its grace for its own handler"
    );
}

/// A handler waiting for "its next request or the stop" (the pattern of
/// `ServerHandle`'s docs) after its client sent one TCP urgent byte and
/// nothing else: the stop ends it at once (review 44: `readable()` said
/// ready, the handler blocked in its read, and the stop sat out its whole
/// grace).
#[test]
fn an_urgent_byte_does_not_hold_a_stop_for_its_grace() {
    use greenlet::hub::Waitable;
    use greenlet::net::ServerHandle;
    use std::cell::OnceCell;
    use std::os::fd::AsRawFd;
    let me: Rc<OnceCell<ServerHandle>> = Rc::default();
    let cell = me.clone();
    let looks = Rc::new(Cell::new(0u32));
    let looked = looks.clone();
    let server = Server::bind("127.0.0.1:0", move |mut conn: TcpStream, _| {
        let server = cell.get().expect("set after start");
        loop {
            let either: [&dyn Waitable; 2] = [&conn.readable(), server];
            looked.set(looked.get() + 1);
            if hub::wait_any(&either, None) == Some(1) {
                return;
            }
            let mut request = [0u8; 64];
            if conn.read(&mut request).unwrap_or(0) == 0 {
                return;
            }
        }
    })
    .unwrap()
    .start();
    me.set(server.clone()).ok();
    let client = TcpStream::connect(server.local_addr()).unwrap();
    // SAFETY: the one-byte buffer is live for the call; the fd is the
    // client's open socket.
    let n = unsafe { libc::send(client.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
    assert_eq!(n, 1);
    while looks.get() == 0 {
        hub::yield_now(); // the handler waits
    }
    hub::sleep(Duration::from_millis(20)); // the urgent byte's event comes
    hub::time::pause();
    let start = hub::time::now();
    server.stop(Duration::from_secs(60));
    assert_eq!(hub::time::now() - start, Duration::ZERO);
    hub::time::resume();
}
