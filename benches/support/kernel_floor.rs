//! The kernel's share of a first burst: what fresh guarded stacks cost on
//! this machine with no greenlet at all, measured beside the bursts and
//! chains so their first-run rows can be read against it.
//!
//! A greenlet that runs on a stack nobody has used yet needs, from the
//! kernel, at least what this measures: a share of one `mmap` (batches of
//! 256 stacks, as the pool maps them at most), a guard page at the bottom
//! of each stack (lightweight guard regions installed for the whole batch
//! in one `process_madvise` where the kernel has them, one `mprotect` each
//! otherwise: the pool's own choices), and one page fault for the top page
//! of each stack, where the greenlet's coroutine and first frames live.
//! Nothing else: no greenlet, no record, no switch. On a virtual machine
//! the fault alone can cost microseconds (the host backs the page too).
//!
//! Runs in a child process of its own (this bench binary re-run with
//! [`CHILD`] set), so its pages are as new to the process as a first
//! burst's are.

use std::time::Instant;

/// The environment variable that makes a bench binary a child measuring the
/// floor: `"<stacks> <stack bytes>"`.
pub const CHILD: &str = "GREENLET_KERNEL_FLOOR_CHILD";

/// Stacks per mapping: the pool's largest batch.
const BATCH: usize = 256;

/// `MADV_GUARD_INSTALL` (Linux 6.13).
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// `PIDFD_SELF` (Linux 6.14).
const PIDFD_SELF: libc::c_int = -10000;

/// In a child started by [`ns_per_stack`]: measures, prints and exits.
/// Does nothing in any other process.
pub fn run_if_child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let mut words = spec.split_whitespace().map(|w| w.parse().unwrap());
    let (stacks, size) = (words.next().unwrap(), words.next().unwrap());
    println!("floor {:.1}", measure(stacks, size));
    std::process::exit(0);
}

/// Nanoseconds per stack to map `stacks` stacks of `size` usable bytes,
/// guard them and fault in the top page of each, in a fresh process.
pub fn ns_per_stack(stacks: usize, size: usize) -> f64 {
    crate::child::figures(CHILD, format!("{stacks} {size}"), "floor ")[0]
}

fn measure(stacks: usize, size: usize) -> f64 {
    let page = page_size();
    // Usable bytes, a page for the coroutine and colour, the guard page.
    let len = (size + 2 * page).next_multiple_of(page);
    let mut mappings = Vec::new();
    let start = Instant::now();
    let mut left = stacks;
    while left > 0 {
        let count = left.min(BATCH);
        left -= count;
        let total = len * count;
        // SAFETY: a fresh private anonymous mapping at an address the kernel
        // picks; only this function uses it.
        let low = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(low, libc::MAP_FAILED, "mmap failed");
        let low = low as usize;
        guard(low, len, count, page);
        for i in 0..count {
            let top = (low + (i + 1) * len - 1) as *mut u8;
            // SAFETY: the last byte of stack `i`'s usable memory, in the
            // mapping made above, readable and writable.
            unsafe { top.write_volatile(1) };
        }
        mappings.push((low, total));
    }
    let ns = start.elapsed().as_nanos() as f64 / stacks as f64;
    for (low, total) in mappings {
        // SAFETY: a mapping made above, no longer used.
        unsafe { libc::munmap(low as *mut libc::c_void, total) };
    }
    ns
}

/// Makes the bottom page of each of the `count` stacks of `len` bytes from
/// `low` inaccessible, as the pool does.
fn guard(low: usize, len: usize, count: usize, page: usize) {
    let iov: Vec<libc::iovec> = (0..count)
        .map(|i| libc::iovec {
            iov_base: (low + i * len) as *mut libc::c_void,
            iov_len: page,
        })
        .collect();
    // SAFETY: `iov` holds `count` ranges of the mapping the caller made.
    let done = unsafe {
        libc::syscall(
            libc::SYS_process_madvise,
            PIDFD_SELF,
            iov.as_ptr(),
            iov.len(),
            MADV_GUARD_INSTALL,
            0,
        )
    };
    if done == (count * page) as libc::c_long {
        return;
    }
    for v in iov {
        // SAFETY: as above, one page of it.
        let r = unsafe { libc::mprotect(v.iov_base, page, libc::PROT_NONE) };
        assert_eq!(r, 0, "mprotect failed");
    }
}

fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}
