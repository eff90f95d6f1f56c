//! The ops a ring has in flight, by user_data.
//!
//! Each in-flight user op is an entry here from the moment its SQE is queued until its
//! final CQE: the entry holds the ring's counted reference to the op's cell, which keeps
//! every buffer the kernel was given alive (design invariant 2), and its index is the
//! op's user_data. The ring finds the op of a CQE here, asks the kernel about each entry
//! after a lost CQE (`lost.rs`), and cancels and waits for all of them when it is dropped
//! (`shutdown.rs`).
//!
//! It is a slab reduced to what the submit and reap paths need, because those two run
//! once per op: an entry is one word, the cell's address when occupied and the next free
//! index (shifted, with the low bit set) when vacant, so queueing an op is a pop from the
//! free list and reaping it a push. Only the owner thread reaches the table, and no
//! method calls out while it touches the vector, so plain `Cell`s and one `UnsafeCell`
//! do, with no borrow flag to check on every op. A user_data names an entry only while
//! the op is in flight; a CQE whose user_data names a vacant or unknown entry is reported
//! and dropped, never dereferenced.

use std::cell::{Cell, UnsafeCell};
use std::ptr::NonNull;

use crate::cell::{CellHandle, Header};

/// The free list's end.
const NONE: usize = usize::MAX >> 1;

/// The in-flight ops of one ring (see the module docs). Dropping it drops no reference:
/// an entry left at that point is leaked, never freed under the kernel (the ring's
/// shutdown empties it first, `shutdown.rs`).
pub(crate) struct InFlight {
    /// Occupied: the address of the op's cell (a `CellHandle` turned into a pointer,
    /// so at least 8-aligned and even). Vacant: `next << 1 | 1`.
    entries: UnsafeCell<Vec<usize>>,
    /// The first vacant entry, or `NONE`.
    free: Cell<usize>,
    len: Cell<usize>,
}

impl InFlight {
    pub(crate) fn with_capacity(capacity: usize) -> InFlight {
        InFlight {
            entries: UnsafeCell::new(Vec::with_capacity(capacity)),
            free: Cell::new(NONE),
            len: Cell::new(0),
        }
    }

    /// How many ops are in flight.
    pub(crate) fn len(&self) -> usize {
        self.len.get()
    }

    /// The user_data the next [`InFlight::insert`] will give its op.
    #[inline]
    pub(crate) fn next_key(&self) -> u64 {
        match self.free.get() {
            // SAFETY: owner-only, and no reference into the vector outlives this line.
            NONE => unsafe { (*self.entries.get()).len() as u64 },
            free => free as u64,
        }
    }

    /// Makes `op` in flight under [`InFlight::next_key`]'s key, which it returns.
    #[inline]
    pub(crate) fn insert(&self, op: CellHandle) -> u64 {
        let addr = op.into_raw().as_ptr() as usize;
        debug_assert_eq!(addr & 1, 0, "cells are at least 2-aligned");
        // SAFETY: owner-only, and nothing here calls out while the vector is borrowed.
        let entries = unsafe { &mut *self.entries.get() };
        let key = match self.free.get() {
            NONE => {
                entries.push(addr);
                entries.len() - 1
            }
            free => {
                self.free.set(entries[free] >> 1);
                entries[free] = addr;
                free
            }
        };
        self.len.set(self.len.get() + 1);
        key as u64
    }

    /// The op under `key`, if one is in flight there; the ring's reference stays.
    #[inline]
    pub(crate) fn get(&self, key: u64) -> Option<NonNull<Header>> {
        // SAFETY: owner-only; the shared borrow ends with this statement.
        let entry = *unsafe { &*self.entries.get() }.get(usize::try_from(key).ok()?)?;
        if entry & 1 != 0 {
            return None;
        }
        // An occupied entry holds the address of a live cell (it holds its reference).
        NonNull::new(entry as *mut Header)
    }

    /// Whether `key` is where `op` is in flight.
    pub(crate) fn holds(&self, key: u64, op: &Header) -> bool {
        self.get(key)
            .is_some_and(|ptr| std::ptr::eq(ptr.as_ptr(), op))
    }

    /// Takes the op under `key` out, with the ring's reference to it.
    #[inline]
    pub(crate) fn remove(&self, key: u64) -> Option<CellHandle> {
        let ptr = self.get(key)?;
        let index = key as usize;
        // SAFETY: owner-only, and nothing here calls out while the vector is borrowed.
        let entries = unsafe { &mut *self.entries.get() };
        entries[index] = (self.free.get() << 1) | 1;
        self.free.set(index);
        self.len.set(self.len.get() - 1);
        // SAFETY: the entry held the ring's reference, which we take out with it.
        Some(unsafe { CellHandle::from_raw(ptr) })
    }

    /// Every op in flight with its key, each with a reference of its own.
    pub(crate) fn snapshot(&self) -> Vec<(u64, CellHandle)> {
        // Cloning a handle is an atomic increment, calling out to nothing that reaches
        // the table.
        // SAFETY: owner-only, and nothing mutates the vector while this borrow lives.
        let entries = unsafe { &*self.entries.get() };
        entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| *entry & 1 == 0)
            .map(|(key, &entry)| {
                let ptr = NonNull::new(entry as *mut Header).expect("occupied entries are cells");
                // SAFETY: the entry holds a reference, so the cell is alive.
                (key as u64, unsafe { ptr.as_ref() }.handle())
            })
            .collect()
    }

    /// Forgets every op in flight without dropping the ring's references: what the
    /// kernel may still write stays allocated (`shutdown.rs`).
    pub(crate) fn leak_all(&self) {
        // SAFETY: owner-only; nothing is dropped.
        unsafe { (*self.entries.get()).clear() };
        self.free.set(NONE);
        self.len.set(0);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::op::Nop;

    fn cell() -> CellHandle {
        crate::cell::OpRef::new(Nop::new()).1
    }

    #[test]
    fn keys_are_reused_and_vacant_keys_find_nothing() {
        let table = InFlight::with_capacity(4);
        let (a, b) = (cell(), cell());
        let pa = NonNull::from(&*a);
        let b_is_here = |table: &InFlight, key| table.holds(key, &b);
        assert_eq!(table.next_key(), 0);
        assert_eq!(table.insert(a), 0);
        assert_eq!(table.insert(b.clone()), 1);
        assert_eq!(table.len(), 2);
        assert_eq!(table.get(0), Some(pa));
        assert!(b_is_here(&table, 1));
        assert!(!b_is_here(&table, 0));
        assert!(table.remove(0).is_some());
        assert!(table.get(0).is_none(), "a vacant entry names no op");
        assert!(table.remove(0).is_none(), "an op is removed once");
        assert!(table.get(7).is_none(), "past the end names no op");
        assert_eq!(table.next_key(), 0, "the freed key is the next one");
        let c = cell();
        assert_eq!(table.insert(c), 0);
        assert_eq!(table.len(), 2);
        let left: Vec<u64> = table.snapshot().into_iter().map(|(key, _)| key).collect();
        assert_eq!(left, [0, 1]);
        drop(table.remove(1));
        drop(table.remove(0));
        assert_eq!(table.len(), 0);
    }
}
