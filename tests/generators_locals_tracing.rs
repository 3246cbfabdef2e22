//! Generators, greenlet-local storage, switch tracing and introspection.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use greenlet::{
    greenlet_local, set_switch_hook, stats, Generator, Greenlet, GreenletState, SwitchError,
    SwitchKind, Yielder,
};

#[path = "../examples/tree_walk.rs"]
mod tree_walk;

struct Counted(Rc<Cell<usize>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

// ----- generators -----

#[test]
fn tree_walk_example_yields_keys_in_order() {
    let (keys, count) = tree_walk::run();
    assert_eq!(keys, [20, 30, 35, 40, 50, 60, 65, 70, 80]);
    assert_eq!(count, Some(9));
}

#[test]
fn generator_yields_from_a_thousand_nested_calls() {
    fn nest(depth: u32, y: &Yielder<u32>) {
        if depth == 0 {
            y.yield_(1000);
        } else {
            y.yield_(depth);
            nest(depth - 1, y);
        }
    }
    let g = Generator::new(|y: &Yielder<u32>| nest(1000, y));
    let got: Vec<u32> = g.collect();
    assert_eq!(got.len(), 1001);
    assert_eq!(got[0], 1000);
    assert_eq!(got[999], 1);
    assert_eq!(got[1000], 1000);
}

#[test]
fn generator_hands_back_its_return_value_once() {
    let mut g = Generator::new(|y: &Yielder<&str>| {
        y.yield_("a");
        42
    });
    assert_eq!(g.return_value(), None);
    assert_eq!(g.next(), Some("a"));
    assert!(!g.is_finished());
    assert_eq!(g.next(), None);
    assert!(g.is_finished());
    assert_eq!(g.next(), None);
    assert_eq!(g.return_value(), Some(42));
    assert_eq!(g.return_value(), None);
}

#[test]
fn dropping_a_generator_half_way_unwinds_the_producer() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut g = Generator::new(move |y: &Yielder<u32>| {
        let _guard = Counted(d);
        for i in 0.. {
            y.yield_(i);
        }
    });
    assert_eq!(g.next(), Some(0));
    assert_eq!(g.next(), Some(1));
    assert_eq!(drops.get(), 0);
    drop(g);
    assert_eq!(drops.get(), 1, "the producer's stack was unwound");
}

#[test]
fn a_producer_panic_resumes_in_the_consumer() {
    let mut g = Generator::new(|y: &Yielder<u32>| {
        y.yield_(1);
        panic!("producer failed");
    });
    assert_eq!(g.next(), Some(1));
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.next())).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"producer failed"));
    assert!(g.is_finished());
    assert_eq!(g.next(), None);
}

#[test]
fn a_generator_can_be_consumed_from_another_greenlet() {
    let gen = Rc::new(RefCell::new(Generator::new(|y: &Yielder<u32>| {
        for i in 0..4 {
            y.yield_(i);
        }
        "done"
    })));
    assert_eq!(gen.borrow_mut().next(), Some(0));
    let g2 = gen.clone();
    let consumer = Greenlet::new(move |()| {
        let mut g = g2.borrow_mut();
        let rest: Vec<u32> = g.by_ref().collect();
        (rest, g.return_value())
    });
    let (rest, ret) = consumer.switch::<(), (Vec<u32>, Option<&str>)>(()).unwrap();
    assert_eq!(rest, [1, 2, 3]);
    assert_eq!(ret, Some("done"));
}

// ----- greenlet-local storage -----

greenlet_local! {
    static NAME: RefCell<String> = RefCell::new(String::from("unset"));
    static INITS: Cell<u32> = Cell::new(0);
}

thread_local! {
    static SHARED: Cell<u32> = const { Cell::new(0) };
}

#[test]
fn locals_are_per_greenlet_and_lazily_initialised() {
    NAME.with(|n| *n.borrow_mut() = String::from("main"));
    let g = Greenlet::new(|()| {
        let before = NAME.with(|n| n.borrow().clone());
        NAME.with(|n| *n.borrow_mut() = String::from("child"));
        let _: () = Greenlet::main().switch(()).unwrap();
        let after = NAME.with(|n| n.borrow().clone());
        (before, after)
    });
    g.switch::<(), ()>(()).unwrap();
    assert_eq!(NAME.with(|n| n.borrow().clone()), "main");
    let (before, after) = g.switch::<(), (String, String)>(()).unwrap();
    assert_eq!(before, "unset", "a new greenlet starts with a fresh value");
    assert_eq!(after, "child", "its value survived the switch");
}

#[test]
fn thread_locals_are_shared_by_all_greenlets() {
    SHARED.with(|s| s.set(1));
    let g = Greenlet::new(|()| SHARED.with(|s| s.replace(2)));
    assert_eq!(g.switch::<(), u32>(()).unwrap(), 1);
    assert_eq!(SHARED.with(Cell::get), 2);
    INITS.with(|i| i.set(i.get() + 1));
    assert_eq!(INITS.with(Cell::get), 1);
}

greenlet_local! {
    static GUARD: RefCell<Option<Counted>> = RefCell::new(None);
}

#[test]
fn locals_are_dropped_when_the_greenlet_dies() {
    for kill in [false, true] {
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let g = Greenlet::new(move |()| {
            GUARD.with(|g| *g.borrow_mut() = Some(Counted(d)));
            let _: () = Greenlet::main().switch(()).unwrap();
        });
        g.switch::<(), ()>(()).unwrap();
        assert_eq!(drops.get(), 0);
        if kill {
            g.kill();
        } else {
            g.switch::<(), ()>(()).unwrap();
        }
        assert!(g.is_dead());
        assert_eq!(drops.get(), 1, "kill = {kill}");
    }
}

/// A value whose destructor tries to run a helper greenlet (which would
/// come straight back) and records what the switch returned.
struct SwitchesWhenDropped(Rc<RefCell<Vec<Result<u32, String>>>>);

impl Drop for SwitchesWhenDropped {
    fn drop(&mut self) {
        let r = Greenlet::new(|()| 7u32).switch::<(), u32>(());
        self.0.borrow_mut().push(r.map_err(|e| format!("{e:?}")));
    }
}

greenlet_local! {
    static SWITCHER: RefCell<Option<SwitchesWhenDropped>> = RefCell::new(None);
}

/// A kill's destructors cannot switch, also those of the greenlet-locals
/// (dropped after the unwinding) and of an unstarted greenlet's function:
/// the switch fails with `Unwinding` and the kill completes. (It was taken
/// for a refusal: the victim stayed suspended in the destructor, and the
/// killer was told it caught the kill.)
#[test]
fn a_kill_completes_when_a_local_or_unrun_function_switches_as_it_drops() {
    // A greenlet-local's destructor.
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let g = Greenlet::new(move |()| {
        SWITCHER.with(|l| *l.borrow_mut() = Some(SwitchesWhenDropped(s)));
        let _: () = Greenlet::main().switch(()).unwrap();
        unreachable!("killed");
    });
    g.switch::<(), ()>(()).unwrap();
    assert_eq!(g.try_kill(), Ok(()));
    assert!(g.is_dead());
    assert_eq!(*seen.borrow(), [Err("Unwinding".to_string())]);

    // An unstarted greenlet's function, dropped unrun.
    let seen = Rc::new(RefCell::new(Vec::new()));
    let guard = SwitchesWhenDropped(seen.clone());
    let g = Greenlet::new(move |()| drop(guard));
    assert_eq!(g.try_kill(), Ok(()));
    assert!(g.is_dead());
    assert_eq!(*seen.borrow(), [Err("Unwinding".to_string())]);

    // Without a kill, the local's destructor switches as any code does.
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let g = Greenlet::new(move |()| {
        SWITCHER.with(|l| *l.borrow_mut() = Some(SwitchesWhenDropped(s)));
    });
    g.switch::<(), ()>(()).unwrap();
    assert!(g.is_dead());
    assert_eq!(*seen.borrow(), [Ok(7)]);
}

greenlet_local! {
    static FIRST_SWITCHER: RefCell<Option<SwitchesWhenDropped>> = RefCell::new(None);
}

/// A kill that comes while one greenlet-local's destructor is suspended
/// in a switch, and that the destructor catches: the next local's switch
/// fails too (it was taken for a refusal). And a greenlet that kills
/// itself, catches that and returns is not being killed: its locals'
/// destructors switch as usual (they got `Unwinding`).
#[test]
fn locals_after_a_caught_kill_or_a_caught_self_kill() {
    // Greenlet-locals drop from the one first used latest: `SWITCHER`'s
    // value goes before `FIRST_SWITCHER`'s.
    struct CatchesItsKill;
    impl Drop for CatchesItsKill {
        fn drop(&mut self) {
            let main = Greenlet::main();
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                main.switch::<(), ()>(())
            }));
        }
    }
    greenlet_local! {
        static CATCHER: RefCell<Option<CatchesItsKill>> = RefCell::new(None);
    }
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let g = Greenlet::new(move |()| {
        FIRST_SWITCHER.with(|l| *l.borrow_mut() = Some(SwitchesWhenDropped(s)));
        CATCHER.with(|c| *c.borrow_mut() = Some(CatchesItsKill));
    });
    g.switch::<(), ()>(()).unwrap();
    assert!(!g.is_dead(), "suspended in the catcher's destructor");
    assert_eq!(g.try_kill(), Ok(()));
    assert!(g.is_dead());
    assert_eq!(*seen.borrow(), [Err("Unwinding".to_string())]);

    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let g = Greenlet::new(move |()| {
        SWITCHER.with(|l| *l.borrow_mut() = Some(SwitchesWhenDropped(s)));
        let me = Greenlet::current();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| me.kill()));
        assert!(caught.is_err());
        5u32
    });
    assert_eq!(g.switch::<(), u32>(()).unwrap(), 5);
    assert_eq!(*seen.borrow(), [Ok(7)]);
}

#[test]
fn main_locals_are_dropped_at_thread_exit() {
    let drops = Rc::new(Cell::new(0));
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s = seen.clone();
    std::thread::spawn(move || {
        struct Flag(std::sync::Arc<std::sync::atomic::AtomicUsize>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        greenlet_local! {
            static FLAG: RefCell<Option<Flag>> = RefCell::new(None);
        }
        FLAG.with(|f| *f.borrow_mut() = Some(Flag(s)));
    })
    .join()
    .unwrap();
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    drop(drops);
}

/// Locals whose destructors use other locals. Values are dropped from the
/// highest slot down, and slots go by first use in the process: each test
/// below touches these in declaration order before anything else, so
/// `HIGH` is dropped before `LOW` and `FIRST`, and `LATE` (created while
/// they are dropped) right after `HIGH`.
mod cross {
    use std::cell::{Cell, RefCell};

    greenlet::greenlet_local! {
        pub static FIRST: RefCell<Option<ReadsHigh>> = RefCell::new(None);
        pub static LOW: Cell<u32> = Cell::new(0);
        pub static HIGH: RefCell<Option<ReadsLowMakesLate>> = RefCell::new(None);
        pub static LATE: RefCell<Option<Logs>> = RefCell::new(None);
    }

    thread_local! {
        pub static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    pub fn log(line: String) {
        LOG.with(|l| l.borrow_mut().push(line));
    }

    /// Fixes the slots' order: `FIRST` < `LOW` < `HIGH` < `LATE`.
    pub fn order_slots() {
        FIRST.with(|_| ());
        LOW.with(|_| ());
        HIGH.with(|_| ());
        LATE.with(|_| ());
    }

    /// On drop: logs what `LOW` holds, and creates `LATE`.
    pub struct ReadsLowMakesLate;

    impl Drop for ReadsLowMakesLate {
        fn drop(&mut self) {
            log(format!("HIGH saw LOW = {}", LOW.with(Cell::get)));
            LATE.with(|l| *l.borrow_mut() = Some(Logs));
        }
    }

    /// On drop: logs which greenlet drops it.
    pub struct Logs;

    impl Drop for Logs {
        fn drop(&mut self) {
            log(format!("LATE dropped in {}", greenlet::current().id()));
        }
    }

    /// On drop: reads `HIGH`, which is dropped by then.
    pub struct ReadsHigh;

    impl Drop for ReadsHigh {
        fn drop(&mut self) {
            HIGH.with(|_| ());
        }
    }
}

#[test]
fn local_destructors_see_the_values_not_yet_dropped_on_their_own_greenlet() {
    use cross::*;
    order_slots();
    LOG.with(|l| l.borrow_mut().clear());
    let g = Greenlet::new(|()| {
        LOW.with(|l| l.set(42));
        HIGH.with(|h| *h.borrow_mut() = Some(ReadsLowMakesLate));
        greenlet::current().id()
    });
    let id: u64 = g.switch(()).unwrap();
    assert!(g.is_dead());
    let log = LOG.with(|l| l.borrow_mut().split_off(0));
    // `LOW` was still there, not a fresh value; `LATE`, created while the
    // values were dropped, went too, on the finishing greenlet.
    assert_eq!(
        log,
        [
            "HIGH saw LOW = 42".to_string(),
            format!("LATE dropped in {id}")
        ]
    );
}

#[test]
fn reading_a_local_already_dropped_panics_into_the_greenlets_outcome() {
    use cross::*;
    order_slots();
    let bystander = greenlet::hub::spawn(|| {
        greenlet::hub::yield_now();
        "untouched"
    });
    // `FIRST` is dropped last, after `HIGH`, whose value it then reads.
    let h = greenlet::hub::spawn(|| {
        FIRST.with(|f| *f.borrow_mut() = Some(ReadsHigh));
        HIGH.with(|h| *h.borrow_mut() = Some(ReadsLowMakesLate));
    });
    match h.join() {
        Err(greenlet::hub::JoinError::Panicked(p)) => {
            let text = p.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(text.contains("already dropped"), "{text}");
        }
        other => panic!("the panic belongs to its handle: {other:?}"),
    }
    assert_eq!(bystander.join().unwrap(), "untouched");
}

// ----- switch tracing -----

#[test]
fn the_hook_sees_switch_throw_kill_finish_and_panic() {
    let log: Rc<RefCell<Vec<(String, String, SwitchKind)>>> = Rc::default();
    let l = log.clone();
    let name = |g: &Greenlet| g.name().map(|n| n.to_string()).unwrap_or_default();
    let old = set_switch_hook(Some(Box::new(move |e| {
        l.borrow_mut()
            .push((name(&e.origin), name(&e.target), e.kind));
    })));
    assert!(old.is_none());

    let a = Greenlet::builder()
        .name("a")
        .build(|x: u32| -> u32 {
            let r: Result<(), SwitchError> = Greenlet::main().switch(x);
            assert!(matches!(r, Err(SwitchError::Thrown(_))));
            x + 1
        })
        .unwrap();
    assert_eq!(a.switch::<u32, u32>(1).unwrap(), 1);
    assert_eq!(a.throw::<&str, u32>("stop").unwrap(), 2);
    let b = Greenlet::builder()
        .name("b")
        .build(|()| -> () { panic!("b failed") })
        .unwrap();
    assert!(b.switch::<(), ()>(()).is_err());
    let c = Greenlet::builder()
        .name("c")
        .build(|()| {
            let _: () = Greenlet::main().switch(()).unwrap();
        })
        .unwrap();
    c.switch::<(), ()>(()).unwrap();
    c.kill();
    set_switch_hook(None);
    // Nothing is reported once the hook is gone.
    let d = Greenlet::new(|()| ());
    d.switch::<(), ()>(()).unwrap();

    let got = log.borrow().clone();
    let want: Vec<(&str, &str, SwitchKind)> = vec![
        ("main", "a", SwitchKind::Switch),
        ("a", "main", SwitchKind::Switch),
        ("main", "a", SwitchKind::Throw),
        ("a", "main", SwitchKind::Finish),
        ("main", "b", SwitchKind::Switch),
        ("b", "main", SwitchKind::Panic),
        ("main", "c", SwitchKind::Switch),
        ("c", "main", SwitchKind::Switch),
        ("main", "c", SwitchKind::Kill),
        ("c", "main", SwitchKind::Finish),
    ];
    let got: Vec<(&str, &str, SwitchKind)> = got
        .iter()
        .map(|(o, t, k)| (o.as_str(), t.as_str(), *k))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn the_hook_may_not_switch() {
    let results: Rc<RefCell<Vec<String>>> = Rc::default();
    let r = results.clone();
    let other = Greenlet::new(|()| ());
    set_switch_hook(Some(Box::new(move |_| {
        let e = other.switch::<(), ()>(()).unwrap_err();
        r.borrow_mut().push(e.to_string());
    })));
    let g = Greenlet::new(|x: u8| x);
    assert_eq!(g.switch::<u8, u8>(5).unwrap(), 5);
    set_switch_hook(None);
    let results = results.borrow();
    assert_eq!(results.len(), 2);
    assert!(matches!(
        results[0].as_str(),
        "cannot switch from inside the switch hook"
    ));
}

#[test]
fn a_panicking_hook_is_removed_and_the_panic_reaches_the_switcher() {
    let drops = Rc::new(Cell::new(0));
    set_switch_hook(Some(Box::new(|_| panic!("hook failed"))));
    let g = Greenlet::new(|c: Counted| c);
    let d = drops.clone();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = g.switch::<Counted, Counted>(Counted(d));
    }))
    .unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"hook failed"));
    assert_eq!(
        drops.get(),
        1,
        "the value was dropped, the switch did not happen"
    );
    assert!(!g.is_started());
    assert!(set_switch_hook(None).is_none(), "the hook was removed");
    let d = drops.clone();
    let back = g.switch::<Counted, Counted>(Counted(d)).unwrap();
    drop(back);
    assert_eq!(drops.get(), 2);
}

// ----- introspection -----

#[test]
fn stats_list_every_greenlet_with_its_state_and_parent() {
    let a = Greenlet::builder().name("a").build(|()| ()).unwrap();
    let b = Greenlet::builder()
        .name("b")
        .build(|()| {
            let _: () = Greenlet::main().switch(()).unwrap();
        })
        .unwrap();
    b.switch::<(), ()>(()).unwrap();
    let c = Greenlet::builder().name("c").build(|()| ()).unwrap();
    c.switch::<(), ()>(()).unwrap();

    let s = stats();
    let find = |g: &Greenlet| s.greenlets.iter().find(|i| i.id == g.id()).unwrap().clone();
    assert_eq!(find(&a).state, GreenletState::Unstarted);
    assert_eq!(find(&b).state, GreenletState::Suspended);
    assert_eq!(find(&c).state, GreenletState::Dead);
    assert_eq!(find(&Greenlet::main()).state, GreenletState::Running);
    assert_eq!(find(&b).parent, Some(0));
    assert_eq!(find(&Greenlet::main()).parent, None);
    assert_eq!((s.unstarted, s.active, s.dead), (1, 2, 1));
    assert_eq!(s.stacks_in_use, 2, "a and b hold stacks, c's went back");
    let text = s.to_string();
    assert!(text.contains("'b' Suspended, parent #0"), "{text}");
}

#[path = "../examples/trace.rs"]
mod trace_example;

#[test]
fn trace_example_sees_every_switch_of_prodcons() {
    let events: Vec<String> = trace_example::run()
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let mut want = vec!["main -> producer Switch".to_string()];
    for _ in 0..3 {
        want.push("producer -> consumer Switch".into());
        want.push("consumer -> producer Switch".into());
    }
    want.push("producer -> consumer Switch".into());
    want.push("consumer -> producer Finish".into());
    want.push("producer -> main Finish".into());
    assert_eq!(events, want);
}

#[test]
fn try_with_reads_a_local_in_a_switch_hook_even_after_the_greenlet_finished() {
    // A profiler's hook reading a request id: on a greenlet's `Finish`,
    // its values are gone; `try_with` says so where `with` panicked (and
    // the hook was removed).
    greenlet::greenlet_local! {
        static REQUEST: std::cell::Cell<u32> = std::cell::Cell::new(0);
    }
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    greenlet::set_switch_hook(Some(Box::new(move |e| {
        s.borrow_mut()
            .push((e.kind, REQUEST.try_with(std::cell::Cell::get).ok()));
    })));
    let g = Greenlet::new(|()| REQUEST.with(|r| r.set(42)));
    g.switch::<(), ()>(()).unwrap();
    let hook = greenlet::set_switch_hook(None);
    assert!(hook.is_some(), "the hook was not removed");
    assert_eq!(
        *seen.borrow(),
        [
            (greenlet::SwitchKind::Switch, Some(0)),
            (greenlet::SwitchKind::Finish, None)
        ]
    );
}

#[test]
fn try_with_makes_no_value_for_a_finished_greenlet_and_says_so_after_teardown() {
    // In a `Finish` hook, a `Local` the greenlet never used counts as
    // dropped too (a value made there was dropped later, on another
    // greenlet); after the thread's runtime is torn down, `try_with` says
    // so (it panicked, which in a thread-local's destructor aborts).
    greenlet::greenlet_local! {
        static NEVER_USED: Cell<u32> = Cell::new(5);
    }
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    greenlet::set_switch_hook(Some(Box::new(move |e| {
        if e.kind == greenlet::SwitchKind::Finish {
            s.borrow_mut().push(NEVER_USED.try_with(Cell::get).is_err());
        }
    })));
    let g = Greenlet::new(|()| ());
    g.switch::<(), ()>(()).unwrap();
    greenlet::set_switch_hook(None);
    assert_eq!(*seen.borrow(), [true]);

    static AFTER_TEARDOWN: std::sync::Mutex<Option<bool>> = std::sync::Mutex::new(None);
    struct ReadsLocal;
    impl Drop for ReadsLocal {
        fn drop(&mut self) {
            let dropped = NEVER_USED.try_with(Cell::get).is_err();
            *AFTER_TEARDOWN.lock().unwrap() = Some(dropped);
        }
    }
    thread_local! {
        static GUARD: ReadsLocal = const { ReadsLocal };
    }
    std::thread::spawn(|| {
        // Registered before the greenlet runtime: destroyed after it.
        GUARD.with(|_| ());
        NEVER_USED.with(|n| n.set(9));
    })
    .join()
    .unwrap();
    assert_eq!(*AFTER_TEARDOWN.lock().unwrap(), Some(true));
}

#[test]
fn a_switch_hook_panicking_on_a_kill_made_while_unwinding_is_reported_not_raised() {
    // The last handle of a suspended greenlet dropped during an unwinding:
    // the hook's panic on that kill, raised there, aborted the process. It
    // is reported, the hook removed, and the kill goes on.
    struct Counted(Rc<Cell<u32>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let unwound = Rc::new(Cell::new(0));
    let u = unwound.clone();
    let g = Greenlet::new(move |()| {
        let _c = Counted(u);
        Greenlet::main().switch::<(), ()>(()).unwrap();
    });
    g.switch::<(), ()>(()).unwrap();
    greenlet::set_switch_hook(Some(Box::new(|e| {
        if e.kind == greenlet::SwitchKind::Kill {
            panic!("a profiler's bug");
        }
    })));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _g = g;
        panic!("unrelated");
    }));
    let hook = greenlet::set_switch_hook(None);
    let p = r.unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"unrelated"));
    assert!(hook.is_none(), "the panicking hook was removed");
    assert_eq!(unwound.get(), 1, "the greenlet was killed");
}

/// A greenlet started and parked in a switch to main.
fn parked() -> Greenlet {
    let g = Greenlet::new(|()| {
        Greenlet::main().switch::<(), ()>(()).unwrap();
    });
    g.switch::<(), ()>(()).unwrap();
    g
}

#[test]
fn a_finish_hook_that_kills_another_greenlet_keeps_the_finishing_ones_locals_closed() {
    // The killed greenlet's own end, inside the hook, closed and reopened
    // the locals in place of the finishing greenlet's.
    greenlet::greenlet_local! {
        static NEVER_USED: Cell<u32> = Cell::new(5);
    }
    let b = Rc::new(RefCell::new(Some(parked())));
    let a = Greenlet::new(|()| ());
    let a_id = a.id();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (s, bb) = (seen.clone(), b.clone());
    greenlet::set_switch_hook(Some(Box::new(move |e| {
        if e.kind == greenlet::SwitchKind::Finish && e.origin.id() == a_id {
            s.borrow_mut().push(NEVER_USED.try_with(Cell::get).is_err());
            if let Some(victim) = bb.borrow_mut().take() {
                victim.kill();
            }
            s.borrow_mut().push(NEVER_USED.try_with(Cell::get).is_err());
        }
    })));
    a.switch::<(), ()>(()).unwrap();
    greenlet::set_switch_hook(None);
    assert_eq!(*seen.borrow(), [true, true]);
}

#[test]
fn a_hooks_kill_of_a_killer_that_caught_its_own_kill_while_main_unwinds_goes_on() {
    // K, killed by main's unwinding drop, catches that kill and kills V;
    // the hook, on that kill, kills K (a watchdog). K's new unwinding was
    // taken for a hook panic: reported, dropped, and K ran on.
    let v = Rc::new(RefCell::new(Some(parked())));
    let v_id = v.borrow().as_ref().unwrap().id();
    let reached = Rc::new(Cell::new(false));
    let (vv, r) = (v.clone(), reached.clone());
    let k = Greenlet::new(move |()| {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Greenlet::main().switch::<(), ()>(()).unwrap();
        }));
        assert!(caught.is_err());
        drop(caught);
        let victim = vv.borrow_mut().take().unwrap();
        victim.kill();
        r.set(true);
    });
    k.switch::<(), ()>(()).unwrap();
    let k_id = k.id();
    greenlet::set_switch_hook(Some(Box::new(move |e| {
        if e.kind == greenlet::SwitchKind::Kill && e.origin.id() == k_id && e.target.id() == v_id {
            e.origin.kill();
        }
    })));
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _k = k;
        panic!("unrelated");
    }));
    let hook = greenlet::set_switch_hook(None);
    assert!(res.is_err());
    assert!(
        hook.is_some(),
        "a hook that killed its origin is not removed"
    );
    assert!(!reached.get(), "K was killed by the hook");
}

/// Starts a greenlet-local off: named as the macro's own initialiser was,
/// which a `static` of the macro's then called instead (itself, for ever).
fn init() -> std::cell::Cell<u32> {
    std::cell::Cell::new(41)
}

greenlet::greenlet_local! {
    static STARTED_BY_A_FN_NAMED_INIT: std::cell::Cell<u32> = init();
}

/// A greenlet-local's initialiser may call the program's own `init`.
#[test]
fn an_initialiser_may_call_a_function_named_init() {
    assert_eq!(STARTED_BY_A_FN_NAMED_INIT.with(|v| v.get() + 1), 42);
}
