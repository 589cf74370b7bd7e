//! # frond-fuzz — what Frond's fuzz targets share
//!
//! The targets themselves are the binaries in `fuzz_targets/` (one per component: `elf`,
//! `bootfmt`, `fwd`, `net`, `fs`, `rv6`); each is a libFuzzer entry point
//! (`libfuzzer_sys::fuzz_target!`). This library holds what they have in common:
//!
//! * [`Guard`], the global allocator of every target: the system allocator with a count
//!   of live bytes. One allocation over [`MAX_ALLOC`] or more than [`MAX_LIVE`] bytes
//!   live at once aborts the run with a message, which libFuzzer records as a crash: an
//!   input that makes a component allocate without bound is a finding like a panic.
//! * [`Input`], a cursor that decodes numbers and byte strings from the fuzzer's input
//!   and reads zeros once it is used up, so every input decodes to something.
//! * [`write_seeds`]: seeds a target builds in its `init` (a domain image, a formatted
//!   file system) written into the corpus directory named by `FROND_FUZZ_SEEDS` before
//!   libFuzzer reads it; `scripts/fuzz.sh` sets it. The small seeds live in
//!   `tests/fuzz/seeds/<target>/`.
//!
//! Built only with the fuzzing flags of `scripts/fuzz.sh` (a separate cargo workspace;
//! see docs/fuzzing.md).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Largest single allocation a target may make (bytes).
pub const MAX_ALLOC: usize = 64 << 20;
/// Most bytes a target may hold allocated at once.
pub const MAX_LIVE: usize = 512 << 20;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator with a bound on one allocation and on the live total.
pub struct Guard;

fn over(what: &str, size: usize) -> ! {
    // No formatting machinery (it could allocate): fixed text and a hand-made number.
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = size;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut e = std::io::stderr();
    let _ = e.write_all(b"frond-fuzz: allocation bound exceeded: ");
    let _ = e.write_all(what.as_bytes());
    let _ = e.write_all(b" (");
    let _ = e.write_all(&digits[i..]);
    let _ = e.write_all(b" bytes)\n");
    std::process::abort();
}

impl Guard {
    fn take(size: usize) {
        if size > MAX_ALLOC {
            over("one allocation larger than MAX_ALLOC", size);
        }
        let live = LIVE.fetch_add(size, Relaxed) + size;
        if live > MAX_LIVE {
            over("more than MAX_LIVE bytes live", live);
        }
    }
}

unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::take(layout.size());
        let p = System.alloc(layout);
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::take(layout.size());
        let p = System.alloc_zeroed(layout);
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            Self::take(new_size - layout.size());
        }
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() {
            if new_size > layout.size() {
                LIVE.fetch_sub(new_size - layout.size(), Relaxed);
            }
        } else if new_size < layout.size() {
            LIVE.fetch_sub(layout.size() - new_size, Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Guard = Guard;

/// Bytes allocated and not freed, as [`Guard`] counts them.
pub fn live_bytes() -> usize {
    LIVE.load(Relaxed)
}

/// Decodes the fuzzer's input front to back; past its end every read gives zeros (and
/// empty byte strings), so any input is a complete description.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn remaining(&self) -> usize {
        self.data.len()
    }
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    fn le<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.u8();
        }
        out
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.le())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.le())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.le())
    }
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }
    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }
    /// A byte string preceded by its length (one byte, taken modulo `max + 1`).
    pub fn lv(&mut self, max: usize) -> &'a [u8] {
        let n = self.u8() as usize % (max + 1);
        self.bytes(n)
    }
    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.data)
    }
}

/// Writes `seeds` (file name, contents) into the directory named by the environment
/// variable `FROND_FUZZ_SEEDS`, if it is set, as `gen-<name>`; existing files are left
/// alone. Called from a target's `init`, before libFuzzer reads its corpus.
pub fn write_seeds(seeds: &[(&str, Vec<u8>)]) {
    let Some(dir) = std::env::var_os("FROND_FUZZ_SEEDS") else { return };
    let dir = std::path::PathBuf::from(dir);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    for (name, bytes) in seeds {
        let path = dir.join(format!("gen-{name}"));
        if !path.exists() {
            let _ = std::fs::write(&path, bytes);
        }
    }
}

/// True when the environment variable `FROND_FUZZ_DEBUG` is set: targets then print
/// what each input does (run the target binary on one file to see it).
pub fn debug() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("FROND_FUZZ_DEBUG").is_some())
}

/// Internet checksum (RFC 1071) of `data` with `acc` already summed in.
pub fn inet_csum(data: &[u8], mut acc: u32) -> u16 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}
