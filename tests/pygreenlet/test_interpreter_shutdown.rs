//! The scenarios of Python greenlet's
//! `src/greenlet/tests/test_interpreter_shutdown.py` (greenlet 3.5.4.dev0,
//! commit 74b3c41), each test named after the one it ports.
//!
//! Mapping. Python's interpreter shutdown is a thread's exit here
//! (semantics row 15). Where Python's shutdown raises `GreenletExit` into
//! the greenlets still suspended, this crate differs: a thread's exit
//! leaves every started greenlet suspended, never resumed, its destructors
//! not run and its stack leaked (unstarted ones are discarded, their
//! functions dropped unrun, the hub greenlet is killed), then the switch
//! hook and main's greenlet-locals go. The reason is soundness with
//! thread-locals: the exit runs from a thread-local destructor, after the
//! thread-locals first used after the runtime are destroyed, and a
//! greenlet suspended inside `LocalKey::with` of one of those would read
//! freed memory while it unwound (the crate's **Threads** rule). So the
//! "no crash" scenarios check that nothing runs and nothing crashes at the
//! exit, and the "cleanup" ones end the thread's work with
//! `hub::run_main`, which kills what is left while every thread-local is
//! alive: Python's cleanup, done before the thread ends.
//! Python runs each scenario as a script in a subprocess; here a scenario
//! runs on a spawned `std::thread`, and its exit is observed from the test
//! (drop logs carried out in an `Arc`), except where the whole process
//! exits (`std::process::exit`), which runs in a child process: this test
//! binary re-run with `GREENLET_PYSHUTDOWN_CHILD` set, as
//! `tests/teardown.rs` does. A Python global that keeps a greenlet alive
//! until shutdown is a handle leaked with `mem::forget` (nothing but
//! `hub::run_main`'s end, or the thread's exit, reaches the greenlet
//! then).
//!
//! Python's `atexit` handlers are thread-local destructors: one first used
//! after the greenlet runtime is destroyed before it (glibc runs a thread's
//! destructors last-registered first), which is Python's handler
//! "registered after `import greenlet`", run before greenlet's cleanup;
//! one first used before the runtime is destroyed after it, which is
//! Python's finalization phase, where `getcurrent()` must refuse: here
//! every call that needs the runtime panics, saying so (lib docs, "Hostile
//! use"), and `Local::try_with` answers `LocalDropped`. Python's own
//! cleanup handler is also `hub::run_main` returning: code after it on the
//! thread still has a working runtime.
//!
//! `GreenletExit` caught and raised again is `catch_unwind` around the
//! pending switch and `resume_unwind` of the same payload; `finally` is a
//! `Drop` guard.
//!
//! The `edge_*` tests at the end are not in the Python file: they push on
//! thread exit and `hub::run_main` with greenlets in every state
//! (unstarted, suspended deep in a chain, suspended inside a destructor,
//! holding greenlet-locals whose destructors switch or create greenlets, a
//! switch hook running during the teardown, a hub with pending timers and
//! ready greenlets, the process exiting from a greenlet).
//!
//! The `fail_*.py` scripts of the same directory are ported by
//! `test_greenlet` (their scenarios) and `fail_scripts` (edge cases).
//!
//! Not ported (no counterpart here):
//! `test_greenlet_construction_with_cross_thread_deleteme_during_atexit`
//! and `test_getcurrent_returns_none_during_gc_finalization_cross_thread`
//! (handles are `!Send`, row 14: a greenlet cannot be handed to another
//! thread to be dropped there, so there is no deferred "deleteme" list;
//! the rest of the latter is
//! `test_getcurrent_returns_none_during_gc_finalization`), and the
//! `gc.disable()` reference cycles of the D.1 group (a Python cycle
//! collected at finalization is a thread-local first used before the
//! runtime here; the cycle itself is Python's collector).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use greenlet::{current, greenlet_local, hub, set_switch_hook, stats, Greenlet, SwitchError};

const CHILD: &str = "GREENLET_PYSHUTDOWN_CHILD";

// ----- helpers -----

/// A log shared with a scenario's thread.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn count(&self, s: &str) -> usize {
        self.lines().iter().filter(|l| *l == s).count()
    }
    /// A guard that logs `s` when dropped (Python's `finally`).
    fn guard(&self, s: impl Into<String>) -> Guard {
        Guard(self.clone(), s.into())
    }
}

struct Guard(Log, String);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.push(std::mem::take(&mut self.1));
    }
}

/// Runs `f` on a new thread and returns once the thread has exited (its
/// thread-local destructors, the greenlet runtime's teardown among them,
/// have run).
fn on_a_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::spawn(f).join().unwrap()
}

/// Runs `f` on a new thread as `hub::run_main`'s body, which kills what
/// `f` left while every thread-local is alive, and returns once the
/// thread has exited. (The thread's exit alone leaves started greenlets
/// suspended, row 15.)
fn on_a_thread_in_run_main<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    on_a_thread(move || hub::run_main(f))
}

/// The test file's idiom: switch to the current greenlet's parent.
fn to_parent<T: 'static, R: 'static>(v: T) -> Result<R, SwitchError> {
    current().parent().expect("not main").switch(v)
}

/// Python's "a global keeps it alive until shutdown": nothing but
/// `hub::run_main`'s end or the thread's exit (which leaves it suspended,
/// row 15) reaches the greenlet any more.
fn keep_until_exit(g: Greenlet) {
    std::mem::forget(g);
}

/// A closure run when its thread-local is destroyed: Python's `atexit`.
struct AtExit(Vec<Box<dyn FnOnce()>>);

impl Drop for AtExit {
    fn drop(&mut self) {
        for f in self.0.drain(..) {
            f();
        }
    }
}

thread_local! {
    /// First used after the greenlet runtime in the tests below: destroyed
    /// before the runtime's teardown.
    static BEFORE_TEARDOWN: RefCell<AtExit> = const { RefCell::new(AtExit(Vec::new())) };
    /// First used before the greenlet runtime: destroyed after it.
    static AFTER_TEARDOWN: RefCell<AtExit> = const { RefCell::new(AtExit(Vec::new())) };
}

/// Registers `f` to run at thread exit before the runtime's teardown.
/// The runtime must be in use on this thread already.
fn at_exit_before_teardown(f: impl FnOnce() + 'static) {
    let _ = Greenlet::current();
    BEFORE_TEARDOWN.with(|a| a.borrow_mut().0.push(Box::new(f)));
}

/// Registers `f` to run at thread exit after the runtime's teardown. Must
/// be called before anything on this thread uses greenlets.
fn at_exit_after_teardown(f: impl FnOnce() + 'static) {
    AFTER_TEARDOWN.with(|a| a.borrow_mut().0.push(Box::new(f)));
}

/// The message of a caught panic.
fn message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// A greenlet that logs when its stack is unwound, suspended at a switch
/// to its parent after sending `hello`.
fn suspended_worker(log: &Log, hello: String) -> Greenlet {
    let l = log.clone();
    let g = Greenlet::new(move |()| {
        let _unwound = l.guard(format!("unwound {hello}"));
        let _: () = to_parent(hello.clone()).unwrap();
        "done"
    });
    let _: String = g.switch(()).unwrap();
    g
}

// ----- group A: no crash with active greenlets at exit -----
//
// Python's shutdown unwinds the greenlets; the thread's exit here leaves
// them suspended (see the module's mapping): no crash, and no guard of
// theirs runs.

#[test]
fn test_active_greenlet_at_shutdown_no_crash() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        let g = suspended_worker(&l, "from worker".into());
        assert!(g.is_active());
        keep_until_exit(g);
        l.push("exiting with an active greenlet");
    });
    assert_eq!(log.lines(), ["exiting with an active greenlet"]);
}

#[test]
fn test_multiple_active_greenlets_at_shutdown() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        for i in 0..10 {
            keep_until_exit(suspended_worker(&l, format!("g{i}")));
        }
        assert_eq!(stats().active, 11, "main and the ten");
    });
    assert!(log.lines().is_empty(), "{:?}", log.lines());
}

#[test]
fn test_nested_greenlets_at_shutdown() {
    let log = Log::default();
    let l = log.clone();
    let result = on_a_thread(move || {
        let g = Greenlet::new(move |()| {
            let _outer = l.guard("outer unwound");
            let li = l.clone();
            let inner = Greenlet::new(move |()| {
                let _inner = li.guard("inner unwound");
                let _: () = to_parent("inner done").unwrap();
            });
            let _: &str = inner.switch(()).unwrap();
            let _: () = to_parent("outer done").unwrap();
            drop(inner);
        });
        let r: &str = g.switch(()).unwrap();
        keep_until_exit(g);
        r
    });
    assert_eq!(result, "outer done");
    assert_eq!(log.count("outer unwound"), 0);
    assert_eq!(log.count("inner unwound"), 0);
}

#[test]
fn test_threaded_greenlets_at_shutdown() {
    // Python keeps each thread's greenlet in a list the main thread owns;
    // a handle cannot leave its thread (row 14), so what is carried out is
    // the value it sent, and each greenlet is left suspended by its own
    // thread's exit.
    let log = Log::default();
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let l = log.clone();
            std::thread::spawn(move || {
                let g = suspended_worker(&l, format!("thread {i}"));
                keep_until_exit(g);
                format!("from thread {i}")
            })
        })
        .collect();
    let results: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(results, ["from thread 0", "from thread 1", "from thread 2"]);
    assert!(log.lines().is_empty(), "{:?}", log.lines());
}

// ----- group B: cleanup at thread exit -----
//
// The cleanup Python's shutdown does is `hub::run_main`'s end here, before
// the thread ends (the thread's exit leaves started greenlets suspended,
// see the module's mapping): the threads' work runs in `run_main`.

#[test]
fn test_greenlet_cleanup_during_thread_exit() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread_in_run_main(move || {
        let g = Greenlet::new(move |()| {
            let waited = catch_unwind(AssertUnwindSafe(|| to_parent::<&str, ()>("suspended")));
            if let Err(kill) = waited {
                l.push("cleanup: the kill caught");
                resume_unwind(kill);
            }
        });
        let _: &str = g.switch(()).unwrap();
        keep_until_exit(g);
    });
    assert_eq!(log.lines(), ["cleanup: the kill caught"]);
}

#[test]
fn test_finally_block_during_thread_exit() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread_in_run_main(move || {
        let lg = l.clone();
        let g = Greenlet::new(move |()| {
            let _finally = lg.guard("finally: cleanup executed");
            let _: () = to_parent("suspended").unwrap();
        });
        let _: &str = g.switch(()).unwrap();
        keep_until_exit(g);
        l.push("thread body done");
    });
    assert_eq!(
        log.lines(),
        ["thread body done", "finally: cleanup executed"]
    );
}

#[test]
fn test_many_greenlets_with_cleanup_at_shutdown() {
    // Python cannot read its counter after shutdown; here it can.
    let log = Log::default();
    let l = log.clone();
    on_a_thread_in_run_main(move || {
        for i in 0..50 {
            let l = l.clone();
            let g = Greenlet::new(move |idx: u32| {
                let waited = catch_unwind(AssertUnwindSafe(|| {
                    to_parent::<String, ()>(format!("ready-{idx}"))
                }));
                if let Err(kill) = waited {
                    l.push("cleanup");
                    resume_unwind(kill);
                }
            });
            assert_eq!(g.switch::<u32, String>(i).unwrap(), format!("ready-{i}"));
            keep_until_exit(g);
        }
    });
    assert_eq!(log.count("cleanup"), 50);
}

#[test]
fn test_deeply_nested_greenlets_at_shutdown() {
    fn level(depth: u32, max: u32, log: Log) {
        let _unwound = log.guard(format!("unwound level {depth}"));
        let mut child = None;
        if depth < max {
            let l = log.clone();
            let g = Greenlet::new(move |()| level(depth + 1, max, l));
            let _: String = g.switch(()).unwrap();
            child = Some(g);
        }
        let _: () = to_parent(format!("depth-{depth}")).unwrap();
        drop(child);
    }
    let log = Log::default();
    let l = log.clone();
    let result = on_a_thread_in_run_main(move || {
        let g = Greenlet::new(move |()| level(0, 10, l));
        let r: String = g.switch(()).unwrap();
        keep_until_exit(g);
        r
    });
    assert_eq!(result, "depth-0");
    for depth in 0..=10 {
        assert_eq!(log.count(&format!("unwound level {depth}")), 1);
    }
}

#[test]
fn test_greenlet_with_traceback_at_shutdown() {
    // "Suspended while an exception is active": suspended while holding
    // a caught panic's payload (a switch from the unwinding itself is
    // refused, row 11); the payload is dropped by `run_main`'s kill.
    struct Payload(Log);
    impl Drop for Payload {
        fn drop(&mut self) {
            self.0.push("payload dropped");
        }
    }
    let log = Log::default();
    let l = log.clone();
    on_a_thread_in_run_main(move || {
        let g = Greenlet::new(move |()| {
            let caught = catch_unwind(AssertUnwindSafe(|| std::panic::panic_any(Payload(l))));
            let payload = caught.unwrap_err();
            assert!(payload.is::<Payload>());
            let _: () = to_parent("suspended with a payload").unwrap();
            drop(payload);
            "done"
        });
        let r: &str = g.switch(()).unwrap();
        assert_eq!(r, "suspended with a payload");
        keep_until_exit(g);
    });
    assert_eq!(log.lines(), ["payload dropped"]);
}

// ----- group C: the runtime still works in "atexit" handlers run before
// its teardown -----

#[test]
fn test_getcurrent_during_atexit_no_crash() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        at_exit_before_teardown(move || {
            let cur = Greenlet::current();
            l.push(format!("current is main: {}", cur.is_main()));
        });
    });
    assert_eq!(log.lines(), ["current is main: true"]);
}

#[test]
fn test_gettrace_during_atexit_no_crash() {
    // There is no getter: `set_switch_hook(None)` hands back the hook.
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        let seen = l.clone();
        set_switch_hook(Some(Box::new(move |_| seen.push("event"))));
        at_exit_before_teardown(move || {
            let hook = set_switch_hook(None);
            l.push(format!("hook was set: {}", hook.is_some()));
            set_switch_hook(hook);
        });
    });
    assert_eq!(log.lines(), ["hook was set: true"]);
}

#[test]
fn test_settrace_during_atexit_no_crash() {
    // A hook set by an exit handler is dropped by the teardown (row 15:
    // the hook goes last). Python's shutdown kills the suspended worker,
    // which the hook would see; the teardown here leaves it suspended (see
    // the module's mapping): the hook sees no kill, the worker no unwind.
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        keep_until_exit(suspended_worker(&l, "worker".into()));
        at_exit_before_teardown(move || {
            let state = l.guard("hook dropped");
            let seen = l.clone();
            let old = set_switch_hook(Some(Box::new(move |e| {
                let _ = &state;
                seen.push(format!("{:?}", e.kind));
            })));
            assert!(old.is_none());
        });
    });
    assert_eq!(log.lines(), ["hook dropped"]);
}

#[test]
fn test_getcurrent_with_active_greenlets_during_atexit() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        for i in 0..5 {
            keep_until_exit(suspended_worker(&l, format!("g{i}")));
        }
        let l2 = l.clone();
        at_exit_before_teardown(move || {
            let cur = Greenlet::current();
            let s = stats();
            l2.push(format!(
                "main: {}, suspended: {}",
                cur.is_main(),
                s.active - 1
            ));
        });
    });
    // The handler runs with the five still suspended, and the teardown
    // after it leaves them so (see the module's mapping).
    assert_eq!(log.lines(), ["main: true, suspended: 5"]);
}

#[test]
fn test_greenlet_construction_during_atexit_no_crash() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        at_exit_before_teardown(move || {
            let captured = l.guard("unrun function dropped");
            let l2 = l.clone();
            let g = Greenlet::new(move |()| {
                let _ = &captured;
                l2.push("ran");
            });
            l.push(format!("created, started: {}", g.is_started()));
            keep_until_exit(g);
        });
    });
    // Made before the teardown, it is freed by it, unrun.
    assert_eq!(
        log.lines(),
        ["created, started: false", "unrun function dropped"]
    );
}

#[test]
fn test_greenlet_construction_with_active_greenlets_during_atexit() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        for i in 0..10 {
            keep_until_exit(suspended_worker(&l, format!("g{i}")));
        }
        let l2 = l.clone();
        at_exit_before_teardown(move || {
            let made: Vec<Greenlet> = (0..5)
                .map(|i| {
                    let guard = l2.guard(format!("new {i} dropped"));
                    Greenlet::new(move |()| drop(guard))
                })
                .collect();
            // These run now, in the handler, before the teardown.
            for g in &made {
                g.switch::<(), ()>(()).unwrap();
            }
            l2.push(format!("created {} at exit", made.len()));
        });
    });
    // The five made in the handler ran to their end; the ten suspended
    // are left so by the teardown (see the module's mapping).
    let lines = log.lines();
    assert_eq!(lines[5], "created 5 at exit", "{lines:?}");
    assert_eq!(lines.len(), 6, "{lines:?}");
}

// ----- group D: after the teardown -----

/// Python's `getcurrent()` from a `__del__` run by the finalization's
/// collection: here a thread-local destroyed after the teardown; the call
/// panics, saying the runtime was torn down, and the panic is caught.
fn getcurrent_after_teardown(log: &Log) {
    let l = log.clone();
    at_exit_after_teardown(move || {
        let r = catch_unwind(|| Greenlet::current().id());
        match r {
            Ok(id) => l.push(format!("unguarded: current is {id}")),
            Err(p) => l.push(format!("guarded: {}", message(p.as_ref()))),
        }
    });
}

#[test]
fn test_getcurrent_returns_none_during_gc_finalization() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        getcurrent_after_teardown(&l);
        let _ = Greenlet::current();
    });
    let lines = log.lines();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("guarded: "), "{lines:?}");
    assert!(lines[0].contains("torn down"), "{lines:?}");
}

#[test]
fn test_getcurrent_returns_none_during_gc_finalization_with_active_greenlets() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        getcurrent_after_teardown(&l);
        for i in 0..10 {
            keep_until_exit(suspended_worker(&l, format!("g{i}")));
        }
    });
    let lines = log.lines();
    // The ten are left suspended by the teardown (see the module's
    // mapping), none unwound; the late destructor is refused.
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("guarded: ") && lines[0].contains("torn down"));
}

/// Python's atexit handler registered before `import greenlet` runs after
/// greenlet's own handler and still gets a greenlet. Greenlet's handler is
/// `hub::run_main` returning here (it unwinds what was left); what runs
/// after it on the thread still has main and can make greenlets.
#[test]
fn test_getcurrent_returns_none_during_atexit_phase() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        hub::run_main(|| ());
        let cur = Greenlet::current();
        l.push(format!("unguarded: main {}", cur.is_main()));
        let g = Greenlet::new(|x: u32| x + 1);
        assert_eq!(g.switch::<u32, u32>(1).unwrap(), 2);
    });
    assert_eq!(log.lines(), ["unguarded: main true"]);
}

#[test]
fn test_getcurrent_returns_none_during_atexit_phase_with_active_greenlets() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        hub::run_main(|| {
            for i in 0..10 {
                keep_until_exit(suspended_worker(&l, format!("g{i}")));
            }
        });
        // run_main unwound the ten before returning.
        l.push(format!("after run_main, active: {}", stats().active));
        l.push(format!("unguarded: main {}", Greenlet::current().is_main()));
    });
    let lines = log.lines();
    assert_eq!(lines.len(), 12, "{lines:?}");
    assert_eq!(lines[10], "after run_main, active: 1");
    assert_eq!(lines[11], "unguarded: main true");
}

/// Python's C-API `getcurrent` from module teardown raises a specific
/// error. The non-panicking reader here, `Local::try_with`, answers
/// `LocalDropped` once the runtime is gone; `Greenlet::current` panics
/// with a message that says so.
#[test]
fn test_api_getcurrent_no_system_error_at_module_gc_time() {
    greenlet_local! {
        static REQUEST: Cell<u32> = Cell::new(7);
    }
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        let l2 = l.clone();
        at_exit_after_teardown(move || {
            l2.push("destructor running");
            l2.push(format!("try_with: {:?}", REQUEST.try_with(Cell::get)));
            let p = catch_unwind(|| Greenlet::current().is_main()).unwrap_err();
            l2.push(message(p.as_ref()));
        });
        assert_eq!(REQUEST.try_with(Cell::get), Ok(7));
    });
    let lines = log.lines();
    assert_eq!(lines[0], "destructor running");
    assert!(
        lines[1].starts_with("try_with: Err(LocalDropped"),
        "{lines:?}"
    );
    assert!(
        lines[2].contains("greenlet runtime has been torn down"),
        "{lines:?}"
    );
}

/// A destructor run at thread exit, before the teardown, switches to a
/// captured suspended greenlet, which answers through its parent.
#[test]
fn test_switch_no_error_at_module_gc_time() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        let gs: Rc<RefCell<Vec<Greenlet>>> = Rc::default();
        let do_it = |gs: Rc<RefCell<Vec<Greenlet>>>| {
            move |()| {
                let parent = gs.borrow()[0].parent().unwrap();
                let _: () = parent.switch(1u32).unwrap();
            }
        };
        let g0 = Greenlet::new(do_it(gs.clone()));
        let g1 = Greenlet::new(do_it(gs.clone()));
        gs.borrow_mut().extend([g0, g1.clone()]);
        let _: u32 = g1.switch(()).unwrap();
        let l2 = l.clone();
        let gs2 = gs.clone();
        at_exit_before_teardown(move || {
            l2.push("destructor running");
            let g0 = gs2.borrow()[0].clone();
            let r: u32 = g0.switch(()).unwrap();
            l2.push(format!("result {r}"));
        });
    });
    assert_eq!(log.lines(), ["destructor running", "result 1"]);
}

// ----- edge cases: thread exit with greenlets in every state -----

/// An unstarted greenlet at thread exit: its function is dropped unrun
/// (row 12).
#[test]
fn edge_an_unstarted_greenlet_at_thread_exit_is_dropped_unrun() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        let captured = l.guard("function dropped");
        let l2 = l.clone();
        keep_until_exit(Greenlet::new(move |()| {
            let _ = &captured;
            l2.push("ran");
        }));
    });
    assert_eq!(log.lines(), ["function dropped"]);
}

/// A long chain, each greenlet suspended in its child's parent link only
/// (the deepest kept by a leaked handle): `hub::run_main` ending unwinds
/// every frame once; the thread's exit alone leaves them all suspended
/// (row 15), none unwound, and the thread still exits.
#[test]
fn edge_a_long_parent_chain_suspended_is_unwound_by_run_main_and_left_by_thread_exit() {
    const N: usize = 500;
    for in_run_main in [true, false] {
        let log = Log::default();
        let l = log.clone();
        let body = move || {
            let mut last: Option<Greenlet> = None;
            for i in 0..N {
                let l = l.clone();
                let mut b = Greenlet::builder().stack_size(64 * 1024);
                if let Some(p) = &last {
                    b = b.parent(p);
                }
                let g = b
                    .build(move |()| {
                        let _g = l.guard("unwound");
                        let _: () = Greenlet::main().switch(i).unwrap();
                    })
                    .unwrap();
                assert_eq!(g.switch::<(), usize>(()).unwrap(), i);
                last = Some(g);
            }
            assert_eq!(stats().active, N + 1);
            keep_until_exit(last.unwrap());
        };
        if in_run_main {
            on_a_thread_in_run_main(body);
        } else {
            on_a_thread(body);
        }
        let expected = if in_run_main { N } else { 0 };
        assert_eq!(log.count("unwound"), expected, "in run_main: {in_run_main}");
    }
}

/// Drops `Log` "drop begins", switches to main from inside its
/// destructor, then logs how that switch came back.
struct SwitchesInDrop(Log);

impl Drop for SwitchesInDrop {
    fn drop(&mut self) {
        self.0.push("drop begins");
        let back = catch_unwind(AssertUnwindSafe(|| {
            Greenlet::main().switch::<&str, ()>("suspended in a destructor")
        }));
        match back {
            Ok(r) => self.0.push(format!("drop resumed: {r:?}")),
            Err(kill) => {
                self.0.push("drop caught the kill");
                resume_unwind(kill);
            }
        }
    }
}

/// A greenlet suspended inside a destructor (a plain one, not an
/// unwinding's) is unwound from there when `hub::run_main` ends; the
/// value's other fields and the frames below are still dropped. (The
/// thread's exit alone would leave it suspended there, row 15.)
#[test]
fn edge_a_greenlet_suspended_inside_a_destructor_when_run_main_ends() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread_in_run_main(move || {
        let g = Greenlet::new(move |()| {
            let _outer = l.guard("frame below unwound");
            let pair = (SwitchesInDrop(l.clone()), l.guard("sibling field dropped"));
            drop(pair);
            l.push("not reached");
        });
        let r: &str = g.switch(()).unwrap();
        assert_eq!(r, "suspended in a destructor");
        keep_until_exit(g);
    });
    assert_eq!(
        log.lines(),
        [
            "drop begins",
            "drop caught the kill",
            "sibling field dropped",
            "frame below unwound"
        ]
    );
}

greenlet_local! {
    static SWITCHY: RefCell<Option<SwitchyLocal>> = RefCell::new(None);
    static MAKER: RefCell<Option<MakesGreenlets>> = RefCell::new(None);
}

/// A greenlet-local value whose destructor tries to switch to main.
struct SwitchyLocal(Log);

impl Drop for SwitchyLocal {
    fn drop(&mut self) {
        let r = Greenlet::main().switch::<(), ()>(());
        self.0.push(format!("local's switch: {r:?}"));
    }
}

/// A greenlet's local whose destructor switches, dropped by the kill of
/// `hub::run_main`'s end: part of the kill, the switch gets `Unwinding`
/// (row 11). (The thread's exit alone would leave the greenlet suspended,
/// row 15.)
#[test]
fn edge_a_local_destructor_switching_when_run_main_ends_gets_unwinding() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread_in_run_main(move || {
        let l2 = l.clone();
        let g = Greenlet::new(move |()| {
            SWITCHY.with(|s| *s.borrow_mut() = Some(SwitchyLocal(l2)));
            let _: () = Greenlet::main().switch(()).unwrap();
        });
        g.switch::<(), ()>(()).unwrap();
        keep_until_exit(g);
    });
    assert_eq!(log.lines(), ["local's switch: Err(Unwinding)"]);
}

/// A local whose destructor makes a greenlet and leaves it (unstarted, a
/// leaked handle), and on main, makes one, starts it and leaves it
/// suspended.
struct MakesGreenlets(Log);

impl Drop for MakesGreenlets {
    fn drop(&mut self) {
        let on_main = Greenlet::current().is_main();
        let l = self.0.clone();
        let guard = self.0.guard(format!("made on main {on_main}: unwound"));
        let g = Greenlet::new(move |()| {
            let _g = guard;
            l.push("made: started");
            let _: () = Greenlet::main().switch(()).unwrap();
        });
        if on_main {
            g.switch::<(), ()>(()).unwrap();
        }
        keep_until_exit(g);
    }
}

/// Greenlets made by the destructors of greenlet-locals: one made
/// (unstarted) by the local of a greenlet killed as `hub::run_main` ends
/// is ended in turn, its function dropped unrun (up to 16 rounds); one
/// made and started by main's local, dropped at thread exit (main's
/// locals outlive `run_main`), then suspended, is left so by the exit as
/// every started greenlet (row 15), its guard never run.
#[test]
fn edge_greenlets_made_by_local_destructors_at_the_end() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        let l1 = l.clone();
        hub::run_main(move || {
            let l2 = l1.clone();
            let g = Greenlet::new(move |()| {
                MAKER.with(|m| *m.borrow_mut() = Some(MakesGreenlets(l2)));
                let _: () = Greenlet::main().switch(()).unwrap();
            });
            g.switch::<(), ()>(()).unwrap();
            keep_until_exit(g);
        });
        MAKER.with(|m| *m.borrow_mut() = Some(MakesGreenlets(l.clone())));
    });
    assert_eq!(
        log.lines(),
        ["made on main false: unwound", "made: started"]
    );
}

/// The switch hook sees no transfer at the teardown: the suspended
/// greenlet is left so (row 15), not killed; the hook is dropped, last.
#[test]
fn edge_the_switch_hook_sees_no_kill_at_thread_exit_and_goes_last() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        let g = Greenlet::builder()
            .name("w")
            .build(|()| {
                let _: () = Greenlet::main().switch(()).unwrap();
            })
            .unwrap();
        g.switch::<(), ()>(()).unwrap();
        keep_until_exit(g);
        let state = l.guard("hook dropped");
        let seen = l.clone();
        set_switch_hook(Some(Box::new(move |e| {
            let _ = &state;
            let name = |g: &Greenlet| g.name().unwrap().to_string();
            seen.push(format!(
                "{:?} {}->{}",
                e.kind,
                name(&e.origin),
                name(&e.target)
            ));
        })));
    });
    assert_eq!(log.lines(), ["hook dropped"]);
}

/// A greenlet whose unwinding when `hub::run_main` ends kills another
/// suspended one, and drops the last handle of a third: each is unwound
/// once, `run_main` does not kill them again. (The thread's exit alone
/// would unwind none of them, row 15.)
#[test]
fn edge_a_run_main_victim_killing_and_collecting_others() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread_in_run_main(move || {
        let other = suspended_worker(&l, "other".into());
        let third = suspended_worker(&l, "third".into());
        let l2 = l.clone();
        let g = Greenlet::new(move |()| {
            struct KillsOnDrop(Greenlet, Option<Greenlet>, Log);
            impl Drop for KillsOnDrop {
                fn drop(&mut self) {
                    self.0.kill();
                    drop(self.1.take());
                    self.2.push("killer's guard done");
                }
            }
            let _k = KillsOnDrop(other.clone(), Some(third), l2);
            keep_until_exit(other);
            let _: () = Greenlet::main().switch(()).unwrap();
        });
        g.switch::<(), ()>(()).unwrap();
        keep_until_exit(g);
    });
    assert_eq!(log.count("unwound other"), 1, "{:?}", log.lines());
    assert_eq!(log.count("unwound third"), 1, "{:?}", log.lines());
    assert_eq!(log.count("killer's guard done"), 1);
}

/// A thread ending in a panic leaves its started greenlets suspended too
/// (row 15): none unwound, the thread's panic is what `join` sees.
#[test]
fn edge_a_thread_ending_in_a_panic_leaves_its_greenlets_suspended() {
    let log = Log::default();
    let l = log.clone();
    let joined = std::thread::spawn(move || {
        keep_until_exit(suspended_worker(&l, "w".into()));
        std::panic::panic_any("thread boom");
    })
    .join();
    assert_eq!(
        joined.unwrap_err().downcast_ref::<&str>(),
        Some(&"thread boom")
    );
    assert!(log.lines().is_empty(), "{:?}", log.lines());
}

/// A generator whose producer is suspended, its `Generator` kept past the
/// teardown (dropped then, it closes nothing): `hub::run_main` ending
/// unwinds the producer; the thread's exit alone leaves it suspended (row
/// 15), and the late drop of its `Generator` neither resumes it nor
/// crashes.
#[test]
fn edge_a_suspended_generator_at_the_end_of_run_main_and_at_thread_exit() {
    for in_run_main in [true, false] {
        let log = Log::default();
        let l = log.clone();
        on_a_thread(move || {
            let kept = Rc::new(RefCell::new(None));
            let k = kept.clone();
            at_exit_after_teardown(move || drop(k.borrow_mut().take()));
            let body = move || {
                let mut g = greenlet::Generator::new(move |y: &greenlet::Yielder<u32>| {
                    let _g = l.guard("producer unwound");
                    for i in 0.. {
                        y.yield_(i);
                    }
                });
                assert_eq!(g.next(), Some(0));
                *kept.borrow_mut() = Some(g);
            };
            if in_run_main {
                hub::run_main(body);
            } else {
                body();
            }
        });
        let expected: &[&str] = if in_run_main {
            &["producer unwound"]
        } else {
            &[]
        };
        assert_eq!(log.lines(), expected, "in run_main: {in_run_main}");
    }
}

/// Handles held by a thread-local destroyed before the teardown are
/// collections (row 12): that greenlet is unwound. One held by a
/// thread-local destroyed after it is a drop that does nothing: the
/// teardown left that greenlet suspended (row 15), and nothing resumes it
/// after.
#[test]
fn edge_handles_in_thread_locals_on_either_side_of_the_teardown() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        let late = Rc::new(RefCell::new(None::<Greenlet>));
        let late2 = late.clone();
        let l2 = l.clone();
        at_exit_after_teardown(move || {
            l2.push("late handle dropped");
            drop(late2.borrow_mut().take());
        });
        *late.borrow_mut() = Some(suspended_worker(&l, "late".into()));
        let early = suspended_worker(&l, "early".into());
        let l3 = l.clone();
        at_exit_before_teardown(move || {
            l3.push("early handle dropped");
            drop(early);
        });
    });
    assert_eq!(
        log.lines(),
        [
            "early handle dropped",
            "unwound early",
            "late handle dropped"
        ]
    );
}

/// Greenlets with a hub in every state at thread exit, `hub::run` never
/// called again: a spawned greenlet asleep (a pending timer), one inside
/// `with_timeout`, one spawned and never run (ready), and a plain
/// greenlet suspended: the unrun one's function is dropped unrun, the
/// started ones are left suspended (row 15), none unwound, and the hub
/// greenlet's kill with its timers pending does not hang or crash.
#[test]
fn edge_a_hub_with_timers_and_ready_greenlets_at_thread_exit() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        hub_in_every_state(&l);
        l.push("thread body done");
    });
    assert_eq!(log.lines(), ["thread body done", "ready: function dropped"]);
}

fn hub_in_every_state(l: &Log) {
    let (a, b, c) = (l.clone(), l.clone(), l.guard("ready: function dropped"));
    let sleeper = hub::spawn(move || {
        let _g = a.guard("sleeper unwound");
        hub::sleep(Duration::from_secs(3600));
    });
    let timed = hub::spawn(move || {
        let _g = b.guard("timed unwound");
        let _ = hub::with_timeout(Duration::from_secs(3600), || {
            hub::sleep(Duration::from_secs(7200))
        });
    });
    hub::yield_now();
    let l2 = l.clone();
    let ready = hub::spawn(move || {
        let _ = &c;
        l2.push("ready ran");
    });
    keep_until_exit(suspended_worker(l, "plain".into()));
    assert!(!sleeper.is_finished() && !timed.is_finished() && !ready.is_finished());
    // Dropped handles detach: the hub keeps the greenlets.
    drop((sleeper, timed, ready));
}

fn assert_hub_states_unwound(log: &Log, first: &str) {
    let lines = log.lines();
    assert_eq!(lines[0], first, "{lines:?}");
    for what in [
        "sleeper unwound",
        "timed unwound",
        "ready: function dropped",
        "unwound plain",
    ] {
        assert_eq!(log.count(what), 1, "{what}: {lines:?}");
    }
    assert_eq!(log.count("ready ran"), 0, "{lines:?}");
    assert_eq!(lines.len(), 5 + usize::from(lines.len() > 5), "{lines:?}");
}

/// The same under `hub::run_main`: unwound when its function returns,
/// before the code after it (row 15).
#[test]
fn edge_run_main_with_timers_and_ready_greenlets() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        let l2 = l.clone();
        hub::run_main(move || {
            hub_in_every_state(&l2);
            l2.push("body done");
        });
        l.push("after run_main");
    });
    assert_hub_states_unwound(&log, "body done");
    assert_eq!(log.lines().last().unwrap(), "after run_main");
}

/// A destructor run by the teardown's drop of an unstarted spawned
/// greenlet's function spawns another; and one run by a main's
/// greenlet-local (which goes after the hub was killed) spawns and runs
/// the hub. Nothing aborts; what is spawned is dropped unrun.
#[test]
fn edge_spawning_from_destructors_at_thread_exit() {
    struct SpawnsOnDrop(Log, bool);
    impl Drop for SpawnsOnDrop {
        fn drop(&mut self) {
            let (l, run) = (self.0.clone(), self.1);
            let guard = l.guard(format!("late spawn (run {run}): function dropped"));
            let l2 = l.clone();
            let r = catch_unwind(AssertUnwindSafe(|| {
                let h = hub::spawn(move || {
                    let _g = guard;
                    l2.push(format!("late spawn (run {run}) ran"));
                });
                if run {
                    hub::run();
                }
                drop(h); // detached
            }));
            match r {
                Ok(()) => l.push(format!("spawn (run {run}) returned")),
                Err(p) => l.push(format!(
                    "spawn (run {run}) panicked: {}",
                    message(p.as_ref())
                )),
            }
        }
    }
    greenlet_local! {
        static ON_MAIN: RefCell<Option<SpawnsOnDrop>> = RefCell::new(None);
    }
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        // Never run: the teardown drops its function, and the guard.
        let s = SpawnsOnDrop(l.clone(), false);
        let h = hub::spawn(move || {
            let _s = s;
            hub::sleep(Duration::from_secs(3600));
        });
        drop(h); // detached
        ON_MAIN.with(|m| *m.borrow_mut() = Some(SpawnsOnDrop(l.clone(), true)));
    });
    let lines = log.lines();
    assert_eq!(log.count("spawn (run false) returned"), 1, "{lines:?}");
    // Main's locals go after the hub greenlet was killed: `run` says the hub is
    // dead (hub docs: "every blocking call, and `run`, panics").
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("spawn (run true) panicked")
                && l.contains("hub greenlet is dead")),
        "{lines:?}"
    );
    assert_eq!(
        log.count("late spawn (run false): function dropped"),
        1,
        "{lines:?}"
    );
    assert_eq!(
        log.count("late spawn (run true): function dropped"),
        1,
        "{lines:?}"
    );
}

/// `hub::run_main` unwinds greenlets only: the switch hook and main's
/// greenlet-locals stay (its rustdoc: "kills every greenlet it left
/// alive"); the thread's exit drops them later.
#[test]
fn edge_run_main_leaves_the_hook_and_mains_locals() {
    greenlet_local! {
        static KEPT: RefCell<Option<Guard>> = RefCell::new(None);
    }
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        let l2 = l.clone();
        hub::run_main(move || {
            let state = l2.guard("hook dropped");
            set_switch_hook(Some(Box::new(move |_| {
                let _ = &state;
            })));
            KEPT.with(|k| *k.borrow_mut() = Some(l2.guard("main's local dropped")));
            keep_until_exit(suspended_worker(&l2, "w".into()));
        });
        l.push("after run_main");
    });
    let lines = log.lines();
    assert_eq!(lines[0], "unwound w", "{lines:?}");
    assert_eq!(lines[1], "after run_main", "{lines:?}");
    assert_eq!(lines.len(), 4, "{lines:?}");
}

/// `hub::run_main` whose function panics unwinds what it left, then
/// resumes the panic.
#[test]
fn edge_run_main_whose_function_panics() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        let l2 = l.clone();
        let r = catch_unwind(AssertUnwindSafe(|| {
            hub::run_main(move || {
                keep_until_exit(suspended_worker(&l2, "w".into()));
                std::panic::panic_any("body boom");
            })
        }));
        let p = r.unwrap_err();
        l.push(format!("caught {}", message(p.as_ref())));
    });
    assert_eq!(log.lines(), ["unwound w", "caught body boom"]);
}

/// A greenlet suspended whose parent is unstarted, at thread exit: the
/// parent goes, its function dropped unrun; the child, started, is left
/// suspended (row 15), never unwound.
#[test]
fn edge_a_suspended_child_of_an_unstarted_parent_at_thread_exit() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        let pg = l.guard("parent's function dropped");
        let parent = Greenlet::new(move |_: u32| drop(pg));
        let l2 = l.clone();
        let child = Greenlet::builder()
            .parent(&parent)
            .build(move |()| {
                let _g = l2.guard("child unwound");
                let _: () = Greenlet::main().switch(()).unwrap();
            })
            .unwrap();
        child.switch::<(), ()>(()).unwrap();
        assert!(!parent.is_started());
        drop(parent);
        keep_until_exit(child);
    });
    assert_eq!(log.lines(), ["parent's function dropped"]);
}

/// A destructor of a victim of `hub::run_main`'s end reads the runtime:
/// it is current, not main, and `stats` sees it running. (The thread's
/// exit alone kills no started greenlet, row 15.)
#[test]
fn edge_runtime_queries_from_a_run_main_victims_destructor() {
    struct Asks(Log);
    impl Drop for Asks {
        fn drop(&mut self) {
            let me = Greenlet::current();
            let s = stats();
            let mine = s.greenlets.iter().find(|g| g.id == me.id()).unwrap();
            self.0.push(format!(
                "main {}, current {}, state {:?}",
                me.is_main(),
                me.is_current(),
                mine.state
            ));
        }
    }
    let log = Log::default();
    let l = log.clone();
    on_a_thread_in_run_main(move || {
        let g = Greenlet::new(move |()| {
            let _a = Asks(l);
            let _: () = Greenlet::main().switch(()).unwrap();
        });
        g.switch::<(), ()>(()).unwrap();
        keep_until_exit(g);
    });
    assert_eq!(log.lines(), ["main false, current true, state Running"]);
}

/// A greenlet-local whose destructor switches to main (a normal finish,
/// not a kill: allowed) and is left suspended there, its greenlet's
/// function already returned, at thread exit.
struct ParksInDrop(Log);

impl Drop for ParksInDrop {
    fn drop(&mut self) {
        self.0.push("local drop parks");
        let back = catch_unwind(AssertUnwindSafe(|| {
            Greenlet::main().switch::<&str, ()>("parked")
        }));
        match back {
            Ok(r) => self.0.push(format!("local drop resumed: {r:?}")),
            Err(kill) => {
                self.0.push("local drop caught the kill");
                resume_unwind(kill);
            }
        }
    }
}

/// A greenlet suspended in a greenlet-local's destructor after its
/// function returned, when `hub::run_main` ends: the kill unwinds that
/// destructor, the other locals are still dropped, once each. (The
/// thread's exit alone would leave it suspended, row 15.)
#[test]
fn edge_a_greenlet_parked_in_a_local_destructor_after_returning_when_run_main_ends() {
    greenlet_local! {
        static PARKS: RefCell<Option<ParksInDrop>> = RefCell::new(None);
        static PLAIN: RefCell<Option<Guard>> = RefCell::new(None);
    }
    let log = Log::default();
    let l = log.clone();
    on_a_thread_in_run_main(move || {
        let l2 = l.clone();
        let g = Greenlet::new(move |()| {
            PLAIN.with(|p| *p.borrow_mut() = Some(l2.guard("plain local dropped")));
            PARKS.with(|p| *p.borrow_mut() = Some(ParksInDrop(l2.clone())));
            l2.guard("return value dropped")
        });
        let r: &str = g.switch(()).unwrap();
        assert_eq!(r, "parked");
        assert!(g.is_active());
        keep_until_exit(g);
    });
    let lines = log.lines();
    assert_eq!(log.count("local drop parks"), 1, "{lines:?}");
    assert_eq!(log.count("local drop caught the kill"), 1, "{lines:?}");
    assert_eq!(log.count("plain local dropped"), 1, "{lines:?}");
    assert_eq!(log.count("return value dropped"), 1, "{lines:?}");
}

/// The same for a spawned greenlet whose local's destructor blocks on the
/// hub (a sleep) after its function returned.
#[test]
fn edge_a_spawned_greenlet_blocked_in_a_local_destructor_when_run_main_ends() {
    struct SleepsInDrop(Log);
    impl Drop for SleepsInDrop {
        fn drop(&mut self) {
            self.0.push("local drop sleeps");
            let r = catch_unwind(AssertUnwindSafe(|| hub::sleep(Duration::from_secs(3600))));
            match r {
                Ok(()) => self.0.push("local drop woke"),
                Err(kill) => {
                    self.0.push("local drop caught the kill");
                    resume_unwind(kill);
                }
            }
        }
    }
    greenlet_local! {
        static SLEEPS: RefCell<Option<SleepsInDrop>> = RefCell::new(None);
    }
    let log = Log::default();
    let l = log.clone();
    on_a_thread_in_run_main(move || {
        let l2 = l.clone();
        let h = hub::spawn(move || {
            SLEEPS.with(|p| *p.borrow_mut() = Some(SleepsInDrop(l2.clone())));
            l2.guard("return value dropped")
        });
        hub::yield_now();
        assert!(!h.is_finished());
        drop(h); // detached
    });
    let lines = log.lines();
    assert_eq!(log.count("local drop sleeps"), 1, "{lines:?}");
    assert_eq!(log.count("local drop caught the kill"), 1, "{lines:?}");
    assert_eq!(log.count("return value dropped"), 1, "{lines:?}");
}

/// An exit handler run before the teardown drives the hub to the end of
/// its pending work (Python's atexit handler running the loop): the
/// sleepers finish normally, nothing is left for the teardown.
#[test]
fn edge_an_exit_handler_running_the_hub() {
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        for i in 0..3u64 {
            let l = l.clone();
            drop(hub::spawn(move || {
                let _g = l.guard(format!("sleeper {i} ended"));
                hub::sleep(Duration::from_millis(i));
                l.push(format!("sleeper {i} woke"));
            }));
        }
        hub::yield_now();
        let l2 = l.clone();
        at_exit_before_teardown(move || {
            hub::run();
            l2.push(format!("hub ran, active {}", stats().active));
        });
    });
    let lines = log.lines();
    for i in 0..3 {
        let woke = lines.iter().position(|l| *l == format!("sleeper {i} woke"));
        let ended = lines
            .iter()
            .position(|l| *l == format!("sleeper {i} ended"));
        assert!(woke.is_some() && woke < ended, "{lines:?}");
    }
    // Main and the hub.
    assert_eq!(lines.last().unwrap(), "hub ran, active 2", "{lines:?}");
}

/// A spawned greenlet that finished, handing control to the next ready
/// one, while its greenlet-local's destructor switched straight to main
/// (a raw switch, not a hub call). The greenlet it was handing off to is
/// not lost (it runs at main's next wait, which is not woken by anything
/// stale). The parked one is unwound from its destructor by the drop of
/// its last handle, before the thread ends; the blocked one is left
/// suspended by the thread's exit (row 15), its guard never dropped.
#[test]
fn edge_thread_exit_during_a_pending_hub_hand_off() {
    struct RawSwitchInDrop(Log);
    impl Drop for RawSwitchInDrop {
        fn drop(&mut self) {
            let r = catch_unwind(AssertUnwindSafe(|| Greenlet::main().switch::<(), ()>(())));
            match r {
                Ok(r) => self.0.push(format!("local resumed {r:?}")),
                Err(kill) => {
                    self.0.push("local unwound");
                    resume_unwind(kill);
                }
            }
        }
    }
    greenlet_local! {
        static RAW: RefCell<Option<RawSwitchInDrop>> = RefCell::new(None);
    }
    let log = Log::default();
    let l = log.clone();
    on_a_thread(move || {
        let l1 = l.clone();
        let first = hub::spawn(move || {
            RAW.with(|r| *r.borrow_mut() = Some(RawSwitchInDrop(l1)));
        });
        let l2 = l.clone();
        let next_guard = l.guard("next: dropped");
        let q: hub::Queue<u32> = hub::Queue::new();
        let next = hub::spawn(move || {
            let _g = next_guard;
            l2.push("next ran");
            q.get()
        });
        // Main yields; the first runs, finishes, and its local switches
        // back here.
        let r = catch_unwind(AssertUnwindSafe(hub::yield_now));
        l.push(format!("main back, yield returned: {}", r.is_ok()));
        // The hub still works: no stale wake-up of main's later wait.
        let q2: hub::Queue<u32> = hub::Queue::new();
        let (q3, l3) = (q2.clone(), l.clone());
        let putter = hub::spawn(move || {
            l3.push("putter runs");
            q3.put(9);
        });
        let v = catch_unwind(AssertUnwindSafe(|| q2.get()));
        l.push(format!(
            "main's get: {:?}",
            v.map_err(|p| message(p.as_ref()))
        ));
        drop((putter, first, next)); // detached
        l.push("handles dropped");
    });
    assert_eq!(
        log.lines(),
        [
            // The local's raw switch reached main in its yield.
            "main back, yield returned: true",
            "next ran",
            "putter runs",
            "main's get: Ok(9)",
            "local unwound",
            "handles dropped",
        ]
    );
}

// ----- the child process ----- -----

/// A guard that prints when dropped (stdout, line-buffered, is flushed
/// at each line, so the line survives `process::exit`).
struct Prints(&'static str);

impl Drop for Prints {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

/// Leaves a greenlet suspended holding a `Prints` guard.
fn leave_a_printing_greenlet(what: &'static str) {
    let g = Greenlet::new(move |()| {
        let _p = Prints(what);
        let _: () = Greenlet::main().switch(()).unwrap();
    });
    g.switch::<(), ()>(()).unwrap();
    keep_until_exit(g);
}

/// Sets a switch hook whose captured state, when dropped, leaves a
/// suspended greenlet numbered `n` and sets the next hook.
fn endless_hook(n: u32) {
    struct Next(u32);
    impl Drop for Next {
        fn drop(&mut self) {
            let n = self.0;
            let g = Greenlet::new(move |()| {
                let _p = PrintsOwned(format!("round greenlet {n} unwound"));
                let _: () = Greenlet::main().switch(()).unwrap();
            });
            g.switch::<(), ()>(()).unwrap();
            keep_until_exit(g);
            endless_hook(n + 1);
        }
    }
    let next = Next(n);
    set_switch_hook(Some(Box::new(move |_| {
        let _ = &next;
    })));
}

/// `Prints` with a made message.
struct PrintsOwned(String);

impl Drop for PrintsOwned {
    fn drop(&mut self) {
        println!("{}", self.0);
    }
}

fn child_main(mode: &str) {
    match mode {
        // The process exits from main with greenlets suspended.
        "exit from main" => {
            leave_a_printing_greenlet("unwound at exit");
            println!("OK: exiting with an active greenlet");
            std::process::exit(3);
        }
        // The process exits from inside a greenlet: its stack cannot be
        // unwound from the exit, everything is left as it is.
        "exit from a greenlet" => {
            leave_a_printing_greenlet("other unwound at exit");
            let g = Greenlet::new(|()| {
                let _p = Prints("exiting greenlet's guard dropped");
                println!("OK: exiting from a greenlet");
                std::process::exit(4);
            });
            g.switch::<(), ()>(()).unwrap();
            unreachable!();
        }
        // A destructor run by a thread exit's teardown (of an unstarted
        // greenlet's function, which it drops unrun) exits the process.
        "exit from the teardown" => {
            std::thread::spawn(|| {
                at_exit_after_teardown(|| {
                    let r = catch_unwind(|| Greenlet::current().id());
                    println!("late destructor: current ok {}", r.is_ok());
                });
                struct Exits;
                impl Drop for Exits {
                    fn drop(&mut self) {
                        println!("unrun function exits the process");
                        std::process::exit(5);
                    }
                }
                leave_a_printing_greenlet("suspended one unwound");
                let exits = Exits;
                keep_until_exit(Greenlet::new(move |()| {
                    let _e = exits;
                    println!("unstarted one ran");
                }));
            })
            .join()
            .unwrap();
            println!("joined");
        }
        // Each switch hook, dropped by the teardown, leaves a suspended
        // greenlet and a new hook: more rounds than the teardown makes.
        "endless hooks" => {
            std::thread::spawn(|| {
                endless_hook(0);
                leave_a_printing_greenlet("first unwound");
            })
            .join()
            .unwrap();
            println!("joined");
        }
        _ => unreachable!("{mode}"),
    }
}

#[test]
fn shutdown_child() {
    // Only does something when re-run by the tests that need a process.
    if let Ok(mode) = std::env::var(CHILD) {
        child_main(&mode);
    }
}

fn run_child(mode: &str) -> (std::process::ExitStatus, String, String) {
    let out = crate::child::run("test_interpreter_shutdown::shutdown_child", CHILD, mode);
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The process exits (`std::process::exit`) from main with a greenlet
/// suspended: the exit status is kept and nothing aborts. (glibc's `exit`
/// runs the calling thread's thread-local destructors, so the teardown
/// runs too, and leaves the greenlet suspended, its guard not run, as
/// every thread exit does: row 15.)
#[test]
fn edge_process_exit_from_main_with_a_suspended_greenlet() {
    let (status, stdout, stderr) = run_child("exit from main");
    assert_eq!(status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("OK: exiting with an active greenlet"),
        "{stdout}"
    );
    assert!(!stdout.contains("unwound at exit"), "{stdout}\n{stderr}");
}

/// The process exits from inside a greenlet: the teardown cannot unwind
/// a stack from there, so it leaves everything (no guard runs) and the
/// exit status is kept.
#[test]
fn edge_process_exit_from_a_greenlet() {
    let (status, stdout, stderr) = run_child("exit from a greenlet");
    assert_eq!(status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(stdout.contains("OK: exiting from a greenlet"), "{stdout}");
    assert!(!stdout.contains("guard dropped"), "{stdout}");
    assert!(!stdout.contains("unwound at exit"), "{stdout}");
}

/// Switch hooks whose destructors each leave a suspended greenlet and a
/// new hook, without end: the teardown goes round 16 times (row 15),
/// each round dropping the hook the previous one set; every started
/// greenlet, the first and those the hooks left, is left suspended, its
/// guard never run; what the last round leaves is left as it is (one line
/// on stderr says so), and the thread still exits.
#[test]
fn edge_hooks_leaving_greenlets_without_end_at_thread_exit() {
    let (status, stdout, stderr) = run_child("endless hooks");
    assert!(status.success(), "{status:?}\n{stdout}\n{stderr}");
    assert!(!stdout.contains("unwound"), "{stdout}");
    assert!(stdout.contains("joined"), "{stdout}");
    assert_eq!(
        stderr.matches("after 16 rounds of teardown").count(),
        1,
        "{stderr}"
    );
}

/// A destructor run by a thread exit's teardown (an unstarted greenlet's
/// function, dropped unrun) exits the process: the exit status is kept,
/// nothing aborts, and the started greenlet left suspended (row 15) is
/// not unwound by that exit either.
#[test]
fn edge_process_exit_from_a_teardown_destructor() {
    let (status, stdout, stderr) = run_child("exit from the teardown");
    assert_eq!(status.code(), Some(5), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("unrun function exits the process"),
        "{stdout}"
    );
    assert!(!stdout.contains("unstarted one ran"), "{stdout}");
    assert!(!stdout.contains("suspended one unwound"), "{stdout}");
}
