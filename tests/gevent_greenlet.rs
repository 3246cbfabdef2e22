//! The join and link scenarios of gevent's
//! `src/gevent/tests/test__greenlet.py` (gevent 26.x), each test named
//! after the one it ports (prefixed with its class where names repeat).
//! `link` is `JoinHandle::on_finish` (its callback gets no argument: the
//! value stays in the handle), `joinall` is `hub::join_all` or, with a
//! count or a timeout, `hub::wait`, and `join(timeout)` is
//! `JoinHandle::wait_timeout`.
//!
//! Not ported (no counterpart here): `unlink` and `rawlink`
//! (`TestUnlink`, `test_multiple_listeners_error_unlink_*`), linking a
//! greenlet straight to an `AsyncResult` or a `Channel` (`link(event)`),
//! `raise_error=True` (results are returned, not raised), `TestStr`,
//! `TestContextManager`, `TestRef`, the spawn-argument and frame tests of
//! `TestBasic`, and `TestKill`'s custom exception types (a kill here is
//! always `GreenletExit`).

use std::time::Duration;

use greenlet::hub::{self, AsyncResult, JoinError, Queue};

const MS: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn test_link_to_queue() {
    let p = hub::spawn(|| 100);
    let q = Queue::new();
    for _ in 0..4 {
        let q2 = q.clone();
        p.on_finish(move || q2.put("finished"));
        assert_eq!(q.get(), "finished");
    }
    assert_eq!(p.join().unwrap(), 100);
}

#[test]
fn test_link_to_asyncresult() {
    let p = hub::spawn(|| 100);
    let event: AsyncResult<()> = AsyncResult::new();
    let e = event.clone();
    p.on_finish(move || e.set(()).unwrap());
    assert_eq!(event.get(), Ok(()));
    assert!(p.is_finished());
    assert_eq!(p.join().unwrap(), 100);
}

#[test]
fn test_link_to_asyncresult_exception() {
    let p = hub::spawn(|| -> u8 { panic!("test_link_to_asyncresult_exception") });
    let event: AsyncResult<()> = AsyncResult::new();
    let e = event.clone();
    p.on_finish(move || e.set(()).unwrap());
    event.get().unwrap();
    assert!(matches!(p.join(), Err(JoinError::Panicked(_))));
}

#[test]
fn test_wait_noerrors() {
    let hs = vec![hub::spawn(|| 1), hub::spawn(|| 2), hub::spawn(|| 3)];
    let values: Vec<i32> = hub::join_all(hs).into_iter().map(Result::unwrap).collect();
    assert_eq!(values, [1, 2, 3]);
}

#[test]
fn test_wait_error() {
    let x = hub::spawn(|| {
        hub::sleep(MS);
        1
    });
    let y = hub::spawn(|| -> i32 { panic!("test_wait_error") });
    let results = hub::join_all([x, y]);
    assert_eq!(*results[0].as_ref().unwrap(), 1);
    assert!(matches!(results[1], Err(JoinError::Panicked(_))));
}

#[test]
fn test_joinall_count_raise_error() {
    let sleeper = hub::spawn(|| loop {
        hub::sleep(Duration::from_millis(100));
    });
    let raiser = hub::spawn(|| panic!("count"));
    let hs = [&sleeper, &raiser];
    assert_eq!(hub::wait(&hs, Some(1), None), [1]);
    assert!(raiser.is_finished());
    assert!(!sleeper.is_finished());
    sleeper.kill();
    assert!(sleeper.is_finished());
}

#[test]
fn test_join() {
    // TestJoin: a join with a timeout on a sleeping greenlet times out,
    // and the handle stays usable.
    let g = hub::spawn(|| hub::sleep(HOUR));
    assert!(!g.wait_timeout(MS));
    g.kill();
    assert!(matches!(g.join(), Err(JoinError::Killed)));
}

#[test]
fn test_joinall_timeout() {
    // TestJoinAll: joinall with a timeout returns what finished: nothing.
    let g = hub::spawn(|| hub::sleep(HOUR));
    assert!(hub::wait(&[&g], None, Some(MS)).is_empty());
    g.kill();
}

#[test]
fn test_kill_block() {
    // TestKill.test_block: killing a blocked greenlet ends it with a kill,
    // and its links run.
    let g = hub::spawn(|| hub::sleep(HOUR));
    let linked: AsyncResult<()> = AsyncResult::new();
    let l = linked.clone();
    g.on_finish(move || l.set(()).unwrap());
    hub::yield_now();
    g.kill();
    assert!(g.is_finished());
    linked.get().unwrap();
    assert!(matches!(g.join(), Err(JoinError::Killed)));
}

#[test]
fn test_kill_after_start_later() {
    // TestKillAfterStartLater: a greenlet scheduled for later and killed
    // before it starts never runs.
    let s = hub::spawn_after(HOUR, || unreachable!("cancelled before it ran"));
    assert!(s.cancel());
    assert!(matches!(s.join(), Err(JoinError::Killed)));
}
