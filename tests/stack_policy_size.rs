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

/// A change of less than a page maps stacks of the same size: a stack in
/// use across it goes back to the pool when its greenlet finishes.
#[test]
fn a_change_of_less_than_a_page_keeps_the_stacks() {
    std::thread::spawn(|| {
        let g = Greenlet::new(|()| Greenlet::main().switch::<(), ()>(()).unwrap());
        g.switch::<(), ()>(()).unwrap(); // parked: its stack is lent
        let pooled = stacks().0;
        set_stack_policy(StackPolicy::new().stack_size(greenlet::DEFAULT_STACK_SIZE + 1));
        assert_eq!(stacks().0, pooled, "the pooled stacks stay");
        g.switch::<(), ()>(()).unwrap(); // it finishes
        drop(g);
        greenlet::trim_stacks();
        assert_eq!(stacks(), (pooled + 1, 0), "its stack was pooled");
    })
    .join()
    .unwrap();
}

/// `resident(usize::MAX)` keeps every pooled stack resident, as
/// `max_pooled(usize::MAX)` pools them all: creation goes on working.
#[test]
fn a_resident_count_of_usize_max_keeps_them_all() {
    std::thread::spawn(|| {
        set_stack_policy(StackPolicy::new().resident(usize::MAX));
        let made: Vec<Greenlet> = (0..100).map(|_| Greenlet::new(|x: u32| x + 1)).collect();
        for g in &made {
            assert_eq!(g.switch::<u32, u32>(1).unwrap(), 2);
        }
        drop(made);
        greenlet::trim_stacks();
        assert!(stacks().0 >= 100);
    })
    .join()
    .unwrap();
}
