//! How much memory an idle greenlet costs, and how many fit.
//!
//! Suspends N greenlets (each touches a little of its stack and switches
//! back) and reports the growth of VmRSS and VmPTE (page tables) from
//! /proc/self/status, per greenlet, for N = 10,000, 100,000 and 1,000,000.
//! Where the kernel lacks lightweight guard pages (before Linux 6.13) each
//! guarded stack takes two memory mappings, so the kernel's
//! `vm.max_map_count` (65,530 by default) allows about 32,000 greenlets
//! (with them, a batch of pooled stacks is one mapping, and the limit is
//! far off); the run stops at the first refused stack and says how far it
//! got and how to raise the limit. It never crashes.
//!
//! Run with `cargo run --release --example scale` (add a number to try only
//! that N).

use std::hint::black_box;

use greenlet::Greenlet;

/// (VmRSS, VmPTE) in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmPTE:"))
}

fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Suspends up to `n` greenlets; returns how many it got and the memory
/// growth per greenlet (RSS KiB, page-table KiB), or the error that stopped it.
fn suspend(n: usize) -> (usize, f64, f64, Option<std::io::Error>) {
    let (rss0, pte0) = memory();
    let mut live = Vec::with_capacity(n);
    let mut stopped = None;
    for i in 0..n {
        let g = match Greenlet::builder().build(|seed: usize| {
            // A little stack touched, like a real idle greenlet.
            let frame = black_box([seed as u8; 256]);
            let _: () = Greenlet::main().switch(()).unwrap();
            frame[0]
        }) {
            Ok(g) => g,
            Err(e) => {
                stopped = Some(e);
                break;
            }
        };
        g.switch::<usize, ()>(i).unwrap();
        live.push(g);
    }
    let (rss1, pte1) = memory();
    let count = live.len();
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / count.max(1) as f64;
    let result = (count, per(rss0, rss1), per(pte0, pte1), stopped);
    drop(live); // kills them all
    result
}

fn main() {
    let sizes: Vec<usize> = match std::env::args().nth(1) {
        Some(n) => vec![n.parse().expect("a number of greenlets")],
        None => vec![10_000, 100_000, 1_000_000],
    };
    let limit = max_map_count();
    println!(
        "vm.max_map_count = {} (before Linux 6.13, two mappings per guarded stack: \
         about {} greenlets; with lightweight guard pages, one per batch of stacks)",
        limit.map_or("unknown".into(), |l| l.to_string()),
        limit.map_or("?".into(), |l| (l / 2).to_string())
    );
    println!("| greenlets | RSS per greenlet | page tables per greenlet |");
    println!("|---:|---:|---:|");
    for n in sizes {
        let (count, rss, pte, stopped) = suspend(n);
        println!("| {count} | {rss:.2} KiB | {pte:.2} KiB |");
        if let Some(e) = stopped {
            println!(
                "stopped at {count} of {n}: the OS refused a stack ({e}). \
                 Raise the limit with `sudo sysctl -w vm.max_map_count={}` \
                 (two mappings per greenlet, plus headroom).",
                2 * n + 65_530
            );
            break;
        }
    }
}
