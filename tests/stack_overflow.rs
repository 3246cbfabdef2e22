//! An overflow on a default-size stack, which lives in the middle of a
//! batch of stacks mapped together, still hits its own guard page and
//! still names the greenlet. Runs in a child process (this test binary,
//! re-run with an environment variable).

#[path = "support/child.rs"]
mod child;
#[path = "support/recurse.rs"]
mod recurse;

use std::os::unix::process::ExitStatusExt;

use greenlet::Greenlet;
use recurse::recurse;

const CHILD: &str = "GREENLET_STACK_OVERFLOW_CHILD";

/// In a child: creates three greenlets (so the next stack has neighbours
/// of its batch on both sides: live ones below, pooled ones above), then
/// one named `name` that recurses until its stack overflows.
fn overflow_in_a_batch(name: &str) {
    let below: Vec<Greenlet> = (0..3).map(|_| Greenlet::new(|()| ())).collect();
    let g = Greenlet::builder()
        .name(name)
        .build(|()| recurse(0))
        .unwrap();
    assert!(greenlet::stats().stacks_pooled > 0, "a batch was mapped");
    let _ = g.switch::<(), u64>(());
    drop(below);
}

#[test]
fn batch_overflow_child() {
    if std::env::var(CHILD).is_ok() {
        overflow_in_a_batch("batch-deep");
    }
}

/// Runs the child test `name` (which overflows a stack) and checks that
/// it aborted with `message` on stderr.
fn assert_overflow(name: &str, env: &str, message: &str) {
    let out = child::run(name, env, "1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(message), "stderr: {stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}", out.status);
}

#[test]
fn an_overflow_on_a_batch_mapped_stack_names_the_greenlet() {
    assert_overflow(
        "batch_overflow_child",
        CHILD,
        "greenlet 'batch-deep' (id 4) overflowed its stack of 1024 KiB; \
         raise it with Builder::stack_size",
    );
}

const SMALL_CHILD: &str = "GREENLET_SMALL_STACK_OVERFLOW_CHILD";

#[test]
fn small_pooled_overflow_child() {
    if std::env::var(SMALL_CHILD).is_ok() {
        greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(64 * 1024));
        overflow_in_a_batch("small-deep");
    }
}

/// A thread whose policy pools 64 KiB stacks gives them to greenlets built
/// without a size: an overflow hits the guard page 64 KiB down and says so.
#[test]
fn an_overflow_on_a_small_pooled_stack_names_the_greenlet_and_the_size() {
    assert_overflow(
        "small_pooled_overflow_child",
        SMALL_CHILD,
        "greenlet 'small-deep' (id 4) overflowed its stack of 64 KiB; \
         raise it with Builder::stack_size",
    );
}

const TINY_CHILD: &str = "GREENLET_TINY_STACK_OVERFLOW_CHILD";

#[test]
fn tiny_stack_overflow_child() {
    if std::env::var(TINY_CHILD).is_ok() {
        let g = Greenlet::builder()
            .name("tiny")
            .stack_size(1000)
            .build(|()| recurse(0))
            .unwrap();
        let _ = g.switch::<(), u64>(());
    }
}

/// A stack asked for with fewer bytes than corosensei's minimum gets the
/// minimum, and the message names what it got, not "0 KiB".
#[test]
fn an_overflow_on_a_stack_below_the_minimum_names_the_minimum() {
    let kib = corosensei::stack::MIN_STACK_SIZE / 1024;
    assert!(kib > 0);
    assert_overflow(
        "tiny_stack_overflow_child",
        TINY_CHILD,
        &format!(
            "greenlet 'tiny' (id 1) overflowed its stack of {kib} KiB; \
             raise it with Builder::stack_size"
        ),
    );
}

const SWITCHING_CHILD: &str = "GREENLET_SWITCHING_OVERFLOW_CHILD";

/// Recurses with frames of `PAD` bytes, switching to `parent` at every
/// level, so that the overflow lands, at some depth, inside a switch.
#[inline(never)]
fn recurse_switching<const PAD: usize>(n: u64, parent: &Greenlet) -> u64 {
    let frame = std::hint::black_box([n as u8; PAD]);
    parent.switch::<(), ()>(()).unwrap();
    if n == u64::MAX {
        return 0; // never: the stack overflows long before
    }
    recurse_switching::<PAD>(n + 1, parent) + u64::from(frame[0])
}

#[test]
fn switching_overflow_child() {
    let Ok(pad) = std::env::var(SWITCHING_CHILD) else {
        return;
    };
    let pad: usize = pad.parse().unwrap();
    let g = Greenlet::builder()
        .name("switchy")
        .stack_size(16 * 1024)
        .build(move |()| {
            let parent = Greenlet::current().parent().unwrap();
            match pad {
                0 => recurse_switching::<8>(0, &parent),
                1 => recurse_switching::<24>(0, &parent),
                2 => recurse_switching::<40>(0, &parent),
                3 => recurse_switching::<56>(0, &parent),
                4 => recurse_switching::<72>(0, &parent),
                5 => recurse_switching::<88>(0, &parent),
                6 => recurse_switching::<104>(0, &parent),
                _ => recurse_switching::<120>(0, &parent),
            }
        })
        .unwrap();
    loop {
        g.switch::<(), ()>(()).unwrap();
    }
}

/// A greenlet that switches at every level of its recursion overflows, at
/// some depth, inside the switch, where `current` already names the
/// target: the message still names the greenlet. Which depth faults
/// depends on where its stack begins, so eight frame sizes are tried,
/// twice each (one of them landing in the switch is likely, not certain:
/// a run that hits the switch on old code died of a bare SIGSEGV, about
/// one run in five; the deterministic check is the runtime's unit test
/// `an_overflow_is_found_in_the_guard_page_of_a_greenlet_that_is_not_current`).
#[test]
fn an_overflow_inside_a_switch_names_the_greenlet() {
    for run in 0..16 {
        let out = child::run(
            "switching_overflow_child",
            SWITCHING_CHILD,
            &(run % 8).to_string(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("greenlet 'switchy' (id 1) overflowed its stack of 16 KiB"),
            "run {run}: {:?}, stderr: {stderr}",
            out.status
        );
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "run {run}");
    }
}
