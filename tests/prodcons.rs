//! The `greenlet_prodcons` example's logic, checked line by line.

#[path = "../examples/greenlet_prodcons.rs"]
mod prodcons;

#[test]
fn producer_and_consumer_alternate_and_the_count_reaches_main() {
    assert_eq!(
        prodcons::run(),
        [
            "main: starting the producer",
            "producer: made item 1",
            "consumer: got item 1",
            "producer: made item 2",
            "consumer: got item 2",
            "producer: made item 3",
            "consumer: got item 3",
            "producer: no more items",
            "consumer: got None, done",
            "producer: consumer handled 3 items",
            "main: done, 3 items",
        ]
    );
    // Both greenlets are dead and their stacks went back to the pool.
    assert_eq!(greenlet::stats().stacks_in_use, 0);
}
