//! Kills, unrun greenlets and orphans under hostile use: a victim that
//! kills its killer, destructors that switch or panic at the worst moment,
//! a sender's slot reused while its receiver still has to reap it. Each
//! gets a documented outcome; none corrupts the runtime.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use greenlet::{greenlet_local, CurrentGreenlet, Greenlet, KillRefused, SwitchError};

#[path = "support/hang_guard.rs"]
mod hang_guard;

/// Counts its drops.
struct Counted(Rc<Cell<u32>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// Panics when dropped.
struct PanicsOnDrop(&'static str);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// Switches to main once when dropped, sending its tag.
struct SwitchesToMainOnDrop(&'static str);

impl Drop for SwitchesToMainOnDrop {
    fn drop(&mut self) {
        let _ = Greenlet::main().switch::<&'static str, ()>(self.0);
    }
}

/// A greenlet that has dropped its own last counted handle (an orphan:
/// only the two returned uncounted handles reach it), then runs `f`.
fn orphan<R: 'static>(f: impl FnOnce() -> R + 'static) -> (CurrentGreenlet, CurrentGreenlet) {
    let slot: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let s = slot.clone();
    let g = Greenlet::new(move |()| {
        let _: () = Greenlet::main()
            .switch((Greenlet::current(), Greenlet::current()))
            .unwrap();
        drop(s.borrow_mut().take());
        f()
    });
    *slot.borrow_mut() = Some(g.clone());
    let handles = g.switch(()).unwrap();
    drop(g);
    handles
}

/// A kill's payload, caught and kept.
type PayloadSlot = Rc<RefCell<Option<Box<dyn std::any::Any + Send>>>>;

/// Drops the stored payload, then tries to switch, when dropped, keeping
/// what the switch returned.
struct DropsItThenSwitches(PayloadSlot, Rc<RefCell<Vec<String>>>);

impl Drop for DropsItThenSwitches {
    fn drop(&mut self) {
        drop(self.0.borrow_mut().take());
        let r = Greenlet::main().switch::<(), ()>(());
        self.1.borrow_mut().push(format!("{r:?}"));
    }
}

/// The payload of a kill that a greenlet caught (and kept), the greenlet
/// since gone.
fn a_caught_kill_payload() -> Box<dyn std::any::Any + Send> {
    let slot: PayloadSlot = Rc::default();
    let s = slot.clone();
    let catcher = Greenlet::new(move |()| {
        let main = Greenlet::main();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
        *s.borrow_mut() = Some(caught.unwrap_err());
    });
    catcher.switch::<(), ()>(()).unwrap();
    catcher.kill();
    let payload = slot
        .borrow_mut()
        .take()
        .expect("the catcher kept its payload");
    payload
}

/// Kills, from a panicking killer, a greenlet whose destructor drops
/// `payload` and then tries to switch: that switch must fail with
/// `Unwinding` (the victim still unwinds).
fn drop_it_while_unwinding(payload: Box<dyn std::any::Any + Send>) {
    let slot: PayloadSlot = Rc::new(RefCell::new(Some(payload)));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (p, s) = (slot, seen.clone());
    let victim = Greenlet::new(move |()| {
        let _guard = DropsItThenSwitches(p, s);
        let _ = Greenlet::main().switch::<(), ()>(());
    });
    victim.switch::<(), ()>(()).unwrap();
    kill_from_a_panicking_killer(&victim);
    assert!(victim.is_dead());
    assert_eq!(*seen.borrow(), ["Err(Unwinding)"]);
}

/// Kills its greenlet when dropped (as its owner unwinds, here), keeping
/// the outcome.
struct KillsWhenDropped(Greenlet, Rc<Cell<Option<Result<(), KillRefused>>>>);

impl Drop for KillsWhenDropped {
    fn drop(&mut self) {
        self.1.set(Some(self.0.try_kill()));
    }
}

/// Kills `victim` from a greenlet that panics, as it unwinds.
fn kill_from_a_panicking_killer(victim: &Greenlet) {
    let v = victim.clone();
    let killer = Greenlet::new(move |()| -> () {
        let _kills = KillsWhenDropped(v, Rc::default());
        panic!("killer panics");
    });
    assert_eq!(
        killer.switch::<(), ()>(()).unwrap_err().message(),
        Some("killer panics")
    );
}

/// A started greenlet (a child of `parent`, or of the current one) that
/// answers its kill with a panic, "answers its kill".
fn answers_its_kill_with_a_panic(parent: Option<&Greenlet>) -> Greenlet {
    let mut builder = Greenlet::builder();
    if let Some(p) = parent {
        builder = builder.parent(p);
    }
    let g = builder
        .build(|()| {
            let main = Greenlet::main();
            let _ = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
            panic!("answers its kill");
        })
        .unwrap();
    g.switch::<(), ()>(()).unwrap();
    g
}

/// A chain of `links` suspended greenlets, each the parent of the next;
/// returns the last, the only handle. Each link holds a `Counted` on
/// `drops`; the link numbered `panics`, if any, answers its kill with a
/// panic saying `message`.
fn chain(links: usize, drops: &Rc<Cell<u32>>, panics: Option<(usize, &'static str)>) -> Greenlet {
    let mut leaf: Option<Greenlet> = None;
    for link in 0..links {
        let guard = Counted(drops.clone());
        let mut builder = Greenlet::builder();
        if let Some(parent) = &leaf {
            builder = builder.parent(parent);
        }
        let g = builder
            .build(move |()| {
                let body = move || {
                    let _guard = guard;
                    let _: () = Greenlet::main().switch(()).unwrap();
                };
                match panics {
                    Some((at, message)) if at == link => {
                        let _ = panic::catch_unwind(AssertUnwindSafe(body));
                        // A `&str` payload, as `panic!` with a literal gives.
                        panic::panic_any(message);
                    }
                    _ => body(),
                }
            })
            .unwrap();
        g.switch::<(), ()>(()).unwrap();
        leaf = Some(g);
    }
    leaf.unwrap()
}

/// A victim that catches its kill, kills its killer (suspended in `kill`)
/// and then switches away: its killer is gone, so the switch is an
/// ordinary one. (It was taken for a refusal and jumped into the dead
/// killer's stack: the runtime named the dead greenlet current, and the
/// next switch crashed.)
#[test]
fn a_victim_that_kills_its_killer_then_switches_switches() {
    let killer: Rc<RefCell<Option<Greenlet>>> = Rc::default();
    let k2 = killer.clone();
    let victim = Greenlet::new(move |()| {
        let main = Greenlet::main();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
        assert!(caught.is_err(), "the kill unwound the pending switch");
        let k = k2.borrow_mut().take().unwrap();
        k.kill();
        assert!(k.is_dead());
        main.switch::<u32, u32>(7).unwrap() + 1
    });
    victim.switch::<(), ()>(()).unwrap();
    let v = victim.clone();
    let k = Greenlet::new(move |()| {
        let _ = v.try_kill();
        unreachable!("killed by its victim");
    });
    *killer.borrow_mut() = Some(k.clone());
    // The killer's death goes to its parent (main): it was killed.
    assert!(matches!(
        k.switch::<(), u32>(()),
        Err(SwitchError::Killed) | Ok(7)
    ));
    assert!(Greenlet::current().is_main());
    assert!(k.is_dead());
    // The victim lives on, no longer dying.
    assert_eq!(victim.switch::<u32, u32>(1).unwrap(), 2);
    assert!(victim.is_dead());
    let fresh = Greenlet::new(|x: u32| x + 1);
    assert_eq!(fresh.switch::<u32, u32>(1).unwrap(), 2);
}

/// A kill that reaches an unstarted greenlet while its function, dropped
/// unrun after a throw, is suspended in a switch: the kill completes and
/// the killer hears nothing. (The kill's own unwinding was reported as a
/// panic of the victim, and resumed in the killer.)
#[test]
fn killing_a_greenlet_suspended_in_its_unrun_functions_destructor_completes() {
    let guard = SwitchesToMainOnDrop("dropping");
    let g = Greenlet::new(move |()| drop(guard));
    assert_eq!(g.throw::<_, &'static str>("error").unwrap(), "dropping");
    assert!(g.is_active(), "suspended in the destructor");
    let killed = panic::catch_unwind(AssertUnwindSafe(|| g.kill()));
    assert!(killed.is_ok(), "the kill unwound the killer");
    assert!(g.is_dead());
}

/// Two unstarted greenlets ended by throws, whose functions' destructors
/// switch away and finish in the other order: each ends with its own error.
/// (One slot held the error of the function being dropped: the second
/// took the first's, and the first's was lost.)
#[test]
fn unrun_functions_dropped_in_interleaved_order_keep_their_own_errors() {
    let a = Greenlet::new({
        let guard = SwitchesToMainOnDrop("a");
        move |()| drop(guard)
    });
    let b = Greenlet::new({
        let guard = SwitchesToMainOnDrop("b");
        move |()| drop(guard)
    });
    assert_eq!(a.throw::<_, &'static str>("error for a").unwrap(), "a");
    assert_eq!(b.throw::<_, &'static str>("error for b").unwrap(), "b");
    let ra = a.switch::<(), ()>(()).unwrap_err();
    let rb = b.switch::<(), ()>(()).unwrap_err();
    assert_eq!(ra.message(), Some("error for a"));
    assert_eq!(rb.message(), Some("error for b"));
}

greenlet_local! {
    static BOMB: RefCell<Option<PanicsOnDrop>> = RefCell::new(None);
}

/// When a greenlet-local's destructor panics, the panic replaces the
/// greenlet's outcome, and the outcome it replaces is dropped: a returned
/// value, or the function's own panic payload. (Neither was ever dropped.)
#[test]
fn an_outcome_replaced_by_a_locals_panic_is_dropped() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |()| {
        BOMB.with(|b| *b.borrow_mut() = Some(PanicsOnDrop("local")));
        Counted(d)
    });
    let err = g.switch::<(), Counted>(()).err().unwrap();
    assert_eq!(err.message(), Some("local"));
    assert_eq!(drops.get(), 1, "the returned value");

    static PAYLOAD_DROPS: AtomicU32 = AtomicU32::new(0);
    struct Payload;
    impl Drop for Payload {
        fn drop(&mut self) {
            PAYLOAD_DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let g = Greenlet::new(move |()| -> () {
        BOMB.with(|b| *b.borrow_mut() = Some(PanicsOnDrop("local")));
        panic::panic_any(Payload)
    });
    let err = g.switch::<(), ()>(()).unwrap_err();
    assert_eq!(err.message(), Some("local"));
    assert_eq!(
        PAYLOAD_DROPS.load(Ordering::SeqCst),
        1,
        "the function's panic payload"
    );
}

/// A value of the wrong type that starts an unstarted greenlet and panics
/// as it is dropped there: the panic is that greenlet's outcome, reaching
/// its parent. (It escaped the greenlet's first frame, left the coroutine,
/// and left the runtime naming the greenlet current.)
#[test]
fn a_panic_while_an_unstarted_greenlet_receives_its_first_value_ends_it() {
    let u = Greenlet::new(|x: u64| x);
    let c = Greenlet::builder()
        .parent(&u)
        .build(|()| PanicsOnDrop("mismatched"))
        .unwrap();
    // C returns into U, which expected a u64: U drops the value, panics.
    let err = c.switch::<(), u64>(()).unwrap_err();
    assert_eq!(err.message(), Some("mismatched"));
    assert!(Greenlet::current().is_main());
    assert!(u.is_dead() && c.is_dead());
    let fresh = Greenlet::new(|x: u8| x + 1);
    assert_eq!(fresh.switch::<u8, u8>(1).unwrap(), 2);
}

/// An orphan switches into an unstarted greenlet, which reaps it first
/// thing; the orphan answers its kill with a panic (Python's
/// `test_dealloc_catches_GreenletExit_throws_other`): that panic is the
/// unstarted greenlet's outcome, not an escape from its first frame.
#[test]
fn an_orphan_answering_its_reap_with_a_panic_ends_the_unstarted_receiver() {
    let u = Greenlet::new(|x: u64| x + 1);
    let u2 = u.clone();
    let (c, _) = orphan(move || {
        let r = panic::catch_unwind(AssertUnwindSafe(|| u2.switch::<u64, ()>(1)));
        if r.is_err() {
            panic!("raised on its kill");
        }
    });
    let err = c.switch::<(), u64>(()).unwrap_err();
    assert_eq!(err.message(), Some("raised on its kill"));
    assert!(Greenlet::current().is_main());
    assert!(u.is_dead() && c.is_dead());
    let fresh = Greenlet::new(|x: u8| x + 1);
    assert_eq!(fresh.switch::<u8, u8>(1).unwrap(), 2);
}

thread_local! {
    static SENDER: RefCell<Option<CurrentGreenlet>> = const { RefCell::new(None) };
    static NEWCOMER: RefCell<Option<Greenlet>> = const { RefCell::new(None) };
}

/// A value of the wrong type whose destructor, run by its receiver before
/// the receiver reaps the orphan that sent it, lets the sender finish,
/// frees its record and creates a greenlet that takes the freed slot.
struct FreesItsSender;

impl Drop for FreesItsSender {
    fn drop(&mut self) {
        let sender = SENDER.with(|s| s.borrow_mut().take()).unwrap();
        let _ = sender.switch::<(), ()>(());
        assert!(sender.is_dead());
        drop(sender);
        let newcomer = Greenlet::builder()
            .parent(&Greenlet::main())
            .build(|x: u32| x * 2)
            .unwrap();
        NEWCOMER.with(|n| *n.borrow_mut() = Some(newcomer));
    }
}

/// The receiver reaps the greenlet that sent it the value, not one that
/// took its slot meanwhile. (The newcomer was killed.)
#[test]
fn a_reap_spares_the_greenlet_that_took_the_senders_slot() {
    let receiver = Greenlet::new(|()| {
        let got = Greenlet::main().switch::<(), u32>(());
        assert!(matches!(got, Err(SwitchError::TypeMismatch { .. })));
    });
    receiver.switch::<(), ()>(()).unwrap();
    let r = receiver.clone();
    let (sender, for_the_value) = orphan(move || {
        let _ = r.switch::<FreesItsSender, ()>(FreesItsSender);
    });
    SENDER.with(|s| *s.borrow_mut() = Some(for_the_value));
    // The sender sends; the receiver's drop of the value resumes it, and it
    // returns to main.
    let _ = sender.switch::<(), ()>(());
    drop(sender);
    // The receiver goes on with its bookkeeping, then finishes.
    receiver.switch::<(), ()>(()).unwrap();
    let newcomer = NEWCOMER.with(|n| n.borrow_mut().take()).unwrap();
    assert!(
        !newcomer.is_dead(),
        "the newcomer was reaped in the sender's place"
    );
    assert_eq!(newcomer.switch::<u32, u32>(21).unwrap(), 42);
}

/// A switch or throw to oneself leaves nothing: it returns at once, also
/// from a greenlet that caught its kill (it was taken for a refusal of the
/// kill) and from a destructor during a panic (it failed with `Unwinding`).
#[test]
fn a_switch_or_throw_to_oneself_returns_at_once_even_while_dying_or_unwinding() {
    let g = Greenlet::new(|()| {
        let main = Greenlet::main();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
        assert!(caught.is_err());
        let me = Greenlet::current();
        let thrown = me.throw::<_, ()>("self");
        assert_eq!(thrown.unwrap_err().message(), Some("self"));
        assert_eq!(me.switch::<u32, u32>(4).unwrap(), 4);
        5u32
    });
    g.switch::<(), ()>(()).unwrap();
    assert_eq!(
        g.try_kill(),
        Ok(()),
        "the function returned: the kill completed"
    );
    assert!(g.is_dead());

    struct SwitchesToItself(Rc<Cell<Option<u32>>>);
    impl Drop for SwitchesToItself {
        fn drop(&mut self) {
            self.0.set(Greenlet::current().switch::<u32, u32>(9).ok());
        }
    }
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let unwound = panic::catch_unwind(AssertUnwindSafe(move || {
        let _guard = SwitchesToItself(s);
        panic!("boom");
    }));
    assert!(unwound.is_err());
    assert_eq!(seen.get(), Some(9));
}

/// A kill issued by a killer that is itself unwinding a panic (a handle
/// dropped during the panic): the victim, once it has caught the kill,
/// can refuse it, and the killer's unwinding goes on. (The thread-wide
/// `std::thread::panicking` made every switch of the victim fail with
/// `Unwinding`, and the stubborn loop of `try_kill`'s docs spun for ever.)
/// The same victim's own kill of itself then unwinds it.
#[test]
fn a_kill_from_a_panicking_killer_can_be_refused() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let refusals = Rc::new(Cell::new(0));
        let r = refusals.clone();
        let stubborn = Greenlet::new(move |()| {
            for _ in 0..2 {
                let main = Greenlet::main();
                let caught = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
                if caught.is_err() {
                    r.set(r.get() + 1);
                }
            }
            // Caught twice; now it kills itself, which does not return.
            Greenlet::current().kill();
            unreachable!("a self-kill unwinds");
        });
        stubborn.switch::<(), ()>(()).unwrap();
        let keep = stubborn.clone();
        let outcome = Rc::new(Cell::new(None));
        let o = outcome.clone();
        let unwound = panic::catch_unwind(AssertUnwindSafe(move || {
            let _kills = KillsWhenDropped(stubborn, o); // as main unwinds
            panic!("main panics");
        }));
        assert!(unwound.is_err());
        assert_eq!(outcome.get(), Some(Err(KillRefused)));
        assert_eq!(refusals.get(), 1);
        assert!(!keep.is_dead(), "it refused");
        // Killed again, with no panic under way: it catches, leaves its
        // loop, and kills itself.
        assert_eq!(keep.try_kill(), Ok(()));
        assert!(keep.is_dead());
        assert_eq!(refusals.get(), 2);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("the killer hung while the victim spun");
}

/// Dropping the last handle of a long chain of suspended greenlets (each
/// the parent of the next, only the leaf held) kills the whole chain
/// without nesting a kill per link on the dropper's stack: here a 32 KiB
/// greenlet stack, which 2,000 nested kills overflowed.
#[test]
fn a_long_chain_of_suspended_greenlets_is_collected_without_recursing() {
    let drops = Rc::new(Cell::new(0));
    let leaf = chain(2_000, &drops, None);
    let dropper = Greenlet::builder()
        .stack_size(32 * 1024)
        .build(move |()| drop(leaf))
        .unwrap();
    dropper.switch::<(), ()>(()).unwrap();
    assert_eq!(drops.get(), 2_000);
    assert_eq!(greenlet::stats().greenlets.len(), 2, "main and the dropper");
}

/// A kill's payload caught on one greenlet and dropped on another, while
/// that other unwinds for a kill from a panicking killer: the other is
/// still unwinding, so its switch in a destructor fails. (The drop marked
/// the other's unwinding as caught, its switch was taken for a refusal,
/// and it was left suspended in the middle of its unwinding: the process
/// aborted.)
#[test]
fn a_foreign_kill_payload_dropped_during_an_unwinding_changes_nothing() {
    drop_it_while_unwinding(a_caught_kill_payload());
}

/// A victim keeps the payload of an earlier kill it caught, and drops it
/// while a second kill, from a panicking killer, unwinds it: that is not
/// the second kill's payload, so the victim is still unwinding and its
/// switch in a destructor fails. (Marks were per greenlet, not per kill:
/// the switch refused the kill mid-unwinding, and the process aborted.)
/// The same for a payload caught on another thread, which numbers its
/// greenlets alike.
#[test]
fn a_stale_or_foreign_kill_payload_dropped_during_an_unwinding_changes_nothing() {
    // Its own earlier payload.
    let slot: PayloadSlot = Rc::default();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (p, s) = (slot.clone(), seen.clone());
    let victim = Greenlet::new(move |()| {
        let main = Greenlet::main();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
        *p.borrow_mut() = Some(caught.unwrap_err()); // kept
        let _guard = DropsItThenSwitches(p, s);
        let _ = main.switch::<(), ()>(()); // refuses the first kill
        let _ = main.switch::<(), ()>(());
    });
    victim.switch::<(), ()>(()).unwrap();
    assert_eq!(victim.try_kill(), Err(KillRefused));
    kill_from_a_panicking_killer(&victim);
    assert!(victim.is_dead());
    assert_eq!(*seen.borrow(), ["Err(Unwinding)"]);

    // Another thread's payload.
    let foreign = std::thread::spawn(a_caught_kill_payload).join().unwrap();
    drop_it_while_unwinding(foreign);
}

/// Collections queued past the nesting limit are killed by the outermost
/// one also when its own victim answers its kill with a panic (which then
/// reaches the dropper). (They were left alive, with no handle.)
#[test]
fn queued_collections_are_killed_even_when_the_outermost_kill_panics() {
    let drops = Rc::new(Cell::new(0));
    // The leaf, killed first, answers with a panic.
    let leaf = chain(12, &drops, Some((11, "the leaf answers its kill")));
    let dropped = panic::catch_unwind(AssertUnwindSafe(move || drop(leaf)));
    let p = dropped.unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"the leaf answers its kill"));
    assert_eq!(drops.get(), 12);
    assert_eq!(greenlet::stats().greenlets.len(), 1, "main alone");
}

/// A greenlet that leaked the payload of a kill it caught refuses a later
/// kill from a panicking killer as any greenlet does: the leaked kill is
/// over once the greenlet is killed again. (Its entry stayed listed as in
/// flight for ever, and the refusal failed with `Unwinding`.)
#[test]
fn a_leaked_kill_payload_does_not_stop_a_later_refusal() {
    let victim = Greenlet::new(move |()| {
        let main = Greenlet::main();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
        std::mem::forget(caught.unwrap_err());
        loop {
            let _ = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
        }
    });
    victim.switch::<(), ()>(()).unwrap();
    assert_eq!(victim.try_kill(), Err(KillRefused));
    let outcome = Rc::new(Cell::new(None));
    let (v, o) = (victim.clone(), outcome.clone());
    let unwound = panic::catch_unwind(AssertUnwindSafe(move || {
        let _kills = KillsWhenDropped(v, o);
        panic!("the killer panics");
    }));
    assert!(unwound.is_err());
    assert_eq!(outcome.get(), Some(Err(KillRefused)));
    assert!(!victim.is_dead());
}

/// A victim's panic as it is collected reaches the dropper whether the
/// collection was nested or queued: the outermost raises the first once
/// the queue is done, as an unqueued collection would. (Past the nesting
/// limit it was only printed.)
#[test]
fn a_panic_of_a_queued_collection_reaches_the_dropper() {
    let drops = Rc::new(Cell::new(0));
    // The root, collected last, from the queue, answers with a panic.
    let leaf = chain(12, &drops, Some((0, "the root answers its kill")));
    let dropped = panic::catch_unwind(AssertUnwindSafe(move || drop(leaf)));
    let p = dropped.expect_err("the root's panic reaches the dropper");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"the root answers its kill"));
    assert_eq!(drops.get(), 12);
    assert_eq!(greenlet::stats().greenlets.len(), 1, "main alone");
}

/// A greenlet answering its kill with a panic while its killer unwinds (its
/// last handle dropped during a panic): the panic is reported, not raised
/// in a destructor that runs during an unwinding, which aborted the
/// process. The same for the queued collections of a long chain dropped
/// then (a `Vec` of two chains whose roots panic: the first chain's panic
/// unwinds the `Vec`'s drop, which drops the second).
#[test]
fn a_victims_panic_while_its_killer_unwinds_is_reported_not_raised() {
    let lone = answers_its_kill_with_a_panic(None);
    let unwound = panic::catch_unwind(AssertUnwindSafe(move || {
        let _last = lone;
        panic!("the dropper panics");
    }));
    assert_eq!(
        unwound.unwrap_err().downcast_ref::<&str>(),
        Some(&"the dropper panics")
    );

    let drops = Rc::new(Cell::new(0));
    let root = Some((0, "answers its kill"));
    let both = vec![chain(12, &drops, root), chain(12, &drops, root)];
    let dropped = panic::catch_unwind(AssertUnwindSafe(move || drop(both)));
    assert_eq!(
        dropped.unwrap_err().downcast_ref::<&str>(),
        Some(&"answers its kill")
    );
    assert_eq!(drops.get(), 24);
    assert_eq!(greenlet::stats().greenlets.len(), 1, "main alone");
}

/// A victim that caught a kill made while its killer unwinds runs on its
/// normal path: a greenlet it kills, or whose last handle it drops, and
/// that answers with a panic, raises that panic in it as anywhere. (It was
/// only reported, because the killer's panic was under way on the thread.)
#[test]
fn a_victim_of_a_panicking_killer_still_gets_the_panics_of_its_own_kills() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    // Made and started beforehand: a victim that caught its kill cannot
    // switch without refusing it.
    let (first, second) = (
        answers_its_kill_with_a_panic(None),
        answers_its_kill_with_a_panic(None),
    );
    let victim = Greenlet::new(move |()| {
        let main = Greenlet::main();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
        drop(caught); // the kill from the panicking killer, caught
        let killed = panic::catch_unwind(AssertUnwindSafe(|| first.kill()));
        s.borrow_mut().push(killed.is_err());
        let dropped = panic::catch_unwind(AssertUnwindSafe(move || drop(second)));
        s.borrow_mut().push(dropped.is_err());
    });
    victim.switch::<(), ()>(()).unwrap();
    let unwound = panic::catch_unwind(AssertUnwindSafe(move || {
        let _last = victim; // killed as this unwinds
        panic!("the killer panics");
    }));
    assert!(unwound.is_err());
    assert_eq!(*seen.borrow(), [true, true]);
}

/// Kills `victim` from main as main unwinds a panic; returns the outcome.
fn kill_as_main_unwinds(victim: Greenlet) -> Option<Result<(), KillRefused>> {
    let outcome = Rc::new(Cell::new(None));
    let o = outcome.clone();
    let unwound = panic::catch_unwind(AssertUnwindSafe(move || {
        let _kills = KillsWhenDropped(victim, o);
        panic!("main panics");
    }));
    assert!(unwound.is_err());
    outcome.get()
}

/// A victim of a panicking killer that caught its kill (and dropped it) is
/// not unwinding, although the thread still counts the killer's panic: it
/// may wait on I/O again, here a channel's receive, which refuses the
/// kill. (The I/O waits asked the thread-wide `panicking` and failed at
/// once, as if every sender were gone.)
#[test]
fn a_caught_kill_from_a_panicking_killer_lets_its_victim_wait_on_io_again() {
    let (tx, rx) = greenlet::hub::channel::<u32>();
    let victim = greenlet::hub::spawn(move || {
        let caught = panic::catch_unwind(AssertUnwindSafe(|| rx.recv())).is_err();
        (caught, rx.recv().ok())
    });
    greenlet::hub::yield_now(); // it blocks in its first receive
    let g = victim.greenlet().clone();
    assert_eq!(kill_as_main_unwinds(g), Some(Err(KillRefused)));
    tx.send(7).unwrap();
    assert_eq!(victim.join().unwrap(), (true, Some(7)));
}

/// The same victim raises the panic of a generator's producer that it
/// closes (by dropping the generator), as any greenlet does: here the
/// producer never started, and its function's destructor panics as the
/// function is dropped unrun. (The drop asked the thread-wide `panicking`
/// and dropped the panic unseen.)
#[test]
fn a_caught_kill_from_a_panicking_killer_lets_its_victim_hear_a_producers_panic() {
    struct PanicsWhenDropped;
    impl Drop for PanicsWhenDropped {
        fn drop(&mut self) {
            panic!("producer dropped");
        }
    }
    let heard = Rc::new(Cell::new(None));
    let h = heard.clone();
    let victim = Greenlet::new(move |()| {
        let main = Greenlet::main();
        assert!(panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(()))).is_err());
        let never = PanicsWhenDropped;
        let gen = greenlet::Generator::new(move |_: &greenlet::Yielder<u8>| drop(never));
        let dropped = panic::catch_unwind(AssertUnwindSafe(move || drop(gen)));
        h.set(Some(dropped.map_err(|p| p.downcast_ref::<&str>().copied())));
    });
    victim.switch::<(), ()>(()).unwrap();
    let outcome = kill_as_main_unwinds(victim);
    assert_eq!(heard.get(), Some(Err(Some("producer dropped"))));
    assert_eq!(outcome, Some(Ok(())));
}

/// Such a victim that then panics anew unwinds, although the thread-wide
/// `panicking` cannot tell its panic from its killer's (the crate's panic
/// hook tells the runtime): an I/O wait in a destructor of that unwinding
/// fails at once, and dropping a generator there reports its producer's
/// panic instead of raising it (which aborted).
#[test]
fn a_victim_of_a_panicking_killer_that_panics_anew_unwinds() {
    /// Receives on a channel as it drops, keeping what came of it.
    struct ReceivesWhenDropped(greenlet::hub::Receiver<u32>, Rc<Cell<Option<bool>>>);
    impl Drop for ReceivesWhenDropped {
        fn drop(&mut self) {
            self.1.set(Some(self.0.recv().is_err()));
        }
    }
    struct PanicsWhenDropped;
    impl Drop for PanicsWhenDropped {
        fn drop(&mut self) {
            panic!("producer dropped");
        }
    }
    let (tx, rx) = greenlet::hub::channel::<u32>();
    let failed_at_once = Rc::new(Cell::new(None));
    let f = failed_at_once.clone();
    let victim = greenlet::hub::spawn(move || {
        let caught = panic::catch_unwind(AssertUnwindSafe(|| rx.recv())).is_err();
        let own = panic::catch_unwind(AssertUnwindSafe(move || {
            let _receives = ReceivesWhenDropped(rx, f);
            let never = PanicsWhenDropped;
            let _gen = greenlet::Generator::new(move |_: &greenlet::Yielder<u8>| drop(never));
            panic!("own panic");
        }));
        (caught, own.is_err())
    });
    greenlet::hub::yield_now(); // it blocks in its first receive
    let g = victim.greenlet().clone();
    assert_eq!(
        kill_as_main_unwinds(g),
        Some(Ok(())),
        "no switch mid-unwinding"
    );
    assert_eq!(failed_at_once.get(), Some(true));
    drop(tx);
    assert!(victim.join().is_err(), "killed");
}

/// The same when the victim's new unwinding is one the crate raises, which
/// runs no panic hook: an expired `with_timeout`'s interruption, raised by
/// the next blocking call before it switches. A destructor of that
/// unwinding that switches gets `Unwinding`, and the kill ends. (It went
/// through as a refusal of the kill, leaving the victim suspended in the
/// middle of its unwinding, which std then counted on the whole thread:
/// main, its own panic caught, was still `panicking`, and every switch it
/// made failed with `Unwinding`.)
#[test]
fn a_victim_of_a_panicking_killer_unwinding_an_interruption_cannot_switch() {
    use std::time::Duration;
    std::thread::spawn(|| {
        greenlet::hub::time::pause();
        let seen = Rc::new(RefCell::new(None));
        let s = seen.clone();
        let victim = Greenlet::new(move |()| {
            let _ = greenlet::hub::with_timeout(Duration::from_millis(1), || {
                let main = Greenlet::main();
                let _ = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
                struct SwitchesWhenDropped(Rc<RefCell<Option<String>>>);
                impl Drop for SwitchesWhenDropped {
                    fn drop(&mut self) {
                        let r = Greenlet::main().switch::<u32, ()>(7);
                        *self.0.borrow_mut() = Some(format!("{r:?}"));
                    }
                }
                let _switches = SwitchesWhenDropped(s);
                greenlet::hub::sleep(Duration::from_millis(1)); // interrupted at once
            });
        });
        victim.switch::<(), ()>(()).unwrap();
        greenlet::hub::sleep(Duration::from_millis(5)); // its scope expires meanwhile
        assert_eq!(kill_as_main_unwinds(victim.clone()), Some(Ok(())));
        assert_eq!(seen.borrow().as_deref(), Some("Err(Unwinding)"));
        assert!(victim.is_dead());
        assert!(!std::thread::panicking());
        assert_eq!(
            Greenlet::new(|x: u32| x + 1).switch::<u32, u32>(1).unwrap(),
            2
        );
    })
    .join()
    .unwrap();
}

/// A victim of a panicking killer that caught (and dropped) its kill: a
/// switch to itself with a value of the wrong type whose destructor panics
/// has that panic reported, as anywhere while the thread counts a panic,
/// and gets its type mismatch. (It may not be unwinding; but one that
/// unwinds anew with `resume_unwind` looks the same to std and to the
/// runtime, and there a panic would abort the process: see
/// `late_panics.rs`.)
#[test]
fn a_caught_kill_from_a_panicking_killer_has_a_mismatched_values_panic_reported() {
    struct PanicsWhenDropped;
    impl Drop for PanicsWhenDropped {
        fn drop(&mut self) {
            panic!("a destructor's panic");
        }
    }
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let victim = Greenlet::new(move |()| {
        let main = Greenlet::main();
        let _ = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            Greenlet::current().switch::<PanicsWhenDropped, u8>(PanicsWhenDropped)
        }));
        *s.borrow_mut() = Some(match r {
            Ok(r) => format!("{r:?}"),
            Err(_) => "raised".to_string(),
        });
    });
    victim.switch::<(), ()>(()).unwrap();
    kill_as_main_unwinds(victim);
    let seen = seen.borrow().clone().expect("it ran");
    assert!(seen.starts_with("Err(TypeMismatch"), "{seen}");
}

/// A victim that caught its kill runs a switch hook (on a kill it makes);
/// a switch from inside the hook gets `InSwitchHook`, as every switch
/// there does, rather than refusing the victim's kill from inside the hook
/// (which left the hook running for good: every later switch of the
/// thread got `InSwitchHook`).
#[test]
fn a_switch_inside_a_hook_that_a_caught_kills_victim_runs_is_refused_as_in_the_hook() {
    let other = Greenlet::new(|()| loop {
        let _ = Greenlet::main().switch::<(), ()>(());
    });
    other.switch::<(), ()>(()).unwrap();
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let victim = Greenlet::new(move |()| {
        let caught = panic::catch_unwind(|| Greenlet::main().switch::<(), ()>(()));
        drop(caught);
        greenlet::set_switch_hook(Some(Box::new(move |e| {
            if e.kind == greenlet::SwitchKind::Kill {
                let r = Greenlet::main().switch::<u8, ()>(1);
                *s.borrow_mut() = Some(format!("{r:?}"));
            }
        })));
        other.kill();
    });
    victim.switch::<(), ()>(()).unwrap();
    kill_as_main_unwinds(victim.clone());
    greenlet::set_switch_hook(None);
    assert_eq!(seen.borrow().as_deref(), Some("Err(InSwitchHook)"));
    assert_eq!(Greenlet::new(|()| 5i32).switch::<(), i32>(()).unwrap(), 5);
}

/// The other side: a greenlet the switch hook kills runs on a stack of its
/// own, and may refuse the kill by switching, back into the hook (the
/// `try_kill` docs' stubborn greenlet, killed from a hook): `KillRefused`,
/// and the hook returns. (Refused as a switch "inside the hook" for a
/// moment, the stubborn loop never gave control back.)
#[test]
fn a_greenlet_the_hook_kills_may_refuse_the_kill() {
    let out = hang_guard::guard(60, || {
        let stubborn = Greenlet::new(|()| loop {
            let main = Greenlet::main();
            let _ = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
        });
        stubborn.switch::<(), ()>(()).unwrap();
        let seen = Rc::new(RefCell::new(None));
        let s = seen.clone();
        let victim = RefCell::new(Some(stubborn.clone()));
        greenlet::set_switch_hook(Some(Box::new(move |e| {
            if e.kind == greenlet::SwitchKind::Switch {
                if let Some(v) = victim.borrow_mut().take() {
                    *s.borrow_mut() = Some(v.try_kill());
                }
            }
        })));
        let r = Greenlet::new(|()| 7i32).switch::<(), i32>(());
        greenlet::set_switch_hook(None);
        let seen = *seen.borrow();
        format!("{r:?} {seen:?} alive {}", stubborn.is_active())
    });
    assert_eq!(
        out.as_deref(),
        Ok("Ok(7) Some(Err(KillRefused)) alive true")
    );
}

/// The hook, running on `g` as `g` switches away, kills `v`; `v` catches
/// its kill and kills `g` back, suspended inside the hook; the hook catches
/// that and returns. `g` has caught a kill, so its switch (let through
/// before the hook ran) is a refusal: `v`'s kill of it returns
/// `KillRefused`, and `g` stays alive, its target not reached. (`g`'s
/// own kill of `v` unwound with it, so `v`'s end goes to its parent.)
#[test]
fn a_kill_the_hooks_own_greenlet_catches_inside_the_hook_is_refused_by_its_switch() {
    assert_eq!(
        kill_caught_inside_the_hook(greenlet::SwitchKind::Switch).as_deref(),
        Ok("Ok(\"v finished\") v saw Some(Err(KillRefused)), g alive true, t reached false")
    );
}

/// The same, `g` throwing instead of switching: the throw is the refusal.
#[test]
fn a_kill_the_hooks_own_greenlet_catches_inside_the_hook_is_refused_by_its_throw() {
    assert_eq!(
        kill_caught_inside_the_hook(greenlet::SwitchKind::Throw).as_deref(),
        Ok("Ok(\"v finished\") v saw Some(Err(KillRefused)), g alive true, t reached false")
    );
}

/// Runs the scene above, `g` leaving by a transfer of `kind`.
fn kill_caught_inside_the_hook(kind: greenlet::SwitchKind) -> Result<String, String> {
    hang_guard::guard(60, move || {
        let g_slot: Rc<RefCell<Option<Greenlet>>> = Rc::new(RefCell::new(None));
        let v_saw = Rc::new(RefCell::new(None));
        let (slot, saw) = (g_slot.clone(), v_saw.clone());
        let v = Greenlet::new(move |()| {
            let main = Greenlet::main();
            let caught = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
            assert!(caught.is_err(), "v is killed");
            let g = slot.borrow().clone().expect("g is set");
            *saw.borrow_mut() = Some(g.try_kill());
            "v finished" // to main, its parent: g's kill of v was abandoned
        });
        v.switch::<(), ()>(()).unwrap();
        let reached = Rc::new(Cell::new(false));
        let r = reached.clone();
        let t = Greenlet::new(move |()| r.set(true));
        let g = Greenlet::new(move |()| {
            let _ = match kind {
                greenlet::SwitchKind::Throw => t.throw::<_, ()>("into t"),
                _ => t.switch::<(), ()>(()),
            };
            "g finished"
        });
        *g_slot.borrow_mut() = Some(g.clone());
        let victim = RefCell::new(Some(v.clone()));
        greenlet::set_switch_hook(Some(Box::new(move |e| {
            if e.kind == kind && e.origin.name().is_none() {
                if let Some(v) = victim.borrow_mut().take() {
                    let _ = panic::catch_unwind(AssertUnwindSafe(|| v.try_kill()));
                }
            }
        })));
        let first = g.switch::<(), &str>(());
        greenlet::set_switch_hook(None);
        let saw = *v_saw.borrow();
        format!(
            "{first:?} v saw {saw:?}, g alive {}, t reached {}",
            g.is_active(),
            reached.get()
        )
    })
}
