//! Switch tracing: a per-thread hook that sees every transfer of control
//! ([row 17](crate::semantics)).
//!
//! The hook costs nothing while none is set: setting one raises the
//! runtime's `slow_path_forced` count, which forces every switch onto the
//! slow path, and only the slow path calls the hook.

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use crate::greenlet::Greenlet;
use crate::runtime::{Key, Runtime};

/// A per-thread switch hook; see [`set_switch_hook`].
pub type SwitchHook = Box<dyn FnMut(&SwitchEvent)>;

/// What kind of transfer a [`SwitchEvent`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SwitchKind {
    /// A [`switch`](Greenlet::switch) (including the first one, which starts
    /// the target).
    Switch,
    /// A [`throw`](Greenlet::throw).
    Throw,
    /// A [`kill`](Greenlet::kill) (or the drop of a last handle) unwinding
    /// the target.
    Kill,
    /// The origin returned (or was killed); control goes to its parent or
    /// killer.
    Finish,
    /// The origin panicked; the panic goes to its parent.
    Panic,
}

/// One transfer of control, as seen by the switch hook.
pub struct SwitchEvent {
    /// The greenlet that is giving up control.
    pub origin: Greenlet,
    /// The greenlet that runs next.
    pub target: Greenlet,
    /// Why.
    pub kind: SwitchKind,
}

impl fmt::Debug for SwitchEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwitchEvent")
            .field("origin", &self.origin)
            .field("target", &self.target)
            .field("kind", &self.kind)
            .finish()
    }
}

/// Sets (or, with `None`, clears) this thread's switch hook and returns the
/// previous one.
///
/// The hook runs on the origin's stack just before each transfer of
/// control: switches, throws, kills, and a greenlet's finish or panic. It
/// may not switch itself: a switch or throw from inside the hook returns
/// [`SwitchError::InSwitchHook`](crate::SwitchError::InSwitchHook), and
/// transfers made while it runs (a kill's unwinding, say) are not reported.
/// A hook that replaces or clears itself (or panics) is dropped as part of
/// its call, so the same holds in its destructor.
/// (A switch or throw whose target is the hook's own greenlet, or routes
/// to it through dead greenlets, leaves nothing: it answers at once, as
/// anywhere: a switch with its value back, a throw with
/// `SwitchError::Thrown` of its payload.)
/// It may do anything else (drop handles, reparent, kill): the transfer
/// under way holds its target until it is made, so a target whose last
/// handle the hook dropped still gets the transfer (and is killed once it
/// switches away, as any running greenlet that lost its last handle), and
/// a target the hook killed is routed past, as any dead greenlet (a
/// finish the hook moves so, or by reparenting the finisher, is reported
/// again towards its new receiver). A kill's refusal (a victim that caught
/// its kill switching away) is reported as a `Switch` from the victim to
/// its killer, where control goes. If the
/// origin itself is killed while its hook runs (the hook killed a greenlet
/// that killed it back) and the hook catches that unwinding and returns,
/// the origin has caught a kill: its switch or throw is then the kill's
/// refusal (it goes back to the killer, whose kill returns
/// [`KillRefused`](crate::KillRefused)), not the transfer it began.
/// A hook that panics is removed; the panic propagates to the greenlet that
/// was about to switch (the switch does not happen), or, for a finishing
/// greenlet, for the hub greenlet, and for a kill made while the killer
/// unwinds (a handle dropped during a panic, where a second panic would
/// abort the process), is reported on stderr (and the transfer happens:
/// the hub's loop must go on). While a hook is set, the
/// hub's blocking calls and yields switch to the hub greenlet, which picks
/// the next greenlet, instead of handing control straight to it: the hook
/// sees every such transfer as two switches.
///
/// Called from inside the hook, this sees the slot empty, since the hook
/// is running (it is not in the slot while it runs, so it cannot be
/// handed out): it returns `None`, and what it sets takes effect when
/// the running hook returns, replacing it; `None` there removes the
/// running hook. So "take the hook, then put it back" does not work
/// inside the hook: the running hook stays unless it sets something.
///
/// With no hook set, switches pay nothing for this feature.
///
/// Clearing the hook needs no runtime: from a thread-local destructor that
/// runs after the thread's greenlet runtime was torn down (a guard that
/// clears what it set), it returns `None`, the teardown having dropped the
/// hook. (Setting one there panics, as every call that needs the runtime.)
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use greenlet::{set_switch_hook, Greenlet, SwitchKind};
///
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let log = seen.clone();
/// set_switch_hook(Some(Box::new(move |e| log.borrow_mut().push(e.kind))));
/// let g = Greenlet::new(|x: u32| x + 1);
/// assert_eq!(g.switch::<u32, u32>(1).unwrap(), 2);
/// set_switch_hook(None);
/// assert_eq!(*seen.borrow(), [SwitchKind::Switch, SwitchKind::Finish]);
/// ```
pub fn set_switch_hook(hook: Option<SwitchHook>) -> Option<SwitchHook> {
    if hook.is_none() && Runtime::try_get().is_none() {
        // A thread-local's destructor that runs after the thread's
        // teardown (a guard that clears the hook): nothing is set.
        return None;
    }
    Runtime::get().tracer().replace(hook)
}

/// Where `hook`'s closure lives: it stays put while the box moves.
pub(crate) fn hook_addr(hook: &SwitchHook) -> *const () {
    &**hook as *const dyn FnMut(&SwitchEvent) as *const ()
}

/// The hook slot of one thread's runtime.
pub(crate) struct Tracer {
    hook: UnsafeCell<Option<SwitchHook>>,
    /// A hook is set (it may be lent out to a running call).
    set: Cell<bool>,
    /// A hook call is under way.
    running: Cell<bool>,
    /// The greenlet on whose stack the running hook call runs (the one
    /// whose transfer it reports).
    runs_on: Cell<Option<Key>>,
    /// The address of the hook lent out to the running call (see
    /// `hook_addr`).
    lent: Cell<*const ()>,
}

impl Tracer {
    pub(crate) const fn new() -> Tracer {
        Tracer {
            hook: UnsafeCell::new(None),
            set: Cell::new(false),
            running: Cell::new(false),
            runs_on: Cell::new(None),
            lent: Cell::new(std::ptr::null()),
        }
    }

    /// Takes the hook out (the thread is exiting: it is dropped while the
    /// runtime can still serve its destructor).
    pub(crate) fn take(&self) -> Option<SwitchHook> {
        self.replace(None)
    }

    /// The address of the installed hook's closure (null if none), also
    /// while it is lent out to its own call: what tells a hook installed
    /// by this crate (the hub's monitor) whether it is still the one.
    pub(crate) fn hook_addr(&self) -> *const () {
        // SAFETY: as in `replace`; only read, and no reference outlives
        // this call.
        match unsafe { &*self.hook.get() } {
            Some(hook) => hook_addr(hook),
            None if self.set.get() && self.running.get() => self.lent.get(),
            None => std::ptr::null(),
        }
    }

    /// Whether a hook is set.
    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Whether a hook call is under way (switching is refused then).
    pub(crate) fn running(&self) -> bool {
        self.running.get()
    }

    /// Whether a hook call is under way on `key`'s stack.
    pub(crate) fn runs_on(&self, key: Key) -> bool {
        self.running.get() && self.runs_on.get() == Some(key)
    }

    fn replace(&self, hook: Option<SwitchHook>) -> Option<SwitchHook> {
        let now = hook.is_some();
        // SAFETY: the slot is only touched here and in `emit`, neither of
        // which holds a reference to it while user code runs.
        let old = unsafe { std::mem::replace(&mut *self.hook.get(), hook) };
        if now != self.set.get() {
            self.set.set(now);
            Runtime::get().force_slow_path(now);
        }
        if let Some(old) = &old {
            // The hub's monitor hears only through its hook: taken out,
            // its watchdog would see no switch at all.
            crate::hub::monitor_hook_taken_out(hook_addr(old));
        }
        old
    }

    /// Reports a transfer to the hook, if one is set and none is running.
    /// Returns the hook's panic, if it panicked (the hook is then removed).
    #[cold]
    pub(crate) fn emit(
        &self,
        origin: Key,
        target: Key,
        kind: SwitchKind,
    ) -> Result<(), Box<dyn std::any::Any + Send>> {
        if !self.set.get() || self.running.get() {
            return Ok(());
        }
        // SAFETY: as in `replace`; the hook is moved out for the call, so
        // a `set_switch_hook` from inside it sees an empty slot.
        let Some(mut hook) = (unsafe { (*self.hook.get()).take() }) else {
            return Ok(());
        };
        let event = SwitchEvent {
            origin: Greenlet::from_key(origin),
            target: Greenlet::from_key(target),
            kind,
        };
        // While the hook runs every switch takes the slow path, which
        // refuses it, even if the hook clears itself (which lifts the
        // forcing that `set` put up).
        let rt = Runtime::get();
        rt.force_slow_path(true);
        self.running.set(true);
        self.runs_on.set(Some(rt.current()));
        self.lent.set(hook_addr(&hook));
        // A panic of the hook on a greenlet being killed is listed as that
        // greenlet's own unwinding (see `Runtime::note_panic`), which ends
        // where it is caught: here.
        let me = rt.current();
        let listed = rt.own_panic_listed(me);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| hook(&event)));
        self.lent.set(std::ptr::null());
        // The hook goes back unless the call replaced or cleared it, or it
        // panicked (but for a kill of the origin, a watchdog's, which is
        // not the hook's failure: the kill unwinds on).
        let kept = match &outcome {
            Ok(()) => true,
            Err(p) => p.is::<crate::value::GreenletExit>(),
        };
        // SAFETY: as above.
        let slot = unsafe { &mut *self.hook.get() };
        let gone = if kept && slot.is_none() && self.set.get() {
            *slot = Some(hook);
            None
        } else {
            Some(hook)
        };
        // A hook that goes is dropped as part of its call, still marked
        // running: its destructor cannot switch either (it gets
        // `InSwitchHook`, as the hook does). Switching there, it let
        // other greenlets run (and kill the origin, or finish through the
        // same slot) between what the caller decided before the hook (may
        // it leave; where to; which stack to recycle) and its jump. A
        // panic there is the hook's.
        let dropped = panic::catch_unwind(AssertUnwindSafe(move || drop(gone)));
        if (outcome.is_err() || dropped.is_err()) && !listed {
            rt.own_panic_caught(me);
        }
        self.running.set(false);
        self.runs_on.set(None);
        rt.force_slow_path(false);
        drop(event);
        let outcome = match (outcome, dropped) {
            (Ok(()), Err(p)) => Err(p),
            (Err(p), Err(again)) => {
                crate::error::drop_quietly(again);
                Err(p)
            }
            (outcome, Ok(())) => outcome,
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(p) if kept => Err(p),
            Err(p) => {
                // SAFETY: as above.
                let replaced = unsafe { (*self.hook.get()).is_some() };
                if !replaced && self.set.get() {
                    self.set.set(false);
                    Runtime::get().force_slow_path(false);
                }
                Err(p)
            }
        }
    }
}
