//! The buffer cache: a bounded set of 1024-byte block copies, least recently used first
//! out. Blocks of the open transaction (`in_txn`) and blocks recovered from the log of a
//! read-only device (`pinned`) are never evicted; everything else is a clean copy of the
//! disk and may be dropped at any time. The cache does no I/O: the file system fills an
//! entry after it made room for it.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use crate::layout::BSIZE;

pub(crate) struct Entry {
    pub bno: u32,
    pub data: Vec<u8>,
    stamp: u64,
    valid: bool,
    pub in_txn: bool,
    pub pinned: bool,
}

pub(crate) struct Cache {
    entries: Vec<Entry>,
    index: BTreeMap<u32, usize>,
    cap: usize,
    clock: u64,
}

impl Cache {
    pub fn new(cap: usize) -> Self {
        Self { entries: Vec::new(), index: BTreeMap::new(), cap, clock: 0 }
    }

    pub fn find(&self, bno: u32) -> Option<usize> {
        self.index.get(&bno).copied()
    }

    pub fn touch(&mut self, slot: usize) {
        self.clock += 1;
        if let Some(e) = self.entries.get_mut(slot) {
            e.stamp = self.clock;
        }
    }

    pub fn entry(&self, slot: usize) -> Option<&Entry> {
        self.entries.get(slot)
    }

    pub fn entry_mut(&mut self, slot: usize) -> Option<&mut Entry> {
        self.entries.get_mut(slot)
    }

    pub fn data(&self, slot: usize) -> &[u8] {
        self.entries.get(slot).map(|e| &e.data[..]).unwrap_or(&[])
    }

    pub fn data_mut(&mut self, slot: usize) -> &mut [u8] {
        self.entries.get_mut(slot).map(|e| &mut e.data[..]).unwrap_or(&mut [])
    }

    /// A slot for `bno` (not cached yet), zeroed: a free slot, a new one below the
    /// capacity, or the least recently used evictable one. `None` if every entry is held.
    pub fn insert(&mut self, bno: u32) -> Option<usize> {
        let slot = if let Some(i) = self.entries.iter().position(|e| !e.valid) {
            i
        } else if self.entries.len() < self.cap {
            self.entries.push(Entry { bno, data: vec![0; BSIZE], stamp: 0, valid: false, in_txn: false, pinned: false });
            self.entries.len() - 1
        } else {
            let (i, _) = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| !e.in_txn && !e.pinned)
                .min_by_key(|(_, e)| e.stamp)?;
            let old = self.entries[i].bno;
            self.index.remove(&old);
            i
        };
        self.clock += 1;
        let e = &mut self.entries[slot];
        e.bno = bno;
        e.data.fill(0);
        e.stamp = self.clock;
        e.valid = true;
        e.in_txn = false;
        e.pinned = false;
        self.index.insert(bno, slot);
        Some(slot)
    }

    /// Forgets the entry in `slot`.
    pub fn remove(&mut self, slot: usize) {
        if let Some(e) = self.entries.get_mut(slot) {
            if e.valid {
                self.index.remove(&e.bno);
            }
            e.valid = false;
            e.in_txn = false;
            e.pinned = false;
            e.stamp = 0;
        }
    }
}
