//! The blocked-hub monitor: reports greenlets that run too long without
//! switching, and says nothing when off.
//!
//! The spinning greenlets busy-loop on a clock (that is what the monitor
//! is for); the assertions are on the reports, not on time.

use std::cell::{Cell, RefCell};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::hub::{self, Blocked};
use greenlet::{set_switch_hook, Greenlet};

/// Runs without switching for `d`.
fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

const LIMIT: Duration = Duration::from_millis(10);
const SPIN: Duration = Duration::from_millis(60);

/// A greenlet asleep on the hub for the guard's life: a long run keeps it
/// waiting, so the monitor watches the run (with nothing the hub could
/// run, nobody waited, and nothing is reported).
struct Sleeper(Option<hub::JoinHandle<()>>);

fn sleeper() -> Sleeper {
    let h = hub::spawn(|| hub::sleep(Duration::from_secs(3600)));
    hub::yield_now(); // it starts, and sleeps
    Sleeper(Some(h))
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.kill();
        }
    }
}

fn collect() -> Rc<RefCell<Vec<Blocked>>> {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let log = reports.clone();
    hub::monitor_with(LIMIT, move |b| log.borrow_mut().push(b.clone()));
    reports
}

#[test]
fn a_greenlet_spinning_past_the_limit_is_reported_with_name_id_and_duration() {
    let reports = collect();
    let sleeping = sleeper();
    let spinner = Greenlet::builder()
        .name("spinner")
        .build(|()| spin(SPIN))
        .unwrap();
    let id = spinner.id();
    spinner.switch::<(), ()>(()).unwrap();
    // A spawned one too, among greenlets that switch often.
    let polite = hub::spawn(|| {
        for _ in 0..100 {
            hub::yield_now();
        }
    });
    let spawned = hub::spawn(|| spin(SPIN));
    let spawned_id = spawned.greenlet().id();
    drop(sleeping);
    hub::run();
    hub::monitor(None);
    polite.join().unwrap();

    let reports = reports.borrow();
    let mine: Vec<_> = reports.iter().filter(|b| b.id == id).collect();
    assert_eq!(mine.len(), 1, "{reports:?}");
    assert_eq!(mine[0].name.as_deref(), Some("spinner"));
    assert!(mine[0].ran >= SPIN, "{:?}", mine[0].ran);
    assert_eq!(mine[0].limit, LIMIT);
    let text = mine[0].to_string();
    assert!(text.contains("greenlet 'spinner' (id"), "{text}");
    assert!(text.contains("without switching"), "{text}");
    let theirs: Vec<_> = reports.iter().filter(|b| b.id == spawned_id).collect();
    assert_eq!(theirs.len(), 1, "{reports:?}");
    assert_eq!(theirs[0].name, None);
}

/// Spins past the limit, then yields: the monitor's report is made at
/// that yield, on this greenlet's stack. Never inlined, so its name is in
/// the stack in release builds too.
#[inline(never)]
fn spin_then_yield_in_a_named_frame() {
    spin(SPIN);
    hub::yield_now();
}

#[test]
fn a_report_carries_the_stack_where_the_long_run_ended() {
    let reports = collect();
    let sleeping = sleeper();
    let spinner = hub::spawn(spin_then_yield_in_a_named_frame);
    let id = spinner.greenlet().id();
    drop(sleeping);
    spinner.join().unwrap();
    hub::monitor(None);
    let reports = reports.borrow();
    let mine: Vec<_> = reports.iter().filter(|b| b.id == id).collect();
    assert_eq!(mine.len(), 1, "{reports:?}");
    assert_eq!(
        mine[0].switched_at.status(),
        std::backtrace::BacktraceStatus::Captured
    );
    let stack = mine[0].switched_at.to_string();
    assert!(
        stack.contains("spin_then_yield_in_a_named_frame"),
        "{stack}"
    );
    // The frame of the yield itself (inlined into its caller's in
    // release builds, so the name varies): above the named frame.
    let yielded = stack.find("yield").unwrap_or(usize::MAX);
    assert!(yielded < stack.find("spin_then_yield").unwrap(), "{stack}");
}

#[test]
fn nothing_is_reported_once_turned_off_and_a_previous_hook_is_chained_then_restored() {
    let calls = Rc::new(Cell::new(0u32));
    let seen = calls.clone();
    set_switch_hook(Some(Box::new(move |_| seen.set(seen.get() + 1))));
    let reports = collect();
    let g = Greenlet::new(|()| ());
    g.switch::<(), ()>(()).unwrap();
    assert_eq!(calls.get(), 2, "the earlier hook still sees the switches");
    hub::monitor(None);
    let quiet = Greenlet::new(|()| spin(SPIN));
    quiet.switch::<(), ()>(()).unwrap();
    assert!(
        reports.borrow().iter().all(|b| b.id != quiet.id()),
        "off: nothing said"
    );
    assert_eq!(calls.get(), 4, "the earlier hook is back");
    set_switch_hook(None);
}

/// A callback that panics turns the monitor off, putting back the hook
/// set before it; the panic goes where a switch hook's goes (here, with
/// the long run ended by a finish, to stderr).
#[test]
fn a_panicking_callback_turns_the_monitor_off_and_the_earlier_hook_back() {
    let calls = Rc::new(Cell::new(0u32));
    let seen = calls.clone();
    set_switch_hook(Some(Box::new(move |_| seen.set(seen.get() + 1))));
    let _sleeper = sleeper();
    hub::monitor_with(LIMIT, |_| panic!("the callback panics"));
    hub::spawn(|| spin(SPIN)).join().unwrap();
    calls.set(0);
    let g = Greenlet::new(|()| spin(SPIN));
    g.switch::<(), ()>(()).unwrap();
    assert_eq!(
        calls.get(),
        2,
        "the earlier hook is back, and nothing panics"
    );
    set_switch_hook(None);
}

/// A callback that kills the greenlet it is told about (a watchdog's way)
/// stays the monitor's callback: later long runs reach it too, not stderr.
#[test]
fn a_callback_that_kills_the_long_runner_stays() {
    let _sleeper = sleeper();
    let told = Rc::new(RefCell::new(Vec::new()));
    let (t, victim) = (told.clone(), Rc::new(Cell::new(u64::MAX)));
    let v = victim.clone();
    hub::monitor_with(LIMIT, move |b| {
        t.borrow_mut().push(b.id);
        if b.id == v.get() {
            Greenlet::current().kill(); // the callback runs on the long runner
        }
    });
    let killed = hub::spawn(|| {
        spin(SPIN);
        hub::yield_now();
    });
    victim.set(killed.greenlet().id());
    assert!(killed.join().is_err(), "killed by the callback");
    let later = hub::spawn(spin_then_yield_in_a_named_frame);
    let later_id = later.greenlet().id();
    later.join().unwrap();
    hub::monitor(None);
    assert!(
        told.borrow().contains(&later_id),
        "told of the later run: {told:?}"
    );
}

/// A hook chained under the monitor that kills the greenlet it is told
/// about is kept too: it sees the later switches, and turning the monitor
/// off puts it back.
#[test]
fn a_chained_hook_that_kills_the_origin_stays_chained() {
    let seen = Rc::new(Cell::new(0u32));
    let (s, victim) = (seen.clone(), Rc::new(Cell::new(u64::MAX)));
    let v = victim.clone();
    set_switch_hook(Some(Box::new(move |e| {
        s.set(s.get() + 1);
        if e.origin.id() == v.get() && e.kind == greenlet::SwitchKind::Switch {
            v.set(u64::MAX);
            Greenlet::current().kill(); // the origin runs the hook
        }
    })));
    hub::monitor_with(Duration::from_secs(3600), |_| {});
    let killed = hub::spawn(hub::yield_now);
    victim.set(killed.greenlet().id());
    assert!(killed.join().is_err(), "killed by the chained hook");
    let before = seen.get();
    Greenlet::new(|()| ()).switch::<(), ()>(()).unwrap();
    assert!(seen.get() > before, "still chained");
    hub::monitor(None);
    assert!(
        set_switch_hook(None).is_some(),
        "put back when the monitor went off"
    );
}

/// Taking the monitor's hook out turns the monitor off (its watchdog
/// stopped); putting it back and calling `monitor_with` turns it on again.
#[test]
fn a_monitor_hook_taken_out_and_put_back_is_turned_on_again() {
    let _sleeper = sleeper();
    hub::monitor_with(LIMIT, |_| {});
    // Wrapped for a while: a switch through the wrapper tells the monitor
    // its hook is not the thread's any more.
    let taken = Rc::new(RefCell::new(set_switch_hook(None)));
    let wrapped = taken.clone();
    set_switch_hook(Some(Box::new(move |e| {
        if let Some(hook) = wrapped.borrow_mut().as_mut() {
            hook(e);
        }
    })));
    Greenlet::new(|()| ()).switch::<(), ()>(()).unwrap();
    drop(set_switch_hook(None));
    set_switch_hook(taken.borrow_mut().take());
    let reports = collect();
    let spinner = hub::spawn(spin_then_yield_in_a_named_frame);
    let id = spinner.greenlet().id();
    spinner.join().unwrap();
    hub::monitor(None);
    assert!(reports.borrow().iter().any(|b| b.id == id));
}

/// The child half of `the_environment_variable_turns_it_on_and_off`.
#[test]
fn child_spins_in_a_spawned_greenlet() {
    let Some(mode) = std::env::var_os("GREENLET_TEST_CHILD") else {
        return;
    };
    if mode == "explicit" {
        // Set before the hub starts: the environment must not override it.
        hub::monitor_with(LIMIT, |b| eprintln!("explicit callback: {}", b.ran >= SPIN));
    }
    hub::spawn(|| spin(SPIN)).join().unwrap();
}

#[test]
fn the_environment_variable_turns_it_on_and_off() {
    let run_as = |mode: &str, limit: Option<&str>| {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "child_spins_in_a_spawned_greenlet",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GREENLET_TEST_CHILD", mode)
        .env_remove("GREENLET_MAX_BLOCKING_MS");
        if let Some(limit) = limit {
            cmd.env("GREENLET_MAX_BLOCKING_MS", limit);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let run = |limit| run_as("1", limit);
    // A monitor the thread set itself wins over the environment's.
    let explicit = run_as("explicit", Some("100000"));
    assert!(explicit.contains("explicit callback: true"), "{explicit}");
    let on = run(Some("10"));
    assert!(on.contains("greenlet::hub::monitor: greenlet id"), "{on}");
    assert!(on.contains("without switching (limit 10ms)"), "{on}");
    let off = run(None);
    assert!(!off.contains("greenlet::hub::monitor"), "{off}");
    let bad = run(Some("soon"));
    assert!(bad.contains("is not a number of milliseconds"), "{bad}");
}

#[test]
fn a_callback_that_switches_the_monitor_to_stderr_is_not_called_again() {
    let calls = Rc::new(Cell::new(0u32));
    let c = calls.clone();
    hub::monitor_with(LIMIT, move |_| {
        c.set(c.get() + 1);
        hub::monitor(Some(LIMIT)); // from now on: stderr
    });
    let _sleeping = sleeper();
    for _ in 0..2 {
        let g = Greenlet::new(|()| spin(SPIN));
        g.switch::<(), ()>(()).unwrap();
    }
    hub::monitor(None);
    assert_eq!(calls.get(), 1);
}

#[test]
fn turning_the_monitor_off_keeps_a_hook_set_after_it_that_chains_to_it() {
    let reports = collect();
    let calls = Rc::new(Cell::new(0u32));
    let seen = calls.clone();
    // A later hook that keeps the monitor's and calls it.
    let slot: Rc<RefCell<Option<greenlet::SwitchHook>>> = Rc::new(RefCell::new(None));
    let chained = slot.clone();
    let monitors = set_switch_hook(Some(Box::new(move |e| {
        seen.set(seen.get() + 1);
        if let Some(m) = chained.borrow_mut().as_mut() {
            m(e);
        }
    })));
    *slot.borrow_mut() = monitors;
    hub::monitor(None); // the monitor's hook was replaced: off, nothing swapped
    let g = Greenlet::new(|()| spin(SPIN));
    g.switch::<(), ()>(()).unwrap();
    assert_eq!(calls.get(), 2, "the later hook is still the thread's");
    assert!(reports.borrow().is_empty(), "the monitor is off");
    set_switch_hook(None);
    slot.borrow_mut().take();
}

#[test]
fn a_monitor_set_while_the_old_one_is_stashed_away_reports() {
    let old = collect();
    let stashed = set_switch_hook(None); // a tracer borrows the slot, say
    let reports = collect();
    let _sleeping = sleeper();
    let g = Greenlet::new(|()| spin(SPIN));
    let id = g.id();
    g.switch::<(), ()>(()).unwrap();
    hub::monitor(None);
    assert!(
        reports.borrow().iter().any(|b| b.id == id),
        "the new monitor is on"
    );
    assert!(old.borrow().is_empty());
    drop(stashed);
}

#[test]
fn a_long_run_with_no_other_greenlet_alive_is_not_reported() {
    // gevent's rule: nobody waited. Main spins with only the hub beside
    // it, then a greenlet of its own and a generator's step spin (their
    // caller is not kept from running); then a child spins while main
    // waits to join it, which is reported.
    let reports = collect();
    spin(SPIN);
    hub::yield_now();
    Greenlet::new(|()| spin(SPIN)).switch::<(), ()>(()).unwrap();
    let mut steps = greenlet::Generator::new(|y: &greenlet::Yielder<u8>| {
        spin(SPIN);
        y.yield_(1);
    });
    assert_eq!(steps.next(), Some(1));
    hub::yield_now();
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
    hub::spawn(|| spin(SPIN)).join().unwrap();
    assert_eq!(reports.borrow().len(), 1, "{:?}", reports.borrow());
    hub::monitor(None);
}

#[test]
fn a_pool_thread_waiting_for_its_next_job_is_not_reported() {
    // gevent's threadpool-worker cases: the monitor is on for the pool's
    // one thread (its jobs use greenlets); the thread then waits for work
    // longer than the limit, runs a job that switches, and a job that
    // blocks its thread with a greenlet of its own alive.
    use std::sync::{Arc, Mutex};
    let pool = hub::ThreadPool::new(1, Duration::from_secs(60));
    let reports: Arc<Mutex<Vec<String>>> = Arc::default();
    let r = reports.clone();
    pool.spawn(move || {
        hub::monitor_with(LIMIT, move |b| r.lock().unwrap().push(b.to_string()));
        hub::yield_now();
    })
    .join()
    .unwrap();
    spin(SPIN); // the pool thread waits for work meanwhile
    pool.spawn(hub::yield_now).join().unwrap();
    assert!(
        reports.lock().unwrap().is_empty(),
        "{:?}",
        reports.lock().unwrap()
    );
    pool.spawn(|| {
        // The job itself may block (it is on a pool); a greenlet it
        // spawns is reported as on any thread.
        spin(SPIN);
        hub::Builder::new()
            .name("in-job")
            .spawn(|| spin(SPIN))
            .unwrap()
            .join()
            .unwrap();
    })
    .join()
    .unwrap();
    let seen = reports.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains("'in-job'"), "{seen:?}");
    pool.spawn(|| hub::monitor(None)).join().unwrap();
}

/// The child half of `an_endless_loop_is_reported_while_it_runs`: a
/// greenlet that never switches, under a monitor reporting on stderr.
#[test]
fn child_loops_for_ever() {
    if std::env::var_os("GREENLET_TEST_CHILD").as_deref() != Some("endless".as_ref()) {
        return;
    }
    hub::monitor(Some(Duration::from_secs(100)));
    let _spinner = hub::Builder::new()
        .name("spinner")
        .spawn(|| {
            // Changed inside the run: the new limit's watchdog watches the
            // run under way.
            hub::monitor(Some(LIMIT));
            loop {
                std::hint::spin_loop();
            }
        })
        .unwrap()
        .join();
}

#[test]
fn an_endless_loop_is_reported_while_it_runs() {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_loops_for_ever",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GREENLET_TEST_CHILD", "endless")
        .env_remove("GREENLET_MAX_BLOCKING_MS")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("greenlet::hub::monitor") {
                let _ = tx.send(line);
                break;
            }
        }
    });
    // Only a bound on a hang: the report comes within a few limits.
    let line = rx.recv_timeout(Duration::from_secs(60));
    child.kill().unwrap();
    child.wait().unwrap();
    let line = line.expect("a report while the loop runs");
    assert!(line.contains("without switching and still runs"), "{line}");
    assert!(line.contains("limit 10ms"), "{line}");
}

/// The child half of `pool_threads_are_not_reported_for_blocking_jobs`.
#[test]
fn child_runs_blocking_jobs_on_a_pool() {
    if std::env::var_os("GREENLET_TEST_CHILD").as_deref() != Some("pool".as_ref()) {
        return;
    }
    let pool = hub::ThreadPool::new(1, Duration::from_secs(60));
    // The pool thread's hub starts (and the environment turns its monitor
    // on, with a watchdog); then it idles, and runs a job that blocks.
    pool.spawn(hub::yield_now).join().unwrap();
    spin(SPIN);
    pool.spawn(|| spin(SPIN)).join().unwrap();
    spin(SPIN);
    pool.spawn(hub::yield_now).join().unwrap();
    eprintln!("child done");
}

#[test]
fn pool_threads_are_not_reported_for_blocking_jobs_or_waiting_for_work() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_runs_blocking_jobs_on_a_pool",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GREENLET_TEST_CHILD", "pool")
        .env("GREENLET_MAX_BLOCKING_MS", "10")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("child done"), "{err}");
    assert!(!err.contains("greenlet::hub::monitor"), "{err}");
}

/// The threads of this process (a thread exists once `spawn` returns;
/// its name may come later, so they are not told apart by name).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The child half of `turning_the_monitor_off_or_changing_it_leaves_no_watchdog`.
#[test]
fn child_turns_the_monitor_on_and_off() {
    if std::env::var_os("GREENLET_TEST_CHILD").as_deref() != Some("onoff".as_ref()) {
        return;
    }
    let base = threads();
    let mut seen = vec![];
    hub::monitor(Some(Duration::from_secs(100)));
    seen.push(threads() - base);
    for _ in 0..20 {
        hub::monitor(Some(Duration::from_secs(50))); // a new limit: a new watchdog
    }
    seen.push(threads() - base);
    hub::monitor_with(LIMIT, |_| ()); // a callback: no watchdog
    seen.push(threads() - base);
    hub::monitor(Some(LIMIT));
    hub::monitor(None);
    seen.push(threads() - base);
    std::thread::spawn(|| hub::monitor(Some(Duration::from_secs(100))))
        .join()
        .unwrap();
    seen.push(threads() - base);
    eprintln!("watchdogs {seen:?}");
}

#[test]
fn turning_the_monitor_off_or_changing_it_leaves_no_watchdog() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_turns_the_monitor_on_and_off",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GREENLET_TEST_CHILD", "onoff")
        .env_remove("GREENLET_MAX_BLOCKING_MS")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    // Off, on, changed 20 times, a callback, off, and a thread that exited
    // with its monitor on.
    assert!(err.contains("watchdogs [1, 1, 0, 0, 0]"), "{err}");
}

#[test]
fn main_alone_inside_its_own_with_timeout_is_not_reported() {
    // Its scope's timer is its own: nobody else waits.
    let reports = collect();
    let _ = hub::with_timeout(Duration::from_secs(3600), || {
        hub::yield_now();
        spin(SPIN);
        hub::yield_now();
    });
    hub::monitor(None);
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

#[test]
fn a_hook_set_after_the_monitor_turns_it_off_even_if_it_chains_to_it() {
    let reports = collect();
    let slot: Rc<RefCell<Option<greenlet::SwitchHook>>> = Rc::new(RefCell::new(None));
    let chained = slot.clone();
    let monitors = set_switch_hook(Some(Box::new(move |e| {
        if let Some(m) = chained.borrow_mut().as_mut() {
            m(e);
        }
    })));
    *slot.borrow_mut() = monitors;
    // No `monitor` call since: the monitor finds itself replaced.
    let _sleeping = sleeper();
    hub::spawn(|| spin(SPIN)).join().unwrap();
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
    set_switch_hook(None);
    slot.borrow_mut().take();
}

#[test]
fn a_hook_set_before_that_turns_the_monitor_off_from_its_own_call_is_put_back() {
    let calls = Rc::new(Cell::new(0u32));
    let c = calls.clone();
    let turned_off = Rc::new(Cell::new(false));
    let t = turned_off.clone();
    set_switch_hook(Some(Box::new(move |_| {
        c.set(c.get() + 1);
        if !t.replace(true) {
            hub::monitor(None); // from inside the chained call
        }
    })));
    hub::monitor_with(LIMIT, |_| ());
    hub::yield_now(); // the monitor's hook calls the one before, which turns it off
    let seen = calls.get();
    hub::yield_now();
    assert!(
        calls.get() > seen,
        "the hook set before is the thread's again"
    );
    set_switch_hook(None);
}

/// The child half of `turning_the_monitor_off_never_waits_for_a_locked_stderr`.
#[test]
fn child_holds_stderr_across_a_switch() {
    if std::env::var_os("GREENLET_TEST_CHILD").as_deref() != Some("stderr".as_ref()) {
        return;
    }
    hub::monitor(Some(LIMIT));
    // A greenlet holds std's stderr lock across a switch: the watchdog's
    // report must not wait for it, nor `monitor(None)` for the watchdog.
    let holder = hub::spawn(|| {
        let _locked = std::io::stderr().lock();
        hub::sleep(Duration::from_secs(3600));
    });
    hub::yield_now();
    hub::spawn(|| spin(SPIN * 3)).join().unwrap();
    hub::monitor(None);
    holder.kill();
    println!("child done");
}

#[test]
fn turning_the_monitor_off_never_waits_for_a_locked_stderr() {
    let mut cmd = greenlet::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_holds_stderr_across_a_switch",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("GREENLET_TEST_CHILD", "stderr")
    .env_remove("GREENLET_MAX_BLOCKING_MS");
    // Only a bound on a hang (the child is killed if it deadlocks).
    let out = hub::with_timeout(Duration::from_secs(60), || cmd.output())
        .expect("the child deadlocked")
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("child done"));
}

/// Two switches: main to a fresh greenlet and back.
fn two_switches() {
    let g = Greenlet::new(|x: u32| x + 1);
    assert_eq!(g.switch::<u32, u32>(1).unwrap(), 2);
}

#[test]
fn a_hook_set_before_may_turn_the_monitor_off_and_on_again_from_its_own_call() {
    let a_calls = Rc::new(Cell::new(0u32));
    let armed = Rc::new(Cell::new(false));
    let reports = Rc::new(RefCell::new(Vec::new()));
    let (ac, ar, rp) = (a_calls.clone(), armed.clone(), reports.clone());
    set_switch_hook(Some(Box::new(move |_| {
        ac.set(ac.get() + 1);
        if ar.replace(false) {
            hub::monitor(None);
            let rp = rp.clone();
            hub::monitor_with(LIMIT, move |b| rp.borrow_mut().push(b.id));
        }
    })));
    hub::monitor(Some(Duration::from_secs(10)));
    armed.set(true);
    two_switches(); // the first call turns the monitor off and on again
    let base = a_calls.get();
    two_switches();
    assert_eq!(
        a_calls.get() - base,
        2,
        "the hook set before, once a switch"
    );
    let _sleeping = sleeper();
    let spinner = hub::spawn(|| spin(SPIN));
    let id = spinner.greenlet().id();
    spinner.join().unwrap();
    hub::monitor(None);
    set_switch_hook(None);
    assert!(
        reports.borrow().contains(&id),
        "the monitor turned on again is on"
    );
}

#[test]
fn a_hook_set_from_the_chained_call_of_one_set_before_replaces_both() {
    let a_calls = Rc::new(Cell::new(0u32));
    let b_calls = Rc::new(Cell::new(0u32));
    let armed = Rc::new(Cell::new(false));
    let (ac, ar, bc) = (a_calls.clone(), armed.clone(), b_calls.clone());
    set_switch_hook(Some(Box::new(move |_| {
        ac.set(ac.get() + 1);
        if ar.replace(false) {
            hub::monitor(None);
            let bc = bc.clone();
            set_switch_hook(Some(Box::new(move |_| bc.set(bc.get() + 1))));
        }
    })));
    hub::monitor(Some(Duration::from_secs(10)));
    armed.set(true);
    two_switches();
    let (a0, b0) = (a_calls.get(), b_calls.get());
    two_switches();
    let (da, db) = (a_calls.get() - a0, b_calls.get() - b0);
    set_switch_hook(None);
    assert_eq!((da, db), (0, 2), "the new hook alone");
}

/// The child half of `a_report_on_a_greenlet_with_a_small_stack_is_made_on_a_stack_of_its_own`.
#[test]
fn child_reports_a_small_stack_greenlet() {
    let Some(mode) = std::env::var_os("GREENLET_TEST_CHILD") else {
        return;
    };
    let small = |f: fn()| hub::Builder::new().stack_size(16 * 1024).spawn(f).unwrap();
    let _sleeping = sleeper();
    if mode == "small-callback" {
        // A callback that formats the stack, as a user's would.
        hub::monitor_with(LIMIT, |b| {
            let text = b.switched_at.to_string();
            eprintln!("callback saw {} bytes of stack", text.len());
        });
    } else {
        hub::monitor(Some(LIMIT));
    }
    small(spin_then_yield_in_a_named_frame).join().unwrap();
    hub::monitor(None);
    eprintln!("child done");
}

#[test]
fn a_report_on_a_greenlet_with_a_small_stack_is_made_on_a_stack_of_its_own() {
    for mode in ["small-stderr", "small-callback"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_reports_a_small_stack_greenlet",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("GREENLET_TEST_CHILD", mode)
            .env_remove("GREENLET_MAX_BLOCKING_MS")
            .output()
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        // Formatting the stack on the greenlet's 16 KiB overflowed it.
        assert!(out.status.success(), "{mode}: {err}");
        assert!(err.contains("child done"), "{mode}: {err}");
        if mode == "small-stderr" {
            assert!(err.contains("its stack when it switched"), "{err}");
            assert!(err.contains("spin_then_yield_in_a_named_frame"), "{err}");
        } else {
            assert!(err.contains("callback saw"), "{err}");
        }
    }
}

/// The child half of `a_report_on_a_broken_stderr_is_dropped`: a run past
/// the limit, reported on stderr when it ends, with nobody left to read
/// stderr.
#[test]
fn child_spins_with_nobody_reading_stderr() {
    if std::env::var_os("GREENLET_TEST_CHILD").as_deref() != Some("broken-stderr".as_ref()) {
        return;
    }
    hub::monitor(Some(LIMIT));
    let _sleeper = sleeper();
    hub::spawn(|| spin(SPIN)).join().unwrap();
    hub::monitor(None);
}

/// A report the monitor cannot write (stderr is a pipe whose reader is
/// gone, a log collector that died) is dropped: the program goes on. It
/// must not panic, which inside the switch that ends the run would abort
/// the process.
#[test]
fn a_report_on_a_broken_stderr_is_dropped() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_spins_with_nobody_reading_stderr",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GREENLET_TEST_CHILD", "broken-stderr")
        .env_remove("GREENLET_MAX_BLOCKING_MS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The pipe's one reader goes before the child's run ends (it spins
    // for `SPIN` first): the report's write fails with `EPIPE`.
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// A callback replaced by another is dropped after the monitor's state is
/// let go: its destructor may turn the monitor off (before, "already
/// borrowed").
#[test]
fn a_replaced_callback_may_turn_the_monitor_off_as_it_drops() {
    struct OffOnDrop;
    impl Drop for OffOnDrop {
        fn drop(&mut self) {
            hub::monitor(None);
        }
    }
    let off = OffOnDrop;
    hub::monitor_with(Duration::from_secs(5), move |_| {
        let _ = &off;
    });
    hub::monitor_with(Duration::from_secs(5), |_| {});
    hub::monitor(None);
}

/// The child half of
/// `the_watchdog_never_blames_the_next_greenlet_for_a_report_made_at_a_switch`.
#[test]
fn child_reports_at_switches_to_a_fresh_greenlet() {
    if std::env::var_os("GREENLET_TEST_CHILD").as_deref() != Some("report-then-switch".as_ref()) {
        return;
    }
    // Generous, so that a fresh greenlet that returns at once never runs
    // this long, however loaded the machine.
    const LIMIT: Duration = Duration::from_millis(100);
    // A thread that holds std's stderr lock for a while when asked: the
    // report made at the switch (printed under that lock) takes that long,
    // a slow stderr (a terminal, a pipe nobody drains fast). The hold is
    // the subject, not a wait for something: the watchdog is a wall-clock
    // mechanism, and what must not happen (a fresh greenlet blamed) can
    // only be given the time to happen, as the other tests here spin for
    // their runs. The watchdog writes past the lock, so it can speak
    // meanwhile.
    let (ask, asked) = std::sync::mpsc::channel::<()>();
    let (held, holds) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        for () in asked {
            let _locked = std::io::stderr().lock();
            held.send(()).unwrap();
            std::thread::sleep(LIMIT * 4);
        }
    });
    hub::monitor(Some(LIMIT));
    // Spawned: main waits in `join`, so the runs keep someone waiting and
    // are watched.
    let spinner = hub::spawn(move || {
        let mut fresh = Vec::new();
        for _ in 0..3 {
            spin(LIMIT * 3);
            ask.send(()).unwrap();
            holds.recv().unwrap();
            // Past the limit: reported at this switch, to a greenlet that
            // returns at once.
            let g = Greenlet::new(|()| Greenlet::current().id());
            fresh.push(g.switch::<(), u64>(()).unwrap());
        }
        fresh
    });
    let spinner_id = spinner.greenlet().id();
    let fresh = spinner.join().unwrap();
    hub::monitor(None);
    let fresh: Vec<String> = fresh.iter().map(u64::to_string).collect();
    println!("spinner {spinner_id} fresh {}", fresh.join(" "));
}

/// A run past the limit that ends with a switch straight to another
/// greenlet (a generator's, a coroutine's) is reported at that switch,
/// with its backtrace: that takes a while (here stderr is slow). The
/// watchdog must not take that time for the next greenlet's run (before,
/// it was published before the report, and a greenlet that had not even
/// started was said to have "run past the limit and still runs").
#[test]
fn the_watchdog_never_blames_the_next_greenlet_for_a_report_made_at_a_switch() {
    let mut cmd = greenlet::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_reports_at_switches_to_a_fresh_greenlet",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("GREENLET_TEST_CHILD", "report-then-switch")
    .env_remove("GREENLET_MAX_BLOCKING_MS");
    // Only a bound on a hang.
    let out = hub::with_timeout(Duration::from_secs(120), || cmd.output())
        .expect("the child hung")
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    // On the line of the test harness's "test ... ok" (the harness
    // prints the test's name first).
    let ids = stdout
        .lines()
        .find_map(|l| l.split_once("spinner ").map(|(_, ids)| ids))
        .unwrap_or_else(|| panic!("{stdout}"));
    let (spinner, fresh) = ids.split_once(" fresh ").unwrap();
    let fresh: Vec<&str> = fresh.split_whitespace().collect();
    assert_eq!(fresh.len(), 3, "{stdout}");
    // The runs were reported at their switches.
    let at_switch = format!("greenlet id {spinner} ran");
    assert!(err.matches(&at_switch).count() >= 3, "{err}");
    // The watchdog watched: it saw the spinner (each spin is past the
    // limit for two limits, four of its looks, three times over).
    let watched = format!("greenlet id {spinner} on thread");
    assert!(err.contains(&watched), "{err}");
    // The watchdog names no fresh greenlet, whose runs last microseconds.
    let blamed: Vec<&str> = err
        .lines()
        .filter(|l| {
            fresh
                .iter()
                .any(|id| l.contains(&format!("greenlet id {id} on thread")))
        })
        .collect();
    assert!(blamed.is_empty(), "{blamed:#?}");
}
