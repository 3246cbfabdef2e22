//! `JoinableQueue<T>`: a [`Queue`] that counts unfinished items, so a
//! producer can wait until consumers have handled everything it put
//! (gevent's and Python's `JoinableQueue`).

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::time::Duration;

use super::deadline_after;
use super::event::Event;
use super::queue::{Closed, PutTimeoutError, Queue, TryPutError};

/// A [`Queue`] whose consumers call [`task_done`](JoinableQueue::task_done)
/// for each item they finished, and whose [`join`](JoinableQueue::join)
/// blocks until every item put has been finished. `Clone` shares it.
///
/// ```
/// use greenlet::hub::{self, JoinableQueue};
///
/// let q = JoinableQueue::new();
/// for _ in 0..2 {
///     let q = q.clone();
///     hub::spawn(move || {
///         while let Ok(job) = q.recv() {
///             let _ = job * 2; // work
///             q.task_done().unwrap();
///         }
///     });
/// }
/// for job in 0..10 {
///     q.put(job);
/// }
/// q.join(); // all ten were handled
/// assert_eq!(q.unfinished(), 0);
/// q.close(); // the workers' loops end
/// hub::run();
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
    tasks: Rc<Tasks>,
}

struct Tasks {
    unfinished: Cell<usize>,
    /// Set while nothing is unfinished.
    all_done: Event,
}

/// The error of calling [`JoinableQueue::task_done`] more times than items
/// were put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyTaskDone(());

impl fmt::Display for TooManyTaskDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done called more times than items were put")
    }
}

impl std::error::Error for TooManyTaskDone {}

impl<T: 'static> JoinableQueue<T> {
    /// An unbounded joinable queue.
    pub fn new() -> JoinableQueue<T> {
        JoinableQueue::from_queue(Queue::new())
    }

    /// A joinable queue of at most `capacity` items.
    ///
    /// # Panics
    ///
    /// When `capacity` is 0.
    pub fn bounded(capacity: usize) -> JoinableQueue<T> {
        JoinableQueue::from_queue(Queue::bounded(capacity))
    }

    fn from_queue(queue: Queue<T>) -> JoinableQueue<T> {
        let all_done = Event::new();
        all_done.set();
        JoinableQueue {
            queue,
            tasks: Rc::new(Tasks {
                unfinished: Cell::new(0),
                all_done,
            }),
        }
    }

    fn added(&self) {
        let n = self.tasks.unfinished.get();
        self.tasks.unfinished.set(n + 1);
        if n == 0 {
            self.tasks.all_done.clear();
        }
    }

    /// See [`Queue::put`]; the item counts as unfinished.
    ///
    /// # Panics
    ///
    /// As [`Queue::put`].
    #[inline(always)]
    pub fn put(&self, item: T) {
        if self.send(item).is_err() {
            panic!("greenlet::hub::JoinableQueue::put on a closed queue");
        }
    }

    /// See [`Queue::send`].
    ///
    /// # Errors
    ///
    /// As [`Queue::send`].
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn send(&self, item: T) -> Result<(), Closed<T>> {
        // Counted once it went in, as Python counts in `_put`: a put still
        // blocked on a full queue holds its item in its own frame, so it
        // is not unfinished yet (`task_done` cannot finish it, `join` does
        // not wait for it, and a put that never goes in has nothing to
        // take back). No other greenlet runs between the item going in and
        // this count: a put stores its item in its own frame, after any
        // wait, and returns without switching (see `Queue::put_until`).
        let sent = self.queue.send(item);
        if sent.is_ok() {
            self.added();
        }
        sent
    }

    /// See [`Queue::try_put`].
    ///
    /// # Errors
    ///
    /// Gives `item` back when there is no room or the queue is closed.
    pub fn try_put(&self, item: T) -> Result<(), TryPutError<T>> {
        self.queue.try_put(item).inspect(|()| self.added())
    }

    /// See [`Queue::put_timeout`]; an item put counts as unfinished, one
    /// given back does not.
    ///
    /// # Errors
    ///
    /// As [`Queue::put_timeout`].
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutTimeoutError<T>> {
        // Counted once it went in, as in `send`.
        self.queue
            .put_timeout(item, timeout)
            .inspect(|()| self.added())
    }

    /// See [`Queue::get`].
    ///
    /// # Panics
    ///
    /// As [`Queue::get`].
    #[inline(always)]
    pub fn get(&self) -> T {
        self.queue.get()
    }

    /// See [`Queue::recv`].
    ///
    /// # Errors
    ///
    /// As [`Queue::recv`].
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn recv(&self) -> Result<T, Closed> {
        self.queue.recv()
    }

    /// See [`Queue::try_get`].
    pub fn try_get(&self) -> Option<T> {
        self.queue.try_get()
    }

    /// See [`Queue::try_recv`].
    ///
    /// # Errors
    ///
    /// As [`Queue::try_recv`].
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.queue.try_recv()
    }

    /// See [`Queue::recv_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Queue::recv_timeout`].
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.queue.recv_timeout(timeout)
    }

    /// See [`Queue::get_timeout`].
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn get_timeout(&self, timeout: Duration) -> Option<T> {
        self.queue.get_timeout(timeout)
    }

    /// See [`Queue::close`].
    pub fn close(&self) {
        self.queue.close();
    }

    /// See [`Queue::len`].
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// See [`Queue::is_empty`].
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// See [`Queue::is_full`].
    pub fn is_full(&self) -> bool {
        self.queue.is_full()
    }

    /// See [`Queue::is_closed`].
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// See [`Queue::capacity`].
    pub fn capacity(&self) -> Option<usize> {
        self.queue.capacity()
    }

    /// Marks one item taken from the queue as finished.
    ///
    /// # Errors
    ///
    /// [`TooManyTaskDone`] when every item put is already finished.
    pub fn task_done(&self) -> Result<(), TooManyTaskDone> {
        let n = self.tasks.unfinished.get();
        if n == 0 {
            return Err(TooManyTaskDone(()));
        }
        self.tasks.unfinished.set(n - 1);
        if n == 1 {
            self.tasks.all_done.set();
        }
        Ok(())
    }

    /// Items put and not yet marked finished: an item counts from when it
    /// goes into the queue (a put blocked on a full queue does not count
    /// until its item is in), as in Python.
    pub fn unfinished(&self) -> usize {
        self.tasks.unfinished.get()
    }

    /// Blocks until every item put has been marked finished: when it
    /// returns, nothing is unfinished (items put while it waited included).
    ///
    /// # Panics
    ///
    /// As any blocking call (see the [module docs](super)).
    #[inline(always)]
    pub fn join(&self) {
        let done = || self.unfinished() == 0;
        self.tasks
            .all_done
            .wait_for(done, None, "JoinableQueue::join");
    }

    /// Like [`join`](JoinableQueue::join), but gives up after `timeout`;
    /// returns whether everything was finished.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        let done = || self.unfinished() == 0;
        self.tasks
            .all_done
            .wait_for(done, deadline, "JoinableQueue::join_timeout")
    }
}

super::wait_any::waitable_via!(
    /// As its [`Queue`]'s: ready while a get would return at once. (For
    /// "every task done", wait on the queue's [`join`](JoinableQueue::join)
    /// in a greenlet of its own, or poll
    /// [`unfinished`](JoinableQueue::unfinished).)
    impl<T> JoinableQueue<T> => queue
);

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> JoinableQueue<T> {
        JoinableQueue {
            queue: self.queue.clone(),
            tasks: self.tasks.clone(),
        }
    }
}

impl<T: Clone + 'static> JoinableQueue<T> {
    /// See [`Queue::peek`]: the item stays in the queue (and unfinished).
    ///
    /// # Panics
    ///
    /// As [`Queue::peek`].
    pub fn peek(&self) -> Option<T> {
        self.queue.peek()
    }

    /// See [`Queue::peek_timeout`].
    ///
    /// # Panics
    ///
    /// As [`Queue::peek`].
    pub fn peek_timeout(&self, timeout: Duration) -> Option<T> {
        self.queue.peek_timeout(timeout)
    }

    /// See [`Queue::try_peek`].
    pub fn try_peek(&self) -> Option<T> {
        self.queue.try_peek()
    }
}

impl<T: 'static> Default for JoinableQueue<T> {
    fn default() -> JoinableQueue<T> {
        JoinableQueue::new()
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .field("unfinished", &self.tasks.unfinished.get())
            .finish()
    }
}
