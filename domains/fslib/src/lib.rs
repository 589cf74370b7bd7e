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
//! * buffer cache (`cache`): a bounded set of block copies replaced by the clock
//!   algorithm (128 blocks by default, [`MountOptions`], and at least the log's capacity
//!   plus 144). Blocks of the open transaction, blocks in the log not installed yet, and
//!   file data waiting to go home are held; everything else is a clean copy that may be
//!   dropped.
//! * log (`fs`): operations run between `begin_op`/`end_op`; each block an operation
//!   changes joins the open transaction once (absorption) and its old bytes are kept, so a
//!   failing operation is undone whole — an operation that returns an error has changed
//!   nothing. Metadata and overwrites of committed data are logged; file data in blocks
//!   the transaction allocated goes straight home (ordered data). `commit` appends the
//!   transaction to the log and writes the header (the commit record); a checkpoint
//!   installs the log and clears it; mount replays a committed log. See "The commit
//!   protocol" below.
//! * inodes (`inode`): checked reads, the block map of both variants, block and inode
//!   allocation, freeing a file's tail a transaction at a time.
//! * directories and paths (`dir`), and the operations (`ops`): one
//!   [`FileSystem`] method per `Fs` method — `info`, `lookup`, `stat`, `create`, `read`,
//!   `pread`, `write`, `truncate`, `readdir`, `link`, `unlink`, `unlink_keep`, `release`,
//!   `sync` — plus `commit`, `tick`, `mount`, `unmount`. `unlink_keep` leaves a file whose
//!   last link it removes allocated without links (an *orphan*, usable by inode number)
//!   until `release` or a mount without [`MountOptions::keep_orphans`].
//! * [`mkfs`]: formatting (xv6-riscv mkfs's exact layout; the log size a parameter of
//!   the large variant) and helpers that add files through the operations; [`fsck`]: the
//!   checker.
//!
//! ## Group commit
//!
//! `end_op` does not commit: the operation's blocks stay in the open transaction, and
//! later operations absorb into it. The transaction commits
//! 1. at the start or end of an operation when the log has no room for another one
//!    (`log entries + pending blocks + MAXOPBLOCKS > log capacity`: xv6's admission rule,
//!    counting the committed entries the log still holds; so an operation never waits
//!    and never overflows the log), installing the log too if it is still too full;
//! 2. on [`commit`](FileSystem::commit), which the fs domain calls at the end of each
//!    call that changed something;
//! 3. on [`sync`](FileSystem::sync), which also installs the log and flushes: afterwards
//!    everything is durable and at home, and the log is clear;
//! 4. on [`tick`](FileSystem::tick), which the embedding domain calls on a timer: it
//!    commits, flushes, and installs the log when nothing was committed since the
//!    previous tick; its period bounds how long a completed operation lives only in
//!    memory, or is not yet durable.
//!
//! A crash (or a restart of the fs domain) therefore loses the operations completed since
//! the last commit whose record reached the disk — never part of one — and recovery
//! always yields the state at a commit. Each operation adds at most `MAXOPBLOCKS` (10)
//! blocks to the log and at most 64 data blocks that go home directly. A `write`, a
//! shrinking `truncate` or the freeing of a large unlinked file is split into several
//! operations, sized as they go by the blocks the next step may touch (the data block,
//! the inode, the indirect and doubly indirect blocks on its path, a bitmap block per
//! allocation; an allocation of the data block alone is sized exactly by looking at the
//! block the allocator will take): a crash leaves a prefix of a write, a partly shrunk
//! file, or an orphan (allocated inode without links) that the next mount frees. A write
//! that runs out of space keeps the blocks written before it and returns their count.
//!
//! A device error during a commit, a checkpoint or a data write poisons the file system:
//! nothing more is written, operations that write return `Io` (reads still work), and the
//! next mount recovers from the log.
//!
//! ## The commit protocol
//!
//! **What is logged.** Every block of the transaction except file data in *fresh* blocks:
//! inode blocks, bitmap blocks, indirect blocks, directory blocks, and file data in blocks
//! a committed state shows (an overwrite of committed data stays atomic with its
//! operation). A data block is fresh when the open transaction allocated it from a
//! *clean* block: free in every state a crash can recover and named by no log entry —
//! not freed by the open transaction, not freed by the last commit while its record may
//! not be durable yet, not in the log. The allocator takes clean blocks first; only when
//! none is left does it hand out one of the others, which is then logged like metadata.
//! Fresh data is written home directly: whole blocks from a 64 KiB staging buffer, in one
//! call at the end of their operation; partly written ones from the cache, at the end of
//! an operation once 64 are waiting, else with the commit.
//!
//! **The log appends.** The header names the home of each log slot in order, and a home
//! named twice gets its later copy (xv6's recovery does the same). A commit appends the
//! transaction after the entries already there:
//! 1. the waiting data blocks to their homes and the transaction's blocks to log slots
//!    `n ..`, in calls of up to 64 blocks;
//! 2. flush;
//! 3. the header naming all entries (the commit record).
//!
//! The log is installed (a *checkpoint*) when it has no room for another operation, on
//! `sync`, and on an idle `tick`: flush; every logged block to its home once, from the
//! cache (which holds each one's latest committed copy); flush; the header cleared;
//! flush. Mount replays a committed log in slot order, in reads of 64 blocks. The log's
//! capacity comes from the superblock's `nlog`: at most xv6's 30 blocks on a stock image
//! (so xv6 itself can recover any header written here), up to 255 — what one header
//! block names — on the large variant.
//!
//! **Why it is consistent.** Writes between two flushes may land in any order, and a
//! power cut keeps any subset of them. Each flush orders one thing:
//! * before the record: the log slots it names and the fresh data its state references
//!   are on the disk before the record can be;
//! * before installing: homes get the newest record's blocks only once that record is
//!   durable (else the older record's state, still the one a crash recovers, would get
//!   blocks of the newer one);
//! * between installing and clearing: the header says "nothing to replay" only once the
//!   homes hold everything;
//! * after clearing: new entries go to slots from 0, which the old header names.
//!
//! No flush follows the record. Until the next flush (the next commit's, a checkpoint's,
//! `sync`'s or `tick`'s) the disk may hold the new record or the previous one, and both
//! are good: what is written meanwhile is the next transaction's fresh data, in blocks
//! free in both states and named by neither header (a block the unflushed commit freed
//! is not clean until the flush, one in the log never is), and its log blocks, in slots
//! past both headers' `n`; nothing is installed and no slot is reused before a flush. So
//! a power cut recovers one of the last two commits, and nothing `sync` returned from. A
//! restart of the fs domain, which keeps the device's completed writes, recovers the
//! last commit.
//!
//! Undoing a failed operation restores its cached blocks and drops what it staged; fresh
//! data an earlier operation of the transaction already wrote home lies in blocks the
//! committed bitmap shows free, so it is harmless whatever happens next. `tests_crash`
//! cuts every recorded write sequence after each write, and also keeps arbitrary subsets
//! of the writes between flushes; removing any of the four flushes, writing data after
//! the record, logging nothing for overwrites of committed data, or handing out a freed
//! or logged block as fresh makes those tests fail.
//!
//! ## Validation (hostile images and requests)
//!
//! * Mount ([`check_superblock`]): a known magic (selects the variant); `size` within the
//!   device; boot and superblock, log (`logstart >= 2`, room for a header and one
//!   operation), inode blocks, bitmap and data (`size - nblocks`, at least one block) in
//!   order, disjoint and inside `size`; `2 <= ninodes <= 65536` fitting the inode blocks;
//!   a bitmap bit for every block. The log header: `n` at most the log's capacity
//!   (`min(nlog - 1, 30)` on a stock image, `min(nlog - 1, 255)` on the large variant),
//!   every home block in `[inodestart, size)`. The root inode is a directory. Refusals are
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
//! * Writes: only blocks in `[inodestart, size)` can join a transaction and only data
//!   blocks go home unlogged; the log lies in `[logstart, inodestart)`: nothing is ever
//!   written to block 0, the superblock, or past `size`.
//!
//! ## Copies and batching
//!
//! The file system owns three device buffers, lent to the driver for each call: 64 KiB
//! for reads, commits and installs, 64 KiB for staging whole data blocks, and one block
//! for cache misses and the log header. A `read` copies cached blocks from the cache and
//! reads the others in runs — contiguous blocks in one request, up to 32 requests and 64
//! blocks per device call — straight into the 64 KiB buffer, then copies into the
//! caller's slice (one copy). A `write` copies whole fresh blocks from the caller's slice
//! into the staging buffer and writes them home in one call per operation (contiguous
//! blocks in one request: the allocator hands out blocks in order); everything else goes
//! through the cache. A commit copies the waiting data and the transaction's blocks
//! (sorted by destination) from the cache into the I/O buffer and writes them in calls
//! of up to 64 blocks; a checkpoint installs the same way (contiguous homes coalesced).
//! Bitmap and inode-table scans (`info`, the orphan scan at mount) read 64 blocks per
//! call.

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

pub use fs::{check_superblock, FileSystem, FsStats, Geometry, MountError, MountOptions};

#[cfg(test)]
mod testutil;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_crash;
#[cfg(test)]
mod tests_corrupt;
#[cfg(test)]
mod tests_perf;
