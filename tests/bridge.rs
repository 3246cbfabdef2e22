//! `hub::block_on`, `hub::spawn_local` and `Remote::call`: futures awaited
//! by greenlets, woken from the same thread and from others, interrupted,
//! panicking; greenlets called from async code.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use greenlet::hub::{self, CallError, JoinError};

/// A one-thread flag a greenlet can await; `set` wakes the awaiter.
#[derive(Clone, Default)]
struct Flag(Rc<FlagInner>);

#[derive(Default)]
struct FlagInner {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    polls: Cell<usize>,
}

impl Flag {
    fn set(&self) {
        self.0.set.set(true);
        if let Some(w) = self.0.waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn wait(&self) -> FlagWait {
        FlagWait(self.clone())
    }
}

struct FlagWait(Flag);

impl Future for FlagWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let f = &self.0 .0;
        f.polls.set(f.polls.get() + 1);
        if f.set.replace(false) {
            return Poll::Ready(());
        }
        let mut waker = f.waker.borrow_mut();
        match &mut *waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Pending forever; counts its drops.
struct Never(Rc<Cell<usize>>);

impl Future for Never {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl Drop for Never {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn ready_future_returns_at_once() {
    assert_eq!(hub::block_on(async { 6 * 7 }), 42);
    assert_eq!(hub::block_on(std::future::ready("x")), "x");
}

#[test]
fn same_thread_wake_resumes_the_awaiter() {
    let flag = Flag::default();
    let log = Rc::new(RefCell::new(Vec::new()));
    let waiter = {
        let (flag, log) = (flag.clone(), log.clone());
        hub::spawn(move || {
            log.borrow_mut().push("waiting");
            hub::block_on(flag.wait());
            log.borrow_mut().push("woken");
        })
    };
    let setter = {
        let (flag, log) = (flag.clone(), log.clone());
        hub::spawn(move || {
            log.borrow_mut().push("setting");
            flag.set();
            log.borrow_mut().push("set");
        })
    };
    hub::run();
    assert!(waiter.is_finished() && setter.is_finished());
    assert_eq!(*log.borrow(), ["waiting", "setting", "set", "woken"]);
    // One poll that found it clear, one after the wake.
    assert_eq!(flag.0.polls.get(), 2);
}

#[test]
fn main_greenlet_can_await() {
    let flag = Flag::default();
    let f = flag.clone();
    hub::spawn(move || f.set());
    hub::block_on(flag.wait());
    assert_eq!(flag.0.polls.get(), 2);
}

/// A future woken from another thread: it ships its waker there, and the
/// thread sets the flag and wakes it.
struct Remote {
    set: Arc<AtomicBool>,
    to_thread: mpsc::Sender<Waker>,
    polls: Rc<Cell<usize>>,
}

impl Future for Remote {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls.set(self.polls.get() + 1);
        if self.set.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.to_thread.send(cx.waker().clone()).unwrap();
        Poll::Pending
    }
}

#[test]
fn cross_thread_wake_resumes_the_awaiter() {
    let (tx, rx) = mpsc::channel::<Waker>();
    let set = Arc::new(AtomicBool::new(false));
    let s = set.clone();
    let thread = std::thread::spawn(move || {
        let waker = rx.recv().unwrap();
        s.store(true, Ordering::Release);
        // Several wakes: coalesced into one resume.
        waker.wake_by_ref();
        waker.wake_by_ref();
        waker.wake();
    });
    let polls = Rc::new(Cell::new(0));
    // Another greenlet keeps running meanwhile: only the awaiter blocks.
    let (ticks, ticker) = three_ticks();
    hub::block_on(Remote {
        set,
        to_thread: tx,
        polls: polls.clone(),
    });
    thread.join().unwrap();
    assert_eq!(polls.get(), 2);
    ticker.join().unwrap();
    assert_eq!(ticks.get(), 3);
}

#[test]
fn oneshot_from_another_thread() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let waiter = hub::spawn(move || hub::block_on(rx).unwrap());
    let thread = std::thread::spawn(move || tx.send(String::from("hi")).unwrap());
    assert_eq!(waiter.join().unwrap(), "hi");
    thread.join().unwrap();
}

/// Wakes itself `n` times while polled (each a yield), then is ready.
struct Yields {
    left: usize,
    polls: Rc<Cell<usize>>,
}

impl Future for Yields {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls.set(self.polls.get() + 1);
        if self.left == 0 {
            return Poll::Ready(());
        }
        self.left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn a_future_waking_itself_yields_to_the_others() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let polls = Rc::new(Cell::new(0));
    let a = {
        let (log, polls) = (log.clone(), polls.clone());
        hub::spawn(move || {
            log.borrow_mut().push("a start");
            hub::block_on(Yields {
                left: 2,
                polls: polls.clone(),
            });
            log.borrow_mut().push("a done");
        })
    };
    let b = {
        let log = log.clone();
        hub::spawn(move || {
            for i in 0..3 {
                log.borrow_mut().push(["b0", "b1", "b2"][i]);
                hub::yield_now();
            }
        })
    };
    hub::run();
    assert!(a.is_finished() && b.is_finished());
    assert_eq!(polls.get(), 3);
    // Round-robin: each self-wake lets `b` take one turn.
    assert_eq!(*log.borrow(), ["a start", "b0", "b1", "a done", "b2"]);
}

#[test]
fn a_panicking_future_panics_in_the_awaiter() {
    let h = hub::spawn(|| {
        hub::block_on(async {
            if true {
                panic!("boom in poll");
            }
        })
    });
    match h.join() {
        Err(JoinError::Panicked(p)) => {
            assert_eq!(p.downcast_ref::<&str>(), Some(&"boom in poll"));
        }
        other => panic!("unexpected {other:?}"),
    }
    // The awaiter's slot went back: awaiting still works.
    assert_eq!(hub::block_on(async { 1 }), 1);
}

#[test]
fn timeout_during_a_wait_drops_the_future_once() {
    let drops = Rc::new(Cell::new(0));
    let r = hub::with_timeout(Duration::from_millis(2), || {
        hub::block_on(Never(drops.clone()))
    });
    assert!(r.is_err());
    assert_eq!(drops.get(), 1);
    // And from a spawned greenlet.
    let d = drops.clone();
    let h = hub::spawn(move || {
        hub::with_timeout(Duration::from_millis(2), || hub::block_on(Never(d))).is_err()
    });
    assert!(h.join().unwrap());
    assert_eq!(drops.get(), 2);
}

#[test]
fn kill_during_a_wait_drops_the_future_once() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let h = hub::spawn(move || hub::block_on(Never(d)));
    hub::yield_now(); // it runs, polls once and blocks
    assert!(!h.is_finished());
    assert_eq!(drops.get(), 0);
    h.kill();
    assert_eq!(drops.get(), 1);
    assert!(matches!(h.join(), Err(JoinError::Killed)));
    assert_eq!(drops.get(), 1);
}

#[test]
fn stale_wakes_only_cost_a_spurious_resume() {
    // A waker kept from a finished wait, woken while the same greenlet
    // awaits something else: the new future is not polled for it.
    let kept: Rc<RefCell<Option<Waker>>> = Rc::default();
    let k = kept.clone();
    hub::block_on(std::future::poll_fn(move |cx| {
        *k.borrow_mut() = Some(cx.waker().clone());
        Poll::Ready(())
    }));
    let flag = Flag::default();
    let f = flag.clone();
    let old = kept.borrow_mut().take().unwrap();
    hub::spawn(move || {
        old.wake(); // stale: the awaiter's flag was cleared before its poll
        hub::yield_now();
        f.set();
    });
    hub::block_on(flag.wait());
    // One poll before, one after the real wake. The stale wake came while
    // the awaiter was polled... or not: it may add one poll at most.
    assert!(flag.0.polls.get() <= 3, "polls: {}", flag.0.polls.get());
}

#[test]
fn spawn_local_runs_a_non_send_future() {
    let cell = Rc::new(Cell::new(0));
    let flag = Flag::default();
    let task = {
        let (cell, flag) = (cell.clone(), flag.clone());
        hub::spawn_local(async move {
            flag.wait().await;
            cell.set(cell.get() + 1);
            cell.get() * 10
        })
    };
    hub::yield_now();
    assert_eq!(cell.get(), 0);
    flag.set();
    assert_eq!(task.join().unwrap(), 10);
}

#[test]
fn spawn_local_kill_drops_the_future() {
    let drops = Rc::new(Cell::new(0));
    let task = hub::spawn_local(Never(drops.clone()));
    hub::yield_now();
    task.kill();
    assert_eq!(drops.get(), 1);
    assert!(matches!(task.join(), Err(JoinError::Killed)));
}

/// A thread whose hub serves calls until its stop sender is dropped.
fn hub_thread() -> (hub::Remote, hub::Sender<()>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let (stop_tx, stop_rx) = hub::channel::<()>();
        tx.send((hub::remote(), stop_tx)).unwrap();
        let _ = stop_rx.recv();
    });
    let (remote, stop) = rx.recv().unwrap();
    (remote, stop, thread)
}

fn current_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn remote_call_returns_the_value_and_the_panic() {
    let (remote, stop, thread) = hub_thread();
    let rt = current_thread_rt();
    let v = rt.block_on(remote.call(|| {
        hub::yield_now();
        String::from("from a greenlet")
    }));
    assert_eq!(v.unwrap(), "from a greenlet");
    let e = rt.block_on(remote.call(|| -> u32 { panic!("call panicked") }));
    match e {
        Err(CallError::Panicked(p)) => {
            assert_eq!(p.downcast_ref::<&str>(), Some(&"call panicked"))
        }
        other => panic!("unexpected {other:?}"),
    }
    drop(stop);
    thread.join().unwrap();
    // The hub's thread is gone: the call says so.
    let closed = rt.block_on(remote.call(|| 1));
    assert!(matches!(closed, Err(CallError::Closed)));
}

/// A call whose greenlet the hub made but never ran before its thread
/// exited never ran: `Closed` (safe to post again elsewhere), not
/// `Killed`, as when the hub never read it.
#[test]
fn remote_call_whose_greenlet_the_exit_killed_unrun_is_closed() {
    let (tx, rx) = mpsc::channel();
    let (go, gone) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        tx.send(hub::remote()).unwrap();
        gone.recv().unwrap();
        hub::yield_now(); // reads the call, spawns its greenlet, and exits
    });
    let remote = rx.recv().unwrap();
    let call = remote.call(|| 5u8);
    go.send(()).unwrap();
    thread.join().unwrap();
    let r = current_thread_rt().block_on(call);
    assert!(matches!(r, Err(CallError::Closed)), "{r:?}");
}

/// A call whose greenlet is blocked when its hub's thread exits: the
/// exit leaves that greenlet suspended, never unwound (the crate's
/// **Threads** rule), and the call resolves `Killed` all the same (it
/// used to stay pending for ever: what finishes it lived on that stack).
#[test]
fn remote_call_whose_greenlet_the_exit_leaves_suspended_is_killed() {
    let (remote, stop, thread) = hub_thread();
    let (started, has_started) = mpsc::channel::<()>();
    let call = remote.call(move || {
        started.send(()).unwrap();
        hub::sleep(Duration::from_secs(3600)); // blocked when the thread exits
        7u8
    });
    has_started.recv().unwrap();
    drop(stop);
    thread.join().unwrap();
    // Awaited on a thread of its own, so a call that never resolves fails
    // the test instead of hanging it.
    let (result, resolved) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = result.send(current_thread_rt().block_on(call));
    });
    let r = resolved.recv_timeout(Duration::from_secs(60));
    assert!(matches!(r, Ok(Err(CallError::Killed))), "{r:?}");
}

#[test]
fn remote_call_that_gets_no_stack_says_so_not_that_the_hub_exited() {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let (stop_tx, stop_rx) = hub::channel::<()>();
        // The hub greenlet starts (it has its stack), then every new
        // stack is refused.
        hub::time::pause();
        hub::sleep(Duration::from_millis(1));
        hub::time::resume();
        greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(1 << 60));
        tx.send((hub::remote(), stop_tx)).unwrap();
        let _ = stop_rx.recv();
    });
    let (remote, stop) = rx.recv().unwrap();
    let r = current_thread_rt().block_on(remote.call(|| 1));
    assert!(matches!(r, Err(CallError::NoStack)), "{r:?}");
    assert!(!remote.is_closed());
    stop.send(()).unwrap();
    thread.join().unwrap();
}

#[test]
fn remote_call_future_is_send() {
    fn check<T: Send>(_: &T) {}
    let (remote, stop, thread) = hub_thread();
    let call = remote.call(|| 1);
    check(&call);
    assert_eq!(current_thread_rt().block_on(call).unwrap(), 1);
    drop(stop);
    thread.join().unwrap();
}

#[test]
fn dropping_a_call_kills_its_greenlet() {
    let (remote, stop, thread) = hub_thread();
    let (started_tx, started_rx) = mpsc::channel();
    let (dropped_tx, dropped_rx) = mpsc::channel();
    struct Guard(mpsc::Sender<&'static str>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.send("unwound").unwrap();
        }
    }
    let call = remote.call(move || {
        let _guard = Guard(dropped_tx);
        let (_keep, never) = hub::channel::<()>();
        started_tx.send(()).unwrap();
        let _ = never.recv(); // blocks until killed
        "finished"
    });
    let rt = current_thread_rt();
    let mut call = Box::pin(call);
    // Poll once so that it has a waker, then wait until it runs.
    rt.block_on(std::future::poll_fn(|cx| {
        assert!(call.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    }));
    started_rx.recv().unwrap();
    drop(call);
    assert_eq!(dropped_rx.recv().unwrap(), "unwound");
    drop(stop);
    thread.join().unwrap();
}

#[test]
fn many_calls_from_a_multi_thread_runtime() {
    let (remote, stop, thread) = hub_thread();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let total: u64 = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let (remote, done) = (remote.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let v = remote
                    .call(move || {
                        hub::yield_now();
                        i * 2
                    })
                    .await
                    .unwrap();
                done.fetch_add(1, Ordering::Relaxed);
                v
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    assert_eq!(done.load(Ordering::Relaxed), 200);
    assert_eq!(total, (0..200u64).map(|i| i * 2).sum());
    drop(stop);
    thread.join().unwrap();
}

#[test]
fn waits_allocate_nothing_in_steady_state() {
    let flag = Flag::default();
    let stop = Rc::new(Cell::new(false));
    let setter = {
        let (flag, stop) = (flag.clone(), stop.clone());
        hub::spawn(move || {
            while !stop.get() {
                flag.set();
                hub::yield_now();
            }
        })
    };
    let counted = Rc::new(Cell::new(usize::MAX));
    let c = counted.clone();
    let waiter = hub::spawn(move || {
        for _ in 0..1000 {
            hub::block_on(flag.wait());
            hub::block_on(std::future::ready(()));
        }
        let before = common::allocations();
        for _ in 0..1000 {
            hub::block_on(flag.wait());
            hub::block_on(std::future::ready(()));
        }
        c.set(common::allocations() - before);
        stop.set(true);
    });
    waiter.join().unwrap();
    setter.join().unwrap();
    assert_eq!(counted.get(), 0);
}

#[test]
fn a_mutex_shared_with_tokio_style_wakers() {
    // tokio::sync::Mutex contended by greenlets of one thread: each lock
    // waits for the previous holder, woken through block_on's waker.
    let m = Rc::new(tokio::sync::Mutex::new(Vec::new()));
    let mut hs = Vec::new();
    for i in 0..5 {
        let m = m.clone();
        hs.push(hub::spawn(move || {
            let mut g = hub::block_on(m.lock());
            g.push(i);
            hub::yield_now(); // hold it across a switch
            g.push(i);
        }));
    }
    for h in hs {
        h.join().unwrap();
    }
    let v = hub::block_on(m.lock()).clone();
    assert_eq!(v, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
}

#[test]
fn mpsc_from_other_threads() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sent = Arc::new(Mutex::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (tx, sent) = (tx.clone(), sent.clone());
            std::thread::spawn(move || {
                for i in 0..100 {
                    tx.send(t * 100 + i).unwrap();
                    *sent.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    drop(tx);
    let mut got = Vec::new();
    while let Some(v) = hub::block_on(rx.recv()) {
        got.push(v);
    }
    for t in threads {
        t.join().unwrap();
    }
    got.sort();
    assert_eq!(got, (0..400).collect::<Vec<_>>());
}

#[test]
fn block_on_stream_iterates_until_the_stream_ends() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let producer = hub::spawn_local(async move {
        for i in 0..10 {
            tx.send(i).await.unwrap(); // waits while the buffer is full
        }
    });
    let got: Vec<i32> = hub::block_on_stream(|cx| rx.poll_recv(cx)).collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    producer.join().unwrap();
}

/// A greenlet that counts three turns, yielding between them: it runs on
/// while another greenlet blocks.
fn three_ticks() -> (Rc<Cell<u32>>, hub::JoinHandle<()>) {
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let ticker = hub::spawn(move || {
        for _ in 0..3 {
            t.set(t.get() + 1);
            hub::yield_now();
        }
    });
    (ticks, ticker)
}

#[test]
fn block_on_in_a_destructor_during_a_kill_panics_instead_of_spinning() {
    // A `block_on` that would have to wait while its greenlet unwinds: the
    // I/O wait refuses at once, and `block_on` used to wait again, for
    // ever, starving the hub. It panics now, as every blocking call does
    // there; the destructor catches that panic (uncaught, it would abort).
    struct AwaitsOnDrop(Rc<RefCell<Option<String>>>);
    impl Drop for AwaitsOnDrop {
        fn drop(&mut self) {
            let r = std::panic::catch_unwind(|| {
                hub::block_on(std::future::pending::<()>());
            });
            let p = r.expect_err("block_on returned while its greenlet unwinds");
            let text = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            *self.0.borrow_mut() = text;
        }
    }
    let seen = Rc::new(RefCell::new(None));
    let guard = AwaitsOnDrop(seen.clone());
    let (ticks, ticker) = three_ticks();
    let victim = hub::spawn(move || {
        let _guard = guard;
        hub::sleep(Duration::from_secs(3600));
    });
    hub::yield_now(); // the victim sleeps
    victim.kill();
    assert!(matches!(victim.join(), Err(JoinError::Killed)));
    let text = seen.borrow().clone().expect("a panic with a message");
    assert!(
        text.contains("cannot block while the greenlet unwinds"),
        "{text}"
    );
    ticker.join().unwrap();
    assert_eq!(ticks.get(), 3);
}

#[test]
fn block_on_of_futures_that_are_always_ready_lets_others_run() {
    // Each `block_on` spends the cooperative budget: a greenlet awaiting
    // ready futures in a loop yields once a budget, as a queue's getter
    // does (it never gave up its turn).
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    let ticker = hub::spawn(move || loop {
        t.set(t.get() + 1);
        hub::yield_now();
    });
    hub::yield_now(); // the ticker starts
    let before = ticks.get();
    for i in 0..3 * hub::COOP_BUDGET {
        assert_eq!(hub::block_on(std::future::ready(i)), i);
    }
    assert!(ticks.get() >= before + 2, "{} ticks", ticks.get() - before);
    // And a `with_timeout` can stop such a loop.
    let r = hub::with_timeout(Duration::from_millis(1), || loop {
        hub::block_on(std::future::ready(()));
    });
    assert!(r.is_err());
    ticker.kill();
}

#[test]
fn block_on_of_ready_futures_inside_a_switch_hook_never_yields_for_its_budget() {
    // A switch hook may not switch: the budget's yield is skipped there,
    // as in an unwinding greenlet (every 128th `block_on` panicked).
    let ok = Rc::new(Cell::new(0u32));
    let o = ok.clone();
    greenlet::set_switch_hook(Some(Box::new(move |_| {
        for i in 0..300u32 {
            assert_eq!(hub::block_on(std::future::ready(i)), i);
        }
        o.set(o.get() + 1);
    })));
    let g = greenlet::Greenlet::new(|x: u32| x + 1);
    let r = g.switch::<u32, u32>(1);
    greenlet::set_switch_hook(None);
    assert_eq!(r.unwrap(), 2);
    assert!(ok.get() >= 2, "{} hook calls finished", ok.get());
}

/// Ready on its second poll, waking itself on the first (a yield, as
/// tokio's `yield_now` or `futures::pending!()`).
struct YieldsOnce(bool);

impl Future for YieldsOnce {
    type Output = u32;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if self.0 {
            return Poll::Ready(7);
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A destructor that runs during a kill finishes its async clean-up with
/// `block_on` of a future that only yields: the yield cannot switch while
/// the greenlet unwinds, so the future is polled again at once. (It
/// yielded, which panicked "cannot block while the greenlet unwinds" in a
/// destructor during an unwinding: the process aborted.)
#[test]
fn block_on_of_a_yielding_future_in_a_destructor_during_a_kill() {
    struct CleanUp(Rc<Cell<u32>>);
    impl Drop for CleanUp {
        fn drop(&mut self) {
            self.0.set(hub::block_on(YieldsOnce(false)));
        }
    }
    let done = Rc::new(Cell::new(0));
    let d = done.clone();
    let g = hub::spawn(move || {
        let _clean_up = CleanUp(d);
        hub::sleep(Duration::from_secs(3600));
    });
    hub::yield_now();
    g.kill();
    assert_eq!(done.get(), 7);
}

/// A call whose greenlet is killed before it starts (here by the end of
/// `run_main`, which kills every greenlet left) says `Killed`, not
/// `Closed`: the hub's thread lives on, and a caller told `Closed` would
/// give up a live hub.
#[test]
fn a_call_killed_before_it_starts_on_a_live_hub_says_killed() {
    let (remote_tx, remote_rx) = mpsc::channel();
    let (posted_tx, posted_rx) = mpsc::channel::<()>();
    let (stop_tx_tx, stop_tx_rx) = mpsc::channel::<hub::Sender<()>>();
    let server = std::thread::spawn(move || {
        remote_tx.send(hub::remote()).unwrap();
        hub::run_main(|| {
            posted_rx.recv().unwrap(); // blocks the thread: the hub takes no mail
            hub::yield_now(); // it takes the call's and spawns its greenlet
                              // run_main ends and kills that greenlet before it ran.
        });
        let (stop_tx, stop_rx) = hub::channel::<()>();
        stop_tx_tx.send(stop_tx).unwrap();
        let _ = stop_rx.recv();
    });
    let remote: hub::Remote = remote_rx.recv().unwrap();
    let rt = current_thread_rt();
    let first = remote.call(|| 1);
    posted_tx.send(()).unwrap();
    let first = rt.block_on(first);
    let stop = stop_tx_rx.recv().unwrap();
    let second = rt.block_on(remote.call(|| 2));
    stop.send(()).unwrap();
    server.join().unwrap();
    assert!(matches!(first, Err(CallError::Killed)), "{first:?}");
    assert!(matches!(second, Ok(2)), "{second:?}");
}

/// Only tokio's own "no runtime" panic is turned into the crate's advice;
/// a future's panic that merely mentions a reactor keeps its payload.
#[test]
fn a_future_panic_that_mentions_a_reactor_keeps_its_payload() {
    let message = "shard 3: no reactor running on the replica, giving up";
    let task = hub::spawn_local(async move { panic!("{message}") });
    match task.join() {
        Err(JoinError::Panicked(p)) => {
            assert_eq!(
                p.downcast_ref::<String>().map(String::as_str),
                Some(message)
            )
        }
        other => panic!("unexpected {other:?}"),
    }
}

// ----- what a burst of waits leaves behind -----

/// Waits once in `block_on` (a future that wakes itself and is ready when
/// polled again), holding a waker slot meanwhile.
fn one_pending_block_on() {
    let mut polled = false;
    hub::block_on(std::future::poll_fn(move |cx| {
        if std::mem::replace(&mut polled, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }));
}

/// Bytes left live on this thread by `n` greenlets all running `f` at
/// once (their stacks given back after).
fn left_by_a_burst(n: usize, f: fn()) -> isize {
    let before = common::live_bytes();
    let all: Vec<_> = (0..n).map(|_| hub::spawn(f)).collect();
    for g in all {
        g.join().unwrap();
    }
    greenlet::trim_stacks();
    common::live_bytes() - before
}

#[test]
fn a_burst_of_block_on_waits_leaves_a_bounded_pool_of_waker_slots() {
    // The hub's own tables grown to the burst's size first: its greenlets'
    // (a burst of yields) and its reactor's (as many channel receivers,
    // registrations as a wait's slot is).
    left_by_a_burst(6_000, hub::yield_now);
    drop((0..6_000).map(|_| hub::channel::<()>()).collect::<Vec<_>>());
    // Each slot is a few hundred bytes: the pool keeps about a thousand,
    // and the surplus of the burst goes as its waits end.
    let kept = left_by_a_burst(6_000, one_pending_block_on);
    assert!(kept > 0, "slots are kept for reuse");
    assert!(
        kept < 1_000 * 500,
        "a burst of 6,000 waits kept {kept} bytes"
    );
    // Kept for the next burst: one as large keeps nothing more.
    assert!(left_by_a_burst(6_000, one_pending_block_on) <= 0);
}

#[test]
fn iterators_of_values_that_are_not_debug_are_debug() {
    struct Opaque;
    let (_tx, rx) = hub::channel::<Opaque>();
    assert!(format!("{:?}", rx.iter()).starts_with("Iter { receiver: Receiver"));
    let stream = hub::block_on_stream(|_: &mut Context<'_>| Poll::<Option<Opaque>>::Ready(None));
    assert_eq!(format!("{stream:?}"), "BlockOnStream { .. }");
}

/// Counts its drops.
struct DropCount(Rc<Cell<u32>>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// Ready at once with the output it holds; its own destructor then does
/// `on_drop` (panics, or blocks).
struct ReadyThen(Option<DropCount>, fn());

impl Future for ReadyThen {
    type Output = DropCount;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<DropCount> {
        Poll::Ready(self.0.take().expect("polled once"))
    }
}

impl Drop for ReadyThen {
    fn drop(&mut self) {
        (self.1)();
    }
}

fn panics() {
    panic!("the future's destructor panics");
}

fn sleeps() {
    hub::sleep(Duration::from_secs(3600));
}

/// A future that completed and then unwinds from its destructor (a panic
/// there, or a kill while it blocks): the output, which nobody gets, is
/// dropped on the way. It used to be moved into `block_on`'s return slot
/// before the future was dropped, and a return slot is not dropped when
/// a later destructor unwinds (rust-lang/rust#47949): it leaked.
#[test]
fn the_output_is_dropped_when_the_futures_destructor_unwinds() {
    let n = Rc::new(Cell::new(0));
    let out = DropCount(n.clone());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        hub::block_on(ReadyThen(Some(out), panics))
    }));
    assert!(r.is_err(), "the destructor's panic unwinds out of block_on");
    assert_eq!(n.get(), 1, "block_on, destructor panicking");

    let n = Rc::new(Cell::new(0));
    let h = hub::spawn_local(ReadyThen(Some(DropCount(n.clone())), panics));
    assert!(matches!(h.join(), Err(JoinError::Panicked(_))));
    assert_eq!(n.get(), 1, "spawn_local, destructor panicking");

    let n = Rc::new(Cell::new(0));
    let h = hub::spawn_local(ReadyThen(Some(DropCount(n.clone())), sleeps));
    hub::yield_now(); // polled (ready), it sleeps in the destructor
    h.kill();
    assert!(matches!(h.join(), Err(JoinError::Killed)));
    assert_eq!(n.get(), 1, "spawn_local, killed in the destructor");
}
