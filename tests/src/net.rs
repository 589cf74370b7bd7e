//! Host networking for tests and benchmarks: network namespaces ([`Netns`]), taps inside
//! them, processes and threads inside them, and the QEMU arguments of a tap-backed
//! virtio-net NIC ([`TapNic`]).
//!
//! Everything is done with iproute2 (`ip`) and, for threads, `setns(2)` through `nix`; the
//! module has no `unsafe` code.
//!
//! Invariants:
//! * **Traffic stays in namespaces the harness created.** Every helper acts inside a named
//!   [`Netns`]; nothing here configures an interface, address or route of the caller's
//!   namespace (the only actions outside are creating and deleting namespaces).
//! * **A [`Netns`] does not outlive its owner.** Dropping it SIGKILLs every process still
//!   inside and deletes it (its taps go with it). Creating one first deletes a stale
//!   namespace of the same name (left by a killed run), so names must not be shared by
//!   concurrent users: take them from [`unique_name`] (prefix + pid + counter), or, for a
//!   fixed topology, serialise its users (see `crate::fwdbench`).
//! * **Names fit the kernel's limits**: interface names are 1–15 bytes (IFNAMSIZ − 1)
//!   without `/`, `:` or whitespace ([`check_ifname`]); [`unique_name`] never exceeds 15.
//! * **Children are guarded like QEMU**: [`Netns::spawn`] starts them through the same
//!   wrapper as QEMU (own process group, parent-death signal, `ip netns exec`), and an
//!   [`NsChild`] kills its group when dropped.
//! * [`Netns::run_in`] runs a closure on a fresh thread that joined the namespace; only
//!   that thread changes namespace, never the caller's. Sockets it opens stay in the
//!   namespace wherever they are used afterwards.
//!
//! A tap is opened by QEMU by name in QEMU's own namespace. To give one QEMU taps in two
//! namespaces, create both in QEMU's namespace, start QEMU ([`crate::Boot::netns`]), wait
//! until it attached ([`Netns::wait_carrier`]), then move one tap with
//! [`Netns::move_link`] and configure it there ([`Netns::configure_link`]): an open tap
//! keeps working across the move, but the move clears its addresses and state.
//!
//! ```no_run
//! use std::net::UdpSocket;
//! use std::time::Duration;
//! use frond_tests::net::{Netns, TapNic};
//! use frond_tests::Boot;
//!
//! let ns = Netns::create_unique("ping").unwrap(); // deleted when dropped
//! let tap = frond_tests::net::unique_name("tap");
//! let host_mac = "02:00:0a:00:00:01".parse().unwrap();
//! ns.add_tap(&tap, host_mac).unwrap();
//! ns.configure_link(&tap, host_mac, Some("10.0.0.1/24".parse().unwrap())).unwrap();
//! let nic = TapNic {
//!     id: "n0".into(),
//!     tap: tap.clone(),
//!     mac: "52:54:00:00:00:02".parse().unwrap(),
//!     pci_slot: 0x10,
//!     model: frond_tests::NicModel::VirtioNet,
//! };
//! let mut qemu = Boot::new()
//!     .cmdline("net=...")
//!     .netns(ns.name()) // QEMU opens the tap in `ns`
//!     .qemu_args(nic.qemu_args())
//!     .spawn();
//! qemu.expect("ready", Duration::from_secs(30)).unwrap();
//! ns.run("ping", ["-c", "1", "10.0.0.2"]).unwrap(); // a command inside
//! let sock = ns.run_in(|| UdpSocket::bind("10.0.0.1:0")).unwrap().unwrap(); // a socket inside
//! sock.send_to(b"hi", "10.0.0.2:7").unwrap();
//! drop(qemu); // before `ns`: kills QEMU, then the namespace goes
//! ```

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::qemu::shell_quote;
use crate::run::{guarded_command, resolve_program, NETNS_DIR};
use crate::HarnessError;

/// Longest interface name Linux accepts (IFNAMSIZ − 1).
pub const IFNAME_MAX: usize = 15;

/// How long [`Netns`]'s drop waits for killed processes to leave before deleting it.
const KILL_WAIT: Duration = Duration::from_secs(3);
/// Polling period of the waits in this module (carrier, child exit).
const POLL: Duration = Duration::from_millis(5);

/// An Ethernet MAC address, written `02:00:0a:00:01:01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = String;

    /// Six `:`-separated pairs of hex digits (either case).
    fn from_str(s: &str) -> Result<MacAddr, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts
                .next()
                .ok_or_else(|| format!("MAC {s:?}: too few bytes"))?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("MAC {s:?}: {part:?} is not two hex digits"));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|e| format!("MAC {s:?}: {e}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("MAC {s:?}: too many bytes"));
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// An IPv4 address with a prefix length, written `10.0.1.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    /// 0..=32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// `addr/prefix`; panics if `prefix > 32` (a programming error).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Ipv4Net {
        assert!(prefix <= 32, "IPv4 prefix /{prefix} is longer than 32");
        Ipv4Net { addr, prefix }
    }

    /// The network: `addr` with the host bits cleared (`10.0.1.1/24` → `10.0.1.0/24`).
    pub fn network(self) -> Ipv4Net {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        Ipv4Net {
            addr: Ipv4Addr::from(u32::from(self.addr) & mask),
            prefix: self.prefix,
        }
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    fn from_str(s: &str) -> Result<Ipv4Net, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected ADDRESS/PREFIX"))?;
        let addr = addr
            .parse::<Ipv4Addr>()
            .map_err(|e| format!("{s:?}: {e}"))?;
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{s:?}: prefix must be 0..=32"))?;
        Ok(Ipv4Net { addr, prefix })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Checks an interface name against Linux's rules: 1–15 bytes, not `.`/`..`, no `/`,
/// `:` or whitespace.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > IFNAME_MAX {
        return Err(format!(
            "interface name {name:?} must be 1..={IFNAME_MAX} bytes"
        ));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(format!("interface name {name:?} is not allowed"));
    }
    Ok(())
}

/// Namespace names become file names under `/run/netns` and appear in `ip` commands:
/// ASCII letters, digits, `-`, `_`, `.`; at most 64 bytes; not `.`/`..`.
fn check_netns_name(name: &str) -> Result<(), HarnessError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(HarnessError::io(
            format!("bad network namespace name {name:?} (letters, digits, -, _, . only)"),
            std::io::ErrorKind::InvalidInput.into(),
        ))
    }
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

/// The name `unique_name` builds (pure): `prefix` + pid + `-` + counter, pid and counter
/// in base 36, the prefix shortened so that the result has at most [`IFNAME_MAX`] bytes.
fn unique_name_for(prefix: &str, pid: u32, n: u32) -> String {
    let tail = format!("{}-{}", base36(pid.into()), base36(n.into()));
    let room = IFNAME_MAX.saturating_sub(tail.len());
    let prefix: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(room)
        .collect();
    format!("{prefix}{tail}")
}

/// A name no other live process and no earlier call in this process uses: `prefix`
/// (alphanumerics only, shortened if needed) + pid + counter, at most 15 bytes, so it is
/// valid both as an interface name and as a namespace name. E.g. `fwa1kzf-0`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    unique_name_for(
        prefix,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    )
}

fn display_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion; its stdout if it exits 0, else a [`HarnessError::Command`].
fn run_checked(cmd: &mut Command) -> Result<String, HarnessError> {
    let display = display_command(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::io(format!("cannot run `{display}`"), e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(HarnessError::Command {
            command: display,
            problem: format!("failed ({})", out.status),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

fn ip_command() -> Result<Command, HarnessError> {
    Ok(Command::new(resolve_program("ip".as_ref())?))
}

/// `ip ARGS...` in the caller's namespace (namespace management only).
fn ip_global<I, S>(args: I) -> Result<String, HarnessError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_checked(ip_command()?.args(args))
}

/// Pids of the processes in namespace `name` (`ip netns pids`); empty if it is gone.
fn netns_pids(name: &str) -> Vec<i32> {
    ip_global(["netns", "pids", name])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILLs every process in namespace `name` (never this process) and waits a little
/// for them to go.
fn kill_netns_processes(name: &str) {
    let me = std::process::id() as i32;
    let until = Instant::now() + KILL_WAIT;
    loop {
        let pids: Vec<i32> = netns_pids(name).into_iter().filter(|p| *p != me).collect();
        if pids.is_empty() || Instant::now() >= until {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn delete_netns(name: &str) -> Result<(), HarnessError> {
    kill_netns_processes(name);
    ip_global(["netns", "delete", name]).map(drop)
}

/// A network namespace created with `ip netns add`; deleted (after SIGKILLing the
/// processes left in it) when dropped. See the module docs for the naming rules.
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// Set by [`Netns::delete`], so that the drop does nothing.
    deleted: bool,
}

impl Netns {
    /// Creates namespace `name` with its loopback up. A stale namespace of that name is
    /// deleted first (its processes killed).
    pub fn create(name: &str) -> Result<Netns, HarnessError> {
        check_netns_name(name)?;
        if Netns::exists(name) {
            delete_netns(name)?;
        }
        ip_global(["netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
            deleted: false,
        };
        ns.ip(["link", "set", "dev", "lo", "up"])?;
        Ok(ns)
    }

    /// Creates a namespace named [`unique_name`]`(prefix)`.
    pub fn create_unique(prefix: &str) -> Result<Netns, HarnessError> {
        Netns::create(&unique_name(prefix))
    }

    /// True if a namespace called `name` exists (`/run/netns/NAME`).
    pub fn exists(name: &str) -> bool {
        Path::new(NETNS_DIR).join(name).exists()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's bind mount, `/run/netns/NAME`.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// `ip -n NAME ARGS...`: its stdout, or an error with `ip`'s stderr.
    pub fn ip<I, S>(&self, args: I) -> Result<String, HarnessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_checked(ip_command()?.arg("-n").arg(&self.name).args(args))
    }

    /// A `Command` for `ip netns exec NAME program` (add arguments and stdio yourself).
    /// For short commands run to completion; long-lived ones go through [`Netns::spawn`].
    pub fn command(&self, program: impl AsRef<OsStr>) -> Result<Command, HarnessError> {
        let mut cmd = ip_command()?;
        cmd.args(["netns", "exec", &self.name]).arg(program);
        Ok(cmd)
    }

    /// Runs `program args...` inside the namespace to completion; its stdout if it exits
    /// 0, else an error with its stderr.
    pub fn run<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Result<String, HarnessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_checked(self.command(program)?.args(args))
    }

    /// Starts `program args...` inside the namespace, guarded like QEMU (own process
    /// group, parent-death signal), stdin closed, stdout and stderr captured. As with a
    /// [`crate::Session`], start and finish it on one long-lived thread: the parent-death
    /// signal fires when the *thread* that spawned it ends.
    pub fn spawn<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Result<NsChild, HarnessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let program = resolve_program(program.as_ref())?;
        let args: Vec<OsString> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let mut plain = Command::new(&program);
        plain.args(&args);
        let display = format!("ip netns exec {} {}", self.name, display_command(&plain));
        let mut cmd = guarded_command(&program, Some(&self.name))?;
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        NsChild::start(cmd, display)
    }

    /// Runs `f` on a new thread that has joined this namespace (`setns`), and returns its
    /// result; a panic in `f` is resumed on the caller. Sockets `f` opens belong to the
    /// namespace. The caller's own thread never changes namespace.
    pub fn run_in<F, T>(&self, f: F) -> Result<T, HarnessError>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let path = self.path();
        let ns = File::open(&path)
            .map_err(|e| HarnessError::io(format!("cannot open {}", path.display()), e))?;
        thread::scope(|scope| {
            let handle = thread::Builder::new()
                .name(format!("netns-{}", self.name))
                .spawn_scoped(scope, move || {
                    setns(&ns, CloneFlags::CLONE_NEWNET)
                        .map_err(|e| {
                            HarnessError::io(
                                format!("setns into network namespace {}", self.name),
                                e.into(),
                            )
                        })
                        .map(|()| f())
                })
                .map_err(|e| HarnessError::io("cannot start a namespace thread", e))?;
            match handle.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Pids of the processes inside (`ip netns pids`).
    pub fn pids(&self) -> Vec<i32> {
        netns_pids(&self.name)
    }

    /// SIGKILLs every process inside and waits (a few seconds at most) until they left.
    pub fn kill_all(&self) {
        kill_netns_processes(&self.name);
    }

    /// Deletes the namespace now, reporting failure (dropping deletes it silently).
    pub fn delete(mut self) -> Result<(), HarnessError> {
        self.deleted = true;
        delete_netns(&self.name)
    }

    /// Writes `value` to `/proc/sys/KEY` (`KEY` with `/`, e.g.
    /// `net/ipv6/conf/default/disable_ipv6`) from a thread inside the namespace, so the
    /// namespace's own copy of a `net/` setting is changed.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), HarnessError> {
        if key
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(HarnessError::io(
                format!("bad sysctl key {key:?}"),
                std::io::ErrorKind::InvalidInput.into(),
            ));
        }
        let path = Path::new("/proc/sys").join(key);
        self.run_in(|| std::fs::write(&path, value))?
            .map_err(|e| HarnessError::io(format!("{} in netns {}", path.display(), self.name), e))
    }

    /// Turns IPv6 off for interfaces created in (or moved into) this namespace from now on
    /// and for those already there, so tests see no router solicitations or DAD frames.
    pub fn disable_ipv6(&self) -> Result<(), HarnessError> {
        self.sysctl("net/ipv6/conf/default/disable_ipv6", "1")?;
        self.sysctl("net/ipv6/conf/all/disable_ipv6", "1")
    }

    /// Creates a persistent tap `name` with MAC `mac` (down, no address).
    pub fn add_tap(&self, name: &str, mac: MacAddr) -> Result<(), HarnessError> {
        check_ifname(name)
            .map_err(|e| HarnessError::io(e, std::io::ErrorKind::InvalidInput.into()))?;
        self.ip(["tuntap", "add", "dev", name, "mode", "tap"])?;
        self.ip(["link", "set", "dev", name, "address", &mac.to_string()])
            .map(drop)
    }

    /// Sets `ifname`'s MAC, adds `addr` (if any) and brings it up. Also the way to
    /// configure an interface again after [`Netns::move_link`].
    pub fn configure_link(
        &self,
        ifname: &str,
        mac: MacAddr,
        addr: Option<Ipv4Net>,
    ) -> Result<(), HarnessError> {
        self.ip(["link", "set", "dev", ifname, "address", &mac.to_string()])?;
        if let Some(addr) = addr {
            self.ip(["addr", "replace", &addr.to_string(), "dev", ifname])?;
        }
        self.link_up(ifname)
    }

    /// `ip link set IFNAME up`.
    pub fn link_up(&self, ifname: &str) -> Result<(), HarnessError> {
        self.ip(["link", "set", "dev", ifname, "up"]).map(drop)
    }

    /// Adds (or replaces) a route to `dst` via gateway `via`.
    pub fn add_route(&self, dst: Ipv4Net, via: Ipv4Addr) -> Result<(), HarnessError> {
        self.ip([
            "route",
            "replace",
            &dst.network().to_string(),
            "via",
            &via.to_string(),
        ])
        .map(drop)
    }

    /// Adds (or replaces) a permanent neighbour entry `ip` → `mac` on `ifname`, so no ARP
    /// is ever needed for it.
    pub fn add_neigh(&self, ifname: &str, ip: Ipv4Addr, mac: MacAddr) -> Result<(), HarnessError> {
        self.ip([
            "neigh",
            "replace",
            &ip.to_string(),
            "lladdr",
            &mac.to_string(),
            "dev",
            ifname,
            "nud",
            "permanent",
        ])
        .map(drop)
    }

    /// Moves interface `ifname` into namespace `to`. The move clears its addresses and
    /// takes it down; an open tap (QEMU's) stays attached.
    pub fn move_link(&self, ifname: &str, to: &Netns) -> Result<(), HarnessError> {
        self.ip(["link", "set", "dev", ifname, "netns", &to.name])
            .map(drop)
    }

    /// The flags `ip link` shows for `ifname`, e.g. `["BROADCAST", "UP", "LOWER_UP"]`.
    pub fn link_flags(&self, ifname: &str) -> Result<Vec<String>, HarnessError> {
        let out = self.ip(["-o", "link", "show", "dev", ifname])?;
        Ok(parse_link_flags(&out))
    }

    /// The packet counters of `ifname` (`ip -s link`).
    pub fn link_stats(&self, ifname: &str) -> Result<LinkStats, HarnessError> {
        let out = self.ip(["-j", "-s", "link", "show", "dev", ifname])?;
        parse_link_stats(&out).ok_or_else(|| HarnessError::Command {
            command: format!("ip -j -s link show dev {ifname} (netns {})", self.name),
            problem: format!("no packet counters in {out:?}"),
            stderr: String::new(),
        })
    }

    /// True if `ifname` has carrier (`LOWER_UP`): for a tap that is up, a process has it
    /// open.
    pub fn has_carrier(&self, ifname: &str) -> Result<bool, HarnessError> {
        Ok(self.link_flags(ifname)?.iter().any(|f| f == "LOWER_UP"))
    }

    /// Waits until [`Netns::has_carrier`], at most `timeout`; `alive` is asked between
    /// polls and ends the wait early with an error when it returns false (e.g. QEMU died).
    pub fn wait_carrier(
        &self,
        ifname: &str,
        timeout: Duration,
        mut alive: impl FnMut() -> bool,
    ) -> Result<(), HarnessError> {
        let until = Instant::now() + timeout;
        loop {
            if self.has_carrier(ifname)? {
                return Ok(());
            }
            if !alive() || Instant::now() >= until {
                return Err(HarnessError::io(
                    format!(
                        "tap {ifname} in netns {} got no carrier (nobody attached it) within {timeout:?}",
                        self.name
                    ),
                    std::io::ErrorKind::TimedOut.into(),
                ));
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        if let Err(e) = delete_netns(&self.name) {
            eprintln!(
                "frond-tests: cannot delete network namespace {}: {e}",
                self.name
            );
        }
    }
}

/// The flags between `<` and `>` in one line of `ip -o link show` (pure).
fn parse_link_flags(line: &str) -> Vec<String> {
    let Some(open) = line.find('<') else {
        return Vec::new();
    };
    let Some(len) = line[open + 1..].find('>') else {
        return Vec::new();
    };
    line[open + 1..open + 1 + len]
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect()
}

/// A tap-backed NIC: the QEMU arguments for it, for [`crate::Boot::qemu_args`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapNic {
    /// The `-netdev` id (unique within one QEMU).
    pub id: String,
    /// The tap QEMU opens by name, in QEMU's namespace.
    pub tap: String,
    /// The guest-side MAC.
    pub mac: MacAddr,
    /// PCI slot on the root bus (so the guest sees a fixed `00:SLOT.0`).
    pub pci_slot: u8,
    /// The device QEMU emulates.
    pub model: crate::NicModel,
}

impl TapNic {
    /// `-netdev tap,id=ID,ifname=TAP,script=no,downscript=no -device DEVICE`, the device
    /// from [`crate::NicModel::device_arg`].
    pub fn qemu_args(&self) -> Vec<OsString> {
        vec![
            "-netdev".into(),
            format!(
                "tap,id={},ifname={},script=no,downscript=no",
                self.id, self.tap
            )
            .into(),
            "-device".into(),
            self.model
                .device_arg(&self.id, &self.mac.to_string(), self.pci_slot)
                .into(),
        ]
    }
}

/// A pipe being drained by a thread: the bytes so far and whether it ended.
#[derive(Default)]
struct Drained {
    state: Mutex<(Vec<u8>, bool)>,
    cond: Condvar,
}

impl Drained {
    fn start(mut src: impl Read + Send + 'static) -> (Arc<Drained>, JoinHandle<()>) {
        let drained = Arc::new(Drained::default());
        let d = Arc::clone(&drained);
        let handle = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let mut st = d.state.lock().unwrap_or_else(|e| e.into_inner());
                st.0.extend_from_slice(&buf[..n]);
                drop(st);
                d.cond.notify_all();
            }
            d.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
            d.cond.notify_all();
        });
        (drained, handle)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.state.lock().unwrap_or_else(|e| e.into_inner()).0)
            .into_owned()
    }
}

/// What a finished [`NsChild`] left behind.
#[derive(Debug)]
pub struct ChildOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A process started by [`Netns::spawn`]. Dropping it SIGKILLs its process group and
/// reaps it.
pub struct NsChild {
    child: Child,
    display: String,
    stdout: Arc<Drained>,
    stderr: Arc<Drained>,
    readers: Vec<JoinHandle<()>>,
    reaped: bool,
}

impl fmt::Debug for NsChild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NsChild")
            .field("pid", &self.child.id())
            .field("command", &self.display)
            .finish_non_exhaustive()
    }
}

impl NsChild {
    fn start(mut cmd: Command, display: String) -> Result<NsChild, HarnessError> {
        let mut child = cmd
            .spawn()
            .map_err(|e| HarnessError::io(format!("cannot start `{display}`"), e))?;
        let out = child.stdout.take().expect("stdout is piped");
        let err = child.stderr.take().expect("stderr is piped");
        let (stdout, h1) = Drained::start(out);
        let (stderr, h2) = Drained::start(err);
        Ok(NsChild {
            child,
            display,
            stdout,
            stderr,
            readers: vec![h1, h2],
            reaped: false,
        })
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The command, for messages.
    pub fn command(&self) -> &str {
        &self.display
    }

    /// Its stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr.text()
    }

    /// Waits until its stderr contains `needle` (e.g. a tool's "ready" line). Fails if
    /// it closes stderr (exits) first or `timeout` passes.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> Result<(), HarnessError> {
        let until = Instant::now() + timeout;
        let mut st = self.stderr.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if String::from_utf8_lossy(&st.0).contains(needle) {
                return Ok(());
            }
            let now = Instant::now();
            if st.1 || now >= until {
                let problem = if st.1 {
                    format!("ended before printing {needle:?}")
                } else {
                    format!("did not print {needle:?} within {timeout:?}")
                };
                return Err(HarnessError::Command {
                    command: self.display.clone(),
                    problem,
                    stderr: String::from_utf8_lossy(&st.0).into_owned(),
                });
            }
            st = self
                .stderr
                .cond
                .wait_timeout(st, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Sends `signal` to its process group.
    pub fn signal(&self, signal: Signal) {
        let _ = killpg(Pid::from_raw(self.pid()), signal);
    }

    /// True while it has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for it to exit, at most `timeout` (then SIGKILLs the group and fails), and
    /// returns its status and output whatever the status.
    pub fn wait(mut self, timeout: Duration) -> Result<ChildOutput, HarnessError> {
        let until = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < until => thread::sleep(POLL),
                Ok(None) => break None,
                Err(e) => {
                    return Err(HarnessError::io(
                        format!("waiting for `{}`", self.display),
                        e,
                    ))
                }
            }
        };
        // Stragglers in its group would keep the pipes open.
        self.signal(Signal::SIGKILL);
        let status = match status {
            Some(s) => s,
            None => {
                let _ = self.child.wait();
                self.reaped = true;
                return Err(HarnessError::Command {
                    command: self.display.clone(),
                    problem: format!("still running after {timeout:?}; killed"),
                    stderr: self.stderr.text(),
                });
            }
        };
        self.reaped = true;
        for h in self.readers.drain(..) {
            let _ = h.join();
        }
        Ok(ChildOutput {
            status,
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        })
    }

    /// Like [`NsChild::wait`], but a non-zero exit is an error too; returns stdout.
    pub fn wait_success(self, timeout: Duration) -> Result<String, HarnessError> {
        let display = self.display.clone();
        let out = self.wait(timeout)?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(HarnessError::Command {
                command: display,
                problem: format!("failed ({})", out.status),
                stderr: out.stderr,
            })
        }
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal(Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// True if this process may create namespaces and taps (it runs as root). Tests that
/// need them skip themselves otherwise.
/// A link's packet counters, as the host sees them: for a tap, `tx` is what the host
/// handed to the process holding it (QEMU) and `rx` what that process wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    /// For a tap: frames dropped because the reader did not keep up (queue full).
    pub tx_dropped: u64,
}

/// Parses `ip -j -s link show` output (one link).
pub fn parse_link_stats(json: &str) -> Option<LinkStats> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let s = v.get(0)?.get("stats64")?;
    let n = |dir: &str, k: &str| s.get(dir)?.get(k)?.as_u64();
    Some(LinkStats {
        rx_packets: n("rx", "packets")?,
        rx_dropped: n("rx", "dropped").unwrap_or(0),
        tx_packets: n("tx", "packets")?,
        tx_dropped: n("tx", "dropped").unwrap_or(0),
    })
}

pub fn can_manage_netns() -> bool {
    nix::unistd::geteuid().is_root() && Path::new("/dev/net/tun").exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn mac_parse_and_print() {
        let mac: MacAddr = "02:00:0A:00:01:01".parse().unwrap();
        assert_eq!(mac, MacAddr([2, 0, 10, 0, 1, 1]));
        assert_eq!(mac.to_string(), "02:00:0a:00:01:01");
        for bad in [
            "",
            "02:00:0a:00:01",
            "02:00:0a:00:01:01:07",
            "2:00:0a:00:01:01",
            "02:00:0a:00:01:zz",
            "02-00-0a-00-01-01",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn ipv4net_parse_print_network() {
        let n: Ipv4Net = "10.0.1.1/24".parse().unwrap();
        assert_eq!(n, Ipv4Net::new(Ipv4Addr::new(10, 0, 1, 1), 24));
        assert_eq!(n.to_string(), "10.0.1.1/24");
        assert_eq!(n.network().to_string(), "10.0.1.0/24");
        assert_eq!(
            "10.0.1.1/0"
                .parse::<Ipv4Net>()
                .unwrap()
                .network()
                .to_string(),
            "0.0.0.0/0"
        );
        assert_eq!(
            "10.0.1.1/32"
                .parse::<Ipv4Net>()
                .unwrap()
                .network()
                .to_string(),
            "10.0.1.1/32"
        );
        for bad in ["10.0.1.1", "10.0.1.1/33", "10.0.1/24", "10.0.1.1/x"] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn interface_names() {
        assert!(check_ifname("tapA").is_ok());
        assert!(check_ifname("123456789012345").is_ok());
        assert!(check_ifname("1234567890123456").is_err());
        for bad in ["", ".", "..", "a/b", "a:b", "a b"] {
            assert!(check_ifname(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn unique_names_fit_and_differ() {
        assert_eq!(unique_name_for("tap", 35, 0), "tapz-0");
        assert_eq!(unique_name_for("tap", 36, 37), "tap10-11");
        // Largest pid (2^22) and a big counter: the prefix is shortened, never the tail.
        let long = unique_name_for("averyverylongprefix", 4_194_304, u32::MAX);
        assert!(long.len() <= IFNAME_MAX, "{long}");
        assert_eq!(long, "av2hwcg-1z141z3");
        assert_eq!(unique_name_for("t_a/p", 1, 2), "tap1-2");
        let (a, b) = (unique_name("x"), unique_name("x"));
        assert_ne!(a, b);
        assert!(
            check_ifname(&a).is_ok() && check_netns_name(&a).is_ok(),
            "{a}"
        );
    }

    #[test]
    fn link_flag_parsing() {
        let line = "3: tapB: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc pfifo_fast state UP";
        assert_eq!(
            parse_link_flags(line),
            ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"]
        );
        let down = "2: tapA: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500";
        assert!(!parse_link_flags(down).iter().any(|f| f == "LOWER_UP"));
        assert!(parse_link_flags("garbage").is_empty());
    }

    #[test]
    fn nic_arguments() {
        let nic = TapNic {
            id: "nica".into(),
            tap: "tapA".into(),
            mac: "52:54:00:0a:01:02".parse().unwrap(),
            pci_slot: 0x10,
            model: crate::NicModel::VirtioNet,
        };
        let args: Vec<String> = nic
            .qemu_args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "-netdev",
                "tap,id=nica,ifname=tapA,script=no,downscript=no",
                "-device",
                "virtio-net-pci,netdev=nica,mac=52:54:00:0a:01:02,addr=0x10,disable-legacy=on",
            ]
        );
        let igb = TapNic { model: crate::NicModel::Igb, ..nic.clone() };
        assert_eq!(igb.qemu_args()[3], "igb,netdev=nica,mac=52:54:00:0a:01:02,addr=0x10");
        let slot9 = TapNic { pci_slot: 9, ..nic };
        assert!(slot9.qemu_args()[3]
            .to_str()
            .unwrap()
            .contains("addr=0x09,"));
    }

    /// Real namespaces (root only): two namespaces joined by a veth pair, a UDP datagram
    /// from a thread in one to a thread in the other, `spawn` inside, and cleanup.
    #[test]
    fn namespaces_threads_and_cleanup() {
        if !can_manage_netns() {
            crate::skipped("namespaces_threads_and_cleanup", "needs root and /dev/net/tun (network namespaces and taps); nothing was tested");
            return;
        }
        let a = Netns::create_unique("nta").unwrap();
        let b = Netns::create_unique("ntb").unwrap();
        let (va, vb) = (unique_name("va"), unique_name("vb"));
        a.ip(["link", "add", &va, "type", "veth", "peer", "name", &vb])
            .unwrap();
        a.move_link(&vb, &b).unwrap();
        let ma: MacAddr = "02:00:0a:63:00:01".parse().unwrap();
        let mb: MacAddr = "02:00:0a:63:00:02".parse().unwrap();
        a.configure_link(&va, ma, Some("10.99.0.1/24".parse().unwrap()))
            .unwrap();
        b.configure_link(&vb, mb, Some("10.99.0.2/24".parse().unwrap()))
            .unwrap();
        a.add_neigh(&va, Ipv4Addr::new(10, 99, 0, 2), mb).unwrap();
        a.add_route("10.98.0.0/24".parse().unwrap(), Ipv4Addr::new(10, 99, 0, 2))
            .unwrap();
        assert!(a
            .ip(["route", "show"])
            .unwrap()
            .contains("10.98.0.0/24 via 10.99.0.2"));
        assert!(a.ip(["neigh", "show"]).unwrap().contains("PERMANENT"));

        // The address exists only in b: a socket bound to it from a thread in b works,
        // and the same bind in this thread (the caller's namespace) fails.
        let rx = b
            .run_in(|| UdpSocket::bind("10.99.0.2:4242"))
            .unwrap()
            .unwrap();
        assert!(UdpSocket::bind("10.99.0.2:4242").is_err());
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        a.run_in(|| {
            let tx = UdpSocket::bind("10.99.0.1:0").unwrap();
            tx.send_to(b"hello", "10.99.0.2:4242").unwrap();
        })
        .unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from.ip().to_string(), "10.99.0.1");

        b.disable_ipv6().unwrap();
        assert_eq!(
            b.run("cat", ["/proc/sys/net/ipv6/conf/default/disable_ipv6"])
                .unwrap()
                .trim(),
            "1"
        );

        // A spawned child lives in the namespace (sees its veth) and is killed with it.
        let child = b
            .spawn(
                "sh",
                ["-c", "ip -o link show; echo ready >&2; exec sleep 60"],
            )
            .unwrap();
        child
            .wait_for_stderr("ready", Duration::from_secs(5))
            .unwrap();
        assert!(
            b.pids().contains(&child.pid()),
            "{:?} vs {}",
            b.pids(),
            child.pid()
        );
        let pid = child.pid();
        let name_b = b.name().to_string();
        drop(b);
        assert!(!Netns::exists(&name_b));
        let out = child.wait(Duration::from_secs(5)).unwrap();
        assert!(
            !out.status.success(),
            "killed with the namespace, pid {pid}"
        );
        assert!(out.stdout.contains(&vb), "{}", out.stdout);
        let name_a = a.name().to_string();
        a.delete().unwrap();
        assert!(!Netns::exists(&name_a));
    }

    /// A stale namespace (left by a killed run) is replaced by `create`, with its
    /// processes killed.
    #[test]
    fn stale_namespace_is_replaced() {
        if !can_manage_netns() {
            crate::skipped("stale_namespace_is_replaced", "needs root and /dev/net/tun (network namespaces and taps); nothing was tested");
            return;
        }
        let name = unique_name("ntd");
        ip_global(["netns", "add", &name]).unwrap();
        ip_global(["-n", &name, "tuntap", "add", "dev", "stale0", "mode", "tap"]).unwrap();
        let mut sleeper = ip_command()
            .unwrap()
            .args(["netns", "exec", &name, "sleep", "60"])
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while netns_pids(&name).is_empty() && Instant::now() < until {
            thread::sleep(POLL);
        }
        let ns = Netns::create(&name).unwrap();
        assert!(
            !sleeper.wait().unwrap().success(),
            "the stale namespace's process was killed"
        );
        assert!(!ns.ip(["-o", "link", "show"]).unwrap().contains("stale0"));
        drop(ns);
        assert!(!Netns::exists(&name));
    }

    /// Commands run by `run` execute inside the namespace; failures carry their status.
    #[test]
    fn run_executes_inside() {
        if !can_manage_netns() {
            crate::skipped("run_executes_inside", "needs root and /dev/net/tun (network namespaces and taps); nothing was tested");
            return;
        }
        let ns = Netns::create_unique("ntc").unwrap();
        let out = ns.run("ip", ["-o", "link", "show"]).unwrap();
        assert_eq!(
            out.lines().count(),
            1,
            "a fresh namespace has only lo: {out}"
        );
        assert!(out.contains("lo:"), "{out}");
        let err = ns.run("false", Vec::<&str>::new()).unwrap_err();
        assert!(matches!(err, HarnessError::Command { .. }), "{err}");
    }
}
