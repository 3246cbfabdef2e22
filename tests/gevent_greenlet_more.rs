//! More of gevent's `src/gevent/tests/test__greenlet.py` (gevent 26.x):
//! the scenarios `gevent_greenlet.rs` and `gevent_greenletset.rs` leave
//! out, each test named after the one it ports (prefixed with its class
//! where names repeat, e.g. `kill_while_running_test_block`).
//!
//! How gevent maps here:
//! - `gevent.spawn(f)` / `Greenlet(f).start()` is `hub::spawn(f)` (which
//!   always schedules: there is no greenlet that exists but is not
//!   scheduled, so `TestKill` and `TestKillAfterStart` are one scenario
//!   here); `start_later` / `spawn_later` is `hub::spawn_after`;
//!   `spawn_raw` is a spawn whose handle is dropped (detached).
//! - `g.kill()` (`block=True`) is `JoinHandle::kill`, synchronous;
//!   `block=False` (the kill scheduled on the loop) is a kill made by
//!   another greenlet, after which the caller lets the hub run;
//!   `gevent.killall` is `Group::kill_all`.
//! - `g.kill(exception=E)` is `Greenlet::throw(E)` (thrown from a helper
//!   greenlet: a throw into a blocked greenlet comes back to the thrower
//!   only when something switches to it, as the hub docs say), then a
//!   wait for the end. The error becomes `JoinError::Panicked(E)`, where
//!   gevent's `g.exception` is `E`; a plain kill is `JoinError::Killed`,
//!   where gevent's `g.value` is a `GreenletExit`.
//! - `g.link(cb)` is `JoinHandle::on_finish(cb)`; `g.ready()` /
//!   `g.dead` are `JoinHandle::is_finished` / `Greenlet::is_dead`;
//!   `g.value` / `g.exception` / `g.successful()` are what `join`
//!   returns; `g.get(timeout)` / `g.join(timeout)` are `with_timeout`
//!   around `JoinHandle::wait` / `JoinHandle::wait_timeout`.
//! - Hub time is paused (`time::pause`) wherever a test sleeps or times
//!   out: DELAY and the ticks are virtual and exact.
//!
//! Not ported (no counterpart here): `TestBasic.test_spawn_non_callable`
//! (a type error at compile time), `test_recursion_error` (a greenlet that
//! overflows its stack aborts the process with a message, as a thread
//! does: Rust has no recoverable `RecursionError`), `test_tree_locals`,
//! `test_add_spawn_callback`, `test_getframe_value_error`,
//! `test_minimal_ident_parent_not_hub` (spawn-tree locals, spawn
//! callbacks, frames, reparenting a spawned greenlet away from the hub:
//! Python-only machinery), `TestStr` beyond the name (the repr of the
//! function and its arguments), `TestContextManager` (no `with`; dropping a
//! `JoinHandle` detaches), `TestStart` (a spawned greenlet cannot be
//! started again: `spawn` takes its function once), `TestRef.test_init`
//! (reference cycles), `TestCExt` / `TestPure` (which implementation is
//! loaded), `TestUnlink`, `test_multiple_listeners_error_unlink_*`,
//! `link_value` / `link_exception` and `rawlink`, and the
//! `set_links_timeout` halves of `TestReturn_link` / `TestRaise_link`
//! (`on_finish` has no unlink and no value/exception filter: a callback
//! runs however the greenlet ended), `test_link_to_channel` (no rendezvous
//! `Channel`: `Queue::bounded(0)` is refused), the `killall(exception=...)`
//! variants of `TestKill` (`Group::kill_all` only kills), the killall
//! variants of `TestKillAfterStartLater` (a `Group` has no `spawn_after`),
//! and `raise_error=True` in `test_wait_error` / `test_joinall_exception_order`
//! (results are returned, not raised; the order of the ends is checked
//! through `iwait` instead).

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, time, with_timeout, AsyncResult, Group, JoinError, JoinHandle, Queue};
use greenlet::Greenlet;

/// gevent's `timing.SMALL_TICK` (and `DELAY` here).
const SMALL_TICK: Duration = Duration::from_millis(10);
/// gevent's `timing.LARGE_TICK`.
const LARGE_TICK: Duration = Duration::from_millis(200);

/// gevent's `ExpectedError`, with the attribute `test_error_exit` sets.
#[derive(Debug)]
struct ExpectedError {
    what: &'static str,
    myattr: u32,
}

fn expected(what: &'static str) -> ExpectedError {
    ExpectedError { what, myattr: 0 }
}

/// The error's payload, if a `JoinError::Panicked` carries an `E`.
fn panicked_with<E: 'static, R>(r: Result<R, JoinError>) -> Box<E> {
    match r {
        Err(JoinError::Panicked(p)) => match p.downcast::<E>() {
            Ok(e) => e,
            Err(_) => panic!("panicked with another payload"),
        },
        Err(e) => panic!("not panicked: {e:?}"),
        Ok(_) => panic!("returned, not panicked"),
    }
}

// ---------------------------------------------------------------------------
// TestKill and its subclasses. `_do_test(block, killall, exc)`: the
// function (which would record that it ran) never runs (to its end), the
// link runs exactly once, the greenlet is dead and its outcome is the kill
// (or the thrown error); a second kill does nothing; and spinning the loop
// afterwards changes none of it.
// ---------------------------------------------------------------------------

/// Counts its drops.
struct DropCount(Rc<Cell<u32>>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Start {
    /// `TestKill` / `TestKillAfterStart`: spawned, not yet run.
    Scheduled,
    /// `TestKillAfterStartLater`: `start_later(LARGE_TICK)`.
    Later,
    /// `TestKillWhileRunning`: started, blocked in `sleep(10)`.
    Running,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum How {
    /// `kill(block=True)`: `JoinHandle::kill` from the test.
    Block,
    /// `kill(block=False)`: the kill made by another greenlet.
    NonBlock,
    /// `killall([g], block=True)`: `Group::kill_all` from the test.
    BlockKillall,
    /// `killall([g], block=False)`: `Group::kill_all` from another greenlet.
    NonBlockKillall,
    /// `kill(exception=Exception())`, waited for.
    Throw,
    /// `kill(exception=Exception(), block=False)`: thrown, not waited for.
    ThrowNonBlock,
    /// `kill(exception=42)`: a payload that is no error type at all.
    ThrowNonExc,
    /// `kill(exception=42, block=False)`.
    ThrowNonExcNonBlock,
}

/// gevent's `Exception()` instance in the `non_type_exception` tests.
#[derive(Debug)]
struct AnException;

/// The victim's greenlet, kept apart from its handle so that a helper can
/// reach it.
struct Victim {
    /// `None` for `start_later` (the scheduled one's handle is used).
    handle: Option<JoinHandle<()>>,
    /// `Some` for `start_later`: whether `f` started.
    scheduled: Option<hub::Scheduled<()>>,
    group: Group,
}

impl Victim {
    fn handle(&self) -> &JoinHandle<()> {
        match (&self.scheduled, &self.handle) {
            (Some(s), _) => s.handle(),
            (None, Some(h)) => h,
            (None, None) => unreachable!(),
        }
    }
}

fn do_kill_test(start: Start, how: How) {
    time::pause();
    let result: Rc<RefCell<Vec<u32>>> = Rc::default();
    let links = Rc::new(Cell::new(0u32));
    let group = Group::new();

    let r = result.clone();
    // The function's captures (its `finally`): dropped exactly once, whether
    // the function is dropped unrun or unwound.
    let drops = Rc::new(Cell::new(0u32));
    let guard = DropCount(drops.clone());
    let body = move || {
        let _guard = guard;
        if start == Start::Running {
            hub::sleep(Duration::from_secs(10));
        }
        r.borrow_mut().push(1);
    };
    let killall = matches!(how, How::BlockKillall | How::NonBlockKillall);
    let victim = match start {
        Start::Later => {
            assert!(!killall, "no Group::spawn_after");
            let s = hub::spawn_after(LARGE_TICK, body);
            Victim {
                handle: None,
                scheduled: Some(s),
                group: group.clone(),
            }
        }
        _ if killall => Victim {
            handle: Some(group.spawn(body)),
            scheduled: None,
            group: group.clone(),
        },
        _ => Victim {
            handle: Some(hub::spawn(body)),
            scheduled: None,
            group: group.clone(),
        },
    };
    let l = links.clone();
    victim.handle().on_finish(move || l.set(l.get() + 1));
    if start == Start::Running {
        hub::yield_now(); // it starts and blocks in its sleep
        assert!(victim.handle().greenlet().is_active());
    }

    // gevent's kill of a greenlet that has not started cancels its start
    // at once, `block=False` or not; here too, the kill or the throw of a
    // spawned greenlet that has not run is done by the caller at once
    // (the throw returns to the thrower then, as the hub docs say). A
    // helper greenlet spawned now would only run after the victim.
    let unstarted = start == Start::Scheduled;
    let killer = |victim: &Victim| match how {
        How::Block => victim.handle().kill(),
        How::BlockKillall => victim.group.kill_all(),
        How::NonBlock if unstarted => victim.handle().kill(),
        How::NonBlockKillall if unstarted => victim.group.kill_all(),
        How::Throw | How::ThrowNonBlock if unstarted => {
            assert!(victim
                .handle()
                .greenlet()
                .throw::<_, ()>(AnException)
                .is_ok());
        }
        How::ThrowNonExc | How::ThrowNonExcNonBlock if unstarted => {
            assert!(victim.handle().greenlet().throw::<_, ()>(42i32).is_ok());
        }
        How::NonBlock => {
            let g = victim.handle().greenlet().clone();
            drop(hub::spawn(move || g.kill()));
        }
        How::NonBlockKillall => {
            let group = victim.group.clone();
            drop(hub::spawn(move || group.kill_all()));
        }
        How::Throw | How::ThrowNonBlock => {
            let g = victim.handle().greenlet().clone();
            drop(hub::spawn(move || {
                let _ = g.throw::<_, ()>(AnException);
            }));
        }
        How::ThrowNonExc | How::ThrowNonExcNonBlock => {
            let g = victim.handle().greenlet().clone();
            drop(hub::spawn(move || {
                let _ = g.throw::<_, ()>(42i32);
            }));
        }
    };
    killer(&victim);
    match how {
        How::Block | How::BlockKillall => {}
        How::Throw | How::ThrowNonExc => victim.handle().wait(),
        // Spin the loop for the scheduled kill to take effect.
        _ => hub::sleep(Duration::from_millis(1)),
    }

    let thrown = !matches!(
        how,
        How::Block | How::NonBlock | How::BlockKillall | How::NonBlockKillall
    );
    let check = |victim: &Victim| {
        let h = victim.handle();
        assert!(h.is_finished(), "{start:?} {how:?}: not finished");
        assert!(h.greenlet().is_dead(), "{start:?} {how:?}: not dead");
        if let Some(s) = &victim.scheduled {
            assert!(!s.has_started(), "{start:?} {how:?}: f started");
            assert!(!s.cancel(), "{start:?} {how:?}: nothing left to cancel");
        }
        assert!(victim.group.is_empty());
        assert!(
            result.borrow().is_empty(),
            "{start:?} {how:?}: the function ran"
        );
        assert_eq!(drops.get(), 1, "{start:?} {how:?}: the function's captures");
    };
    check(&victim);
    hub::sleep(SMALL_TICK); // assertKilled: the loop must not run it now
    check(&victim);
    // A second kill must not hurt (a plain kill: a second throw into a dead
    // spawned greenlet would go to the hub, which reports it).
    victim.handle().kill();
    if killall {
        victim.group.kill_all();
    }
    check(&victim);
    hub::sleep(SMALL_TICK);
    check(&victim);
    assert_eq!(links.get(), 1, "{start:?} {how:?}: links");

    let Victim {
        handle, scheduled, ..
    } = victim;
    let outcome = match (scheduled, handle) {
        (Some(s), _) => s.join(),
        (None, Some(h)) => h.join(),
        (None, None) => unreachable!(),
    };
    match how {
        How::Throw | How::ThrowNonBlock => {
            panicked_with::<AnException, _>(outcome);
        }
        How::ThrowNonExc | How::ThrowNonExcNonBlock => {
            assert_eq!(*panicked_with::<i32, _>(outcome), 42);
        }
        _ => {
            assert!(!thrown);
            assert!(
                matches!(outcome, Err(JoinError::Killed)),
                "{start:?} {how:?}: {outcome:?}"
            );
        }
    }
}

/// TestKill.test_block (and TestKillAfterStart.test_block).
#[test]
fn kill_after_start_test_block() {
    do_kill_test(Start::Scheduled, How::Block);
}

#[test]
fn kill_after_start_test_non_block() {
    do_kill_test(Start::Scheduled, How::NonBlock);
}

#[test]
fn kill_after_start_test_block_killall() {
    do_kill_test(Start::Scheduled, How::BlockKillall);
}

#[test]
fn kill_after_start_test_non_block_killal() {
    do_kill_test(Start::Scheduled, How::NonBlockKillall);
}

#[test]
fn kill_after_start_test_non_type_exception() {
    do_kill_test(Start::Scheduled, How::Throw);
}

#[test]
fn kill_after_start_test_non_type_exception_non_block() {
    do_kill_test(Start::Scheduled, How::ThrowNonBlock);
}

#[test]
fn kill_after_start_test_non_exc_exception() {
    do_kill_test(Start::Scheduled, How::ThrowNonExc);
}

#[test]
fn kill_after_start_test_non_exc_exception_non_block() {
    do_kill_test(Start::Scheduled, How::ThrowNonExcNonBlock);
}

#[test]
fn kill_after_start_later_test_block() {
    do_kill_test(Start::Later, How::Block);
}

#[test]
fn kill_after_start_later_test_non_block() {
    do_kill_test(Start::Later, How::NonBlock);
}

#[test]
fn kill_after_start_later_test_non_type_exception() {
    do_kill_test(Start::Later, How::Throw);
}

#[test]
fn kill_after_start_later_test_non_type_exception_non_block() {
    do_kill_test(Start::Later, How::ThrowNonBlock);
}

#[test]
fn kill_after_start_later_test_non_exc_exception() {
    do_kill_test(Start::Later, How::ThrowNonExc);
}

#[test]
fn kill_after_start_later_test_non_exc_exception_non_block() {
    do_kill_test(Start::Later, How::ThrowNonExcNonBlock);
}

#[test]
fn kill_while_running_test_block() {
    do_kill_test(Start::Running, How::Block);
}

#[test]
fn kill_while_running_test_non_block() {
    do_kill_test(Start::Running, How::NonBlock);
}

#[test]
fn kill_while_running_test_block_killall() {
    do_kill_test(Start::Running, How::BlockKillall);
}

#[test]
fn kill_while_running_test_non_block_killal() {
    do_kill_test(Start::Running, How::NonBlockKillall);
}

#[test]
fn kill_while_running_test_non_type_exception() {
    do_kill_test(Start::Running, How::Throw);
}

#[test]
fn kill_while_running_test_non_type_exception_non_block() {
    do_kill_test(Start::Running, How::ThrowNonBlock);
}

#[test]
fn kill_while_running_test_non_exc_exception() {
    do_kill_test(Start::Running, How::ThrowNonExc);
}

#[test]
fn kill_while_running_test_non_exc_exception_non_block() {
    do_kill_test(Start::Running, How::ThrowNonExcNonBlock);
}

// ---------------------------------------------------------------------------
// TestBasic
// ---------------------------------------------------------------------------

/// TestBasic.test_simple_exit: the states a greenlet goes through, from
/// scheduled to running to finished, and its link running once, at the end.
#[test]
fn test_simple_exit() {
    time::pause();
    let links = Rc::new(Cell::new(0u32));
    let func = |delay: Duration, return_value: u32| {
        move || {
            hub::sleep(delay);
            return_value
        }
    };
    let g = hub::spawn(func(SMALL_TICK, 5));
    let l = links.clone();
    g.on_finish(move || l.set(l.get() + 1));
    // Spawned: scheduled, not started (gevent: `started`, not `dead`, not `ready`).
    assert!(!g.greenlet().is_started());
    assert!(!g.greenlet().is_dead());
    assert!(!g.is_finished());

    hub::sleep(Duration::from_millis(1));
    assert!(g.greenlet().is_started());
    assert!(g.greenlet().is_active());
    assert!(!g.greenlet().is_dead());
    assert!(!g.is_finished());
    assert_eq!(links.get(), 0);

    hub::sleep(SMALL_TICK * 2);
    assert!(g.greenlet().is_dead());
    assert!(!g.greenlet().is_active());
    assert!(g.is_finished());
    assert_eq!(links.get(), 1);
    assert_eq!(g.join().unwrap(), 5);
    assert_eq!(links.get(), 1);
}

/// TestBasic.test_error_exit: an error ends it; the outcome carries the
/// error itself (with its attribute), and its link runs once.
#[test]
fn test_error_exit() {
    time::pause();
    let links = Rc::new(Cell::new(0u32));
    let func = |delay: Duration, return_value: u32| {
        move || -> u32 {
            hub::sleep(delay);
            let mut error = expected("test_error_exit");
            error.myattr = return_value;
            panic::panic_any(error)
        }
    };
    let g = hub::spawn(func(Duration::from_millis(1), 5));
    let l = links.clone();
    g.on_finish(move || l.set(l.get() + 1));
    hub::yield_now();
    hub::sleep(LARGE_TICK);
    assert!(g.greenlet().is_dead());
    assert!(g.is_finished());
    assert_eq!(links.get(), 1);
    let e = panicked_with::<ExpectedError, _>(g.join());
    assert_eq!((e.what, e.myattr), ("test_error_exit", 5));
}

/// TestBasic.test_exc_info_no_error: a greenlet that returned has no error.
#[test]
fn test_exc_info_no_error() {
    time::pause();
    let g = hub::spawn(|| hub::sleep(Duration::ZERO));
    g.wait();
    assert!(matches!(g.join(), Ok(())));
}

/// TestBasic.test_spawn_raw_kwargs: `spawn_raw(f, 1, name='value')` is a
/// spawn of a closure holding its arguments, its handle dropped: it runs
/// all the same.
#[test]
fn test_spawn_raw_kwargs() {
    time::pause();
    let value: Rc<RefCell<Vec<String>>> = Rc::default();
    let v = value.clone();
    let (arg, name) = (1, "value");
    let g = hub::spawn(move || {
        v.borrow_mut().push(format!("{arg}"));
        v.borrow_mut().push(format!("name={name}"));
    });
    let raw = g.greenlet().clone();
    drop(g);
    hub::sleep(SMALL_TICK);
    assert!(raw.is_dead());
    assert_eq!(*value.borrow(), ["1", "name=value"]);
}

/// TestStuff.test_minimal_id: a spawned greenlet and its parent (the hub)
/// have ids, distinct; the parent is the hub, not main.
#[test]
fn test_minimal_id() {
    let g = hub::spawn(|| 1);
    let parent = g
        .greenlet()
        .parent()
        .expect("a spawned greenlet has a parent");
    assert!(!parent.is_main());
    assert_ne!(g.greenlet().id(), parent.id());
    assert_ne!(Greenlet::main().id(), parent.id());
    assert_eq!(g.join().unwrap(), 1);
}

// ---------------------------------------------------------------------------
// TestStuff: listeners (links) that fail
// ---------------------------------------------------------------------------

#[derive(Debug)]
#[allow(dead_code)] // only carried by the panics
struct ListenerError(&'static str);

/// TestStuff.test_multiple_listeners_error: a link that fails must not
/// keep the other links from running, whether the greenlet returned or
/// raised.
#[test]
fn test_multiple_listeners_error() {
    time::pause();
    let check = |p: &JoinHandle<u32>| {
        let results: Rc<RefCell<Vec<u32>>> = Rc::default();
        let r = results.clone();
        p.on_finish(move || {
            r.borrow_mut().push(10);
            panic::panic_any(ListenerError("listener1"));
        });
        let r = results.clone();
        p.on_finish(move || {
            r.borrow_mut().push(20);
            panic::panic_any(ListenerError("listener2"));
        });
        p.on_finish(|| panic::panic_any(ListenerError("listener3")));
        hub::sleep(SMALL_TICK * 10);
        assert_eq!(*results.borrow(), [10, 20], "every listener ran");
    };
    let p = hub::spawn(|| 5);
    check(&p);
    assert_eq!(p.join().unwrap(), 5);

    let p = hub::spawn(|| -> u32 { panic::panic_any(expected("test_multiple_listeners_error")) });
    check(&p);
    panicked_with::<ExpectedError, _>(p.join());
}

/// TestStuff.test_multiple_listeners_error with the links added after the
/// greenlet ended (as `TestReturn_link` does on its later rounds): each
/// then runs on its own, and a failing one does not stop the others.
#[test]
fn test_multiple_listeners_error_after_end() {
    time::pause();
    let p = hub::spawn(|| 5);
    p.wait();
    let results: Rc<RefCell<Vec<u32>>> = Rc::default();
    let r = results.clone();
    p.on_finish(move || {
        r.borrow_mut().push(10);
        panic::panic_any(ListenerError("listener1"));
    });
    let r = results.clone();
    p.on_finish(move || {
        r.borrow_mut().push(20);
        panic::panic_any(ListenerError("listener2"));
    });
    p.on_finish(|| panic::panic_any(ListenerError("listener3")));
    hub::sleep(SMALL_TICK * 10);
    assert_eq!(*results.borrow(), [10, 20]);
    assert_eq!(p.join().unwrap(), 5);
}

// ---------------------------------------------------------------------------
// TestReturn_link / TestRaise_link (`link` only: `link_value` and
// `link_exception` have no counterpart). `set_links`: an AsyncResult set
// by a link, a Queue(1) put by a link, a flag a link clears, and ten more
// of each kind; all of them fire, once, for each round of links, also
// when the links are added after the end.
// ---------------------------------------------------------------------------

/// What `set_links` leaves to check: the first result, the first queue,
/// the flag, and how many of the extra links fired.
struct Links<T> {
    event: AsyncResult<T>,
    queue: Queue<T>,
    flag: Rc<Cell<bool>>,
    extra: Rc<Cell<u32>>,
}

/// `outcome` reads the greenlet's outcome the way gevent's link gets it
/// (here a link gets no argument: it reads a shared cell).
fn set_links<R: 'static, T: Clone + std::fmt::Debug + 'static>(
    p: &JoinHandle<R>,
    outcome: impl Fn() -> T + Clone + 'static,
) -> Links<T> {
    let event = AsyncResult::new();
    let (e, o) = (event.clone(), outcome.clone());
    p.on_finish(move || e.set(o()).unwrap());
    let queue = Queue::bounded(1);
    let (q, o) = (queue.clone(), outcome.clone());
    p.on_finish(move || q.put(o()));
    let flag = Rc::new(Cell::new(true));
    let f = flag.clone();
    p.on_finish(move || assert!(f.replace(false), "the flag link ran twice"));
    let extra = Rc::new(Cell::new(0));
    for _ in 0..10 {
        let (e, o, x) = (AsyncResult::<T>::new(), outcome.clone(), extra.clone());
        p.on_finish(move || {
            e.set(o()).unwrap();
            x.set(x.get() + 1);
        });
        let (q, o, x) = (Queue::bounded(1), outcome.clone(), extra.clone());
        p.on_finish(move || {
            q.put(o()); // never blocks: the queue holds one
            x.set(x.get() + 1);
        });
    }
    Links {
        event,
        queue,
        flag,
        extra,
    }
}

fn check_links<T: Clone + PartialEq + std::fmt::Debug + 'static>(links: Links<T>, expected: T) {
    assert_eq!(links.event.get(), Ok(expected));
    assert!(links.queue.try_get().is_some());
    hub::sleep(SMALL_TICK);
    assert!(!links.flag.get());
    assert_eq!(links.extra.get(), 20);
}

/// TestReturn_link.test_return.
#[test]
fn return_link_test_return() {
    time::pause();
    // gevent's links get the greenlet and read `p.value`; here the value
    // goes to a cell the links read.
    let value = Rc::new(Cell::new(None));
    let v = value.clone();
    let p = hub::spawn(move || {
        v.set(Some(25));
        25
    });
    for _ in 0..3 {
        let v = value.clone();
        let links = set_links(&p, move || v.get());
        hub::sleep(SMALL_TICK * 2);
        assert!(p.is_finished());
        check_links(links, Some(25));
    }
    p.kill(); // no effect on a finished greenlet
    assert_eq!(p.join().unwrap(), 25);
}

/// TestReturn_link.test_kill: links fire when the greenlet is killed (the
/// first round), and again for links added after its end.
#[test]
fn return_link_test_kill() {
    time::pause();
    let p = hub::spawn(|| hub::sleep(SMALL_TICK));
    for _ in 0..3 {
        let links = set_links(&p, || "finished");
        p.kill();
        hub::sleep(SMALL_TICK);
        assert!(p.is_finished());
        check_links(links, "finished");
    }
    assert!(matches!(p.join(), Err(JoinError::Killed)));
}

/// TestRaise_link.test_raise (and TestRaise_link_exception's, whose
/// `link_exception` fires here as `on_finish` does).
#[test]
fn raise_link_test_raise() {
    time::pause();
    let p = hub::spawn(|| -> u32 { panic::panic_any(expected("test_raise")) });
    for _ in 0..3 {
        let links = set_links(&p, || "raised");
        hub::sleep(SMALL_TICK);
        assert!(p.is_finished());
        check_links(links, "raised");
    }
    assert_eq!(
        panicked_with::<ExpectedError, _>(p.join()).what,
        "test_raise"
    );
}

// ---------------------------------------------------------------------------
// TestJoin / TestGet / TestJoinAll0 / TestJoinAll: on the paused clock,
// the wait returns (or times out) after exactly its timeout, and an outer
// timeout that expires first is the one reported.
// ---------------------------------------------------------------------------

/// `g = spawn(sleep, 10)`, the waiting done by `wait`, then `g.kill()`.
fn with_sleeper<T>(wait: impl FnOnce(&JoinHandle<()>) -> T) -> T {
    let g = hub::spawn(|| hub::sleep(Duration::from_secs(10)));
    let r = wait(&g);
    g.kill();
    assert!(matches!(g.join(), Err(JoinError::Killed)));
    r
}

/// TestJoin.test_returns_none_after_timeout: `join(timeout)` returns
/// after the timeout, the greenlet not finished.
#[test]
fn join_test_returns_none_after_timeout() {
    time::pause();
    let start = time::now();
    assert!(!with_sleeper(|g| g.wait_timeout(LARGE_TICK)));
    assert_eq!(time::now() - start, LARGE_TICK);
}

/// TestJoin.test_outer_timeout_is_not_lost.
#[test]
fn join_test_outer_timeout_is_not_lost() {
    time::pause();
    let start = time::now();
    let r = with_sleeper(|g| {
        with_timeout(Duration::from_millis(1), || {
            g.wait_timeout(Duration::from_secs(1))
        })
    });
    assert!(r.is_err(), "the outer timeout is reported: {r:?}");
    assert_eq!(time::now() - start, Duration::from_millis(1));
}

/// TestGet.test_raises_timeout_number: `get(timeout)` raises the
/// timeout: `with_timeout` around the wait.
#[test]
fn get_test_raises_timeout_number() {
    time::pause();
    let start = time::now();
    let r = with_sleeper(|g| with_timeout(SMALL_TICK, || g.wait()));
    assert!(r.is_err());
    assert_eq!(time::now() - start, SMALL_TICK);
}

/// TestGet.test_outer_timeout_is_not_lost: an inner timeout of 1 s under
/// an outer one of 1 ms: the outer one is reported, not the inner.
#[test]
fn get_test_outer_timeout_is_not_lost() {
    time::pause();
    let start = time::now();
    let r = with_sleeper(|g| {
        with_timeout(Duration::from_millis(1), || {
            let inner = with_timeout(Duration::from_secs(1), || g.wait());
            unreachable!("the outer timeout unwinds the inner one: {inner:?}")
        })
    });
    assert!(r.is_err());
    assert_eq!(time::now() - start, Duration::from_millis(1));
}

/// TestJoinAll0.test_returns_none_after_timeout: joinall over a greenlet
/// that was never started (here: one scheduled for much later) returns
/// after its timeout with nothing done.
#[test]
fn joinall0_test_returns_none_after_timeout() {
    time::pause();
    let g = hub::spawn_after(Duration::from_secs(3600), || ());
    let start = time::now();
    assert!(hub::wait(&[g.handle()], None, Some(LARGE_TICK)).is_empty());
    assert_eq!(time::now() - start, LARGE_TICK);
    assert!(!g.has_started());
    assert!(g.cancel());
}

/// TestJoinAll0.test_outer_timeout_is_not_lost.
#[test]
fn joinall0_test_outer_timeout_is_not_lost() {
    time::pause();
    let g = hub::spawn_after(Duration::from_secs(3600), || ());
    let start = time::now();
    let r = with_timeout(Duration::from_millis(1), || {
        hub::wait(&[g.handle()], None, Some(Duration::from_secs(1)))
    });
    assert!(r.is_err(), "{r:?}");
    assert_eq!(time::now() - start, Duration::from_millis(1));
    assert!(g.cancel());
}

/// TestJoinAll.test_returns_none_after_timeout (exact time; the existing
/// port checks the result only).
#[test]
fn joinall_test_returns_none_after_timeout() {
    time::pause();
    let start = time::now();
    let done = with_sleeper(|g| hub::wait(&[g], None, Some(LARGE_TICK)));
    assert!(done.is_empty());
    assert_eq!(time::now() - start, LARGE_TICK);
}

/// TestJoinAll.test_outer_timeout_is_not_lost.
#[test]
fn joinall_test_outer_timeout_is_not_lost() {
    time::pause();
    let start = time::now();
    let r = with_sleeper(|g| {
        with_timeout(Duration::from_millis(1), || {
            hub::wait(&[g], None, Some(Duration::from_secs(1)))
        })
    });
    assert!(r.is_err(), "{r:?}");
    assert_eq!(time::now() - start, Duration::from_millis(1));
}

// ---------------------------------------------------------------------------
// The rest of TestStuff, TestKillallRawGreenlet, TestRef, TestStr,
// TestDeadPropertyDuringSwitch
// ---------------------------------------------------------------------------

/// TestStuff.test_joinall_exception_order: of several greenlets that
/// fail, the one that failed first is the first reported (gevent's
/// `joinall(raise_error=True)` raises it; here `iwait` gives the ends in
/// order, and the first end's outcome is that error).
#[test]
fn test_joinall_exception_order() {
    time::pause();
    let a = hub::spawn(|| -> u32 {
        hub::sleep(Duration::from_millis(100));
        panic::panic_any(expected("first"))
    });
    let b = hub::spawn(|| -> u32 { panic::panic_any(expected("second")) });
    let handles = [a, b];
    let order: Vec<usize> = hub::iwait(&handles, None).collect();
    assert_eq!(order, [1, 0]);
    let [a, b] = handles;
    assert_eq!(panicked_with::<ExpectedError, _>(b.join()).what, "second");
    assert_eq!(panicked_with::<ExpectedError, _>(a.join()).what, "first");
}

/// TestStuff.test_wait_error, its second half: joining only the greenlet
/// that failed reports its error, and the other one still finishes.
#[test]
fn test_wait_error_join_failed_only() {
    time::pause();
    let x = hub::spawn(|| {
        hub::sleep(SMALL_TICK);
        1
    });
    let y = hub::spawn(|| -> u32 { panic::panic_any(expected("test_wait_error")) });
    assert_eq!(hub::wait(&[&y], None, None), [0]);
    let results = hub::join_all([y]);
    assert!(matches!(results[0], Err(JoinError::Panicked(_))));
    assert!(!x.is_finished());
    assert_eq!(x.join().unwrap(), 1);
}

/// TestKillallRawGreenlet.test_killall_raw: killall over a raw greenlet
/// (a spawned greenlet's `Greenlet`, its handle dropped) that has not run.
#[test]
fn test_killall_raw() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let g = hub::spawn(move || r.set(true)).greenlet().clone();
    g.kill();
    assert!(g.is_dead());
    hub::yield_now();
    assert!(!ran.get());
    g.kill(); // again: nothing
}

/// TestRef.test_kill_scheduled: a greenlet killed before it runs leaves
/// nothing behind: its function (and what it holds) is dropped at once.
#[test]
fn test_kill_scheduled() {
    time::pause();
    let drops = Rc::new(Cell::new(0));
    let guard = DropCount(drops.clone());
    let g = hub::spawn(move || {
        let _guard = guard;
        hub::sleep(LARGE_TICK);
    });
    g.kill();
    assert_eq!(drops.get(), 1);
    assert_eq!(Rc::strong_count(&drops), 1);
    assert!(matches!(g.join(), Err(JoinError::Killed)));
}

/// TestRef.test_kill_started: the same for a greenlet killed in its sleep.
#[test]
fn test_kill_started() {
    time::pause();
    let drops = Rc::new(Cell::new(0));
    let guard = DropCount(drops.clone());
    let g = hub::spawn(move || {
        let _guard = guard;
        hub::sleep(LARGE_TICK);
    });
    hub::sleep(Duration::from_millis(1));
    assert_eq!(drops.get(), 0);
    g.kill();
    assert_eq!(drops.get(), 1);
    assert_eq!(Rc::strong_count(&drops), 1);
    assert!(matches!(g.join(), Err(JoinError::Killed)));
}

/// TestStr.test_method, its name part: a greenlet has no name until given
/// one; the name shows in its `Debug`, before it runs and after it ended.
#[test]
fn test_method() {
    let g = hub::spawn(|| ());
    assert_eq!(g.greenlet().name(), None);
    let g = hub::Builder::new().name("Foo").spawn(|| ()).unwrap();
    assert_eq!(g.greenlet().name().as_deref(), Some("Foo"));
    let before = format!("{:?}", g.greenlet());
    assert!(
        before.contains("\"Foo\"") && before.contains("unstarted"),
        "{before}"
    );
    g.wait();
    let after = format!("{:?}", g.greenlet());
    assert!(
        after.contains("\"Foo\"") && after.contains("dead"),
        "{after}"
    );
    assert_eq!(g.greenlet().name().as_deref(), Some("Foo"));
}

/// TestStr.test_function's states: not finished until joined, then
/// finished.
#[test]
fn test_function() {
    let g = hub::spawn(|| ());
    assert!(!g.is_finished());
    g.wait();
    assert!(g.is_finished());
}

/// TestDeadPropertyDuringSwitch.test_dead_is_false_for_current_greenlet_during_switch:
/// no greenlet that a switch goes to looks dead (a switch hook, gevent's
/// `settrace`, records each target's `is_dead`).
#[test]
fn test_dead_is_false_for_current_greenlet_during_switch() {
    let seen: Rc<RefCell<Vec<(u64, bool, greenlet::SwitchKind)>>> = Rc::default();
    let log = seen.clone();
    let old = greenlet::set_switch_hook(Some(Box::new(move |e| {
        log.borrow_mut()
            .push((e.target.id(), e.target.is_dead(), e.kind));
    })));
    let g = hub::spawn(|| 42);
    let id = g.greenlet().id();
    assert_eq!(g.join().unwrap(), 42);
    greenlet::set_switch_hook(old);
    let seen = seen.borrow();
    assert!(
        seen.iter().any(|&(t, _, _)| t == id),
        "the hook never saw a switch to it: {seen:?}"
    );
    for (i, &(t, dead, kind)) in seen.iter().enumerate() {
        assert!(!dead, "switch #{i} ({kind:?}) to {t}: dead");
    }
}

// ---------------------------------------------------------------------------
// Joining a killed greenlet, a kill that waits for the victim's `finally`,
// spawn_later, and a link that blocks.
// ---------------------------------------------------------------------------

/// TestKillWhileRunning, seen from the greenlets that wait for the victim:
/// a `join`, a `wait` with a timeout and a `joinall` blocked on it when it
/// is killed all return, with the kill as its outcome.
#[test]
fn kill_while_running_wakes_joiners() {
    time::pause();
    let victim = hub::spawn(|| -> u32 {
        hub::sleep(Duration::from_secs(10));
        1
    });
    let shared = Rc::new(victim);
    let (a, b) = (shared.clone(), shared.clone());
    let waiter = hub::spawn(move || a.wait_timeout(Duration::from_secs(100)));
    let multi = hub::spawn(move || hub::wait(&[&*b], None, None));
    hub::sleep(Duration::from_millis(1)); // all of them blocked
    assert!(!waiter.is_finished() && !multi.is_finished());
    let start = time::now();
    shared.kill();
    assert!(waiter.join().unwrap(), "wait_timeout saw the end");
    assert_eq!(multi.join().unwrap(), [0]);
    assert_eq!(time::now(), start, "no timer had to fire");
    let victim = Rc::try_unwrap(shared).unwrap();
    assert!(matches!(victim.join(), Err(JoinError::Killed)));
}

/// A killed greenlet joined by another greenlet: `join` there returns
/// the kill (gevent: `g.join()` after `g.kill()` returns, `g.value` is
/// the `GreenletExit`).
#[test]
fn kill_while_running_join_from_another_greenlet() {
    time::pause();
    let victim = hub::spawn(|| hub::sleep(Duration::from_secs(10)));
    let g = victim.greenlet().clone();
    let joiner = hub::spawn(move || victim.join());
    hub::sleep(Duration::from_millis(1));
    g.kill();
    assert!(matches!(joiner.join().unwrap(), Err(JoinError::Killed)));
}

/// gevent's `kill(block=True)` waits for the victim to finish, `finally`
/// included, even when the `finally` blocks. Here a `finally` cannot block
/// while the kill unwinds (documented: blocking is impossible while a
/// greenlet unwinds), so the victim catches the kill and does its
/// blocking cleanup after: the kill returns when it switches away (it
/// refused; `try_kill` says so), and the handle's end comes after the
/// cleanup, with the function's value.
#[test]
fn kill_while_running_finally_that_blocks() {
    time::pause();
    let cleaned = Rc::new(Cell::new(false));
    let c = cleaned.clone();
    let victim = hub::spawn(move || -> u32 {
        let r = panic::catch_unwind(AssertUnwindSafe(|| hub::sleep(Duration::from_secs(10))));
        assert!(r.is_err(), "killed");
        drop(r);
        hub::sleep(SMALL_TICK); // the blocking `finally`
        c.set(true);
        7
    });
    hub::sleep(Duration::from_millis(1));
    assert!(
        victim.greenlet().try_kill().is_err(),
        "it refuses: it switched away"
    );
    assert!(!victim.is_finished());
    assert!(!cleaned.get());
    let start = time::now();
    victim.wait();
    assert_eq!(time::now() - start, SMALL_TICK);
    assert!(cleaned.get());
    // It refused the kill, so it lived on as any greenlet (docs/semantics.md
    // row 11: "the victim lives on"), and its return value is its result,
    // as in gevent, where a greenlet that catches `GreenletExit` and
    // returns has that value. (`JoinHandle::kill`'s "join then returns
    // `JoinError::Killed`" is for a kill that is not refused.)
    assert_eq!(victim.join().unwrap(), 7);
}

/// `spawn_later` (used by TestBasic.test_add_spawn_callback and
/// TestKillAfterStartLater): the greenlet starts once its delay passed,
/// exactly, and its value is joined.
#[test]
fn spawn_later_runs_after_its_delay() {
    time::pause();
    let start = time::now();
    let s = hub::spawn_after(LARGE_TICK, time::now);
    hub::sleep(LARGE_TICK - Duration::from_millis(1));
    assert!(!s.has_started());
    let ran_at = s.join().unwrap();
    assert_eq!(ran_at - start, LARGE_TICK);
}

/// gevent runs each link of a greenlet in a greenlet of its own
/// (`SpawnedLink` spawns one per link), so a link that blocks does not
/// hold up the others. Here (documented: "Callbacks run in a greenlet of
/// their own, in the order they were added ...; they may block") a
/// handle's callbacks run one after the other in one greenlet: a link
/// that blocks holds up the later ones until it is done. (So a link
/// waiting for what a later link of the same greenlet provides, which
/// works in gevent, never completes here.)
#[test]
fn blocking_link_holds_up_the_later_ones() {
    time::pause();
    let p = hub::spawn(|| 5);
    let (q, order) = (Queue::new(), Rc::new(RefCell::new(Vec::new())));
    let (q1, o1) = (q.clone(), order.clone());
    p.on_finish(move || {
        let got: u32 = q1.get();
        o1.borrow_mut().push(got);
    });
    let o2 = order.clone();
    p.on_finish(move || o2.borrow_mut().push(2));
    hub::sleep(SMALL_TICK);
    assert!(p.is_finished());
    assert!(
        order.borrow().is_empty(),
        "the second link waits for the first"
    );
    q.put(1);
    hub::sleep(SMALL_TICK);
    assert_eq!(*order.borrow(), [1, 2]);
    assert_eq!(p.join().unwrap(), 5);
}

// ---------------------------------------------------------------------------
// More kills: of oneself, inside a timeout, of a joiner, from a link, of
// the other members of one's own group.
// ---------------------------------------------------------------------------

/// gevent's `Greenlet.kill` on the current greenlet raises the
/// `GreenletExit` in it: it ends killed, its links run once, and the code
/// after the kill never runs.
#[test]
fn kill_self() {
    let links = Rc::new(Cell::new(0u32));
    let after = Rc::new(Cell::new(false));
    let a = after.clone();
    let g = hub::spawn(move || {
        Greenlet::current().kill();
        a.set(true);
    });
    let l = links.clone();
    g.on_finish(move || l.set(l.get() + 1));
    g.wait();
    hub::yield_now(); // the links' greenlet
    assert!(!after.get());
    assert_eq!(links.get(), 1);
    assert!(matches!(g.join(), Err(JoinError::Killed)));
}

/// A greenlet killed inside a `with_timeout` (gevent: `Timeout` started in
/// it): the kill wins, and the timeout's timer, when its time comes,
/// interrupts nobody else (main's sleep past it is whole).
#[test]
fn kill_while_running_inside_with_timeout() {
    time::pause();
    let g = hub::spawn(|| with_timeout(LARGE_TICK, || hub::sleep(Duration::from_secs(10))));
    hub::sleep(Duration::from_millis(1));
    g.kill();
    assert!(matches!(g.join(), Err(JoinError::Killed)));
    let start = time::now();
    hub::sleep(LARGE_TICK * 2);
    assert_eq!(time::now() - start, LARGE_TICK * 2);
    // A new timeout in main works as usual.
    assert!(with_timeout(SMALL_TICK, || hub::sleep(LARGE_TICK)).is_err());
}

/// A greenlet killed while it waits for another (`join`, `wait`, `joinall`
/// from it): the other runs on undisturbed, and its end (which would have
/// woken the killed waiters) is still seen by whoever waits for it next.
#[test]
fn kill_joiner_while_it_waits() {
    time::pause();
    let target = Rc::new(hub::spawn(|| {
        hub::sleep(SMALL_TICK);
        3
    }));
    let (t1, t2) = (target.clone(), target.clone());
    let w1 = hub::spawn(move || t1.wait());
    let w2 = hub::spawn(move || hub::wait(&[&*t2], None, None));
    hub::sleep(Duration::from_millis(1));
    w1.kill();
    w2.kill();
    assert!(matches!(w1.join(), Err(JoinError::Killed)));
    assert!(matches!(w2.join(), Err(JoinError::Killed)));
    assert!(!target.is_finished());
    assert!(target.wait_timeout(SMALL_TICK));
    let target = Rc::try_unwrap(target).unwrap();
    assert_eq!(target.join().unwrap(), 3);
}

/// The usual gevent pattern `a.link(lambda _: b.kill())`: a link that
/// kills another greenlet, here from `on_finish`.
#[test]
fn link_that_kills_another() {
    time::pause();
    let b = Rc::new(hub::spawn(|| hub::sleep(Duration::from_secs(10))));
    let a = hub::spawn(|| hub::sleep(SMALL_TICK));
    let b2 = b.clone();
    a.on_finish(move || b2.kill());
    let start = time::now();
    b.wait();
    assert_eq!(time::now() - start, SMALL_TICK);
    assert!(a.join().is_ok());
    let b = Rc::try_unwrap(b).unwrap();
    assert!(matches!(b.join(), Err(JoinError::Killed)));
}

/// `gevent.killall(group)` from one of the group's greenlets: the others
/// are killed, the caller is spared (Group::kill_all's doc).
#[test]
fn killall_from_a_member() {
    time::pause();
    let group = Group::new();
    let others: Vec<_> = (0..3)
        .map(|_| group.spawn(|| hub::sleep(Duration::from_secs(10))))
        .collect();
    let gr = group.clone();
    let killer = group.spawn(move || {
        gr.kill_all();
        gr.len()
    });
    assert_eq!(killer.join().unwrap(), 1, "only the caller was left");
    assert!(group.is_empty());
    for h in others {
        assert!(matches!(h.join(), Err(JoinError::Killed)));
    }
}

/// TestKillAfterStartLater, once the delay has passed: a started
/// `spawn_later` cannot be cancelled any more and runs to its end.
#[test]
fn start_later_cancel_after_start() {
    time::pause();
    let s = hub::spawn_after(SMALL_TICK, || {
        hub::sleep(SMALL_TICK);
        9
    });
    hub::sleep(SMALL_TICK + Duration::from_millis(1));
    assert!(s.has_started());
    assert!(!s.cancel());
    assert!(!s.is_finished());
    assert_eq!(s.join().unwrap(), 9);
}

/// `g.kill(timeout=t)` is the kill then `join(timeout)`: here `kill`
/// then `wait_timeout`. A victim that catches the kill and takes longer
/// than `t` to finish is still alive when the timeout passes (exactly
/// `t` later), and finishes later by itself.
#[test]
fn kill_with_timeout_victim_outlives_it() {
    time::pause();
    let victim = hub::spawn(|| {
        let r = panic::catch_unwind(AssertUnwindSafe(|| hub::sleep(Duration::from_secs(10))));
        drop(r);
        hub::sleep(LARGE_TICK); // a slow cleanup
        "cleaned"
    });
    hub::sleep(Duration::from_millis(1));
    let start = time::now();
    victim.kill(); // refused: reported on stderr, returns
    assert!(!victim.wait_timeout(SMALL_TICK));
    assert_eq!(time::now() - start, SMALL_TICK);
    assert!(victim.greenlet().is_active());
    assert!(victim.wait_timeout(LARGE_TICK));
    assert_eq!(time::now() - start, LARGE_TICK);
    assert_eq!(victim.join().unwrap(), "cleaned");
}
