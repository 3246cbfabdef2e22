//! Other OS threads reaching a hub: `hub::channel` from any
//! thread into a greenlet, and `hub::remote()` to run closures on the hub's
//! thread.
//!
//! Cross-thread order is never left to timing: where a test needs "the
//! greenlet is blocked before the other thread acts", the other thread
//! waits on a std channel that a greenlet signals.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvError, RecvTimeoutError, SendError, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use greenlet::hub::{self, with_timeout, Receiver};
use greenlet::{stats, Greenlet, WaitOn};

/// A timeout meant to expire: nothing will arrive.
const SHORT: Duration = Duration::from_millis(20);

/// What greenlet `g` is blocked on, per `stats()`.
fn waiting_on(g: &Greenlet) -> Option<WaitOn> {
    stats()
        .greenlets
        .into_iter()
        .find(|info| info.id == g.id())
        .and_then(|info| info.waiting_on)
}

/// Counts its drops; `Send`, so it can ride in values and closures that
/// cross threads.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// ----- channel -----

#[test]
fn a_hundred_thousand_values_from_several_threads_arrive_exactly_once() {
    const THREADS: usize = 4;
    const VALUES: usize = 100_000;
    let (tx, rx) = hub::channel::<usize>();
    // Thread `t` sends the values `v` with `v % THREADS == t`, in order.
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                for v in (t..VALUES).step_by(THREADS) {
                    tx.send(v).unwrap();
                }
            })
        })
        .collect();
    drop(tx); // the receiver's loop ends when the threads' senders are gone

    let drain = hub::spawn(move || {
        let mut seen = vec![false; VALUES];
        let mut last: Vec<Option<usize>> = vec![None; THREADS];
        let (mut count, mut sum) = (0usize, 0usize);
        for v in &rx {
            assert!(!seen[v], "{v} arrived twice");
            seen[v] = true;
            let t = v % THREADS;
            assert!(last[t] < Some(v), "thread {t}'s values out of order");
            last[t] = Some(v);
            count += 1;
            sum += v;
        }
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        (count, sum, seen.iter().all(|s| *s))
    });
    hub::run(); // until the drain ends: a channel wait keeps the hub going

    for s in senders {
        s.join().unwrap();
    }
    let (count, sum, all_seen) = drain.join().unwrap();
    assert_eq!(count, VALUES);
    assert_eq!(sum, VALUES * (VALUES - 1) / 2);
    assert!(all_seen);
}

#[test]
fn offloaded_work_comes_back_to_a_greenlet_while_others_run() {
    let (result_tx, result_rx) = hub::channel::<u64>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    // The worker starts computing only when told, which the ticker does
    // after ticking: the result cannot arrive before the ticks.
    let worker = thread::spawn(move || {
        go_rx.recv().unwrap();
        let sum: u64 = (1..=1000u64).map(|x| x * x).sum();
        result_tx.send(sum).unwrap();
        thread::current().id()
    });

    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let waiter = {
        let log = log.clone();
        hub::spawn(move || {
            let sum = result_rx.recv().unwrap();
            log.borrow_mut().push(format!("result {sum}"));
            (sum, thread::current().id())
        })
    };
    let ticker = {
        let log = log.clone();
        let waiter = waiter.greenlet().clone();
        hub::spawn(move || {
            for i in 0..5 {
                let on = waiting_on(&waiter);
                assert!(matches!(on, Some(WaitOn::Channel { .. })), "{on:?}");
                log.borrow_mut().push(format!("tick {i}"));
                hub::yield_now();
            }
            go_tx.send(()).unwrap();
            log.borrow_mut().push("go".into());
        })
    };
    hub::run();

    ticker.join().unwrap();
    let (sum, waiter_thread) = waiter.join().unwrap();
    assert_eq!(sum, 333_833_500);
    assert_eq!(waiter_thread, thread::current().id());
    assert_ne!(worker.join().unwrap(), waiter_thread);
    assert_eq!(
        *log.borrow(),
        [
            "tick 0",
            "tick 1",
            "tick 2",
            "tick 3",
            "tick 4",
            "go",
            "result 333833500"
        ]
    );
}

#[test]
fn recv_fails_once_every_sender_is_gone_and_nothing_is_queued() {
    let (tx, rx) = hub::channel::<u32>();
    thread::spawn(move || {
        for i in 0..3 {
            tx.send(i).unwrap();
        }
    })
    .join()
    .unwrap();
    // Queued values outlive their senders.
    assert_eq!(rx.recv(), Ok(0));
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.recv_timeout(SHORT), Ok(2));
    assert_eq!(rx.recv(), Err(RecvError));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(rx.recv_timeout(SHORT), Err(RecvTimeoutError::Disconnected));
}

#[test]
fn a_receiver_blocked_in_recv_wakes_when_the_last_sender_drops() {
    let (tx, rx) = hub::channel::<u32>();
    let tx2 = tx.clone();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let dropper = thread::spawn(move || {
        go_rx.recv().unwrap();
        drop(tx);
        drop(tx2);
    });
    let receiver = hub::spawn(move || rx.recv());
    // Spawned second, runs second: the receiver is blocked by then.
    let signal = {
        let receiver = receiver.greenlet().clone();
        hub::spawn(move || {
            let on = waiting_on(&receiver);
            assert!(matches!(on, Some(WaitOn::Channel { .. })), "{on:?}");
            go_tx.send(()).unwrap();
        })
    };
    hub::run();
    signal.join().unwrap();
    dropper.join().unwrap();
    assert_eq!(receiver.join().unwrap(), Err(RecvError));
}

#[test]
fn send_fails_once_the_receiver_is_dropped_and_queued_values_are_dropped() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = hub::channel::<Dropped>();
    for _ in 0..3 {
        tx.send(Dropped(drops.clone())).unwrap();
    }
    drop(rx);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        3,
        "the receiver dropped what was queued"
    );

    // The refused value comes back to the sender, undropped.
    let SendError(back) = tx.send(Dropped(drops.clone())).unwrap_err();
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    drop(back);
    // From another thread too.
    let refused = thread::spawn(move || tx.send(Dropped(drops)).is_err())
        .join()
        .unwrap();
    assert!(refused);
}

#[test]
fn recv_timeout_times_out_then_receives() {
    let (tx, rx) = hub::channel::<u32>();
    assert_eq!(rx.recv_timeout(SHORT), Err(RecvTimeoutError::Timeout));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    let sender = thread::spawn(move || {
        tx.send(7).unwrap();
        tx // kept alive: the channel stays connected
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(7));
    let tx = sender.join().unwrap();
    assert_eq!(rx.recv_timeout(SHORT), Err(RecvTimeoutError::Timeout));
    drop(tx);
    assert_eq!(rx.recv_timeout(SHORT), Err(RecvTimeoutError::Disconnected));
}

#[test]
fn with_timeout_interrupts_recv_and_the_receiver_stays_usable() {
    let (tx, rx) = hub::channel::<&'static str>();
    assert!(with_timeout(SHORT, || rx.recv()).is_err());
    // The interrupted wait left nothing behind: `run` has nothing to do.
    hub::run();
    thread::spawn(move || tx.send("after").unwrap())
        .join()
        .unwrap();
    assert_eq!(rx.recv(), Ok("after"));
}

#[test]
fn a_killed_receiver_leaves_no_wait_behind() {
    let (tx, rx) = hub::channel::<u32>();
    let rx = Rc::new(rx);
    let receiver = {
        let rx = rx.clone();
        hub::spawn(move || rx.recv())
    };
    hub::yield_now(); // the receiver blocks
    assert!(matches!(
        waiting_on(receiver.greenlet()),
        Some(WaitOn::Channel { .. })
    ));
    receiver.kill();
    hub::run(); // returns: nobody waits on the channel any more
    tx.send(1).unwrap();
    assert_eq!(rx.recv(), Ok(1));
}

#[test]
fn two_greenlets_receiving_from_one_receiver_share_the_values() {
    let (tx, rx) = hub::channel::<u32>();
    let rx = Rc::new(rx);
    let receivers: Vec<_> = (0..2)
        .map(|_| {
            let rx = rx.clone();
            hub::spawn(move || rx.iter().collect::<Vec<u32>>())
        })
        .collect();
    hub::yield_now(); // both block in recv
    let sender = thread::spawn(move || {
        for v in 0..100 {
            tx.send(v).unwrap();
        }
    });
    // Main joins (and so blocks) while the receivers drain; they end when
    // the thread's sender is dropped.
    let mut got: Vec<u32> = receivers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    sender.join().unwrap();
    got.sort_unstable();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

#[test]
fn a_sender_fails_once_the_receivers_thread_exits_with_it_blocked() {
    let (sender_tx, sender_rx) = mpsc::channel();
    let hub_thread = thread::spawn(move || {
        let (tx, rx) = hub::channel::<u32>();
        sender_tx.send(tx).unwrap();
        let receiver = hub::spawn(move || rx.recv());
        hub::yield_now(); // blocked in recv when the thread exits
        assert!(!receiver.is_finished());
    });
    let tx = sender_rx.recv().unwrap();
    hub_thread.join().unwrap();
    assert_eq!(tx.send(5), Err(SendError(5)));
}

#[test]
fn channel_halves_have_the_promised_auto_traits() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    send_sync_clone::<hub::Sender<String>>();
    send_sync_clone::<hub::Remote>();
    // `Receiver` is `!Send`; that is a compile-time property (it holds the
    // hub's `Rc`), checked here only as far as it stays usable where made.
    let (tx, rx): (_, Receiver<u8>) = hub::channel();
    tx.send(1).unwrap();
    assert_eq!(rx.iter().next(), Some(1));
    assert!(format!("{tx:?} {rx:?}").contains("Sender"));
}

// ----- remote -----

thread_local! {
    /// Counts remote closures that ran on this thread.
    static HITS: Cell<usize> = const { Cell::new(0) };
}

#[test]
fn remote_spawn_runs_the_closure_in_a_greenlet_on_the_hubs_thread() {
    let remote = hub::remote();
    assert!(!remote.is_closed());
    assert!(format!("{remote:?}").contains("Remote"));
    let (tx, rx) = hub::channel();
    let hub_thread = thread::current().id();
    let spawner = thread::spawn(move || {
        remote
            .spawn(move || {
                HITS.with(|h| h.set(h.get() + 1));
                assert!(!Greenlet::current().is_main());
                // A greenlet like any other: it may block.
                hub::sleep(Duration::from_millis(1));
                tx.send(thread::current().id()).unwrap();
            })
            .unwrap();
        thread::current().id()
    });
    // Main blocks in recv; the hub picks the closure up when it polls.
    let ran_on = rx.recv().unwrap();
    let spawner = spawner.join().unwrap();
    assert_eq!(ran_on, hub_thread);
    assert_ne!(ran_on, spawner);
    assert_eq!(HITS.with(Cell::get), 1);
    // The closure, and the last sender with it, is gone.
    assert_eq!(rx.recv(), Err(RecvError));
}

#[test]
fn remote_spawn_from_many_threads_runs_every_closure_once() {
    const THREADS: usize = 4;
    const EACH: usize = 250;
    let remote = hub::remote();
    let (tx, rx) = hub::channel::<usize>();
    let spawners: Vec<_> = (0..THREADS)
        .map(|t| {
            let (remote, tx) = (remote.clone(), tx.clone());
            thread::spawn(move || {
                for i in 0..EACH {
                    let tx = tx.clone();
                    remote
                        .spawn(move || {
                            HITS.with(|h| h.set(h.get() + 1));
                            tx.send(t * EACH + i).unwrap();
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut seen = vec![false; THREADS * EACH];
    for v in &rx {
        assert!(!seen[v], "closure {v} ran twice");
        seen[v] = true;
    }
    for s in spawners {
        s.join().unwrap();
    }
    assert!(seen.iter().all(|s| *s));
    assert_eq!(HITS.with(Cell::get), THREADS * EACH);
}

#[test]
fn remote_work_reaches_a_hub_whose_greenlets_only_yield() {
    // Nobody here waits on I/O: the hub must still look at its mail
    // between rounds, or this loop would never end.
    let remote = hub::remote();
    let helper = thread::spawn(move || remote.spawn(|| HITS.with(|h| h.set(h.get() + 1))).unwrap());
    let mut yields = 0u64;
    while HITS.with(Cell::get) == 0 {
        hub::yield_now();
        yields += 1;
    }
    helper.join().unwrap();
    assert!(yields > 0);
    assert_eq!(HITS.with(Cell::get), 1);
}

#[test]
fn a_panicking_remote_closure_does_not_stop_the_hub() {
    let remote = hub::remote();
    let (tx, rx) = hub::channel::<&'static str>();
    thread::spawn(move || {
        remote.spawn(|| panic!("remote closure failure")).unwrap();
        remote
            .spawn(move || tx.send("still running").unwrap())
            .unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(rx.recv(), Ok("still running"));
}

#[test]
fn remote_spawn_fails_after_the_hubs_thread_exits_and_drops_the_closure() {
    // The thread's receiver goes with it.
    let (remote, tx) = thread::spawn(|| {
        let (tx, _rx) = hub::channel::<u32>();
        (hub::remote(), tx)
    })
    .join()
    .unwrap();
    assert!(remote.is_closed());
    let drops = Arc::new(AtomicUsize::new(0));
    let guard = Dropped(drops.clone());
    let err = remote
        .spawn(move || {
            let _guard = guard;
            unreachable!("a closed hub runs nothing");
        })
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the refused closure was dropped"
    );
    assert_eq!(tx.send(1), Err(SendError(1)));
}

#[test]
fn work_posted_to_a_hub_that_exits_without_polling_is_dropped_unrun() {
    let (remote_tx, remote_rx) = mpsc::channel();
    let (posted_tx, posted_rx) = mpsc::channel::<()>();
    let hub_thread = thread::spawn(move || {
        remote_tx.send(hub::remote()).unwrap();
        // Exits once the work is posted, without ever running the hub.
        posted_rx.recv().unwrap();
    });
    let remote = remote_rx.recv().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    {
        let guard = Dropped(drops.clone());
        let ran = ran.clone();
        remote
            .spawn(move || {
                let _guard = guard;
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
    }
    posted_tx.send(()).unwrap();
    hub_thread.join().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped at the hub's exit");
    assert!(remote.is_closed());
    assert!(remote.spawn(|| ()).is_err());
}

/// Panics as it drops (a capture of posted work that is never run).
struct PanicsAsItDrops;

impl Drop for PanicsAsItDrops {
    fn drop(&mut self) {
        panic!("a capture's destructor panics");
    }
}

/// Work still queued when its hub's thread exits is dropped, each closure
/// on its own, in a thread-local's destructor: one whose capture panics
/// there is reported, the others are dropped too, and the thread exits
/// normally (work another thread posted cannot take the process down).
#[test]
fn posted_work_whose_capture_panics_as_it_drops_at_exit_is_reported() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let exited = thread::spawn(move || {
        let remote = hub::remote();
        let (bomb, guard) = (PanicsAsItDrops, Dropped(d));
        remote.spawn(move || drop(bomb)).unwrap();
        remote.spawn(move || drop(guard)).unwrap();
        // Exits without running the hub again.
    })
    .join();
    assert!(exited.is_ok(), "the thread exits normally");
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the other closure was dropped"
    );
}

/// Posted work that gets no stack for its greenlet is dropped unrun by the
/// hub greenlet; a panic in its destructor is reported there, and the hub
/// runs on.
#[test]
fn posted_work_dropped_for_want_of_a_stack_leaves_the_hub_running() {
    thread::spawn(|| {
        hub::spawn(|| ()).join().unwrap(); // the hub greenlet has its stack
        let remote = hub::remote();
        let old = greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(1 << 60));
        greenlet::trim_stacks();
        assert!(
            hub::Builder::new().spawn(|| ()).is_err(),
            "no stack to be had"
        );
        let bomb = PanicsAsItDrops;
        thread::spawn(move || remote.spawn(move || drop(bomb)).unwrap())
            .join()
            .unwrap();
        // A blocking call lets the hub read its inbox: it finds the work,
        // cannot start it, and drops it.
        let (tx, rx) = hub::channel::<u32>();
        tx.send(1).unwrap();
        assert_eq!(rx.recv(), Ok(1));
        hub::time::pause();
        hub::sleep(SHORT);
        hub::time::resume();
        greenlet::set_stack_policy(old);
        assert_eq!(hub::spawn(|| 2).join().unwrap(), 2, "the hub runs on");
    })
    .join()
    .unwrap();
}

/// A plain thread calls into the hub and waits for the value; a panic in
/// the call resumes in that thread; a hub whose thread has exited says so;
/// the hub's own thread may not wait for itself.
#[test]
fn call_blocking_returns_the_value_and_the_panic_to_a_plain_thread() {
    let remote = hub::remote();
    let (tx, rx) = hub::channel::<u32>();
    let caller = thread::spawn(move || {
        let value = remote
            .call_blocking(|| Greenlet::current().is_main())
            .unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            remote.call_blocking(|| -> u32 { panic!("in the call") })
        }));
        let message = panicked.unwrap_err().downcast_ref::<&str>().copied();
        tx.send(u32::from(!value) + u32::from(message == Some("in the call")))
            .unwrap();
    });
    // Main waits on the channel: the hub polls, and runs both calls.
    assert_eq!(
        rx.recv(),
        Ok(2),
        "ran in a greenlet, not main; panic resumed"
    );
    caller.join().unwrap();

    let on_own_thread = std::panic::catch_unwind(|| hub::remote().call_blocking(|| 1));
    assert!(
        on_own_thread.is_err(),
        "the hub's own thread would wait for itself"
    );
}

#[test]
fn call_blocking_on_a_hub_whose_thread_exited_fails() {
    let remote = thread::spawn(hub::remote).join().unwrap();
    let e = remote.call_blocking(|| 1).unwrap_err();
    assert_eq!(e.to_string(), "the hub's thread has exited");
}

#[test]
fn call_blocking_fails_with_remote_closed_when_its_greenlet_is_killed_by_the_hubs_shutdown() {
    let (remote_tx, remote_rx) = mpsc::channel();
    let server = thread::spawn(move || {
        hub::run_main(move || {
            let (stop, stopped) = hub::channel::<()>();
            remote_tx.send((hub::remote(), stop)).unwrap();
            stopped.recv().unwrap();
        });
        // `run_main` has returned: it killed the greenlet running `f`.
    });
    let (remote, stop) = remote_rx.recv().unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    let caller = thread::spawn(move || {
        remote.call_blocking(move || {
            let (_keep, never) = hub::channel::<u32>();
            started_tx.send(()).unwrap();
            never.recv().ok() // blocks until killed
        })
    });
    started_rx.recv().unwrap();
    stop.send(()).unwrap();
    server.join().unwrap();
    let outcome = caller
        .join()
        .expect("the caller saw a panic: the crate's kill signal, handed over");
    assert_eq!(
        outcome.unwrap_err().to_string(),
        "the hub's thread has exited"
    );
}

/// The same when the hub's thread simply exits while `f` is blocked: the
/// exit leaves the greenlet running `f` suspended (see the crate's
/// **Threads** rule), never unwound, so its reply sender is not dropped
/// with it; the inbox keeps that sender and drops it as it closes, so the
/// caller hears `RemoteClosed` rather than waiting for ever.
#[test]
fn call_blocking_fails_with_remote_closed_when_the_hubs_thread_exits_while_it_is_blocked() {
    let (remote_tx, remote_rx) = mpsc::channel();
    let server = thread::spawn(move || {
        let (stop, stopped) = hub::channel::<()>();
        remote_tx.send((hub::remote(), stop)).unwrap();
        stopped.recv().unwrap();
        // The thread exits with the greenlet running `f` blocked.
    });
    let (remote, stop) = remote_rx.recv().unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    let (outcome_tx, outcome_rx) = mpsc::channel();
    let caller = thread::spawn(move || {
        let outcome = remote.call_blocking(move || {
            let (_keep, never) = hub::channel::<u32>();
            started_tx.send(()).unwrap();
            never.recv().ok() // blocks for good
        });
        outcome_tx.send(outcome.map_err(|e| e.to_string())).unwrap();
    });
    started_rx.recv().unwrap();
    stop.send(()).unwrap();
    server.join().unwrap();
    // A hang guard only: the answer is expected once the thread has exited.
    let outcome = outcome_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("call_blocking still waits after the hub's thread exited");
    assert_eq!(outcome, Err("the hub's thread has exited".to_string()));
    caller.join().unwrap();
}

/// Switches made while `f` runs, counted by a switch hook.
fn switches_during(f: impl FnOnce()) -> u64 {
    let switches = Rc::new(Cell::new(0u64));
    let s2 = switches.clone();
    greenlet::set_switch_hook(Some(Box::new(move |e| {
        if e.kind == greenlet::SwitchKind::Switch {
            s2.set(s2.get() + 1);
        }
    })));
    f();
    greenlet::set_switch_hook(None);
    switches.get()
}

/// Switches per value with `receivers` greenlets receiving on one channel.
fn switches_per_value(receivers: usize) -> u64 {
    let (tx, rx) = hub::channel::<u32>();
    let rx = Rc::new(rx);
    let got = Rc::new(Cell::new(0u32));
    let hs: Vec<_> = (0..receivers)
        .map(|_| {
            let (rx, got) = (rx.clone(), got.clone());
            hub::spawn(move || {
                while rx.recv().is_ok() {
                    got.set(got.get() + 1);
                }
            })
        })
        .collect();
    hub::yield_now(); // all wait
    const VALUES: u32 = 50;
    let n = switches_during(|| {
        for i in 0..VALUES {
            tx.send(i).unwrap();
            while got.get() <= i {
                hub::yield_now();
            }
        }
    });
    drop(tx);
    for h in hs {
        h.join().unwrap();
    }
    n / u64::from(VALUES)
}

/// A send wakes one of the greenlets waiting on a channel, not all
/// (review 53: 1,000 receivers took 2,004 switches a value).
#[test]
fn a_send_wakes_one_receiver_however_many_wait() {
    let one = switches_per_value(1);
    let many = switches_per_value(100);
    assert_eq!(
        one, many,
        "switches per value: {one} with one receiver, {many} with 100"
    );
}

/// Values sent in a burst (one notification) reach as many waiting
/// receivers, one each; the end reaches them all.
#[test]
fn a_burst_of_sends_and_the_end_reach_every_waiting_receiver() {
    let (tx, rx) = hub::channel::<u32>();
    let rx = Rc::new(rx);
    let receivers = |n: usize| -> Vec<hub::JoinHandle<Result<u32, RecvError>>> {
        let hs = (0..n)
            .map(|_| {
                let rx = rx.clone();
                hub::spawn(move || rx.recv())
            })
            .collect();
        hub::yield_now(); // all wait
        hs
    };
    let hs = receivers(3);
    let tx = thread::spawn(move || {
        for i in 0..3 {
            tx.send(i).unwrap();
        }
        tx
    })
    .join()
    .unwrap();
    let mut got: Vec<u32> = hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect();
    got.sort();
    assert_eq!(got, [0, 1, 2]);
    let hs = receivers(3);
    thread::spawn(move || drop(tx)).join().unwrap();
    for h in hs {
        assert_eq!(h.join().unwrap(), Err(RecvError));
    }
}

/// The receiver a send woke, killed before it runs, hands the wake-up to
/// the next one: the value is not left waiting for another send.
#[test]
fn a_woken_receiver_killed_before_it_runs_wakes_the_next() {
    let (tx, rx) = hub::channel::<u32>();
    let rx = Rc::new(rx);
    let (r1, r2) = (rx.clone(), rx.clone());
    let first = hub::spawn(move || r1.recv());
    let second = hub::spawn(move || r2.recv());
    hub::yield_now(); // both wait, `first` longest
    tx.send(7).unwrap();
    // Main is ready before the hub takes the send's notification, so it
    // runs first after it: `first` is woken and has not run.
    hub::yield_now();
    assert_eq!(waiting_on(first.greenlet()), Some(WaitOn::Ready));
    first.kill();
    assert_eq!(second.join().unwrap(), Ok(7));
    drop(tx);
}

/// Sends go to the longest-waiting receivers, also after one in the
/// middle left (review 54: the newest took its place).
#[test]
fn sends_go_to_the_longest_waiting_receivers_after_one_leaves() {
    hub::time::pause();
    let (tx, rx) = hub::channel::<u32>();
    let rx = Rc::new(rx);
    let order = Rc::new(RefCell::new(Vec::new()));
    let hs: Vec<_> = (0..5)
        .map(|i| {
            let (rx, order) = (rx.clone(), order.clone());
            hub::spawn(move || {
                let timeout = if i == 1 { 1 } else { 3600 };
                if rx.recv_timeout(Duration::from_secs(timeout)).is_ok() {
                    order.borrow_mut().push(i);
                }
            })
        })
        .collect();
    hub::yield_now(); // all wait, 0 longest
    hub::sleep(Duration::from_secs(2)); // 1 leaves
    for v in 0..4 {
        tx.send(v).unwrap();
        while order.borrow().len() <= v as usize {
            hub::yield_now();
        }
    }
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*order.borrow(), [0, 2, 3, 4]);
    hub::time::resume();
}

/// A thread whose hub outlives it (something keeps the hub: here a
/// `time::hold` forgotten, which safe code may do) still closes its
/// mailbox as it exits: its `Remote` says so and refuses work, and a
/// `call_blocking` fails instead of waiting for ever.
#[test]
fn a_remote_closes_when_its_thread_exits_even_if_the_hub_is_kept() {
    let remote = thread::spawn(|| {
        let remote = hub::remote();
        std::mem::forget(hub::time::hold());
        remote
    })
    .join()
    .unwrap();
    assert!(remote.is_closed());
    assert!(remote.spawn(|| ()).is_err());
    assert!(remote.call_blocking(|| 1).is_err());
}

/// The same when the hub is kept by a greenlet that refused its kill at
/// thread exit (its stack, with a `Receiver` on it, is leaked).
#[test]
fn a_remote_closes_when_its_thread_exits_past_a_greenlet_that_refused_its_kill() {
    let remote = thread::spawn(|| {
        let remote = hub::remote();
        hub::spawn(|| {
            let (_tx, rx) = hub::channel::<u8>();
            // The kill's unwinding is caught, and it switches away again:
            // the kill is refused.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rx.recv()));
            let _ = Greenlet::main().switch::<(), ()>(());
        });
        hub::yield_now();
        remote
    })
    .join()
    .unwrap();
    assert!(remote.is_closed());
    assert!(remote.spawn(|| ()).is_err());
}

/// A send fails once the receiver's thread has exited, also when the
/// receiver itself was leaked rather than dropped.
#[test]
fn a_send_fails_once_the_receivers_thread_exited_though_the_receiver_leaked() {
    let tx = thread::spawn(|| {
        let (tx, rx) = hub::channel::<u32>();
        std::mem::forget(rx);
        tx
    })
    .join()
    .unwrap();
    assert_eq!(tx.send(1), Err(SendError(1)));
}

// ----- a wake-up for a registration that has gone -----
//
// A channel's sender asks the hub to wake its receiver's registration; the
// receiver may be gone by the time the hub reads that mail, and its slot
// in the reactor taken by another registration (here: a pipe that
// `hub::wait_readable` waits on). The wake-up must find nobody, not the
// pipe's wait, which would return "readable" with nothing to read.

/// Waits on a pipe that nothing writes to until a greenlet has yielded 50
/// times (its registration, made now, may take the reactor slot of one
/// gone before), and asserts that only that write ended the wait;
/// `woken_by` names what else might have.
fn assert_a_pipe_wait_is_woken_only_by_its_write(woken_by: &str) {
    use std::io::Write;
    let (reader, mut writer) = std::io::pipe().unwrap();
    let written = Rc::new(Cell::new(false));
    let flag = written.clone();
    let g = hub::spawn(move || {
        for _ in 0..50 {
            hub::yield_now();
        }
        flag.set(true);
        writer.write_all(b"x").unwrap();
    });
    hub::wait_readable(&reader, None).unwrap();
    assert!(written.get(), "woken by {woken_by}");
    g.join().unwrap();
}

#[test]
fn a_last_senders_drop_after_its_receiver_timed_out_and_went_wakes_nobody_else() {
    let (tx, rx) = hub::channel::<u8>();
    assert_eq!(rx.recv_timeout(SHORT), Err(RecvTimeoutError::Timeout));
    drop(rx);
    thread::spawn(move || drop(tx)).join().unwrap();
    assert_a_pipe_wait_is_woken_only_by_its_write("the dead receiver's wake-up");
}

#[test]
fn a_send_whose_receiver_is_killed_before_the_hub_reads_it_wakes_nobody_else() {
    let (tx, rx) = hub::channel::<u8>();
    let receiver = hub::spawn(move || rx.recv());
    hub::yield_now();
    assert!(!receiver.is_finished());
    // Posted for the waiting receiver, which then goes before the hub
    // takes its mail.
    thread::spawn(move || tx.send(1).unwrap()).join().unwrap();
    receiver.kill();
    assert_a_pipe_wait_is_woken_only_by_its_write("the killed receiver's wake-up");
}

#[test]
fn dropping_a_signal_whose_wait_timed_out_wakes_nobody_else() {
    let sig = hub::signal(libc::SIGURG).unwrap();
    assert!(!sig.recv_timeout(SHORT));
    drop(sig);
    assert_a_pipe_wait_is_woken_only_by_its_write("the dropped signal's channel");
}

#[test]
fn a_killed_thread_pool_waiters_job_ending_later_wakes_nobody_else() {
    use std::io::Write;
    let pool = hub::ThreadPool::new(1, Duration::from_secs(60));
    let (release, released) = mpsc::channel::<()>();
    let job = pool.spawn(move || released.recv().unwrap());
    hub::yield_now();
    job.kill();
    // The pipe's wait is registered before the job ends (and drops its
    // result's sender, whose receiver went with the killed waiter); the
    // pipe is written only after.
    let (reader, mut writer) = std::io::pipe().unwrap();
    let written = Rc::new(Cell::new(false));
    let flag = written.clone();
    let ender = hub::spawn(move || {
        release.send(()).unwrap();
        // One pool thread, in order: once this is back, the first job and
        // its sender are gone.
        pool.spawn(|| ()).join().unwrap();
        for _ in 0..10 {
            hub::yield_now();
        }
        flag.set(true);
        writer.write_all(b"x").unwrap();
    });
    hub::wait_readable(&reader, None).unwrap();
    assert!(written.get(), "woken by the killed waiter's job");
    ender.join().unwrap();
}

/// A hub thread whose stacks cannot be had (a stack size too large to
/// map): work posted to it is dropped unrun. Its `Remote`, and what stops
/// it.
fn hub_thread_without_stacks() -> (hub::Remote, hub::Sender<()>, thread::JoinHandle<()>) {
    let (to_caller, from_hub) = mpsc::channel();
    let hub_thread = thread::spawn(move || {
        hub::spawn(|| ()).join().unwrap(); // the hub greenlet has its stack
        greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(1 << 60));
        greenlet::trim_stacks();
        let (stop, stopped) = hub::channel::<()>();
        to_caller.send((hub::remote(), stop)).unwrap();
        let _ = stopped.recv();
    });
    let (remote, stop) = from_hub.recv().unwrap();
    (remote, stop, hub_thread)
}

/// Captured by a function that is dropped unrun: its destructor looks, for
/// a while, whether the caller has returned (`returned`), and notes in
/// `seen` if it has. Looking cannot wait for anything: if the caller can
/// only return after this drop, it never sees it, whatever the timing.
struct ReturnProbe {
    returned: Arc<std::sync::atomic::AtomicBool>,
    seen: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for ReturnProbe {
    fn drop(&mut self) {
        for _ in 0..10_000 {
            if self.returned.load(Ordering::SeqCst) {
                self.seen.store(true, Ordering::SeqCst);
                return;
            }
            thread::yield_now();
        }
    }
}

/// Makes a call through `call` to a hub thread without stacks, from a
/// thread of its own, handing it a `ReturnProbe` to capture in the
/// function (dropped unrun there); its result, and whether the probe saw
/// the caller return before the function was gone.
fn call_dropped_unrun<R: Send + 'static>(
    call: impl FnOnce(hub::Remote, ReturnProbe) -> R + Send + 'static,
) -> (R, bool) {
    let (remote, stop, hub_thread) = hub_thread_without_stacks();
    let returned = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = ReturnProbe {
        returned: returned.clone(),
        seen: seen.clone(),
    };
    let caller = thread::spawn(move || {
        let r = call(remote, probe);
        returned.store(true, Ordering::SeqCst);
        r
    });
    let r = caller.join().unwrap();
    stop.send(()).unwrap();
    hub_thread.join().unwrap();
    (r, seen.load(Ordering::SeqCst))
}

/// A `call_blocking` whose function is dropped unrun (no stack for its
/// greenlet) returns `RemoteClosed` only once the function and what it
/// captured are gone: a caller that moved a guard or a sender into it may
/// act on the error. (The reply sender went first, and the caller could
/// return while the function was still alive on the hub's thread.)
#[test]
fn a_call_whose_function_is_dropped_unrun_returns_once_the_function_is_gone() {
    let (r, seen) = call_dropped_unrun(|remote, probe| {
        remote.call_blocking(move || {
            let _probe = &probe;
            1
        })
    });
    assert!(r.is_err(), "no stack: RemoteClosed");
    assert!(
        !seen,
        "the caller returned while its function was still alive"
    );
}

/// The same for `Remote::call`: its future resolves (`NoStack`) once the
/// function dropped unrun and its captures are gone. (The completer went
/// first, and the caller could return while the function was alive.)
#[test]
fn a_remote_call_whose_function_is_dropped_unrun_resolves_once_the_function_is_gone() {
    let (r, seen) = call_dropped_unrun(|remote, probe| {
        let r = hub::block_on(remote.call(move || {
            let _probe = &probe;
            1
        }));
        format!("{:?}", r.err())
    });
    assert_eq!(r, "Some(NoStack)");
    assert!(
        !seen,
        "the caller's future resolved while its function was still alive"
    );
}

/// A hub thread whose main greenlet waits until told to stop: its
/// `Remote`, what stops it, and the thread.
fn hub_thread_until_stopped() -> (hub::Remote, hub::Sender<()>, thread::JoinHandle<()>) {
    let (to_caller, from_hub) = mpsc::channel();
    let hub_thread = thread::spawn(move || {
        let (stop, stopped) = hub::channel::<()>();
        to_caller.send((hub::remote(), stop)).unwrap();
        let _ = stopped.recv();
    });
    let (remote, stop) = from_hub.recv().unwrap();
    (remote, stop, hub_thread)
}

/// A call through `remote` whose greenlet holds `guard` and sleeps for an
/// hour, polled once (in flight), returned once its greenlet sleeps.
fn call_sleeping_with<G: Send + 'static>(
    remote: &hub::Remote,
    guard: G,
) -> std::pin::Pin<Box<hub::Call<()>>> {
    let (started_tx, started_rx) = mpsc::channel();
    let mut call = Box::pin(remote.call(move || {
        let _guard = guard;
        started_tx.send(()).unwrap();
        hub::sleep(Duration::from_secs(3600));
    }));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(std::future::Future::poll(call.as_mut(), &mut cx).is_pending());
    started_rx.recv().unwrap(); // its greenlet sleeps
    call
}

/// Dropping a `Remote::call` future kills the call's greenlet; the kill
/// is made on the hub greenlet itself, which needs no stack: posted as a
/// greenlet of its own, it was dropped unrun while the hub had no stack
/// to spare, and the call's greenlet ran on for good.
#[test]
fn a_dropped_calls_greenlet_is_killed_also_when_the_hub_has_no_stack_to_spare() {
    struct Guard(mpsc::Sender<()>);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let (remote, stop, hub_thread) = hub_thread_until_stopped();
    let (dropped_tx, dropped_rx) = mpsc::channel();
    let call = call_sleeping_with(&remote, Guard(dropped_tx));
    remote
        .call_blocking(|| {
            // No stack can be had from now on.
            greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(1 << 60));
            greenlet::trim_stacks();
        })
        .unwrap();
    drop(call);
    let killed = dropped_rx.recv_timeout(Duration::from_secs(60));
    stop.send(()).unwrap();
    hub_thread.join().unwrap();
    assert_eq!(killed, Ok(()), "the call's greenlet was killed");
}

/// The kill of a dropped call's greenlet is made in turn with the work
/// posted before it (as a greenlet of its own): made on the hub greenlet
/// at once, it overtook a `Remote::spawn` posted earlier in the same mail.
#[test]
fn a_dropped_calls_kill_comes_after_work_posted_before_it() {
    struct Guard(mpsc::Sender<&'static str>);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.send("killed");
        }
    }
    let (remote, stop, hub_thread) = hub_thread_until_stopped();
    let (log_tx, log_rx) = mpsc::channel();
    let call = call_sleeping_with(&remote, Guard(log_tx.clone()));
    // The hub's thread held, so both posts land in one batch of mail.
    let (entered_tx, entered_rx) = mpsc::channel();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    remote
        .spawn(move || {
            entered_tx.send(()).unwrap();
            let _ = gate_rx.recv();
        })
        .unwrap();
    entered_rx.recv().unwrap();
    remote
        .spawn(move || log_tx.send("spawned").unwrap())
        .unwrap();
    drop(call);
    gate_tx.send(()).unwrap();
    let first = log_rx.recv_timeout(Duration::from_secs(60));
    let second = log_rx.recv_timeout(Duration::from_secs(60));
    stop.send(()).unwrap();
    hub_thread.join().unwrap();
    assert_eq!((first, second), (Ok("spawned"), Ok("killed")));
}

/// The kill of a dropped call's greenlet made on the hub greenlet (no
/// stack for a greenlet of its own) ends the hub's last I/O wait: the hub
/// goes round again and `run` returns. Made inside the idle spin's poll,
/// it left the hub to park for ever on what it had read before.
#[test]
fn run_returns_when_a_dropped_calls_kill_without_a_stack_ends_the_last_io_wait() {
    let (done_tx, done_rx) = mpsc::channel::<&'static str>();
    let (to_caller, from_hub) = mpsc::channel();
    let (k_done_tx, k_done_rx) = mpsc::channel::<()>();
    let _hub_thread = thread::spawn(move || {
        hub::set_idle_spin(Duration::from_secs(1));
        let (k_tx, k_rx) = hub::channel::<()>();
        // K keeps `run` going until the call's greenlet waits; then no
        // stack can be had.
        hub::spawn(move || {
            let _ = k_rx.recv();
            greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(1 << 60));
            greenlet::trim_stacks();
            k_done_tx.send(()).unwrap();
        });
        to_caller.send((hub::remote(), k_tx)).unwrap();
        hub::run();
        let _ = done_tx.send("run returned");
    });
    let (remote, k_tx) = from_hub.recv().unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    let mut call = Box::pin(remote.call(move || {
        let listener = greenlet::net::TcpListener::bind("127.0.0.1:0").unwrap();
        started_tx.send(()).unwrap();
        let _ = listener.accept(); // the last I/O wait once K is done
    }));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(std::future::Future::poll(call.as_mut(), &mut cx).is_pending());
    started_rx.recv().unwrap();
    k_tx.send(()).unwrap();
    k_done_rx.recv().unwrap();
    drop(call);
    // On failure the hub's thread stays parked, left behind.
    assert_eq!(
        done_rx.recv_timeout(Duration::from_secs(60)),
        Ok("run returned")
    );
}

// ----- a send wakes the longest waiting receiver -----
//
// A receiver woken for a value that another greenlet takes before it runs
// waits again first, in its place: the next value is still its.

type Order = Rc<RefCell<Vec<(&'static str, u32)>>>;

/// Greenlets named `names` receiving from `rx` until the end, recording
/// what each got; each made to wait in turn, the first longest.
fn waiting_receivers(
    rx: &Rc<Receiver<u32>>,
    names: &[&'static str],
) -> (Vec<hub::JoinHandle<()>>, Order) {
    let order: Order = Rc::default();
    let handles = names
        .iter()
        .map(|&name| {
            let (rx, order) = (rx.clone(), order.clone());
            hub::spawn(move || {
                while let Ok(v) = rx.recv() {
                    order.borrow_mut().push((name, v));
                }
            })
        })
        .collect();
    hub::yield_now();
    (handles, order)
}

/// A channel, its receiver and greenlets receiving from it, waiting in
/// line, with what each got.
type Line = (
    hub::Sender<u32>,
    Rc<Receiver<u32>>,
    Vec<hub::JoinHandle<()>>,
    Order,
);

/// A channel and receivers named `names` waiting on it in that order.
fn in_line(names: &[&'static str]) -> Line {
    let (tx, rx) = hub::channel();
    let rx = Rc::new(rx);
    let (handles, order) = waiting_receivers(&rx, names);
    (tx, rx, handles, order)
}

/// Sends `v` from another thread: the receivers' hub hears of it when it
/// next reads its mail.
fn send_from_a_thread(tx: &hub::Sender<u32>, v: u32) {
    let tx = tx.clone();
    thread::spawn(move || tx.send(v).unwrap()).join().unwrap();
}

/// Lets the hub run until some receiver got `v`; returns who.
fn who_gets(order: &Order, v: u32) -> &'static str {
    loop {
        if let Some(&(name, _)) = order.borrow().iter().find(|(_, got)| *got == v) {
            return name;
        }
        hub::yield_now();
    }
}

fn end(tx: hub::Sender<u32>, handles: Vec<hub::JoinHandle<()>>) {
    drop(tx);
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn a_receiver_woken_for_a_value_another_took_with_try_recv_keeps_its_place() {
    let (tx, rx, handles, order) = in_line(&["A", "B"]);
    tx.send(1).unwrap();
    hub::yield_now(); // the hub wakes A, which has not run
    assert_eq!(rx.try_recv(), Ok(1));
    hub::yield_now(); // A runs and waits again
    send_from_a_thread(&tx, 2);
    assert_eq!(who_gets(&order, 2), "A", "{:?}", order.borrow());
    end(tx, handles);
}

#[test]
fn a_receiver_woken_for_a_value_a_running_receiver_took_keeps_its_place() {
    let (tx, rx, handles, order) = in_line(&["A", "B"]);
    send_from_a_thread(&tx, 1); // wakes A when the hub reads it
    assert_eq!(rx.recv(), Ok(1)); // main, running, takes it first
    hub::yield_now();
    hub::yield_now(); // A has run, found nothing and waits again
    send_from_a_thread(&tx, 2);
    assert_eq!(who_gets(&order, 2), "A", "{:?}", order.borrow());
    end(tx, handles);
}

#[test]
fn a_receiver_woken_for_a_value_a_timed_out_receiver_took_keeps_its_place() {
    hub::time::pause();
    let (tx, rx) = hub::channel();
    let rx = Rc::new(rx);
    let timed = {
        let rx = rx.clone();
        hub::spawn(move || rx.recv_timeout(Duration::from_secs(1)))
    };
    let (handles, order) = waiting_receivers(&rx, &["B", "C"]);
    // Posted, not yet read by the hub. In one pass the timeout fires and
    // the send's notification passes the timed-out receiver over to wake
    // B; the timed-out one looks once more and takes 1.
    send_from_a_thread(&tx, 1);
    hub::time::advance(Duration::from_secs(1));
    assert_eq!(timed.join().unwrap(), Ok(1));
    hub::yield_now();
    send_from_a_thread(&tx, 2);
    assert_eq!(who_gets(&order, 2), "B", "{:?}", order.borrow());
    hub::time::resume();
    end(tx, handles);
}

#[test]
fn a_wake_up_a_killed_receiver_passes_on_for_nothing_keeps_the_next_ones_place() {
    let (tx, rx, mut handles, order) = in_line(&["A", "B", "C"]);
    tx.send(1).unwrap();
    hub::yield_now(); // the hub wakes A, which has not run
    assert_eq!(rx.try_recv(), Ok(1));
    handles.remove(0).kill(); // A passes its wake-up to B
    hub::yield_now(); // B runs, finds nothing, waits again
    send_from_a_thread(&tx, 2);
    assert_eq!(who_gets(&order, 2), "B", "{:?}", order.borrow());
    end(tx, handles);
}

#[test]
fn receivers_woken_for_values_another_took_keep_their_order() {
    let (tx, rx, handles, order) = in_line(&["A", "B", "C"]);
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    hub::yield_now(); // the hub wakes A, which has not run
    assert_eq!(rx.recv(), Ok(1)); // and passes the wake-up on to B
    assert_eq!(rx.try_recv(), Ok(2));
    hub::yield_now();
    hub::yield_now(); // A and B ran, found nothing and wait again
    assert!(order.borrow().is_empty(), "{:?}", order.borrow());
    let got: Vec<_> = (3..6)
        .map(|v| {
            send_from_a_thread(&tx, v);
            who_gets(&order, v)
        })
        .collect();
    assert_eq!(got, ["A", "B", "C"], "{:?}", order.borrow());
    end(tx, handles);
}

/// The worker pool's shape: a burst that the first receiver takes whole
/// (each of its takes wakes the next receiver, for a value it then takes
/// itself), after which the others still come before it.
#[test]
fn receivers_woken_during_a_burst_one_receiver_took_come_before_it() {
    let (tx, _rx, handles, order) = in_line(&["A", "B", "C"]);
    {
        let tx = tx.clone();
        thread::spawn(move || (1..=3).for_each(|v| tx.send(v).unwrap()))
            .join()
            .unwrap();
    }
    for v in 1..=3 {
        assert_eq!(who_gets(&order, v), "A", "{:?}", order.borrow());
    }
    for _ in 0..4 {
        hub::yield_now(); // B and C run, find nothing and wait again
    }
    let got: Vec<_> = (4..=6)
        .map(|v| {
            send_from_a_thread(&tx, v);
            who_gets(&order, v)
        })
        .collect();
    assert_eq!(got, ["B", "C", "A"], "{:?}", order.borrow());
    end(tx, handles);
}
