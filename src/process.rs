//! Subprocesses whose waits and pipes block only the calling greenlet:
//! [`Command`] and [`Child`] in `std::process`'s shape (gevent's
//! `gevent.subprocess`).
//!
//! ```
//! use greenlet::process::Command;
//!
//! let out = Command::new("sh").args(["-c", "echo hi; exit 3"]).output().unwrap();
//! assert_eq!(out.stdout, b"hi\n");
//! assert_eq!(out.status.code(), Some(3));
//! ```
//!
//! Decisions:
//! - The child's exit is watched through a *pidfd* (`pidfd_open`, Linux
//!   5.3 and later), which the hub polls like any descriptor: no signal
//!   handler, no `SIGCHLD` disposition changed, nothing process-wide. On
//!   older kernels (and other systems) a wait polls `try_wait` on a
//!   backing-off [`hub::sleep`] (1 ms up to 50 ms).
//! - Piped stdin, stdout and stderr are pipes in non-blocking mode,
//!   registered with the hub ([`AsyncFd`]); they implement `Read` /
//!   `Write` (also through shared references). To feed one to another
//!   child, convert it (`Stdio::try_from(child.stdout.take().unwrap())`,
//!   or `into_std`): that takes it off the hub and makes it blocking again.
//!   A duplicate of its descriptor shares the non-blocking mode, which the
//!   other child's reads would fail on.
//! - A child is `!Send`, unlike std's: its exit watch belongs to the hub of
//!   the thread that spawned it.
//! - As with std, dropping a [`Child`] neither kills nor reaps it, unless
//!   it was spawned with [`Command::kill_on_drop`].
//! - [`Child::kill`] takes `&mut self`, as std's; to signal a child that
//!   another greenlet waits for, take a [`Child::signaller`] first.
//! - A kill (and the kill that `output`, `status` and `wait_with_output`
//!   make when a `with_timeout` expiry or a kill interrupts them) ends the
//!   child only, not what it started: a shell's background jobs live on.
//!   To end those too, start the child in a process group of its own
//!   (`std::os::unix::process::CommandExt::process_group(0)` on
//!   [`Command::as_std_mut`]) and signal the group (`libc::kill(-pid, ..)`).
//! - A paused hub clock ([`hub::time::pause`]) does not wait for a child:
//!   it jumps past one still running to the next timer, as tokio's does.

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::process::{ExitStatus, Output};

/// std's, re-exported: what [`Command::stdin`], [`Command::stdout`] and
/// [`Command::stderr`] take.
pub use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::hub;
use crate::net::AsyncFd;
use crate::runtime::Runtime;

/// A process builder, as [`std::process::Command`], whose
/// [`output`](Command::output) and [`status`](Command::status) block only
/// the calling greenlet.
pub struct Command {
    /// Holds the stdio settings made through this type (std keeps them
    /// for every spawn, as this type does).
    std: std::process::Command,
    /// Which of stdin, stdout and stderr were set: the others get the
    /// default of the call that spawns.
    set: [bool; 3],
    /// Whether the children it spawns are killed when their `Child` drops.
    kill_on_drop: bool,
}

impl Command {
    /// A command running `program`, as [`std::process::Command::new`].
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            std: std::process::Command::new(program),
            set: [false; 3],
            kill_on_drop: false,
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, val);
        self
    }

    /// Sets environment variables.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Clears the environment.
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// Sets the working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// The child's standard input (default: inherited for `spawn` and
    /// `status`, null for `output`).
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdin(cfg);
        self.set[0] = true;
        self
    }

    /// The child's standard output (default: inherited for `spawn` and
    /// `status`, piped for `output`).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdout(cfg);
        self.set[1] = true;
        self
    }

    /// The child's standard error (default: inherited for `spawn` and
    /// `status`, piped for `output`).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stderr(cfg);
        self.set[2] = true;
        self
    }

    /// The std command underneath, for settings this type does not mirror
    /// (`std::os::unix::process::CommandExt`, say). Its stdio settings are
    /// overridden by the defaults of the call that spawns, unless set
    /// through this type.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// Whether a child spawned from now on is killed (and reaped) when its
    /// [`Child`] is dropped while it runs (tokio's name; off by default, as
    /// in std, where a dropped child runs on). With it, a supervisor's
    /// workers killed with their greenlets take their children with them.
    /// The drop sends `SIGKILL` and then waits for the kernel to end the
    /// process, blocking the thread for that moment (as the kill of an
    /// interrupted [`output`](Command::output) does). Only the child goes:
    /// what it started lives on (see the [module docs](self) for process
    /// groups).
    ///
    /// ```
    /// use greenlet::hub;
    /// use greenlet::process::Command;
    ///
    /// let worker = hub::spawn(|| {
    ///     let mut child = Command::new("sleep").arg("60").kill_on_drop(true).spawn().unwrap();
    ///     child.wait() // killed while it waits: the child goes too
    /// });
    /// hub::yield_now();
    /// worker.kill();
    /// ```
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Command {
        self.kill_on_drop = kill;
        self
    }

    /// Starts the process. Never blocks the hub (`fork`/`exec` aside).
    ///
    /// # Errors
    ///
    /// std's (the program cannot be found or run), or the hub's when a pipe
    /// cannot be registered.
    pub fn spawn(&mut self) -> io::Result<Child> {
        self.spawn_with(Stdio::inherit, Stdio::inherit, Stdio::inherit)
    }

    /// Runs the process to its end, collecting its stdout and stderr,
    /// blocking only the calling greenlet. Stdin is null unless set. If the
    /// call is interrupted (a [`with_timeout`](crate::hub::with_timeout)
    /// expiry, a kill) or fails, the process is killed and reaped.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn), and as [`Child::wait_with_output`].
    ///
    /// # Panics
    ///
    /// As [`Child::wait_with_output`] (any blocking hub call).
    pub fn output(&mut self) -> io::Result<Output> {
        self.spawn_with(Stdio::null, Stdio::piped, Stdio::piped)?
            .wait_with_output()
    }

    /// Runs the process to its end, blocking only the calling greenlet.
    /// If the call is interrupted (a
    /// [`with_timeout`](crate::hub::with_timeout) expiry, a kill) or its
    /// wait fails, the process is killed and reaped.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn), and [`Child::wait`]'s: made while the
    /// calling greenlet unwinds (in a destructor during a panic or a kill),
    /// which cannot wait, for a process that has not exited yet.
    ///
    /// # Panics
    ///
    /// As [`Child::wait`] (any blocking hub call).
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        let mut child = ReapOnUnwind(Some(self.spawn()?));
        let running = child.0.as_mut().expect("present until the end");
        // As std: nothing will write the child's stdin.
        drop(running.stdin.take());
        let status = running.wait();
        if status.is_ok() {
            child.0 = None;
        }
        // On an error (a wait refused while the caller unwinds, say) the
        // guard kills and reaps the child, as `output`'s does: no zombie.
        status
    }

    fn spawn_with(
        &mut self,
        stdin: fn() -> Stdio,
        stdout: fn() -> Stdio,
        stderr: fn() -> Stdio,
    ) -> io::Result<Child> {
        // What was set stays for the next spawn, as in std; the rest gets
        // this call's default.
        if !self.set[0] {
            self.std.stdin(stdin());
        }
        if !self.set[1] {
            self.std.stdout(stdout());
        }
        if !self.set[2] {
            self.std.stderr(stderr());
        }
        let mut std = self.std.spawn()?;
        let exit = ExitWatch::new(std.id());
        let stdin = std.stdin.take().map(ChildStdin::new).transpose();
        let stdout = std.stdout.take().map(ChildStdout::new).transpose();
        let stderr = std.stderr.take().map(ChildStderr::new).transpose();
        let (stdin, stdout, stderr) = match (stdin, stdout, stderr) {
            (Ok(i), Ok(o), Ok(e)) => (i, o, e),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                // Not left running unwatched: kill and reap it.
                let _ = std.kill();
                let _ = std.wait();
                return Err(e);
            }
        };
        Ok(Child {
            stdin,
            stdout,
            stderr,
            std: StdChild {
                inner: std,
                kill_on_drop: self.kill_on_drop,
            },
            exit,
        })
    }
}

/// std's form (the command line), then `(kill on drop)` when set.
impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.std.fmt(f)?;
        if self.kill_on_drop {
            f.write_str(" (kill on drop)")?;
        }
        Ok(())
    }
}

/// How a child's exit is noticed.
enum ExitWatch {
    /// Readable once the process has exited.
    #[cfg(target_os = "linux")]
    Pidfd(AsyncFd<std::os::fd::OwnedFd>),
    /// No pidfd: `try_wait` on a backing-off sleep.
    Poll,
}

impl ExitWatch {
    fn new(pid: u32) -> ExitWatch {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::{FromRawFd, OwnedFd};
            // SAFETY: `pidfd_open(pid, 0)` takes two integers and returns
            // a new descriptor or -1; it touches no memory of ours. The pid
            // is our unreaped child, so it cannot name another process.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
            if fd >= 0 {
                // SAFETY: `fd` was just returned by the kernel, is open,
                // and nothing else owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
                if let Ok(fd) = AsyncFd::new(fd) {
                    return ExitWatch::Pidfd(fd);
                }
            }
        }
        let _ = pid;
        ExitWatch::Poll
    }
}

/// A running (or finished) child process, as [`std::process::Child`],
/// whose waits block only the calling greenlet.
pub struct Child {
    /// Its standard input, if piped.
    pub stdin: Option<ChildStdin>,
    /// Its standard output, if piped.
    pub stdout: Option<ChildStdout>,
    /// Its standard error, if piped.
    pub stderr: Option<ChildStderr>,
    std: StdChild,
    exit: ExitWatch,
}

/// std's child, killed and reaped when dropped if it was spawned with
/// [`Command::kill_on_drop`]: in a field of its own, so that [`Child`]
/// has no `Drop` and its pipes can be moved out of it, as out of std's.
struct StdChild {
    inner: std::process::Child,
    kill_on_drop: bool,
}

impl std::ops::Deref for StdChild {
    type Target = std::process::Child;

    fn deref(&self) -> &std::process::Child {
        &self.inner
    }
}

impl std::ops::DerefMut for StdChild {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.inner
    }
}

impl Drop for StdChild {
    fn drop(&mut self) {
        if self.kill_on_drop && matches!(self.inner.try_wait(), Ok(None)) {
            let _ = self.inner.kill();
            // Blocks the thread until the kernel has ended the killed
            // process (see `Command::kill_on_drop`).
            let _ = self.inner.wait();
        }
    }
}

impl Child {
    /// The OS process id.
    pub fn id(&self) -> u32 {
        self.std.id()
    }

    /// Sends `SIGKILL` (nothing if it has already been reaped).
    ///
    /// # Errors
    ///
    /// std's.
    pub fn kill(&mut self) -> io::Result<()> {
        self.std.kill()
    }

    /// A handle that signals this child from anywhere (another greenlet,
    /// another thread) while a greenlet waits for it, which holds the
    /// `Child` itself: a watchdog that kills a hung child, a supervisor
    /// that forwards `SIGTERM`. It names the process through a pidfd, so
    /// once the child has been reaped it fails with `ESRCH` rather than
    /// reach a process that took over its pid.
    ///
    /// ```
    /// use greenlet::hub;
    /// use greenlet::process::Command;
    ///
    /// let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    /// let signaller = child.signaller().unwrap();
    /// let watchdog = hub::spawn(move || signaller.send_signal(libc::SIGTERM));
    /// let status = child.wait().unwrap(); // woken by the watchdog's signal
    /// watchdog.join().unwrap().unwrap();
    /// use std::os::unix::process::ExitStatusExt;
    /// assert_eq!(status.signal(), Some(libc::SIGTERM));
    /// ```
    ///
    /// # Errors
    ///
    /// `Unsupported` where the child has no pidfd (kernels before Linux
    /// 5.3, other systems); the error of duplicating the descriptor.
    pub fn signaller(&self) -> io::Result<ChildSignaller> {
        match &self.exit {
            #[cfg(target_os = "linux")]
            ExitWatch::Pidfd(fd) => Ok(ChildSignaller {
                pidfd: fd.get_ref().try_clone()?,
            }),
            ExitWatch::Poll => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "greenlet::process: no pidfd for this child (pidfd_open failed when \
                 it was spawned, or the kernel is older than Linux 5.3)",
            )),
        }
    }

    /// Its exit status if it has exited, without blocking.
    ///
    /// # Errors
    ///
    /// std's.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.std.try_wait()
    }

    /// Waits (blocking only the calling greenlet) for it to exit and reaps
    /// it. Its stdin is closed first, as std does, so a child reading it
    /// sees EOF.
    ///
    /// # Errors
    ///
    /// std's; and, called while the greenlet unwinds (in a destructor
    /// during a panic or a kill), which cannot wait, when the process has
    /// not exited yet (one that has is reaped).
    ///
    /// # Panics
    ///
    /// As any blocking hub call (see the [hub docs](crate::hub)).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        match self.wait_until(None)? {
            Some(status) => Ok(status),
            None => unreachable!("a wait without a deadline ends only with the exit"),
        }
    }

    /// Its exit, to wait for beside other things with
    /// [`hub::wait_any`] (gevent's `wait([popen, ...])`): ready once the process has exited (then
    /// [`try_wait`](Child::try_wait) gives its status at once). `None`
    /// where the system gave no pidfd for it (Linux before 5.3, other
    /// Unixes, or `pidfd_open` failing, out of descriptors say):
    /// there, wait in a greenlet of its own and set an
    /// [`Event`](crate::hub::Event).
    ///
    /// [`hub::wait_any`]: crate::hub::wait_any
    ///
    /// ```
    /// use greenlet::hub::{self, Event, Waitable};
    /// use greenlet::process::Command;
    ///
    /// let mut child = Command::new("true").spawn()?;
    /// let stop = Event::new();
    /// if let Some(exited) = child.exited() {
    ///     let ready = hub::wait_any(&[&exited as &dyn Waitable, &stop], None);
    ///     assert_eq!(ready, Some(0)); // the exit, not the stop
    /// }
    /// assert!(child.wait()?.success());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn exited(&self) -> Option<crate::net::Readiness<'_>> {
        match &self.exit {
            #[cfg(target_os = "linux")]
            ExitWatch::Pidfd(fd) => Some(fd.readable()),
            ExitWatch::Poll => None,
        }
    }

    /// Waits up to `timeout` for it to exit: `Ok(None)` if it is still
    /// running then (it is left running; [`kill`](Child::kill) it if
    /// needed). Stdin is left open. A zero timeout still lets the other
    /// greenlets run once before it looks, as every timed wait of the hub
    /// does, so a loop of polls cannot keep them from running.
    ///
    /// # Errors
    ///
    /// As [`wait`](Child::wait)'s.
    ///
    /// # Panics
    ///
    /// As [`wait`](Child::wait).
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        // A timeout too long for an `Instant` is no deadline at all.
        self.wait_until(crate::hub::deadline_after(timeout))
    }

    fn wait_until(&mut self, deadline: Option<Instant>) -> io::Result<Option<ExitStatus>> {
        let std = &mut self.std;
        match &self.exit {
            #[cfg(target_os = "linux")]
            ExitWatch::Pidfd(fd) => {
                let left = match deadline {
                    None => None,
                    Some(d) => match d.checked_duration_since(crate::hub::time::now()) {
                        Some(left) if !left.is_zero() => Some(left),
                        _ => {
                            let_others_run_once(d);
                            return std.try_wait();
                        }
                    },
                };
                fd.set_read_timeout(left)?;
                // A pidfd turns readable when the process exits (and
                // stays so): try to reap, wait for that edge, try again.
                let reaped = fd.read_with(|_| {
                    std.try_wait()?
                        .ok_or_else(|| io::ErrorKind::WouldBlock.into())
                });
                match reaped {
                    Ok(status) => Ok(Some(status)),
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => std.try_wait(),
                    Err(e) => Err(e),
                }
            }
            ExitWatch::Poll => {
                let mut pause = Duration::from_millis(1);
                let mut paused = false;
                loop {
                    if let Some(status) = std.try_wait()? {
                        return Ok(Some(status));
                    }
                    let now = crate::hub::time::now();
                    let mut until = now.checked_add(pause).unwrap_or(now);
                    if let Some(d) = deadline {
                        if now >= d {
                            if !paused {
                                let_others_run_once(d);
                                paused = true;
                                continue;
                            }
                            return Ok(None);
                        }
                        until = until.min(d);
                    }
                    if deadline.is_none() && crate::hub::time::is_paused() {
                        // A paused clock would jump each pause at once, and
                        // this would spin for the child's whole life: the
                        // pause is real time instead, on a pool thread,
                        // which a paused clock waits for.
                        hub::ThreadPool::global().run(move || std::thread::sleep(pause))?;
                    } else {
                        hub::pause_io("process::Child::wait", until)?;
                    }
                    paused = true;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        }
    }

    /// Closes stdin, reads stdout and stderr to their ends (at the same
    /// time, in two greenlets) and waits for the exit, blocking only the
    /// calling greenlet. If the call is interrupted (a
    /// [`with_timeout`](crate::hub::with_timeout) expiry, a kill) or
    /// fails, the process, which the caller gave up, is killed and reaped.
    ///
    /// # Errors
    ///
    /// The pipes' read errors, std's, and the hub's when the stderr
    /// reader's greenlet gets no stack; while the greenlet unwinds, an
    /// [`ErrorKind::Other`](io::ErrorKind::Other) error when the child or
    /// stdout would have to be waited for, as [`wait`](Child::wait) gives,
    /// and whenever stderr is piped (its reader is a greenlet of its own,
    /// which cannot run then).
    ///
    /// # Panics
    ///
    /// As [`wait`](Child::wait).
    pub fn wait_with_output(self) -> io::Result<Output> {
        self.finish(None)
    }

    /// Writes `input` to stdin and closes it, reads stdout and stderr to
    /// their ends and waits for the exit, all at the same time (Python's
    /// `Popen.communicate(input)`): a child that writes a lot before it
    /// has read all its input does not deadlock on full pipes. A child
    /// that exits (or closes its stdin) before reading all of `input` is
    /// no error: the rest is dropped, as Python does (the write fails with
    /// `EPIPE`; a program that restored `SIGPIPE`'s default action, which
    /// Rust's runtime and Python's both ignore, is killed by that signal
    /// instead, as with std's `ChildStdin`). As
    /// [`wait_with_output`](Child::wait_with_output) otherwise, with an
    /// empty `input`. Called by a daemon greenlet, its helper greenlets are
    /// daemons too (see [`hub::daemon`]).
    ///
    /// ```
    /// use greenlet::process::{Command, Stdio};
    ///
    /// let out = Command::new("tr")
    ///     .arg("a-z")
    ///     .arg("A-Z")
    ///     .stdin(Stdio::piped())
    ///     .stdout(Stdio::piped())
    ///     .spawn()?
    ///     .communicate("shout")?;
    /// assert_eq!(out.stdout, b"SHOUT");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `ErrorKind::InvalidInput` when `input` is not empty and stdin is
    /// not piped ([`Stdio::piped`]): the child is then killed and reaped,
    /// as on the other errors, which are [`wait_with_output`](Child::wait_with_output)'s
    /// and the write's (but a broken pipe).
    ///
    /// # Panics
    ///
    /// As [`wait`](Child::wait).
    pub fn communicate(self, input: impl Into<Vec<u8>>) -> io::Result<Output> {
        self.finish(Some(input.into()))
    }

    /// `wait_with_output` and `communicate`: the child is killed and
    /// reaped if the call fails or unwinds.
    fn finish(self, input: Option<Vec<u8>>) -> io::Result<Output> {
        let mut child = ReapOnUnwind(Some(self));
        let output = child.0.as_mut().expect("present").collect_output(input);
        if output.is_ok() {
            // Reaped: nothing left to do.
            child.0 = None;
        }
        output
    }

    /// The body of `finish`; on an error (or an unwinding) the caller
    /// kills and reaps the child.
    fn collect_output(&mut self, input: Option<Vec<u8>>) -> io::Result<Output> {
        let input = input.filter(|input| !input.is_empty());
        let stdin = self.stdin.take();
        if input.is_some() && stdin.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "greenlet::process::Child::communicate: input given, but stdin is not piped",
            ));
        }
        // The helpers are part of this call: a daemon greenlet's call
        // keeps them daemons too, or their pipe waits would keep
        // `hub::run` going. Not main's: main blocked inside `daemon` waits
        // on the helpers, and a wait of main's on a daemon is refused as
        // one that would block forever (no `run` is going then, for the
        // helpers to keep going).
        let daemon = hub::current_is_daemon() && !crate::Greenlet::current().is_main();
        let writer = match (stdin, input) {
            (Some(mut stdin), Some(input)) => Some(helper(daemon, move || {
                match stdin.write_all(&input) {
                    // The child stopped reading: what is left is dropped.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                    done => done,
                }
                // `stdin` drops here: the child sees the end.
            })?),
            // No input: stdin closes now.
            _ => None,
        };
        let mut writer = KillOnUnwind(writer);
        let stderr = match self.stderr.take() {
            Some(mut err) => Some(helper(daemon, move || {
                let mut buf = Vec::new();
                err.read_to_end(&mut buf).map(|_| buf)
            })?),
            None => None,
        };
        let mut stderr = KillOnUnwind(stderr);
        let mut stdout = Vec::new();
        if let Some(mut out) = self.stdout.take() {
            out.read_to_end(&mut stdout)?;
        }
        writer.join()?;
        let stderr = stderr.join()?.unwrap_or_default();
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// A wait for a child's exit whose deadline has already passed (a zero
/// timeout, a poll) still lets the other greenlets run once, as every
/// timed wait of the hub does: a loop of such polls cannot keep them out
/// (the one that would close the child's stdin, say) for the child's whole
/// life. A greenlet that unwinds cannot switch: it only looks.
fn let_others_run_once(deadline: Instant) {
    let _ = hub::pause_io("process::Child::wait", deadline);
}

/// Spawns a helper greenlet of a `collect_output` call (a daemon's, if
/// `daemon`); no stack for it is an error, not a panic.
fn helper<R: 'static>(
    daemon: bool,
    f: impl FnOnce() -> io::Result<R> + 'static,
) -> io::Result<hub::JoinHandle<io::Result<R>>> {
    hub::Builder::new()
        .spawn(move || if daemon { hub::daemon(f) } else { f() })
        .map_err(|e| io::Error::new(e.kind(), format!("greenlet::process: {e}")))
}

/// A helper greenlet of a `collect_output` call, killed if the call
/// unwinds (a kill or a `with_timeout`), so it does not outlive the call.
struct KillOnUnwind<R: 'static>(Option<hub::JoinHandle<io::Result<R>>>);

impl<R: 'static> KillOnUnwind<R> {
    /// Its result (`None`: there was no helper). Waited for through the
    /// guard, which kills the helper if the call is interrupted meanwhile.
    /// While the caller unwinds no wait can be made: an error, as
    /// [`Child::wait`] gives then (the guard kills the helper, and the
    /// call's `ReapOnUnwind` the child).
    fn join(&mut self) -> io::Result<Option<R>> {
        let Some(h) = &self.0 else {
            return Ok(None);
        };
        if !h.is_finished() && Runtime::get().current_unwinds() {
            return Err(hub::cannot_wait_unwinding(
                "process::Child::wait_with_output",
            ));
        }
        h.wait();
        match self.0.take().expect("present").join() {
            Ok(done) => done.map(Some),
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }
}

impl<R: 'static> Drop for KillOnUnwind<R> {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.kill();
        }
    }
}

/// Holds a child that a call (`Command::output`, `status`,
/// `Child::wait_with_output`) waits for: if the call is interrupted (a kill
/// or a `with_timeout` expiry unwinds through it) or fails, the child,
/// which its caller can no longer reach, is killed and reaped, not left
/// running or as a zombie. Taken out (`None`) once the call succeeded.
/// In a child forked meanwhile (see the hub docs' "`fork` without
/// `exec`"), the process is the parent's to wait for: left alone.
struct ReapOnUnwind(Option<Child>);

impl Drop for ReapOnUnwind {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // Running, and this process's child: `ECHILD` in a forked
            // child, where killing it would kill the parent's process.
            if !matches!(child.std.try_wait(), Ok(None)) {
                return;
            }
            let _ = child.std.kill();
            // Blocks the thread, but only until the kernel has ended a
            // killed process, and no hub wait can be made while the caller
            // unwinds.
            let _ = child.std.wait();
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.std.id())
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field(
                "exit_watch",
                &match self.exit {
                    #[cfg(target_os = "linux")]
                    ExitWatch::Pidfd(_) => "pidfd",
                    ExitWatch::Poll => "poll",
                },
            )
            .field("kill_on_drop", &self.std.kill_on_drop)
            .finish()
    }
}

/// Signals a child from anywhere; see [`Child::signaller`]. `Send`: a
/// duplicate of the child's pidfd, closed when this drops.
#[derive(Debug)]
pub struct ChildSignaller {
    pidfd: std::os::fd::OwnedFd,
}

impl ChildSignaller {
    /// Sends signal `signum` to the child.
    ///
    /// # Errors
    ///
    /// `pidfd_send_signal`'s: `ESRCH` once the child has been reaped (an
    /// exited child not reaped yet still takes signals, to no effect, as
    /// with `kill`), `EINVAL` for a bad signal number.
    pub fn send_signal(&self, signum: libc::c_int) -> io::Result<()> {
        pidfd_send_signal(&self.pidfd, signum)
    }

    /// Sends `SIGKILL`.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](ChildSignaller::send_signal).
    pub fn kill(&self) -> io::Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// A second signaller of the same child (a duplicate of the pidfd),
    /// for a second watchdog or thread.
    ///
    /// # Errors
    ///
    /// When the descriptor cannot be duplicated (`EMFILE`, ...).
    pub fn try_clone(&self) -> io::Result<ChildSignaller> {
        Ok(ChildSignaller {
            pidfd: self.pidfd.try_clone()?,
        })
    }
}

/// The pidfd: readable once the child has exited (to wait for it in an
/// event loop of your own); it stays open as long as the signaller.
impl std::os::fd::AsFd for ChildSignaller {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pidfd.as_fd()
    }
}

impl std::os::fd::AsRawFd for ChildSignaller {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.pidfd.as_raw_fd()
    }
}

#[cfg(target_os = "linux")]
fn pidfd_send_signal(pidfd: &std::os::fd::OwnedFd, signum: libc::c_int) -> io::Result<()> {
    // SAFETY: `pidfd_send_signal(fd, sig, NULL, 0)` takes a descriptor the
    // caller owns (open for the call), a signal number, a null info pointer
    // (the kernel fills in the usual `kill` info) and no flags; it touches
    // no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signum,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Never reached: `Child::signaller` says `Unsupported` without pidfds.
#[cfg(not(target_os = "linux"))]
fn pidfd_send_signal(_: &std::os::fd::OwnedFd, _: libc::c_int) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

macro_rules! pipe_type {
    ($(#[$doc:meta])* $name:ident, $std:ty, $($io:ident)+) => {
        $(#[$doc])*
        pub struct $name {
            fd: AsyncFd<$std>,
        }

        impl $name {
            fn new(std: $std) -> io::Result<$name> {
                Ok($name {
                    fd: AsyncFd::new(std)?,
                })
            }

            /// Sets how long one read or write may wait before failing
            /// with `ErrorKind::TimedOut` (`None`: forever; zero is
            /// refused with `InvalidInput`).
            ///
            /// # Errors
            ///
            /// `ErrorKind::InvalidInput` for `Some(Duration::ZERO)`.
            pub fn set_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
                self.fd.set_read_timeout(timeout)?;
                self.fd.set_write_timeout(timeout)
            }

            #[doc = concat!(
                "Gives the pipe back as std's `", stringify!($std), "`, taken off ",
                "this thread's hub and in blocking mode again: to hand to another ",
                "child (through `Stdio`, as `Stdio::try_from` does) or to blocking code.\n\n",
                "# Errors\n\nWhen its blocking mode cannot be restored (`fcntl`)."
            )]
            pub fn into_std(self) -> io::Result<$std> {
                let std = self.fd.into_inner();
                // The open file is shared with whoever gets it next (a
                // child reading a non-blocking pipe fails with EAGAIN).
                crate::net::fd::set_blocking(std.as_fd())?;
                Ok(std)
            }
        }

        impl TryFrom<$name> for Stdio {
            type Error = io::Error;

            #[doc = concat!(
                "Feeds the pipe to another child (`", stringify!($name),
                "::into_std`, then std's conversion)."
            )]
            fn try_from(pipe: $name) -> io::Result<Stdio> {
                pipe.into_std().map(Stdio::from)
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.fd.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.fd.as_raw_fd()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("fd", &self.as_raw_fd())
                    .finish()
            }
        }

        $(pipe_type!(@$io $name);)+
    };
    (@read $name:ident) => {
        impl Read for $name {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                (&self.fd).read(buf)
            }
        }

        impl Read for &$name {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                (&self.fd).read(buf)
            }
        }
    };
    (@write $name:ident) => {
        impl Write for $name {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                (&self.fd).write(buf)
            }

            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        impl Write for &$name {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                (&self.fd).write(buf)
            }

            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
    };
}

pipe_type!(
    /// A child's standard input: writes block only the calling greenlet.
    /// Dropping it closes the pipe (the child reads EOF).
    ChildStdin,
    std::process::ChildStdin,
    write
);
pipe_type!(
    /// A child's standard output: reads block only the calling greenlet.
    ChildStdout,
    std::process::ChildStdout,
    read
);
pipe_type!(
    /// A child's standard error: reads block only the calling greenlet.
    ChildStderr,
    std::process::ChildStderr,
    read
);
