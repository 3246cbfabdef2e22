//! Switches between live greenlets allocate nothing: a counting global
//! allocator (counting per thread, so other test threads don't interfere)
//! watches 10,000 switches.

mod common;

use common::allocations;
use greenlet::Greenlet;

#[test]
fn ten_thousand_switches_between_live_greenlets_allocate_nothing() {
    // main <-> child, passing a u64 and a String back and forth (moving a
    // String allocates nothing).
    let echo = Greenlet::new(|mut v: (u64, String)| loop {
        v = Greenlet::main()
            .switch::<(u64, String), (u64, String)>((v.0 + 1, v.1))
            .unwrap();
    });
    let mut v = (0u64, String::from("payload"));
    v = echo.switch(v).unwrap(); // starts it (warm-up)

    let before = allocations();
    for _ in 0..2_500 {
        v = echo.switch(v).unwrap(); // two switches each
    }
    let main_child = allocations() - before;
    assert_eq!(v, (2_501, String::from("payload")));

    // child <-> child: `ping` bounces a u64 off `pong` (neither is main),
    // measuring inside `ping` after a warm-up round.
    let pong = Greenlet::new(|mut v: u64| {
        let ping = Greenlet::current().parent().unwrap();
        loop {
            v = ping.switch::<u64, u64>(v + 1).unwrap();
        }
    });
    let ping = Greenlet::new(move |rounds: u64| {
        pong.set_parent(&Greenlet::current()).unwrap();
        let mut v = pong.switch::<u64, u64>(0).unwrap(); // warm-up
        let before = allocations();
        for _ in 0..rounds {
            v = pong.switch::<u64, u64>(v).unwrap(); // two switches each
        }
        (v, allocations() - before)
    });
    let (v, child_child) = ping.switch::<u64, (u64, usize)>(2_500).unwrap();
    assert_eq!(v, 2_501);

    assert_eq!(main_child, 0, "5,000 main <-> child switches allocated");
    assert_eq!(child_child, 0, "5,000 child <-> child switches allocated");
}

#[test]
fn the_counter_sees_allocations() {
    let before = allocations();
    // `black_box`: an optimised build may otherwise elide the allocation.
    let b = std::hint::black_box(Box::new(5u64));
    assert_eq!(allocations() - before, 1);
    drop(b);
}
