//! `hub::spawn_blocking` and `hub::ThreadPool`: blocking work on OS threads
//! that blocks only the greenlet waiting for it.
//!
//! No test sleeps or reads a clock: the pool threads wait on std
//! primitives that the greenlets release, and progress is counted in
//! switches.

use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use greenlet::hub::{self, with_timeout, JoinError, ThreadPool};

#[path = "support/gate.rs"]
mod gate;
use gate::Gate;

#[test]
fn hundred_blocking_calls_run_on_pool_threads_while_greenlets_keep_switching() {
    const CALLS: usize = 100;
    let pool = ThreadPool::new(CALLS, Duration::from_secs(5));
    let gate = Gate::default();
    // Each call says it started (through a hub channel, so the wait for
    // them blocks only main), then blocks its thread on the gate.
    let (started_tx, started_rx) = hub::channel::<()>();
    let handles: Vec<_> = (0..CALLS)
        .map(|i| {
            let gate = gate.clone();
            let started = started_tx.clone();
            pool.spawn(move || {
                started.send(()).unwrap();
                gate.wait();
                (i, thread::current().id())
            })
        })
        .collect();
    drop(started_tx);

    // Another greenlet switches all along.
    let switches = Rc::new(Cell::new(0u64));
    let stop = Rc::new(Cell::new(false));
    let ticker = {
        let (switches, stop) = (switches.clone(), stop.clone());
        hub::spawn(move || {
            while !stop.get() {
                hub::yield_now();
                switches.set(switches.get() + 1);
            }
        })
    };

    for _ in 0..CALLS {
        started_rx.recv().unwrap();
    }
    // All 100 calls are now blocked at once, each on a thread of its own.
    assert!(handles.iter().all(|h| !h.is_finished()));
    let before = switches.get();
    while switches.get() < before + 1000 {
        hub::yield_now();
    }
    assert!(
        handles.iter().all(|h| !h.is_finished()),
        "the ticker switched 1000 times while every call was still blocked"
    );
    gate.open();

    let main_thread = thread::current().id();
    let mut threads = HashSet::new();
    for (i, h) in handles.into_iter().enumerate() {
        let (j, tid) = h.join().unwrap();
        assert_eq!(i, j);
        assert_ne!(tid, main_thread, "the call ran on a pool thread");
        threads.insert(tid);
    }
    assert_eq!(threads.len(), CALLS, "the blocked calls held 100 threads");
    stop.set(true);
    ticker.join().unwrap();
    assert!(pool.threads() <= CALLS);
}

#[test]
fn the_global_pool_runs_blocking_std_calls() {
    let h = hub::spawn_blocking(|| std::fs::read_to_string("Cargo.toml").map(|s| s.len()));
    assert!(h.join().unwrap().unwrap() > 0);
    assert_eq!(ThreadPool::global().max_threads(), 128);
}

#[test]
fn a_panic_comes_back_through_the_handle_and_the_thread_survives() {
    let pool = ThreadPool::new(1, Duration::from_secs(5));
    let err = pool.spawn(|| -> u32 { panic!("boom") }).join().unwrap_err();
    match err {
        JoinError::Panicked(p) => assert_eq!(p.downcast_ref::<&str>(), Some(&"boom")),
        other => panic!("expected a panic, got {other:?}"),
    }
    // The one thread is still there to take more work.
    assert_eq!(pool.spawn(|| 7).join().unwrap(), 7);
    assert_eq!(pool.threads(), 1);
}

#[test]
fn work_beyond_max_threads_queues_and_all_of_it_runs() {
    let pool = ThreadPool::new(2, Duration::from_secs(5));
    let handles: Vec<_> = (0..20u64).map(|i| pool.spawn(move || i * i)).collect();
    let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, (0..20u64).map(|i| i * i).sum());
    assert!(pool.threads() <= 2);
}

/// Counts its drops and reports each on a std channel.
struct Tracked(Arc<AtomicUsize>, mpsc::Sender<()>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        let _ = self.1.send(());
    }
}

#[test]
fn with_timeout_stops_waiting_and_the_late_result_is_dropped_once() {
    let pool = ThreadPool::new(1, Duration::from_secs(5));
    let drops = Arc::new(AtomicUsize::new(0));
    let (dropped_tx, dropped_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let h = {
        let drops = drops.clone();
        pool.spawn(move || {
            release_rx.recv().unwrap();
            Tracked(drops, dropped_tx)
        })
    };
    let waited = with_timeout(Duration::from_millis(10), move || h.join());
    assert!(waited.is_err(), "the join was interrupted");
    release_tx.send(()).unwrap();
    // The greenlet that waits for the result keeps `run` going until the
    // result arrives; then nobody wants it.
    hub::run();
    dropped_rx.recv().unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn kill_stops_waiting_and_the_thread_drops_the_result() {
    let pool = ThreadPool::new(1, Duration::from_secs(5));
    let drops = Arc::new(AtomicUsize::new(0));
    let (dropped_tx, dropped_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let h = {
        let drops = drops.clone();
        pool.spawn(move || {
            release_rx.recv().unwrap();
            Tracked(drops, dropped_tx)
        })
    };
    hub::yield_now(); // the waiting greenlet blocks on the result
    h.kill();
    assert!(matches!(h.join(), Err(JoinError::Killed)));
    release_tx.send(()).unwrap();
    dropped_rx.recv().unwrap(); // dropped on the pool thread
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    // The pool is fine afterwards.
    assert_eq!(pool.spawn(|| 1).join().unwrap(), 1);
}

#[test]
#[should_panic(expected = "max_threads must be at least 1")]
fn a_pool_without_threads_is_refused() {
    let _ = ThreadPool::new(0, Duration::from_secs(1));
}

#[test]
fn a_result_whose_destructor_panics_on_the_pool_thread_does_not_wedge_the_pool() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("a result's destructor panics (expected)");
        }
    }
    let pool = ThreadPool::new(1, Duration::from_secs(3600));
    let (open, gate) = mpsc::channel::<()>();
    let h = pool.spawn(move || {
        gate.recv().unwrap();
        PanicsOnDrop
    });
    hub::yield_now(); // its waiter blocks
    h.kill(); // nobody waits: the result drops on the pool thread
    open.send(()).unwrap();
    // The pool's one thread lives on and takes the next job (the bound
    // only turns a wedged pool into a failure instead of a hang).
    let next = pool.spawn(|| 42);
    assert_eq!(
        with_timeout(Duration::from_secs(60), || next.join().unwrap()),
        Ok(42)
    );
}

#[test]
fn a_dropped_pools_threads_leave_when_out_of_work_not_at_their_idle_timeout() {
    // Each pool thread says when it exits, through a thread-local.
    struct SaysBye(mpsc::Sender<()>);
    impl Drop for SaysBye {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    thread_local! {
        static BYE: Cell<Option<SaysBye>> = const { Cell::new(None) };
    }
    let (bye, byes) = mpsc::channel();
    let pool = ThreadPool::new(2, Duration::from_secs(3600));
    let gate = Arc::new(std::sync::Barrier::new(2));
    let jobs: Vec<_> = (0..2)
        .map(|_| {
            let (bye, gate) = (bye.clone(), gate.clone());
            // Both jobs wait for each other: two threads run them.
            pool.spawn(move || {
                BYE.with(|b| b.set(Some(SaysBye(bye))));
                gate.wait();
            })
        })
        .collect();
    for j in jobs {
        j.join().unwrap();
    }
    drop(pool);
    for _ in 0..2 {
        byes.recv_timeout(Duration::from_secs(60))
            .expect("an idle thread of a dropped pool left");
    }
}

/// A paused hub clock waits for a thread pool's job instead of jumping to
/// the next timer, which timed the job out whatever its real duration.
/// (The job is real work, longer than the hub's look for ready I/O.)
#[test]
fn a_paused_clock_waits_for_a_thread_pool_job() {
    hub::time::pause();
    let start = hub::time::now();
    let job = hub::spawn_blocking(|| {
        (0..20_000_000u64).fold(0u64, |a, x| {
            std::hint::black_box(a ^ x.wrapping_mul(0x9E37_79B9))
        })
    });
    let joined = with_timeout(Duration::from_secs(60), || job.join());
    assert!(joined.is_ok(), "the job was timed out");
    assert_eq!(hub::time::now(), start, "the clock stood still");
    hub::time::resume();
}
