//! Daemon greenlets: waits that do not keep `hub::run` going.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, with_timeout, Queue};
use greenlet::net::AsyncFd;

/// Long enough that `run` waiting for it would be a hang, not a delay.
const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn run_returns_with_a_daemon_still_parked_on_a_channel() {
    let (tx, rx) = hub::channel::<u32>();
    let d = hub::spawn_daemon(move || rx.recv().unwrap());
    hub::run();
    assert!(!d.is_finished(), "the daemon is still parked");
    // It still works: a value wakes it on the next run.
    tx.send(5).unwrap();
    hub::run();
    assert!(d.is_finished());
    assert_eq!(d.join().unwrap(), 5);
}

#[test]
fn run_returns_with_a_daemon_asleep_but_waits_for_other_sleepers() {
    let sleeper = hub::spawn_daemon(|| hub::sleep(HOUR));
    let worker_done = Rc::new(Cell::new(false));
    let worker = {
        let done = worker_done.clone();
        hub::spawn(move || {
            hub::sleep(Duration::from_millis(1));
            done.set(true);
        })
    };
    hub::run();
    assert!(worker_done.get(), "a non-daemon's timer kept run going");
    assert!(worker.is_finished());
    assert!(!sleeper.is_finished());
    sleeper.kill();
}

#[test]
fn a_with_timeout_deadline_inside_a_daemon_does_not_keep_run_going() {
    let (_tx, rx) = hub::channel::<()>();
    let d = hub::spawn_daemon(move || with_timeout(HOUR, || rx.recv()));
    hub::run();
    assert!(!d.is_finished());
    d.kill();
}

#[test]
fn the_mark_is_scoped_and_a_marked_wait_ends_when_the_greenlet_goes_on() {
    let (tx, rx) = hub::channel::<u32>();
    let q = Queue::new();
    let g = {
        let q = q.clone();
        hub::spawn(move || {
            // Only this wait is a daemon's...
            let first = hub::daemon(|| rx.recv().unwrap());
            q.put(first);
            // ...this one keeps run going.
            hub::sleep(Duration::from_millis(1));
            first * 2
        })
    };
    hub::run();
    assert!(!g.is_finished());
    tx.send(21).unwrap();
    hub::run(); // runs through the non-daemon sleep
    assert!(g.is_finished());
    assert_eq!(q.try_get(), Some(21));
    assert_eq!(g.join().unwrap(), 42);
}

#[test]
fn a_daemon_killed_while_parked_leaves_no_mark_behind() {
    let (_tx, rx) = hub::channel::<()>();
    let d = hub::spawn_daemon(move || rx.recv());
    hub::run();
    d.kill();
    // No daemons are left: a plain channel wait keeps run going again,
    // which this test sees through the value it gets.
    let (tx2, rx2) = hub::channel::<u32>();
    let g = hub::spawn(move || rx2.recv().unwrap());
    let sender = std::thread::spawn(move || tx2.send(9).unwrap());
    hub::run(); // returns only once g got its value
    assert!(g.is_finished());
    assert_eq!(g.join().unwrap(), 9);
    sender.join().unwrap();
}

/// Main blocked in a call that only a daemon's wait could complete is
/// told it would block forever, as with no daemon at all (it waited for
/// ever while the daemon ticked: with the paused clock, a busy loop); a
/// call that other work completes still waits while daemons tick.
#[test]
fn main_blocked_on_what_only_daemons_wait_for_gets_the_blocked_forever_panic() {
    hub::time::pause();
    let _ticker = hub::spawn_daemon(|| loop {
        hub::sleep(Duration::from_secs(1));
    });
    let q: Queue<u32> = Queue::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.get()));
    let p = r.unwrap_err();
    let text = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(text.contains("would block forever"), "{text}");
    // It says why: a timer is pending, a daemon's (it used to say none was).
    assert!(
        text.contains("only daemon greenlets wait") && !text.contains("no timer is pending"),
        "{text}"
    );
    let q2 = q.clone();
    let _putter = hub::spawn(move || {
        hub::sleep(Duration::from_secs(5));
        q2.put(3);
    });
    assert_eq!(q.get(), 3);
    hub::time::resume();
}

/// A daemon greenlet that sleeps a second at a time, for ever, and the
/// count of its ticks.
fn daemon_ticking_every_second() -> (Rc<Cell<u32>>, hub::JoinHandle<()>) {
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let ticker = hub::spawn_daemon(move || loop {
        hub::sleep(Duration::from_secs(1));
        t.set(t.get() + 1);
    });
    (ticks, ticker)
}

/// Main's own sleep inside `hub::daemon` waits for its timer while a
/// daemon ticks: main's wait is not blocked for ever. (It was counted as a
/// daemon's, and the sleep panicked "would block forever".)
#[test]
fn main_sleeping_inside_daemon_sleeps() {
    hub::time::pause();
    let (ticks, _ticker) = daemon_ticking_every_second();
    let start = hub::time::now();
    hub::daemon(|| hub::sleep(Duration::from_secs(5)));
    assert_eq!(hub::time::now() - start, Duration::from_secs(5));
    assert!(ticks.get() >= 4, "{}", ticks.get());
    hub::time::resume();
}

/// Main inside `hub::daemon`, waiting on what nothing can bring while a
/// daemon ticks, is told it would block forever: its own wait, a daemon's
/// for `run`, has no timer, and nothing outside the thread can end it.
#[test]
fn main_inside_daemon_waiting_on_nothing_gets_the_blocked_forever_panic() {
    hub::time::pause();
    let (ticks, _ticker) = daemon_ticking_every_second();
    let never = hub::Event::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        hub::daemon(|| never.wait())
    }));
    assert!(r.is_err());
    assert_eq!(ticks.get(), 0, "told at once, not after ticks");
    hub::time::resume();
}

/// `wait_with_output` (and so `output`) in a daemon: its hidden stderr
/// reader waits as a daemon too, so `run` returns while the child still
/// runs. (The reader was an ordinary greenlet: its pipe wait kept `run`
/// going until the child ended.)
#[test]
fn a_daemons_wait_with_output_does_not_keep_run_going() {
    let pid = Rc::new(Cell::new(0));
    let p = pid.clone();
    let daemon = hub::spawn_daemon(move || {
        let child = greenlet::process::Command::new("sleep")
            .arg("10")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        p.set(child.id());
        child.wait_with_output()
    });
    hub::run();
    let pid = pid.get() as libc::pid_t;
    assert!(pid > 0);
    // Running (sleeping), not ended (a zombie) nor reaped.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rfind(')').and_then(|at| stat[at + 2..].chars().next());
    let alive = matches!(state, Some('R' | 'S' | 'D'));
    // SAFETY: the child is ours, not reaped yet (its daemon waits for it).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(daemon.wait_timeout(Duration::from_secs(60)));
    let output = daemon.join().unwrap().unwrap();
    assert!(!output.status.success());
    assert!(
        alive,
        "run returned only once the daemon's child had ended: {state:?}"
    );
}

/// Main inside `daemon` collecting a child's output waits on the hidden
/// stderr reader: that reader stays an ordinary greenlet for main, or the
/// wait would be refused as one only a daemon could end. (The change that
/// made the reader a daemon for a daemon's call did so for main too: this
/// panicked, "would block forever".) The child is slow on purpose, so
/// that main waits on the reader.
#[test]
fn main_inside_daemon_collects_a_childs_output() {
    let child = greenlet::process::Command::new("sh")
        .args(["-c", "sleep 0.2; echo err >&2"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let output = hub::daemon(|| child.wait_with_output()).unwrap();
    assert_eq!(output.stderr, b"err\n");
}

/// A daemon whose descriptor became ready since the hub last polled can
/// run: the hub polls once before it decides that only daemons wait (it
/// told main its join would block for ever, unless something had made the
/// hub poll since the write).
#[test]
fn joining_a_daemon_whose_descriptor_became_ready_waits_for_it() {
    use std::io::Write;
    let (reader, mut writer) = std::io::pipe().unwrap();
    let daemon = hub::spawn_daemon(move || hub::wait_readable(&reader, None).map_err(|e| e.kind()));
    hub::yield_now(); // it waits on the empty pipe
    assert!(!daemon.is_finished());
    writer.write_all(b"x").unwrap();
    assert_eq!(daemon.join().unwrap(), Ok(()));
}

/// Two daemons passing a byte to and fro through two pipes: each keeps
/// the other's descriptor ready.
fn ping_ponging_daemons() {
    use std::io::{Read, Write};
    use std::os::fd::OwnedFd;
    let pipe = || {
        let (r, w) = std::io::pipe().unwrap();
        (OwnedFd::from(r), OwnedFd::from(w))
    };
    let ((there_r, there_w), (back_r, back_w)) = (pipe(), pipe());
    hub::spawn_daemon(move || {
        let (there, back) = (
            AsyncFd::new(there_w).unwrap(),
            AsyncFd::new(back_r).unwrap(),
        );
        loop {
            (&there).write_all(b"x").unwrap();
            (&back).read_exact(&mut [0]).unwrap();
        }
    });
    hub::spawn_daemon(move || {
        let (there, back) = (
            AsyncFd::new(there_r).unwrap(),
            AsyncFd::new(back_w).unwrap(),
        );
        loop {
            (&there).read_exact(&mut [0]).unwrap();
            (&back).write_all(b"y").unwrap();
        }
    });
}

/// Runs `f` on a thread of its own; `None` if it has not returned within
/// a minute (a hang: the thread is left behind).
fn on_a_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60)).ok()
}

/// The hub's poll for daemons' descriptors before it decides that only
/// daemons wait is made once for each wait of main: daemons that keep
/// each other's descriptors ready do not keep `run` going, nor main
/// waiting for what nothing else can bring.
#[test]
fn daemons_that_keep_each_others_descriptors_ready_keep_neither_run_nor_main_waiting() {
    let ran = on_a_thread(|| {
        ping_ponging_daemons();
        hub::run();
    });
    assert_eq!(ran, Some(()), "run never returned");
    let told = on_a_thread(|| {
        ping_ponging_daemons();
        let never = hub::Event::new();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| never.wait())).is_err()
    });
    assert_eq!(told, Some(true), "main's wait never ended");
}

/// `run_timeout`, like `run`, lets a daemon whose descriptor main made
/// ready run before it returns.
#[test]
fn run_timeout_lets_a_daemon_whose_descriptor_became_ready_run_first() {
    use std::io::Write;
    let (reader, mut writer) = std::io::pipe().unwrap();
    let daemon = hub::spawn_daemon(move || hub::wait_readable(&reader, None).is_ok());
    hub::yield_now(); // it waits on the empty pipe
    writer.write_all(b"x").unwrap();
    assert!(hub::run_timeout(Duration::from_secs(60)));
    assert!(daemon.is_finished(), "run_timeout returned before it ran");
    assert!(daemon.join().unwrap());
}
