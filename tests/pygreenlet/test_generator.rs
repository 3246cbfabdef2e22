//! The scenarios of Python greenlet's `src/greenlet/tests/test_generator.py`
//! and `src/greenlet/tests/test_generator_nested.py` (greenlet 3.5.4.dev0,
//! commit 74b3c41), each test named after the one it ports.
//!
//! Those files build a generator out of greenlets (`genlet`: the consumer
//! switches to it, its `Yield` switches to its parent). Each scenario runs
//! on the crate's own [`Generator`] where it fits, and on [`Genlet`], the
//! same helper built here from [`Greenlet`], where it needs what only raw
//! greenlets can do: `Yield(v, 2)` yields past the consumer to the
//! consumer's consumer, which a [`Yielder`] cannot (it only works on its
//! own producer's greenlet), and a `Yield` that finds its genlet by
//! walking up the parent chain at run time (`test_genlet_bad`). A Python
//! generator (`g1`) is a `Generator`.
//!
//! Python's `@fails_leakcheck` on `test_permutations` (the zip leaves one
//! generator suspended half-way, with more on its stack) becomes drop
//! counts: every producer body started is dropped exactly once.
//!
//! The `edge_*` tests at the end are not in the Python files: throws and
//! closes into unstarted, suspended, nested and finished generators.
//!
//! Not ported (no counterpart here): nothing; `test_genlet_bad`'s "yield
//! outside a generator" is a compile error for a `Yielder` (its producer's
//! closure only lends it by reference), so it runs on `Genlet` alone.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{Generator, Greenlet, Yielder};

use super::Counted;
use genlet::{yield_, Genlet};

/// Python's `genlet`: a generator made of one greenlet, which the consumer
/// switches to and which switches its items to its parent.
mod genlet {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::marker::PhantomData;

    use greenlet::{current, Greenlet, SwitchError};

    thread_local! {
        /// Every live genlet's greenlet id, and its `child`: the genlet it
        /// lets a `Yield(v, 2)` resume directly.
        static GENLETS: RefCell<HashMap<u64, Option<Greenlet>>> = RefCell::default();
    }

    fn is_genlet(g: &Greenlet) -> bool {
        GENLETS.with(|m| m.borrow().contains_key(&g.id()))
    }

    fn child_of(g: &Greenlet) -> Option<Greenlet> {
        GENLETS.with(|m| m.borrow().get(&g.id()).cloned().flatten())
    }

    fn set_child(g: &Greenlet, child: Option<Greenlet>) {
        let old = GENLETS.with(|m| {
            m.borrow_mut()
                .get_mut(&g.id())
                .map(|slot| std::mem::replace(slot, child))
        });
        drop(old); // outside the borrow: a drop may kill
    }

    /// A generator of `T`s run on a greenlet of its own.
    pub struct Genlet<T> {
        g: Greenlet,
        _items: PhantomData<fn() -> T>,
    }

    impl<T: 'static> Genlet<T> {
        pub fn new(body: impl FnOnce() + 'static) -> Genlet<T> {
            let g = Greenlet::new(move |()| body());
            GENLETS.with(|m| m.borrow_mut().insert(g.id(), None));
            Genlet {
                g,
                _items: PhantomData,
            }
        }
    }

    impl<T: 'static> Iterator for Genlet<T> {
        type Item = T;

        fn next(&mut self) -> Option<T> {
            let got: Result<T, SwitchError> = match child_of(&self.g) {
                Some(mut child) => {
                    // Resume the deepest child; those on the way forget it.
                    while let Some(next) = child_of(&child) {
                        set_child(&child, None);
                        child = next;
                    }
                    child.switch(())
                }
                None => {
                    self.g
                        .set_parent(&current())
                        .expect("the consumer is not inside the genlet");
                    self.g.switch(())
                }
            };
            if self.g.is_active() {
                Some(got.expect("an item"))
            } else {
                match got {
                    Err(SwitchError::Panicked(p)) => std::panic::resume_unwind(p),
                    _ => None,
                }
            }
        }
    }

    /// Python's genlet is freed by its garbage collector; here a suspended
    /// genlet is the parent of the genlets on its stack, and they keep it
    /// alive (row 12: a parent link counts), so, as the crate's
    /// `Generator` does, dropping one kills it.
    impl<T> Drop for Genlet<T> {
        fn drop(&mut self) {
            // `try_with`: at thread exit this map may be gone already.
            let entry = GENLETS.try_with(|m| m.borrow_mut().remove(&self.g.id()));
            drop(entry);
            if !self.g.is_current() {
                self.g.kill();
            }
        }
    }

    /// Python's `Yield(value, level)`: hands `value` to the consumer
    /// `level` genlets up; with `level` 2, the genlet in between is told
    /// to resume this one directly next time.
    pub fn yield_<T: 'static>(value: T, level: u32) -> Result<(), &'static str> {
        let mut node: Greenlet = (*current()).clone();
        for left in (1..=level).rev() {
            if !is_genlet(&node) {
                return Err("yield outside a genlet");
            }
            let parent = node.parent().ok_or("yield outside a genlet")?;
            if left > 1 {
                set_child(&parent, Some(node.clone()));
            }
            node = parent;
        }
        // Only the target's handle is held across the switch.
        node.switch::<T, ()>(value)
            .expect("resumed with nothing by `next`");
        Ok(())
    }
}

/// Counts how many producer bodies started, and how many of the values
/// they hold were dropped.
#[derive(Clone, Default)]
struct Census {
    made: Rc<Cell<usize>>,
    dropped: Rc<Cell<usize>>,
}

impl Census {
    fn hold(&self) -> Counted {
        self.made.set(self.made.get() + 1);
        Counted(self.dropped.clone())
    }

    /// Every value made was dropped, once.
    #[track_caller]
    fn assert_balanced(&self, when: &str) {
        let (made, dropped) = (self.made.get(), self.dropped.get());
        assert_eq!(made, dropped, "{when}: made {made}, dropped {dropped}");
    }
}

// ----- test_generator.py -----

#[test]
fn test_generator() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    // On the crate's generator.
    for _ in 0..3 {
        let s = seen.clone();
        let g = Generator::new(move |y: &Yielder<u32>| {
            for i in 0..5 {
                s.borrow_mut().push(i);
                y.yield_(i);
            }
        });
        for j in g {
            seen.borrow_mut().push(j);
        }
    }
    let want: Vec<u32> = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4].repeat(3);
    assert_eq!(*seen.borrow(), want);
    // On the genlet built from greenlets.
    seen.borrow_mut().clear();
    for _ in 0..3 {
        let s = seen.clone();
        let g: Genlet<u32> = Genlet::new(move || {
            for i in 0..5 {
                s.borrow_mut().push(i);
                yield_(i, 1).unwrap();
            }
        });
        for j in g {
            seen.borrow_mut().push(j);
        }
    }
    assert_eq!(*seen.borrow(), want);
}

// ----- test_generator_nested.py -----

#[test]
fn test_layered_genlets() {
    // gr1 yields `ii` to gr2, its consumer, and `ii * ii` straight to
    // gr2's consumer; gr2 records what it gets, the test what it gets.
    let census = Census::default();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let gr1 = |n: u32, c: Census| -> Genlet<u32> {
        Genlet::new(move || {
            let _h = c.hold();
            for ii in 1..n {
                yield_(ii, 1).unwrap();
                yield_(ii * ii, 2).unwrap();
            }
        })
    };
    let (s, c) = (seen.clone(), census.clone());
    let gr2: Genlet<u32> = Genlet::new(move || {
        let _h = c.hold();
        for ii in gr1(5, c.clone()) {
            s.borrow_mut().push(ii);
        }
    });
    for ii in gr2 {
        seen.borrow_mut().push(ii);
    }
    assert_eq!(*seen.borrow(), [1, 1, 2, 4, 3, 9, 4, 16]);
    assert_eq!(census.made.get(), 2);
    census.assert_balanced("at the end");
}

/// The permutations of `l` in order, from nested generators, each
/// producer holding a census value.
fn perms(l: Vec<u32>, c: Census) -> Generator<Vec<u32>> {
    Generator::new(move |y: &Yielder<Vec<u32>>| {
        let _h = c.hold();
        if l.len() > 1 {
            for &e in &l {
                let rest = l.iter().copied().filter(|&x| x != e).collect();
                let mut n = 0;
                for p in perms(rest, c.clone()) {
                    let mut v = vec![e];
                    v.extend(p);
                    y.yield_(v);
                    n += 1;
                }
                assert!(n > 0);
            }
        } else {
            y.yield_(l);
        }
    })
}

/// The same on genlets, with `Yield` finding its genlet at run time.
fn perms_genlet(l: Vec<u32>, c: Census) -> Genlet<Vec<u32>> {
    Genlet::new(move || {
        let _h = c.hold();
        if l.len() > 1 {
            for &e in &l {
                let rest = l.iter().copied().filter(|&x| x != e).collect();
                let x: Vec<()> = perms_genlet(rest, c.clone())
                    .map(|p| {
                        let mut v = vec![e];
                        v.extend(p);
                        yield_(v, 1).unwrap()
                    })
                    .collect();
                assert!(!x.is_empty());
            }
        } else {
            yield_(l, 1).unwrap();
        }
    })
}

fn check_permutations<G>(perms: impl Fn(Vec<u32>, Census) -> G)
where
    G: Iterator<Item = Vec<u32>>,
{
    let census = Census::default();
    let all: Vec<Vec<u32>> = perms((0..4).collect(), census.clone()).collect();
    assert_eq!(all.len(), 4 * 3 * 2);
    assert!(all.contains(&vec![0, 1, 2, 3]));
    assert!(all.contains(&vec![3, 2, 1, 0]));
    census.assert_balanced("at the end");

    // Zipped: the shorter ends the zip and leaves the longer suspended
    // half-way, with nested generators on its stack; dropping it unwinds
    // them all (Python's leak there is a known failure).
    let census = Census::default();
    let res: Vec<(Vec<u32>, Vec<u32>)> = perms((0..4).collect(), census.clone())
        .zip(perms((0..3).collect(), census.clone()))
        .collect();
    let want: Vec<(Vec<u32>, Vec<u32>)> = [
        ([0, 1, 2, 3], [0, 1, 2]),
        ([0, 1, 3, 2], [0, 2, 1]),
        ([0, 2, 1, 3], [1, 0, 2]),
        ([0, 2, 3, 1], [1, 2, 0]),
        ([0, 3, 1, 2], [2, 0, 1]),
        ([0, 3, 2, 1], [2, 1, 0]),
    ]
    .iter()
    .map(|(a, b)| (a.to_vec(), b.to_vec()))
    .collect();
    assert_eq!(res, want);
    assert!(census.made.get() > 0);
    census.assert_balanced("at the end");
}

#[test]
fn test_permutations() {
    check_permutations(perms);
    check_permutations(perms_genlet);
}

#[test]
fn test_genlet_simple() {
    let want: Vec<u32> = [1, 0, 2, 1, 3, 2, 4, 3, 5, 4].repeat(3);
    type Seen = Rc<RefCell<Vec<u32>>>;
    // g1, a Python generator: the crate's generator.
    let g1 = |n: u32, seen: Seen| {
        Generator::new(move |y: &Yielder<u32>| {
            for i in 0..n {
                seen.borrow_mut().push(i + 1);
                y.yield_(i);
            }
        })
    };
    // g2, a genlet.
    let g2 = |n: u32, seen: Seen| {
        Genlet::<u32>::new(move || {
            for i in 0..n {
                seen.borrow_mut().push(i + 1);
                yield_(i, 1).unwrap();
            }
        })
    };
    // g3, a genlet that yields from a function it calls.
    fn nested(i: u32) {
        yield_(i, 1).unwrap();
    }
    let g3 = |n: u32, seen: Seen| {
        Genlet::<u32>::new(move || {
            for i in 0..n {
                seen.borrow_mut().push(i + 1);
                nested(i);
            }
        })
    };
    // And g3 on the crate's generator, the yielder passed down.
    fn nested_y(y: &Yielder<u32>, i: u32) {
        y.yield_(i);
    }
    let g3y = |n: u32, seen: Seen| {
        Generator::new(move |y: &Yielder<u32>| {
            for i in 0..n {
                seen.borrow_mut().push(i + 1);
                nested_y(y, i);
            }
        })
    };
    fn run<G: Iterator<Item = u32>>(make: impl Fn(u32, Seen) -> G) -> Vec<u32> {
        let seen: Seen = Rc::default();
        for _ in 0..3 {
            for j in make(5, seen.clone()) {
                seen.borrow_mut().push(j);
            }
        }
        let got = seen.borrow().clone();
        got
    }
    assert_eq!(run(g1), want);
    assert_eq!(run(g2), want);
    assert_eq!(run(g3), want);
    assert_eq!(run(g3y), want);
}

#[test]
fn test_genlet_bad() {
    // From main, and from a greenlet that is not a genlet.
    assert_eq!(yield_(10u32, 1), Err("yield outside a genlet"));
    let g = Greenlet::new(|()| yield_(10u32, 1));
    assert_eq!(
        g.switch::<(), Result<(), &str>>(()).unwrap(),
        Err("yield outside a genlet")
    );
    // Two levels up from a genlet whose consumer is main: main is no
    // genlet either.
    let gen: Genlet<u32> = Genlet::new(|| {
        assert_eq!(yield_(10u32, 2), Err("yield outside a genlet"));
        yield_(11u32, 1).unwrap();
    });
    assert_eq!(gen.collect::<Vec<_>>(), [11]);
}

#[test]
fn test_nested_genlets() {
    // a(n) yields what a(n - 1) yields, then n.
    fn ax(n: u32) -> Genlet<u32> {
        Genlet::new(move || {
            if n == 0 {
                return;
            }
            for ii in ax(n - 1) {
                yield_(ii, 1).unwrap();
            }
            yield_(n, 1).unwrap();
        })
    }
    assert_eq!(ax(5).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    fn a(n: u32) -> Generator<u32> {
        Generator::new(move |y: &Yielder<u32>| {
            if n == 0 {
                return;
            }
            for ii in a(n - 1) {
                y.yield_(ii);
            }
            y.yield_(n);
        })
    }
    assert_eq!(a(5).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
}

// ----- beyond the Python files -----

/// A generator of `n` items from `n` nested generators, each producer
/// holding a census value.
fn tower(n: u32, c: Census) -> Generator<u32> {
    Generator::new(move |y: &Yielder<u32>| {
        let _h = c.hold();
        if n == 0 {
            return;
        }
        for v in tower(n - 1, c.clone()) {
            y.yield_(v);
        }
        y.yield_(n);
    })
}

#[test]
fn edge_nested_generators_dropped_half_way_unwind_every_level() {
    for taken in 0..=6 {
        let c = Census::default();
        let mut g = tower(6, c.clone());
        let got: Vec<u32> = g.by_ref().take(taken).collect();
        assert_eq!(got, (1..=taken as u32).collect::<Vec<_>>());
        drop(g);
        c.assert_balanced(&format!("after {taken}"));
    }
}

#[test]
fn edge_nested_generator_closed_half_way_then_resumed() {
    let c = Census::default();
    let mut g = tower(4, c.clone());
    assert_eq!(g.next(), Some(1));
    assert!(g.close().is_ok());
    c.assert_balanced("at the end");
    assert!(g.is_finished());
    assert_eq!(g.next(), None);
    assert!(g.close().is_ok());
}

#[derive(Debug, PartialEq)]
struct Stop;

#[test]
fn edge_throw_into_nested_generators() {
    // Unstarted: the producer never runs, its closure is dropped once.
    let c = Census::default();
    let ran = Rc::new(Cell::new(false));
    let (r, h) = (ran.clone(), c.hold());
    let mut g = Generator::new(move |y: &Yielder<u32>| {
        let _h = h;
        r.set(true);
        y.yield_(1);
    });
    assert_eq!(g.throw(Stop).unwrap_err().downcast::<Stop>().unwrap(), Stop);
    assert!(!ran.get() && g.is_finished());
    c.assert_balanced("at the end");
    assert_eq!(g.next(), None);

    // Suspended, with nested generators on its stack, and not caught:
    // every level is unwound and the error comes back.
    let c = Census::default();
    let mut g = tower(5, c.clone());
    assert_eq!(g.next(), Some(1));
    assert_eq!(g.throw(Stop).unwrap_err().downcast::<Stop>().unwrap(), Stop);
    assert!(g.is_finished());
    c.assert_balanced("at the end");
    // Finished: straight back.
    assert!(g.throw(Stop).unwrap_err().is::<Stop>());

    // Caught by the outer producer, which goes on yielding after closing
    // its inner generator.
    let c = Census::default();
    let c2 = c.clone();
    let mut g = Generator::new(move |y: &Yielder<u32>| {
        let _h = c2.hold();
        let mut inner = tower(3, c2.clone());
        while let Some(v) = inner.next() {
            if y.try_yield(v).is_err() {
                drop(inner);
                y.yield_(100);
                break;
            }
        }
    });
    assert_eq!(g.next(), Some(1));
    assert_eq!(g.throw(Stop).unwrap(), Some(100));
    assert_eq!(
        c.made.get(),
        5,
        "the outer producer and tower(3) to tower(0)"
    );
    assert_eq!(c.dropped.get(), 4, "the inner tower is gone, the outer not");
    assert_eq!(g.next(), None);
    c.assert_balanced("at the end");
}

#[test]
fn edge_a_producer_that_refuses_its_close_inside_a_closed_generator() {
    // The inner producer catches its close and yields again: its close
    // fails (Python's "generator ignored GeneratorExit"). It is closed by
    // the outer producer's unwinding, where a panic cannot be raised:
    // reported, and the outer close still succeeds.
    let c = Census::default();
    let c2 = c.clone();
    let mut outer = Generator::new(move |y: &Yielder<u32>| {
        let _h = c2.hold();
        let c3 = c2.clone();
        let mut inner = Generator::new(move |y: &Yielder<u32>| {
            let _h = c3.hold();
            let caught = catch_unwind(AssertUnwindSafe(|| y.yield_(1)));
            assert!(caught.is_err());
            y.yield_(2); // refuses: a panic while closed
        });
        let v = inner.next().unwrap();
        y.yield_(v);
    });
    assert_eq!(outer.next(), Some(1));
    assert!(outer.close().is_ok());
    assert!(outer.is_finished());
    c.assert_balanced("at the end");

    // Closed directly, the refusal is the close's error.
    let c = Census::default();
    let c2 = c.clone();
    let mut g = Generator::new(move |y: &Yielder<u32>| {
        let _h = c2.hold();
        let caught = catch_unwind(AssertUnwindSafe(|| y.yield_(1)));
        assert!(caught.is_err());
        y.yield_(2);
    });
    assert_eq!(g.next(), Some(1));
    assert!(g.close().is_err());
    assert!(g.is_finished());
    c.assert_balanced("at the end");
    assert_eq!(g.next(), None);
}

#[test]
fn edge_killing_the_consumer_closes_its_generator() {
    // The consumer holds a suspended generator on its stack and is killed
    // while suspended: its unwinding drops the generator, which closes
    // the producer from the consumer's unwinding (a kill from a
    // destructor, row 11).
    let c = Census::default();
    let c2 = c.clone();
    let consumer = Greenlet::new(move |()| {
        let _h = c2.hold();
        let mut g = tower(3, c2.clone());
        let first = g.next();
        let _: () = Greenlet::main().switch(first).unwrap();
        unreachable!("killed before");
    });
    assert_eq!(consumer.switch::<(), Option<u32>>(()).unwrap(), Some(1));
    consumer.kill();
    assert!(consumer.is_dead());
    c.assert_balanced("at the end");
}

#[test]
fn edge_killing_the_consumer_while_its_producer_waits_elsewhere() {
    // The producer switches to main instead of yielding, so its consumer
    // (another greenlet) stays suspended inside `next`; main then kills
    // the consumer. Its unwinding drops the generator, which closes the
    // producer, suspended in its switch to main.
    let c = Census::default();
    let c2 = c.clone();
    let consumer = Greenlet::new(move |()| {
        let _h = c2.hold();
        let c3 = c2.clone();
        let mut g = Generator::new(move |y: &Yielder<u32>| {
            let _h = c3.hold();
            let _: () = Greenlet::main().switch("producer away").unwrap();
            y.yield_(1);
        });
        let _ = g.next();
        unreachable!("killed before");
    });
    assert_eq!(consumer.switch::<(), &str>(()).unwrap(), "producer away");
    consumer.kill();
    assert!(consumer.is_dead());
    c.assert_balanced("at the end");
}

#[test]
fn edge_a_generator_whose_producer_was_killed_from_outside() {
    // Items and sent values of one type: the only case where the crate
    // must look before it switches (a switch to the dead producer would
    // come back to the consumer as a value of the right type).
    let mut g = Generator::two_way(|y: &Yielder<u32, u32>, first: u32| {
        let mut v = first;
        loop {
            v = y.yield_(v + 1);
        }
    });
    assert_eq!(g.send(1), Some(2));
    g.greenlet().kill();
    assert_eq!(g.send(5), None);
    assert!(g.is_finished());
    assert_eq!(g.return_value(), None);
    assert!(g.throw(Stop).unwrap_err().is::<Stop>());
    assert!(g.close().is_ok());
}

#[test]
fn edge_genlet_killed_half_way_with_its_consumer() {
    // The genlets' consumer is a greenlet, killed while the genlets are
    // suspended on its stack: every level is unwound. (Dropping the
    // consumer's last handle instead would not collect it: its genlet's
    // parent link keeps it alive, a cycle; see `test_leaks`.)
    let c = Census::default();
    let c2 = c.clone();
    let consumer = Greenlet::new(move |()| {
        let mut g = perms_genlet((0..3).collect(), c2.clone());
        let first = g.next().unwrap();
        let _: () = Greenlet::main().switch(first).unwrap();
    });
    assert_eq!(consumer.switch::<(), Vec<u32>>(()).unwrap(), [0, 1, 2]);
    assert!(c.made.get() >= 3);
    consumer.kill();
    c.assert_balanced("at the end");
}

#[test]
fn edge_layered_genlets_dropped_half_way() {
    // As test_layered_genlets, stopped after each number of items: the
    // child link (gr2 resumes gr1 directly) holds no genlet past its drop.
    for taken in 0..8 {
        let census = Census::default();
        let c = census.clone();
        let gr2: Genlet<u32> = Genlet::new(move || {
            let _h = c.hold();
            let c1 = c.clone();
            let gr1: Genlet<u32> = Genlet::new(move || {
                let _h = c1.hold();
                for ii in 1..5u32 {
                    yield_(ii, 1).unwrap();
                    yield_(ii * ii, 2).unwrap();
                }
            });
            for _ in gr1 {}
        });
        let got: Vec<u32> = gr2.take(taken).collect();
        assert_eq!(got, [1, 4, 9, 16][..taken.min(4)]);
        census.assert_balanced(&format!("after {taken}"));
    }
}

#[test]
fn edge_a_generator_resumed_from_its_own_producers_child() {
    // The producer yields a child greenlet of its own; main puts the
    // generator where that child finds it, and switches to the child,
    // which resumes the generator: refused (it is the producer's
    // descendant). The refusal unwinds the child, which drops the
    // generator on the way, closing the producer, the child's parent.
    let census = Census::default();
    let cell: Rc<RefCell<Option<Generator<Greenlet>>>> = Rc::default();
    let (c, cell2) = (census.clone(), cell.clone());
    let mut g = Generator::new(move |y: &Yielder<Greenlet>| {
        let _h = c.hold();
        let cell3 = cell2.clone();
        let child = Greenlet::new(move |()| {
            let mut g = cell3.borrow_mut().take().expect("the generator");
            let _ = g.next();
            unreachable!("resuming from a descendant panics");
        });
        y.yield_(child);
    });
    let child = g.next().unwrap();
    assert_eq!(census.made.get(), 1);
    *cell.borrow_mut() = Some(g);
    let r = child.switch::<(), ()>(());
    let msg = match &r {
        Err(e) => e.message().unwrap_or("<no message>").to_string(),
        Ok(()) => "Ok".into(),
    };
    assert!(msg.contains("descendants"), "{msg}");
    assert!(child.is_dead());
    assert!(cell.borrow().is_none());
    census.assert_balanced("at the end");
}
