//! The producer/consumer examples built on generators and threads, checked
//! line by line.

#[path = "../examples/generator_prodcons.rs"]
mod generator_prodcons;
#[path = "../examples/multitask_prodcons.rs"]
mod multitask_prodcons;
#[path = "../examples/threaded_prodcons.rs"]
mod threaded_prodcons;

/// `greenlet_prodcons`'s story.
const STORY: [&str; 11] = [
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
];

#[test]
fn generator_prodcons_tells_the_story_with_main_passing_items() {
    let before = greenlet::stats().stacks_in_use;
    let trace = generator_prodcons::run();
    // Main, not the producer, hands the items over and hears the count.
    let mut expected: Vec<&str> = STORY.to_vec();
    expected.remove(9);
    assert_eq!(trace, expected);
    assert_eq!(greenlet::stats().stacks_in_use, before);
}

#[test]
fn multitask_prodcons_matches_the_hub_version() {
    let before = greenlet::stats().stacks_in_use;
    assert_eq!(
        multitask_prodcons::run_trace(),
        [
            "producer: put item 1",
            "producer: put item 2",
            "consumer A: got item 1",
            "consumer B: got item 2",
            "producer: put item 3",
            "producer: put item 4",
            "consumer A: got item 3",
            "consumer B: got item 4",
            "producer: put item 5",
            "producer: put item 6",
            "consumer A: got item 5",
            "consumer B: got item 6",
            "producer: done",
            "consumer A: done",
            "consumer B: done",
        ]
    );
    // Every task finished and gave its stack back.
    assert_eq!(greenlet::stats().stacks_in_use, before);
}

#[test]
fn threaded_prodcons_tells_the_same_story_every_time() {
    for _ in 0..20 {
        assert_eq!(threaded_prodcons::with_condvar(), STORY);
        assert_eq!(threaded_prodcons::with_channels(), STORY);
        assert_eq!(threaded_prodcons::with_a_greenlet(), STORY);
    }
}
