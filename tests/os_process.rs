//! `greenlet::process`: subprocess waits and pipes that block only the
//! calling greenlet.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};

use std::rc::Rc;
use std::time::Duration;

use greenlet::hub;
use greenlet::process::{Command, Stdio};

#[path = "support/child.rs"]
mod child;
#[path = "support/unwinding.rs"]
mod unwinding;

/// A greenlet that yields until told to stop, counting its switches.
fn ticker() -> (Rc<Cell<u64>>, Rc<Cell<bool>>, hub::JoinHandle<()>) {
    let switches = Rc::new(Cell::new(0u64));
    let stop = Rc::new(Cell::new(false));
    let h = {
        let (switches, stop) = (switches.clone(), stop.clone());
        hub::spawn(move || {
            // Counts each turn it gets before giving the next one away,
            // so a turn counts even if the wait it interleaves with ends
            // before the ticker is resumed (under valgrind, starting this
            // greenlet's first stack can take longer than a short timeout).
            while !stop.get() {
                switches.set(switches.get() + 1);
                hub::yield_now();
            }
        })
    };
    (switches, stop, h)
}

#[test]
fn a_childs_output_is_read_while_other_greenlets_run() {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = hub::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            lines.push(line.unwrap());
        }
        lines
    });
    let (switches, stop, ticker) = ticker();
    // The reader is blocked on the child's stdout (nothing was written
    // yet, so nothing can come): the ticker keeps switching.
    let before = switches.get();
    while switches.get() < before + 100 {
        hub::yield_now();
    }
    assert!(!reader.is_finished());
    let writer = hub::spawn(move || {
        let mut stdin = stdin;
        for i in 0..3 {
            writeln!(stdin, "line {i}").unwrap();
            hub::yield_now();
        }
        // Dropping stdin closes it: cat exits.
    });
    writer.join().unwrap();
    assert_eq!(reader.join().unwrap(), ["line 0", "line 1", "line 2"]);
    assert!(child.wait().unwrap().success());
    stop.set(true);
    ticker.join().unwrap();
}

#[test]
fn wait_timeout_gives_up_leaving_the_child_running_and_others_run_meanwhile() {
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let (switches, stop, ticker) = ticker();
    assert_eq!(child.wait_timeout(Duration::from_millis(20)).unwrap(), None);
    assert!(switches.get() > 0, "the ticker ran while main waited");
    assert_eq!(child.try_wait().unwrap(), None, "still running");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    stop.set(true);
    ticker.join().unwrap();
}

/// A zero timeout is a poll, and still lets the others run once, as
/// every timed wait of the hub does: a supervisor polling in a loop lets
/// the greenlet that closes the child's stdin (so that `cat` exits) run.
#[test]
fn a_loop_of_zero_timeout_waits_lets_the_others_run() {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let closer = hub::spawn(move || drop(stdin));
    let mut polls = 0u64;
    let status = loop {
        if let Some(status) = child.wait_timeout(Duration::ZERO).unwrap() {
            break status;
        }
        polls += 1;
        assert!(
            closer.is_finished() || polls < 1_000,
            "{polls} zero-timeout waits, and the closer never ran"
        );
    };
    assert!(status.success());
}

#[test]
fn wait_timeout_returns_the_status_of_a_child_that_exits_in_time() {
    let mut child = Command::new("true").spawn().unwrap();
    let status = child.wait_timeout(Duration::from_secs(30)).unwrap();
    assert!(status.unwrap().success());
    // Reaped: further waits give the same status at once.
    assert!(child.wait().unwrap().success());
    // A timeout too long for an `Instant` is no deadline, not a panic.
    let mut child = Command::new("true").spawn().unwrap();
    let status = child.wait_timeout(Duration::MAX).unwrap();
    assert!(status.unwrap().success());
}

#[test]
fn output_collects_stdout_and_stderr_and_the_exit_code() {
    let out = Command::new("sh")
        .args(["-c", "echo out; echo err >&2; exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn output_of_a_large_stream_on_both_pipes_does_not_deadlock() {
    // 256 KiB on each pipe, more than a pipe holds: both must be drained
    // at the same time.
    let out = Command::new("sh")
        .args([
            "-c",
            "head -c 262144 /dev/zero; head -c 262144 /dev/zero >&2; \
             head -c 10 /dev/zero",
        ])
        .output()
        .unwrap();
    assert_eq!(out.stdout.len(), 262144 + 10);
    assert_eq!(out.stderr.len(), 262144);
    assert!(out.status.success());
}

#[test]
fn status_and_a_missing_program() {
    let status = Command::new("sh").args(["-c", "exit 7"]).status().unwrap();
    assert_eq!(status.code(), Some(7));
    let err = Command::new("/nonexistent/program").spawn().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn a_pipe_read_timeout_is_an_error_not_a_hang() {
    let mut child = Command::new("sleep")
        .arg("30")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdout.set_timeout(Some(Duration::from_millis(5))).unwrap();
    let mut buf = [0u8; 8];
    let err = stdout.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_command_keeps_its_stdio_settings_for_the_next_spawn_as_std_does() {
    let mut cmd = Command::new("echo");
    cmd.arg("hi").stdout(Stdio::piped());
    for _ in 0..2 {
        let mut child = cmd.spawn().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .expect("piped")
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hi\n");
        assert!(child.wait().unwrap().success());
    }
}

#[test]
fn output_without_a_stack_for_its_reader_is_an_error_and_leaves_no_child() {
    hub::yield_now(); // the hub greenlet has its stack
                      // Every stack this thread maps from now on is refused.
    let old = greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(1 << 50));
    let out = Command::new("true").output();
    greenlet::set_stack_policy(old);
    assert!(out.is_err(), "{out:?}");
}

/// The processes whose parent is this one, with their state letter (`Z`
/// for a zombie nobody reaped).
fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split
        // after its closing parenthesis.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().and_then(|s| s.chars().next());
        let ppid: Option<u32> = rest.next().and_then(|p| p.parse().ok());
        if ppid == Some(me) {
            let pid = stat.split_whitespace().next().unwrap().parse().unwrap();
            found.push((pid, state.unwrap_or('?')));
        }
    }
    found
}

const CHILD: &str = "GREENLET_OS_PROCESS_CHILD";

/// In a process of its own (so that its children are the only ones):
/// interrupts `output`, `status` and `wait_with_output` while they wait,
/// and prints the children left after each.
#[test]
fn interrupted_waits_child() {
    if std::env::var(CHILD).is_err() {
        return; // only when re-run by the test below
    }
    type Run = fn() -> std::io::Result<()>;
    let runs: [(&str, Run); 3] = [
        ("output", || {
            Command::new("sleep").arg("30").output().map(drop)
        }),
        ("status", || {
            Command::new("sleep").arg("30").status().map(drop)
        }),
        ("wait_with_output", || {
            // Its stdout ends at once; its stderr stays open.
            let child = Command::new("sh")
                .args(["-c", "exec 1>&-; sleep 30"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            child.wait_with_output().map(drop)
        }),
    ];
    for (name, run) in runs {
        let waiter = hub::spawn(run);
        hub::yield_now(); // it starts the process and blocks
        let before = children().len();
        waiter.kill();
        println!("{name}: {before} running, then {:?}", children());
    }
    let cut = hub::with_timeout(Duration::from_millis(1), || {
        Command::new("sleep").arg("30").output()
    });
    println!("with_timeout: {} then {:?}", cut.is_err(), children());
    hub::run(); // nothing is left blocked (a stderr reader, say)
}

#[test]
fn an_interrupted_wait_kills_and_reaps_the_process_it_waited_for() {
    let out = child::run("interrupted_waits_child", CHILD, "1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["output", "status", "wait_with_output"] {
        assert!(
            stdout.contains(&format!("{name}: 1 running, then []")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("with_timeout: true then []"), "{stdout}");
}

/// One child's output feeds another's input, as with std's
/// `Stdio::from(child.stdout)`: the pipe leaves the hub in blocking mode
/// again. (There was no way but a duplicate of the descriptor, still
/// non-blocking: the second child's first read of the empty pipe failed,
/// "cat: -: Resource temporarily unavailable".)
#[test]
fn a_childs_stdout_feeds_another_childs_stdin() {
    let mut first = Command::new("sh")
        .args(["-c", "read line; echo \"$line\"; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = first.stdout.take().unwrap().into_std().unwrap();
    // SAFETY: `F_GETFL` reads the open file's flags; the descriptor is open.
    let flags = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&pipe), libc::F_GETFL) };
    assert_eq!(flags & libc::O_NONBLOCK, 0, "blocking again");
    let second = Command::new("cat")
        .stdin(Stdio::from(pipe))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The first child writes only now: the second one waits on an empty
    // pipe first.
    let mut input = first.stdin.take().unwrap();
    input.write_all(b"hello\n").unwrap();
    drop(input);
    let output = second.wait_with_output().unwrap();
    assert_eq!(output.stdout, b"hello\ndone\n");
    assert!(output.status.success());
    assert!(first.wait().unwrap().success());
    // `TryFrom` does the same.
    let mut third = Command::new("echo")
        .arg("via TryFrom")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = Stdio::try_from(third.stdout.take().unwrap()).unwrap();
    let out = Command::new("cat").stdin(stdin).output().unwrap();
    assert_eq!(out.stdout, b"via TryFrom\n");
    third.wait().unwrap();
}

/// A watchdog greenlet, or another thread, signals a child while a
/// greenlet waits for it (and holds the `Child`): through a
/// `ChildSignaller`, which fails once the child is gone instead of
/// reaching a process that took its pid.
#[test]
fn a_signaller_reaches_a_child_that_another_greenlet_waits_for() {
    use std::os::unix::process::ExitStatusExt;
    fn is_send<T: Send>(_: &T) {}
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    let signaller = match child.signaller() {
        Ok(signaller) => signaller,
        Err(e) => {
            // No pidfd (valgrind does not know `pidfd_open`): said so.
            assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
    };
    is_send(&signaller);
    let waiter = hub::spawn(move || child.wait().unwrap());
    hub::yield_now(); // it waits
    let from_a_thread = std::thread::spawn(move || {
        signaller.send_signal(libc::SIGTERM).unwrap();
        signaller
    });
    let status = waiter.join().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    let signaller = from_a_thread.join().unwrap();
    let gone = signaller.kill().unwrap_err();
    assert_eq!(gone.raw_os_error(), Some(libc::ESRCH));
    assert_eq!(
        signaller.send_signal(0).unwrap_err().raw_os_error(),
        Some(libc::ESRCH)
    );
}

/// A signaller's clone reaches the same child; its pidfd turns readable
/// when the child exits; `Command`'s `Debug` shows `kill_on_drop`.
#[test]
fn a_cloned_signaller_reaches_the_same_child_and_its_fd_says_when_it_exits() {
    use std::os::fd::{AsFd, AsRawFd};
    let mut cmd = Command::new("sleep");
    cmd.arg("60").kill_on_drop(true);
    assert!(
        format!("{cmd:?}").ends_with("\"60\" (kill on drop)"),
        "{cmd:?}"
    );
    let mut child = cmd.spawn().unwrap();
    let Ok(first) = child.signaller() else {
        // No pidfd (valgrind): `signaller`'s own test checks the error.
        return;
    };
    let second = first.try_clone().unwrap();
    assert_ne!(first.as_raw_fd(), second.as_raw_fd());
    drop(first);
    assert_eq!(
        hub::wait_readable(&second, Some(std::time::Duration::ZERO))
            .unwrap_err()
            .kind(),
        std::io::ErrorKind::TimedOut,
        "not readable while the child runs"
    );
    second.kill().unwrap();
    hub::wait_readable(second.as_fd(), None).unwrap();
    assert!(!child.wait().unwrap().success());
}

/// `kill_on_drop`: a worker greenlet killed while it waits for its child
/// takes the child with it (killed and reaped: no process, no zombie). By
/// default a dropped child runs on, as in std.
#[test]
fn a_child_spawned_with_kill_on_drop_goes_with_its_killed_worker() {
    let pid = Rc::new(Cell::new(0));
    let p = pid.clone();
    let worker = hub::spawn(move || {
        let mut child = Command::new("sleep")
            .arg("60")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        p.set(child.id());
        child.wait()
    });
    hub::yield_now(); // it waits
    worker.kill();
    assert!(pid.get() > 0);
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pid.get())).exists(),
        "killed and reaped"
    );

    let left = Command::new("sleep").arg("60").spawn().unwrap();
    let id = left.id();
    drop(left);
    assert!(
        std::path::Path::new(&format!("/proc/{id}")).exists(),
        "runs on"
    );
    // SAFETY: our own child, not reaped: no other process has its pid.
    unsafe { libc::kill(id as libc::pid_t, libc::SIGKILL) };
    // Reap it: waitpid on our own child.
    // SAFETY: a plain call with a null status pointer.
    unsafe { libc::waitpid(id as libc::pid_t, std::ptr::null_mut(), 0) };
}

/// A pipe moves out of a `Child`, as out of std's (`Child` has no `Drop`
/// of its own: `kill_on_drop` lives on an inner field), and the rest of
/// it drops as usual. (The first version of `kill_on_drop` put the `Drop`
/// on `Child`, and this did not compile.)
#[test]
fn a_pipe_moves_out_of_a_child_as_out_of_stds() {
    // (Without `kill_on_drop`: the rest of the child drops at once, and
    // with it the child would be killed before it wrote.)
    let mut stdout = Command::new("echo")
        .arg("moved")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
        .stdout
        .unwrap();
    let mut text = String::new();
    stdout.read_to_string(&mut text).unwrap();
    assert_eq!(text, "moved\n");
    let child = Command::new("true").stdout(Stdio::piped()).spawn().unwrap();
    let debug = format!("{child:?}");
    assert!(
        debug.contains("stdout: Some(") && debug.contains("kill_on_drop: false"),
        "{debug}"
    );
    let greenlet::process::Child { stdout, .. } = child;
    assert!(stdout.is_some());
}

#[test]
fn communicate_writes_reads_and_waits_at_once() {
    // 1 MiB through `cat`: written by one greenlet while the call reads
    // stdout, or both would block on full pipes.
    let input: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let out = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .communicate(input.clone())
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), input.len());
    assert!(out.stdout == input);
    assert!(out.stderr.is_empty());
}

#[test]
fn communicate_with_a_child_that_does_not_read_its_input_is_no_error() {
    let out = Command::new("sh")
        .args(["-c", "echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
        .communicate(vec![b'x'; 1 << 20])
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"done\n");
}

#[test]
fn communicate_with_input_and_no_stdin_pipe_is_refused_and_the_child_reaped() {
    let child = Command::new("sleep")
        .arg("60")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let e = child.communicate("x").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    // Killed and reaped: no such process any more.
    // SAFETY: kill with signal 0 only asks whether the pid exists.
    let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    assert!(!alive, "the child was killed and reaped");
    // An empty input needs no pipe.
    let out = Command::new("true")
        .spawn()
        .unwrap()
        .communicate("")
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn a_childs_exit_is_waited_for_beside_an_event() {
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    let Some(exited) = child.exited() else {
        return; // no pidfd on this system
    };
    let stop = hub::Event::new();
    let s = stop.clone();
    hub::spawn(move || s.set());
    let items: [&dyn hub::Waitable; 2] = [&exited, &stop];
    assert_eq!(hub::wait_any(&items, None), Some(1), "the stop first");
    let signaller = child.signaller().unwrap();
    hub::spawn(move || signaller.kill().unwrap());
    let exited = child.exited().unwrap();
    let quiet = hub::Event::new();
    let items: [&dyn hub::Waitable; 2] = [&exited, &quiet];
    assert_eq!(hub::wait_any(&items, None), Some(0), "then the exit");
    assert!(child.try_wait().unwrap().is_some(), "reaped at once");
}

/// Whether this is `test` re-run in a process of its own, with `var` set
/// (for a test that limits or inspects the whole process); if not, runs
/// it so and asserts that it passed there.
fn in_own_process(test: &str, var: &str) -> bool {
    if std::env::var_os(var).is_some() {
        return true;
    }
    child::assert_passes(test, var, "1");
    false
}

/// A child's exit watched without a pidfd (pidfd_open refused: kernels
/// before 5.3, or no descriptor free) on a paused clock: the wait must not
/// spin on the clock's jumps. In a process of its own: it takes every free
/// descriptor.
#[test]
fn a_wait_without_a_pidfd_on_a_paused_clock_does_not_spin() {
    let test = "a_wait_without_a_pidfd_on_a_paused_clock_does_not_spin";
    if !in_own_process(test, "GREENLET_OS_PROCESS_NO_PIDFD") {
        return;
    }
    // The hub, its reactor and its pool made first.
    let _ = Command::new("true").status().unwrap();
    // No descriptor free: `pidfd_open` fails, and the child is watched by
    // polling `try_wait` instead.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid pointers; the process is ours.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    let tight = libc::rlimit {
        rlim_cur: highest + 4,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &tight) }, 0);
    let mut fill = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        fill.push(f);
    }
    hub::time::pause();
    let start = hub::time::now();
    let spawned = Command::new("sh").args(["-c", "sleep 0.2; exit 9"]).spawn();
    drop(fill);
    // SAFETY: as above.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    let mut running = spawned.unwrap();
    assert!(format!("{running:?}").contains("poll"), "{running:?}");
    assert_eq!(running.wait().unwrap().code(), Some(9));
    // Its pauses were real time, on the pool: the paused clock did not
    // move (it jumped each pause at once, and the wait spun).
    assert_eq!(hub::time::now() - start, Duration::ZERO);
    hub::time::resume();
}

/// A `wait` in a destructor while its greenlet unwinds cannot block, but a
/// child that has exited already is reaped there, even when the hub has
/// not yet seen its exit (the wait's readiness still says "running", from
/// an earlier `wait_timeout`).
#[test]
fn a_wait_while_unwinding_reaps_a_child_that_has_exited() {
    use std::cell::RefCell;
    struct WaitOnDrop(
        Option<greenlet::process::Child>,
        Rc<RefCell<Option<String>>>,
    );
    impl Drop for WaitOnDrop {
        fn drop(&mut self) {
            let waited = self.0.as_mut().unwrap().wait().map(|s| s.code());
            *self.1.borrow_mut() = Some(format!("{waited:?}"));
        }
    }
    let result = Rc::new(RefCell::new(None));
    let in_guard = result.clone();
    let failing = hub::spawn(move || {
        let mut child = Command::new("sh")
            .args(["-c", "read _; exit 5"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        // Still running: its wait's readiness says so.
        assert!(child
            .wait_timeout(Duration::from_millis(1))
            .unwrap()
            .is_none());
        drop(child.stdin.take()); // it reads the end of its input, and exits
                                  // Blocks the thread (not the hub) until it has exited, without
                                  // reaping it.
                                  // SAFETY: `waitid` with a valid `siginfo_t` out-pointer.
        let exited = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                child.id(),
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        assert_eq!(exited, 0);
        let _guard = WaitOnDrop(Some(child), in_guard);
        panic!("the greenlet fails; its guard waits for the child");
    });
    assert!(failing.join().is_err());
    assert_eq!(result.borrow().as_deref(), Some("Ok(Some(5))"));
}

/// `Command::status` in a destructor while its greenlet unwinds cannot
/// wait for the child it started: it fails, and kills and reaps the child
/// (as `output` does), rather than leaving it running and then a zombie.
/// In a process of its own, which then has no child left at all.
#[test]
fn a_status_that_fails_while_unwinding_leaves_no_child_behind() {
    let test = "a_status_that_fails_while_unwinding_leaves_no_child_behind";
    if !in_own_process(test, "GREENLET_OS_PROCESS_STATUS_UNWINDING") {
        return;
    }
    let failed = unwinding::in_a_destructor_while_unwinding(|| {
        Command::new("sleep").arg("5").status().is_err()
    });
    assert!(failed, "it could not wait");
    assert!(no_child_left(), "a child is left");
}

/// No child of this process is left, running or unreaped.
fn no_child_left() -> bool {
    // SAFETY: `waitid` with a valid `siginfo_t` out-pointer.
    let waited = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    let error = std::io::Error::last_os_error().raw_os_error();
    (waited, error) == (-1, Some(libc::ECHILD))
}

/// `output` in a destructor while its greenlet unwinds, with only stderr
/// piped: no stdout read fails first, and the wait for the stderr reader
/// cannot block there. It fails, as `status` does, and the child is killed
/// and reaped. (It was a blocking join that panicked inside the
/// destructor, which aborted the process.) In a process of its own.
#[test]
fn an_output_with_only_stderr_piped_fails_while_unwinding() {
    let test = "an_output_with_only_stderr_piped_fails_while_unwinding";
    if !in_own_process(test, "GREENLET_OS_PROCESS_OUTPUT_UNWINDING") {
        return;
    }
    let failed = unwinding::in_a_destructor_while_unwinding(|| {
        Command::new("sh")
            .args(["-c", "echo err >&2; sleep 5"])
            .stdout(Stdio::null())
            .output()
            .is_err()
    });
    assert!(failed, "it could not wait");
    assert!(no_child_left(), "a child is left");
}

/// `wait_with_output` in a destructor while its greenlet unwinds, of a
/// child that has exited: its stdout ends without a wait, and the stderr
/// reader's result is taken without blocking or fails; either way no
/// abort, and no child left. `communicate` with input and only stdin piped
/// the same, through its writer. In a process of its own.
#[test]
fn output_of_an_exited_child_and_communicate_do_not_block_while_unwinding() {
    let test = "output_of_an_exited_child_and_communicate_do_not_block_while_unwinding";
    if !in_own_process(test, "GREENLET_OS_PROCESS_EXITED_UNWINDING") {
        return;
    }
    let child = Command::new("true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Exited, not reaped: its pidfd turns readable.
    hub::wait_readable(child.signaller().unwrap(), None).unwrap();
    let status = unwinding::in_a_destructor_while_unwinding(move || {
        child.wait_with_output().map(|out| out.status.code())
    });
    assert!(matches!(status, Ok(Some(0)) | Err(_)), "{status:?}");
    let communicated = unwinding::in_a_destructor_while_unwinding(|| {
        let child = Command::new("sh")
            .args(["-c", "sleep 5"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.communicate(vec![b'x'; 1 << 20]).is_err()
    });
    assert!(communicated, "it could not wait");
    assert!(no_child_left(), "a child is left");
}
