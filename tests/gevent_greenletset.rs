//! gevent `src/gevent/tests/test__greenletset.py` (pool.Group), on the
//! paused hub clock (DELAY = LARGE_TICK). A kill here is synchronous
//! (`kill_all` has no `block=False`), and "catching GreenletExit" is
//! `catch_unwind` around the blocking call.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, time, with_timeout, Group, JoinError};

const DELAY: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct SpecialError;

/// `Undead`: sleeps forever, counting the kills it swallows; a thrown
/// `SpecialError` ends it.
fn undead(shots: Rc<Cell<u32>>) -> impl FnOnce() {
    move || loop {
        match panic::catch_unwind(AssertUnwindSafe(|| hub::sleep(Duration::from_secs(1)))) {
            Ok(()) => {}
            Err(p) => {
                if is_special(&p) {
                    break;
                }
                drop(p);
                shots.set(shots.get() + 1);
            }
        }
    }
}

fn is_special(p: &Box<dyn Any + Send>) -> bool {
    p.is::<SpecialError>()
}

// test__greenletset.py Test.test_basic
#[test]
fn test_basic() {
    time::pause();
    let s = Group::new();
    s.spawn(|| hub::sleep(DELAY));
    assert_eq!(s.len(), 1);
    s.spawn(|| hub::sleep(DELAY * 5));
    assert_eq!(s.len(), 2);
    hub::yield_now();
    hub::sleep(DELAY * 2);
    assert_eq!(s.len(), 1);
    hub::sleep(DELAY * 5);
    assert!(s.is_empty());
}

// test__greenletset.py Test.test_waitall
#[test]
fn test_waitall() {
    time::pause();
    let s = Group::new();
    let a = s.spawn(|| hub::sleep(DELAY));
    let b = s.spawn(|| hub::sleep(DELAY * 2));
    assert_eq!(s.len(), 2);
    let start = time::now();
    s.join();
    assert!(s.is_empty());
    assert_eq!(time::now() - start, DELAY * 2);
    // `raise_error=True`: no member failed.
    assert!(a.join().is_ok() && b.join().is_ok());
}

// test__greenletset.py Test.test_kill_block
#[test]
fn test_kill_block() {
    time::pause();
    let s = Group::new();
    let a = s.spawn(|| hub::sleep(DELAY));
    let b = s.spawn(|| hub::sleep(DELAY * 2));
    assert_eq!(s.len(), 2);
    hub::yield_now(); // gevent's members are killed before they start too; here let them start
    let start = time::now();
    s.kill_all();
    assert!(s.is_empty());
    assert_eq!(time::now(), start);
    assert!(matches!(a.join(), Err(JoinError::Killed)));
    assert!(matches!(b.join(), Err(JoinError::Killed)));
}

// test__greenletset.py Test.test_kill_noblock: no `block=False`; the kill
// is done when kill_all returns, so only the end state is checked.
#[test]
fn test_kill_noblock() {
    time::pause();
    let s = Group::new();
    s.spawn(|| hub::sleep(DELAY));
    s.spawn(|| hub::sleep(DELAY * 2));
    assert_eq!(s.len(), 2);
    s.kill_all();
    hub::sleep(Duration::from_micros(100));
    assert!(s.is_empty());
}

// test__greenletset.py Test.test_kill_fires_once. gevent's Group remembers
// the greenlets it is killing (`dying`), so repeated kill()/killone()
// shoot each only once. Here each `kill_all` call shoots each refusing
// member once ("is killed once and left alive", group.rs:244-246).
#[test]
fn test_kill_fires_once() {
    time::pause();
    let (u1, u2) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let s = Group::new();
    let p1 = s.spawn(undead(u1.clone()));
    let p2 = s.spawn(undead(u2.clone()));
    hub::sleep(Duration::from_millis(10));
    assert_eq!(s.len(), 2);
    let check = |c1, c2| {
        assert!(!p1.is_finished());
        assert!(!p2.is_finished());
        assert_eq!((u1.get(), u2.get()), (c1, c2));
    };
    check(0, 0);
    p1.kill(); // killone(p1)
    check(1, 0);
    s.kill_all();
    check(2, 1); // gevent: (1, 1), p1 is already dying and not shot again
                 // gevent: kill(block=True) under a timeout times out, the members alive.
    let r = with_timeout(DELAY, || s.kill_all());
    assert!(
        r.is_ok(),
        "kill_all returns once every member was shot once"
    );
    assert_eq!(s.len(), 2);
    check(3, 2);
    // gevent: p1.kill(SpecialError) (throw + join). A throw from main into
    // a blocked greenlet does not come back to main by itself (hub docs:
    // "reaching the thrower only when something switches to it"), and p2
    // runs forever, so throw from helper greenlets and join.
    for p in [&p1, &p2] {
        let g = p.greenlet().clone();
        hub::spawn(move || {
            let _ = g.throw::<_, ()>(SpecialError);
        });
    }
    p1.wait();
    p2.wait();
    assert!(p1.is_finished() && p2.is_finished(), "{p1:?} {p2:?}");
    assert!(s.is_empty());
}

// test__greenletset.py Test.test_killall_subclass
#[test]
fn test_killall_subclass() {
    let s = Group::new();
    let p1 = s.spawn(|| -> u32 { panic!("1 / 0") });
    let p2 = s.spawn(|| hub::sleep(Duration::from_secs(10)));
    s.kill_all();
    assert!(s.is_empty());
    assert!(p1.is_finished() && p2.is_finished());
}

// test__greenletset.py Test.test_killall_iterable_argument_non_block
#[test]
fn test_killall_iterable_argument_non_block() {
    time::pause();
    let s = Group::new();
    let p1 = s.spawn(|| hub::sleep(Duration::from_millis(500)));
    let p2 = s.spawn(|| hub::sleep(Duration::from_millis(500)));
    s.kill_all();
    hub::sleep(Duration::from_millis(500));
    assert!(p1.is_finished() && p2.is_finished());
}

fn f() {
    if panic::catch_unwind(AssertUnwindSafe(|| hub::sleep(Duration::from_millis(1500)))).is_err() {
        hub::sleep(Duration::from_secs(1));
    }
}

// test__greenletset.py Test.test_killall_iterable_argument_timeout_not_started
#[test]
fn test_killall_iterable_argument_timeout_not_started() {
    time::pause();
    let s = Group::new();
    let p1 = s.spawn(f);
    let p2 = s.spawn(f);
    assert!(with_timeout(Duration::from_millis(500), || s.kill_all()).is_ok());
    assert!(p1.is_finished() && p2.is_finished());
}

// test__greenletset.py Test.test_killall_iterable_argument_timeout_started.
// gevent: killall(timeout=0.5) raises Timeout and both stay alive. Here
// kill_all returns after shooting each once (they refuse: they catch the
// kill and sleep); they stay alive.
#[test]
fn test_killall_iterable_argument_timeout_started() {
    time::pause();
    let s = Group::new();
    let p1 = s.spawn(f);
    let p2 = s.spawn(f);
    hub::sleep(Duration::from_millis(10));
    let _ = with_timeout(Duration::from_millis(500), || s.kill_all());
    assert!(!p1.is_finished() && !p2.is_finished());
    // They then finish their second sleep by themselves.
    let start = time::now();
    s.join();
    assert_eq!(time::now() - start, Duration::from_secs(1));
}
