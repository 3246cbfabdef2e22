//! `with_timeout`: interrupt a blocking call that takes too long (row H8).

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use super::timer::Action;
use super::{deadline_after, hub, Interrupt, Scope, SCOPES};

/// The error [`with_timeout`] returns when its deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the deadline elapsed before the operation finished")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `f`; if a blocking hub call inside it (a `Queue::get`, a `sleep`,
/// a `join`...) is still waiting `d` after the start, that call is
/// interrupted: it unwinds out of `f` (destructors run, waiters are
/// removed) and `with_timeout` returns `Err(Elapsed)`.
///
/// A deadline that passes while `f` is not blocked interrupts its next
/// blocking call; if `f` returns first, it returns `Ok`. Scopes nest; the
/// innermost expired one is reported first.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub::{with_timeout, Queue};
///
/// let q: Queue<u32> = Queue::new();
/// q.put(1);
/// assert_eq!(with_timeout(Duration::from_millis(5), || q.get()), Ok(1));
/// // Nothing else will ever put: the get is interrupted.
/// assert!(with_timeout(Duration::from_millis(5), || q.get()).is_err());
/// ```
pub fn with_timeout<R>(d: Duration, f: impl FnOnce() -> R) -> Result<R, Elapsed> {
    let Some(deadline) = deadline_after(d) else {
        // A deadline too far to represent never passes.
        return Ok(f());
    };
    let hub = hub();
    let s = hub.scopes.borrow_mut().insert(Scope {
        fired: false,
        wait: None,
        timer: 0,
    });
    let timer = hub.timers.borrow_mut().add(deadline, Action::Interrupt(s));
    hub.scopes.borrow_mut()[s].timer = timer;
    SCOPES.with(|active| active.borrow_mut().push(s));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    SCOPES.with(|active| {
        let mut active = active.borrow_mut();
        if let Some(i) = active.iter().rposition(|x| *x == s) {
            active.remove(i);
        }
    });
    hub.timers.borrow_mut().cancel(timer, Action::Interrupt(s));
    hub.scopes.borrow_mut().remove(s);
    match outcome {
        Ok(value) => Ok(value),
        Err(p) => match p.downcast_ref::<Interrupt>() {
            Some(Interrupt(x)) if *x == s => Err(Elapsed(())),
            // A kill, a panic, or an outer scope's interruption.
            _ => panic::resume_unwind(p),
        },
    }
}
