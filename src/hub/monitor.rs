//! The blocked-hub monitor (gevent's `max_blocking_time`): reports a
//! greenlet that ran longer than a limit without switching, which kept
//! every other greenlet of its thread waiting.
//!
//! It is a [switch hook](crate::set_switch_hook): each transfer of control
//! reads the clock, and the greenlet giving up control ran since the
//! previous one. Off (the default), it costs nothing: no hook, no clock.
//! The hub greenlet itself is never reported (its long stretches are
//! parks in `epoll_wait` or a sleep, with nothing to run).
//!
//! A run that never ends (an endless loop, a call that blocks the thread
//! for good) has no switch to be reported at. So when the monitor reports
//! on stderr, a watchdog thread looks at the monitored thread every half
//! limit: the hook publishes, at each switch, when the new run began and
//! whose it is (atomics: the watchdog reads them from its own thread), and
//! the watchdog reports a run past the limit while it still lasts, once.
//! A report made at a switch is no greenlet's run: the watchdog sees none
//! while it is made, and the next run begins when it is done.
//!
//! A report made at the switch carries a backtrace of the greenlet taken
//! there: where its long run ended, under the code that ran long (gevent
//! prints the blocking greenlet's stack too). The report is made on a
//! stack of the monitor's own: the greenlet's may be a few KiB, and
//! walking, symbolizing and printing a backtrace takes far more. The
//! watchdog's report has none: it cannot walk another thread's stack
//! safely while that thread runs.

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use corosensei::stack::DefaultStack;

use crate::trace::{set_switch_hook, SwitchEvent, SwitchHook};
use crate::value::GreenletExit;

/// What the monitor reports: a greenlet that ran too long without
/// switching.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Blocked {
    /// The greenlet's id ([`Greenlet::id`](crate::Greenlet::id)).
    pub id: u64,
    /// The greenlet's name, if it has one (`"main"` for main).
    pub name: Option<Rc<str>>,
    /// How long it ran without switching.
    pub ran: Duration,
    /// The limit it was over.
    pub limit: Duration,
    /// Its stack at the switch that ended the run (always captured,
    /// whatever `RUST_BACKTRACE` says: a report is rare, and the stack is
    /// what finds the code that ran long). The frames on top are the
    /// monitor's and the switch's own; below them is the call that gave
    /// control back, and below that the code that ran.
    pub switched_at: Rc<Backtrace>,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "greenlet '{name}' (id {})", self.id)?,
            None => write!(f, "greenlet id {}", self.id)?,
        }
        write!(
            f,
            " ran {:?} without switching (limit {:?}): the hub and every other \
             greenlet of the thread waited; block with the hub's calls, or move \
             the work to hub::spawn_blocking",
            self.ran, self.limit
        )
    }
}

/// A report callback.
type Report = Box<dyn FnMut(&Blocked)>;

struct State {
    limit: Duration,
    /// `None`: print to stderr.
    report: Option<Report>,
    /// Bumped by every change of the settings: a report callback that
    /// changed them must not have its old callback put back.
    settings: u64,
    /// Turned off while its hook was not the thread's (replaced by a later
    /// hook that chains to it, or stashed away): it only passes events on.
    off: bool,
    /// When the running greenlet got control.
    since: Instant,
    /// Whether some other greenlet was ready or waiting then (see
    /// `others_wait`): a run nobody waited for is not reported.
    watched: bool,
    /// The switch hook that was set before, called after ours.
    previous: Option<SwitchHook>,
    /// Where our hook's closure lives (see `trace::hook_addr`).
    hook: *const (),
    /// The watchdog of a monitor reporting on stderr.
    watch: Option<WatchHandle>,
    /// Turned off (`monitor(None)`) while `previous` was out on loan to
    /// its own call: it goes back to the thread's slot when that returns.
    uninstalled: bool,
    /// Where reports are made (see `on_switch`); out on loan during one.
    report_stack: Option<DefaultStack>,
}

/// The size of the stack reports are made on: room for the unwinder, the
/// symbolizer and a callback, whatever the reported greenlet's own.
const REPORT_STACK: usize = 1 << 20;

thread_local! {
    /// The state of this thread's monitor while its hook is alive (the
    /// hook holds the only strong reference).
    static MONITOR: RefCell<Weak<RefCell<State>>> = const { RefCell::new(Weak::new()) };
    /// The thread set its monitor itself (on or off): the environment's
    /// default does not override that.
    static SET_EXPLICITLY: Cell<bool> = const { Cell::new(false) };
    /// A `spawn_blocking` pool thread: its main greenlet runs the jobs,
    /// which block the thread by design, so its runs are not reported.
    static POOL_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// This thread's monitor, if its hook is the thread's switch hook now. A
/// monitor whose hook was replaced or stashed away is turned off (it only
/// passes events on to the hook before it) and forgotten.
fn current() -> Option<Rc<RefCell<State>>> {
    let state = MONITOR.with(|m| m.borrow().upgrade())?;
    if crate::runtime::Runtime::get().tracer().hook_addr() == state.borrow().hook {
        return Some(state);
    }
    let mut s = state.borrow_mut();
    s.off = true;
    // Its watchdog stops too: an old hook still called does not report.
    s.watch = None;
    drop(s);
    MONITOR.with(|m| *m.borrow_mut() = Weak::new());
    None
}

/// Turns this thread's blocked-hub monitor on with the limit
/// `max_blocking` (`Some`), reporting on stderr, or off (`None`).
///
/// A greenlet that runs longer than the limit without switching is
/// reported when it finally switches, with its name, id and how long it
/// ran, if the hub had another greenlet to run when the run began: one
/// ready, one waiting with a deadline or on I/O, or main in
/// [`run`](super::run) or in a blocking call (greenlets the run itself
/// spawns do not count: main spawning its servers and then computing for
/// long is not reported, so turn the monitor on once they run). With nothing else there,
/// nobody waited, and nothing is reported (gevent's rule); a greenlet
/// that only switched to the long runner (a generator's consumer, a
/// caller of [`Greenlet::switch`](crate::Greenlet::switch)) is its
/// caller, not kept from running by it. On a
/// [`spawn_blocking`](super::spawn_blocking) pool thread whose jobs use
/// greenlets (the environment variable below turns the monitor on there
/// too), the wait between jobs is
/// no greenlet's run, and the jobs themselves, which run on the thread's
/// main greenlet and may block by design, are not reported (greenlets a
/// job spawns are).
///
/// A run that never switches again (an endless loop, a call that blocks
/// the thread for good) is reported while it lasts: a watchdog thread
/// (named `greenlet-watch`, one per monitored thread, stopped with the
/// monitor) looks every half limit and prints, once per run, that a
/// greenlet has run past the limit "and still runs", with its id (its
/// name is the thread's to read, and comes in the report at its switch,
/// if one comes). It watches a run only when some other greenlet was
/// ready or waiting when it began.
///
/// The monitor is this thread's [switch hook](crate::set_switch_hook)
/// while it is on: a hook set before is chained (called after it) and put
/// back when it is turned off; a hook set after replaces it (turning it
/// off, even if that hook keeps it and calls it; turning it off then
/// leaves that hook in place), and so does taking its hook out and putting
/// it back: `monitor` turns it on again. Turned on from inside a switch
/// hook's call, it replaces that hook, as a hook set there does. A
/// callback or chained hook that kills the greenlet it is told about
/// stays (a watchdog's way). Setting the environment variable
/// `GREENLET_MAX_BLOCKING_MS` (to a number of milliseconds) turns it on
/// for every hub thread of the process when its hub starts, unless the
/// thread set its monitor (on or off) before, or the hub starts inside a
/// switch hook's call (said on stderr).
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub;
///
/// hub::monitor(Some(Duration::from_millis(100)));
/// // ... greenlets running more than 100 ms without switching are
/// // reported on stderr, each with its stack where the run ended ...
/// hub::monitor(None);
/// ```
pub fn monitor(max_blocking: Option<Duration>) {
    SET_EXPLICITLY.with(|e| e.set(true));
    match max_blocking {
        Some(limit) => install(limit, None),
        None => uninstall(),
    }
}

/// Turns this thread's blocked-hub monitor on with the limit
/// `max_blocking`, handing each report to `report` (on this thread, at the
/// switch that ended the long run, on a 1 MiB stack of the monitor's own,
/// so formatting the report's backtrace in the callback cannot overflow a
/// greenlet's small stack; a report kept and printed later resolves its
/// backtrace on the stack that prints it) instead of printing it. See
/// [`monitor`]; `monitor(None)` turns it off. There is no watchdog with a
/// callback: the callback runs on this thread, which the run holds. A
/// callback that panics turns the monitor off (a hook set before it goes
/// back), and its panic goes on as a switch hook's does.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use std::time::{Duration, Instant};
/// use greenlet::hub;
///
/// let reports = Rc::new(RefCell::new(Vec::new()));
/// let log = reports.clone();
/// hub::monitor_with(Duration::from_millis(10), move |b| log.borrow_mut().push(b.id));
/// let spinner = hub::spawn(|| {
///     let start = Instant::now();
///     while start.elapsed() < Duration::from_millis(30) {} // never switches
/// });
/// let id = spinner.greenlet().id();
/// spinner.join().unwrap();
/// hub::monitor(None);
/// assert!(reports.borrow().contains(&id));
/// ```
pub fn monitor_with(max_blocking: Duration, report: impl FnMut(&Blocked) + 'static) {
    SET_EXPLICITLY.with(|e| e.set(true));
    install(max_blocking, Some(Box::new(report)));
}

fn install(limit: Duration, report: Option<Report>) {
    if let Some(state) = current() {
        // Already on: change the settings in place (a new watchdog for
        // the new limit, none for a callback).
        let mut state = state.borrow_mut();
        // Its hook is the thread's (`current` says so): on again, also if
        // it was taken out and put back meanwhile.
        state.off = false;
        state.watch = None;
        state.watch = report
            .is_none()
            .then(|| WatchHandle::start(limit))
            .flatten();
        if let Some(watch) = &state.watch {
            // The run under way (the caller's) is the new one's to watch.
            let me = crate::Greenlet::current().id();
            watch.watch.run_begins(state.since, me, state.watched);
        }
        state.limit = limit;
        let old = std::mem::replace(&mut state.report, report);
        state.settings += 1;
        drop(state);
        // The old callback is the program's: its destructor may turn the
        // monitor off or on again, so it drops after the borrow.
        drop(old);
        return;
    }
    let watch = report
        .is_none()
        .then(|| WatchHandle::start(limit))
        .flatten();
    let state = Rc::new(RefCell::new(State {
        limit,
        report,
        settings: 0,
        off: false,
        since: Instant::now(),
        watched: false,
        previous: None,
        hook: std::ptr::null(),
        watch,
        uninstalled: false,
        report_stack: None,
    }));
    MONITOR.with(|m| *m.borrow_mut() = Rc::downgrade(&state));
    let hook_state = state.clone();
    let hook: SwitchHook = Box::new(move |event| on_switch(&hook_state, event));
    state.borrow_mut().hook = crate::trace::hook_addr(&hook);
    let previous = set_switch_hook(Some(hook));
    state.borrow_mut().previous = previous;
}

fn uninstall() {
    let Some(state) = current() else {
        return;
    };
    MONITOR.with(|m| *m.borrow_mut() = Weak::new());
    let previous = {
        let mut s = state.borrow_mut();
        s.uninstalled = true;
        s.watch = None;
        s.previous.take()
    };
    drop(state);
    // Drops our hook (and the last reference to the state).
    drop(set_switch_hook(previous));
}

/// The hook: charges the time since the last transfer to the greenlet
/// giving up control.
fn on_switch(state: &RefCell<State>, event: &SwitchEvent) {
    {
        // Called by a hook set after it (which keeps it and chains to
        // it): replaced, so off, its watchdog stopped with it.
        let mut s = state.borrow_mut();
        if !s.off && crate::runtime::Runtime::get().tracer().hook_addr() != s.hook {
            s.off = true;
            s.watch = None;
        }
        if s.watch.as_ref().is_some_and(|watch| !watch.is_ours()) {
            // A forked child's first switch: a watchdog of its own.
            s.watch = None;
            s.watch = WatchHandle::start(s.limit);
        }
    }
    let now = Instant::now();
    // Whether the run that begins keeps anyone the hub could run waiting
    // (a greenlet that only switched to it, as a generator's consumer, is
    // its caller, not kept from running by it).
    let pool_job = POOL_THREAD.with(Cell::get) && event.target.is_main();
    let watched = !is_hub(&event.target) && !pool_job && others_wait(event.target.is_main());
    let (ran, limit, reports) = {
        let mut s = state.borrow_mut();
        let ran = now.saturating_duration_since(s.since);
        s.since = now;
        let was_watched = std::mem::replace(&mut s.watched, watched);
        let reports = ran > s.limit && !s.off && was_watched;
        if let Some(watch) = &s.watch {
            if reports {
                // The report below takes long (a backtrace walked,
                // symbolized and printed: milliseconds, more if stderr is
                // slow): no greenlet's run while it is made. The next
                // run is published when it is done.
                watch.watch.idle();
            } else {
                watch.watch.run_begins(now, event.target.id(), watched);
            }
        }
        (ran, s.limit, reports)
    };
    if reports {
        // Taken out for the call: the callback may turn the monitor off or
        // change it.
        let (report, settings, stack) = {
            let mut s = state.borrow_mut();
            (s.report.take(), s.settings, s.report_stack.take())
        };
        let make_and_send = || {
            let blocked = Blocked {
                id: event.origin.id(),
                name: event.origin.name(),
                ran,
                limit,
                // Walks the origin's stack too: the unwinder follows the
                // report stack's frames back into the greenlet's.
                switched_at: Rc::new(Backtrace::force_capture()),
            };
            match report {
                Some(mut report) => {
                    // Caught here, on the report stack, and raised again
                    // below, once the monitor is off.
                    match panic::catch_unwind(AssertUnwindSafe(|| report(&blocked))) {
                        Ok(()) => Ok(Some(report)),
                        Err(p) => Err((report, p)),
                    }
                }
                None => {
                    // Dropped if stderr fails (a pipe whose reader is
                    // gone): a panic inside the switch aborts the process.
                    report!(
                        "greenlet::hub::monitor: {blocked}\nits stack when it switched:\n{}",
                        blocked.switched_at
                    );
                    Ok(None)
                }
            }
        };
        // The hook runs on the origin's stack, which may be a few KiB:
        // walking, symbolizing and printing a backtrace (and a callback
        // that formats one) needs far more, so it all runs on a stack of
        // its own, mapped at the first report and kept for the next.
        let mut stack = stack.or_else(|| DefaultStack::new(REPORT_STACK).ok());
        let report = match &mut stack {
            Some(stack) => corosensei::on_stack(stack, make_and_send),
            None => make_and_send(),
        };
        let (report, unwound) = match report {
            Ok(report) => (report, None),
            // It killed the greenlet it was told about (a watchdog's way):
            // not its failure. It goes back, and the kill unwinds on.
            Err((callback, p)) if p.is::<GreenletExit>() => (Some(callback), Some(p)),
            Err((callback, p)) => {
                // The callback panicked: the monitor goes off (a hook set
                // before it goes back), and the panic goes on as a switch
                // hook's does (it reaches the switch that ended the run).
                state.borrow_mut().report_stack = stack;
                uninstall();
                crate::error::drop_quietly(callback);
                panic::resume_unwind(p);
            }
        };
        let mut s = state.borrow_mut();
        s.report_stack = stack;
        // Back, unless the call changed the settings (or turned the
        // monitor off).
        if s.settings == settings && !s.off {
            s.report = report;
        }
        // The report's own time is not the next greenlet's: its run
        // begins now, for the hook's clock and for the watchdog's (the
        // watchdog saw no run during the report).
        s.since = Instant::now();
        if let Some(watch) = &s.watch {
            watch
                .watch
                .run_begins(s.since, event.target.id(), s.watched);
        }
        drop(s);
        if let Some(p) = unwound {
            panic::resume_unwind(p);
        }
    }
    let previous = state.borrow_mut().previous.take();
    if let Some(previous) = previous {
        // Put back by the guard also when the call unwinds (the hook
        // killed the greenlet it was told about).
        let mut call = PreviousCall {
            state,
            hook: Some(previous),
        };
        if let Some(previous) = &mut call.hook {
            previous(event);
        }
    }
}

/// The hook chained under the monitor, lent out to its call: put back as
/// the call ends, however it ends.
struct PreviousCall<'a> {
    state: &'a RefCell<State>,
    hook: Option<SwitchHook>,
}

impl Drop for PreviousCall<'_> {
    fn drop(&mut self) {
        let Some(previous) = self.hook.take() else {
            return;
        };
        let mut s = self.state.borrow_mut();
        if s.uninstalled {
            // The call turned the monitor off. Where `uninstall`, finding
            // the hook out on loan, could not put it back: in the thread's
            // slot if the call left it empty; as the previous hook of a
            // monitor the call turned on again; nowhere if the call set a
            // hook of its own, which replaces it (as a hook set from
            // inside a hook replaces that hook).
            drop(s);
            if crate::runtime::Runtime::get()
                .tracer()
                .hook_addr()
                .is_null()
            {
                drop(set_switch_hook(Some(previous)));
            } else if let Some(again) = current() {
                let mut again = again.borrow_mut();
                if again.previous.is_none() {
                    again.previous = Some(previous);
                }
            }
        } else if s.previous.is_none() {
            s.previous = Some(previous);
        }
    }
}

/// The thread's switch hook at `addr` was taken out of its slot (replaced
/// or cleared): if it is the monitor's, the monitor is off, its watchdog
/// stopped (it hears of switches only through the hook, and would take
/// every run from now on for a long one). Putting the hook back does not
/// turn it on again; `monitor` or `monitor_with` does.
pub(crate) fn hook_taken_out(addr: *const ()) {
    // At thread exit the thread-local may be gone, and the monitor with it.
    let Some(state) = MONITOR.try_with(|m| m.borrow().upgrade()).ok().flatten() else {
        return;
    };
    let Ok(mut s) = state.try_borrow_mut() else {
        // Its own call is under way, which sees the change itself.
        return;
    };
    if s.hook == addr {
        s.off = true;
        s.watch = None;
    }
}

/// A pool thread starts a job. The job runs on the thread's main
/// greenlet and may block the thread (that is what the pool is for), so
/// main's runs are never watched there (`POOL_THREAD`), and the wait for
/// the job was no run at all: the clock restarts. Touches no runtime (a
/// pool thread that never ran a greenlet has none).
pub(crate) fn job_starts() {
    POOL_THREAD.with(|p| p.set(true));
    if let Some(state) = MONITOR.with(|m| m.borrow().upgrade()) {
        let mut s = state.borrow_mut();
        s.since = Instant::now();
        s.watched = false;
        if let Some(watch) = &s.watch {
            watch.watch.idle();
        }
    }
}

/// A pool thread ended a job: until the next, it waits for work, which
/// its watchdog must not take for a run.
pub(crate) fn job_ends() {
    if let Some(state) = MONITOR.with(|m| m.borrow().upgrade()) {
        if let Some(watch) = &state.borrow().watch {
            watch.watch.idle();
        }
    }
}

/// `Watch::since` when there is no run to watch: the hub runs (it parks
/// with nothing to do), no other greenlet waits, a pool thread waits
/// for work, or the hook makes a report.
const IDLE: u64 = u64::MAX;

/// What the hook publishes for the watchdog, at each switch.
///
/// `id` and `since` are published together under a sequence count
/// (`switches`, a seqlock; see `publish` and `look`): the watchdog never
/// takes one run's `since` for another's, nor a run just ended for the
/// one under way.
struct Watch {
    /// What `since` counts from.
    base: Instant,
    /// When the current run began, in nanoseconds from `base`, or `IDLE`.
    since: AtomicU64,
    /// Whose run it is (a greenlet id).
    id: AtomicU64,
    /// The sequence count of the publishes: odd while one is under way,
    /// even between them, up by 2 for each (so by 2 at each switch: each
    /// run is reported once). Written by the monitored thread only.
    switches: AtomicU64,
    limit: Duration,
    /// The monitored thread's name, for the report.
    thread: String,
    /// Set when the monitor goes (turned off, its thread exits).
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Watch {
    fn nanos(&self, t: Instant) -> u64 {
        let n = t.saturating_duration_since(self.base).as_nanos();
        u64::try_from(n).unwrap_or(IDLE - 1).min(IDLE - 1)
    }

    /// The hook: greenlet `id` gets control at `now`; its run is
    /// `watched` if it keeps someone waiting.
    fn run_begins(&self, now: Instant, id: u64, watched: bool) {
        let since = if watched { self.nanos(now) } else { IDLE };
        self.publish(id, since);
    }

    /// No run to watch from now on (see `IDLE`).
    fn idle(&self) {
        self.publish(0, IDLE);
    }

    /// The write side of the seqlock: `id` and `since` are the run under
    /// way. Called on the monitored thread only (the hook, `install`,
    /// `job_starts`/`job_ends`: the `Watch` is reached through that
    /// thread's monitor state), so there is one writer and the count needs
    /// no read-modify-write. No lock: this is on every switch's path.
    ///
    /// Why the orderings suffice (the reader is `look`):
    /// - The count goes odd, then a release fence, then the data stores
    ///   (relaxed). A reader whose data load reads one of those stores
    ///   and then runs its acquire fence synchronizes with this release
    ///   fence (fence-to-fence synchronization through that atomic), so
    ///   the odd store happens before the reader's second load of the
    ///   count, which (write-read coherence) reads it or a later value:
    ///   not the even count the reader began with. A half-made publish,
    ///   or a later one, is never read as consistent.
    /// - The count goes even with a release store after the data stores.
    ///   A reader that reads that count with an acquire load sees those
    ///   data stores (or later ones, which the first point catches).
    fn publish(&self, id: u64, since: u64) {
        let seq = self.switches.load(Ordering::Relaxed);
        // `wrapping_add` keeps the parity (2^64 is even); it never wraps
        // in practice.
        self.switches.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.id.store(id, Ordering::Relaxed);
        self.since.store(since, Ordering::Relaxed);
        self.switches.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// The read side of the seqlock (see `publish`): the run under way, as
    /// `(count, id, since, how long it has run)`; `None` if a publish is
    /// under way or was made during the look (the run read is then over,
    /// or half-published: the next look, half a limit on, decides). The
    /// count is read again after the clock, so a run read was not yet
    /// ended (by any publish this thread sees) when the clock was read.
    fn look(&self) -> Option<(u64, u64, u64, Duration)> {
        let seq = self.switches.load(Ordering::Acquire);
        if seq % 2 == 1 {
            return None;
        }
        let id = self.id.load(Ordering::Relaxed);
        let since = self.since.load(Ordering::Relaxed);
        // Pairs with `publish`'s release fence: a data load above that
        // read a later publish's store makes the count read below that
        // publish's (odd) count or a later one.
        fence(Ordering::Acquire);
        let now = self.nanos(Instant::now());
        if self.switches.load(Ordering::Relaxed) != seq {
            return None;
        }
        Some((
            seq,
            id,
            since,
            Duration::from_nanos(now.saturating_sub(since)),
        ))
    }

    /// The watchdog thread's loop.
    fn watch(&self, thread_alive: std::sync::Weak<()>) {
        let period = (self.limit / 2).max(Duration::from_millis(1));
        let mut reported = None;
        let mut stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            // Looked at before each wait, under the lock the stopper takes
            // to set it: a stop sent before this thread first waits is not
            // missed.
            if *stop || thread_alive.strong_count() == 0 {
                return;
            }
            let (s, _) = self
                .wake
                .wait_timeout(stop, period)
                .unwrap_or_else(PoisonError::into_inner);
            stop = s;
            if *stop || thread_alive.strong_count() == 0 {
                return;
            }
            let Some((switches, id, since, ran)) = self.look() else {
                continue;
            };
            if since == IDLE || reported == Some(switches) {
                continue;
            }
            if ran > self.limit {
                reported = Some(switches);
                let line = format!(
                    "greenlet::hub::monitor: greenlet id {id} on thread '{}' has run {ran:?} \
                     without switching and still runs (limit {:?}): an endless loop, or a \
                     call that blocks the thread; the hub and every other greenlet of the \
                     thread wait\n",
                    self.thread, self.limit
                );
                // Written without the stop lock held (the stopper waits for
                // it) and past std's stderr lock: a greenlet of the watched
                // thread may hold that across a switch, and the thread that
                // stops this one joins it.
                drop(stop);
                write_stderr(line.as_bytes());
                stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
}

/// Writes `bytes` to the process's stderr descriptor, as one `write`
/// where it fits, without std's stderr lock; errors are dropped, as
/// `eprintln!` would panic on them in a thread nobody watches.
fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `write` reads `bytes.len()` bytes from a live slice and
        // touches no other memory; descriptor 2 may be closed, which is
        // an error return, not undefined behaviour.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Whether a greenlet other than the one getting control (main, if
/// `to_main`) waits for it: one is ready, sleeps or waits with a timeout
/// (a timer), waits on I/O, or main drives the hub in `run` or waits in a
/// blocking call. (Waits with neither timer nor I/O are not counted: the
/// getting greenlet's own wait, just woken, is one of them.) A few loads,
/// at each switch while the monitor is on.
fn others_wait(to_main: bool) -> bool {
    let Some(hub) = super::try_hub() else {
        return false;
    };
    let ready = hub.ready.try_borrow().map_or(true, |r| !r.is_empty());
    // Waits with a deadline (a sleep, a `get_timeout`), not the timers:
    // a `with_timeout` scope's timer is its own greenlet's, which may be
    // the one getting control. Daemons' waits keep nobody waiting.
    let timed = hub.timed_waits.get() > 0;
    let io = hub.io_waits.get() > hub.daemon_io_waits.get();
    let main_waits = !to_main && (hub.main_in_run.get() || hub.main_blocked.get().is_some());
    ready || timed || io || main_waits
}

/// The monitor's hold on its watchdog: dropping it stops the thread and
/// waits for it to end (at once: it only waits on `wake`), so a monitor
/// turned off, or changed, leaves no thread behind.
///
/// In a child forked without `exec` the thread is not there (a fork copies
/// only the thread that forks): the handle, inherited, is let go without a
/// word to it, and the hook starts a new watchdog at the child's first
/// switch (see `fork.rs`), as gevent's `reinit` starts its monitor thread
/// again.
struct WatchHandle {
    watch: Arc<Watch>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The fork count the thread was started under.
    born: u64,
}

impl WatchHandle {
    /// Starts a watchdog for this thread; `None` if no thread can be
    /// started (the monitor then reports at switches only).
    fn start(limit: Duration) -> Option<WatchHandle> {
        thread_local! {
            /// Gone once this thread exits: a watchdog whose monitor was
            /// never dropped (its hook leaked at thread exit) stops too.
            static ALIVE: Arc<()> = Arc::new(());
        }
        let alive = ALIVE.try_with(Arc::downgrade).ok()?;
        let watch = Arc::new(Watch {
            base: Instant::now(),
            since: AtomicU64::new(IDLE),
            id: AtomicU64::new(0),
            switches: AtomicU64::new(0),
            limit,
            thread: std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_string(),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let w = watch.clone();
        super::fork::watch();
        let born = super::fork::forks();
        let thread = std::thread::Builder::new()
            .name("greenlet-watch".into())
            .spawn(move || w.watch(alive))
            .ok()?;
        Some(WatchHandle {
            watch,
            thread: Some(thread),
            born,
        })
    }

    /// Whether its thread is this process's: not in a forked child.
    fn is_ours(&self) -> bool {
        self.born == super::fork::forks()
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        if !self.is_ours() {
            // The thread stayed in the parent: a join would wait for ever,
            // and it may have held `stop`'s lock at the fork.
            std::mem::forget(self.thread.take());
            return;
        }
        *self
            .watch
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.watch.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn is_hub(g: &crate::Greenlet) -> bool {
    super::try_hub().is_some_and(|hub| hub.key == g.key())
}

/// Turns the monitor on for a new hub's thread if the environment says so
/// (`GREENLET_MAX_BLOCKING_MS`, read once per process).
pub(super) fn from_env() {
    static LIMIT: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    let limit = LIMIT.get_or_init(|| {
        let ms = std::env::var("GREENLET_MAX_BLOCKING_MS").ok()?;
        match ms.trim().parse::<u64>() {
            Ok(ms) => Some(Duration::from_millis(ms)),
            Err(_) => {
                report!(
                    "greenlet::hub::monitor: GREENLET_MAX_BLOCKING_MS={ms:?} is not a \
                     number of milliseconds; the monitor stays off"
                );
                None
            }
        }
    });
    if limit.is_some() && SET_EXPLICITLY.with(Cell::get) {
        // The thread's own choice wins over the process's default.
        return;
    }
    if let Some(limit) = *limit {
        if crate::runtime::Runtime::get().tracer().running() {
            // The hub started inside a switch hook's call: installed now,
            // the monitor would replace that hook (see `monitor`).
            report!(
                "greenlet::hub::monitor: this thread's hub started inside a switch hook; \
                 GREENLET_MAX_BLOCKING_MS is not applied to it (call hub::monitor to turn \
                 the monitor on)"
            );
            return;
        }
        install(limit, None);
    }
}
