//! Generators: a function on its own greenlet that hands out values one at a
//! time, exposed as an `Iterator`.
//!
//! The producer runs on a greenlet whose parent is the consumer (the
//! greenlet calling `next`). A yield is a plain switch of the item to the
//! parent, so items travel like any switched value (in a register when they
//! fit). When the producer returns, its value goes into a slot shared with
//! the generator, and its greenlet finishes with a private `End` marker,
//! which reaches the consumer's pending switch as a type mismatch; the
//! consumer knows it is the end because the producer is then dead. Because
//! the producer is an ordinary greenlet, it may call anything, to any depth,
//! including blocking calls of the [`hub`](crate::hub), and dropping the
//! generator early kills it, so the destructors on its stack run.

use std::cell::Cell;
use std::marker::PhantomData;
use std::panic;
use std::rc::Rc;

use crate::error::SwitchError;
use crate::greenlet::Greenlet;
use crate::runtime::{Key, Runtime};

/// What the producer's greenlet returns after storing the return value.
struct End;

/// Lets a generator's producer hand out values; see [`Generator`].
pub struct Yielder<Y> {
    /// The producer's greenlet.
    key: Key,
    _item: PhantomData<fn(Y)>,
}

impl<Y: 'static> Yielder<Y> {
    /// Hands `item` to the consumer and waits until it asks for the next one.
    ///
    /// # Panics
    ///
    /// When called from a greenlet other than the generator's own (a
    /// yielder cannot be used from a greenlet the producer switched to).
    // Inlining the switch into the producer's own frame keeps call/return
    // pairs from straddling the stack switch (which costs the CPU's return
    // predictions several nanoseconds per item); debug builds skip it so a
    // deeply recursive producer keeps small frames.
    #[cfg_attr(debug_assertions, inline)]
    #[cfg_attr(not(debug_assertions), inline(always))]
    pub fn yield_(&self, item: Y) {
        let rt = Runtime::get();
        assert!(
            rt.current() == self.key,
            "greenlet::Yielder::yield_ called outside its generator's greenlet"
        );
        let consumer = rt.parent_of(self.key);
        // The consumer resumes us with `()` (`next`) or kills us (drop),
        // which unwinds from here; anything else is a misuse of the
        // generator's greenlet by other code.
        if let Err(e) = rt.switch::<Y, ()>(consumer, item) {
            panic!("greenlet::Generator: the producer was resumed with an error: {e}");
        }
    }
}

/// A producer function, run on its own greenlet, seen as an `Iterator` of
/// the values it yields; its return value is kept for
/// [`return_value`](Generator::return_value).
///
/// ```
/// use greenlet::{Generator, Yielder};
///
/// fn countdown(y: &Yielder<u32>, from: u32) {
///     for i in (1..=from).rev() {
///         y.yield_(i); // from any depth of calls
///     }
/// }
///
/// let mut g = Generator::new(|y: &Yielder<u32>| {
///     countdown(y, 3);
///     "liftoff"
/// });
/// assert_eq!(g.by_ref().collect::<Vec<_>>(), [3, 2, 1]);
/// assert_eq!(g.return_value(), Some("liftoff"));
/// ```
///
/// The producer's panic resumes in the consumer's `next`. Dropping the
/// generator before it finishes unwinds the producer's stack.
pub struct Generator<Y: 'static, R: 'static = ()> {
    greenlet: Greenlet,
    done: bool,
    returned: Rc<Cell<Option<R>>>,
    _item: PhantomData<fn() -> Y>,
}

impl<Y: 'static, R: 'static> Generator<Y, R> {
    /// A generator that runs `producer` on a new greenlet (default stack
    /// size) once the first item is asked for.
    ///
    /// # Panics
    ///
    /// As [`Greenlet::new`], when no stack can be had.
    pub fn new<F>(producer: F) -> Generator<Y, R>
    where
        F: FnOnce(&Yielder<Y>) -> R + 'static,
    {
        let returned = Rc::new(Cell::new(None));
        let slot = returned.clone();
        let greenlet = Greenlet::new(move |()| {
            let yielder = Yielder {
                key: Runtime::get().current(),
                _item: PhantomData,
            };
            slot.set(Some(producer(&yielder)));
            End
        });
        Generator {
            greenlet,
            done: false,
            returned,
            _item: PhantomData,
        }
    }

    /// The producer's return value, once it has finished (taken once).
    pub fn return_value(&mut self) -> Option<R> {
        self.returned.take()
    }

    /// Whether the producer has finished (returned, panicked or was killed).
    pub fn is_finished(&self) -> bool {
        self.done
    }

    /// The greenlet the producer runs on.
    pub fn greenlet(&self) -> &Greenlet {
        &self.greenlet
    }
}

impl<Y: 'static, R: 'static> Iterator for Generator<Y, R> {
    type Item = Y;

    #[inline]
    fn next(&mut self) -> Option<Y> {
        if self.done {
            return None;
        }
        let rt = Runtime::get();
        let me = rt.current();
        let producer = self.greenlet.key();
        assert!(me != producer, "a generator cannot iterate itself");
        if rt.parent_of(producer) != me {
            // Whoever asks receives the items (and the return value).
            let consumer = Greenlet::current();
            if self.greenlet.set_parent(&consumer).is_err() {
                panic!("a generator cannot be iterated from its own producer's descendants");
            }
        }
        match rt.switch::<(), Y>(producer, ()) {
            Ok(item) => Some(item),
            Err(e) => self.finished(e),
        }
    }
}

impl<Y: 'static, R: 'static> Generator<Y, R> {
    #[cold]
    fn finished(&mut self, e: SwitchError) -> Option<Y> {
        match e {
            // The producer's `End` (see the module docs).
            SwitchError::TypeMismatch { .. } if self.greenlet.is_dead() => {}
            SwitchError::Panicked(p) => {
                self.done = true;
                panic::resume_unwind(p)
            }
            SwitchError::Killed => {}
            // Another greenlet switched into the consumer while it waited.
            e => panic!("greenlet::Generator: the consumer was resumed by something else: {e}"),
        }
        self.done = true;
        None
    }
}
