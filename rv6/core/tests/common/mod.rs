//! Test support: an `Fs` over a real `frond-fslib` file system on a `MemDisk` (as the fs
//! domain exports it), crash injection, and helpers that play the domain's part (spawn
//! and its image, blocking loops).
//!
//! `Fs::unlink_keep` and `Fs::release` are emulated here with a hidden directory
//! `/.keep`: an inode whose last name `unlink_keep` removes is linked there as
//! `/.keep/<inum>` first, reported with `nlink` 0 by `stat`, and freed by `release`
//! (the fs domain implements them on the inode itself; what the core sees is the same).
//! `/.keep` is hidden from `readdir` of the root and made before any test measures free
//! inodes. A `restart` unmounts and mounts again, as a restart of the fs domain with
//! `keep_orphans` does: the kept inodes survive it.

#![allow(dead_code)]

use frond_fslib::dev::MemDisk;
use frond_fslib::layout::Variant;
use frond_fslib::mkfs::{format, Params};
use frond_fslib::FileSystem;
use frond_interface::fs::*;
use frond_interface::rv6::*;
use frond_interface::{RRefVec, RpcError, RpcResult};
use frond_rv6core::{read_image, Core, Io, Poll};
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Mutex;

pub struct TestFs {
    fs: Mutex<Option<FileSystem<MemDisk>>>,
    kept: Mutex<Vec<u32>>,
    /// The next this many calls fail as if the fs domain crashed in them and the proxy
    /// did not repeat them (nothing is done).
    pub fail_next: AtomicU32,
    pub releases: AtomicU32,
    pub unlink_keeps: AtomicU32,
}

fn keep_name(inum: u32) -> Path {
    Path::new(&format!("/.keep/{inum}")).unwrap()
}

impl TestFs {
    pub fn new() -> Self {
        let (size, ninodes) = (4096u32, 200u32);
        let mut d = MemDisk::new(size as u64);
        format(&mut d, &Params::new(size, ninodes, Variant::Stock)).expect("format");
        let mut fs = FileSystem::mount(d).unwrap_or_else(|(_, e)| panic!("mount: {e}"));
        fs.create(ROOT_INUM, b"/.keep", FileType::Dir, 0, 0, true).unwrap();
        fs.create(ROOT_INUM, b"/bin", FileType::Dir, 0, 0, true).unwrap();
        fs.commit().unwrap();
        Self { fs: Mutex::new(Some(fs)), kept: Mutex::new(Vec::new()), fail_next: AtomicU32::new(0), releases: AtomicU32::new(0), unlink_keeps: AtomicU32::new(0) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut FileSystem<MemDisk>) -> FsResult<T>) -> RpcResult<FsResult<T>> {
        if self.fail_next.load(SeqCst) > 0 {
            self.fail_next.fetch_sub(1, SeqCst);
            return Err(RpcError::Panicked);
        }
        let mut g = self.fs.lock().unwrap();
        let fs = g.as_mut().unwrap();
        let r = f(fs);
        fs.commit().unwrap();
        Ok(r)
    }

    /// A restart of the fs domain: unmount, mount again (the log replays; orphans that
    /// `unlink_keep` made are kept, as with `FsArgs::keep_orphans`).
    pub fn restart(&self) {
        let mut g = self.fs.lock().unwrap();
        let (dev, r) = g.take().unwrap().unmount();
        r.unwrap();
        *g = Some(FileSystem::mount(dev).unwrap_or_else(|(_, e)| panic!("mount: {e}")));
    }

    pub fn free_inodes(&self) -> u32 {
        self.with(|fs| fs.info()).unwrap().unwrap().free_inodes
    }

    /// Adds a file directly (a program image, a fixture).
    pub fn put(&self, path: &str, data: &[u8]) -> u32 {
        self.with(|fs| {
            let st = fs.create(ROOT_INUM, path.as_bytes(), FileType::File, 0, 0, false)?;
            fs.truncate(st.inum, 0)?;
            let mut off = 0;
            while off < data.len() {
                let n = (data.len() - off).min(IO_MAX);
                off += fs.write(st.inum, off as u64, &data[off..off + n])? as usize;
            }
            Ok(st.inum)
        })
        .unwrap()
        .unwrap()
    }

    pub fn exists(&self, path: &str) -> bool {
        self.with(|fs| fs.lookup(ROOT_INUM, path.as_bytes())).unwrap().is_ok()
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
                st.nlink -= 1;
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
        self.with(|fs| {
            let mut c = fs.readdir(inum, from)?;
            if inum == ROOT_INUM {
                let kept: Vec<DirEntry> = c.entries[..c.n as usize].iter().copied().filter(|e| e.name() != b".keep").collect();
                c.entries = [DirEntry::default(); DIR_CHUNK];
                c.entries[..kept.len()].copy_from_slice(&kept);
                c.n = kept.len() as u32;
            }
            Ok(c)
        })
    }
    fn link(&self, cwd: u32, old: Path, new: Path) -> RpcResult<FsResult<()>> {
        self.with(|fs| fs.link(cwd, old.as_bytes(), new.as_bytes()))
    }
    fn unlink(&self, cwd: u32, p: Path) -> RpcResult<FsResult<()>> {
        self.with(|fs| fs.unlink(cwd, p.as_bytes()))
    }
    fn unlink_keep(&self, cwd: u32, p: Path) -> RpcResult<FsResult<()>> {
        self.unlink_keeps.fetch_add(1, SeqCst);
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
        self.releases.fetch_add(1, SeqCst);
        let mut kept = self.kept.lock().unwrap();
        let was_kept = kept.contains(&inum);
        let r = self.with(|fs| {
            if was_kept {
                fs.unlink(ROOT_INUM, keep_name(inum).as_bytes())
            } else {
                fs.stat(inum).map(drop)
            }
        });
        if was_kept && matches!(r, Ok(Ok(()))) {
            kept.retain(|&i| i != inum);
        }
        r
    }
    fn sync(&self) -> RpcResult<FsResult<()>> {
        self.with(|fs| fs.sync())
    }
}

// ---- the domain's part

pub fn path(s: &str) -> Path {
    Path::new(s).unwrap()
}

pub fn rbuf(bytes: &[u8]) -> RRefVec<u8> {
    RRefVec::from_slice(bytes)
}

pub fn zbuf(n: usize) -> RRefVec<u8> {
    RRefVec::new_with(n, |_| 0u8)
}

/// A fresh program domain id (the tests' stand-in for `Procs::load`).
pub fn fake_id() -> ProcId {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    ProcId { domain: NEXT.fetch_add(1, SeqCst), generation: 7 }
}

pub struct World {
    pub fs: TestFs,
    pub core: Core,
}

pub const PROG: &[u8] = b"\x7fELF a program image";

impl World {
    /// A file system with `/bin/init` and `/bin/prog`, a core for `nproc` processes, and
    /// pid 1 running.
    pub fn new(nproc: u32) -> Self {
        rref::host::HostHeap::install();
        let fs = TestFs::new();
        fs.put("/bin/init", PROG);
        fs.put("/bin/prog", PROG);
        let mut w = World { fs, core: Core::new(nproc) };
        w.start_init();
        w
    }

    pub fn start_init(&mut self) -> ProcId {
        let e = self.core.start_init(&self.fs, &path("/bin/init")).expect("init");
        assert_eq!(e.pid, 1);
        let img = read_image(&self.fs, e.ino, e.size).unwrap();
        assert_eq!(&img[..], PROG);
        let id = fake_id();
        assert!(!self.core.spawn_loaded(&self.fs, 1, id));
        id
    }

    /// `spawn` as the domain does it, with a fake domain id; returns the child's pid.
    pub fn spawn_fds(&mut self, parent: i32, prog: &str, map: FdMap) -> SysResult<i32> {
        let e = self.core.spawn(&self.fs, parent, &path(prog), &map)?;
        match read_image(&self.fs, e.ino, e.size) {
            Ok(img) => assert_eq!(img.len(), e.size as usize),
            Err(err) => {
                self.core.spawn_abort(&self.fs, e.pid);
                return Err(err);
            }
        }
        self.core.spawn_loaded(&self.fs, e.pid, fake_id());
        Ok(e.pid)
    }

    pub fn spawn(&mut self, parent: i32) -> i32 {
        self.spawn_fds(parent, "/bin/prog", FdMap::stdio()).unwrap()
    }

    pub fn end(&mut self, pid: i32, code: i32) {
        self.core.ended(&self.fs, pid, ExitStatus::exited(code));
    }

    pub fn open(&mut self, pid: i32, p: &str, flags: u32) -> SysResult<i32> {
        self.core.open(&self.fs, pid, &path(p), flags)
    }

    pub fn close(&mut self, pid: i32, fd: i32) -> SysResult<()> {
        self.core.close(&self.fs, pid, fd)
    }

    /// One write step's result.
    pub fn write_io(&mut self, pid: i32, fd: i32, data: &[u8]) -> SysResult<Io> {
        let b = rbuf(data);
        self.core.write(&self.fs, pid, fd, &b, data.len() as u32, 0)
    }

    /// A whole write (pipes in steps, as the domain loops); `Block` is a test failure
    /// unless `allow_short`, which returns what was written before blocking.
    pub fn write(&mut self, pid: i32, fd: i32, data: &[u8]) -> SysResult<u32> {
        let b = rbuf(data);
        let mut done = 0u32;
        loop {
            match self.core.write(&self.fs, pid, fd, &b, data.len() as u32, done)? {
                Io::Done(0) => return Ok(done),
                Io::Done(n) => {
                    done += n;
                    if done as usize == data.len() {
                        return Ok(done);
                    }
                }
                other => panic!("write would {other:?}"),
            }
        }
    }

    pub fn read_io(&mut self, pid: i32, fd: i32, n: usize) -> SysResult<(Io, Vec<u8>)> {
        let mut b = zbuf(n);
        let io = self.core.read(&self.fs, pid, fd, &mut b, n as u32)?;
        let got = match io {
            Io::Done(k) => b[..k as usize].to_vec(),
            _ => Vec::new(),
        };
        Ok((io, got))
    }

    /// A read that must complete.
    pub fn read(&mut self, pid: i32, fd: i32, n: usize) -> SysResult<Vec<u8>> {
        match self.read_io(pid, fd, n)? {
            (Io::Done(_), v) => Ok(v),
            (other, _) => panic!("read would {other:?}"),
        }
    }

    /// Reads until end of file.
    pub fn read_all(&mut self, pid: i32, fd: i32) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let v = self.read(pid, fd, 1000).unwrap();
            if v.is_empty() {
                return out;
            }
            out.extend(v);
        }
    }

    pub fn wait(&mut self, pid: i32, target: i32) -> SysResult<Poll<Waited>> {
        self.core.wait(pid, target)
    }

    pub fn cwd(&self, pid: i32) -> String {
        String::from_utf8(self.core.getcwd(pid).unwrap().as_bytes().to_vec()).unwrap()
    }
}
