//! `JoinableQueue`'s count of unfinished items through every way a put or
//! a join can end: a put that never goes through (its putter killed,
//! thrown into or interrupted while it blocks) is not counted, and `join`
//! returns only when nothing is unfinished, items put while it waited
//! included.

use std::time::Duration;

use greenlet::hub::{self, time, with_timeout, JoinableQueue};

#[test]
fn a_put_killed_or_interrupted_while_it_blocks_is_not_counted() {
    let q = JoinableQueue::bounded(1);
    q.put(1u32);
    let q2 = q.clone();
    let killed = hub::spawn(move || q2.put(2));
    hub::yield_now(); // it blocks on the full queue
    killed.kill();
    assert_eq!((q.len(), q.unfinished()), (1, 1));
    let q2 = q.clone();
    let thrown = hub::spawn(move || q2.put(3));
    hub::yield_now();
    assert!(thrown.greenlet().throw::<_, ()>("stop").is_err());
    assert_eq!((q.len(), q.unfinished()), (1, 1));
    time::pause();
    assert!(with_timeout(Duration::from_secs(1), || q.put(4)).is_err());
    assert_eq!((q.len(), q.unfinished()), (1, 1));
    time::resume();
    // The one item in it is all that join waits for.
    assert_eq!(q.get(), 1);
    q.task_done().unwrap();
    q.join();
}

#[test]
fn a_put_interrupted_while_it_yields_for_its_budget_is_not_counted() {
    // An unbounded put yields when its budget is spent; a kill then
    // unwinds out of that yield.
    let q: JoinableQueue<u32> = JoinableQueue::new();
    let q2 = q.clone();
    let producer = hub::spawn(move || {
        for i in 0.. {
            q2.put(i);
        }
    });
    hub::yield_now(); // it fills the queue until its budget is spent
    producer.kill();
    assert!(!q.is_empty());
    assert_eq!(q.unfinished(), q.len(), "only the items in the queue count");
}

#[test]
fn join_waits_for_items_put_while_it_waited() {
    let q: JoinableQueue<u32> = JoinableQueue::new();
    q.put(1);
    let q2 = q.clone();
    let joiner = hub::spawn(move || {
        q2.join();
        q2.unfinished()
    });
    hub::yield_now(); // it blocks
    q.get();
    q.task_done().unwrap(); // wakes it
    q.put(2); // before it runs
    hub::yield_now();
    assert!(!joiner.is_finished(), "item 2 is unfinished");
    q.get();
    q.task_done().unwrap();
    assert_eq!(joiner.join().unwrap(), 0);
    // The same with a timeout: true only when nothing is unfinished.
    time::pause();
    q.put(3);
    let q2 = q.clone();
    let joiner = hub::spawn(move || q2.join_timeout(Duration::from_secs(1)));
    hub::yield_now();
    q.get();
    q.task_done().unwrap();
    q.put(4);
    assert!(
        !joiner.join().unwrap(),
        "item 4 was still unfinished at the deadline"
    );
    time::resume();
}

/// An item counts from when it goes in, as in Python: a put blocked on a
/// full queue holds its item in its own frame, so `task_done` cannot
/// finish it and `join` does not wait for it; when that put then fails
/// (here interrupted by a timeout), there is nothing to take back. (The
/// put used to count first: the second `task_done` was accepted, and the
/// interrupted put's take-back underflowed the count: a panic in a
/// destructor during unwinding, which aborted, or in release a wrapped
/// count on which every later `join` hung.)
#[test]
fn a_put_blocked_on_a_full_queue_is_not_unfinished_until_its_item_goes_in() {
    time::pause();
    let q = JoinableQueue::bounded(1);
    q.put(1u32);
    let q2 = q.clone();
    let blocked = hub::spawn(move || with_timeout(Duration::from_secs(5), || q2.put(2)));
    hub::yield_now(); // it blocks: the queue is full
    assert_eq!((q.len(), q.unfinished()), (1, 1));
    assert_eq!(q.task_done(), Ok(())); // item 1 (still in the queue, as Python allows)
    assert!(q.task_done().is_err(), "only one item went in");
    assert!(
        q.join_timeout(Duration::ZERO),
        "nothing that went in is unfinished"
    );
    time::advance(Duration::from_secs(10));
    assert!(blocked.join().unwrap().is_err(), "its put timed out");
    assert_eq!((q.len(), q.unfinished()), (1, 0));
    assert!(q.task_done().is_err());

    // The same put, let in: it counts once it is in.
    let q2 = q.clone();
    let let_in = hub::spawn(move || q2.put(3));
    hub::yield_now();
    assert_eq!(q.unfinished(), 0);
    assert_eq!(q.get(), 1);
    hub::yield_now(); // the putter stores 3
    assert!(let_in.is_finished());
    assert_eq!((q.len(), q.unfinished()), (1, 1));
    time::resume();
}

#[test]
fn put_timeout_counts_an_item_put_and_not_one_given_back() {
    time::pause();
    let q = JoinableQueue::bounded(1);
    assert_eq!(q.capacity(), Some(1));
    assert!(q.put_timeout(1, Duration::from_secs(1)).is_ok());
    assert!(q.is_full());
    assert_eq!(q.unfinished(), 1);
    let back = q.put_timeout(2, Duration::from_secs(1)).unwrap_err();
    assert!(back.is_timeout());
    assert_eq!(back.into_inner(), 2);
    assert_eq!(q.unfinished(), 1, "the item given back is not unfinished");
    q.close();
    assert!(q.is_closed());
    assert!(q
        .put_timeout(3, Duration::from_secs(1))
        .unwrap_err()
        .is_closed());
    assert_eq!(q.unfinished(), 1);
    time::resume();
}

#[test]
fn peek_leaves_the_item_in_the_queue_and_unfinished() {
    let q = JoinableQueue::new();
    assert_eq!(q.capacity(), None);
    assert_eq!(q.try_peek(), None);
    let q2 = q.clone();
    let peeker = hub::spawn(move || q2.peek());
    hub::yield_now(); // it waits
    q.put("job");
    assert_eq!(peeker.join().unwrap(), Some("job"));
    assert_eq!(q.try_peek(), Some("job"));
    assert_eq!(q.peek_timeout(Duration::ZERO), Some("job"));
    assert_eq!((q.len(), q.unfinished()), (1, 1));
    assert_eq!(q.get(), "job");
    q.task_done().unwrap();
    assert_eq!(q.unfinished(), 0);
}
