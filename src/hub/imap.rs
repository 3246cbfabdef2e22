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

use super::wait::{Relays, Unlink, WaitKey, WaitRef, Waiter, Wake};
use super::wait_any::sealed::Source;
use super::{hub, Hub, JoinError, JoinHandle, Pool};
use crate::stats::WaitOn;

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
            feed: Feed::new(self, items.into_iter(), f, true),
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
            feed: Feed::new(self, items.into_iter(), f, false),
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

/// One worker of an `imap`, in progress or finished and not yet yielded.
struct Worker<R: 'static> {
    /// The index of its item.
    index: usize,
    handle: JoinHandle<R>,
    /// Its relay (see `Relays` in `wait.rs`) and its node on the handle's
    /// list: `None` when it had finished by the time it was listed.
    relay: Option<(WaitKey, usize)>,
}

/// The workers of one `imap`: the items not yet started, and the workers
/// in progress or finished and not yet yielded.
///
/// Each worker's handle lists a relay under the worker's slot once, when
/// it is started: its finish notes the slot in `relays` (and wakes the
/// iterator if it waits), so finding a finished worker, or waiting for
/// one, costs O(1) whatever the pool size (gevent's workers put their
/// results in a queue).
struct Feed<I, F, R: 'static> {
    pool: Pool,
    items: I,
    /// Ended: no item is left to start.
    drained: bool,
    f: Rc<F>,
    /// The workers, each in a slot that its relay names (`None`: free).
    workers: Vec<Option<Worker<R>>>,
    /// The free slots of `workers`.
    free: Vec<usize>,
    /// How many workers there are.
    len: usize,
    /// `imap`'s: the slots in the order of the workers' items (`None`:
    /// `imap_unordered`, which needs no order).
    order: Option<VecDeque<usize>>,
    /// `imap_unordered`'s: the slots of finished workers, in the order
    /// they finished.
    finished: VecDeque<usize>,
    /// `imap`'s: whether a worker finished since it last looked.
    some_finished: bool,
    /// Where the workers' relays report, and the hub they are in.
    relays: Option<(Rc<Hub>, Rc<Relays>)>,
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
    fn new(pool: &Pool, items: I, f: F, ordered: bool) -> Feed<I, F, R> {
        Feed {
            pool: pool.clone(),
            items,
            drained: false,
            f: Rc::new(f),
            workers: Vec::new(),
            free: Vec::new(),
            len: 0,
            order: ordered.then(VecDeque::new),
            finished: VecDeque::new(),
            some_finished: false,
            relays: None,
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
        while !self.drained && self.len < self.pool.size() {
            let slot = if self.len == 0 {
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
            self.add(worker);
        }
    }

    /// Takes in the worker of the next item, with its relay listed.
    fn add(&mut self, handle: JoinHandle<R>) {
        let at = match self.free.pop() {
            Some(at) => at,
            None => {
                self.workers.push(None);
                self.workers.len() - 1
            }
        };
        let relay = if handle.is_finished() {
            // Finished already: no finish to wait for.
            self.take_finishes();
            self.finished_at(at);
            None
        } else {
            let (hub, relays) = self
                .relays
                .get_or_insert_with(|| (hub(), Rc::new(Relays::default())));
            let key = hub.register_relay(relays, at);
            Some((key, handle.add_waiter(key.into())))
        };
        self.workers[at] = Some(Worker {
            index: self.next_index,
            handle,
            relay,
        });
        if let Some(order) = &mut self.order {
            order.push_back(at);
        }
        self.len += 1;
        self.next_index += 1;
    }

    /// Notes that the worker in slot `at` finished.
    fn finished_at(&mut self, at: usize) {
        if self.order.is_some() {
            self.some_finished = true;
        } else {
            self.finished.push_back(at);
        }
    }

    /// Takes in the finishes the relays noted.
    fn take_finishes(&mut self) {
        let Some((_, relays)) = &self.relays else {
            return;
        };
        // Taken out, and put back with its capacity.
        let mut new = std::mem::take(&mut *relays.fired.borrow_mut());
        for &at in &new {
            self.finished_at(at);
        }
        new.clear();
        if let Some((_, relays)) = &self.relays {
            *relays.fired.borrow_mut() = new;
        }
    }

    /// Takes the worker in slot `at` out, its relay ended.
    fn remove(&mut self, at: usize) -> Worker<R> {
        let worker = self.workers[at].take().expect("a worker in the slot");
        self.free.push(at);
        self.len -= 1;
        if let (Some((key, node)), Some((hub, _))) = (worker.relay, &self.relays) {
            // Woken by the finish, so off the list: the removal finds
            // nothing.
            worker.handle.remove_waiter(node, key.into());
            hub.end_relay(key);
        }
        worker
    }

    /// Blocks until a worker finishes (one is running), unless one
    /// finished since the last look.
    fn wait_for_a_finish(&mut self) {
        self.take_finishes();
        if self.some_finished || !self.finished.is_empty() {
            self.some_finished = false;
            return;
        }
        let Some((hub, relays)) = &self.relays else {
            unreachable!("{ONE_WORKER}");
        };
        let mut waiter = Waiter::new(hub, None, WaitOn::Any { until: None }, |w| {
            relays.waiter.set(Some(w));
            FinishLink(relays)
        });
        waiter.wait("hub::wait");
        drop(waiter);
        self.take_finishes();
        self.some_finished = false;
    }
}

/// A blocked `next`'s wait, as the relays' waiter.
struct FinishLink<'a>(&'a Relays);

// SAFETY: the wait is registered by `Waiter::new`, so it is a table key;
// it is kept only as the relays' waiter, cleared here.
unsafe impl Unlink for FinishLink<'_> {
    fn unlink(&mut self, _: &Hub, _: WaitRef, _: Wake) {
        self.0.waiter.set(None);
    }
}

impl<I, F, R: 'static> Feed<I, F, R> {
    /// `imap`'s: the slot of the worker of the first item not yet
    /// yielded.
    fn first(&self) -> Option<usize> {
        self.order.as_ref()?.front().copied()
    }

    /// Whether the worker in slot `at` finished.
    fn is_finished(&self, at: usize) -> bool {
        self.workers[at]
            .as_ref()
            .is_some_and(|w| w.handle.is_finished())
    }

    /// The `Debug` of the iterator `name` that drives it.
    fn fmt_as(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let running = self
            .workers
            .iter()
            .flatten()
            .filter(|w| !w.handle.is_finished());
        f.debug_struct(name)
            .field("running", &running.count())
            .field("not_yielded", &self.len)
            .field("started", &self.next_index)
            .field("drained", &self.drained)
            .finish()
    }
}

impl<I, F, R: 'static> Drop for Feed<I, F, R> {
    fn drop(&mut self) {
        // In the order of their items, as they were started.
        let mut workers: Vec<Worker<R>> = self.workers.drain(..).flatten().collect();
        workers.sort_by_key(|w| w.index);
        // Dropped by one of its own workers (or a greenlet running under
        // one, a generator's producer): that one is not killed (a kill of
        // oneself unwinds at once, which would leave the workers after it
        // running), as `Group::kill_all` skips its caller.
        for worker in &workers {
            let w = &worker.handle;
            if !w.is_finished() && !w.greenlet().is_current_or_above() {
                w.kill();
            }
        }
        if let Some((hub, _)) = &self.relays {
            for worker in &workers {
                if let Some((key, node)) = worker.relay {
                    worker.handle.remove_waiter(node, key.into());
                    hub.end_relay(key);
                }
            }
        }
        // Then the handles, with the results of the finished ones: a
        // result's destructor that panics leaves no worker running.
        drop(workers);
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
            // Before a finished worker is taken off the list, whose join
            // (which completes at once) then finds budget left and does not
            // yield: an interruption in that yield (an expired
            // `with_timeout`, a throw) dropped the worker's handle, and its
            // result with it; here it leaves the worker listed.
            super::budget::yield_if_spent();
            // A result there goes out before anything that may block or
            // panic (the input, a wait for a slot) could hold it back or
            // lose it; the slot it freed is filled at the next call.
            if let Some(first) = self.feed.first().filter(|&at| self.feed.is_finished(at)) {
                if let Some(order) = &mut self.feed.order {
                    order.pop_front();
                }
                return Some(self.feed.remove(first).handle.join());
            }
            self.feed.start_more();
            match self.feed.first() {
                // Nothing left to start, nothing in progress.
                None => return None,
                Some(first) if self.feed.is_finished(first) => {}
                // Until the first finishes; any other finishing makes room
                // for one more item meanwhile.
                Some(_) => self.feed.wait_for_a_finish(),
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
            // As in `Imap::next`: the budget's yield first, and a result
            // there goes out first, the one that finished first.
            super::budget::yield_if_spent();
            self.feed.take_finishes();
            if let Some(at) = self.feed.finished.pop_front() {
                let worker = self.feed.remove(at);
                return Some((worker.index, worker.handle.join()));
            }
            self.feed.start_more();
            if self.feed.len == 0 {
                return None;
            }
            self.feed.wait_for_a_finish();
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
