//! Descriptors, open files, inodes in use, and the file system calls.
//!
//! A descriptor is a slot of its process's table naming an [`OpenFile`]; `dup` and
//! spawn's descriptor map make more descriptors for the same open file, which share its
//! offset. An open file names an inode (file, directory, or the console's device inode),
//! a pipe end, or the console.

use crate::pipe::Pipe;
use crate::{fsr, path, Core, Io};
use frond_interface::fs::{DirChunk, FileType, Fs, Path, Stat, IO_MAX};
use frond_interface::rv6::*;
use frond_interface::RRefVec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Obj {
    File(u32),
    /// A directory: the offset is the `readdir` cursor (an entry index).
    Dir(u32),
    /// The console, opened through the device inode given (0: pid 1's console, which
    /// the core made without one).
    Console(u32),
    PipeRead(usize),
    PipeWrite(usize),
}

impl Obj {
    /// The inode this open file keeps in use.
    pub(crate) fn ino(self) -> Option<u32> {
        match self {
            Obj::File(i) | Obj::Dir(i) => Some(i),
            Obj::Console(i) if i != 0 => Some(i),
            _ => None,
        }
    }
}

pub(crate) struct OpenFile {
    /// Descriptors naming this file (> 0 while it exists).
    pub refs: u32,
    pub obj: Obj,
    pub read: bool,
    pub write: bool,
    pub append: bool,
    pub off: u64,
}

/// An inode in use: open, or being read as a program image.
pub(crate) struct InodeUse {
    pub ino: u32,
    pub users: u32,
    /// A name of it was removed while in use (with `unlink_keep`): release it when the
    /// last user goes (a no-op if other links remain).
    pub unlinked: bool,
}

/// `len` checked against the lent buffer and cut to one call's limit.
fn span(len: u32, buf_len: usize) -> SysResult<usize> {
    if len as usize > buf_len {
        return Err(Errno::Inval);
    }
    Ok((len as usize).min(IO_MAX))
}

fn fstat_of(s: Stat) -> FStat {
    let kind = match s.kind {
        FileType::Dir => FileKind::Dir,
        FileType::File => FileKind::File,
        FileType::Device => FileKind::Device,
    };
    FStat { kind, ino: s.inum, nlink: s.nlink, size: s.size, major: s.major, minor: s.minor }
}

impl Core {
    // ---- inodes in use

    pub(crate) fn inode_get(&mut self, ino: u32) {
        match self.inodes.iter_mut().find(|u| u.ino == ino) {
            Some(u) => u.users += 1,
            None => self.inodes.push(InodeUse { ino, users: 1, unlinked: false }),
        }
    }

    /// One user of `ino` fewer; the last one releases an inode unlinked meanwhile. A
    /// failed release leaves an orphan that the next boot's mount frees.
    pub(crate) fn inode_put(&mut self, fs: &dyn Fs, ino: u32) {
        let Some(i) = self.inodes.iter().position(|u| u.ino == ino) else { return };
        self.inodes[i].users -= 1;
        if self.inodes[i].users == 0 {
            let u = self.inodes.swap_remove(i);
            if u.unlinked {
                let _ = fs.release(ino);
            }
        }
    }

    fn in_use(&self, ino: u32) -> bool {
        self.inodes.iter().any(|u| u.ino == ino)
    }

    // ---- descriptors and open files

    /// The open file of `pid`'s descriptor `fd`: `BadF` for a negative, too large or
    /// closed descriptor.
    pub(crate) fn fd_file(&self, pid: i32, fd: i32) -> SysResult<usize> {
        let p = self.proc(pid)?;
        if fd < 0 || fd as usize >= NOFILE {
            return Err(Errno::BadF);
        }
        p.fds[fd as usize].ok_or(Errno::BadF)
    }

    /// `pid`'s lowest free descriptor: `MFile` if none, `Srch` for a zombie.
    fn free_fd(&self, pid: i32) -> SysResult<usize> {
        self.live_proc(pid)?.fds.iter().position(Option::is_none).ok_or(Errno::MFile)
    }

    /// A new open file for `obj` on `pid`'s lowest free descriptor (checked free by the
    /// caller, before any side effect).
    fn install(&mut self, pid: i32, fd: usize, obj: Obj, read: bool, write: bool, append: bool) -> SysResult<i32> {
        let fi = self.files.insert(OpenFile { refs: 1, obj, read, write, append, off: 0 }).ok_or(Errno::MFile)?;
        if let Some(ino) = obj.ino() {
            self.inode_get(ino);
        }
        self.proc_mut(pid)?.fds[fd] = Some(fi);
        Ok(fd as i32)
    }

    /// One descriptor of open file `fi` fewer; the last one closes it: a pipe end (its
    /// pipe goes with the other end) or an inode's use.
    pub(crate) fn drop_ref(&mut self, fs: &dyn Fs, fi: usize) {
        let Some(f) = self.files.get_mut(fi) else { return };
        f.refs -= 1;
        if f.refs > 0 {
            return;
        }
        let obj = f.obj;
        self.files.remove(fi);
        match obj {
            Obj::PipeRead(p) | Obj::PipeWrite(p) => {
                if let Some(pipe) = self.pipes.get_mut(p) {
                    if obj == Obj::PipeRead(p) {
                        pipe.reader = false;
                    } else {
                        pipe.writer = false;
                    }
                    if !pipe.reader && !pipe.writer {
                        self.pipes.remove(p);
                    }
                }
                // A blocked reader sees end of file, a blocked writer a broken pipe.
                self.wake = true;
            }
            o => {
                if let Some(ino) = o.ino() {
                    self.inode_put(fs, ino);
                }
            }
        }
    }

    /// Closes every descriptor of `pid`.
    pub(crate) fn close_all(&mut self, fs: &dyn Fs, pid: i32) {
        for fd in 0..NOFILE {
            let fi = match self.proc_mut(pid) {
                Ok(p) => p.fds[fd].take(),
                Err(_) => return,
            };
            if let Some(fi) = fi {
                self.drop_ref(fs, fi);
            }
        }
    }

    /// `child`'s descriptor `i` becomes a duplicate of `parent`'s `map.fds[i]` (checked
    /// open by the caller).
    pub(crate) fn dup_map(&mut self, parent: i32, child: i32, map: &FdMap) -> SysResult<()> {
        for i in 0..(map.n as usize).min(FDMAP_MAX) {
            if map.fds[i] == -1 {
                continue;
            }
            let fi = self.fd_file(parent, map.fds[i])?;
            if let Some(f) = self.files.get_mut(fi) {
                f.refs += 1;
            }
            self.proc_mut(child)?.fds[i] = Some(fi);
        }
        Ok(())
    }

    /// A console open file on descriptors 0, 1 and 2 of `pid` (pid 1's start).
    pub(crate) fn console_stdio(&mut self, pid: i32) -> SysResult<()> {
        let fi = self.files.insert(OpenFile { refs: 3, obj: Obj::Console(0), read: true, write: true, append: false, off: 0 }).ok_or(Errno::MFile)?;
        let p = self.proc_mut(pid)?;
        p.fds[0] = Some(fi);
        p.fds[1] = Some(fi);
        p.fds[2] = Some(fi);
        Ok(())
    }

    // ---- the system calls

    /// `open`: `flags` of `O_*` (`Inval` for other bits, or both `O_WRONLY` and
    /// `O_RDWR`); `O_CREATE` makes a file; a directory opens for reading only (`IsDir`);
    /// a device inode of major `CONSOLE_MAJOR` opens the console (other majors:
    /// `NoEnt`, there is no such device); `O_TRUNC` empties a file.
    pub fn open(&mut self, fs: &dyn Fs, pid: i32, p: &Path, flags: u32) -> SysResult<i32> {
        if flags & !O_ALL != 0 || (flags & O_WRONLY != 0 && flags & O_RDWR != 0) {
            return Err(Errno::Inval);
        }
        path::check(p)?;
        let fd = self.free_fd(pid)?;
        let cwd = self.proc(pid)?.cwd;
        let read = flags & O_WRONLY == 0;
        let write = flags & (O_WRONLY | O_RDWR) != 0;
        let st = if flags & O_CREATE != 0 {
            // Not exclusive, so repeating it after an fs crash is harmless.
            let mut r = fs.create(cwd, *p, FileType::File, 0, 0, false);
            if r.is_err() {
                r = fs.create(cwd, *p, FileType::File, 0, 0, false);
            }
            match fsr(r) {
                // Something other than a file is there.
                Err(Errno::Exist) => fsr(fs.lookup(cwd, *p))?,
                r => r?,
            }
        } else {
            fsr(fs.lookup(cwd, *p))?
        };
        let obj = match st.kind {
            FileType::Dir if write || flags & (O_TRUNC | O_CREATE) != 0 => return Err(Errno::IsDir),
            FileType::Dir => Obj::Dir(st.inum),
            FileType::Device if st.major == CONSOLE_MAJOR => Obj::Console(st.inum),
            FileType::Device => return Err(Errno::NoEnt),
            FileType::File => {
                if flags & O_TRUNC != 0 && st.size > 0 {
                    fsr(fs.truncate(st.inum, 0))?;
                }
                Obj::File(st.inum)
            }
        };
        self.install(pid, fd, obj, read, write, flags & O_APPEND != 0)
    }

    pub fn close(&mut self, fs: &dyn Fs, pid: i32, fd: i32) -> SysResult<()> {
        let fi = self.fd_file(pid, fd)?;
        self.proc_mut(pid)?.fds[fd as usize] = None;
        self.drop_ref(fs, fi);
        Ok(())
    }

    /// One step of `read`: up to `len` bytes (`Inval` past `buf.len()`, cut to
    /// `IO_MAX`) into `buf[..]`. A file lends `buf` to the file system, which fills it in
    /// place.
    pub fn read(&mut self, fs: &dyn Fs, pid: i32, fd: i32, buf: &mut RRefVec<u8>, len: u32) -> SysResult<Io> {
        let fi = self.fd_file(pid, fd)?;
        let killed = self.killed(pid);
        let f = self.files.get_mut(fi).ok_or(Errno::BadF)?;
        if !f.read {
            return Err(Errno::BadF);
        }
        let n = span(len, buf.len())?;
        match f.obj {
            Obj::File(ino) => {
                if n == 0 {
                    return Ok(Io::Done(0));
                }
                let got = fsr(fs.pread(ino, f.off, buf, n as u32))?.min(n as u32);
                f.off += got as u64;
                Ok(Io::Done(got))
            }
            Obj::Dir(_) => Err(Errno::IsDir),
            Obj::Console(_) => Ok(Io::Console),
            Obj::PipeRead(p) => {
                let pipe = self.pipes.get_mut(p).ok_or(Errno::BadF)?;
                if n == 0 {
                    return Ok(Io::Done(0));
                }
                if pipe.buffered() > 0 {
                    let got = pipe.take(&mut buf[..n]);
                    self.wake = true;
                    Ok(Io::Done(got as u32))
                } else if !pipe.writer {
                    Ok(Io::Done(0))
                } else if killed {
                    Err(Errno::Intr)
                } else {
                    Ok(Io::Block)
                }
            }
            Obj::PipeWrite(_) => Err(Errno::BadF),
        }
    }

    /// One step of `write` of `buf[done..len]` (`Inval` if `len` is past `buf.len()`;
    /// cut to `IO_MAX`). A file gets `buf` lent straight to the file system, whole
    /// (`done` must be 0); a pipe takes what fits, so the caller repeats with `done`
    /// advanced until all is written; a pipe without a reader is `Pipe`.
    pub fn write(&mut self, fs: &dyn Fs, pid: i32, fd: i32, buf: &RRefVec<u8>, len: u32, done: u32) -> SysResult<Io> {
        let fi = self.fd_file(pid, fd)?;
        let killed = self.killed(pid);
        let f = self.files.get_mut(fi).ok_or(Errno::BadF)?;
        if !f.write {
            return Err(Errno::BadF);
        }
        let n = span(len, buf.len())?;
        let done = done as usize;
        if done > n {
            return Err(Errno::Inval);
        }
        match f.obj {
            Obj::File(ino) => {
                if done != 0 {
                    return Err(Errno::Inval);
                }
                if n == 0 {
                    return Ok(Io::Done(0));
                }
                if f.append {
                    f.off = fsr(fs.stat(ino))?.size;
                }
                let put = fsr(fs.write(ino, f.off, buf, n as u32))?.min(n as u32);
                f.off += put as u64;
                Ok(Io::Done(put))
            }
            Obj::Console(_) => Ok(Io::Console),
            Obj::PipeWrite(p) => {
                let pipe = self.pipes.get_mut(p).ok_or(Errno::BadF)?;
                if !pipe.reader {
                    return Err(Errno::Pipe);
                }
                if done == n {
                    return Ok(Io::Done(0));
                }
                let put = pipe.put(&buf[done..n]);
                if put > 0 {
                    self.wake = true;
                    Ok(Io::Done(put as u32))
                } else if killed {
                    Err(Errno::Intr)
                } else {
                    Ok(Io::Block)
                }
            }
            Obj::Dir(_) | Obj::PipeRead(_) => Err(Errno::BadF),
        }
    }

    /// `lseek` on a file (or a directory's entry cursor, without `End`). The result must
    /// lie in `0..=i64::MAX` (`Inval`); pipes and the console cannot seek (`SPipe`).
    pub fn lseek(&mut self, fs: &dyn Fs, pid: i32, fd: i32, off: i64, whence: Whence) -> SysResult<u64> {
        let fi = self.fd_file(pid, fd)?;
        let f = self.files.get_mut(fi).ok_or(Errno::BadF)?;
        let (ino, dir) = match f.obj {
            Obj::File(i) => (i, false),
            Obj::Dir(i) => (i, true),
            _ => return Err(Errno::SPipe),
        };
        let base: i128 = match whence {
            Whence::Set => 0,
            Whence::Cur => f.off as i128,
            Whence::End if dir => return Err(Errno::Inval),
            Whence::End => fsr(fs.stat(ino))?.size as i128,
        };
        let new = base + off as i128;
        if new < 0 || new > i64::MAX as i128 {
            return Err(Errno::Inval);
        }
        f.off = new as u64;
        Ok(f.off)
    }

    pub fn fstat(&self, fs: &dyn Fs, pid: i32, fd: i32) -> SysResult<FStat> {
        let fi = self.fd_file(pid, fd)?;
        let f = self.files.get(fi).ok_or(Errno::BadF)?;
        match f.obj {
            Obj::File(i) | Obj::Dir(i) => Ok(fstat_of(fsr(fs.stat(i))?)),
            Obj::Console(i) if i != 0 => Ok(fstat_of(fsr(fs.stat(i))?)),
            Obj::Console(_) => Ok(FStat { kind: FileKind::Device, ino: 0, nlink: 1, size: 0, major: CONSOLE_MAJOR, minor: 0 }),
            Obj::PipeRead(p) | Obj::PipeWrite(p) => {
                let size = self.pipes.get(p).map_or(0, |p| p.buffered() as u64);
                Ok(FStat { kind: FileKind::Pipe, ino: 0, nlink: 1, size, major: 0, minor: 0 })
            }
        }
    }

    pub fn dup(&mut self, pid: i32, fd: i32) -> SysResult<i32> {
        let fi = self.fd_file(pid, fd)?;
        let new = self.free_fd(pid)?;
        if let Some(f) = self.files.get_mut(fi) {
            f.refs += 1;
        }
        self.proc_mut(pid)?.fds[new] = Some(fi);
        Ok(new as i32)
    }

    /// A pipe: `[read end, write end]` on the two lowest free descriptors (`MFile` if
    /// there are not two; `NoMem` if its ring cannot be allocated).
    pub fn pipe(&mut self, pid: i32) -> SysResult<[i32; 2]> {
        let free = self.live_proc(pid)?.fds.iter().filter(|f| f.is_none()).count();
        if free < 2 {
            return Err(Errno::MFile);
        }
        let p = self.pipes.insert(Pipe::new().ok_or(Errno::NoMem)?).ok_or(Errno::MFile)?;
        let r = self.free_fd(pid)?;
        let r = self.install(pid, r, Obj::PipeRead(p), true, false, false)?;
        let w = self.free_fd(pid)?;
        let w = self.install(pid, w, Obj::PipeWrite(p), false, true, false)?;
        Ok([r, w])
    }

    pub fn mknod(&mut self, fs: &dyn Fs, pid: i32, p: &Path, major: u16, minor: u16) -> SysResult<()> {
        path::check(p)?;
        let cwd = self.proc(pid)?.cwd;
        fsr(fs.create(cwd, *p, FileType::Device, major, minor, true)).map(drop)
    }

    pub fn mkdir(&mut self, fs: &dyn Fs, pid: i32, p: &Path) -> SysResult<()> {
        path::check(p)?;
        let cwd = self.proc(pid)?.cwd;
        fsr(fs.create(cwd, *p, FileType::Dir, 0, 0, true)).map(drop)
    }

    pub fn link(&mut self, fs: &dyn Fs, pid: i32, old: &Path, new: &Path) -> SysResult<()> {
        path::check(old)?;
        path::check(new)?;
        let cwd = self.proc(pid)?.cwd;
        fsr(fs.link(cwd, *old, *new))
    }

    /// `unlink`: an inode still in use (open anywhere, or being loaded) loses its name
    /// with `Fs::unlink_keep`, so it stays readable and writable through its descriptors
    /// until the last closes and releases it.
    pub fn unlink(&mut self, fs: &dyn Fs, pid: i32, p: &Path) -> SysResult<()> {
        path::check(p)?;
        let cwd = self.proc(pid)?.cwd;
        let st = fsr(fs.lookup(cwd, *p))?;
        if self.in_use(st.inum) {
            // Marked first: if the fs crashes mid-call the name may be gone, and a release
            // of an inode that kept its links does nothing.
            if let Some(u) = self.inodes.iter_mut().find(|u| u.ino == st.inum) {
                u.unlinked = true;
            }
            fsr(fs.unlink_keep(cwd, *p))
        } else {
            fsr(fs.unlink(cwd, *p))
        }
    }

    /// `chdir` to a directory (`NotDir` otherwise); the new working directory's path is
    /// the old one joined with `p`, normalised.
    pub fn chdir(&mut self, fs: &dyn Fs, pid: i32, p: &Path) -> SysResult<()> {
        let rel = path::check(p)?;
        let (cwd, cwd_path) = {
            let pr = self.proc(pid)?;
            (pr.cwd, pr.cwd_path)
        };
        let st = fsr(fs.lookup(cwd, *p))?;
        if st.kind != FileType::Dir {
            return Err(Errno::NotDir);
        }
        let new_path = path::join(&cwd_path, rel)?;
        let pr = self.proc_mut(pid)?;
        pr.cwd = st.inum;
        pr.cwd_path = new_path;
        Ok(())
    }

    pub fn getcwd(&self, pid: i32) -> SysResult<Path> {
        Ok(self.proc(pid)?.cwd_path)
    }

    /// The next entries of directory descriptor `fd` (`NotDir` for anything else).
    pub fn readdir(&mut self, fs: &dyn Fs, pid: i32, fd: i32) -> SysResult<DirChunk> {
        let fi = self.fd_file(pid, fd)?;
        let f = self.files.get_mut(fi).ok_or(Errno::BadF)?;
        let Obj::Dir(ino) = f.obj else { return Err(Errno::NotDir) };
        let chunk = fsr(fs.readdir(ino, f.off.min(u32::MAX as u64) as u32))?;
        // At the end the cursor parks past any entry index.
        f.off = chunk.next.map_or(u32::MAX as u64, u64::from);
        Ok(chunk)
    }

    pub fn sync(&self, fs: &dyn Fs) -> SysResult<()> {
        fsr(fs.sync())
    }
}
