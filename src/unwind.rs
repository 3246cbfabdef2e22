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

/// Whether `payload`, a panic caught with [`std::panic::catch_unwind`], is
/// the runtime's own unwinding rather than a panic of the program: a kill
/// ([`Greenlet::kill`](crate::Greenlet::kill), the drop of a last handle,
/// a [`Generator`](crate::Generator)'s close, a hub
/// [`JoinHandle::kill`](crate::hub::JoinHandle::kill), a server's stop) or
/// a [`with_timeout`](crate::hub::with_timeout) expiry.
///
/// It takes the payload (`payload.as_ref()`) or the `Box` holding it
/// (`&payload`) alike.
///
/// A catch-all that keeps a greenlet going after its own panics (a
/// request handler, a worker loop) should hand these on with
/// [`std::panic::resume_unwind`], as Python's `except Exception` lets
/// `GreenletExit` and gevent's `Timeout` through. Caught and dropped, a
/// kill is refused (the killer hears [`KillRefused`](crate::KillRefused),
/// or it is reported on stderr) and the greenlet lives on, and a
/// `with_timeout` scope does not end.
///
/// ```
/// use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
/// use greenlet::Greenlet;
///
/// let worker = Greenlet::new(|()| loop {
///     let main = Greenlet::main();
///     let job = catch_unwind(AssertUnwindSafe(|| {
///         let n: u32 = main.switch(()).unwrap();
///         assert!(n != 0, "a bad job");
///     }));
///     if let Err(payload) = job {
///         if greenlet::is_runtime_unwinding(payload.as_ref()) {
///             resume_unwind(payload); // a kill: not the worker's to keep
///         }
///         // The job's own panic: the worker goes on with the next.
///     }
/// });
/// worker.switch::<(), ()>(()).unwrap();
/// assert!(worker.switch::<u32, ()>(0).is_ok()); // survives a bad job
/// assert_eq!(worker.try_kill(), Ok(())); // and still dies when killed
/// assert!(worker.is_dead());
/// ```
pub fn is_runtime_unwinding(payload: &(dyn std::any::Any + Send)) -> bool {
    // `&payload` of the `Box` that `catch_unwind` returns is a `&dyn Any`
    // too, of the box: looked into, not taken for a panic of the program.
    let payload = match payload.downcast_ref::<Box<dyn std::any::Any + Send>>() {
        Some(boxed) => boxed.as_ref(),
        None => payload,
    };
    payload.is::<crate::value::GreenletExit>() || payload.is::<crate::hub::timeout::Interrupt>()
}
