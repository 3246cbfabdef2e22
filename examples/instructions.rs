//! Kernels for `scripts/instructions.sh`: each runs one hub operation (or
//! its tokio current-thread counterpart) `n` times, so that callgrind's
//! instruction counts at `n` and `2n`, differenced, give the cost of one
//! operation without the setup.
//!
//! ```text
//! cargo run --release --example instructions -- <kernel> <n>
//! ```
//!
//! Kernels: `hub-pingpong`, `hub-yield2`, `hub-yield1000`, `hub-spawn-join`,
//! `hub-bounded1024`, `hub-unbounded`, and the same with `tokio-` for
//! tokio.

use std::hint::black_box;

use greenlet::hub::{self, Queue};

#[path = "../benches/support/hub_stream.rs"]
mod hub_stream;
use hub_stream::hub_stream;

fn hub_pingpong(hops: u64) {
    let (there, back) = (Queue::bounded(1), Queue::bounded(1));
    let echo = {
        let (there, back) = (there.clone(), back.clone());
        hub::spawn(move || {
            for _ in 0..hops / 2 {
                let v: u64 = there.get();
                back.put(v + 1);
            }
        })
    };
    let mut v = 0u64;
    for _ in 0..hops / 2 {
        there.put(v);
        v = back.get();
    }
    echo.join().unwrap();
    black_box(v);
}

fn hub_yield(tasks: u64, yields: u64) {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            hub::spawn(move || {
                for _ in 0..yields / tasks {
                    hub::yield_now();
                }
            })
        })
        .collect();
    hub::run();
    for h in handles {
        h.join().unwrap();
    }
}

fn hub_spawn_join(n: u64) {
    for _ in 0..n {
        black_box(hub::spawn(|| black_box(1u64)).join().unwrap());
    }
}

fn hub_bounded(n: u64) {
    let q = Queue::bounded(1024);
    let consumer = {
        let q = q.clone();
        hub::spawn(move || {
            let mut sum = 0u64;
            for _ in 0..n {
                sum = sum.wrapping_add(q.get());
            }
            sum
        })
    };
    for i in 0..n {
        q.put(i);
    }
    black_box(consumer.join().unwrap());
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn tokio_pingpong(hops: u64) {
    rt().block_on(async move {
        let (there_tx, mut there_rx) = tokio::sync::mpsc::channel::<u64>(1);
        let (back_tx, mut back_rx) = tokio::sync::mpsc::channel::<u64>(1);
        let echo = tokio::spawn(async move {
            for _ in 0..hops / 2 {
                let v = there_rx.recv().await.unwrap();
                back_tx.send(v + 1).await.unwrap();
            }
        });
        let mut v = 0u64;
        for _ in 0..hops / 2 {
            there_tx.send(v).await.unwrap();
            v = back_rx.recv().await.unwrap();
        }
        echo.await.unwrap();
        black_box(v);
    });
}

fn tokio_yield(tasks: u64, yields: u64) {
    rt().block_on(async move {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..yields / tasks {
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
}

fn tokio_spawn_join(n: u64) {
    rt().block_on(async move {
        for _ in 0..n {
            black_box(tokio::spawn(async { black_box(1u64) }).await.unwrap());
        }
    });
}

fn tokio_bounded(n: u64) {
    rt().block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1024);
        let consumer = tokio::spawn(async move {
            let mut sum = 0u64;
            for _ in 0..n {
                sum = sum.wrapping_add(rx.recv().await.unwrap());
            }
            sum
        });
        for i in 0..n {
            tx.send(i).await.unwrap();
        }
        black_box(consumer.await.unwrap());
    });
}

fn tokio_unbounded(n: u64) {
    rt().block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        tokio::spawn(async move {
            for i in 0..n {
                tx.send(i).unwrap();
            }
        });
        let consumer = tokio::spawn(async move {
            let mut sum = 0u64;
            for _ in 0..n {
                sum = sum.wrapping_add(rx.recv().await.unwrap());
            }
            sum
        });
        black_box(consumer.await.unwrap());
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (kernel, n) = match args.as_slice() {
        [k, n] => (k.as_str(), n.parse::<u64>().expect("n is a number")),
        _ => {
            eprintln!("usage: instructions <kernel> <n>");
            std::process::exit(2);
        }
    };
    match kernel {
        "hub-pingpong" => hub_pingpong(n),
        "hub-yield2" => hub_yield(2, n),
        "hub-yield1000" => hub_yield(1000, n),
        "hub-spawn-join" => hub_spawn_join(n),
        "hub-bounded1024" => hub_bounded(n),
        "hub-unbounded" => hub_stream(n, None),
        "tokio-pingpong" => tokio_pingpong(n),
        "tokio-yield2" => tokio_yield(2, n),
        "tokio-yield1000" => tokio_yield(1000, n),
        "tokio-spawn-join" => tokio_spawn_join(n),
        "tokio-bounded1024" => tokio_bounded(n),
        "tokio-unbounded" => tokio_unbounded(n),
        _ => {
            eprintln!("unknown kernel {kernel}");
            std::process::exit(2);
        }
    }
}
