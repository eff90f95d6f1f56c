//! Doubly-linked lists threaded through the slab by index.
//!
//! A list owns nothing: it is a head and a tail index, and the links live in
//! the entries themselves. That is what makes insert and cancel O(1) without
//! a per-slot allocation, and lets an entry move between lists (cascading,
//! `reset`) by relinking two `u32`s.

use slab::Slab;

use crate::entry::{Entry, NONE};

/// A list of slab entries linked through their `prev`/`next` fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct List {
    head: u32,
    tail: u32,
}

impl List {
    pub(crate) const EMPTY: List = List {
        head: NONE,
        tail: NONE,
    };

    pub(crate) fn is_empty(&self) -> bool {
        self.head == NONE
    }

    /// Appends `index`, which must not be on any list.
    ///
    /// Appending (rather than pushing at the head) keeps the due list in
    /// firing order: entries reach it in nondecreasing deadline order.
    pub(crate) fn push_back<T>(&mut self, entries: &mut Slab<Entry<T>>, index: u32) {
        let old_tail = self.tail;
        {
            let entry = &mut entries[index as usize];
            entry.prev = old_tail;
            entry.next = NONE;
        }
        if old_tail == NONE {
            self.head = index;
        } else {
            entries[old_tail as usize].next = index;
        }
        self.tail = index;
    }

    /// Removes `index`, which must be on this list.
    pub(crate) fn unlink<T>(&mut self, entries: &mut Slab<Entry<T>>, index: u32) {
        let (prev, next) = {
            let entry = &mut entries[index as usize];
            let links = (entry.prev, entry.next);
            entry.prev = NONE;
            entry.next = NONE;
            links
        };
        if prev == NONE {
            debug_assert_eq!(self.head, index, "unlinking an entry from the wrong list");
            self.head = next;
        } else {
            entries[prev as usize].next = next;
        }
        if next == NONE {
            debug_assert_eq!(self.tail, index, "unlinking an entry from the wrong list");
            self.tail = prev;
        } else {
            entries[next as usize].prev = prev;
        }
    }

    pub(crate) fn pop_front<T>(&mut self, entries: &mut Slab<Entry<T>>) -> Option<u32> {
        let head = self.head;
        if head == NONE {
            return None;
        }
        self.unlink(entries, head);
        Some(head)
    }

    /// Its entries, front to back, without detaching them.
    pub(crate) fn walk(&self) -> Chain {
        Chain { cursor: self.head }
    }

    /// Empties the list in O(1), handing back its entries as a [`Chain`].
    pub(crate) fn take(&mut self) -> Chain {
        let chain = Chain { cursor: self.head };
        *self = List::EMPTY;
        chain
    }
}

/// The entries of a list detached by [`List::take`], walked front to back.
///
/// The walk reads an entry's `next` link before yielding it, so the caller
/// may relink each yielded entry onto another list straight away.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chain {
    cursor: u32,
}

impl Chain {
    pub(crate) fn pop<T>(&mut self, entries: &Slab<Entry<T>>) -> Option<u32> {
        let index = self.cursor;
        if index == NONE {
            return None;
        }
        self.cursor = entries[index as usize].next;
        Some(index)
    }
}
