//! Capping this (child) process's address space, so that stacks are refused.

/// Caps the address space at 512 MiB with `setrlimit(RLIMIT_AS)`.
pub fn cap() {
    let cap = libc::rlimit {
        rlim_cur: 512 << 20,
        rlim_max: 512 << 20,
    };
    // SAFETY: setrlimit with a valid pointer; this process is ours alone.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &cap) }, 0);
}
