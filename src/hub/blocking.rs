//! Blocking work off the hub's thread: [`spawn_blocking`] runs a closure
//! on a [`ThreadPool`] and blocks only the greenlet that waits for it
//! (gevent's `ThreadPool`, tokio's `spawn_blocking`).
//!
//! The result comes back through a [`channel`](super::channel), so the hub
//! is woken by the pool thread through its `mio::Waker`; a greenlet spawned
//! on the hub waits on that channel and gives the caller an ordinary
//! [`JoinHandle`].

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread::ThreadId;
use std::time::Duration;

use super::JoinHandle;

/// Work for a pool thread. Every job catches its own panic.
type Job = Box<dyn FnOnce() + Send>;

/// A job in a pool's queue, with the thread that queued it: in a forked
/// child, only that thread's can be dropped safely (see
/// [`forget_the_parents`]).
struct Queued {
    job: Job,
    by: ThreadId,
}

/// A pool of OS threads for blocking work; `Clone` shares it, and it may
/// be used from any thread. Threads are started on demand, up to
/// [`max_threads`](ThreadPool::max_threads); a thread that found no work
/// for [`idle_timeout`](ThreadPool::idle_timeout) exits. Work beyond
/// `max_threads` waits in a FIFO until a thread is free. So a job that
/// waits for another job of its own pool (a `join` of its
/// [`spawn`](ThreadPool::spawn)) waits for ever when every thread is
/// taken by such jobs, as in any pool of fixed size: nothing tells it
/// (gevent's pool runs such a call inline). Give nested work a pool of
/// its own, or do it in the job itself.
///
/// [`spawn_blocking`] uses a process-wide pool (see
/// [`ThreadPool::global`]); make one of your own to bound a kind of work
/// separately (file I/O on 4 threads, say).
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub::ThreadPool;
///
/// let files = ThreadPool::new(4, Duration::from_secs(5));
/// let len = files.spawn(|| std::fs::read("Cargo.toml").map(|b| b.len()));
/// assert!(len.join().unwrap().unwrap() > 0);
/// ```
#[derive(Clone)]
pub struct ThreadPool {
    shared: Arc<Shared>,
    /// Shared by the pool's handles (not its threads): when the last
    /// handle goes, the idle threads leave at once instead of at their
    /// idle timeout (see [`Handles`]).
    _handles: Arc<Handles>,
}

/// The handles of a pool: dropped with the last one, it tells the pool's
/// threads to leave once the queued work is done.
struct Handles(Arc<Shared>);

impl Drop for Handles {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.work.notify_all();
    }
}

struct Shared {
    state: Mutex<State>,
    /// Signalled once per job handed to an idle thread.
    work: Condvar,
    max_threads: usize,
    idle_timeout: Duration,
}

pub(super) struct State {
    jobs: VecDeque<Queued>,
    /// Threads alive (working or idle).
    threads: usize,
    /// Threads waiting for work.
    idle: usize,
    /// Jobs announced to idle threads and not yet taken up: an idle thread
    /// leaves its wait only by taking one of these (or timing out), so
    /// spurious wake-ups and timeouts never lose a job.
    notified: usize,
    /// The pool's last handle is gone: threads leave when out of work.
    closed: bool,
    /// The forks this process had made when the threads counted here
    /// were: in a forked child, none of them is there (see `fork.rs`).
    born: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut state = lock_state(&self.state);
        if state.born != super::fork::forks() {
            let parents = forget_the_parents(&mut state);
            drop(state);
            // Outside the lock: a job's captures may use the pool in
            // their destructors.
            let me = std::thread::current().id();
            for queued in parents {
                if queued.by == me {
                    drop(queued.job);
                } else {
                    // Its captures (the result's sender, at least) belong
                    // to a thread the child does not have, whose locks
                    // another thread of the parent may have held at the
                    // fork: dropped, they could wait on one for ever.
                    std::mem::forget(queued.job);
                }
            }
            state = lock_state(&self.state);
        }
        state
    }
}

fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Only counters and the queue change under the lock, and no job runs
    // while it is held: a poisoned lock still guards sound state.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// In a forked child (see `fork.rs`), on the pool's first use there: no
/// thread of the pool came along, so none is counted, working or idle;
/// and the jobs still queued are the parent's, which runs them: they are
/// taken out, so a greenlet of the child waiting for one gets an error
/// instead of a second run of it. The caller drops, outside the lock, the
/// ones the forking thread queued, and leaks the others: their captures
/// belong to threads the child does not have (their result channels'
/// locks among them, which those threads' own may have held at the fork),
/// and the child's receivers of them hear of the end from the reactor
/// (see `channel::pool_result_channel`).
fn forget_the_parents(state: &mut State) -> VecDeque<Queued> {
    state.threads = 0;
    state.idle = 0;
    state.notified = 0;
    state.born = super::fork::forks();
    std::mem::take(&mut state.jobs)
}

/// Every pool of the process, for a fork to lock (see [`hold_for_fork`]).
/// A pool is listed when made and pruned once gone.
static POOLS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

fn lock_pools() -> MutexGuard<'static, Vec<Weak<Shared>>> {
    // Only pushes and prunes happen under the lock.
    POOLS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every pool's lock, and the list's, held until the result drops: for
/// the thread that forks (see `fork.rs`), so that no pool's own thread, nor
/// a thread queueing work, leaves one locked in the child for ever.
pub(super) fn hold_for_fork() -> Box<dyn std::any::Any> {
    let pools = lock_pools();
    let held: Vec<super::fork::HeldLock<Shared, State>> = pools
        .iter()
        .filter_map(Weak::upgrade)
        .map(|shared| super::fork::HeldLock::new(shared, |shared| lock_state(&shared.state)))
        .collect();
    // A tuple drops its fields in order: the pools' locks go first.
    Box::new((held, pools))
}

/// Why a job's result never came: this process was forked while the job
/// was queued (the child dropped its copy) or running (on a thread the
/// child does not have); it runs in the parent only. (A pool gone with its
/// threads would drop queued jobs too, but cannot go while work is queued.)
const DROPPED: &str = "the job was queued or running when this process forked: \
     it runs in the parent only";

/// The pool [`spawn_blocking`] uses.
static GLOBAL: OnceLock<ThreadPool> = OnceLock::new();

impl ThreadPool {
    /// The pool [`spawn_blocking`] uses: up to 128 threads, each exiting
    /// after 10 s without work. Created on first use; its threads are
    /// started only when work comes.
    pub fn global() -> &'static ThreadPool {
        GLOBAL.get_or_init(|| ThreadPool::new(128, Duration::from_secs(10)))
    }

    /// A pool of at most `max_threads` threads, each exiting after
    /// `idle_timeout` without work, or as soon as it is out of work once
    /// every handle of the pool was dropped. No thread is started yet.
    ///
    /// # Panics
    ///
    /// When `max_threads` is zero (work would wait forever).
    pub fn new(max_threads: usize, idle_timeout: Duration) -> ThreadPool {
        assert!(
            max_threads > 0,
            "greenlet::hub::ThreadPool::new: max_threads must be at least 1"
        );
        super::fork::watch();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                threads: 0,
                idle: 0,
                notified: 0,
                closed: false,
                born: super::fork::forks(),
            }),
            work: Condvar::new(),
            max_threads,
            idle_timeout,
        });
        let mut pools = lock_pools();
        pools.retain(|pool| pool.strong_count() > 0);
        pools.push(Arc::downgrade(&shared));
        drop(pools);
        ThreadPool {
            _handles: Arc::new(Handles(shared.clone())),
            shared,
        }
    }

    /// The most threads this pool runs at once.
    pub fn max_threads(&self) -> usize {
        self.shared.max_threads
    }

    /// How long a thread waits for work before it exits.
    pub fn idle_timeout(&self) -> Duration {
        self.shared.idle_timeout
    }

    /// The threads alive now (working or idle).
    pub fn threads(&self) -> usize {
        self.shared.lock().threads
    }

    /// Runs `f` on one of the pool's threads and returns a handle whose
    /// [`join`](JoinHandle::join) blocks only the calling greenlet until
    /// `f` is done; the hub's other greenlets run meanwhile. Never blocks
    /// or switches itself.
    ///
    /// The handle is that of a greenlet spawned on this thread's hub that
    /// waits for the result, so everything a [`JoinHandle`] does applies:
    /// - a panic in `f` comes back as [`JoinError::Panicked`] with the
    ///   original payload (the pool thread survives it);
    /// - [`with_timeout`](super::with_timeout) around `join` stops waiting,
    ///   and [`kill`](JoinHandle::kill) stops the greenlet that waits
    ///   (`join` then says [`JoinError::Killed`]). Neither can stop `f`,
    ///   which runs to its end on the pool thread; its result is dropped
    ///   there;
    /// - while the result is awaited, [`run`](super::run) keeps going
    ///   (the wait is a channel receive).
    ///
    /// If no thread can be started (the system refused) and none is alive
    /// to take the work, `join` reports a panic saying so; the same in a
    /// child forked while the job was queued or running (it runs in the
    /// parent only: see the hub docs' "`fork` without `exec`").
    ///
    /// [`JoinError::Panicked`]: super::JoinError::Panicked
    /// [`JoinError::Killed`]: super::JoinError::Killed
    ///
    /// # Panics
    ///
    /// When this thread's hub cannot get a stack for the greenlet or its
    /// reactor cannot be created (see [`spawn`](super::spawn) and
    /// [`channel`](super::channel)).
    pub fn spawn<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = super::channel::pool_result_channel::<std::thread::Result<R>>();
        let queued = self.execute(sending_job(f, tx));
        // Counted until the result is in (or the greenlet waiting for it
        // is gone): the job runs that long, waited for or not.
        let off_hub = super::time::OffHubWork::begin();
        super::spawn(move || {
            let _off_hub = off_hub;
            if let Err(e) = queued {
                panic!("greenlet::hub::spawn_blocking: cannot start a pool thread: {e}");
            }
            // Killed while it waits: a result already in the channel is
            // dropped outside the kill's unwinding.
            let received = panic::catch_unwind(AssertUnwindSafe(|| rx.recv()));
            let received = match received {
                Ok(received) => received,
                Err(p) => crate::error::unwind_after_dropping(
                    rx,
                    "the result of a killed spawn_blocking",
                    p,
                ),
            };
            match received {
                Ok(Ok(value)) => value,
                // The original payload, for `JoinError::Panicked`.
                Ok(Err(payload)) => panic::resume_unwind(payload),
                // The job was dropped unrun (see `DROPPED`): said plainly
                // rather than hanging.
                Err(_) => panic!("greenlet::hub::spawn_blocking: {DROPPED}"),
            }
        })
    }

    /// Runs `f` on one of the pool's threads and blocks the calling
    /// greenlet (only it) until `f` is done, with no greenlet of its own:
    /// a kill or a `with_timeout` expiry unwinds the caller at once, and
    /// `f` runs to its end on the pool thread, its result dropped there.
    /// A panic in `f` resumes in the caller; `Err` when no thread could be
    /// started and none is alive to take the work, when the thread's
    /// reactor cannot be created (out of descriptors), or when the caller
    /// unwinds (it could not wait).
    pub(crate) fn run<F, R>(&self, f: F) -> io::Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        if crate::runtime::Runtime::get().current_unwinds() {
            // The wait for the result could not be made (a destructor
            // during an unwinding): an error, before the job is queued,
            // as a socket's wait gives.
            return Err(io::Error::other(
                "greenlet::hub::ThreadPool: cannot wait for a pool job while the greenlet unwinds",
            ));
        }
        // The result's channel needs the thread's reactor, whose creation
        // can fail (out of descriptors): an error here, where the channel
        // itself would panic.
        super::hub().reactor_or_init()?;
        let (tx, rx) = super::channel::pool_result_channel::<std::thread::Result<R>>();
        self.execute(sending_job(f, tx))?;
        // Counted while the caller waits: a paused clock waits for the
        // job instead of jumping past it to a timeout.
        let _off_hub = super::time::OffHubWork::begin();
        match rx.recv() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(payload)) => panic::resume_unwind(payload),
            // As in `spawn`: only when the pool is gone with its threads.
            Err(_) => Err(io::Error::other(format!(
                "greenlet::hub::ThreadPool: {DROPPED}"
            ))),
        }
    }

    /// Queues `job` and makes sure a thread will take it: an idle one is
    /// told, or a new one is started if the pool has room. Fails only if
    /// no thread could be started and none is alive (the job is dropped).
    fn execute(&self, job: Job) -> io::Result<()> {
        let shared = &self.shared;
        let mut state = shared.lock();
        state.jobs.push_back(Queued {
            job,
            by: std::thread::current().id(),
        });
        if state.idle > state.notified {
            state.notified += 1;
            drop(state);
            shared.work.notify_one();
            return Ok(());
        }
        if state.threads >= shared.max_threads {
            // Every thread is busy: the first to finish takes it.
            return Ok(());
        }
        state.threads += 1;
        drop(state);
        let worker = shared.clone();
        let started = std::thread::Builder::new()
            .name("greenlet-pool".into())
            .spawn(move || work(&worker));
        match started {
            Ok(_) => Ok(()),
            Err(e) => {
                let mut state = shared.lock();
                state.threads -= 1;
                if state.threads > 0 {
                    // A live thread takes the job when it is done.
                    return Ok(());
                }
                let jobs = std::mem::take(&mut state.jobs);
                drop(state);
                // Dropped outside the lock (a job's captures may use the
                // pool in their destructors).
                drop(jobs);
                Err(e)
            }
        }
    }
}

/// The job that runs `f` and sends its outcome (its value, or its panic's
/// payload) to the greenlet waiting on `tx`.
fn sending_job<F, R>(f: F, tx: super::Sender<std::thread::Result<R>>) -> Job
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Box::new(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        // Fails only when nobody waits any more (the waiting greenlet was
        // killed or its thread exited): the result drops here. Its
        // destructor is user code, and a panic in it must not end this
        // pool thread (the pool would count it alive forever).
        if let Err(unsent) = tx.send(result) {
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(unsent)));
        }
    })
}

/// A pool thread: takes jobs until none came for the idle timeout, or
/// none is left once the pool's last handle is gone.
fn work(shared: &Shared) {
    let mut state = shared.lock();
    // A job may fork, and the child return from it and go on here: then
    // this thread is the one pool thread of the child's that it counts,
    // once its first lock there forgot the parent's (see `fork.rs`).
    let mut born = super::fork::forks();
    loop {
        if let Some(Queued { job, .. }) = state.jobs.pop_front() {
            drop(state);
            super::monitor::job_starts();
            job();
            super::monitor::job_ends();
            state = shared.lock();
            if born != super::fork::forks() {
                born = super::fork::forks();
                state.threads += 1;
            }
            continue;
        }
        state.idle += 1;
        let timed_out = loop {
            if state.closed {
                break true;
            }
            let (s, wait) = shared
                .work
                .wait_timeout(state, shared.idle_timeout)
                .unwrap_or_else(PoisonError::into_inner);
            state = s;
            if state.notified > 0 {
                state.notified -= 1;
                break false;
            }
            if wait.timed_out() {
                break true;
            }
        };
        state.idle -= 1;
        if timed_out && state.jobs.is_empty() {
            state.threads -= 1;
            return;
        }
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("ThreadPool")
            .field("max_threads", &self.shared.max_threads)
            .field("idle_timeout", &self.shared.idle_timeout)
            .field("threads", &state.threads)
            .field("queued", &state.jobs.len())
            .finish()
    }
}

/// Runs `f` on the process-wide [`ThreadPool`] (see
/// [`ThreadPool::global`]) and returns a handle whose
/// [`join`](JoinHandle::join) blocks only the calling greenlet: the way to
/// call blocking code (a blocking library, `std::fs`, name lookup, long
/// CPU work) without stopping the hub's other greenlets. See
/// [`ThreadPool::spawn`] for panics, timeouts and kills.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub;
///
/// let ticks = hub::spawn(|| {
///     let mut n = 0;
///     for _ in 0..3 {
///         hub::sleep(Duration::from_millis(1));
///         n += 1;
///     }
///     n
/// });
/// // A blocking name lookup runs on a pool thread; `ticks` keeps running.
/// let addrs = hub::spawn_blocking(|| {
///     use std::net::ToSocketAddrs;
///     ("localhost", 80).to_socket_addrs().map(|a| a.count())
/// });
/// assert!(addrs.join().unwrap().is_ok());
/// assert_eq!(ticks.join().unwrap(), 3);
/// ```
///
/// # Panics
///
/// As [`ThreadPool::spawn`].
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    ThreadPool::global().spawn(f)
}
