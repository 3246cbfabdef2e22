//! A function mapped over items by a [`Pool`]'s greenlets (gevent's
//! `Pool.imap`, `imap_unordered` and `map`): [`Pool::imap`] yields the
//! results in the order of the items, [`Pool::imap_unordered`] as they
//! finish, [`Pool::map`] collects them.
//!
//! The iterator is the driver, in the caller's greenlet: a `next` that
//! finds a result there returns it at once; otherwise it takes slots and
//! starts workers for the next items while the pool has room (they run
//! while the caller waits), then waits for a result. Nothing runs before
//! the first `next`. At most [`size`](Pool::size) of its items are in
//! progress or finished and not yet yielded, so results do not pile up
//! behind a slow item and memory stays bounded; a pool shared with other
//! spawners gives the iterator what room it has, and one worker at a time
//! when it has none (it then waits for a slot). Dropping the iterator
//! kills its workers still running (as dropping tokio's `JoinSet` aborts
//! its tasks).
//!
//! Nothing is lost when `next` is interrupted (a kill, a
//! [`with_timeout`](super::with_timeout)) or the input panics (the panic
//! comes out of `next`, and the iterator goes on at the next call): a slot
//! is taken before an item, and a result goes out before the input is
//! read again. Two things wait for ever, as in gevent: `f` mapping over
//! the same pool (or a caller that is itself a member of the full pool)
//! waits for a slot that only its own workers could free: use another
//! pool. And the input is read in the caller's greenlet: an input that
//! blocks until the caller has seen some result (a crawler feeding back
//! the links it found) holds back the results that finished meanwhile;
//! read such an input with `try_get`-style calls, or feed it from another
//! greenlet.

use std::collections::VecDeque;
use std::fmt;
use std::iter::FusedIterator;
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
    /// a slot for one (so an iterator whose pool others fill still moves).
    ///
    /// A slot is taken before the item: an interrupted wait for a slot
    /// (a kill, a `with_timeout`) or a panic of the input leaves no item
    /// taken and not run, and the spawn into a slot never blocks.
    fn start_more(&mut self) {
        while !self.drained && self.workers.len() < self.pool.size() {
            let slot = if self.workers.is_empty() {
                self.pool.reserve()
            } else {
                match self.pool.try_reserve() {
                    Some(slot) => slot,
                    // One of ours will make room: wait for it, not for a
                    // slot.
                    None => return,
                }
            };
            // The caller's code: it may switch, or panic (the slot then
            // goes back as `slot` drops).
            let Some(item) = self.items.next() else {
                self.drained = true;
                return;
            };
            let f = self.f.clone();
            let worker = self.pool.spawn_in(slot, move || f(item));
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
        let running = self.workers.iter().filter(|(_, w)| !w.is_finished());
        f.debug_struct(name)
            .field("running", &running.count())
            .field("not_yielded", &self.workers.len())
            .field("started", &self.next_index)
            .field("drained", &self.drained)
            .finish()
    }
}

impl<I, F, R: 'static> Drop for Feed<I, F, R> {
    fn drop(&mut self) {
        // Dropped by one of its own workers (or a greenlet running under
        // one, a generator's producer): that one is not killed (a kill of
        // oneself unwinds at once, which would leave the workers after it
        // running), as `Group::kill_all` skips its caller.
        for (_, worker) in &self.workers {
            if !worker.is_finished() && !worker.greenlet().is_current_or_above() {
                worker.kill();
            }
        }
        // Then the handles, with the results of the finished ones: a
        // result's destructor that panics leaves no worker running.
        self.workers.clear();
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
            // A result there goes out before anything that may block or
            // panic (the input, a wait for a slot) could hold it back or
            // lose it; the slot it freed is filled at the next call.
            if self
                .feed
                .workers
                .front()
                .is_some_and(|(_, w)| w.is_finished())
            {
                let (_, first) = self.feed.workers.pop_front()?;
                return Some(first.join());
            }
            self.feed.start_more();
            match self.feed.workers.front() {
                // Nothing left to start, nothing in progress.
                None => return None,
                Some((_, first)) if first.is_finished() => {}
                // Until the first finishes; any other finishing makes room
                // for one more item meanwhile. (Finished ones waiting their
                // turn are left out of the wait: they would end it at once.)
                Some(_) => self.feed.wait_for_a_running_one(),
            }
        }
    }
}

/// Once it has returned `None` (every item taken and yielded), it
/// returns `None` for good: the input is not read again.
impl<I, F, R> FusedIterator for Imap<I, F, R>
where
    I: Iterator,
    I::Item: 'static,
    F: Fn(I::Item) -> R + 'static,
    R: 'static,
{
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
        loop {
            // As in `Imap::next`: a result there goes out first.
            if self.feed.workers.iter().any(|(_, w)| w.is_finished()) {
                // Returns at once: the one that finished first.
                let i = self.feed.first_finished();
                let (index, done) = self.feed.workers.remove(i)?;
                return Some((index, done.join()));
            }
            self.feed.start_more();
            if self.feed.workers.is_empty() {
                return None;
            }
            if !self.feed.workers.iter().any(|(_, w)| w.is_finished()) {
                self.feed.wait_for_a_running_one();
            }
        }
    }
}

/// As [`Imap`]'s: `None` for good once it has returned `None`.
impl<I, F, R> FusedIterator for ImapUnordered<I, F, R>
where
    I: Iterator,
    I::Item: 'static,
    F: Fn(I::Item) -> R + 'static,
    R: 'static,
{
}

impl<I, F, R: 'static> fmt::Debug for ImapUnordered<I, F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.feed.fmt_as("ImapUnordered", f)
    }
}
