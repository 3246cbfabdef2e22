//! `StackPolicy::stack_size`: the size of the stacks a thread's pool keeps,
//! given to every greenlet built without a size of its own (hub spawns
//! included), and what happens to stacks of the old size when it changes.

use std::cell::RefCell;
use std::rc::Rc;

use greenlet::hub::{self, Event};
use greenlet::{set_stack_policy, Greenlet, StackPolicy};

/// (pooled, in use) stacks.
fn stacks() -> (usize, usize) {
    let s = greenlet::stats();
    (s.stacks_pooled, s.stacks_in_use)
}

/// Runs `n` hub greenlets that park on one event, then lets them finish;
/// returns the address of a local of each (a point near its stack's top).
fn burst(n: usize) -> Vec<usize> {
    let go = Event::new();
    let tops = Rc::new(RefCell::new(Vec::new()));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (go, tops) = (go.clone(), tops.clone());
            hub::spawn(move || {
                let local = 0u8;
                tops.borrow_mut().push(&local as *const u8 as usize);
                go.wait();
                std::hint::black_box(&local);
            })
        })
        .collect();
    hub::run();
    go.set();
    for h in handles {
        h.join().unwrap();
    }
    let tops = tops.borrow().clone();
    tops
}

/// The smallest distance between two of the addresses.
fn closest(mut tops: Vec<usize>) -> usize {
    tops.sort_unstable();
    tops.windows(2).map(|w| w[1] - w[0]).min().unwrap()
}

#[test]
fn greenlets_get_the_policys_size_from_the_pool_and_bursts_reuse_it() {
    std::thread::spawn(|| {
        set_stack_policy(StackPolicy::new().stack_size(64 * 1024));
        let tops = burst(300);
        // Neighbouring stacks of a batch: 64 KiB and a few pages apart,
        // where default-size stacks are over a megabyte apart.
        let gap = closest(tops);
        assert!(
            (64 * 1024..128 * 1024).contains(&gap),
            "stack tops {gap} bytes apart"
        );
        let (pooled, in_use) = stacks();
        assert!(pooled >= 300, "every stack kept: {pooled}");
        assert_eq!(in_use, 1, "only the hub's own stack is lent");
        // The next burst takes the same stacks.
        burst(300);
        assert_eq!(stacks(), (pooled, 1));
        // A builder asking for the policy's size by name takes one too.
        let g = Greenlet::builder()
            .stack_size(64 * 1024)
            .build(|()| ())
            .unwrap();
        assert_eq!(stacks(), (pooled - 1, 2));
        g.switch::<(), ()>(()).unwrap();
        drop(g);
        assert_eq!(stacks(), (pooled, 1));
    })
    .join()
    .unwrap();
}

#[test]
fn a_new_size_retires_the_stacks_of_the_old_one() {
    std::thread::spawn(|| {
        // Default-size stacks: some lent to parked greenlets, some pooled.
        let go = Event::new();
        let parked: Vec<_> = (0..20)
            .map(|_| {
                let go = go.clone();
                hub::spawn(move || go.wait())
            })
            .collect();
        hub::run();
        assert!(stacks().0 > 0);
        let old = set_stack_policy(StackPolicy::new().stack_size(64 * 1024));
        assert_eq!(old, StackPolicy::new());
        assert_eq!(stacks(), (0, 21), "the pooled old-size stacks are unmapped");
        // The lent ones are unmapped as their greenlets finish.
        go.set();
        for h in parked {
            h.join().unwrap();
        }
        assert_eq!(stacks(), (0, 1));
        // New greenlets get new-size stacks, which the pool keeps.
        let tops = burst(50);
        assert!(closest(tops) < 128 * 1024);
        assert!(stacks().0 >= 50);
    })
    .join()
    .unwrap();
}
