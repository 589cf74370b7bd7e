//! `usertests [NAME...]`: the file-system and pipe tests of xv6's usertests, rewritten
//! for rv6 (spawn instead of fork).
//!
//! Every test runs in the scratch directory `/utdir` (made at the start, emptied after
//! each test, removed at the end), so it never touches other files and leaves the disk as
//! it found it. Each prints `usertests: NAME: ok` or `usertests: NAME: FAILED: reason`;
//! the last line is `usertests: ALL TESTS PASSED` or `usertests: N FAILED`, and the exit
//! status is the number of failures. `usertests NAME...` runs only those.
//!
//! Where xv6 forks, a test spawns `/bin/usertests --child NAME ARG...` (the child changes
//! to `/utdir` itself), passing descriptors through the spawn's descriptor map: the
//! child's 0, 1, 2 are the parent's, its 3 is whatever the test shares (a pipe's write
//! end, a file). A child exits 0 on success, else prints why and exits 1.
//!
//! Differences from xv6: names longer than 14 bytes are refused (`NameTooLong`), not cut
//! (`fourteen`); a write past the end of a file succeeds and fills the gap with zeros
//! (`truncate2`; xv6 fails it); sizes do not assume xv6's small MAXFILE (`writebig` 300 KiB, `bigfile`
//! 2 MB); `iref` nests 35 directories (the working directory's path must stay within
//! PATH_MAX); `concreate` and `linkunlink` race one child against the parent over the
//! whole loop rather than one child per name; `diskfull` writes 64 KiB requests until
//! `NoSpc` and `outofinodes` creates empty files until `NoSpc`, both removing everything
//! afterwards and checking the space came back.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;
use ulib::{ExitKind, RRefVec, SysResult, IO_MAX, O_CREATE, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY};

ulib::program!(main);

/// The scratch directory.
const DIR: &str = "/utdir";
/// This program, for children.
const SELF: &str = "/bin/usertests";

type R = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

/// `r`'s value, or the failure `what: errno`.
fn ck<T>(what: &str, r: SysResult<T>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {}", e.as_str()))
}

/// `r` must be an error.
fn fails<T>(what: &str, r: SysResult<T>) -> R {
    match r {
        Ok(_) => Err(format!("{what} succeeded")),
        Err(_) => Ok(()),
    }
}

/// `r` must be the error `want`.
fn fails_with<T>(what: &str, r: SysResult<T>, want: Errno) -> R {
    match r {
        Ok(_) => Err(format!("{what} succeeded")),
        Err(e) if e == want => Ok(()),
        Err(e) => Err(format!("{what}: {} (want {})", e.as_str(), want.as_str())),
    }
}

fn create(name: &str) -> Result<Fd, String> {
    ck(&format!("create {name}"), ulib::open(name, O_CREATE | O_RDWR | O_TRUNC))
}

fn write_exact(fd: &Fd, b: &[u8], what: &str) -> R {
    let n = ck(what, fd.write(b))?;
    ensure!(n == b.len(), "{what}: wrote {n} of {}", b.len());
    Ok(())
}

/// Spawns `usertests --child ARGS...` with 0, 1, 2 and then `extra` as its descriptors.
fn spawn_child(args: &[&str], extra: &[i32]) -> Result<i32, String> {
    let mut argv = vec!["usertests", "--child"];
    argv.extend_from_slice(args);
    let mut fds = vec![0, 1, 2];
    fds.extend_from_slice(extra);
    let map = FdMap::new(&fds).map_err(|e| format!("fd map: {}", e.as_str()))?;
    ck(&format!("spawn child {}", args.join(" ")), ulib::spawn(SELF, &argv, map))
}

/// Waits for child `pid`, which must exit 0.
fn wait_ok(pid: i32) -> R {
    let w = ck(&format!("wait {pid}"), ulib::wait(pid))?;
    ensure!(
        w.status.kind == ExitKind::Exited && w.status.code == 0,
        "child {pid} ended {:?}",
        w.status
    );
    Ok(())
}

struct Case {
    name: &'static str,
    run: fn() -> R,
}

const CASES: &[Case] = &[
    Case { name: "opentest", run: opentest },
    Case { name: "writetest", run: writetest },
    Case { name: "writebig", run: writebig },
    Case { name: "createtest", run: createtest },
    Case { name: "dirtest", run: dirtest },
    Case { name: "pipe1", run: pipe1 },
    Case { name: "sharedfd", run: sharedfd },
    Case { name: "fourfiles", run: fourfiles },
    Case { name: "createdelete", run: createdelete },
    Case { name: "unlinkread", run: unlinkread },
    Case { name: "linktest", run: linktest },
    Case { name: "concreate", run: concreate },
    Case { name: "linkunlink", run: linkunlink },
    Case { name: "subdir", run: subdir },
    Case { name: "bigwrite", run: bigwrite },
    Case { name: "bigfile", run: bigfile },
    Case { name: "fourteen", run: fourteen },
    Case { name: "rmdot", run: rmdot },
    Case { name: "dirfile", run: dirfile },
    Case { name: "iref", run: iref },
    Case { name: "truncate1", run: truncate1 },
    Case { name: "truncate2", run: truncate2 },
    Case { name: "truncate3", run: truncate3 },
    Case { name: "bigdir", run: bigdir },
    Case { name: "diskfull", run: diskfull },
    Case { name: "outofinodes", run: outofinodes },
];

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    if argv.get(1) == Some(&"--child") {
        return child(&argv[2..]);
    }
    let wanted = &argv[1.min(argv.len())..];
    for w in wanted {
        if !CASES.iter().any(|c| c.name == *w) {
            eprintln!("usertests: no test {w}; tests:");
            for c in CASES {
                eprint!(" {}", c.name);
            }
            eprintln!();
            return 1;
        }
    }
    if let Err(e) = ulib::mkdir(DIR) {
        if e != Errno::Exist {
            println!("usertests: cannot make {DIR}: {}", e.as_str());
            println!("usertests: 1 FAILED");
            return 1;
        }
    }
    let _ = clean(DIR);
    println!("usertests starting");
    let mut failed = 0;
    for c in CASES.iter().filter(|c| wanted.is_empty() || wanted.contains(&c.name)) {
        let r = ulib::chdir(DIR).map_err(|e| format!("chdir {DIR}: {}", e.as_str())).and_then(|()| (c.run)());
        // Children a failed test left: wait for them (each ends by itself).
        while ulib::wait(-1).is_ok() {}
        let _ = ulib::chdir(DIR);
        let left = clean(DIR);
        match r {
            Ok(()) => println!("usertests: {}: ok", c.name),
            Err(why) => {
                println!("usertests: {}: FAILED: {why}", c.name);
                failed += 1;
            }
        }
        if let Err(e) = left {
            println!("usertests: {}: note: cleaning {DIR}: {e}", c.name);
        }
    }
    let _ = ulib::chdir("/");
    if let Err(e) = ulib::unlink(DIR) {
        println!("usertests: note: removing {DIR}: {}", e.as_str());
    }
    if failed == 0 {
        println!("usertests: ALL TESTS PASSED");
    } else {
        println!("usertests: {failed} FAILED");
    }
    failed
}

/// Removes everything under directory `dir` (not `dir` itself).
fn clean(dir: &str) -> Result<(), String> {
    let mut names = Vec::new();
    for e in ck(&format!("read_dir {dir}"), ulib::read_dir(dir))? {
        let e = ck(&format!("read_dir {dir}"), e)?;
        if !e.is_dot() {
            names.push(String::from(e.name()));
        }
    }
    for n in names {
        let p = format!("{dir}/{n}");
        if matches!(ulib::stat(&p), Ok(s) if s.kind == FileKind::Dir) {
            clean(&p)?;
        }
        ck(&format!("unlink {p}"), ulib::unlink(&p))?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------
// Children

fn child(args: &[&str]) -> i32 {
    let name = args.first().copied().unwrap_or("");
    let arg = |i: usize| args.get(i).and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
    let r = ck("chdir", ulib::chdir(DIR)).and_then(|()| match name {
        "pipe1" => child_pipe1(),
        "sharedfd" => child_sharedfd(),
        "fourfiles" => fourfiles_write(arg(1)),
        "createdelete" => createdelete_run(arg(1)),
        "concreate" => concreate_phase(arg(1), true),
        "linkunlink" => linkunlink_run(arg(1)),
        "truncate3" => child_truncate3(),
        _ => Err(format!("unknown child {name}")),
    });
    match r {
        Ok(()) => 0,
        Err(e) => {
            println!("usertests: child {name}: {e}");
            1
        }
    }
}

// ------------------------------------------------------------------------------------
// The tests

fn opentest() -> R {
    ck("open /bin/echo", ulib::open("/bin/echo", O_RDONLY))?;
    fails_with("open doesnotexist", ulib::open("doesnotexist", O_RDONLY), Errno::NoEnt)
}

/// xv6's "small file" test: 100 × two 10-byte writes, read back.
fn writetest() -> R {
    const N: usize = 100;
    let fd = create("small")?;
    for i in 0..N {
        write_exact(&fd, b"aaaaaaaaaa", &format!("write a #{i}"))?;
        write_exact(&fd, b"bbbbbbbbbb", &format!("write b #{i}"))?;
    }
    drop(fd);
    let fd = ck("open small", ulib::open("small", O_RDONLY))?;
    let mut buf = vec![0u8; N * 20 + 10];
    let n = ck("read small", fd.read_full(&mut buf))?;
    ensure!(n == N * 20, "read {n} bytes, want {}", N * 20);
    for (i, chunk) in buf[..n].chunks(10).enumerate() {
        let want = if i % 2 == 0 { b'a' } else { b'b' };
        ensure!(chunk.iter().all(|&c| c == want), "chunk {i} is wrong");
    }
    drop(fd);
    ck("unlink small", ulib::unlink("small"))
}

/// 300 blocks of 1 KiB, each starting with its number.
fn writebig() -> R {
    const NB: u32 = 300;
    let fd = create("big")?;
    let mut buf = vec![0u8; 1024];
    for i in 0..NB {
        buf[..4].copy_from_slice(&i.to_le_bytes());
        buf[4] = i as u8;
        write_exact(&fd, &buf, &format!("write block {i}"))?;
    }
    drop(fd);
    let fd = ck("open big", ulib::open("big", O_RDONLY))?;
    for i in 0..NB {
        let n = ck(&format!("read block {i}"), fd.read_full(&mut buf))?;
        ensure!(n == 1024, "read only {n} bytes of block {i}");
        let got = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        ensure!(got == i && buf[4] == i as u8, "block {i} holds {got}");
    }
    let n = ck("read at the end", fd.read(&mut buf))?;
    ensure!(n == 0, "{n} bytes past the end");
    drop(fd);
    ck("unlink big", ulib::unlink("big"))
}

fn createtest() -> R {
    const N: usize = 52;
    for i in 0..N {
        create(&format!("c{i}"))?;
    }
    for i in 0..N {
        ck(&format!("unlink c{i}"), ulib::unlink(&format!("c{i}")))?;
    }
    Ok(())
}

fn dirtest() -> R {
    ck("mkdir dir0", ulib::mkdir("dir0"))?;
    ck("chdir dir0", ulib::chdir("dir0"))?;
    ck("chdir ..", ulib::chdir(".."))?;
    ck("unlink dir0", ulib::unlink("dir0"))
}

const PIPE1_N: usize = 5;
const PIPE1_SZ: usize = 1033;

/// A child writes numbered bytes into a pipe; the parent reads them in growing chunks.
fn pipe1() -> R {
    let (r, w) = ck("pipe", ulib::pipe())?;
    let pid = spawn_child(&["pipe1"], &[w.raw()])?;
    drop(w);
    let mut buf = vec![0u8; 8192];
    let (mut seq, mut total, mut cc) = (0usize, 0usize, 1usize);
    loop {
        let n = ck("read", r.read(&mut buf[..cc]))?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            ensure!(b == (seq & 0xff) as u8, "byte {seq} is {b}");
            seq += 1;
        }
        total += n;
        cc = (cc * 2).min(buf.len());
    }
    ensure!(total == PIPE1_N * PIPE1_SZ, "read {total} bytes, want {}", PIPE1_N * PIPE1_SZ);
    drop(r);
    wait_ok(pid)
}

fn child_pipe1() -> R {
    let mut seq = 0usize;
    let mut buf = vec![0u8; PIPE1_SZ];
    for _ in 0..PIPE1_N {
        for b in buf.iter_mut() {
            *b = (seq & 0xff) as u8;
            seq += 1;
        }
        ck("write pipe", ulib::write_all(3, &buf))?;
    }
    Ok(())
}

const SHARED_N: usize = 1000;

/// Parent and child write through one open file (one offset): nothing is overwritten.
fn sharedfd() -> R {
    let fd = create("sharedfd")?;
    let pid = spawn_child(&["sharedfd"], &[fd.raw()])?;
    for i in 0..SHARED_N {
        write_exact(&fd, b"pppppppppp", &format!("parent write #{i}"))?;
    }
    wait_ok(pid)?;
    drop(fd);
    let fd = ck("open sharedfd", ulib::open("sharedfd", O_RDONLY))?;
    let (mut nc, mut np) = (0, 0);
    let mut buf = vec![0u8; 4096];
    loop {
        let n = ck("read", fd.read(&mut buf))?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            match b {
                b'c' => nc += 1,
                b'p' => np += 1,
                other => return Err(format!("unexpected byte {other}")),
            }
        }
    }
    ensure!(nc == SHARED_N * 10 && np == SHARED_N * 10, "{nc} c and {np} p, want {} each", SHARED_N * 10);
    drop(fd);
    ck("unlink", ulib::unlink("sharedfd"))
}

fn child_sharedfd() -> R {
    for i in 0..SHARED_N {
        let n = ck(&format!("child write #{i}"), ulib::write(3, b"cccccccccc"))?;
        ensure!(n == 10, "child wrote {n} of 10");
    }
    Ok(())
}

const FOUR_N: usize = 12;
const FOUR_SZ: usize = 500;

/// Four children write four files at once.
fn fourfiles() -> R {
    let mut pids = Vec::new();
    for i in 0..4u32 {
        let _ = ulib::unlink(&format!("f{i}"));
        pids.push(spawn_child(&["fourfiles", &format!("{i}")], &[])?);
    }
    for pid in pids {
        wait_ok(pid)?;
    }
    let mut buf = vec![0u8; 4096];
    for i in 0..4u32 {
        let name = format!("f{i}");
        let fd = ck(&format!("open {name}"), ulib::open(&name, O_RDONLY))?;
        let mut total = 0;
        loop {
            let n = ck("read", fd.read(&mut buf))?;
            if n == 0 {
                break;
            }
            ensure!(buf[..n].iter().all(|&c| c == b'0' + i as u8), "{name} holds a wrong byte");
            total += n;
        }
        ensure!(total == FOUR_N * FOUR_SZ, "{name} has {total} bytes, want {}", FOUR_N * FOUR_SZ);
        drop(fd);
        ck(&format!("unlink {name}"), ulib::unlink(&name))?;
    }
    Ok(())
}

fn fourfiles_write(i: u32) -> R {
    let fd = create(&format!("f{i}"))?;
    let buf = vec![b'0' + i as u8; FOUR_SZ];
    for j in 0..FOUR_N {
        write_exact(&fd, &buf, &format!("write #{j}"))?;
    }
    Ok(())
}

const CD_N: u32 = 20;

/// Four children each create 20 files and delete some while the others do the same.
fn createdelete() -> R {
    let mut pids = Vec::new();
    for pi in 0..4u32 {
        pids.push(spawn_child(&["createdelete", &format!("{pi}")], &[])?);
    }
    for pid in pids {
        wait_ok(pid)?;
    }
    for i in 0..CD_N {
        for pi in 0..4u32 {
            let name = cd_name(pi, i);
            let exists = ulib::open(&name, O_RDONLY).is_ok();
            if i == 0 || i >= CD_N / 2 {
                ensure!(exists, "{name} does not exist");
            } else {
                ensure!(!exists, "{name} exists");
            }
        }
    }
    for i in 0..CD_N {
        for pi in 0..4u32 {
            let _ = ulib::unlink(&cd_name(pi, i));
        }
    }
    Ok(())
}

fn cd_name(pi: u32, i: u32) -> String {
    format!("{}{i}", (b'p' + pi as u8) as char)
}

fn createdelete_run(pi: u32) -> R {
    for i in 0..CD_N {
        create(&cd_name(pi, i))?;
        if i > 0 && i % 2 == 0 {
            let old = cd_name(pi, i / 2);
            ck(&format!("unlink {old}"), ulib::unlink(&old))?;
        }
    }
    Ok(())
}

/// An unlinked file stays readable and writable through a descriptor open on it.
fn unlinkread() -> R {
    let fd = create("unlinkread")?;
    write_exact(&fd, b"hello", "write hello")?;
    drop(fd);
    let fd = ck("open", ulib::open("unlinkread", O_RDWR))?;
    ck("unlink", ulib::unlink("unlinkread"))?;
    let fd1 = create("unlinkread")?;
    write_exact(&fd1, b"yyy", "write yyy")?;
    drop(fd1);
    let mut buf = [0u8; 16];
    let n = ck("read the unlinked file", fd.read(&mut buf))?;
    ensure!(&buf[..n] == b"hello", "read {:?}, want hello", core::str::from_utf8(&buf[..n]));
    write_exact(&fd, &[b'z'; 10], "write the unlinked file")?;
    drop(fd);
    let fd = ck("open the new file", ulib::open("unlinkread", O_RDONLY))?;
    let n = ck("read the new file", fd.read(&mut buf))?;
    ensure!(&buf[..n] == b"yyy", "the new file holds {:?}", core::str::from_utf8(&buf[..n]));
    drop(fd);
    ck("unlink", ulib::unlink("unlinkread"))
}

fn linktest() -> R {
    let _ = ulib::unlink("lf1");
    let _ = ulib::unlink("lf2");
    let fd = create("lf1")?;
    write_exact(&fd, b"hello", "write")?;
    drop(fd);
    ck("link lf1 lf2", ulib::link("lf1", "lf2"))?;
    ck("unlink lf1", ulib::unlink("lf1"))?;
    fails_with("open lf1 after unlink", ulib::open("lf1", O_RDONLY), Errno::NoEnt)?;
    let fd = ck("open lf2", ulib::open("lf2", O_RDONLY))?;
    let mut buf = [0u8; 16];
    let n = ck("read lf2", fd.read(&mut buf))?;
    ensure!(&buf[..n] == b"hello", "lf2 holds {:?}", core::str::from_utf8(&buf[..n]));
    drop(fd);
    fails_with("link lf2 lf2", ulib::link("lf2", "lf2"), Errno::Exist)?;
    ck("unlink lf2", ulib::unlink("lf2"))?;
    fails_with("link a missing file", ulib::link("lf2", "lf1"), Errno::NoEnt)?;
    fails("link . lf1", ulib::link(".", "lf1"))
}

const CONC_N: u32 = 40;

fn conc_name(i: u32) -> String {
    format!("C{i}")
}

/// The parent and a child create (or link) the same 40 names at once; every name must
/// be there once. Then they open and unlink them at once; none may remain.
fn concreate() -> R {
    // C0 is the link source: it exists throughout phase 1.
    create(&conc_name(0))?;
    let pid = spawn_child(&["concreate", "1"], &[])?;
    let mine = concreate_phase(1, false);
    wait_ok(pid)?;
    mine?;

    let mut seen = vec![false; CONC_N as usize];
    for e in ck("read_dir .", ulib::read_dir("."))? {
        let e = ck("read_dir .", e)?;
        if let Some(num) = e.name().strip_prefix('C') {
            let i = num.parse::<usize>().map_err(|_| format!("unexpected entry {}", e.name()))?;
            ensure!(i < seen.len(), "unexpected entry {}", e.name());
            ensure!(!seen[i], "{} listed twice", e.name());
            seen[i] = true;
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(format!("C{i} is missing"));
    }

    let pid = spawn_child(&["concreate", "2"], &[])?;
    let mine = concreate_phase(2, false);
    wait_ok(pid)?;
    mine?;
    for e in ck("read_dir .", ulib::read_dir("."))? {
        let e = ck("read_dir .", e)?;
        ensure!(!e.name().starts_with('C'), "{} is still there", e.name());
    }
    Ok(())
}

fn concreate_phase(phase: u32, child: bool) -> R {
    for i in 0..CONC_N {
        let f = conc_name(i);
        if phase == 1 {
            if i != 0 {
                let _ = ulib::unlink(&f);
            }
            let link = if child { i % 5 == 1 } else { i % 3 == 1 };
            if link {
                let _ = ulib::link("C0", &f);
            } else {
                ck(&format!("create {f}"), ulib::open(&f, O_CREATE | O_RDWR))?;
            }
        } else if (i % 3 == 0 && child) || (i % 3 == 1 && !child) {
            for _ in 0..4 {
                let _ = ulib::open(&f, O_RDONLY);
            }
        } else {
            for _ in 0..4 {
                let _ = ulib::unlink(&f);
            }
        }
    }
    Ok(())
}

/// Parent and child link, unlink and create one name at random; nothing may break.
fn linkunlink() -> R {
    let _ = ulib::unlink("x");
    create("lu.src")?;
    let pid = spawn_child(&["linkunlink", "1"], &[])?;
    let mine = linkunlink_run(97);
    wait_ok(pid)?;
    mine?;
    let _ = ulib::unlink("x");
    ck("unlink lu.src", ulib::unlink("lu.src"))
}

fn linkunlink_run(seed: u32) -> R {
    let mut x = seed;
    for _ in 0..100 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        match x % 3 {
            0 => drop(ulib::open("x", O_RDWR | O_CREATE)),
            1 => drop(ulib::link("lu.src", "x")),
            _ => drop(ulib::unlink("x")),
        }
    }
    Ok(())
}

fn subdir() -> R {
    let _ = ulib::unlink("ff");
    ck("mkdir dd", ulib::mkdir("dd"))?;
    let fd = create("dd/ff")?;
    write_exact(&fd, b"ff", "write dd/ff")?;
    drop(fd);
    fails_with("unlink non-empty dd", ulib::unlink("dd"), Errno::NotEmpty)?;
    ck("mkdir dd/dd (absolute)", ulib::mkdir(&format!("{DIR}/dd/dd")))?;
    let fd = create("dd/dd/ff")?;
    write_exact(&fd, b"FF", "write dd/dd/ff")?;
    drop(fd);
    let fd = ck("open dd/dd/../ff", ulib::open("dd/dd/../ff", O_RDONLY))?;
    let mut buf = [0u8; 16];
    let n = ck("read dd/dd/../ff", fd.read(&mut buf))?;
    ensure!(&buf[..n] == b"ff", "dd/dd/../ff holds {:?}", core::str::from_utf8(&buf[..n]));
    drop(fd);
    ck("link dd/dd/ff dd/dd/ffff", ulib::link("dd/dd/ff", "dd/dd/ffff"))?;
    ck("unlink dd/dd/ff", ulib::unlink("dd/dd/ff"))?;
    fails_with("open unlinked dd/dd/ff", ulib::open("dd/dd/ff", O_RDONLY), Errno::NoEnt)?;
    ck("chdir dd", ulib::chdir("dd"))?;
    ck("chdir dd/../../dd", ulib::chdir("dd/../../dd"))?;
    // `..` of the root is the root.
    ck("chdir through the root's ..", ulib::chdir(&format!("../../../../..{DIR}/dd")))?;
    ck("chdir ./..", ulib::chdir("./.."))?;
    let cwd = ck("getcwd", ulib::getcwd())?;
    ensure!(cwd == DIR, "cwd is {cwd}, want {DIR}");
    let fd = ck("open dd/dd/ffff", ulib::open("dd/dd/ffff", O_RDONLY))?;
    let n = ck("read dd/dd/ffff", fd.read(&mut buf))?;
    ensure!(&buf[..n] == b"FF", "dd/dd/ffff holds {:?}", core::str::from_utf8(&buf[..n]));
    drop(fd);
    fails("open dd/dd/ff", ulib::open("dd/dd/ff", O_RDONLY))?;
    fails("create dd/ff/ff", ulib::open("dd/ff/ff", O_CREATE | O_RDWR))?;
    fails("create dd/xx/ff", ulib::open("dd/xx/ff", O_CREATE | O_RDWR))?;
    fails("open dd with O_CREATE", ulib::open("dd", O_CREATE))?;
    fails("open dd read-write", ulib::open("dd", O_RDWR))?;
    fails("open dd write-only", ulib::open("dd", O_WRONLY))?;
    fails("link dd/ff/ff dd/dd/xx", ulib::link("dd/ff/ff", "dd/dd/xx"))?;
    fails("link dd/xx/ff dd/dd/xx", ulib::link("dd/xx/ff", "dd/dd/xx"))?;
    fails("link dd/ff dd/dd/ffff", ulib::link("dd/ff", "dd/dd/ffff"))?;
    fails("mkdir dd/ff/ff", ulib::mkdir("dd/ff/ff"))?;
    fails("mkdir dd/xx/ff", ulib::mkdir("dd/xx/ff"))?;
    fails("mkdir dd/dd/ffff", ulib::mkdir("dd/dd/ffff"))?;
    fails("unlink dd/xx/ff", ulib::unlink("dd/xx/ff"))?;
    fails("unlink dd/ff/ff", ulib::unlink("dd/ff/ff"))?;
    fails("chdir dd/ff", ulib::chdir("dd/ff"))?;
    fails("chdir dd/xx", ulib::chdir("dd/xx"))?;
    ck("unlink dd/dd/ffff", ulib::unlink("dd/dd/ffff"))?;
    ck("unlink dd/ff", ulib::unlink("dd/ff"))?;
    fails_with("unlink non-empty dd", ulib::unlink("dd"), Errno::NotEmpty)?;
    ck("unlink dd/dd", ulib::unlink("dd/dd"))?;
    ck("unlink dd", ulib::unlink("dd"))
}

/// Writes of many sizes, twice each, into a fresh file.
fn bigwrite() -> R {
    let buf = vec![b'w'; 12 * 1024];
    let mut sz = 499;
    while sz < 12 * 1024 {
        let fd = create("bigwrite")?;
        for i in 0..2 {
            write_exact(&fd, &buf[..sz], &format!("write {sz} bytes #{i}"))?;
        }
        drop(fd);
        ck("unlink bigwrite", ulib::unlink("bigwrite"))?;
        sz += 471;
    }
    Ok(())
}

/// 2 MB in 40 writes of 50,000 bytes, read back in halves.
fn bigfile() -> R {
    const N: usize = 40;
    const SZ: usize = 50_000;
    let mut buf = vec![0u8; SZ];
    let fd = create("bigfile")?;
    for i in 0..N {
        buf.fill(i as u8);
        write_exact(&fd, &buf, &format!("write #{i}"))?;
    }
    drop(fd);
    let fd = ck("open bigfile", ulib::open("bigfile", O_RDONLY))?;
    let mut total = 0;
    loop {
        let n = ck(&format!("read at {total}"), fd.read_full(&mut buf[..SZ / 2]))?;
        if n == 0 {
            break;
        }
        ensure!(n == SZ / 2, "short read of {n} at {total}");
        let want = (total / SZ) as u8;
        ensure!(buf[..n].iter().all(|&b| b == want), "wrong bytes at {total}");
        total += n;
    }
    ensure!(total == N * SZ, "read {total} bytes, want {}", N * SZ);
    drop(fd);
    ck("unlink bigfile", ulib::unlink("bigfile"))
}

/// Names of exactly 14 bytes work at every level; 15 bytes are refused (xv6 cut them).
fn fourteen() -> R {
    let n14 = "12345678901234";
    let n15 = "123456789012345";
    ck("mkdir 14", ulib::mkdir(n14))?;
    ck("mkdir 14/14", ulib::mkdir(&format!("{n14}/{n14}")))?;
    create(&format!("{n14}/{n14}/{n14}"))?;
    ck("open 14/14/14", ulib::open(&format!("{n14}/{n14}/{n14}"), O_RDONLY))?;
    fails_with("mkdir 14/14 again", ulib::mkdir(&format!("{n14}/{n14}")), Errno::Exist)?;
    fails_with("mkdir 14/15", ulib::mkdir(&format!("{n14}/{n15}")), Errno::NameTooLong)?;
    fails_with("create 15/14", ulib::open(&format!("{n15}/{n14}"), O_CREATE | O_RDWR), Errno::NameTooLong)?;
    fails_with("create 14/14/15", ulib::open(&format!("{n14}/{n14}/{n15}"), O_CREATE | O_RDWR), Errno::NameTooLong)?;
    ck("unlink 14/14/14", ulib::unlink(&format!("{n14}/{n14}/{n14}")))?;
    ck("unlink 14/14", ulib::unlink(&format!("{n14}/{n14}")))?;
    ck("unlink 14", ulib::unlink(n14))
}

fn rmdot() -> R {
    ck("mkdir dots", ulib::mkdir("dots"))?;
    ck("chdir dots", ulib::chdir("dots"))?;
    fails("unlink .", ulib::unlink("."))?;
    fails("unlink ..", ulib::unlink(".."))?;
    ck("chdir back", ulib::chdir(DIR))?;
    fails("unlink dots/.", ulib::unlink("dots/."))?;
    fails("unlink dots/..", ulib::unlink("dots/.."))?;
    ck("unlink dots", ulib::unlink("dots"))
}

/// A file used as a directory fails everywhere; `.` cannot be written.
fn dirfile() -> R {
    create("dirfile")?;
    fails("chdir dirfile", ulib::chdir("dirfile"))?;
    fails("open dirfile/xx", ulib::open("dirfile/xx", O_RDONLY))?;
    fails("create dirfile/xx", ulib::open("dirfile/xx", O_CREATE | O_RDWR))?;
    fails("mkdir dirfile/xx", ulib::mkdir("dirfile/xx"))?;
    fails("unlink dirfile/xx", ulib::unlink("dirfile/xx"))?;
    fails("link dirfile dirfile/xx", ulib::link("dirfile", "dirfile/xx"))?;
    ck("unlink dirfile", ulib::unlink("dirfile"))?;
    fails("open . read-write", ulib::open(".", O_RDWR))?;
    let fd = ck("open .", ulib::open(".", O_RDONLY))?;
    fails("write .", fd.write(b"x"))
}

/// Nested directories with failing empty-name calls at every level (xv6 checks that
/// failed lookups give their inode references back).
fn iref() -> R {
    const DEPTH: usize = 35;
    create("iref.src")?;
    let src = format!("{DIR}/iref.src");
    for i in 0..DEPTH {
        ck(&format!("mkdir level {i}"), ulib::mkdir("ir"))?;
        ck(&format!("chdir level {i}"), ulib::chdir("ir"))?;
        fails("mkdir \"\"", ulib::mkdir(""))?;
        fails("link to \"\"", ulib::link(&src, ""))?;
        fails("create \"\"", ulib::open("", O_CREATE | O_RDWR))?;
        create("xx")?;
        ck("unlink xx", ulib::unlink("xx"))?;
    }
    for i in 0..DEPTH {
        ck(&format!("chdir .. at level {}", DEPTH - i), ulib::chdir(".."))?;
        ck(&format!("unlink level {}", DEPTH - i - 1), ulib::unlink("ir"))?;
    }
    let cwd = ck("getcwd", ulib::getcwd())?;
    ensure!(cwd == DIR, "back at {cwd}, want {DIR}");
    ck("unlink iref.src", ulib::unlink("iref.src"))
}

/// Truncation is seen by descriptors opened before and after it.
fn truncate1() -> R {
    let _ = ulib::unlink("truncfile");
    let fd1 = ck("create", ulib::open("truncfile", O_CREATE | O_WRONLY | O_TRUNC))?;
    write_exact(&fd1, b"abcd", "write abcd")?;
    drop(fd1);
    let mut buf = [0u8; 32];
    let fd2 = ck("open fd2", ulib::open("truncfile", O_RDONLY))?;
    let n = ck("read fd2", fd2.read(&mut buf))?;
    ensure!(n == 4, "read {n} bytes, want 4");
    let fd1 = ck("open with O_TRUNC", ulib::open("truncfile", O_WRONLY | O_TRUNC))?;
    let fd3 = ck("open fd3", ulib::open("truncfile", O_RDONLY))?;
    let n = ck("read fd3", fd3.read(&mut buf))?;
    ensure!(n == 0, "fd3 read {n} bytes of a truncated file");
    let n = ck("read fd2", fd2.read(&mut buf))?;
    ensure!(n == 0, "fd2 read {n} bytes of a truncated file");
    write_exact(&fd1, b"abcdef", "write abcdef")?;
    let n = ck("read fd3", fd3.read(&mut buf))?;
    ensure!(n == 6, "fd3 read {n} bytes, want 6");
    let n = ck("read fd2", fd2.read(&mut buf))?;
    ensure!(n == 2, "fd2 read {n} bytes, want 2");
    ck("unlink", ulib::unlink("truncfile"))
}

/// A write through a descriptor whose file another open truncated: its offset is now
/// past the end. xv6 fails such writes; rv6 is POSIX here (the gap reads as zeros).
fn truncate2() -> R {
    let _ = ulib::unlink("truncfile");
    let fd1 = ck("create", ulib::open("truncfile", O_CREATE | O_TRUNC | O_WRONLY))?;
    write_exact(&fd1, b"abcd", "write abcd")?;
    let fd2 = ck("open with O_TRUNC", ulib::open("truncfile", O_TRUNC | O_WRONLY))?;
    write_exact(&fd1, b"x", "write past the end")?;
    drop((fd1, fd2));
    let fd = ck("open", ulib::open("truncfile", O_RDONLY))?;
    let mut buf = [0xffu8; 16];
    let n = ck("read", fd.read_full(&mut buf))?;
    ensure!(&buf[..n] == b"\0\0\0\0x", "the file holds {:?}, want 4 zeros and x", &buf[..n]);
    drop(fd);
    ck("unlink", ulib::unlink("truncfile"))
}

/// A child writes and reads while the parent truncates over and over.
fn truncate3() -> R {
    drop(create("truncfile")?);
    let pid = spawn_child(&["truncate3"], &[])?;
    let mut r = Ok(());
    for i in 0..150 {
        let fd = match ulib::open("truncfile", O_CREATE | O_WRONLY | O_TRUNC) {
            Ok(fd) => fd,
            Err(e) => {
                r = Err(format!("open #{i}: {}", e.as_str()));
                break;
            }
        };
        if let Err(e) = write_exact(&fd, b"xxx", &format!("write #{i}")) {
            r = Err(e);
            break;
        }
    }
    let child = wait_ok(pid);
    r?;
    child?;
    ck("unlink", ulib::unlink("truncfile"))
}

fn child_truncate3() -> R {
    let mut buf = [0u8; 32];
    for i in 0..100 {
        let fd = ck(&format!("open #{i}"), ulib::open("truncfile", O_WRONLY))?;
        write_exact(&fd, b"1234567890", &format!("write #{i}"))?;
        drop(fd);
        let fd = ck(&format!("open for reading #{i}"), ulib::open("truncfile", O_RDONLY))?;
        ck(&format!("read #{i}"), fd.read(&mut buf))?;
    }
    Ok(())
}

/// 500 links to one file in one directory, then all removed.
fn bigdir() -> R {
    const N: u32 = 500;
    create("bd")?;
    for i in 0..N {
        ck(&format!("link bd x{i}"), ulib::link("bd", &format!("x{i}")))?;
    }
    let st = ck("stat bd", ulib::stat("bd"))?;
    ensure!(st.nlink as u32 == N + 1, "bd has {} links, want {}", st.nlink, N + 1);
    ck("unlink bd", ulib::unlink("bd"))?;
    for i in 0..N {
        ck(&format!("unlink x{i}"), ulib::unlink(&format!("x{i}")))?;
    }
    Ok(())
}

/// Bytes written before giving up on filling the disk (a disk this test runs on is far
/// smaller).
const DISKFULL_MAX: u64 = 512 << 20;
/// One file takes at most this much before the next is started.
const DISKFULL_FILE: u64 = 16 << 20;

/// Fills the disk until `NoSpc`, checks the file system still answers, removes
/// everything and checks the space is back.
fn diskfull() -> R {
    let mut buf = RRefVec::<u8>::try_new_with(IO_MAX, |i| i as u8).ok_or("shared heap exhausted")?;
    let mut files: Vec<String> = Vec::new();
    let mut total = 0u64;
    let r = fill(&mut buf, &mut files, &mut total);
    // Whatever happened: remove it all.
    let mut cleanup = Ok(());
    for f in &files {
        if let Err(e) = ulib::unlink(f) {
            if cleanup.is_ok() {
                cleanup = Err(format!("unlink {f}: {}", e.as_str()));
            }
        }
    }
    r?;
    cleanup?;
    ck("sync", ulib::sync())?;
    // The space is back: 1 MiB fits again (the disk was full before the cleanup).
    let fd = create("dfcheck")?;
    for i in 0..16 {
        let n = ck(&format!("write after cleanup #{i}"), fd.write_rref(&buf, IO_MAX))?;
        ensure!(n == IO_MAX, "short write after cleanup: {n}");
    }
    drop(fd);
    ck("unlink dfcheck", ulib::unlink("dfcheck"))?;
    ensure!(total > 0, "nothing could be written");
    Ok(())
}

fn fill(buf: &mut RRefVec<u8>, files: &mut Vec<String>, total: &mut u64) -> R {
    let mut full = false;
    while !full {
        ensure!(*total < DISKFULL_MAX, "no NoSpc after {} MiB", *total >> 20);
        let name = format!("df{}", files.len());
        let fd = match ulib::open(&name, O_CREATE | O_WRONLY) {
            Ok(fd) => fd,
            // No inode or directory block left: as full as it gets.
            Err(Errno::NoSpc) => break,
            Err(e) => return Err(format!("create {name}: {}", e.as_str())),
        };
        files.push(name.clone());
        let mut size = 0u64;
        while size < DISKFULL_FILE {
            match fd.write_rref(buf, IO_MAX) {
                Ok(0) => return Err(format!("write to {name} moved nothing")),
                Ok(n) => {
                    size += n as u64;
                    *total += n as u64;
                }
                Err(Errno::NoSpc) => {
                    full = true;
                    break;
                }
                Err(Errno::FBig) => break,
                Err(e) => return Err(format!("write to {name} at {size}: {}", e.as_str())),
            }
        }
        if full {
            // Use up what is left a block at a time.
            for _ in 0..1024 {
                match fd.write_rref(buf, 1024) {
                    Ok(n) if n > 0 => *total += n as u64,
                    Err(Errno::NoSpc) => break,
                    other => return Err(format!("small write to a full disk: {other:?}")),
                }
            }
        }
    }
    // The file system answers on a full disk: lookups, reads, a new name (may fail with
    // NoSpc, nothing else), a directory (the same).
    let st = ck("stat df0", ulib::stat("df0"))?;
    ensure!(st.size > 0, "df0 is empty");
    let fd = ck("open df0", ulib::open("df0", O_RDONLY))?;
    let n = ck("read df0 on a full disk", fd.read_rref(buf, IO_MAX))?;
    ensure!(n > 0 && buf[1] == 1 && buf[255] == 255, "df0 reads back wrong");
    match ulib::open("dfx", O_CREATE | O_WRONLY) {
        Ok(fd) => {
            files.push(String::from("dfx"));
            match fd.write(b"x") {
                Ok(_) | Err(Errno::NoSpc) => {}
                Err(e) => return Err(format!("write dfx on a full disk: {}", e.as_str())),
            }
        }
        Err(Errno::NoSpc) => {}
        Err(e) => return Err(format!("create dfx on a full disk: {}", e.as_str())),
    }
    match ulib::mkdir("dfdir") {
        Ok(()) => ck("rmdir dfdir", ulib::unlink("dfdir"))?,
        Err(Errno::NoSpc) => {}
        Err(e) => return Err(format!("mkdir on a full disk: {}", e.as_str())),
    }
    Ok(())
}

/// Files created before giving up on running out of inodes.
const INODES_MAX: u32 = 20_000;

/// Creates empty files until `NoSpc`, removes them, checks a file can be made again.
fn outofinodes() -> R {
    let mut n = 0u32;
    let mut r = Ok(());
    loop {
        if n >= INODES_MAX {
            r = Err(format!("no NoSpc after {n} files"));
            break;
        }
        match ulib::open(&format!("z{n}"), O_CREATE | O_RDWR) {
            Ok(_) => n += 1,
            Err(Errno::NoSpc) => break,
            Err(e) => {
                r = Err(format!("create z{n}: {}", e.as_str()));
                break;
            }
        }
    }
    for i in 0..n {
        if let Err(e) = ulib::unlink(&format!("z{i}")) {
            if r.is_ok() {
                r = Err(format!("unlink z{i}: {}", e.as_str()));
            }
        }
    }
    r?;
    ensure!(n > 0, "not a single file could be created");
    create("zcheck")?;
    ck("unlink zcheck", ulib::unlink("zcheck"))
}
