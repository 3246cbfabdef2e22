//! The ends of a thread's greenlets. `hub::run_main` kills what its
//! function left, while every thread-local is still alive: that must never
//! abort the process: each greenlet's unwinding is isolated, and what goes
//! wrong in one is reported on stderr naming it. A thread's exit kills no
//! started greenlet: it leaves them suspended, their destructors not run
//! (their frames may borrow thread-locals the exit destroyed first; see
//! the crate's **Threads** rule), discards the unstarted ones and kills
//! the hub greenlet; the destructors it runs (unstarted greenlets'
//! functions, the switch hook, main's greenlet-locals) must not abort it
//! either. Each case runs in a child process (this test binary, re-run
//! with an environment variable) whose whole exit is observed.

#[path = "support/child.rs"]
mod child;

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use greenlet::{hub, Greenlet};

const CHILD: &str = "GREENLET_TEARDOWN_CHILD";

thread_local! {
    /// A thread-local with a destructor, first used after the greenlet
    /// runtime: the thread's exit destroys it before the runtime.
    static LOG: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

/// Touches `LOG` when dropped.
struct UsesThreadLocal;

impl Drop for UsesThreadLocal {
    fn drop(&mut self) {
        match LOG.try_with(|log| log.borrow_mut().push("dropped")) {
            Ok(()) => println!("guard: thread-local alive"),
            Err(_) => println!("guard: thread-local gone"),
        }
    }
}

/// A greenlet that answers its kill with a new panic.
fn leave_a_greenlet_that_panics_when_killed() {
    let g = Greenlet::builder()
        .name("stubborn")
        .build(|()| {
            let main = Greenlet::main();
            let caught = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
            assert!(caught.is_err());
            panic!("a new panic instead of dying");
        })
        .unwrap();
    g.switch::<(), ()>(()).unwrap();
    std::mem::forget(g); // alive when `run_main` ends
}

/// A greenlet whose stack holds a guard that uses a thread-local.
fn leave_a_greenlet_with_a_thread_local_guard() {
    let g = Greenlet::builder()
        .name("holder")
        .build(|()| {
            let _guard = UsesThreadLocal;
            let _: () = Greenlet::main().switch(()).unwrap();
        })
        .unwrap();
    g.switch::<(), ()>(()).unwrap();
    LOG.with(|log| log.borrow_mut().push("first use, after the runtime"));
    std::mem::forget(g);
}

/// Prints the current greenlet's id when dropped: a switch hook's captured
/// state that uses the runtime in its destructor.
struct NamesCurrent;

impl Drop for NamesCurrent {
    fn drop(&mut self) {
        println!(
            "hook state dropped on greenlet {}",
            Greenlet::current().id()
        );
    }
}

/// A greenlet left suspended, and a switch hook left set, whose captured
/// state uses the runtime when dropped, or that panics on the teardown's
/// kill.
fn leave_a_hook(panics: bool) {
    let g = Greenlet::builder()
        .name("sleeper")
        .build(|()| {
            let _: () = Greenlet::main().switch(()).unwrap();
        })
        .unwrap();
    g.switch::<(), ()>(()).unwrap();
    std::mem::forget(g);
    let state = NamesCurrent;
    greenlet::set_switch_hook(Some(Box::new(move |e| {
        let _ = &state;
        if panics && e.kind == greenlet::SwitchKind::Kill {
            panic!("hook boom");
        }
    })));
}

greenlet::greenlet_local! {
    static SIBLING: std::cell::Cell<u32> = std::cell::Cell::new(0);
    static READER: std::cell::Cell<Option<ReadsSibling>> = std::cell::Cell::new(None);
}

/// Reads `SIBLING` when dropped.
struct ReadsSibling;

impl Drop for ReadsSibling {
    fn drop(&mut self) {
        println!("reader dropped, sibling {}", SIBLING.with(|s| s.get()));
    }
}

/// A greenlet with greenlet-locals that refuses every kill (here its
/// handle's drop): it stays suspended, left so by the thread's exit, and
/// its locals stay with its leaked stack.
fn leave_a_refusing_greenlet_with_locals() {
    let g = Greenlet::builder()
        .name("refuser")
        .build(|()| {
            SIBLING.with(|s| s.set(42));
            READER.with(|r| r.set(Some(ReadsSibling)));
            loop {
                let main = Greenlet::main();
                let _ = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
            }
        })
        .unwrap();
    g.switch::<(), ()>(()).unwrap();
    drop(g);
}

/// A panic payload whose destructor panics too.
struct PayloadPanickingOnDrop;

impl Drop for PayloadPanickingOnDrop {
    fn drop(&mut self) {
        panic!("payload drop");
    }
}

/// Two greenlets left suspended: one answers its kill (when `run_main` ends) with
/// a panic whose payload panics when dropped; the other must still be
/// unwound.
fn leave_a_panic_whose_payload_panics_when_dropped() {
    let g = Greenlet::builder()
        .name("thrower")
        .build(|()| {
            let main = Greenlet::main();
            let _ = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
            panic::panic_any(PayloadPanickingOnDrop);
        })
        .unwrap();
    g.switch::<(), ()>(()).unwrap();
    std::mem::forget(g);
    leave_a_greenlet_with_a_thread_local_guard();
}

/// A switch hook whose captured guard puts back, when dropped, the hook
/// that was set before it (a scoped hook).
fn scoped_hook(before: Option<greenlet::SwitchHook>) -> greenlet::SwitchHook {
    struct PutsBack(Option<greenlet::SwitchHook>);
    impl Drop for PutsBack {
        fn drop(&mut self) {
            println!(
                "scoped hook dropped on greenlet {}",
                Greenlet::current().id()
            );
            greenlet::set_switch_hook(self.0.take());
        }
    }
    let guard = PutsBack(before);
    Box::new(move |_| {
        let _ = &guard;
    })
}

/// Three scoped hooks nested, all left set at thread exit: dropping each
/// sets the one before it again.
fn leave_three_scoped_hooks() {
    for _ in 0..3 {
        let before = greenlet::set_switch_hook(None);
        greenlet::set_switch_hook(Some(scoped_hook(before)));
    }
    Greenlet::new(|()| ()).switch::<(), ()>(()).unwrap();
}

greenlet::greenlet_local! {
    static MAKES_A_GREENLET: std::cell::Cell<Option<MakesAGreenlet>> = std::cell::Cell::new(None);
    static PROBE: std::cell::Cell<Option<Probe>> = std::cell::Cell::new(None);
}

/// Prints whether the runtime still serves it when dropped.
struct Probe;

impl Drop for Probe {
    fn drop(&mut self) {
        println!("probe dropped on greenlet {}", Greenlet::current().id());
    }
}

/// Makes a greenlet when dropped, left suspended with a `Probe` local.
struct MakesAGreenlet;

impl Drop for MakesAGreenlet {
    fn drop(&mut self) {
        let g = Greenlet::new(|()| {
            PROBE.with(|p| p.set(Some(Probe)));
            let _: () = Greenlet::main().switch(()).unwrap();
        });
        g.switch::<(), ()>(()).unwrap();
        std::mem::forget(g);
    }
}

/// A hook that panics on every Panic event, and a victim that answers its
/// kill (when `run_main` ends) with a panic of its own.
fn leave_a_victim_panicking_past_a_panicking_hook() {
    greenlet::set_switch_hook(Some(Box::new(|e| {
        if e.kind == greenlet::SwitchKind::Panic {
            panic!("hook boom");
        }
    })));
    let victim = Greenlet::builder()
        .name("victim")
        .build(|()| {
            let main = Greenlet::main();
            let _ = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
            panic!("victim boom");
        })
        .unwrap();
    victim.switch::<(), ()>(()).unwrap();
    std::mem::forget(victim);
}

/// A zero-sized panic payload.
struct Stop;

/// A hook that panics once with a zero-sized payload (and is removed),
/// then a victim that answers its kill (when `run_main` ends) with a panic of the
/// same zero-sized type.
fn leave_a_victim_panicking_like_an_earlier_hook() {
    greenlet::set_switch_hook(Some(Box::new(|_| panic::panic_any(Stop))));
    let g = Greenlet::new(|()| ());
    assert!(panic::catch_unwind(AssertUnwindSafe(|| g.switch::<(), ()>(()))).is_err());
    let victim = Greenlet::builder()
        .name("victim")
        .build(|()| {
            let main = Greenlet::main();
            let _ = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
            panic::panic_any(Stop);
        })
        .unwrap();
    victim.switch::<(), ()>(()).unwrap();
    std::mem::forget(victim);
}

/// A hook that panics on kills of greenlet 'w', and a victim that, having
/// caught its kill (when `run_main` ends), kills 'w' (the hook's panic, caught),
/// then panics on its own.
fn leave_a_victim_panicking_after_catching_a_hook_panic() {
    greenlet::set_switch_hook(Some(Box::new(|e| {
        if e.kind == greenlet::SwitchKind::Kill && e.target.name().as_deref() == Some("w") {
            panic!("hook boom");
        }
    })));
    let victim = Greenlet::builder()
        .name("victim")
        .build(|()| {
            let main = Greenlet::main();
            let _ = panic::catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
            let w = Greenlet::builder().name("w").build(|()| ()).unwrap();
            assert!(panic::catch_unwind(AssertUnwindSafe(|| w.kill())).is_err());
            panic!("victim boom");
        })
        .unwrap();
    victim.switch::<(), ()>(()).unwrap();
    std::mem::forget(victim);
}

fn child_main(mode: &str) {
    let mode = mode.to_string();
    std::thread::spawn(move || match mode.as_str() {
        "panic" => hub::run_main(|| {
            leave_a_greenlet_that_panics_when_killed();
            let _other = hub::spawn(|| hub::sleep(Duration::from_secs(3600)));
            hub::yield_now();
        }),
        "thread-local" => leave_a_greenlet_with_a_thread_local_guard(),
        "hook" => leave_a_hook(false),
        "panicking hook" => hub::run_main(|| leave_a_hook(true)),
        "refusing locals" => leave_a_refusing_greenlet_with_locals(),
        "panicking payload" => hub::run_main(leave_a_panic_whose_payload_panics_when_dropped),
        "scoped hooks" => leave_three_scoped_hooks(),
        "late greenlet" => MAKES_A_GREENLET.with(|m| m.set(Some(MakesAGreenlet))),
        "main locals" => MAIN_VALUE.with(|v| v.set(3)),
        "victim past a hook" => hub::run_main(leave_a_victim_panicking_past_a_panicking_hook),
        "victim like a hook" => hub::run_main(leave_a_victim_panicking_like_an_earlier_hook),
        "victim after a hook" => {
            hub::run_main(leave_a_victim_panicking_after_catching_a_hook_panic)
        }
        "hub after the runtime" => {
            // The runtime's thread-local first, then a user's, then the
            // hub's: the hub's destructor runs first of the three.
            let _ = Greenlet::current();
            USES_THE_HUB.with(|_| ());
            // Started, left suspended by the exit: its guard never runs.
            let conn = hub::spawn(|| {
                let _cleanup = SpawnsAsItDrops("started");
                hub::sleep(Duration::from_secs(3600));
            });
            hub::yield_now();
            drop(conn);
            // Never run: the teardown drops its function, and the guard.
            let cleanup = SpawnsAsItDrops("unstarted");
            drop(hub::spawn(move || {
                let _cleanup = cleanup;
            }));
        }
        "borrowed thread-local" => leave_a_greenlet_inside_a_thread_locals_with(),
        "switch at exit" => switch_into_a_suspended_greenlet_from_a_destructor_at_exit(),
        "switch while unwinding at exit" => {
            switch_into_a_suspended_greenlet_while_unwinding_at_exit()
        }
        "run_main" => hub::run_main(|| {
            leave_a_greenlet_with_a_thread_local_guard();
            let conn = hub::spawn(|| {
                let _guard = UsesThreadLocal;
                hub::sleep(Duration::from_secs(3600));
            });
            hub::yield_now();
            assert!(!conn.is_finished());
        }),
        _ => unreachable!(),
    })
    .join()
    .unwrap();
    println!("thread exited");
}

thread_local! {
    /// First used after the greenlet runtime: the thread's exit destroys
    /// it, freeing its string, before the runtime's teardown.
    static BORROWED: String = String::from("still here");
}

/// Reads the string it borrows as it drops, and says whether it still
/// reads what was there.
struct ReadsBorrowed<'a>(&'a str);

impl Drop for ReadsBorrowed<'_> {
    fn drop(&mut self) {
        println!("borrow guard ran, matched: {}", self.0 == "still here");
    }
}

/// A greenlet suspended inside `BORROWED.with`, holding a guard over the
/// borrowed string, its handle forgotten: the thread's exit must leave it
/// suspended, as unwinding it would read the freed string.
fn leave_a_greenlet_inside_a_thread_locals_with() {
    let _ = Greenlet::current(); // the runtime first, `BORROWED` after it
    let main = Greenlet::main();
    let g = Greenlet::new(move |()| {
        BORROWED.with(|s| {
            let _guard = ReadsBorrowed(s);
            let _: () = main.switch(()).unwrap();
        });
    });
    g.switch::<(), ()>(()).unwrap();
    assert!(g.is_active());
    std::mem::forget(g);
}

/// A destructor that the thread's exit runs (that of an unstarted
/// greenlet's function, dropped unrun) switches into a started greenlet
/// left suspended: the switch panics, the panic is reported, and the
/// thread and process go on.
fn switch_into_a_suspended_greenlet_from_a_destructor_at_exit() {
    let suspended = Greenlet::builder()
        .name("suspended")
        .build(|()| {
            let _: () = Greenlet::main().switch(()).unwrap();
            println!("the suspended greenlet resumed");
        })
        .unwrap();
    suspended.switch::<(), ()>(()).unwrap();
    struct SwitchesAsItDrops(Greenlet);
    impl Drop for SwitchesAsItDrops {
        fn drop(&mut self) {
            println!("unrun function dropped");
            let r = self.0.switch::<(), ()>(());
            println!("the switch returned: {r:?}");
        }
    }
    let switches = SwitchesAsItDrops(suspended);
    let unstarted = Greenlet::new(move |()| {
        let _ = &switches;
        println!("the unstarted greenlet ran");
    });
    std::mem::forget(unstarted);
}

/// The same switch from a destructor that a panic runs: an unstarted
/// greenlet's function whose first capture panics as it drops, its second
/// switching then. A panic there would be a panic while unwinding, which
/// aborts the process; the switch gets `Unwinding` instead.
fn switch_into_a_suspended_greenlet_while_unwinding_at_exit() {
    let suspended = Greenlet::new(|()| {
        let _: () = Greenlet::main().switch(()).unwrap();
        println!("the suspended greenlet resumed");
    });
    suspended.switch::<(), ()>(()).unwrap();
    struct PanicsAsItDrops;
    impl Drop for PanicsAsItDrops {
        fn drop(&mut self) {
            panic!("a destructor's panic");
        }
    }
    struct SwitchesAsItDrops(Greenlet);
    impl Drop for SwitchesAsItDrops {
        fn drop(&mut self) {
            let r = self.0.switch::<(), ()>(());
            println!("the switch returned: {r:?}");
        }
    }
    let captured = (PanicsAsItDrops, SwitchesAsItDrops(suspended));
    let unstarted = Greenlet::new(move |()| {
        let _ = &captured;
    });
    std::mem::forget(unstarted);
}

/// Spawns a cleanup greenlet as it drops; says so, naming whose guard it
/// is.
struct SpawnsAsItDrops(&'static str);

impl Drop for SpawnsAsItDrops {
    fn drop(&mut self) {
        let cleanup = hub::spawn(|| ());
        drop(cleanup);
        println!("cleanup spawned by the {} greenlet's guard", self.0);
    }
}

/// A thread-local whose destructor uses the hub.
struct UsesTheHub;

impl Drop for UsesTheHub {
    fn drop(&mut self) {
        let joined = hub::spawn(|| 5).join().unwrap();
        println!("thread-local's destructor joined {joined}");
    }
}

thread_local! {
    static USES_THE_HUB: UsesTheHub = const { UsesTheHub };
}

/// Whichever of the runtime's and the hub's thread-locals the thread
/// registered first, the hub outlives the teardown: a destructor the
/// teardown runs (an unstarted greenlet's function, dropped unrun), and a
/// thread-local destructor that runs before the teardown, may still use
/// it (the hub's own went first, here). The started greenlet is left
/// suspended, its guard never run.
#[test]
fn the_hub_serves_the_teardown_whatever_order_the_thread_locals_have() {
    let (stdout, _) = run("hub after the runtime");
    assert!(stdout.contains("thread exited"), "{stdout}");
    assert!(
        stdout.contains("cleanup spawned by the unstarted greenlet's guard"),
        "{stdout}"
    );
    assert!(!stdout.contains("the started greenlet's guard"), "{stdout}");
    assert!(
        stdout.contains("thread-local's destructor joined 5"),
        "{stdout}"
    );
}

#[test]
fn teardown_child() {
    // Only does something when re-run by the tests below.
    if let Ok(mode) = std::env::var(CHILD) {
        child_main(&mode);
    }
}

fn run(mode: &str) -> (String, String) {
    let out = child::run("teardown_child", CHILD, mode);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "child failed ({:?})\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    // The teardown ends well within its rounds in every case here.
    assert!(!stderr.contains("rounds of teardown"), "{stderr}");
    (stdout, stderr)
}

greenlet::greenlet_local! {
    static MAIN_VALUE: std::cell::Cell<u32> = std::cell::Cell::new(0);
}

#[test]
fn main_greenlet_locals_are_dropped_in_one_round_without_a_report() {
    // Dropped values leave their slots marked; the teardown once took
    // those for values still there, went all 16 rounds, and reported
    // giving up.
    let (stdout, stderr) = run("main locals");
    assert!(stdout.contains("thread exited"), "{stdout}");
    assert!(!stderr.contains("greenlet:"), "{stderr}");
}

/// Killed when `hub::run_main` ends (a thread's exit kills no started
/// greenlet), a greenlet answering its kill with a panic is reported, and
/// the other kills go on.
#[test]
fn a_greenlet_answering_its_kill_with_a_panic_is_reported_and_run_mains_kills_go_on() {
    let (stdout, stderr) = run("panic");
    assert!(stdout.contains("thread exited"), "{stdout}");
    let report = stderr
        .lines()
        .find(|l| l.contains("greenlet 'stubborn'") && l.contains("when hub::run_main ended"))
        .unwrap_or_else(|| panic!("no report in: {stderr}"));
    assert!(report.contains("a new panic instead of dying"), "{report}");
}

/// A greenlet whose stack holds a guard using a thread-local first used
/// after the runtime (destroyed before the teardown): the thread's exit
/// leaves it suspended, the guard never run (it ran, found the
/// thread-local gone, when the exit unwound greenlets), and the thread
/// exits normally.
#[test]
fn a_greenlet_whose_guard_uses_a_destroyed_thread_local_is_left_suspended_at_thread_exit() {
    let (stdout, _) = run("thread-local");
    assert!(stdout.contains("thread exited"), "{stdout}");
    assert!(!stdout.contains("guard:"), "{stdout}");
}

#[test]
fn run_main_unwinds_what_it_left_while_thread_locals_are_alive() {
    let (stdout, stderr) = run("run_main");
    assert!(stdout.contains("thread exited"), "{stdout}");
    assert_eq!(
        stdout.matches("guard: thread-local alive").count(),
        2,
        "{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("guard: thread-local gone"), "{stdout}");
}

/// The switch hook is dropped during the teardown, while the runtime can
/// still serve its destructor (it was dropped with the runtime, and a
/// destructor using greenlets aborted the process).
#[test]
fn a_switch_hook_left_set_is_dropped_while_the_runtime_lives() {
    let (stdout, _) = run("hook");
    assert!(
        stdout.contains("hook state dropped on greenlet 0"),
        "{stdout}"
    );
    assert!(stdout.contains("thread exited"), "{stdout}");
}

/// A hook that panics on the kill of `hub::run_main`'s end is reported as
/// the hook's panic, not as the victim's.
#[test]
fn a_switch_hook_panicking_on_run_mains_kills_is_reported_as_the_hook() {
    let (stdout, stderr) = run("panicking hook");
    assert!(stdout.contains("thread exited"), "{stdout}");
    assert!(
        stderr.contains(
            "when hub::run_main ended, the switch hook panicked on the kill of greenlet \
             'sleeper' (id 1) and was removed: hook boom"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked while its stack was unwound"),
        "{stderr}"
    );
}

/// A greenlet that refuses its kill stays suspended, and the thread's exit
/// leaves it so, its stack leaked, and its greenlet-locals with it: they
/// are not dropped on main, where they would read main's values.
#[test]
fn the_locals_of_a_greenlet_refusing_its_kill_are_leaked_at_thread_exit() {
    let (stdout, stderr) = run("refusing locals");
    assert!(stdout.contains("thread exited"), "{stdout}");
    assert!(
        stderr.contains("greenlet 'refuser' (id 1) caught the unwinding"),
        "{stderr}"
    );
    assert!(!stdout.contains("reader dropped"), "{stdout}");
}

/// A panic out of a greenlet's unwinding when `hub::run_main` ends is
/// reported, and its payload dropped where a panic of its destructor
/// cannot escape: the other greenlets are still unwound. (The payload's
/// panic aborted the process from the runtime's thread-local destructor,
/// when the thread's exit still unwound greenlets.)
#[test]
fn a_panic_payload_panicking_when_dropped_as_run_main_ends_does_not_abort() {
    let (stdout, stderr) = run("panicking payload");
    assert!(stdout.contains("thread exited"), "{stdout}");
    assert!(
        stdout.contains("guard: thread-local"),
        "the other greenlet was unwound: {stdout}"
    );
    assert!(
        stderr.contains("greenlet 'thrower' (id 1) panicked while its stack was unwound"),
        "{stderr}"
    );
}

/// Hooks whose destructors set hooks again are all dropped while the
/// runtime lives (two rounds were not enough: the third aborted the
/// process).
#[test]
fn hooks_setting_hooks_as_they_drop_at_thread_exit_do_not_abort() {
    let (stdout, _) = run("scoped hooks");
    assert_eq!(
        stdout.matches("scoped hook dropped on greenlet 0").count(),
        3,
        "{stdout}"
    );
    assert!(stdout.contains("thread exited"), "{stdout}");
}

/// A greenlet made and started by a destructor of main's greenlet-locals
/// at thread exit, suspended again, is left suspended as every started
/// greenlet: its locals go with its leaked stack, never dropped (not on
/// main either, where they would read main's values), and the teardown
/// ends without going round for it.
#[test]
fn a_greenlet_made_by_mains_locals_at_thread_exit_is_left_suspended() {
    let (stdout, stderr) = run("late greenlet");
    assert!(!stdout.contains("probe dropped"), "{stdout}\n{stderr}");
    assert!(stdout.contains("thread exited"), "{stdout}");
}

/// Runs `scenario`, whose `hub::run_main` ends with the victim left, and
/// checks that stderr reports `report`: a victim's panic, as the victim's.
fn assert_reported_as_the_victims(scenario: &str, report: &str) {
    let (stdout, stderr) = run(scenario);
    assert!(stdout.contains("thread exited"), "{stdout}");
    assert!(stderr.contains(report), "{stderr}");
}

/// A victim's own panic when `hub::run_main` ends is reported as its own,
/// after a hook panicked (and was reported) on its Panic event.
#[test]
fn a_victims_panic_after_a_hook_panic_is_reported_as_the_victims() {
    assert_reported_as_the_victims(
        "victim past a hook",
        "greenlet 'victim' (id 1) panicked while its stack was unwound: victim boom",
    );
}

/// The same when the hook's panic, long gone, had a payload that cannot be
/// told from the victim's by address and type (zero-sized, of the same
/// type): a hook's panic counts only during the kill it interrupts.
#[test]
fn a_victims_panic_like_an_earlier_hooks_is_reported_as_the_victims() {
    assert_reported_as_the_victims(
        "victim like a hook",
        "greenlet 'victim' (id 2) panicked while its stack was unwound",
    );
}

/// And when, during the kill, the hook's panic stopped another kill (the
/// victim's own, of another greenlet) and was caught there.
#[test]
fn a_victims_panic_after_a_caught_hook_panic_is_reported_as_the_victims() {
    assert_reported_as_the_victims(
        "victim after a hook",
        "greenlet 'victim' (id 1) panicked while its stack was unwound: victim boom",
    );
}

/// Spawns a worker whose guard spawns the next worker as it drops, up to
/// `cap` of them, counting them in `made`.
fn respawning_workers(made: &Arc<AtomicU32>, cap: u32) {
    struct Respawns(Arc<AtomicU32>, u32);
    impl Drop for Respawns {
        fn drop(&mut self) {
            if self.0.load(Ordering::SeqCst) < self.1 {
                spawn_worker(self.0.clone(), self.1);
            }
        }
    }
    fn spawn_worker(made: Arc<AtomicU32>, cap: u32) {
        made.fetch_add(1, Ordering::SeqCst);
        let guard = Respawns(made, cap);
        hub::spawn(move || {
            let _guard = guard;
            hub::sleep(Duration::from_secs(3600));
        });
    }
    spawn_worker(made.clone(), cap);
    hub::yield_now(); // it sleeps
}

/// A guard that respawns its worker as it drops would keep the kills of
/// `run_main`'s end, or of a thread's exit, going for ever: they stop
/// after their bounded rounds (reported), and the thread exits.
#[test]
fn kills_at_the_end_stop_when_destructors_keep_making_greenlets() {
    const CAP: u32 = 100_000;
    let made = Arc::new(AtomicU32::new(0));
    let m = made.clone();
    let after_run_main = std::thread::spawn(move || {
        respawning_workers(&m, CAP);
        hub::run_main(|| ());
        let after_run_main = m.load(Ordering::SeqCst);
        respawning_workers(&m, CAP);
        after_run_main
        // The thread exits with workers still being made.
    })
    .join()
    .unwrap();
    assert!(after_run_main < CAP / 2, "run_main's end stopped by itself");
    assert!(
        made.load(Ordering::SeqCst) < CAP,
        "the thread's exit stopped by itself"
    );
}

/// The soundness case of the crate's **Threads** rule: a greenlet
/// suspended inside `LocalKey::with` of a thread-local first used after
/// the runtime, a guard on its stack reading the borrowed value. That
/// thread-local is destroyed before the teardown; the teardown leaves the
/// greenlet suspended, so the guard never runs (it would read the freed
/// string), and the thread and process exit normally.
#[test]
fn a_greenlet_suspended_inside_a_thread_locals_with_is_left_suspended_at_thread_exit() {
    let (stdout, stderr) = run("borrowed thread-local");
    assert!(stdout.contains("thread exited"), "{stdout}\n{stderr}");
    assert!(!stdout.contains("borrow guard ran"), "{stdout}\n{stderr}");
}

/// A destructor that the thread's exit runs (an unstarted greenlet's
/// function, dropped unrun) switching into a started greenlet left
/// suspended panics, saying so; the panic is reported on stderr, the
/// greenlet is not resumed, and the thread and process go on.
/// The same switch made by a destructor that a panic runs gets
/// `Unwinding` (a panic there would abort the process).
#[test]
fn a_switch_into_a_suspended_greenlet_while_unwinding_at_thread_exit_gets_unwinding() {
    let (stdout, stderr) = run("switch while unwinding at exit");
    assert!(
        stdout.contains("the switch returned: Err(Unwinding)"),
        "{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("resumed"), "{stdout}\n{stderr}");
    assert!(stdout.contains("thread exited"), "{stdout}\n{stderr}");
    assert!(stderr.contains("a destructor's panic"), "{stderr}");
}

#[test]
fn a_switch_into_a_suspended_greenlet_at_thread_exit_panics_and_is_reported() {
    let (stdout, stderr) = run("switch at exit");
    assert!(
        stdout.contains("unrun function dropped"),
        "{stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains("the switch returned"),
        "{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("resumed"), "{stdout}\n{stderr}");
    assert!(!stdout.contains("the unstarted greenlet ran"), "{stdout}");
    assert!(stdout.contains("thread exited"), "{stdout}\n{stderr}");
    // Reported in the teardown's one line for the greenlet whose drop
    // panicked: the unstarted one, discarded on its own stack, named as
    // never having run.
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("greenlet: at thread exit")
                && l.contains("never ran; dropping its function panicked")
                && l.contains("a started greenlet cannot be resumed while its thread exits")),
        "{stderr}"
    );
}

/// Counts its drops, from any thread.
struct Dropped(Arc<AtomicU32>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// As it drops, spawns `n` clean-up greenlets that sleep, once (not a
/// respawning guard), each holding a `Dropped`.
struct FansOut(u32, Arc<AtomicU32>);

impl Drop for FansOut {
    fn drop(&mut self) {
        for _ in 0..self.0 {
            let d = Dropped(self.1.clone());
            let _ = hub::spawn(move || {
                let _d = d;
                hub::sleep(Duration::from_secs(3600));
            });
        }
    }
}

/// The kills at `run_main`'s end are bounded in number as well as in
/// passes (a hook or destructors making two greenlets per kill doubled
/// what was alive at every pass); the bound never stops a destructor that
/// makes a hundred greenlets once, as the first version of it did (16
/// kills per slot there was, 48 here).
#[test]
fn run_main_kills_the_greenlets_a_destructor_makes_once() {
    let after_run_main = std::thread::spawn(move || {
        let dropped = Arc::new(AtomicU32::new(0));
        let d = dropped.clone();
        hub::run_main(move || {
            let guard = FansOut(100, d);
            let _worker = hub::spawn(move || {
                let _guard = guard;
                hub::sleep(Duration::from_secs(3600));
            });
            hub::yield_now();
        });
        // (Not after the thread's exit, whose teardown would end the rest.)
        dropped.load(Ordering::SeqCst)
    })
    .join()
    .unwrap();
    assert_eq!(after_run_main, 100);
}

/// The same at thread exit: an unstarted greenlet's function makes a
/// hundred more unstarted greenlets as it is dropped; all their functions
/// are dropped too.
#[test]
fn thread_exit_discards_the_greenlets_a_destructor_makes_once() {
    struct MakesUnstarted(u32, Arc<AtomicU32>);
    impl Drop for MakesUnstarted {
        fn drop(&mut self) {
            for _ in 0..self.0 {
                let d = Dropped(self.1.clone());
                std::mem::forget(Greenlet::new(move |()| drop(d)));
            }
        }
    }
    let dropped = Arc::new(AtomicU32::new(0));
    let d = dropped.clone();
    std::thread::spawn(move || {
        let makes = MakesUnstarted(100, d);
        std::mem::forget(Greenlet::new(move |()| drop(makes)));
    })
    .join()
    .unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 100);
}
