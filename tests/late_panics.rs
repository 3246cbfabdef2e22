//! Late panics: a value that arrives with the wrong type is dropped by its
//! receiver, and its destructor may panic (or make a blocking call, which
//! panics where the receiver must not block). That panic is raised in the
//! receiver after the transfer's housekeeping, except where raising would
//! do worse than the panic:
//!
//! - in a killer whose thread unwinds already (a kill made from a
//!   destructor that a panic runs), where a panic out of the destructor
//!   aborts the process: reported on stderr instead;
//! - in the hub greenlet, which would die of it and every greenlet with
//!   it: reported, as every panic that reaches the hub is;
//! - in a greenlet blocked in a hub call or a yield, the call unwinds,
//!   and the hub forgets what it kept of the call first (its ready-queue
//!   entry, main's blocked mark), as for a panic that comes as an error.
//!
//! Each scenario runs in a child process (this test binary again): before
//! these rules, some of them aborted the process.

#[path = "support/child.rs"]
mod child;

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use greenlet::{hub, stats, Greenlet, GreenletState};

const CHILD: &str = "GREENLET_LATE_PANICS_CHILD";

const MILLI: std::time::Duration = std::time::Duration::from_millis(1);

/// Whether this process is the child running `test`'s body; from the
/// parent, runs it there and asserts it passed.
fn in_child(test: &str) -> bool {
    if std::env::var(CHILD).is_ok() {
        return true;
    }
    child::assert_passes(test, CHILD, "1");
    false
}

static DROPS: AtomicUsize = AtomicUsize::new(0);

/// Counts its drop, then panics.
struct PanicsAsItDrops([u64; 8]);

impl Drop for PanicsAsItDrops {
    fn drop(&mut self) {
        std::hint::black_box(&self.0); // a value too big for the word
        DROPS.fetch_add(1, SeqCst);
        panic!("a destructor's panic");
    }
}

/// Counts its drop, then yields (which panics inside the hub greenlet).
struct YieldsAsItDrops;

impl Drop for YieldsAsItDrops {
    fn drop(&mut self) {
        DROPS.fetch_add(1, SeqCst);
        hub::yield_now();
    }
}

/// Suspended after catching whatever unwinds its first switch (a kill),
/// it returns a value whose destructor panics, to a killer that waits for
/// a `()`.
fn victim_returning_a_panicking_value() -> Greenlet {
    let g = Greenlet::new(|()| {
        let _ = catch_unwind(|| Greenlet::main().switch::<(), ()>(()));
        PanicsAsItDrops([0; 8])
    });
    g.switch::<(), ()>(()).unwrap();
    g
}

/// Kills its greenlet when dropped.
struct KillsAsItDrops(Greenlet);

impl Drop for KillsAsItDrops {
    fn drop(&mut self) {
        self.0.kill();
    }
}

/// Whether the hub greenlet is alive, as `stats` shows it.
fn hub_is_alive() -> bool {
    stats()
        .greenlets
        .iter()
        .find(|g| g.name.as_deref() == Some("hub"))
        .is_some_and(|g| g.state != GreenletState::Dead)
}

#[test]
fn a_victims_value_panicking_as_a_killer_that_unwinds_drops_it_is_reported() {
    if !in_child("a_victims_value_panicking_as_a_killer_that_unwinds_drops_it_is_reported") {
        return;
    }
    // The last handle, dropped by a panic's unwinding, collects (kills)
    // the victim.
    let g = victim_returning_a_panicking_value();
    let r = catch_unwind(AssertUnwindSafe(move || {
        let _last_handle = g;
        panic!("the killer's panic");
    }));
    assert!(r.is_err());
    assert_eq!(DROPS.load(SeqCst), 1);
    // A kill by hand, from a guard that a panic drops.
    let g = victim_returning_a_panicking_value();
    let keep = g.clone();
    let r = catch_unwind(AssertUnwindSafe(move || {
        let _guard = KillsAsItDrops(g);
        panic!("the killer's panic");
    }));
    assert!(r.is_err());
    assert!(keep.is_dead());
    assert_eq!(DROPS.load(SeqCst), 2);
}

#[test]
fn a_victims_value_panicking_as_a_killer_unwinding_its_own_kill_drops_it_is_reported() {
    if !in_child(
        "a_victims_value_panicking_as_a_killer_unwinding_its_own_kill_drops_it_is_reported",
    ) {
        return;
    }
    // The killer kills from a guard that its own kill unwinds.
    let victim = victim_returning_a_panicking_value();
    let v = victim.clone();
    let killer = Greenlet::new(move |()| {
        let _guard = KillsAsItDrops(v);
        Greenlet::main().switch::<(), ()>(()).unwrap();
    });
    killer.switch::<(), ()>(()).unwrap();
    killer.kill();
    assert!(killer.is_dead() && victim.is_dead());
    assert_eq!(DROPS.load(SeqCst), 1);
}

/// In `run_main`: a plain greenlet made by a spawned greenlet that has
/// finished since; its result, `make()`, goes past its dead parent to the
/// hub greenlet, whose loop runs.
fn a_result_reaches_the_running_hub<V: 'static>(make: fn() -> V) {
    let slot: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let s = slot.clone();
    hub::run_main(move || {
        // Main's sleeps leave the hub's loop where a timer resumed main
        // from (the paused clock jumps to the deadline at once).
        hub::time::pause();
        hub::sleep(MILLI);
        hub::spawn(move || {
            let child = Greenlet::new(move |()| {
                Greenlet::current()
                    .parent()
                    .unwrap()
                    .switch::<(), ()>(())
                    .unwrap();
                make()
            });
            child.switch::<(), ()>(()).unwrap();
            *s.borrow_mut() = Some(child);
        })
        .join()
        .unwrap();
        hub::sleep(MILLI);
        let child = slot.borrow_mut().take().unwrap();
        assert!(child.parent().unwrap().is_dead());
        // The hub, with nothing else to do, says so to main's own switch.
        let back = child.switch::<(), ()>(());
        let message = back.unwrap_err().message().map(String::from);
        assert!(message.unwrap().contains("nothing can run"));
        assert!(hub_is_alive());
        assert_eq!(hub::spawn(|| 3u8).join().unwrap(), 3);
    });
    assert_eq!(DROPS.load(SeqCst), 1);
}

#[test]
fn a_value_reaching_the_hub_whose_destructor_panics_is_reported_and_the_hub_goes_on() {
    if in_child("a_value_reaching_the_hub_whose_destructor_panics_is_reported_and_the_hub_goes_on")
    {
        a_result_reaches_the_running_hub(|| PanicsAsItDrops([0; 8]));
    }
}

#[test]
fn a_value_reaching_the_hub_whose_destructor_blocks_is_reported_and_the_hub_goes_on() {
    if in_child("a_value_reaching_the_hub_whose_destructor_blocks_is_reported_and_the_hub_goes_on")
    {
        a_result_reaches_the_running_hub(|| YieldsAsItDrops);
    }
}

#[test]
fn a_greenlet_the_hub_reaps_answering_its_kill_with_a_panic_leaves_the_hub_running() {
    if !in_child("a_greenlet_the_hub_reaps_answering_its_kill_with_a_panic_leaves_the_hub_running")
    {
        return;
    }
    hub::run_main(|| {
        hub::time::pause();
        hub::sleep(MILLI); // as in `a_result_reaches_the_running_hub`
        let hub_greenlet = hub::spawn(|| Greenlet::current().parent().unwrap())
            .join()
            .unwrap();
        // `x` is left referred to only by its child's parent link, which
        // it drops while it runs: unreachable, it is reaped (killed) by
        // the greenlet it switches to, the hub.
        let x = Greenlet::new(move |()| {
            let child = Greenlet::new(|()| ());
            child.switch::<(), ()>(()).unwrap();
            Greenlet::main()
                .switch::<Greenlet, ()>(child.clone())
                .unwrap();
            child.set_parent(&Greenlet::main()).unwrap();
            drop(child);
            let _ = catch_unwind(AssertUnwindSafe(|| hub_greenlet.switch::<(), ()>(())));
            panic!("x answers its kill with a panic");
        });
        let child: Greenlet = x.switch(()).unwrap();
        drop(x);
        let _ = child.switch::<(), ()>(());
        assert!(hub_is_alive());
        assert_eq!(hub::spawn(|| 4u8).join().unwrap(), 4);
    });
}

#[test]
fn a_destructors_panic_raised_in_a_yield_leaves_no_stray_resume() {
    if !in_child("a_destructors_panic_raised_in_a_yield_leaves_no_stray_resume") {
        return;
    }
    let own_switch_got: Rc<RefCell<Option<Result<u32, String>>>> = Rc::default();
    let got = own_switch_got.clone();
    hub::run_main(move || {
        let slot: Rc<RefCell<Option<Greenlet>>> = Rc::default();
        let s = slot.clone();
        let y = hub::spawn(move || {
            let c = Greenlet::new(|()| {
                Greenlet::current()
                    .parent()
                    .unwrap()
                    .switch::<(), ()>(())
                    .unwrap();
                PanicsAsItDrops([0; 8]) // to its parent, `y`, in its yield
            });
            c.switch::<(), ()>(()).unwrap();
            *s.borrow_mut() = Some(c);
            // Main is ready (it yielded): the yield hands control to it.
            let r = catch_unwind(AssertUnwindSafe(hub::yield_now));
            assert!(r.is_err(), "the destructor's panic resumes in the yield");
            // A switch of `y`'s own, waiting for main's `u32`: the yield's
            // ready-queue entry must not resume it with a stray `()`.
            let r = Greenlet::main().switch::<(), u32>(());
            *got.borrow_mut() = Some(r.map_err(|e| e.to_string()));
        });
        hub::yield_now(); // `y` runs, makes `c`, and yields back here
        let c = slot.borrow_mut().take().unwrap();
        c.switch::<(), ()>(()).unwrap(); // `y`'s own switch comes back here
        for _ in 0..3 {
            hub::yield_now(); // the hub runs rounds
        }
        if y.greenlet().is_active() {
            let _ = y.greenlet().switch::<u32, ()>(42);
        }
        y.join().unwrap();
    });
    assert_eq!(DROPS.load(SeqCst), 1);
    assert_eq!(*own_switch_got.borrow(), Some(Ok(42)));
}

#[test]
fn main_resumed_from_a_wait_by_a_destructors_panic_is_no_longer_taken_for_blocked() {
    if !in_child("main_resumed_from_a_wait_by_a_destructors_panic_is_no_longer_taken_for_blocked") {
        return;
    }
    let mut message = None;
    hub::run_main(|| {
        // A child of main, suspended; its result goes to main.
        let c = Greenlet::new(|()| {
            Greenlet::main().switch::<(), ()>(()).unwrap();
            PanicsAsItDrops([0; 8])
        });
        c.switch::<(), ()>(()).unwrap();
        let c2 = c.clone();
        let _resumer = hub::spawn(move || {
            let _ = c2.switch::<(), ()>(());
        });
        // Main blocks (no timer: the wait hands control straight to the
        // resumer) and is resumed by `c`'s result.
        let never = hub::Event::new();
        assert!(catch_unwind(AssertUnwindSafe(|| never.wait())).is_err());
        // A switch of main's own, to a greenlet that blocks for good: it
        // gets the hub's "nothing can run", as a switch of main's own
        // does, not what the hub throws into a blocked main.
        let ev = hub::Event::new();
        let g = Greenlet::new(move |()| ev.wait());
        let r = g.switch::<(), ()>(());
        message = Some(match &r {
            Err(e) => e
                .message()
                .map(String::from)
                .unwrap_or_else(|| e.to_string()),
            Ok(()) => "Ok(())".into(),
        });
        g.kill();
    });
    assert_eq!(DROPS.load(SeqCst), 1);
    let message = message.unwrap();
    assert!(message.contains("nothing can run"), "{message}");
}

/// A value of the wrong type is dropped by its receiver; its destructor's
/// panic resumes there, in an ordinary switch (the rule the cases above
/// are the exceptions to).
#[test]
fn a_destructors_panic_resumes_in_an_ordinary_receiver() {
    if !in_child("a_destructors_panic_resumes_in_an_ordinary_receiver") {
        return;
    }
    let g = Greenlet::new(|()| -> PanicsAsItDrops {
        Greenlet::main().switch::<(), ()>(()).unwrap();
        PanicsAsItDrops([0; 8])
    });
    g.switch::<(), ()>(()).unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| g.switch::<(), u32>(())));
    let p = r.expect_err("the destructor's panic resumes here");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"a destructor's panic"));
    assert!(g.is_dead());
    assert_eq!(DROPS.load(SeqCst), 1);
}

/// A switch to oneself made by a destructor that a panic runs (the one
/// switch that is not refused while unwinding) with a value of the wrong
/// type: the value's destructor panics, and that is reported, not raised
/// out of the destructor (which aborted the process); the switch gets its
/// type mismatch.
#[test]
fn a_mismatched_value_switched_to_oneself_while_unwinding_is_reported() {
    if !in_child("a_mismatched_value_switched_to_oneself_while_unwinding_is_reported") {
        return;
    }
    struct SwitchesToItself(Rc<RefCell<Option<String>>>);
    impl Drop for SwitchesToItself {
        fn drop(&mut self) {
            let r = Greenlet::current().switch::<PanicsAsItDrops, u8>(PanicsAsItDrops([0; 8]));
            *self.0.borrow_mut() = Some(format!("{r:?}"));
        }
    }
    let got = Rc::new(RefCell::new(None));
    let guard = SwitchesToItself(got.clone());
    let r = catch_unwind(AssertUnwindSafe(move || {
        let _guard = guard;
        panic!("the caller's panic");
    }));
    assert!(r.is_err());
    assert_eq!(DROPS.load(SeqCst), 1);
    let got = got.borrow().clone().expect("the destructor ran");
    assert!(got.starts_with("Err(TypeMismatch"), "{got}");
}

/// A generator, started, whose producer catches its close and returns a
/// value that panics as it drops.
fn returning_a_panicking_value_once_closed() -> greenlet::Generator<u8, PanicsAsItDrops> {
    let mut gen = greenlet::Generator::new(|y: &greenlet::Yielder<u8>| {
        let _ = catch_unwind(AssertUnwindSafe(|| y.yield_(1)));
        PanicsAsItDrops([0; 8])
    });
    assert_eq!(gen.next(), Some(1));
    gen
}

/// A generator dropped by a panic's unwinding, whose producer catches the
/// close and returns a value that panics as it drops: that value, kept for
/// a `return_value` nobody can ask for now, is dropped with the generator
/// and its panic reported, as a killed victim's value's is (it was raised
/// out of the destructor: an abort).
#[test]
fn a_closed_generators_return_value_panicking_as_an_unwinding_drop_drops_it_is_reported() {
    if !in_child(
        "a_closed_generators_return_value_panicking_as_an_unwinding_drop_drops_it_is_reported",
    ) {
        return;
    }
    let gen = returning_a_panicking_value_once_closed();
    let r = catch_unwind(AssertUnwindSafe(move || {
        let _gen = gen;
        panic!("the dropper's panic");
    }));
    assert!(r.is_err());
    assert_eq!(DROPS.load(SeqCst), 1);
}

/// Runs `f` in a destructor that a panic of the caller runs.
fn in_a_destructor_while_unwinding(f: impl FnOnce()) {
    struct Runs<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Runs<F> {
        fn drop(&mut self) {
            (self.0.take().unwrap())();
        }
    }
    let guard = Runs(Some(f));
    let r = catch_unwind(AssertUnwindSafe(move || {
        let _guard = guard;
        panic!("the caller's panic");
    }));
    assert!(r.is_err());
}

/// A switch or throw to another greenlet made by a destructor while a
/// panic unwinds is refused with `Unwinding`, and its value dropped; a
/// panic of that value's destructor is reported, not raised out of the
/// destructor (which aborted the process). So for a value sent to a
/// generator there, which the docs say is dropped.
#[test]
fn values_refused_while_unwinding_that_panic_as_they_drop_are_reported() {
    if !in_child("values_refused_while_unwinding_that_panic_as_they_drop_are_reported") {
        return;
    }
    let other = Greenlet::new(|()| {
        let _ = Greenlet::main().switch::<(), ()>(());
    });
    other.switch::<(), ()>(()).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let (g, o) = (got.clone(), other.clone());
    in_a_destructor_while_unwinding(move || {
        let r = o.switch::<PanicsAsItDrops, ()>(PanicsAsItDrops([0; 8]));
        g.borrow_mut().push(format!("{r:?}"));
        let r = o.throw::<_, ()>(PanicsAsItDrops([0; 8]));
        g.borrow_mut().push(format!("{r:?}"));
    });
    assert_eq!(DROPS.load(SeqCst), 2);
    assert_eq!(*got.borrow(), ["Err(Unwinding)", "Err(Unwinding)"]);
    let mut gen = greenlet::Generator::two_way(
        |y: &greenlet::Yielder<u8, PanicsAsItDrops>, first: PanicsAsItDrops| {
            std::mem::forget(first);
            std::mem::forget(y.yield_(1));
        },
    );
    assert_eq!(gen.send(PanicsAsItDrops([0; 8])), Some(1));
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    in_a_destructor_while_unwinding(move || {
        g.set(Some(gen.send(PanicsAsItDrops([0; 8])).is_none()));
        std::mem::forget(gen);
    });
    assert_eq!(DROPS.load(SeqCst), 3);
    assert_eq!(got.get(), Some(true));
}

/// A generator closed explicitly in a destructor that a panic runs, whose
/// producer caught the close and returned a value that panics as it
/// drops, then dropped there: that value goes with the generator, its
/// panic reported (the drop's own close did so; after an explicit close
/// the value was dropped as a plain field: an abort).
#[test]
fn a_return_value_kept_by_an_explicit_close_panicking_as_an_unwinding_drop_drops_it_is_reported() {
    if !in_child(
        "a_return_value_kept_by_an_explicit_close_panicking_as_an_unwinding_drop_drops_it_is_reported",
    ) {
        return;
    }
    let mut gen = returning_a_panicking_value_once_closed();
    in_a_destructor_while_unwinding(move || {
        assert!(gen.close().is_ok());
        assert_eq!(DROPS.load(SeqCst), 0, "kept for return_value");
        drop(gen);
    });
    assert_eq!(DROPS.load(SeqCst), 1);
}

/// A victim of an unwinding killer that caught its kill and then unwinds
/// anew with `resume_unwind` (which no panic hook sees, so the runtime
/// takes it for not unwinding): a destructor of that unwinding switches to
/// itself with a value of the wrong type that panics as it drops. The
/// panic is reported, not raised out of the destructor (an abort).
#[test]
fn a_mismatched_self_switch_in_a_victim_unwinding_anew_unseen_is_reported() {
    if !in_child("a_mismatched_self_switch_in_a_victim_unwinding_anew_unseen_is_reported") {
        return;
    }
    let victim = Greenlet::new(|()| {
        let caught = catch_unwind(|| Greenlet::main().switch::<(), ()>(()));
        drop(caught); // the kill's payload: gone
        struct SwitchesToItself;
        impl Drop for SwitchesToItself {
            fn drop(&mut self) {
                let r = Greenlet::current().switch::<PanicsAsItDrops, u8>(PanicsAsItDrops([0; 8]));
                assert!(r.is_err());
            }
        }
        let _guard = SwitchesToItself;
        std::panic::resume_unwind(Box::new("the victim unwinds anew"));
    });
    victim.switch::<(), ()>(()).unwrap();
    in_a_destructor_while_unwinding(move || drop(victim));
    assert_eq!(DROPS.load(SeqCst), 1);
}

/// Where nothing unwinds, a value a switch refuses with `Unwinding` and
/// whose destructor panics raises that panic as any drop does: in a
/// killer, from the destructor of an unstarted victim's function (dropped
/// under the kill), and as the error of a `close` whose producer caught
/// it and switched such a value.
#[test]
fn values_refused_where_nothing_unwinds_raise_their_destructors_panics() {
    if !in_child("values_refused_where_nothing_unwinds_raise_their_destructors_panics") {
        return;
    }
    struct SwitchesAValue;
    impl Drop for SwitchesAValue {
        fn drop(&mut self) {
            let _ = Greenlet::main().switch::<PanicsAsItDrops, ()>(PanicsAsItDrops([0; 8]));
        }
    }
    let capture = SwitchesAValue;
    let victim = Greenlet::new(move |()| {
        let _capture = &capture;
    });
    let killed = catch_unwind(AssertUnwindSafe(|| victim.kill()));
    let p = killed.expect_err("the destructor's panic reaches the killer");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"a destructor's panic"));
    let mut gen = greenlet::Generator::new(|y: &greenlet::Yielder<u32>| {
        let _ = catch_unwind(AssertUnwindSafe(|| y.yield_(0)));
        let _ = Greenlet::main().switch::<PanicsAsItDrops, ()>(PanicsAsItDrops([0; 8]));
        5u32
    });
    assert_eq!(gen.next(), Some(0));
    let p = gen
        .close()
        .expect_err("the destructor's panic is the close's error");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"a destructor's panic"));
    assert_eq!(DROPS.load(SeqCst), 2);
}

/// A victim refuses its kill with a switch whose value panics as it drops,
/// and is killed again from inside that refusal: the second kill's
/// unwinding drops the value, whose panic is reported (it was raised out
/// of the unwinding: an abort).
#[test]
fn a_refusals_value_dropped_by_a_second_kill_is_reported() {
    if !in_child("a_refusals_value_dropped_by_a_second_kill_is_reported") {
        return;
    }
    let victim = Greenlet::new(|()| {
        let caught = catch_unwind(|| Greenlet::main().switch::<(), ()>(()));
        drop(caught);
        let _ = Greenlet::main().switch::<PanicsAsItDrops, ()>(PanicsAsItDrops([0; 8]));
    });
    victim.switch::<(), ()>(()).unwrap();
    assert!(victim.try_kill().is_err(), "refused");
    let again = catch_unwind(AssertUnwindSafe(|| victim.try_kill()));
    assert!(victim.is_dead());
    assert!(again.is_ok());
    assert_eq!(DROPS.load(SeqCst), 1);
}

/// At thread exit, a destructor run by a panic switches (or throws) a
/// value that panics as it drops into a greenlet the exit leaves
/// suspended: refused with `Unwinding`, the value's panic reported (it was
/// dropped plainly: an abort).
#[test]
fn values_sent_at_exit_to_a_left_greenlet_while_unwinding_are_reported() {
    if !in_child("values_sent_at_exit_to_a_left_greenlet_while_unwinding_are_reported") {
        return;
    }
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        let left = Greenlet::new(|()| {
            let _ = Greenlet::main().switch::<(), ()>(());
        });
        left.switch::<(), ()>(()).unwrap(); // started, suspended
        struct AtExit(Greenlet, std::sync::Arc<std::sync::Mutex<Vec<String>>>);
        impl Drop for AtExit {
            fn drop(&mut self) {
                let (left, got) = (self.0.clone(), self.1.clone());
                in_a_destructor_while_unwinding(move || {
                    let r = left.switch::<PanicsAsItDrops, ()>(PanicsAsItDrops([0; 8]));
                    got.lock().unwrap().push(format!("{:?}", r.err()));
                    let r = left.throw::<_, ()>(PanicsAsItDrops([0; 8]));
                    got.lock().unwrap().push(format!("{:?}", r.err()));
                });
            }
        }
        // Dropped by the thread's exit, with the switch hook (the last of
        // the runtime's thread-locals to go), after `left` is left.
        let at_exit = AtExit(left, g);
        greenlet::set_switch_hook(Some(Box::new(move |_| {
            let _ = &at_exit;
        })));
    })
    .join()
    .unwrap();
    assert_eq!(*got.lock().unwrap(), ["Some(Unwinding)", "Some(Unwinding)"]);
    assert_eq!(DROPS.load(SeqCst), 2);
}
