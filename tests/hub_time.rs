//! The hub's test clock: `hub::time::{pause, advance, resume}`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, time, Event, Queue};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn a_paused_clock_jumps_to_the_next_timer_instead_of_waiting() {
    time::pause();
    let start = time::now();
    let q: Queue<u8> = Queue::new();
    assert_eq!(q.get_timeout(30 * SEC), None);
    assert_eq!(time::now() - start, 30 * SEC, "exactly the timeout");
    hub::sleep(3600 * SEC);
    assert_eq!(time::now() - start, 3630 * SEC);
    time::resume();
}

#[test]
fn the_clock_stands_still_while_paused() {
    time::pause();
    let a = time::now();
    for _ in 0..100 {
        hub::yield_now();
    }
    assert_eq!(time::now(), a);
    time::resume();
    assert!(time::now() >= a, "resumed from where it stood");
}

#[test]
fn advance_runs_the_greenlets_whose_timers_came_due_in_deadline_order() {
    time::pause();
    let log = Rc::new(RefCell::new(Vec::new()));
    for (name, secs) in [("c", 3), ("a", 1), ("b", 2), ("a2", 1)] {
        let log = log.clone();
        hub::spawn(move || {
            hub::sleep(secs * SEC);
            log.borrow_mut().push(name);
        });
    }
    hub::yield_now(); // all four start and go to sleep
    time::advance(SEC / 2);
    assert!(log.borrow().is_empty());
    time::advance(SEC / 2);
    assert_eq!(*log.borrow(), ["a", "a2"]);
    time::advance(5 * SEC);
    assert_eq!(*log.borrow(), ["a", "a2", "b", "c"]);
    time::resume();
}

#[test]
fn with_timeout_and_timed_waits_use_the_paused_clock() {
    time::pause();
    let start = time::now();
    let never = Event::new();
    let r = hub::with_timeout(10 * SEC, || never.wait());
    assert!(r.is_err());
    assert_eq!(time::now() - start, 10 * SEC);
    assert!(!never.wait_timeout(5 * SEC));
    assert_eq!(time::now() - start, 15 * SEC);

    // A timeout that is met does not move the clock.
    let q = Queue::new();
    let q2 = q.clone();
    hub::spawn(move || q2.put(7));
    assert_eq!(q.get_timeout(60 * SEC), Some(7));
    assert_eq!(time::now() - start, 15 * SEC);
    time::resume();
}

#[test]
fn a_long_timeout_next_to_a_short_one() {
    time::pause();
    let start = time::now();
    let fast = hub::spawn(move || {
        hub::sleep(SEC);
        time::now()
    });
    let slow = hub::spawn(move || {
        hub::sleep(86_400 * SEC);
        time::now()
    });
    hub::run();
    assert_eq!(fast.join().unwrap() - start, SEC);
    assert_eq!(slow.join().unwrap() - start, 86_400 * SEC);
    time::resume();
}

#[test]
fn misuse_panics_with_a_message() {
    let e = std::panic::catch_unwind(|| time::advance(SEC)).unwrap_err();
    assert!(e.downcast_ref::<&str>().unwrap().contains("not paused"));
    let e = std::panic::catch_unwind(time::resume).unwrap_err();
    assert!(e.downcast_ref::<&str>().unwrap().contains("not paused"));
    time::pause();
    let e = std::panic::catch_unwind(time::pause).unwrap_err();
    assert!(e.downcast_ref::<&str>().unwrap().contains("already paused"));
    time::resume();
}

#[test]
fn each_thread_has_its_own_clock() {
    time::pause();
    let here = time::now();
    std::thread::spawn(|| {
        let a = time::now();
        let b = time::now();
        assert!(b >= a);
        // Not paused there: `advance` is refused.
        assert!(std::panic::catch_unwind(|| time::advance(SEC)).is_err());
    })
    .join()
    .unwrap();
    assert_eq!(time::now(), here);
    time::resume();
}

#[test]
fn advance_also_runs_timers_set_during_it_that_are_due_by_its_end() {
    time::pause();
    let t0 = time::now();
    // Its greenlet sets its timer when it first runs, during the advance.
    let later = hub::spawn_after(SEC, || 5);
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let chain = hub::spawn(move || {
        hub::sleep_until(t0 + SEC);
        l.borrow_mut().push(1);
        hub::sleep_until(t0 + SEC + SEC / 2); // still before the advance's end
        l.borrow_mut().push(2);
    });
    time::advance(2 * SEC);
    assert!(later.has_started());
    assert_eq!(*log.borrow(), [1, 2]);
    assert!(chain.is_finished());
    assert_eq!(later.join().unwrap(), 5);
    assert_eq!(time::now() - t0, 2 * SEC);
    time::resume();
}

#[test]
fn a_caught_with_timeout_expiry_comes_once() {
    time::pause();
    let q: Queue<u32> = Queue::new();
    let q2 = q.clone();
    hub::spawn(move || {
        hub::sleep(2 * SEC);
        q2.put(7);
    });
    let tries = Rc::new(RefCell::new(0));
    let t = tries.clone();
    // A retry loop that catches the interruption: the next get blocks as
    // usual (before, every later call unwound at once, without a switch).
    let got = hub::with_timeout(SEC, || loop {
        *t.borrow_mut() += 1;
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.get()));
        if let Ok(item) = caught {
            break item;
        }
    });
    assert_eq!(got, Ok(7));
    assert_eq!(*tries.borrow(), 2);
    time::resume();
}

#[test]
fn advance_returns_while_a_greenlet_polls_with_a_zero_timeout() {
    time::pause();
    let stop = Rc::new(RefCell::new(false));
    let ev = Event::new();
    let (s, e) = (stop.clone(), ev.clone());
    // Sets a timer due at `now` every time it runs.
    let poller = hub::spawn(move || {
        while !*s.borrow() {
            e.wait_timeout(Duration::ZERO);
        }
    });
    hub::yield_now();
    time::advance(SEC);
    *stop.borrow_mut() = true;
    poller.join().unwrap();
    time::resume();
}

/// A greenlet that polls by sleeping until an instant that has passed
/// sets the same timer, due before the advance's end, every time it runs;
/// the advance still returns (a chain of sleeps, whose timers move
/// forward, is run to its end: above).
#[test]
fn advance_returns_while_a_greenlet_polls_a_passed_instant() {
    time::pause();
    let until = time::now() + SEC / 2;
    let stop = Rc::new(RefCell::new(false));
    let s = stop.clone();
    let poller = hub::spawn(move || {
        let mut rounds = 0u32;
        while !*s.borrow() {
            hub::sleep_until(until);
            rounds += 1;
        }
        rounds
    });
    hub::yield_now(); // it sleeps until `until`
    time::advance(SEC);
    *stop.borrow_mut() = true;
    assert!(poller.join().unwrap() >= 1);
    time::resume();
}

#[test]
fn advance_runs_a_spawn_after_due_exactly_at_its_end() {
    time::pause();
    // Its greenlet sets its timer, due exactly at the advance's end, when
    // it first runs during the advance.
    let s = hub::spawn_after(SEC, || 5);
    time::advance(SEC);
    assert!(s.has_started());
    assert_eq!(s.join().unwrap(), 5);
    time::resume();
}

/// A time already passed runs `f` at the next round, alongside a plain
/// spawn made at the same moment. (Its greenlet used to sleep until that
/// past time, which waited for the timers fired after the next round: `f`
/// started two rounds after the spawn.)
#[test]
fn spawn_at_a_passed_time_runs_at_the_next_round_as_a_spawn_does() {
    time::pause();
    let past = time::now();
    time::advance(SEC);
    let order = Rc::new(RefCell::new(Vec::new()));
    let o = order.clone();
    let scheduled = hub::spawn_at(past, move || o.borrow_mut().push("spawn_at"));
    let o = order.clone();
    let spawned = hub::spawn(move || o.borrow_mut().push("spawn"));
    hub::yield_now(); // one round: both run
    assert!(scheduled.has_started() && spawned.is_finished());
    assert_eq!(*order.borrow(), ["spawn_at", "spawn"]);
    let zero = hub::spawn_after(Duration::ZERO, || 1);
    hub::yield_now();
    assert!(zero.is_finished(), "a zero delay is the next round too");
    time::resume();
}

/// Nested `with_timeout` scopes expiring at the same instant report the
/// innermost, as scopes do (the outer one's timer, made first, fired
/// first, and the call unwound through the inner scope to the outer).
#[test]
fn nested_timeouts_expiring_together_report_the_innermost() {
    time::pause();
    let ms = Duration::from_millis(1);
    let r = hub::with_timeout(10 * ms, || {
        let inner = hub::with_timeout(10 * ms, || hub::sleep(100 * ms));
        inner.is_err()
    });
    assert_eq!(r, Ok(true));
    time::resume();
}

#[test]
fn a_clock_hold_waits_for_another_threads_send() {
    // Without the hold, the paused clock jumps to the receive's deadline
    // as soon as nothing is ready, long before the thread's send.
    time::pause();
    let start = time::now();
    let (tx, rx) = hub::channel();
    let hold = time::hold();
    let worker = std::thread::spawn(move || tx.send(7u32).unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Ok(7));
    assert_eq!(time::now(), start, "the clock stood still");
    drop(hold);
    worker.join().unwrap();
    // Released, the clock jumps again.
    let (_tx, rx) = hub::channel::<u32>();
    assert!(rx.recv_timeout(Duration::from_secs(1)).is_err());
    assert_eq!(time::now() - start, Duration::from_secs(1));
    time::resume();
}

#[test]
fn a_clock_hold_taken_before_the_remote_that_wakes_the_hub() {
    // On a fresh thread: the hold comes first, the reactor with the
    // `Remote` the other thread answers through.
    thread_local! {
        static ANSWERS: Queue<u32> = Queue::new();
    }
    std::thread::spawn(|| {
        time::pause();
        let start = time::now();
        let hold = time::hold();
        let remote = hub::remote();
        let worker = std::thread::spawn(move || {
            remote.spawn(|| ANSWERS.with(|q| q.put(9))).unwrap();
        });
        let got = ANSWERS.with(|q| q.get_timeout(Duration::from_secs(3600)));
        assert_eq!(got, Some(9));
        assert_eq!(time::now(), start, "the clock stood still");
        drop(hold);
        worker.join().unwrap();
        time::resume();
    })
    .join()
    .unwrap();
}

/// The longest `d` for which `time::now() + d` is an `Instant`.
fn to_the_last_instant() -> Duration {
    let now = time::now();
    let fits = |d: Duration| now.checked_add(d).is_some();
    let (mut lo, mut hi) = (0u64, i64::MAX as u64);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(Duration::from_secs(mid)) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let (mut nlo, mut nhi) = (0u32, 999_999_999u32);
    while nlo < nhi {
        let mid = nlo + (nhi - nlo).div_ceil(2);
        if fits(Duration::new(lo, mid)) {
            nlo = mid;
        } else {
            nhi = mid - 1;
        }
    }
    Duration::new(lo, nlo)
}

/// A clock advanced to the last `Instant` there is, then resumed, stays
/// there (`now` panicked on the overflow once any real time passed).
#[test]
fn a_clock_resumed_at_the_last_instant_stays_there() {
    time::pause();
    time::advance(to_the_last_instant());
    let end = time::now();
    time::resume();
    let real = std::time::Instant::now();
    while real.elapsed().is_zero() {
        std::hint::spin_loop();
    }
    assert_eq!(time::now(), end);
}

// ----- the kernel's own timers (see "Five things" in `hub::time`) -----

/// A request of two small writes in a row (Nagle's rule holds the second
/// until the first is acknowledged, which the peer delays), answered by a
/// server whose reads time out after 5 s, three times over loopback on a
/// paused clock; `setup` readies the client's stream and the clock (what
/// it returns is kept until the end).
fn two_small_writes_per_request<K>(setup: impl FnOnce(&greenlet::net::TcpStream) -> K) {
    use greenlet::net::{TcpListener, TcpStream};
    use std::io::{Read, Write};
    time::pause();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _kept = setup(&client);
    let server = hub::spawn(move || -> std::io::Result<()> {
        let mut request = [0u8; 2];
        for _ in 0..3 {
            (&conn).read_exact(&mut request)?;
            (&conn).write_all(b"ok")?;
        }
        Ok(())
    });
    for _ in 0..3 {
        (&client).write_all(b"h").unwrap();
        (&client).write_all(b"b").unwrap();
        (&client).read_exact(&mut [0u8; 2]).unwrap();
    }
    server.join().unwrap().unwrap();
}

#[test]
fn a_paused_clock_held_waits_for_what_the_kernel_delivers_later() {
    two_small_writes_per_request(|_| time::hold());
}

#[test]
fn a_paused_clock_sees_small_writes_at_once_with_nodelay() {
    two_small_writes_per_request(|client| client.set_nodelay(true).unwrap());
}

/// A `spawn_after` greenlet is asleep from the call on: its timer fires
/// before that of a sleep of the same delay begun after the call (on the
/// paused clock both are due at the same instant; the spawned greenlet,
/// which sets its timer when it first runs, used to come second).
#[test]
fn a_spawn_after_runs_before_a_sleep_of_the_same_delay_begun_after_it() {
    time::pause();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let s = hub::spawn_after(Duration::from_secs(1), move || l.borrow_mut().push("f"));
    hub::sleep(Duration::from_secs(1));
    log.borrow_mut().push("caller");
    assert!(s.is_finished());
    assert_eq!(*log.borrow(), ["f", "caller"]);
    // The same with `spawn_at` and `sleep_until` of one instant.
    let at = time::now() + Duration::from_secs(1);
    let l = log.clone();
    let _s = hub::spawn_at(at, move || l.borrow_mut().push("f at"));
    hub::sleep_until(at);
    log.borrow_mut().push("caller at");
    assert_eq!(*log.borrow(), ["f", "caller", "f at", "caller at"]);
    time::resume();
}

/// Cancelling after a sleep of the same delay finds the run started (it
/// was `true`, and the run whose time had come was killed unrun), and a
/// timed wait of the same delay for what the run does sees it done.
#[test]
fn a_spawn_afters_run_is_due_before_a_wait_of_the_same_delay_ends() {
    time::pause();
    let ran = Rc::new(std::cell::Cell::new(false));
    let r = ran.clone();
    let s = hub::spawn_after(Duration::from_secs(1), move || r.set(true));
    hub::sleep(Duration::from_secs(1));
    assert!(!s.cancel());
    assert!(ran.get());
    let ev = Rc::new(Event::new());
    let e = ev.clone();
    let _s = hub::spawn_after(Duration::from_secs(1), move || e.set());
    assert!(ev.wait_timeout(Duration::from_secs(1)));
    // Made before `run_timeout` of the same delay, it runs inside it.
    let s = hub::spawn_after(Duration::from_secs(1), || ());
    let _ = hub::run_timeout(Duration::from_secs(1));
    assert!(s.has_started());
    time::resume();
}
