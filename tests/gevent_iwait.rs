//! gevent `src/gevent/tests/test__iwait.py` and `test__joinall.py`.
//! gevent's iwait takes Semaphores; the crate's `Semaphore` is not
//! `Waitable` (only join handles, events, async results, readiness, server
//! handles), so `sem.release` is translated to `Event::set`.

use std::time::Duration;

use greenlet::hub::{self, iwait, Event};

mod common;

const MS: Duration = Duration::from_millis(1);

// test__iwait.py Testiwait.test_noiter
#[test]
fn test_noiter() {
    let (sem1, sem2) = (Event::new(), Event::new());
    let s1 = sem1.clone();
    hub::spawn(move || s1.set());
    let items = [&sem1, &sem2];
    let ready = iwait(&items, None).next();
    assert_eq!(ready, Some(0));
}

// test__iwait.py Testiwait.test_iwait_partial
#[test]
fn test_iwait_partial() {
    let sem = Event::new();
    let s = sem.clone();
    let let_ = hub::spawn(move || s.set());
    {
        let items = [&sem];
        let mut iterator = iwait(&items, Some(10 * MS));
        assert_eq!(iterator.next(), Some(0));
    }
    let_.join().unwrap();
}

// test__iwait.py Testiwait.test_iwait_nogarbage. No `linkcount`: checks
// instead that, after the partially consumed iterator is dropped, sem2 has
// no stale waiter (setting it wakes nobody, and a later wait on it works).
#[test]
fn test_iwait_nogarbage() {
    let (sem1, sem2) = (Event::new(), Event::new());
    let s1 = sem1.clone();
    let let_ = hub::spawn(move || s1.set());
    {
        let items = [&sem1, &sem2];
        let mut iterator = iwait(&items, None);
        assert_eq!(iterator.next(), Some(0));
    }
    sem2.set();
    hub::yield_now();
    assert_eq!(hub::wait_any(&[&sem2], None), Some(0));
    let_.join().unwrap();
    // Nothing is left blocked on anything.
    let st = greenlet::stats();
    assert!(
        st.greenlets
            .iter()
            .all(|g| g.waiting_on.is_none() || g.name.as_deref() == Some("hub")),
        "{:?}",
        st.greenlets
    );
}

// test__joinall.py Test.test: joinall([a, b, a]), a handle given twice.
#[test]
fn test_joinall_duplicate() {
    let a = hub::spawn(|| ());
    let b = hub::spawn(|| ());
    let done = hub::wait(&[&a, &b, &a], None, None);
    assert_eq!(done.len(), 3, "{done:?}");
    let mut sorted = done.clone();
    sorted.sort();
    assert_eq!(sorted, [0, 1, 2]);
    assert!(a.is_finished() && b.is_finished());
}

// Same, through iwait: a duplicate is yielded once per place.
#[test]
fn test_joinall_duplicate_iwait() {
    hub::time::pause();
    let a = hub::spawn(|| hub::sleep(MS));
    let b = hub::spawn(|| ());
    let order: Vec<usize> = iwait(&[&a, &b, &a], None).collect();
    assert_eq!(order.len(), 3, "{order:?}");
    assert_eq!(order[0], 1);
}

/// Bytes allocated per item yielded by `iwait` over `n` events that a
/// greenlet sets one at a time.
fn iwait_bytes_per_item(n: usize) -> u64 {
    let evs: Vec<Event> = (0..n).map(|_| Event::new()).collect();
    let evs2 = evs.clone();
    let setter = hub::spawn(move || {
        for e in &evs2 {
            e.set();
            hub::yield_now();
        }
    });
    let before = common::bytes_allocated();
    assert_eq!(iwait(&evs, None).count(), n);
    let bytes = common::bytes_allocated() - before;
    setter.join().unwrap();
    bytes / n as u64
}

// Guards the scaling of `iwait` (and `wait`, `wait_any`): each item is
// listed once for the iteration, so what an item yielded costs does not
// grow with the number of items (it re-listed every item left at each
// block: 2.2 KB per item at 250 items, 32 KB at 4,000; and as much time).
#[test]
fn iwait_bookkeeping_per_item_does_not_grow_with_the_number_of_items() {
    let (small, large) = (iwait_bytes_per_item(250), iwait_bytes_per_item(4000));
    assert!(
        large <= 2 * small + 256,
        "bytes per item yielded grew from {small} (250 items) to {large} (4000 items)"
    );
}

// An item that was ready and is no longer when its turn comes is waited
// for again (listed anew), and one set, cleared and set again between two
// `next`s counts from its last setting: as when every `next` looked at
// every item.
#[test]
fn items_cleared_before_their_turn_are_waited_for_again() {
    let (a, b, c) = (Event::new(), Event::new(), Event::new());
    a.set();
    b.set();
    let items = [&a, &b, &c];
    let mut it = iwait(&items, None);
    assert_eq!(it.next(), Some(0));
    b.clear();
    c.set();
    c.clear();
    c.set();
    assert_eq!(it.next(), Some(2), "b no longer counts; c does");
    let b2 = b.clone();
    hub::spawn(move || b2.set());
    assert_eq!(it.next(), Some(1), "b, once set again");
    assert_eq!(it.next(), None);
}
