//! # frond-fslib — the xv6-format file system, as a host-tested library
//!
//! Library code of the fs domain (`domains/fs`, a thin wrapper exporting
//! [`Fs`](frond_interface::fs::Fs)) and of the host tool `tools/mkfs`. The on-disk format
//! is xv6-riscv's ([`layout`]), plus a large-file variant (magic `0x10203050`: 11 direct +
//! singly + doubly indirect blocks) that differs only in how an inode's address slots are
//! used. A stock image stays stock: nothing here ever rewrites the superblock.
//!
//! May depend on: `frond-interface` (block request and fs types), `alloc`. No `std`
//! outside tests, `#![forbid(unsafe_code)]`, no `unwrap` or indexing that disk contents
//! can make fail.
//!
//! ## Layering (xv6's design, bottom up)
//!
//! * [`dev`]: [`BlockDev`](dev::BlockDev), the device (batched requests into one lent
//!   buffer); [`MemDisk`](dev::MemDisk); test disks that record writes and cut power,
//!   fail on demand, or refuse writes outside a range.
//! * buffer cache (`cache`): a bounded LRU set of block copies (128 blocks by default,
//!   [`MountOptions`]). Blocks of the open transaction are pinned; everything else is a
//!   clean copy that may be dropped.
//! * log (`fs`): operations run between `begin_op`/`end_op`; each block an operation
//!   changes joins the open transaction once (absorption) and its old bytes are kept, so a
//!   failing operation is undone whole — an operation that returns an error has changed
//!   nothing. `commit` writes the blocks to the log, the header (the commit point), the
//!   blocks to their homes, and clears the header, with a flush after each step; mount
//!   replays a committed log.
//! * inodes (`inode`): checked reads, the block map of both variants, block and inode
//!   allocation, freeing a file's tail a transaction at a time.
//! * directories and paths (`dir`), and the operations (`ops`): one
//!   [`FileSystem`] method per `Fs` method — `info`, `lookup`, `stat`, `create`, `read`,
//!   `write`, `truncate`, `readdir`, `link`, `unlink`, `sync` — plus `tick`, `mount`,
//!   `unmount`.
//! * [`mkfs`]: formatting (xv6-riscv mkfs's exact layout) and helpers that add files
//!   through the operations; [`fsck`]: the checker.
//!
//! ## Group commit
//!
//! `end_op` does not commit: the operation's blocks stay in the open transaction, and
//! later operations absorb into it. The transaction commits
//! 1. at the end of an operation when the log has no room for another one
//!    (`pending blocks + MAXOPBLOCKS > log capacity`, xv6's admission rule; so an
//!    operation never waits and never overflows the log);
//! 2. on [`sync`](FileSystem::sync) (which also flushes the device);
//! 3. on [`tick`](FileSystem::tick), which the embedding domain calls on a timer: its
//!    period bounds how long a completed operation lives only in memory.
//!
//! A crash (or a restart of the fs domain) therefore loses the operations completed since
//! the last commit — never part of one — and recovery always yields the state at a commit.
//! Each operation adds at most `MAXOPBLOCKS` (10) blocks to the transaction. A `write`,
//! a shrinking `truncate` or the freeing of a large unlinked file is split into several
//! operations, sized as they go by the blocks the next step may touch (the data block,
//! the inode, the indirect and doubly indirect blocks on its path, a bitmap block per
//! allocation): a crash leaves a prefix of a write, a partly shrunk file, or an orphan
//! (allocated inode without links) that the next mount frees. A write that runs out of
//! space keeps the blocks written before it and returns their count.
//!
//! A device error during a commit poisons the file system: nothing more is written,
//! operations that write return `Io` (reads still work), and the next mount recovers from
//! the log.
//!
//! ## Validation (hostile images and requests)
//!
//! * Mount ([`check_superblock`]): a known magic (selects the variant); `size` within the
//!   device; boot and superblock, log (`logstart >= 2`, room for a header and one
//!   operation), inode blocks, bitmap and data (`size - nblocks`, at least one block) in
//!   order, disjoint and inside `size`; `2 <= ninodes <= 65536` fitting the inode blocks;
//!   a bitmap bit for every block. The log header: `n` at most the log's capacity, every
//!   home block in `[inodestart, size)`. The root inode is a directory. Refusals are
//!   [`MountError`]s with a message (`Display`).
//! * Operations: every block number read from an inode or indirect block must be 0 (a
//!   hole, read as zeros) or inside the data area; inodes must have a known type, a size
//!   within the variant's limit (a whole number of entries for directories); an entry
//!   must name an inode in range that is allocated and has links, and not its own
//!   directory (other than `.`/`..`); freeing a block the bitmap shows free is refused.
//!   Any of these is `FsError::Corrupt`, and the operation is undone. Paths are at most
//!   128 bytes (so a walk follows at most 64 entries: no loop in the directory graph can
//!   make it run away) and nothing recurses. Blocks are allocated only from the data
//!   area whatever the bitmap says.
//! * Writes: only blocks in `[inodestart, size)` can join a transaction, the log lies in
//!   `[logstart, inodestart)`: nothing is ever written to block 0, the superblock, or past
//!   `size`.
//!
//! ## Copies and batching
//!
//! The file system owns two device buffers, lent to the driver for each call: 64 KiB for
//! data, commits and installs, and one block for cache misses. A `read` copies cached
//! blocks from the cache and reads the others in runs — contiguous blocks in one request,
//! up to 32 requests and 64 blocks per device call — straight into the 64 KiB buffer,
//! then copies into the caller's slice (one copy). A commit copies the transaction's
//! blocks (sorted by block number) from the cache into the buffer once, writes them to the
//! log as one request, and installs them from the same buffer in one call (contiguous
//! homes coalesced). Bitmap and inode-table scans (`info`, the orphan scan at mount) read
//! 64 blocks per call. File data written passes through the cache and the log, as in
//! xv6.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod cache;
pub mod dev;
mod dir;
mod fs;
pub mod fsck;
mod inode;
pub mod layout;
pub mod mkfs;
mod ops;

pub use fs::{check_superblock, FileSystem, Geometry, MountError, MountOptions};

#[cfg(test)]
mod testutil;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_crash;
#[cfg(test)]
mod tests_corrupt;
