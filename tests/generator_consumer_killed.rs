//! A generator that outlives its consumer: the consumer is killed while
//! the producer is blocked in the hub, and the item the producer yields
//! afterwards waits in the generator for the next resume, rather than
//! going up past the dead consumer to whatever greenlet is above it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use greenlet::hub::{self, Pool, Queue};
use greenlet::{Generator, Greenlet, Thrown, Yielder};

#[path = "support/hang_guard.rs"]
mod hang_guard;

/// Counts its drops.
struct Item(u32, Rc<Cell<u32>>);

impl Drop for Item {
    fn drop(&mut self) {
        self.1.set(self.1.get() + 1);
    }
}

/// A generator yielding what it takes from `q`, shared so it outlives a
/// consumer.
fn from_queue(q: &Queue<u32>) -> Rc<RefCell<Generator<u32>>> {
    let q = q.clone();
    Rc::new(RefCell::new(Generator::new(move |y: &Yielder<u32>| loop {
        y.yield_(q.get());
    })))
}

/// The hub's greenlet drops a value that reaches it: the item used to go
/// there, silently.
#[test]
fn the_item_of_a_producer_whose_consumer_was_killed_waits_for_the_next_resume() {
    let out = hang_guard::guard(60, || {
        let q: Queue<u32> = Queue::new();
        let q2 = q.clone();
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let g = Rc::new(RefCell::new(Generator::new(
            move |y: &Yielder<Item>| loop {
                let v = q2.get();
                y.yield_(Item(v, d.clone()));
            },
        )));
        let g2 = g.clone();
        let c = hub::spawn(move || g2.borrow_mut().next().map(|i| i.0));
        hub::yield_now();
        hub::yield_now(); // c waits in `next`, the producer in `get`
        c.kill();
        q.put(1);
        hub::run(); // the producer takes 1 and yields it
        let dropped_before = drops.get();
        let first = g.borrow_mut().next().map(|i| i.0);
        q.put(2);
        let second = g.borrow_mut().next().map(|i| i.0);
        (dropped_before, first, second)
    });
    assert_eq!(out, Ok((0, Some(1), Some(2))));
}

/// The hub's greenlet had never run (every switch was a hand-off): the
/// item's switch used to start it with a value of the wrong type, and the
/// producer panicked at its yield, ending the generator.
#[test]
fn the_item_waits_also_when_the_hub_greenlet_never_ran() {
    let out = hang_guard::guard(60, || {
        let q: Queue<u32> = Queue::new();
        let g = from_queue(&q);
        let g2 = g.clone();
        let c = hub::spawn(move || g2.borrow_mut().next());
        hub::yield_now(); // c runs; the producer waits in `get`
        c.kill();
        q.put(1);
        hub::yield_now(); // the producer takes 1 and yields it
        let finished = g.borrow().is_finished();
        let first = g.borrow_mut().next();
        q.put(2);
        let second = g.borrow_mut().next();
        (finished, first, second)
    });
    assert_eq!(out, Ok((false, Some(1), Some(2))));
}

/// The killed consumer's parent is main, waiting in another generator's
/// resume: the item used to land there, taken for that generator's item.
#[test]
fn another_generators_resume_does_not_take_the_item() {
    let out = hang_guard::guard(60, || {
        let q: Queue<u32> = Queue::new();
        let g = from_queue(&q);
        let g2 = g.clone();
        let c = Greenlet::new(move |()| g2.borrow_mut().next());
        // The producer waits in `get`; nothing else can run, so main's
        // switch gets the hub's "nothing can run", and c waits in `next`.
        let _ = c.switch::<(), Option<u32>>(());
        c.kill();
        let q3 = q.clone();
        let mut other = Generator::new(move |y: &Yielder<u32>| {
            q3.put(1); // wakes the first producer
            hub::yield_now(); // which runs and yields 1
            y.yield_(100);
        });
        let others = other.next();
        let first = g.borrow_mut().next();
        (others, first)
    });
    assert_eq!(out, Ok((Some(100), Some(1))));
}

/// `Pool::imap` promises that nothing is lost when its `next` is
/// interrupted: over a generator whose reader was killed, item 1 was.
#[test]
fn imap_over_a_generator_loses_no_item_when_its_reader_is_killed() {
    let out = hang_guard::guard(60, || {
        let q: Queue<u32> = Queue::new();
        let q2 = q.clone();
        let input = Generator::new(move |y: &Yielder<u32>| loop {
            match q2.get() {
                0 => return,
                v => y.yield_(v),
            }
        });
        let pool = Pool::new(2);
        let it = Rc::new(RefCell::new(pool.imap(input, |x| x * 10)));
        let it2 = it.clone();
        let c = hub::spawn(move || it2.borrow_mut().next().map(Result::unwrap));
        hub::yield_now();
        hub::yield_now(); // c reads the input: its producer waits in `get`
        c.kill();
        for v in [1, 2, 0] {
            q.put(v);
        }
        hub::run();
        let rest: Vec<u32> = it.borrow_mut().by_ref().map(Result::unwrap).collect();
        rest
    });
    assert_eq!(out, Ok(vec![10, 20]));
}

/// A throw passes a waiting item over: it is dropped, and the error is
/// raised at the yield that left it (here handled, the producer yields on).
#[test]
fn a_throw_drops_the_waiting_item_and_raises_at_its_yield() {
    let out = hang_guard::guard(60, || {
        let q: Queue<u32> = Queue::new();
        let q2 = q.clone();
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let g = Rc::new(RefCell::new(Generator::new(
            move |y: &Yielder<Item>| loop {
                let v = q2.get();
                if let Err(e) = y.try_yield(Item(v, d.clone())) {
                    let _ = y.try_yield(Item(e.downcast::<u32>().unwrap_or(0), d.clone()));
                }
            },
        )));
        let g2 = g.clone();
        let c = hub::spawn(move || g2.borrow_mut().next().map(|i| i.0));
        hub::yield_now();
        hub::yield_now();
        c.kill();
        q.put(1);
        hub::run(); // item 1 waits in the generator
        let thrown = g.borrow_mut().throw(7u32);
        let dropped = drops.get(); // item 1, passed over
        let thrown = thrown
            .map(|i| i.map(|i| i.0))
            .map_err(|e: Thrown| e.is::<u32>());
        (thrown, dropped)
    });
    assert_eq!(out, Ok((Ok(Some(7)), 1)));
}
