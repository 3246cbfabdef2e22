//! Groups, pools and delayed spawns.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::hub::{self, Event, Group, JoinError, Pool};

const MS: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn members_leave_the_group_however_they_end() {
    let g = Group::new();
    let ok = g.spawn(|| 1);
    let panics = g.spawn(|| -> u8 { panic!("member failed") });
    let sleeper = g.spawn(|| hub::sleep(HOUR));
    let unstarted = g.spawn(|| ());
    assert_eq!(g.len(), 4);
    assert!(g.contains(sleeper.greenlet()));
    unstarted.kill(); // killed before it ran
    hub::yield_now();
    assert_eq!(g.len(), 1);
    assert_eq!(g.members(), [sleeper.greenlet().clone()]);
    sleeper.kill();
    assert!(g.is_empty());
    assert_eq!(ok.join().unwrap(), 1);
    assert!(matches!(panics.join(), Err(JoinError::Panicked(_))));
    assert!(g.join_timeout(MS));
}

#[test]
fn join_waits_for_members_spawned_meanwhile() {
    let g = Group::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    let (g2, l2) = (g.clone(), log.clone());
    g.spawn(move || {
        hub::yield_now();
        let l3 = l2.clone();
        g2.spawn(move || {
            hub::sleep(MS);
            l3.borrow_mut().push("child");
        });
        l2.borrow_mut().push("parent");
    });
    g.join();
    assert_eq!(*log.borrow(), ["parent", "child"]);
}

#[test]
fn kill_all_kills_every_member_and_spares_the_caller() {
    let g = Group::new();
    let e = Event::new();
    let hs: Vec<_> = (0..3)
        .map(|_| {
            let e = e.clone();
            g.spawn(move || e.wait())
        })
        .collect();
    let g2 = g.clone();
    let killer = g.spawn(move || {
        hub::yield_now();
        g2.kill_all();
        "survived"
    });
    assert_eq!(killer.join().unwrap(), "survived");
    for h in hs {
        assert!(matches!(h.join(), Err(JoinError::Killed)));
    }
    assert!(g.is_empty());
}

#[test]
fn pool_spawn_blocks_while_full_and_slots_go_in_order() {
    let pool = Pool::new(2);
    let gate = Event::new();
    let order = Rc::new(RefCell::new(Vec::new()));
    for i in 0..2 {
        let (gate, order) = (gate.clone(), order.clone());
        pool.spawn(move || {
            gate.wait();
            order.borrow_mut().push(i);
        });
    }
    assert!(pool.is_full());
    let p = pool.clone();
    let o = order.clone();
    let spawner = hub::spawn(move || {
        for i in 2..4 {
            let o = o.clone();
            p.spawn(move || o.borrow_mut().push(i));
        }
    });
    assert!(!spawner.wait_timeout(MS), "blocked while the pool is full");
    assert!(pool.try_spawn(|| ()).is_err());
    gate.set();
    spawner.join().unwrap();
    pool.join();
    assert_eq!(*order.borrow(), [0, 1, 2, 3]);
    assert_eq!(pool.free_count(), 2);
    assert_eq!(pool.size(), 2);
}

#[test]
fn a_killed_pool_member_frees_its_slot() {
    let pool = Pool::new(1);
    let h = pool.spawn(|| hub::sleep(HOUR));
    assert_eq!(pool.free_count(), 0);
    hub::yield_now();
    h.kill();
    assert_eq!(pool.free_count(), 1);
    let Ok(unrun) = pool.try_spawn(|| ()) else {
        panic!("a slot is free")
    };
    unrun.kill();
    assert_eq!(pool.free_count(), 1);
    pool.kill_all();
}

#[test]
fn spawn_after_runs_after_the_delay_and_cancel_stops_it() {
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    let later = hub::spawn_after(2 * MS, move || {
        r.set(r.get() + 1);
        "ran"
    });
    let r = ran.clone();
    let cancelled = hub::spawn_after(HOUR, move || r.set(r.get() + 10));
    assert!(!later.has_started());
    assert!(cancelled.cancel());
    assert!(!cancelled.cancel(), "cancelled once");
    assert_eq!(later.join().unwrap(), "ran");
    assert_eq!(ran.get(), 1);
    assert!(matches!(cancelled.join(), Err(JoinError::Killed)));
}

#[test]
fn cancel_after_start_leaves_it_running() {
    let (e, running) = (Event::new(), Event::new());
    let (e2, r2) = (e.clone(), running.clone());
    let s = hub::spawn_at(Instant::now(), move || {
        r2.set();
        e2.wait();
        7
    });
    running.wait();
    assert!(s.has_started());
    assert!(!s.cancel());
    e.set();
    assert_eq!(s.join().unwrap(), 7);
}

#[test]
fn join_waits_for_members_spawned_while_it_waited() {
    let group = Group::new();
    let gate = Event::new();
    let g = gate.clone();
    group.spawn(move || g.wait());
    let grp = group.clone();
    let joiner = hub::spawn(move || {
        grp.join();
        grp.len()
    });
    hub::yield_now(); // the joiner blocks
    gate.set();
    hub::yield_now(); // the member finishes, waking the joiner
    let late = Event::new();
    let l = late.clone();
    group.spawn(move || l.wait()); // before the joiner runs
    hub::yield_now();
    assert!(!joiner.is_finished(), "a member is alive");
    late.set();
    assert_eq!(joiner.join().unwrap(), 0);
}

#[test]
fn kill_all_also_kills_members_spawned_while_it_kills() {
    let group = Group::new();
    struct SpawnsOnDrop(Group, Rc<Cell<u32>>);
    impl Drop for SpawnsOnDrop {
        fn drop(&mut self) {
            struct Count(Rc<Cell<u32>>);
            impl Drop for Count {
                fn drop(&mut self) {
                    self.0.set(self.0.get() + 1);
                }
            }
            // A member spawned by a dying member's destructor; its count
            // goes when it ends, run or not.
            let count = Count(self.1.clone());
            self.0.spawn(move || {
                let _count = count;
                hub::sleep(HOUR);
            });
        }
    }
    let killed_late = Rc::new(Cell::new(0));
    let (grp, k) = (group.clone(), killed_late.clone());
    group.spawn(move || {
        let _spawns = SpawnsOnDrop(grp, k);
        hub::sleep(HOUR);
    });
    hub::yield_now();
    group.kill_all();
    assert_eq!(group.len(), 0, "the late member is gone too");
    assert_eq!(killed_late.get(), 1);
}

/// `wait_available` gives up its turn as it returns: a spawn queued
/// behind it takes the slot (review 50; the docs said a slot is free then).
#[test]
fn wait_available_passes_the_slot_to_a_spawn_queued_behind_it() {
    let pool = Pool::new(1);
    let gate = Event::new();
    let g = gate.clone();
    pool.spawn(move || g.wait());
    let (p1, p2) = (pool.clone(), pool.clone());
    let waiter = hub::spawn(move || {
        p1.wait_available();
        p1.free_count()
    });
    let spawner = hub::spawn(move || drop(p2.spawn(|| ())));
    hub::yield_now(); // both queue for the slot, the waiter first
    gate.set();
    assert_eq!(waiter.join().unwrap(), 0, "the spawn behind took it");
    spawner.join().unwrap();
    pool.join();
}

greenlet::greenlet_local! {
    /// A member's greenlet-local whose destructor blocks until its event
    /// is set (a local's destructor may block: it is part of the greenlet).
    static SLOW_TO_DROP: RefCell<Option<SlowToDrop>> = RefCell::new(None);
}

struct SlowToDrop(Event);

impl Drop for SlowToDrop {
    fn drop(&mut self) {
        self.0.wait();
    }
}

/// A member's function that returns at once, leaving a greenlet-local
/// whose destructor waits for `gate`.
fn returns_leaving_a_slow_local(gate: &Event) -> impl FnOnce() + 'static {
    let gate = gate.clone();
    move || SLOW_TO_DROP.with(|s| *s.borrow_mut() = Some(SlowToDrop(gate)))
}

/// The same, panicking after it set the local.
fn panics_leaving_a_slow_local(gate: &Event) -> impl FnOnce() + 'static {
    let set = returns_leaving_a_slow_local(gate);
    move || {
        set();
        panic!("the member fails");
    }
}

/// Sets `gate` after a few yields, from a greenlet of its own.
fn opens_later(gate: &Event) -> hub::JoinHandle<()> {
    let gate = gate.clone();
    hub::spawn(move || {
        (0..5).for_each(|_| hub::yield_now());
        gate.set();
    })
}

/// A member leaves its group once its greenlet-locals are dropped, not
/// when its function returns: `join` returns with every member finished.
#[test]
fn a_group_join_waits_for_the_members_locals() {
    let group = Group::new();
    let gate = Event::new();
    let member = group.spawn(returns_leaving_a_slow_local(&gate));
    let _opener = opens_later(&gate);
    group.join();
    assert!(member.is_finished());
}

/// A pool of one starts its next member only once the last one has
/// finished, its greenlet-locals included.
#[test]
fn a_pool_of_one_waits_for_its_members_locals() {
    let gate = Event::new();
    let _opener = opens_later(&gate);
    let first = the_next_in_a_pool_of_one_sees_it_finished(returns_leaving_a_slow_local(&gate));
    first.join().unwrap();
}

/// Spawns `first` into a pool of one, then a second member; asserts that
/// the first had finished when the second started. Returns the first.
fn the_next_in_a_pool_of_one_sees_it_finished(
    first: impl FnOnce() + 'static,
) -> hub::JoinHandle<()> {
    let pool = Pool::new(1);
    let first = Rc::new(pool.spawn(first));
    let seen = Rc::new(Cell::new(None));
    let (earlier, in_second) = (first.clone(), seen.clone());
    pool.spawn(move || in_second.set(Some(earlier.is_finished())));
    pool.join();
    assert_eq!(seen.get(), Some(true), "the first had finished");
    Rc::into_inner(first).unwrap()
}

/// A member whose function panicked also stays a member, and in its pool
/// slot, until its greenlet-locals are dropped: `join` waits for them, a
/// pool of one starts its next member only then, and `kill_all` reaches a
/// member blocked in one.
#[test]
fn a_panicking_member_leaves_only_once_its_locals_are_dropped() {
    let gate = Event::new();
    let _opener = opens_later(&gate);
    let first = the_next_in_a_pool_of_one_sees_it_finished(panics_leaving_a_slow_local(&gate));
    assert!(matches!(first.join(), Err(JoinError::Panicked(_))));

    let group = Group::new();
    let gate = Event::new();
    let member = group.spawn(panics_leaving_a_slow_local(&gate));
    let _opener = opens_later(&gate);
    group.join();
    assert!(member.is_finished());

    let gate = Event::new();
    let member = group.spawn(panics_leaving_a_slow_local(&gate));
    hub::yield_now(); // it panics, and blocks in its local's destructor
    group.kill_all();
    assert!(member.is_finished());
}

/// A member thrown into before it started drops its function unrun on its
/// own stack, and stays a member until the function's captures are gone:
/// a capture's destructor that blocks keeps `join` waiting.
#[test]
fn a_member_dropped_unrun_leaves_only_once_its_captures_are_gone() {
    struct WaitsAsItDrops(Event, Rc<Cell<bool>>);
    impl Drop for WaitsAsItDrops {
        fn drop(&mut self) {
            self.0.wait();
            self.1.set(true);
        }
    }
    let group = Group::new();
    let gate = Event::new();
    let gone = Rc::new(Cell::new(false));
    let capture = WaitsAsItDrops(gate.clone(), gone.clone());
    let member = group.spawn(move || drop(capture));
    let (g, gone_then, greenlet) = (group.clone(), gone.clone(), member.greenlet().clone());
    let joiner = hub::spawn(move || {
        g.join();
        (greenlet.is_dead(), gone_then.get())
    });
    let _: Result<(), _> = member.greenlet().throw("before it ran");
    let _opener = opens_later(&gate);
    assert_eq!(joiner.join().unwrap(), (true, true), "(dead, capture gone)");
}

/// `kill_all` kills a member blocked in a greenlet-local's destructor too
/// (it is still a member) and returns once it is gone.
#[test]
fn kill_all_kills_a_member_blocked_in_its_locals() {
    let group = Group::new();
    let gate = Event::new();
    let member = group.spawn(returns_leaving_a_slow_local(&gate));
    hub::yield_now(); // it returns, and blocks in its local's destructor
    group.kill_all();
    assert!(member.is_finished());
}

// ----- a spawn refused for want of a stack -----
//
// The refused function is dropped unrun in the spawner; a destructor among
// its captures may spawn into the same group or pool (a clean-up member).

/// A stack no system grants: the spawn is refused.
fn refused_stack() -> hub::Builder {
    hub::Builder::new().stack_size(usize::MAX / 2)
}

/// Spawns a member into its group when dropped: it sleeps `nap`, then
/// says it is done.
struct SpawnsOnDrop(Group, Rc<Cell<bool>>, Duration);

impl Drop for SpawnsOnDrop {
    fn drop(&mut self) {
        let (done, nap) = (self.1.clone(), self.2);
        self.0.spawn(move || {
            hub::sleep(nap);
            done.set(true);
        });
    }
}

#[test]
fn a_member_spawned_by_the_drop_of_a_refused_spawn_is_a_member() {
    hub::time::pause();
    let g = Group::new();
    let done = Rc::new(Cell::new(false));
    let cleanup = SpawnsOnDrop(g.clone(), done.clone(), MS);
    assert!(g
        .spawn_with(refused_stack(), move || drop(cleanup))
        .is_err());
    assert_eq!(g.len(), 1);
    g.join();
    assert!(done.get(), "join returned while the clean-up member ran");
}

#[test]
fn a_refused_spawn_does_not_take_a_later_member_out_of_its_group() {
    hub::time::pause();
    let g = Group::new();
    let cleanup = SpawnsOnDrop(g.clone(), Rc::new(Cell::new(false)), MS);
    assert!(g
        .spawn_with(refused_stack(), move || drop(cleanup))
        .is_err());
    // Longer than the clean-up member, which must not take it out as it
    // leaves.
    let later_done = Rc::new(Cell::new(false));
    let flag = later_done.clone();
    g.spawn(move || {
        hub::sleep(50 * MS);
        flag.set(true);
    });
    assert_eq!(g.len(), 2);
    g.join();
    assert!(later_done.get(), "join returned while a later member ran");
}

#[test]
fn a_refused_pool_spawn_frees_its_slot_before_its_function_is_dropped() {
    /// Spawns into its pool when dropped, and says whether that member
    /// ran.
    struct PoolSpawnsOnDrop(Pool, Rc<Cell<bool>>);
    impl Drop for PoolSpawnsOnDrop {
        fn drop(&mut self) {
            let done = self.1.clone();
            self.0.spawn(move || done.set(true));
        }
    }
    hub::time::pause();
    // Of one: the clean-up spawn needs the very slot the refused one took.
    let pool = Pool::new(1);
    let done = Rc::new(Cell::new(false));
    let cleanup = PoolSpawnsOnDrop(pool.clone(), done.clone());
    let p = pool.clone();
    let spawner = hub::spawn(move || {
        p.spawn_with(refused_stack(), move || drop(cleanup))
            .is_err()
    });
    hub::run();
    assert!(spawner.is_finished(), "the spawner waits for its own slot");
    assert!(spawner.join().unwrap());
    assert!(done.get());
    assert_eq!((pool.len(), pool.free_count()), (0, 1));
}

// ----- called from a member's generator -----
//
// A generator's producer runs on a greenlet of its own, under its consumer:
// calls that spare their caller spare the member it runs under too.

/// Counts its drops.
struct Counted(Rc<Cell<u32>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A member's function that sleeps an hour holding a `Counted`.
fn sleeps_counted(drops: &Rc<Cell<u32>>) -> impl FnOnce() + 'static {
    let counted = Counted(drops.clone());
    move || {
        let _counted = counted;
        hub::sleep(HOUR);
    }
}

#[test]
fn kill_all_from_a_members_generator_kills_every_other_member() {
    use greenlet::{Generator, Yielder};
    hub::time::pause();
    let group = Group::new();
    let drops = Rc::new(Cell::new(0));
    group.spawn(sleeps_counted(&drops));
    let (g, in_producer) = (group.clone(), drops.clone());
    let caller = group.spawn(move || {
        let mut work = Generator::new(move |y: &Yielder<u32>| {
            let _counted = Counted(in_producer);
            hub::yield_now(); // the member after this one starts
            g.kill_all();
            y.yield_(1);
        });
        work.next()
    });
    let after = group.spawn(sleeps_counted(&drops));
    assert!(hub::with_timeout(HOUR, || group.join()).is_ok());
    assert!(after.is_finished());
    assert_eq!(
        caller.join().unwrap(),
        Some(1),
        "the caller's member was spared"
    );
    assert_eq!(drops.get(), 3);
}
