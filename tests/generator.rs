//! Two-way generators: send, throw, close, drop, and the producer's stack.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{stats, Generator, GeneratorState, Greenlet, Thrown, Yielder};

#[path = "support/child.rs"]
mod child;

/// Counts its drops in a shared counter.
struct Counted(Rc<Cell<usize>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

fn counter() -> Rc<Cell<usize>> {
    Rc::new(Cell::new(0))
}

// ----- send and resume -----

#[test]
fn sent_values_arrive_in_order_and_the_first_is_the_argument() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    let mut g = Generator::two_way(move |y: &Yielder<u32, u32>, first: u32| {
        let mut v = first;
        for _ in 0..5 {
            log.borrow_mut().push(v);
            v = y.yield_(v * 10);
        }
        log.borrow_mut().push(v);
        "end"
    });
    let mut out = Vec::new();
    for v in 1..=5 {
        out.push(g.send(v).expect("an item per send"));
    }
    assert_eq!(out, [10, 20, 30, 40, 50]);
    assert_eq!(g.send(6), None);
    assert_eq!(*seen.borrow(), [1, 2, 3, 4, 5, 6]);
    assert_eq!(g.return_value(), Some("end"));
    assert_eq!(g.send(7), None, "a finished generator takes nothing more");
    assert_eq!(*seen.borrow(), [1, 2, 3, 4, 5, 6]);
}

#[test]
fn resume_reports_yielded_complete_then_exhausted() {
    let mut g = Generator::two_way(|y: &Yielder<String, String>, first: String| {
        let second = y.yield_(first.to_uppercase());
        second.len()
    });
    assert_eq!(
        g.resume("abc".to_string()),
        GeneratorState::Yielded("ABC".to_string())
    );
    assert!(!g.is_finished());
    assert_eq!(g.resume("four".to_string()), GeneratorState::Complete(4));
    assert!(g.is_finished());
    assert_eq!(g.resume("x".to_string()), GeneratorState::Exhausted);
    assert_eq!(g.return_value(), None, "handed out by resume");
    let shown = format!("{g:?}");
    assert!(
        shown.starts_with("Generator { producer: Greenlet {"),
        "{shown}"
    );
    assert!(shown.ends_with("finished: true }"), "{shown}");
}

#[test]
fn large_values_cross_both_ways() {
    // Values wider than a word travel by pointer into the sender's frame.
    let mut g = Generator::two_way(|y: &Yielder<[u64; 8], [u64; 8]>, first: [u64; 8]| {
        let mut v = first;
        loop {
            v.iter_mut().for_each(|x| *x += 1);
            v = y.yield_(v);
        }
    });
    assert_eq!(g.send([0; 8]), Some([1; 8]));
    assert_eq!(g.send([41; 8]), Some([42; 8]));
}

#[test]
fn every_value_sent_or_yielded_is_dropped_once() {
    let drops = counter();
    let made = Rc::new(Cell::new(0));
    let (d, m) = (drops.clone(), made.clone());
    let mut g = Generator::two_way(move |y: &Yielder<Counted, Counted>, first: Counted| {
        let mut got = vec![first];
        loop {
            m.set(m.get() + 1);
            got.push(y.yield_(Counted(d.clone())));
        }
    });
    for _ in 0..10 {
        made.set(made.get() + 1);
        let item = g.send(Counted(drops.clone())).unwrap();
        drop(item);
    }
    assert_eq!(made.get(), 20);
    assert_eq!(
        drops.get(),
        10,
        "the yielded items, dropped by the consumer"
    );
    drop(g); // unwinds the producer, which holds the ten sent values
    assert_eq!(drops.get(), 20);
}

#[test]
fn a_panic_during_send_resumes_in_the_consumer() {
    let mut g = Generator::two_way(|y: &Yielder<u8, u8>, first: u8| {
        let v = y.yield_(first);
        if v == 0 {
            panic!("zero sent");
        }
    });
    assert_eq!(g.send(1), Some(1));
    let err = panic::catch_unwind(AssertUnwindSafe(|| g.send(0))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"zero sent"));
    assert!(g.is_finished());
    assert_eq!(g.send(1), None);
}

// ----- throw -----

#[derive(Debug, PartialEq)]
struct Stop(u32);

#[test]
fn a_handled_throw_returns_the_next_item() {
    let mut g = Generator::new(|y: &Yielder<u32>| {
        let mut n = 0;
        loop {
            match y.try_yield(n) {
                Ok(()) => n += 1,
                Err(e) => n = e.downcast::<Stop>().expect("a Stop").0,
            }
        }
    });
    assert_eq!(g.next(), Some(0));
    assert_eq!(g.next(), Some(1));
    assert_eq!(g.throw(Stop(100)).unwrap(), Some(100));
    assert_eq!(g.next(), Some(101));
    assert!(!g.is_finished());
}

#[test]
fn a_handled_throw_that_ends_the_producer_returns_none() {
    let mut g = Generator::new(|y: &Yielder<u32>| -> Result<&str, Thrown> {
        y.try_yield(1)?;
        y.try_yield(2)?;
        Ok("finished")
    });
    assert_eq!(g.next(), Some(1));
    assert_eq!(g.throw(Stop(5)).unwrap(), None);
    assert!(g.is_finished());
    let err = g.return_value().unwrap().unwrap_err();
    assert_eq!(err.downcast::<Stop>().unwrap(), Stop(5));
    assert_eq!(g.next(), None);
}

#[test]
fn an_unhandled_throw_unwinds_the_producer_and_comes_back() {
    let drops = counter();
    let d = drops.clone();
    let mut g = Generator::new(move |y: &Yielder<u32>| {
        let _guard = Counted(d);
        for i in 0.. {
            y.yield_(i);
        }
    });
    let before = stats().stacks_in_use;
    assert_eq!(g.next(), Some(0));
    let err = g.throw(Stop(7)).unwrap_err();
    assert_eq!(err.downcast::<Stop>().unwrap(), Stop(7));
    assert_eq!(drops.get(), 1, "the producer's stack was unwound");
    assert!(g.is_finished());
    assert!(g.greenlet().is_dead());
    assert_eq!(g.next(), None);
    assert_eq!(g.return_value(), None);
    assert_eq!(
        stats().stacks_in_use,
        before - 1,
        "its stack is back in the pool"
    );
}

#[test]
fn a_thrown_error_can_be_caught_as_an_unwind_and_raised_again() {
    let mut g = Generator::new(|y: &Yielder<&str>| {
        let caught = panic::catch_unwind(AssertUnwindSafe(|| y.yield_("first")));
        let thrown = *caught.unwrap_err().downcast::<Thrown>().unwrap();
        assert!(thrown.is::<Stop>());
        y.yield_("caught it");
        thrown.raise();
    });
    assert_eq!(g.next(), Some("first"));
    assert_eq!(g.throw(Stop(1)).unwrap(), Some("caught it"));
    // Raised again on the next resume: it unwinds the consumer's `next`.
    let p = panic::catch_unwind(AssertUnwindSafe(|| g.next())).unwrap_err();
    assert_eq!(
        p.downcast::<Thrown>().unwrap().downcast::<Stop>().unwrap(),
        Stop(1)
    );
    assert!(g.is_finished());
}

#[test]
fn a_panic_while_handling_a_throw_resumes_in_the_consumer() {
    let mut g = Generator::new(|y: &Yielder<u8>| {
        if y.try_yield(1).is_err() {
            panic!("cannot handle it");
        }
    });
    g.next();
    let p = panic::catch_unwind(AssertUnwindSafe(|| g.throw(Stop(0)))).unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"cannot handle it"));
    assert!(g.is_finished());
}

#[test]
fn a_throw_into_a_never_started_generator_never_runs_it() {
    let drops = counter();
    let ran = Rc::new(Cell::new(false));
    let (d, r) = (Counted(drops.clone()), ran.clone());
    let before = stats().stacks_in_use;
    let mut g = Generator::new(move |y: &Yielder<u8>| {
        let _d = d;
        r.set(true);
        y.yield_(1);
    });
    let err = g.throw(Stop(3)).unwrap_err();
    assert_eq!(err.downcast::<Stop>().unwrap(), Stop(3));
    assert!(!ran.get());
    assert_eq!(drops.get(), 1, "the producer's closure was dropped unrun");
    assert!(g.is_finished());
    assert_eq!(g.next(), None);
    assert_eq!(stats().stacks_in_use, before);
}

#[test]
fn a_throw_into_a_finished_generator_comes_straight_back() {
    let mut g = Generator::new(|y: &Yielder<u8>| y.yield_(1));
    assert_eq!(g.by_ref().count(), 1);
    let err = g.throw("late").unwrap_err();
    assert_eq!(err.message(), Some("late"));
    assert_eq!(
        err.to_string(),
        "an error was thrown into a generator: late"
    );
    assert_eq!(format!("{err:?}"), "Thrown(\"late\")");
}

// ----- close and drop -----

#[test]
fn close_unwinds_a_suspended_producer() {
    let drops = counter();
    let d = drops.clone();
    let before = stats().stacks_in_use;
    let mut g = Generator::new(move |y: &Yielder<u32>| {
        let _guard = Counted(d);
        for i in 0.. {
            y.yield_(i);
        }
        "never"
    });
    assert_eq!(g.next(), Some(0));
    assert!(g.close().is_ok());
    assert_eq!(drops.get(), 1);
    assert!(g.is_finished());
    assert_eq!(g.next(), None);
    assert_eq!(g.resume(()), GeneratorState::Exhausted);
    assert!(g.close().is_ok(), "a second close does nothing");
    drop(g);
    assert_eq!(drops.get(), 1);
    assert_eq!(stats().stacks_in_use, before);
}

#[test]
fn close_of_a_finished_generator_keeps_its_return_value() {
    let mut g = Generator::new(|y: &Yielder<u8>| {
        y.yield_(1);
        "value"
    });
    assert_eq!(g.by_ref().count(), 1);
    assert!(g.close().is_ok());
    assert_eq!(g.return_value(), Some("value"));
}

#[test]
fn close_of_a_never_started_generator_drops_the_producer_unrun() {
    let drops = counter();
    let ran = Rc::new(Cell::new(false));
    let (d, r) = (Counted(drops.clone()), ran.clone());
    let before = stats().stacks_in_use;
    let mut g = Generator::new(move |y: &Yielder<u8>| {
        let _d = d;
        r.set(true);
        y.yield_(1);
    });
    assert!(g.close().is_ok());
    assert!(!ran.get());
    assert_eq!(drops.get(), 1);
    assert!(g.is_finished());
    assert_eq!(g.next(), None);
    assert_eq!(stats().stacks_in_use, before);
}

#[test]
fn a_producer_that_yields_while_closed_is_reported() {
    let drops = counter();
    let d = drops.clone();
    let mut g = Generator::new(move |y: &Yielder<u8>| {
        let _guard = Counted(d);
        let _ = panic::catch_unwind(AssertUnwindSafe(|| loop {
            y.yield_(1);
        }));
        y.yield_(2); // refuses to die
    });
    assert_eq!(g.next(), Some(1));
    let p = g.close().unwrap_err();
    let msg = p.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("yielded while it was being unwound"), "{msg}");
    assert_eq!(drops.get(), 1);
    assert!(g.is_finished());
    assert_eq!(g.next(), None);
}

#[test]
fn a_producer_that_catches_the_close_and_returns_keeps_its_value() {
    let mut g = Generator::new(|y: &Yielder<u8>| {
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| loop {
            y.yield_(1);
        }));
        assert!(outcome.is_err(), "the close unwound the loop");
        "cleaned up"
    });
    assert_eq!(g.next(), Some(1));
    assert!(g.close().is_ok());
    assert_eq!(g.return_value(), Some("cleaned up"));
}

#[test]
fn dropping_an_unstarted_or_suspended_generator_drops_everything_once() {
    let drops = counter();
    let before = stats().stacks_in_use;
    for started in [false, true] {
        let held = Counted(drops.clone());
        let d = drops.clone();
        let mut g = Generator::new(move |y: &Yielder<Counted>| {
            let _held = held;
            loop {
                y.yield_(Counted(d.clone()));
            }
        });
        if started {
            drop(g.next());
        }
        drop(g);
    }
    // Unstarted: the closure's value. Started: one item and the closure's.
    assert_eq!(drops.get(), 3);
    assert_eq!(stats().stacks_in_use, before);
}

// ----- nesting -----

fn nums(drops: Rc<Cell<usize>>) -> Generator<u32> {
    Generator::new(move |y: &Yielder<u32>| {
        let _guard = Counted(drops);
        for i in 0.. {
            y.yield_(i)
        }
    })
}

#[test]
fn nested_generators_dropped_early_are_unwound_and_free_their_stacks() {
    let drops = counter();
    let before = stats().stacks_in_use;
    for _ in 0..1000 {
        let d = drops.clone();
        let evens: Generator<u32> = Generator::new(move |y: &Yielder<u32>| {
            let _guard = Counted(d.clone());
            for v in nums(d) {
                if v % 2 == 0 {
                    y.yield_(v)
                }
            }
        });
        let got: Vec<u32> = evens.take(3).collect();
        assert_eq!(got, [0, 2, 4]);
    }
    assert_eq!(stats().stacks_in_use, before, "no stack kept by a cycle");
    assert_eq!(drops.get(), 2000, "both producers unwound, every round");
}

#[test]
fn a_generator_can_send_to_another_from_its_producer() {
    // A pipeline: the outer producer feeds every item it is sent through an
    // inner two-way generator.
    let mut outer = Generator::two_way(|y: &Yielder<u32, u32>, first: u32| {
        let mut double = Generator::two_way(|y: &Yielder<u32, u32>, mut v: u32| loop {
            v = y.yield_(v * 2);
        });
        let mut v = first;
        loop {
            let doubled = double.send(v).unwrap();
            v = y.yield_(doubled + 1);
        }
    });
    assert_eq!(outer.send(1), Some(3));
    assert_eq!(outer.send(10), Some(21));
}

// ----- a killed producer -----

#[test]
fn a_killed_unit_generator_ends() {
    let mut g = Generator::new(|y: &Yielder<()>| loop {
        y.yield_(());
    });
    assert_eq!(g.next(), Some(()));
    g.greenlet().kill();
    assert!(g.is_finished());
    assert_eq!(g.next(), None);
    assert_eq!(g.next(), None);
    assert_eq!(g.resume(()), GeneratorState::Exhausted);

    // Items of another type than the sent one take the same way out.
    let mut numbers = Generator::new(|y: &Yielder<u32>| loop {
        y.yield_(7);
    });
    assert_eq!(numbers.next(), Some(7));
    numbers.greenlet().kill();
    assert_eq!(numbers.next(), None);

    let mut unstarted = Generator::new(|y: &Yielder<()>| y.yield_(()));
    unstarted.greenlet().kill();
    assert_eq!(unstarted.next(), None);
    assert!(unstarted.throw(Stop(1)).is_err());
    assert!(unstarted.close().is_ok());
}

// ----- deep recursion -----

/// Walks down `depth` levels; at each level on the way down and up it
/// yields the level and adds what it is sent.
fn descend(y: &Yielder<u32, u64>, depth: u32) -> u64 {
    let down = y.yield_(depth);
    let below = if depth == 0 { 0 } else { descend(y, depth - 1) };
    let up = y.yield_(depth);
    down + below + up
}

#[test]
fn a_producer_yields_from_deep_recursion_while_receiving_values() {
    const DEPTH: u32 = 1000;
    let mut g = Generator::two_way(|y: &Yielder<u32, u64>, first: u64| first + descend(y, DEPTH));
    let mut levels = Vec::new();
    let mut sent = 0u64;
    let mut v = 1u64;
    let total = loop {
        match g.resume(v) {
            GeneratorState::Yielded(level) => {
                levels.push(level);
                v = u64::from(level) * 3 + 1;
                sent += v;
            }
            GeneratorState::Complete(total) => break total,
            GeneratorState::Exhausted => unreachable!(),
        }
    };
    let down: Vec<u32> = (0..=DEPTH).rev().collect();
    let up: Vec<u32> = (0..=DEPTH).collect();
    assert_eq!(levels, [down, up].concat());
    assert_eq!(total, 1 + sent, "every sent value arrived once");
}

#[test]
fn a_closer_killed_by_the_producers_destructor_still_dies() {
    use greenlet::Greenlet;

    /// Kills the greenlet it holds when dropped.
    struct KillOnDrop(Greenlet);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            self.0.kill();
        }
    }

    let after_close = Rc::new(Cell::new(false));
    let flag = after_close.clone();
    let closer = Greenlet::new(move |()| {
        let me = Greenlet::current().clone();
        let mut g = Generator::new(move |y: &Yielder<u8>| {
            let _killer = KillOnDrop(me);
            loop {
                y.yield_(1);
            }
        });
        assert_eq!(g.next(), Some(1));
        let _ = g.close();
        flag.set(true); // never reached: the close killed this greenlet
    });
    let outcome = closer.switch::<(), ()>(());
    assert!(
        matches!(outcome, Err(greenlet::SwitchError::Killed)),
        "{outcome:?}"
    );
    assert!(!after_close.get());
    assert!(closer.is_dead());
}

// ----- with the hub -----

#[test]
fn producers_may_block_in_the_hub_between_items() {
    use greenlet::hub;

    let trace = Rc::new(RefCell::new(Vec::new()));
    let consumers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let log = trace.clone();
            hub::spawn(move || {
                let numbers = Generator::new(|y: &Yielder<u32>| {
                    for i in 0..3 {
                        hub::yield_now(); // lets the other consumer run
                        y.yield_(i);
                    }
                });
                for i in numbers {
                    log.borrow_mut().push(format!("{name}{i}"));
                }
            })
        })
        .collect();
    hub::run();
    for c in consumers {
        c.join().unwrap();
    }
    assert_eq!(*trace.borrow(), ["a0", "b0", "a1", "b1", "a2", "b2"]);
}

#[test]
fn a_panic_of_the_producers_own_child_unwinds_out_of_its_yield() {
    use greenlet::Greenlet;

    let mut g = Generator::new(|y: &Yielder<Greenlet>| {
        // A child of the producer's: its panic comes to the producer.
        let child = Greenlet::new(|()| -> () { panic!("child failed") });
        let caught = panic::catch_unwind(AssertUnwindSafe(|| y.yield_(child)));
        let p = caught.unwrap_err();
        assert_eq!(p.downcast_ref::<&str>(), Some(&"child failed"));
        "survived"
    });
    let child = g.next().unwrap();
    // The consumer starts the child; the child's panic goes to its parent,
    // the producer, at its pending yield, and the producer then returns.
    assert!(child.switch::<(), ()>(()).is_err());
    assert!(g.is_finished());
    assert_eq!(g.return_value(), Some("survived"));
}

#[test]
fn a_close_stopped_by_a_panicking_switch_hook_is_made_without_it_then_raises_its_panic() {
    // The hook panics on the kill, before it begins: it is removed and the
    // close made without it (the producer unwound, its destructors run),
    // and the hook's panic comes out of `close` afterwards, not as the
    // producer's `Err` (stop 47 changed this: the close used to stop, the
    // generator left open, contrary to "finished afterwards").
    struct Guard(Rc<Cell<u32>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let cleaned = Rc::new(Cell::new(0));
    let c = cleaned.clone();
    let mut g = Generator::new(move |y: &Yielder<u8>| {
        let _guard = Guard(c);
        loop {
            y.yield_(1);
        }
    });
    assert_eq!(g.next(), Some(1));
    let mut fired = false;
    greenlet::set_switch_hook(Some(Box::new(move |e| {
        if e.kind == greenlet::SwitchKind::Kill && !fired {
            fired = true;
            panic!("a profiler's bug");
        }
    })));
    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.close()));
    assert!(
        greenlet::set_switch_hook(None).is_none(),
        "the hook was removed"
    );
    let raised = first.expect_err("the hook's panic comes out of close");
    assert_eq!(raised.downcast_ref::<&str>(), Some(&"a profiler's bug"));
    assert!(g.is_finished());
    assert_eq!(cleaned.get(), 1);
    assert!(g.close().is_ok());
    assert_eq!(g.next(), None);
}

/// Makes one of the current greenlet's locals panic when it is dropped,
/// as the greenlet ends.
fn panic_when_locals_drop() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("a local's destructor");
        }
    }
    static LATE: greenlet::Local<RefCell<Option<PanicsOnDrop>>> =
        greenlet::Local::new(|| RefCell::new(None));
    LATE.with(|l| *l.borrow_mut() = Some(PanicsOnDrop));
}

#[test]
fn a_producer_whose_local_panics_after_it_returned_has_no_return_value() {
    // It returned "ret", then a destructor of one of its greenlet-locals
    // panicked as the greenlet ended: the consumer gets the panic, and the
    // generator no return value (it was kept).
    let mut g = Generator::new(|y: &Yielder<u8>| {
        panic_when_locals_drop();
        y.yield_(1);
        "ret"
    });
    assert_eq!(g.next(), Some(1));
    let r = panic::catch_unwind(AssertUnwindSafe(|| g.next()));
    assert!(r.is_err(), "the local's panic reaches the consumer");
    assert!(g.is_finished());
    assert_eq!(g.return_value(), None);
}

#[test]
fn a_producer_that_catches_its_close_returns_and_panics_has_no_return_value() {
    let mut g = Generator::new(|y: &Yielder<u8>| {
        panic_when_locals_drop();
        // Catches the close's unwinding and returns.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| loop {
            y.yield_(1);
        }));
        "ret"
    });
    assert_eq!(g.next(), Some(1));
    assert!(g.close().is_err(), "the local's panic");
    assert!(g.is_finished());
    assert_eq!(g.return_value(), None);
}

/// The variable that makes a re-run of this binary play
/// `a_generator_drained_while_its_consumer_unwinds_yields_nothing`.
const UNWINDING: &str = "GREENLET_GENERATOR_UNWINDING";

/// A generator drained in a destructor while its consumer unwinds cannot
/// run its producer (no switch may be made there): `next` gives `None`
/// and the generator is left as it was. It panicked, and a panic there
/// aborts the process: so the body runs in a process of its own.
#[test]
fn a_generator_drained_while_its_consumer_unwinds_yields_nothing() {
    let test = "a_generator_drained_while_its_consumer_unwinds_yields_nothing";
    if std::env::var_os(UNWINDING).is_none() {
        child::assert_passes(test, UNWINDING, "1");
        return;
    }
    struct Drain(Option<Generator<u32>>, Rc<Cell<Option<(usize, bool)>>>);
    impl Drop for Drain {
        fn drop(&mut self) {
            let mut g = self.0.take().unwrap();
            let drained = std::iter::from_fn(|| g.next()).count();
            self.1.set(Some((drained, g.is_finished())));
        }
    }
    let seen = Rc::new(Cell::new(None));
    let in_drain = seen.clone();
    let unwound = panic::catch_unwind(AssertUnwindSafe(move || {
        let mut g = Generator::new(|y: &Yielder<u32>| (0..3).for_each(|i| y.yield_(i)));
        assert_eq!(g.next(), Some(0));
        let _drain = Drain(Some(g), in_drain);
        panic!("the consumer panics");
    }));
    assert!(unwound.is_err());
    assert_eq!(
        seen.get(),
        Some((0, false)),
        "nothing drained; not finished"
    );
}

/// A throw into a consumer waiting in `next` (its producer threw it there)
/// unwinds out of `next` with the payload unchanged, as a throw into any
/// waiting greenlet does; the generator is not finished.
#[test]
fn a_throw_into_a_consumer_waiting_in_next_keeps_its_payload() {
    let consumer = Greenlet::new(|()| {
        let mut g = Generator::new(|y: &Yielder<u32>| {
            y.yield_(1);
            let consumer = Greenlet::current().parent().unwrap();
            let _ = consumer.throw::<_, ()>(42u32);
            y.yield_(2);
        });
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            g.by_ref().collect::<Vec<u32>>()
        }));
        let payload = unwound.err().and_then(|p| p.downcast::<u32>().ok());
        (payload.map(|p| *p), g.is_finished())
    });
    assert_eq!(
        consumer.switch::<(), (Option<u32>, bool)>(()).unwrap(),
        (Some(42), false)
    );
}

/// Another child of the consumer that is killed while the consumer waits
/// in `next` sends it `Killed`: that is not the producer's end. The
/// consumer hears of the stray switch (a panic), and the generator goes
/// on, its producer alive with its items.
#[test]
fn a_stray_kill_reaching_the_consumer_does_not_end_the_generator() {
    let consumer = Greenlet::new(|()| {
        let dies = Greenlet::new(|()| Greenlet::current().kill()); // a child of the consumer
        let mut g = Generator::new(move |y: &Yielder<u32>| {
            y.yield_(1);
            let _ = dies.switch::<(), ()>(()); // its end goes to the consumer
            y.yield_(2);
        });
        let first = g.next();
        let stray = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.next()));
        (
            first,
            stray.is_err(),
            g.is_finished(),
            g.greenlet().is_dead(),
        )
    });
    let seen = consumer
        .switch::<(), (Option<u32>, bool, bool, bool)>(())
        .unwrap();
    assert_eq!(seen, (Some(1), true, false, false));
}

/// The same for a child of the consumer that panics: its panic reaches the
/// consumer (and resumes out of `next`, payload unchanged), and the
/// generator goes on; the
/// producer, alive, is closed with the generator's drop.
#[test]
fn a_stray_panic_reaching_the_consumer_does_not_end_the_generator() {
    let dropped = Rc::new(Cell::new(0));
    let in_producer = dropped.clone();
    let consumer = Greenlet::new(move |()| {
        let panics = Greenlet::new(|()| -> () { std::panic::panic_any(7u8) });
        let mut g = Generator::new(move |y: &Yielder<u32>| {
            let _counted = Counted(in_producer);
            y.yield_(1);
            let _ = panics.switch::<(), ()>(()); // its panic goes to the consumer
            y.yield_(2);
        });
        let first = g.next();
        let stray = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.next()));
        let payload = stray
            .err()
            .and_then(|p| p.downcast::<u8>().ok())
            .map(|p| *p);
        let finished = g.is_finished();
        let next = g.next();
        drop(g);
        (first, payload, finished, next)
    });
    let seen = consumer
        .switch::<(), (Option<u32>, Option<u8>, bool, Option<u32>)>(())
        .unwrap();
    // The child's panic comes out of `next` as it was (its payload whole).
    assert_eq!(seen, (Some(1), Some(7), false, Some(2)));
    assert_eq!(
        dropped.get(),
        1,
        "the producer was closed with the generator"
    );
}

/// Switches an item to the consumer (the producer's parent) as it drops,
/// then panics: a greenlet-local of the producer.
struct HandsAnItemThenPanics;

impl Drop for HandsAnItemThenPanics {
    fn drop(&mut self) {
        let consumer = Greenlet::current().parent().unwrap();
        let _ = consumer.switch::<u32, ()>(99);
        panic!("the cleanup fails");
    }
}

greenlet::greenlet_local! {
    static CLEANUP: RefCell<Option<HandsAnItemThenPanics>> = RefCell::new(None);
}

/// The return value is kept from the producer's return, but it is handed
/// out only once the producer has finished: a local's destructor that
/// runs after the return (and switches to the consumer, then panics,
/// which leaves the generator without a return value) comes first.
#[test]
fn the_return_value_waits_for_the_producers_locals() {
    let mut g = Generator::new(|y: &Yielder<u32>| {
        CLEANUP.with(|c| *c.borrow_mut() = Some(HandsAnItemThenPanics));
        y.yield_(1);
        "returned"
    });
    assert_eq!(g.next(), Some(1));
    assert_eq!(g.next(), Some(99)); // from the local's destructor
    assert!(!g.is_finished());
    assert_eq!(g.return_value(), None, "not finished yet");
    let ended = panic::catch_unwind(AssertUnwindSafe(|| g.next()));
    assert!(ended.is_err(), "the cleanup's panic");
    assert!(g.is_finished());
    assert_eq!(g.return_value(), None, "an error ended it");
}

/// A throw into a generator whose producer is blocked in the hub (its
/// consumer left `next` for a throw it caught): the blocked call raises the
/// error, which goes out of the producer unhandled and comes back as
/// `Err`, as an unhandled throw at a yield does, not as a panic.
#[test]
fn a_throw_into_a_producer_blocked_in_the_hub_comes_back_as_err() {
    use greenlet::hub;
    let go = hub::Event::new();
    let wait_for_go = go.clone();
    let consumer = hub::spawn(move || {
        let mut g = Generator::new(move |y: &Yielder<u32>| {
            wait_for_go.wait();
            y.yield_(1);
        });
        let cancelled = panic::catch_unwind(AssertUnwindSafe(|| g.next()));
        assert!(cancelled.is_err());
        // The producer still waits for `go`.
        let thrown = g.throw(42u32).map_err(|e| e.downcast::<u32>().ok());
        (thrown, g.is_finished())
    });
    hub::yield_now(); // the consumer in `next`, the producer waiting
    let _ = consumer.greenlet().throw::<_, ()>("cancel");
    assert_eq!(consumer.join().unwrap(), (Err(Some(42)), true));
    drop(go);
}

/// Sets a switch hook that kills `victim` as the next switch or throw to
/// it begins; `true` until it did. Cleared with `set_switch_hook(None)`.
fn kill_as_the_next_switch_reaches(victim: &Greenlet) -> Rc<Cell<bool>> {
    let armed = Rc::new(Cell::new(true));
    let (fire, victim) = (armed.clone(), victim.clone());
    greenlet::set_switch_hook(Some(Box::new(move |e| {
        if fire.get() && e.target == victim {
            fire.set(false);
            victim.kill();
        }
    })));
    armed
}

/// A switch hook that kills a two-way producer (sent and yielded types
/// the same) as its consumer resumes it: the resume ends the generator,
/// rather than handing the consumer's own value back as an item (the
/// switch walks past the dead producer to its first live ancestor, the
/// consumer itself).
#[test]
fn a_producer_killed_by_the_hook_as_it_is_resumed_ends_the_generator() {
    let mut g = Generator::two_way(|y: &Yielder<u32, u32>, mut n: u32| loop {
        n = y.yield_(n * 10);
    });
    assert_eq!(g.send(1), Some(10));
    let producer = g.greenlet().clone();
    let armed = kill_as_the_next_switch_reaches(&producer);
    let got = g.send(5);
    greenlet::set_switch_hook(None);
    assert!(!armed.get() && producer.is_dead());
    assert_eq!(got, None);
    assert!(g.is_finished());
    assert_eq!(g.send(6), None);
}

/// A switch hook that kills the producer as `throw` switches to it: the
/// throw is walked past the dead producer to the consumer itself, and the
/// generator reports its producer killed (`Ok(None)`), not the error as
/// if it had gone through the producer unhandled.
#[test]
fn a_producer_killed_by_the_hook_as_it_is_thrown_into_is_reported_killed() {
    let mut g = Generator::new(|y: &Yielder<u32>| loop {
        let _ = y.try_yield(1);
    });
    assert_eq!(g.next(), Some(1));
    let producer = g.greenlet().clone();
    let armed = kill_as_the_next_switch_reaches(&producer);
    let got = g.throw("an error");
    greenlet::set_switch_hook(None);
    assert!(!armed.get() && producer.is_dead());
    assert!(matches!(got, Ok(None)), "{got:?}");
    assert!(g.is_finished());
}

/// A throw into a generator that never started ends it without running
/// the producer, even when a destructor of the producer's closure tries
/// to switch to the consumer with an item: the closure is dropped as by a
/// close, where that switch gets `Unwinding`. (Dropped as an ordinary end,
/// the destructor's item came back as the throw's, and the generator went
/// on.)
#[test]
fn a_throw_into_an_unstarted_generator_never_hands_over_an_item() {
    struct SwitchesAsItDrops(Rc<RefCell<Option<String>>>);
    impl Drop for SwitchesAsItDrops {
        fn drop(&mut self) {
            let r = Greenlet::main().switch::<u32, ()>(5);
            *self.0.borrow_mut() = Some(format!("{r:?}"));
        }
    }
    let seen = Rc::new(RefCell::new(None));
    let capture = SwitchesAsItDrops(seen.clone());
    let mut g = Generator::new(move |y: &Yielder<u32>| {
        let _capture = &capture;
        y.yield_(1);
    });
    let got = g.throw("stop");
    assert!(
        matches!(&got, Err(e) if e.message() == Some("stop")),
        "{got:?}"
    );
    assert!(g.is_finished());
    assert_eq!(seen.borrow().as_deref(), Some("Err(Unwinding)"));
    assert_eq!(g.next(), None);
}

/// A two-way generator with the same sent and item types whose producer
/// is killed inside a resume by a child of the consumer, which then
/// returns a value to the consumer: that value is taken for an item, as
/// the resume docs say of every value of the item's type that reaches the
/// waiting consumer. Only the consumer's own value handed back by the
/// runtime (the switch routed past a producer that died inside it) is not.
#[test]
fn a_value_returned_to_the_consumer_after_its_producer_was_killed_is_taken_for_an_item() {
    let mut g = Generator::two_way(|y: &Yielder<u32, u32>, n: u32| {
        let _ = y.yield_(n + 1);
        let me = Greenlet::current();
        // A switch to itself first (it hands its value straight back): an
        // echo of the producer's, not of the consumer's.
        assert_eq!(me.switch::<u32, u32>(0).unwrap(), 0);
        let consumer = me.parent().unwrap();
        let killer = greenlet::Builder::new()
            .parent(&consumer)
            .build(move |()| {
                me.kill();
                7u32
            })
            .unwrap();
        let _ = killer.switch::<(), u32>(());
        0
    });
    assert_eq!(g.send(1), Some(2));
    assert_eq!(g.send(5), Some(7));
    assert!(g.greenlet().is_dead());
    assert_eq!(g.send(6), None);
}

/// The consumer's own switch to itself (here from the switch hook, as its
/// resume begins) is no echo of the resume: a value another greenlet then
/// sends to the consumer, the producer being dead, is the item.
#[test]
fn a_consumers_own_switch_to_itself_is_not_taken_for_the_resumes_echo() {
    let mut g = Generator::two_way(|y: &Yielder<u32, u32>, first: u32| {
        let _ = y.yield_(first);
        // Hands over to `x`, which sends the consumer a value once this
        // producer is dead.
        let x = Greenlet::new(|()| {
            let producer = Greenlet::current().parent().unwrap();
            let _ = producer.switch::<(), ()>(());
            let _ = Greenlet::main().switch::<u32, ()>(42);
        });
        x.switch::<(), ()>(()).unwrap();
        x.set_parent(&Greenlet::main()).unwrap();
        Greenlet::current().set_parent(&x).unwrap();
    });
    assert_eq!(g.send(1), Some(1));
    let producer = g.greenlet().clone();
    let armed = Rc::new(Cell::new(true));
    let (fire, target) = (armed.clone(), producer.clone());
    greenlet::set_switch_hook(Some(Box::new(move |e| {
        if fire.get() && e.origin.is_main() && e.target == target {
            fire.set(false);
            assert_eq!(Greenlet::current().switch::<u32, u32>(7).unwrap(), 7);
        }
    })));
    let got = g.send(2);
    greenlet::set_switch_hook(None);
    assert!(!armed.get() && producer.is_dead());
    assert_eq!(got, Some(42));
}
