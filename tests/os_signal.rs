//! `hub::signal`: Unix signals delivered to greenlets.
//!
//! This binary installs handlers for SIGINT and SIGUSR2 (the process's
//! default "terminate" for them is replaced); no other test binary sees
//! that.

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
