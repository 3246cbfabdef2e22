//! Moving a value of any `'static` type from one greenlet to the next
//! without allocating.
//!
//! The sender keeps the value in its own (about to be suspended) frame and
//! publishes a [`Transfer`]: a pointer to the value and a pointer to the
//! value's [`ValueType`]. The greenlet that runs next consumes the transfer
//! before anything else happens: it moves the value out when the type is the
//! one it expects, and otherwise drops it in place and reports a mismatch.
//! Nothing is boxed and nothing is transmuted.

use std::any::TypeId;
use std::mem::ManuallyDrop;
use std::ptr;

/// What a receiver needs to know about a value it did not create: its
/// identity, its name for error messages, and how to drop it.
pub(crate) struct ValueType {
    pub(crate) id: TypeId,
    name: fn() -> &'static str,
    drop: unsafe fn(*mut u8),
}

impl ValueType {
    /// The type's name, as `std::any::type_name` spells it.
    pub(crate) fn name(&self) -> &'static str {
        (self.name)()
    }

    /// Drops the value at `value` in place.
    ///
    /// # Safety
    /// `value` points to a live, initialised value of this type that nobody
    /// will use again.
    pub(crate) unsafe fn drop_in_place(&self, value: *mut u8) {
        // SAFETY: forwarded from the caller.
        unsafe { (self.drop)(value) }
    }
}

/// Gives every `'static` type one promoted `ValueType` constant.
trait Typed {
    const TYPE: ValueType;
}

impl<T: 'static> Typed for T {
    const TYPE: ValueType = ValueType {
        id: TypeId::of::<T>(),
        name: std::any::type_name::<T>,
        drop: drop_value::<T>,
    };
}

/// # Safety
/// `value` points to a live `T` that nobody will use again.
unsafe fn drop_value<T>(value: *mut u8) {
    // SAFETY: forwarded from the caller.
    unsafe { ptr::drop_in_place(value.cast::<T>()) }
}

/// The `ValueType` of `T`. The reference is to a promoted constant, so it is
/// usually (not always: codegen units may hold copies) the same address for
/// the same `T`; receivers compare addresses first and `TypeId`s second.
#[inline(always)]
pub(crate) fn type_of<T: 'static>() -> &'static ValueType {
    &<T as Typed>::TYPE
}

/// The marker a sender puts in [`Transfer::ty`] when the receiver must look
/// at the runtime's slow lane (a signal, a finished greenlet, a reap).
pub(crate) static SIGNAL: ValueType = ValueType {
    id: TypeId::of::<Signal>(),
    name: || "<signal>",
    drop: drop_nothing,
};

/// # Safety
/// Always safe; the signature matches `ValueType::drop`.
unsafe fn drop_nothing(_: *mut u8) {}

/// The two words that cross every switch.
#[derive(Clone, Copy)]
pub(crate) struct Transfer {
    /// The value's type, or `&SIGNAL`.
    pub(crate) ty: *const ValueType,
    /// The value, in the sender's frame.
    pub(crate) value: *mut u8,
}

impl Transfer {
    pub(crate) const EMPTY: Transfer = Transfer {
        ty: &SIGNAL,
        value: ptr::null_mut(),
    };

    /// A transfer of the value in `slot`.
    #[inline(always)]
    pub(crate) fn of<T: 'static>(slot: &mut ManuallyDrop<T>) -> Transfer {
        Transfer {
            ty: type_of::<T>(),
            value: (&mut **slot as *mut T).cast(),
        }
    }

    /// A transfer that points the receiver at the slow lane.
    #[inline]
    pub(crate) fn signal(value: *mut u8) -> Transfer {
        Transfer { ty: &SIGNAL, value }
    }

    #[inline(always)]
    pub(crate) fn is_signal(&self) -> bool {
        ptr::eq(self.ty, &SIGNAL)
    }
}

/// What the slow lane carries besides (or instead of) a plain value.
pub(crate) enum Signal {
    /// A value whose type is given here (the transfer's `ty` is `SIGNAL`).
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
    /// Unwind now: the receiver is being killed.
    Kill,
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

/// The panic payload that a kill unwinds a greenlet's stack with.
pub(crate) struct GreenletExit;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_of_identifies_types() {
        assert_eq!(type_of::<u32>().id, TypeId::of::<u32>());
        assert_eq!(type_of::<String>().name(), "alloc::string::String");
        assert_ne!(type_of::<u32>().id, type_of::<i32>().id);
    }

    #[test]
    fn cast_same_moves_or_returns() {
        assert_eq!(cast_same::<u8, u8>(3), Ok(3));
        assert_eq!(cast_same::<u8, u16>(3), Err(3));
    }
}
