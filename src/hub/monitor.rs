//! The blocked-hub monitor (gevent's `max_blocking_time`): reports a
//! greenlet that ran longer than a limit without switching, which kept
//! every other greenlet of its thread waiting.
//!
//! It is a [switch hook](crate::set_switch_hook): each transfer of control
//! reads the clock, and the greenlet giving up control ran since the
//! previous one. Off (the default), it costs nothing: no hook, no clock.
//! The hub greenlet itself is never reported (its long stretches are
//! parks in `epoll_wait` or a sleep, with nothing to run).

use std::cell::RefCell;
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
    /// When the running greenlet got control.
    since: Instant,
    /// The switch hook that was set before, called after ours.
    previous: Option<SwitchHook>,
}

thread_local! {
    /// The state of this thread's monitor while its hook is installed (the
    /// hook holds the only strong reference).
    static MONITOR: RefCell<Weak<RefCell<State>>> = const { RefCell::new(Weak::new()) };
}

/// Turns this thread's blocked-hub monitor on with the limit
/// `max_blocking` (`Some`), reporting on stderr, or off (`None`).
///
/// A greenlet that runs longer than the limit without switching is
/// reported when it finally switches, with its name, id and how long it
/// ran. The monitor is this thread's [switch hook](crate::set_switch_hook)
/// while it is on: a hook set before is chained (called after it) and put
/// back when it is turned off; a hook set after replaces it (turning it
/// off). Setting the environment variable `GREENLET_MAX_BLOCKING_MS` (to a
/// number of milliseconds) turns it on for every hub thread of the process
/// when its hub starts.
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
    install(max_blocking, Some(Box::new(report)));
}

fn install(limit: Duration, report: Option<Report>) {
    if let Some(state) = MONITOR.with(|m| m.borrow().upgrade()) {
        // Already on: change the settings in place.
        let mut state = state.borrow_mut();
        state.limit = limit;
        state.report = report;
        return;
    }
    let state = Rc::new(RefCell::new(State {
        limit,
        report,
        since: Instant::now(),
        previous: None,
    }));
    MONITOR.with(|m| *m.borrow_mut() = Rc::downgrade(&state));
    let hook_state = state.clone();
    let previous = set_switch_hook(Some(Box::new(move |event| on_switch(&hook_state, event))));
    state.borrow_mut().previous = previous;
}

fn uninstall() {
    let Some(state) = MONITOR.with(|m| std::mem::take(&mut *m.borrow_mut()).upgrade()) else {
        return;
    };
    let previous = state.borrow_mut().previous.take();
    drop(state);
    // Drops our hook (and the last reference to the state).
    drop(set_switch_hook(previous));
}

/// The hook: charges the time since the last transfer to the greenlet
/// giving up control.
fn on_switch(state: &RefCell<State>, event: &SwitchEvent) {
    let now = Instant::now();
    let (ran, limit) = {
        let mut s = state.borrow_mut();
        let ran = now.saturating_duration_since(s.since);
        s.since = now;
        (ran, s.limit)
    };
    if ran > limit && !is_hub(&event.origin) {
        let blocked = Blocked {
            id: event.origin.id(),
            name: event.origin.name(),
            ran,
            limit,
        };
        // Taken out for the call: the callback may turn the monitor off or
        // change it.
        let report = state.borrow_mut().report.take();
        match report {
            Some(mut report) => {
                report(&blocked);
                let mut s = state.borrow_mut();
                if s.report.is_none() {
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
    if let Some(limit) = *limit {
        install(limit, None);
    }
}
