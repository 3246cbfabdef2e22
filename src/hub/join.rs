//! `spawn`'s handle: join a spawned greenlet, kill it, ask whether it is
//! done (rows H1, H2, H8).

use std::any::Any;
use std::cell::{Cell, OnceCell, RefCell};
use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::pooled_rc::PooledRc;
use super::wait::{Unlink, WaitNode, WaitRef, Waiter, Wake, Woken};
use super::wait_list::WaitList;
use super::{deadline_after, hub, is_kill, Hub};
use crate::error::{payload_message, SwitchError};
use crate::greenlet::Greenlet;
use crate::runtime::Runtime;
use crate::stats::WaitOn;
use crate::value::GreenletExit;

/// Why [`JoinHandle::join`] has no value.
#[non_exhaustive]
pub enum JoinError {
    /// The greenlet panicked, or an error [thrown](crate::Greenlet::throw)
    /// into it ended it; the payload is the original one.
    Panicked(Box<dyn Any + Send>),
    /// The greenlet was killed (before or while running).
    Killed,
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(p) => f
                .debug_tuple("Panicked")
                .field(&payload_message(p.as_ref()).unwrap_or("<non-text payload>"))
                .finish(),
            JoinError::Killed => f.write_str("Killed"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(p) => match payload_message(p.as_ref()) {
                Some(m) => write!(f, "the spawned greenlet panicked: {m}"),
                None => f.write_str("the spawned greenlet panicked (non-text payload)"),
            },
            JoinError::Killed => f.write_str("the spawned greenlet was killed"),
        }
    }
}

impl std::error::Error for JoinError {}

/// `on_finish` callbacks, in the order they were added.
type Callbacks = Vec<Box<dyn FnOnce()>>;

/// What a spawned greenlet leaves for its joiner. `join` consumes the one
/// `JoinHandle`, so there is at most one joiner; the handle's
/// non-consuming waits (`wait`, `hub::wait`) and its `on_finish` callbacks
/// live in an [`Extra`] made on first use.
///
/// Small on purpose: with a `usize` result it fills one cache line of its
/// pooled block, count included. A burst of spawned greenlets brings each
/// one's state back into the cache at its spawn, its end and its join, so
/// every line more is three misses more (the waiters list and the
/// callbacks inline made it three lines).
struct JoinState<R> {
    /// The outcome, from the greenlet's end until `join` takes it.
    result: Cell<Option<Result<R, JoinError>>>,
    /// When it finished, for `hub::iwait`'s order: a stamp from
    /// `next_stamp` (never 0); 0 while it has not.
    stamp: Cell<u64>,
    joiner: Cell<Option<WaitRef>>,
    /// Most handles never get a waiter or a callback. Dropped by hand
    /// (see `Drop`): the drop glue called out of line for the empty cell.
    extra: ManuallyDrop<OnceCell<Box<Extra>>>,
}

impl<R> Drop for JoinState<R> {
    #[inline(always)]
    fn drop(&mut self) {
        // The cell is left empty, so nothing is left to drop with it.
        if self.extra.get().is_some() {
            drop_extra(&mut self.extra);
        }
    }
}

#[cold]
#[inline(never)]
fn drop_extra(extra: &mut OnceCell<Box<Extra>>) {
    drop(extra.take());
}

// With a `usize` result and its count, one 64-byte block (see `pooled_rc`).
const _: () = assert!(std::mem::size_of::<JoinState<usize>>() <= 64 - 8);

/// The rarer parts of a [`JoinState`].
struct Extra {
    waiters: RefCell<WaitList>,
    /// `on_finish` callbacks, run in a greenlet of their own at the end.
    on_finish: RefCell<Callbacks>,
}

impl<R> JoinState<R> {
    fn new() -> JoinState<R> {
        JoinState {
            result: Cell::new(None),
            stamp: Cell::new(0),
            joiner: Cell::new(None),
            extra: ManuallyDrop::new(OnceCell::new()),
        }
    }

    #[inline]
    fn is_finished(&self) -> bool {
        self.stamp.get() != 0
    }

    fn extra(&self) -> &Extra {
        self.extra.get_or_init(|| {
            Box::new(Extra {
                waiters: RefCell::new(WaitList::new()),
                on_finish: RefCell::new(Vec::new()),
            })
        })
    }

    fn finish(&self, hub: &Rc<Hub>, result: Result<R, JoinError>) {
        self.result.set(Some(result));
        self.stamp.set(super::wait_any::next_stamp());
        if let Some(w) = self.joiner.take() {
            hub.wake(w, Wake::Ready);
        }
        if let Some(extra) = self.extra.get() {
            extra.finish(hub);
        }
    }
}

impl Extra {
    /// Wakes every waiter and runs the callbacks.
    #[cold]
    fn finish(&self, hub: &Rc<Hub>) {
        loop {
            let next = self.waiters.borrow_mut().pop_front();
            match next {
                Some(w) => {
                    hub.wake(w, Wake::Ready);
                }
                None => break,
            }
        }
        let callbacks = std::mem::take(&mut *self.on_finish.borrow_mut());
        if !callbacks.is_empty() {
            run_callbacks(hub, callbacks);
        }
    }
}

/// Calls a spawned greenlet's function in a frame of its own, below the
/// greenlet's first frames rather than inlined among them, and catches
/// its panic (or the unwinding of a kill, on which the caller ends the
/// greenlet).
///
/// Those first frames are large (the outcome, the unwinding guards, the
/// join state's hand-over), and the function's own locals, inlined there,
/// land wherever the compiler lays them out, one cache line from the
/// switch's saved registers or three. A parked greenlet brings back every
/// line its frames write on each resume: a greenlet yielding in a loop
/// touched four lines of its stack a yield, against three with its locals
/// next to the switch (valgrind's lackey). The catch is here rather than
/// in the caller so that a kill's first unwinding stops one frame sooner:
/// with the frame alone, a spawned greenlet's kill took 67,600
/// instructions instead of 59,800; with the catch here, 51,100 (and
/// 30,600 once the caller stopped raising the kill again).
#[inline(never)]
fn run_in_own_frame<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    panic::catch_unwind(AssertUnwindSafe(f))
}

/// Drops the running greenlet's greenlet-locals now, as its end would
/// (see `spawn_with`), and passes `out` on: for a group member, whose
/// locals are part of it, so that it leaves its group (and frees its pool
/// slot) only once they are gone, as its handle says it finished only
/// then. A panic in a destructor becomes the greenlet's (`out` dropped);
/// a kill that came while one blocked goes on unwinding.
pub(super) fn drop_locals_now<R>(out: R) -> R {
    match Runtime::get().drop_locals() {
        Ok(()) => out,
        Err(SwitchError::Panicked(p)) => {
            drop(out);
            panic::resume_unwind(p)
        }
        Err(SwitchError::Killed) => {
            // Dropped before the kill's unwinding goes on, as in
            // `spawn_with`.
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(out)));
            panic::resume_unwind(Box::new(GreenletExit::unmarked()))
        }
        Err(_) => out,
    }
}

/// Whether another greenlet's kill of the current one is under way: its
/// function caught the unwinding and returned instead of letting it end
/// the greenlet.
#[inline]
fn killed_meanwhile(rt: &Runtime) -> bool {
    rt.records().killer(rt.current()).is_some()
}

/// Runs `on_finish` callbacks in a new greenlet (gevent runs links from its
/// loop too): they may block, and a panic in one is that greenlet's, not
/// the finishing greenlet's, which may be unwinding from a kill. A panic in
/// one (reported by the panic hook as it happens) does not keep the ones
/// after it from running, as one link's error does not in gevent; the
/// greenlet ends with the first panic once all ran. A kill of that
/// greenlet ends it at once.
fn run_callbacks(hub: &Rc<Hub>, callbacks: Callbacks) {
    let builder = Greenlet::builder().name("on_finish");
    // Without a stack the callbacks cannot run; they are dropped unrun
    // rather than panicking in a greenlet that may be unwinding.
    drop(spawn_with(hub, builder, move || {
        let mut first_panic = None;
        let mut callbacks = callbacks.into_iter();
        while let Some(callback) = callbacks.next() {
            if let Err(p) = panic::catch_unwind(AssertUnwindSafe(callback)) {
                if is_kill(p.as_ref()) {
                    // The callbacks not run yet go outside the unwinding.
                    crate::error::unwind_after_dropping(
                        (callbacks, first_panic),
                        "an on_finish callback not run (its greenlet was killed)",
                        p,
                    );
                }
                if first_panic.is_none() {
                    first_panic = Some(p);
                } else {
                    drop_payload(p);
                }
            }
        }
        if let Some(p) = first_panic {
            panic::resume_unwind(p);
        }
    }));
}

/// Drops a panic payload whose destructor may panic: that panic's payload
/// is dropped the same way, until one drops quietly (a payload made by
/// `panic!` always does). A kill that reaches the destructor (it
/// blocked) unwinds on.
fn drop_payload(mut p: Box<dyn Any + Send>) {
    while let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(p))) {
        if is_kill(again.as_ref()) {
            panic::resume_unwind(again);
        }
        p = again;
    }
}

/// A spawned greenlet's function and its finisher, captured as one value
/// by the greenlet's closure. The fields drop in their order here, so a
/// greenlet dropped unrun (thrown into or killed before it started) drops
/// the function's captures, whose destructors may block, before its
/// finisher publishes the outcome: its handle says it finished only once
/// they are gone, as on every other end.
struct Spawned<F, R> {
    f: F,
    finisher: Finisher<R>,
}

/// A killed spawned greenlet's end: its greenlet-locals go first, as on
/// every end (their destructors cannot refuse the kill: their switches
/// fail), and only then does the finisher's drop publish `Killed`. A panic
/// in one of them goes on out of the greenlet, as the runtime's end would
/// send it (`kill` reports it).
#[inline]
fn end_killed<R>(rt: &Runtime, finisher: Finisher<R>) {
    let locals = rt.drop_locals();
    drop(finisher);
    if let Err(SwitchError::Panicked(p)) = locals {
        panic::resume_unwind(p)
    }
}

/// Owned by the spawned closure: records `Killed` if the greenlet ends
/// without a result (its closure dropped unrun, or its stack unwound).
struct Finisher<R> {
    state: PooledRc<JoinState<R>>,
    hub: Rc<Hub>,
}

impl<R> Finisher<R> {
    /// After `finish`, before the hand-off: lets the join state go, and
    /// with it the result if the handle is gone, whose destructor is user
    /// code. It runs now, while this is an ordinary greenlet of the hub:
    /// the hand-off makes the next ready greenlet the parent, into which a
    /// panic of that destructor would unwind, and which a destructor that
    /// blocks would leave off every queue. A panic there is the panic
    /// hook's to report (the handle that could have been told is gone); a
    /// kill that came while it blocked unwinds on.
    fn release_state(self) -> Rc<Hub> {
        debug_assert!(self.state.is_finished());
        let this = ManuallyDrop::new(self);
        // Every field, by name (one added later fails to compile here).
        let Finisher { state, hub } = &*this;
        // SAFETY: `this` is never used or dropped again, so each field is
        // moved out of it exactly once (and `Finisher::drop`, which would
        // do nothing for a finished state, does not run).
        let (state, hub) = unsafe { (ptr::read(state), ptr::read(hub)) };
        if let Err(p) = panic::catch_unwind(AssertUnwindSafe(move || drop(state))) {
            if is_kill(p.as_ref()) {
                panic::resume_unwind(p);
            }
        }
        hub
    }
}

impl<R> Drop for Finisher<R> {
    fn drop(&mut self) {
        if !self.state.is_finished() {
            // Dropped unrun: an error that ended the greenlet before it
            // started (a throw, say) is its result, not the hub's problem.
            let result = match Runtime::get().take_unrun_cause() {
                Some(SwitchError::Panicked(p) | SwitchError::Thrown(p)) => {
                    Err(JoinError::Panicked(p))
                }
                _ => Err(JoinError::Killed),
            };
            self.state.finish(&self.hub, result);
        }
    }
}

/// The handle [`spawn`](super::spawn) returns.
///
/// Dropping it detaches the greenlet, as dropping a `std::thread`'s handle
/// does: it runs on (the hub keeps it while it is ready or blocked), and
/// its result is dropped when it ends. [`kill`](JoinHandle::kill) ends it
/// early. (A plain [`Greenlet`]'s last handle, dropped, kills a suspended
/// greenlet instead: nothing else could ever switch to it.)
pub struct JoinHandle<R> {
    greenlet: Greenlet,
    state: PooledRc<JoinState<R>>,
}

pub(crate) fn spawn<F, R>(hub: &Rc<Hub>, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    spawn_with(hub, Greenlet::builder(), f).unwrap_or_else(|e| {
        panic!(
            "greenlet::hub::spawn: cannot allocate a stack: {e}. Greenlet stacks take \
             memory mappings (two each on kernels without lightweight guard pages) and \
             Linux limits a process to vm.max_map_count of them (65530 by default); \
             raise it with `sysctl -w vm.max_map_count=N`, or keep fewer greenlets \
             alive at once. Or the address space ran out: see `ulimit -v` and the \
             thread's StackPolicy::stack_size. hub::Builder::spawn returns the error \
             instead"
        )
    })
}

/// Spawns `f` on a greenlet made by `builder` (whose parent is set to the
/// hub here).
pub(crate) fn spawn_with<F, R>(
    hub: &Rc<Hub>,
    builder: crate::greenlet::Builder,
    f: F,
) -> io::Result<JoinHandle<R>>
where
    F: FnOnce() -> R + 'static,
    R: 'static,
{
    let state = PooledRc::new_with(JoinState::new);
    let spawned = Spawned {
        f,
        finisher: Finisher {
            state: state.clone(),
            hub: hub.clone(),
        },
    };
    let greenlet = builder.build_spawned(&hub.greenlet, move |()| {
        // Moved whole, so the closure captures it whole: dropped unrun, it
        // drops in its fields' order.
        let spawned = spawned;
        let Spawned { f, finisher } = spawned;
        let ran = run_in_own_frame(f);
        // The thread's runtime, reached once for the whole end (each reach
        // is a thread-local load and a check).
        let rt = Runtime::get();
        let mut result = match ran {
            // Its function caught a kill's unwinding and returned: the
            // greenlet is dead all the same and its value is dropped (row
            // 11), and its end goes to its killer, not to the next ready
            // greenlet, so there is nothing to hand off either.
            Ok(value) if killed_meanwhile(rt) => {
                drop(value);
                return end_killed(rt, finisher);
            }
            Ok(value) => Ok(value),
            // Killed: its function's frames are unwound, and the greenlet
            // ends here, as a function that caught the kill would (`kill`
            // takes any end of its victim as its death); the finisher's
            // drop records `Killed` for the handle. Raised again instead,
            // the kill unwound a second time, through std's frames: a
            // spawned greenlet's kill took 51,100 instructions instead of
            // 30,600.
            Err(p) if is_kill(p.as_ref()) => return end_killed(rt, finisher),
            Err(p) => Err(JoinError::Panicked(p)),
        };
        // Greenlet-locals go now, while this is still an ordinary hub
        // greenlet: their destructors may block, and a panic in one is
        // this greenlet's to report, through its handle.
        match rt.drop_locals() {
            Ok(()) => {}
            Err(SwitchError::Killed) => {
                // Dropped before the kill's unwinding goes on, which in a
                // destructor would make a panic of its an abort.
                let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(result)));
                panic::resume_unwind(Box::new(GreenletExit::unmarked()))
            }
            Err(SwitchError::Panicked(p)) => result = Err(JoinError::Panicked(p)),
            Err(_) => {}
        }
        finisher.state.finish(&finisher.hub, result);
        finisher.release_state().hand_off_on_finish(rt);
    })?;
    hub.make_ready(greenlet.clone());
    Ok(JoinHandle { greenlet, state })
}

impl<R: 'static> JoinHandle<R> {
    /// Waits (blocking the calling greenlet) until the spawned greenlet
    /// finishes, and returns its value, or why there is none.
    ///
    /// # Errors
    ///
    /// [`JoinError::Panicked`] with the original payload when the greenlet
    /// panicked (or a greenlet-local's destructor did), or an error thrown
    /// into it ended it; [`JoinError::Killed`] when it was killed, before or
    /// while it ran.
    ///
    /// # Panics
    ///
    /// When called from the spawned greenlet itself (it could never
    /// finish), and as any blocking call does (see the [module
    /// docs](super)).
    #[inline(always)]
    pub fn join(self) -> Result<R, JoinError> {
        if !self.state.is_finished() {
            // The runtime, reached once (each reach is a thread-local load
            // and a check).
            let rt = Runtime::get();
            let key = self.greenlet.key();
            assert!(
                rt.current() != key,
                "greenlet::hub: JoinHandle::join called from the greenlet it joins \
                 (it would wait for itself forever)"
            );
            let hub = hub();
            let on = WaitOn::Join {
                greenlet: rt.records().id(key),
            };
            let node = WaitNode::new(on);
            let mut waiter = Waiter::with_node(&hub, &node, None, on, |w| {
                self.state.joiner.set(Some(w));
                JoinLink(&self.state.joiner)
            });
            waiter.wait("JoinHandle::join");
            waiter.end();
        } else {
            // It completes at once: it spends budget, as `wait` does, and
            // yields first when that is spent (a loop of spawns killed
            // before they ran, and joined, would otherwise never let others
            // run). An interruption in that yield (an expired
            // `with_timeout`, a throw) drops the handle with its result, as
            // one during a blocking join does: a caller holding handles in
            // a list yields before it takes one off (see `imap`).
            super::coop();
        }
        self.state.result.take().unwrap_or(Err(JoinError::Killed))
    }

    /// Blocks until the spawned greenlet finishes, without taking its
    /// result: the handle stays usable (`join` then returns at once).
    ///
    /// # Panics
    ///
    /// As [`join`](JoinHandle::join).
    #[inline(always)]
    pub fn wait(&self) {
        self.wait_until(None, "JoinHandle::wait");
    }

    /// Like [`wait`](JoinHandle::wait), but gives up after `timeout`;
    /// returns whether the greenlet finished. After a timeout the handle
    /// is as before: wait again, join or kill it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use greenlet::hub;
    ///
    /// let h = hub::spawn(|| {
    ///     hub::sleep(Duration::from_millis(5));
    ///     "done"
    /// });
    /// assert!(!h.wait_timeout(Duration::from_millis(1)));
    /// assert!(h.wait_timeout(Duration::from_secs(60)));
    /// assert_eq!(h.join().unwrap(), "done");
    /// ```
    ///
    /// # Panics
    ///
    /// As [`join`](JoinHandle::join).
    #[inline(always)]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(deadline_after(timeout), "JoinHandle::wait_timeout")
    }

    #[inline(always)]
    fn wait_until(&self, deadline: Option<Instant>, call: &'static str) -> bool {
        if self.state.is_finished() {
            // It completes at once: it spends budget (a finished greenlet
            // stays finished, so yielding after the look is the same).
            super::coop();
            return true;
        }
        assert!(
            !self.greenlet.is_current(),
            "greenlet::hub: {call} called from the greenlet it waits for \
             (it would wait for itself forever)"
        );
        let hub = hub();
        let on = WaitOn::Join {
            greenlet: self.greenlet.id(),
        };
        let node = WaitNode::new(on);
        let waiters = &self.state.extra().waiters;
        let mut waiter = Waiter::with_node(&hub, &node, deadline, on, |w| WaitersLink {
            waiters,
            node: waiters.borrow_mut().push_back(w),
        });
        match waiter.wait(call) {
            Woken::Ready | Woken::TimedOut => self.state.is_finished(),
        }
    }

    /// Calls `f` once the spawned greenlet has finished, however it ended
    /// (gevent's `link`). Callbacks run in a greenlet of their own, in the
    /// order they were added, soon after the end (or soon after this call
    /// if it already ended). They may block, but the callbacks added
    /// before the end run in turn in one greenlet (gevent spawns one per
    /// link): one that blocks holds back the ones after it, and one that
    /// waits for what a later one does waits for ever. A callback added
    /// after the end runs at once in a greenlet of its own, so it does not
    /// wait for earlier ones still blocked. A callback that panics is
    /// reported on stderr; the ones after it still run.
    ///
    /// The kills that end a program at the end of
    /// [`run_main`](super::run_main) kill the greenlets made meanwhile
    /// too, the callbacks' own among them: the callbacks of a greenlet
    /// ended by those kills are dropped unrun. Cleanup that must happen
    /// then belongs in a destructor on the greenlet's stack (or in a
    /// greenlet-local), which those kills run. (A thread's exit kills
    /// none: it leaves started greenlets suspended, see the crate's
    /// **Threads** rule.)
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use greenlet::hub;
    ///
    /// let seen = Rc::new(Cell::new(false));
    /// let h = hub::spawn(|| 1);
    /// let s = seen.clone();
    /// h.on_finish(move || s.set(true));
    /// hub::run();
    /// assert!(seen.get());
    /// ```
    pub fn on_finish(&self, f: impl FnOnce() + 'static) {
        if self.state.is_finished() {
            run_callbacks(&hub(), vec![Box::new(f)]);
        } else {
            let mut callbacks = self.state.extra().on_finish.borrow_mut();
            callbacks.push(Box::new(f));
        }
    }

    /// Kills the spawned greenlet (see [`Greenlet::kill`]); `join` then
    /// returns [`JoinError::Killed`] unless it had already finished, or
    /// its function caught the kill and blocked again (a refused kill,
    /// see [`Greenlet::kill`]): then what it returns in the end. A
    /// function that catches the kill and returns at once is killed all
    /// the same (its value is dropped).
    ///
    /// As gevent's `kill`, and unlike [`Greenlet::kill`], a panic out of
    /// the greenlet's end (its function caught the kill and panicked, or
    /// the destructor of one of its greenlet-locals, dropped after the
    /// unwinding, panicked or tried to block, which a kill forbids) is the
    /// greenlet's: it is reported on stderr, not raised in the caller. So
    /// is a switch hook's panic on the kill: the hook is removed and the
    /// kill made without it, so the greenlet is dead when this returns (or
    /// it refused). A destructor of its frames that panics while the kill
    /// unwinds them aborts the process, as any panic during an unwinding
    /// does (a blocking call there panics: see the crate's [hostile
    /// use](crate#hostile-use)).
    pub fn kill(&self) {
        kill_spawned(&self.greenlet);
    }

    /// Whether the spawned greenlet has finished (returned, panicked or was
    /// killed).
    pub fn is_finished(&self) -> bool {
        self.state.is_finished()
    }

    /// The spawned greenlet.
    pub fn greenlet(&self) -> &Greenlet {
        &self.greenlet
    }
}

impl<R> fmt::Debug for JoinHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("greenlet", &self.greenlet)
            .field("finished", &self.state.is_finished())
            .finish()
    }
}

/// Kills `g`, a spawned greenlet (see [`JoinHandle::kill`]): a panic of its
/// end is reported on stderr and dropped; so is a switch hook's panic on
/// the kill, which stops it before it began: the hook is removed and the
/// kill made again, so that the greenlet is dead when this returns (unless
/// hooks keep doing so: see `kill_past_the_hook`). A kill or a
/// `with_timeout` interruption of the caller itself unwinds on (a watchdog
/// hook's kill of the caller among them).
pub(super) fn kill_spawned(g: &Greenlet) {
    let kill = || {
        let rt = Runtime::get();
        let (outcome, hooks_panic) = rt.kill_past_the_hook(g.key());
        if let Some(h) = hooks_panic {
            report!(
                "greenlet::hub: the switch hook panicked on the kill of greenlet {} and was \
                 removed (the kill was made without it): {}",
                g.id(),
                payload_message(h.as_ref()).unwrap_or("(non-text payload)")
            );
            crate::error::drop_quietly(h);
        }
        match outcome {
            Some(Ok(())) => {}
            Some(Err(_)) => rt.report_refused(g.key(), "JoinHandle::kill"),
            None => report!(
                "greenlet::hub: switch hooks stopped the kill of greenlet {} again and again \
                 (each one removed set another that panicked); it is left alive",
                g.id()
            ),
        }
    };
    let Err(p) = panic::catch_unwind(AssertUnwindSafe(kill)) else {
        return;
    };
    if is_kill(p.as_ref()) || p.is::<super::timeout::Interrupt>() {
        panic::resume_unwind(p);
    }
    report!(
        "greenlet::hub: greenlet {} panicked as it was killed: {}",
        g.id(),
        payload_message(p.as_ref()).unwrap_or("(non-text payload)")
    );
    crate::error::drop_quietly(p);
}

/// Leaves the waiters list on every exit path of a `wait`.
struct WaitersLink<'a> {
    waiters: &'a RefCell<WaitList>,
    node: usize,
}

// SAFETY: the wait's only copy is its place on the waiters list, which
// `unlink` removes unless `finish` already took it off.
unsafe impl Unlink for WaitersLink<'_> {
    fn unlink(&mut self, _: &Hub, wait: WaitRef, how: Wake) {
        // `finish` took it off the list when it woke it.
        if how != Wake::Ready {
            self.waiters.borrow_mut().remove(self.node, wait);
        }
    }
}

impl<R: 'static> super::wait_any::sealed::Source for JoinHandle<R> {
    fn is_ready(&self) -> bool {
        self.state.is_finished()
    }

    fn ready_stamp(&self) -> u64 {
        self.state.stamp.get()
    }

    fn add_waiter(&self, w: usize) -> usize {
        self.state.extra().waiters.borrow_mut().push_back(w)
    }

    fn remove_waiter(&self, node: usize, w: usize) {
        self.state.extra().waiters.borrow_mut().remove(node, w);
    }

    fn waits_for_caller(&self) -> bool {
        !self.state.is_finished() && self.greenlet.is_current()
    }
}

impl<R: 'static> super::wait_any::Waitable for JoinHandle<R> {}

/// The joiner's place in the state: withdrawn when the join ends.
struct JoinLink<'a>(&'a Cell<Option<WaitRef>>);

// SAFETY: the wait's only copy is the joiner slot, which `unlink` empties
// unless `finish` already took it (or it holds another wait's).
unsafe impl Unlink for JoinLink<'_> {
    fn unlink(&mut self, _: &Hub, wait: WaitRef, _: Wake) {
        if self.0.get() == Some(wait) {
            self.0.set(None);
        }
    }
}
