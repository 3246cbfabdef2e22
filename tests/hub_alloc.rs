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
