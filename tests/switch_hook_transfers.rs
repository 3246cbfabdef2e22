//! The switch hook hears of every transfer of control, with the greenlet
//! that really gets it, also where a kill is refused or the hook itself
//! moves a finish elsewhere; its calls at thread exit keep the hook's
//! rules; a hook that panics on a generator's close does not leave the
//! generator half closed.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use greenlet::{
    hub, set_switch_hook, Generator, Greenlet, KillRefused, SwitchError, SwitchEvent, SwitchKind,
};

#[path = "support/child.rs"]
mod child;
#[path = "support/hang_guard.rs"]
mod hang_guard;
#[path = "support/unwinding.rs"]
mod unwinding;

/// What the hook saw: (origin id, target id, kind).
type Log = Rc<RefCell<Vec<(u64, u64, SwitchKind)>>>;

fn logging_hook(log: &Log) -> Box<dyn FnMut(&SwitchEvent)> {
    let log = log.clone();
    Box::new(move |e| {
        log.borrow_mut()
            .push((e.origin.id(), e.target.id(), e.kind))
    })
}

/// A victim that catches its kill and switches away sends control back to
/// its killer: the hook hears of that transfer, victim to killer.
#[test]
fn a_refused_kill_is_reported_as_the_victims_switch_back_to_its_killer() {
    let out = hang_guard::guard(60, || {
        let g = Greenlet::new(|()| loop {
            let _ = catch_unwind(AssertUnwindSafe(|| Greenlet::main().switch::<(), ()>(())));
        });
        g.switch::<(), ()>(()).unwrap();
        let log = Log::default();
        set_switch_hook(Some(logging_hook(&log)));
        let refused = g.try_kill();
        set_switch_hook(None);
        let (m, id) = (Greenlet::main().id(), g.id());
        assert_eq!(
            *log.borrow(),
            [(m, id, SwitchKind::Kill), (id, m, SwitchKind::Switch)]
        );
        refused
    });
    assert_eq!(out, Ok(Err(KillRefused)));
}

/// The hook kills the parent a greenlet finishes towards: the result goes
/// to main, and the hook hears of that too.
#[test]
fn a_finish_whose_receiver_the_hook_kills_is_reported_again_towards_the_new_one() {
    let out = hang_guard::guard(60, || {
        let p = Greenlet::new(|()| {
            let _ = Greenlet::main().switch::<(), ()>(());
        });
        p.switch::<(), ()>(()).unwrap();
        let g = Greenlet::builder().parent(&p).build(|()| 5u32).unwrap();
        let log = Log::default();
        let mut inner = logging_hook(&log);
        let victim = p.clone();
        set_switch_hook(Some(Box::new(move |e| {
            inner(e);
            if e.kind == SwitchKind::Finish {
                victim.kill();
            }
        })));
        let r = g.switch::<(), u32>(());
        set_switch_hook(None);
        let (m, gid, pid) = (Greenlet::main().id(), g.id(), p.id());
        // (p's own end, made inside the hook, is not reported.)
        assert_eq!(
            *log.borrow(),
            [
                (m, gid, SwitchKind::Switch),
                (gid, pid, SwitchKind::Finish),
                (gid, m, SwitchKind::Finish),
            ]
        );
        r.ok()
    });
    assert_eq!(out, Ok(Some(5)));
}

/// The hook reparents the finishing greenlet: the result goes to the new
/// parent, and the hook hears of that.
#[test]
fn a_finish_the_hook_reparents_is_reported_again_towards_the_new_parent() {
    let out = hang_guard::guard(60, || {
        let got = Rc::new(Cell::new(None));
        let g2 = got.clone();
        let p = Greenlet::new(move |()| {
            g2.set(Some(Greenlet::main().switch::<(), u32>(()).unwrap()));
            9u32
        });
        p.switch::<(), ()>(()).unwrap();
        let g = Greenlet::new(|()| 5u32);
        let gid = g.id();
        let log = Log::default();
        let mut inner = logging_hook(&log);
        let new_parent = p.clone();
        set_switch_hook(Some(Box::new(move |e| {
            inner(e);
            if e.kind == SwitchKind::Finish && e.origin.id() == gid {
                e.origin.set_parent(&new_parent).unwrap();
            }
        })));
        let r = g.switch::<(), u32>(());
        set_switch_hook(None);
        let (m, pid) = (Greenlet::main().id(), p.id());
        assert_eq!(
            *log.borrow(),
            [
                (m, gid, SwitchKind::Switch),
                (gid, m, SwitchKind::Finish),
                (gid, pid, SwitchKind::Finish),
                (pid, m, SwitchKind::Finish),
            ]
        );
        (r.ok(), got.get())
    });
    assert_eq!(out, Ok((Some(9), Some(5))));
}

/// At thread exit the hook still hears of the teardown's kills; a switch
/// it makes then gets `InSwitchHook`, as anywhere inside the hook, rather
/// than the panic of a switch into a greenlet the exit leaves.
#[test]
fn a_switch_from_the_hook_at_thread_exit_gets_in_switch_hook() {
    let (tx, rx) = mpsc::channel::<String>();
    let t = std::thread::spawn(move || {
        let g = Greenlet::new(|()| {
            let _ = Greenlet::main().switch::<(), ()>(());
        });
        g.switch::<(), ()>(()).unwrap();
        // A hub greenlet, which the exit kills, so the hook fires then.
        let _h = hub::spawn(|| ());
        hub::yield_now();
        let armed = Cell::new(true);
        set_switch_hook(Some(Box::new(move |e| {
            if e.kind == SwitchKind::Kill && armed.replace(false) {
                let r = catch_unwind(AssertUnwindSafe(|| g.switch::<(), ()>(())));
                let _ = tx.send(match r {
                    Ok(r) => format!("{r:?}"),
                    Err(p) => format!("panicked: {}", hang_guard::panic_message(p)),
                });
            }
        })));
    });
    assert!(t.join().is_ok());
    let got = rx.recv_timeout(Duration::from_secs(60));
    assert_eq!(got.as_deref(), Ok("Err(InSwitchHook)"));
    let _ = SwitchError::InSwitchHook; // the error named above
}

/// A hook that makes a greenlet for each event it hears at thread exit
/// hears two for each kill (the kill, the victim's end): what is alive
/// doubled with every pass of the teardown's kills, bounded by passes
/// only (2^16 greenlets, until memory ran out). The kills are bounded in
/// number too now (4,096 here, the least budget), so the hook stops
/// making greenlets well before its own cap.
#[test]
fn a_hook_making_a_greenlet_per_event_at_thread_exit_stops_within_the_kill_budget() {
    static MADE: AtomicUsize = AtomicUsize::new(0);
    const CAP: usize = 30_000;
    let out = hang_guard::guard(60, || {
        std::thread::spawn(|| {
            std::mem::forget(Greenlet::new(|()| ()));
            set_switch_hook(Some(Box::new(|_| {
                if MADE.fetch_add(1, Ordering::Relaxed) < CAP {
                    let g = Greenlet::builder()
                        .stack_size(16 * 1024)
                        .build(|()| ())
                        .unwrap();
                    std::mem::forget(g); // kept, as a stored handle would be
                }
            })));
        })
        .join()
        .is_ok()
    });
    assert_eq!(out, Ok(true));
    let made = MADE.load(Ordering::Relaxed);
    assert!(
        made < 10_000,
        "the exit's kills went on: {made} greenlets made"
    );
}

/// A hook that panics on a generator's close is removed, the close made
/// without it, and its panic raised from `close` afterwards: the producer
/// is unwound and the generator finished, as the docs promise.
#[test]
fn a_hook_panicking_on_a_generators_close_leaves_it_closed_and_raises_its_panic() {
    let out = hang_guard::guard(60, || {
        struct Flag(Rc<Cell<bool>>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let unwound = Rc::new(Cell::new(false));
        let flag = Flag(unwound.clone());
        let mut gen: Generator<u32> = Generator::new(move |y| {
            let _flag = flag;
            y.yield_(1);
            y.yield_(2);
        });
        assert_eq!(gen.next(), Some(1));
        set_switch_hook(Some(Box::new(|e| {
            if e.kind == SwitchKind::Kill {
                panic!("the hook's own panic");
            }
        })));
        let closed = catch_unwind(AssertUnwindSafe(|| gen.close()));
        let hook_left = set_switch_hook(None).is_some();
        let raised = closed.map_err(hang_guard::panic_message);
        format!(
            "{raised:?} hook left {hook_left} finished {} unwound {} next {:?}",
            gen.is_finished(),
            unwound.get(),
            gen.next()
        )
    });
    assert_eq!(
        out.as_deref(),
        Ok("Err(\"the hook's own panic\") hook left false finished true unwound true next None")
    );
}

/// A guard in a thread-local destroyed after the thread's teardown that
/// clears the hook gets `None` (the teardown dropped the hook); it does
/// not panic, which from a thread-local's destructor aborts the process.
#[test]
fn clearing_the_hook_after_the_threads_teardown_returns_none() {
    struct ClearsHook(mpsc::Sender<Option<bool>>);
    impl Drop for ClearsHook {
        fn drop(&mut self) {
            let r = catch_unwind(|| set_switch_hook(None).is_some());
            let _ = self.0.send(r.ok());
        }
    }
    thread_local! {
        static GUARD: RefCell<Option<ClearsHook>> = const { RefCell::new(None) };
    }
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        // First used before the runtime: destroyed after its teardown.
        GUARD.with(|g| drop(g.borrow_mut().take()));
        set_switch_hook(Some(Box::new(|_| {})));
        GUARD.with(|g| *g.borrow_mut() = Some(ClearsHook(tx)));
    });
    assert!(t.join().is_ok());
    assert_eq!(rx.recv_timeout(Duration::from_secs(60)), Ok(Some(false)));
}

/// The `try_kill` docs' stubborn greenlet, killed by a killer that unwinds
/// a panic (from a destructor), with a hook that panics on the refusal's
/// event: the hook's panic is reported and the refusal made, and the
/// killer's kill returns. Raised into the victim, it was listed as the
/// victim's own unwinding for good (the thread was panicking already), so
/// every later switch of the victim failed with `Unwinding`: it could
/// neither refuse nor die, and the thread spun.
#[test]
fn a_hook_panicking_on_a_refusal_made_to_an_unwinding_killer_does_not_stall_it() {
    let out = hang_guard::guard(60, || {
        let v = Greenlet::new(|()| loop {
            let _ = catch_unwind(AssertUnwindSafe(|| Greenlet::main().switch::<(), ()>(())));
        });
        v.switch::<(), ()>(()).unwrap();
        let vid = v.id();
        let victim = v.clone();
        let refused = Rc::new(Cell::new(None));
        let r = refused.clone();
        let k = Greenlet::new(move |()| {
            struct KillsOnDrop(Greenlet, Rc<Cell<Option<bool>>>);
            impl Drop for KillsOnDrop {
                fn drop(&mut self) {
                    self.1.set(Some(self.0.try_kill().is_err()));
                }
            }
            let _kills = KillsOnDrop(victim, r);
            panic!("the killer panics");
        });
        let kid = k.id();
        set_switch_hook(Some(Box::new(move |e| {
            if e.kind == SwitchKind::Switch && e.origin.id() == vid && e.target.id() == kid {
                panic!("the hook panics on the refusal");
            }
        })));
        let killers_end = k.switch::<(), ()>(()).is_err();
        let hook_left = set_switch_hook(None).is_some();
        (killers_end, refused.get(), hook_left, v.is_active())
    });
    assert_eq!(out, Ok((true, Some(true), false, true)));
}

/// Where the killer does not unwind, a hook that panics on a refusal's
/// event raises its panic in the victim, as for any switch (the victim
/// may catch it and go on): the report instead is for a killer that
/// unwinds only.
#[test]
fn a_hook_panicking_on_a_refusal_to_a_killer_not_unwinding_raises_in_the_victim() {
    let out = hang_guard::guard(60, || {
        let raised = Rc::new(Cell::new(false));
        let r = raised.clone();
        let v = Greenlet::new(move |()| {
            let caught = catch_unwind(AssertUnwindSafe(|| {
                let _ = Greenlet::main().switch::<(), ()>(());
            }));
            assert!(caught.is_err(), "killed");
            drop(caught);
            let me = Greenlet::current();
            set_switch_hook(Some(Box::new(move |e| {
                if e.kind == SwitchKind::Switch && e.origin == me {
                    panic!("the hook panics on the victim's switch");
                }
            })));
            let switched = catch_unwind(AssertUnwindSafe(|| {
                let _ = Greenlet::main().switch::<(), ()>(());
            }));
            r.set(switched.is_err());
        });
        v.switch::<(), ()>(()).unwrap();
        let killed = v.try_kill();
        set_switch_hook(None);
        (killed, raised.get(), v.is_dead())
    });
    assert_eq!(out, Ok((Ok(()), true, true)));
}

/// A victim of a killer that unwinds, which caught its kill, kills
/// another greenlet under a hook that panics on kills: the hook's panic
/// is raised in the victim, which unwinds, and a switch from a destructor
/// of that unwinding gets `Unwinding`. The crate's catch of the hook's
/// panic took the victim's listing as unwinding back before the panic was
/// raised again: the switch was taken for the kill's refusal, in the
/// middle of the unwinding, and the process aborted later (a child
/// process runs the body).
#[test]
fn a_victim_unwinding_a_hooks_panic_raised_at_its_own_kill_cannot_switch() {
    const VAR: &str = "GREENLET_TEST_HOOK_PANIC_AT_A_VICTIMS_KILL";
    const NAME: &str = "a_victim_unwinding_a_hooks_panic_raised_at_its_own_kill_cannot_switch";
    if std::env::var_os(VAR).is_none() {
        let out = child::run(NAME, VAR, "1");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{}: {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let w = Greenlet::new(|()| {
        let _ = Greenlet::main().switch::<(), ()>(());
    });
    w.switch::<(), ()>(()).unwrap();
    let l = log.clone();
    let v = Greenlet::new(move |()| {
        let caught = catch_unwind(AssertUnwindSafe(|| {
            let _ = Greenlet::main().switch::<(), ()>(());
        }));
        l.borrow_mut()
            .push(format!("caught kill: {}", caught.is_err()));
        drop(caught);
        struct SwitchesOnDrop(Rc<RefCell<Vec<String>>>);
        impl Drop for SwitchesOnDrop {
            fn drop(&mut self) {
                let r = Greenlet::main().switch::<(), ()>(());
                self.0.borrow_mut().push(format!("switch: {r:?}"));
            }
        }
        let _switches = SwitchesOnDrop(l.clone());
        set_switch_hook(Some(Box::new(|e| {
            if e.kind == SwitchKind::Kill {
                panic!("the hook panics on a kill");
            }
        })));
        w.kill();
    });
    v.switch::<(), ()>(()).unwrap();
    let _ = unwinding::try_kill_while_unwinding(&v);
    set_switch_hook(None);
    assert_eq!(
        *log.borrow(),
        ["caught kill: true", "switch: Err(Unwinding)"]
    );
    assert!(v.is_dead());
}
