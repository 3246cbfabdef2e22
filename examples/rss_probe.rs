use greenlet::hub::{self, Event};
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}
fn main() {
    let n = 10_000;
    hub::yield_now();
    let before = rss();
    let e = Event::new();
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let e = e.clone();
            hub::spawn(move || {
                e.wait();
            })
        })
        .collect();
    hub::yield_now();
    e.set();
    for h in hs {
        h.join().unwrap();
    }
    let after = rss();
    greenlet::trim_stacks();
    let trimmed = rss();
    extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    unsafe {
        malloc_trim(0);
    }
    let mtrim = rss();
    println!(
        "before {before} after {after} trimmed {trimmed} (+{}) malloc_trim {mtrim} (+{})",
        trimmed - before,
        mtrim - before
    );
}
