//! `Group` and `Pool`: spawned greenlets kept together so they can be
//! waited for and killed as one, a pool limiting how many run at once
//! (gevent's `Group` and `Pool`).

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use slab::Slab;

use super::deadline_after;
use super::event::Event;
use super::semaphore::{OwnedSemaphorePermit, Semaphore};
use super::JoinHandle;
use crate::greenlet::Greenlet;

/// A set of spawned greenlets; `Clone` shares it.
///
/// [`spawn`](Group::spawn) starts a greenlet as a member; it leaves the
/// group when it finishes, however it ends. [`join`](Group::join) waits
/// until the group is empty, [`kill_all`](Group::kill_all) kills every
/// member.
///
/// ```
/// use std::time::Duration;
/// use greenlet::hub::{self, Group};
///
/// let group = Group::new();
/// for i in 0..3 {
///     group.spawn(move || hub::sleep(Duration::from_millis(i)));
/// }
/// assert_eq!(group.len(), 3);
/// group.join();
/// assert!(group.is_empty());
///
/// group.spawn(|| hub::sleep(Duration::from_secs(3600)));
/// assert!(!group.join_timeout(Duration::from_millis(1)));
/// group.kill_all();
/// assert!(group.is_empty());
/// ```
#[derive(Clone)]
pub struct Group {
    inner: Rc<Inner>,
}

struct Inner {
    members: RefCell<Slab<Entry>>,
    /// Set while the group is empty.
    empty: Event,
    /// The number the next member gets (see [`Entry`]).
    next_number: Cell<u64>,
}

/// A member in the group's slab, numbered: a member's [`Leave`] takes out
/// the entry with its own number only. A slab key is reused as soon as it
/// is free, and a spawn refused for want of a stack is never inserted; the
/// destructors of its function's captures may spawn another member
/// meanwhile, which takes the key the refused one had in view: by key
/// alone, the refused member's `Leave` would take that one out.
struct Entry {
    number: u64,
    greenlet: Greenlet,
}

/// A member's function, with what makes it leave its group when it ends
/// (however it ends: the `Leave` drops as its greenlet unwinds too), and
/// what it keeps until then.
///
/// The fields drop in their order here, so a member dropped unrun (thrown
/// into or killed before it started) drops the function's captures, whose
/// destructors may block, before it frees what it kept and leaves. A spawn
/// refused for want of a stack is no member: its function is dropped in
/// the spawner, last (see the `Drop` impl), so that a destructor there
/// that spawns again finds the pool slot it kept free.
struct Member<F, K> {
    /// `None` once it runs.
    f: Option<F>,
    keep: Option<K>,
    leave: Leave,
}

impl<F, K> Member<F, K> {
    fn run<R>(mut self) -> R
    where
        F: FnOnce() -> R,
    {
        // The rest of `self` (what is kept, then the leave) drops after the
        // function's locals.
        let f = self.f.take().expect("a member runs once");
        match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(out) => super::join::drop_locals_now(out),
            // A panic: the locals go first too (their destructors may
            // block: the member is alive, in its group and its pool slot,
            // until they are done), then the panic goes on. A kill goes on
            // unwinding at once (a switch here would refuse it); a kill
            // that comes while a local's destructor blocks wins.
            Err(p) if !super::is_kill(p.as_ref()) => {
                match panic::catch_unwind(|| super::join::drop_locals_now(())) {
                    Err(q) if super::is_kill(q.as_ref()) => {
                        crate::error::drop_quietly(p);
                        panic::resume_unwind(q)
                    }
                    Err(q) => crate::error::drop_quietly(q),
                    Ok(()) => {}
                }
                panic::resume_unwind(p)
            }
            Err(p) => panic::resume_unwind(p),
        }
    }
}

impl<F, K> Drop for Member<F, K> {
    fn drop(&mut self) {
        if self.f.is_some() && !self.leave.is_in() {
            // Refused: what it kept goes first, then its function.
            drop(self.keep.take());
        }
        // Then the fields, in their order.
    }
}

/// Owned by a member's closure: takes it out of the group when the
/// closure ends, runs to completion or not.
struct Leave {
    group: Weak<Inner>,
    key: usize,
    number: u64,
}

impl Leave {
    /// Whether its member is in the group (spawned, not yet gone).
    fn is_in(&self) -> bool {
        self.group
            .upgrade()
            .is_some_and(|group| self.is_mine(&group.members.borrow()))
    }

    /// Whether `members` holds its member's entry under its key (not one
    /// that took the key since, see [`Entry`]).
    fn is_mine(&self, members: &Slab<Entry>) -> bool {
        members
            .get(self.key)
            .is_some_and(|entry| entry.number == self.number)
    }
}

impl Drop for Leave {
    fn drop(&mut self) {
        if let Some(group) = self.group.upgrade() {
            let (left, now_empty) = {
                let mut members = group.members.borrow_mut();
                let left = self.is_mine(&members).then(|| members.remove(self.key));
                (left, members.is_empty())
            };
            // Its handle goes outside the borrow: a last handle's drop
            // may run the program's code.
            drop(left);
            if now_empty {
                group.empty.set();
            }
        }
    }
}

impl Group {
    /// An empty group.
    pub fn new() -> Group {
        let empty = Event::new();
        empty.set();
        Group {
            inner: Rc::new(Inner {
                members: RefCell::new(Slab::new()),
                next_number: Cell::new(0),
                empty,
            }),
        }
    }

    /// Spawns `f` (as [`hub::spawn`](super::spawn)) as a member.
    ///
    /// # Panics
    ///
    /// As [`hub::spawn`](super::spawn).
    pub fn spawn<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        self.spawn_keeping((), f)
    }

    /// [`spawn`](Group::spawn), with `keep` dropped when the member ends,
    /// after its greenlet-locals and before it leaves the group: a pool's
    /// slot.
    pub(crate) fn spawn_keeping<K, F, R>(&self, keep: K, f: F) -> JoinHandle<R>
    where
        K: 'static,
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        let Ok(handle) = self.spawn_member(keep, f, |m| {
            Ok::<_, Infallible>(super::spawn(move || m.run()))
        });
        handle
    }

    /// Spawns `f` as a member on a greenlet configured by `builder` (its
    /// name, its stack size), as [`Builder::spawn`](super::Builder::spawn)
    /// does.
    ///
    /// ```
    /// use greenlet::hub::{Builder, Group};
    ///
    /// let group = Group::new();
    /// let h = group.spawn_with(Builder::new().name("worker"), || 7)?;
    /// assert_eq!(h.greenlet().name().as_deref(), Some("worker"));
    /// assert_eq!(h.join().unwrap(), 7);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// When no stack can be had (see
    /// [`Builder::spawn`](super::Builder::spawn)): the mapping limit, or
    /// `InvalidInput` for a stack size too large to map; nothing is
    /// spawned then, and `f` is dropped.
    ///
    /// # Panics
    ///
    /// As [`hub::spawn`](super::spawn) for anything but the stack.
    pub fn spawn_with<F, R>(&self, builder: super::Builder, f: F) -> io::Result<JoinHandle<R>>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        self.spawn_with_keeping(builder, (), f)
    }

    /// [`spawn_with`](Group::spawn_with), keeping `keep` as
    /// [`spawn_keeping`](Group::spawn_keeping) does.
    pub(crate) fn spawn_with_keeping<K, F, R>(
        &self,
        builder: super::Builder,
        keep: K,
        f: F,
    ) -> io::Result<JoinHandle<R>>
    where
        K: 'static,
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        self.spawn_member(keep, f, |m| builder.spawn(move || m.run()))
    }

    /// Spawns `f`, wrapped to leave the group when it ends, through
    /// `spawn`, and adds it to the group.
    fn spawn_member<K, F, R, E>(
        &self,
        keep: K,
        f: F,
        spawn: impl FnOnce(Member<F, K>) -> Result<JoinHandle<R>, E>,
    ) -> Result<JoinHandle<R>, E>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        let key = self.inner.members.borrow().vacant_key();
        let number = self.inner.next_number.get();
        self.inner.next_number.set(number + 1);
        let leave = Leave {
            group: Rc::downgrade(&self.inner),
            key,
            number,
        };
        let member = Member {
            f: Some(f),
            keep: Some(keep),
            leave,
        };
        let handle = spawn(member)?;
        // The new greenlet has not run yet, and no code of the program ran
        // since `key` was read (spawning never switches, and on success
        // drops nothing), so it joins, under that key, before it can leave.
        let inserted = self.inner.members.borrow_mut().insert(Entry {
            number,
            greenlet: handle.greenlet().clone(),
        });
        debug_assert_eq!(inserted, key, "a member's key taken meanwhile");
        self.inner.empty.clear();
        Ok(handle)
    }

    /// How many members are alive.
    pub fn len(&self) -> usize {
        self.inner.members.borrow().len()
    }

    /// Whether no member is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members alive now.
    pub fn members(&self) -> Vec<Greenlet> {
        self.inner
            .members
            .borrow()
            .iter()
            .map(|(_, m)| m.greenlet.clone())
            .collect()
    }

    /// Whether `g` is a member.
    pub fn contains(&self, g: &Greenlet) -> bool {
        self.inner
            .members
            .borrow()
            .iter()
            .any(|(_, m)| m.greenlet == *g)
    }

    /// Blocks until every member has finished (members spawned meanwhile
    /// included): when it returns, the group is empty. A member that joins
    /// its own group waits for itself, as in gevent, until something
    /// kills it, throws into it or times it out (unlike
    /// [`JoinHandle::join`](super::JoinHandle::join) of one's own handle,
    /// this is not refused with a panic).
    ///
    /// # Panics
    ///
    /// As any blocking call (see the [module docs](super)).
    #[inline(always)]
    pub fn join(&self) {
        self.join_until(None, "Group::join");
    }

    /// `join` until `deadline` (`None`: none), named `call` in its panics
    /// and in `stats`; returns whether the group is empty.
    #[inline(always)]
    fn join_until(&self, deadline: Option<Instant>, call: &'static str) -> bool {
        self.inner
            .empty
            .wait_for(|| self.is_empty(), deadline, call)
    }

    /// Like [`join`](Group::join), but gives up after `timeout`; returns
    /// whether the group is empty.
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_until(deadline_after(timeout), "Group::join_timeout")
    }

    /// Kills every member (see [`JoinHandle::kill`](super::JoinHandle::kill):
    /// a member's panic as it dies is reported, and the others are still
    /// killed); the calling greenlet is spared if it is one, and so is a
    /// member above it in its parent chain (a member whose generator's
    /// producer calls this, or whose raw child greenlet does: killed, the
    /// member would close its generator, the caller). Returns when they
    /// are gone, members spawned
    /// meanwhile (by a dying member's destructor, say) included; a member
    /// that refuses its kill (it caught the unwinding and switched away)
    /// is killed once and left alive.
    pub fn kill_all(&self) {
        let mut tried: Vec<Greenlet> = Vec::new();
        loop {
            let victims: Vec<Greenlet> = self
                .members()
                .into_iter()
                .filter(|g| !g.is_current_or_above() && !tried.contains(g))
                .collect();
            if victims.is_empty() {
                return;
            }
            for g in &victims {
                super::join::kill_spawned(g);
            }
            tried.extend(victims);
        }
    }
}

impl Default for Group {
    fn default() -> Group {
        Group::new()
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").field("len", &self.len()).finish()
    }
}

/// A [`Group`] of at most `size` members (gevent's `Pool`): `spawn`
/// blocks while it is full. `Clone` shares it. [`imap`](Pool::imap),
/// [`imap_unordered`](Pool::imap_unordered) and [`map`](Pool::map) run a
/// function over items in its greenlets.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use greenlet::hub::{self, Pool};
///
/// let pool = Pool::new(2);
/// let most = Rc::new(Cell::new(0));
/// for _ in 0..6 {
///     let (p, most) = (pool.clone(), most.clone());
///     pool.spawn(move || {
///         most.set(most.get().max(p.len()));
///         hub::yield_now();
///     });
/// }
/// pool.join();
/// assert_eq!(most.get(), 2);
/// assert_eq!(pool.free_count(), 2);
/// ```
#[derive(Clone)]
pub struct Pool {
    group: Group,
    slots: Semaphore,
    size: usize,
}

impl Pool {
    /// A pool of at most `size` members.
    ///
    /// # Panics
    ///
    /// When `size` is 0 (nothing could ever be spawned).
    pub fn new(size: usize) -> Pool {
        assert!(
            size > 0,
            "greenlet::hub::Pool::new needs a size of at least 1"
        );
        Pool {
            group: Group::new(),
            slots: Semaphore::new(size),
            size,
        }
    }

    /// Spawns `f` as a member, blocking the calling greenlet while the
    /// pool is full (slots go to blocked spawners in order).
    ///
    /// # Panics
    ///
    /// As [`hub::spawn`](super::spawn) and any blocking call.
    pub fn spawn<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        self.spawn_in(self.reserve(), f)
    }

    /// [`spawn`](Pool::spawn) on a greenlet configured by `builder`, as
    /// [`Group::spawn_with`]; a slot taken for a greenlet that could not
    /// be spawned is given back.
    ///
    /// # Errors
    ///
    /// As [`Group::spawn_with`]; the slot is given back.
    ///
    /// # Panics
    ///
    /// As any blocking call, and as [`Group::spawn_with`].
    pub fn spawn_with<F, R>(&self, builder: super::Builder, f: F) -> io::Result<JoinHandle<R>>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        let slot = self.slots.acquire_owned();
        self.group.spawn_with_keeping(builder, slot, f)
    }

    /// Spawns `f` if a slot is free now; gives `f` back otherwise.
    ///
    /// # Errors
    ///
    /// `Err(f)` when the pool is full.
    pub fn try_spawn<F, R>(&self, f: F) -> Result<JoinHandle<R>, F>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        match self.try_reserve() {
            Some(slot) => Ok(self.spawn_in(slot, f)),
            None => Err(f),
        }
    }

    /// Takes a free slot now, if there is one, for
    /// [`spawn_in`](Pool::spawn_in).
    pub(crate) fn try_reserve(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.try_acquire_owned()
    }

    /// Takes a slot, blocking the calling greenlet until one is handed to
    /// it, for [`spawn_in`](Pool::spawn_in).
    pub(crate) fn reserve(&self) -> OwnedSemaphorePermit {
        self.slots.acquire_owned()
    }

    /// Spawns `f` as a member in `slot`, a slot taken from this pool
    /// (never blocks).
    pub(crate) fn spawn_in<F, R>(&self, slot: OwnedSemaphorePermit, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + 'static,
        R: 'static,
    {
        self.group.spawn_keeping(slot, f)
    }

    /// Blocks until this caller's turn for a slot comes, without taking
    /// it (gevent's `wait_available`). Slots go to waiting callers in the
    /// order they asked, so when a [`spawn`](Pool::spawn) waits behind this
    /// call, the slot freed for this call goes on to that spawn as this
    /// call returns: the pool may be full again by then, and a
    /// [`try_spawn`](Pool::try_spawn) right after can fail. It cannot when
    /// the caller is the only greenlet spawning into the pool (an accept
    /// loop's pattern).
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn wait_available(&self) {
        drop(self.slots.acquire());
    }

    /// Free slots.
    pub fn free_count(&self) -> usize {
        self.slots.available_permits()
    }

    /// Whether every slot is taken.
    pub fn is_full(&self) -> bool {
        self.free_count() == 0
    }

    /// The most members at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// See [`Group::len`].
    pub fn len(&self) -> usize {
        self.group.len()
    }

    /// See [`Group::is_empty`].
    pub fn is_empty(&self) -> bool {
        self.group.is_empty()
    }

    /// See [`Group::members`].
    pub fn members(&self) -> Vec<Greenlet> {
        self.group.members()
    }

    /// See [`Group::join`].
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn join(&self) {
        self.group.join_until(None, "Pool::join");
    }

    /// See [`Group::join_timeout`].
    ///
    /// # Panics
    ///
    /// As every blocking call of the hub (see [how it runs](crate::hub#how-it-runs)).
    #[inline(always)]
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.group
            .join_until(deadline_after(timeout), "Pool::join_timeout")
    }

    /// See [`Group::kill_all`].
    pub fn kill_all(&self) {
        self.group.kill_all();
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("len", &self.len())
            .field("size", &self.size)
            .finish()
    }
}
