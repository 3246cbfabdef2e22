//! The hub allocates nothing per `yield_now`, per queue hand-off, per
//! spawn and join, per timer, per socket wait or per channel receive once
//! warmed up (its containers keep their capacity, its slabs reuse slots,
//! the stack pool and the spawn states' pool reuse their blocks). Counted
//! per thread, so other test threads don't interfere.

mod common;
#[path = "common/steady_state.rs"]
mod steady_state;

use std::cell::Cell;
use std::time::Duration;

use greenlet::hub::{self, Event, Queue};
use steady_state::steady_state;

#[test]
fn yield_now_allocates_nothing() {
    // A partner yields alongside, so every yield really switches.
    let stop = std::rc::Rc::new(Cell::new(false));
    let s = stop.clone();
    hub::spawn(move || {
        while !s.get() {
            hub::yield_now();
        }
    });
    let n = steady_state(20_000, |_| hub::yield_now());
    stop.set(true);
    hub::run();
    assert_eq!(n, 0);
}

#[test]
fn spawn_and_join_allocate_nothing() {
    // Each step spawns a greenlet (a pooled stack, a recycled record, a
    // pooled join state), joins it and drops its handle.
    let n = steady_state(20_000, |i| {
        assert_eq!(hub::spawn(move || i * 2).join().unwrap(), i * 2);
    });
    assert_eq!(n, 0);
}

/// Two bounded(1) queues and a greenlet that answers each `v` put on the
/// first with `v + 1` on the second, until it gets `u64::MAX`.
fn echo_pair() -> (Queue<u64>, Queue<u64>, hub::JoinHandle<()>) {
    let (ping, pong) = (Queue::bounded(1), Queue::bounded(1));
    let (pi, po) = (ping.clone(), pong.clone());
    let echo = hub::spawn(move || loop {
        let v: u64 = pi.get();
        if v == u64::MAX {
            return;
        }
        po.put(v + 1);
    });
    (ping, pong, echo)
}

#[test]
fn queue_hand_offs_allocate_nothing() {
    // A ping-pong through two bounded(1) queues: every get blocks and every
    // put wakes the other side.
    let (ping, pong, echo) = echo_pair();
    let (pi, po) = (ping.clone(), pong.clone());
    let n = steady_state(20_000, move |i| {
        pi.put(i as u64);
        assert_eq!(po.get(), i as u64 + 1);
    });
    ping.put(u64::MAX);
    echo.join().unwrap();
    assert_eq!(n, 0);
}

#[test]
fn timers_allocate_nothing() {
    let e = Event::new();
    let n = steady_state(2_000, move |i| {
        if i % 2 == 0 {
            hub::sleep(Duration::from_nanos(1));
        } else {
            assert!(!e.wait_timeout(Duration::from_nanos(1)));
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn timers_cancelled_before_their_deadline_allocate_nothing() {
    // A receive loop with a long timeout that is always met: every get
    // blocks (its timer is set) and is served quickly (its timer is
    // cancelled). Cancelled timers must not pile up in the heap, even
    // behind an earlier deadline that stays pending (a long sleeper).
    let sleeper = hub::spawn(|| hub::sleep(Duration::from_secs(1800)));
    let (ping, pong, echo) = echo_pair();
    let (pi, po) = (ping.clone(), pong.clone());
    let n = steady_state(40_000, move |i| {
        pi.put(i as u64);
        assert_eq!(
            po.get_timeout(Duration::from_secs(3600)),
            Some(i as u64 + 1)
        );
    });
    ping.put(u64::MAX);
    echo.join().unwrap();
    sleeper.kill();
    assert_eq!(n, 0);
}

#[test]
fn socket_waits_allocate_nothing() {
    use greenlet::net::UnixStream;
    use std::io::{Read, Write};

    // An echo over a socket pair: every read blocks its greenlet on the
    // socket (a hub wait, a poll, a wake-up) and every write wakes the
    // other side through the kernel. The sockets and the reactor are made
    // before counting; mio's `Events` buffer is allocated once.
    let (a, b) = UnixStream::pair().unwrap();
    let echo = hub::spawn(move || {
        let mut b = b;
        let mut buf = [0u8; 8];
        while b.read_exact(&mut buf).is_ok() {
            b.write_all(&buf).unwrap();
        }
    });
    let a = std::rc::Rc::new(a);
    let client = a.clone();
    let n = steady_state(4_000, move |i| {
        let mut a = &*client;
        a.write_all(&(i as u64).to_le_bytes()).unwrap();
        let mut buf = [0u8; 8];
        a.read_exact(&mut buf).unwrap();
        assert_eq!(u64::from_le_bytes(buf), i as u64);
    });
    drop(a); // EOF for the echo greenlet
    echo.join().unwrap();
    assert_eq!(n, 0);
}

#[test]
fn channel_receives_allocate_nothing_on_the_receiving_thread() {
    // Values from another thread: each recv that finds the channel empty
    // blocks (a hub wait woken through the waker), others find a value
    // waiting. The counter is per thread, so the sender's allocations (the
    // queue's growth, the inbox) are not counted; what the receiving hub
    // does per value is.
    //
    // The first `WARM` values are sent only when a greenlet that runs once
    // the receiver has blocked asks for them, so the warm-up half surely
    // takes the blocking path (and grows whatever it needs) whatever the
    // threads' timing; the counted half may block or not.
    const VALUES: usize = 4_000;
    const WARM: usize = 16;
    let (tx, rx) = hub::channel::<u64>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        for v in 0..VALUES as u64 {
            if (v as usize) < WARM {
                go_rx.recv().unwrap();
            }
            tx.send(v).unwrap();
        }
    });
    let rx = std::rc::Rc::new(rx);
    let r = rx.clone();
    let n = steady_state(VALUES, move |i| {
        if i < WARM {
            let go = go_tx.clone();
            hub::spawn(move || go.send(()).unwrap());
        }
        assert_eq!(r.recv(), Ok(i as u64));
    });
    sender.join().unwrap();
    assert_eq!(rx.recv(), Err(std::sync::mpsc::RecvError));
    assert_eq!(n, 0);
}

/// `into_std` gives the socket back and frees everything else the wrapper
/// held, also the timeouts a `try_clone` made shared: 1,000 rounds of
/// bind, clone, drop the clone, `into_std` leave no byte behind, as the
/// same rounds ending in a drop do.
#[test]
fn into_std_of_a_cloned_socket_frees_its_shared_timeouts() {
    use greenlet::net::UdpSocket;
    let round = |into_std: bool| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        drop(socket.try_clone().unwrap());
        if into_std {
            drop(socket.into_std());
        } else {
            drop(socket);
        }
    };
    // The hub, its slabs and the thread's caches grow first.
    for _ in 0..50 {
        round(false);
        round(true);
    }
    let left_by = |into_std: bool| {
        let before = common::live_bytes();
        (0..1_000).for_each(|_| round(into_std));
        common::live_bytes() - before
    };
    assert_eq!(left_by(false), 0, "dropped");
    assert_eq!(left_by(true), 0, "given back by into_std");
}

/// A greenlet that stays marked as a daemon until killed: `spawn_daemon`'s
/// own example, a ticker.
fn ticker() -> hub::JoinHandle<()> {
    let d = hub::spawn_daemon(|| loop {
        hub::sleep(Duration::from_secs(3600));
    });
    hub::yield_now();
    d
}

/// While a daemon greenlet is alive, each new greenlet's timed waits (a
/// sleep, an `Event::wait_timeout`) allocate nothing, as with no daemon.
/// Before, every such greenlet allocated twice (the greenlet-local daemon
/// flag was created, a box and the greenlet's locals vector, just to read
/// that it was not set).
#[test]
fn timed_waits_of_new_greenlets_allocate_nothing_while_a_daemon_is_alive() {
    let daemon = ticker();
    let e = Event::new();
    let n = steady_state(4_000, move |i| {
        if i % 2 == 0 {
            hub::spawn(|| hub::sleep(Duration::from_nanos(1)))
                .join()
                .unwrap();
        } else {
            e.clear();
            let e2 = e.clone();
            let h = hub::spawn(move || e2.wait_timeout(Duration::from_secs(100)));
            hub::yield_now();
            e.set();
            assert!(h.join().unwrap());
        }
    });
    daemon.kill();
    assert_eq!(n, 0);
}

/// `hub::idle()` in a new greenlet allocates nothing, daemon or not.
/// Before, it allocated twice per greenlet (the daemon flag, as above).
#[test]
fn idle_in_new_greenlets_allocates_nothing() {
    let without = steady_state(4_000, |_| hub::spawn(hub::idle).join().unwrap());
    let daemon = ticker();
    let with = steady_state(4_000, |_| hub::spawn(hub::idle).join().unwrap());
    daemon.kill();
    assert_eq!((without, with), (0, 0), "(no daemon, a daemon alive)");
}

/// A channel send that wakes a receiver blocked in `recv` on the same
/// thread allocates nothing. Before, each wake-up went through the
/// mailbox in a fresh vector (the hub took the mail's vectors away, with
/// their capacity): one allocation per wake-up.
#[test]
fn channel_sends_that_wake_a_receiver_allocate_nothing() {
    let (tx, rx) = hub::channel::<u64>();
    let got = std::rc::Rc::new(Cell::new(u64::MAX));
    let g = got.clone();
    let receiver = hub::spawn(move || {
        while let Ok(v) = rx.recv() {
            g.set(v);
        }
    });
    let n = steady_state(4_000, move |i| {
        hub::yield_now(); // the receiver blocks
        tx.send(i as u64).unwrap(); // and is woken
        hub::yield_now();
        hub::yield_now();
        assert_eq!(got.get(), i as u64);
    });
    receiver.join().unwrap();
    assert_eq!(n, 0);
}

/// Waking a `block_on` from another thread, and a channel send from
/// another thread that wakes a receiver, allocate nothing on the waking
/// thread once warmed up. Before, each wake-up allocated a mailbox vector
/// there (freed later by the hub's thread).
#[test]
fn cross_thread_wake_ups_allocate_nothing_on_the_waking_thread() {
    use std::sync::mpsc;
    use std::task::{Poll, Waker};
    const ROUNDS: usize = 2_000;
    // The helper wakes each waker it is sent, then sends each value the
    // receiver asks for, counting its allocations in the second half of
    // each kind.
    let (wake_tx, wake_rx) = mpsc::sync_channel::<Option<Waker>>(1);
    let (ask_tx, ask_rx) = mpsc::sync_channel::<()>(1);
    let (tx, rx) = hub::channel::<usize>();
    let helper = std::thread::spawn(move || {
        let mut counted = [0, 0];
        let mut i = 0;
        while let Ok(Some(waker)) = wake_rx.recv() {
            let before = common::allocations();
            waker.wake();
            if i >= ROUNDS / 2 {
                counted[0] += common::allocations() - before;
            }
            i += 1;
        }
        for i in 0..ROUNDS {
            ask_rx.recv().unwrap();
            let before = common::allocations();
            tx.send(i).unwrap();
            if i >= ROUNDS / 2 {
                counted[1] += common::allocations() - before;
            }
        }
        counted
    });
    for i in 0..ROUNDS {
        let mut polled = false;
        let wake_tx = wake_tx.clone();
        let ready = hub::block_on(std::future::poll_fn(move |cx| {
            if polled {
                Poll::Ready(i)
            } else {
                polled = true;
                wake_tx.send(Some(cx.waker().clone())).unwrap();
                Poll::Pending
            }
        }));
        assert_eq!(ready, i);
    }
    wake_tx.send(None).unwrap();
    for i in 0..ROUNDS {
        // Asked for by a greenlet that runs once the receiver blocks, so
        // the send finds it waiting.
        let ask = ask_tx.clone();
        hub::spawn(move || ask.send(()).unwrap());
        assert_eq!(rx.recv(), Ok(i));
    }
    assert_eq!(
        helper.join().unwrap(),
        [0, 0],
        "(block_on wake-ups, channel sends)"
    );
}

/// spawn, the child blocks on an event (or only yields), set, join.
fn spawn_block_wake_join() -> usize {
    let e = Event::new();
    steady_state(4_000, move |i| {
        e.clear();
        let e2 = e.clone();
        let h = hub::spawn(move || {
            if i % 2 == 0 {
                e2.wait();
            } else {
                hub::yield_now();
            }
        });
        hub::yield_now();
        e.set();
        h.join().unwrap();
    })
}

/// While a `with_timeout` is active anywhere on the thread (main's
/// `run_timeout`, another greenlet's scope, the spawning greenlet's own),
/// a spawned greenlet that blocks or yields allocates nothing. Before, it
/// allocated twice (the greenlet-local scope stack was created, a box and
/// the locals vector, in a greenlet that never entered a scope, just to
/// find it empty).
#[test]
fn greenlets_outside_any_scope_allocate_nothing_while_a_with_timeout_is_active() {
    let h = hub::spawn(spawn_block_wake_join);
    let _ = hub::run_timeout(Duration::from_secs(3600));
    let in_run_timeout = h.join().unwrap();

    let e = Event::new();
    let e2 = e.clone();
    let holder = hub::spawn(move || {
        let _ = hub::with_timeout(Duration::from_secs(3600), || e2.wait());
    });
    hub::yield_now();
    let in_another = spawn_block_wake_join();
    e.set();
    holder.join().unwrap();

    let in_the_parent =
        hub::spawn(|| hub::with_timeout(Duration::from_secs(3600), spawn_block_wake_join).unwrap())
            .join()
            .unwrap();
    assert_eq!(
        (in_run_timeout, in_another, in_the_parent),
        (0, 0, 0),
        "(main in run_timeout, another greenlet in with_timeout, the parent in with_timeout)"
    );
}

/// A channel receive whose deadline passes allocates nothing once warmed
/// up, as a queue's `get_timeout` that expires does: a receive loop with
/// a periodic timeout (flush every N ms) pays nothing per tick. Before,
/// each expiry built a formatted `io::Error` ("greenlet::Receiver::recv
/// timed out": the message, its box and the error's) that the receive
/// only read the kind of: 3 allocations per expiry.
#[test]
fn channel_recv_timeouts_that_expire_allocate_nothing() {
    let (_tx, rx) = hub::channel::<u64>();
    let queue: Queue<u64> = Queue::new();
    let n = steady_state(600, move |i| {
        if i % 2 == 0 {
            assert_eq!(
                rx.recv_timeout(Duration::from_nanos(1)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            );
        } else {
            assert_eq!(queue.get_timeout(Duration::from_nanos(1)), None);
        }
    });
    assert_eq!(n, 0);
}
