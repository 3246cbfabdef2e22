//! The hub: one greenlet per thread that owns a ready queue and timers and
//! gives cooperative `spawn`, `sleep` and blocking queues on top of plain
//! switches. (Work in progress.)
