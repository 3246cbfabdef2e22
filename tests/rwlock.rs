//! `hub::RwLock`: readers share, writers are alone, everyone is served in
//! the order they asked (readers behind a waiting writer wait too), and a
//! waiter that leaves, before or after it was admitted, neither loses a
//! share nor strands the ones behind it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, time, with_timeout, JoinHandle, RwLock, RwLockWriteGuard};
use greenlet::WaitOn;

type Log = Rc<RefCell<Vec<String>>>;

/// A greenlet that takes `lock` for reading (`'r'`) or writing (`'w'`),
/// logs `"<name> in"`, yields `hold` times holding it, and logs
/// `"<name> out"`.
fn taker(lock: &Rc<RwLock<u32>>, log: &Log, name: &str, kind: char, hold: u32) -> JoinHandle<()> {
    let (lock, log, name) = (lock.clone(), log.clone(), name.to_string());
    hub::spawn(move || {
        let held = |log: &Log| {
            log.borrow_mut().push(format!("{name} in"));
            for _ in 0..hold {
                hub::yield_now();
            }
            log.borrow_mut().push(format!("{name} out"));
        };
        if kind == 'r' {
            let _r = lock.read();
            held(&log);
        } else {
            let mut w = lock.write();
            *w += 1;
            held(&log);
        }
    })
}

fn new() -> (Rc<RwLock<u32>>, Log) {
    (Rc::new(RwLock::new(0)), Rc::default())
}

fn taken(log: &Log) -> Vec<String> {
    log.borrow_mut().drain(..).collect()
}

#[test]
fn readers_share_the_lock_and_a_writer_is_alone() {
    let (lock, log) = new();
    let rs: Vec<_> = (0..3)
        .map(|i| taker(&lock, &log, &format!("r{i}"), 'r', 2))
        .collect();
    let w = taker(&lock, &log, "w", 'w', 1);
    hub::yield_now();
    assert_eq!(lock.readers(), 3, "the three readers are in together");
    assert!(!lock.is_write_locked());
    for r in rs {
        r.join().unwrap();
    }
    w.join().unwrap();
    assert_eq!(
        taken(&log),
        ["r0 in", "r1 in", "r2 in", "r0 out", "r1 out", "r2 out", "w in", "w out"]
    );
    assert_eq!(*lock.read(), 1);
}

#[test]
fn callers_are_served_in_the_order_they_asked() {
    // w0 holds; then r1, r2, w3, r4 queue. r1 and r2 come in together; w3
    // waits for them; r4 waits for w3, although readers hold the lock
    // when it asks.
    let (lock, log) = new();
    let w0 = taker(&lock, &log, "w0", 'w', 3);
    hub::yield_now();
    let hs = [
        taker(&lock, &log, "r1", 'r', 2),
        taker(&lock, &log, "r2", 'r', 2),
        taker(&lock, &log, "w3", 'w', 1),
        taker(&lock, &log, "r4", 'r', 1),
    ];
    w0.join().unwrap();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(
        taken(&log),
        [
            "w0 in", "w0 out", "r1 in", "r2 in", "r1 out", "r2 out", "w3 in", "w3 out", "r4 in",
            "r4 out"
        ]
    );
    assert_eq!(lock.readers(), 0);
    assert!(!lock.is_write_locked());
}

#[test]
fn try_forms_do_not_pass_anyone_waiting() {
    let (lock, log) = new();
    let r = lock.read();
    assert!(lock.try_write().is_none(), "a reader holds it");
    assert!(lock.try_read().is_some(), "readers share");
    let w = taker(&lock, &log, "w", 'w', 0);
    hub::yield_now(); // `w` queues behind the reader
    assert!(
        lock.try_read().is_none(),
        "a writer waits: readers queue behind it"
    );
    drop(r);
    assert!(lock.is_write_locked(), "the release admitted the writer");
    assert!(lock.try_read().is_none());
    w.join().unwrap();
    assert!(lock.try_write().is_some());
}

#[test]
fn a_writer_that_times_out_lets_the_readers_behind_it_in() {
    // A reader holds; a writer waits with a timeout; a reader queues
    // behind the writer. When the writer gives up, the queued reader is
    // admitted at once, although the holder never released.
    time::pause();
    let (lock, log) = new();
    let held = lock.read();
    let w = {
        let lock = lock.clone();
        hub::spawn(move || lock.write_timeout(Duration::from_secs(5)).is_some())
    };
    hub::yield_now();
    let r = taker(&lock, &log, "r", 'r', 0);
    hub::yield_now();
    assert!(taken(&log).is_empty(), "the reader waits behind the writer");
    assert!(!w.join().unwrap(), "the writer timed out");
    r.join().unwrap();
    assert_eq!(taken(&log), ["r in", "r out"]);
    assert_eq!(lock.readers(), 1, "only the holder's share is left");
    drop(held);
    assert!(lock.try_write().is_some());
}

#[test]
fn a_killed_or_interrupted_waiter_leaves_the_queue() {
    for cancel in ["kill", "with_timeout"] {
        time::pause();
        let (lock, log) = new();
        let held = lock.read();
        let w = {
            let lock = lock.clone();
            hub::spawn(move || with_timeout(Duration::from_secs(1), || drop(lock.write())).is_ok())
        };
        hub::yield_now();
        let r = taker(&lock, &log, "r", 'r', 0);
        hub::yield_now();
        if cancel == "kill" {
            w.kill();
        } else {
            assert!(!w.join().unwrap(), "interrupted");
        }
        r.join().unwrap();
        assert_eq!(taken(&log), ["r in", "r out"], "{cancel}");
        drop(held);
        assert!(lock.try_write().is_some(), "{cancel}: no share left behind");
        time::resume();
    }
}

#[test]
fn an_admitted_waiter_killed_before_it_runs_hands_its_share_on() {
    // w0 holds; w1 then r2 queue. w0's release admits w1 (woken, not yet
    // run); w1 is killed before it runs: its write share goes on to r2.
    let (lock, log) = new();
    let held = lock.write();
    let w1 = taker(&lock, &log, "w1", 'w', 0);
    hub::yield_now();
    let r2 = taker(&lock, &log, "r2", 'r', 0);
    hub::yield_now();
    drop(held);
    assert!(lock.is_write_locked(), "handed to w1");
    w1.kill();
    r2.join().unwrap();
    assert_eq!(taken(&log), ["r2 in", "r2 out"]);
    assert_eq!(*lock.read(), 0, "w1 never wrote");
    assert!(lock.try_write().is_some());
}

#[test]
fn a_holder_killed_or_panicking_releases_its_share() {
    let (lock, log) = new();
    let holder = taker(&lock, &log, "h", 'w', 1_000_000);
    hub::yield_now();
    assert!(lock.is_write_locked());
    holder.kill();
    assert!(!lock.is_write_locked());
    let lock2 = lock.clone();
    let panicker = hub::spawn(move || {
        let _r = lock2.read();
        panic!("reader panics");
    });
    assert!(panicker.join().is_err());
    assert_eq!(lock.readers(), 0, "not poisoned, nothing held");
    *lock.write() = 7;
    assert_eq!(*lock.read(), 7);
}

#[test]
fn downgrade_admits_the_readers_at_the_front_but_no_writer() {
    let (lock, log) = new();
    let mut w = lock.write();
    let r1 = taker(&lock, &log, "r1", 'r', 0);
    let w2 = taker(&lock, &log, "w2", 'w', 0);
    hub::yield_now();
    *w = 5;
    let r = RwLockWriteGuard::downgrade(w);
    assert_eq!(lock.readers(), 2, "r1 came in with the downgraded guard");
    assert!(!lock.is_write_locked(), "w2 still waits");
    r1.join().unwrap();
    assert_eq!(taken(&log), ["r1 in", "r1 out"]);
    assert_eq!(*r, 5);
    drop(r);
    w2.join().unwrap();
    assert_eq!(taken(&log), ["w2 in", "w2 out"]);
    assert_eq!(*lock.read(), 6);
}

#[test]
fn stats_and_debug_show_the_lock() {
    let (lock, log) = new();
    let held = lock.write();
    let r = taker(&lock, &log, "r", 'r', 0);
    hub::yield_now();
    let waits: Vec<_> = greenlet::stats()
        .greenlets
        .iter()
        .map(|g| g.waiting_on)
        .collect();
    assert!(
        waits.contains(&Some(WaitOn::RwLock {
            write: false,
            until: None
        })),
        "{waits:?}"
    );
    assert_eq!(
        WaitOn::RwLock {
            write: true,
            until: None
        }
        .to_string(),
        "waiting to write an RwLock"
    );
    assert_eq!(
        format!("{lock:?}"),
        "RwLock { value: <write-locked>, readers: 0 }"
    );
    drop(held);
    r.join().unwrap();
    let r = lock.read();
    assert_eq!(format!("{lock:?}"), "RwLock { value: 0, readers: 1 }");
    assert_eq!(lock.readers(), 1, "Debug gave its own share back");
    drop(r);
}

#[test]
fn reading_from_main_while_a_writer_holds_with_nothing_else_to_run_is_reported() {
    let lock = RwLock::new(0);
    let _w = lock.write();
    let caught =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(lock.read()))).unwrap_err();
    let msg = caught.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("RwLock::read"), "{msg}");
    assert_eq!(lock.readers(), 0, "the failed read left no share");
}

#[test]
fn timeouts_run_on_the_paused_clock() {
    time::pause();
    let lock = Rc::new(RwLock::new(0));
    let start = time::now();
    let releaser = {
        let lock = lock.clone();
        hub::spawn(move || {
            let _r = lock.read();
            hub::sleep(Duration::from_secs(31));
        })
    };
    hub::yield_now();
    assert!(lock.write_timeout(Duration::from_secs(30)).is_none());
    assert_eq!(time::now() - start, Duration::from_secs(30));
    assert!(
        lock.read_timeout(Duration::from_secs(30)).is_some(),
        "readers share at once"
    );
    let w = lock.write_timeout(Duration::from_secs(30));
    assert!(w.is_some());
    assert_eq!(time::now() - start, Duration::from_secs(31));
    drop(w);
    releaser.join().unwrap();
}

#[test]
fn a_wait_that_gave_up_but_has_not_run_holds_nobody_back() {
    // At t = 1 s a greenlet that slept and the writer's deadline fire in
    // that order: the sleeper runs first, while the timed-out writer is
    // still in the queue. Its try_read and read pass the writer.
    time::pause();
    let (lock, _) = new();
    let held = lock.read();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sleeper = {
        let (lock, seen) = (lock.clone(), seen.clone());
        hub::spawn(move || {
            hub::sleep(Duration::from_secs(1));
            seen.borrow_mut().push(lock.try_read().is_some());
            let r = lock.read(); // no wait: it must not switch away
            seen.borrow_mut().push(lock.readers() == 2);
            drop(r);
        })
    };
    hub::yield_now();
    let w = {
        let lock = lock.clone();
        hub::spawn(move || lock.write_timeout(Duration::from_secs(1)).is_some())
    };
    hub::yield_now();
    sleeper.join().unwrap();
    assert!(!w.join().unwrap());
    assert_eq!(*seen.borrow(), [true, true]);
    drop(held);
    assert!(lock.try_write().is_some());
}
