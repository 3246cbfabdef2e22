//! Moving a value of any `'static` type from one greenlet to the next
//! without allocating.
//!
//! A value crosses a switch as one machine word, passed in a register
//! through corosensei's resume/suspend: the value's own bits when it fits in
//! a word (like corosensei does for its own values), otherwise a pointer to
//! it in the sender's suspended frame. Beside the word, the sender leaves a
//! pointer to the value's [`ValueType`] in the runtime. The receiver consumes
//! the value before anything else happens: it moves it out when the
//! `TypeId` is the one it expects, and otherwise drops it and reports a
//! mismatch. Nothing is boxed and nothing is transmuted to another type.
//!
//! Keeping the value in a register matters: a round trip through memory
//! (store, switch, load) puts store-forwarding latency on the data path of
//! every switch.

use std::any::TypeId;
use std::mem::{self, ManuallyDrop};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a receiver needs to know about a value it did not create: its
/// identity, its name for error messages, how it travels, how to drop it.
pub(crate) struct ValueType {
    pub(crate) id: TypeId,
    name: fn() -> &'static str,
    /// Whether the value travels in the word itself.
    inline: bool,
    drop: unsafe fn(*mut u8),
}

impl ValueType {
    /// The type's name, as `std::any::type_name` spells it.
    pub(crate) fn name(&self) -> &'static str {
        (self.name)()
    }

    /// Drops the value that `word` carries.
    ///
    /// # Safety
    /// `word` was made by [`encode`] from a value of this type, which nobody
    /// has taken or dropped since.
    pub(crate) unsafe fn drop_word(&self, word: Word) {
        let mut word = word;
        let place = if self.inline {
            word.as_mut_ptr().cast::<u8>()
        } else {
            // SAFETY: an out-of-line value's word is an address, all of
            // it written by `encode`.
            unsafe { word.assume_init() as *mut u8 }
        };
        // SAFETY: `place` holds the live value (in `word` itself, which is
        // word-aligned, or in the sender's frame); forwarded from the caller.
        unsafe { (self.drop)(place) }
    }
}

/// What crosses a switch: a value that fits (see [`fits`]), or the address
/// of one that does not. Not a plain `usize`: a value's padding bytes (a
/// `(u8, u32)`), or the bytes a variant leaves unused (`Option<u8>`'s
/// `None`), are uninitialised, and an integer may not hold such bytes.
pub(crate) type Word = std::mem::MaybeUninit<usize>;

/// The word of a value that is no bytes (a `()`, a signal in the slow
/// lane): nothing in it is read.
pub(crate) const EMPTY: Word = Word::new(0);

/// Whether a `T` travels in the word itself.
pub(crate) const fn fits<T>() -> bool {
    mem::size_of::<T>() <= mem::size_of::<usize>()
        && mem::align_of::<T>() <= mem::align_of::<usize>()
}

/// Gives every `'static` type one promoted `ValueType` constant.
trait Typed {
    const TYPE: ValueType;
}

impl<T: 'static> Typed for T {
    const TYPE: ValueType = ValueType {
        id: TypeId::of::<T>(),
        name: std::any::type_name::<T>,
        inline: fits::<T>(),
        drop: drop_value::<T>,
    };
}

/// Drops the `T` at `value`, moved into this frame first. A value that
/// does not fit in the word lives in its sender's suspended frame, and its
/// destructor is user code: it may switch (resuming the sender, whose
/// frame is then popped and reused) or let the sender go (dropping its
/// last handle, which recycles or unmaps its stack). Dropped in place, the
/// rest of the destructor would then run on freed memory; moved, it only
/// touches the receiver's own stack.
///
/// # Safety
/// `value` points to a live `T` that nobody will use again.
unsafe fn drop_value<T>(value: *mut u8) {
    // SAFETY: forwarded from the caller: the `T` is live and this read is
    // its only move out (nobody uses the original after it).
    drop(unsafe { ptr::read(value.cast::<T>()) })
}

/// The `ValueType` of `T`. For most types it is a promoted constant whose
/// address is not unique (each codegen unit may hold a copy), so receivers
/// compare `id`s; for the [well-known](well_known) types it is one `static`.
#[inline(always)]
pub(crate) fn type_of<T: 'static>() -> &'static ValueType {
    match well_known::<T>() {
        Some(ty) => ty,
        None => &<T as Typed>::TYPE,
    }
}

/// The one `static` `ValueType` of `T` when `T` is among the types values
/// most often have (`()`, which every hub hand-off sends, and the
/// primitive integers and `bool`). A generic function cannot have a
/// `static` per type, so each of these is written out; the `TypeId`
/// comparisons fold away at compile time.
///
/// The point is the receiver's check: a `static` has one address in the
/// whole program, so a receiver expecting one of these types compares one
/// pointer instead of two 128-bit `TypeId` halves (6 instructions less on
/// each arrival).
#[inline(always)]
fn well_known<T: 'static>() -> Option<&'static ValueType> {
    macro_rules! statics {
        ($($t:ty),*) => {$(
            if TypeId::of::<T>() == TypeId::of::<$t>() {
                static TYPE: ValueType = <$t as Typed>::TYPE;
                return Some(&TYPE);
            }
        )*};
    }
    statics!((), bool, u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);
    None
}

/// The `TypeId` comparison, out of line: on the well-known types' path it
/// runs only when the address differs, which is the slow lane anyway.
#[cold]
#[inline(never)]
fn same_id<R: 'static>(incoming: &ValueType) -> bool {
    incoming.id == TypeId::of::<R>()
}

/// Whether `incoming` describes an `R`: by address for a
/// [well-known](well_known) `R` (whose senders all use its one `static`),
/// by `TypeId` otherwise, and by `TypeId` again when the address differs,
/// so the answer never depends on which copy a sender used.
#[inline(always)]
pub(crate) fn is_type<R: 'static>(incoming: &'static ValueType) -> bool {
    match well_known::<R>() {
        Some(ty) => ptr::eq(incoming, ty) || same_id::<R>(incoming),
        None => incoming.id == TypeId::of::<R>(),
    }
}

/// Turns the value in `slot` into the word that crosses the switch. For a
/// small value the slot is emptied (its bits move into the word); for a
/// large one the word points at the slot, which must then stay where it is,
/// untouched, until the receiver has taken the value.
///
/// # Safety
/// `slot` holds a live value, and is not used again by the caller.
#[inline(always)]
pub(crate) unsafe fn encode<T>(slot: &mut ManuallyDrop<T>) -> Word {
    if fits::<T>() {
        let mut word = Word::uninit();
        // SAFETY: a `T` fits in a `usize` and needs no more alignment;
        // the value is moved out of the slot exactly once.
        unsafe { ptr::write(word.as_mut_ptr().cast::<T>(), ManuallyDrop::take(slot)) };
        word
    } else {
        Word::new((&mut **slot as *mut T) as usize)
    }
}

/// Takes the value out of a word made by [`encode`].
///
/// # Safety
/// `word` was made by `encode::<R>` (or of a type with the same `TypeId`),
/// and the value has not been taken or dropped since.
#[inline(always)]
pub(crate) unsafe fn decode<R>(word: Word) -> R {
    if fits::<R>() {
        // SAFETY: the word holds an `R`'s bits (see above).
        unsafe { ptr::read(word.as_ptr().cast::<R>()) }
    } else {
        // SAFETY: the word points at a live `R` in a suspended frame (an
        // address: all of the word is written).
        unsafe { ptr::read(word.assume_init() as *const R) }
    }
}

/// The marker type a sender leaves when the receiver must look at the
/// runtime's slow lane (a signal, a finished greenlet, a reap).
pub(crate) static SLOW_LANE: ValueType = ValueType {
    id: TypeId::of::<Signal>(),
    name: || "<slow lane>",
    inline: true,
    drop: drop_nothing,
};

/// # Safety
/// Always safe; the signature matches `ValueType::drop`.
unsafe fn drop_nothing(_: *mut u8) {}

/// What the slow lane carries besides (or instead of) a plain value.
pub(crate) enum Signal {
    /// A value whose type is given here (the word's type is `SLOW_LANE`).
    Value(&'static ValueType),
    /// `throw` payload.
    Thrown(Box<dyn std::any::Any + Send>),
    /// A panic that escaped a greenlet.
    Panicked(Box<dyn std::any::Any + Send>),
    /// A value of the wrong type met an unstarted greenlet on the way.
    Mismatch {
        expected: &'static str,
        found: &'static str,
    },
    /// Unwind now: the receiver is being killed (its pending switch
    /// unwinds its stack; an unstarted receiver ends unrun).
    UnwindNow,
    /// The sender refused the receiver's kill of it (it caught the
    /// unwinding and switched away).
    Refused,
    /// The sender was killed.
    Killed,
}

/// Moves `value` out as an `R`, which must be the very same type.
///
/// Returns the value back when the types differ.
#[inline]
pub(crate) fn cast_same<T: 'static, R: 'static>(value: T) -> Result<R, T> {
    if TypeId::of::<T>() == TypeId::of::<R>() {
        let value = ManuallyDrop::new(value);
        // SAFETY: `T` and `R` are the same type (equal `TypeId`s), and the
        // original is wrapped in `ManuallyDrop`, so it is moved exactly once.
        Ok(unsafe { ptr::read((&*value as *const T).cast::<R>()) })
    } else {
        Err(value)
    }
}

/// The panic payload that a kill unwinds a greenlet's stack with: the
/// kill's number, if its unwinding is listed as under way (see
/// `Runtime::kills_in_flight`).
pub(crate) struct GreenletExit(Option<u64>);

/// Numbers kills across the process, so a payload that another thread
/// drops is told from this thread's.
static KILLS: AtomicU64 = AtomicU64::new(0);

/// A new kill's number.
pub(crate) fn next_kill() -> u64 {
    KILLS.fetch_add(1, Ordering::Relaxed)
}

impl GreenletExit {
    /// The payload of kill number `kill`, listed as under way until the
    /// payload is dropped.
    pub(crate) fn of(kill: u64) -> GreenletExit {
        GreenletExit(Some(kill))
    }

    /// A payload that goes on with a kill's unwinding, not listed.
    pub(crate) fn unmarked() -> GreenletExit {
        GreenletExit(None)
    }
}

impl Drop for GreenletExit {
    /// The payload is dropped where the unwinding was caught, or after
    /// being handed on from there: that kill's unwinding is over.
    fn drop(&mut self) {
        if let Some(kill) = self.0 {
            if let Some(rt) = crate::runtime::Runtime::if_running() {
                rt.kill_unwinding_caught(kill);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_carry_small_and_large_values() {
        let mut small = ManuallyDrop::new(7u32);
        // SAFETY: each value is encoded once and decoded once.
        unsafe {
            assert_eq!(decode::<u32>(encode(&mut small)), 7);
            let mut large = ManuallyDrop::new([1u64, 2, 3]);
            assert_eq!(decode::<[u64; 3]>(encode(&mut large)), [1, 2, 3]);
            let mut text = ManuallyDrop::new(String::from("hi"));
            let word = encode(&mut text);
            type_of::<String>().drop_word(word);
        }
        assert!(type_of::<Box<u8>>().inline);
        assert!(!type_of::<String>().inline);
    }

    #[test]
    fn type_of_identifies_types() {
        assert_eq!(type_of::<u32>().id, TypeId::of::<u32>());
        assert_eq!(type_of::<String>().name(), "alloc::string::String");
        assert_ne!(type_of::<u32>().id, type_of::<i32>().id);
    }

    #[test]
    fn well_known_types_have_one_address() {
        assert!(ptr::eq(type_of::<u64>(), type_of::<u64>()));
        assert!(ptr::eq(type_of::<()>(), well_known::<()>().unwrap()));
        assert!(well_known::<String>().is_none());
        assert!(is_type::<u64>(type_of::<u64>()));
        assert!(!is_type::<u64>(type_of::<i64>()));
        // A copy at another address still answers by `TypeId`.
        assert!(is_type::<u64>(&<u64 as Typed>::TYPE));
        assert!(is_type::<String>(type_of::<String>()));
        assert!(!is_type::<String>(type_of::<u64>()));
    }

    #[test]
    fn cast_same_moves_or_returns() {
        assert_eq!(cast_same::<u8, u8>(3), Ok(3));
        assert_eq!(cast_same::<u8, u16>(3), Err(3));
    }
}
