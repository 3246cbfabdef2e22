//! Queue completeness: close (blocked putters get their items back,
//! getters drain then see the end), peek, is_full, the iterator, and
//! JoinableQueue's task accounting.

use std::time::Duration;

use greenlet::hub::{
    self, with_timeout, Closed, JoinableQueue, PutTimeoutError, Queue, TryPutError,
};

const MS: Duration = Duration::from_millis(1);

#[test]
fn close_fails_blocked_putters_with_their_items_back() {
    let q = Queue::bounded(1);
    q.put(1);
    let q2 = q.clone();
    let putter = hub::spawn(move || q2.send(2));
    hub::yield_now();
    q.close();
    assert_eq!(putter.join().unwrap().unwrap_err().0, 2);
    assert_eq!(q.try_put(3), Err(TryPutError::Closed(3)));
    assert_eq!(q.put_timeout(4, MS), Err(PutTimeoutError::Closed(4)));
    assert!(q.is_closed());
}

#[test]
fn getters_drain_what_is_left_then_see_the_close() {
    let q = Queue::new();
    q.put(1);
    q.put(2);
    q.close();
    assert_eq!(q.recv(), Ok(1));
    assert_eq!(q.get(), 2);
    assert_eq!(q.recv(), Err(Closed(())));
    assert_eq!(q.get_timeout(Duration::from_secs(3600)), None);
    assert_eq!(q.try_get(), None);
}

#[test]
fn close_wakes_every_blocked_getter() {
    let q: Queue<u8> = Queue::new();
    let getters: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            hub::spawn(move || q.recv())
        })
        .collect();
    hub::yield_now();
    q.close();
    for g in getters {
        assert_eq!(g.join().unwrap(), Err(Closed(())));
    }
}

#[test]
#[should_panic(expected = "closed, empty queue")]
fn get_on_a_closed_empty_queue_panics_with_a_message() {
    let q: Queue<u8> = Queue::new();
    q.close();
    q.get();
}

#[test]
fn iterator_ends_at_close() {
    let q = Queue::bounded(2);
    let q2 = q.clone();
    let consumer = hub::spawn(move || q2.iter().collect::<Vec<_>>());
    for i in 0..5 {
        q.put(i);
    }
    q.close();
    assert_eq!(consumer.join().unwrap(), [0, 1, 2, 3, 4]);
}

#[test]
fn peek_waits_for_an_item_and_leaves_it() {
    let q = Queue::new();
    let q2 = q.clone();
    let peeker = hub::spawn(move || q2.peek());
    hub::yield_now();
    assert!(!peeker.is_finished());
    q.put("a");
    assert_eq!(peeker.join().unwrap(), Some("a"));
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_peek(), Some("a"));
    assert_eq!(q.get(), "a");
    assert_eq!(q.peek_timeout(MS), None);
    assert!(with_timeout(MS, || q.peek()).is_err());
    q.close();
    assert_eq!(q.peek(), None);
}

#[test]
fn peekers_all_see_the_item_a_killed_one_leaves_nothing_behind_and_close_ends_them() {
    let q = Queue::new();
    let peek = |q: &Queue<&'static str>| {
        let q = q.clone();
        hub::spawn(move || q.peek())
    };
    let (first, killed, second) = (peek(&q), peek(&q), peek(&q));
    hub::yield_now(); // all three block
    killed.kill();
    assert!(killed.join().is_err());
    q.put("a");
    assert_eq!(first.join().unwrap(), Some("a"));
    assert_eq!(second.join().unwrap(), Some("a"));
    assert_eq!(q.get(), "a");
    let waiting = peek(&q);
    hub::yield_now(); // it blocks
    q.close();
    assert_eq!(waiting.join().unwrap(), None);
}

#[test]
fn is_full_follows_the_bound() {
    let q = Queue::bounded(2);
    assert!(!q.is_full());
    q.put(1);
    q.put(2);
    assert!(q.is_full());
    q.get();
    assert!(!q.is_full());
    assert!(!Queue::<u8>::new().is_full());
}

#[test]
fn joinable_queue_join_waits_for_every_task_done() {
    let q = JoinableQueue::new();
    let q2 = q.clone();
    let worker = hub::spawn(move || {
        let mut n = 0;
        while let Ok(v) = q2.recv() {
            hub::yield_now();
            n += v;
            q2.task_done().unwrap();
        }
        n
    });
    assert!(q.join_timeout(MS), "nothing put, nothing to wait for");
    for i in 1..=4 {
        q.put(i);
    }
    assert_eq!(q.unfinished(), 4);
    q.join();
    assert_eq!(q.unfinished(), 0);
    q.close();
    assert_eq!(worker.join().unwrap(), 10);
    assert!(q.task_done().is_err());
    assert!(q.send(1).is_err());
    assert_eq!(q.unfinished(), 0, "a refused put is not counted");
}

#[test]
fn a_putter_promised_a_place_before_the_close_gets_its_item_back() {
    let q = Queue::bounded(1);
    q.put(1u32);
    let q2 = q.clone();
    let putter = hub::spawn(move || q2.send(2));
    hub::yield_now(); // it blocks: the queue is full
    assert_eq!(q.try_get(), Some(1)); // its place is promised to it
    assert!(q.is_full(), "the promised place counts as taken");
    assert_eq!(q.try_put(3), Err(TryPutError::Full(3)));
    q.close(); // before the putter runs
    assert_eq!(
        putter.join().unwrap(),
        Err(Closed(2)),
        "its item comes back"
    );
    assert_eq!(q.len(), 0);
    assert!(!q.is_full());
}

/// A getter woken by `close` with nothing handed to it still takes an item
/// that a cancelled getter gave back meanwhile (review 50: `recv` said
/// `Closed` and the iterator ended with the item left in the queue).
#[test]
fn a_getter_woken_by_close_takes_an_item_given_back_by_a_cancelled_getter() {
    for cancel in ["kill", "throw"] {
        let q: Queue<u32> = Queue::new();
        let (qa, qb) = (q.clone(), q.clone());
        let a = hub::spawn(move || qa.recv());
        let b = hub::spawn(move || qb.recv());
        hub::yield_now(); // both block, `a` first
        q.put(1); // handed to `a`
        q.close(); // `b` woken with nothing
        if cancel == "kill" {
            a.kill();
            assert_eq!(q.len(), 1, "given back to the front");
        } else {
            // The throw goes on through the hub: `b` may run before main.
            let _ = a.greenlet().throw::<&str, ()>("stop");
        }
        assert_eq!(b.join().unwrap(), Ok(1), "{cancel}");
        assert_eq!(q.len(), 0);
    }
    // The same for an iterator and a get with a timeout.
    let q: Queue<u32> = Queue::new();
    let (qa, qb, qc) = (q.clone(), q.clone(), q.clone());
    let a = hub::spawn(move || qa.recv());
    let b = hub::spawn(move || qb.iter().collect::<Vec<_>>());
    let c = hub::spawn(move || qc.get_timeout(std::time::Duration::from_secs(60)));
    hub::yield_now();
    q.put(7);
    q.close();
    a.kill();
    assert_eq!(b.join().unwrap(), [7]);
    assert_eq!(c.join().unwrap(), None);
}

/// `recv_timeout` and `try_recv` tell the end (closed and drained) from a
/// timeout or an empty open queue, where `get_timeout` and `try_get` say
/// `None` for both.
#[test]
fn recv_timeout_and_try_recv_tell_a_closed_queue_from_an_empty_one() {
    use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
    hub::time::pause();
    let q = Queue::new();
    assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(q.recv_timeout(MS), Err(RecvTimeoutError::Timeout));
    q.put(1);
    assert_eq!(q.recv_timeout(MS), Ok(1));
    // An item put while the get waits.
    let q2 = q.clone();
    let putter = hub::spawn(move || q2.put(2));
    assert_eq!(q.recv_timeout(Duration::from_secs(30)), Ok(2));
    putter.join().unwrap();
    // Closed while the get waits: the end, not a timeout.
    let q2 = q.clone();
    let closer = hub::spawn(move || q2.close());
    assert_eq!(
        q.recv_timeout(Duration::from_secs(30)),
        Err(RecvTimeoutError::Disconnected)
    );
    closer.join().unwrap();
    assert_eq!(q.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(q.recv_timeout(MS), Err(RecvTimeoutError::Disconnected));
    hub::time::resume();

    // Items left at the close come out first; the joinable queue passes
    // both through.
    let jq = JoinableQueue::new();
    jq.put('a');
    jq.put('b');
    jq.close();
    assert_eq!(jq.try_recv(), Ok('a'));
    assert_eq!(jq.recv_timeout(MS), Ok('b'));
    assert_eq!(jq.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(jq.recv_timeout(MS), Err(RecvTimeoutError::Disconnected));
}
