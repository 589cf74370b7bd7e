//! The buffer cache: a bounded set of 1024-byte block copies, replaced by the clock
//! algorithm (an approximation of least recently used: a use sets an entry's reference
//! bit, and the hand sweeping for a victim clears it and passes over it once). Held
//! entries are never evicted: blocks of the open transaction (`in_txn`), blocks committed
//! to the log and not installed yet (`in_log`: their home is older), file data waiting to
//! be written home (`ordered`), and blocks recovered from the log of a read-only device
//! (`pinned`). Everything else is a clean copy of the disk and may be dropped at any
//! time. The cache does no I/O: the file system fills an entry after it made room for it.

use alloc::vec;
use alloc::vec::Vec;

use crate::layout::BSIZE;

/// Block number → slot, an open-addressing hash table (linear probing, deletion by
/// shifting back), sized to twice the cache's capacity or more: the file system looks
/// blocks up several times per block it writes.
struct Index {
    /// `(block + 1, slot)`; block 0 is never cached (only blocks from 2 on are), but the
    /// shift keeps `0` free as the empty marker whatever is inserted.
    table: Vec<(u32, u32)>,
    mask: usize,
}

impl Index {
    fn new(cap: usize) -> Self {
        let n = (2 * cap.max(8)).next_power_of_two();
        Index { table: vec![(0, 0); n], mask: n - 1 }
    }

    fn home(&self, bno: u32) -> usize {
        (bno.wrapping_mul(0x9E37_79B1) >> 7) as usize & self.mask
    }

    fn get(&self, bno: u32) -> Option<usize> {
        let key = bno.wrapping_add(1);
        let mut i = self.home(bno);
        loop {
            let (k, v) = self.table[i];
            if k == key {
                return Some(v as usize);
            }
            if k == 0 {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn insert(&mut self, bno: u32, slot: usize) {
        let key = bno.wrapping_add(1);
        let mut i = self.home(bno);
        loop {
            let k = self.table[i].0;
            if k == 0 || k == key {
                self.table[i] = (key, slot as u32);
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn remove(&mut self, bno: u32) {
        let key = bno.wrapping_add(1);
        let mut i = self.home(bno);
        loop {
            let k = self.table[i].0;
            if k == 0 {
                return;
            }
            if k == key {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Shift later entries of the probe run back over the hole.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let (k, v) = self.table[j];
            if k == 0 {
                break;
            }
            let h = self.home(k.wrapping_sub(1));
            // Move it if its home is not in (hole, j] cyclically.
            let between = if hole <= j { h > hole && h <= j } else { h > hole || h <= j };
            if !between {
                self.table[hole] = (k, v);
                hole = j;
            }
        }
        self.table[hole] = (0, 0);
    }
}

pub(crate) struct Entry {
    pub bno: u32,
    pub data: Vec<u8>,
    referenced: bool,
    valid: bool,
    pub in_txn: bool,
    pub in_log: bool,
    pub ordered: bool,
    pub pinned: bool,
}

impl Entry {
    fn held(&self) -> bool {
        self.in_txn || self.in_log || self.ordered || self.pinned
    }
}

pub(crate) struct Cache {
    entries: Vec<Entry>,
    index: Index,
    /// Slots of removed entries, reused first.
    free: Vec<usize>,
    cap: usize,
    /// The clock hand: the next slot to consider for eviction.
    hand: usize,
}

impl Cache {
    pub fn new(cap: usize) -> Self {
        Self { entries: Vec::new(), index: Index::new(cap), free: Vec::new(), cap, hand: 0 }
    }

    pub fn find(&self, bno: u32) -> Option<usize> {
        self.index.get(bno)
    }

    pub fn touch(&mut self, slot: usize) {
        if let Some(e) = self.entries.get_mut(slot) {
            e.referenced = true;
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

    /// The clock's victim: the first entry from the hand on that is not held and not
    /// referenced (clearing reference bits on the way). `None` if every entry is held.
    fn victim(&mut self) -> Option<usize> {
        let n = self.entries.len();
        for _ in 0..2 * n {
            let i = self.hand % n.max(1);
            self.hand = (i + 1) % n.max(1);
            let e = self.entries.get_mut(i)?;
            if e.held() {
                continue;
            }
            if e.referenced {
                e.referenced = false;
                continue;
            }
            return Some(i);
        }
        None
    }

    /// A slot for `bno` (not cached yet), zeroed: a free slot, a new one below the
    /// capacity, or the clock's victim. `None` if every entry is held.
    pub fn insert(&mut self, bno: u32) -> Option<usize> {
        let slot = if let Some(i) = self.free.pop() {
            i
        } else if self.entries.len() < self.cap {
            self.entries.push(Entry {
                bno,
                data: vec![0; BSIZE],
                referenced: false,
                valid: false,
                in_txn: false,
                in_log: false,
                ordered: false,
                pinned: false,
            });
            self.entries.len() - 1
        } else {
            let i = self.victim()?;
            let old = self.entries[i].bno;
            self.index.remove(old);
            i
        };
        let e = &mut self.entries[slot];
        e.bno = bno;
        e.data.fill(0);
        e.referenced = true;
        e.valid = true;
        e.in_txn = false;
        e.in_log = false;
        e.ordered = false;
        e.pinned = false;
        self.index.insert(bno, slot);
        Some(slot)
    }

    /// Forgets the entry in `slot`.
    pub fn remove(&mut self, slot: usize) {
        if let Some(e) = self.entries.get_mut(slot) {
            if e.valid {
                self.index.remove(e.bno);
                self.free.push(slot);
            }
            e.valid = false;
            e.referenced = false;
            e.in_txn = false;
            e.in_log = false;
            e.ordered = false;
            e.pinned = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index against a model, through inserts, lookups and removals that make long
    /// probe runs (a small table, keys that collide).
    #[test]
    fn index_matches_a_map() {
        let mut ix = Index::new(8);
        let mut model = std::collections::BTreeMap::new();
        let mut x = 12345u64;
        for step in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bno = (x % 40) as u32 * 16 + 2;
            if model.len() < 12 && !x.is_multiple_of(3) {
                ix.insert(bno, step);
                model.insert(bno, step);
            } else {
                ix.remove(bno);
                model.remove(&bno);
            }
            for b in (2..700).step_by(16) {
                assert_eq!(ix.get(b), model.get(&b).copied(), "step {step}, block {b}");
            }
        }
    }
}
