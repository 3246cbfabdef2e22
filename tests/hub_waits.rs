//! Where a blocked call's wait lives. A wait with no deadline, made while
//! no `with_timeout` scope is live on the thread, is kept in the blocked
//! call's own frame and the primitive's list points into that frame; any
//! other wait is in the hub's table under a key. These tests take the frame
//! waits through every way out (woken, killed, thrown into, woken and then
//! killed before running, closed) and mix both kinds on one list, checking
//! who gets what, in which order, and that `stats` still sees every
//! blocked greenlet. Under memcheck (`scripts/valgrind.sh`) they also show
//! that no list is left pointing into a frame that has gone.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, with_timeout, Event, Queue};
use greenlet::{stats, WaitOn};

/// Getters that record what they got, in the order they got it.
fn getters(
    q: &Queue<u32>,
    n: usize,
    got: &Rc<RefCell<Vec<(usize, u32)>>>,
) -> Vec<hub::JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let (q, got) = (q.clone(), got.clone());
            hub::spawn(move || {
                let v = q.get();
                got.borrow_mut().push((i, v));
            })
        })
        .collect()
}

#[test]
fn killed_getters_leave_the_list_and_the_rest_are_served_in_order() {
    let q = Queue::new();
    let got = Rc::new(RefCell::new(Vec::new()));
    let hs = getters(&q, 6, &got);
    hub::yield_now(); // all six block, in order
    hs[1].kill();
    hs[4].kill();
    hs[0].kill();
    for v in 10..14 {
        q.put(v);
    }
    for h in hs {
        let _ = h.join();
    }
    assert_eq!(*got.borrow(), [(2, 10), (3, 11), (5, 12)]);
    assert_eq!(q.len(), 1, "nobody was left to take the fourth item");
    assert_eq!(q.try_get(), Some(13));
}

#[test]
fn a_getter_killed_after_its_wake_up_passes_the_item_on() {
    let q = Queue::new();
    let got = Rc::new(RefCell::new(Vec::new()));
    let hs = getters(&q, 3, &got);
    hub::yield_now();
    q.put(7); // wakes getter 0, which has not run yet
    hs[0].kill();
    hub::yield_now();
    assert_eq!(*got.borrow(), [(1, 7)]);
    q.put(8);
    for h in hs {
        let _ = h.join();
    }
    assert_eq!(*got.borrow(), [(1, 7), (2, 8)]);
    assert!(q.is_empty());
}

#[test]
fn a_throw_into_a_blocked_getter_unwinds_out_of_its_get() {
    #[derive(Debug)]
    struct Stop;
    let q: Queue<u32> = Queue::new();
    let q2 = q.clone();
    let h = hub::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q2.get()));
        assert!(r.unwrap_err().is::<Stop>());
        // Blocks again, in a new wait, after the old one went.
        q2.get()
    });
    hub::yield_now();
    // Control comes back here once `h` has blocked again (through the hub,
    // which has nothing else to run).
    let _ = h.greenlet().throw::<Stop, ()>(Stop);
    hub::yield_now();
    q.put(5);
    assert_eq!(h.join().unwrap(), 5);
    assert!(q.is_empty());
}

#[test]
fn frame_and_table_waits_on_one_list_are_served_first_come_first_served() {
    let q = Queue::new();
    let got = Rc::new(RefCell::new(Vec::new()));
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let (q, got) = (q.clone(), got.clone());
            hub::spawn(move || {
                // Even ones wait in their frames, odd ones with a deadline
                // (in the hub's table).
                let v = if i % 2 == 0 {
                    Some(q.get())
                } else {
                    q.get_timeout(Duration::from_secs(3600))
                };
                got.borrow_mut().push((i, v));
            })
        })
        .collect();
    hub::yield_now();
    for v in 0..4 {
        q.put(v);
    }
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(
        *got.borrow(),
        [(0, Some(0)), (1, Some(1)), (2, Some(2)), (3, Some(3))]
    );
}

#[test]
fn close_ends_frame_waits_too() {
    let q: Queue<u32> = Queue::bounded(1);
    q.put(1);
    let (g, p) = (Queue::<u32>::new(), q.clone());
    let g2 = g.clone();
    let getter = hub::spawn(move || g2.recv());
    let putter = hub::spawn(move || p.send(2));
    hub::yield_now();
    g.close();
    q.close();
    assert!(getter.join().unwrap().is_err());
    assert_eq!(putter.join().unwrap().unwrap_err().0, 2);
}

#[test]
fn stats_see_every_frame_wait_until_it_ends() {
    let q: Queue<u32> = Queue::new();
    let e = Event::new();
    let blocked_on = |id| {
        stats()
            .greenlets
            .iter()
            .find(|g| g.id == id)
            .and_then(|g| g.waiting_on)
    };
    let (q1, e1) = (q.clone(), e.clone());
    let a = hub::spawn(move || q1.get());
    let b = hub::spawn(move || e1.wait());
    let a_id = a.greenlet().id();
    let c = hub::spawn(move || a.join().unwrap());
    hub::yield_now();
    assert_eq!(
        blocked_on(a_id),
        Some(WaitOn::QueueGet {
            queue: q.id(),
            until: None
        })
    );
    assert_eq!(
        blocked_on(b.greenlet().id()),
        Some(WaitOn::Event { until: None })
    );
    assert_eq!(
        blocked_on(c.greenlet().id()),
        Some(WaitOn::Join { greenlet: a_id })
    );
    // The middle of the hub's list of frame waits goes first.
    e.set();
    b.join().unwrap();
    assert_eq!(
        blocked_on(a_id),
        Some(WaitOn::QueueGet {
            queue: q.id(),
            until: None
        })
    );
    q.put(3);
    assert_eq!(c.join().unwrap(), 3);
    let blocked = stats()
        .greenlets
        .iter()
        .filter(|g| g.waiting_on.is_some())
        .count();
    assert_eq!(blocked, 0, "no frame wait is left behind");
}

#[test]
fn a_scope_of_another_greenlet_leaves_a_frame_wait_alone() {
    hub::time::pause(); // the scope's deadline comes without waiting for it
    let q: Queue<u32> = Queue::new();
    let q2 = q.clone();
    let getter = hub::spawn(move || q2.get());
    hub::yield_now(); // blocked in its frame: no scope was live
    let timed = hub::spawn(|| {
        with_timeout(Duration::from_millis(1), || {
            hub::sleep(Duration::from_secs(3600))
        })
        .is_err()
    });
    assert!(timed.join().unwrap(), "the scope expired");
    q.put(9);
    assert_eq!(getter.join().unwrap(), 9);
}
