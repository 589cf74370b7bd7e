//! Running QEMU: [`Boot`] (what to run) → [`Session`] (a live process) → [`Outcome`].
//!
//! Process model: the child is spawned in its own process group (`process_group(0)`, so
//! its pgid is its pid) and, where util-linux `setpriv` exists, with a parent-death signal
//! (`setpriv --pdeathsig KILL`, which then execs QEMU under the same pid), so it also dies
//! if the test process itself is killed. A QEMU that must run inside a network namespace
//! ([`Boot::netns`]) is started as `setpriv ... -- ip netns exec NAME qemu ...`: `ip`
//! enters the namespace and *execs* QEMU (it does not fork for a single command), so the
//! pid, the process group and the parent-death signal are still QEMU's. Four helper
//! threads serve each session:
//! * a serial reader: QEMU's stdout → shared buffer (+ the log file), condvar notified;
//! * a stderr reader: QEMU's stderr → shared buffer;
//! * a waiter: reaps the child and publishes its status;
//! * a writer: [`Session::send`] queues bytes to it, so a guest that stops reading its
//!   UART can never block a test.
//!
//! Every way a session ends — [`Session::wait`] reaching its deadline, or the
//! `Session` being dropped (e.g. during a panic) — sends SIGKILL to the whole group.
//! After a normal exit the group is killed too, to catch any helper QEMU left behind.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::qemu::{
    shell_quote, workspace_root, Accel, Artifacts, Firmware, QemuSpec, SerialMode, QBOOT_PATH,
};
use crate::serial::{self, Frame, TAIL_LINES};
use crate::{Exit, HarnessError};

/// Default deadline of a QEMU run when `FROND_TEST_TIMEOUT` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to wait for the kernel to reap a SIGKILLed QEMU.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long to wait for the output pipes to drain after QEMU exited.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The wrapper that sets a parent-death signal before exec'ing QEMU.
const SETPRIV: &str = "/usr/bin/setpriv";
/// Where `ip netns add` puts its namespaces (bind mounts named after them).
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// The run deadline: `FROND_TEST_TIMEOUT` (seconds) if set, else [`DEFAULT_TIMEOUT`].
///
/// Panics if `FROND_TEST_TIMEOUT` is not a positive number.
pub fn default_timeout() -> Duration {
    match std::env::var("FROND_TEST_TIMEOUT") {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs > 0.0 => Duration::from_secs_f64(secs),
            _ => {
                panic!("FROND_TEST_TIMEOUT={v:?} is invalid: expected a positive number of seconds")
            }
        },
        _ => DEFAULT_TIMEOUT,
    }
}

/// Where serial logs go: `<workspace>/target/qemu-logs`.
pub fn log_dir() -> PathBuf {
    workspace_root().join("target").join("qemu-logs")
}

/// True if `FROND_KEEP_LOGS` asks to keep the logs of passing runs too.
pub fn keep_logs() -> bool {
    std::env::var("FROND_KEEP_LOGS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Turns a test name or command line into a safe file stem: ASCII letters, digits, `-`,
/// `_` and `.` only, runs of anything else collapsed to one `_`, no leading/trailing
/// `.`/`_`, at most 80 characters, never empty.
pub fn sanitize_log_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    let mut out = out.trim_matches(['.', '_']).to_string();
    out.truncate(80);
    let out = out.trim_end_matches(['.', '_']).to_string();
    if out.is_empty() {
        "qemu".to_string()
    } else {
        out
    }
}

/// The log name for a run without an explicit name: the current thread's name (libtest
/// names each test's thread after the test), else derived from the command line.
fn default_log_name(cmdline: &str) -> String {
    if let Some(name) = thread::current().name().filter(|n| *n != "main") {
        return name.to_string();
    }
    let test = cmdline
        .split_whitespace()
        .find_map(|tok| tok.strip_prefix("test="));
    match test {
        Some(t) => format!("ktest-{t}"),
        None if cmdline.trim().is_empty() => "console".to_string(),
        None => cmdline.to_string(),
    }
}

/// `<dir>/<sanitized name>.log`; the second run with the same name in this process gets
/// `-2`, and so on. (Across processes the same name is reused, so reruns overwrite.)
fn unique_log_path(dir: &Path, name: &str) -> PathBuf {
    static USED: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());
    let base = sanitize_log_name(name);
    let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
    let n = used.entry(base.clone()).or_insert(0);
    *n += 1;
    let stem = if *n == 1 { base } else { format!("{base}-{n}") };
    dir.join(format!("{stem}.log"))
}

fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Looks `program` up in `PATH` (if it has no `/`), so a missing QEMU is reported as such
/// instead of as a wrapper's exit status.
pub(crate) fn resolve_program(program: &OsStr) -> Result<PathBuf, HarnessError> {
    let p = Path::new(program);
    if p.components().count() > 1 {
        return Ok(p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(p))
        .find(|cand| cand.is_file())
        .ok_or_else(|| {
            HarnessError::io(
                format!("cannot find {} in PATH", p.display()),
                std::io::ErrorKind::NotFound.into(),
            )
        })
}

#[derive(Default)]
struct State {
    serial: Vec<u8>,
    serial_eof: bool,
    stderr: Vec<u8>,
    stderr_eof: bool,
    status: Option<ExitStatus>,
    reaped_at: Option<Instant>,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `done(state)` or `deadline`; returns the guard either way.
    fn wait_until<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        deadline: Instant,
        done: impl Fn(&State) -> bool,
    ) -> MutexGuard<'a, State> {
        while !done(&st) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .cond
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        st
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Serial,
    Stderr,
}

fn pump(mut src: impl Read, shared: &Shared, stream: Stream, mut log: Option<File>) {
    let mut buf = [0u8; 4096];
    loop {
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(f) = log.as_mut() {
                    if f.write_all(&buf[..n]).is_err() {
                        log = None;
                    }
                }
                let mut st = shared.lock();
                match stream {
                    Stream::Serial => st.serial.extend_from_slice(&buf[..n]),
                    Stream::Stderr => st.stderr.extend_from_slice(&buf[..n]),
                }
                drop(st);
                shared.cond.notify_all();
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let mut st = shared.lock();
    match stream {
        Stream::Serial => st.serial_eof = true,
        Stream::Stderr => st.stderr_eof = true,
    }
    drop(st);
    shared.cond.notify_all();
}

fn kill_group(pgid: i32) {
    // ESRCH (group already empty) is the normal case after a clean exit.
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
}

/// A `Command` for `program` (already resolved) with the harness's process guards: under
/// `setpriv --pdeathsig KILL` where it exists, and inside network namespace `netns` (as
/// `ip netns exec NETNS program`, which execs `program` under the same pid) if given.
/// Its own process group; stdio not configured. Every long-lived child of the harness
/// (QEMU, the packet tools) is built here; short commands run to completion are not.
pub(crate) fn guarded_command(
    program: &Path,
    netns: Option<&str>,
) -> Result<Command, HarnessError> {
    let mut argv: Vec<OsString> = Vec::new();
    if let Some(ns) = netns {
        let ip = resolve_program("ip".as_ref())?;
        argv.extend([
            ip.into_os_string(),
            "netns".into(),
            "exec".into(),
            ns.into(),
        ]);
    }
    argv.push(program.as_os_str().to_os_string());
    let mut cmd = if Path::new(SETPRIV).is_file() {
        let mut c = Command::new(SETPRIV);
        c.args(["--pdeathsig", "KILL", "--"]).args(&argv);
        c
    } else {
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c
    };
    cmd.process_group(0);
    Ok(cmd)
}

/// Options of the generic process runner behind [`Boot`].
pub(crate) struct SpawnOptions {
    /// Log name (sanitized and made unique here).
    pub name: String,
    /// Hard cap on the session's lifetime.
    pub timeout: Duration,
    /// Where to write the serial log; `None` = no log.
    pub log_dir: Option<PathBuf>,
    /// Shell form of the command, for messages.
    pub display: String,
    /// Network namespace to run the process in (must exist), `None` = the caller's.
    pub netns: Option<String>,
}

/// Spawns `program args...` in its own process group with piped stdio and starts the
/// helper threads. The single place where children are created.
pub(crate) fn spawn_process(
    program: &OsStr,
    args: &[OsString],
    opts: SpawnOptions,
) -> Result<Session, HarnessError> {
    let program = resolve_program(program)?;
    if let Some(ns) = &opts.netns {
        // Checked here so a missing namespace is a harness error, not `ip`'s exit status.
        let path = Path::new(NETNS_DIR).join(ns);
        if !path.exists() {
            return Err(HarnessError::io(
                format!(
                    "network namespace {ns:?} does not exist ({} missing)",
                    path.display()
                ),
                std::io::ErrorKind::NotFound.into(),
            ));
        }
    }
    let mut cmd = guarded_command(&program, opts.netns.as_deref())?;
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let (log_path, log_file) = match &opts.log_dir {
        Some(dir) => {
            fs::create_dir_all(dir).map_err(|e| {
                HarnessError::io(format!("cannot create log directory {}", dir.display()), e)
            })?;
            let path = unique_log_path(dir, &opts.name);
            let file = File::create(&path).map_err(|e| {
                HarnessError::io(format!("cannot create serial log {}", path.display()), e)
            })?;
            (Some(path), Some(file))
        }
        None => (None, None),
    };

    let started = Instant::now();
    let mut child: Child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            if let Some(p) = &log_path {
                let _ = fs::remove_file(p);
            }
            return Err(HarnessError::io(
                format!("cannot start {}", program.display()),
                e,
            ));
        }
    };
    let pid = child.id() as i32;
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        cond: Condvar::new(),
    });

    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();

    let session = Session {
        shared: Arc::clone(&shared),
        pid,
        input: Some(tx),
        cursor: 0,
        started,
        deadline: deadline_after(opts.timeout),
        name: opts.name,
        command: opts.display,
        log_path,
        done: false,
    };
    // If a helper cannot start, `?` drops `session`, which kills the group.
    let helper = |what: &str, f: Box<dyn FnOnce() + Send>| {
        thread::Builder::new()
            .name(format!("frond-qemu-{what}-{pid}"))
            .spawn(f)
            .map(drop)
            .map_err(|e| HarnessError::io("cannot start harness thread", e))
    };
    let sh = Arc::clone(&shared);
    helper(
        "waiter",
        Box::new(move || {
            let status = child.wait();
            let mut st = sh.lock();
            // wait() only fails if the child was already reaped; report it as killed.
            st.status = Some(status.unwrap_or_else(|_| {
                std::os::unix::process::ExitStatusExt::from_raw(Signal::SIGKILL as i32)
            }));
            st.reaped_at = Some(Instant::now());
            drop(st);
            sh.cond.notify_all();
        }),
    )?;
    let sh = Arc::clone(&shared);
    helper(
        "serial",
        Box::new(move || pump(stdout, &sh, Stream::Serial, log_file)),
    )?;
    let sh = Arc::clone(&shared);
    helper(
        "stderr",
        Box::new(move || pump(stderr, &sh, Stream::Stderr, None)),
    )?;
    helper(
        "stdin",
        Box::new(move || {
            for chunk in rx {
                if stdin
                    .write_all(&chunk)
                    .and_then(|()| stdin.flush())
                    .is_err()
                {
                    break;
                }
            }
        }),
    )?;
    Ok(session)
}

/// What to boot: a builder for one QEMU run of the Frond kernel.
///
/// ```no_run
/// use std::time::Duration;
/// use frond_tests::{Boot, Exit};
/// let out = Boot::new().cmdline("test=boot").timeout(Duration::from_secs(30)).run();
/// out.assert_pass();
/// let mut s = Boot::new().spawn();
/// s.expect("frond> ", Duration::from_secs(10)).unwrap();
/// s.send(b"quit\n").unwrap();
/// s.wait(Duration::from_secs(10)).assert_exit(Exit::Pass);
/// ```
#[derive(Debug, Clone)]
pub struct Boot {
    cmdline: String,
    timeout: Duration,
    qemu_args: Vec<OsString>,
    stdin: Vec<u8>,
    name: Option<String>,
    accel: Option<Accel>,
    firmware: Option<Firmware>,
    kernel: Option<PathBuf>,
    boot_module: Option<PathBuf>,
    netns: Option<String>,
}

impl Default for Boot {
    fn default() -> Self {
        Boot::new()
    }
}

impl Boot {
    /// Empty command line (the interactive console), [`default_timeout`], no extra args.
    pub fn new() -> Boot {
        Boot {
            cmdline: String::new(),
            timeout: default_timeout(),
            qemu_args: Vec::new(),
            stdin: Vec::new(),
            name: None,
            accel: None,
            firmware: None,
            kernel: None,
            boot_module: None,
            netns: None,
        }
    }

    /// Boots this kernel image instead of `FROND_KERNEL` (e.g. another OS as a baseline;
    /// with [`Boot::boot_module`] as its initrd, Frond's build artifacts are not needed).
    pub fn kernel(mut self, path: impl Into<PathBuf>) -> Boot {
        self.kernel = Some(path.into());
        self
    }

    /// Runs QEMU inside the network namespace `name` (which must exist, e.g. a
    /// [`crate::net::Netns`]), as `ip netns exec NAME qemu ...`; taps named in
    /// [`Boot::qemu_args`] are then opened in that namespace. The process model is
    /// unchanged: `ip` execs QEMU, so the group kill still covers it.
    pub fn netns(mut self, name: impl Into<String>) -> Boot {
        self.netns = Some(name.into());
        self
    }

    /// Boots with this boot module instead of `FROND_BOOT_MODULE` (e.g. one with extra,
    /// deliberately damaged domain images).
    pub fn boot_module(mut self, path: impl Into<PathBuf>) -> Boot {
        self.boot_module = Some(path.into());
        self
    }

    /// The kernel command line, e.g. `"test=boot"`.
    pub fn cmdline(mut self, cmdline: impl Into<String>) -> Boot {
        self.cmdline = cmdline.into();
        self
    }

    /// Hard deadline for the whole run (for a [`Session`]: its whole lifetime).
    pub fn timeout(mut self, timeout: Duration) -> Boot {
        self.timeout = timeout;
        self
    }

    /// Appends QEMU arguments (after the standard ones, before `FROND_QEMU_ARGS`).
    pub fn qemu_args<I, S>(mut self, args: I) -> Boot
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.qemu_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Bytes to type into the serial port as soon as QEMU starts.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Boot {
        self.stdin = bytes.into();
        self
    }

    /// Name of the serial log (default: the test's name, i.e. the current thread's name).
    pub fn name(mut self, name: impl Into<String>) -> Boot {
        self.name = Some(name.into());
        self
    }

    /// Uses this accelerator whatever `FROND_ACCEL` and the host say (e.g. benchmarks
    /// that must run under TCG).
    pub fn accel(mut self, accel: Accel) -> Boot {
        self.accel = Some(accel);
        self
    }

    /// Boots with this firmware whatever `FROND_BIOS` says; an explicit
    /// [`Firmware::Qboot`] that is not installed is an error, not a silent fallback.
    pub fn firmware(mut self, firmware: Firmware) -> Boot {
        self.firmware = Some(firmware);
        self
    }

    /// The QEMU command this boot would run (reads the environment; artifacts must exist).
    pub fn spec(&self) -> Result<QemuSpec, HarnessError> {
        let artifacts = Artifacts::locate_with(self.kernel.clone(), self.boot_module.clone())?;
        let mut spec = QemuSpec::from_env_with(artifacts, &self.cmdline, SerialMode::Batch)?;
        if let Some(accel) = self.accel {
            spec.accel = accel;
        }
        if let Some(firmware) = self.firmware {
            spec.bios = firmware.bios(Path::new(QBOOT_PATH).is_file())?;
        }
        let from_env = std::mem::take(&mut spec.extra_args);
        spec.extra_args = self.qemu_args.clone();
        spec.extra_args.extend(from_env);
        Ok(spec)
    }

    /// Starts QEMU and returns the live session.
    pub fn try_spawn(self) -> Result<Session, HarnessError> {
        let spec = self.spec()?;
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| default_log_name(&self.cmdline));
        let mut session = spawn_process(
            spec.qemu.as_os_str(),
            &spec.args(),
            SpawnOptions {
                name,
                timeout: self.timeout,
                log_dir: Some(log_dir()),
                display: match &self.netns {
                    Some(ns) => format!(
                        "ip netns exec {} {}",
                        shell_quote(ns.as_ref()),
                        spec.to_shell()
                    ),
                    None => spec.to_shell(),
                },
                netns: self.netns.clone(),
            },
        )?;
        if !self.stdin.is_empty() {
            session.send(&self.stdin)?;
        }
        Ok(session)
    }

    /// Like [`Boot::try_spawn`], panicking on a harness error (e.g. "run `make build`").
    #[track_caller]
    pub fn spawn(self) -> Session {
        self.try_spawn()
            .unwrap_or_else(|e| panic!("frond-tests: {e}"))
    }

    /// Runs QEMU to completion (or to the timeout).
    pub fn try_run(self) -> Result<Outcome, HarnessError> {
        let timeout = self.timeout;
        Ok(self.try_spawn()?.wait(timeout))
    }

    /// Like [`Boot::try_run`], panicking on a harness error (e.g. "run `make build`").
    #[track_caller]
    pub fn run(self) -> Outcome {
        self.try_run()
            .unwrap_or_else(|e| panic!("frond-tests: {e}"))
    }
}

/// A running QEMU. Dropping it without [`Session::wait`] kills QEMU's process group
/// (and keeps the serial log).
///
/// Create and finish a session on the same thread: the parent-death signal is tied to
/// the thread that spawned QEMU.
pub struct Session {
    shared: Arc<Shared>,
    pid: i32,
    input: Option<Sender<Vec<u8>>>,
    cursor: usize,
    started: Instant,
    deadline: Instant,
    name: String,
    command: String,
    log_path: Option<PathBuf>,
    done: bool,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("log_path", &self.log_path)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// QEMU's pid, which is also its process group id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// How QEMU ended, if it already has (does not wait).
    pub fn exited(&self) -> Option<Exit> {
        self.shared.lock().status.map(Exit::from_status)
    }

    /// Where the serial output is being logged.
    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// All serial output so far.
    pub fn serial(&self) -> String {
        lossy(&self.shared.lock().serial)
    }

    /// Waits until `pattern` appears in the serial output after the previous match, and
    /// returns the text from there up to and including the match.
    ///
    /// Never waits past the session's own deadline. Fails if the time runs out or QEMU
    /// ends first; the error shows the unmatched output and the log path.
    pub fn expect(&mut self, pattern: &str, timeout: Duration) -> Result<String, HarnessError> {
        let started = Instant::now();
        let deadline = deadline_after(timeout).min(self.deadline);
        let needle = pattern.as_bytes();
        let mut scan_from = self.cursor;
        let mut st = self.shared.lock();
        loop {
            if let Some(pos) = find(&st.serial[scan_from..], needle) {
                let end = scan_from + pos + needle.len();
                let text = lossy(&st.serial[self.cursor..end]);
                self.cursor = end;
                return Ok(text);
            }
            // A match may straddle the old end of the buffer.
            scan_from = st
                .serial
                .len()
                .saturating_sub(needle.len().saturating_sub(1))
                .max(self.cursor);
            if st.serial_eof {
                let st = self
                    .shared
                    .wait_until(st, deadline_after(KILL_GRACE), |s| s.status.is_some());
                return Err(HarnessError::ExitedBeforeMatch {
                    pattern: pattern.to_string(),
                    exit: st.status.map(Exit::from_status),
                    unmatched: lossy(&st.serial[self.cursor..]),
                    stderr: lossy(&st.stderr),
                    log_path: self.log_path.clone(),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(HarnessError::ExpectTimeout {
                    pattern: pattern.to_string(),
                    waited: now - started,
                    unmatched: lossy(&st.serial[self.cursor..]),
                    log_path: self.log_path.clone(),
                });
            }
            st = self
                .shared
                .cond
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Queues `bytes` for QEMU's stdin (the serial port's input). Never blocks.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), HarnessError> {
        self.input
            .as_ref()
            .ok_or(HarnessError::StdinClosed)?
            .send(bytes.to_vec())
            .map_err(|_| HarnessError::StdinClosed)
    }

    /// Closes QEMU's stdin after the bytes already queued.
    pub fn close_stdin(&mut self) {
        self.input = None;
    }

    /// Waits for QEMU to exit, at most `timeout` (and never past the session's deadline);
    /// on timeout kills the process group and reports [`Exit::Timeout`].
    pub fn wait(mut self, timeout: Duration) -> Outcome {
        let deadline = deadline_after(timeout).min(self.deadline);
        let shared = Arc::clone(&self.shared);
        let st = shared.wait_until(shared.lock(), deadline, |s| s.status.is_some());
        let timed_out = st.status.is_none();
        drop(st);
        if timed_out {
            kill_group(self.pid);
        }
        let killed_at = Instant::now();
        let st = shared.wait_until(shared.lock(), deadline_after(KILL_GRACE), |s| {
            s.status.is_some()
        });
        let status = st.status;
        let reaped_at = st.reaped_at;
        drop(st);
        // Stragglers: anything QEMU left in its group. Also closes pipes they hold.
        kill_group(self.pid);
        self.done = true;
        self.input = None;
        let st = shared.wait_until(shared.lock(), deadline_after(DRAIN_GRACE), |s| {
            s.serial_eof && s.stderr_eof
        });
        let exit = match (timed_out, status) {
            (false, Some(status)) => Exit::from_status(status),
            _ => Exit::Timeout,
        };
        let ended = if timed_out {
            killed_at
        } else {
            reaped_at.unwrap_or(killed_at)
        };
        Outcome {
            exit,
            serial: lossy(&st.serial),
            stderr: lossy(&st.stderr),
            wall: ended.saturating_duration_since(self.started),
            log_path: self.log_path.take(),
            name: std::mem::take(&mut self.name),
            command: std::mem::take(&mut self.command),
            expected: AtomicBool::new(exit.is_pass()),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.input = None;
        let exited = self.shared.lock().status.map(Exit::from_status);
        kill_group(self.pid);
        let st = self
            .shared
            .wait_until(self.shared.lock(), deadline_after(KILL_GRACE), |s| {
                s.status.is_some()
            });
        drop(st);
        kill_group(self.pid);
        if thread::panicking() {
            let log = self
                .log_path
                .as_ref()
                .map_or("(none)".to_string(), |p| p.display().to_string());
            let how = match exited {
                Some(exit) => format!("had ended ({exit})"),
                None => "killed".to_string(),
            };
            eprintln!(
                "frond-tests: QEMU session `{}` (pid {}) {how}; serial log: {log}",
                self.name, self.pid
            );
        }
    }
}

/// How a QEMU run ended, with everything it printed.
///
/// The serial log of an *expected* run — one that passed, or whose exit a successful
/// [`Outcome::assert_exit`] declared expected (e.g. a test that must fault) — is deleted
/// when the `Outcome` is dropped, unless `FROND_KEEP_LOGS=1` or the thread is panicking
/// (a later assertion on the output failed; then its path is printed). Any other log is
/// kept.
pub struct Outcome {
    pub exit: Exit,
    /// Everything QEMU wrote to stdout (the guest's serial port), lossily UTF-8.
    pub serial: String,
    /// Everything QEMU wrote to stderr.
    pub stderr: String,
    /// From spawn until QEMU was reaped (or killed).
    pub wall: Duration,
    /// The serial log (exists while this `Outcome` is alive).
    pub log_path: Option<PathBuf>,
    /// The run's log name.
    pub name: String,
    /// The QEMU command, shell-quoted.
    pub command: String,
    /// Whether the run is what the test wanted (pass, or a matched `assert_exit`).
    expected: AtomicBool,
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outcome")
            .field("exit", &self.exit)
            .field("wall", &self.wall)
            .field("log_path", &self.log_path)
            .field("serial_len", &self.serial.len())
            .finish_non_exhaustive()
    }
}

impl Outcome {
    /// A multi-line description for failure messages: exit and its meaning, command,
    /// wall time, log path, the last lines of serial output and QEMU's stderr.
    pub fn report(&self) -> String {
        let log = self
            .log_path
            .as_ref()
            .map_or("(none)".to_string(), |p| p.display().to_string());
        let mut s = format!(
            "QEMU run `{}` ended with {}: {}\n  command:    {}\n  wall time:  {:.2?}\n  serial log: {}\n--- last {} lines of serial ---\n{}",
            self.name,
            self.exit,
            self.exit.explain(),
            self.command,
            self.wall,
            log,
            TAIL_LINES,
            serial::tail(&self.serial, TAIL_LINES)
        );
        if !self.stderr.trim().is_empty() {
            s.push_str("--- qemu stderr ---\n");
            s.push_str(&serial::tail(&self.stderr, TAIL_LINES));
        }
        s
    }

    /// Panics with [`Outcome::report`] unless QEMU exited 33.
    #[track_caller]
    pub fn assert_pass(&self) -> &Self {
        self.assert_exit(Exit::Pass)
    }

    /// Panics with [`Outcome::report`] unless the run ended with `expected`.
    #[track_caller]
    pub fn assert_exit(&self, expected: Exit) -> &Self {
        if self.exit != expected {
            panic!("expected {expected}, got {}\n{}", self.exit, self.report());
        }
        self.expected.store(true, Ordering::Relaxed);
        self
    }

    /// Panics with [`Outcome::report`] unless the serial output contains `needle`.
    #[track_caller]
    pub fn assert_serial_contains(&self, needle: &str) -> &Self {
        if !self.serial.contains(needle) {
            panic!("serial output lacks {needle:?}\n{}", self.report());
        }
        self
    }

    /// The `ktest-metric key=value` figures the kernel printed. Panics (with the report)
    /// on a malformed metric line.
    #[track_caller]
    pub fn metrics(&self) -> BTreeMap<String, i64> {
        serial::parse_metrics(&self.serial)
            .unwrap_or_else(|e| panic!("bad ktest-metric output: {e}\n{}", self.report()))
    }

    /// One metric; panics (with the report) if the kernel did not print it.
    #[track_caller]
    pub fn metric(&self, key: &str) -> i64 {
        let metrics = self.metrics();
        match metrics.get(key) {
            Some(v) => *v,
            None => panic!(
                "kernel printed no `ktest-metric {key}=...` (has: {:?})\n{}",
                metrics.keys().collect::<Vec<_>>(),
                self.report()
            ),
        }
    }

    /// The first backtrace in the serial output.
    pub fn backtrace(&self) -> Vec<Frame> {
        serial::parse_backtrace(&self.serial)
    }

    /// Panics with [`Outcome::report`] unless a backtrace frame's symbol contains `symbol`
    /// (e.g. `ktest::page_fault`).
    #[track_caller]
    pub fn assert_backtrace_names(&self, symbol: &str) -> &Self {
        let frames = self.backtrace();
        if !frames
            .iter()
            .any(|f| f.symbol.as_deref().is_some_and(|s| s.contains(symbol)))
        {
            panic!(
                "no backtrace frame in {symbol}: {frames:#?}\n{}",
                self.report()
            );
        }
        self
    }

    /// The first `NAME=0x...` register value in the serial output.
    pub fn register(&self, name: &str) -> Option<u64> {
        serial::register(&self.serial, name)
    }

    /// The names in the `ktest-list:` line, if any.
    pub fn ktest_list(&self) -> Option<Vec<String>> {
        serial::parse_ktest_list(&self.serial)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.report())
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        let Some(path) = &self.log_path else { return };
        if !self.expected.load(Ordering::Relaxed) || keep_logs() {
            return;
        }
        if thread::panicking() {
            eprintln!(
                "frond-tests: serial log of run `{}` kept: {}",
                self.name,
                path.display()
            );
        } else {
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::AtomicU32;

    fn temp_log_dir() -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "frond-tests-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sh(script: &str, timeout: Duration, log_dir: Option<PathBuf>) -> Session {
        spawn_process(
            "sh".as_ref(),
            &["-c".into(), script.into()],
            SpawnOptions {
                name: format!("sh {script}"),
                timeout,
                log_dir,
                display: format!("sh -c {script:?}"),
                netns: None,
            },
        )
        .unwrap()
    }

    /// (pid, state) of every process whose process group is `pgid`.
    fn group_members(pgid: i32) -> Vec<(i32, char)> {
        let mut out = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid pgrp ..."; comm may contain spaces and parens.
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            if fields.len() > 2 && fields[2].parse() == Ok(pgid) {
                out.push((pid, fields[0].chars().next().unwrap_or('?')));
            }
        }
        out
    }

    #[test]
    fn log_names_are_sanitized() {
        assert_eq!(sanitize_log_name("boot"), "boot");
        assert_eq!(sanitize_log_name("test=boot"), "test_boot");
        assert_eq!(sanitize_log_name("run::tests::kill"), "run_tests_kill");
        assert_eq!(sanitize_log_name("../../etc/passwd"), "etc_passwd");
        assert_eq!(sanitize_log_name("a b\tc\nd"), "a_b_c_d");
        assert_eq!(sanitize_log_name("ünïcode-ok.1"), "n_code-ok.1");
        assert_eq!(sanitize_log_name(""), "qemu");
        assert_eq!(sanitize_log_name("///"), "qemu");
        assert_eq!(sanitize_log_name(&"x".repeat(200)).len(), 80);
    }

    #[test]
    fn default_names() {
        // libtest names this thread after the test.
        assert_eq!(default_log_name("test=boot"), "run::tests::default_names");
        let from_main = thread::Builder::new()
            .name("main".into())
            .spawn(|| {
                [
                    default_log_name("test=page_fault log=debug"),
                    default_log_name(""),
                    default_log_name("foo=bar"),
                ]
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(from_main, ["ktest-page_fault", "console", "foo=bar"]);
    }

    #[test]
    fn repeated_log_names_get_suffixes() {
        let dir = Path::new("/nonexistent");
        let a = unique_log_path(dir, "repeat me");
        let b = unique_log_path(dir, "repeat me");
        assert_eq!(a, dir.join("repeat_me.log"));
        assert_eq!(b, dir.join("repeat_me-2.log"));
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        let session = sh("sleep 100 & sleep 100", Duration::from_secs(1), None);
        let pgid = session.pid();
        // Wait for the shell to start both sleeps (the shell may exec the last one).
        let until = Instant::now() + Duration::from_secs(5);
        let mut members = group_members(pgid);
        while members.len() < 2 && Instant::now() < until {
            thread::sleep(Duration::from_millis(20));
            members = group_members(pgid);
        }
        assert!(
            members.len() >= 2,
            "expected >= 2 processes in group {pgid}: {members:?}"
        );

        let t = Instant::now();
        let out = session.wait(Duration::from_secs(100));
        assert_eq!(out.exit, Exit::Timeout, "{out}");
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "took {:?}",
            t.elapsed()
        );
        assert!(out.wall >= Duration::from_millis(900), "{:?}", out.wall);

        // Killed orphans are reaped by init; a zombie is dead too.
        let until = Instant::now() + Duration::from_secs(5);
        let mut alive: Vec<_>;
        loop {
            alive = group_members(pgid)
                .into_iter()
                .filter(|(_, state)| *state != 'Z')
                .collect();
            if alive.is_empty() || Instant::now() > until {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        assert!(alive.is_empty(), "still running in group {pgid}: {alive:?}");
        for (pid, _) in members {
            let gone = !Path::new(&format!("/proc/{pid}")).exists()
                || group_members(pgid)
                    .iter()
                    .any(|&(p, s)| p == pid && s == 'Z');
            assert!(gone, "pid {pid} survived");
        }
    }

    #[test]
    fn dropping_a_session_kills_the_group() {
        let session = sh("sleep 100 & sleep 100", Duration::from_secs(100), None);
        let pgid = session.pid();
        thread::sleep(Duration::from_millis(100));
        drop(session);
        let until = Instant::now() + Duration::from_secs(5);
        while group_members(pgid).iter().any(|&(_, s)| s != 'Z') {
            assert!(Instant::now() < until, "group {pgid} survived the drop");
            thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn interactive_pass_deletes_log() {
        let dir = temp_log_dir();
        let mut s = sh(
            "printf 'frond> '; read cmd; echo \"you said $cmd\"; printf 'frond> '; read cmd; exit 33",
            Duration::from_secs(20),
            Some(dir.clone()),
        );
        let log = s.log_path().unwrap().to_path_buf();
        assert_eq!(
            s.expect("frond> ", Duration::from_secs(10)).unwrap(),
            "frond> "
        );
        s.send(b"help\n").unwrap();
        let reply = s.expect("frond> ", Duration::from_secs(10)).unwrap();
        assert_eq!(reply, "you said help\nfrond> ");
        s.send(b"quit\n").unwrap();
        let out = s.wait(Duration::from_secs(10));
        out.assert_pass();
        assert_eq!(out.serial, "frond> you said help\nfrond> ");
        assert_eq!(fs::read_to_string(&log).unwrap(), out.serial);
        let keep = keep_logs();
        drop(out);
        assert_eq!(
            log.exists(),
            keep,
            "a passing run's log is removed unless FROND_KEEP_LOGS"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn failing_run_keeps_log_and_reports_it() {
        let dir = temp_log_dir();
        let script = "i=0; while [ $i -lt 100 ]; do echo \"line $i\"; i=$((i+1)); done; echo oops >&2; exit 35";
        let out =
            sh(script, Duration::from_secs(20), Some(dir.clone())).wait(Duration::from_secs(20));
        assert_eq!(out.exit, Exit::Fail);
        assert!(out.metrics().is_empty());
        let log = out.log_path.clone().unwrap();
        let msg = catch_unwind(AssertUnwindSafe(|| {
            out.assert_pass();
        }))
        .unwrap_err();
        let msg = msg.downcast_ref::<String>().unwrap();
        assert!(msg.contains("expected Pass (33), got Fail (35)"), "{msg}");
        assert!(msg.contains(&log.display().to_string()), "{msg}");
        assert!(msg.contains("line 99") && msg.contains("line 40"), "{msg}");
        assert!(!msg.contains("line 39\n"), "only the last 60 lines: {msg}");
        assert!(msg.contains("oops"), "stderr is included: {msg}");
        drop(out);
        assert!(log.exists(), "a failing run's log is kept");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn expected_failure_deletes_log() {
        let dir = temp_log_dir();
        let out = sh(
            "echo fault; exit 35",
            Duration::from_secs(20),
            Some(dir.clone()),
        )
        .wait(Duration::from_secs(20));
        let log = out.log_path.clone().unwrap();
        out.assert_exit(Exit::Fail);
        let keep = keep_logs();
        drop(out);
        assert_eq!(
            log.exists(),
            keep,
            "the test expected exit 35: its log is not kept"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn exit_codes_and_metrics_through_a_real_process() {
        let out = sh(
            "echo 'ktest-metric a=5'; echo 'ktest-metric b=7'; exit 0",
            Duration::from_secs(20),
            None,
        )
        .wait(Duration::from_secs(20));
        assert_eq!(out.exit, Exit::Error(0));
        assert_eq!(out.metric("a"), 5);
        assert_eq!(out.metrics().len(), 2);
        let out = sh("kill -TERM $$", Duration::from_secs(20), None).wait(Duration::from_secs(20));
        assert_eq!(out.exit, Exit::Signal(15));
    }

    #[test]
    fn expect_reports_exit_and_timeout() {
        let mut s = sh("echo hello; exit 0", Duration::from_secs(20), None);
        match s.expect("frond> ", Duration::from_secs(10)) {
            Err(HarnessError::ExitedBeforeMatch {
                exit, unmatched, ..
            }) => {
                assert_eq!(exit, Some(Exit::Error(0)));
                assert_eq!(unmatched, "hello\n");
            }
            other => panic!("{other:?}"),
        }

        let mut s = sh("echo hi; sleep 100", Duration::from_secs(20), None);
        let t = Instant::now();
        let err = s.expect("never", Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, HarnessError::ExpectTimeout { .. }), "{err}");
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(err.to_string().contains("hi"), "{err}");
        // The session's own deadline caps a longer expect.
        let mut s = sh("sleep 100", Duration::from_millis(300), None);
        let t = Instant::now();
        assert!(s.expect("never", Duration::from_secs(100)).is_err());
        assert!(t.elapsed() < Duration::from_secs(3));
        assert_eq!(s.wait(Duration::from_secs(100)).exit, Exit::Timeout);
    }

    #[test]
    fn expect_matches_across_chunks() {
        let mut s = sh(
            "printf 'fro'; sleep 0.2; printf 'nd> rest'; sleep 0.2; printf 'X'",
            Duration::from_secs(20),
            None,
        );
        assert_eq!(
            s.expect("frond> ", Duration::from_secs(10)).unwrap(),
            "frond> "
        );
        assert_eq!(s.expect("X", Duration::from_secs(10)).unwrap(), "restX");
        assert_eq!(s.wait(Duration::from_secs(10)).exit, Exit::Error(0));
    }

    /// `Boot::netns` relies on `ip netns exec` exec'ing the program: the process the
    /// harness spawned (and whose group it kills) must be the program itself, inside the
    /// namespace. Root only.
    #[test]
    fn netns_wrapper_keeps_the_pid_and_enters_the_namespace() {
        use std::os::unix::fs::MetadataExt;
        if !crate::net::can_manage_netns() {
            crate::skipped("netns_wrapper_keeps_the_pid_and_enters_the_namespace", "needs root and /dev/net/tun (network namespaces and taps); nothing was tested");
            return;
        }
        let ns = crate::net::Netns::create_unique("rt").unwrap();
        let session = spawn_process(
            "sh".as_ref(),
            &[
                "-c".into(),
                "echo pid=$$; stat -L -c ino=%i /proc/self/ns/net".into(),
            ],
            SpawnOptions {
                name: "netns".into(),
                timeout: Duration::from_secs(10),
                log_dir: None,
                display: String::new(),
                netns: Some(ns.name().to_string()),
            },
        )
        .unwrap();
        let pid = session.pid();
        let out = session.wait(Duration::from_secs(10));
        assert_eq!(out.exit, Exit::Error(0), "{}", out.report());
        assert!(
            out.serial.contains(&format!("pid={pid}\n")),
            "{}",
            out.serial
        );
        let ino = fs::metadata(ns.path()).unwrap().ino();
        assert!(
            out.serial.contains(&format!("ino={ino}\n")),
            "{} vs {ino}",
            out.serial
        );

        let missing = spawn_process(
            "sh".as_ref(),
            &[],
            SpawnOptions {
                name: "netns".into(),
                timeout: Duration::from_secs(1),
                log_dir: None,
                display: String::new(),
                netns: Some("frond-no-such-netns".into()),
            },
        )
        .unwrap_err();
        assert!(
            missing.to_string().contains("frond-no-such-netns"),
            "{missing}"
        );
    }

    #[test]
    fn missing_program_is_a_harness_error() {
        let err = spawn_process(
            "frond-no-such-qemu".as_ref(),
            &[],
            SpawnOptions {
                name: "x".into(),
                timeout: Duration::from_secs(1),
                log_dir: None,
                display: String::new(),
                netns: None,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("frond-no-such-qemu"), "{err}");
    }
}
