//! `fork()` without `exec` (see the hub's `fork` notes): the child gets an
//! event loop, thread pool and signal dispatcher of its own, the greenlets
//! and sockets it inherited go on working there, and nothing it does
//! reaches the parent's.
//!
//! Each test re-runs this binary with itself alone (`--test-threads=1`),
//! so that the fork happens with no other test's thread about; the forked
//! child runs under `alarm(10)`, so a hang shows as a failure, not as a
//! stuck test.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use greenlet::hub;
use greenlet::net::{AsyncFd, TcpListener, TcpStream};

#[path = "support/child.rs"]
mod child;

/// The variable that makes a re-run of this binary play a test's part.
const CHILD: &str = "GREENLET_FORK_TEST";

/// Runs `body` in a re-run of this binary with `test` alone, and asserts
/// it passed there.
fn in_fresh_process(test: &str, body: impl FnOnce()) {
    if std::env::var(CHILD).as_deref() == Ok(test) {
        body();
        return;
    }
    child::assert_passes(test, CHILD, test);
}

/// How the forked child ends.
#[derive(Clone, Copy)]
enum Exit {
    /// `_exit`: nothing of the process is unwound.
    Raw,
    /// `std::process::exit`, as returning from `main` does: the thread's
    /// teardown unwinds the greenlets the child inherited.
    Std,
}

/// Forks; the child runs `child` (its exit code; a panic is 101) and
/// leaves as `exit` says; returns the child's exit code.
fn fork_and_wait(exit: Exit, child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: this process runs one test on one thread (see
    // `in_fresh_process`); the crate's own threads are what is tested.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: in the child only: a hang ends it with SIGALRM.
        unsafe { libc::alarm(10) };
        let code = panic::catch_unwind(AssertUnwindSafe(child)).unwrap_or(101);
        match exit {
            // SAFETY: leaves the child at once.
            Exit::Raw => unsafe { libc::_exit(code) },
            Exit::Std => std::process::exit(code),
        }
    }
    let mut status = 0;
    // SAFETY: waits for the child just made; `status` is valid.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        panic!("the child did not exit: status {status:#x} (SIGALRM = hung)")
    }
}

/// A pipe: its read end for the hub, its write end.
fn pipe() -> (AsyncFd<std::io::PipeReader>, std::io::PipeWriter) {
    let (r, w) = std::io::pipe().unwrap();
    (AsyncFd::new(r).unwrap(), w)
}

#[test]
fn the_thread_pool_runs_a_childs_jobs_after_the_parent_used_it() {
    in_fresh_process(
        "the_thread_pool_runs_a_childs_jobs_after_the_parent_used_it",
        || {
            // A pool thread now idles in the parent, and a name was
            // looked up there (on the same pool).
            assert_eq!(hub::spawn_blocking(|| 1).join().unwrap(), 1);
            assert!(greenlet::net::lookup_host(("localhost", 80)).is_ok());
            let code = fork_and_wait(Exit::Raw, || {
                // None of the parent's threads came along.
                assert_eq!(hub::ThreadPool::global().threads(), 0);
                assert_eq!(hub::spawn_blocking(|| 2).join().unwrap(), 2);
                assert!(greenlet::net::lookup_host(("localhost", 80)).is_ok());
                0
            });
            assert_eq!(code, 0);
            // The parent's pool is as it was.
            assert_eq!(hub::spawn_blocking(|| 3).join().unwrap(), 3);
        },
    );
}

/// A greenlet blocked on a pipe at the fork: the child's copy reads what
/// the child writes, and the child's exit (which unwinds that copy and
/// drops its descriptor) leaves the parent's registration alone.
fn a_blocked_reader_goes_on_in_both(exit: Exit) {
    let (r, mut w) = pipe();
    let read = hub::Queue::new();
    let q = read.clone();
    hub::spawn(move || {
        let mut buf = [0u8; 16];
        let n = (&r).read(&mut buf).unwrap();
        q.put(buf[..n].to_vec());
    });
    hub::yield_now(); // it blocks, registered
    let mut w2 = w.try_clone().unwrap();
    let code = fork_and_wait(exit, || {
        // A timer: the child's hub parks in its own epoll instance.
        hub::sleep(Duration::from_millis(1));
        w2.write_all(b"child").unwrap();
        if read.get() == b"child" {
            0
        } else {
            2
        }
    });
    assert_eq!(code, 0);
    // The parent's reader, still registered, reads the parent's bytes (the
    // child took its own before it left).
    w.write_all(b"parent").unwrap();
    let got = hub::with_timeout(Duration::from_secs(5), || read.get())
        .expect("the parent's reader was never woken");
    assert_eq!(got, b"parent");
}

#[test]
fn a_childs_std_exit_leaves_the_parents_reader_registered() {
    in_fresh_process(
        "a_childs_std_exit_leaves_the_parents_reader_registered",
        || {
            let (r, mut w) = pipe();
            let reader = hub::spawn(move || {
                let mut buf = [0u8; 16];
                let n = (&r).read(&mut buf).unwrap();
                buf[..n].to_vec()
            });
            hub::yield_now(); // it blocks, registered
                              // The child only exits: its teardown unwinds its copy of the
                              // reader, whose descriptor drops.
            assert_eq!(fork_and_wait(Exit::Std, || 0), 0);
            w.write_all(b"data").unwrap();
            let got = hub::with_timeout(Duration::from_secs(5), || reader.join())
                .expect("the parent's reader was never woken");
            assert_eq!(got.unwrap(), b"data");
        },
    );
}

#[test]
fn a_child_reads_through_an_inherited_registration() {
    in_fresh_process("a_child_reads_through_an_inherited_registration", || {
        a_blocked_reader_goes_on_in_both(Exit::Raw);
        a_blocked_reader_goes_on_in_both(Exit::Std);
    });
}

#[test]
fn a_listener_made_before_the_fork_accepts_in_the_child() {
    in_fresh_process(
        "a_listener_made_before_the_fork_accepts_in_the_child",
        || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // A greenlet of the parent blocked in accept at the fork: its
            // copy serves in the child.
            let server = hub::spawn(move || {
                let (conn, _) = listener.accept().unwrap();
                let mut buf = [0u8; 5];
                (&conn).read_exact(&mut buf).unwrap();
                (&conn).write_all(&buf).unwrap();
            });
            hub::yield_now();
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                // SAFETY: in the child only.
                unsafe { libc::alarm(10) };
                let ok = panic::catch_unwind(AssertUnwindSafe(|| server.join().unwrap())).is_ok();
                // SAFETY: leaves the child at once.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            // The parent's copy of the server greenlet is killed: only the
            // child accepts.
            server.kill();
            let conn = TcpStream::connect(addr).unwrap();
            (&conn).write_all(b"hello").unwrap();
            let mut echo = [0u8; 5];
            (&conn).read_exact(&mut echo).unwrap();
            assert_eq!(&echo, b"hello");
            let mut status = 0;
            // SAFETY: waits for the child just made.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        },
    );
}

#[test]
fn a_channel_from_a_thread_of_the_child_wakes_the_childs_hub() {
    in_fresh_process(
        "a_channel_from_a_thread_of_the_child_wakes_the_childs_hub",
        || {
            // Made before the fork: its receiver is registered with the
            // inherited reactor, woken through the inherited mailbox.
            let (tx, rx) = hub::channel::<u32>();
            let (tx2, rx2) = hub::channel::<u32>();
            std::thread::spawn(move || tx2.send(1).unwrap());
            assert_eq!(rx2.recv(), Ok(1));
            let code = fork_and_wait(Exit::Raw, move || {
                let t = std::thread::spawn(move || tx.send(7).unwrap());
                let got = rx.recv();
                t.join().unwrap();
                // And one made in the child.
                let (tx3, rx3) = hub::channel::<u32>();
                std::thread::spawn(move || tx3.send(8).unwrap());
                match (got, rx3.recv()) {
                    (Ok(7), Ok(8)) => 0,
                    _ => 2,
                }
            });
            assert_eq!(code, 0);
        },
    );
}

#[test]
fn a_signal_made_before_the_fork_hears_the_childs_raise() {
    in_fresh_process(
        "a_signal_made_before_the_fork_hears_the_childs_raise",
        || {
            let sig = hub::signal(libc::SIGUSR1).unwrap();
            // SAFETY: `raise` signals the calling thread only.
            unsafe { libc::raise(libc::SIGUSR1) };
            sig.recv(); // the parent's dispatcher runs
            let code = fork_and_wait(Exit::Raw, || {
                // Raised before the child's hub is used at all.
                // SAFETY: as above.
                unsafe { libc::raise(libc::SIGUSR1) };
                let inherited = sig.recv_timeout(Duration::from_secs(5));
                let made_here = hub::signal(libc::SIGUSR2).unwrap();
                // SAFETY: as above.
                unsafe { libc::raise(libc::SIGUSR2) };
                let new = made_here.recv_timeout(Duration::from_secs(5));
                match (inherited, new) {
                    (true, true) => 0,
                    (false, _) => 3,
                    (true, false) => 4,
                }
            });
            assert_eq!(code, 0);
            // The parent's dispatcher still runs.
            // SAFETY: as above.
            unsafe { libc::raise(libc::SIGUSR1) };
            assert!(sig.recv_timeout(Duration::from_secs(5)));
        },
    );
}

#[test]
fn a_greenlet_that_forks_goes_on_in_both() {
    in_fresh_process("a_greenlet_that_forks_goes_on_in_both", || {
        let g = hub::spawn(|| {
            let code = fork_and_wait(Exit::Raw, || {
                // The forking greenlet, in the child: the hub still works.
                let h = hub::spawn(|| {
                    hub::sleep(Duration::from_millis(1));
                    5
                });
                h.join().unwrap()
            });
            hub::sleep(Duration::from_millis(1));
            code
        });
        assert_eq!(g.join().unwrap(), 5);
    });
}

#[test]
fn a_descriptor_closed_behind_its_owners_back_leaves_the_childs_hub_working() {
    in_fresh_process(
        "a_descriptor_closed_behind_its_owners_back_leaves_the_childs_hub_working",
        || {
            use std::os::fd::AsRawFd;
            let (r, _w) = pipe(); // registered with the parent's reactor
            let raw = r.as_raw_fd();
            let code = fork_and_wait(Exit::Raw, move || {
                // SAFETY: closes the child's copy of the descriptor behind
                // the `AsyncFd`'s back, which is then forgotten, never
                // used or dropped.
                unsafe { libc::close(raw) };
                std::mem::forget(r);
                // The child's first poll renews its reactor without it.
                hub::sleep(Duration::from_millis(1));
                0
            });
            assert_eq!(code, 0);
        },
    );
}

/// Mail another thread left for the hub just before the fork (its wake-up
/// written to the inherited waker, the hub not yet woken) is seen by the
/// child's hub, which parks at once (no idle spin) in a poll of its own.
#[test]
fn mail_pending_at_the_fork_wakes_the_childs_hub() {
    in_fresh_process("mail_pending_at_the_fork_wakes_the_childs_hub", || {
        hub::set_idle_spin(Duration::ZERO);
        let (tx, rx) = hub::channel::<u32>();
        let waiter = hub::spawn(move || rx.recv().unwrap());
        hub::yield_now(); // it waits: a send posts a wake-up
        std::thread::spawn(move || tx.send(1).unwrap())
            .join()
            .unwrap();
        let code = fork_and_wait(Exit::Raw, || match waiter.join() {
            Ok(1) => 0,
            _ => 2,
        });
        assert_eq!(code, 0);
    });
}

/// A job queued behind a busy one at the fork is the parent's: it runs
/// there once, and in the child its join fails instead of running it
/// again.
#[test]
fn a_job_queued_at_the_fork_runs_in_the_parent_only() {
    in_fresh_process("a_job_queued_at_the_fork_runs_in_the_parent_only", || {
        let pool = hub::ThreadPool::new(1, Duration::from_secs(10));
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let busy = pool.spawn(move || {
            started_tx.send(()).unwrap();
            released.recv().unwrap();
        });
        started.recv().unwrap(); // the pool's one thread is busy
        let (mut r, w) = std::io::pipe().unwrap();
        let mut w2 = w.try_clone().unwrap();
        let queued = std::cell::Cell::new(Some(pool.spawn(move || w2.write_all(b"X").unwrap())));
        let code = fork_and_wait(Exit::Raw, || {
            let mine = pool.spawn(|| 7).join();
            let theirs = queued.take().unwrap().join();
            match (mine, theirs) {
                (Ok(7), Err(hub::JoinError::Panicked(_))) => 0,
                (Ok(7), _) => 3,
                _ => 2,
            }
        });
        assert_eq!(code, 0);
        release.send(()).unwrap();
        busy.join().unwrap();
        queued.take().unwrap().join().unwrap();
        drop(w);
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"X", "the queued job's runs");
    });
}

/// A job running at the fork runs in the parent only: in the child, a
/// join of it fails (it would otherwise wait for ever on a thread the
/// child does not have), whether the join began before the fork or after,
/// and through `spawn_blocking`'s handle as through the pool's.
#[test]
fn a_job_running_at_the_fork_fails_its_join_in_the_child() {
    in_fresh_process(
        "a_job_running_at_the_fork_fails_its_join_in_the_child",
        || {
            let (started_tx, started) = std::sync::mpsc::channel();
            let started_tx2 = started_tx.clone();
            let (release, released) = std::sync::mpsc::channel::<()>();
            let (release2, released2) = std::sync::mpsc::channel::<()>();
            let running = hub::spawn_blocking(move || {
                started_tx.send(()).unwrap();
                released.recv().unwrap();
                5u64
            });
            let pool = hub::ThreadPool::new(1, Duration::from_secs(10));
            let also_running = pool.spawn(move || {
                started_tx2.send(()).unwrap();
                released2.recv().unwrap();
                6u64
            });
            // A greenlet already waiting for the first job when the fork comes.
            let waiting = hub::spawn(move || running.join());
            hub::yield_now();
            started.recv().unwrap();
            started.recv().unwrap(); // both jobs run
            let waiting = std::cell::Cell::new(Some(waiting));
            let also_running = std::cell::Cell::new(Some(also_running));
            let code = fork_and_wait(Exit::Raw, || {
                let names_the_fork = |p: &(dyn std::any::Any + Send)| {
                    let message = p
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| p.downcast_ref::<&str>().copied());
                    message.is_some_and(|m| m.contains("fork"))
                };
                let joined_before = match waiting.take().unwrap().join() {
                    Ok(Err(hub::JoinError::Panicked(p))) => names_the_fork(p.as_ref()),
                    _ => false,
                };
                let joined_after = match also_running.take().unwrap().join() {
                    Err(hub::JoinError::Panicked(p)) => names_the_fork(p.as_ref()),
                    _ => false,
                };
                match (joined_before, joined_after) {
                    (true, true) => 0,
                    (false, _) => 2,
                    (true, false) => 3,
                }
            });
            assert_eq!(code, 0);
            release.send(()).unwrap();
            release2.send(()).unwrap();
            assert_eq!(waiting.take().unwrap().join().unwrap().unwrap(), 5);
            assert_eq!(also_running.take().unwrap().join().unwrap(), 6);
        },
    );
}

/// A job running at the fork runs in the parent only: the child's paused
/// clock does not wait for it.
#[test]
fn a_job_running_at_the_fork_leaves_the_childs_paused_clock_moving() {
    in_fresh_process(
        "a_job_running_at_the_fork_leaves_the_childs_paused_clock_moving",
        || {
            hub::time::pause();
            let (started_tx, started) = std::sync::mpsc::channel();
            let (release, released) = std::sync::mpsc::channel::<()>();
            let job = hub::spawn_blocking(move || {
                started_tx.send(()).unwrap();
                released.recv().unwrap();
            });
            hub::yield_now();
            started.recv().unwrap();
            let code = fork_and_wait(Exit::Raw, || {
                let start = hub::time::now();
                hub::sleep(Duration::from_secs(60));
                if hub::time::now() - start == Duration::from_secs(60) {
                    0
                } else {
                    2
                }
            });
            assert_eq!(code, 0);
            release.send(()).unwrap();
            job.join().unwrap();
        },
    );
}

/// Another thread sending on a channel of this hub in a tight loop holds
/// the channel's lock at some forks: the child must find it free.
#[test]
fn a_thread_sending_at_the_fork_leaves_the_childs_channel_unlocked() {
    in_fresh_process(
        "a_thread_sending_at_the_fork_leaves_the_childs_channel_unlocked",
        || {
            use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
            use std::sync::Arc;
            let (tx, rx) = hub::channel::<u64>();
            let stop = Arc::new(AtomicBool::new(false));
            // Sent and not yet taken: the sender keeps it under 64, so it
            // is in `send` (holding the channel's lock) as often as it can
            // be without filling the memory the forks copy.
            let queued = Arc::new(AtomicUsize::new(0));
            let (s, q) = (stop.clone(), queued.clone());
            let sender = std::thread::spawn(move || {
                let mut i = 0u64;
                while !s.load(Ordering::Relaxed) {
                    if q.load(Ordering::Relaxed) < 64 {
                        q.fetch_add(1, Ordering::Relaxed);
                        let _ = tx.send(i);
                        i += 1;
                    }
                }
            });
            let drain = || {
                while rx.try_recv().is_ok() {
                    queued.fetch_sub(1, Ordering::Relaxed);
                }
            };
            assert_eq!(rx.recv(), Ok(0)); // it is sending
            queued.fetch_sub(1, Ordering::Relaxed);
            for _ in 0..500 {
                drain();
                let code = fork_and_wait(Exit::Raw, || {
                    while rx.try_recv().is_ok() {}
                    0
                });
                assert_eq!(code, 0);
            }
            stop.store(true, Ordering::Relaxed);
            sender.join().unwrap();
        },
    );
}

/// A pool of the program's own, busy on other threads (one spawning jobs
/// in a tight loop, the pool's taking them), holds its lock at some
/// forks: the child must find it free, and the pool working.
#[test]
fn a_busy_pool_of_the_programs_own_works_in_the_child() {
    in_fresh_process("a_busy_pool_of_the_programs_own_works_in_the_child", || {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let pool = hub::ThreadPool::new(2, Duration::from_secs(10));
        let stop = Arc::new(AtomicBool::new(false));
        let (started_tx, started) = std::sync::mpsc::channel();
        let spawners: Vec<_> = (0..3)
            .map(|_| {
                let (p, s, started_tx) = (pool.clone(), stop.clone(), started_tx.clone());
                std::thread::spawn(move || {
                    while !s.load(Ordering::Relaxed) {
                        let jobs: Vec<_> = (0..64).map(|_| p.spawn(|| ())).collect();
                        jobs.into_iter().for_each(|job| job.join().unwrap());
                        let _ = started_tx.send(());
                    }
                })
            })
            .collect();
        (0..3).for_each(|_| started.recv().unwrap());
        for _ in 0..300 {
            let code = fork_and_wait(Exit::Raw, || match pool.spawn(|| 7).join() {
                Ok(7) => 0,
                _ => 2,
            });
            assert_eq!(code, 0);
        }
        stop.store(true, Ordering::Relaxed);
        spawners.into_iter().for_each(|t| t.join().unwrap());
    });
}

/// A monitor reporting on stderr, turned on before the fork, watches the
/// child too: its watchdog thread (the parent's did not come along) is
/// started again there and reports a run that never switches while it
/// lasts; and turning the monitor off in the child returns.
#[test]
fn the_monitor_watches_the_child_and_turns_off_there() {
    in_fresh_process("the_monitor_watches_the_child_and_turns_off_there", || {
        use std::os::fd::AsRawFd;
        hub::monitor(Some(Duration::from_millis(10)));
        let code = fork_and_wait(Exit::Raw, || {
            let (mut r, w) = std::io::pipe().unwrap();
            // SAFETY: plain calls on descriptors this child owns: stderr
            // becomes the pipe's write end, and the read end gets
            // `O_NONBLOCK` so the spinner can look without blocking.
            unsafe {
                libc::dup2(w.as_raw_fd(), 2);
                libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
            }
            drop(w);
            // Never switches: it ends when the watchdog's report is read.
            let spinner = hub::spawn(move || {
                let mut seen = Vec::new();
                let mut buf = [0u8; 512];
                while !String::from_utf8_lossy(&seen).contains("still runs") {
                    if let Ok(n) = r.read(&mut buf) {
                        seen.extend_from_slice(&buf[..n]);
                    }
                    std::hint::spin_loop();
                }
                // Kept open for the report of this run made at its end.
                r
            });
            let Ok(_r) = spinner.join() else {
                return 2;
            };
            hub::monitor(None);
            0
        });
        assert_eq!(code, 0);
        hub::monitor(None);
    });
}

/// A greenlet of the parent waiting in `Command::status` at the fork: the
/// child's exit, which leaves its copy of that wait suspended (a thread's
/// exit unwinds no started greenlet), must leave the parent's process
/// alone (it is not the child's to kill).
#[test]
fn a_childs_exit_leaves_the_parents_subprocess_alone() {
    in_fresh_process("a_childs_exit_leaves_the_parents_subprocess_alone", || {
        use std::os::unix::process::ExitStatusExt;
        let status = hub::spawn(|| {
            greenlet::process::Command::new("sleep")
                .arg("0.5")
                .status()
                .map(|s| (s.code(), s.signal()))
        });
        hub::yield_now(); // it spawned the process and waits for it
        assert_eq!(fork_and_wait(Exit::Std, || 0), 0);
        assert_eq!(status.join().unwrap().unwrap(), (Some(0), None));
    });
}

/// A signal sent to the child as soon as it exists (a pre-forking
/// master's to a fresh worker) is the child's, heard by a `Signal` made
/// before the fork.
#[test]
fn a_signal_sent_to_the_child_at_once_is_heard_there() {
    in_fresh_process("a_signal_sent_to_the_child_at_once_is_heard_there", || {
        let sig = hub::signal(libc::SIGUSR1).unwrap();
        for _ in 0..30 {
            // SAFETY: one thread of the test here; the child only waits.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                // SAFETY: in the child only.
                unsafe { libc::alarm(10) };
                sig.recv();
                // SAFETY: leaves the child at once.
                unsafe { libc::_exit(0) };
            }
            // SAFETY: signals the child just made.
            unsafe { libc::kill(pid, libc::SIGUSR1) };
            let mut status = 0;
            // SAFETY: waits for it; `status` is valid.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "status {status:#x} (SIGALRM: the signal was not heard)"
            );
            assert!(!sig.try_recv(), "the child's signal reached the parent");
        }
    });
}

/// Another thread's `Signal` (its hub is not in the child) does not stop
/// the child's dispatcher: the child forgets it rather than forwarding to
/// a channel that thread may have held locked at the fork.
#[test]
fn another_threads_signal_leaves_the_childs_dispatcher_working() {
    in_fresh_process(
        "another_threads_signal_leaves_the_childs_dispatcher_working",
        || {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let s = stop.clone();
            let (ready_tx, ready) = std::sync::mpsc::channel();
            let other = std::thread::spawn(move || {
                let sig = hub::signal(libc::SIGUSR1).unwrap();
                ready_tx.send(()).unwrap();
                while !s.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = sig.try_recv();
                }
            });
            ready.recv().unwrap();
            let sig = hub::signal(libc::SIGUSR1).unwrap();
            for _ in 0..100 {
                let code = fork_and_wait(Exit::Raw, || {
                    // SAFETY: signals this thread only.
                    unsafe { libc::raise(libc::SIGUSR1) };
                    sig.recv();
                    0
                });
                assert_eq!(code, 0);
                while sig.try_recv() {}
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            other.join().unwrap();
        },
    );
}

/// Descriptors open in this process.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The descriptors of its parent's epoll instance and waker a forked
/// child leaves open rather than close a number it may no longer own.
const LEFT_OPEN: usize = 2;

/// A chain of forks, each using signals (so each child makes its own
/// dispatcher, pipe, epoll instance and waker): every generation has as
/// many descriptors open as its parent, none of the parent's kept but the
/// epoll instance and waker it leaves open ([`LEFT_OPEN`]).
#[test]
fn a_chain_of_forks_keeps_no_descriptor_of_the_parents() {
    in_fresh_process(
        "a_chain_of_forks_keeps_no_descriptor_of_the_parents",
        || {
            let sig = hub::signal(libc::SIGUSR1).unwrap();
            let heard = || {
                // SAFETY: signals this thread only.
                unsafe { libc::raise(libc::SIGUSR1) };
                sig.recv();
            };
            heard();
            let before = open_descriptors();
            let code = fork_and_wait(Exit::Raw, || {
                heard();
                let child = open_descriptors();
                let grandchild = fork_and_wait(Exit::Raw, || {
                    heard();
                    if open_descriptors() == child + LEFT_OPEN {
                        0
                    } else {
                        2
                    }
                });
                match (child == before + LEFT_OPEN, grandchild) {
                    (true, 0) => 0,
                    (false, _) => 3,
                    (true, _) => 4,
                }
            });
            assert_eq!(code, 0);
        },
    );
}

/// A thread starting the signal dispatcher (its first `hub::signal` of
/// the process) while another thread forks: the child's own start must
/// not find the start's lock held. Each round, a fresh child has a second
/// thread start its dispatcher while its main thread forks a grandchild at
/// a point spread over that start; the grandchild starts its own.
#[test]
fn a_dispatcher_starting_at_the_fork_leaves_the_childs_start_free() {
    in_fresh_process(
        "a_dispatcher_starting_at_the_fork_leaves_the_childs_start_free",
        || {
            let _sig = hub::signal(libc::SIGUSR1).unwrap();
            for round in 0..150u32 {
                let code = fork_and_wait(Exit::Raw, || {
                    let starter = std::thread::spawn(|| drop(hub::signal(libc::SIGUSR2)));
                    for _ in 0..(round % 30) * 300 {
                        std::hint::spin_loop();
                    }
                    let grandchild =
                        fork_and_wait(Exit::Raw, || i32::from(hub::signal(libc::SIGUSR2).is_err()));
                    starter.join().unwrap();
                    grandchild
                });
                assert_eq!(code, 0, "round {round}");
            }
        },
    );
}

/// Descriptors of this process whose `/proc/self/fd` link contains
/// `what`.
fn descriptors_to(what: &str) -> Vec<i32> {
    let mut fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let link = std::fs::read_link(e.path()).ok()?;
            link.to_string_lossy().contains(what).then_some(())?;
            e.file_name().to_str()?.parse().ok()
        })
        .collect();
    fds.sort_unstable();
    fds
}

/// What a daemon does first: closes every descriptor it inherited but
/// the standard ones. The caller uses none of them again.
fn close_inherited_descriptors() {
    for fd in 3..1024 {
        // SAFETY: the forked child's own copies, which nothing in it uses
        // (or drops: it leaves with `_exit`) after this.
        unsafe { libc::close(fd) };
    }
}

/// Closes descriptor `fd` and opens `/dev/null` at its number, as a
/// daemon's own file would get it.
fn dev_null_at(fd: i32) {
    use std::os::fd::IntoRawFd;
    let null = std::fs::File::open("/dev/null").unwrap().into_raw_fd();
    // SAFETY: `fd` is a copy the forked child inherited and no longer
    // uses; `null` is ours, and handed over to the number `fd`.
    unsafe {
        assert_eq!(libc::dup2(null, fd), fd);
        libc::close(null);
    }
}

/// Whether descriptor number `fd` is open.
fn is_open(fd: i32) -> bool {
    // SAFETY: only asks about the number.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// A daemon that closed every descriptor it inherited: its hub's new
/// epoll instance and waker take the lowest free numbers, the inherited
/// ones', and must not be closed as those (review 44: they were, and the
/// daemon's first wait failed, or std aborted on the double close).
#[test]
fn a_daemon_that_closed_what_it_inherited_still_waits_on_descriptors() {
    in_fresh_process(
        "a_daemon_that_closed_what_it_inherited_still_waits_on_descriptors",
        || {
            drop(pipe()); // the hub's reactor exists
            let code = fork_and_wait(Exit::Raw, || {
                close_inherited_descriptors();
                let (r, mut w) = pipe();
                let reader = hub::spawn(move || {
                    let mut buf = [0u8; 4];
                    (&r).read_exact(&mut buf).map(|()| buf)
                });
                hub::yield_now(); // it waits, in the child's own poll
                w.write_all(b"ping").unwrap();
                i32::from(reader.join().unwrap().unwrap() != *b"ping")
            });
            assert_eq!(code, 0);
        },
    );
}

/// A daemon's own files at the numbers its inherited epoll instance and
/// waker had are left open when the child's hub makes its own (review 44:
/// the renewal closed them behind the daemon's back).
#[test]
fn a_daemons_files_at_the_inherited_reactors_numbers_stay_open() {
    in_fresh_process(
        "a_daemons_files_at_the_inherited_reactors_numbers_stay_open",
        || {
            drop(pipe()); // the hub's reactor exists
            let inherited = [descriptors_to("[eventpoll]"), descriptors_to("[eventfd]")].concat();
            assert_eq!(inherited.len(), 2, "{inherited:?}");
            let code = fork_and_wait(Exit::Raw, || {
                for &fd in &inherited {
                    dev_null_at(fd);
                }
                drop(pipe()); // the child's first use: its own reactor
                inherited.iter().filter(|&&fd| !is_open(fd)).count() as i32
            });
            assert_eq!(code, 0, "the daemon's files closed");
        },
    );
}

/// The ends of the signal dispatcher's pipe, made by a first
/// `hub::signal` of the process: `f`'s `Signal` and those ends.
fn with_the_signal_pipe(f: impl FnOnce(hub::Signal, Vec<i32>)) {
    let before = descriptors_to("pipe:");
    let sig = hub::signal(libc::SIGUSR1).unwrap();
    let ends: Vec<i32> = descriptors_to("pipe:")
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    assert_eq!(ends.len(), 2, "{ends:?}");
    f(sig, ends);
}

/// A daemon's own files at the numbers of the inherited signal pipe are
/// left open when the child starts its own dispatcher (review 44: the
/// read end's number was closed unchecked).
#[test]
fn a_daemons_files_at_the_inherited_signal_pipes_numbers_stay_open() {
    in_fresh_process(
        "a_daemons_files_at_the_inherited_signal_pipes_numbers_stay_open",
        || {
            with_the_signal_pipe(|_sig, ends| {
                let code = fork_and_wait(Exit::Raw, || {
                    for &fd in &ends {
                        dev_null_at(fd);
                    }
                    let _usr2 = hub::signal(libc::SIGUSR2).unwrap(); // a new pipe
                    ends.iter().filter(|&&fd| !is_open(fd)).count() as i32
                });
                assert_eq!(code, 0, "the daemon's files closed");
            });
        },
    );
}

/// A daemon that closed the signal pipe it inherited: the child's new
/// pipe takes those numbers, and its read end must not be closed as the
/// parent's (review 44: it was; the dispatcher then spun on EBADF, and no
/// signal came after the first, which a `read` blocked already could
/// still get).
#[test]
fn a_daemon_that_closed_the_inherited_signal_pipe_still_hears_signals() {
    in_fresh_process(
        "a_daemon_that_closed_the_inherited_signal_pipe_still_hears_signals",
        || {
            with_the_signal_pipe(|_sig, ends| {
                let code = fork_and_wait(Exit::Raw, || {
                    for &fd in &ends {
                        // SAFETY: the child's copies of the parent's pipe,
                        // which the child's dispatcher does not use.
                        unsafe { libc::close(fd) };
                    }
                    let usr2 = hub::signal(libc::SIGUSR2).unwrap();
                    let heard = (0..2)
                        .filter(|_| {
                            // SAFETY: signals this thread, whose handler
                            // `hub::signal` installed.
                            unsafe { libc::raise(libc::SIGUSR2) };
                            usr2.recv_timeout(Duration::from_secs(3))
                        })
                        .count();
                    i32::from(heard != 2)
                });
                assert_eq!(code, 0, "a signal was lost");
            });
        },
    );
}

/// Lowers the descriptor limit to a few past those open, then opens
/// descriptors until none is left; they are freed when the result drops.
fn use_up_descriptors() -> Vec<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is valid for `getrlimit` to fill and `setrlimit` to
    // read; this process runs this test alone.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = open_descriptors() as libc::rlim_t + 8;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut fds = Vec::new();
    while let Ok(fd) = null.as_fd().try_clone_to_owned() {
        fds.push(fd);
    }
    fds.push(null.into());
    fds
}

/// A child forked at its descriptor limit (a pre-forking server under
/// load) with a greenlet waiting on a pipe: its hub cannot make an epoll
/// instance of its own, yet its timers go on, and once descriptors are
/// free the wait is served (review 44: the hub panicked, dead for good).
#[test]
fn a_child_forked_at_its_descriptor_limit_keeps_a_working_hub() {
    in_fresh_process(
        "a_child_forked_at_its_descriptor_limit_keeps_a_working_hub",
        || {
            let (r, mut w) = pipe();
            let reader = hub::spawn(move || {
                let mut buf = [0u8; 4];
                (&r).read_exact(&mut buf).map(|()| buf)
            });
            hub::yield_now(); // it waits, registered
            let mut full = use_up_descriptors();
            let code = fork_and_wait(Exit::Raw, || {
                w.write_all(b"ping").unwrap();
                hub::sleep(Duration::from_millis(2)); // the hub polls
                drop(std::mem::take(&mut full));
                i32::from(reader.join().unwrap().unwrap() != *b"ping")
            });
            assert_eq!(code, 0);
        },
    );
}

/// An `AsyncFd` over a borrowed descriptor, forgotten (safe code), leaves
/// its registration behind; the descriptor is closed and its number reused
/// by a new socket. In a forked child the new socket gets its events: the
/// child registers each number again for its newest registration only.
/// (The stale one took the number first, and the new socket's events went
/// to a registration nobody waits on: its reader was never woken.)
#[test]
fn a_forgotten_registration_of_a_reused_number_does_not_take_its_events_in_the_child() {
    in_fresh_process(
        "a_forgotten_registration_of_a_reused_number_does_not_take_its_events_in_the_child",
        || {
            let (old, peer) = std::os::unix::net::UnixStream::pair().unwrap();
            let number = old.as_raw_fd();
            std::mem::forget(AsyncFd::new(&old).unwrap());
            drop((old, peer));
            let (a, b) = greenlet::net::UnixStream::pair().unwrap();
            let (reader, writer) = if a.as_raw_fd() == number {
                (a, b)
            } else {
                (b, a)
            };
            assert_eq!(reader.as_raw_fd(), number, "the number was not reused");
            let code = fork_and_wait(Exit::Raw, move || {
                let read = hub::spawn(move || {
                    let mut byte = [0u8; 1];
                    (&reader).read(&mut byte).map_err(|e| e.kind())
                });
                hub::yield_now(); // it blocks
                (&writer).write_all(b"x").unwrap();
                match hub::with_timeout(Duration::from_secs(5), || read.join()) {
                    Ok(Ok(Ok(1))) => 0,
                    Ok(_) => 1,
                    Err(_) => 2, // never woken
                }
            });
            assert_eq!(code, 0);
        },
    );
}
