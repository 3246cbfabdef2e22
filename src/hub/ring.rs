//! `Ring<T>`: the hub's FIFOs of values (the ready queue, a queue's items,
//! the wait lists).
//!
//! A ring buffer whose capacity is zero or a power of two, so the slot of
//! the `i`-th value is `(head + i) & mask`: no compare-and-subtract per
//! index as `VecDeque` needs for its arbitrary capacity. Measured in the
//! hub's hottest path (a yield: one push and one pop of the ready queue),
//! `VecDeque` took 31 instructions. A yield also never needs the two
//! steps apart: [`rotate`](Ring::rotate) puts a value at the back and takes
//! the front one in a single step, with no length change and so no growth
//! check.
//!
//! The safe layer is the methods; the unsafe part is reaching a slot
//! without a bounds check and reading or writing it, which is sound because
//! of two invariants: `mask` is `slots.len() - 1` whenever there are slots
//! (so a masked index is in bounds), and the `len` slots from `head` on
//! (wrapping) hold values while every other slot holds none.

use std::fmt;
use std::mem::{self, MaybeUninit};

/// A FIFO of `T` that can also take values at the front.
///
/// Declared `pub` only because it is the store of a FIFO queue's public
/// (sealed) order, [`Fifo`](super::Fifo); the module is private, so
/// nothing outside the crate can name it.
pub struct Ring<T> {
    /// Zero or a power of two slots (all of the `Vec`'s length): the `len`
    /// from `head` on, wrapping, are initialised; the others are not.
    slots: Vec<MaybeUninit<T>>,
    /// The front value's slot; less than `slots.len()` whenever there are
    /// slots.
    head: usize,
    len: usize,
    /// `slots.len() - 1` once there are slots (0 before): kept rather than
    /// computed, one load less per index.
    mask: usize,
}

/// Slots of the first allocation.
const FIRST_CAPACITY: usize = 8;

impl<T> Ring<T> {
    /// An empty ring; allocates nothing.
    pub(crate) const fn new() -> Ring<T> {
        Ring {
            slots: Vec::new(),
            head: 0,
            len: 0,
            mask: 0,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot of the `i`-th value from the front (`slots` is not empty).
    #[inline]
    fn slot(&self, i: usize) -> usize {
        debug_assert!(self.slots.is_empty() || self.mask == self.slots.len() - 1);
        (self.head + i) & self.mask
    }

    /// Appends `value`.
    #[inline]
    pub(crate) fn push_back(&mut self, value: T) {
        if self.len == self.slots.len() {
            self.grow();
        }
        let i = self.slot(self.len);
        // SAFETY: `slots` is not empty (`grow` made some if there were
        // none), so `slot` masks with `mask == slots.len() - 1` and `i` is
        // in bounds.
        unsafe { self.slots.get_unchecked_mut(i) }.write(value);
        self.len += 1;
    }

    /// Puts `value` in front of the others.
    #[inline]
    pub(crate) fn push_front(&mut self, value: T) {
        if self.len == self.slots.len() {
            self.grow();
        }
        self.head = self.slot(self.slots.len() - 1);
        // SAFETY: as in `push_back`, a masked index into non-empty slots.
        unsafe { self.slots.get_unchecked_mut(self.head) }.write(value);
        self.len += 1;
    }

    /// Takes the front value.
    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let head = self.head;
        self.head = self.slot(1);
        self.len -= 1;
        // SAFETY: with `len` non-zero, `head` is a slot (less than
        // `slots.len()`) holding the front value; it is no longer counted
        // among the held ones, so the value is moved out exactly once.
        Some(unsafe { self.slots.get_unchecked(head).assume_init_read() })
    }

    /// Takes the back value.
    #[inline]
    pub(crate) fn pop_back(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let back = self.slot(self.len);
        // SAFETY: with `len` non-zero, `back` (a masked index into the
        // non-empty slots) held the back value; it is no longer counted
        // among the held ones, so the value is moved out exactly once.
        Some(unsafe { self.slots.get_unchecked(back).assume_init_read() })
    }

    /// Appends `value` and takes the front value, in one step: what
    /// `push_back` then `pop_front` would do (so `value` itself comes back
    /// when the ring is empty), without a growth check.
    #[inline]
    pub(crate) fn rotate(&mut self, value: T) -> T {
        if self.len == 0 {
            return value;
        }
        let head = self.head;
        let back = self.slot(self.len);
        // SAFETY: as in `pop_front`, `head` is in bounds and holds the
        // front value, which is moved out here; `back` is a masked index
        // into non-empty slots, and the free slot behind the values, or
        // `head` itself when the ring is full (written after the read).
        // With `head` moved on, the held range is the old one shifted by
        // one: every value but the front, then `value`.
        unsafe {
            let front = self.slots.get_unchecked(head).assume_init_read();
            self.slots.get_unchecked_mut(back).write(value);
            self.head = self.slot(1);
            front
        }
    }

    /// The `i`-th value from the front.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        // SAFETY: the `i`-th slot from `head` with `i < len` holds a value
        // (the type's invariant), borrowed here as long as `self` is.
        Some(unsafe { self.slots[self.slot(i)].assume_init_ref() })
    }

    /// The `i`-th value from the front, to change.
    #[inline]
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        let slot = self.slot(i);
        // SAFETY: as in `get`, the slot holds a value; borrowed mutably as
        // long as `self` is.
        Some(unsafe { self.slots[slot].assume_init_mut() })
    }

    /// The front value.
    #[inline]
    pub(crate) fn front(&self) -> Option<&T> {
        self.get(0)
    }

    /// The back value.
    #[inline]
    pub(crate) fn back(&self) -> Option<&T> {
        self.len.checked_sub(1).and_then(|i| self.get(i))
    }

    /// Keeps only the values `keep` says yes to, in order.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for _ in 0..self.len {
            let value = self.pop_front().expect("a value per round");
            if keep(&value) {
                self.push_back(value);
            }
        }
    }

    /// The values, front first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        (0..self.len).filter_map(|i| self.get(i))
    }

    /// Takes out the `i`-th value from the front; the ones behind it move
    /// up (linear: for rare removals).
    pub(crate) fn remove(&mut self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        // Move the value to the back, keeping the others' order, then
        // shorten the ring by it. Swapping `MaybeUninit`s moves bytes only.
        for j in i..self.len - 1 {
            let (a, b) = (self.slot(j), self.slot(j + 1));
            self.slots.swap(a, b);
        }
        let last = self.slot(self.len - 1);
        self.len -= 1;
        // SAFETY: `last` held the `i`-th value (swapped there, the others
        // keeping their order in front of it) and is no longer counted
        // among the held slots, so it is moved out exactly once.
        Some(unsafe { self.slots[last].assume_init_read() })
    }

    /// Doubles the slots (or makes the first ones), keeping the values in
    /// order from slot 0.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(FIRST_CAPACITY);
        let mut slots = Vec::with_capacity(capacity);
        for i in 0..self.len {
            let from = self.slot(i);
            slots.push(mem::replace(&mut self.slots[from], MaybeUninit::uninit()));
        }
        slots.resize_with(capacity, MaybeUninit::uninit);
        self.slots = slots;
        self.head = 0;
        self.mask = capacity - 1;
    }
}

impl<T> Default for Ring<T> {
    fn default() -> Ring<T> {
        Ring::new()
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        /// Drops what is left when a value's destructor panics, as
        /// `VecDeque` does: the panic then goes on to the dropper, and
        /// nothing behind that value leaks.
        struct Rest<'a, T>(&'a mut Ring<T>);
        impl<T> Drop for Rest<'_, T> {
            fn drop(&mut self) {
                while let Some(value) = self.0.pop_front() {
                    drop(value);
                }
            }
        }
        let rest = Rest(self);
        while let Some(value) = rest.0.pop_front() {
            drop(value);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::rc::Rc;

    /// A destructor that panics while the ring drops stops neither the
    /// drops of the values behind it nor the panic.
    #[test]
    fn a_panicking_destructor_leaks_nothing_behind_it() {
        struct Panics;
        impl Drop for Panics {
            fn drop(&mut self) {
                panic!("a value's destructor panics");
            }
        }
        let counted = Rc::new(());
        let mut ring: Ring<Result<Panics, Rc<()>>> = Ring::new();
        ring.push_back(Err(counted.clone()));
        ring.push_back(Ok(Panics));
        for _ in 0..3 {
            ring.push_back(Err(counted.clone()));
        }
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(ring)));
        assert!(dropped.is_err());
        assert_eq!(Rc::strong_count(&counted), 1);
    }

    /// Every operation against `VecDeque`, through several growths and
    /// wraps.
    #[test]
    fn matches_vecdeque() {
        let mut ring = Ring::new();
        let mut model = VecDeque::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for n in 0..20_000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            match seed % 7 {
                0 | 1 => {
                    ring.push_back(n);
                    model.push_back(n);
                }
                2 => {
                    ring.push_front(n);
                    model.push_front(n);
                }
                3 | 4 => assert_eq!(ring.pop_front(), model.pop_front()),
                6 if n % 2 == 0 => {
                    assert_eq!(ring.pop_back(), model.pop_back());
                    assert_eq!(ring.back(), model.back());
                }
                6 if n % 3 == 0 => {
                    ring.retain(|v| v % 5 != 0);
                    model.retain(|v| v % 5 != 0);
                }
                5 => {
                    let out = ring.rotate(n);
                    model.push_back(n);
                    assert_eq!(Some(out), model.pop_front());
                }
                _ => {
                    let i = (seed >> 32) as usize % (model.len() + 1);
                    assert_eq!(ring.remove(i), model.remove(i));
                }
            }
            assert_eq!(ring.len(), model.len());
            assert_eq!(ring.front(), model.front());
        }
        assert!(ring.iter().eq(model.iter()));
    }

    #[test]
    fn rotate_on_empty_and_full_rings() {
        let mut ring = Ring::new();
        assert_eq!(ring.rotate(1), 1, "an empty ring gives the value back");
        assert!(ring.is_empty());
        for i in 0..FIRST_CAPACITY {
            ring.push_back(i);
        }
        // Full: the back slot is the front's.
        assert_eq!(ring.rotate(100), 0);
        assert_eq!(ring.len(), FIRST_CAPACITY);
        let rest: Vec<_> = ring.iter().copied().collect();
        assert_eq!(rest, [1, 2, 3, 4, 5, 6, 7, 100]);
    }

    /// Each value is dropped exactly once: taken out, or with the ring.
    #[test]
    fn drops_every_value_once() {
        let counted = Rc::new(());
        {
            let mut ring = Ring::new();
            for _ in 0..100 {
                ring.push_back(counted.clone());
            }
            for _ in 0..30 {
                drop(ring.pop_front());
                let back = ring.rotate(counted.clone());
                drop(back);
            }
            drop(ring.remove(5));
            ring.push_front(counted.clone());
            assert_eq!(Rc::strong_count(&counted), 1 + ring.len());
        }
        assert_eq!(Rc::strong_count(&counted), 1);
    }
}
