//! The warm-up-then-count loop of the hub's allocation tests; included
//! with `#[path]` by the tests that spawn greenlets (beside `common`).

use std::cell::Cell;
use std::rc::Rc;

use greenlet::hub;

use crate::common::allocations;

/// Runs `rounds` of `step` in a spawned greenlet and returns the
/// allocations made by the second half (the first half warms everything
/// up).
pub fn steady_state(rounds: usize, step: impl Fn(usize) + 'static) -> usize {
    let counted = Rc::new(Cell::new(0));
    let c = counted.clone();
    let h = hub::spawn(move || {
        for i in 0..rounds / 2 {
            step(i);
        }
        let before = allocations();
        for i in rounds / 2..rounds {
            step(i);
        }
        c.set(allocations() - before);
    });
    h.join().unwrap();
    counted.get()
}
