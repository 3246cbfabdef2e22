//! Typed, generation-checked keys for the hub's tables of waits, timers
//! and `with_timeout` scopes.
//!
//! A table reuses a freed slot for the next insert, so a plain index kept
//! past its entry's end (a timer that already fired, a scope that ended, a
//! wait whose greenlet moved on) would silently name whatever took the slot
//! next. Each key here carries the generation its entry was inserted with;
//! a stale key finds a different generation and names nothing. Each table
//! has its own key type, so a wait key cannot be used as a timer key.

use std::fmt;
use std::marker::PhantomData;

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

/// One place of a table: its current generation, and the entry or (when
/// vacant) the next vacant place.
struct Slot<T> {
    generation: usize,
    value: Option<T>,
    /// When vacant: the next vacant slot (`NO_SLOT`: none). When
    /// occupied: where the slot's index is in the table's `live` list.
    link: usize,
}

/// The end of the vacant list.
const NO_SLOT: usize = usize::MAX;

/// A table of `T` addressed by keys of type `K`: a vector with a list of
/// vacant places, each place counting its generation. A removal bumps its
/// place's generation, so the key it had names nothing afterwards (until
/// the generation wraps, after 2^32 reuses of that one place on 64-bit).
///
/// The table never shrinks (its places keep their generations), so the
/// indices of the occupied places are also kept in a dense list: walking
/// the entries costs what is in the table now, not the most it ever held
/// (after a burst of 100,000 waits, the hub's idle checks walked them all
/// on every pass).
pub(crate) struct Slots<K, T> {
    slots: Vec<Slot<T>>,
    /// The first vacant slot (`NO_SLOT`: none).
    free: usize,
    /// The occupied slots' indices, in no order.
    live: Vec<usize>,
    _key: PhantomData<K>,
}

impl<K: SlotKey, T> Slots<K, T> {
    pub(crate) fn new() -> Slots<K, T> {
        Slots {
            slots: Vec::new(),
            free: NO_SLOT,
            live: Vec::new(),
            _key: PhantomData,
        }
    }

    /// Stores `value`; its key names it until it is removed.
    #[inline]
    pub(crate) fn insert(&mut self, value: T) -> K {
        let index = self.free;
        let at = self.live.len();
        if let Some(slot) = self.slots.get_mut(index) {
            self.free = slot.link;
            slot.value = Some(value);
            slot.link = at;
            self.live.push(index);
            return K::pack(index, slot.generation);
        }
        self.push(value)
    }

    /// `insert` when no place is vacant: the table grows.
    #[cold]
    #[inline(never)]
    fn push(&mut self, value: T) -> K {
        let index = self.slots.len();
        assert!(
            index <= INDEX_MASK,
            "greenlet::hub: too many entries in one table"
        );
        self.slots.push(Slot {
            generation: 0,
            value: Some(value),
            link: self.live.len(),
        });
        self.live.push(index);
        K::pack(index, 0)
    }

    /// The slot `key` names, if its generation is current.
    #[inline]
    fn slot_mut(&mut self, key: K) -> Option<&mut Slot<T>> {
        let packed = key.packed();
        self.slots
            .get_mut(packed & INDEX_MASK)
            .filter(|s| s.generation == packed >> INDEX_BITS)
    }

    /// The entry `key` names, if it is still there.
    #[inline]
    pub(crate) fn get(&self, key: K) -> Option<&T> {
        let packed = key.packed();
        self.slots
            .get(packed & INDEX_MASK)
            .filter(|s| s.generation == packed >> INDEX_BITS)
            .and_then(|s| s.value.as_ref())
    }

    /// The entry `key` names, if it is still there.
    #[inline]
    pub(crate) fn get_mut(&mut self, key: K) -> Option<&mut T> {
        self.slot_mut(key).and_then(|s| s.value.as_mut())
    }

    /// Removes the entry `key` names, if it is still there.
    #[inline]
    pub(crate) fn remove(&mut self, key: K) -> Option<T> {
        self.remove_if(key, |_| true)
    }

    /// Removes the entry `key` names if it is there and `take` says so
    /// (one lookup for "look, then maybe remove").
    #[inline]
    pub(crate) fn remove_if(&mut self, key: K, take: impl FnOnce(&T) -> bool) -> Option<T> {
        let free = self.free;
        let slot = self.slot_mut(key)?;
        if !take(slot.value.as_ref()?) {
            return None;
        }
        let value = slot.value.take();
        slot.generation = (slot.generation + 1) & (usize::MAX >> INDEX_BITS);
        let at = std::mem::replace(&mut slot.link, free);
        self.free = key.packed() & INDEX_MASK;
        // Out of the live list; the index moved into its place says so.
        self.live.swap_remove(at);
        if let Some(&moved) = self.live.get(at) {
            self.slots[moved].link = at;
        }
        value
    }

    /// How many entries the table holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// The entries with their keys, in no particular order; costs what the
    /// table holds now.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (K, &T)> {
        self.live.iter().map(|&index| {
            let s = &self.slots[index];
            let value = s.value.as_ref().expect("a live slot holds its entry");
            (K::pack(index, s.generation), value)
        })
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

    #[test]
    fn iteration_sees_exactly_the_entries_left_whatever_the_order_of_removal() {
        let mut s: Slots<TestKey, usize> = Slots::new();
        let mut keys: Vec<(TestKey, usize)> = (0..200).map(|i| (s.insert(i), i)).collect();
        // Remove in a scrambled order, checking the walk each time.
        let mut x = 12345u64;
        while !keys.is_empty() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (k, v) = keys.swap_remove((x % keys.len() as u64) as usize);
            assert_eq!(s.remove(k), Some(v));
            let mut seen: Vec<(TestKey, usize)> = s.iter().map(|(k, v)| (k, *v)).collect();
            let mut want = keys.clone();
            seen.sort_by_key(|e| e.1);
            want.sort_by_key(|e| e.1);
            assert_eq!(seen, want);
            assert_eq!(s.len(), keys.len());
            if x.is_multiple_of(3) {
                // Reuse a place on the way.
                let v = 1000 + keys.len();
                keys.push((s.insert(v), v));
            }
        }
        assert_eq!(s.iter().count(), 0);
    }
}
