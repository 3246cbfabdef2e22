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
    if mode == "hub" {
        // Default-size stacks, the hub's size, until one is refused; then
        // the thread's first hub spawn needs one for the hub itself.
        while let Ok(g) = Greenlet::builder().build(|()| ()) {
            keep.push(g);
        }
        let spawned = std::panic::catch_unwind(|| {
            greenlet::hub::Builder::new()
                .stack_size(16 << 10)
                .spawn(|| 1u8)
                .map(|h| h.join().ok())
        });
        match spawned {
            Ok(Err(e)) => println!("hub spawn: error kind={:?}", e.kind()),
            Ok(Ok(_)) => println!("hub spawn: spawned"),
            Err(_) => println!("hub spawn: panicked"),
        }
        return;
    }
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

/// Runs the child in `mode` and asserts it succeeded and printed every
/// one of `lines`.
fn assert_child_prints(mode: &str, lines: &[&str]) {
    let out = run_child(mode);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    for line in lines {
        assert!(stdout.contains(line), "{line:?} not in stdout: {stdout}");
    }
}

#[test]
fn build_returns_the_os_error_when_no_stack_can_be_had() {
    assert_child_prints(
        "build",
        &["build error: kind=OutOfMemory os=Some(12)", "after: 2"],
    );
}

/// `hub::Builder::spawn` reports a refused stack as an error also when
/// it is the thread's first hub use, and the refused stack is the hub's.
#[test]
fn the_first_hub_spawn_returns_the_error_when_the_hubs_stack_is_refused() {
    assert_child_prints("hub", &["hub spawn: error kind=OutOfMemory"]);
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

const MAP_LIMIT_CHILD: &str = "GREENLET_MAP_LIMIT_CHILD";

/// The process's virtual and resident sizes, in pages (`/proc/self/statm`).
fn statm() -> (usize, usize) {
    let text = std::fs::read_to_string("/proc/self/statm").unwrap();
    let mut fields = text.split_whitespace().map(|f| f.parse::<usize>().unwrap());
    (fields.next().unwrap(), fields.next().unwrap())
}

/// In the child: pools 200 stacks whose memory was used, fills the
/// kernel's table of mappings, then asks for the pool to be unmapped.
#[test]
fn map_limit_child() {
    if std::env::var(MAP_LIMIT_CHILD).is_err() {
        return;
    }
    #[inline(never)]
    fn touch(kib: usize) {
        std::hint::black_box([1u8; 1024]);
        if kib > 1 {
            touch(kib - 1);
        }
    }
    let page = 4096;
    let gs: Vec<Greenlet> = (0..200).map(|_| Greenlet::new(|()| touch(64))).collect();
    for g in &gs {
        g.switch::<(), ()>(()).unwrap();
    }
    drop(gs);
    let pooled = greenlet::stats().stacks_pooled;
    // Single pages of alternating protection, until the kernel refuses one
    // more mapping (a program with many small mappings: files, arenas).
    let mut fill = Vec::new();
    loop {
        let prot = if fill.len() % 2 == 0 {
            libc::PROT_READ
        } else {
            libc::PROT_NONE
        };
        // SAFETY: a fresh anonymous mapping, unmapped below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            break;
        }
        fill.push(p);
    }
    let (virt0, rss0) = statm();
    // Every pooled stack is to go: most slots sit in the middle of their
    // batch, and unmapping one splits the batch, which the kernel refuses.
    greenlet::set_stack_policy(greenlet::StackPolicy::new().max_pooled(0));
    let (virt1, rss1) = statm();
    for p in fill {
        // SAFETY: mapped above, unused.
        unsafe { libc::munmap(p, page) };
    }
    let (virt_filled, _) = statm();
    greenlet::trim_stacks(); // tries the refused ones again
    let (virt2, _) = statm();
    println!(
        "pooled={pooled} rss_freed_kib={} virt_freed_at_once_kib={} virt_freed_by_trim_kib={}",
        (rss0 - rss1) * page / 1024,
        (virt0 - virt1) * page / 1024,
        (virt_filled - virt2) * page / 1024,
    );
}

/// At the mapping limit, stacks the kernel refuses to unmap are not lost:
/// their memory goes back at once, and `trim_stacks` unmaps them once the
/// kernel lets it. (The refusal went unchecked: the stacks stayed mapped
/// for good, with their memory, and nothing knew of them.)
#[test]
fn stacks_refused_unmapping_at_the_mapping_limit_give_their_memory_back_and_are_unmapped_later() {
    let out = child::run("map_limit_child", MAP_LIMIT_CHILD, "1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.find("pooled=").map(|at| &l[at..]))
        .unwrap_or_else(|| {
            panic!(
                "{:?}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let figure = |name: &str| -> usize {
        let field = line.split(' ').find(|f| f.starts_with(name)).unwrap();
        field[name.len() + 1..].parse().unwrap()
    };
    let pooled = figure("pooled");
    assert!(pooled >= 199, "{line}");
    // 200 of them held about 64 KiB of used memory each; each maps about
    // 1 MiB.
    assert!(figure("rss_freed_kib") >= 200 * 50, "memory kept: {line}");
    let unmapped = figure("virt_freed_at_once_kib") + figure("virt_freed_by_trim_kib");
    assert!(unmapped >= pooled * 1000, "address space kept: {line}");
}
