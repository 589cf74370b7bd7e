//! The system-call wrappers against a fake rv6 core on the host.
//!
//! The fake keeps files in memory and answers as the `Rv6` contract says (lengths past
//! the lent buffer are `Inval`, a call moves at most 64 KiB), with two twists that the
//! wrappers must absorb: writes move at most [`WRITE_CAP`] bytes per call, and
//! directories are listed with empty slots. It counts calls, so tests can tell a refused
//! argument never reached it.
//!
//! The handle is set once per process and the staging buffer's lock is the domain
//! runtime's (which must not be contended without a kernel), so everything runs in one
//! test function, in sequence. It lives in its own test binary so the unit tests can
//! still check what happens before init.

use frond_interface::fs::{DirChunk, DirEntry, Path, DIR_CHUNK, IO_MAX, NAME_MAX};
use frond_interface::rv6::*;
use frond_interface::{RRefVec, Remote, RpcError, RpcResult};
use std::collections::BTreeMap;
use std::sync::Mutex;
use ulib::{Args, LineReader};

/// Most bytes one fake `write` moves.
const WRITE_CAP: usize = 7000;
const PID: i32 = 7;

#[derive(Clone)]
enum Obj {
    File(String),
    Dir(String),
    Pipe(usize),
    Console,
}

#[derive(Clone)]
struct Open {
    obj: Obj,
    off: u64,
    read: bool,
    write: bool,
}

struct State {
    files: BTreeMap<String, Vec<u8>>,
    dirs: Vec<String>,
    fds: Vec<Option<Open>>,
    pipes: Vec<Vec<u8>>,
    calls: u64,
    /// (fd, bytes) of every write.
    writes: Vec<(i32, usize)>,
    spawned: Vec<(String, Vec<String>, FdMap)>,
}

impl State {
    const fn new() -> Self {
        Self {
            files: BTreeMap::new(),
            dirs: Vec::new(),
            fds: Vec::new(),
            pipes: Vec::new(),
            calls: 0,
            writes: Vec::new(),
            spawned: Vec::new(),
        }
    }
}

static STATE: Mutex<State> = Mutex::new(State::new());

struct Fake;

fn path_str(p: &Path) -> String {
    String::from_utf8(p.as_bytes().to_vec()).unwrap()
}

impl State {
    fn get(&self, fd: i32) -> SysResult<Open> {
        usize::try_from(fd).ok().and_then(|i| self.fds.get(i).cloned().flatten()).ok_or(Errno::BadF)
    }
    fn install(&mut self, o: Open) -> SysResult<i32> {
        let i = match self.fds.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.fds.len() < NOFILE => {
                self.fds.push(None);
                self.fds.len() - 1
            }
            None => return Err(Errno::MFile),
        };
        self.fds[i] = Some(o);
        Ok(i as i32)
    }
    fn set_off(&mut self, fd: i32, off: u64) {
        self.fds[fd as usize].as_mut().unwrap().off = off;
    }
}

impl Fake {
    /// The state, counting a call.
    fn st(&self) -> std::sync::MutexGuard<'static, State> {
        let mut s = fake();
        s.calls += 1;
        s
    }
}

impl Rv6 for Fake {
    fn spawn(&self, path: Path, argv: Argv, fds: FdMap) -> RpcResult<SysResult<i32>> {
        let mut s = self.st();
        let args = argv.iter().map(|a| String::from_utf8(a.to_vec()).unwrap()).collect();
        s.spawned.push((path_str(&path), args, fds));
        Ok(Ok(100 + s.spawned.len() as i32))
    }
    fn wait(&self, pid: i32) -> RpcResult<SysResult<Waited>> {
        let _s = self.st();
        Ok(Ok(Waited { pid, status: ExitStatus::exited(0) }))
    }
    fn exit(&self, _code: i32) -> RpcResult<()> {
        Ok(())
    }
    fn getpid(&self) -> RpcResult<i32> {
        let _s = self.st();
        Ok(PID)
    }
    fn kill(&self, _pid: i32) -> RpcResult<SysResult<()>> {
        Ok(Err(Errno::Srch))
    }
    fn uptime(&self) -> RpcResult<u64> {
        let _s = self.st();
        Ok(1234)
    }
    fn sleep(&self, _ms: u64) -> RpcResult<SysResult<()>> {
        Ok(Ok(()))
    }
    fn ps(&self, from: i32) -> RpcResult<ProcTable> {
        let _s = self.st();
        // Pids 1..=40; `next` is the first pid not shown.
        let row = |pid| ProcRow { pid, ppid: 1, state: ProcState::Running, name: Name::new("p"), domain: 9 };
        let mut t = ProcTable { n: 0, rows: [row(0); PS_ROWS], next: None };
        let start = from.max(1);
        for pid in start..=40 {
            if t.n as usize == PS_ROWS {
                t.next = Some(pid);
                break;
            }
            t.rows[t.n as usize] = row(pid);
            t.n += 1;
        }
        Ok(t)
    }
    fn open(&self, path: Path, flags: u32) -> RpcResult<SysResult<i32>> {
        let mut s = self.st();
        let p = path_str(&path);
        if p == "/dead" {
            return Err(RpcError::DomainDead);
        }
        if flags & !O_ALL != 0 {
            return Ok(Err(Errno::Inval));
        }
        let write = flags & (O_WRONLY | O_RDWR) != 0;
        let read = flags & O_WRONLY == 0;
        if s.dirs.contains(&p) {
            if write {
                return Ok(Err(Errno::IsDir));
            }
            return Ok(s.install(Open { obj: Obj::Dir(p), off: 0, read: true, write: false }));
        }
        if p == "/console" {
            return Ok(s.install(Open { obj: Obj::Console, off: 0, read, write }));
        }
        if !s.files.contains_key(&p) {
            if flags & O_CREATE == 0 {
                return Ok(Err(Errno::NoEnt));
            }
            s.files.insert(p.clone(), Vec::new());
        }
        if flags & O_TRUNC != 0 {
            s.files.get_mut(&p).unwrap().clear();
        }
        Ok(s.install(Open { obj: Obj::File(p), off: 0, read, write }))
    }
    fn close(&self, fd: i32) -> RpcResult<SysResult<()>> {
        let mut s = self.st();
        Ok(s.get(fd).map(|_| s.fds[fd as usize] = None))
    }
    fn read(&self, fd: i32, buf: &mut RRefVec<u8>, len: u32) -> RpcResult<SysResult<u32>> {
        let mut s = self.st();
        let o = match s.get(fd) {
            Ok(o) if o.read => o,
            _ => return Ok(Err(Errno::BadF)),
        };
        if len as usize > buf.len() {
            return Ok(Err(Errno::Inval));
        }
        let len = (len as usize).min(IO_MAX);
        let n = match &o.obj {
            Obj::File(p) => {
                let data = &s.files[p];
                let at = (o.off as usize).min(data.len());
                let n = len.min(data.len() - at);
                buf[..n].copy_from_slice(&data[at..at + n]);
                s.set_off(fd, (at + n) as u64);
                n
            }
            Obj::Pipe(i) => {
                let i = *i;
                let n = len.min(s.pipes[i].len());
                let taken: Vec<u8> = s.pipes[i].drain(..n).collect();
                buf[..n].copy_from_slice(&taken);
                n
            }
            Obj::Dir(_) => return Ok(Err(Errno::IsDir)),
            Obj::Console => 0,
        };
        Ok(Ok(n as u32))
    }
    fn write(&self, fd: i32, buf: &RRefVec<u8>, len: u32) -> RpcResult<SysResult<u32>> {
        let mut s = self.st();
        let o = match s.get(fd) {
            Ok(o) if o.write => o,
            _ => return Ok(Err(Errno::BadF)),
        };
        if len as usize > buf.len() || len as usize > IO_MAX {
            return Ok(Err(Errno::Inval));
        }
        let n = (len as usize).min(WRITE_CAP);
        s.writes.push((fd, n));
        match &o.obj {
            Obj::File(p) => {
                let p = p.clone();
                let at = o.off as usize;
                let data = s.files.get_mut(&p).unwrap();
                if data.len() < at + n {
                    data.resize(at + n, 0);
                }
                data[at..at + n].copy_from_slice(&buf[..n]);
                s.set_off(fd, (at + n) as u64);
            }
            Obj::Pipe(i) => {
                let i = *i;
                s.pipes[i].extend_from_slice(&buf[..n]);
            }
            Obj::Dir(_) => return Ok(Err(Errno::BadF)),
            Obj::Console => {}
        }
        Ok(Ok(n as u32))
    }
    fn lseek(&self, fd: i32, off: i64, whence: Whence) -> RpcResult<SysResult<u64>> {
        let mut s = self.st();
        let o = match s.get(fd) {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        let Obj::File(p) = &o.obj else { return Ok(Err(Errno::SPipe)) };
        let base = match whence {
            Whence::Set => 0,
            Whence::Cur => o.off as i64,
            Whence::End => s.files[p].len() as i64,
        };
        match base.checked_add(off) {
            Some(n) if n >= 0 => {
                s.set_off(fd, n as u64);
                Ok(Ok(n as u64))
            }
            _ => Ok(Err(Errno::Inval)),
        }
    }
    fn fstat(&self, fd: i32) -> RpcResult<SysResult<FStat>> {
        let s = self.st();
        let o = match s.get(fd) {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        let (kind, size) = match &o.obj {
            Obj::File(p) => (FileKind::File, s.files[p].len() as u64),
            Obj::Dir(_) => (FileKind::Dir, 0),
            Obj::Pipe(_) => (FileKind::Pipe, 0),
            Obj::Console => (FileKind::Device, 0),
        };
        Ok(Ok(FStat { kind, ino: 5, nlink: 1, size, major: 0, minor: 0 }))
    }
    fn dup(&self, fd: i32) -> RpcResult<SysResult<i32>> {
        let mut s = self.st();
        let r = s.get(fd).and_then(|o| s.install(o));
        Ok(r)
    }
    fn pipe(&self) -> RpcResult<SysResult<[i32; 2]>> {
        let mut s = self.st();
        s.pipes.push(Vec::new());
        let i = s.pipes.len() - 1;
        let r = s.install(Open { obj: Obj::Pipe(i), off: 0, read: true, write: false }).unwrap();
        let w = s.install(Open { obj: Obj::Pipe(i), off: 0, read: false, write: true }).unwrap();
        Ok(Ok([r, w]))
    }
    fn mknod(&self, _path: Path, _major: u16, _minor: u16) -> RpcResult<SysResult<()>> {
        let _s = self.st();
        Ok(Err(Errno::Exist))
    }
    fn link(&self, _old: Path, _new: Path) -> RpcResult<SysResult<()>> {
        let _s = self.st();
        Ok(Err(Errno::Perm))
    }
    fn unlink(&self, path: Path) -> RpcResult<SysResult<()>> {
        let mut s = self.st();
        Ok(s.files.remove(&path_str(&path)).map(|_| ()).ok_or(Errno::NoEnt))
    }
    fn mkdir(&self, path: Path) -> RpcResult<SysResult<()>> {
        let mut s = self.st();
        let p = path_str(&path);
        if p == "/dead" {
            return Err(RpcError::Panicked);
        }
        s.dirs.push(p);
        Ok(Ok(()))
    }
    fn chdir(&self, _path: Path) -> RpcResult<SysResult<()>> {
        let _s = self.st();
        Ok(Ok(()))
    }
    fn getcwd(&self) -> RpcResult<SysResult<Path>> {
        let _s = self.st();
        Ok(Ok(Path::new("/home").unwrap()))
    }
    /// Files under the directory `D/` as entries, `.` and `..` first, with an empty slot
    /// after every third entry.
    fn readdir(&self, fd: i32) -> RpcResult<SysResult<DirChunk>> {
        let mut s = self.st();
        let o = match s.get(fd) {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        let Obj::Dir(d) = &o.obj else { return Ok(Err(Errno::NotDir)) };
        let prefix = format!("{d}/");
        let mut names: Vec<String> = vec![".".into(), "..".into()];
        names.extend(s.files.keys().filter_map(|k| k.strip_prefix(&prefix)).map(String::from));
        let mut slots: Vec<Option<(u32, String)>> = Vec::new();
        for (i, n) in names.into_iter().enumerate() {
            slots.push(Some((i as u32 + 1, n)));
            if i % 3 == 2 {
                slots.push(None);
            }
        }
        let from = o.off as usize;
        let mut c = DirChunk { n: 0, entries: [DirEntry::default(); DIR_CHUNK], next: None };
        let end = (from + DIR_CHUNK).min(slots.len());
        for slot in slots.get(from..end).unwrap_or(&[]) {
            let mut e = DirEntry::default();
            if let Some((inum, name)) = slot {
                e.inum = *inum;
                e.name_len = name.len() as u8;
                e.name[..name.len()].copy_from_slice(name.as_bytes());
            }
            c.entries[c.n as usize] = e;
            c.n += 1;
        }
        c.next = (end < slots.len()).then_some(end as u32);
        s.set_off(fd, end as u64);
        Ok(Ok(c))
    }
    fn sync(&self) -> RpcResult<SysResult<()>> {
        Ok(Ok(()))
    }
    fn monitor(&self, _cmd: Path) -> RpcResult<SysResult<()>> {
        let _s = self.st();
        Ok(Err(Errno::Perm))
    }
}

fn not_called(_: Args) -> i32 {
    unreachable!()
}

/// The fake's state, without counting a call.
fn fake() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn calls() -> u64 {
    fake().calls
}

/// Sets the process's rv6 handle to the fake, with the console as 0, 1, 2.
fn install() {
    rref::host::HostHeap::install();
    for _ in 0..3 {
        fake().install(Open { obj: Obj::Console, off: 0, read: true, write: true }).unwrap();
    }
    let prog = ulib::__private::start((Remote::local(Box::new(Fake)), ProgArgs { pid: PID }), not_called);
    drop(prog);
}

#[test]
fn wrappers_against_a_fake_core() {
    install();
    pid_without_a_call();
    large_writes_loop_and_reads_are_capped();
    descriptors_close_on_drop();
    refused_arguments_make_no_call();
    read_dir_skips_empty_slots();
    line_reader_puts_back_the_rest_of_a_file();
    prints_are_one_write_per_call();
    pipes_and_spawn();
    ps_pages();
    rpc_errors_panic();
}

fn pid_without_a_call() {
    let before = calls();
    assert_eq!(ulib::getpid(), PID);
    assert_eq!(calls(), before);
    assert_eq!(ulib::uptime_ms(), 1234);
    assert_eq!(ulib::getcwd().unwrap(), "/home");
}

fn large_writes_loop_and_reads_are_capped() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let f = ulib::open("/big", O_CREATE | O_RDWR).unwrap();
    // One `write` moves what the core took (at most 64 KiB, here at most WRITE_CAP).
    assert_eq!(f.write(&data).unwrap(), WRITE_CAP);
    f.write_all(&data[WRITE_CAP..]).unwrap();
    assert_eq!(fake().files["/big"], data);
    assert_eq!(f.stat().unwrap().size, 200_000);
    assert_eq!(f.seek(0, Whence::Set).unwrap(), 0);
    let mut back = vec![0u8; 200_000];
    // A single read moves at most the staging buffer's 64 KiB.
    assert_eq!(f.read(&mut back).unwrap(), IO_MAX);
    assert_eq!(f.seek(0, Whence::Set).unwrap(), 0);
    assert_eq!(f.read_full(&mut back).unwrap(), 200_000);
    assert_eq!(back, data);
    assert_eq!(f.read(&mut back).unwrap(), 0);
    // Zero-copy: the caller's own buffer.
    let mut rv = RRefVec::<u8>::try_new_with(100, |_| 0).unwrap();
    f.seek(10, Whence::Set).unwrap();
    assert_eq!(f.read_rref(&mut rv, 100).unwrap(), 100);
    assert_eq!(&rv[..], &data[10..110]);
    assert_eq!(f.read_rref(&mut rv, 101), Err(Errno::Inval));
    assert_eq!(f.write_rref(&rv, 101), Err(Errno::Inval));
    assert_eq!(ulib::stat("/big").unwrap().size, 200_000);
    drop(f);
    ulib::unlink("/big").unwrap();
}

fn open_fds() -> usize {
    fake().fds.iter().filter(|f| f.is_some()).count()
}

fn descriptors_close_on_drop() {
    let base = open_fds();
    let f = ulib::open("/a", O_CREATE | O_WRONLY).unwrap();
    assert_eq!(f.raw(), 3, "the lowest free descriptor");
    let d = f.dup().unwrap();
    assert_eq!(open_fds(), base + 2);
    drop(d);
    assert_eq!(open_fds(), base + 1);
    let raw = f.into_raw();
    assert_eq!(open_fds(), base + 1, "into_raw keeps it open");
    ulib::close(raw).unwrap();
    assert_eq!(ulib::close(raw), Err(Errno::BadF));
    // `stat` opens and closes.
    ulib::stat("/a").unwrap();
    assert_eq!(open_fds(), base);
    assert_eq!(ulib::stat("/missing").unwrap_err(), Errno::NoEnt);
    let f = ulib::open("/a", O_RDONLY).unwrap();
    f.close().unwrap();
    assert_eq!(open_fds(), base);
    ulib::unlink("/a").unwrap();
}

fn refused_arguments_make_no_call() {
    let before = calls();
    let long = "x".repeat(129);
    assert_eq!(ulib::open(&long, O_RDONLY).unwrap_err(), Errno::NameTooLong);
    assert_eq!(ulib::spawn("/bin/x", &["a"; 33], FdMap::stdio()), Err(Errno::TooBig));
    assert_eq!(ulib::monitor(&long), Err(Errno::NameTooLong));
    assert_eq!(calls(), before);
}

fn read_dir_skips_empty_slots() {
    ulib::mkdir("/d").unwrap();
    let mut want = vec![".".to_string(), "..".to_string()];
    for i in 0..40 {
        let name = format!("f{i:02}");
        drop(ulib::open(&format!("/d/{name}"), O_CREATE | O_WRONLY).unwrap());
        want.push(name);
    }
    let got: Vec<String> = ulib::read_dir("/d").unwrap().map(|e| e.unwrap().name().to_string()).collect();
    assert_eq!(got, want);
    let ents: Vec<_> = ulib::read_dir("/d").unwrap().map(Result::unwrap).collect();
    assert!(ents[0].is_dot() && ents[1].is_dot() && !ents[2].is_dot());
    assert!(ents.iter().all(|e| e.inum != 0 && e.name().len() <= NAME_MAX));
    // Listing a file is an error, yielded once.
    drop(ulib::open("/plain", O_CREATE | O_WRONLY).unwrap());
    let f = ulib::open("/plain", O_RDONLY).unwrap();
    let errs: Vec<_> = ulib::read_dir_fd(f).unwrap().collect();
    assert_eq!(errs, vec![Err(Errno::NotDir)]);
}

fn line_reader_puts_back_the_rest_of_a_file() {
    let f = ulib::open("/script", O_CREATE | O_RDWR | O_TRUNC).unwrap();
    f.write_all(b"echo one\n# two\n\nlast").unwrap();
    f.seek(0, Whence::Set).unwrap();
    let mut r = LineReader::new(f.raw());
    assert_eq!(r.mode(), ulib::io::Mode::Seekable);
    let mut line = String::new();
    assert!(r.read_line(&mut line).unwrap());
    assert_eq!(line, "echo one");
    assert_eq!(f.seek(0, Whence::Cur).unwrap(), 9, "the descriptor's offset is just past the line");
    let mut rest = Vec::new();
    while r.read_line(&mut line).unwrap() {
        rest.push(line.clone());
    }
    assert_eq!(rest, ["# two", "", "last"]);
    assert_eq!(LineReader::new(0).mode(), ulib::io::Mode::Lines, "the console");
    let (pr, _pw) = ulib::pipe().unwrap();
    assert_eq!(LineReader::new(pr.raw()).mode(), ulib::io::Mode::Bytewise);
}

fn prints_are_one_write_per_call() {
    fake().writes.clear();
    ulib::println!("hello {} {}", 1, "two");
    ulib::eprint!("err");
    ulib::fprintln!(1);
    let long = "z".repeat(600);
    ulib::println!("{long}");
    let w = fake().writes.clone();
    assert_eq!(w, vec![(1, 12), (2, 3), (1, 1), (1, 256), (1, 256), (1, 89)]);
}

fn pipes_and_spawn() {
    let (r, w) = ulib::pipe().unwrap();
    w.write_all(b"through the pipe").unwrap();
    let mut b = [0u8; 64];
    let n = r.read(&mut b).unwrap();
    assert_eq!(&b[..n], b"through the pipe");
    assert_eq!(r.seek(0, Whence::Set), Err(Errno::SPipe));
    let pid = ulib::spawn("/bin/cat", &["cat", "x y", ""], FdMap::new(&[r.raw(), 1, 2]).unwrap()).unwrap();
    let (path, args, fds) = fake().spawned.last().unwrap().clone();
    assert_eq!(path, "/bin/cat");
    assert_eq!(args, ["cat", "x y", ""]);
    assert_eq!(fds.n, 3);
    assert_eq!(fds.fds[..3], [r.raw(), 1, 2]);
    let wt = ulib::wait(pid).unwrap();
    assert_eq!((wt.pid, wt.status.shell_code()), (pid, 0));
    let owned = vec![String::from("sh"), String::from("-c")];
    ulib::spawn("/bin/sh", &owned, FdMap::stdio()).unwrap();
}

fn ps_pages() {
    let rows = ulib::ps();
    assert_eq!(rows.iter().map(|r| r.pid).collect::<Vec<_>>(), (1..=40).collect::<Vec<_>>());
}

fn rpc_errors_panic() {
    let e = std::panic::catch_unwind(|| ulib::mkdir("/dead")).unwrap_err();
    let msg = e.downcast_ref::<String>().unwrap();
    assert_eq!(msg, "ulib: the rv6 core failed during mkdir: callee panicked during the call");
    let e = std::panic::catch_unwind(|| ulib::open("/dead", O_RDONLY)).unwrap_err();
    assert!(e.downcast_ref::<String>().unwrap().contains("during open: callee domain is dead"));
    // The library still works afterwards (no lock was left held).
    ulib::write_all(1, b"still alive\n").unwrap();
}
