//! The kill-mid-write workload (`t-durable`): a deterministic sequence of file
//! operations from a seed, the state of its directory after each one, and the check of
//! what a crashed machine left in that directory. Pure (no system calls), so the program,
//! its host tests and the test harness (which checks the disk image on the host too) run
//! the same model.
//!
//! **The workload.** Files `f0` … `f7` in one directory ([`DIR`] unless given),
//! starting empty. Each operation
//! ([`Op`]) is chosen from the current state: create an absent file, append to a file,
//! overwrite a range of one (from an offset inside it, possibly growing it), rewrite one
//! (`O_TRUNC`, then new contents), rename one to an absent name (a link, then the old
//! name unlinked, as `mv` does) or unlink one. Lengths are up to 48 KiB, files stay
//! under 144 KiB. Contents are a function of the seed and the operation's number.
//! After some operations (at most [`SYNC_EVERY_MAX`] apart) the program calls `sync`
//! and reports the operation as synced.
//!
//! **What a crash may leave** ([`check`]). rv6's `sync` makes every completed
//! file-system call durable; without it, each call the file system completed is in a
//! commit, and recovery always yields the state at some commit, in order. Every rv6
//! call of the workload is one or more `Fs` calls, and a `write` may be cut between its
//! transactions (a prefix of it). So after the last synced operation `s`, the directory
//! must hold exactly the state after some operation `j >= s` — or the state in the
//! middle of operation `j + 1`, which for that operation's files means:
//! * create: the file absent, or a prefix of its contents;
//! * append: the old contents followed by a prefix of the new bytes;
//! * overwrite at `off`: the old contents with a prefix of the new bytes at `off` (the
//!   size grown to the end of that prefix if it went past the old end);
//! * rewrite: a prefix of the old contents (a truncate frees from the end) or a prefix of
//!   the new ones;
//! * rename: both names, each with the file's contents (linked, not yet unlinked);
//! * unlink: nothing in between.
//!
//! Every other file must be exactly as after `j`, and nothing else may be in the
//! directory. The check tries `j = s, s+1, …` up to [`MAX_AHEAD`] operations past `s`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The workload's directory unless the program is given another (several workloads
/// run at once, each in its own directory).
pub const DIR: &str = "/dur";
/// The files' names (in `DIR`).
pub const NAMES: [&str; 8] = ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"];
/// A sync at least every this many operations.
pub const SYNC_EVERY_MAX: u32 = 6;
/// How many operations past the last synced one the check considers. The program
/// reports each sync before it starts the next operation, so in practice the disk is at
/// most about two sync intervals ahead of the last report seen.
pub const MAX_AHEAD: u32 = 64;
/// Largest write of one operation.
pub const LEN_MAX: usize = 48 << 10;
/// Appends and overwrites only start on files smaller than this.
pub const GROW_BELOW: usize = 96 << 10;

/// splitmix64: small, fast, and the same everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`; the bias is negligible for the small `n` used here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// FNV-1a, 64 bits: the checksum the program reports and the check compares first.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The bytes operation `op` of the workload `seed` writes.
pub fn contents(seed: u64, op: u32, len: usize) -> Vec<u8> {
    let mut r = Rng::new(seed ^ (op as u64).wrapping_mul(0xd6e8_feb8_6659_fd93));
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&r.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// One operation; files are indices into [`NAMES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Create { file: usize, data: Vec<u8> },
    Append { file: usize, data: Vec<u8> },
    Overwrite { file: usize, off: usize, data: Vec<u8> },
    Rewrite { file: usize, data: Vec<u8> },
    Rename { from: usize, to: usize },
    Unlink { file: usize },
}

impl Op {
    /// The file whose state a report describes: the one written, or the rename's new
    /// name, or the unlinked one.
    pub fn file(&self) -> usize {
        match *self {
            Op::Create { file, .. }
            | Op::Append { file, .. }
            | Op::Overwrite { file, .. }
            | Op::Rewrite { file, .. }
            | Op::Unlink { file } => file,
            Op::Rename { to, .. } => to,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::Append { .. } => "append",
            Op::Overwrite { .. } => "overwrite",
            Op::Rewrite { .. } => "rewrite",
            Op::Rename { .. } => "rename",
            Op::Unlink { .. } => "unlink",
        }
    }
}

/// The next operation: its number (from 1), what it does, whether a sync follows it.
#[derive(Clone, Debug)]
pub struct Step {
    pub n: u32,
    pub op: Op,
    pub sync: bool,
}

/// The workload's model: the directory's contents after the operations so far.
#[derive(Clone, Debug)]
pub struct Workload {
    seed: u64,
    rng: Rng,
    done: u32,
    since_sync: u32,
    files: [Option<Vec<u8>>; 8],
    sums: [u64; 8],
}

impl Workload {
    pub fn new(seed: u64) -> Workload {
        Workload { seed, rng: Rng::new(seed), done: 0, since_sync: 0, files: Default::default(), sums: [0; 8] }
    }

    /// Operations applied so far.
    pub fn done(&self) -> u32 {
        self.done
    }

    /// The contents of each file (`None`: absent).
    pub fn files(&self) -> &[Option<Vec<u8>>; 8] {
        &self.files
    }

    /// File `i`'s length and checksum (`None`: absent).
    pub fn summary(&self, i: usize) -> Option<(usize, u64)> {
        self.files[i].as_ref().map(|f| (f.len(), self.sums[i]))
    }

    /// A checksum of the whole directory (names, lengths and checksums of the files).
    pub fn state_sum(&self) -> u64 {
        let mut b = Vec::new();
        for i in 0..NAMES.len() {
            if let Some((len, sum)) = self.summary(i) {
                b.extend_from_slice(NAMES[i].as_bytes());
                b.extend_from_slice(&(len as u64).to_le_bytes());
                b.extend_from_slice(&sum.to_le_bytes());
            }
        }
        checksum(&b)
    }

    /// The line the program prints once the sync after `step` returned; `dir` is the
    /// workload's directory.
    pub fn report(&self, dir: &str, step: &Step) -> String {
        let f = step.op.file();
        let what = match self.summary(f) {
            Some((len, sum)) => format!("{len} {sum:016x}"),
            None => String::from("absent -"),
        };
        let files = self.files.iter().filter(|f| f.is_some()).count();
        format!("t-durable: synced {} {dir}/{} {what} files={files} state={:016x}", step.n, NAMES[f], self.state_sum())
    }

    fn len_choice(&mut self) -> usize {
        let max = match self.rng.below(100) {
            0..=39 => 512,
            40..=74 => 8 << 10,
            _ => LEN_MAX,
        };
        1 + self.rng.below(max as u64) as usize
    }

    /// Chooses the next operation (without applying it: see [`apply`](Self::apply)).
    pub fn next_op(&mut self) -> Step {
        let n = self.done + 1;
        let present: Vec<usize> = (0..NAMES.len()).filter(|&i| self.files[i].is_some()).collect();
        let absent: Vec<usize> = (0..NAMES.len()).filter(|&i| self.files[i].is_none()).collect();
        let op = loop {
            let pick = self.rng.below(100);
            let any_present = !present.is_empty();
            let op = match pick {
                0..=24 if !absent.is_empty() => {
                    let file = absent[self.rng.below(absent.len() as u64) as usize];
                    let len = self.len_choice();
                    Op::Create { file, data: contents(self.seed, n, len) }
                }
                // Append (25..=44) or overwrite (45..=64).
                25..=64 if any_present => {
                    let file = present[self.rng.below(present.len() as u64) as usize];
                    let size = self.files[file].as_ref().map_or(0, |f| f.len());
                    if size >= GROW_BELOW {
                        continue;
                    }
                    let len = self.len_choice();
                    let data = contents(self.seed, n, len);
                    if pick <= 44 {
                        Op::Append { file, data }
                    } else {
                        let off = self.rng.below(size as u64 + 1) as usize;
                        Op::Overwrite { file, off, data }
                    }
                }
                65..=79 if any_present => {
                    let file = present[self.rng.below(present.len() as u64) as usize];
                    let len = self.len_choice();
                    Op::Rewrite { file, data: contents(self.seed, n, len) }
                }
                80..=89 if any_present && !absent.is_empty() => {
                    let from = present[self.rng.below(present.len() as u64) as usize];
                    let to = absent[self.rng.below(absent.len() as u64) as usize];
                    Op::Rename { from, to }
                }
                90..=99 if any_present => {
                    let file = present[self.rng.below(present.len() as u64) as usize];
                    Op::Unlink { file }
                }
                _ => continue,
            };
            break op;
        };
        let sync = self.since_sync + 1 >= SYNC_EVERY_MAX || self.rng.below(4) == 0;
        Step { n, op, sync }
    }

    /// Applies `step` (the one [`next_op`](Self::next_op) returned) to the model.
    pub fn apply(&mut self, step: &Step) {
        match &step.op {
            Op::Create { file, data } | Op::Rewrite { file, data } => self.files[*file] = Some(data.clone()),
            Op::Append { file, data } => self.files[*file].get_or_insert_with(Vec::new).extend_from_slice(data),
            Op::Overwrite { file, off, data } => {
                let f = self.files[*file].get_or_insert_with(Vec::new);
                if f.len() < off + data.len() {
                    f.resize(off + data.len(), 0);
                }
                f[*off..off + data.len()].copy_from_slice(data);
            }
            Op::Rename { from, to } => {
                self.files[*to] = self.files[*from].take();
                self.sums[*from] = 0;
            }
            Op::Unlink { file } => self.files[*file] = None,
        }
        let f = step.op.file();
        self.sums[f] = self.files[f].as_deref().map_or(0, checksum);
        self.done = step.n;
        self.since_sync = if step.sync { 0 } else { self.since_sync + 1 };
    }

    /// Replays the workload `seed` up to operation `n`.
    pub fn after(seed: u64, n: u32) -> Workload {
        let mut w = Workload::new(seed);
        while w.done < n {
            let s = w.next_op();
            w.apply(&s);
        }
        w
    }
}

/// What [`check`] found: the directory holds the state after operation `op`, or, with
/// `partial`, the state in the middle of operation `op + 1` (which it describes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub op: u32,
    pub partial: Option<String>,
}

/// The directory as read back: each file's name and contents.
pub type Listing = [(String, Vec<u8>)];

/// Checks that `disk` (the entries of the workload's directory, `.` and `..` left out) holds a state the
/// workload `seed` may leave after a crash that came after operation `synced` was synced
/// (0: after the empty start), looking up to `ahead` operations further. `Err` says what
/// is wrong, against the synced state.
pub fn check(seed: u64, synced: u32, disk: &Listing, ahead: u32) -> Result<Found, String> {
    let mut found: [Option<&[u8]>; 8] = [None; 8];
    for (name, data) in disk {
        let i = NAMES.iter().position(|n| n == name).ok_or_else(|| format!("an unexpected entry {name:?}"))?;
        if found[i].is_some() {
            return Err(format!("{name} listed twice"));
        }
        found[i] = Some(data);
    }
    let sums: Vec<Option<(usize, u64)>> = found.iter().map(|f| f.map(|d| (d.len(), checksum(d)))).collect();
    let mut w = Workload::after(seed, synced);
    let at_sync = w.clone();
    let same = |w: &Workload, i: usize| -> bool {
        match (w.summary(i), sums[i]) {
            (None, None) => true,
            (Some(a), Some(b)) => a == b && w.files[i].as_deref() == found[i],
            _ => false,
        }
    };
    for _ in 0..=ahead {
        if (0..NAMES.len()).all(|i| same(&w, i)) {
            return Ok(Found { op: w.done, partial: None });
        }
        let step = w.next_op();
        let (a, b) = match step.op {
            Op::Rename { from, to } => (from, to),
            ref op => (op.file(), op.file()),
        };
        if (0..NAMES.len()).all(|i| i == a || i == b || same(&w, i)) {
            if let Some(what) = partial(&w, &step, &found) {
                let mut after = w.clone();
                after.apply(&step);
                // The whole operation is "inside" it too: say it was done.
                if !(0..NAMES.len()).all(|i| same(&after, i)) {
                    return Ok(Found { op: w.done, partial: Some(what) });
                }
            }
        }
        w.apply(&step);
    }
    // Say what differs from the synced state.
    let mut diffs = Vec::new();
    for i in 0..NAMES.len() {
        if !same(&at_sync, i) {
            let show = |s: Option<(usize, u64)>| s.map_or(String::from("absent"), |(l, c)| format!("{l} bytes {c:016x}"));
            diffs.push(format!("{}: synced {}, found {}", NAMES[i], show(at_sync.summary(i)), show(sums[i])));
        }
    }
    Err(format!(
        "no state of operations {synced}..={} matches; against the state synced at {synced}: {}",
        synced + ahead,
        diffs.join("; ")
    ))
}

/// Whether `found` holds, for the files of `step`, a state inside it (see the module
/// docs), and which.
fn partial(w: &Workload, step: &Step, found: &[Option<&[u8]>; 8]) -> Option<String> {
    let old = |i: usize| w.files[i].as_deref();
    let prefix = |whole: &[u8], part: &[u8]| whole.len() >= part.len() && &whole[..part.len()] == part;
    let n = step.n;
    match &step.op {
        Op::Create { file, data } => match found[*file] {
            None => Some(format!("op {n} create: not yet created")),
            Some(c) if prefix(data, c) => Some(format!("op {n} create: {} of {} bytes", c.len(), data.len())),
            _ => None,
        },
        Op::Append { file, data } => {
            let (o, c) = (old(*file)?, found[*file]?);
            (prefix(c, o) && prefix(data, &c[o.len()..]))
                .then(|| format!("op {n} append: {} of {} bytes", c.len() - o.len(), data.len()))
        }
        Op::Overwrite { file, off, data } => {
            let (o, c) = (old(*file)?, found[*file]?);
            let off = *off;
            if c.len() < off || c[..off] != o[..off] {
                return None;
            }
            let k = if c.len() > o.len() {
                c.len() - off
            } else {
                (0..data.len().min(c.len() - off)).find(|&i| c[off + i] != data[i]).unwrap_or(data.len().min(c.len() - off))
            };
            let ok = k <= data.len()
                && c[off..off + k] == data[..k]
                && c.len() == o.len().max(off + k)
                && c[off + k..] == o[(off + k).min(o.len())..];
            ok.then(|| format!("op {n} overwrite at {off}: {k} of {} bytes", data.len()))
        }
        Op::Rewrite { file, data } => {
            let (o, c) = (old(*file)?, found[*file]?);
            if prefix(data, c) {
                Some(format!("op {n} rewrite: {} of {} new bytes", c.len(), data.len()))
            } else if prefix(o, c) {
                Some(format!("op {n} rewrite: truncated to {} of {} old bytes", c.len(), o.len()))
            } else {
                None
            }
        }
        Op::Rename { from, to } => {
            let o = old(*from)?;
            (found[*from] == Some(o) && found[*to] == Some(o)).then(|| format!("op {n} rename: linked, not yet unlinked"))
        }
        Op::Unlink { .. } => None,
    }
}

/// A [`Listing`] of `files` (for tests).
pub fn listing(files: &[Option<Vec<u8>>; 8]) -> Vec<(String, Vec<u8>)> {
    (0..NAMES.len()).filter_map(|i| files[i].clone().map(|d| (String::from(NAMES[i]), d))).collect()
}

/// The workload as a [`Listing`] after operation `n` (for tests).
pub fn state_after(seed: u64, n: u32) -> Vec<(String, Vec<u8>)> {
    listing(Workload::after(seed, n).files())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, n: u32) -> Vec<(Step, Workload)> {
        let mut w = Workload::new(seed);
        let mut v = Vec::new();
        for _ in 0..n {
            let s = w.next_op();
            let before = w.clone();
            w.apply(&s);
            v.push((s, before));
        }
        v
    }

    #[test]
    fn the_workload_is_deterministic_and_mixes_every_kind() {
        let a = run(7, 300);
        let b = run(7, 300);
        assert!(a.iter().zip(&b).all(|(x, y)| x.0.op == y.0.op && x.0.sync == y.0.sync));
        for kind in ["create", "append", "overwrite", "rewrite", "rename", "unlink"] {
            assert!(a.iter().filter(|(s, _)| s.op.kind() == kind).count() >= 10, "{kind} is common");
        }
        let mut since = 0;
        for (s, _) in &a {
            since = if s.sync { 0 } else { since + 1 };
            assert!(since < SYNC_EVERY_MAX, "a sync at least every {SYNC_EVERY_MAX} operations");
        }
        let w = Workload::after(7, 300);
        assert!(w.files().iter().flatten().all(|f| f.len() < GROW_BELOW + LEN_MAX));
        assert_ne!(run(8, 5)[0].0.op, a[0].0.op);
    }

    #[test]
    fn every_state_past_the_sync_is_accepted() {
        for seed in [1, 2] {
            for s in [0, 1, 7, 40] {
                for j in s..s + 10 {
                    let disk = state_after(seed, j);
                    let f = check(seed, s, &disk, MAX_AHEAD).unwrap_or_else(|e| panic!("seed {seed} s {s} j {j}: {e}"));
                    // An earlier operation may have left the same state (create, then unlink).
                    assert!(f.op <= j && state_after(seed, f.op) == disk, "seed {seed} s {s} j {j}: {f:?}");
                }
            }
        }
    }

    #[test]
    fn states_inside_an_operation_are_accepted() {
        let seed = 11;
        let mut seen = [0usize; 6];
        for (step, before) in run(seed, 200) {
            let s = before.done();
            let mut files = before.files().clone();
            let kind = ["create", "append", "overwrite", "rewrite", "rename", "unlink"].iter().position(|k| *k == step.op.kind()).unwrap();
            let mut cases: Vec<[Option<Vec<u8>>; 8]> = Vec::new();
            match &step.op {
                Op::Create { file, data } => {
                    files[*file] = Some(data[..data.len() / 2].to_vec());
                    cases.push(files.clone());
                }
                Op::Append { file, data } => {
                    files[*file].as_mut().unwrap().extend_from_slice(&data[..data.len() / 3]);
                    cases.push(files.clone());
                }
                Op::Overwrite { file, off, data } => {
                    let f = files[*file].as_mut().unwrap();
                    let k = data.len() / 2;
                    if f.len() < off + k {
                        f.resize(off + k, 0);
                    }
                    f[*off..off + k].copy_from_slice(&data[..k]);
                    cases.push(files.clone());
                }
                Op::Rewrite { file, data } => {
                    let old = files[*file].clone().unwrap();
                    files[*file] = Some(old[..old.len() / 2].to_vec());
                    cases.push(files.clone());
                    files[*file] = Some(data[..data.len() / 2].to_vec());
                    cases.push(files.clone());
                }
                Op::Rename { from, to } => {
                    files[*to] = files[*from].clone();
                    cases.push(files.clone());
                }
                Op::Unlink { .. } => {}
            }
            for c in cases {
                let f = check(seed, s, &listing(&c), 4).unwrap_or_else(|e| panic!("{step:?}: {e}"));
                assert_eq!(f.op, s, "{step:?}");
                if c != *before.files() {
                    assert!(f.partial.is_some(), "{step:?}");
                }
                seen[kind] += 1;
            }
        }
        assert!(seen.iter().take(5).all(|&n| n > 3), "{seen:?}");
    }

    #[test]
    fn lost_torn_mixed_and_foreign_states_are_refused() {
        let seed = 5;
        let s = 60;
        let synced = state_after(seed, s);
        assert!(synced.iter().any(|(_, d)| d.len() > 100), "some file to damage");
        let big = synced.iter().position(|(_, d)| d.len() > 100).unwrap();
        // A flipped byte in the middle of a synced file.
        let mut d = synced.clone();
        let mid = d[big].1.len() / 2;
        d[big].1[mid] ^= 1;
        assert!(check(seed, s, &d, MAX_AHEAD).is_err());
        // A synced file missing.
        let mut d = synced.clone();
        d.remove(big);
        let e = check(seed, s, &d, MAX_AHEAD).unwrap_err();
        assert!(e.contains("found absent"), "{e}");
        // A synced file cut short.
        let mut d = synced.clone();
        d[big].1.truncate(mid);
        assert!(check(seed, s, &d, MAX_AHEAD).is_err());
        // Zeros where data was (a block that never reached the disk).
        let mut d = synced.clone();
        let end = d[big].1.len();
        for b in &mut d[big].1[end - 50..] {
            *b = 0;
        }
        assert!(check(seed, s, &d, MAX_AHEAD).is_err());
        // Another file in the directory.
        let mut d = synced.clone();
        d.push(("junk".into(), vec![1]));
        assert!(check(seed, s, &d, MAX_AHEAD).unwrap_err().contains("unexpected"));
        // The state before the sync (where it differs).
        let before = (0..s).rev().map(|j| state_after(seed, j)).find(|b| *b != synced).unwrap();
        assert!(check(seed, s, &before, MAX_AHEAD).is_err());
        // A mixture: one file from far later, the rest as synced.
        let later = state_after(seed, s + 40);
        let mut mixed = synced.clone();
        let (name, data) = later.iter().find(|(n, d)| synced.iter().any(|(m, e)| m == n && e != d)).unwrap().clone();
        for e in mixed.iter_mut() {
            if e.0 == name {
                e.1 = data.clone();
            }
        }
        assert!(check(seed, s, &mixed, 10).is_err(), "{name} from op {} with the rest from op {s}", s + 40);
        // Too far ahead for the window.
        assert!(check(seed, s, &state_after(seed, s + 30), 5).is_err() || state_after(seed, s + 30) == synced);
    }

    #[test]
    fn the_report_names_the_file_and_its_checksum() {
        let mut w = Workload::new(3);
        let s = w.next_op();
        w.apply(&s);
        let line = w.report("/dur", &s);
        let f = s.op.file();
        let data = w.files()[f].as_ref().unwrap();
        assert!(line.starts_with(&format!("t-durable: synced 1 /dur/{} {} {:016x} files=1 state=", NAMES[f], data.len(), checksum(data))), "{line}");
    }
}
