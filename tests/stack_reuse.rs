//! A burst of greenlets past what the pool used to keep (64 stacks) leaves
//! its stacks mapped, and the next burst runs on them: no new mapping.
//! The mappings are counted in `/proc/self/maps`, so this file holds one
//! test (nothing else in the process maps memory meanwhile).

use greenlet::hub::{self, Event};

/// Lines of `/proc/self/maps`: the process's memory mappings.
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

/// Spawns `n` greenlets on the hub that park on one event; returns the
/// event and their handles once every one is parked.
fn park(n: usize) -> (Event, Vec<hub::JoinHandle<usize>>) {
    let go = Event::new();
    let handles = (0..n)
        .map(|i| {
            let go = go.clone();
            hub::spawn(move || {
                go.wait();
                i
            })
        })
        .collect();
    hub::run(); // every greenlet runs and parks
    (go, handles)
}

fn finish(go: Event, handles: Vec<hub::JoinHandle<usize>>) -> usize {
    go.set();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

#[test]
fn a_second_burst_reuses_the_first_bursts_stacks() {
    const N: usize = 300;
    let (go, handles) = park(N);
    assert!(greenlet::stats().stacks_in_use >= N);
    assert_eq!(finish(go, handles), N * (N - 1) / 2);
    let after_first = stacks();
    assert_eq!(after_first.1, 1, "only the hub's own stack is lent");
    assert!(
        after_first.0 >= N,
        "every stack of the burst is kept: {after_first:?}"
    );
    let maps = mappings();

    // The second burst: as many live greenlets, no new mapping, and the
    // stacks come out of the pool.
    let (go, handles) = park(N);
    let during = stacks();
    assert_eq!(during.1, N + 1);
    assert_eq!(during.0, after_first.0 - N);
    assert!(
        mappings() <= maps,
        "the second burst mapped memory: {} mappings, {maps} before",
        mappings()
    );
    assert_eq!(finish(go, handles), N * (N - 1) / 2);
    assert_eq!(stacks(), after_first);
}

/// (pooled, in use) stacks.
fn stacks() -> (usize, usize) {
    let s = greenlet::stats();
    (s.stacks_pooled, s.stacks_in_use)
}
