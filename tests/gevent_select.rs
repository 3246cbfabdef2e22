//! gevent `src/gevent/tests/test__select.py` with `Readiness` +
//! `hub::wait_any`/`hub::wait` (select) and `hub::wait_readable` (poll).
//! Timing via the paused clock.

use std::os::fd::BorrowedFd;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, time, with_timeout, Event, Waitable};
use greenlet::net::{AsyncFd, UnixStream};

const TICK: Duration = Duration::from_millis(50);

// TestSelect.test_returns_none_after_timeout: select([], [], [], t) sleeps t.
// Friction check: hub::wait on no items with a timeout.
#[test]
fn test_select_empty_returns_after_timeout() {
    time::pause();
    let start = time::now();
    let r = hub::wait::<&Event>(&[], None, Some(TICK));
    assert!(r.is_empty());
    eprintln!(
        "hub::wait(&[], timeout) took {:?} of hub time",
        time::now() - start
    );
}

// TestSelectRead.test_returns_none_after_timeout
#[test]
fn test_select_read_returns_none_after_timeout() {
    time::pause();
    let (r, _w) = std::io::pipe().unwrap();
    let r = AsyncFd::new(r).unwrap();
    let start = time::now();
    let readable = r.readable();
    assert_eq!(hub::wait_any(&[&readable], Some(TICK)), None);
    assert_eq!(time::now() - start, TICK);
}

// TestSelectRead.test_outer_timeout_is_not_lost
#[test]
fn test_select_read_outer_timeout_is_not_lost() {
    time::pause();
    let (r, _w) = std::io::pipe().unwrap();
    let r = AsyncFd::new(r).unwrap();
    let readable = r.readable();
    let res = with_timeout(Duration::from_millis(10), || {
        hub::wait_any(&[&readable], Some(Duration::from_secs(1)))
    });
    assert!(res.is_err());
}

// A pipe that gets data becomes ready (the positive case).
#[test]
fn test_select_read_ready() {
    let (r, w) = std::io::pipe().unwrap();
    let r = AsyncFd::new(r).unwrap();
    let writer = hub::spawn(move || {
        use std::io::Write;
        (&w).write_all(b"x").unwrap();
        w
    });
    let readable = r.readable();
    assert_eq!(
        hub::wait_any(&[&readable], Some(Duration::from_secs(5))),
        Some(0)
    );
    let _w = writer.join().unwrap();
}

// TestSelectRead.test_errno: select on a closed fd -> EBADF.
#[test]
fn test_select_errno() {
    // SAFETY: fd 1_000_000 is above any limit here and never open; only
    // polled, never closed.
    let fd = unsafe { BorrowedFd::borrow_raw(1_000_000) };
    let e = hub::wait_readable(fd, Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e:?}");
}

// TestPollRead.test_returns_none_after_timeout
#[test]
fn test_poll_read_returns_none_after_timeout() {
    time::pause();
    let (r, _w) = std::io::pipe().unwrap();
    let start = time::now();
    let e = hub::wait_readable(&r, Some(TICK)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(time::now() - start, TICK);
}

// TestPollRead.test_outer_timeout_is_not_lost
#[test]
fn test_poll_read_outer_timeout_is_not_lost() {
    time::pause();
    let (r, _w) = std::io::pipe().unwrap();
    let res = with_timeout(Duration::from_millis(10), || {
        hub::wait_readable(&r, Some(Duration::from_secs(1)))
    });
    assert!(res.is_err());
}

// TestPossibleCrashes.test_closing_object_while_selecting: another greenlet
// closes the socket while we wait on its readiness. No crash; the wait
// ends (closed counts as ready) or times out.
#[test]
fn test_closing_object_while_selecting() {
    let (a, _b) = UnixStream::pair().unwrap();
    let a = Rc::new(a);
    let a2 = a.clone();
    hub::spawn(move || a2.close());
    let readable = a.readable();
    let items: [&dyn Waitable; 1] = [&readable];
    let r = hub::wait_any(&items, Some(Duration::from_secs(5)));
    assert_eq!(
        r,
        Some(0),
        "a closed socket counts as ready (readiness.rs:100-103)"
    );
    // And again, now that it is closed.
    assert_eq!(
        hub::wait_any(&items, Some(Duration::from_millis(10))),
        Some(0)
    );
}

// TestPossibleCrashes.test_closing_object_while_polling: the same through
// wait_readable on the socket's descriptor (documented to wait on a
// duplicate and be woken for a stream through the shutdown).
#[test]
fn test_closing_object_while_polling() {
    let (a, _b) = UnixStream::pair().unwrap();
    let a = Rc::new(a);
    let a2 = a.clone();
    hub::spawn(move || a2.close());
    let r = hub::wait_readable(&*a, Some(Duration::from_secs(5)));
    assert!(r.is_ok(), "{r:?}");
    let r = hub::wait_readable(&*a, Some(Duration::from_millis(10)));
    assert!(r.is_ok(), "{r:?}");
}

// select on a socket and an event together (the crate's stated use).
#[test]
fn test_select_socket_or_event() {
    use std::io::Write;
    let (a, b) = UnixStream::pair().unwrap();
    let stop = Event::new();
    let readable = a.readable();
    let items: [&dyn Waitable; 2] = [&readable, &stop];
    assert_eq!(hub::wait_any(&items, Some(Duration::ZERO)), None);
    let s = stop.clone();
    hub::spawn(move || s.set());
    assert_eq!(hub::wait_any(&items, None), Some(1));
    (&b).write_all(b"x").unwrap();
    assert_eq!(
        hub::wait(&items, None, Some(Duration::from_secs(5))).len(),
        2
    );
}
