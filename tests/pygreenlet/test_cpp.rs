//! The scenarios of Python greenlet's `src/greenlet/tests/test_cpp.py`
//! (greenlet 3.5.4.dev0, commit 74b3c41): C++ exceptions thrown and caught
//! inside greenlets. Here a C++ exception is a panic and `try`/`catch` is
//! `catch_unwind`; what carries over is that an exception never crosses
//! from one greenlet's stack into another's frames: each is caught where
//! it was thrown, or reaches the parent as the switch's result
//! (`SwitchError::Panicked`, semantics row 7).
//!
//! Not ported: `test_unhandled_exception_in_greenlet_aborts` and its
//! variants abort the Python process, because a C++ exception cannot leave
//! a greenlet's stack there; here a panic that leaves a greenlet's
//! function goes to its parent, so they become
//! `unhandled_panic_reaches_the_parent_only`. `..._cleanup_disabled` tests
//! an optional C cleanup this crate does not have.

use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};

use greenlet::{current, stats, Greenlet, SwitchError};

/// `_test_extension_cpp.test_exception_switch_recurse`: recurses `left`
/// frames, switches to the parent inside a `catch_unwind`, then panics
/// with `depth` and catches it in the same frame.
#[inline(never)]
fn exception_switch_recurse(depth: i32, left: i32) -> i32 {
    if left > 0 {
        // Not a tail call: each level keeps a frame on the stack.
        return std::hint::black_box(exception_switch_recurse(depth, left - 1));
    }
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let _: () = current().parent().unwrap().switch(()).unwrap();
        panic_any(depth);
    }));
    match caught {
        Err(p) => *p.downcast::<i32>().expect("our own panic"),
        Ok(()) => unreachable!("the closure always panics"),
    }
}

#[test]
fn test_exception_switch() {
    // Four greenlets, each suspended inside a `catch_unwind` at another
    // depth; each then panics and catches in its own frame.
    let greenlets: Vec<Greenlet> = (0..4)
        .map(|i| {
            let g = Greenlet::new(|d: i32| exception_switch_recurse(d, d));
            g.switch::<i32, ()>(i).unwrap();
            g
        })
        .collect();
    for (i, g) in greenlets.iter().enumerate() {
        assert_eq!(g.switch::<(), i32>(()).unwrap(), i as i32);
        assert!(g.is_dead());
    }
}

#[test]
fn edge_exception_switch_in_reverse_order() {
    // The panics are raised and caught while the others are still
    // suspended inside their own `catch_unwind` (std's panic count is the
    // thread's, which the greenlets share): each one's is its own.
    let greenlets: Vec<Greenlet> = (0..6)
        .map(|i| {
            let g = Greenlet::new(|d: i32| exception_switch_recurse(d, d * 3));
            g.switch::<i32, ()>(i).unwrap();
            g
        })
        .collect();
    for (i, g) in greenlets.iter().enumerate().rev() {
        assert_eq!(g.switch::<(), i32>(()).unwrap(), i as i32);
        assert!(!std::thread::panicking());
    }
}

#[test]
fn test_leak_test_exception_switch_and_do_in_g2() {
    // g1 makes g2 and switches to it inside a `catch_unwind`; g2 panics.
    // The panic comes back as the switch's result, never as an unwinding
    // through g1's frame, and many rounds leave no greenlet or stack.
    #[derive(Debug)]
    struct ValueError;
    fn switch_and_do_in_g2() -> Result<(), SwitchError> {
        let g2 = Greenlet::new(|()| -> () { panic_any(ValueError) });
        catch_unwind(AssertUnwindSafe(|| g2.switch::<(), ()>(())))
            .unwrap_or_else(|_| panic!("g2's panic unwound into g1's frame"))
    }
    let live = || stats().greenlets.len();
    let (greenlets, stacks) = (live(), stats().stacks_in_use);
    for _ in 0..1000 {
        let err = switch_and_do_in_g2().unwrap_err();
        assert!(matches!(&err, SwitchError::Panicked(p) if p.is::<ValueError>()));
    }
    // From inside a greenlet too, as Python's does.
    for _ in 0..100 {
        let g1 = Greenlet::new(|()| switch_and_do_in_g2().is_err());
        assert!(g1.switch::<(), bool>(()).unwrap());
    }
    assert_eq!(live(), greenlets);
    assert_eq!(stats().stacks_in_use, stacks);
}

#[test]
fn unhandled_panic_reaches_the_parent_only() {
    // In place of `test_unhandled_exception_in_greenlet_aborts`: the panic
    // reaches its parent, as the switch's result; the grandparent, itself
    // suspended inside a `catch_unwind`, does not see it.
    let outer = Greenlet::new(|()| {
        let inner = Greenlet::new(|()| -> () { panic!("Thrown from an extension.") });
        match catch_unwind(AssertUnwindSafe(|| inner.switch::<(), ()>(()))) {
            Ok(Err(e)) => e.message().map(String::from),
            _ => None,
        }
    });
    let message = catch_unwind(AssertUnwindSafe(|| outer.switch::<(), Option<String>>(())))
        .expect("the grandparent saw the panic")
        .unwrap();
    assert_eq!(message.as_deref(), Some("Thrown from an extension."));
}
