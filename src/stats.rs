//! Introspection: what greenlets a thread has, in which state, and what the
//! suspended ones wait on.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;
use std::time::Instant;

use crate::runtime::{Key, Runtime, State};

/// Where a greenlet is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GreenletState {
    /// Created, never switched to.
    Unstarted,
    /// The greenlet running now.
    Running,
    /// Started, switched away.
    Suspended,
    /// Returned, panicked, or killed (still referenced by a handle).
    Dead,
}

/// What a suspended greenlet is blocked on, as recorded by the
/// [`hub`](crate::hub)'s blocking calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitOn {
    /// In the hub's ready queue: it will run without waiting for anything.
    Ready,
    /// `hub::sleep` until the given instant.
    Sleep {
        /// When it wakes; `None` for a sleep too long to have a deadline
        /// (`Duration::MAX`), which ends only by a kill, a throw or a
        /// `with_timeout`.
        until: Option<Instant>,
    },
    /// `Queue::get` on the queue with this id.
    QueueGet {
        /// The queue (see `Queue::id`).
        queue: u64,
        /// The timeout's deadline, if any.
        until: Option<Instant>,
    },
    /// `Queue::put` on the (full) queue with this id.
    QueuePut {
        /// The queue (see `Queue::id`).
        queue: u64,
        /// The timeout's deadline, if any.
        until: Option<Instant>,
    },
    /// `Event::wait`.
    Event {
        /// The timeout's deadline, if any.
        until: Option<Instant>,
    },
    /// `JoinHandle::join` on the greenlet with this id.
    Join {
        /// The joined greenlet's id.
        greenlet: u64,
    },
    /// A socket read, receive or accept (`greenlet::net`), or a wait for a
    /// descriptor to be readable (`hub::wait_readable`, `net::AsyncFd`).
    Readable {
        /// The socket's file descriptor.
        fd: i32,
        /// The timeout's deadline, if any.
        until: Option<Instant>,
    },
    /// A socket write, send or connect (`greenlet::net`), or a wait for a
    /// descriptor to be writable (`hub::wait_writable`, `net::AsyncFd`).
    Writable {
        /// The socket's file descriptor.
        fd: i32,
        /// The timeout's deadline, if any.
        until: Option<Instant>,
    },
    /// `Receiver::recv` on the channel with this id.
    Channel {
        /// The channel (see `hub::channel`).
        channel: u64,
        /// The timeout's deadline, if any.
        until: Option<Instant>,
    },
    /// `hub::block_on`: a future that has not woken its waker yet.
    Future,
    /// `Semaphore::acquire` or `Mutex::lock` (and their variants), waiting
    /// for a permit.
    Acquire {
        /// The timeout's deadline, if any.
        until: Option<Instant>,
    },
    /// `RwLock::read` or `RwLock::write` (or their variants), queued for
    /// the lock.
    RwLock {
        /// Whether it waits to write (else to read).
        write: bool,
        /// The timeout's deadline, if any.
        until: Option<Instant>,
    },
    /// `Condvar::wait` (or its variants), waiting for a notification.
    Condvar {
        /// The timeout's deadline, if any.
        until: Option<Instant>,
    },
    /// `hub::wait` (or `wait_any`, `iwait`) on several things at once.
    Any {
        /// The timeout's deadline, if any.
        until: Option<Instant>,
    },
    /// `hub::idle`, waiting for the hub to have nothing else to do.
    Idle,
    /// The hub itself, parked until the next timer or I/O (or with nothing
    /// to do).
    Hub,
}

impl fmt::Display for WaitOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = crate::hub::time::now();
        let left = |until: &Instant| until.saturating_duration_since(now);
        match self {
            WaitOn::Ready => f.write_str("ready to run"),
            WaitOn::Sleep { until: Some(until) } => {
                write!(f, "sleeping, {:?} left", left(until))
            }
            WaitOn::Sleep { until: None } => f.write_str("sleeping forever"),
            WaitOn::QueueGet { queue, until } => {
                write!(f, "get on queue #{queue}")?;
                timeout(f, until.as_ref().map(left))
            }
            WaitOn::QueuePut { queue, until } => {
                write!(f, "put on full queue #{queue}")?;
                timeout(f, until.as_ref().map(left))
            }
            WaitOn::Event { until } => {
                f.write_str("waiting for an event")?;
                timeout(f, until.as_ref().map(left))
            }
            WaitOn::Join { greenlet } => write!(f, "joining greenlet {greenlet}"),
            WaitOn::Readable { fd, until } => {
                write!(f, "waiting to read fd {fd}")?;
                timeout(f, until.as_ref().map(left))
            }
            WaitOn::Writable { fd, until } => {
                write!(f, "waiting to write fd {fd}")?;
                timeout(f, until.as_ref().map(left))
            }
            WaitOn::Channel { channel, until } => {
                write!(f, "recv on channel #{channel}")?;
                timeout(f, until.as_ref().map(left))
            }
            WaitOn::Future => f.write_str("awaiting a future"),
            WaitOn::Acquire { until } => {
                f.write_str("waiting for a permit or a lock")?;
                timeout(f, until.as_ref().map(left))
            }
            WaitOn::RwLock { write, until } => {
                let what = if *write { "write" } else { "read" };
                write!(f, "waiting to {what} an RwLock")?;
                timeout(f, until.as_ref().map(left))
            }
            WaitOn::Condvar { until } => {
                f.write_str("waiting for a notification")?;
                timeout(f, until.as_ref().map(left))
            }
            WaitOn::Any { until } => {
                f.write_str("waiting for any of several things")?;
                timeout(f, until.as_ref().map(left))
            }
            WaitOn::Idle => f.write_str("waiting for the hub to be idle"),
            WaitOn::Hub => f.write_str("hub loop"),
        }
    }
}

fn timeout(f: &mut fmt::Formatter<'_>, left: Option<std::time::Duration>) -> fmt::Result {
    match left {
        Some(left) => write!(f, " (times out in {left:?})"),
        None => Ok(()),
    }
}

/// One greenlet, as [`stats`] saw it.
#[derive(Clone, Debug)]
pub struct GreenletInfo {
    /// Its [`id`](crate::Greenlet::id).
    pub id: u64,
    /// Its name, if it has one.
    pub name: Option<Rc<str>>,
    /// Its state.
    pub state: GreenletState,
    /// Its parent's id (`None` for main).
    pub parent: Option<u64>,
    /// What it waits on, if it is blocked in a hub call.
    pub waiting_on: Option<WaitOn>,
}

/// A snapshot of the current thread's greenlets; `Display` prints one line
/// per greenlet ("what is everybody waiting on").
///
/// The counts include main and, once the thread has used the hub, the hub
/// greenlet (named `"hub"`, the parent of every spawned greenlet, unstarted
/// until its loop first runs): a leak check that compares counts before
/// and after some work should take its snapshots once the hub exists, or
/// look for the greenlets it made by id.
///
/// A finished spawned greenlet is gone from the snapshot once its handles
/// are, with three exceptions, each listed as `Dead` for a while:
/// - one that is still the parent of a live greenlet (a plain `Greenlet`
///   it made, which its end or panic would go to), until that one is gone;
/// - a *detached* one (no handle left) that was handed control by a
///   greenlet still blocked since, until that greenlet runs again (the
///   hand-off holds the only reference to it while it runs, which cannot
///   be let go before it runs);
/// - one killed while it was ready to run (not started yet, or woken and
///   not yet resumed), until the hub reaches its place in the ready queue,
///   which holds a reference to it.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Greenlets never switched to.
    pub unstarted: usize,
    /// Started and not dead, the running one included.
    pub active: usize,
    /// Dead but still referenced: by a handle, as the parent of a live
    /// greenlet, or by the hub for a while (see [`Stats`]).
    pub dead: usize,
    /// Stacks waiting in the thread's pool.
    pub stacks_pooled: usize,
    /// Stacks held by greenlets.
    pub stacks_in_use: usize,
    /// Every greenlet of the thread, main first, in creation order of their
    /// slots.
    pub greenlets: Vec<GreenletInfo>,
}

/// Takes a [`Stats`] snapshot of the current thread.
///
/// A diagnostic, not a fast path: it allocates, and its cost follows the
/// greenlets alive now plus the most there ever were at once on the
/// thread (their records are kept for reuse and looked through), about
/// 10 ns a record: a millisecond after a burst of 100,000 greenlets.
///
/// ```
/// use greenlet::{stats, Greenlet, GreenletState};
///
/// let g = Greenlet::builder().name("worker").build(|()| ()).unwrap();
/// let s = stats();
/// assert!(s.unstarted >= 1);
/// let info = s.greenlets.iter().find(|i| i.id == g.id()).unwrap();
/// assert_eq!(info.state, GreenletState::Unstarted);
/// assert_eq!(info.name.as_deref(), Some("worker"));
/// println!("{s}");
/// ```
pub fn stats() -> Stats {
    let rt = Runtime::get();
    // A greenlet that just finished may still hold its stack (and so its
    // record): settle that first, so the snapshot shows it as gone.
    rt.recycle_finished();
    crate::hub::settle_handed_in();
    let greenlets = snapshot(rt, &crate::hub::ready_keys(), &crate::hub::blocked());
    let count = |s: GreenletState| greenlets.iter().filter(|g| g.state == s).count();
    let (stacks_pooled, stacks_in_use) = rt.stack_counts();
    Stats {
        unstarted: count(GreenletState::Unstarted),
        active: count(GreenletState::Running) + count(GreenletState::Suspended),
        dead: count(GreenletState::Dead),
        stacks_pooled,
        stacks_in_use,
        greenlets,
    }
}

/// One `GreenletInfo` per record; the suspended greenlets in `ready` (the
/// hub's ready queue) show as `WaitOn::Ready`, those in `blocked` (the
/// hub's blocked calls) as what they wait on.
fn snapshot(rt: &Runtime, ready: &[Key], blocked: &[(Key, WaitOn)]) -> Vec<GreenletInfo> {
    let cur = rt.current();
    let views = rt.records().views();
    // Looked up once per greenlet: maps, not scans, or a snapshot of
    // 30,000 greenlets took a quarter of a second.
    let ids: HashMap<Key, u64> = views.iter().map(|v| (v.key, v.id)).collect();
    let ready: HashSet<Key> = ready.iter().copied().collect();
    let mut waits: HashMap<Key, WaitOn> = HashMap::with_capacity(blocked.len());
    for &(key, on) in blocked {
        waits.entry(key).or_insert(on);
    }
    let id_of = |key: Key| ids.get(&key).copied();
    views
        .iter()
        .map(|v| GreenletInfo {
            id: v.id,
            name: v.name.clone(),
            state: match v.state {
                State::Unstarted => GreenletState::Unstarted,
                State::Active if v.key == cur => GreenletState::Running,
                State::Active => GreenletState::Suspended,
                State::Dead => GreenletState::Dead,
            },
            parent: v.parent.and_then(id_of),
            waiting_on: match v.state {
                State::Active if v.key != cur && ready.contains(&v.key) => Some(WaitOn::Ready),
                State::Active if v.key != cur => waits.get(&v.key).copied(),
                _ => None,
            },
        })
        .collect()
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} greenlets: {} unstarted, {} active, {} dead; stacks: {} in use, {} pooled",
            self.greenlets.len(),
            self.unstarted,
            self.active,
            self.dead,
            self.stacks_in_use,
            self.stacks_pooled
        )?;
        for g in &self.greenlets {
            write!(f, "  #{}", g.id)?;
            if let Some(name) = &g.name {
                write!(f, " '{name}'")?;
            }
            write!(f, " {:?}", g.state)?;
            if let Some(parent) = g.parent {
                write!(f, ", parent #{parent}")?;
            }
            if let Some(w) = &g.waiting_on {
                write!(f, ": {w}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
