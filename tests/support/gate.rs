//! A latch that pool threads (or any threads) wait on until a test opens
//! it: the order in which blocked jobs finish is then forced, not timed.

use std::sync::{Arc, Condvar, Mutex};

/// Closed until [`open`](Gate::open)ed; `Clone` shares it.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    /// Blocks the calling thread until the gate is open.
    pub fn wait(&self) {
        let (open, cond) = &*self.0;
        let mut open = open.lock().unwrap();
        while !*open {
            open = cond.wait(open).unwrap();
        }
    }

    /// Opens the gate for every waiter, now and later.
    pub fn open(&self) {
        let (open, cond) = &*self.0;
        *open.lock().unwrap() = true;
        cond.notify_all();
    }
}
