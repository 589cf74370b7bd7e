//! The storage path: the kinds of the system manifest (`domains/system.manifest`, see
//! [`crate::assembly`]) that make it, and the console's file commands. Which domains
//! start and how they are wired is the manifest's; this module knows how each kind is
//! made ([`construct`]).
//!
//! * A **block driver domain**: `virtio-blk0` (an instance of `domains/dom-virtio-blk`)
//!   for the first virtio-blk function, or `membdev` (`domains/dom-membdev`), a RAM disk.
//! * The **file-system domain** `fs` (`domains/dom-fs`) over the driver, through a
//!   recovery proxy: every `Block` method is idempotent (buffers are lent, never moved), so
//!   when the driver dies mid-call the proxy restarts it and submits the same requests
//!   again — the file system sees no error.
//! * The kernel holds a recovery proxy to `fs` for the console (`ls`, `cat`, `df`, …) and,
//!   with `fsload=…`, starts the workload domain `fsload` on a thread of its own.
//!
//! Command line:
//! * `disk=auto|virtio|ram|off` — `auto` (default): virtio-blk if QEMU has one, else none.
//! * `ram.mib=N` — RAM-disk size (default 64).
//! * `fs=on|off` (default on), `fs.large=on` — format an empty device with the
//!   large-file variant (an empty device is formatted; a device holding anything that is
//!   not a file system is refused, never overwritten).
//! * `fsload=verify|check|bench`, with `fsload.files=`, `fsload.bytes=`, `fsload.req=`,
//!   `fsload.sync=`, `fsload.rounds=`, `fsload.seed=` (see `LoadArgs`); `fsload.delay=MS`
//!   starts it MS milliseconds after the system is up (a test measures the idle system
//!   first).
//! * `fs.crash=NAME@MS,…` — a crash schedule started when storage is up.
//!
//! Bad values are reported and storage is not started; the kernel keeps running.

use crate::assembly::{Ctx, Entry};
use crate::domain;
use crate::sched;
use crate::{pci, println};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use frond_interface::blk::*;
use frond_interface::fs::*;
use frond_interface::net::PciDevice;
use frond_interface::{RRefVec, Remote};
use rref::DomainId;

/// Storage options kept from the command line (parsed before the heap exists).
pub const MAX_OPTIONS: usize = 24;

/// `key=value` tokens of the command line that belong to storage.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options<'a> {
    pub items: [Option<(&'a str, &'a str)>; MAX_OPTIONS],
}

impl<'a> Options<'a> {
    /// True if `key` is a storage option (and keeps it).
    pub fn take(&mut self, key: &'a str, value: &'a str) -> bool {
        let ours = matches!(key, "disk" | "fs" | "rv6" | "demo") || key.starts_with("rv6.") || key.starts_with("ram.") || key.starts_with("fs.") || key.starts_with("fsload") || key == "inject" || key.starts_with("inject.");
        if ours {
            match self.items.iter_mut().find(|i| i.is_none()) {
                Some(free) => *free = Some((key, value)),
                None => crate::println!("cmdline: {key}={value}: too many storage options; ignored"),
            }
        }
        ours
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.items.iter().flatten().rev().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// The last value given for `key`.
    pub fn value(&self, key: &str) -> Option<&'a str> {
        self.get(key)
    }

    /// A copy that outlives the command line.
    pub fn to_static(&self) -> Options<'static> {
        let mut o = Options::default();
        for (slot, item) in o.items.iter_mut().zip(self.items.iter()) {
            *slot = item.map(|(k, v)| (&*String::from(k).leak(), &*String::from(v).leak()));
        }
        o
    }
}

/// What [`start`] made.
pub struct Storage {
    pub driver: DomainId,
    pub driver_name: String,
    fs_remote: Option<Remote<dyn Fs>>,
    blk_remote: Remote<dyn Block>,
}

static STORAGE: spin::Once<Storage> = spin::Once::new();

pub fn get() -> Option<&'static Storage> {
    STORAGE.get()
}

fn number(o: &Options<'_>, key: &str, default: u64) -> Result<u64, String> {
    match o.get(key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("{key}={v}: expected a number")),
    }
}

fn on(o: &Options<'_>, key: &str, default: bool) -> Result<bool, String> {
    match o.get(key) {
        None => Ok(default),
        Some("on" | "1" | "yes") => Ok(true),
        Some("off" | "0" | "no") => Ok(false),
        Some(v) => Err(format!("{key}={v}: expected on or off")),
    }
}

/// The block driver the manifest started (its entry name), kept until the fs is made.
static DRIVER: spin::Mutex<Option<(DomainId, String)>> = spin::Mutex::new(None);

/// The storage kinds: `virtio-blk` (`pci=…`: the first such function), `ramdisk`
/// (`ram.mib=`), `fs` (`block=ENTRY[,ENTRY…]`: the first that started; `fs.large=`),
/// `fsload` (`fs=ENTRY`; `fsload=` and `fsload.*`, run by a kernel thread).
pub fn construct(e: &Entry, ctx: &mut Ctx<'_>) -> Result<Option<DomainId>, String> {
    let o = ctx.opts;
    match e.kind.as_str() {
        "virtio-blk" => {
            let mut devices: Vec<pci::Function> = crate::net::pci_ids(e)?.iter().flat_map(|&(v, d)| pci::find(v, d)).collect();
            devices.sort_by_key(|f| f.bdf);
            let Some(f) = devices.first() else {
                if o.get("disk") == Some("virtio") {
                    return Err("disk=virtio: no virtio-blk device (start QEMU with -device virtio-blk-pci,…)".into());
                }
                return Ok(None);
            };
            let id = start_virtio(&e.name, &e.image, f.bdf)?;
            *DRIVER.lock() = Some((id, e.name.clone()));
            Ok(Some(id))
        }
        "ramdisk" => {
            let mib = number(o, "ram.mib", 64)?;
            if !(1..=1024).contains(&mib) {
                return Err(format!("ram.mib={mib}: expected 1..=1024"));
            }
            // The RAM disk keeps its blocks in its private heap.
            domain::limits::configure_default(&format!("{}:heap={}M", e.name, mib + 8))?;
            let blocks = mib * 1024 * 1024 / BLOCK_SIZE as u64;
            let dev = PciDevice { bdf: 0xffff, vendor: 0, device: 0, bars: [(0, 0); 6], caps: Default::default(), ncaps: 0, msix_vector: 0 };
            let id = domain::create::<BlockKind>(&e.name, &e.image, move || (BlkArgs { dev, ram_blocks: blocks },))?;
            *DRIVER.lock() = Some((id, e.name.clone()));
            Ok(Some(id))
        }
        "fs" => {
            let Some((_, driver, r)) = ctx.any_of(e.need("block")?) else { return Ok(None) };
            if !on(o, "fs", true)? {
                return Ok(None);
            }
            let large = on(o, "fs.large", false)?;
            // Restarts and log replay on large images take longer than a call's default budget.
            domain::limits::configure_default(&format!("{}:budget=10000ms", e.name))?;
            // The first mount after boot frees orphaned inodes; a restart keeps them (clients
            // may still hold files unlinked with `unlink_keep`).
            let started = AtomicBool::new(false);
            crate::assembly::link::<dyn Block>(driver, r)?;
            let fs = domain::create::<FsKind>(&e.name, &e.image, move || {
                let keep_orphans = started.swap(true, Ordering::SeqCst);
                let args = FsArgs { format_if_empty: true, large, keep_orphans };
                (crate::assembly::link::<dyn Block>(driver, r).expect("the block driver exports Block"), args)
            })?;
            ready(Some(fs))?;
            Ok(Some(fs))
        }
        _ => {
            let Some((fs, r)) = ctx.domain(e.need("fs")?) else { return Ok(None) };
            let Some(mode) = o.get("fsload") else { return Ok(None) };
            let args = load_args(o, mode)?;
            domain::limits::configure_default(&format!("{}:budget=0ms", e.name))?;
            crate::assembly::link::<dyn Fs>(fs, r)?;
            let id = domain::create::<FsLoadKind>(&e.name, &e.image, move || {
                (crate::assembly::link::<dyn Fs>(fs, r).expect("fs exports Fs"),)
            })?;
            let l = domain::grant::<dyn FsLoad>(id)?;
            let delay_ms = number(o, "fsload.delay", 0)?;
            sched::Builder::new("fsload-run")
                .priority(sched::Priority::Low)
                .spawn(move || {
                    if delay_ms > 0 {
                        sched::sleep_ms(delay_ms);
                        println!("fsload: starting");
                    }
                    match l.run(args) {
                        Ok(s) => println!(
                            "fsload: done: {} rounds, {} files written, {} verified, {} mismatches, {} errors, {} syncs",
                            s.rounds, s.files_written, s.files_verified, s.mismatches, s.errors, s.syncs
                        ),
                        Err(e) => println!("fsload: stopped: {}", e.as_str()),
                    }
                })
                .map_err(|e| format!("spawning the workload thread: {e:?}"))?;
            Ok(Some(id))
        }
    }
}

/// Records the storage path for the console and says it is ready.
fn ready(fs: Option<DomainId>) -> Result<(), String> {
    let Some((driver, driver_name)) = DRIVER.lock().clone() else { return Ok(()) };
    let blk_remote = domain::grant_recover::<dyn Block>(driver)?;
    let fs_remote = fs.map(domain::grant_recover::<dyn Fs>).transpose()?;
    let line = format!("storage: ready: {driver_name}{}", if fs.is_some() { " with fs" } else { "" });
    let mut first = false;
    STORAGE.call_once(|| {
        first = true;
        Storage { driver, driver_name, fs_remote, blk_remote }
    });
    if first {
        println!("{line}");
    }
    Ok(())
}

/// After the manifest ran: a driver without a file system is ready too; bad `disk=`
/// values are reported.
pub fn finish(ctx: &mut Ctx<'_>) {
    if let Some(m) = ctx.opts.get("disk").filter(|m| !matches!(*m, "auto" | "virtio" | "ram" | "off")) {
        println!("storage: not started: disk={m}: expected auto, virtio, ram or off");
    }
    if let Err(e) = ready(None) {
        println!("storage: {e}");
    }
}

fn load_args(o: &Options<'_>, mode: &str) -> Result<LoadArgs, String> {
    let mode = match mode {
        "verify" => LoadMode::Verify,
        "check" => LoadMode::Check,
        "bench" => LoadMode::Bench,
        m => return Err(format!("fsload={m}: expected verify, check or bench")),
    };
    let n = |k: &str, d: u64| -> Result<u32, String> {
        let v = number(o, k, d)?;
        u32::try_from(v).map_err(|_| format!("{k}={v}: too large"))
    };
    Ok(LoadArgs {
        mode,
        files: n("fsload.files", 16)?,
        file_bytes: n("fsload.bytes", 64 * 1024)?,
        request_bytes: n("fsload.req", 64 * 1024)?,
        sync_every: n("fsload.sync", 4)?,
        rounds: n("fsload.rounds", 0)?,
        seed: number(o, "fsload.seed", 1)?,
    })
}

fn start_virtio(name: &str, image: &str, bdf: u16) -> Result<DomainId, String> {
    let dev = pci::prepare(bdf)?;
    domain::create_bound::<BlockKind>(name, image, move |id| {
        // As for NICs: the device is the domain's before its init runs, and each instance
        // starts with bus mastering on (the previous one's death turned it off).
        pci::bind(bdf, id.0);
        pci::enable(bdf);
        (BlkArgs { dev, ram_blocks: 0 },)
    })
}

// ---------------------------------------------------------------------------------------
// Console commands.

fn fs() -> Option<&'static Remote<dyn Fs>> {
    let r = get().and_then(|s| s.fs_remote.as_ref());
    if r.is_none() {
        println!("no file system (no disk: start with a virtio-blk disk or disk=ram)");
    }
    r
}

fn path(p: &str) -> Option<Path> {
    let p = if p.is_empty() { "/" } else { p };
    let r = Path::new(p);
    if r.is_none() {
        println!("{p}: path longer than {PATH_MAX} bytes");
    }
    r
}

/// Prints a failed call: the proxy's error or the file system's.
fn report<T>(what: &str, r: frond_interface::RpcResult<FsResult<T>>) -> Option<T> {
    match r {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            println!("{what}: {}", e.as_str());
            None
        }
        Err(e) => {
            println!("{what}: fs domain: {}", e.as_str());
            None
        }
    }
}

fn kind_char(k: FileType) -> char {
    match k {
        FileType::Dir => 'd',
        FileType::File => '-',
        FileType::Device => 'c',
    }
}

pub fn cmd_ls(args: &str) {
    let (Some(fs), Some(p)) = (fs(), path(args)) else { return };
    let Some(st) = report(args, fs.lookup(ROOT_INUM, p)) else { return };
    if st.kind != FileType::Dir {
        println!("  {} {:>5} {:>3} {:>9}  {}", kind_char(st.kind), st.inum, st.nlink, st.size, args);
        return;
    }
    let mut from = 0;
    loop {
        let Some(chunk) = report(args, fs.readdir(st.inum, from)) else { return };
        for e in &chunk.entries[..(chunk.n as usize).min(DIR_CHUNK)] {
            let name = String::from_utf8_lossy(e.name()).to_string();
            match fs.stat(e.inum) {
                Ok(Ok(s)) => println!("  {} {:>5} {:>3} {:>9}  {name}", kind_char(s.kind), s.inum, s.nlink, s.size),
                Ok(Err(err)) => println!("  ? {:>5}   ?         ?  {name} ({})", e.inum, err.as_str()),
                Err(err) => println!("  ? {:>5}   ?         ?  {name} ({})", e.inum, err.as_str()),
            }
        }
        match chunk.next {
            Some(n) if n > from => from = n,
            _ => return,
        }
    }
}

pub fn cmd_cat(args: &str) {
    let (Some(fs), Some(p)) = (fs(), path(args)) else { return };
    let Some(st) = report(args, fs.lookup(ROOT_INUM, p)) else { return };
    if st.kind == FileType::Dir {
        println!("{args}: {}", FsError::IsDir.as_str());
        return;
    }
    let Some(mut buf) = RRefVec::<u8>::try_new_with(IO_MAX, |_| 0) else {
        println!("cat: shared heap exhausted");
        return;
    };
    let mut off = 0u64;
    let mut last = b'\n';
    loop {
        let Some(n) = report(args, fs.read(st.inum, off, &mut buf)) else { return };
        if n == 0 {
            break;
        }
        let bytes = &buf[..(n as usize).min(IO_MAX)];
        crate::print!("{}", String::from_utf8_lossy(bytes));
        last = bytes.last().copied().unwrap_or(last);
        off += n as u64;
    }
    if last != b'\n' {
        println!();
    }
}

pub fn cmd_df(_: &str) {
    let Some(fs) = fs() else { return };
    let Some(i) = report("df", fs.info()) else { return };
    let s = get().expect("fs() checked");
    let dev = s.blk_remote.info().ok();
    println!(
        "  {} on {} (domain {}): {} format, {} blocks of {} B; data {} blocks, {} free ({} KiB); inodes {}, {} free; log {} blocks; largest file {} KiB",
        "/",
        s.driver_name,
        s.driver.0,
        if i.large { "large-file" } else { "xv6" },
        i.size,
        i.block_size,
        i.data_blocks,
        i.free_blocks,
        i.free_blocks as u64 * i.block_size as u64 / 1024,
        i.inodes,
        i.free_inodes,
        i.log_blocks,
        i.max_file / 1024
    );
    if let Some(d) = dev {
        println!("  device: {} blocks{}, queue depth {}", d.blocks, if d.read_only { " (read-only)" } else { "" }, d.queue_depth);
    }
    if let Ok(b) = s.blk_remote.stats() {
        println!(
            "  driver: {} reads ({} blocks), {} writes ({} blocks), {} flushes, {} errors, {} kicks, {} irqs",
            b.reads, b.read_blocks, b.writes, b.written_blocks, b.flushes, b.errors, b.kicks, b.irqs
        );
    }
    println!("  fs: {} commits, {} log blocks replayed at the last mount", i.commits, i.replayed);
}

/// `write PATH TEXT…`: creates (or truncates) a file holding TEXT and a newline.
pub fn cmd_write(args: &str) {
    let (name, text) = args.split_once(' ').unwrap_or((args, ""));
    let (Some(fs), Some(p)) = (fs(), path(name)) else { return };
    let Some(st) = report(name, fs.create(ROOT_INUM, p, FileType::File, 0, 0, false)) else { return };
    if report(name, fs.truncate(st.inum, 0)).is_none() {
        return;
    }
    let mut bytes = String::from(text);
    bytes.push('\n');
    let b = bytes.as_bytes();
    let Some(buf) = RRefVec::<u8>::try_new_with(b.len(), |i| b[i]) else {
        println!("write: shared heap exhausted");
        return;
    };
    if let Some(n) = report(name, fs.write(st.inum, 0, &buf, b.len() as u32)) {
        println!("{name}: {n} bytes");
    }
}

pub fn cmd_mkdir(args: &str) {
    let (Some(fs), Some(p)) = (fs(), path(args)) else { return };
    report(args, fs.create(ROOT_INUM, p, FileType::Dir, 0, 0, true));
}

pub fn cmd_rm(args: &str) {
    let (Some(fs), Some(p)) = (fs(), path(args)) else { return };
    report(args, fs.unlink(ROOT_INUM, p));
}

pub fn cmd_sync(_: &str) {
    let Some(fs) = fs() else { return };
    if report("sync", fs.sync()).is_some() {
        println!("synced");
    }
}
