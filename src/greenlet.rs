//! The `Greenlet` handle and its `Builder`.

use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::marker::PhantomData;
use std::rc::Rc;

use crate::current::CurrentGreenlet;
use crate::error::{into_payload, KillRefused, ParentError, SwitchError};
use crate::runtime::{Key, Runtime, State};

/// A handle to a greenlet: a function running on its own stack, which runs
/// only when something switches to it.
///
/// Handles are cheap to clone and compare equal when they name the same
/// greenlet. A greenlet lives while something refers to it: a handle, a
/// child whose parent it is, or a greenlet it is killing. Dropping the last
/// handle of a suspended greenlet kills it (see [`kill`](Greenlet::kill));
/// an unstarted one is discarded without running its function.
///
/// Greenlets belong to the thread that made them; the handle is neither
/// `Send` nor `Sync`:
///
/// ```compile_fail
/// fn needs_send<T: Send>(_: T) {}
/// needs_send(greenlet::Greenlet::current());
/// ```
///
/// ```compile_fail
/// fn needs_sync<T: Sync>(_: T) {}
/// needs_sync(greenlet::Greenlet::current());
/// ```
pub struct Greenlet {
    key: Key,
    /// Thread affinity: `*const ()` is neither `Send` nor `Sync`.
    _thread: PhantomData<*const ()>,
}

/// Configures a greenlet before creating it: name, stack size, parent.
///
/// ```
/// use greenlet::Greenlet;
///
/// let g = Greenlet::builder()
///     .name("worker")
///     .stack_size(256 * 1024)
///     .build(|x: u32| x * 2)?;
/// assert_eq!(g.name().as_deref(), Some("worker"));
/// assert_eq!(g.switch::<u32, u32>(21).unwrap(), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Default, Debug)]
pub struct Builder {
    name: Option<Rc<str>>,
    stack_size: Option<usize>,
    parent: Option<Greenlet>,
}

impl Builder {
    /// A builder with no name, the default stack size and the current
    /// greenlet as parent.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the greenlet (shown by `Debug` and error messages).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(Rc::from(name.into()));
        self
    }

    /// Usable stack size in bytes; the default is the thread's
    /// [`StackPolicy::stack_size`](crate::StackPolicy::stack_size),
    /// [`DEFAULT_STACK_SIZE`](crate::DEFAULT_STACK_SIZE) (1 MiB) unless
    /// set. Only stacks of the policy's size are pooled for reuse; others
    /// are mapped for the greenlet and unmapped when it dies. A size below
    /// [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE) is raised to it.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// The greenlet that receives this one's result (default: the current
    /// greenlet at `build` time).
    pub fn parent(mut self, parent: &Greenlet) -> Builder {
        self.parent = Some(parent.clone());
        self
    }

    /// Creates the greenlet, unstarted. The first switch to it calls `f`
    /// with the switched value.
    ///
    /// The stack is taken here (from the thread's pool, or freshly mapped),
    /// so a switch never fails for want of one. When the OS refuses a new
    /// stack the error is returned as is: typically `ENOMEM` from `mmap` or
    /// `mprotect` once the process reaches the kernel's limit on memory
    /// mappings (`vm.max_map_count`, 65,530 on a stock Linux; on kernels
    /// without lightweight guard pages each guarded stack takes two
    /// mappings, so about 32,000 greenlets), or when memory runs out. Raise
    /// the limit with `sysctl -w vm.max_map_count=...`.
    ///
    /// # Errors
    ///
    /// The OS's error when no stack can be had, as described above (a
    /// stack size too large to map gives `OutOfMemory` too), or
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for one larger than
    /// half the address space can express (see
    /// [`StackPolicy::stack_size`](crate::StackPolicy::stack_size)).
    pub fn build<F, A, R>(self, f: F) -> io::Result<Greenlet>
    where
        F: FnOnce(A) -> R + 'static,
        A: 'static,
        R: 'static,
    {
        let parent = self.parent.as_ref().map(|p| p.key);
        self.build_with::<F, A, R, false>(parent, f)
    }

    /// [`build`](Builder::build) for a hub spawn: `parent` (the hub) as the
    /// parent, whatever the builder says, and without taking a handle to
    /// it; the greenlet keeps its own outcome (its `JoinHandle` gets it).
    #[inline(always)]
    pub(crate) fn build_spawned<F, A, R>(self, parent: &Greenlet, f: F) -> io::Result<Greenlet>
    where
        F: FnOnce(A) -> R + 'static,
        A: 'static,
        R: 'static,
    {
        self.build_with::<F, A, R, true>(Some(parent.key), f)
    }

    /// Both builds: `parent`, or the current greenlet when `None`; `OWNS`
    /// for a hub spawn, which keeps its own outcome (see `build_spawned`).
    #[inline]
    fn build_with<F, A, R, const OWNS: bool>(
        self,
        parent: Option<Key>,
        f: F,
    ) -> io::Result<Greenlet>
    where
        F: FnOnce(A) -> R + 'static,
        A: 'static,
        R: 'static,
    {
        crate::panic_hook::note_greenlet_thread();
        let rt = Runtime::get();
        let parent = parent.unwrap_or_else(|| rt.current());
        let key = rt.create::<F, A, R, OWNS>(f, self.name, self.stack_size, parent)?;
        Ok(Greenlet::from_new_ref(key))
    }
}

impl Greenlet {
    /// Creates an unstarted greenlet whose parent is the current greenlet
    /// ([row 1](crate::semantics)). Nothing runs until the first [`switch`](Greenlet::switch),
    /// whose value becomes `f`'s argument ([rows 2 and 3](crate::semantics)).
    ///
    /// ```
    /// use greenlet::Greenlet;
    ///
    /// let g = Greenlet::new(|name: &'static str| format!("hello, {name}"));
    /// assert!(!g.is_started());
    /// let reply: String = g.switch("world").unwrap();
    /// assert_eq!(reply, "hello, world");
    /// assert!(g.is_dead());
    /// ```
    ///
    /// # Panics
    ///
    /// When no stack can be had; the message names the mapping limit and its
    /// remedy. Use [`Builder::build`] to get the `io::Error` instead.
    pub fn new<F, A, R>(f: F) -> Greenlet
    where
        F: FnOnce(A) -> R + 'static,
        A: 'static,
        R: 'static,
    {
        match Builder::new().build(f) {
            Ok(g) => g,
            Err(e) => panic!(
                "greenlet: cannot allocate a stack for a new greenlet: {e}. \
                 Greenlet stacks take memory mappings (two each on kernels without \
                 lightweight guard pages) and Linux limits a process to \
                 vm.max_map_count of them (65530 by default, about 32,000 greenlets \
                 there); raise it with `sysctl -w vm.max_map_count=N`. Or the address \
                 space ran out: see `ulimit -v` and the thread's StackPolicy::stack_size. \
                 Greenlet::builder().build(..) returns the error instead"
            ),
        }
    }

    /// A [`Builder`] for a named greenlet, a custom stack size or parent.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The greenlet running now ([row 13](crate::semantics)). On a thread that has not used
    /// greenlets yet, this is its main greenlet, created on the spot.
    ///
    /// The handle derefs to `Greenlet` but does not keep the greenlet
    /// alive (see [`CurrentGreenlet`]): so the direct translation of
    /// Python's `getcurrent().parent.switch(v)`,
    /// `Greenlet::current().parent().unwrap().switch(v)`, leaves nothing
    /// in the suspended frame that keeps the greenlet from being killed
    /// when its last outside handle goes. Store `Greenlet::current().clone()`
    /// (an ordinary handle) to keep it alive from elsewhere.
    ///
    /// ```
    /// use greenlet::Greenlet;
    ///
    /// let g = Greenlet::new(|()| {
    ///     let parent = Greenlet::current().parent().unwrap();
    ///     assert!(parent.is_main());
    ///     let me: Greenlet = Greenlet::current().clone(); // counts
    ///     me.id()
    /// });
    /// assert!(g.switch::<(), u64>(()).unwrap() > 0);
    /// ```
    pub fn current() -> CurrentGreenlet {
        CurrentGreenlet::new()
    }

    /// An ordinary (counting) handle to the running greenlet.
    pub(crate) fn current_owned() -> Greenlet {
        let rt = Runtime::get();
        let key = rt.current();
        rt.add_handle_ref(key);
        Greenlet::from_new_ref(key)
    }

    /// A handle whose reference is not counted; only `CurrentGreenlet`
    /// makes one, and never drops it as a `Greenlet`.
    pub(crate) fn from_uncounted(key: Key) -> Greenlet {
        Greenlet::from_new_ref(key)
    }

    /// This thread's main greenlet: the thread's own stack. It has no
    /// parent and never dies.
    pub fn main() -> Greenlet {
        let rt = Runtime::get();
        let main = rt.main_key();
        rt.add_handle_ref(main);
        Greenlet::from_new_ref(main)
    }

    /// A new handle to a live key (counts a reference).
    pub(crate) fn from_key(key: Key) -> Greenlet {
        Runtime::get().add_handle_ref(key);
        Greenlet::from_new_ref(key)
    }

    /// The key, for crate-internal bookkeeping.
    pub(crate) fn key(&self) -> Key {
        self.key
    }

    /// Wraps a key whose reference count already includes this handle.
    fn from_new_ref(key: Key) -> Greenlet {
        Greenlet {
            key,
            _thread: PhantomData,
        }
    }

    /// Switches to this greenlet, sending `value`, and returns the value that
    /// is later switched back here — by any greenlet, not necessarily this
    /// one ([row 4](crate::semantics)).
    ///
    /// - Unstarted: `value` becomes its function's argument. If its type is
    ///   not the argument type, nothing runs, the greenlet stays unstarted
    ///   and this returns [`SwitchError::TypeMismatch`].
    /// - The current greenlet: returns `value` at once, no stack switch
    ///   ([row 5](crate::semantics); `TypeMismatch` if `T` is not `R`).
    /// - Dead: goes up its parent chain to the first greenlet that is not
    ///   dead ([row 8](crate::semantics)), which may be the caller itself (then as [row 5](crate::semantics)).
    ///
    /// What arrives is checked against `R` by `TypeId`: a value of another
    /// type is dropped and reported as [`SwitchError::TypeMismatch`]; a
    /// greenlet's panic, a throw and a kill arrive as the matching variants.
    /// A greenlet that is unwinding (a panic or a kill) cannot switch away:
    /// it gets [`SwitchError::Unwinding`] and `value` is dropped.
    ///
    /// Values cross without heap allocation.
    ///
    /// # Errors
    ///
    /// What arrived instead of an `R`, as described above.
    ///
    /// # Panics
    ///
    /// When the switch hook (see [`set_switch_hook`](crate::set_switch_hook))
    /// panics, the hook is removed and its panic resumes here, the value
    /// dropped. When a greenlet being killed by this one is reaped on the
    /// way and answers its kill with a panic, that panic resumes here. When
    /// the value arriving here has the wrong type and its destructor
    /// panics, that panic resumes here after the bookkeeping; but when
    /// this greenlet unwinds a panic already (a switch made by a
    /// destructor), where a second panic out of that destructor would
    /// abort the process, the destructor's panic is reported on stderr
    /// and the switch returns its error. So is the panic of a value that a
    /// switch made while the thread unwinds leaves behind: refused (the
    /// value dropped), or come back to its sender with the wrong type (a
    /// switch to oneself). (Inside the hub greenlet, which
    /// must not unwind, it is reported as every panic that reaches the
    /// hub; in a greenlet blocked in a hub call, the call unwinds as for
    /// any panic that reaches it there.)
    #[inline(always)]
    pub fn switch<T: 'static, R: 'static>(&self, value: T) -> Result<R, SwitchError> {
        Runtime::get().switch(self.key, value)
    }

    /// Switches to this greenlet and makes its pending switch return
    /// `Err(SwitchError::Thrown(error))` ([row 10](crate::semantics)).
    ///
    /// - Unstarted: it dies without running its function, and the error
    ///   goes to its parent (which may be the caller, whose `throw` then
    ///   returns it). The function is dropped on the greenlet's own stack
    ///   first: a destructor there that switches away leaves it active,
    ///   and the error goes on when it is switched back to.
    /// - Dead: the error goes up the parent chain to the first greenlet that
    ///   is not dead.
    /// - The current greenlet (or routed back to it): returns
    ///   `Err(SwitchError::Thrown(error))` at once.
    ///
    /// `error` is boxed as the payload, except a `Box<dyn Any + Send>` or
    /// a generator's [`Thrown`](crate::Thrown), which is the payload as it
    /// is: a payload received in `SwitchError::Thrown` or
    /// `SwitchError::Panicked` (or caught by `catch_unwind`, or handed out
    /// by a generator) is passed on unchanged, not nested in a second box.
    ///
    /// ```
    /// use greenlet::{Greenlet, SwitchError};
    ///
    /// let inner = Greenlet::new(|()| -> () { panic!("disk full") });
    /// let Err(SwitchError::Panicked(payload)) = inner.switch::<(), ()>(()) else {
    ///     unreachable!()
    /// };
    /// // Re-throw the panic's payload into another greenlet.
    /// let outer = Greenlet::new(|()| match Greenlet::main().switch::<(), ()>(()) {
    ///     Err(e) => e.message().map(String::from),
    ///     Ok(()) => None,
    /// });
    /// outer.switch::<(), ()>(()).unwrap();
    /// let message: Option<String> = outer.throw(payload).unwrap();
    /// assert_eq!(message.as_deref(), Some("disk full"));
    /// ```
    ///
    /// # Errors
    ///
    /// What arrives back here instead of an `R` (for a throw that comes
    /// back, `SwitchError::Thrown` with the payload).
    ///
    /// # Panics
    ///
    /// As for [`switch`](Greenlet::switch): a panicking switch hook's
    /// panic resumes here, as does a destructor's panic in a value of the
    /// wrong type that arrives here.
    pub fn throw<E: Any + Send, R: 'static>(&self, error: E) -> Result<R, SwitchError> {
        Runtime::get().throw(self.key, into_payload(error))
    }

    /// Kills this greenlet now ([row 11](crate::semantics)): its stack is unwound, every
    /// destructor on it runs, and control returns to the caller; the
    /// greenlet is dead afterwards.
    ///
    /// The unwinding is a panic payload of a private type raised with
    /// `std::panic::resume_unwind` at the victim's pending switch, so no
    /// panic message is printed and only an explicit `catch_unwind` can
    /// intercept it. While it unwinds, the victim cannot switch away
    /// (its switches return [`SwitchError::Unwinding`]), so the kill always
    /// completes; its destructors may create and kill other greenlets (a
    /// kill comes back), but not switch into them. That holds until it is
    /// dead: for the destructors of its greenlet-locals, dropped after the
    /// unwinding, and of the function of an unstarted victim, dropped unrun.
    ///
    /// - Unstarted: its function is dropped without running.
    /// - Dead, main, or already being killed: nothing happens.
    /// - The current greenlet: unwinds the caller itself (this call does not
    ///   return); its parent receives [`SwitchError::Killed`].
    /// - If the victim's function catches the unwind and returns, its value
    ///   is dropped; if it panics, the panic resumes in the caller.
    ///
    /// # Panics
    ///
    /// When the victim answers the kill with a panic (its function caught
    /// the unwinding and panicked), that panic resumes in the caller; so
    /// does the panic of a switch hook, which is then removed. In a build
    /// with `panic = "abort"` a kill of a started greenlet cannot unwind:
    /// it prints why and aborts the process.
    pub fn kill(&self) {
        let rt = Runtime::get();
        if rt.kill(self.key).is_err() {
            rt.report_refused(self.key, "Greenlet::kill");
        }
    }

    /// Kills this greenlet as [`kill`](Greenlet::kill) does, and says
    /// whether the victim refused.
    ///
    /// A victim refuses when its code catches the unwinding (with
    /// `std::panic::catch_unwind`) and then switches away instead of
    /// finishing. Python lets such a greenlet live on; so does this crate,
    /// but it never lets the killer hang: the victim's switch does not go
    /// where it asked but back to the killer, whose kill returns
    /// [`KillRefused`]. The victim stays suspended at that switch, alive,
    /// until something switches to it or kills it again; its value is
    /// dropped then, as the switch returns (on the victim, no longer
    /// dying: a destructor that switches makes an ordinary switch).
    /// [`kill`](Greenlet::kill) and the drop of a last handle report a
    /// refusal on stderr instead, naming the greenlet.
    ///
    /// A kill issued while the killer itself unwinds a panic (from a
    /// destructor) can be refused too, once the victim has dropped the
    /// payload it caught: until then its switches fail with
    /// [`SwitchError::Unwinding`](crate::SwitchError::Unwinding), because
    /// std tells the victim's unwinding from its killer's by nothing else
    /// (a victim that keeps the payload to raise it again later cannot
    /// switch before).
    ///
    /// # Errors
    ///
    /// [`KillRefused`] when the victim caught the kill and switched away.
    ///
    /// # Panics
    ///
    /// As for [`kill`](Greenlet::kill).
    ///
    /// ```
    /// use std::panic::{catch_unwind, AssertUnwindSafe};
    /// use greenlet::{Greenlet, KillRefused};
    ///
    /// let stubborn = Greenlet::new(|()| loop {
    ///     let main = Greenlet::main();
    ///     // Catching the kill and switching again refuses it.
    ///     let _ = catch_unwind(AssertUnwindSafe(|| main.switch::<(), ()>(())));
    /// });
    /// stubborn.switch::<(), ()>(()).unwrap();
    /// assert_eq!(stubborn.try_kill(), Err(KillRefused));
    /// assert!(stubborn.is_active()); // suspended, alive
    /// ```
    pub fn try_kill(&self) -> Result<(), KillRefused> {
        Runtime::get().kill(self.key).map_err(|_| KillRefused)
    }

    /// The greenlet that receives this one's result; `None` for main.
    pub fn parent(&self) -> Option<Greenlet> {
        let rt = Runtime::get();
        let parent = rt.parent_of(self.key)?;
        rt.add_handle_ref(parent);
        Some(Greenlet::from_new_ref(parent))
    }

    /// Makes `parent` the greenlet that receives this one's result ([row 9](crate::semantics)).
    /// Allowed in any state. Refused, leaving the old parent, when `parent`
    /// is this greenlet or one of its descendants ([`ParentError::Cycle`])
    /// or when this is the main greenlet ([`ParentError::Main`]).
    ///
    /// # Errors
    ///
    /// [`ParentError::Main`] for the main greenlet, [`ParentError::Cycle`]
    /// when `parent` is this greenlet or one of its descendants.
    pub fn set_parent(&self, parent: &Greenlet) -> Result<(), ParentError> {
        if self.key == Runtime::get().main_key() {
            return Err(ParentError::Main);
        }
        if Runtime::get().set_parent(self.key, parent.key) {
            Ok(())
        } else {
            Err(ParentError::Cycle)
        }
    }

    /// Whether it has ever been switched to (dead greenlets count as started).
    pub fn is_started(&self) -> bool {
        self.state() != State::Unstarted
    }

    /// Running or suspended: started and not dead.
    pub fn is_active(&self) -> bool {
        self.state() == State::Active
    }

    /// Returned, panicked, or killed.
    pub fn is_dead(&self) -> bool {
        self.state() == State::Dead
    }

    /// Whether this is its thread's main greenlet.
    pub fn is_main(&self) -> bool {
        self.key == Runtime::get().main_key()
    }

    /// Whether this greenlet is the one running now.
    #[inline]
    pub fn is_current(&self) -> bool {
        Runtime::get().current() == self.key
    }

    /// Whether this is the current greenlet or one of its ancestors: one
    /// the current greenlet runs under (a generator's consumer, while its
    /// producer runs), which a kill-them-all spares as it spares the
    /// caller (killed, a consumer closes its generator: the caller).
    pub(crate) fn is_current_or_above(&self) -> bool {
        let rt = Runtime::get();
        let mut key = Some(rt.current());
        while let Some(k) = key {
            if k == self.key {
                return true;
            }
            key = rt.parent_of(k);
        }
        false
    }

    /// The name given to the builder (`"main"` for the main greenlet).
    pub fn name(&self) -> Option<Rc<str>> {
        Runtime::get().records().name(self.key)
    }

    /// A number that identifies the greenlet for its thread's lifetime
    /// (main is 0; never reused).
    #[inline]
    pub fn id(&self) -> u64 {
        Runtime::get().records().id(self.key)
    }

    fn state(&self) -> State {
        Runtime::get().records().state(self.key)
    }
}

/// Switches to `target` with `value`; the same as `target.switch(value)`.
///
/// # Errors
///
/// As [`Greenlet::switch`].
///
/// # Panics
///
/// As [`Greenlet::switch`].
// Inlined to the switch (see `hub/wait.rs`).
#[inline(always)]
pub fn switch<T: 'static, R: 'static>(target: &Greenlet, value: T) -> Result<R, SwitchError> {
    target.switch(value)
}

/// The greenlet running now; the same as [`Greenlet::current`].
pub fn current() -> CurrentGreenlet {
    Greenlet::current()
}

impl Clone for Greenlet {
    #[inline]
    fn clone(&self) -> Greenlet {
        Runtime::get().add_handle_ref(self.key);
        Greenlet::from_new_ref(self.key)
    }
}

impl Drop for Greenlet {
    fn drop(&mut self) {
        // After the thread's runtime is torn down there is nothing to free.
        if let Some(rt) = Runtime::try_get() {
            rt.release_ref(self.key);
        }
    }
}

impl PartialEq for Greenlet {
    fn eq(&self, other: &Greenlet) -> bool {
        // A key stays taken while any handle to it exists, so equal keys
        // mean the same greenlet.
        self.key == other.key
    }
}

impl Eq for Greenlet {}

impl Hash for Greenlet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl fmt::Debug for Greenlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(rt) = Runtime::try_get() else {
            return f.write_str("Greenlet(<thread exited>)");
        };
        let records = rt.records();
        let (id, name, state) = (
            records.id(self.key),
            records.name(self.key),
            records.state(self.key),
        );
        let state = match state {
            State::Unstarted => "unstarted",
            State::Active if rt.current() == self.key => "running",
            State::Active => "suspended",
            State::Dead => "dead",
        };
        let mut d = f.debug_struct("Greenlet");
        d.field("id", &id);
        if let Some(name) = name {
            d.field("name", &name);
        }
        d.field("state", &format_args!("{state}")).finish()
    }
}
