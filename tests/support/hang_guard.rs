//! Runs a test body on a thread of its own under a hang guard, for the
//! scenarios whose failure mode is a hang or a spin: a hang then fails
//! the one test (the thread is left behind, spinning, until the binary
//! exits) instead of stopping the run. The limit is a guard, never a
//! timing assertion: a passing body returns at once.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

/// What a panic said, as text.
#[allow(dead_code)] // not every test file names it
pub fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "<non-string panic>".into()
    }
}

/// Runs `f` on a new thread; its value, its panic's message, or `"HANG"`
/// when it has not finished after `secs` seconds.
pub fn guard<R: Send + 'static>(
    secs: u64,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f)).map_err(panic_message);
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(r) => r,
        Err(_) => Err("HANG".into()),
    }
}
