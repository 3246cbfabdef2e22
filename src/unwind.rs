//! Kills, `with_timeout` expiries and throws into blocked hub calls unwind
//! a greenlet's stack with `std::panic::resume_unwind`. A program built
//! with `panic = "abort"` cannot unwind: `resume_unwind` would abort the
//! process without a word. So before the first such unwinding the crate
//! says why, then aborts.

/// Aborts with a message naming `what` when this build cannot unwind;
/// nothing at all otherwise (the check is a constant).
#[inline(always)]
pub(crate) fn require_unwinding(what: &str) {
    if cfg!(panic = "abort") {
        cannot_unwind(what);
    }
}

#[cold]
#[inline(never)]
fn cannot_unwind(what: &str) -> ! {
    report!(
        "greenlet: {what} unwinds a greenlet's stack, but this program is built with \
         panic = \"abort\", which cannot unwind; kills, with_timeout and throws into \
         blocked greenlets need panic = \"unwind\" (the default). Aborting."
    );
    std::process::abort()
}
