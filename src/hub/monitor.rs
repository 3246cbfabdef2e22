//! The blocked-hub monitor (gevent's `max_blocking_time`): reports a
//! greenlet that ran longer than a limit without switching, which kept
//! every other greenlet of its thread waiting.
//!
//! It is a [switch hook](crate::set_switch_hook): each transfer of control
//! reads the clock, and the greenlet giving up control ran since the
//! previous one. Off (the default), it costs nothing: no hook, no clock.
//! The hub greenlet itself is never reported (its long stretches are
//! parks in `epoll_wait` or a sleep, with nothing to run).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use crate::trace::{set_switch_hook, SwitchEvent, SwitchHook};

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
    /// The switch hook that was set before, called after ours.
    previous: Option<SwitchHook>,
    /// Where our hook's closure lives (see `trace::hook_addr`).
    hook: *const (),
}

thread_local! {
    /// The state of this thread's monitor while its hook is alive (the
    /// hook holds the only strong reference).
    static MONITOR: RefCell<Weak<RefCell<State>>> = const { RefCell::new(Weak::new()) };
    /// The thread set its monitor itself (on or off): the environment's
    /// default does not override that.
    static SET_EXPLICITLY: Cell<bool> = const { Cell::new(false) };
}

/// This thread's monitor, if its hook is the thread's switch hook now. A
/// monitor whose hook was replaced or stashed away is turned off (it only
/// passes events on to the hook before it) and forgotten.
fn current() -> Option<Rc<RefCell<State>>> {
    let state = MONITOR.with(|m| m.borrow().upgrade())?;
    if crate::runtime::Runtime::get().tracer().hook_addr() == state.borrow().hook {
        return Some(state);
    }
    state.borrow_mut().off = true;
    MONITOR.with(|m| *m.borrow_mut() = Weak::new());
    None
}

/// Turns this thread's blocked-hub monitor on with the limit
/// `max_blocking` (`Some`), reporting on stderr, or off (`None`).
///
/// A greenlet that runs longer than the limit without switching is
/// reported when it finally switches, with its name, id and how long it
/// ran, if another greenlet of the thread (main counts, the hub does not)
/// is alive then: with nothing else on the thread, nobody waited, and
/// nothing is reported (gevent's rule). On a
/// [`spawn_blocking`](super::spawn_blocking) pool thread whose jobs use
/// greenlets (the environment variable below turns the monitor on there
/// too), each job's time counts from its start: the wait between jobs is
/// no greenlet's run. The monitor is this thread's [switch hook](crate::set_switch_hook)
/// while it is on: a hook set before is chained (called after it) and put
/// back when it is turned off; a hook set after replaces it (turning it
/// off, even if that hook keeps it and calls it; turning it off then
/// leaves that hook in place). Setting the environment variable
/// `GREENLET_MAX_BLOCKING_MS` (to a number of milliseconds) turns it on
/// for every hub thread of the process when its hub starts, unless the
/// thread set its monitor (on or off) before.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub;
///
/// hub::monitor(Some(Duration::from_millis(100)));
/// // ... greenlets running more than 100 ms without switching are
/// // reported on stderr ...
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
/// switch that ended the long run) instead of printing it. See
/// [`monitor`]; `monitor(None)` turns it off.
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
        // Already on: change the settings in place.
        let mut state = state.borrow_mut();
        state.limit = limit;
        state.report = report;
        state.settings += 1;
        return;
    }
    let state = Rc::new(RefCell::new(State {
        limit,
        report,
        settings: 0,
        off: false,
        since: Instant::now(),
        previous: None,
        hook: std::ptr::null(),
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
    let previous = state.borrow_mut().previous.take();
    drop(state);
    // Drops our hook (and the last reference to the state).
    drop(set_switch_hook(previous));
}

/// The hook: charges the time since the last transfer to the greenlet
/// giving up control.
fn on_switch(state: &RefCell<State>, event: &SwitchEvent) {
    let now = Instant::now();
    let (ran, limit, off) = {
        let mut s = state.borrow_mut();
        let ran = now.saturating_duration_since(s.since);
        s.since = now;
        (ran, s.limit, s.off)
    };
    if ran > limit && !off && !is_hub(&event.origin) && others_alive(&event.origin) {
        let blocked = Blocked {
            id: event.origin.id(),
            name: event.origin.name(),
            ran,
            limit,
        };
        // Taken out for the call: the callback may turn the monitor off or
        // change it.
        let (report, settings) = {
            let mut s = state.borrow_mut();
            (s.report.take(), s.settings)
        };
        match report {
            Some(mut report) => {
                report(&blocked);
                let mut s = state.borrow_mut();
                // Back, unless the call changed the settings (or turned
                // the monitor off).
                if s.settings == settings && !s.off {
                    s.report = Some(report);
                }
            }
            None => eprintln!("greenlet::hub::monitor: {blocked}"),
        }
        // The report's own time is not the next greenlet's.
        state.borrow_mut().since = Instant::now();
    }
    let previous = state.borrow_mut().previous.take();
    if let Some(mut previous) = previous {
        previous(event);
        let mut s = state.borrow_mut();
        if s.previous.is_none() {
            s.previous = Some(previous);
        }
    }
}

/// Whether a greenlet of this thread other than `origin` and the hub is
/// alive: the ones a long run kept waiting. With none, nobody waited, and
/// nothing is reported (gevent's rule: a thread blocking with nothing else
/// to run blocks nobody). A walk of the records, on the rare path of a run
/// past the limit.
fn others_alive(origin: &crate::Greenlet) -> bool {
    let records = crate::runtime::Runtime::get().records();
    let hub = super::try_hub().map(|hub| hub.key);
    (0..records.key_bound()).any(|i| {
        records.view_at(i).is_some_and(|v| {
            v.key != origin.key() && Some(v.key) != hub && v.state != crate::runtime::State::Dead
        })
    })
}

/// A pool thread starts a job: its time waiting for the job was no
/// greenlet's run. Restarts the clock of the thread's monitor, if it has
/// one, without touching the runtime (a pool thread that never ran a
/// greenlet has none).
pub(crate) fn job_starts() {
    if let Some(state) = MONITOR.with(|m| m.borrow().upgrade()) {
        state.borrow_mut().since = Instant::now();
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
                eprintln!(
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
        install(limit, None);
    }
}
