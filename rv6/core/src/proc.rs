//! The process table: spawning (in three steps, so the slow part — reading the image and
//! loading the domain — runs without the core's lock), ending, zombies, `wait`, `kill`,
//! `ps`, and which process a calling domain is.
//!
//! A process's life: **embryo** ([`Core::spawn`] / [`Core::start_init`]: a pid, the
//! descriptors, the program inode held in use while its image is read) → **running**
//! ([`Core::spawn_loaded`]: its domain is known, so its calls are recognised) →
//! **zombie** ([`Core::ended`]: descriptors closed, children given to pid 1, the exit
//! status kept) → gone ([`Core::wait`] by its parent; pid 1 by
//! [`Core::reap_init`]). An embryo whose load failed is removed by [`Core::spawn_abort`].

use crate::{fsr, path, Core, Poll, INIT_PID};
use frond_interface::fs::{FileType, Fs, Path, Stat, ROOT_INUM};
use frond_interface::rv6::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PState {
    Embryo,
    Running,
    Zombie(ExitStatus),
}

pub(crate) struct Proc {
    pub pid: i32,
    /// The parent (0 for pid 1).
    pub ppid: i32,
    pub state: PState,
    /// Blocked in a system call (shown by `ps`).
    pub sleeping: bool,
    /// `kill` was called: blocked calls return `Intr`.
    pub killed: bool,
    /// The code given to `exit`, reported instead of the `Killed` status the kernel
    /// returns for the exit's kill.
    pub exit_code: Option<i32>,
    /// The program domain, while running.
    pub id: Option<ProcId>,
    pub name: Name,
    /// Open-file index per descriptor.
    pub fds: [Option<usize>; NOFILE],
    pub cwd: u32,
    /// `cwd`'s absolute, normalised path.
    pub cwd_path: Path,
    /// The program inode an embryo is loaded from (one use in the in-use table).
    pub image: Option<u32>,
}

/// What [`Core::spawn`] reserved: the new pid and the program to read and load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exec {
    pub pid: i32,
    pub ino: u32,
    pub size: u32,
    /// The program's name (the path's last component).
    pub name: Name,
}

/// A program inode must be a file of 1..=`IMAGE_MAX` bytes.
fn check_image(st: &Stat) -> SysResult<u32> {
    match st.kind {
        FileType::Dir => Err(Errno::IsDir),
        FileType::Device => Err(Errno::NoExec),
        FileType::File if st.size == 0 || st.size > IMAGE_MAX as u64 => Err(Errno::NoExec),
        FileType::File => Ok(st.size as u32),
    }
}

fn name_of(p: &[u8]) -> Name {
    Name::new(core::str::from_utf8(path::last(p)).unwrap_or("?"))
}

impl Core {
    fn slot(&self, pid: i32) -> Option<usize> {
        self.procs.iter().find(|(_, p)| p.pid == pid).map(|(i, _)| i)
    }

    /// Process `pid`: `Srch` if there is none.
    pub(crate) fn proc(&self, pid: i32) -> SysResult<&Proc> {
        self.slot(pid).and_then(|i| self.procs.get(i)).ok_or(Errno::Srch)
    }

    /// Process `pid` as the caller of a call that gives it something (a descriptor, a
    /// child): `Srch` if there is none or it is a zombie, which holds nothing.
    pub(crate) fn live_proc(&self, pid: i32) -> SysResult<&Proc> {
        self.proc(pid).and_then(|p| if let PState::Zombie(_) = p.state { Err(Errno::Srch) } else { Ok(p) })
    }

    pub(crate) fn proc_mut(&mut self, pid: i32) -> SysResult<&mut Proc> {
        let i = self.slot(pid).ok_or(Errno::Srch)?;
        self.procs.get_mut(i).ok_or(Errno::Srch)
    }

    /// The running process whose program domain is `id` (the caller of a system call).
    pub fn pid_of(&self, id: ProcId) -> Option<i32> {
        self.procs.iter().find(|(_, p)| p.state == PState::Running && p.id == Some(id)).map(|(_, p)| p.pid)
    }

    /// Room for one more process: one slot is always left for pid 1, so a table full of
    /// orphans waiting for a new init can never keep init from starting.
    fn room(&self) -> bool {
        self.procs.len() + usize::from(self.slot(INIT_PID).is_none()) < self.nproc
    }

    fn new_pid(&mut self) -> i32 {
        // Terminates: at most NPROC_MAX pids are in use.
        loop {
            let p = self.next_pid;
            self.next_pid = if p == i32::MAX { INIT_PID + 1 } else { p + 1 };
            if self.slot(p).is_none() {
                return p;
            }
        }
    }

    fn embryo(&mut self, pid: i32, ppid: i32, st: &Stat, prog: &[u8], cwd: u32, cwd_path: Path) -> SysResult<Exec> {
        let size = check_image(st)?;
        let name = name_of(prog);
        let p = Proc {
            pid,
            ppid,
            state: PState::Embryo,
            sleeping: false,
            killed: false,
            exit_code: None,
            id: None,
            name,
            fds: [None; NOFILE],
            cwd,
            cwd_path,
            image: Some(st.inum),
        };
        self.procs.insert(p).ok_or(Errno::Again)?;
        self.inode_get(st.inum);
        Ok(Exec { pid, ino: st.inum, size, name })
    }

    /// Pid 1 as an embryo: the program at `prog` (absolute), the console on descriptors
    /// 0, 1 and 2, the root as its working directory. `Again` while a pid 1 exists.
    pub fn start_init(&mut self, fs: &dyn Fs, prog: &Path) -> SysResult<Exec> {
        let bytes = path::check(prog)?;
        if self.slot(INIT_PID).is_some() {
            return Err(Errno::Again);
        }
        let st = fsr(fs.lookup(ROOT_INUM, *prog))?;
        let e = self.embryo(INIT_PID, 0, &st, bytes, ROOT_INUM, path::root())?;
        if let Err(err) = self.console_stdio(INIT_PID) {
            self.spawn_abort(fs, INIT_PID);
            return Err(err);
        }
        Ok(e)
    }

    /// `spawn`'s first step: a child of `parent` as an embryo, with the program at `prog`
    /// (from `parent`'s working directory) and the descriptors `map` names. Checked in
    /// this order: `Again` when the table is full; the path; `TooBig` past `FDMAP_MAX`
    /// entries, `BadF` if one is not an open descriptor of `parent`; `NoEnt` and the
    /// like from the lookup, `IsDir`/`NoExec` for a program that is not a file of
    /// 1..=`IMAGE_MAX` bytes.
    pub fn spawn(&mut self, fs: &dyn Fs, parent: i32, prog: &Path, map: &FdMap) -> SysResult<Exec> {
        let (cwd, cwd_path) = {
            let p = self.live_proc(parent)?;
            (p.cwd, p.cwd_path)
        };
        if !self.room() {
            return Err(Errno::Again);
        }
        let bytes = path::check(prog)?;
        if map.n as usize > FDMAP_MAX {
            return Err(Errno::TooBig);
        }
        for &fd in &map.fds[..map.n as usize] {
            if fd != -1 {
                self.fd_file(parent, fd)?;
            }
        }
        let st = fsr(fs.lookup(cwd, *prog))?;
        let pid = self.new_pid();
        let e = self.embryo(pid, parent, &st, bytes, cwd, cwd_path)?;
        if let Err(err) = self.dup_map(parent, pid, map) {
            self.spawn_abort(fs, pid);
            return Err(err);
        }
        Ok(e)
    }

    /// `spawn`'s second step: embryo `pid` runs as domain `id` from now on. Returns
    /// true if it was killed meanwhile (the caller kills the domain).
    pub fn spawn_loaded(&mut self, fs: &dyn Fs, pid: i32, id: ProcId) -> bool {
        let Ok(p) = self.proc_mut(pid) else { return true };
        if p.state != PState::Embryo {
            return true;
        }
        p.state = PState::Running;
        p.id = Some(id);
        let killed = p.killed;
        if let Some(ino) = p.image.take() {
            self.inode_put(fs, ino);
        }
        killed
    }

    /// Removes embryo (or never-run process) `pid` whose load failed, as if it had never
    /// been: its descriptors are closed and its parent does not see it.
    pub fn spawn_abort(&mut self, fs: &dyn Fs, pid: i32) {
        self.close_all(fs, pid);
        if let Ok(p) = self.proc_mut(pid) {
            if let Some(ino) = p.image.take() {
                self.inode_put(fs, ino);
            }
        }
        if let Some(i) = self.slot(pid) {
            self.procs.remove(i);
        }
        // A parent waiting for it may now have no children.
        self.wake = true;
    }

    /// Process `pid`'s program ended with `status`: it closes everything it held,
    /// becomes a zombie, and its children become pid 1's. A `Killed` status after an
    /// `exit` becomes that exit's code.
    pub fn ended(&mut self, fs: &dyn Fs, pid: i32, status: ExitStatus) {
        self.close_all(fs, pid);
        let Ok(p) = self.proc_mut(pid) else { return };
        let status = match (status.kind, p.exit_code) {
            (ExitKind::Killed, Some(code)) => ExitStatus::exited(code),
            _ => status,
        };
        p.state = PState::Zombie(status);
        p.id = None;
        p.sleeping = false;
        // Calls its other threads may still be blocked in end with `Intr`.
        p.killed = true;
        let image = p.image.take();
        if let Some(ino) = image {
            self.inode_put(fs, ino);
        }
        for (_, c) in self.procs.iter_mut() {
            if c.ppid == pid {
                c.ppid = INIT_PID;
            }
        }
        self.wake = true;
    }

    /// Removes pid 1 if it is a zombie (it has no parent to wait for it) and returns its
    /// status.
    pub fn reap_init(&mut self) -> Option<ExitStatus> {
        let i = self.slot(INIT_PID)?;
        match self.procs.get(i)?.state {
            PState::Zombie(st) => {
                self.procs.remove(i);
                Some(st)
            }
            _ => None,
        }
    }

    /// `exit(code)`: records the code; returns the domain to kill.
    pub fn exit(&mut self, pid: i32, code: i32) -> Option<ProcId> {
        let p = self.proc_mut(pid).ok()?;
        p.exit_code.get_or_insert(code);
        p.id
    }

    /// `kill(pid)`: marks it killed (its blocked calls return `Intr`) and returns its
    /// domain, if running, for the caller to kill. A zombie is left alone.
    pub fn kill(&mut self, pid: i32) -> SysResult<Option<ProcId>> {
        let p = self.proc_mut(pid)?;
        if let PState::Zombie(_) = p.state {
            return Ok(None);
        }
        p.killed = true;
        let id = p.id;
        self.wake = true;
        Ok(id)
    }

    /// True once `pid` was killed or ended, or if there is no such process: a call
    /// blocked on its behalf has nobody to return to.
    pub fn killed(&self, pid: i32) -> bool {
        self.proc(pid).map_or(true, |p| p.killed)
    }

    /// Marks `pid` blocked (or not) in a system call, for `ps`.
    pub fn set_sleeping(&mut self, pid: i32, sleeping: bool) {
        if let Ok(p) = self.proc_mut(pid) {
            if p.state == PState::Running {
                p.sleeping = sleeping;
            }
        }
    }

    /// `wait(target)`: reaps a zombie child (`target` -1: any child, else that pid).
    /// `Child` if there is no such child, `Inval` for another negative or 0 target,
    /// `Block` while the children are alive (`Intr` if `pid` was killed).
    pub fn wait(&mut self, pid: i32, target: i32) -> SysResult<Poll<Waited>> {
        if target < -1 || target == 0 {
            return Err(Errno::Inval);
        }
        let killed = self.proc(pid)?.killed;
        let mine = |p: &Proc| p.ppid == pid && p.pid != pid && (target == -1 || p.pid == target);
        let zombie = self.procs.iter().find_map(|(i, p)| match p.state {
            PState::Zombie(st) if mine(p) => Some((i, p.pid, st)),
            _ => None,
        });
        if let Some((i, child, status)) = zombie {
            self.procs.remove(i);
            return Ok(Poll::Ready(Waited { pid: child, status }));
        }
        if !self.procs.iter().any(|(_, p)| mine(p)) {
            return Err(Errno::Child);
        }
        if killed {
            return Err(Errno::Intr);
        }
        Ok(Poll::Block)
    }

    /// Processes from pid `from` on, by pid.
    pub fn ps(&self, from: i32) -> ProcTable {
        let blank = ProcRow { pid: 0, ppid: 0, state: ProcState::Embryo, name: Name::default(), domain: 0 };
        let mut t = ProcTable { n: 0, rows: [blank; PS_ROWS], next: None };
        let mut after: Option<i32> = None;
        loop {
            let next = self.procs.iter().map(|(_, p)| p).filter(|p| p.pid >= from && after.is_none_or(|a| p.pid > a)).min_by_key(|p| p.pid);
            let Some(p) = next else { break };
            if t.n as usize == PS_ROWS {
                t.next = Some(p.pid);
                break;
            }
            let state = match p.state {
                PState::Embryo => ProcState::Embryo,
                PState::Running if p.sleeping => ProcState::Sleeping,
                PState::Running => ProcState::Running,
                PState::Zombie(_) => ProcState::Zombie,
            };
            t.rows[t.n as usize] = ProcRow { pid: p.pid, ppid: p.ppid, state, name: p.name, domain: p.id.map_or(0, |id| id.domain) };
            t.n += 1;
            after = Some(p.pid);
        }
        t
    }
}
