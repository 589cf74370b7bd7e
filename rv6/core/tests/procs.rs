//! The process table: spawn, exit, wait, kill, reparenting, the nproc bound, pid 1's
//! restart, `ps`, and that everything a process held is given back.

mod common;

use common::*;
use frond_interface::fs::IO_MAX;
use frond_interface::rv6::*;
use frond_rv6core::{read_image, Core, Poll, Usage};
use std::sync::atomic::Ordering::SeqCst;

fn reaped(p: SysResult<Poll<Waited>>) -> Waited {
    match p {
        Ok(Poll::Ready(w)) => w,
        other => panic!("expected a reaped child, got {other:?}"),
    }
}

#[test]
fn wait_reaps_zombies_and_says_child_when_there_are_none() {
    let mut w = World::new(8);
    assert_eq!(w.wait(1, -1), Err(Errno::Child));
    let a = w.spawn(1);
    let b = w.spawn(1);
    assert!(a > 1 && b > a);
    assert_eq!(w.wait(1, -1), Ok(Poll::Block));
    w.end(b, 3);
    let got = reaped(w.wait(1, -1));
    assert_eq!((got.pid, got.status), (b, ExitStatus::exited(3)));
    // A specific child.
    assert_eq!(w.wait(1, a), Ok(Poll::Block));
    assert_eq!(w.wait(1, b), Err(Errno::Child), "already reaped");
    w.end(a, 0);
    assert_eq!(reaped(w.wait(1, a)).pid, a);
    assert_eq!(w.wait(1, -1), Err(Errno::Child));
    // Not one's own child; bad targets.
    let c = w.spawn(1);
    let gc = w.spawn(c);
    assert_eq!(w.wait(1, gc), Err(Errno::Child));
    assert_eq!(w.wait(1, 0), Err(Errno::Inval));
    assert_eq!(w.wait(1, -5), Err(Errno::Inval));
    assert_eq!(w.wait(99, -1), Err(Errno::Srch));
    // Zombies stay in the table (and count) until reaped.
    w.end(gc, 1);
    assert_eq!(w.core.usage().procs, 3);
    assert_eq!(reaped(w.wait(c, -1)).status, ExitStatus::exited(1));
    assert_eq!(w.core.usage().procs, 2);
}

#[test]
fn orphans_are_reparented_to_pid_1_which_reaps_them() {
    let mut w = World::new(8);
    let parent = w.spawn(1);
    let kid1 = w.spawn(parent);
    let kid2 = w.spawn(parent);
    let grandkid = w.spawn(kid1);
    w.end(kid2, 7);
    // The parent ends without waiting: its children (a zombie among them) become pid 1's.
    w.end(parent, 0);
    let ps = w.core.ps(0);
    let ppid = |pid| ps.rows[..ps.n as usize].iter().find(|r| r.pid == pid).unwrap().ppid;
    assert_eq!((ppid(kid1), ppid(kid2), ppid(grandkid)), (1, 1, kid1));
    let mut got = [reaped(w.wait(1, -1)), reaped(w.wait(1, -1))];
    got.sort_by_key(|g| g.pid);
    assert_eq!(got.iter().map(|g| g.pid).collect::<Vec<_>>(), vec![parent, kid2]);
    assert_eq!(got[1].status, ExitStatus::exited(7));
    assert_eq!(w.wait(1, -1), Ok(Poll::Block), "kid1 is still running");
    w.end(kid1, 0);
    assert_eq!(reaped(w.wait(1, -1)).pid, kid1);
    w.end(grandkid, 0);
    assert_eq!(reaped(w.wait(1, grandkid)).pid, grandkid);
    assert_eq!(w.wait(1, -1), Err(Errno::Child));
    assert_eq!(w.core.usage().procs, 1);
}

#[test]
fn exit_records_its_code_over_the_killed_status() {
    let mut w = World::new(8);
    let c = w.spawn(1);
    let id = w.core.exit(c, 42).expect("running, with a domain");
    assert_eq!(w.core.pid_of(id), Some(c));
    // The kernel reports the exit's kill as Killed.
    w.core.ended(&w.fs, c, ExitStatus::killed());
    assert_eq!(reaped(w.wait(1, c)).status, ExitStatus::exited(42));
    // A kill without exit stays Killed; a crash keeps its message.
    let k = w.spawn(1);
    w.core.ended(&w.fs, k, ExitStatus::killed());
    assert_eq!(reaped(w.wait(1, k)).status.kind, ExitKind::Killed);
    let k = w.spawn(1);
    w.core.ended(&w.fs, k, ExitStatus::crashed("index out of bounds"));
    let st = reaped(w.wait(1, k)).status;
    assert_eq!((st.kind, st.message(), st.shell_code()), (ExitKind::Crashed, "index out of bounds", 134));
}

#[test]
fn kill_marks_returns_the_domain_and_spares_zombies() {
    let mut w = World::new(8);
    let c = w.spawn(1);
    assert!(!w.core.killed(c));
    let id = w.core.kill(c).unwrap().unwrap();
    assert_eq!(w.core.pid_of(id), Some(c));
    assert!(w.core.killed(c));
    assert_eq!(w.core.kill(99), Err(Errno::Srch));
    w.core.ended(&w.fs, c, ExitStatus::killed());
    assert_eq!(w.core.kill(c), Ok(None), "a zombie");
    assert_eq!(reaped(w.wait(1, c)).status.shell_code(), 137);
    assert_eq!(w.core.kill(c), Err(Errno::Srch));
    // pid 1 may be killed too.
    assert!(w.core.kill(1).unwrap().is_some());
}

#[test]
fn an_ended_or_vanished_process_counts_as_killed() {
    // Threads of a program whose main returned may still be blocked in the core (sleep,
    // console): they must end too.
    let mut w = World::new(8);
    let c = w.spawn(1);
    w.end(c, 0);
    assert!(w.core.killed(c), "a zombie");
    reaped(w.wait(1, c));
    assert!(w.core.killed(c), "reaped");
    assert!(w.core.killed(12345), "never existed");
    assert!(!w.core.killed(1));
}

#[test]
fn a_full_table_is_again_before_anything_else() {
    let mut w = World::new(2);
    let _c = w.spawn(1);
    assert_eq!(w.core.spawn(&w.fs, 1, &path("/bin/nope"), &FdMap::new(&[9]).unwrap()), Err(Errno::Again));
}

#[test]
fn callers_are_known_only_while_running() {
    let mut w = World::new(8);
    let e = w.core.spawn(&w.fs, 1, &path("/bin/prog"), &FdMap::stdio()).unwrap();
    let id = fake_id();
    assert_eq!(w.core.pid_of(id), None, "an embryo's domain is not known yet");
    w.core.spawn_loaded(&w.fs, e.pid, id);
    assert_eq!(w.core.pid_of(id), Some(e.pid));
    assert_eq!(w.core.pid_of(ProcId { domain: id.domain, generation: id.generation + 1 }), None, "another generation");
    w.end(e.pid, 0);
    assert_eq!(w.core.pid_of(id), None, "a zombie makes no calls");
}

#[test]
fn spawn_checks_the_program_and_the_descriptor_map() {
    let mut w = World::new(8);
    let fs = &w.fs;
    let map = FdMap::stdio();
    assert_eq!(w.core.spawn(fs, 1, &path("/bin/nope"), &map), Err(Errno::NoEnt));
    assert_eq!(w.core.spawn(fs, 1, &path("/bin"), &map), Err(Errno::IsDir));
    fs.put("/empty", b"");
    assert_eq!(w.core.spawn(fs, 1, &path("/empty"), &map), Err(Errno::NoExec));
    w.core.mknod(fs, 1, &path("/dev"), CONSOLE_MAJOR, 0).unwrap();
    assert_eq!(w.core.spawn(fs, 1, &path("/dev"), &map), Err(Errno::NoExec));
    assert_eq!(w.core.spawn(fs, 1, &path(""), &map), Err(Errno::NoEnt));
    assert_eq!(w.core.spawn(fs, 1, &path("/bin/prog"), &FdMap::new(&[0, 5]).unwrap()), Err(Errno::BadF));
    assert_eq!(w.core.spawn(fs, 1, &path("/bin/prog"), &FdMap::new(&[-2]).unwrap()), Err(Errno::BadF));
    assert_eq!(w.core.spawn(fs, 1, &path("/bin/prog"), &FdMap::new(&[NOFILE as i32]).unwrap()), Err(Errno::BadF));
    assert_eq!(w.core.spawn(fs, 1, &path("/bin/prog"), &FdMap { n: 9, fds: [0; FDMAP_MAX] }), Err(Errno::TooBig));
    assert_eq!(w.core.spawn(fs, 99, &path("/bin/prog"), &map), Err(Errno::Srch));
    assert_eq!(w.core.usage().procs, 1, "nothing was left behind");
    // An image past IMAGE_MAX is refused before reading.
    assert_eq!(read_image(fs, 2, IMAGE_MAX as u32 + 1).err(), Some(Errno::NoExec));
    // The name is the path's last component.
    let e = w.core.spawn(fs, 1, &path("/bin/prog"), &FdMap::new(&[]).unwrap()).unwrap();
    assert_eq!(e.name.as_str(), "prog");
    assert_eq!(e.size as usize, PROG.len());
    w.core.spawn_abort(fs, e.pid);
}

#[test]
fn read_image_reads_a_large_program_exactly() {
    let mut w = World::new(8);
    let img: Vec<u8> = (0..5 * IO_MAX / 2 + 3).map(|i| (i * 13 % 256) as u8).collect();
    w.fs.put("/bin/big", &img);
    let e = w.core.spawn(&w.fs, 1, &path("/bin/big"), &FdMap::stdio()).unwrap();
    let got = read_image(&w.fs, e.ino, e.size).unwrap();
    assert_eq!(&got[..], &img[..]);
    // A program that shrank while being read is not loaded.
    assert_eq!(read_image(&w.fs, e.ino, e.size + 1).err(), Some(Errno::NoExec));
    // A crash of the fs the proxy could not hide.
    w.fs.fail_next.store(1, SeqCst);
    assert_eq!(read_image(&w.fs, e.ino, e.size).err(), Some(Errno::Io));
    w.core.spawn_abort(&w.fs, e.pid);
}

#[test]
fn a_failed_load_leaves_nothing_behind() {
    let mut w = World::new(8);
    let base = w.core.usage();
    let [r, wr] = w.core.pipe(1).unwrap();
    let with_pipe = w.core.usage();
    let e = w.core.spawn(&w.fs, 1, &path("/bin/prog"), &FdMap::new(&[r, wr, 1]).unwrap()).unwrap();
    assert_eq!(w.core.usage().inodes, 1, "the program is in use while it loads");
    assert_eq!(w.wait(1, -1), Ok(Poll::Block));
    w.core.spawn_abort(&w.fs, e.pid);
    assert!(w.core.take_wake());
    assert_eq!(w.wait(1, -1), Err(Errno::Child), "the parent never sees it");
    assert_eq!(w.core.usage(), with_pipe);
    // The pipe's ends are still the parent's alone.
    w.close(1, r).unwrap();
    assert_eq!(w.write(1, wr, b"x"), Err(Errno::Pipe));
    w.close(1, wr).unwrap();
    assert_eq!(w.core.usage(), base);
}

#[test]
fn a_program_unlinked_while_loading_is_released_after() {
    let mut w = World::new(8);
    let free0 = w.fs.free_inodes();
    w.fs.put("/bin/tmp", PROG);
    let e = w.core.spawn(&w.fs, 1, &path("/bin/tmp"), &FdMap::stdio()).unwrap();
    w.core.unlink(&w.fs, 1, &path("/bin/tmp")).unwrap();
    assert_eq!(w.fs.unlink_keeps.load(SeqCst), 1);
    let img = read_image(&w.fs, e.ino, e.size).unwrap();
    assert_eq!(&img[..], PROG);
    assert_eq!(w.fs.free_inodes(), free0 - 1);
    w.core.spawn_loaded(&w.fs, e.pid, fake_id());
    assert_eq!(w.fs.free_inodes(), free0);
}

#[test]
fn a_kill_during_the_load_is_reported_when_it_is_loaded() {
    let mut w = World::new(8);
    let e = w.core.spawn(&w.fs, 1, &path("/bin/prog"), &FdMap::stdio()).unwrap();
    assert_eq!(w.core.kill(e.pid), Ok(None), "no domain yet");
    assert!(w.core.spawn_loaded(&w.fs, e.pid, fake_id()), "killed: the caller kills the domain");
}

#[test]
fn nproc_bounds_the_table_and_a_fork_bomb_ends_in_again() {
    let nproc = 10;
    let mut w = World::new(nproc);
    let base = w.core.usage();
    let base_inodes = w.fs.free_inodes();
    // A chain of programs each spawning the next, each with a pipe and an open file.
    let mut pids = vec![1];
    loop {
        let parent = *pids.last().unwrap();
        match w.spawn_fds(parent, "/bin/prog", FdMap::stdio()) {
            Ok(p) => {
                w.core.pipe(p).unwrap();
                w.open(p, &format!("/tmp{p}"), O_CREATE | O_RDWR).unwrap();
                pids.push(p);
            }
            Err(e) => {
                assert_eq!(e, Errno::Again);
                break;
            }
        }
    }
    assert_eq!(pids.len(), nproc as usize);
    // Every process is refused now, pid 1 included; nothing was left by the refusals.
    let full = w.core.usage();
    for &p in &pids {
        assert_eq!(w.spawn_fds(p, "/bin/prog", FdMap::stdio()), Err(Errno::Again));
    }
    assert_eq!(w.core.usage(), full);
    // The rest of the system works: pid 1 still opens, pipes, writes.
    let fd = w.open(1, "/still", O_CREATE | O_RDWR).unwrap();
    assert_eq!(w.write(1, fd, b"ok"), Ok(2));
    w.close(1, fd).unwrap();
    // The bomb ends (innermost first, each unreaped: all reparented to 1).
    for &p in pids[1..].iter().rev() {
        w.end(p, 0);
    }
    let mut n = 0;
    while let Ok(Poll::Ready(_)) = w.wait(1, -1) {
        n += 1;
    }
    assert_eq!(n, pids.len() - 1);
    assert_eq!(w.core.usage(), base, "every table is back at its level");
    for &p in &pids[1..] {
        w.core.unlink(&w.fs, 1, &path(&format!("/tmp{p}"))).unwrap();
    }
    w.core.unlink(&w.fs, 1, &path("/still")).unwrap();
    assert_eq!(w.fs.free_inodes(), base_inodes);
    // And spawning works again.
    assert!(w.spawn_fds(1, "/bin/prog", FdMap::stdio()).is_ok());
}

#[test]
fn a_slot_is_kept_for_pid_1() {
    let mut w = World::new(4);
    let a = w.spawn(1);
    let b = w.spawn(a);
    let c = w.spawn(b);
    assert_eq!(w.spawn_fds(c, "/bin/prog", FdMap::stdio()), Err(Errno::Again));
    // pid 1 ends; its table slot is taken back, but not by another spawn.
    w.end(1, 0);
    assert!(w.core.reap_init().is_some());
    assert_eq!(w.spawn_fds(c, "/bin/prog", FdMap::stdio()), Err(Errno::Again));
    w.start_init();
    // The new init inherits the orphans: a's parent was pid 1.
    w.end(a, 5);
    assert_eq!(reaped(w.wait(1, -1)), Waited { pid: a, status: ExitStatus::exited(5) });
}

#[test]
fn pid_1_restarts_with_the_console_and_the_root() {
    let mut w = World::new(8);
    let a = w.spawn(1);
    w.core.chdir(&w.fs, 1, &path("/bin")).unwrap();
    w.close(1, 0).unwrap();
    assert_eq!(w.core.start_init(&w.fs, &path("/bin/init")).err(), Some(Errno::Again), "pid 1 exists");
    assert_eq!(w.core.reap_init(), None, "pid 1 is running");
    w.core.ended(&w.fs, 1, ExitStatus::crashed("boom"));
    assert_eq!(w.core.reap_init().unwrap().message(), "boom");
    assert_eq!(w.core.reap_init(), None);
    w.start_init();
    assert_eq!(w.cwd(1), "/");
    for fd in 0..3 {
        assert_eq!(w.core.fstat(&w.fs, 1, fd).unwrap().major, CONSOLE_MAJOR);
    }
    assert_eq!(w.core.ps(0).rows[..2].iter().map(|r| (r.pid, r.ppid)).collect::<Vec<_>>(), vec![(1, 0), (a, 1)]);
    assert_eq!(w.core.start_init(&w.fs, &path("/bin/nope")).err(), Some(Errno::Again));
}

#[test]
fn ps_lists_by_pid_in_pages() {
    let mut w = World::new(40);
    let mut pids = vec![1];
    for _ in 0..20 {
        pids.push(w.spawn(1));
    }
    let e = w.core.spawn(&w.fs, 1, &path("/bin/prog"), &FdMap::stdio()).unwrap();
    w.end(pids[3], 0);
    w.core.set_sleeping(pids[4], true);
    let t = w.core.ps(0);
    assert_eq!(t.n as usize, PS_ROWS);
    assert_eq!(t.rows.iter().map(|r| r.pid).collect::<Vec<_>>(), pids[..PS_ROWS].to_vec());
    assert_eq!(t.next, Some(pids[PS_ROWS]));
    assert_eq!(t.rows[0].name.as_str(), "init");
    assert_eq!(t.rows[1].name.as_str(), "prog");
    assert_eq!(t.rows[3].state, ProcState::Zombie);
    assert_eq!(t.rows[3].domain, 0);
    assert_eq!(t.rows[4].state, ProcState::Sleeping);
    assert_eq!(t.rows[5].state, ProcState::Running);
    assert_ne!(t.rows[5].domain, 0);
    let t2 = w.core.ps(t.next.unwrap());
    assert_eq!(t2.n as usize, pids.len() + 1 - PS_ROWS);
    assert_eq!(t2.next, None);
    let last = t2.rows[t2.n as usize - 1];
    assert_eq!((last.pid, last.state, last.domain), (e.pid, ProcState::Embryo, 0));
    assert_eq!(w.core.ps(i32::MAX).n, 0);
    assert_eq!(w.core.ps(i32::MIN).n as usize, PS_ROWS);
}

#[test]
fn pids_are_not_reused_soon() {
    let mut w = World::new(4);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let p = w.spawn(1);
        assert!(seen.insert(p), "pid {p} again");
        w.end(p, 0);
        reaped(w.wait(1, p));
    }
}

#[test]
fn ending_closes_everything_and_the_tables_return_to_their_level() {
    let mut w = World::new(8);
    let base = w.core.usage();
    let free0 = w.fs.free_inodes();
    for round in 0..3 {
        let a = w.spawn(1);
        let b = w.spawn(a);
        let [r, wr] = w.core.pipe(a).unwrap();
        let fd = w.open(a, &format!("/r{round}"), O_CREATE | O_RDWR).unwrap();
        w.write(a, fd, b"data").unwrap();
        w.core.dup(a, fd).unwrap();
        let _ = (r, wr);
        w.core.unlink(&w.fs, a, &path(&format!("/r{round}"))).unwrap();
        let d = w.open(b, "/", O_RDONLY).unwrap();
        w.core.readdir(&w.fs, b, d).unwrap();
        assert!(w.core.usage().files > base.files);
        w.end(a, 0);
        w.end(b, 0);
        reaped(w.wait(1, a));
        reaped(w.wait(1, -1));
        assert_eq!(w.core.usage(), base, "round {round}");
        assert_eq!(w.fs.free_inodes(), free0, "round {round}: the unlinked file was released");
    }
}

#[test]
fn nproc_is_clamped() {
    rref::host::HostHeap::install();
    assert_eq!(Core::new(0).usage(), Usage { procs: 0, files: 0, pipes: 0, inodes: 0 });
    let mut w = World::new(1000);
    let mut n = 1;
    while w.spawn_fds(1, "/bin/prog", FdMap::new(&[]).unwrap()).is_ok() {
        n += 1;
    }
    assert_eq!(n, frond_rv6core::NPROC_MAX);
}

/// Found by the `rv6` fuzz target: a call made with the pid of a zombie (a child that
/// ended and was not reaped yet) gave the zombie a descriptor, breaking "a zombie holds
/// no descriptor". Calls that give a process a descriptor or a child refuse a zombie.
#[test]
fn a_zombie_gets_no_descriptor_and_no_child() {
    let mut w = World::new(8);
    let c = w.spawn(1);
    w.end(c, 0);
    assert_eq!(w.open(c, "/a", O_RDWR | O_CREATE), Err(Errno::Srch));
    assert_eq!(w.core.pipe(c), Err(Errno::Srch));
    assert_eq!(w.spawn_fds(c, "/bin/prog", FdMap::new(&[]).unwrap()), Err(Errno::Srch));
    w.core.check().unwrap();
    assert_eq!(reaped(w.wait(1, c)).pid, c);
    w.core.check().unwrap();
}
