//! `hub::signal`: Unix signals delivered to greenlets.
//!
//! This binary installs handlers for SIGINT, SIGUSR2 and two real-time
//! signals (the process's default "terminate" for them is replaced); no
//! other test binary sees that.

use std::cell::Cell;
use std::rc::Rc;

use greenlet::hub;

#[test]
fn sigint_raised_in_the_thread_reaches_a_blocked_greenlet_while_others_run() {
    let sigint = hub::signal(libc::SIGINT).unwrap();
    let ticks = Rc::new(Cell::new(0u32));
    let waiter = {
        let ticks = ticks.clone();
        hub::spawn(move || {
            sigint.recv();
            ticks.get()
        })
    };
    let ticker = {
        let ticks = ticks.clone();
        hub::spawn(move || {
            for _ in 0..10 {
                ticks.set(ticks.get() + 1);
                hub::yield_now();
            }
        })
    };
    ticker.join().unwrap();
    assert!(!waiter.is_finished(), "no signal yet");
    // SAFETY: `raise` sends SIGINT to this thread; the handler installed by
    // `hub::signal` only writes to a pipe.
    assert_eq!(unsafe { libc::raise(libc::SIGINT) }, 0);
    assert_eq!(waiter.join().unwrap(), 10);
}

#[test]
fn a_process_directed_signal_reaches_every_receiver_and_is_kept_until_received() {
    let a = hub::signal(libc::SIGUSR2).unwrap();
    let b = hub::signal(libc::SIGUSR2).unwrap();
    assert!(!a.try_recv());
    // SAFETY: `kill` sends SIGUSR2 to this process; any thread may take it
    // and the handler only writes to a pipe.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) }, 0);
    // Delivered to the process, forwarded by the dispatcher thread: wait
    // for each (blocking main only).
    a.recv();
    b.recv();
    assert!(!a.try_recv(), "one delivery, received once");
    assert_eq!(a.signum(), libc::SIGUSR2);
    // Dropping a receiver unsubscribes it; the other still gets signals.
    drop(a);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) }, 0);
    b.recv();
}

#[test]
fn uncatchable_and_bogus_signals_are_refused() {
    for signum in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, -1, 1000] {
        let err = hub::signal(signum).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{signum}");
    }
}

/// A signal raised while no `Signal` for it is alive is ignored, as the
/// docs say, not handed to the next `Signal` made. (The dispatcher chose
/// the receivers when it got round to the signal, from those alive then:
/// a `Signal` made just after the raise got it, every time.) Real-time
/// signals, which no other test here uses; the second, of a higher number,
/// is forwarded after the first, so once it has arrived the first has
/// been dealt with.
#[test]
fn a_signal_raised_while_no_receiver_is_alive_is_not_kept_for_the_next() {
    let (quiet, sync) = (libc::SIGRTMIN() + 1, libc::SIGRTMIN() + 2);
    let synced = hub::signal(sync).unwrap();
    drop(hub::signal(quiet).unwrap()); // its handler stays installed
    for round in 0..50 {
        // SAFETY: `raise` sends the signal to this thread, whose handler
        // (installed above) runs before it returns.
        unsafe { libc::raise(quiet) };
        let later = hub::signal(quiet).unwrap();
        // SAFETY: as above.
        unsafe { libc::raise(sync) };
        synced.recv();
        assert!(
            !later.try_recv(),
            "round {round}: a raise before it was made"
        );
        // SAFETY: as above.
        unsafe { libc::raise(quiet) };
        later.recv(); // one raised while it lives does arrive
    }
}

#[path = "support/child.rs"]
mod child;

/// A process that closes every descriptor it has after its first
/// `hub::signal` (a daemon's start) closes the dispatcher's pipe behind
/// its back: signals still come, through a new pipe (review 44: the
/// dispatcher's `read` failed at once for ever, a thread spinning at full
/// CPU, and no signal came). In a process of its own: the numbers closed
/// are the process's.
#[test]
fn signals_still_come_after_the_dispatchers_pipe_is_closed_behind_its_back() {
    const TEST: &str = "signals_still_come_after_the_dispatchers_pipe_is_closed_behind_its_back";
    const CHILD: &str = "GREENLET_OS_SIGNAL_CHILD";
    if std::env::var_os(CHILD).is_none() {
        child::assert_passes(TEST, CHILD, "1");
        return;
    }
    let pipes = || -> Vec<i32> {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| {
                let e = e.ok()?;
                let link = std::fs::read_link(e.path()).ok()?;
                link.to_string_lossy().starts_with("pipe:").then_some(())?;
                e.file_name().to_str()?.parse().ok()
            })
            .collect()
    };
    let before = pipes();
    let usr2 = hub::signal(libc::SIGUSR2).unwrap();
    for fd in pipes().into_iter().filter(|fd| !before.contains(fd)) {
        // SAFETY: the dispatcher's pipe, closed behind its back, which is
        // what is tested; nothing else uses it.
        unsafe { libc::close(fd) };
    }
    for _ in 0..2 {
        // SAFETY: signals this thread, whose handler `hub::signal`
        // installed.
        unsafe { libc::raise(libc::SIGUSR2) };
        assert!(usr2.recv_timeout(std::time::Duration::from_secs(3)));
    }
}
