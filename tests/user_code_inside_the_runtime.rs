//! User code that runs in the middle of the runtime's own operations: the
//! destructor of a value being sent or dropped, a switch hook and the
//! destructor of a hook that replaced itself, a hook's panic payload. It
//! may switch, kill, panic or let greenlets go; the runtime's state stays
//! whole, no stack is recycled twice or leaked, and nothing unwinds out
//! of a finishing greenlet.

#[path = "support/child.rs"]
mod child;

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{Greenlet, SwitchError, SwitchEvent, SwitchKind};

/// Switches to its greenlet when dropped.
struct SwitchesOnDrop(Rc<RefCell<Option<Greenlet>>>);

impl Drop for SwitchesOnDrop {
    fn drop(&mut self) {
        let to = self.0.borrow_mut().take();
        if let Some(to) = to {
            let _ = to.switch::<(), ()>(());
        }
    }
}

/// A hook holding `captured` that replaces itself at the first event of
/// `kind` from a greenlet other than main: `captured` is then dropped
/// inside that transfer.
fn set_a_hook_that_replaces_itself_on(kind: SwitchKind, captured: SwitchesOnDrop) {
    greenlet::set_switch_hook(Some(Box::new(move |e: &SwitchEvent| {
        let _ = &captured;
        if e.kind == kind && !e.origin.is_main() {
            greenlet::set_switch_hook(Some(Box::new(|_| {})));
        }
    })));
}

/// A victim that caught its kill refuses it with a switch whose value
/// switches in its destructor (which would refuse the kill first): the
/// kill is refused once, and the value is dropped after the refusal,
/// once the victim runs again, as an ordinary switch.
#[test]
fn a_refusal_whose_value_switches_as_it_drops_refuses_once() {
    struct SwitchesToMain;
    impl Drop for SwitchesToMain {
        fn drop(&mut self) {
            let _ = Greenlet::main().switch::<(), ()>(());
        }
    }
    let victim = Greenlet::new(|()| {
        let main = Greenlet::main();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
        assert!(caught.is_err(), "the kill");
        let refused = main.switch::<SwitchesToMain, ()>(SwitchesToMain);
        format!("{refused:?}")
    });
    victim.switch::<(), ()>(()).unwrap();
    assert!(victim.try_kill().is_err(), "refused");
    // Back at its refusing switch: the value drops, switching to main.
    victim.switch::<(), ()>(()).unwrap();
    let refused: String = victim.switch(()).unwrap();
    assert_eq!(refused, "Ok(())");
    assert!(victim.is_dead());
}

/// A switch hook's panic payload that panics as it drops, raised on a
/// greenlet's finish: reported and dropped quietly, not unwound out of the
/// finishing greenlet into main's switch (which left the runtime naming
/// the dead greenlet current).
#[test]
fn a_hook_panic_whose_payload_panics_as_it_drops_stays_in_the_finish() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("the payload's destructor");
        }
    }
    greenlet::set_switch_hook(Some(Box::new(|e: &SwitchEvent| {
        if e.kind == SwitchKind::Finish {
            panic::panic_any(PanicsOnDrop);
        }
    })));
    let g = Greenlet::new(|()| 5u32);
    let r = panic::catch_unwind(AssertUnwindSafe(|| g.switch::<(), u32>(())));
    greenlet::set_switch_hook(None);
    assert_eq!(r.ok().and_then(Result::ok), Some(5));
    assert!(Greenlet::current().is_main());
    let h = Greenlet::new(|()| 6u32);
    assert_eq!(h.switch::<(), u32>(()).unwrap(), 6);
}

/// A hook that replaced itself is dropped as part of its call: its
/// destructor cannot switch (as the hook cannot), so nothing runs between
/// what the switching greenlet was told (it may leave; its target) and its
/// jump. Here the destructor's switch to a greenlet that would kill the
/// switching one is refused, and the switch goes on.
#[test]
fn a_replaced_hook_cannot_switch_as_it_drops() {
    let killer_ran = Rc::new(Cell::new(false));
    let victim_slot = Rc::new(RefCell::new(None::<Greenlet>));
    let killer_slot = Rc::new(RefCell::new(None));
    let target = Greenlet::new(|x: u32| x + 1);
    let t = target.clone();
    let victim = Greenlet::new(move |()| t.switch::<u32, u32>(1));
    *victim_slot.borrow_mut() = Some(victim.clone());
    let (ran, vs) = (killer_ran.clone(), victim_slot.clone());
    let killer = Greenlet::new(move |()| {
        ran.set(true);
        vs.borrow_mut().take().unwrap().kill();
    });
    *killer_slot.borrow_mut() = Some(killer.clone());
    set_a_hook_that_replaces_itself_on(SwitchKind::Switch, SwitchesOnDrop(killer_slot));
    // The target's result comes to main, its parent.
    let got = victim.switch::<(), u32>(());
    greenlet::set_switch_hook(None);
    assert_eq!(got.unwrap(), 2);
    assert!(!killer_ran.get());
}

/// The same on a greenlet's finish, while another greenlet could finish
/// through the fast lane: the finishing greenlet's stack and the other's
/// are each recycled once, and nothing leaks.
#[test]
fn a_replaced_hook_dropped_in_a_finish_leaves_no_stack_behind() {
    let other_slot = Rc::new(RefCell::new(None));
    let kept = Rc::new(RefCell::new(None));
    let k = kept.clone();
    let other = Greenlet::new(move |()| {
        let g = Greenlet::new(|()| 2u32);
        assert_eq!(g.switch::<(), u32>(()).unwrap(), 2);
        *k.borrow_mut() = Some(g);
    });
    *other_slot.borrow_mut() = Some(other.clone());
    set_a_hook_that_replaces_itself_on(SwitchKind::Finish, SwitchesOnDrop(other_slot));
    let finishing = Greenlet::new(|()| 1u32);
    let r = finishing.switch::<(), u32>(());
    greenlet::set_switch_hook(None);
    assert_eq!(r.unwrap(), 1);
    drop(finishing);
    other.switch::<(), ()>(()).unwrap();
    drop(other);
    drop(kept.borrow_mut().take());
    let stats = greenlet::stats();
    assert_eq!(
        (stats.greenlets.len(), stats.stacks_in_use),
        (1, 0),
        "{stats}"
    );
}

const CHILD: &str = "GREENLET_USER_CODE_INSIDE_THE_RUNTIME_CHILD";

/// In the child: a receiver drops a mismatched value whose destructor
/// switches away and then refuses the kill of `hub::run_main`'s end, so
/// the dead sender's stack is recycled by those kills (and its record
/// freed) while the receiver still holds the sender's key; a greenlet-local
/// of main, used after `run_main`, makes a greenlet (which takes the freed
/// slot) and resumes the receiver, which must not recycle that new
/// greenlet's stack. (This ran at thread exit, the kills and the local's
/// drop being the teardown's; a thread's exit now leaves the receiver
/// suspended, and a switch into it from a destructor it runs panics, see
/// the crate's **Threads** rule. So the kills are `run_main`'s and the
/// local resumes the receiver before the thread ends.)
mod recycled_by_the_kills_at_the_end {
    use super::*;

    /// One word (a box): what the sender returns; the receiver expects a
    /// `u32` and drops it.
    pub struct Payload(#[allow(dead_code)] Box<u64>);

    impl Drop for Payload {
        fn drop(&mut self) {
            let main = Greenlet::main();
            // Switch away; refuse the teardown's kill (catch it, switch).
            while panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(()))).is_err() {}
        }
    }

    pub struct Late(pub RefCell<Option<Greenlet>>);

    impl Late {
        /// Resumes the receiver, after making a fresh greenlet.
        pub fn resume(&self) {
            let Some(receiver) = self.0.borrow_mut().take() else {
                return;
            };
            let fresh = Greenlet::new(|()| 42u64);
            let _ = receiver.switch::<(), ()>(());
            assert_eq!(fresh.switch::<(), u64>(()).unwrap(), 42);
            println!("the fresh greenlet ran");
        }
    }

    greenlet::greenlet_local! {
        pub static LATE: Late = Late(RefCell::new(None));
    }

    pub fn run() {
        greenlet::set_stack_policy(greenlet::StackPolicy::new().max_pooled(0));
        let main = Greenlet::main();
        let receiver = Greenlet::new(|()| {
            let main = Greenlet::main();
            let r = main.switch::<(), u32>(());
            assert!(matches!(r, Err(SwitchError::TypeMismatch { .. })), "{r:?}");
            let _ = main.switch::<(), ()>(());
        });
        receiver.switch::<(), ()>(()).unwrap();
        LATE.with(|late| *late.0.borrow_mut() = Some(receiver.clone()));
        let stash = Rc::new(RefCell::new(Vec::new()));
        let st = stash.clone();
        let sender = Greenlet::builder()
            .parent(&receiver)
            .build(move |()| {
                let main = Greenlet::main();
                let st2 = st.clone();
                let child = Greenlet::new(move |()| {
                    st2.borrow_mut().push(Greenlet::current());
                    st2.borrow_mut().push(Greenlet::current());
                });
                child.switch::<(), ()>(()).unwrap();
                drop(child); // dead; its parent link holds the sender
                main.switch::<(), ()>(()).unwrap(); // main lets its handle go
                                                    // Resumed through the dead child: re-parented, it lets the
                                                    // sender go, which then runs with no reference left.
                let dead_child = st.borrow_mut().pop().unwrap();
                dead_child.set_parent(&main).unwrap();
                drop(dead_child);
                Payload(Box::new(7))
            })
            .unwrap();
        sender.switch::<(), ()>(()).unwrap();
        drop(sender);
        let dead_child = stash.borrow_mut().pop().unwrap();
        // Routed to the sender, the first live ancestor of the dead child.
        assert!(dead_child.switch::<(), ()>(()).is_ok());
        drop((dead_child, receiver, main));
        // `run_main`'s kills and the resume after it do the rest.
    }
}

#[test]
fn recycled_by_the_kills_at_the_end_child() {
    // Only does something when re-run by the test below.
    if std::env::var_os(CHILD).is_some() {
        std::thread::spawn(|| {
            greenlet::hub::run_main(recycled_by_the_kills_at_the_end::run);
            recycled_by_the_kills_at_the_end::LATE.with(|late| late.resume());
        })
        .join()
        .unwrap();
    }
}

/// A dead greenlet's stack is recycled once: the receiver whose drop of
/// its value switched away looks again before recycling it (a freed key
/// may name another greenlet by then).
#[test]
fn a_stack_recycled_by_the_kills_at_the_end_is_not_recycled_again_by_its_receiver() {
    let out = child::run("recycled_by_the_kills_at_the_end_child", CHILD, "1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("the fresh greenlet ran"),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// When a greenlet-local's destructor panics, the function's value is
/// dropped after the locals; a local its destructor makes anew is dropped
/// then too, on the same greenlet, not later on whichever greenlet frees
/// the record.
#[test]
fn a_local_made_while_the_value_of_a_failed_end_drops_is_dropped_on_its_greenlet() {
    struct Panics;
    impl Drop for Panics {
        fn drop(&mut self) {
            panic!("a local's destructor");
        }
    }
    struct NotesWhere;
    impl Drop for NotesWhere {
        fn drop(&mut self) {
            DROPPED_ON.with(|on| on.set(Some(Greenlet::current().id())));
        }
    }
    /// The function's value: its destructor first uses `LATE`.
    struct UsesALocal;
    impl Drop for UsesALocal {
        fn drop(&mut self) {
            LATE.with(|_| ());
        }
    }
    thread_local! {
        static DROPPED_ON: Cell<Option<u64>> = const { Cell::new(None) };
    }
    greenlet::greenlet_local! {
        static FIRST: Panics = Panics;
        static LATE: NotesWhere = NotesWhere;
    }
    let g = Greenlet::new(|()| {
        FIRST.with(|_| ());
        UsesALocal
    });
    let id = g.id();
    let r = g.switch::<(), UsesALocal>(());
    assert!(matches!(r, Err(SwitchError::Panicked(_))));
    drop(g);
    assert_eq!(DROPPED_ON.with(Cell::get), Some(id));
}

/// Runs `f` as it drops.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Runs the hub until it is idle: no unwinding may come out of it into
/// main, and main is current after it (an unwinding that left a finishing
/// greenlet's stack came out there, with the finisher still named
/// current).
fn runs_the_hub_and_stays_current() {
    let ran = panic::catch_unwind(AssertUnwindSafe(greenlet::hub::run));
    let main_current = Greenlet::current().is_main();
    if let Err(p) = ran {
        // Dropped, its destructor would touch that broken state.
        std::mem::forget(p);
        panic!("an unwinding escaped into main's hub::run");
    }
    assert!(main_current);
}

/// A finishing greenlet recycles the one that finished before it, whose
/// hand-off link can be the last reference of a detached spawn: that
/// spawn is collected there, inside the finish, and its destructor kills
/// the finishing greenlet. The kill is the finisher's end (it was ending
/// anyway); the destructor gets its kill back, main stays current, and
/// nothing unwinds out of the finisher's stack.
#[test]
fn a_greenlet_collected_inside_a_finish_may_kill_the_finisher() {
    use greenlet::hub;
    let destructor_ends = Rc::new(Cell::new(0));
    let x = Greenlet::new(|()| {});
    let to_kill = Rc::new(RefCell::new(Some(x.clone())));
    let first = hub::spawn(|| {});
    let (ends, slot) = (destructor_ends.clone(), to_kill.clone());
    let detached = hub::spawn(move || {
        let (slot2, ends2) = (slot.clone(), ends.clone());
        let _kills_x = OnDrop(move || {
            if let Some(x) = slot2.borrow_mut().take() {
                x.kill();
            }
            ends2.set(ends2.get() + 1);
        });
        let x = slot.borrow().clone().unwrap();
        let _ = x.switch::<(), ()>(()); // x returns: its finish collects this greenlet
    });
    drop(detached);
    drop(x);
    runs_the_hub_and_stays_current();
    assert_eq!(destructor_ends.get(), 1, "the destructor got its kill back");
    drop(first);
}

greenlet::greenlet_local! {
    static PANICS_AS_IT_DROPS: Cell<bool> = Cell::new(false);
}

/// As above, but the collected greenlet answers its kill with a panic (a
/// greenlet-local whose destructor panics): nobody called into the
/// collection, so the panic is reported and dropped, not unwound out of
/// the finishing greenlet.
#[test]
fn a_panic_of_a_greenlet_collected_inside_a_finish_stays_there() {
    use greenlet::hub;
    struct Panics;
    impl Drop for Panics {
        fn drop(&mut self) {
            if PANICS_AS_IT_DROPS.with(Cell::get) {
                panic!("a local's destructor panics");
            }
        }
    }
    greenlet::greenlet_local! {
        static LOCAL: RefCell<Option<Panics>> = RefCell::new(None);
    }
    let x = Greenlet::new(|()| {});
    let first = hub::spawn(|| {});
    let x2 = x.clone();
    let detached = hub::spawn(move || {
        LOCAL.with(|l| *l.borrow_mut() = Some(Panics));
        PANICS_AS_IT_DROPS.with(|p| p.set(true));
        let _ = x2.switch::<(), ()>(());
    });
    drop(detached);
    drop(x);
    runs_the_hub_and_stays_current();
    drop(first);
}

/// The switch hook's event holds handles of the finishing greenlet and of
/// its receiver. A hook that reparents the finisher and lets go of the old
/// parent's other handle leaves the event's the last: the parent is
/// collected when the event drops, inside the finish, and its destructor
/// kills the finisher. Main's switch still returns (`Killed`), with main
/// current.
#[test]
fn a_greenlet_collected_with_a_finish_event_may_kill_the_finisher() {
    use greenlet::SwitchKind;
    let destructor_ends = Rc::new(Cell::new(0));
    let to_kill: Rc<RefCell<Option<Greenlet>>> = Rc::new(RefCell::new(None));
    let (slot, ends) = (to_kill.clone(), destructor_ends.clone());
    let parent = Greenlet::new(move |()| {
        let _kills = OnDrop(move || {
            if let Some(g) = slot.borrow_mut().take() {
                g.kill();
            }
            ends.set(ends.get() + 1);
        });
        Greenlet::main().switch::<(), ()>(()).unwrap();
    });
    parent.switch::<(), ()>(()).unwrap();
    let g = Greenlet::builder()
        .parent(&parent)
        .build(|()| -> u32 { 7 })
        .unwrap();
    *to_kill.borrow_mut() = Some(g.clone());
    let parent_handle = Rc::new(RefCell::new(Some(parent)));
    let (held, finisher) = (parent_handle.clone(), g.clone());
    greenlet::set_switch_hook(Some(Box::new(move |e: &SwitchEvent| {
        if e.kind == SwitchKind::Finish && e.origin == finisher {
            e.origin.set_parent(&Greenlet::main()).unwrap();
            held.borrow_mut().take(); // the event's handle is the parent's last
        }
    })));
    let switched = panic::catch_unwind(AssertUnwindSafe(|| g.switch::<(), u32>(())));
    greenlet::set_switch_hook(None);
    let main_current = Greenlet::current().is_main();
    let Ok(outcome) = switched else {
        std::mem::forget(switched);
        panic!("an unwinding escaped into main's switch");
    };
    assert!(main_current);
    // Its value went to its killer, the collected parent, whose own end
    // then went to its killer, dead, and up that one's parents: to main.
    assert!(matches!(outcome, Err(SwitchError::Killed)), "{outcome:?}");
    assert_eq!(destructor_ends.get(), 1, "the destructor got its kill back");
    assert!(g.is_dead());
}

/// A throw into an unstarted spawn links the spawn's end back to the
/// thrower. When that spawn is then killed (its function's destructor
/// blocked), the end goes to the killer instead, and the thrower's link
/// goes with the kill: once its last handle drops, the thrower, which
/// nothing will switch to again, is collected (its destructors run).
#[test]
fn a_kill_that_replaces_a_throwers_link_lets_the_thrower_go() {
    use greenlet::hub;
    let thrower_dropped = Rc::new(Cell::new(0));
    let q: Rc<hub::Queue<u32>> = Rc::new(hub::Queue::new());
    let q2 = q.clone();
    let blocks_as_it_drops = OnDrop(move || {
        let _ = panic::catch_unwind(AssertUnwindSafe(|| q2.get()));
    });
    let spawned = hub::spawn(move || {
        let _ = &blocks_as_it_drops;
        5u32
    });
    let target = spawned.greenlet().clone();
    let dropped = thrower_dropped.clone();
    let thrower = Greenlet::new(move |()| {
        let _counts = OnDrop(move || dropped.set(dropped.get() + 1));
        let _ = target.throw::<_, ()>("before it ran");
        let _ = Greenlet::main().switch::<(), ()>(());
    });
    // The spawn blocks in its function's destructor; with nothing else to
    // run, the hub comes back to main (with an error, not looked at).
    let _ = thrower.switch::<(), ()>(());
    assert!(thrower.is_active(), "waiting in its throw");
    spawned.kill();
    drop(thrower);
    assert_eq!(thrower_dropped.get(), 1, "the thrower was collected");
}
