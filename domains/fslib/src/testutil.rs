//! Helpers shared by the host tests: formatted disks, a deterministic PRNG, and a
//! snapshot of everything visible in a file system (for comparing states).

use std::collections::{BTreeMap, BTreeSet};
use std::string::String;
use std::vec::Vec;

use frond_interface::fs::{FileType, FsError, FsResult};

use crate::dev::{BlockDev, MemDisk};
use crate::layout::{Variant, LOGBLOCKS, ROOTINO};
use crate::mkfs::{format, Params};
use crate::FileSystem;

/// A formatted memory disk of exactly `size` blocks.
pub fn fresh(size: u32, ninodes: u32, variant: Variant) -> MemDisk {
    let mut d = MemDisk::new(size as u64);
    format(&mut d, &Params { size, ninodes, variant, log: LOGBLOCKS as u32 }).expect("format");
    d
}

pub fn mount<D: BlockDev>(d: D) -> FileSystem<D> {
    match FileSystem::mount(d) {
        Ok(fs) => fs,
        Err((_, e)) => panic!("mount failed: {e}"),
    }
}

/// xorshift64*: deterministic, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `len` bytes that depend on `seed` and on the position.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng::new(seed);
    (0..len).map(|_| r.next() as u8).collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir { nlink: u16 },
    File { nlink: u16, size: u64, data: Vec<u8> },
    Device { major: u16, minor: u16 },
}

/// Everything visible: every path with its kind and contents, and the free counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    pub nodes: BTreeMap<String, Node>,
    pub free_blocks: u32,
    pub free_inodes: u32,
}

impl Tree {
    /// A one-line difference for assertion messages.
    pub fn diff(&self, other: &Tree) -> String {
        if self.free_blocks != other.free_blocks || self.free_inodes != other.free_inodes {
            return format!(
                "free blocks {} vs {}, free inodes {} vs {}",
                self.free_blocks, other.free_blocks, self.free_inodes, other.free_inodes
            );
        }
        for (k, v) in &self.nodes {
            match other.nodes.get(k) {
                None => return format!("{k} only on the left"),
                Some(w) if w != v => return format!("{k} differs"),
                _ => {}
            }
        }
        for k in other.nodes.keys() {
            if !self.nodes.contains_key(k) {
                return format!("{k} only on the right");
            }
        }
        String::from("equal")
    }
}

/// Reads every file and directory reachable from the root. A directory reached twice is
/// `Corrupt`. Reads at most `max_file` bytes of a file.
pub fn snapshot<D: BlockDev>(fs: &mut FileSystem<D>, max_file: usize) -> FsResult<Tree> {
    let mut nodes = BTreeMap::new();
    let mut seen = BTreeSet::new();
    seen.insert(ROOTINO);
    let root = fs.stat(ROOTINO)?;
    nodes.insert(String::from("/"), Node::Dir { nlink: root.nlink });
    let mut stack = vec![(ROOTINO, String::new())];
    while let Some((dir, path)) = stack.pop() {
        let mut from = 0;
        loop {
            let chunk = fs.readdir(dir, from)?;
            for e in &chunk.entries[..chunk.n as usize] {
                let name = e.name();
                if name == b"." || name == b".." {
                    continue;
                }
                let st = fs.lookup(dir, name)?;
                let full = format!("{path}/{}", String::from_utf8_lossy(name));
                let node = match st.kind {
                    FileType::Dir => {
                        if !seen.insert(st.inum) {
                            return Err(FsError::Corrupt);
                        }
                        stack.push((st.inum, full.clone()));
                        Node::Dir { nlink: st.nlink }
                    }
                    FileType::File => {
                        let len = (st.size as usize).min(max_file);
                        let mut data = vec![0; len];
                        let mut off = 0;
                        while off < len {
                            let n = fs.read(st.inum, off as u64, &mut data[off..])? as usize;
                            if n == 0 {
                                break;
                            }
                            off += n;
                        }
                        data.truncate(off);
                        Node::File { nlink: st.nlink, size: st.size, data }
                    }
                    FileType::Device => Node::Device { major: st.major, minor: st.minor },
                };
                nodes.insert(full, node);
            }
            match chunk.next {
                Some(n) => from = n,
                None => break,
            }
        }
    }
    let info = fs.info()?;
    Ok(Tree { nodes, free_blocks: info.free_blocks, free_inodes: info.free_inodes })
}

pub fn file(fs: &mut FileSystem<impl BlockDev>, path: &str) -> Vec<u8> {
    let st = fs.lookup(ROOTINO, path.as_bytes()).expect("lookup");
    let mut v = vec![0; st.size as usize];
    let mut off = 0;
    while off < v.len() {
        let n = fs.read(st.inum, off as u64, &mut v[off..]).expect("read") as usize;
        assert!(n > 0, "short read at {off} of {path}");
        off += n;
    }
    v
}

pub fn mkfile(fs: &mut FileSystem<impl BlockDev>, path: &str, data: &[u8]) -> u32 {
    let st = fs.create(ROOTINO, path.as_bytes(), FileType::File, 0, 0, false).expect("create");
    let mut off = 0;
    for c in data.chunks(64 * 1024) {
        let n = fs.write(st.inum, off as u64, c).expect("write") as usize;
        assert_eq!(n, c.len());
        off += n;
    }
    st.inum
}
