//! Descriptors, open files, pipes, paths and the working directory, against a real
//! xv6-format file system.

mod common;

use common::*;
use frond_interface::fs::{FileType, Fs, IO_MAX, NAME_MAX, PATH_MAX};
use frond_interface::rv6::*;
use frond_rv6core::{Io, PIPE_SIZE};
use std::sync::atomic::Ordering::SeqCst;

const RW: u32 = O_RDWR;

#[test]
fn descriptor_table_exhaustion_is_mfile() {
    let mut w = World::new(8);
    // pid 1 holds 0, 1, 2 (the console).
    let mut fds = Vec::new();
    for i in 3..NOFILE {
        let fd = w.open(1, &format!("/f{i}"), O_CREATE | RW).unwrap();
        assert_eq!(fd, i as i32, "lowest free descriptor");
        fds.push(fd);
    }
    assert_eq!(w.open(1, "/bin/prog", O_RDONLY), Err(Errno::MFile));
    // MFile comes before any side effect: the file is not created.
    assert_eq!(w.open(1, "/new", O_CREATE | RW), Err(Errno::MFile));
    assert!(!w.fs.exists("/new"));
    assert_eq!(w.core.dup(1, 0), Err(Errno::MFile));
    assert_eq!(w.core.pipe(1), Err(Errno::MFile));
    // One free slot is not enough for a pipe.
    w.close(1, 7).unwrap();
    assert_eq!(w.core.pipe(1), Err(Errno::MFile));
    assert_eq!(w.core.dup(1, 3), Ok(7));
    // Closing frees the lowest slot again.
    w.close(1, 4).unwrap();
    w.close(1, 5).unwrap();
    assert_eq!(w.core.pipe(1), Ok([4, 5]));
}

#[test]
fn bad_descriptors_are_badf() {
    let mut w = World::new(8);
    let fd = w.open(1, "/f", O_CREATE | O_WRONLY).unwrap();
    let mut b = zbuf(16);
    let r = rbuf(b"hello");
    for bad in [-1, -1000, i32::MIN, NOFILE as i32, NOFILE as i32 + 1, i32::MAX, 9] {
        assert_eq!(w.core.read(&w.fs, 1, bad, &mut b, 4), Err(Errno::BadF), "read {bad}");
        assert_eq!(w.core.write(&w.fs, 1, bad, &r, 5, 0), Err(Errno::BadF), "write {bad}");
        assert_eq!(w.close(1, bad), Err(Errno::BadF), "close {bad}");
        assert_eq!(w.core.dup(1, bad), Err(Errno::BadF));
        assert_eq!(w.core.fstat(&w.fs, 1, bad), Err(Errno::BadF));
        assert_eq!(w.core.lseek(&w.fs, 1, bad, 0, Whence::Set), Err(Errno::BadF));
        assert_eq!(w.core.readdir(&w.fs, 1, bad), Err(Errno::BadF));
    }
    // Wrong direction.
    assert_eq!(w.core.read(&w.fs, 1, fd, &mut b, 4), Err(Errno::BadF));
    let ro = w.open(1, "/f", O_RDONLY).unwrap();
    assert_eq!(w.core.write(&w.fs, 1, ro, &r, 5, 0), Err(Errno::BadF));
    let [pr, pw] = w.core.pipe(1).unwrap();
    assert_eq!(w.core.write(&w.fs, 1, pr, &r, 5, 0), Err(Errno::BadF));
    assert_eq!(w.core.read(&w.fs, 1, pw, &mut b, 4), Err(Errno::BadF));
    // Closed.
    w.close(1, fd).unwrap();
    assert_eq!(w.close(1, fd), Err(Errno::BadF));
    assert_eq!(w.core.write(&w.fs, 1, fd, &r, 5, 0), Err(Errno::BadF));
    // An unknown process.
    assert_eq!(w.core.read(&w.fs, 99, 0, &mut b, 4), Err(Errno::Srch));
    assert_eq!(w.open(99, "/f", O_RDONLY), Err(Errno::Srch));
}

#[test]
fn lengths_are_checked_against_the_lent_buffer_and_cut_to_io_max() {
    let mut w = World::new(8);
    let fd = w.open(1, "/big", O_CREATE | RW).unwrap();
    let small = rbuf(&[1; 10]);
    assert_eq!(w.core.write(&w.fs, 1, fd, &small, 11, 0), Err(Errno::Inval));
    let big = rbuf(&vec![7u8; IO_MAX + 100]);
    assert_eq!(w.core.write(&w.fs, 1, fd, &big, (IO_MAX + 100) as u32, 0), Ok(Io::Done(IO_MAX as u32)));
    assert_eq!(w.core.lseek(&w.fs, 1, fd, 0, Whence::Set), Ok(0));
    let mut rb = zbuf(IO_MAX + 100);
    assert_eq!(w.core.read(&w.fs, 1, fd, &mut rb, (IO_MAX + 101) as u32), Err(Errno::Inval));
    assert_eq!(w.core.read(&w.fs, 1, fd, &mut rb, (IO_MAX + 100) as u32), Ok(Io::Done(IO_MAX as u32)));
    assert!(rb[..IO_MAX].iter().all(|&b| b == 7));
    // Zero-length calls do nothing.
    assert_eq!(w.core.read(&w.fs, 1, fd, &mut rb, 0), Ok(Io::Done(0)));
    assert_eq!(w.core.write(&w.fs, 1, fd, &small, 0, 0), Ok(Io::Done(0)));
}

#[test]
fn offsets_and_lseek() {
    let mut w = World::new(8);
    let fd = w.open(1, "/f", O_CREATE | RW).unwrap();
    assert_eq!(w.write(1, fd, b"0123456789"), Ok(10));
    assert_eq!(w.core.lseek(&w.fs, 1, fd, -1, Whence::Set), Err(Errno::Inval));
    assert_eq!(w.core.lseek(&w.fs, 1, fd, -11, Whence::Cur), Err(Errno::Inval));
    assert_eq!(w.core.lseek(&w.fs, 1, fd, -11, Whence::End), Err(Errno::Inval));
    assert_eq!(w.core.lseek(&w.fs, 1, fd, i64::MIN, Whence::End), Err(Errno::Inval));
    // A failed lseek leaves the offset alone.
    assert_eq!(w.core.lseek(&w.fs, 1, fd, 0, Whence::Cur), Ok(10));
    assert_eq!(w.core.lseek(&w.fs, 1, fd, -4, Whence::End), Ok(6));
    assert_eq!(w.read(1, fd, 100).unwrap(), b"6789");
    assert_eq!(w.read(1, fd, 100).unwrap(), b"", "end of file");
    assert_eq!(w.core.lseek(&w.fs, 1, fd, 2, Whence::Set), Ok(2));
    assert_eq!(w.core.lseek(&w.fs, 1, fd, 3, Whence::Cur), Ok(5));
    assert_eq!(w.read(1, fd, 2).unwrap(), b"56");
    // Huge offsets: allowed up to i64::MAX, reads there give 0; overflow is Inval.
    assert_eq!(w.core.lseek(&w.fs, 1, fd, i64::MAX, Whence::Set), Ok(i64::MAX as u64));
    assert_eq!(w.read(1, fd, 10).unwrap(), b"");
    assert_eq!(w.core.lseek(&w.fs, 1, fd, 1, Whence::Cur), Err(Errno::Inval));
    assert_eq!(w.core.lseek(&w.fs, 1, fd, i64::MAX, Whence::End), Err(Errno::Inval));
    // Writing far past the largest file is FBig; the offset stays.
    assert_eq!(w.write(1, fd, b"x"), Err(Errno::FBig));
    assert_eq!(w.core.lseek(&w.fs, 1, fd, 0, Whence::Cur), Ok(i64::MAX as u64));
    // A write past the end fills the gap with zeros.
    assert_eq!(w.core.lseek(&w.fs, 1, fd, 20, Whence::Set), Ok(20));
    assert_eq!(w.write(1, fd, b"z"), Ok(1));
    assert_eq!(w.core.fstat(&w.fs, 1, fd).unwrap().size, 21);
    w.core.lseek(&w.fs, 1, fd, 8, Whence::Set).unwrap();
    assert_eq!(w.read(1, fd, 100).unwrap(), b"89\0\0\0\0\0\0\0\0\0\0z");
    // Pipes and the console cannot seek.
    let [r, wr] = w.core.pipe(1).unwrap();
    for fd in [0, 1, 2, r, wr] {
        assert_eq!(w.core.lseek(&w.fs, 1, fd, 0, Whence::Set), Err(Errno::SPipe), "fd {fd}");
    }
}

#[test]
fn open_flags() {
    let mut w = World::new(8);
    assert_eq!(w.open(1, "/f", O_CREATE | RW | 0x4), Err(Errno::Inval));
    assert_eq!(w.open(1, "/f", O_CREATE | 0x8000_0000), Err(Errno::Inval));
    assert_eq!(w.open(1, "/f", O_CREATE | O_WRONLY | O_RDWR), Err(Errno::Inval));
    assert!(!w.fs.exists("/f"));
    assert_eq!(w.open(1, "/f", RW), Err(Errno::NoEnt));
    let fd = w.open(1, "/f", O_CREATE | O_WRONLY).unwrap();
    w.write(1, fd, b"hello world").unwrap();
    w.close(1, fd).unwrap();
    // O_CREATE of an existing file opens it as it is.
    let fd = w.open(1, "/f", O_CREATE | RW).unwrap();
    assert_eq!(w.read_all(1, fd), b"hello world");
    w.close(1, fd).unwrap();
    // O_APPEND: every write goes to the end, even after a seek or another writer.
    let a = w.open(1, "/f", O_WRONLY | O_APPEND).unwrap();
    let b = w.open(1, "/f", O_WRONLY).unwrap();
    w.core.lseek(&w.fs, 1, a, 0, Whence::Set).unwrap();
    w.write(1, a, b"!").unwrap();
    w.write(1, b, b"J").unwrap();
    w.write(1, a, b"?").unwrap();
    let r = w.open(1, "/f", O_RDONLY).unwrap();
    assert_eq!(w.read_all(1, r), b"Jello world!?");
    // O_TRUNC empties it.
    let t = w.open(1, "/f", O_WRONLY | O_TRUNC).unwrap();
    assert_eq!(w.core.fstat(&w.fs, 1, t).unwrap().size, 0);
    w.write(1, t, b"new").unwrap();
    w.core.lseek(&w.fs, 1, r, 0, Whence::Set).unwrap();
    assert_eq!(w.read_all(1, r), b"new");
    // Directories: read-only.
    w.core.mkdir(&w.fs, 1, &path("/d")).unwrap();
    assert_eq!(w.open(1, "/d", O_WRONLY), Err(Errno::IsDir));
    assert_eq!(w.open(1, "/d", O_RDWR), Err(Errno::IsDir));
    assert_eq!(w.open(1, "/d", O_CREATE), Err(Errno::IsDir));
    assert_eq!(w.open(1, "/d", O_TRUNC), Err(Errno::IsDir));
    let d = w.open(1, "/d", O_RDONLY).unwrap();
    let mut buf = zbuf(10);
    assert_eq!(w.core.read(&w.fs, 1, d, &mut buf, 10), Err(Errno::IsDir));
    assert_eq!(w.core.write(&w.fs, 1, d, &rbuf(b"x"), 1, 0), Err(Errno::BadF));
    assert_eq!(w.core.fstat(&w.fs, 1, d).unwrap().kind, FileKind::Dir);
    // Through a file as a directory.
    assert_eq!(w.open(1, "/f/x", O_RDONLY), Err(Errno::NotDir));
    assert_eq!(w.open(1, "", O_RDONLY), Err(Errno::NoEnt));
}

#[test]
fn names_of_14_bytes_work_and_15_are_too_long() {
    let mut w = World::new(8);
    let n14 = "a".repeat(NAME_MAX);
    let n15 = "b".repeat(NAME_MAX + 1);
    let fd = w.open(1, &format!("/{n14}"), O_CREATE | RW).unwrap();
    w.write(1, fd, b"x").unwrap();
    assert!(w.open(1, &format!("/{n14}"), O_RDONLY).is_ok());
    assert_eq!(w.open(1, &format!("/{n15}"), O_CREATE | RW), Err(Errno::NameTooLong));
    assert_eq!(w.open(1, &format!("/{n15}"), O_RDONLY), Err(Errno::NameTooLong));
    assert_eq!(w.core.mkdir(&w.fs, 1, &path(&format!("/{n15}"))), Err(Errno::NameTooLong));
    w.core.mkdir(&w.fs, 1, &path(&format!("/d{}", "c".repeat(NAME_MAX - 1)))).unwrap();
    // readdir gives the full 14-byte name back.
    let d = w.open(1, "/", O_RDONLY).unwrap();
    let chunk = w.core.readdir(&w.fs, 1, d).unwrap();
    assert!(chunk.entries[..chunk.n as usize].iter().any(|e| e.name() == n14.as_bytes()));
    // A path longer than PATH_MAX.
    let long = frond_interface::fs::Path { len: PATH_MAX as u16 + 1, bytes: [b'a'; PATH_MAX] };
    assert_eq!(w.core.open(&w.fs, 1, &long, O_RDONLY), Err(Errno::NameTooLong));
    assert_eq!(w.core.chdir(&w.fs, 1, &long), Err(Errno::NameTooLong));
}

#[test]
fn dup_and_spawned_descriptors_share_the_offset() {
    let mut w = World::new(8);
    let fd = w.open(1, "/f", O_CREATE | RW).unwrap();
    w.write(1, fd, b"abcdefgh").unwrap();
    w.core.lseek(&w.fs, 1, fd, 0, Whence::Set).unwrap();
    let d = w.core.dup(1, fd).unwrap();
    assert_eq!(w.read(1, fd, 3).unwrap(), b"abc");
    assert_eq!(w.read(1, d, 3).unwrap(), b"def");
    assert_eq!(w.core.lseek(&w.fs, 1, fd, 0, Whence::Cur), Ok(6));
    // A child given the descriptor shares the same offset too.
    let child = w.spawn_fds(1, "/bin/prog", FdMap::new(&[-1, fd]).unwrap()).unwrap();
    assert_eq!(w.read(child, 1, 1).unwrap(), b"g");
    assert_eq!(w.read(1, d, 10).unwrap(), b"h");
    // Descriptor 0 of the child was left closed.
    assert_eq!(w.core.fstat(&w.fs, child, 0), Err(Errno::BadF));
    // A separate open has its own offset.
    let other = w.open(1, "/f", O_RDONLY).unwrap();
    assert_eq!(w.read(1, other, 2).unwrap(), b"ab");
    // Closing one descriptor leaves the others working.
    w.close(1, fd).unwrap();
    w.core.lseek(&w.fs, 1, d, 1, Whence::Set).unwrap();
    assert_eq!(w.read(child, 1, 2).unwrap(), b"bc");
}

#[test]
fn pipes_carry_bytes_block_and_end() {
    let mut w = World::new(8);
    let [r, wr] = w.core.pipe(1).unwrap();
    assert_eq!(w.core.fstat(&w.fs, 1, r).unwrap().kind, FileKind::Pipe);
    // Empty with a writer: blocks.
    assert_eq!(w.read_io(1, r, 10).unwrap().0, Io::Block);
    assert_eq!(w.write(1, wr, b"hello"), Ok(5));
    assert!(w.core.take_wake(), "a reader may be waiting");
    assert_eq!(w.core.fstat(&w.fs, 1, r).unwrap().size, 5);
    assert_eq!(w.read(1, r, 3).unwrap(), b"hel");
    assert_eq!(w.read(1, r, 10).unwrap(), b"lo");
    // Fill it: the write takes what fits, then blocks.
    let data: Vec<u8> = (0..PIPE_SIZE + 100).map(|i| i as u8).collect();
    let b = rbuf(&data);
    let n = data.len() as u32;
    assert_eq!(w.core.write(&w.fs, 1, wr, &b, n, 0), Ok(Io::Done(PIPE_SIZE as u32)));
    assert_eq!(w.core.write(&w.fs, 1, wr, &b, n, PIPE_SIZE as u32), Ok(Io::Block));
    assert_eq!(w.core.write(&w.fs, 1, wr, &b, n, n + 1), Err(Errno::Inval));
    assert_eq!(w.read(1, r, 1000).unwrap(), &data[..1000]);
    assert_eq!(w.core.write(&w.fs, 1, wr, &b, n, PIPE_SIZE as u32), Ok(Io::Done(100)));
    // The writer closes: the reader drains what is left, then sees end of file.
    w.close(1, wr).unwrap();
    assert!(w.core.take_wake());
    assert_eq!(w.read_all(1, r), &data[1000..]);
    assert_eq!(w.read(1, r, 10).unwrap(), b"");
    w.close(1, r).unwrap();
    assert_eq!(w.core.usage().pipes, 0);
}

#[test]
fn writing_to_a_pipe_without_reader_is_epipe() {
    let mut w = World::new(8);
    let [r, wr] = w.core.pipe(1).unwrap();
    // A dup of the read end keeps the reader alive.
    let r2 = w.core.dup(1, r).unwrap();
    w.close(1, r).unwrap();
    assert_eq!(w.write(1, wr, b"x"), Ok(1));
    w.close(1, r2).unwrap();
    assert_eq!(w.write(1, wr, b"x"), Err(Errno::Pipe));
    // Also when the pipe was full and the writer was blocked.
    let [r, wr] = w.core.pipe(1).unwrap();
    w.write(1, wr, &vec![0; PIPE_SIZE]).unwrap();
    assert_eq!(w.write_io(1, wr, b"y"), Ok(Io::Block));
    w.close(1, r).unwrap();
    assert_eq!(w.write_io(1, wr, b"y"), Err(Errno::Pipe));
}

#[test]
fn pipes_between_processes_and_end_of_file_when_the_writer_exits() {
    let mut w = World::new(8);
    let [r, wr] = w.core.pipe(1).unwrap();
    // The child writes into the pipe as its stdout; the parent keeps only the read end.
    let child = w.spawn_fds(1, "/bin/prog", FdMap::new(&[0, wr, 2]).unwrap()).unwrap();
    w.close(1, wr).unwrap();
    assert_eq!(w.write(child, 1, b"from child"), Ok(10));
    assert_eq!(w.read(1, r, 100).unwrap(), b"from child");
    assert_eq!(w.read_io(1, r, 100).unwrap().0, Io::Block, "the child still holds the write end");
    w.end(child, 0);
    assert_eq!(w.read(1, r, 100).unwrap(), b"", "end of file once the child ended");
}

#[test]
fn blocked_calls_of_a_killed_process_are_interrupted() {
    let mut w = World::new(8);
    let child = w.spawn(1);
    let [r, wr] = w.core.pipe(child).unwrap();
    assert_eq!(w.read_io(child, r, 1).unwrap().0, Io::Block);
    w.write(child, wr, &vec![1; PIPE_SIZE]).unwrap();
    let gc = w.spawn(child);
    assert_eq!(w.wait(child, -1), Ok(frond_rv6core::Poll::Block));
    w.core.take_wake();
    assert!(w.core.kill(child).unwrap().is_some());
    assert!(w.core.take_wake(), "kill wakes the blocked calls");
    assert_eq!(w.write_io(child, wr, b"x"), Err(Errno::Intr));
    assert_eq!(w.wait(child, -1), Err(Errno::Intr));
    // Calls that do not block still work (the kernel is ending the process).
    assert_eq!(w.read(child, r, 2).unwrap(), [1, 1]);
    let _ = gc;
}

#[test]
fn unlink_while_open_keeps_the_data_until_the_last_close() {
    let mut w = World::new(8);
    let free0 = w.fs.free_inodes();
    let fd = w.open(1, "/tmp", O_CREATE | RW).unwrap();
    w.write(1, fd, b"still here").unwrap();
    assert_eq!(w.fs.free_inodes(), free0 - 1);
    let child = w.spawn_fds(1, "/bin/prog", FdMap::new(&[fd]).unwrap()).unwrap();
    w.core.unlink(&w.fs, 1, &path("/tmp")).unwrap();
    assert_eq!(w.fs.unlink_keeps.load(SeqCst), 1);
    // The name is gone, the file is not.
    assert_eq!(w.open(1, "/tmp", O_RDONLY), Err(Errno::NoEnt));
    assert_eq!(w.core.fstat(&w.fs, 1, fd).unwrap().nlink, 0);
    w.core.lseek(&w.fs, 1, fd, 0, Whence::Set).unwrap();
    assert_eq!(w.read_all(1, fd), b"still here");
    w.write(1, fd, b"!").unwrap();
    // A restart of the file system in between changes nothing.
    w.fs.restart();
    w.close(1, fd).unwrap();
    assert_eq!(w.fs.free_inodes(), free0 - 1, "the child still has it open");
    assert_eq!(w.fs.releases.load(SeqCst), 0);
    w.core.lseek(&w.fs, child, 0, 0, Whence::Set).unwrap();
    assert_eq!(w.read_all(child, 0), b"still here!");
    // The last close (here: the child's end) releases it.
    w.end(child, 0);
    assert_eq!(w.fs.releases.load(SeqCst), 1);
    assert_eq!(w.fs.free_inodes(), free0, "the inode is free again");
    assert_eq!(w.core.usage().inodes, 0);
}

#[test]
fn unlink_of_a_closed_file_frees_it_at_once_and_of_a_linked_one_keeps_it() {
    let mut w = World::new(8);
    let free0 = w.fs.free_inodes();
    let fd = w.open(1, "/a", O_CREATE | RW).unwrap();
    w.write(1, fd, b"data").unwrap();
    w.close(1, fd).unwrap();
    w.core.unlink(&w.fs, 1, &path("/a")).unwrap();
    assert_eq!(w.fs.unlink_keeps.load(SeqCst), 0);
    assert_eq!(w.fs.free_inodes(), free0);
    // Two names, one open: unlinking one leaves the other, and the last close releases
    // nothing (the inode keeps a link).
    let fd = w.open(1, "/b", O_CREATE | RW).unwrap();
    w.core.link(&w.fs, 1, &path("/b"), &path("/c")).unwrap();
    w.core.unlink(&w.fs, 1, &path("/b")).unwrap();
    assert_eq!(w.core.fstat(&w.fs, 1, fd).unwrap().nlink, 1);
    w.close(1, fd).unwrap();
    assert!(w.fs.exists("/c"));
    assert_eq!(w.fs.free_inodes(), free0 - 1);
}

#[test]
fn namespace_calls_and_their_errors() {
    let mut w = World::new(8);
    w.core.mkdir(&w.fs, 1, &path("/d")).unwrap();
    assert_eq!(w.core.mkdir(&w.fs, 1, &path("/d")), Err(Errno::Exist));
    assert_eq!(w.core.mkdir(&w.fs, 1, &path("/nope/d")), Err(Errno::NoEnt));
    let fd = w.open(1, "/d/f", O_CREATE | RW).unwrap();
    w.close(1, fd).unwrap();
    assert_eq!(w.core.unlink(&w.fs, 1, &path("/d")), Err(Errno::NotEmpty));
    assert_eq!(w.core.link(&w.fs, 1, &path("/d"), &path("/e")), Err(Errno::Perm));
    assert_eq!(w.core.link(&w.fs, 1, &path("/d/f"), &path("/d/f")), Err(Errno::Exist));
    assert_eq!(w.core.link(&w.fs, 1, &path("/missing"), &path("/x")), Err(Errno::NoEnt));
    assert_eq!(w.core.unlink(&w.fs, 1, &path("/d/.")), Err(Errno::Perm));
    assert_eq!(w.core.unlink(&w.fs, 1, &path("/missing")), Err(Errno::NoEnt));
    w.core.unlink(&w.fs, 1, &path("/d/f")).unwrap();
    w.core.unlink(&w.fs, 1, &path("/d")).unwrap();
    // Device inodes: the console's major opens the console.
    w.core.mknod(&w.fs, 1, &path("/console"), CONSOLE_MAJOR, 0).unwrap();
    assert_eq!(w.core.mknod(&w.fs, 1, &path("/console"), CONSOLE_MAJOR, 0), Err(Errno::Exist));
    let c = w.open(1, "/console", O_RDWR).unwrap();
    assert_eq!(w.write_io(1, c, b"hi"), Ok(Io::Console));
    assert_eq!(w.read_io(1, c, 10).unwrap().0, Io::Console);
    let st = w.core.fstat(&w.fs, 1, c).unwrap();
    assert_eq!((st.kind, st.major), (FileKind::Device, CONSOLE_MAJOR));
    let wo = w.open(1, "/console", O_WRONLY).unwrap();
    assert_eq!(w.read_io(1, wo, 10), Err(Errno::BadF));
    w.core.mknod(&w.fs, 1, &path("/other"), 9, 0).unwrap();
    assert_eq!(w.open(1, "/other", O_RDWR), Err(Errno::NoEnt));
    // pid 1's own console descriptors.
    assert_eq!(w.write_io(1, 1, b"x"), Ok(Io::Console));
    assert_eq!(w.read_io(1, 0, 1).unwrap().0, Io::Console);
    assert_eq!(w.core.fstat(&w.fs, 1, 2).unwrap().major, CONSOLE_MAJOR);
    w.core.sync(&w.fs).unwrap();
}

#[test]
fn readdir_walks_a_directory_with_a_cursor() {
    let mut w = World::new(8);
    w.core.mkdir(&w.fs, 1, &path("/d")).unwrap();
    for i in 0..40 {
        let fd = w.open(1, &format!("/d/n{i}"), O_CREATE | RW).unwrap();
        w.close(1, fd).unwrap();
    }
    let d = w.open(1, "/d", O_RDONLY).unwrap();
    let mut names = Vec::new();
    loop {
        let c = w.core.readdir(&w.fs, 1, d).unwrap();
        if c.n == 0 {
            break;
        }
        names.extend(c.entries[..c.n as usize].iter().map(|e| String::from_utf8(e.name().to_vec()).unwrap()));
    }
    assert_eq!(names.len(), 42, "., .. and 40 files: {names:?}");
    assert_eq!(w.core.readdir(&w.fs, 1, d).unwrap().n, 0, "stays at the end");
    // lseek rewinds the cursor.
    assert_eq!(w.core.lseek(&w.fs, 1, d, 0, Whence::Set), Ok(0));
    assert_eq!(w.core.readdir(&w.fs, 1, d).unwrap().entries[0].name(), b".");
    assert_eq!(w.core.lseek(&w.fs, 1, d, 0, Whence::End), Err(Errno::Inval));
    let f = w.open(1, "/d/n1", O_RDONLY).unwrap();
    assert_eq!(w.core.readdir(&w.fs, 1, f), Err(Errno::NotDir));
    assert_eq!(w.core.readdir(&w.fs, 1, 0), Err(Errno::NotDir));
}

#[test]
fn getcwd_follows_chdir_and_dot_dot_chains() {
    let mut w = World::new(8);
    assert_eq!(w.cwd(1), "/");
    for d in ["/a", "/a/b", "/a/b/c", "/x"] {
        w.core.mkdir(&w.fs, 1, &path(d)).unwrap();
    }
    w.core.chdir(&w.fs, 1, &path("a")).unwrap();
    assert_eq!(w.cwd(1), "/a");
    w.core.chdir(&w.fs, 1, &path("b/c")).unwrap();
    assert_eq!(w.cwd(1), "/a/b/c");
    w.core.chdir(&w.fs, 1, &path("..")).unwrap();
    assert_eq!(w.cwd(1), "/a/b");
    w.core.chdir(&w.fs, 1, &path("../..")).unwrap();
    assert_eq!(w.cwd(1), "/");
    w.core.chdir(&w.fs, 1, &path("..")).unwrap();
    assert_eq!(w.cwd(1), "/", ".. of the root is the root");
    w.core.chdir(&w.fs, 1, &path("a/./b/../b//c/")).unwrap();
    assert_eq!(w.cwd(1), "/a/b/c");
    w.core.chdir(&w.fs, 1, &path("../../../x")).unwrap();
    assert_eq!(w.cwd(1), "/x");
    w.core.chdir(&w.fs, 1, &path("/a/b")).unwrap();
    assert_eq!(w.cwd(1), "/a/b");
    // Failures leave it alone.
    assert_eq!(w.core.chdir(&w.fs, 1, &path("nope")), Err(Errno::NoEnt));
    let fd = w.open(1, "file", O_CREATE | RW).unwrap();
    w.close(1, fd).unwrap();
    assert_eq!(w.core.chdir(&w.fs, 1, &path("file")), Err(Errno::NotDir));
    assert_eq!(w.cwd(1), "/a/b");
    // Relative paths resolve from it; children inherit it.
    assert!(w.fs.exists("/a/b/file"));
    let child = w.spawn_fds(1, "/bin/prog", FdMap::stdio()).unwrap();
    assert_eq!(w.cwd(child), "/a/b");
    assert!(w.open(child, "file", O_RDONLY).is_ok());
    w.core.chdir(&w.fs, child, &path("c")).unwrap();
    assert_eq!(w.cwd(child), "/a/b/c");
    assert_eq!(w.cwd(1), "/a/b", "the parent's stays");
    // A relative program path resolves from the cwd too.
    w.core.chdir(&w.fs, 1, &path("/")).unwrap();
    assert!(w.spawn_fds(1, "bin/prog", FdMap::stdio()).is_ok());
}

#[test]
fn the_working_directory_and_descriptors_survive_a_file_system_restart() {
    let mut w = World::new(8);
    w.core.mkdir(&w.fs, 1, &path("/home")).unwrap();
    w.core.chdir(&w.fs, 1, &path("/home")).unwrap();
    let fd = w.open(1, "notes", O_CREATE | RW).unwrap();
    w.write(1, fd, b"before ").unwrap();
    let d = w.open(1, ".", O_RDONLY).unwrap();
    w.fs.restart();
    w.write(1, fd, b"after").unwrap();
    assert_eq!(w.cwd(1), "/home");
    let again = w.open(1, "notes", O_RDONLY).unwrap();
    assert_eq!(w.read_all(1, again), b"before after");
    assert!(w.core.readdir(&w.fs, 1, d).unwrap().n >= 3);
}

#[test]
fn a_crash_the_proxy_does_not_hide_is_eio() {
    let mut w = World::new(8);
    let fd = w.open(1, "/f", O_CREATE | RW).unwrap();
    w.fs.fail_next.store(1, SeqCst);
    assert_eq!(w.write(1, fd, b"x"), Err(Errno::Io));
    w.fs.fail_next.store(1, SeqCst);
    assert_eq!(w.core.unlink(&w.fs, 1, &path("/f")), Err(Errno::Io));
    w.fs.fail_next.store(1, SeqCst);
    assert_eq!(w.core.mkdir(&w.fs, 1, &path("/d")), Err(Errno::Io));
    w.fs.fail_next.store(1, SeqCst);
    assert_eq!(w.core.fstat(&w.fs, 1, fd), Err(Errno::Io));
    // A crash in a create without O_EXCL is repeated once.
    w.fs.fail_next.store(1, SeqCst);
    assert!(w.open(1, "/g", O_CREATE | RW).is_ok());
    w.fs.fail_next.store(2, SeqCst);
    assert_eq!(w.open(1, "/h", O_CREATE | RW), Err(Errno::Io));
    // Nothing is left half-open.
    let before = w.core.usage();
    w.fs.fail_next.store(1, SeqCst);
    assert_eq!(w.open(1, "/f", O_RDONLY), Err(Errno::Io));
    assert_eq!(w.core.usage(), before);
    // And the descriptor still works afterwards.
    assert_eq!(w.write(1, fd, b"y"), Ok(1));
}

#[test]
fn the_file_system_sees_the_programs_bytes() {
    let mut w = World::new(8);
    let fd = w.open(1, "/f", O_CREATE | RW).unwrap();
    let data: Vec<u8> = (0..3 * IO_MAX + 17).map(|i| (i * 7 % 251) as u8).collect();
    for chunk in data.chunks(IO_MAX) {
        w.write(1, fd, chunk).unwrap();
    }
    let r = w.open(1, "/f", O_RDONLY).unwrap();
    let mut got = Vec::new();
    loop {
        let v = w.read(1, r, IO_MAX).unwrap();
        if v.is_empty() {
            break;
        }
        got.extend(v);
    }
    assert_eq!(got, data);
    let st = w.fs.lookup(frond_interface::fs::ROOT_INUM, path("/f")).unwrap().unwrap();
    assert_eq!((st.kind, st.size), (FileType::File, data.len() as u64));
}
