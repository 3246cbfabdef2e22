//! Unbounded recursion, for the stack overflow tests.

use std::hint::black_box;

/// Recurses until the stack runs out (the base case is never reached).
pub fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let frame = black_box([depth as u8; 256]);
    recurse(depth + 1) + u64::from(frame[0])
}
