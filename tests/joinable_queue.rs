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
