//! Refusers among the hub's greenlets, and a throw that the hook routes
//! to an unstarted spawn, which owns its outcome (its `JoinHandle` gets
//! the error).

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, JoinError};
use greenlet::{set_switch_hook, stats, CurrentGreenlet, Greenlet, SwitchEvent, SwitchKind};

/// A spawned greenlet suspended outside the hub's queues (it switched to
/// main by hand), whose JoinHandle is its last reference: dropped, it is
/// collected; it catches the kill and refuses with a hub sleep (the timer
/// holds it), then finishes. Its record should go.
#[test]
fn hub_refuser_via_sleep_then_finishes() {
    let finished = Rc::new(Cell::new(false));
    let f2 = finished.clone();
    let id = hub::run_main(move || {
        let j = hub::spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(|| {
                Greenlet::main().switch::<(), ()>(()).unwrap();
            }));
            assert!(r.is_err());
            hub::sleep(Duration::from_millis(1)); // refuses
            f2.set(true);
        });
        hub::yield_now(); // it runs, switches to main
        let id = j.greenlet().id();
        drop(j); // collected: refuses with the sleep
        hub::sleep(Duration::from_millis(20));
        id
    });
    let s = stats();
    eprintln!("{s}");
    assert!(finished.get());
    assert!(
        !s.greenlets.iter().any(|g| g.id == id),
        "finished spawn still listed"
    );
}

/// As above but refusing with a plain switch to main (kept by
/// keep_refuser), then resumed through a CurrentGreenlet and it finishes.
#[test]
fn hub_refuser_kept_then_finishes() {
    let slot: Rc<RefCell<Option<CurrentGreenlet>>> = Rc::new(RefCell::new(None));
    let s2 = slot.clone();
    let id = hub::run_main(move || {
        let j = hub::spawn(move || {
            *s2.borrow_mut() = Some(Greenlet::current());
            let r = catch_unwind(AssertUnwindSafe(|| {
                Greenlet::main().switch::<(), ()>(()).unwrap();
            }));
            assert!(r.is_err());
            let _ = Greenlet::main().switch::<(), ()>(()); // refuses
        });
        hub::yield_now();
        let id = j.greenlet().id();
        drop(j);
        {
            let b = slot.borrow();
            let g: &Greenlet = b.as_ref().unwrap();
            let _ = g.switch::<(), ()>(()); // finishes: its end goes to its parent (the hub)
        }
        hub::sleep(Duration::from_millis(5));
        slot.borrow_mut().take();
        id
    });
    let s = stats();
    eprintln!("{s}");
    assert!(
        !s.greenlets.iter().any(|g| g.id == id),
        "finished kept refuser still listed"
    );
}

/// Main throws into p (a suspended plain greenlet whose parent is an
/// unstarted hub spawn `s`); the hook kills p: routed to `s`, which ends
/// unrun, its JoinHandle getting the error; control returns to main.
#[test]
fn throw_routed_to_unstarted_spawn() {
    hub::run_main(|| {
        let ran = Rc::new(Cell::new(false));
        let r2 = ran.clone();
        let s = hub::spawn(move || r2.set(true));
        let p = Greenlet::builder()
            .parent(s.greenlet())
            .build(|()| {
                Greenlet::main().switch::<(), ()>(()).unwrap();
            })
            .unwrap();
        p.switch::<(), ()>(()).unwrap();
        let mut once = true;
        set_switch_hook(Some(Box::new(move |e: &SwitchEvent| {
            if e.kind == SwitchKind::Throw && once {
                once = false;
                e.target.kill();
            }
        })));
        let r = catch_unwind(AssertUnwindSafe(|| p.throw::<_, ()>("boom")));
        set_switch_hook(None);
        eprintln!("throw returned {r:?}");
        assert!(matches!(r, Ok(Ok(()))), "{r:?}");
        let j = s.join();
        assert!(!ran.get());
        match j {
            Err(JoinError::Panicked(p)) => assert_eq!(p.downcast_ref::<&str>(), Some(&"boom")),
            other => panic!("join: {:?}", other.is_ok()),
        }
    });
}
