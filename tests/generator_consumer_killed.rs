//! A generator that outlives its consumer: the consumer is killed while
//! the producer is blocked in the hub, and the item the producer yields
//! afterwards waits in the generator for the next resume, rather than
//! going up past the dead consumer to whatever greenlet is above it.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use greenlet::hub::{self, Pool, Queue};
use greenlet::{Generator, Greenlet, Thrown, Yielder};

#[path = "support/child.rs"]
mod child;
#[path = "support/hang_guard.rs"]
mod hang_guard;
#[path = "support/unwinding.rs"]
mod unwinding;

/// Counts its drops.
struct Item(u32, Rc<Cell<u32>>);

impl Drop for Item {
    fn drop(&mut self) {
        self.1.set(self.1.get() + 1);
    }
}

/// Spawns a consumer that resumes `g` and kills it once it waits there,
/// the producer blocked in the hub (its first wait).
fn kill_its_consumer_as_the_producer_waits<Y: 'static>(g: &Rc<RefCell<Generator<Y>>>) {
    let g2 = g.clone();
    let c = hub::spawn(move || drop(g2.borrow_mut().next()));
    hub::yield_now();
    hub::yield_now(); // c waits in `next`, the producer in its wait
    c.kill();
}

/// A generator yielding what it takes from `q`, shared so it outlives a
/// consumer.
fn from_queue(q: &Queue<u32>) -> Rc<RefCell<Generator<u32>>> {
    let q = q.clone();
    Rc::new(RefCell::new(Generator::new(move |y: &Yielder<u32>| loop {
        y.yield_(q.get());
    })))
}

/// A generator kept beyond its consumer.
type Shared = Rc<RefCell<Generator<Item>>>;

/// A queue, a shared generator of `Item`s whose producer `produce` takes
/// from it (and gives its items the drop count, the third), and that drop
/// count; the generator's consumer is killed while the producer waits.
fn consumer_killed(
    produce: impl FnOnce(&Yielder<Item>, Queue<u32>, Rc<Cell<u32>>) + 'static,
) -> (Queue<u32>, Shared, Rc<Cell<u32>>) {
    let q: Queue<u32> = Queue::new();
    let q2 = q.clone();
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Rc::new(RefCell::new(Generator::new(move |y: &Yielder<Item>| {
        produce(y, q2, d)
    })));
    kill_its_consumer_as_the_producer_waits(&g);
    (q, g, drops)
}

/// A shared generator of `Item`s of what it takes from `q`, whose consumer
/// was killed while the producer waited, and which then took 1: item 1
/// waits in the generator. Also its queue, and its items' drop count.
fn with_an_item_waiting() -> (Queue<u32>, Shared, Rc<Cell<u32>>) {
    // An error thrown in at a yield comes out as the next item (a `u32`'s
    // value; 0 for anything else).
    let (q, g, drops) = consumer_killed(|y, q, d| loop {
        let v = q.get();
        if let Err(e) = y.try_yield(Item(v, d.clone())) {
            let _ = y.try_yield(Item(e.downcast::<u32>().unwrap_or(0), d.clone()));
        }
    });
    q.put(1);
    hub::run(); // the producer takes 1 and yields it: it waits
    (q, g, drops)
}

/// The hub's greenlet drops a value that reaches it: the item used to go
/// there, silently.
#[test]
fn the_item_of_a_producer_whose_consumer_was_killed_waits_for_the_next_resume() {
    let out = hang_guard::guard(60, || {
        let (q, g, drops) = with_an_item_waiting();
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
        let (_q, g, drops) = with_an_item_waiting();
        let thrown = g.borrow_mut().throw(7u32);
        let dropped = drops.get(); // item 1, passed over
        let thrown = thrown
            .map(|i| i.map(|i| i.0))
            .map_err(|e: Thrown| e.is::<u32>());
        (thrown, dropped)
    });
    assert_eq!(out, Ok((Ok(Some(7)), 1)));
}

/// A producer that something other than the hub resumed (main, by a plain
/// switch) hands its item up past its dead consumer, to main waiting for
/// what comes back, as before the item could wait in the generator; it
/// used to park on the hub whenever the thread had one, and main's switch
/// got "nothing can run" (or waited for the hub's timers).
#[test]
fn a_producer_resumed_by_a_plain_switch_hands_its_item_up_past_a_dead_consumer() {
    let out = hang_guard::guard(60, || {
        hub::spawn(|| ()).join().unwrap(); // the thread has a hub
        let g = Rc::new(RefCell::new(Generator::new(|y: &Yielder<u32>| {
            let v = Greenlet::main().switch::<&str, u32>("paused").unwrap();
            y.yield_(v);
        })));
        let g2 = g.clone();
        let c = Greenlet::new(move |()| g2.borrow_mut().next());
        let paused = c.switch::<(), &str>(()).ok();
        c.kill(); // the producer is not at a yield
        let producer = g.borrow().greenlet().clone();
        (paused, producer.switch::<u32, u32>(5).ok())
    });
    assert_eq!(out, Ok((Some("paused"), Some(5))));
}

/// A close drops the waiting item (the docs say so), not the generator's
/// drop, later.
#[test]
fn a_close_drops_the_waiting_item() {
    let out = hang_guard::guard(60, || {
        let (_q, g, drops) = with_an_item_waiting();
        let before = drops.get();
        let closed = g.borrow_mut().close().is_ok();
        (before, closed, drops.get())
    });
    assert_eq!(out, Ok((0, true, 1)));
}

/// A throw refused (from a destructor while the thread unwinds) leaves the
/// generator as it was, its waiting item too: the next resume hands it
/// out.
#[test]
fn a_refused_throw_keeps_the_waiting_item() {
    let out = hang_guard::guard(60, || {
        let (q, g, drops) = with_an_item_waiting();
        struct ThrowsOnDrop(Shared, Rc<Cell<bool>>);
        impl Drop for ThrowsOnDrop {
            fn drop(&mut self) {
                let r = self.0.borrow_mut().throw(7u32);
                self.1.set(matches!(r, Ok(None)));
            }
        }
        let refused = Rc::new(Cell::new(false));
        let thrower = ThrowsOnDrop(g.clone(), refused.clone());
        let _ = catch_unwind(AssertUnwindSafe(move || {
            let _thrower = thrower;
            panic!("unwinding main");
        }));
        let dropped = drops.get();
        q.put(2);
        let next = g.borrow_mut().next().map(|i| i.0);
        (refused.get(), dropped, next)
    });
    assert_eq!(out, Ok((true, 0, Some(1))));
}

/// Counts its drops across threads.
struct SendItem(Arc<AtomicU32>);

impl Drop for SendItem {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waiting item goes with its generator, also one dropped by a
/// thread-local's destructor after the thread's teardown: the producer's
/// stack, which holds the other reference to it, is left suspended then.
#[test]
fn a_waiting_item_is_dropped_with_its_generator_after_the_threads_teardown() {
    thread_local! {
        static KEPT: RefCell<Option<Rc<RefCell<Generator<SendItem>>>>> =
            const { RefCell::new(None) };
    }
    let drops = Arc::new(AtomicU32::new(0));
    let d = drops.clone();
    let joined = hang_guard::guard(60, move || {
        std::thread::spawn(move || {
            // First used before the runtime: destroyed after its teardown.
            KEPT.with(|k| drop(k.borrow_mut().take()));
            let q: Queue<u32> = Queue::new();
            let q2 = q.clone();
            let g = Rc::new(RefCell::new(Generator::new(
                move |y: &Yielder<SendItem>| loop {
                    q2.get();
                    y.yield_(SendItem(d.clone()));
                },
            )));
            kill_its_consumer_as_the_producer_waits(&g);
            q.put(1);
            hub::run(); // item 1 waits
            KEPT.with(|k| *k.borrow_mut() = Some(g));
        })
        .join()
        .is_ok()
    });
    assert_eq!((joined, drops.load(Ordering::SeqCst)), (Ok(true), 1));
}

/// Panics when dropped.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("the item's destructor");
    }
}

/// A waiting item whose destructor panics, dropped with its generator by
/// a dropper that unwinds, has that panic reported: raised there, it
/// aborted the process (run in a child process).
#[test]
fn a_waiting_items_panic_is_reported_when_a_dropper_that_unwinds_drops_it() {
    const VAR: &str = "GREENLET_TEST_WAITING_ITEM_PANICS";
    const NAME: &str = "a_waiting_items_panic_is_reported_when_a_dropper_that_unwinds_drops_it";
    if std::env::var_os(VAR).is_none() {
        let out = child::run(NAME, VAR, "1");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", out.status);
        assert!(stderr.contains("the item's destructor"), "{stderr}");
        return;
    }
    let q: Queue<u32> = Queue::new();
    let q2 = q.clone();
    let g = Rc::new(RefCell::new(Generator::new(
        move |y: &Yielder<PanicsOnDrop>| loop {
            q2.get();
            y.yield_(PanicsOnDrop);
        },
    )));
    kill_its_consumer_as_the_producer_waits(&g);
    q.put(1);
    hub::run(); // the item waits
    let _ = catch_unwind(AssertUnwindSafe(move || {
        let _g = g;
        panic!("unwinding main");
    }));
}

/// The hub resumed another greenlet, not the producer, which the producer
/// then ran on from: an inner generator's producer (a pipeline), or a
/// child greenlet that did the waiting. The dead consumer was a spawned
/// greenlet, so what went up past it reached the hub greenlet, which
/// dropped it: the item waits then too.
#[test]
fn the_item_waits_when_the_hub_resumed_a_greenlet_below_the_producer() {
    /// Puts 1 for the producer, lets the hub run, then resumes the
    /// generator: the items dropped by then, and the item it gives.
    fn put_one_then_resume(q: &Queue<u32>, g: &Shared, drops: &Cell<u32>) -> (u32, Option<u32>) {
        q.put(1);
        hub::run();
        let dropped = drops.get();
        let next = g.borrow_mut().next().map(|i| i.0);
        (dropped, next)
    }

    let pipeline = hang_guard::guard(60, || {
        let (q, g, drops) = consumer_killed(|y, q, d| {
            let inner = Generator::new(move |y: &Yielder<u32>| loop {
                y.yield_(q.get());
            });
            for v in inner {
                y.yield_(Item(v, d.clone()));
            }
        });
        put_one_then_resume(&q, &g, &drops)
    });
    let child = hang_guard::guard(60, || {
        let (q, g, drops) = consumer_killed(|y, q, d| loop {
            let q = q.clone();
            let waiter = Greenlet::new(move |()| q.get());
            let v = waiter.switch::<(), u32>(()).unwrap();
            y.yield_(Item(v, d.clone()));
        });
        put_one_then_resume(&q, &g, &drops)
    });
    assert_eq!((pipeline, child), (Ok((0, Some(1))), Ok((0, Some(1)))));
}

/// The same with a producer woken by a direct `Greenlet::throw` (not by
/// the hub) whose spawned consumer is dead: the item it yields waits.
#[test]
fn the_item_of_a_producer_thrown_into_waits_when_its_spawned_consumer_is_dead() {
    let out = hang_guard::guard(60, || {
        let (_q, g, drops) = consumer_killed(|y, q, d| loop {
            // Catches the throw only (a close's kill unwinds on).
            let v = match catch_unwind(AssertUnwindSafe(|| q.get())) {
                Ok(v) => v,
                Err(p) if p.is::<&str>() => 99,
                Err(p) => std::panic::resume_unwind(p),
            };
            y.yield_(Item(v, d.clone()));
        });
        let producer = g.borrow().greenlet().clone();
        let _ = producer.throw::<&str, ()>("wake up");
        let dropped = drops.get();
        let next = g.borrow_mut().next().map(|i| i.0);
        (dropped, next)
    });
    assert_eq!(out, Ok((0, Some(99))));
}

/// A greenlet that caught the kill of a killer that unwinds (the thread
/// panics, it does not) resumes a generator whose item waits: the resume
/// hands the item out without a switch. Asked by the thread-wide
/// `panicking`, the resume took itself for refused and made the switch
/// after all, which was the kill's refusal.
#[test]
fn a_victim_that_caught_its_kill_gets_a_waiting_item_without_refusing() {
    let out = hang_guard::guard(60, || {
        let (_q, g, _drops) = with_an_item_waiting();
        let got = Rc::new(Cell::new(None));
        let (g3, got2) = (g.clone(), got.clone());
        let v = Greenlet::new(move |()| {
            let caught = catch_unwind(AssertUnwindSafe(|| {
                let _ = Greenlet::main().switch::<(), ()>(());
            }));
            drop(caught);
            got2.set(g3.borrow_mut().next().map(|i| i.0));
        });
        v.switch::<(), ()>(()).unwrap();
        assert_eq!(unwinding::try_kill_while_unwinding(&v), Ok(()));
        (got.get(), v.is_dead())
    });
    assert_eq!(out, Ok((Some(1), true)));
}

/// A throw made by a greenlet that caught the kill of a killer that
/// unwinds is that kill's refusal, and never reaches the producer: the
/// waiting item stays for the next resume (the throw dropped it first).
#[test]
fn a_throw_that_is_a_kills_refusal_keeps_the_waiting_item() {
    let out = hang_guard::guard(60, || {
        let (q, g, drops) = with_an_item_waiting();
        let g3 = g.clone();
        let v = Greenlet::new(move |()| {
            let caught = catch_unwind(AssertUnwindSafe(|| {
                let _ = Greenlet::main().switch::<(), ()>(());
            }));
            drop(caught);
            let _ = g3.borrow_mut().throw(7u32);
        });
        v.switch::<(), ()>(()).unwrap();
        let refused = Some(unwinding::try_kill_while_unwinding(&v).is_err());
        v.kill(); // it refused, suspended in its throw
        let dropped = drops.get();
        q.put(2);
        let next = g.borrow_mut().next().map(|i| i.0);
        (refused, dropped, next)
    });
    assert_eq!(out, Ok((Some(true), 0, Some(1))));
}
