//! Every value passed through a switch, and every object held on a
//! greenlet's stack, is dropped exactly once, on every path: normal return,
//! panic, kill, drop of the last handle, thread exit, type mismatch, throw.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use greenlet::{Greenlet, SwitchError};

/// Counts drops in a shared counter; each value carries a payload so that
/// it is not word-sized and crosses by pointer as well.
struct Counted {
    drops: Rc<Cell<usize>>,
    _payload: [u64; 4],
}

fn counted(drops: &Rc<Cell<usize>>) -> Counted {
    Counted {
        drops: drops.clone(),
        _payload: [1, 2, 3, 4],
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
    }
}

/// A word-sized value with a destructor (crosses in a register).
struct Small(Rc<Cell<usize>>);

impl Drop for Small {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

fn main_switch<T: 'static, R: 'static>(v: T) -> Result<R, SwitchError> {
    Greenlet::main().switch(v)
}

#[test]
fn values_moved_through_switches_are_dropped_once_by_their_final_owner() {
    let drops = Rc::new(Cell::new(0));
    let g = Greenlet::new(|first: Counted| {
        // Echo it back, then take another and return it.
        let second: Counted = main_switch(first).unwrap();
        second
    });
    let back: Counted = g.switch(counted(&drops)).unwrap();
    assert_eq!(drops.get(), 0);
    drop(back);
    assert_eq!(drops.get(), 1);
    let returned: Counted = g.switch(counted(&drops)).unwrap();
    assert_eq!(drops.get(), 1);
    drop(returned);
    assert_eq!(drops.get(), 2);
}

#[test]
fn small_values_with_destructors_cross_in_registers_without_double_drops() {
    let drops = Rc::new(Cell::new(0));
    let g = Greenlet::new(|s: Small| -> Small {
        let s2: Small = main_switch(s).unwrap();
        s2
    });
    let s: Small = g.switch(Small(drops.clone())).unwrap();
    let s: Small = g.switch(s).unwrap();
    assert_eq!(drops.get(), 0);
    drop(s);
    assert_eq!(drops.get(), 1);
}

#[test]
fn normal_return_drops_stack_objects_once() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |()| {
        let _a = counted(&d);
        let _b = counted(&d);
        5u8
    });
    assert_eq!(g.switch::<(), u8>(()).unwrap(), 5);
    assert_eq!(drops.get(), 2);
}

#[test]
fn panic_drops_stack_objects_and_the_argument_once() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |arg: Counted| -> () {
        let _a = counted(&d);
        let _arg = arg;
        panic!("boom");
    });
    assert!(g.switch::<Counted, ()>(counted(&drops)).is_err());
    assert_eq!(drops.get(), 2);
}

#[test]
fn kill_drops_stack_objects_once() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |arg: Counted| {
        let _a = counted(&d);
        let _arg = arg;
        let _: () = main_switch(()).unwrap();
    });
    g.switch::<Counted, ()>(counted(&drops)).unwrap();
    g.kill();
    g.kill();
    drop(g);
    assert_eq!(drops.get(), 2);
}

#[test]
fn dropping_the_last_handle_drops_stack_objects_once() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |()| {
        let _a = counted(&d);
        let _: () = main_switch(()).unwrap();
    });
    g.switch::<(), ()>(()).unwrap();
    let g2 = g.clone();
    drop(g);
    assert_eq!(drops.get(), 0, "another handle remains");
    drop(g2);
    assert_eq!(drops.get(), 1);
}

#[test]
fn unstarted_closures_are_dropped_once_on_drop_kill_and_throw() {
    let drops = Rc::new(Cell::new(0));
    for how in 0..3 {
        let c = counted(&drops);
        let g = Greenlet::new(move |()| drop(c));
        match how {
            0 => drop(g),
            1 => g.kill(),
            _ => assert!(g.throw::<&str, ()>("no").is_err()),
        }
    }
    assert_eq!(drops.get(), 3);
}

#[test]
fn type_mismatches_drop_the_value_once() {
    let drops = Rc::new(Cell::new(0));
    // To a suspended greenlet expecting something else.
    let g = Greenlet::new(|()| -> String {
        match main_switch::<(), u32>(()) {
            Err(SwitchError::TypeMismatch { found, .. }) => found.to_string(),
            other => format!("{other:?}"),
        }
    });
    g.switch::<(), ()>(()).unwrap();
    let found: String = g.switch(counted(&drops)).unwrap();
    assert!(found.ends_with("Counted"));
    assert_eq!(drops.get(), 1);
    // To an unstarted greenlet with another argument type.
    let h = Greenlet::new(|x: u32| x);
    assert!(h.switch::<Counted, u32>(counted(&drops)).is_err());
    assert_eq!(drops.get(), 2);
    // To oneself.
    assert!(Greenlet::current()
        .switch::<Counted, u32>(counted(&drops))
        .is_err());
    assert_eq!(drops.get(), 3);
    // A small value to a mismatched receiver.
    let k = Greenlet::new(|()| main_switch::<(), String>(()).is_err());
    k.switch::<(), ()>(()).unwrap();
    assert!(k.switch::<Small, bool>(Small(drops.clone())).unwrap());
    assert_eq!(drops.get(), 4);
}

#[test]
fn a_return_value_nobody_accepts_is_dropped_once() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |()| counted(&d));
    let err = g.switch::<(), String>(()).unwrap_err();
    assert!(matches!(err, SwitchError::TypeMismatch { .. }));
    assert_eq!(drops.get(), 1);
    assert_eq!(greenlet::stats().stacks_in_use, 0, "its stack was recycled");
}

#[test]
fn throw_payloads_are_dropped_once() {
    let drops = Rc::new(Cell::new(0));
    let g = Greenlet::new(|()| {
        let r = main_switch::<(), ()>(());
        assert!(matches!(r, Err(SwitchError::Thrown(_))));
    });
    g.switch::<(), ()>(()).unwrap();
    struct SendCounted(Arc<AtomicUsize>);
    impl Drop for SendCounted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let n = Arc::new(AtomicUsize::new(0));
    g.throw::<SendCounted, ()>(SendCounted(n.clone())).unwrap();
    assert_eq!(n.load(Ordering::SeqCst), 1);
    let err = Greenlet::current()
        .throw::<SendCounted, ()>(SendCounted(n.clone()))
        .unwrap_err();
    assert_eq!(n.load(Ordering::SeqCst), 1);
    drop(err);
    assert_eq!(n.load(Ordering::SeqCst), 2);
    drop(drops);
}

#[test]
fn a_value_in_flight_to_a_greenlet_killed_later_is_not_lost() {
    // The receiver takes the value before anything else runs, so a kill
    // afterwards drops only what is on its stack.
    let drops = Rc::new(Cell::new(0));
    let g = Greenlet::new(|()| {
        let held: Counted = main_switch(()).unwrap();
        let _: () = main_switch(()).unwrap();
        drop(held);
    });
    g.switch::<(), ()>(()).unwrap();
    g.switch::<Counted, ()>(counted(&drops)).unwrap();
    assert_eq!(drops.get(), 0);
    g.kill();
    assert_eq!(drops.get(), 1);
}

/// A thread's exit leaves its started greenlets suspended (their frames may
/// borrow thread-locals already destroyed, see the crate's **Threads**
/// rule): what a suspended frame owns is leaked, never dropped, while an
/// unstarted greenlet's closure is still dropped, once.
#[test]
fn thread_exit_leaks_a_started_greenlets_values_and_drops_an_unstarted_closure_once() {
    let n = Arc::new(AtomicUsize::new(0));
    struct SendCounted(Arc<AtomicUsize>);
    impl Drop for SendCounted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let m = n.clone();
    std::thread::spawn(move || {
        let a = SendCounted(m.clone());
        let suspended = Greenlet::new(move |arg: SendCounted| {
            let _a = a;
            let _arg = arg;
            let _: () = main_switch(()).unwrap();
        });
        suspended
            .switch::<SendCounted, ()>(SendCounted(m.clone()))
            .unwrap();
        let b = SendCounted(m.clone());
        let unstarted = Greenlet::new(move |()| drop(b));
        std::mem::forget(suspended.clone());
        std::mem::forget(unstarted);
        // `suspended` is still held here too when the thread ends.
        std::mem::forget(suspended);
    })
    .join()
    .unwrap();
    // `b` (the unstarted closure's) only: `a` and `arg` stay on the
    // suspended greenlet's leaked stack.
    assert_eq!(n.load(Ordering::SeqCst), 1);
}

/// Creates and finishes a few greenlets that write over 16 KiB of their
/// stacks, so that the stack pool hands out (and overwrites) the stacks it
/// holds.
fn churn_stacks() {
    for i in 0..4u64 {
        let g = Greenlet::new(|x: u64| {
            let scribble = std::hint::black_box([0xa5u8; 16 * 1024]);
            x + u64::from(scribble[x as usize] & 1)
        });
        assert_eq!(g.switch::<u64, u64>(i).unwrap(), i + 1);
    }
}

/// A return value that lives on the finished greenlet's stack (it does
/// not fit in a word), dropped by a receiver that expected another type:
/// its destructor runs greenlets, so stacks are reused meanwhile, and it
/// still sees its value intact (the finished stack is recycled after the
/// drop, not under it).
#[test]
fn a_large_mismatched_return_value_is_dropped_intact_while_stacks_are_reused() {
    struct Big {
        data: [u64; 32],
        seen: Rc<Cell<u64>>,
    }
    impl Drop for Big {
        fn drop(&mut self) {
            churn_stacks();
            self.seen.set(self.data.iter().sum());
        }
    }
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    let g = Greenlet::new(move |()| Big {
        data: [7; 32],
        seen: s,
    });
    let r = g.switch::<(), u32>(());
    assert!(matches!(r, Err(SwitchError::TypeMismatch { .. })), "{r:?}");
    assert_eq!(seen.get(), 7 * 32);
    assert!(g.is_dead());
}

/// The same with a value that travels in the word itself (the finished
/// greenlet's stack may then be recycled at any time after the switch).
#[test]
fn a_small_mismatched_return_value_is_dropped_once_while_stacks_are_reused() {
    struct Small(Rc<Cell<u64>>);
    impl Drop for Small {
        fn drop(&mut self) {
            churn_stacks();
            self.0.set(self.0.get() + 1);
        }
    }
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let g = Greenlet::new(move |()| Small(d));
    let r = g.switch::<(), u32>(());
    assert!(matches!(r, Err(SwitchError::TypeMismatch { .. })), "{r:?}");
    assert_eq!(drops.get(), 1);
    drop(g);
    churn_stacks();
    assert_eq!(drops.get(), 1);
}

/// A name goes with its greenlet's record, once, and a reused record slot
/// carries nothing over: the freed slots are reused (most recently freed
/// first) by greenlets with no name, a parent of their own and a fresh
/// state, whether the named ones finished, were killed or never ran.
#[test]
fn a_name_is_dropped_with_its_record_and_a_reused_slot_carries_nothing_over() {
    for round in 0..3 {
        let named: Vec<Greenlet> = (0..8)
            .map(|i| {
                let g = Greenlet::builder()
                    .name(format!("r{round}-{i}"))
                    .build(|()| Greenlet::main().switch::<(), ()>(()))
                    .unwrap();
                match i % 3 {
                    0 => {}                               // never runs
                    1 => g.switch::<(), ()>(()).unwrap(), // suspended, killed by the drop
                    _ => {
                        g.switch::<(), ()>(()).unwrap();
                        g.switch::<(), Result<(), SwitchError>>(())
                            .unwrap()
                            .unwrap(); // finished
                    }
                }
                g
            })
            .collect();
        let held: Vec<Rc<str>> = named.iter().map(|g| g.name().unwrap()).collect();
        for h in &held {
            assert_eq!(Rc::strong_count(h), 2, "the record's and this one");
        }
        drop(named);
        for h in &held {
            assert_eq!(Rc::strong_count(h), 1, "the record let its name go");
        }
        let plain: Vec<Greenlet> = (0..8).map(|_| Greenlet::new(|x: u32| x + 1)).collect();
        for g in &plain {
            assert_eq!(g.name(), None);
            assert!(!g.is_started() && !g.is_dead());
            assert!(g.parent().unwrap().is_main());
        }
        for (i, g) in plain.iter().enumerate() {
            assert_eq!(g.switch::<u32, u32>(i as u32).unwrap(), i as u32 + 1);
        }
    }
}

/// A mismatched value that does not fit in a word lives in its sender's
/// suspended frame when it arrives: the receiver moves it into its own
/// frame before its destructor runs, so a destructor that switches away
/// (here to main, whose sending frame is then popped and written over)
/// still finds its bytes when it resumes.
#[test]
fn a_mismatched_value_whose_destructor_switches_is_dropped_intact() {
    let seen = Rc::new(Cell::new(0));
    let g = Greenlet::new(|()| {
        let r: Result<u32, SwitchError> = main_switch(());
        matches!(r, Err(SwitchError::TypeMismatch { .. }))
    });
    g.switch::<(), ()>(()).unwrap();
    // The receiver's destructor switches back here: the send returns.
    assert!(send_switching_away(&g, 5, &seen).is_ok());
    overwrite_the_stack_below();
    assert!(g.switch::<(), bool>(()).unwrap());
    assert_eq!(seen.get(), 5 * 16);
}

/// The same when the sender dies while the destructor is suspended: its
/// stack is recycled and another greenlet runs on it.
#[test]
fn a_mismatched_value_outlives_its_senders_stack() {
    let seen = Rc::new(Cell::new(0));
    let receiver = Greenlet::new(|()| {
        let _: Result<u32, SwitchError> = main_switch(());
    });
    receiver.switch::<(), ()>(()).unwrap();
    let (to, s) = (receiver.clone(), seen.clone());
    let sender = Greenlet::new(move |()| {
        let _: Result<(), SwitchError> = to.switch(SwitchesAway::new(9, &s));
    });
    let _: Result<(), SwitchError> = sender.switch(());
    drop(sender); // killed: its stack is unwound and pooled
    churn_stacks();
    let _: Result<(), SwitchError> = receiver.switch(());
    assert_eq!(seen.get(), 9 * 16);
    assert!(receiver.is_dead());
}

/// A mismatched message holding its sender's last handle: dropping that
/// field collects the sender (nobody can switch to it any more), whose
/// stack is unmapped at once when nothing is pooled, before the next
/// field is dropped. Moved out first, the rest of the message is intact.
#[test]
fn a_mismatched_message_holding_its_senders_last_handle_is_dropped_intact() {
    struct Tail([u64; 16], Rc<Cell<u64>>);
    impl Drop for Tail {
        fn drop(&mut self) {
            self.1.set(self.0.iter().sum());
        }
    }
    /// Fields drop in declaration order: the handle first.
    struct Message {
        _reply_to: Greenlet,
        _tail: Tail,
    }
    let old = greenlet::set_stack_policy(greenlet::StackPolicy::new().max_pooled(0));
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    let g = Greenlet::new(move |()| {
        let me: Greenlet = Greenlet::current().into();
        let _: Result<(), SwitchError> = main_switch(Greenlet::current());
        let _: Result<(), SwitchError> = main_switch(Message {
            _reply_to: me,
            _tail: Tail([3; 16], s),
        });
    });
    let current: greenlet::CurrentGreenlet = g.switch(()).unwrap();
    drop(g); // the message's handle is now the only one counted
    let r: Result<u32, SwitchError> = current.switch(());
    assert!(matches!(r, Err(SwitchError::TypeMismatch { .. })), "{r:?}");
    assert_eq!(seen.get(), 3 * 16);
    greenlet::set_stack_policy(old);
}

/// A stray value switched into a greenlet blocked in a hub call is a
/// spurious wake-up there, and is dropped the same way: out of its
/// sender's frame. The blocked `get` goes on waiting.
#[test]
fn a_stray_value_into_a_blocked_greenlet_is_dropped_intact() {
    let seen = Rc::new(Cell::new(0));
    let q = greenlet::hub::Queue::<u8>::new();
    let getter = {
        let q = q.clone();
        greenlet::hub::spawn(move || q.get())
    };
    greenlet::hub::yield_now(); // it blocks in `get`
    let _ = send_switching_away(getter.greenlet(), 4, &seen);
    overwrite_the_stack_below();
    let _: Result<(), SwitchError> = getter.greenlet().switch(());
    assert_eq!(seen.get(), 4 * 16);
    q.put(7);
    assert_eq!(getter.join().unwrap(), 7);
}

/// Does not fit in a word; its destructor switches to main, then sums its
/// data into `seen` (a value written over while it was away shows).
struct SwitchesAway {
    data: [u64; 16],
    seen: Rc<Cell<u64>>,
}

impl SwitchesAway {
    fn new(fill: u64, seen: &Rc<Cell<u64>>) -> SwitchesAway {
        SwitchesAway {
            data: [fill; 16],
            seen: seen.clone(),
        }
    }
}

impl Drop for SwitchesAway {
    fn drop(&mut self) {
        let _: Result<(), SwitchError> = main_switch(());
        self.seen.set(self.data.iter().sum());
    }
}

/// Switches to `g` with a [`SwitchesAway`] from a frame of its own, which
/// is gone once this returns.
#[inline(never)]
fn send_switching_away(g: &Greenlet, fill: u64, seen: &Rc<Cell<u64>>) -> Result<(), SwitchError> {
    g.switch(SwitchesAway::new(fill, seen))
}

/// Writes over the stack below the caller's frame, where a callee's
/// frame (now returned) was.
#[inline(never)]
fn overwrite_the_stack_below() {
    let mut scratch = [0u64; 1024];
    for (i, x) in scratch.iter_mut().enumerate() {
        *x = std::hint::black_box(i as u64);
    }
    std::hint::black_box(&scratch);
}

/// Counts its drops, then panics (`Send`, for a pool job's result).
struct PanicsAsItDrops(Arc<AtomicUsize>);

impl Drop for PanicsAsItDrops {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("a destructor panics");
    }
}

/// What the hub holds for the program across a blocking call of its own
/// (a scheduled function waiting for its time, on_finish callbacks not
/// run yet, a pool job's result not taken) is dropped once, outside the
/// kill's unwinding that ends the wait: a destructor's panic is reported
/// rather than aborting the process, and the thread goes on.
#[test]
fn values_the_hub_holds_across_its_waits_drop_outside_a_kill() {
    use greenlet::hub::{self, JoinError};
    use std::time::Duration;
    const HOUR: Duration = Duration::from_secs(3600);
    let drops = Arc::new(AtomicUsize::new(0));

    // A scheduled function, cancelled while its greenlet sleeps.
    let held = PanicsAsItDrops(drops.clone());
    let scheduled = hub::spawn_after(HOUR, move || drop(held));
    hub::yield_now(); // it sleeps until its time
    assert!(scheduled.cancel());
    assert!(matches!(scheduled.join(), Err(JoinError::Killed)));
    assert_eq!(drops.load(Ordering::SeqCst), 1);

    // The callbacks after one that blocks, when the run_main end kills it.
    let held = PanicsAsItDrops(drops.clone());
    let first_ran = Rc::new(Cell::new(false));
    let ran = first_ran.clone();
    hub::run_main(move || {
        let h = hub::spawn(|| ());
        let sets = ran.clone();
        h.on_finish(move || {
            sets.set(true);
            hub::sleep(HOUR);
        });
        h.on_finish(move || drop(held));
        while !ran.get() {
            hub::yield_now(); // h ends; its callbacks' greenlet blocks in the first
        }
    });
    assert!(first_ran.get());
    assert_eq!(drops.load(Ordering::SeqCst), 2);

    // A pool job's result, in when its waiting greenlet is killed.
    let pool = hub::ThreadPool::new(1, HOUR);
    let (d, (open, gate)) = (drops.clone(), std::sync::mpsc::channel::<()>());
    let job = pool.spawn(move || {
        gate.recv().unwrap();
        PanicsAsItDrops(d)
    });
    hub::yield_now(); // its greenlet waits for the result
    open.send(()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let _after = pool.spawn(move || tx.send(()).unwrap()); // once the first is done
    rx.recv().unwrap(); // the first job's result is in its channel
    job.kill();
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    assert_eq!(hub::spawn(|| 4).join().unwrap(), 4, "the thread goes on");
}
