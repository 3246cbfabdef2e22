//! Scenarios ported from gevent's `src/gevent/tests/test__api_timeout.py`
//! (gevent 26.x), each test named after the one it ports; gevent's
//! `Timeout` block is `with_timeout`, whose `Err(Elapsed)` is the raised
//! `Timeout`.
//!
//! Not ported (no counterpart here): custom exceptions and `False` as the
//! exception (`with_timeout` always returns `Err(Elapsed)`, which the
//! caller may ignore), cancelling the timer inside the block, `pending`,
//! `test_ref` (weak references), and the `update_now` tests (loop
//! internals).

use std::time::Duration;

use greenlet::hub::{self, with_timeout, Elapsed};

const DELAY: Duration = Duration::from_millis(2);

#[test]
fn test_api() {
    hub::time::pause(); // deadlines in order however slowly this runs
                        // Nothing happens if the block finishes before the timeout expires.
    assert_eq!(with_timeout(DELAY * 2, || hub::sleep(DELAY)), Ok(()));
    hub::sleep(DELAY * 2); // and the timer was cancelled: nothing fires
                           // It expires otherwise.
    let r: Result<(), Elapsed> = with_timeout(DELAY, || hub::sleep(DELAY * 10));
    assert!(r.is_err());
}

#[test]
fn test_api_no_timeout() {
    hub::time::pause(); // deadlines in order however slowly this runs
                        // `Timeout(None)`: a timeout too long to have a deadline is none.
    assert_eq!(with_timeout(Duration::MAX, || hub::sleep(DELAY)), Ok(()));
}

#[test]
fn test_nested_timeout() {
    hub::time::pause(); // deadlines in order however slowly this runs
                        // The outer one fires first: the inner block is interrupted by it,
                        // and it is the outer one that reports.
    let outer = with_timeout(DELAY, || {
        let inner = with_timeout(DELAY * 20, || hub::sleep(DELAY * 30));
        unreachable!("the outer timeout unwinds through the inner block: {inner:?}")
    });
    assert!(outer.is_err());
    // The inner one fires first: the inner block reports, the outer goes on.
    let outer = with_timeout(DELAY * 20, || {
        with_timeout(DELAY, || hub::sleep(DELAY * 30))
    });
    assert_eq!(outer.map(|inner| inner.is_err()), Ok(true));
}
