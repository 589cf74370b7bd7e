//! Fuzz target `rv6`: rv6's system-call state machine (`frond-rv6core`) driven by a
//! decoded sequence of system calls, over a real `frond-fslib` file system.
//!
//! The input starts with `Rv6Args::nproc` (small, or a raw `u32` that `Core::new` clamps), then a
//! sequence of calls, each one byte of call number and its arguments decoded as a
//! program could pass them — raw where the interface carries raw values:
//!
//! * paths: a `Path` with a raw `len` (possibly past `PATH_MAX`) and bytes from a small
//!   dictionary (`/a`, `d/x`, `..`, `/bin/prog`, ...) or from the input;
//! * descriptors: small numbers, negative ones, or raw `i32`s;
//! * open flags: raw `u32`s or combinations of the `O_*` flags;
//! * `lseek` offsets: raw `i64`s with any `Whence`;
//! * read and write lengths: raw `u32`s against a buffer of another size, and a raw
//!   `done` for writes;
//! * spawn: a `FdMap` with raw `n` and descriptors, and an `Argv` with raw `argc`, `len`
//!   and bytes, decoded the way a program receives it (`Argv::iter`, `ulib::Args`);
//! * process calls: exit, end (as the domain reports a program's end), kill, wait with a
//!   raw target, ps from a raw pid, sleeping flags.
//!
//! After every call `Core::check` (the crate's invariants: open-file reference counts,
//! pipe ends, in-use inodes, zombies hold nothing, parents, bounded tables) must hold.
//! At the end every process ends and is reaped and pid 1 closes its descriptors: the
//! tables must be back to pid 1 alone, holding nothing.
//!
//! The file system is a 64-block stock image with `/bin/init`, `/bin/prog` and a hidden
//! `/.keep` (which emulates `unlink_keep`/`release` as the core's host tests do); it is
//! formatted once and copied for every input.

#![no_main]

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};

use frond_fslib::dev::MemDisk;
use frond_fslib::layout::Variant;
use frond_fslib::mkfs::{format, Params};
use frond_fslib::FileSystem;
use frond_fuzz::Input;
use frond_interface::fs::*;
use frond_interface::rv6::*;
use frond_interface::{RRefVec, RpcResult};
use frond_rv6core::{read_image, Core, Poll, Usage};
use libfuzzer_sys::fuzz_target;

const PROG: &[u8] = b"\x7fELF a program image";
const BLOCKS: u32 = 64;

/// `Fs` over an fslib file system, as the fs domain exports it (one commit per call).
struct TestFs {
    fs: Mutex<FileSystem<MemDisk>>,
    kept: Mutex<Vec<u32>>,
}

fn keep_name(inum: u32) -> Path {
    Path::new(&format!("/.keep/{inum}")).unwrap()
}

fn template() -> &'static Vec<u8> {
    static IMG: OnceLock<Vec<u8>> = OnceLock::new();
    IMG.get_or_init(|| {
        let mut d = MemDisk::new(BLOCKS as u64);
        format(&mut d, &Params::new(BLOCKS, 24, Variant::Stock)).expect("format");
        let mut fs = FileSystem::mount(d).unwrap_or_else(|(_, e)| panic!("mount: {e}"));
        for dir in [&b"/.keep"[..], b"/bin"] {
            fs.create(ROOT_INUM, dir, FileType::Dir, 0, 0, true).unwrap();
        }
        for prog in [&b"/bin/init"[..], b"/bin/prog"] {
            let st = fs.create(ROOT_INUM, prog, FileType::File, 0, 0, true).unwrap();
            fs.write(st.inum, 0, PROG).unwrap();
        }
        fs.sync().unwrap();
        let (d, r) = fs.unmount();
        r.unwrap();
        d.into_image()
    })
}

impl TestFs {
    fn new() -> Self {
        let d = MemDisk::from_image(template().clone());
        let fs = FileSystem::mount(d).unwrap_or_else(|(_, e)| panic!("mount: {e}"));
        Self { fs: Mutex::new(fs), kept: Mutex::new(Vec::new()) }
    }
    fn with<T>(&self, f: impl FnOnce(&mut FileSystem<MemDisk>) -> FsResult<T>) -> RpcResult<FsResult<T>> {
        let mut fs = self.fs.lock().unwrap();
        let r = f(&mut fs);
        let _ = fs.commit();
        Ok(r)
    }
}

impl Fs for TestFs {
    fn info(&self) -> RpcResult<FsResult<FsInfo>> {
        self.with(|fs| fs.info())
    }
    fn lookup(&self, cwd: u32, p: Path) -> RpcResult<FsResult<Stat>> {
        self.with(|fs| fs.lookup(cwd, p.as_bytes()))
    }
    fn stat(&self, inum: u32) -> RpcResult<FsResult<Stat>> {
        let kept = self.kept.lock().unwrap().contains(&inum);
        self.with(|fs| {
            let mut st = fs.stat(inum)?;
            if kept {
                st.nlink = st.nlink.saturating_sub(1);
            }
            Ok(st)
        })
    }
    fn create(&self, cwd: u32, p: Path, kind: FileType, major: u16, minor: u16, excl: bool) -> RpcResult<FsResult<Stat>> {
        self.with(|fs| fs.create(cwd, p.as_bytes(), kind, major, minor, excl))
    }
    fn read(&self, inum: u32, off: u64, buf: &mut RRefVec<u8>) -> RpcResult<FsResult<u32>> {
        let n = buf.len().min(IO_MAX);
        self.with(|fs| fs.read(inum, off, &mut buf[..n]))
    }
    fn write(&self, inum: u32, off: u64, buf: &RRefVec<u8>, len: u32) -> RpcResult<FsResult<u32>> {
        self.with(|fs| {
            if len as usize > buf.len() || len as usize > IO_MAX {
                return Err(FsError::Invalid);
            }
            fs.write(inum, off, &buf[..len as usize])
        })
    }
    fn pread(&self, inum: u32, off: u64, buf: &mut RRefVec<u8>, len: u32) -> RpcResult<FsResult<u32>> {
        let n = (len as usize).min(buf.len()).min(IO_MAX);
        self.with(|fs| fs.read(inum, off, &mut buf[..n]))
    }
    fn truncate(&self, inum: u32, size: u64) -> RpcResult<FsResult<()>> {
        self.with(|fs| fs.truncate(inum, size))
    }
    fn readdir(&self, inum: u32, from: u32) -> RpcResult<FsResult<DirChunk>> {
        self.with(|fs| fs.readdir(inum, from))
    }
    fn link(&self, cwd: u32, old: Path, new: Path) -> RpcResult<FsResult<()>> {
        self.with(|fs| fs.link(cwd, old.as_bytes(), new.as_bytes()))
    }
    fn unlink(&self, cwd: u32, p: Path) -> RpcResult<FsResult<()>> {
        self.with(|fs| fs.unlink(cwd, p.as_bytes()))
    }
    fn unlink_keep(&self, cwd: u32, p: Path) -> RpcResult<FsResult<()>> {
        let mut kept = self.kept.lock().unwrap();
        self.with(|fs| {
            let st = fs.lookup(cwd, p.as_bytes())?;
            if st.kind != FileType::Dir && st.nlink == 1 {
                fs.link(cwd, p.as_bytes(), keep_name(st.inum).as_bytes())?;
                fs.unlink(cwd, p.as_bytes())?;
                kept.push(st.inum);
                Ok(())
            } else {
                fs.unlink(cwd, p.as_bytes())
            }
        })
    }
    fn release(&self, inum: u32) -> RpcResult<FsResult<()>> {
        let mut kept = self.kept.lock().unwrap();
        let was_kept = kept.contains(&inum);
        let r = self.with(|fs| if was_kept { fs.unlink(ROOT_INUM, keep_name(inum).as_bytes()) } else { fs.stat(inum).map(drop) });
        if was_kept && matches!(r, Ok(Ok(()))) {
            kept.retain(|&i| i != inum);
        }
        r
    }
    fn sync(&self) -> RpcResult<FsResult<()>> {
        self.with(|fs| fs.sync())
    }
}

fn fake_id() -> ProcId {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    ProcId { domain: NEXT.fetch_add(1, SeqCst), generation: 7 }
}

const NAMES: [&[u8]; 16] = [
    b"/a", b"/b", b"d", b"/d/x", b"d/../a", b"..", b".", b"/", b"/bin/prog", b"/bin/init", b"/bin", b"/.keep",
    b"//a//", b"/a/", b"x/y/z", b"/d",
];

fn path(inp: &mut Input) -> Path {
    let k = inp.u8();
    let mut p = Path { len: 0, bytes: [0; PATH_MAX] };
    let bytes: &[u8] = if k < 0xC0 { NAMES[k as usize % NAMES.len()] } else { inp.lv(PATH_MAX) };
    p.bytes[..bytes.len()].copy_from_slice(bytes);
    p.len = bytes.len() as u16;
    if k >= 0xF8 {
        p.len = inp.u16(); // a raw length, maybe past PATH_MAX
    }
    p
}

fn fd(inp: &mut Input) -> i32 {
    let b = inp.u8();
    match b {
        0..=0xEF => (b % 20) as i32 - 1,
        _ => inp.u32() as i32,
    }
}

fn flags(inp: &mut Input) -> u32 {
    let b = inp.u8();
    if b >= 0xF0 {
        return inp.u32();
    }
    [O_RDONLY, O_WRONLY, O_RDWR, O_RDWR | O_CREATE, O_WRONLY | O_CREATE | O_TRUNC, O_WRONLY | O_APPEND | O_CREATE, O_RDWR | O_TRUNC, O_CREATE][b as usize % 8]
}

fn argv(inp: &mut Input) -> Argv {
    let mut a = Argv::empty();
    if inp.bool() {
        // Built the way a program builds it.
        for _ in 0..inp.u8() % 40 {
            let arg = inp.lv(64);
            let before = (a.argc, a.len);
            if a.push(arg).is_err() {
                assert_eq!((a.argc, a.len), before, "a refused push changed the Argv");
            }
        }
        let n = a.iter().count();
        assert_eq!(n, a.argc as usize);
    } else {
        // Raw, as a damaged or hostile caller could send it.
        a.argc = inp.u32();
        a.len = inp.u32();
        let b = inp.lv(255);
        a.bytes[..b.len()].copy_from_slice(b);
    }
    for arg in a.iter() {
        assert!(!arg.contains(&0));
    }
    assert!(a.iter().count() <= ARGS_MAX);
    let args = ulib::Args::new(a);
    let _ = (args.len(), args.program(), args.to_vec(), args.get(3));
    a
}

fuzz_target!(
    init: {
        rref::host::HostHeap::install();
        template();
    },
    |data: &[u8]| {
        let mut inp = Input::new(data);
        let fs = TestFs::new();
        // Mostly small tables (the check after every call walks them all); sometimes a raw
        // `nproc`, which `Core::new` clamps.
        let nproc = match inp.u8() {
            0xFF => inp.u32(),
            b => u32::from(b % 12),
        };
        let mut core = Core::new(nproc);
        let e = core.start_init(&fs, &Path::new("/bin/init").unwrap()).expect("init starts");
        read_image(&fs, e.ino, e.size).expect("init's image");
        core.spawn_loaded(&fs, 1, fake_id());
        let base = core.usage();
        let mut live: Vec<i32> = vec![1];
        let mut steps = 0;
        while !inp.is_empty() && steps < 200 {
            steps += 1;
            let pid = if inp.u8() < 0xF0 { live[inp.u8() as usize % live.len()] } else { inp.u32() as i32 };
            let call = inp.u8() % 24;
            if frond_fuzz::debug() {
                eprintln!("step {steps}: pid {pid} call {call}");
            }
            match call {
                0 => {
                    let (p, f) = (path(&mut inp), flags(&mut inp));
                    let _ = core.open(&fs, pid, &p, f);
                }
                1 => {
                    let _ = core.close(&fs, pid, fd(&mut inp));
                }
                2 => {
                    let _ = core.dup(pid, fd(&mut inp));
                }
                3 => {
                    let _ = core.pipe(pid);
                }
                4 => {
                    let fd = fd(&mut inp);
                    let size = inp.u16() as usize % 8192;
                    let buf = RRefVec::new_with(size, |i| i as u8);
                    let len = if inp.bool() { size as u32 } else { inp.u32() };
                    let done = if inp.bool() { 0 } else { inp.u32() };
                    let _ = core.write(&fs, pid, fd, &buf, len, done);
                }
                5 => {
                    let fd = fd(&mut inp);
                    let size = inp.u16() as usize % 8192;
                    let mut buf = RRefVec::new_with(size, |_| 0u8);
                    let len = if inp.bool() { size as u32 } else { inp.u32() };
                    let _ = core.read(&fs, pid, fd, &mut buf, len);
                }
                6 => {
                    let prog = path(&mut inp);
                    let n = if inp.bool() { inp.u8() as u32 % 9 } else { inp.u32() };
                    let mut map = FdMap { n, fds: [-1; FDMAP_MAX] };
                    for f in map.fds.iter_mut() {
                        *f = fd(&mut inp);
                    }
                    let _argv = argv(&mut inp);
                    if let Ok(e) = core.spawn(&fs, pid, &prog, &map) {
                        core.check().expect("after spawn");
                        match read_image(&fs, e.ino, e.size) {
                            Ok(img) if inp.u8() < 0xF0 => {
                                assert_eq!(img.len(), e.size as usize);
                                core.spawn_loaded(&fs, e.pid, fake_id());
                                live.push(e.pid);
                            }
                            _ => core.spawn_abort(&fs, e.pid),
                        }
                    }
                }
                7 => {
                    if pid != 1 {
                        let code = inp.u32() as i32;
                        let st = match inp.u8() % 3 {
                            0 => ExitStatus::exited(code),
                            1 => ExitStatus::killed(),
                            _ => ExitStatus::crashed("fault"),
                        };
                        core.ended(&fs, pid, st);
                        live.retain(|&p| p != pid);
                    }
                }
                8 => {
                    let target = if inp.bool() { -1 } else { inp.u32() as i32 };
                    if let Ok(Poll::Ready(w)) = core.wait(pid, target) {
                        live.retain(|&p| p != w.pid);
                    }
                }
                9 => {
                    let p = path(&mut inp);
                    let _ = core.unlink(&fs, pid, &p);
                }
                10 => {
                    let p = path(&mut inp);
                    let _ = core.mkdir(&fs, pid, &p);
                }
                11 => {
                    let fd = fd(&mut inp);
                    let off = inp.u64() as i64;
                    let whence = [Whence::Set, Whence::Cur, Whence::End][inp.u8() as usize % 3];
                    let _ = core.lseek(&fs, pid, fd, off, whence);
                }
                12 => {
                    let _ = core.fstat(&fs, pid, fd(&mut inp));
                }
                13 => {
                    let _ = core.readdir(&fs, pid, fd(&mut inp));
                }
                14 => {
                    if pid != 1 {
                        let _ = core.kill(pid);
                    }
                }
                15 => {
                    let (a, b) = (path(&mut inp), path(&mut inp));
                    let _ = core.link(&fs, pid, &a, &b);
                }
                16 => {
                    let p = path(&mut inp);
                    let _ = core.chdir(&fs, pid, &p);
                    if let Ok(cwd) = core.getcwd(pid) {
                        let b = cwd.as_bytes();
                        assert!(b.first() == Some(&b'/'), "cwd {b:?} is not absolute");
                    }
                }
                17 => {
                    let p = path(&mut inp);
                    let _ = core.mknod(&fs, pid, &p, inp.u16(), inp.u16());
                }
                18 => {
                    let _ = core.sync(&fs);
                }
                19 => {
                    let t = core.ps(inp.u32() as i32);
                    assert!(t.n as usize <= PS_ROWS);
                }
                20 => {
                    if pid != 1 {
                        let _ = core.exit(pid, inp.u32() as i32);
                    }
                }
                21 => {
                    core.set_sleeping(pid, inp.bool());
                    let _ = core.killed(pid);
                }
                22 => {
                    let _ = core.take_wake();
                    let _ = core.getcwd(pid);
                }
                _ => {
                    let _ = argv(&mut inp);
                }
            }
            if let Err(e) = core.check() {
                panic!("step {steps}: {e}");
            }
            if frond_fuzz::debug() {
                eprintln!("  live {live:?} {:?}", core.usage());
            }
        }
        // Everything ends; pid 1 reaps all and closes what it holds.
        for &p in live.iter().filter(|&&p| p != 1) {
            core.ended(&fs, p, ExitStatus::exited(0));
        }
        let mut reaped = 0;
        while let Ok(Poll::Ready(_)) = core.wait(1, -1) {
            reaped += 1;
            assert!(reaped <= 64 * 4, "wait keeps reaping");
        }
        for fd in 0..NOFILE as i32 {
            let _ = core.close(&fs, 1, fd);
        }
        core.check().expect("at the end");
        let u = core.usage();
        assert_eq!(u, Usage { files: 0, inodes: 0, pipes: 0, ..base }, "tables not back to pid 1 alone");
    }
);
