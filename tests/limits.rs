//! What happens when the OS refuses a stack: `Builder::build` returns the
//! `io::Error`, `Greenlet::new` panics with a message naming the limit and
//! the remedy. The refusal is provoked in a child process (this same test
//! binary, re-run with an environment variable) whose address space is
//! capped with `setrlimit(RLIMIT_AS)`, so other tests are unaffected.

#[path = "support/address_space.rs"]
mod address_space;
#[path = "support/child.rs"]
mod child;

use greenlet::Greenlet;

const CHILD: &str = "GREENLET_LIMITS_CHILD";

/// In the child: cap the address space, then create greenlets until refused.
fn child_main(mode: &str) {
    address_space::cap();
    let mut keep = Vec::new();
    for _ in 0..100_000 {
        match mode {
            "build" => match Greenlet::builder().build(|()| ()) {
                Ok(g) => keep.push(g),
                Err(e) => {
                    println!("build error: kind={:?} os={:?}", e.kind(), e.raw_os_error());
                    // The runtime still works after a refusal.
                    drop(keep);
                    let g = Greenlet::new(|x: u8| x + 1);
                    println!("after: {}", g.switch::<u8, u8>(1).unwrap());
                    return;
                }
            },
            _ => keep.push(Greenlet::new(|()| ())),
        }
    }
    println!("never refused");
}

fn run_child(mode: &str) -> std::process::Output {
    child::run("refusal_child", CHILD, mode)
}

#[test]
fn refusal_child() {
    // Only does something when re-run by the tests below.
    if let Ok(mode) = std::env::var(CHILD) {
        child_main(&mode);
    }
}

#[test]
fn build_returns_the_os_error_when_no_stack_can_be_had() {
    let out = run_child("build");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    assert!(
        stdout.contains("build error: kind=OutOfMemory os=Some(12)"),
        "stdout: {stdout}"
    );
    assert!(stdout.contains("after: 2"), "stdout: {stdout}");
}

#[test]
fn new_panics_naming_the_limit_and_the_remedy() {
    let out = run_child("new");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("vm.max_map_count"), "stderr: {stderr}");
    assert!(
        stderr.contains("sysctl -w vm.max_map_count"),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("Greenlet::builder().build"),
        "stderr: {stderr}"
    );
}

#[test]
fn absurd_stack_sizes_are_an_error_not_a_crash() {
    let err = Greenlet::builder()
        .stack_size(usize::MAX)
        .build(|()| ())
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(greenlet::stats().stacks_in_use, 0);
}

/// A closure of any size makes a greenlet: one that captures more than
/// corosensei moves onto a new stack (1,024 bytes) is boxed. (It panicked,
/// "type is too big to transfer", and leaked the stack it had taken.)
#[test]
fn a_closure_capturing_kilobytes_makes_a_greenlet() {
    let big = [7u8; 4096];
    let hub_spawned = greenlet::hub::spawn(move || big[4095]);
    assert_eq!(hub_spawned.join().unwrap(), 7);
    // The hub's greenlet keeps its stack from here on.
    let in_use = greenlet::stats().stacks_in_use;
    let g = Greenlet::new(move |i: usize| big[i] as u32 + big.len() as u32);
    assert_eq!(g.switch::<usize, u32>(3).unwrap(), 4103);
    let built = Greenlet::builder()
        .build(move |()| big.iter().map(|&b| b as u32).sum::<u32>())
        .unwrap();
    assert_eq!(built.switch::<(), u32>(()).unwrap(), 7 * 4096);
    drop((g, built));
    assert_eq!(greenlet::stats().stacks_in_use, in_use);
}
