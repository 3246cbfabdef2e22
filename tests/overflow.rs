//! A greenlet that overflows its stack gets a clear message and an abort;
//! other stack overflows still get Rust's own report. Each case runs in a
//! child process (this test binary, re-run with an environment variable).

#[path = "support/child.rs"]
mod child;
#[path = "support/recurse.rs"]
mod recurse;

use std::os::unix::process::ExitStatusExt;

use greenlet::Greenlet;
use recurse::recurse;

const CHILD: &str = "GREENLET_OVERFLOW_CHILD";

#[test]
fn overflow_child() {
    match std::env::var(CHILD).as_deref() {
        Ok("greenlet") => {
            let g = Greenlet::builder()
                .name("deep")
                .stack_size(64 * 1024)
                .build(|()| recurse(0))
                .unwrap();
            let _ = g.switch::<(), u64>(());
        }
        Ok("thread") => {
            // The runtime (and its handler) exists, but the overflow is on
            // the thread's own stack.
            let _ = Greenlet::current();
            std::hint::black_box(recurse(0));
        }
        _ => {}
    }
}

fn run_child(mode: &str) -> std::process::Output {
    child::run("overflow_child", CHILD, mode)
}

#[test]
fn a_greenlet_overflow_names_the_greenlet_and_the_remedy() {
    let out = run_child("greenlet");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "greenlet 'deep' (id 1) overflowed its stack of 64 KiB; raise it with Builder::stack_size"
        ),
        "stderr: {stderr}"
    );
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}", out.status);
}

#[test]
fn other_overflows_go_to_the_previous_handler() {
    let out = run_child("thread");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("has overflowed its stack"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("greenlet '"), "stderr: {stderr}");
    assert!(!out.status.success());
}
