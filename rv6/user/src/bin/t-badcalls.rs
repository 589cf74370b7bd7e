//! `t-badcalls`: system calls with bad arguments. Each must fail with the right errno —
//! never crash the core, never hurt another process. Each case prints
//! `t-badcalls: CASE: ok` or `t-badcalls: CASE: FAILED: got X, want Y`; the last line is
//! `t-badcalls: done, N failed`, and the exit status is N.
//!
//! Arguments the typed wrappers refuse by themselves (paths past `PATH_MAX`, 33
//! arguments) are sent once through the wrappers (refused without a call) and once raw
//! (`ulib::raw()`), to reach the core. Files it makes are named `/tbc.*` and removed.
//! `/bin/wrongkind` (a domain image of another kind, put there by the system's tests) is
//! skipped if missing.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::fmt::Debug;
use ulib::prelude::*;
use ulib::{call, raw, Argv, Path, RRefVec, SysResult, O_CREATE, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY, PATH_MAX};

ulib::program!(main);

struct T {
    failed: u32,
}

impl T {
    fn pass(&mut self, case: &str) {
        println!("t-badcalls: {case}: ok");
    }

    fn fail(&mut self, case: &str, why: &str) {
        println!("t-badcalls: {case}: FAILED: {why}");
        self.failed += 1;
    }

    /// `got` must be one of the errors in `want`.
    fn err<V: Debug>(&mut self, case: &str, got: SysResult<V>, want: &[Errno]) {
        match got {
            Err(e) if want.contains(&e) => self.pass(case),
            got => self.fail(case, &format!("got {got:?}, want {want:?}")),
        }
    }

    /// `got` must succeed.
    fn ok<V: Debug>(&mut self, case: &str, got: SysResult<V>) -> Option<V> {
        match got {
            Ok(v) => {
                self.pass(case);
                Some(v)
            }
            Err(e) => {
                self.fail(case, &format!("got Err({e:?}), want Ok"));
                None
            }
        }
    }

    fn check(&mut self, case: &str, cond: bool, why: &str) {
        if cond {
            self.pass(case)
        } else {
            self.fail(case, why)
        }
    }
}

/// A path of `len` (claimed) bytes, all `a` (the array holds at most `PATH_MAX`).
fn long_path(len: u16) -> Path {
    Path { len, bytes: [b'a'; PATH_MAX] }
}

fn main(_args: Args) -> i32 {
    let mut t = T { failed: 0 };
    let scratch = "/tbc.file";
    let _ = ulib::unlink(scratch);
    let Ok(f) = ulib::open(scratch, O_CREATE | O_RDWR) else {
        println!("t-badcalls: cannot create {scratch}");
        println!("t-badcalls: done, 1 failed");
        return 1;
    };
    let _ = f.write_all(b"0123456789");

    bad_descriptors(&mut t);
    closed_and_wrong_direction(&mut t, scratch);
    seeks(&mut t, &f);
    lent_lengths(&mut t, &f);
    paths(&mut t, scratch);
    argv_and_fdmap(&mut t);
    exec_formats(&mut t);
    pipes(&mut t);
    processes(&mut t);
    namespace(&mut t, scratch);
    descriptor_table(&mut t);

    drop(f);
    for p in [scratch, "/tbc.notelf", "/tbc.empty", "/tbc.dir", "/tbc.link", "/tbc.14charsxxx"] {
        let _ = ulib::unlink(p);
    }
    println!("t-badcalls: done, {} failed", t.failed);
    t.failed as i32
}

fn bad_descriptors(t: &mut T) {
    let mut buf = [0u8; 8];
    for fd in [-1, 16, 1000, i32::MIN, i32::MAX] {
        t.err(&format!("read fd {fd}"), ulib::read(fd, &mut buf), &[Errno::BadF]);
        t.err(&format!("write fd {fd}"), ulib::write(fd, b"x"), &[Errno::BadF]);
        t.err(&format!("close fd {fd}"), ulib::close(fd), &[Errno::BadF]);
        t.err(&format!("fstat fd {fd}"), ulib::fstat(fd), &[Errno::BadF]);
        t.err(&format!("lseek fd {fd}"), ulib::lseek(fd, 0, Whence::Set), &[Errno::BadF]);
        t.err(&format!("dup fd {fd}"), ulib::dup(fd).map(Fd::into_raw), &[Errno::BadF]);
        t.err(&format!("readdir fd {fd}"), call("readdir", raw().readdir(fd)).map(|c| c.n), &[Errno::BadF]);
    }
}

fn closed_and_wrong_direction(t: &mut T, scratch: &str) {
    let mut buf = [0u8; 8];
    if let Ok(f) = ulib::open(scratch, O_RDONLY) {
        let fd = f.into_raw();
        t.ok("close an open descriptor", ulib::close(fd));
        t.err("read a closed descriptor", ulib::read(fd, &mut buf), &[Errno::BadF]);
        t.err("close a closed descriptor", ulib::close(fd), &[Errno::BadF]);
    }
    match ulib::open(scratch, O_RDONLY) {
        Ok(f) => t.err("write a read-only descriptor", f.write(b"x"), &[Errno::BadF]),
        Err(e) => t.fail("open read-only", e.as_str()),
    }
    match ulib::open(scratch, O_WRONLY) {
        Ok(f) => t.err("read a write-only descriptor", f.read(&mut buf), &[Errno::BadF]),
        Err(e) => t.fail("open write-only", e.as_str()),
    }
    t.err("open with unknown flag bits", ulib::open(scratch, 0x10_0000).map(Fd::into_raw), &[Errno::Inval]);
    t.err("open with every bit set", ulib::open(scratch, u32::MAX).map(Fd::into_raw), &[Errno::Inval]);
}

fn seeks(t: &mut T, f: &Fd) {
    t.err("lseek to -1", f.seek(-1, Whence::Set), &[Errno::Inval]);
    let _ = f.seek(0, Whence::Set);
    t.err("lseek by -1000 from 0", f.seek(-1000, Whence::Cur), &[Errno::Inval]);
    t.err("lseek to End + i64::MIN", f.seek(i64::MIN, Whence::End), &[Errno::Inval]);
    match f.seek(i64::MAX, Whence::Set) {
        Ok(_) | Err(Errno::Inval) | Err(Errno::FBig) => t.pass("lseek to i64::MAX"),
        Err(e) => t.fail("lseek to i64::MAX", &format!("got {e:?}")),
    }
    if f.seek(i64::MAX, Whence::Set).is_ok() {
        t.err("lseek past i64::MAX", f.seek(i64::MAX, Whence::Cur), &[Errno::Inval, Errno::FBig]);
    }
    let size = f.stat().map(|s| s.size).unwrap_or(0);
    match f.seek(1 << 40, Whence::Set) {
        Ok(_) => {
            t.err("write at 1 TiB", f.write(b"x"), &[Errno::FBig, Errno::Inval]);
            let mut b = [0u8; 4];
            match f.read(&mut b) {
                Ok(0) | Err(Errno::Inval) => t.pass("read at 1 TiB"),
                got => t.fail("read at 1 TiB", &format!("got {got:?}, want Ok(0)")),
            }
            let after = f.stat().map(|s| s.size).unwrap_or(u64::MAX);
            t.check("failed write leaves the size", after == size, &format!("size {size} became {after}"));
        }
        Err(e) => t.fail("lseek to 1 TiB (past the end is allowed)", e.as_str()),
    }
    let _ = f.seek(0, Whence::Set);
    match ulib::pipe() {
        Ok((r, _w)) => t.err("lseek on a pipe", r.seek(0, Whence::Set), &[Errno::SPipe]),
        Err(e) => t.fail("pipe", e.as_str()),
    }
    if matches!(ulib::fstat(0), Ok(s) if s.kind == FileKind::Device) {
        t.err("lseek on the console", ulib::lseek(0, 0, Whence::Cur), &[Errno::SPipe]);
    }
}

fn lent_lengths(t: &mut T, f: &Fd) {
    let Some(mut small) = RRefVec::<u8>::try_new_with(16, |_| 0) else {
        t.fail("allocate an RRefVec", "shared heap exhausted");
        return;
    };
    let _ = f.seek(0, Whence::Set);
    match f.read_rref(&mut small, 17) {
        Ok(n) if n <= 16 => t.pass("read len past the buffer"),
        Err(Errno::Inval) => t.pass("read len past the buffer"),
        got => t.fail("read len past the buffer", &format!("got {got:?}")),
    }
    match f.read_rref(&mut small, u32::MAX as usize) {
        Ok(n) if n <= 16 => t.pass("read len u32::MAX"),
        Err(Errno::Inval) => t.pass("read len u32::MAX"),
        got => t.fail("read len u32::MAX", &format!("got {got:?}")),
    }
    let size = f.stat().map(|s| s.size).unwrap_or(0);
    t.err("write len past the buffer", f.write_rref(&small, 17), &[Errno::Inval]);
    t.err("write len u32::MAX", f.write_rref(&small, u32::MAX as usize), &[Errno::Inval]);
    let after = f.stat().map(|s| s.size).unwrap_or(u64::MAX);
    t.check("refused writes leave the size", after == size, &format!("size {size} became {after}"));
    t.ok("write len 0", f.write_rref(&small, 0));
    if let Some(mut empty) = RRefVec::<u8>::try_new_with(0, |_| 0) {
        match f.read_rref(&mut empty, 0) {
            Ok(0) => t.pass("read into an empty buffer"),
            got => t.fail("read into an empty buffer", &format!("got {got:?}")),
        }
    }
}

fn paths(t: &mut T, scratch: &str) {
    let p129 = "a".repeat(129);
    t.err("open a 129-byte path (ulib)", ulib::open(&p129, O_RDONLY).map(Fd::into_raw), &[Errno::NameTooLong]);
    for len in [129u16, 1000, u16::MAX] {
        let p = long_path(len);
        t.err(&format!("open a {len}-byte path"), call("open", raw().open(p, O_RDONLY)), &[Errno::NameTooLong]);
        t.err(&format!("open+create a {len}-byte path"), call("open", raw().open(p, O_CREATE | O_RDWR)), &[Errno::NameTooLong]);
        t.err(&format!("mkdir a {len}-byte path"), call("mkdir", raw().mkdir(p)), &[Errno::NameTooLong]);
        t.err(&format!("unlink a {len}-byte path"), call("unlink", raw().unlink(p)), &[Errno::NameTooLong]);
        t.err(&format!("chdir a {len}-byte path"), call("chdir", raw().chdir(p)), &[Errno::NameTooLong]);
        t.err(&format!("mknod a {len}-byte path"), call("mknod", raw().mknod(p, 1, 0)), &[Errno::NameTooLong]);
        let good = Path::new(scratch).unwrap();
        t.err(&format!("link to a {len}-byte path"), call("link", raw().link(good, p)), &[Errno::NameTooLong]);
        t.err(&format!("link from a {len}-byte path"), call("link", raw().link(p, good)), &[Errno::NameTooLong]);
        t.err(
            &format!("spawn a {len}-byte path"),
            call("spawn", raw().spawn(p, Argv::new(&["x"]).unwrap(), FdMap::stdio())),
            &[Errno::NameTooLong],
        );
    }
    // 128 bytes of short components: not too long, just missing.
    let mut p128 = String::from("/");
    while p128.len() + 2 <= 128 {
        p128.push_str("a/");
    }
    p128.push('a');
    p128.truncate(128);
    t.err("open a 128-byte path of short names", ulib::open(&p128, O_RDONLY).map(Fd::into_raw), &[Errno::NoEnt]);
    t.err("open the empty path", ulib::open("", O_RDONLY).map(Fd::into_raw), &[Errno::NoEnt, Errno::Inval]);

    let n15 = "/tbc.15charsxxxx"; // 15 bytes after the slash
    t.err("create a 15-byte name", ulib::open(n15, O_CREATE | O_RDWR).map(Fd::into_raw), &[Errno::NameTooLong]);
    t.err("mkdir a 15-byte name", ulib::mkdir(n15), &[Errno::NameTooLong]);
    t.err("mknod a 15-byte name", ulib::mknod(n15, 1, 0), &[Errno::NameTooLong]);
    t.err("link to a 15-byte name", ulib::link(scratch, n15), &[Errno::NameTooLong]);
    t.err("15-byte directory in a path", ulib::open("/tbc.15charsxxxx/f", O_RDONLY).map(Fd::into_raw), &[Errno::NameTooLong, Errno::NoEnt]);
    let n14 = "/tbc.14charsxxx";
    t.ok("create a 14-byte name", ulib::open(n14, O_CREATE | O_RDWR).map(Fd::into_raw).and_then(ulib::close));
    t.ok("unlink a 14-byte name", ulib::unlink(n14));
}

fn argv_and_fdmap(t: &mut T) {
    let many = ["x"; 33];
    t.err("spawn with 33 arguments (ulib)", ulib::spawn("/bin/echo", &many, FdMap::stdio()), &[Errno::TooBig]);
    let big = "x".repeat(2000);
    t.err("spawn with 2000 argument bytes (ulib)", ulib::spawn("/bin/echo", &[big.as_str()], FdMap::stdio()), &[Errno::TooBig]);

    let echo = Path::new("/bin/echo").unwrap();
    let mut a33 = Argv::new(&["x"; 32]).unwrap();
    a33.argc = 33;
    let r = call("spawn", raw().spawn(echo, a33, FdMap::stdio()));
    reap_if_spawned(&r);
    t.err("spawn with argc 33", r, &[Errno::TooBig, Errno::Inval]);
    let mut a2000 = Argv::new(&["echo"]).unwrap();
    a2000.len = 2000;
    let r = call("spawn", raw().spawn(echo, a2000, FdMap::stdio()));
    reap_if_spawned(&r);
    t.err("spawn with argv len 2000", r, &[Errno::TooBig, Errno::Inval]);

    let mut m9 = FdMap::stdio();
    m9.n = 9;
    let r = call("spawn", raw().spawn(echo, Argv::new(&["echo"]).unwrap(), m9));
    reap_if_spawned(&r);
    t.err("spawn with a 9-entry fd map", r, &[Errno::TooBig, Errno::Inval]);
    let r = ulib::spawn("/bin/echo", &["echo"], FdMap::new(&[0, 1, 1000]).unwrap());
    reap_if_spawned(&r);
    t.err("spawn with fd 1000 in the map", r, &[Errno::BadF]);
    let r = ulib::spawn("/bin/echo", &["echo"], FdMap::new(&[0, 1, 9]).unwrap());
    reap_if_spawned(&r);
    t.err("spawn with a closed fd in the map", r, &[Errno::BadF]);
    // All of the child's descriptors closed: allowed; echo's output goes nowhere.
    match ulib::spawn("/bin/echo", &["echo", "lost"], FdMap::new(&[-1, -1, -1]).unwrap()) {
        Ok(pid) => match ulib::wait(pid) {
            Ok(w) => t.check("spawn with no descriptors", w.status.shell_code() == 0, &format!("status {:?}", w.status)),
            Err(e) => t.fail("spawn with no descriptors", &format!("wait: {}", e.as_str())),
        },
        Err(e) => t.fail("spawn with no descriptors", e.as_str()),
    }
}

/// A spawn that should have failed but did not: reap the child so it does not linger.
fn reap_if_spawned(r: &SysResult<i32>) {
    if let Ok(pid) = r {
        let _ = ulib::wait(*pid);
    }
}

fn exec_formats(t: &mut T) {
    match ulib::open("/tbc.notelf", O_CREATE | O_TRUNC | O_WRONLY) {
        Ok(f) => {
            let _ = f.write_all(b"#!/bin/sh\necho this is not an ELF image\n");
        }
        Err(e) => t.fail("create /tbc.notelf", e.as_str()),
    }
    let r = ulib::spawn("/tbc.notelf", &["notelf"], FdMap::stdio());
    reap_if_spawned(&r);
    t.err("spawn a text file", r, &[Errno::NoExec]);
    drop(ulib::open("/tbc.empty", O_CREATE | O_TRUNC | O_WRONLY));
    let r = ulib::spawn("/tbc.empty", &["empty"], FdMap::stdio());
    reap_if_spawned(&r);
    t.err("spawn an empty file", r, &[Errno::NoExec]);
    let r = ulib::spawn("/bin", &["bin"], FdMap::stdio());
    reap_if_spawned(&r);
    t.err("spawn a directory", r, &[Errno::NoExec, Errno::IsDir, Errno::Perm]);
    let r = ulib::spawn("/bin/nosuchprog", &["x"], FdMap::stdio());
    reap_if_spawned(&r);
    t.err("spawn a missing file", r, &[Errno::NoEnt]);
    if ulib::stat("/bin/wrongkind").is_ok() {
        let r = ulib::spawn("/bin/wrongkind", &["wrongkind"], FdMap::stdio());
        reap_if_spawned(&r);
        t.err("spawn a domain of another kind", r, &[Errno::NoExec]);
    } else {
        println!("t-badcalls: spawn a domain of another kind: skipped (no /bin/wrongkind)");
    }
}

fn pipes(t: &mut T) {
    let Ok((r, w)) = ulib::pipe() else {
        t.fail("pipe", "no pipe");
        return;
    };
    let mut b = [0u8; 4];
    t.err("read a pipe's write end", w.read(&mut b), &[Errno::BadF]);
    t.err("write a pipe's read end", r.write(b"x"), &[Errno::BadF]);
    t.err("readdir a pipe", call("readdir", raw().readdir(r.raw())).map(|c| c.n), &[Errno::NotDir, Errno::BadF]);
    drop(r);
    t.err("write a pipe without reader", w.write(b"x"), &[Errno::Pipe]);
    t.err("write a pipe without reader again", w.write(&[7u8; 5000]), &[Errno::Pipe]);
    drop(w);
    // A reader whose writers are gone sees the end.
    if let Ok((r, w)) = ulib::pipe() {
        let _ = w.write(b"ab");
        drop(w);
        let mut b = [0u8; 8];
        let first = r.read(&mut b);
        let second = r.read(&mut b);
        t.check("read a pipe after its writer closed", first == Ok(2) && second == Ok(0), &format!("got {first:?} then {second:?}"));
    }
}

fn processes(t: &mut T) {
    t.err("wait without children", ulib::wait(-1).map(|w| w.pid), &[Errno::Child]);
    t.err("wait for a non-child", ulib::wait(99_999).map(|w| w.pid), &[Errno::Child]);
    t.err("wait for itself", ulib::wait(ulib::getpid()).map(|w| w.pid), &[Errno::Child]);
    t.err("wait for pid -5", ulib::wait(-5).map(|w| w.pid), &[Errno::Child, Errno::Inval]);
    t.err("kill a missing pid", ulib::kill(99_999), &[Errno::Srch]);
    t.err("kill pid -7", ulib::kill(-7), &[Errno::Srch, Errno::Inval]);
    t.ok("sleep 0 ms", ulib::sleep_ms(0));
    let rows = ulib::ps();
    t.check("ps shows this process", rows.iter().any(|r| r.pid == ulib::getpid()), "not listed");
    let far = call("ps", raw().ps(i32::MAX));
    t.check("ps from i32::MAX", far.n == 0, &format!("{} rows", far.n));
    let neg = call("ps", raw().ps(-100));
    t.check("ps from -100", (neg.n as usize) <= neg.rows.len(), &format!("n {}", neg.n));
}

fn namespace(t: &mut T, scratch: &str) {
    t.err("unlink /", ulib::unlink("/"), &[Errno::Perm, Errno::NotEmpty, Errno::Inval]);
    t.err("unlink .", ulib::unlink("."), &[Errno::Perm, Errno::NotEmpty, Errno::Inval]);
    t.err("unlink ..", ulib::unlink(".."), &[Errno::Perm, Errno::NotEmpty, Errno::Inval]);
    t.check("the root is still there", ulib::stat("/bin").is_ok() && ulib::stat(scratch).is_ok(), "lost /bin or the scratch file");
    t.err("unlink a missing file", ulib::unlink("/tbc.missing"), &[Errno::NoEnt]);
    t.err("open a directory for writing", ulib::open("/", O_WRONLY).map(Fd::into_raw), &[Errno::IsDir]);
    t.err("open a directory read-write", ulib::open("/", O_RDWR).map(Fd::into_raw), &[Errno::IsDir]);
    t.err("create over a directory", ulib::open("/bin", O_CREATE | O_RDWR).map(Fd::into_raw), &[Errno::IsDir, Errno::Exist]);
    if let Ok(d) = ulib::open("/", O_RDONLY) {
        t.err("write a directory", d.write(b"x"), &[Errno::BadF, Errno::IsDir]);
    }
    if let Ok(f) = ulib::open(scratch, O_RDONLY) {
        t.err("readdir a file", call("readdir", raw().readdir(f.raw())).map(|c| c.n), &[Errno::NotDir]);
    }
    t.err("chdir to a file", ulib::chdir(scratch), &[Errno::NotDir]);
    t.err("chdir to a missing directory", ulib::chdir("/tbc.missing"), &[Errno::NoEnt]);
    t.err("path through a file", ulib::open("/tbc.file/x", O_RDONLY).map(Fd::into_raw), &[Errno::NotDir, Errno::NoEnt]);
    t.err("mkdir an existing name", ulib::mkdir(scratch), &[Errno::Exist]);
    t.err("mkdir in a missing directory", ulib::mkdir("/tbc.missing/d"), &[Errno::NoEnt]);
    t.err("mknod an existing name", ulib::mknod(scratch, 1, 0), &[Errno::Exist]);
    t.err("link a directory", ulib::link("/bin", "/tbc.link"), &[Errno::Perm]);
    t.err("link a missing file", ulib::link("/tbc.missing", "/tbc.link"), &[Errno::NoEnt]);
    t.err("link over an existing name", ulib::link(scratch, scratch), &[Errno::Exist]);
    if t.ok("mkdir /tbc.dir", ulib::mkdir("/tbc.dir")).is_some() {
        let _ = ulib::open("/tbc.dir/f", O_CREATE | O_WRONLY);
        t.err("unlink a non-empty directory", ulib::unlink("/tbc.dir"), &[Errno::NotEmpty]);
        let _ = ulib::unlink("/tbc.dir/f");
        t.ok("unlink an empty directory", ulib::unlink("/tbc.dir"));
    }
    t.ok("getcwd", ulib::getcwd());
}

fn descriptor_table(t: &mut T) {
    let mut held = Vec::new();
    let mut result = Ok(());
    for _ in 0..=ulib::NOFILE {
        match ulib::dup(1) {
            Ok(fd) => held.push(fd),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let n = held.len();
    t.err("dup until the table is full", result, &[Errno::MFile]);
    t.check("the table holds at most NOFILE", n + 3 <= ulib::NOFILE, &format!("{n} dups besides 0, 1, 2"));
    t.err("open with a full table", ulib::open("/", O_RDONLY).map(Fd::into_raw), &[Errno::MFile]);
    t.err("pipe with a full table", ulib::pipe().map(|(r, w)| (r.into_raw(), w.into_raw())), &[Errno::MFile]);
    drop(held);
    t.ok("dup after closing them", ulib::dup(1));
}
