//! A `Queue` in `hub::wait_any` / `wait` / `iwait`: ready while a get
//! would return at once (an item stored, or the queue closed), so one
//! greenlet can wait on several queues, events and greenlets at once (a
//! select).

use std::time::Duration;

use greenlet::hub::{self, Event, Queue, Waitable};
use greenlet::stats;

/// How many greenlets `stats()` shows blocked on anything.
fn blocked() -> usize {
    stats()
        .greenlets
        .iter()
        .filter(|g| g.waiting_on.is_some())
        .count()
}

#[test]
fn a_put_wakes_a_greenlet_waiting_on_two_queues() {
    let (a, b) = (Queue::new(), Queue::new());
    let waiter = {
        let (a, b) = (a.clone(), b.clone());
        hub::spawn(move || {
            let i = hub::wait_any(&[&a, &b], None).unwrap();
            let item = [&a, &b][i].try_get();
            (i, item)
        })
    };
    hub::yield_now(); // it waits
    assert_eq!(blocked(), 1);
    b.put("on b");
    assert_eq!(waiter.join().unwrap(), (1, Some("on b")));
    assert!(a.is_empty() && b.is_empty());
}

#[test]
fn a_queue_holding_an_item_or_closed_is_ready_at_once() {
    let (empty, full) = (Queue::new(), Queue::new());
    full.put(7);
    assert_eq!(hub::wait_any(&[&empty, &full], None), Some(1));
    assert_eq!(full.len(), 1, "waiting takes nothing");
    let closed: Queue<u32> = Queue::new();
    closed.close();
    assert_eq!(hub::wait_any(&[&empty, &closed], None), Some(1));
    assert!(closed.recv().is_err());
    // Nothing ready and a zero timeout: `None` at once.
    assert_eq!(hub::wait_any(&[&empty], Some(Duration::ZERO)), None);
    assert_eq!(blocked(), 0);
}

#[test]
fn a_close_wakes_a_waiting_greenlet() {
    let q: Queue<u32> = Queue::new();
    let waiter = {
        let q = q.clone();
        hub::spawn(move || (hub::wait_any(&[&q], None), q.recv().is_err()))
    };
    hub::yield_now();
    q.close();
    assert_eq!(waiter.join().unwrap(), (Some(0), true));
}

#[test]
fn an_item_handed_to_a_blocked_getter_leaves_the_queue_not_ready() {
    hub::time::pause();
    let q = Queue::new();
    let stop = Event::new();
    let getter = {
        let q = q.clone();
        hub::spawn(move || q.get())
    };
    let watcher = {
        let (q, stop) = (q.clone(), stop.clone());
        hub::spawn(move || {
            let items: [&dyn Waitable; 2] = [&q, &stop];
            hub::wait_any(&items, None)
        })
    };
    hub::yield_now(); // both wait
    q.put(1); // handed to the getter: nothing stored
    assert_eq!(getter.join().unwrap(), 1);
    assert!(!watcher.is_finished(), "the watcher saw no item");
    stop.set();
    assert_eq!(watcher.join().unwrap(), Some(1));
}

#[test]
fn iwait_gives_queues_in_the_order_they_got_items() {
    let qs = [Queue::new(), Queue::new(), Queue::new()];
    let feeder = {
        let qs = qs.clone();
        hub::spawn(move || {
            for i in [2, 0, 1] {
                qs[i].put(i);
                hub::yield_now();
            }
        })
    };
    let order: Vec<usize> = hub::iwait(&qs, None).collect();
    assert_eq!(order, [2, 0, 1]);
    feeder.join().unwrap();
    let held: Vec<usize> = qs.iter().map(|q| q.len()).collect();
    assert_eq!(held, [1, 1, 1], "iwait takes nothing");
}

#[test]
fn queues_that_held_items_before_they_were_watched_come_first_in_index_order() {
    let qs = [Queue::new(), Queue::new()];
    qs[1].put("first put");
    qs[0].put("second put");
    let late = Event::new();
    let setter = {
        let late = late.clone();
        hub::spawn(move || late.set())
    };
    let items: [&dyn Waitable; 3] = [&late, &qs[0], &qs[1]];
    // Both queues were ready before the wait looked: they count from
    // when it first looked, in the order it looked, before the event set
    // while it waited.
    let order: Vec<usize> = hub::iwait(&items, None).collect();
    assert_eq!(order, [1, 2, 0]);
    setter.join().unwrap();
}

#[test]
fn a_timed_out_or_killed_watcher_leaves_nothing_behind() {
    hub::time::pause();
    let q = Queue::new();
    // Timed out: the next put wakes nobody and stays stored.
    assert_eq!(hub::wait_any(&[&q], Some(Duration::from_secs(30))), None);
    q.put(1);
    assert_eq!(q.try_get(), Some(1));
    // Killed while it waits.
    let doomed = {
        let q = q.clone();
        hub::spawn(move || hub::wait_any(&[&q], None))
    };
    hub::yield_now();
    doomed.kill();
    assert_eq!(blocked(), 0);
    q.put(2);
    hub::run();
    assert_eq!(q.try_get(), Some(2));
}

#[test]
fn a_store_wakes_peekers_and_watchers_alike() {
    let q = Queue::new();
    let peeker = {
        let q = q.clone();
        hub::spawn(move || q.peek())
    };
    let watcher = {
        let q = q.clone();
        hub::spawn(move || hub::wait_any(&[&q], None))
    };
    hub::yield_now();
    assert_eq!(blocked(), 2);
    q.put(5);
    assert_eq!(peeker.join().unwrap(), Some(5));
    assert_eq!(watcher.join().unwrap(), Some(0));
    assert_eq!(q.len(), 1);
}

#[test]
fn a_select_loop_serves_two_queues_until_both_close() {
    let (small, large) = (Queue::new(), Queue::bounded(2));
    let producers = [
        {
            let small = small.clone();
            hub::spawn(move || {
                for i in 0..5 {
                    small.put(i);
                    hub::yield_now();
                }
                small.close();
            })
        },
        {
            let large = large.clone();
            hub::spawn(move || {
                for i in 100..110 {
                    large.put(i);
                }
                large.close();
            })
        },
    ];
    let mut got = Vec::new();
    let mut open = [true, true];
    let queues = [&small, &large];
    while open.iter().any(|&o| o) {
        let live: Vec<usize> = (0..2).filter(|&i| open[i]).collect();
        let ready: Vec<&Queue<i32>> = live.iter().map(|&i| queues[i]).collect();
        let i = live[hub::wait_any(&ready, None).unwrap()];
        match queues[i].try_get() {
            Some(item) => got.push(item),
            None if queues[i].is_closed() => open[i] = false,
            None => {} // taken by someone else first: wait again
        }
    }
    for p in producers {
        p.join().unwrap();
    }
    got.sort();
    let want: Vec<i32> = (0..5).chain(100..110).collect();
    assert_eq!(got, want);
}

#[test]
fn a_joinable_queue_is_ready_as_its_queue() {
    let jobs = hub::JoinableQueue::new();
    let watcher = {
        let jobs = jobs.clone();
        hub::spawn(move || hub::wait_any(&[&jobs], None))
    };
    hub::yield_now();
    jobs.put("job");
    assert_eq!(watcher.join().unwrap(), Some(0));
    assert_eq!(jobs.try_get(), Some("job"));
    jobs.task_done().unwrap();
    jobs.join();
}

/// One ready thing of each kind that no wait has looked at yet: a
/// channel holding a value, a queue holding an item, a free semaphore, a
/// readable socket (its writing end kept open).
struct FourReady {
    _tx: hub::Sender<u32>,
    rx: hub::Receiver<u32>,
    queue: Queue<u32>,
    sem: hub::Semaphore,
    _writer: greenlet::net::UnixStream,
    reader: greenlet::net::UnixStream,
}

fn four_ready() -> FourReady {
    use std::io::Write;
    let (tx, rx) = hub::channel::<u32>();
    tx.send(1).unwrap();
    let queue = Queue::new();
    queue.put(2);
    let (mut writer, reader) = greenlet::net::UnixStream::pair().unwrap();
    writer.write_all(b"x").unwrap();
    FourReady {
        _tx: tx,
        rx,
        queue,
        sem: hub::Semaphore::new(1),
        _writer: writer,
        reader,
    }
}

#[test]
fn things_ready_before_any_wait_looked_come_in_the_order_listed_whatever_their_kind() {
    let f = four_ready();
    let readable = f.reader.readable();
    let items: [&dyn Waitable; 4] = [&f.rx, &f.queue, &readable, &f.sem];
    assert_eq!(hub::wait(&items, None, None), [0, 1, 2, 3]);
    // Listed the other way round, the same things (fresh ones: these
    // have been looked at now) come the other way round.
    let f = four_ready();
    let readable = f.reader.readable();
    let items: [&dyn Waitable; 4] = [&f.sem, &readable, &f.queue, &f.rx];
    assert_eq!(hub::wait(&items, None, None), [0, 1, 2, 3]);
}
