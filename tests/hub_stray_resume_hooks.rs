//! Stray resumes (a raw child returning into a queued greenlet) that the
//! hub's resume check must also catch: a yield with a switch hook set
//! (which goes through the hub greenlet), and a greenlet resumed after
//! `run` ended with a direct switch to main (which the ready queue did not
//! make). Each body runs on a thread under a 30 s hang guard.
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub;
use greenlet::Greenlet;

#[path = "support/hang_guard.rs"]
mod hang_guard;
use hang_guard::guard;

/// The shipped `same_with_yield_now`, with a switch hook set: every
/// `yield_now` then goes through `yield_diverted`, whose `Ok(())` arm
/// never calls `note_resumed`.
fn yield_case(hook: bool) -> Result<Result<Result<u32, String>, String>, String> {
    guard(30, move || {
        hub::time::pause();
        if hook {
            greenlet::set_switch_hook(Some(Box::new(|_| {})));
        }
        let slot: Rc<RefCell<Option<Greenlet>>> = Rc::new(RefCell::new(None));
        let ev = hub::Event::new();
        let (sl, e) = (slot.clone(), ev.clone());
        let h = hub::spawn(move || {
            let e2 = e.clone();
            let c = Greenlet::new(move |()| {
                e2.wait(); // returns () into its parent h
            });
            *sl.borrow_mut() = Some(c);
            hub::yield_now();
            hub::yield_now(); // c returns into this yield
            let g3 = Greenlet::new(move |()| {
                hub::sleep(Duration::from_millis(1));
                7u32
            });
            g3.switch::<(), u32>(()).map_err(|e| format!("{e:?}"))
        });
        let sl = slot.clone();
        let _s = hub::spawn(move || {
            let c = sl.borrow_mut().take().unwrap();
            let _ = c.switch::<(), ()>(());
        });
        let e = ev.clone();
        let _setter = hub::spawn(move || e.set());
        let r = h.join().map_err(|e| format!("{e:?}"));
        greenlet::set_switch_hook(None);
        r
    })
}

#[test]
fn control_yield_without_hook() {
    assert_eq!(yield_case(false), Ok(Ok(Ok(7))));
}

#[test]
fn stray_resume_into_yield_with_switch_hook_set() {
    assert_eq!(yield_case(true), Ok(Ok(Ok(7))));
}

/// A stale `resuming`: h is the last greenlet the hub took off the queue,
/// then `run` ends with a direct switch to main (`end_run`, not through
/// `rotate_ready`), so `resuming` still names h. Main sets the event (h
/// queued) and starts h's raw child c, which returns into h's wait: h's
/// `note_resumed` sees `resuming == h` and leaves its entry queued. h's
/// next raw switch (into g3, which sleeps) is then resumed by the hub
/// with a stray `()`.
#[test]
fn a_stray_resume_after_run_ended_is_caught() {
    let r = guard(30, || {
        hub::time::pause();
        let out: Rc<RefCell<Option<Result<u32, String>>>> = Rc::new(RefCell::new(None));
        let slot: Rc<RefCell<Option<Greenlet>>> = Rc::new(RefCell::new(None));
        let ev = hub::Event::new();
        let (o, sl, e) = (out.clone(), slot.clone(), ev.clone());
        let _h = hub::spawn(move || {
            let c = Greenlet::new(|()| ()); // parent: h; returns ()
            *sl.borrow_mut() = Some(c);
            e.wait();
            let g3 = Greenlet::new(|()| {
                hub::sleep(Duration::from_millis(1));
                7u32
            });
            let r = g3.switch::<(), u32>(()).map_err(|e| format!("{e:?}"));
            *o.borrow_mut() = Some(r);
        });
        hub::run(); // h waits on ev; nothing left: run returns
        ev.set(); // h queued
        let c = slot.borrow_mut().take().unwrap();
        // c returns into h (its parent); main gets control back when
        // the hub runs out of work (an error thrown into this switch).
        let _ = c.switch::<(), ()>(());
        let r = out.borrow().clone();
        r
    });
    assert_eq!(r, Ok(Some(Ok(7))));
}
