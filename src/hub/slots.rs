//! Typed, generation-checked keys for the hub's tables of waits, timers
//! and `with_timeout` scopes.
//!
//! A `Slab` reuses a freed slot for the next insert, so a plain index kept
//! past its entry's end (a timer that already fired, a scope that ended, a
//! wait whose greenlet moved on) would silently name whatever took the slot
//! next. Each key here carries the generation its entry was inserted with;
//! a stale key finds a different generation and names nothing. Each table
//! has its own key type, so a wait key cannot be used as a timer key.

use std::fmt;
use std::marker::PhantomData;

use slab::Slab;

/// Bits of a key's packed form that hold the slot index; the rest hold the
/// generation.
const INDEX_BITS: u32 = usize::BITS / 2;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

/// A key type of one table (see [`slot_key!`]).
pub(crate) trait SlotKey: Copy + Eq {
    /// The key of slot `index` at generation `generation` (masked).
    fn pack(index: usize, generation: usize) -> Self;
    /// The packed form: index in the low half, generation in the high one.
    fn packed(self) -> usize;
}

macro_rules! slot_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) struct $name(usize);

        impl $crate::hub::slots::SlotKey for $name {
            #[inline]
            fn pack(index: usize, generation: usize) -> Self {
                $name(index | (generation << $crate::hub::slots::index_bits()))
            }
            #[inline]
            fn packed(self) -> usize {
                self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                $crate::hub::slots::debug_key(stringify!($name), self.0, f)
            }
        }
    };
}
pub(crate) use slot_key;

/// [`INDEX_BITS`] for the macro's expansions.
#[inline(always)]
pub(crate) const fn index_bits() -> u32 {
    INDEX_BITS
}

pub(crate) fn debug_key(name: &str, packed: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(
        f,
        "{name}({}@{})",
        packed & INDEX_MASK,
        packed >> INDEX_BITS
    )
}

struct Slot<T> {
    generation: usize,
    value: T,
}

/// A slab of `T` addressed by keys of type `K`.
pub(crate) struct Slots<K, T> {
    slab: Slab<Slot<T>>,
    /// The generation the next insert gets (wrapping within its bits).
    generation: usize,
    _key: PhantomData<K>,
}

impl<K: SlotKey, T> Slots<K, T> {
    pub(crate) fn new() -> Slots<K, T> {
        Slots {
            slab: Slab::new(),
            generation: 0,
            _key: PhantomData,
        }
    }

    /// Stores `value`; its key names it until it is removed.
    #[inline]
    pub(crate) fn insert(&mut self, value: T) -> K {
        let generation = self.generation;
        self.generation = (generation + 1) & (usize::MAX >> INDEX_BITS);
        let index = self.slab.insert(Slot { generation, value });
        assert!(
            index <= INDEX_MASK,
            "greenlet::hub: too many entries in one table"
        );
        K::pack(index, generation)
    }

    #[inline]
    fn slot(&self, key: K) -> Option<&Slot<T>> {
        let packed = key.packed();
        self.slab
            .get(packed & INDEX_MASK)
            .filter(|s| s.generation == packed >> INDEX_BITS)
    }

    /// The entry `key` names, if it is still there.
    #[inline]
    pub(crate) fn get(&self, key: K) -> Option<&T> {
        self.slot(key).map(|s| &s.value)
    }

    /// The entry `key` names, if it is still there.
    #[inline]
    pub(crate) fn get_mut(&mut self, key: K) -> Option<&mut T> {
        let packed = key.packed();
        self.slab
            .get_mut(packed & INDEX_MASK)
            .filter(|s| s.generation == packed >> INDEX_BITS)
            .map(|s| &mut s.value)
    }

    /// Removes the entry `key` names, if it is still there.
    #[inline]
    pub(crate) fn remove(&mut self, key: K) -> Option<T> {
        self.slot(key)?;
        Some(self.slab.remove(key.packed() & INDEX_MASK).value)
    }

    /// Whether the table is empty.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// The entries with their keys.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (K, &T)> {
        self.slab
            .iter()
            .map(|(index, s)| (K::pack(index, s.generation), &s.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    slot_key! {
        /// A key for the tests.
        TestKey
    }

    #[test]
    fn a_recycled_slot_does_not_answer_to_its_old_key() {
        let mut s: Slots<TestKey, &str> = Slots::new();
        let a = s.insert("a");
        assert_eq!(s.get(a), Some(&"a"));
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_ne!(a, b, "same slot, new generation");
        assert_eq!(s.get(a), None);
        assert_eq!(s.get_mut(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(
            s.iter().map(|(k, v)| (k, *v)).collect::<Vec<_>>(),
            [(b, "b")]
        );
    }
}
