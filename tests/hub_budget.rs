//! The cooperative budget: a greenlet whose operations keep completing
//! without blocking still lets the others run, once per `COOP_BUDGET`
//! operations.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, Queue, COOP_BUDGET};

const B: usize = COOP_BUDGET as usize;
const HOUR: Duration = Duration::from_secs(3600);

/// Spawns a greenlet that counts its turns until `stop` is set.
fn ticker(stop: &Rc<Cell<bool>>) -> (Rc<Cell<u64>>, hub::JoinHandle<()>) {
    let ticks = Rc::new(Cell::new(0));
    let (t, stop) = (ticks.clone(), stop.clone());
    let h = hub::spawn(move || {
        while !stop.get() {
            t.set(t.get() + 1);
            hub::yield_now();
        }
    });
    (ticks, h)
}

/// In every `B + 1` consecutive operations the ticker ran at least once.
fn assert_ticked_once_per_budget(seen: &[u64]) {
    assert!(seen.len() > 4 * B);
    for (i, w) in seen.windows(B + 2).enumerate() {
        assert!(
            w[B + 1] > w[0],
            "no tick between operations {i} and {}",
            i + B + 1
        );
    }
}

#[test]
fn a_producer_filling_an_unbounded_queue_lets_a_ticker_run() {
    let stop = Rc::new(Cell::new(false));
    let (ticks, ticker) = ticker(&stop);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let q = Queue::new();
    let producer = {
        let (q, seen, ticks, stop) = (q.clone(), seen.clone(), ticks.clone(), stop.clone());
        hub::spawn(move || {
            for i in 0..10 * B {
                seen.borrow_mut().push(ticks.get());
                q.put(i);
            }
            stop.set(true);
        })
    };
    hub::run();
    producer.join().unwrap();
    ticker.join().unwrap();
    assert_eq!(q.len(), 10 * B, "every item is there, in order");
    assert_eq!(q.try_get(), Some(0));
    assert_ticked_once_per_budget(&seen.borrow());
}

#[test]
fn a_consumer_draining_a_full_queue_lets_a_ticker_run() {
    let q = Queue::new();
    for i in 0..10 * B {
        q.try_put(i).unwrap();
    }
    let stop = Rc::new(Cell::new(false));
    let (ticks, ticker) = ticker(&stop);
    let consumer = {
        let (q, ticks, stop) = (q.clone(), ticks.clone(), stop.clone());
        hub::spawn(move || {
            let mut seen = Vec::new();
            for i in 0..10 * B {
                seen.push(ticks.get());
                assert_eq!(q.get(), i);
            }
            stop.set(true);
            seen
        })
    };
    hub::run();
    let seen = consumer.join().unwrap();
    ticker.join().unwrap();
    assert_ticked_once_per_budget(&seen);
}

#[test]
fn a_reader_of_an_endless_stream_lets_a_ticker_run() {
    let (mut a, mut b) = greenlet::net::UnixStream::pair().unwrap();
    // Enough for many budgets of one-byte reads, all ready at once.
    let data = vec![7u8; 8 * B];
    a.write_all(&data).unwrap();
    let stop = Rc::new(Cell::new(false));
    let (ticks, ticker) = ticker(&stop);
    let reader = {
        let (ticks, stop) = (ticks.clone(), stop.clone());
        hub::spawn(move || {
            let mut seen = Vec::new();
            let mut byte = [0u8; 1];
            for _ in 0..8 * B {
                seen.push(ticks.get());
                assert_eq!(b.read(&mut byte).unwrap(), 1);
            }
            stop.set(true);
            seen
        })
    };
    hub::run();
    let seen = reader.join().unwrap();
    ticker.join().unwrap();
    assert_ticked_once_per_budget(&seen);
}

#[test]
fn try_calls_never_yield() {
    let stop = Rc::new(Cell::new(false));
    let (ticks, ticker) = ticker(&stop);
    hub::yield_now(); // the ticker starts
    let before = ticks.get();
    let q = Queue::new();
    for i in 0..10 * B {
        q.try_put(i).unwrap();
    }
    while q.try_get().is_some() {}
    assert_eq!(ticks.get(), before);
    stop.set(true);
    ticker.join().unwrap();
}

/// A thread that uses a queue without ever blocking has no hub to yield
/// to: its operations spend and refill the budget without starting one.
#[test]
fn a_queue_on_a_thread_without_a_hub_never_starts_one() {
    std::thread::spawn(|| {
        let q = Queue::bounded(4 * COOP_BUDGET as usize);
        for round in 0..3 {
            for i in 0..2 * COOP_BUDGET {
                q.put(round * 1000 + i);
            }
            for i in 0..2 * COOP_BUDGET {
                assert_eq!(q.get(), round * 1000 + i);
            }
        }
        // Only main: no hub greenlet was created.
        assert_eq!(greenlet::stats().greenlets.len(), 1);
    })
    .join()
    .unwrap();
}

#[test]
fn waiting_on_a_descriptor_that_is_always_ready_lets_a_ticker_run() {
    let stop = Rc::new(Cell::new(false));
    let (ticks, ticker) = ticker(&stop);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let waiter = {
        let (seen, ticks, stop) = (seen.clone(), ticks.clone(), stop.clone());
        hub::spawn(move || {
            // A regular file is always ready: no wait ever blocks.
            let file = std::fs::File::open("Cargo.toml").unwrap();
            for _ in 0..10 * B {
                seen.borrow_mut().push(ticks.get());
                hub::wait_readable(&file, None).unwrap();
            }
            stop.set(true);
        })
    };
    hub::run();
    waiter.join().unwrap();
    ticker.join().unwrap();
    assert_ticked_once_per_budget(&seen.borrow());
}

/// Runs `op` `10 * B` times in a greenlet of its own beside a ticker;
/// the ticker's count before each call.
fn ticks_around(mut op: impl FnMut() + 'static) -> Vec<u64> {
    let stop = Rc::new(Cell::new(false));
    let (ticks, ticker) = ticker(&stop);
    let worker = {
        let (ticks, stop) = (ticks.clone(), stop.clone());
        hub::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..10 * B {
                seen.push(ticks.get());
                op();
            }
            stop.set(true);
            seen
        })
    };
    hub::run();
    let seen = worker.join().unwrap();
    ticker.join().unwrap();
    seen
}

/// A wait that finds what it waits for already there completes at once,
/// as a get from a non-empty queue does, and spends budget the same way:
/// a worker gated by a set event, or a consumer that waits for any of its
/// sources and drains the ready one with `try_recv`, lets the others run.
#[test]
fn waits_that_find_what_they_wait_for_let_a_ticker_run() {
    let event = hub::Event::new();
    event.set();
    assert_ticked_once_per_budget(&ticks_around(move || event.wait()));

    let result = hub::AsyncResult::<u32>::new();
    result.set(7).unwrap();
    let r = result.clone();
    assert_ticked_once_per_budget(&ticks_around(move || assert_eq!(r.get(), Ok(7))));
    assert_ticked_once_per_budget(&ticks_around(move || {
        assert_eq!(result.get_timeout(Duration::ZERO), Some(Ok(7)));
    }));

    let finished = hub::spawn(|| ());
    finished.wait();
    assert_ticked_once_per_budget(&ticks_around(move || finished.wait()));

    let q = Queue::new();
    q.put(1u32);
    assert_ticked_once_per_budget(&ticks_around(move || assert_eq!(q.peek(), Some(1))));

    // Joins with nothing left to wait for.
    let empty = hub::Group::new();
    assert_ticked_once_per_budget(&ticks_around(move || empty.join()));
    let idle = hub::Pool::new(1);
    assert_ticked_once_per_budget(&ticks_around(move || assert!(idle.join_timeout(HOUR))));
    let all_done = hub::JoinableQueue::<u32>::new();
    assert_ticked_once_per_budget(&ticks_around(move || all_done.join()));
    assert_ticked_once_per_budget(&ticks_around(|| {
        assert!(hub::wait::<&hub::Event>(&[], None, None).is_empty());
    }));
    let alone = hub::Barrier::new(1);
    assert_ticked_once_per_budget(&ticks_around(move || assert!(alone.wait().is_leader())));

    let (tx, rx) = hub::channel::<usize>();
    for i in 0..10 * B {
        tx.send(i).unwrap();
    }
    let stop = hub::Event::new();
    assert_ticked_once_per_budget(&ticks_around(move || {
        let either: [&dyn hub::Waitable; 2] = [&rx, &stop];
        assert_eq!(hub::wait_any(&either, None), Some(0));
        rx.try_recv().unwrap();
    }));
}

/// Connects that fail at once (no such socket file; no route) spend
/// budget, as reads do: a client that retries until its server is up
/// lets the greenlet that binds it run.
#[test]
fn connects_that_fail_at_once_let_a_ticker_run() {
    let missing = std::env::temp_dir().join(format!(
        "greenlet-budget-{}-no-such-socket",
        std::process::id()
    ));
    assert_ticked_once_per_budget(&ticks_around(move || {
        let e = greenlet::net::UnixStream::connect(&missing).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }));
    // TCP to the broadcast address fails in `connect(2)` itself; the
    // timeout only bounds the test should a network ever take it.
    let broadcast = "255.255.255.255:80".parse().unwrap();
    assert_ticked_once_per_budget(&ticks_around(move || {
        let r = greenlet::net::TcpStream::connect_timeout(&broadcast, Duration::from_secs(5));
        assert!(r.is_err());
    }));
}

/// The retry loop a client writes while its server starts: it ends once
/// the server greenlet, which only runs when the client lets it, binds.
#[test]
fn a_unix_client_retrying_until_its_server_binds_connects() {
    let path = std::env::temp_dir().join(format!(
        "greenlet-budget-{}-server-starting",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let p = path.clone();
    let server = hub::spawn(move || greenlet::net::UnixListener::bind(&p).unwrap());
    let mut failed = 0;
    let stream = loop {
        match greenlet::net::UnixStream::connect(&path) {
            Ok(stream) => break stream,
            Err(_) => failed += 1,
        }
    };
    // A budget's worth, and the one that found it spent and yielded.
    assert!(failed <= B + 1, "{failed} attempts before the server ran");
    drop((stream, server.join().unwrap()));
    std::fs::remove_file(&path).unwrap();
}

/// Taking a free lock or permit never switches (their docs say so), so it
/// spends no budget: a critical section starts where its caller asked.
#[test]
fn taking_free_locks_never_yields() {
    let stop = Rc::new(Cell::new(false));
    let (ticks, ticker) = ticker(&stop);
    hub::yield_now(); // the ticker starts
    let before = ticks.get();
    let mutex = hub::Mutex::new(0);
    let rwlock = hub::RwLock::new(0);
    let reentrant = hub::ReentrantMutex::new(0);
    let semaphore = hub::Semaphore::new(1);
    for _ in 0..10 * B {
        *mutex.lock() += 1;
        *rwlock.write() += 1;
        drop(rwlock.read());
        drop(reentrant.lock());
        drop(semaphore.acquire());
    }
    assert_eq!(ticks.get(), before);
    stop.set(true);
    ticker.join().unwrap();
}

/// Joins of greenlets killed before they ran complete at once and spend
/// budget: a loop of spawn, kill and join lets a ticker run once per
/// budget. (Neither the spawn nor that kill switches; the join of a
/// finished greenlet had stopped yielding for a spent budget.)
#[test]
fn a_loop_of_spawns_killed_unstarted_and_joined_lets_the_others_run() {
    let ticks = Rc::new(Cell::new(0u32));
    let ticker = {
        let ticks = ticks.clone();
        hub::spawn(move || loop {
            ticks.set(ticks.get() + 1);
            hub::yield_now();
        })
    };
    hub::yield_now();
    let before = ticks.get();
    for _ in 0..4 * COOP_BUDGET {
        let h = hub::spawn(|| ());
        h.kill();
        let _ = h.join();
    }
    assert!(
        ticks.get() >= before + 3,
        "the ticker ran {} times",
        ticks.get() - before
    );
    ticker.kill();
}
