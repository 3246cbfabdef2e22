//! Switch hooks, greenlet-locals and detached spawns under hostile but
//! realistic use: re-entrant kills from a hook's event handles, hooks that
//! clear themselves or kill their origin, locals whose destructors block,
//! panic or are killed, and very long chains of finished greenlets.

#[path = "support/child.rs"]
mod child;

use std::cell::{Cell, RefCell};
use std::panic;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, Event, JoinError, Queue};
use greenlet::{greenlet_local, set_switch_hook, stats, Greenlet, SwitchError, SwitchKind, WaitOn};

/// Clears the switch hook when dropped, so a failing test leaves none set.
struct HookGuard;

impl Drop for HookGuard {
    fn drop(&mut self) {
        set_switch_hook(None);
    }
}

fn with_hook(hook: impl FnMut(&greenlet::SwitchEvent) + 'static) -> HookGuard {
    set_switch_hook(Some(Box::new(hook)));
    HookGuard
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Counts its drops.
struct Count(Rc<Cell<u32>>);

impl Drop for Count {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

// ----- switch hooks -----

#[test]
fn dropping_greenlets_with_a_hook_set_kills_each_exactly_once() {
    let _hook = with_hook(|_| {});
    let drops = Rc::new(Cell::new(0));
    // Unstarted.
    let c = Count(drops.clone());
    drop(Greenlet::new(move |()| drop(c)));
    // Suspended.
    let d = drops.clone();
    let g = Greenlet::new(move |()| {
        let _c = Count(d);
        let _: () = Greenlet::main().switch(()).unwrap();
    });
    g.switch::<(), ()>(()).unwrap();
    drop(g);
    assert_eq!(drops.get(), 2);
    // A destructor that creates a greenlet while the outer kill is under
    // way: the new one is not the one killed.
    let made: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let m = made.clone();
    struct MakesOne(Rc<RefCell<Option<Greenlet>>>);
    impl Drop for MakesOne {
        fn drop(&mut self) {
            *self.0.borrow_mut() = Some(Greenlet::new(|x: u8| x));
        }
    }
    let g = Greenlet::new(move |()| {
        let _m = MakesOne(m);
        let _: () = Greenlet::main().switch(()).unwrap();
    });
    g.switch::<(), ()>(()).unwrap();
    drop(g);
    let fresh = made.borrow_mut().take().unwrap();
    assert!(!fresh.is_started());
    assert_eq!(fresh.switch::<u8, u8>(9).unwrap(), 9);
}

#[test]
fn a_hook_that_drops_a_handle_during_finish_loses_no_result() {
    let g = Greenlet::new(|x: u32| x + 1);
    let held = Rc::new(RefCell::new(Some(g.clone())));
    let h = held.clone();
    let _hook = with_hook(move |e| {
        if e.kind == SwitchKind::Finish {
            h.borrow_mut().take();
        }
    });
    assert_eq!(g.switch::<u32, u32>(1).unwrap(), 2);
    assert!(held.borrow().is_none());
    drop(g);
    assert_eq!(stats().stacks_in_use, 0);
}

#[test]
fn a_hook_that_drops_the_last_handle_during_finish_loses_no_result() {
    let held = Rc::new(RefCell::new(None::<Greenlet>));
    let h = held.clone();
    let _hook = with_hook(move |e| {
        if e.kind == SwitchKind::Finish {
            h.borrow_mut().take();
        }
    });
    let g = Greenlet::new(|x: u32| x + 1);
    *held.borrow_mut() = Some(g.clone());
    let result = {
        let g = g; // the test's own handle goes before the switch returns
        let r = g.switch::<u32, u32>(1);
        drop(g);
        r
    };
    assert_eq!(result.unwrap(), 2);
    drop(_hook);
    assert_eq!(stats().stacks_in_use, 0);
}

#[test]
fn a_hook_that_clears_itself_still_cannot_switch_and_later_hooks_fire() {
    let g = Greenlet::new(|()| {
        let thrown = Greenlet::main().switch::<(), ()>(());
        assert!(matches!(thrown, Err(SwitchError::Thrown(_))));
    });
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let target = g.clone();
    let _hook = with_hook(move |_| {
        set_switch_hook(None);
        s.borrow_mut()
            .push(format!("{:?}", target.switch::<(), ()>(()).err()));
    });
    g.switch::<(), ()>(()).unwrap();
    assert_eq!(*seen.borrow(), ["Some(InSwitchHook)"]);
    // Throws work again, and a new hook fires.
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let _hook2 = with_hook(move |_| c.set(c.get() + 1));
    assert!(g.throw::<&str, ()>("x").is_ok());
    assert!(count.get() >= 1);
}

#[test]
fn a_watchdog_hook_that_kills_its_origin_stays_installed() {
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    let _hook = with_hook(move |e| {
        f.set(f.get() + 1);
        if e.kind == SwitchKind::Switch && e.origin.name().as_deref() == Some("runaway") {
            e.origin.kill();
        }
    });
    let g = Greenlet::builder()
        .name("runaway")
        .build(|()| {
            let _: () = Greenlet::main().switch(()).unwrap();
            unreachable!("killed by the hook on its switch");
        })
        .unwrap();
    let r = g.switch::<(), ()>(());
    assert!(matches!(r, Err(SwitchError::Killed)), "{r:?}");
    assert!(g.is_dead());
    let before = fired.get();
    let h = Greenlet::new(|x: u8| x);
    h.switch::<u8, u8>(1).unwrap();
    assert!(fired.get() > before, "the hook is still installed");
}

// ----- greenlet-locals -----

greenlet_local! {
    static BLOCKS_ON_DROP: RefCell<Option<BlockOnDrop>> = RefCell::new(None);
    static PANICS_ON_DROP: RefCell<Option<PanicOnDrop>> = RefCell::new(None);
    static SWITCHES_ON_DROP: RefCell<Option<SwitchOnDrop>> = RefCell::new(None);
}

struct BlockOnDrop(Event);

impl Drop for BlockOnDrop {
    fn drop(&mut self) {
        self.0.wait();
    }
}

struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("A's local dtor");
    }
}

struct SwitchOnDrop;

impl Drop for SwitchOnDrop {
    fn drop(&mut self) {
        let _: Result<(), _> = Greenlet::main().switch(());
    }
}

#[test]
fn a_local_destructor_that_blocks_loses_no_ready_greenlet() {
    let ev = Event::new();
    let e = ev.clone();
    let a = hub::spawn(move || BLOCKS_ON_DROP.with(|l| *l.borrow_mut() = Some(BlockOnDrop(e))));
    let b = hub::spawn(move || ev.set());
    hub::run();
    a.join().unwrap();
    b.join().unwrap();
}

#[test]
fn a_local_destructor_panic_is_its_own_greenlets_error() {
    let q: Queue<u32> = Queue::new();
    let q2 = q.clone();
    let waiter = hub::spawn(move || q2.get());
    let a = hub::spawn(|| PANICS_ON_DROP.with(|l| *l.borrow_mut() = Some(PanicOnDrop)));
    hub::yield_now();
    hub::yield_now();
    q.put(5);
    hub::run();
    match a.join() {
        Err(JoinError::Panicked(p)) => assert_eq!(panic_text(p.as_ref()), "A's local dtor"),
        other => panic!("{other:?}"),
    }
    assert_eq!(waiter.join().unwrap(), 5);
}

#[test]
fn a_kill_of_a_greenlet_suspended_in_its_locals_destructor_stays_there() {
    let g = Greenlet::new(|()| SWITCHES_ON_DROP.with(|l| *l.borrow_mut() = Some(SwitchOnDrop)));
    // It returns, then its local's destructor switches to main.
    g.switch::<(), ()>(()).unwrap();
    assert!(g.is_active());
    g.kill(); // must not unwind this (the killer)
    assert!(g.is_dead());
}

// ----- detached spawns and long chains -----

/// Spawns `n` greenlets in waves from a feeder, so their stacks never
/// exceed a wave; returns the handles, all finished.
fn spawn_many(n: usize, keep: bool) -> Vec<hub::JoinHandle<usize>> {
    let handles = Rc::new(RefCell::new(Vec::new()));
    let h = handles.clone();
    let feeder = hub::spawn(move || {
        for wave in 0..n / 1000 {
            for i in 0..1000 {
                let handle = hub::spawn(move || wave * 1000 + i);
                if keep {
                    h.borrow_mut().push(handle);
                }
            }
            hub::yield_now();
        }
    });
    hub::run();
    feeder.join().unwrap();
    Rc::try_unwrap(handles).ok().unwrap().into_inner()
}

const MANY: usize = if cfg!(debug_assertions) {
    20_000
} else {
    100_000
};

#[test]
fn many_detached_spawns_finish_in_one_run() {
    spawn_many(MANY, false);
    let s = stats();
    // Only main and the hub are left; only the hub holds a stack.
    assert_eq!((s.greenlets.len(), s.stacks_in_use), (2, 1), "{s}");
}

#[test]
fn many_join_handles_drop_in_any_order() {
    let mut handles = spawn_many(MANY, true);
    assert!(handles.iter().all(|h| h.is_finished()));
    // Newest first.
    while let Some(h) = handles.pop() {
        drop(h);
    }
    // Oldest first, and shuffled (a fixed-seed xorshift).
    let mut handles = spawn_many(MANY, true);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..handles.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        handles.swap(i, (state % (i as u64 + 1)) as usize);
    }
    drop(handles);
    let mut handles = spawn_many(MANY, true);
    handles.reverse();
    drop(handles);
    assert_eq!(stats().dead, 0);
}

// ----- a dead hub -----

#[test]
fn a_hub_killed_by_its_child_makes_run_panic_not_spin() {
    hub::spawn(|| Greenlet::current().parent().unwrap().kill());
    let err = panic::catch_unwind(hub::run).unwrap_err();
    assert!(panic_text(err.as_ref()).contains("hub greenlet is dead"));
}

/// A hook that panics on a switch of the hub greenlet is removed, its panic
/// reported on stderr, and the hub goes on: the switch happens. (The hub
/// died of it, and every later blocking call panicked.)
#[test]
fn a_hook_panicking_on_the_hubs_switch_is_reported_and_the_hub_goes_on() {
    let hub_greenlet: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let hg = hub_greenlet.clone();
    let probe = hub::spawn(move || *hg.borrow_mut() = Greenlet::current().parent());
    hub::run();
    probe.join().unwrap();
    let the_hub = hub_greenlet.borrow_mut().take().unwrap();
    let _hook = with_hook(move |e| {
        if e.origin == the_hub {
            panic!("hook fails on the hub's switch");
        }
    });
    let a = hub::spawn(|| 1);
    let b = hub::spawn(|| 2);
    hub::run();
    assert_eq!((a.join().unwrap(), b.join().unwrap()), (1, 2));
    hub::sleep(Duration::from_millis(1));
}

// ----- stats -----

#[test]
fn a_woken_greenlet_shows_as_ready() {
    let q: Queue<u32> = Queue::new();
    let q2 = q.clone();
    let getter = hub::spawn(move || q2.get());
    hub::yield_now();
    let on = |g: &Greenlet| {
        stats()
            .greenlets
            .into_iter()
            .find(|i| i.id == g.id())
            .and_then(|i| i.waiting_on)
    };
    assert!(matches!(
        on(getter.greenlet()),
        Some(WaitOn::QueueGet { .. })
    ));
    q.put(1);
    assert_eq!(on(getter.greenlet()), Some(WaitOn::Ready));
    hub::run();
    assert_eq!(getter.join().unwrap(), 1);
}

// ----- thread exit -----

const CHILD: &str = "GREENLET_ROUND3_CHILD";

greenlet_local! {
    static SLEEPS_ON_DROP: RefCell<Option<SleepOnDrop>> = RefCell::new(None);
}

struct SleepOnDrop;

impl Drop for SleepOnDrop {
    fn drop(&mut self) {
        hub::sleep(Duration::from_millis(1));
    }
}

#[test]
fn round3_child() {
    if std::env::var(CHILD).is_ok() {
        std::thread::spawn(|| {
            hub::spawn(|| ());
            hub::run();
            SLEEPS_ON_DROP.with(|l| *l.borrow_mut() = Some(SleepOnDrop));
        })
        .join()
        .unwrap();
        println!("thread exited");
    }
}

#[test]
fn a_main_local_that_blocks_at_thread_exit_is_reported_and_the_thread_ends() {
    let out = child::run("round3_child", CHILD, "1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("thread exited"), "{stdout}");
    assert!(
        stderr.contains("greenlet-local value of the main greenlet"),
        "{stderr}"
    );
}
