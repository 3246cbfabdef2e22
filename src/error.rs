//! The errors a switch or a parent change can report.

use std::any::Any;
use std::fmt;

/// Why a [`switch`](crate::Greenlet::switch) or [`throw`](crate::Greenlet::throw)
/// did not hand back a value of the expected type.
///
/// A switch returns whatever the *next* greenlet to switch back sends, so the
/// error describes what arrived, not (necessarily) what the target did.
#[non_exhaustive]
pub enum SwitchError {
    /// A greenlet whose result was routed here panicked; the payload is the
    /// original one (`&'static str` or `String` for `panic!` messages).
    Panicked(Box<dyn Any + Send>),
    /// A greenlet [`throw`](crate::Greenlet::throw)-ed this payload here.
    Thrown(Box<dyn Any + Send>),
    /// A value arrived whose type is not the one this switch expected. The
    /// value has been dropped.
    TypeMismatch {
        /// The type this switch (or the unstarted greenlet's function) expected.
        expected: &'static str,
        /// The type of the value that arrived.
        found: &'static str,
    },
    /// A greenlet whose result was routed here was killed (it unwound
    /// without producing a value).
    Killed,
    /// The current greenlet may not switch away right now: it is unwinding
    /// (a panic or a kill is under way on its stack). The value was dropped.
    Unwinding,
    /// The switch was attempted from inside the switch hook, which may not
    /// switch. The value was dropped.
    InSwitchHook,
}

impl SwitchError {
    /// The panic or throw message, if the payload is a `&str` or `String`.
    pub fn message(&self) -> Option<&str> {
        match self {
            SwitchError::Panicked(p) | SwitchError::Thrown(p) => payload_message(p.as_ref()),
            _ => None,
        }
    }
}

/// Reads a panic-style payload as text, if it is text.
pub(crate) fn payload_message(payload: &(dyn Any + Send)) -> Option<&str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Some(s)
    } else {
        payload.downcast_ref::<String>().map(String::as_str)
    }
}

/// Boxes a thrown error as a payload, except a payload already boxed (a
/// `Box<dyn Any + Send>`, as received in [`SwitchError::Thrown`] or
/// [`SwitchError::Panicked`] or caught by `catch_unwind`, or a generator's
/// [`Thrown`](crate::Thrown)), which is passed on as it is: re-throwing a
/// received payload must not nest it in a second box (its message and
/// downcasts would then be lost).
pub(crate) fn into_payload<E: Any + Send>(error: E) -> Box<dyn Any + Send> {
    let boxed: Box<dyn Any + Send> = Box::new(error);
    let boxed = match boxed.downcast::<Box<dyn Any + Send>>() {
        Ok(payload) => return *payload,
        Err(boxed) => boxed,
    };
    match boxed.downcast::<crate::generator::Thrown>() {
        Ok(thrown) => thrown.into_payload(),
        Err(boxed) => boxed,
    }
}

/// Whether a write to stderr would fail now: it is a pipe or socket whose
/// reader is gone (`poll` reports an error on it). A closed stderr does
/// not count (`eprintln!` ignores `EBADF`), nor a full one (the write
/// waits, as `eprintln!`'s always did). A reader that goes between this
/// look and the write still fails that write: the window is one line's.
#[cold]
pub(crate) fn stderr_fails() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDERR_FILENO,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `poll` reads and writes the one `pollfd` passed, which lives
    // in this frame; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n == 1 && fd.revents & libc::POLLERR != 0
}

/// Drops `value`, which nobody is left to receive (a replaced outcome, a
/// reported panic's payload), where a panic must not escape: a panic in
/// its destructor is swallowed, and that panic's own payload forgotten
/// (as std's runtime does with a payload whose destructor panics).
#[cold]
#[inline(never)]
pub(crate) fn drop_quietly<T>(value: T) {
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value)));
    if let Err(again) = dropped {
        std::mem::forget(again);
    }
}

/// Runs `f`, the program's code run by the runtime where a panic must not
/// escape: in a thread-local's destructor, in the hub's loop, or while a
/// kill unwinds, it would abort the process or end the hub. A panic is
/// reported on stderr ("greenlet: {what} panicked{how}: ..."), and its
/// payload dropped quietly.
#[cold]
#[inline(never)]
pub(crate) fn reporting_a_panic(what: &str, how: &str, f: impl FnOnce()) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        report!(
            "greenlet: {what} panicked{how}: {}",
            payload_message(p.as_ref()).unwrap_or("(non-text payload)")
        );
        drop_quietly(p);
    }
}

/// Drops `value`, which the runtime held for the program and nobody is
/// left to receive (work dropped unrun with its hub, say), where a panic
/// must not escape (see [`reporting_a_panic`]).
pub(crate) fn drop_reporting<T>(value: T, what: &str) {
    reporting_a_panic(what, " as it was dropped", move || drop(value));
}

/// Goes on with `p`, an unwinding caught out of a blocking call (a kill,
/// say), after dropping `held`: values of the program's that the runtime
/// kept across that call (a function not run yet, a result nobody will
/// take). Dropped by the unwinding itself, a panic in a destructor of
/// theirs would abort the process; here it is reported (see
/// [`drop_reporting`]). Nor can those destructors block: under a kill,
/// their switches fail, as a greenlet-local's do.
#[cold]
#[inline(never)]
pub(crate) fn unwind_after_dropping<T>(held: T, what: &str, p: Box<dyn std::any::Any + Send>) -> ! {
    if let Some(rt) = crate::runtime::Runtime::if_running() {
        rt.finishing_its_kill(rt.current());
    }
    drop_reporting(held, what);
    std::panic::resume_unwind(p)
}

/// Reports on stderr a panic or a throw that reached the hub greenlet
/// (through a finished spawned greenlet, whose parent it is, or a child
/// greenlet that outlived the spawned greenlet that made it), and drops
/// it: the hub has nobody to pass it to, and its loop goes on. Anything
/// else that arrives there (a value, a kill's "no value") means nothing.
#[cold]
#[inline(never)]
pub(crate) fn report_reaching_the_hub(e: SwitchError) {
    let (what, p) = match e {
        SwitchError::Panicked(p) => ("a panic", p),
        SwitchError::Thrown(p) => ("a throw", p),
        _ => return,
    };
    report!(
        "greenlet::hub: {what} reached the hub greenlet (the parent of every spawned \
         greenlet, also once it has finished) and was dropped: {}",
        payload_message(p.as_ref()).unwrap_or("(non-text payload)")
    );
    drop_quietly(p);
}

impl fmt::Debug for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwitchError::Panicked(p) => f
                .debug_tuple("Panicked")
                .field(&payload_message(p.as_ref()).unwrap_or("<non-text payload>"))
                .finish(),
            SwitchError::Thrown(p) => f
                .debug_tuple("Thrown")
                .field(&payload_message(p.as_ref()).unwrap_or("<non-text payload>"))
                .finish(),
            SwitchError::TypeMismatch { expected, found } => f
                .debug_struct("TypeMismatch")
                .field("expected", expected)
                .field("found", found)
                .finish(),
            SwitchError::Killed => f.write_str("Killed"),
            SwitchError::Unwinding => f.write_str("Unwinding"),
            SwitchError::InSwitchHook => f.write_str("InSwitchHook"),
        }
    }
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwitchError::Panicked(p) => match payload_message(p.as_ref()) {
                Some(m) => write!(f, "a greenlet panicked: {m}"),
                None => f.write_str("a greenlet panicked (non-text payload)"),
            },
            SwitchError::Thrown(p) => match payload_message(p.as_ref()) {
                Some(m) => write!(f, "an error was thrown into this greenlet: {m}"),
                None => f.write_str("an error was thrown into this greenlet (non-text payload)"),
            },
            SwitchError::TypeMismatch { expected, found } => write!(
                f,
                "switch expected a value of type `{expected}` but received `{found}` (the value was dropped)"
            ),
            SwitchError::Killed => f.write_str("the greenlet that would have sent a value was killed"),
            SwitchError::Unwinding => f.write_str(
                "cannot switch away from a greenlet that is unwinding (a panic or kill is in progress)",
            ),
            SwitchError::InSwitchHook => {
                f.write_str("cannot switch from inside the switch hook")
            }
        }
    }
}

impl std::error::Error for SwitchError {}

/// Why [`set_parent`](crate::Greenlet::set_parent) refused; the old parent
/// stays in place.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParentError {
    /// The new parent is the greenlet itself or one of its descendants
    /// (Python's `ValueError: cyclic parent chain`).
    Cycle,
    /// The main greenlet has no parent and never gets one.
    Main,
}

impl fmt::Display for ParentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParentError::Cycle => f.write_str(
                "cyclic parent chain: the new parent is the greenlet itself or one of its descendants",
            ),
            ParentError::Main => f.write_str("the main greenlet's parent cannot be set"),
        }
    }
}

impl std::error::Error for ParentError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_types_and_payloads() {
        let e = SwitchError::TypeMismatch {
            expected: "u32",
            found: "alloc::string::String",
        };
        assert!(e.to_string().contains("`u32`"));
        assert!(e.to_string().contains("`alloc::string::String`"));
        let p = SwitchError::Panicked(Box::new("boom"));
        assert_eq!(p.message(), Some("boom"));
        assert!(p.to_string().contains("boom"));
        let t = SwitchError::Thrown(Box::new(String::from("stop")));
        assert_eq!(t.message(), Some("stop"));
    }
}

/// A [`kill`](crate::Greenlet::try_kill) the victim refused: it caught the
/// unwinding and switched away, and is alive, suspended at that switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KillRefused;

impl fmt::Display for KillRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the greenlet caught the unwinding of its kill and switched away")
    }
}

impl std::error::Error for KillRefused {}
