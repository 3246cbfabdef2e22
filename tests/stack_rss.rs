//! Stacks that go cold give their memory back: after a burst the resident
//! set falls back (the mappings stay for the next burst). Measured with
//! the process's `VmRSS`, so this file holds one test.

use std::hint::black_box;
use std::time::Duration;

use greenlet::{Greenlet, StackPolicy};

/// This process's resident set in KiB.
fn rss_kib() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Bytes of stack each greenlet of a burst writes to.
const DEPTH: usize = 64 * 1024;
const N: usize = 200;

/// Runs `N` greenlets at once, each writing `DEPTH` bytes of its stack.
fn burst() {
    let live: Vec<Greenlet> = (0..N)
        .map(|_| {
            let g = Greenlet::new(|()| {
                let frame = black_box([7u8; DEPTH]);
                let () = Greenlet::main().switch(()).unwrap();
                black_box(&frame);
            });
            g.switch::<(), ()>(()).unwrap();
            g
        })
        .collect();
    for g in &live {
        g.switch::<(), ()>(()).unwrap();
    }
    assert!(live.iter().all(Greenlet::is_dead));
}

#[test]
fn cold_stacks_give_their_memory_back() {
    let burst_kib = N * DEPTH / 1024;
    let slack_kib = 2 * 1024;
    // A first burst maps the stacks (and grows the runtime's tables).
    burst();
    greenlet::trim_stacks();
    let before = rss_kib();

    // Warm: the stacks come back resident.
    burst();
    let after = rss_kib();
    assert!(
        after >= before + burst_kib * 3 / 4,
        "the burst's stacks are resident: {before} KiB -> {after} KiB"
    );

    // Cold at once: the next use of the pool trims all but 4.
    greenlet::set_stack_policy(StackPolicy::new().resident(4).cold_after(Duration::ZERO));
    Greenlet::new(|()| ()).switch::<(), ()>(()).unwrap();
    let aged = rss_kib();
    assert!(
        aged <= before + slack_kib,
        "aged stacks are trimmed: {before} KiB before, {aged} KiB after"
    );
    assert!(greenlet::stats().stacks_pooled >= N, "and still mapped");

    // A burst that ends with no greenlet made after it: the stacks that
    // went cold while it ended give their memory back as they come back.
    greenlet::set_stack_policy(StackPolicy::new().resident(4).cold_after(Duration::ZERO));
    burst();
    let ended = rss_kib();
    assert!(
        ended <= before + slack_kib,
        "a burst's end trims: {before} KiB before, {ended} KiB after"
    );

    // `trim_stacks` trims everything at once.
    greenlet::set_stack_policy(StackPolicy::new());
    burst();
    greenlet::trim_stacks();
    let trimmed = rss_kib();
    assert!(
        trimmed <= before + slack_kib,
        "trim_stacks: {before} KiB before, {trimmed} KiB after"
    );
}
