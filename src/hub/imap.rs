//! A function mapped over items by a [`Pool`]'s greenlets (gevent's
//! `Pool.imap`, `imap_unordered` and `map`): [`Pool::imap`] yields the
//! results in the order of the items, [`Pool::imap_unordered`] as they
//! finish, [`Pool::map`] collects them.
//!
//! The iterator is the driver: each `next` first spawns workers for the
//! next items while the pool has room (so they run while the caller waits
//! for a result), then waits. Nothing runs before the first `next`.
//! At most [`size`](Pool::size) of its items are in progress or finished
//! and not yet yielded, so results do not pile up behind a slow item and
//! memory stays bounded; a pool shared with other spawners gives the
//! iterator what room it has, and one worker at a time when it has none.
//! Dropping the iterator kills its workers still running (as dropping
//! tokio's `JoinSet` aborts its tasks).

use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use super::{wait_any, JoinError, JoinHandle, Pool};

const ONE_WORKER: &str = "a wait on at least one worker, with no timeout, returns one";

impl Pool {
    /// Runs `f` on each of `items` in greenlets of this pool, at most
    /// [`size`](Pool::size) at once, and yields the results in the order
    /// of the items (gevent's `Pool.imap`).
    ///
    /// Each result is a `Result`: `Err` holds a worker's panic or its kill
    /// (see [`JoinError`]), and the items after it go on. Errors that `f`
    /// returns as values are results like any other.
    ///
    /// ```
    /// use greenlet::hub::{self, Pool};
    ///
    /// let pool = Pool::new(3);
    /// let squares: Vec<u64> = pool
    ///     .imap(1..=5u64, |n| {
    ///         // Later items finish first; the order is the items'.
    ///         for _ in 0..(10 - n) {
    ///             hub::yield_now();
    ///         }
    ///         n * n
    ///     })
    ///     .map(Result::unwrap)
    ///     .collect();
    /// assert_eq!(squares, [1, 4, 9, 16, 25]);
    /// ```
    ///
    /// # Panics
    ///
    /// `next` blocks the calling greenlet: as every blocking call of the
    /// hub (see [how it runs](crate::hub#how-it-runs)), and as
    /// [`spawn`](super::spawn) when no stack can be had.
    pub fn imap<I, F, R>(&self, items: I, f: F) -> Imap<I::IntoIter, F, R>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        Imap {
            feed: Feed::new(self, items.into_iter(), f),
        }
    }

    /// As [`imap`](Pool::imap), yielding each result as soon as its
    /// worker finishes (gevent's `Pool.imap_unordered`), with the item's
    /// index.
    ///
    /// ```
    /// use greenlet::hub::{self, Pool};
    ///
    /// let pool = Pool::new(3);
    /// let order: Vec<usize> = pool
    ///     .imap_unordered([30u32, 10, 20], |yields| {
    ///         for _ in 0..yields {
    ///             hub::yield_now();
    ///         }
    ///     })
    ///     .map(|(index, done)| {
    ///         done.unwrap();
    ///         index
    ///     })
    ///     .collect();
    /// assert_eq!(order, [1, 2, 0]); // fewest yields first
    /// ```
    ///
    /// # Panics
    ///
    /// As [`imap`](Pool::imap).
    pub fn imap_unordered<I, F, R>(&self, items: I, f: F) -> ImapUnordered<I::IntoIter, F, R>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        ImapUnordered {
            feed: Feed::new(self, items.into_iter(), f),
        }
    }

    /// Runs `f` on each of `items` as [`imap`](Pool::imap) does and
    /// collects the results in the order of the items (gevent's
    /// `Pool.map`).
    ///
    /// ```
    /// use greenlet::hub::Pool;
    ///
    /// let lengths = Pool::new(4).map(["a", "bb", "ccc"], str::len).unwrap();
    /// assert_eq!(lengths, [1, 2, 3]);
    /// ```
    ///
    /// # Errors
    ///
    /// The first worker's panic or kill, in the order of the items; the
    /// workers still running then are killed.
    ///
    /// # Panics
    ///
    /// As [`imap`](Pool::imap).
    pub fn map<I, F, R>(&self, items: I, f: F) -> Result<Vec<R>, JoinError>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> R + 'static,
        R: 'static,
    {
        self.imap(items, f).collect()
    }
}

/// The workers of one `imap`: the items not yet started, and the workers
/// in progress or finished and not yet yielded, in the order of their
/// items.
struct Feed<I, F, R: 'static> {
    pool: Pool,
    items: I,
    /// Ended: no item is left to start.
    drained: bool,
    f: Rc<F>,
    workers: VecDeque<(usize, JoinHandle<R>)>,
    /// The index of the next item to start.
    next_index: usize,
}

impl<I, F, R> Feed<I, F, R>
where
    I: Iterator,
    I::Item: 'static,
    F: Fn(I::Item) -> R + 'static,
    R: 'static,
{
    fn new(pool: &Pool, items: I, f: F) -> Feed<I, F, R> {
        Feed {
            pool: pool.clone(),
            items,
            drained: false,
            f: Rc::new(f),
            workers: VecDeque::new(),
            next_index: 0,
        }
    }

    /// Starts workers for the next items while the pool has room and this
    /// iterator has fewer than `size` workers; with none at all, waits for
    /// room for one (so an iterator whose pool others fill still moves).
    fn start_more(&mut self) {
        while !self.drained && self.workers.len() < self.pool.size() {
            if !self.workers.is_empty() && self.pool.is_full() {
                // One of ours will make room: wait for it, not for a slot.
                return;
            }
            // The item's iterator is the caller's code, which may switch
            // and let the pool fill: the spawn then waits for a slot.
            let Some(item) = self.items.next() else {
                self.drained = true;
                return;
            };
            let f = self.f.clone();
            let job = move || f(item);
            let worker = match self.pool.try_spawn(job) {
                Ok(worker) => worker,
                Err(job) => self.pool.spawn(job),
            };
            self.workers.push_back((self.next_index, worker));
            self.next_index += 1;
        }
    }

    /// The position of the worker that finished first, waiting for one
    /// if none has (there is one at least).
    fn first_finished(&self) -> usize {
        let workers: Vec<&JoinHandle<R>> = self.workers.iter().map(|(_, w)| w).collect();
        wait_any(&workers, None).expect(ONE_WORKER)
    }

    /// Blocks until a worker still running finishes (there is one).
    fn wait_for_a_running_one(&self) {
        let running: Vec<&JoinHandle<R>> = self
            .workers
            .iter()
            .map(|(_, worker)| worker)
            .filter(|worker| !worker.is_finished())
            .collect();
        wait_any(&running, None).expect(ONE_WORKER);
    }
}

impl<I, F, R: 'static> Feed<I, F, R> {
    /// The `Debug` of the iterator `name` that drives it.
    fn fmt_as(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("in_progress", &self.workers.len())
            .field("started", &self.next_index)
            .field("drained", &self.drained)
            .finish()
    }
}

impl<I, F, R: 'static> Drop for Feed<I, F, R> {
    fn drop(&mut self) {
        for (_, worker) in self.workers.drain(..) {
            if !worker.is_finished() {
                worker.kill();
            }
        }
    }
}

/// The iterator of [`Pool::imap`]: results in the order of the items.
/// Dropping it kills the workers still running.
pub struct Imap<I, F, R: 'static> {
    feed: Feed<I, F, R>,
}

impl<I, F, R> Iterator for Imap<I, F, R>
where
    I: Iterator,
    I::Item: 'static,
    F: Fn(I::Item) -> R + 'static,
    R: 'static,
{
    type Item = Result<R, JoinError>;

    fn next(&mut self) -> Option<Result<R, JoinError>> {
        loop {
            self.feed.start_more();
            let (_, first) = self.feed.workers.front()?;
            if first.is_finished() {
                let (_, first) = self.feed.workers.pop_front()?;
                // Its slot is free: start the next item before returning.
                self.feed.start_more();
                return Some(first.join());
            }
            // Until the first finishes; any other finishing makes room for
            // one more item meanwhile. (Finished ones waiting their turn
            // are left out of the wait: they would end it at once.)
            self.feed.wait_for_a_running_one();
        }
    }
}

impl<I, F, R: 'static> fmt::Debug for Imap<I, F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.feed.fmt_as("Imap", f)
    }
}

/// The iterator of [`Pool::imap_unordered`]: `(index, result)` as the
/// workers finish. Dropping it kills the workers still running.
pub struct ImapUnordered<I, F, R: 'static> {
    feed: Feed<I, F, R>,
}

impl<I, F, R> Iterator for ImapUnordered<I, F, R>
where
    I: Iterator,
    I::Item: 'static,
    F: Fn(I::Item) -> R + 'static,
    R: 'static,
{
    type Item = (usize, Result<R, JoinError>);

    fn next(&mut self) -> Option<(usize, Result<R, JoinError>)> {
        self.feed.start_more();
        if self.feed.workers.is_empty() {
            return None;
        }
        let i = self.feed.first_finished();
        let (index, done) = self.feed.workers.remove(i)?;
        self.feed.start_more();
        Some((index, done.join()))
    }
}

impl<I, F, R: 'static> fmt::Debug for ImapUnordered<I, F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.feed.fmt_as("ImapUnordered", f)
    }
}
