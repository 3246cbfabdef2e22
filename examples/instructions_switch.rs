//! Runs one switch scenario `N` times, for instruction counts under
//! callgrind (`scripts/instructions.sh` runs it at two `N`s and divides the
//! difference, which cancels the set-up).
//!
//! `cargo run --release --example instructions_switch -- SCENARIO N`, where
//! SCENARIO is `main_child` (a main <-> child round trip), `child_child` (a
//! round trip between two children), `create_finish` (create, first switch
//! and finish on a pooled stack), `create_kill` (create, start, and kill
//! by dropping the handle while it is suspended: one unwinding),
//! `generator` (one item through a `greenlet::Generator`),
//! `corosensei_generator` (one item through a raw corosensei coroutine
//! used as a generator), or `corosensei` (a raw corosensei
//! resume/suspend round trip, the floor).

use std::hint::black_box;

use corosensei::{Coroutine, CoroutineResult};
use greenlet::Greenlet;

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| "main_child".into());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let sum = match scenario.as_str() {
        "main_child" => main_child(n),
        "child_child" => child_child(n),
        "create_finish" => create_finish(n),
        "create_kill" => create_kill(n),
        "generator" => generator(n),
        "corosensei_generator" => corosensei_generator(n),
        "corosensei" => corosensei(n),
        other => panic!("unknown scenario {other}"),
    };
    println!("{scenario} {n}: {sum}");
}

fn main_child(n: u64) -> u64 {
    let g = Greenlet::new(|mut x: u64| {
        let main = Greenlet::main();
        loop {
            x = main.switch::<u64, u64>(x + 1).unwrap();
        }
    });
    let mut x = 0;
    for _ in 0..n {
        x = g.switch::<u64, u64>(black_box(x)).unwrap();
    }
    x
}

fn child_child(n: u64) -> u64 {
    let driver = Greenlet::new(move |()| {
        let echo = Greenlet::new(|mut x: u64| {
            let driver = Greenlet::current().parent().unwrap();
            loop {
                x = driver.switch::<u64, u64>(x + 1).unwrap();
            }
        });
        let mut x = 0;
        for _ in 0..n {
            x = echo.switch::<u64, u64>(black_box(x)).unwrap();
        }
        echo.kill();
        x
    });
    driver.switch::<(), u64>(()).unwrap()
}

fn create_finish(n: u64) -> u64 {
    let mut x = 0;
    for _ in 0..n {
        let g = Greenlet::new(|x: u64| x + 1);
        x = g.switch::<u64, u64>(black_box(x)).unwrap();
    }
    x
}

fn create_kill(n: u64) -> u64 {
    let mut x = 0;
    for _ in 0..n {
        let g = Greenlet::new(|x: u64| {
            let main = Greenlet::main();
            main.switch::<u64, u64>(x + 1).unwrap()
        });
        x = g.switch::<u64, u64>(black_box(x)).unwrap();
        drop(g); // suspended in its switch: killed, its stack unwound
    }
    x
}

fn generator(n: u64) -> u64 {
    let items = greenlet::Generator::new(move |y: &greenlet::Yielder<u64>| {
        for i in 0..n {
            y.yield_(black_box(i));
        }
    });
    items.sum()
}

fn corosensei_generator(n: u64) -> u64 {
    let mut co = Coroutine::new(move |y, ()| {
        for i in 0..n {
            y.suspend(black_box(i));
        }
    });
    let mut sum = 0;
    while let CoroutineResult::Yield(i) = co.resume(()) {
        sum += i;
    }
    sum
}

fn corosensei(n: u64) -> u64 {
    let mut co = Coroutine::new(|y, mut x: u64| loop {
        x = y.suspend(x + 1);
    });
    let mut x = 0;
    for _ in 0..n {
        x = match co.resume(black_box(x)) {
            CoroutineResult::Yield(v) => v,
            CoroutineResult::Return(()) => unreachable!(),
        };
    }
    x
}
