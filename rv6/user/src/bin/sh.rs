//! `sh [SCRIPT | -c LINE]`: the shell.
//!
//! Reads lines (from the console, with a `$ ` prompt on standard error; from `SCRIPT`;
//! or just `LINE`), parses each with `ulib::shell` (pipelines `a | b`, redirections
//! `< > >>`, lists `;`, background `&`, quotes, `$?`, `#` comments) and runs it:
//!
//! * a command word without `/` names `/bin/WORD`; one that does not exist prints
//!   `sh: WORD: no such file or directory` and has status 127 (other spawn errors: 126);
//! * the status of a pipeline is its last command's (`ExitStatus::shell_code`); a child
//!   that crashed prints `sh: WORD: crashed: MESSAGE`, one that was killed
//!   `sh: WORD: killed`;
//! * `&` prints `[PID]` (the pipeline's last process) and goes on; finished background
//!   processes are reaped before each prompt (those `ps` shows as zombie children),
//!   printing `[PID] Done STATUS`;
//! * builtins (alone in their pipeline; their redirections are ignored): `cd [DIR]`
//!   (default `/`), `exit [N]` (default: the last status), `wait` (for every background
//!   process).
//!
//! End of input ends the shell with the last status. Children get exactly the
//! descriptors 0, 1, 2 the pipeline gives them: the shell's other descriptors (a script,
//! pipe ends) never leak into them.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;
use ulib::shell::{self, Command, Pipeline};
use ulib::{ExitKind, ExitStatus, LineReader, ProcState, O_APPEND, O_CREATE, O_RDONLY, O_TRUNC, O_WRONLY};

ulib::program!(main);

/// A background process not reaped yet.
struct Job {
    pid: i32,
    name: String,
    /// Printed as `[pid]` when started (the last of its pipeline): reported when done.
    announced: bool,
}

struct Shell {
    status: i32,
    jobs: Vec<Job>,
}

enum Flow {
    Go,
    Exit(i32),
}

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let mut sh = Shell { status: 0, jobs: Vec::new() };
    match argv.get(1).copied() {
        Some("-c") => {
            let Some(line) = argv.get(2) else {
                eprintln!("sh: -c: option requires an argument");
                return 2;
            };
            match sh.run_line(line) {
                Flow::Exit(code) => code,
                Flow::Go => sh.status,
            }
        }
        Some(script) => {
            let fd = match ulib::open(script, O_RDONLY) {
                Ok(fd) => fd,
                Err(e) => {
                    eprintln!("sh: {script}: {}", e.as_str());
                    return 127;
                }
            };
            sh.run_input(LineReader::new(fd.raw()), false)
        }
        None => {
            let console = matches!(ulib::fstat(0), Ok(s) if s.kind == FileKind::Device);
            sh.run_input(LineReader::new(0), console)
        }
    }
}

fn report(name: &str, st: &ExitStatus) {
    match st.kind {
        ExitKind::Exited => {}
        ExitKind::Crashed => eprintln!("sh: {name}: crashed: {}", st.message()),
        ExitKind::Killed => eprintln!("sh: {name}: killed"),
    }
}

impl Shell {
    fn run_input(&mut self, mut input: LineReader<ulib::io::FdSource>, prompt: bool) -> i32 {
        let mut line = String::new();
        loop {
            self.reap();
            if prompt {
                eprint!("$ ");
            }
            match input.read_line(&mut line) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    eprintln!("sh: read: {}", e.as_str());
                    break;
                }
            }
            if let Flow::Exit(code) = self.run_line(&line) {
                return code;
            }
        }
        if prompt {
            eprintln!();
        }
        self.status
    }

    fn run_line(&mut self, line: &str) -> Flow {
        let list = match shell::parse(line, self.status) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("sh: {e}");
                self.status = 2;
                return Flow::Go;
            }
        };
        for p in list {
            if let Flow::Exit(code) = self.run_pipeline(p) {
                return Flow::Exit(code);
            }
        }
        Flow::Go
    }

    /// Runs a builtin if `c` is one: `Some(flow)`.
    fn builtin(&mut self, c: &Command, alone: bool) -> Option<Flow> {
        let name = c.argv.first()?.as_str();
        if !matches!(name, "cd" | "exit" | "wait") {
            return None;
        }
        if !alone {
            eprintln!("sh: {name}: a builtin cannot be part of a pipeline");
            self.status = 1;
            return Some(Flow::Go);
        }
        match name {
            "cd" => {
                let dir = c.argv.get(1).map_or("/", |s| s.as_str());
                self.status = match ulib::chdir(dir) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("sh: cd: {dir}: {}", e.as_str());
                        1
                    }
                };
            }
            "exit" => {
                let code = match c.argv.get(1) {
                    None => self.status,
                    Some(n) => match n.parse::<i32>() {
                        Ok(n) => n,
                        Err(_) => {
                            eprintln!("sh: exit: {n}: numeric argument required");
                            2
                        }
                    },
                };
                return Some(Flow::Exit(code));
            }
            _ => {
                // wait
                while let Some(j) = self.jobs.first() {
                    let pid = j.pid;
                    match ulib::wait(pid) {
                        Ok(w) => self.done(pid, &w.status),
                        Err(_) => {
                            self.jobs.remove(0);
                        }
                    }
                }
                self.status = 0;
            }
        }
        Some(Flow::Go)
    }

    fn run_pipeline(&mut self, p: Pipeline) -> Flow {
        let n = p.commands.len();
        if let Some(flow) = p.commands.first().and_then(|c| if n == 1 { self.builtin(c, true) } else { None }) {
            return flow;
        }
        // Processes started (pid, name), and the status if the last command did not start.
        let mut started: Vec<(i32, String)> = Vec::new();
        let mut last_status = 0;
        let mut last_started = false;
        let mut prev_read: Option<Fd> = None;
        for (i, c) in p.commands.iter().enumerate() {
            let last = i + 1 == n;
            let (next_read, write_end) = if last {
                (None, None)
            } else {
                match ulib::pipe() {
                    Ok((r, w)) => (Some(r), Some(w)),
                    Err(e) => {
                        eprintln!("sh: pipe: {}", e.as_str());
                        last_status = 1;
                        break;
                    }
                }
            };
            let mut status = 0;
            let mut spawned = false;
            if n > 1 && self.builtin(c, false).is_some() {
                status = 1;
            } else if let Some((input, output)) = open_redirects(c) {
                let in_fd = input.as_ref().or(prev_read.as_ref()).map_or(0, Fd::raw);
                let out_fd = output.as_ref().or(write_end.as_ref()).map_or(1, Fd::raw);
                if let Some(word) = c.argv.first() {
                    let path = shell::resolve(word);
                    let fds = FdMap::new(&[in_fd, out_fd, 2]).expect("three descriptors fit a map");
                    match ulib::spawn(&path, &c.argv, fds) {
                        Ok(pid) => {
                            started.push((pid, word.clone()));
                            spawned = true;
                        }
                        Err(Errno::NoEnt) => {
                            eprintln!("sh: {word}: no such file or directory");
                            status = 127;
                        }
                        Err(e) => {
                            eprintln!("sh: {word}: {}", e.as_str());
                            status = 126;
                        }
                    }
                }
            } else {
                status = 1;
            }
            // The shell's copies of this stage's descriptors close here: the write end
            // (so the reader sees the end), the previous read end, the redirections.
            drop(write_end);
            prev_read = next_read;
            if last {
                last_status = status;
                last_started = spawned;
            }
        }
        drop(prev_read);

        if p.background {
            let last = started.len();
            for (i, (pid, name)) in started.into_iter().enumerate() {
                let announced = i + 1 == last && last_started;
                if announced {
                    eprintln!("[{pid}]");
                }
                self.jobs.push(Job { pid, name, announced });
            }
            self.status = if last_started { 0 } else { last_status };
            return Flow::Go;
        }

        let count = started.len();
        for (i, (pid, name)) in started.iter().enumerate() {
            match ulib::wait(*pid) {
                Ok(w) => {
                    report(name, &w.status);
                    if i + 1 == count && last_started {
                        last_status = w.status.shell_code();
                    }
                }
                Err(e) => eprintln!("sh: wait {pid}: {}", e.as_str()),
            }
        }
        self.status = last_status;
        Flow::Go
    }

    /// A background process `pid` ended with `st`: forget it, print `Done` if announced.
    fn done(&mut self, pid: i32, st: &ExitStatus) {
        if let Some(i) = self.jobs.iter().position(|j| j.pid == pid) {
            let j = self.jobs.remove(i);
            report(&j.name, st);
            if j.announced {
                eprintln!("[{pid}] Done {}", st.shell_code());
            }
        }
    }

    /// Reaps the children that ended (zombies), without waiting for the others.
    fn reap(&mut self) {
        if self.jobs.is_empty() {
            return;
        }
        let me = ulib::getpid();
        for row in ulib::ps() {
            if row.ppid == me && row.state == ProcState::Zombie {
                if let Ok(w) = ulib::wait(row.pid) {
                    self.done(row.pid, &w.status);
                }
            }
        }
    }
}

/// Opens a command's redirections: `None` (after saying why) if one cannot be.
fn open_redirects(c: &Command) -> Option<(Option<Fd>, Option<Fd>)> {
    let input = match &c.input {
        Some(path) => match ulib::open(path, O_RDONLY) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("sh: {path}: {}", e.as_str());
                return None;
            }
        },
        None => None,
    };
    let output = match &c.output {
        Some(o) => {
            let flags = O_WRONLY | O_CREATE | if o.append { O_APPEND } else { O_TRUNC };
            match ulib::open(&o.path, flags) {
                Ok(f) => Some(f),
                Err(e) => {
                    eprintln!("sh: {}: {}", o.path, e.as_str());
                    return None;
                }
            }
        }
        None => None,
    };
    Some((input, output))
}
