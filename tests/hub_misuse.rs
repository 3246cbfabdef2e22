//! What users do to the hub that it must survive: throws, kills and switches
//! aimed at spawned greenlets (or at the hub itself), timeouts too long to
//! have a deadline, refused stacks. Each outcome is an error or a clear
//! panic, never a dead hub that spins or a result that goes astray.

#[path = "support/address_space.rs"]
mod address_space;
#[path = "support/child.rs"]
mod child;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::panic;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, with_timeout, Event, JoinError, Queue};
use greenlet::net::{TcpListener, TcpStream};
use greenlet::Greenlet;

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

// ----- throws into spawned greenlets -----

#[test]
fn a_throw_into_an_unstarted_spawn_before_the_hub_ever_ran_reaches_its_handle() {
    let h = hub::spawn(|| 1);
    // It ends unrun; the throw comes back to the thrower.
    h.greenlet().throw::<&str, ()>("stop").unwrap();
    assert!(h.greenlet().is_dead());
    // The hub is alive: a sleep sleeps and returns (it used to spin).
    hub::sleep(Duration::from_millis(1));
    match h.join() {
        Err(JoinError::Panicked(p)) => assert_eq!(panic_text(p.as_ref()), "stop"),
        other => panic!("expected the thrown error, got {other:?}"),
    }
}

#[test]
fn a_throw_into_an_unstarted_spawn_from_a_running_hub_reaches_its_handle() {
    let victim: Rc<RefCell<Option<hub::JoinHandle<u32>>>> = Rc::default();
    let v = victim.clone();
    let thrower = hub::spawn(move || {
        let h = v.borrow_mut().take().unwrap();
        h.greenlet().throw::<&str, ()>("stop").unwrap();
        h.join()
    });
    *victim.borrow_mut() = Some(hub::spawn(|| 1));
    hub::run();
    match thrower.join().unwrap() {
        Err(JoinError::Panicked(p)) => assert_eq!(panic_text(p.as_ref()), "stop"),
        other => panic!("expected the thrown error, got {other:?}"),
    }
}

#[test]
fn a_throw_into_a_blocked_spawn_unwinds_it_into_its_handle() {
    let ev = Event::new();
    let e = ev.clone();
    let h = hub::spawn(move || e.wait());
    hub::yield_now(); // it blocks on the event
    let _ = h.greenlet().throw::<&str, ()>("stop");
    hub::run();
    match h.join() {
        Err(JoinError::Panicked(p)) => assert_eq!(panic_text(p.as_ref()), "stop"),
        other => panic!("expected the thrown error, got {other:?}"),
    }
}

// ----- a dead hub says so -----

#[test]
fn a_killed_hub_makes_blocking_calls_panic_instead_of_spinning() {
    let killer = hub::spawn(|| Greenlet::current().parent().unwrap().kill());
    let run = panic::catch_unwind(hub::run).unwrap_err();
    assert!(
        panic_text(run.as_ref()).contains("hub greenlet is dead"),
        "{}",
        panic_text(run.as_ref())
    );
    assert!(killer.is_finished());
    let sleep = panic::catch_unwind(|| hub::sleep(Duration::from_millis(1))).unwrap_err();
    assert!(panic_text(sleep.as_ref()).contains("hub greenlet is dead"));
}

// ----- Duration::MAX is no deadline -----

#[test]
fn duration_max_means_no_deadline_everywhere() {
    let max = Duration::MAX;
    // Things already there are taken at once.
    let q = Queue::new();
    q.put(1);
    assert_eq!(q.get_timeout(max), Some(1));
    assert_eq!(q.put_timeout(2, max), Ok(()));
    assert_eq!(q.try_get(), Some(2));
    let ev = Event::new();
    ev.set();
    assert!(ev.wait_timeout(max));
    assert_eq!(with_timeout(max, || 5), Ok(5));
    let (tx, rx) = hub::channel();
    tx.send(3).unwrap();
    assert_eq!(rx.recv_timeout(max), Ok(3));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    client.write_all(b"hi").unwrap();
    server.set_read_timeout(Some(max)).unwrap();
    let mut buf = [0; 2];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");

    // Waits that must block do, until something else completes them.
    let q2 = q.clone();
    let getter = hub::spawn(move || q2.get_timeout(max));
    let sleeper = hub::spawn(move || with_timeout(max, || hub::sleep(max)));
    hub::yield_now();
    q.put(7);
    hub::yield_now();
    assert_eq!(getter.join().unwrap(), Some(7));
    sleeper.kill();
    assert!(matches!(sleeper.join(), Err(JoinError::Killed)));
}

// ----- refused stacks -----

const CHILD: &str = "GREENLET_HUB_MISUSE_CHILD";

/// In the child: cap the address space, then spawn until refused.
fn refused_stack_main(mode: &str) {
    address_space::cap();
    let mut keep = Vec::new();
    for _ in 0..100_000 {
        if mode == "builder" {
            match hub::Builder::new().name("conn").spawn(|| ()) {
                Ok(h) => keep.push(h),
                Err(e) => {
                    println!("spawn error: kind={:?}", e.kind());
                    // Nothing was spawned; the hub still runs the others.
                    let n = keep.len();
                    hub::run();
                    let finished = keep.iter().filter(|h| h.is_finished()).count();
                    println!("finished {finished} of {n}");
                    return;
                }
            }
        } else {
            keep.push(hub::spawn(|| ()));
        }
    }
    println!("never refused");
}

#[test]
fn refused_stack_child() {
    // Only does something when re-run by the tests below.
    if let Ok(mode) = std::env::var(CHILD) {
        refused_stack_main(&mode);
    }
}

#[test]
fn builder_spawn_returns_a_refused_stack_as_an_error() {
    let out = child::run("refused_stack_child", CHILD, "builder");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    assert!(stdout.contains("spawn error: kind=OutOfMemory"), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("finished")).unwrap();
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words[1], words[3], "{line}");
}

#[test]
fn spawn_panics_naming_the_limit_and_the_remedy() {
    let out = child::run("refused_stack_child", CHILD, "spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("vm.max_map_count"), "{stderr}");
    assert!(stderr.contains("hub::Builder::spawn"), "{stderr}");
}

#[test]
fn builder_names_the_spawned_greenlet_and_sizes_its_stack() {
    let h = hub::Builder::new()
        .name("worker")
        .stack_size(64 * 1024)
        .spawn(|| Greenlet::current().name().map(|n| n.to_string()))
        .unwrap();
    assert_eq!(h.join().unwrap().as_deref(), Some("worker"));
}

#[test]
fn a_remote_task_that_gets_no_stack_is_dropped_and_the_hub_runs_on() {
    hub::yield_now(); // the hub greenlet has its stack
    let remote = hub::remote();
    let (tx, rx) = hub::channel();
    let refused = tx.clone();
    // Every stack this thread maps from now on is refused.
    greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(1 << 50));
    remote.spawn(move || refused.send(1).unwrap()).unwrap();
    hub::yield_now(); // the hub takes its mail: no stack for the task
    greenlet::set_stack_policy(greenlet::StackPolicy::new());
    remote.spawn(move || tx.send(2).unwrap()).unwrap();
    assert_eq!(rx.recv(), Ok(2), "the first task was dropped unrun");
    assert!(rx.recv().is_err(), "and its sender with it");
}

#[test]
fn a_blocking_call_inside_a_switch_hook_panics_instead_of_spinning() {
    let said = Rc::new(RefCell::new(None));
    let (s, armed) = (said.clone(), Rc::new(std::cell::Cell::new(true)));
    greenlet::set_switch_hook(Some(Box::new(move |_| {
        if armed.replace(false) {
            let blocked = panic::catch_unwind(|| hub::sleep(Duration::from_millis(1)));
            *s.borrow_mut() = blocked.err().map(|p| panic_text(p.as_ref()));
        }
    })));
    let h = hub::spawn(|| 1);
    assert_eq!(h.join().unwrap(), 1);
    greenlet::set_switch_hook(None);
    let said = said.borrow().clone().expect("the sleep panicked");
    assert!(said.contains("cannot block inside a switch hook"), "{said}");
}

#[test]
fn a_yield_or_block_that_fails_while_unwinding_takes_no_ready_greenlet_with_it() {
    struct YieldsAndBlocks(Rc<RefCell<Vec<bool>>>);
    impl Drop for YieldsAndBlocks {
        fn drop(&mut self) {
            // Run while a panic unwinds, each in a `catch_unwind`: both
            // fail, and leave the ready queue as it was.
            let yielded = panic::catch_unwind(hub::yield_now);
            let slept = panic::catch_unwind(|| hub::sleep(Duration::from_millis(1)));
            self.0.borrow_mut().extend([yielded.is_ok(), slept.is_ok()]);
        }
    }
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let unwinder = hub::spawn(move || {
        let _ = panic::catch_unwind(panic::AssertUnwindSafe(|| {
            let _d = YieldsAndBlocks(s);
            panic::resume_unwind(Box::new("unwinding on purpose"));
        }));
        7
    });
    let runs = Rc::new(std::cell::Cell::new(0));
    let others: Vec<_> = (0..3)
        .map(|_| {
            let r = runs.clone();
            hub::spawn(move || {
                r.set(r.get() + 1);
                hub::yield_now();
                r.set(r.get() + 1);
            })
        })
        .collect();
    assert_eq!(unwinder.join().unwrap(), 7);
    for h in others {
        h.join().unwrap();
    }
    assert_eq!(runs.get(), 6, "every ready greenlet ran to its end");
    assert_eq!(*seen.borrow(), [false, false]);
}

#[test]
fn a_victim_that_refuses_its_kill_by_blocking_again_takes_no_ready_greenlet_with_it() {
    let (first, second) = (Event::new(), Event::new());
    let (f, s) = (first.clone(), second.clone());
    let victim = hub::spawn(move || {
        assert!(panic::catch_unwind(panic::AssertUnwindSafe(|| f.wait())).is_err());
        s.wait(); // refuses the kill: control goes back to the killer
        "lived on"
    });
    hub::yield_now(); // it blocks
    let runs = Rc::new(std::cell::Cell::new(0));
    let others: Vec<_> = (0..3)
        .map(|_| {
            let r = runs.clone();
            hub::spawn(move || r.set(r.get() + 1))
        })
        .collect();
    assert!(victim.greenlet().try_kill().is_err(), "refused");
    for h in others {
        h.join().unwrap();
    }
    assert_eq!(runs.get(), 3);
    second.set();
    assert_eq!(victim.join().unwrap(), "lived on");
}

// ----- kills a spawned greenlet catches -----

/// A spawned greenlet that catches the unwinding of its kill (a
/// `catch_unwind` around its blocking work) and returns.
fn catches_its_kill() -> hub::JoinHandle<u32> {
    hub::spawn(|| {
        let _ = panic::catch_unwind(|| hub::sleep(Duration::from_secs(3600)));
        5
    })
}

#[test]
fn a_spawn_that_catches_its_kill_and_returns_is_still_killed() {
    let victim = catches_its_kill();
    hub::yield_now(); // it blocks
    let ran = Rc::new(RefCell::new(Vec::new()));
    let r = ran.clone();
    let ready = hub::spawn(move || r.borrow_mut().push("ready"));
    victim.kill();
    // Control came straight back to the killer: the other greenlet is
    // still ready, not taken by the victim's end.
    assert!(ran.borrow().is_empty());
    assert!(
        matches!(victim.join(), Err(JoinError::Killed)),
        "its value is dropped"
    );
    ready.join().unwrap();
    assert_eq!(*ran.borrow(), ["ready"]);
}

#[test]
fn a_caught_kill_from_another_greenlet_leaves_main_ready() {
    let victim = catches_its_kill();
    hub::yield_now(); // it blocks
    let g = victim.greenlet().clone();
    let killer = hub::spawn(move || g.kill());
    // The killer runs while main is ready; main's yield returns.
    hub::yield_now();
    assert!(killer.is_finished());
    assert!(matches!(victim.join(), Err(JoinError::Killed)));
}

// ----- parents and switches of spawned greenlets -----

#[test]
fn a_spawned_greenlet_reparented_to_main_still_reports_to_its_handle() {
    let h = hub::spawn(|| {
        hub::yield_now();
        7
    });
    h.greenlet().set_parent(&Greenlet::main()).unwrap();
    let other = hub::spawn(|| 8);
    hub::run();
    assert_eq!(h.join().unwrap(), 7);
    assert_eq!(other.join().unwrap(), 8);
    // The hub is alive and well.
    hub::sleep(Duration::from_millis(1));
}

#[test]
fn switching_into_a_spawned_greenlet_by_hand_leaves_the_hub_working() {
    let h = hub::spawn(|| 5);
    // Main starts it itself; it finishes and control reaches main again.
    let _ = h.greenlet().switch::<(), ()>(());
    assert!(h.is_finished());
    assert_eq!(h.join().unwrap(), 5);
    let later = hub::spawn(|| 6);
    hub::run();
    assert_eq!(later.join().unwrap(), 6);
}

// ----- a switch hook that panics on the hub's switches -----

/// Arms a switch hook that panics once, on the first switch to a greenlet
/// `target` accepts.
fn hook_panicking_once_on_switch_to(target: impl Fn(&Greenlet) -> bool + 'static) {
    let armed = std::cell::Cell::new(true);
    greenlet::set_switch_hook(Some(Box::new(move |e| {
        if target(&e.target) && e.kind == greenlet::SwitchKind::Switch && armed.replace(false) {
            panic!("hook panic");
        }
    })));
}

/// A hook that panics on the switch to a greenlet just woken: it still
/// runs. (A blocking call handed control straight to it, and the hook's
/// panic unwound past it: taken off the ready queue, it never ran.) With
/// a hook set, the hub's calls go through the hub greenlet, whose loop
/// reports a hook's panic on its own switches and goes on.
#[test]
fn a_hook_panicking_on_the_switch_to_a_woken_greenlet_loses_nothing() {
    let (woken, gate) = (Event::new(), Event::new());
    let n = {
        let woken = woken.clone();
        hub::spawn(move || woken.wait())
    };
    let g = {
        let (woken, gate) = (woken.clone(), gate.clone());
        let n = n.greenlet().clone();
        hub::spawn(move || {
            woken.set();
            hook_panicking_once_on_switch_to(move |t| *t == n);
            gate.wait();
        })
    };
    hub::run();
    greenlet::set_switch_hook(None);
    assert!(n.is_finished(), "woken, it ran");
    gate.set();
    g.join().unwrap();
}

/// The same for a yield: the greenlet the yield would have handed control
/// to runs every one of its turns.
#[test]
fn a_hook_panicking_on_a_yields_switch_loses_nothing() {
    let turns = Rc::new(std::cell::Cell::new(0));
    let n = {
        let turns = turns.clone();
        hub::spawn(move || {
            for _ in 0..3 {
                turns.set(turns.get() + 1);
                hub::yield_now();
            }
        })
    };
    let target = n.greenlet().clone();
    let g = hub::spawn(move || {
        hook_panicking_once_on_switch_to(move |t| *t == target);
        for _ in 0..5 {
            hub::yield_now();
        }
    });
    hub::run();
    greenlet::set_switch_hook(None);
    assert_eq!(turns.get(), 3);
    assert!(n.is_finished());
    g.join().unwrap();
}

/// A hook that panics on a greenlet's own switch to the hub greenlet
/// unwinds that greenlet's call (as the hook's docs say), and leaves it
/// off the ready queue: queued, it would later be resumed in the middle
/// of whatever switch it made next.
#[test]
fn a_hook_panicking_on_a_yield_to_the_hub_leaves_the_yielder_unqueued() {
    hub::time::pause();
    let g = hub::spawn(|| {
        hook_panicking_once_on_switch_to(|t| t.name().as_deref() == Some("hub"));
        let r = panic::catch_unwind(hub::yield_now);
        assert_eq!(panic_text(r.unwrap_err().as_ref()), "hook panic");
        // A plain child that blocks in the hub: this greenlet waits in a
        // plain switch for the child's value, not for the hub.
        let child = Greenlet::new(|()| {
            hub::sleep(Duration::from_secs(1));
            42u32
        });
        child.switch::<(), u32>(()).unwrap()
    });
    assert_eq!(g.join().unwrap(), 42);
    greenlet::set_switch_hook(None);
    hub::time::resume();
}

/// The schedule of a few greenlets that yield and sleep past a deadline.
fn a_schedule() -> Vec<String> {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let mut handles = vec![hub::spawn(move || {
        // A deadline already passed: it wakes after every greenlet that
        // was ready.
        hub::sleep_until(hub::time::now());
        l.borrow_mut().push("A".to_string());
    })];
    for name in ["B", "C"] {
        let l = log.clone();
        handles.push(hub::spawn(move || {
            for turn in 1..=3 {
                l.borrow_mut().push(format!("{name}{turn}"));
                if turn < 3 {
                    hub::yield_now();
                }
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let order = log.borrow().clone();
    order
}

/// A switch hook that only watches (or `hub::monitor`, which sets one)
/// does not change the schedule: the hub, switched to in the middle of a
/// round (no hand-offs while a hook is set), carries the round on. (It
/// started a new one: the sleeper came before the round's second turns.)
#[test]
fn a_watching_hook_leaves_the_schedule_as_it_is() {
    hub::time::pause();
    let plain = a_schedule();
    assert_eq!(plain, ["B1", "C1", "B2", "C2", "A", "B3", "C3"]);
    greenlet::set_switch_hook(Some(Box::new(|_| {})));
    assert_eq!(a_schedule(), plain);
    greenlet::set_switch_hook(None);
    hub::monitor(Some(Duration::from_secs(3600)));
    assert_eq!(a_schedule(), plain);
    hub::monitor(None);
    hub::time::resume();
}

/// With a hook set, the hub is switched to mid-round; a greenlet killed
/// while ready, dead at the front of the queue, ends the round, and what
/// is ready behind it runs in a new one. (It was not seen: main's join
/// panicked "would block forever" although a greenlet was ready.)
#[test]
fn a_dead_greenlet_ending_a_round_carried_on_hides_nothing() {
    greenlet::set_switch_hook(Some(Box::new(|_| {})));
    let ran = Rc::new(std::cell::Cell::new(false));
    let victim: Rc<RefCell<Option<hub::JoinHandle<()>>>> = Rc::default();
    let (v, r) = (victim.clone(), ran.clone());
    let killer = hub::spawn(move || {
        v.borrow_mut().take().unwrap().kill(); // ready, unstarted: dead in the queue
        let late = hub::spawn(move || r.set(true));
        hub::yield_now();
        late.join().unwrap();
    });
    *victim.borrow_mut() = Some(hub::spawn(|| ()));
    killer.join().unwrap();
    greenlet::set_switch_hook(None);
    assert!(ran.get());
}

// ----- driving the hub while main unwinds -----

const UNWINDING_CHILD: &str = "GREENLET_HUB_MISUSE_UNWINDING_CHILD";

/// In the child: a destructor drives the hub while main unwinds, which
/// it cannot do (no switch while unwinding): the call panics, and a panic
/// in a destructor during an unwinding aborts the process.
fn drive_while_unwinding_main(mode: &str) {
    struct Drives(&'static str);
    impl Drop for Drives {
        fn drop(&mut self) {
            match self.0 {
                "run" => hub::run(),
                "run_timeout" => drop(hub::run_timeout(Duration::from_millis(10))),
                _ => hub::yield_now(),
            }
            println!("{} returned", self.0);
        }
    }
    let _pending = hub::spawn(|| ());
    match mode {
        // A panic unwinds main; something else is ready.
        "run" => {
            let _drives = Drives("run");
            panic!("main panics");
        }
        // A `with_timeout` expiry unwinds main; nothing else is ready.
        "run_timeout" => {
            hub::run();
            hub::time::pause();
            let _ = hub::with_timeout(Duration::from_millis(1), || {
                let _drives = Drives("run_timeout");
                hub::sleep(Duration::from_secs(10));
            });
        }
        // Alone: the yield would hand control to itself.
        _ => {
            hub::run();
            let _drives = Drives("yield_now");
            panic!("main panics");
        }
    }
}

#[test]
fn drive_while_unwinding_child() {
    // Only does something when re-run by the test below.
    if let Ok(mode) = std::env::var(UNWINDING_CHILD) {
        drive_while_unwinding_main(&mode);
    }
}

/// `run`, `run_timeout` and `yield_now` from a destructor while main
/// unwinds refuse as every blocking call does (here a panic, so the
/// process aborts with the message), whatever else is ready; `run` used
/// to switch to the hub again and again, refused each time: a spin.
#[test]
fn driving_the_hub_while_main_unwinds_panics_rather_than_spinning() {
    for (mode, call) in [
        ("run", "hub::run"),
        ("run_timeout", "hub::run"),
        ("yield_now", "hub::yield_now"),
    ] {
        let out = child::run("drive_while_unwinding_child", UNWINDING_CHILD, mode);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{mode}: {stdout}");
        assert!(!stdout.contains("returned"), "{mode}: {stdout}");
        let message = format!("{call} cannot block while the greenlet unwinds");
        assert!(stderr.contains(&message), "{mode}: {stderr}");
    }
}

/// `run` inside a switch hook: refused, as any blocking call there (the
/// hook is removed and its panic reaches the switch it ran for).
#[test]
fn run_inside_a_switch_hook_panics_rather_than_spinning() {
    let _pending = hub::spawn(|| ());
    greenlet::set_switch_hook(Some(Box::new(|event| {
        if event.origin.is_main() {
            hub::run();
        }
    })));
    let g = Greenlet::new(|()| ());
    let switched = panic::catch_unwind(panic::AssertUnwindSafe(|| g.switch::<(), ()>(())));
    greenlet::set_switch_hook(None);
    let p = switched.unwrap_err();
    assert!(
        panic_text(p.as_ref()).contains("hub::run cannot block inside a switch hook"),
        "{}",
        panic_text(p.as_ref())
    );
}
