//! Generators: a function on its own greenlet that hands out values one at a
//! time and, like Python 2.5's enhanced generators, is sent a value back at
//! every yield.
//!
//! # How it runs
//!
//! The producer runs on a greenlet whose parent is the consumer (the
//! greenlet calling `next`, `resume`, `send`, `throw`). A yield is a plain
//! switch of the item to the parent, and a resume a plain switch of the sent
//! value to the producer, so both travel like any switched value (in a
//! register when they fit) and nothing is allocated per item. When the
//! producer returns, its value goes into a slot shared with the generator,
//! and its greenlet finishes with a private `End` marker, which reaches the
//! consumer's pending switch as a type mismatch; the consumer knows it is
//! the end because the producer is then dead. Because the producer is an
//! ordinary greenlet, it may call anything, to any depth, including blocking
//! calls of the [`hub`](crate::hub) and other generators.
//!
//! The decisions about the first value, throw and close are documented on
//! [`Generator`].
//!
//! # Generators and the hub
//!
//! A producer may block in the hub (sleep, wait on a queue) between items;
//! its consumer then waits, suspended in `next`, until the item comes. Two
//! consequences follow from the producer being a greenlet of its own:
//!
//! - [`with_timeout`](crate::hub::with_timeout) interrupts the blocking
//!   calls of the greenlet that called it. A producer's blocking calls are
//!   not the consumer's, so a scope around `next()` does not interrupt a
//!   sleeping producer: the item arrives (late) and the scope returns
//!   `Ok`. Put the timeout inside the producer, around its own wait.
//! - Close the generator (or drop it, or kill its *consumer*, which drops
//!   it) to stop a producer. Dropping the consumer's last handle is not
//!   enough while the consumer is suspended holding an unfinished
//!   generator: the producer's parent link counts as a reference to the
//!   consumer (semantics row 12), and the consumer's stack holds the
//!   producer, so the two are a cycle, as `Rc`s can be, and stay (the
//!   thread's exit leaves them suspended, as every started greenlet).
//!   (Python's garbage collector frees such a pair; Rust has none.) Do
//!   not kill the producer's greenlet directly while its consumer waits
//!   for it. A kill hands the victim's end back to its killer, so the
//!   consumer, suspended in a switch to the producer rather than in a hub
//!   wait, would never be resumed.
//! - A generator kept beyond its consumer (shared in an `Rc`, say) goes on
//!   when that consumer is killed while the producer is blocked in the hub.
//!   The item the producer yields then has no consumer to go to: it waits
//!   in the generator, and the producer parks on the hub greenlet, until
//!   the next resume (from any greenlet) hands the item out without
//!   running the producer (the value that resume sends reaches no yield
//!   and is dropped, as [`resume`](Generator::resume) says of a producer
//!   blocked elsewhere); the resume after it runs the producer on. A
//!   [`throw`](Generator::throw) passes such an item over (it is dropped,
//!   the error raised at the yield that left it), as does a close. This
//!   holds when the hub resumed the producer (its wait ended), or when the
//!   dead consumer's first live ancestor is the hub greenlet (a spawned
//!   consumer's); otherwise a producer that something else resumed (a
//!   plain switch, a throw) hands the item up past the dead consumer to
//!   that ancestor, which may be the one waiting for what comes back. (The
//!   hub's mark of what it resumed last stays until it resumes another: a
//!   producer it resumed that then goes on by plain switches before the
//!   yield is still taken for its.) The producer's end
//!   or panic in that window goes up that way too, as any greenlet's does
//!   (the hub reports a panic on stderr; main, for a plain consumer whose
//!   parent it is, gets it as a switch's error): the generator then ends,
//!   and its next resume gives `None`.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;

use crate::error::{into_payload, payload_message, SwitchError};
use crate::greenlet::Greenlet;
use crate::runtime::{Key, Runtime};
use crate::value::GreenletExit;

/// What the producer's greenlet returns after storing the return value.
struct End;

/// What a resume does after [`Generator::prepare`].
enum Prepared<Y> {
    /// Switch to the producer.
    Resume,
    /// Nothing: the generator is finished.
    Done,
    /// Hand out this item, which waited in the generator.
    Held(Y),
}

/// Lets a generator's producer hand out values and receive what the
/// consumer sends back; see [`Generator`].
///
/// `Y` is the type of the items, `S` the type of the values sent back
/// (`()` for a plain iterator). The producer gets it by reference and may
/// pass it down to any depth of calls:
///
/// ```
/// use greenlet::{Generator, Yielder};
///
/// fn digits(y: &Yielder<u8>, n: u32) {
///     if n >= 10 {
///         digits(y, n / 10);
///     }
///     y.yield_((n % 10) as u8);
/// }
///
/// let g = Generator::new(|y: &Yielder<u8>| digits(y, 2026));
/// assert_eq!(g.collect::<Vec<_>>(), [2, 0, 2, 6]);
/// ```
///
/// It stays on its thread (a yielder only works on its producer's
/// greenlet):
///
/// ```compile_fail
/// use greenlet::{Generator, Yielder};
///
/// fn needs_send<T: Send>(_: T) {}
/// let _ = Generator::new(|y: &Yielder<u8>| needs_send(y));
/// ```
pub struct Yielder<Y, S = ()> {
    /// The producer's greenlet.
    key: Key,
    /// Where an item waits whose consumer died before it came (see
    /// `switch_out`), shared with the generator, which hands it out next.
    held: Rc<Cell<Option<Y>>>,
    _types: PhantomData<fn(Y) -> S>,
    /// `*const ()` is neither `Send` nor `Sync`: a yielder only makes
    /// sense on its own producer's greenlet, so it stays on its thread.
    _thread: PhantomData<*const ()>,
}

impl<Y, S> fmt::Debug for Yielder<Y, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder")
            .field("item", &std::any::type_name::<Y>())
            .field("sent", &std::any::type_name::<S>())
            .finish_non_exhaustive()
    }
}

impl<Y: 'static, S: 'static> Yielder<Y, S> {
    /// Hands `item` to the consumer, waits until it resumes the generator,
    /// and returns the value it sent (`()` for `next`).
    ///
    /// ```
    /// use greenlet::{Generator, Yielder};
    ///
    /// // A running total: every value sent in is added, the total yielded.
    /// let mut totals = Generator::two_way(|y: &Yielder<u64, u64>, first: u64| {
    ///     let mut total = first;
    ///     loop {
    ///         total += y.yield_(total);
    ///     }
    /// });
    /// assert_eq!(totals.send(5), Some(5));
    /// assert_eq!(totals.send(10), Some(15));
    /// assert_eq!(totals.send(1), Some(16));
    /// ```
    ///
    /// # Panics
    ///
    /// - An error [`thrown`](Generator::throw) into the generator while it
    ///   waits here unwinds the producer from this call with a [`Thrown`]
    ///   payload (no panic message); unless the producer catches it, the
    ///   consumer's `throw` returns it. Use [`try_yield`](Yielder::try_yield)
    ///   to handle it as a value instead.
    /// - When called from a greenlet other than the generator's own (a
    ///   yielder cannot be used from a greenlet the producer switched to).
    /// - When the producer is being unwound and cannot yield: after it
    ///   caught the unwinding of a [`close`](Generator::close) (`close`
    ///   then returns this panic as its error), or from a destructor run
    ///   while the producer unwinds (a panic, a close: the process aborts,
    ///   as for any panic during unwinding).
    // Inlining the switch into the producer's own frame keeps call/return
    // pairs from straddling the stack switch (which costs the CPU's return
    // predictions several nanoseconds per item); debug builds skip it so a
    // deeply recursive producer keeps small frames.
    #[cfg_attr(debug_assertions, inline)]
    #[cfg_attr(not(debug_assertions), inline(always))]
    pub fn yield_(&self, item: Y) -> S {
        match self.switch_out(item) {
            Ok(value) => value,
            Err(e) => raise(e),
        }
    }

    /// Like [`yield_`](Yielder::yield_), but an error
    /// [`thrown`](Generator::throw) into the generator while it waits comes
    /// back as `Err`, to be handled or passed on with `?`.
    ///
    /// ```
    /// use greenlet::{Generator, Thrown, Yielder};
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct Reset;
    ///
    /// // Counts up; a thrown `Reset` starts again from zero, anything else
    /// // ends the producer with the error as its return value.
    /// let mut counter = Generator::new(|y: &Yielder<u32>| -> Result<(), Thrown> {
    ///     let mut n = 0;
    ///     loop {
    ///         match y.try_yield(n) {
    ///             Ok(()) => n += 1,
    ///             Err(e) if e.is::<Reset>() => n = 0,
    ///             Err(e) => return Err(e),
    ///         }
    ///     }
    /// });
    /// assert_eq!(counter.next(), Some(0));
    /// assert_eq!(counter.next(), Some(1));
    /// assert_eq!(counter.throw(Reset).unwrap(), Some(0));
    /// assert_eq!(counter.next(), Some(1));
    /// assert_eq!(counter.throw("stop").unwrap(), None); // it returned
    /// let err = counter.return_value().unwrap().unwrap_err();
    /// assert_eq!(err.message(), Some("stop"));
    /// ```
    ///
    /// # Errors
    ///
    /// [`Thrown`] holding the error when one is [thrown](Generator::throw)
    /// into the generator while this waits.
    ///
    /// # Panics
    ///
    /// As [`yield_`](Yielder::yield_), except for thrown errors.
    #[cfg_attr(debug_assertions, inline)]
    #[cfg_attr(not(debug_assertions), inline(always))]
    pub fn try_yield(&self, item: Y) -> Result<S, Thrown> {
        match self.switch_out(item) {
            Ok(value) => Ok(value),
            Err(SwitchError::Thrown(p)) => Err(Thrown(p)),
            Err(e) => raise(e),
        }
    }

    /// Switches `item` to the consumer (the producer's parent).
    #[inline(always)]
    fn switch_out(&self, item: Y) -> Result<S, SwitchError> {
        let rt = Runtime::get();
        assert!(
            rt.current() == self.key,
            "greenlet::Yielder: yield called outside its generator's greenlet"
        );
        // A producer is never main, so it has a parent.
        let consumer = rt.parent_of(self.key).unwrap_or(rt.main_key());
        // The consumer resumes us with an `S`, throws into us, or kills us
        // (a close or a drop, which unwinds from inside this switch).
        rt.switch_unless_dead::<Y, S>(consumer, item, |item| self.hold(item))
    }

    /// The consumer died while the producer was blocked elsewhere (in the
    /// hub: it was killed as it waited for this item), so the item has
    /// nobody to go to. When the hub's ready queue resumed the producer
    /// (its wait ended), or the dead consumer's first live ancestor is the
    /// hub greenlet (a spawned consumer's: the item went there and was
    /// dropped), the item waits in the generator for the next resume,
    /// which hands it out, while the producer parks on the hub greenlet (a
    /// stray wake-up there), where only the generator's resume after that
    /// switches back. Walked up the dead consumer's parents instead, it
    /// reached whatever greenlet was above, which took it for a value of
    /// its own (the hub dropped it; a greenlet waiting in another
    /// generator's resume took it for that one's item). Otherwise (a plain
    /// switch or a throw resumed the producer, and the greenlet above is
    /// not the hub's) that greenlet may be the one waiting for what comes
    /// back: the item goes up as before.
    #[cold]
    #[inline(never)]
    fn hold(&self, item: Y) -> Result<S, SwitchError> {
        let rt = Runtime::get();
        let consumer = rt.parent_of(self.key).unwrap_or(rt.main_key());
        match crate::hub::parking_for(self.key, consumer) {
            Some(hub) => {
                drop(self.held.replace(Some(item)));
                rt.switch::<(), S>(hub, ())
            }
            _ => rt.switch::<Y, S>(consumer, item),
        }
    }
}

/// Whether a payload is `payload` itself, come back: the same box (its
/// address and its type; a zero-sized payload's address is not its own,
/// so another of its type passes too).
fn same_payload(payload: &Box<dyn Any + Send>) -> impl Fn(&Box<dyn Any + Send>) -> bool {
    let identity = |p: &Box<dyn Any + Send>| {
        let value: &(dyn Any + Send) = p.as_ref();
        (ptr::from_ref(value).cast::<()>(), value.type_id())
    };
    let thrown = identity(payload);
    move |p| identity(p) == thrown
}

/// What reached a pending yield instead of a sent value.
#[cold]
#[inline(never)]
fn raise(e: SwitchError) -> ! {
    match e {
        // `resume_unwind` skips the panic hook: an unhandled throw prints
        // nothing on its way back to the consumer.
        SwitchError::Thrown(p) => {
            crate::unwind::require_unwinding("a throw");
            panic::resume_unwind(Box::new(Thrown(p)))
        }
        // The panic of a child greenlet whose parent the producer is (as
        // in the hub, it unwinds out of the call that was waiting).
        SwitchError::Panicked(p) => panic::resume_unwind(p),
        SwitchError::Unwinding => panic!(
            "greenlet::Generator: the producer yielded while it was being unwound \
             (it was closed or dropped, or is panicking); it cannot yield again"
        ),
        e => panic!("greenlet::Generator: the producer was resumed with an error: {e}"),
    }
}

/// An error [`thrown`](Generator::throw) into a generator: what
/// [`Yielder::try_yield`] returns, what unwinds the producer from
/// [`Yielder::yield_`], and what `throw` returns when the producer did not
/// handle it.
///
/// It holds the error as thrown, type-erased (as a panic payload is);
/// [`downcast`](Thrown::downcast) gets it back.
///
/// ```
/// use greenlet::{Generator, Yielder};
///
/// let mut g = Generator::new(|y: &Yielder<u8>| y.yield_(1));
/// assert_eq!(g.next(), Some(1));
/// // `yield_` does not handle it: the error comes back out of `throw`.
/// let err = g.throw(std::io::Error::other("disk full")).unwrap_err();
/// assert!(err.is::<std::io::Error>());
/// assert_eq!(err.downcast::<std::io::Error>().unwrap().to_string(), "disk full");
/// assert!(g.is_finished());
/// ```
pub struct Thrown(Box<dyn Any + Send>);

impl Thrown {
    /// Whether the error is an `E`.
    ///
    /// ```
    /// # use greenlet::{Generator, Yielder};
    /// let mut g = Generator::new(|y: &Yielder<u8>| y.yield_(1));
    /// g.next();
    /// assert!(g.throw(42u32).unwrap_err().is::<u32>());
    /// ```
    pub fn is<E: Any>(&self) -> bool {
        self.0.is::<E>()
    }

    /// The error as an `E`, or `Err(self)` when it is of another type.
    ///
    /// # Errors
    ///
    /// `self`, unchanged, when the error is not an `E`.
    ///
    /// ```
    /// # use greenlet::{Generator, Yielder};
    /// let mut g = Generator::new(|y: &Yielder<u8>| y.yield_(1));
    /// let err = g.throw(7i64).unwrap_err(); // never started: comes back
    /// let err = err.downcast::<String>().unwrap_err();
    /// assert_eq!(err.downcast::<i64>().unwrap(), 7);
    /// ```
    pub fn downcast<E: Any>(self) -> Result<E, Thrown> {
        self.0.downcast::<E>().map(|e| *e).map_err(Thrown)
    }

    /// A reference to the error, if it is an `E`.
    ///
    /// ```
    /// # use greenlet::{Generator, Yielder};
    /// let mut g = Generator::new(|y: &Yielder<u8>| y.yield_(1));
    /// let err = g.throw(7i64).unwrap_err();
    /// assert_eq!(err.downcast_ref::<i64>(), Some(&7));
    /// ```
    pub fn downcast_ref<E: Any>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }

    /// The error's text, when it is a `&'static str` or a `String`.
    ///
    /// ```
    /// # use greenlet::{Generator, Yielder};
    /// let mut g = Generator::new(|y: &Yielder<u8>| y.yield_(1));
    /// let err = g.throw("stop").unwrap_err();
    /// assert_eq!(err.message(), Some("stop"));
    /// ```
    pub fn message(&self) -> Option<&str> {
        payload_message(self.0.as_ref())
    }

    /// The error, boxed as it was thrown.
    ///
    /// ```
    /// # use greenlet::{Generator, Yielder};
    /// let mut g = Generator::new(|y: &Yielder<u8>| y.yield_(1));
    /// let payload = g.throw(3u8).unwrap_err().into_payload();
    /// assert_eq!(*payload.downcast::<u8>().unwrap(), 3);
    /// ```
    pub fn into_payload(self) -> Box<dyn Any + Send> {
        self.0
    }

    /// Raises the error again from the producer: it unwinds the producer
    /// (with no panic message) and comes back out of the consumer's
    /// [`throw`](Generator::throw) as if the producer had not caught it.
    ///
    /// ```
    /// use greenlet::{Generator, Yielder};
    ///
    /// let mut g = Generator::new(|y: &Yielder<u8>| {
    ///     if let Err(e) = y.try_yield(1) {
    ///         if e.is::<u8>() {
    ///             e.raise(); // not ours to handle
    ///         }
    ///     }
    /// });
    /// g.next();
    /// assert_eq!(g.throw(9u8).unwrap_err().downcast::<u8>().unwrap(), 9);
    /// ```
    pub fn raise(self) -> ! {
        crate::unwind::require_unwinding("a throw");
        panic::resume_unwind(Box::new(self))
    }
}

impl fmt::Debug for Thrown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Thrown")
            .field(&self.message().unwrap_or("<non-text payload>"))
            .finish()
    }
}

impl fmt::Display for Thrown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(m) => write!(f, "an error was thrown into a generator: {m}"),
            None => f.write_str("an error was thrown into a generator (non-text payload)"),
        }
    }
}

impl std::error::Error for Thrown {}

/// What [`Generator::resume`] got: an item, the producer's return value, or
/// nothing more.
///
/// ```
/// use greenlet::{Generator, GeneratorState, Yielder};
///
/// let mut g = Generator::new(|y: &Yielder<char>| {
///     y.yield_('a');
///     "done"
/// });
/// assert_eq!(g.resume(()), GeneratorState::Yielded('a'));
/// assert_eq!(g.resume(()), GeneratorState::Complete("done"));
/// assert_eq!(g.resume(()), GeneratorState::Exhausted);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GeneratorState<Y, R> {
    /// The producer yielded this item and is suspended.
    Yielded(Y),
    /// The producer has returned this value (handed out once).
    Complete(R),
    /// The producer has finished and there is no return value to hand out:
    /// it was handed out already (by an earlier `resume` or
    /// [`return_value`](Generator::return_value)), or the producer never
    /// produced one (it was closed, killed or panicked). The value sent was
    /// dropped.
    Exhausted,
}

/// A producer function, run on its own greenlet, that yields items of type
/// `Y`, receives a value of type `S` back at every yield, and returns an
/// `R`. With `S = ()` it is an `Iterator` of its items.
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
/// Two-way, as Python's enhanced generators (decisions below):
///
/// ```
/// use greenlet::{Generator, Yielder};
///
/// // A consumer written as a generator: it is sent lines, yields how many
/// // it has seen, and returns them all when closed by a `None`.
/// let mut collect = Generator::two_way(|y: &Yielder<usize, Option<String>>, first| {
///     let mut lines = Vec::new();
///     let mut next = first;
///     while let Some(line) = next {
///         lines.push(line);
///         next = y.yield_(lines.len());
///     }
///     lines
/// });
/// assert_eq!(collect.send(Some("a".into())), Some(1));
/// assert_eq!(collect.send(Some("b".into())), Some(2));
/// assert_eq!(collect.send(None), None);
/// assert_eq!(collect.return_value(), Some(vec!["a".to_string(), "b".to_string()]));
/// ```
///
/// # Two-way generators, decided
///
/// - **The first value.** Python requires the first `send` to be `None`,
///   because the generator has not reached a `yield` that could receive it.
///   Here the first value sent is not lost and needs no priming call: it is
///   the producer's second argument ([`Generator::two_way`]), just as a
///   greenlet's first switch value is its function's argument. Generators
///   made with [`Generator::new`] send `()` and take no argument.
/// - **Throw.** [`Generator::throw`] raises the error at the producer's
///   pending yield: [`Yielder::try_yield`] returns it as `Err(Thrown)` for
///   `match` or `?`; [`Yielder::yield_`] unwinds the producer with it (as an
///   exception propagates through a Python generator). If the producer then
///   yields, `throw` returns `Ok(Some(item))`; if it returns, `Ok(None)`; if
///   the error unwinds out of it unhandled, `throw` returns `Err(thrown)`,
///   the same error. A throw into a generator that never started ends it
///   without running the producer; into a finished one it comes straight
///   back. Both return `Err(thrown)`, as Python raises the error there.
/// - **Close and drop.** [`Generator::close`] unwinds a suspended producer
///   (its destructors run, as a kill does), discards an unstarted one
///   unrun, and does nothing to a finished one; it returns `Ok(())` unless
///   the producer panicked while it was being closed (yielding again during
///   a close is such a panic, Python's "generator ignored GeneratorExit"),
///   and then `Err(payload)`. Dropping an unfinished generator closes it,
///   so a generator nested in another one's producer is unwound with it.
/// - **Panics** in the producer resume in the consumer's `next`, `resume`,
///   `send` or `throw`; the generator is finished afterwards.
pub struct Generator<Y: 'static, R: 'static = (), S: 'static = ()> {
    greenlet: Greenlet,
    /// The consumer has seen the end (or closed it); the producer's
    /// greenlet is dead or was never started.
    done: bool,
    returned: Rc<Cell<Option<R>>>,
    /// An item whose consumer died before it came (see `Yielder::hold`).
    held: Rc<Cell<Option<Y>>>,
    _types: PhantomData<fn(S) -> Y>,
}

impl<Y: 'static, R: 'static> Generator<Y, R, ()> {
    /// A generator that runs `producer` on a new greenlet (default stack
    /// size) once the first item is asked for.
    ///
    /// ```
    /// use greenlet::{Generator, Yielder};
    ///
    /// let squares = Generator::new(|y: &Yielder<u64>| {
    ///     for i in 1..=4 {
    ///         y.yield_(i * i);
    ///     }
    /// });
    /// assert_eq!(squares.collect::<Vec<_>>(), [1, 4, 9, 16]);
    /// ```
    ///
    /// # Panics
    ///
    /// As [`Greenlet::new`], when no stack can be had.
    pub fn new<F>(producer: F) -> Generator<Y, R, ()>
    where
        F: FnOnce(&Yielder<Y>) -> R + 'static,
    {
        Generator::two_way(move |y: &Yielder<Y>, ()| producer(y))
    }
}

impl<Y: 'static, R: 'static, S: 'static> Generator<Y, R, S> {
    /// A generator that is sent a value of type `S` at every resume: the
    /// first one becomes `producer`'s second argument, each later one is
    /// what the pending [`yield_`](Yielder::yield_) returns. The producer
    /// runs on a new greenlet (default stack size) from the first resume.
    ///
    /// ```
    /// use greenlet::{Generator, Yielder};
    ///
    /// // Python's running average, without the priming `next()`.
    /// let mut average = Generator::two_way(|y: &Yielder<f64, f64>, first: f64| {
    ///     let (mut sum, mut n) = (first, 1.0);
    ///     loop {
    ///         sum += y.yield_(sum / n);
    ///         n += 1.0;
    ///     }
    /// });
    /// assert_eq!(average.send(10.0), Some(10.0));
    /// assert_eq!(average.send(20.0), Some(15.0));
    /// assert_eq!(average.send(60.0), Some(30.0));
    /// ```
    ///
    /// # Panics
    ///
    /// As [`Greenlet::new`], when no stack can be had.
    pub fn two_way<F>(producer: F) -> Generator<Y, R, S>
    where
        F: FnOnce(&Yielder<Y, S>, S) -> R + 'static,
    {
        let returned = Rc::new(Cell::new(None));
        let slot = returned.clone();
        let held = Rc::new(Cell::new(None));
        let hold = held.clone();
        let greenlet = Greenlet::new(move |first: S| {
            let yielder = Yielder {
                key: Runtime::get().current(),
                held: hold,
                _types: PhantomData,
                _thread: PhantomData,
            };
            slot.set(Some(producer(&yielder, first)));
            End
        });
        // A close ends the producer: a yield after catching it is an error
        // in the producer, not a refusal that would leave it alive.
        Runtime::get().set_no_refusal(greenlet.key());
        Generator {
            greenlet,
            done: false,
            returned,
            held,
            _types: PhantomData,
        }
    }

    /// Sends `value` and runs the producer until it yields or finishes.
    ///
    /// ```
    /// use greenlet::{Generator, GeneratorState, Yielder};
    ///
    /// let mut echo = Generator::two_way(|y: &Yielder<String, &str>, mut word| {
    ///     while word != "bye" {
    ///         word = y.yield_(word.to_uppercase());
    ///     }
    ///     word.len()
    /// });
    /// assert_eq!(echo.resume("hi"), GeneratorState::Yielded("HI".to_string()));
    /// assert_eq!(echo.resume("bye"), GeneratorState::Complete(3));
    /// assert_eq!(echo.resume("again"), GeneratorState::Exhausted);
    /// ```
    ///
    /// # Panics
    ///
    /// - When the producer panics: its panic resumes here (the generator is
    ///   finished afterwards).
    /// - When called from the producer's own greenlet or one of its
    ///   descendants (Python's "generator already executing").
    /// - When something else reaches the consumer while it waits: a throw
    ///   into it, or the panic of another child of the consumer, resumes
    ///   here with its payload unchanged; another greenlet's other end into
    ///   it (a child of the consumer killed, or returning a value of
    ///   another type) panics. The producer stays where
    ///   it was, and the generator goes on. Where it was may be a wait
    ///   elsewhere (in the hub, say), from which it later hands its next
    ///   item to the consumer, wherever the consumer is then: resume the
    ///   generator again before the consumer waits on anything else, or
    ///   that item goes to that wait (dropped as a stray wake-up) or to
    ///   another generator's resume (taken for its item). The value that
    ///   resume sends reaches no yield, since the producer is not at one
    ///   (its wait takes the switch for a stray wake-up): it is dropped,
    ///   and the yield that hands the item gets the value of the resume
    ///   after that, as any yield does. Python has no such case: it
    ///   refuses to send into a generator that is running. This holds one
    ///   level deep: when the producer waits in a resume of a generator of
    ///   its own whose producer is the one blocked elsewhere, the resume
    ///   lands in that inner resume, which takes it for something else
    ///   resuming its consumer (below) and panics, ending the outer
    ///   producer; or, when the value sent has the inner generator's item
    ///   type, takes it for that generator's next item. Likewise, a child
    ///   of the consumer that returns a value of the item's type while the
    ///   consumer waits is taken for an item: greenlets switch values, not
    ///   senders.
    ///
    /// Not a panic: called while the consumer unwinds (a destructor during
    /// a panic or a kill) or from inside the switch hook, where no switch
    /// may be made, the producer cannot run. The call then yields nothing
    /// (`next` and `send` give `None`, this `Exhausted`, `throw` `Ok(None)`)
    /// and leaves the generator as it was, its value dropped: a panic there
    /// would abort the process.
    pub fn resume(&mut self, value: S) -> GeneratorState<Y, R> {
        match self.step(value) {
            Some(item) => GeneratorState::Yielded(item),
            None => match self.take_returned() {
                Some(r) => GeneratorState::Complete(r),
                None => GeneratorState::Exhausted,
            },
        }
    }

    /// Python's `send`: sends `value` and returns the next item, or `None`
    /// once the producer has finished (its return value stays for
    /// [`return_value`](Generator::return_value)).
    ///
    /// ```
    /// use greenlet::{Generator, Yielder};
    ///
    /// let mut doubler = Generator::two_way(|y: &Yielder<u32, u32>, mut n: u32| {
    ///     while n != 0 {
    ///         n = y.yield_(n * 2);
    ///     }
    ///     "zero ends it"
    /// });
    /// assert_eq!(doubler.send(4), Some(8));
    /// assert_eq!(doubler.send(21), Some(42));
    /// assert_eq!(doubler.send(0), None);
    /// assert_eq!(doubler.return_value(), Some("zero ends it"));
    /// ```
    ///
    /// # Panics
    ///
    /// As [`resume`](Generator::resume).
    // Inlined to the switch (see `hub/wait.rs`).
    #[inline(always)]
    pub fn send(&mut self, value: S) -> Option<Y> {
        self.step(value)
    }

    /// Python's `throw`: raises `error` at the producer's pending yield
    /// (see [`Yielder::try_yield`] and [`Yielder::yield_`]) and runs the
    /// producer until it yields or finishes.
    ///
    /// - `Ok(Some(item))`: the producer handled the error and yielded.
    /// - `Ok(None)`: it handled the error and returned (the value is kept
    ///   for [`return_value`](Generator::return_value)), or it was killed.
    /// - `Err(thrown)`: the error unwound out of the producer unhandled (or
    ///   it raised it again with [`Thrown::raise`]; or, the producer being
    ///   blocked in the hub rather than at a yield, that call raised it and
    ///   nothing caught it: told by the payload's box, so a producer that
    ///   caught the error there, dropped it and then panicked with a
    ///   payload of the same type whose box took the freed one's address
    ///   is taken for it too); or the generator had
    ///   not started, and then the producer never runs (its closure is
    ///   dropped, as by [`close`](Generator::close): a switch in one of its
    ///   destructors gets [`Unwinding`](crate::SwitchError::Unwinding)); or
    ///   it had finished already. The generator is finished.
    ///
    /// As with [`Greenlet::throw`], a `Box<dyn Any + Send>` or a
    /// [`Thrown`] is thrown as the payload itself, not boxed again.
    ///
    /// ```
    /// use greenlet::{Generator, Yielder};
    ///
    /// let mut g = Generator::new(|y: &Yielder<&str>| {
    ///     // A thrown error ends the loop, and the producer says goodbye.
    ///     while y.try_yield("working").is_ok() {}
    ///     y.yield_("cleaning up");
    /// });
    /// assert_eq!(g.next(), Some("working"));
    /// assert_eq!(g.throw("enough").unwrap(), Some("cleaning up"));
    /// assert_eq!(g.next(), None);
    /// ```
    ///
    /// # Errors
    ///
    /// [`Thrown`] holding the error when it unwound out of the producer
    /// unhandled (or was raised again), when the generator had not started,
    /// or when it had finished already (see the list above).
    ///
    /// # Panics
    ///
    /// As [`resume`](Generator::resume).
    pub fn throw<E: Any + Send>(&mut self, error: E) -> Result<Option<Y>, Thrown> {
        if self.is_finished() {
            self.done = true;
            return Err(Thrown(into_payload(error)));
        }
        // (Where no switch can be made, the runtime's throw below refuses
        // it as it refuses every other, leaving the generator as it was.)
        if !self.greenlet.is_started() && !Runtime::get().switch_fails_at_once() {
            return self.throw_unstarted(into_payload(error));
        }
        // (Not where the throw is refused, which leaves the generator as it
        // was: its consumer, and an item left for the next resume.)
        if !Runtime::get().switch_refused_now() {
            self.adopt();
        }
        if Runtime::get().switch_goes_now() {
            // An item left here for the next resume is passed over: the
            // error is raised at the yield that handed it over. (Not when
            // this switch is the refusal of a kill the caller caught: the
            // throw never reaches the producer then.)
            self.drop_held();
        }
        let payload = into_payload(error);
        let thrown = same_payload(&payload);
        match Runtime::get().throw::<Y>(self.greenlet.key(), payload) {
            Ok(item) => Ok(Some(item)),
            // The producer died inside the switch (the switch hook may kill
            // it): the throw was walked past it to this very greenlet,
            // which a throw to oneself hands straight back. Killed, then.
            Err(SwitchError::Thrown(p)) if self.greenlet.is_dead() && thrown(&p) => {
                self.done = true;
                drop(p);
                Ok(None)
            }
            // The producer was blocked in the hub (reached after its
            // consumer left a resume for something else, see `resume`):
            // the blocked call raised the error there as it came, as for
            // any greenlet thrown into while it waits, and it went out of
            // the producer unhandled. Ended as an unhandled throw at a
            // yield is (`Err`), not as the producer's panic. (Told by the
            // box's address and type: a new payload of the same type that
            // took the freed box's place, after the producer caught the
            // error, dropped it and failed anew, is taken for it. Counting
            // the panics begun meanwhile told that case apart, but took a
            // panic caught inside a destructor, while the error unwound
            // the producer, for a new failure: no sound sign is left.)
            Err(SwitchError::Panicked(p)) if thrown(&p) => {
                let unhandled = SwitchError::Panicked(Box::new(Thrown(p)));
                self.ended(unhandled).map(|()| None)
            }
            Err(e) => self.ended(e).map(|()| None),
        }
    }

    /// Python's `close`: unwinds a suspended producer from its pending yield
    /// (every destructor on its stack runs, as with
    /// [`Greenlet::kill`]); an unstarted one is discarded without running
    /// (its closure is dropped); a finished one is left alone. The generator
    /// is finished afterwards.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use greenlet::{Generator, Yielder};
    ///
    /// struct Flag(Rc<Cell<bool>>);
    /// impl Drop for Flag {
    ///     fn drop(&mut self) {
    ///         self.0.set(true);
    ///     }
    /// }
    ///
    /// let cleaned = Rc::new(Cell::new(false));
    /// let flag = Flag(cleaned.clone());
    /// let mut g = Generator::new(move |y: &Yielder<u32>| {
    ///     let _flag = flag;
    ///     for i in 0.. {
    ///         y.yield_(i);
    ///     }
    /// });
    /// assert_eq!(g.next(), Some(0));
    /// assert!(g.close().is_ok());
    /// assert!(cleaned.get());
    /// assert_eq!(g.next(), None);
    /// assert!(g.close().is_ok()); // closing again does nothing
    /// ```
    ///
    /// # Errors
    ///
    /// `Err(payload)` when the producer panicked while it was being closed:
    /// it caught the unwinding (`catch_unwind`) and then panicked, or tried
    /// to yield again. If it caught the unwinding and returned instead, that
    /// is `Ok(())`, and its value is kept for
    /// [`return_value`](Generator::return_value). Every yield after the
    /// close panics so: a producer that catches every panic around its
    /// yield in a loop never ends, and neither does `close` (nor the drop
    /// of the generator), as with any loop that swallows every panic.
    ///
    /// # Panics
    ///
    /// When called from the producer's own greenlet; and with the switch
    /// hook's panic, when the hook panics on the close's kill: the hook is
    /// removed, the close is made without it, and its panic resumes here
    /// afterwards, the generator finished (as the hub's kills do; a bare
    /// [`Greenlet::kill`] does not happen then). If the producer panics
    /// as it is closed then, that is `close`'s `Err`, and the hook's panic
    /// is reported on stderr.
    pub fn close(&mut self) -> std::thread::Result<()> {
        if self.is_finished() {
            self.done = true;
            return Ok(());
        }
        assert!(
            !self.greenlet.is_current(),
            "greenlet::Generator: a generator cannot close itself from its own producer"
        );
        // A switch hook that panics on the kill stops it before it began:
        // the kill is made again without it (removed), and the hook's
        // panic raised once the close is over.
        let rt = Runtime::get();
        let key = self.greenlet.key();
        let mut hooks_panic = None;
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            let (outcome, panic) = rt.kill_past_the_hook(key);
            hooks_panic = panic;
            if let Some(Err(_)) = outcome {
                rt.report_refused(key, "Generator::close");
            }
        }));
        // Finished once the producer is dead (not when hooks stopped every
        // try, each one's destructor setting another that panicked: then
        // a later `close`, or the drop, tries again).
        if self.greenlet.is_dead() {
            self.done = true;
        }
        if self.done {
            // Nobody will resume it for an item left for that.
            self.drop_held();
        }
        if let Some(p) = hooks_panic {
            // (The kill then returned: `outcome` is `Ok`.)
            rt.raise_hook_panic(p);
        }
        if outcome.is_err() {
            // It caught the kill, returned, and then panicked (a destructor
            // of its locals): no return value, as in `ended`. Dropped
            // quietly: the producer's panic is what `close` returns.
            crate::error::drop_quietly(self.returned.take());
        }
        match outcome {
            // The closer itself was killed meanwhile (by one of the
            // producer's destructors): that unwinding is not ours to stop.
            Err(p) if p.is::<GreenletExit>() => panic::resume_unwind(p),
            outcome => outcome,
        }
    }

    /// The producer's return value, once it has finished (taken once).
    ///
    /// ```
    /// use greenlet::{Generator, Yielder};
    ///
    /// let mut g = Generator::new(|y: &Yielder<u8>| {
    ///     y.yield_(1);
    ///     "end"
    /// });
    /// assert_eq!(g.return_value(), None); // not finished yet
    /// assert_eq!(g.by_ref().count(), 1);
    /// assert_eq!(g.return_value(), Some("end"));
    /// assert_eq!(g.return_value(), None); // taken
    /// ```
    pub fn return_value(&mut self) -> Option<R> {
        self.take_returned()
    }

    /// The return value, once the producer has finished: it is kept from
    /// the producer's function's return, but a greenlet-local destructor of
    /// the producer may still run after that (and switch to the consumer,
    /// or panic, which leaves the generator without one).
    fn take_returned(&mut self) -> Option<R> {
        if self.is_finished() {
            self.returned.take()
        } else {
            None
        }
    }

    /// Whether the producer has finished: returned, panicked, was closed or
    /// killed, or an error thrown into it ended it.
    ///
    /// ```
    /// use greenlet::{Generator, Yielder};
    ///
    /// let mut g = Generator::new(|y: &Yielder<u8>| y.yield_(1));
    /// assert!(!g.is_finished());
    /// g.next();
    /// assert!(!g.is_finished()); // suspended at its yield
    /// g.next();
    /// assert!(g.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.done || self.greenlet.is_dead()
    }

    /// The greenlet the producer runs on.
    ///
    /// ```
    /// use greenlet::{Generator, Yielder};
    ///
    /// let mut g = Generator::new(|y: &Yielder<u8>| y.yield_(1));
    /// assert!(!g.greenlet().is_started());
    /// g.next();
    /// g.greenlet().kill(); // as good as a close
    /// assert_eq!(g.next(), None);
    /// ```
    pub fn greenlet(&self) -> &Greenlet {
        &self.greenlet
    }

    /// Resumes the producer with `value`: the item it yields, or `None` once
    /// it has finished.
    #[inline(always)]
    fn step(&mut self, value: S) -> Option<Y> {
        if self.done {
            return None;
        }
        let rt = Runtime::get();
        let producer = self.greenlet.key();
        // The fast path: the producer is already the current greenlet's
        // child. If it died unseen (killed from outside), the switch walks
        // up to its first live ancestor, this very greenlet, and a switch
        // to oneself hands the value straight back: as a mismatch, which
        // `ended` reads as the end, unless `S` and `Y` are the same type.
        // Only then must the state be checked first (a constant condition,
        // so other generators pay nothing for it).
        if rt.parent_of(producer) != Some(rt.current())
            || (TypeId::of::<S>() == TypeId::of::<Y>() && self.greenlet.is_dead())
        {
            match self.prepare() {
                Prepared::Resume => {}
                Prepared::Done => return None,
                Prepared::Held(item) => {
                    // The value sent reaches no yield: the producer waits
                    // for the resume after this one (see `resume`).
                    drop(value);
                    return Some(item);
                }
            }
        }
        if TypeId::of::<S>() == TypeId::of::<Y>() {
            rt.clear_echo();
        }
        match rt.switch::<S, Y>(producer, value) {
            // As above: a producer that died inside the switch (the switch
            // hook may kill it) was walked past to this very greenlet,
            // which handed the value sent straight back (the runtime tells
            // that from a value another greenlet sent here meanwhile).
            Ok(item)
                if TypeId::of::<S>() == TypeId::of::<Y>()
                    && self.greenlet.is_dead()
                    && rt.take_echo() =>
            {
                self.ended_by_echo(item)
            }
            Ok(item) => Some(item),
            Err(e) => self.ended_in_step(e),
        }
    }

    /// Drops an item left for the next resume (see `Yielder::hold`),
    /// reporting its destructor's panic where this greenlet unwinds (raised
    /// there, it would abort the process).
    fn drop_held(&self) {
        if let Some(item) = self.held.take() {
            if Runtime::get().current_unwinds() {
                crate::error::drop_reporting(item, "an item a generator kept for its next resume");
            } else {
                drop(item);
            }
        }
    }

    /// A resume whose producer died inside the switch, which handed the
    /// value sent back to its sender: the end, with no item.
    #[cold]
    #[inline(never)]
    fn ended_by_echo(&mut self, sent: Y) -> Option<Y> {
        self.done = true;
        drop(sent);
        None
    }

    /// [`throw`](Generator::throw) into a producer that never started: it
    /// never will. Its closure is dropped by a close (a kill, so that a
    /// destructor of it cannot switch away and hand an item over, as an
    /// ordinary end would let it), and the error comes back.
    #[cold]
    #[inline(never)]
    fn throw_unstarted(&mut self, payload: Box<dyn Any + Send>) -> Result<Option<Y>, Thrown> {
        if let Err(p) = self.close() {
            // A destructor of the closure panicked: as a close's panic.
            drop(payload);
            panic::resume_unwind(p);
        }
        Err(Thrown(payload))
    }

    /// Before the first resume, a resume from a new consumer, or one after
    /// the producer died without the consumer seeing it (killed from
    /// outside): whether there is a producer to switch to, or an item that
    /// the producer left here when its last consumer had died (a new
    /// consumer it is, then).
    #[cold]
    #[inline(never)]
    fn prepare(&mut self) -> Prepared<Y> {
        if self.greenlet.is_dead() {
            // A switch would walk up the dead producer's parent chain, which
            // may lead back here; there is nothing to resume.
            self.done = true;
            return Prepared::Done;
        }
        // Where no switch can be made, the resume leaves the generator as
        // it was (its consumer, and an item left for the next resume): the
        // switch below fails.
        if Runtime::get().switch_refused_now() {
            return Prepared::Resume;
        }
        self.adopt();
        match self.held.take() {
            Some(item) => Prepared::Held(item),
            None => Prepared::Resume,
        }
    }

    /// Makes the current greenlet the producer's parent, so the items (and
    /// the end) come here: whoever resumes a generator is its consumer.
    fn adopt(&self) {
        let rt = Runtime::get();
        let me = rt.current();
        let producer = self.greenlet.key();
        assert!(
            me != producer,
            "greenlet::Generator: a generator cannot be resumed from its own producer"
        );
        if rt.parent_of(producer) != Some(me) {
            let consumer = Greenlet::current();
            if self.greenlet.set_parent(&consumer).is_err() {
                panic!(
                    "greenlet::Generator: a generator cannot be resumed from its own \
                     producer's descendants"
                );
            }
        }
    }

    /// A resume that did not bring an item.
    #[cold]
    #[inline(never)]
    fn ended_in_step(&mut self, e: SwitchError) -> Option<Y> {
        match self.ended(e) {
            Ok(()) => None,
            // The producer caught a thrown error earlier and raised it
            // again now: it unwinds the consumer, as any panic of the
            // producer does.
            Err(thrown) => thrown.raise(),
        }
    }

    /// What a switch or throw to the producer got instead of an item.
    #[cold]
    #[inline(never)]
    fn ended(&mut self, e: SwitchError) -> Result<(), Thrown> {
        let dead = self.greenlet.is_dead();
        match e {
            // The producer's `End` (see the module docs).
            SwitchError::TypeMismatch { .. } if dead => {}
            // Killed: only the producer's own end ends the generator, not
            // another child of the consumer that was killed meanwhile.
            SwitchError::Killed if dead => {}
            // An unhandled throw (see `raise`).
            SwitchError::Panicked(p) if dead && p.is::<Thrown>() => {
                self.done = true;
                // Ended by an error: a value it returned before (then a
                // destructor of its locals raised) is not its result.
                drop(self.returned.take());
                return Err(match p.downcast::<Thrown>() {
                    Ok(thrown) => *thrown,
                    Err(p) => Thrown(p),
                });
            }
            SwitchError::Panicked(p) if dead => {
                self.done = true;
                // As above: a panic after its return (a destructor of its
                // locals) leaves it without a return value.
                drop(self.returned.take());
                panic::resume_unwind(p)
            }
            // A throw into an unstarted producer: it died unrun and the
            // error came up to its parent, here.
            SwitchError::Thrown(p) if dead => {
                self.done = true;
                return Err(Thrown(p));
            }
            // Refused before anything ran (see `resume`): the producer is
            // where it was, and the generator goes on.
            SwitchError::Unwinding | SwitchError::InSwitchHook => return Ok(()),
            // Thrown into the consumer while it waited: the payload goes on
            // unchanged, as a throw into any waiting greenlet's does (the
            // producer stays where it was). So does another child's panic
            // (its payload kept whole: dropped under a panic of ours, a
            // payload whose destructor panics would abort the process).
            SwitchError::Thrown(p) | SwitchError::Panicked(p) => {
                crate::unwind::require_unwinding("a throw");
                panic::resume_unwind(p)
            }
            // Another greenlet ended into the consumer while it waited (a
            // child's panic or kill, a mismatched value): the producer
            // stays where it was.
            e => panic!("greenlet::Generator: the consumer was resumed by something else: {e}"),
        }
        self.done = true;
        Ok(())
    }
}

impl<Y: 'static, R: 'static, S: 'static> fmt::Debug for Generator<Y, R, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator")
            .field("producer", &self.greenlet)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<Y: 'static, R: 'static> Iterator for Generator<Y, R, ()> {
    type Item = Y;

    /// The next item, or `None` once the producer has finished.
    ///
    /// Not a [`FusedIterator`](std::iter::FusedIterator): a `None` given
    /// while the consumer unwinds, or inside the switch hook, leaves the
    /// generator as it was (see [`resume`](Generator::resume)), and a later
    /// `next` may yield again; use [`fuse`](Iterator::fuse) if that must
    /// not happen.
    ///
    /// # Panics
    ///
    /// As [`resume`](Generator::resume).
    // Inlined to the switch (see `hub/wait.rs`).
    #[inline(always)]
    fn next(&mut self) -> Option<Y> {
        self.step(())
    }
}

impl<Y: 'static, R: 'static, S: 'static> Drop for Generator<Y, R, S> {
    /// Closes an unfinished generator (see [`close`](Generator::close)): a
    /// suspended producer is unwound now, from the dropper, even when other
    /// references keep its greenlet alive (a nested generator's producer is
    /// the parent of the inner one's, so reference counting alone would
    /// never free either). A panic of the producer while it is closed
    /// resumes here, unless the dropper's own stack is unwinding: then it
    /// is reported on stderr, as for any kill (semantics row 11). So is a
    /// panic of a value the producer returned that nobody took (after
    /// catching this close or an earlier one, say): it is dropped with
    /// the generator.
    fn drop(&mut self) {
        // After the thread's runtime is torn down there is nothing to close
        // (an item left for a resume goes, as below).
        let Some(rt) = Runtime::try_get() else {
            drop(self.held.take());
            return;
        };
        if !self.done && !self.greenlet.is_current() && !self.greenlet.is_dead() {
            // (Dropped by its own producer, through a cycle of its making,
            // or dead: the greenlet handle's drop deals with it, as with
            // any greenlet.)
            self.close_as_dropped();
        }
        // An item left for a resume that can no longer come goes with the
        // generator, not with the producer's stack, which may be left
        // suspended (at thread exit) and keeps the other hold on it.
        self.drop_held();
        // A value the producer returned (after catching a close, say),
        // kept for a `return_value` that can no longer come, goes with the
        // generator. Where this greenlet unwinds, a panic of its
        // destructor is reported, as a killed victim's value's is
        // (semantics row 11), not raised out of this destructor (an
        // abort).
        if rt.current_unwinds() {
            if let Some(value) = self.returned.take() {
                crate::error::drop_reporting(value, "a generator's return value");
            }
        }
    }
}

impl<Y: 'static, R: 'static, S: 'static> Generator<Y, R, S> {
    /// The close made by the drop of an unfinished generator.
    fn close_as_dropped(&mut self) {
        match self.close() {
            Ok(()) => {}
            // The kill in `close` reports the producer's panic instead of
            // raising it where this greenlet unwinds (semantics row 11),
            // so this one may be raised. (`std::thread::panicking` would
            // also count the panic of a suspended killer whose kill this
            // greenlet caught, and drop it unseen.)
            Err(p) if Runtime::get().current_unwinds() => crate::error::drop_quietly(p),
            Err(p) => panic::resume_unwind(p),
        }
    }
}
