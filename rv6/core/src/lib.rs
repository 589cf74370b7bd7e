//! # frond-rv6core — rv6's system-call logic
//!
//! The state of the rv6 subsystem and every system call's logic, as a library the
//! `dom-rv6` domain wraps and the host tests drive: the process table (pids, parents,
//! zombies, reparenting to pid 1, the `nproc` bound), per-process descriptor tables,
//! open files shared between descriptors (`dup`, spawn's descriptor map) with a shared
//! offset, pipes, the working directory, and the mapping of file-system errors to
//! [`Errno`]s.
//!
//! **A state machine that never waits.** [`Core`] is plain data behind the domain's one
//! lock. A call that would have to wait — a pipe read with nothing buffered, a pipe
//! write with no room, a `wait` with children but no zombie — returns [`Io::Block`] /
//! [`Poll::Block`] instead, and the domain waits on its condition variable (without the
//! lock) and calls again; [`Core::take_wake`] says when something changed that a waiter
//! may be waiting for. Console I/O is the domain's too ([`Io::Console`]): the core only
//! checks the descriptor. A blocked call of a killed process fails with `Intr`.
//!
//! **The file system** is reached through `&dyn Fs`, passed to every call that needs it
//! (the domain's recovery proxy; a `frond-fslib` file system in the host tests).
//! Descriptors hold inode numbers and offsets, nothing of the file system's own state, so
//! they stay valid when the fs domain restarts. An `RpcError` from the fs (it crashed and
//! the call was not repeated) is `Errno::Io`.
//!
//! **Memory.** Every table is allocated once, in [`Core::new`], at its bound (processes:
//! `nproc`; open files: `nproc × NOFILE`, since each is held by at least one descriptor;
//! pipes: half that); only a pipe's 4 KiB ring is allocated while the pipe exists. So the
//! core's heap use returns to its level whenever the processes that made pipes are gone.
//!
//! Invariants (checked by the host tests, relied on throughout):
//! * an [`OpenFile`](file)'s `refs` is the number of descriptors (in all descriptor
//!   tables) naming it, and it exists only while `refs > 0`;
//! * an inode's entry in the in-use table counts the open files naming it plus the
//!   spawns reading it as a program image; it exists only while that is positive. An
//!   inode unlinked while in use was unlinked with `Fs::unlink_keep` and is marked, and
//!   the entry's removal calls `Fs::release`;
//! * a pipe exists while either end's open file does;
//! * a zombie holds no descriptor and no inode; a process's children are the processes
//!   whose `ppid` is its pid; a process whose parent ended has parent 1.
//!
//! May depend on: `frond-interface`, `rref`, `alloc`. `#![no_std]` (std in tests only),
//! `#![forbid(unsafe_code)]`, no panics on any argument a program can pass.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod file;
mod image;
mod path;
mod pipe;
mod proc;

use alloc::vec::Vec;
use frond_interface::fs::FsResult;
use frond_interface::rv6::{Errno, SysResult};
use frond_interface::RpcResult;

pub use image::read_image;
pub use pipe::PIPE_SIZE;
pub use proc::Exec;

use file::{InodeUse, OpenFile};
use pipe::Pipe;
use proc::Proc;

/// Processes at most, whatever `Rv6Args::nproc` asks (the kernel has 63 domain slots).
pub const NPROC_MAX: usize = 64;
/// The first process.
pub const INIT_PID: i32 = 1;

/// What a read or write step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// Moved this many bytes (0: end of file, or a pipe whose writers all closed).
    Done(u32),
    /// A pipe is empty (read) or full (write): wait for a wake and call again.
    Block,
    /// The descriptor is the console and allows this direction: the caller does the I/O.
    Console,
}

/// The outcome of a call that may have to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll<T> {
    Ready(T),
    /// Wait for a wake and call again.
    Block,
}

/// The file-system result of a call through the fs proxy as an errno: a crash the proxy
/// did not hide is `Io`.
pub(crate) fn fsr<T>(r: RpcResult<FsResult<T>>) -> SysResult<T> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Errno::from_fs(e)),
        Err(_) => Err(Errno::Io),
    }
}

/// A fixed number of slots, allocated once.
pub(crate) struct Slab<T> {
    items: Vec<Option<T>>,
}

impl<T> Slab<T> {
    fn with_slots(n: usize) -> Self {
        Self { items: (0..n).map(|_| None).collect() }
    }
    /// The lowest free slot gets `v`; `None` if all are taken.
    fn insert(&mut self, v: T) -> Option<usize> {
        let i = self.items.iter().position(Option::is_none)?;
        self.items[i] = Some(v);
        Some(i)
    }
    fn get(&self, i: usize) -> Option<&T> {
        self.items.get(i).and_then(Option::as_ref)
    }
    fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.items.get_mut(i).and_then(Option::as_mut)
    }
    fn remove(&mut self, i: usize) -> Option<T> {
        self.items.get_mut(i).and_then(Option::take)
    }
    fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.items.iter().enumerate().filter_map(|(i, v)| v.as_ref().map(|v| (i, v)))
    }
    fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut T)> {
        self.items.iter_mut().enumerate().filter_map(|(i, v)| v.as_mut().map(|v| (i, v)))
    }
    fn len(&self) -> usize {
        self.items.iter().filter(|v| v.is_some()).count()
    }
}

/// rv6's state: see the crate docs.
pub struct Core {
    nproc: usize,
    procs: Slab<Proc>,
    files: Slab<OpenFile>,
    pipes: Slab<Pipe>,
    /// Inodes in use (open, or being read as a program); capacity fixed at `new`.
    inodes: Vec<InodeUse>,
    /// `inodes`' capacity as allocated (it never grows: see the crate docs).
    inodes_cap: usize,
    /// The next pid to try (2 and up; 1 is init's).
    next_pid: i32,
    /// Something a blocked call may wait for changed since the last `take_wake`.
    wake: bool,
}

/// Counters for tests and the domain's diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub procs: usize,
    pub files: usize,
    pub pipes: usize,
    pub inodes: usize,
}

impl Core {
    /// A core for at most `nproc` processes (clamped to 1..=[`NPROC_MAX`]; one slot is
    /// always kept for pid 1).
    pub fn new(nproc: u32) -> Self {
        let nproc = (nproc as usize).clamp(1, NPROC_MAX);
        // Every open file is named by at least one descriptor; pid 1's console file is
        // counted among its descriptors like any other.
        let nfiles = nproc * frond_interface::rv6::NOFILE;
        let inodes = Vec::with_capacity(nfiles + nproc);
        Self {
            nproc,
            procs: Slab::with_slots(nproc),
            files: Slab::with_slots(nfiles),
            pipes: Slab::with_slots(nfiles / 2 + 1),
            inodes_cap: inodes.capacity(),
            inodes,
            next_pid: INIT_PID + 1,
            wake: false,
        }
    }

    /// True (once) if something changed that a blocked call may be waiting for: pipe
    /// data or room, a pipe end closed, a process ended or was killed.
    pub fn take_wake(&mut self) -> bool {
        core::mem::take(&mut self.wake)
    }

    /// What the tables hold now.
    pub fn usage(&self) -> Usage {
        Usage { procs: self.procs.len(), files: self.files.len(), pipes: self.pipes.len(), inodes: self.inodes.len() }
    }
}

impl Core {
    /// Checks the invariants of the crate docs; the first one broken, if any. (For tests
    /// and diagnostics: it walks every table.)
    pub fn check(&self) -> Result<(), &'static str> {
        use file::Obj;
        use frond_interface::rv6::NOFILE;
        // One pass over every table counts what names what; the checks compare the counts.
        // Descriptors naming each open-file slot (a slot out of range is counted as one
        // that is gone).
        let mut named = alloc::vec![0usize; self.files.items.len()];
        for (_, p) in self.procs.iter() {
            for fi in p.fds.iter().flatten() {
                match named.get_mut(*fi) {
                    Some(n) => *n += 1,
                    None => return Err("an open file's refs is not the number of descriptors naming it"),
                }
            }
        }
        // Open files naming each pipe slot as a read or write end.
        let mut ends = alloc::vec![0usize; self.pipes.items.len()];
        for (fi, f) in self.files.iter() {
            if f.refs == 0 || named[fi] != f.refs as usize {
                return Err("an open file's refs is not the number of descriptors naming it");
            }
            if let Obj::PipeRead(p) | Obj::PipeWrite(p) = f.obj {
                let Some(pipe) = self.pipes.get(p) else { return Err("an open file names a pipe that is gone") };
                if !(if matches!(f.obj, Obj::PipeRead(_)) { pipe.reader } else { pipe.writer }) {
                    return Err("a pipe end is marked closed while its open file exists");
                }
                ends[p] += 1;
            }
        }
        // A descriptor naming a free slot: counted above but no open file there.
        if self.files.items.iter().zip(&named).any(|(f, &n)| f.is_none() && n != 0) {
            return Err("an open file's refs is not the number of descriptors naming it");
        }
        for (pi, pipe) in self.pipes.iter() {
            if ends[pi] != usize::from(pipe.reader) + usize::from(pipe.writer) || ends[pi] == 0 {
                return Err("a pipe's end flags do not match its open files");
            }
        }
        // Users of each inode in use: open files and loaded images. The in-use table is
        // small (bounded by the open files and processes); sorted copies make the
        // uniqueness and membership checks linear after the sort.
        let mut table: Vec<(u32, u32)> = self.inodes.iter().map(|u| (u.ino, u.users)).collect();
        table.sort_unstable();
        if table.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err("an inode's users is not the open files and loads naming it");
        }
        let mut users = alloc::vec![0usize; table.len()];
        let mut count = |ino: u32| -> Result<(), &'static str> {
            match table.binary_search_by_key(&ino, |e| e.0) {
                Ok(k) => {
                    users[k] += 1;
                    Ok(())
                }
                Err(_) => Err("an open inode is missing from the in-use table"),
            }
        };
        for (_, f) in self.files.iter() {
            if let Some(ino) = f.obj.ino() {
                count(ino)?;
            }
        }
        for (_, p) in self.procs.iter() {
            if let Some(ino) = p.image {
                count(ino).map_err(|_| "an inode's users is not the open files and loads naming it")?;
            }
        }
        if table.iter().zip(&users).any(|(&(_, u), &n)| u == 0 || n != u as usize) {
            return Err("an inode's users is not the open files and loads naming it");
        }
        let mut pids: Vec<i32> = self.procs.iter().map(|(_, p)| p.pid).collect();
        pids.sort_unstable();
        if pids.windows(2).any(|w| w[0] == w[1]) {
            return Err("pids are not unique");
        }
        for (_, p) in self.procs.iter() {
            if let proc::PState::Zombie(_) = p.state {
                if p.fds.iter().any(Option::is_some) || p.image.is_some() || p.id.is_some() {
                    return Err("a zombie holds a descriptor, an inode or a domain");
                }
            }
            if p.pid != INIT_PID && p.ppid != INIT_PID && pids.binary_search(&p.ppid).is_err() {
                return Err("a process's parent is gone and it was not given to pid 1");
            }
            if p.fds.len() != NOFILE {
                return Err("pids are not unique");
            }
        }
        if self.inodes.capacity() != self.inodes_cap || self.procs.len() > self.nproc {
            return Err("a table outgrew its bound");
        }
        Ok(())
    }
}
