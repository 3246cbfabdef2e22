//! [`CurrentGreenlet`]: the handle [`Greenlet::current`] returns.
//!
//! A greenlet's suspended frame that holds an ordinary handle to that same
//! greenlet keeps it alive: Python's translation
//! `getcurrent().parent.switch(v)` written as
//! `Greenlet::current().parent().unwrap().switch(v)` keeps the temporary
//! from `current()` alive across the switch, so dropping every other handle
//! would no longer kill the greenlet (Python's garbage collector sees
//! through such self-references; reference counts do not). So `current()`
//! returns a handle that does not count as a reference: it keeps the
//! greenlet's *record* (so its key is never reused under it), not the
//! greenlet. Everything a `Greenlet` does, it does, through `Deref`; clone
//! it to get an ordinary, counting handle.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;

use crate::greenlet::Greenlet;
use crate::runtime::Runtime;

/// The running greenlet, as [`Greenlet::current`] returns it: a handle
/// that does not keep the greenlet alive.
///
/// It derefs to [`Greenlet`], so it switches, throws, kills and answers
/// queries like one. It differs in one way: it does not count as a
/// reference, so a greenlet whose only handles are the `CurrentGreenlet`s
/// on its own stack is unreachable, and dropping its last ordinary handle
/// kills it as usual — even while it is suspended in
/// `Greenlet::current().parent().unwrap().switch(v)`. A `CurrentGreenlet`
/// that outlives its greenlet still works as the handle of a dead greenlet:
/// a switch through it goes to the dead greenlet's parent, so, like any
/// dead greenlet's record, it keeps that parent link, which counts. So,
/// kept in a suspended parent's frame, a finished child's
/// `CurrentGreenlet` (as an ordinary handle of the child would) is a
/// cycle: it keeps the parent alive for good. Let it go once the child
/// has finished.
/// To keep the greenlet alive from elsewhere (a queue of waiters, another
/// greenlet), store a clone: `Greenlet::current().clone()` is an ordinary
/// [`Greenlet`].
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use greenlet::Greenlet;
///
/// struct Guard(Rc<Cell<bool>>);
/// impl Drop for Guard {
///     fn drop(&mut self) {
///         self.0.set(true);
///     }
/// }
///
/// let dropped = Rc::new(Cell::new(false));
/// let flag = dropped.clone();
/// let g = Greenlet::new(move |()| {
///     let _guard = Guard(flag);
///     // The temporary from `current()` lives across this switch.
///     let _: () = Greenlet::current().parent().unwrap().switch(()).unwrap();
/// });
/// g.switch::<(), ()>(()).unwrap();
/// drop(g); // the last ordinary handle: the greenlet is killed
/// assert!(dropped.get());
/// ```
pub struct CurrentGreenlet {
    /// Not counted (see the module docs); never dropped as a `Greenlet`.
    handle: ManuallyDrop<Greenlet>,
}

impl CurrentGreenlet {
    pub(crate) fn new() -> CurrentGreenlet {
        let rt = Runtime::get();
        let key = rt.current();
        rt.pin(key);
        CurrentGreenlet {
            handle: ManuallyDrop::new(Greenlet::from_uncounted(key)),
        }
    }
}

impl Deref for CurrentGreenlet {
    type Target = Greenlet;

    fn deref(&self) -> &Greenlet {
        &self.handle
    }
}

impl Drop for CurrentGreenlet {
    fn drop(&mut self) {
        // After the thread's runtime is torn down there is nothing to free.
        if let Some(rt) = Runtime::try_get() {
            rt.unpin(self.handle.key());
        }
    }
}

impl From<CurrentGreenlet> for Greenlet {
    /// An ordinary, counting handle to the same greenlet.
    fn from(current: CurrentGreenlet) -> Greenlet {
        (*current).clone()
    }
}

impl PartialEq for CurrentGreenlet {
    fn eq(&self, other: &CurrentGreenlet) -> bool {
        **self == **other
    }
}

impl PartialEq<Greenlet> for CurrentGreenlet {
    fn eq(&self, other: &Greenlet) -> bool {
        **self == *other
    }
}

impl PartialEq<CurrentGreenlet> for Greenlet {
    fn eq(&self, other: &CurrentGreenlet) -> bool {
        *self == **other
    }
}

impl Eq for CurrentGreenlet {}

impl fmt::Debug for CurrentGreenlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
