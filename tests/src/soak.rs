//! The soak: one Frond running every workload at once, driven from the host for a long
//! time while the kernel's fault injector kills, panics, hangs and breaks domains and
//! devices under it; the run passes if nothing a client sees is corrupted, every workload
//! comes back after every fault, the disk is consistent with nothing synced lost, and
//! memory returns to where it started. `make soak` runs [`run`] through `frond-soak`;
//! `tests/tests/soak.rs` runs a short one in `make test`.
//!
//! The guest (`net=both rv6=on`, one QEMU):
//!
//! ```text
//!  netns soakS (QEMU runs here)             Frond                           netns soakB
//!  sk0 10.33.0.1/24  <-> virtio-net0 00:0d.0 10.33.0.2  netstack + services
//!  tapA 10.0.1.1/24  <-> virtio-net1 00:10.0 10.0.1.2 ┐ forward
//!                        virtio-net2 00:11.0 10.0.2.2 ┘           <-> tapB 10.0.2.1/24
//!                        virtio-blk0 00:12.0  fs + rv6 (shell on the serial console)
//! ```
//!
//! Workloads, each a thread recording a [`Series`] (per-second successes, failures and
//! bytes, every client-visible error with time and cause, the longest gap):
//! * **forward**: `frond-pktgen` at [`SoakOptions::fwd_pps`] into tapA for the whole run,
//!   `frond-pktcount --verify on` on tapB (every frame's MACs, TTL, checksum, payload,
//!   no duplicates; per-10-ms counts give the per-second series and the loss per fault);
//! * **ping**: `ping -i 0.05` (20/s) to the stack, a reply within 1 s or a failure;
//! * **http**: `GET /` five times a second: status 200 and a body naming `netstack`;
//! * **echo**: a TCP connection to port 7 carrying random chunks of 1–8 KiB, each read
//!   back and compared byte for byte; reconnects after an error;
//! * **rv6**: `t-soak` (rv6/user) in the shell on the serial console: files written,
//!   synced every fourth time, read back and checksummed, and `cat | grep | wc` through
//!   `sh -c`; relaunched (continuing its numbering) when a fault ends it.
//!
//! The injector's interface is in [`inject`], the only place that parses it. A kernel
//! without the injector still runs the soak (no faults); it is said loudly at the start
//! and in the report.
//!
//! Invariants: everything (QEMU, tools, both namespaces) is owned by [`run`]'s stack and
//! torn down on return or panic; namespace names are unique per run, so a soak can run
//! next to the forwarding tests; the serial console is read by one thread (the caller's).

pub mod inject;
pub mod report;
pub mod series;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::fwdbench::{self, Tools};
use crate::net::{Ipv4Net, MacAddr, Netns, TapNic};
use crate::pkt::{CountReport, COUNT_READY};
use crate::qemu::{disk_args, workspace_root};
use crate::{Boot, Exit, HarnessError, NicModel, Session};

pub use inject::{Event, InjectOptions};
pub use report::Report;
pub use series::{Counters, Cover, GapCheck, Rv6Line, Series};

/// The stack's side: host tap and the guest's address.
pub const STACK_HOST: Ipv4Addr = Ipv4Addr::new(10, 33, 0, 1);
pub const STACK_GUEST: Ipv4Addr = Ipv4Addr::new(10, 33, 0, 2);
pub const STACK_TAP: &str = "sk0";
pub const STACK_TAP_MAC: MacAddr = MacAddr([0x02, 0x00, 0x0a, 0x21, 0x00, 0x01]);
pub const STACK_GUEST_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
/// PCI slot of the stack's NIC: before the forwarder's (0x10, 0x11), so it is NIC 0.
pub const STACK_SLOT: u8 = 0x0d;

/// Bounds on the time a workload may go without a success while no fault covers any of
/// its domains ([`DEPENDS`]), per workload (seconds): the pass criterion "every workload
/// resumes after each fault" ([`Series::check_gaps`]). Measured from the end of the
/// last covering fault (its domain's recovery line), they cover what follows a restart
/// (a stack restart restarts its NIC driver first; reconnecting, ARP; for rv6 a new
/// shell and relaunching t-soak) with room for TCG on a shared host.
pub const GAP_BOUNDS: &[(&str, f64)] = &[("forward", 10.0), ("ping", 15.0), ("http", 15.0), ("echo", 20.0), ("rv6", 60.0)];

/// The domains each workload goes through, from how the soak wires the guest
/// (`net=both rv6=on`, domains/system.manifest): a fault in one of them may stop the
/// workload; a fault anywhere else does not excuse a gap in it. Ping is answered by the
/// stack itself; HTTP and echo are served by `services` over the stack; forwarding goes
/// NIC 1 → `forward` → NIC 2; `t-soak` runs under the rv6 core on `fs` on the disk.
pub const DEPENDS: &[(&str, &[&str])] = &[
    ("forward", &["forward", "virtio-net1", "virtio-net2"]),
    ("ping", &["netstack", "virtio-net0"]),
    ("http", &["netstack", "services", "virtio-net0"]),
    ("echo", &["netstack", "services", "virtio-net0"]),
    ("rv6", &["rv6", "fs", "virtio-blk0"]),
];

fn gap_bound(name: &str) -> f64 {
    GAP_BOUNDS.iter().find(|g| g.0 == name).map_or(30.0, |g| g.1)
}

/// The domains workload `name` depends on ([`DEPENDS`]; none for an unknown name).
pub fn depends(name: &str) -> &'static [&'static str] {
    DEPENDS.iter().find(|d| d.0 == name).map_or(&[], |d| d.1)
}

/// How to run a soak.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Seconds of workload.
    pub secs: u64,
    pub seed: u64,
    /// Faults to inject (0: none); spread over the run ([`InjectOptions::spread`]).
    pub faults: u64,
    /// Milliseconds after boot before the first fault.
    pub inject_start_ms: u64,
    /// Forwarded frames per second.
    pub fwd_pps: u64,
    pub tools: Tools,
    /// `frond-mkfs` (disk image, fsck, reading files back).
    pub mkfs: PathBuf,
    /// rv6's programs (`make build` puts them here).
    pub user_dir: PathBuf,
    /// Report directory (`target/soak`).
    pub out_dir: PathBuf,
    /// Name of the run (serial log `target/qemu-logs/NAME.log`).
    pub name: String,
    /// More kernel command line (`SOAK_APPEND`), e.g. a `crash=NAME@MS,…` schedule.
    pub append: String,
    /// Fault kinds to inject (`SOAK_KINDS`, comma-separated; empty: every kind).
    pub kinds: Vec<String>,
}

impl SoakOptions {
    /// Defaults, then `SOAK_SECS`, `SOAK_SEED`, `SOAK_FAULTS`, `SOAK_PPS`, `SOAK_APPEND`, `SOAK_KINDS`
    /// from the environment; tools next to the running executable (or `FROND_PKTGEN`, …,
    /// `FROND_MKFS`).
    pub fn from_env(secs: u64, faults: u64) -> Result<SoakOptions, HarnessError> {
        let num = |var: &'static str, d: u64| -> Result<u64, HarnessError> {
            match std::env::var(var) {
                Ok(v) if !v.is_empty() => v.trim().parse().map_err(|_| HarnessError::BadEnv { var, value: v, expected: "a whole number" }),
                _ => Ok(d),
            }
        };
        let root = workspace_root();
        Ok(SoakOptions {
            secs: num("SOAK_SECS", secs)?,
            seed: num("SOAK_SEED", 42)?,
            faults: num("SOAK_FAULTS", faults)?,
            inject_start_ms: 30_000,
            fwd_pps: num("SOAK_PPS", 1000)?,
            tools: Tools::locate()?,
            mkfs: locate_mkfs()?,
            user_dir: std::env::var_os("FROND_USER_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target/domains/x86_64-unknown-none/user")),
            out_dir: root.join("target/soak"),
            name: "soak".into(),
            append: std::env::var("SOAK_APPEND").unwrap_or_default(),
            kinds: std::env::var("SOAK_KINDS").unwrap_or_default().split(',').map(str::trim).filter(|k| !k.is_empty()).map(String::from).collect(),
        })
    }

    pub fn inject(&self) -> Option<InjectOptions> {
        (self.faults > 0).then(|| {
            let mut i = InjectOptions::spread(self.seed, self.faults, self.secs, self.inject_start_ms);
            if !self.kinds.is_empty() {
                i.kinds = self.kinds.clone();
            }
            i
        })
    }
}

/// `FROND_MKFS`, else `frond-mkfs` in `target/debug` or `target/release`.
fn locate_mkfs() -> Result<PathBuf, HarnessError> {
    if let Some(p) = std::env::var_os("FROND_MKFS").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let root = workspace_root();
    ["target/debug/frond-mkfs", "target/release/frond-mkfs"].iter().map(|p| root.join(p)).find(|p| p.is_file()).ok_or_else(|| {
        HarnessError::io("frond-mkfs not found in target/debug or target/release (run `cargo build -p frond-mkfs`, or set FROND_MKFS)", std::io::ErrorKind::NotFound.into())
    })
}

fn cmd_err(command: &str, problem: impl Into<String>) -> HarnessError {
    HarnessError::Command { command: command.into(), problem: problem.into(), stderr: String::new() }
}

/// The kernel command line of the soak guest.
pub fn cmdline(inject: Option<&InjectOptions>) -> String {
    let side = |guest: Ipv4Net, host: Ipv4Net, mac: MacAddr| format!("{guest},{},{mac}", host.addr);
    let mut c = format!(
        "net=both ip={STACK_GUEST}/24 gw={STACK_HOST} fwd.batch=32 fwd.a={} fwd.b={} rv6=on demo=off",
        side(fwdbench::GUEST_A_IP, fwdbench::HOST_A_IP, fwdbench::HOST_A_MAC),
        side(fwdbench::GUEST_B_IP, fwdbench::HOST_B_IP, fwdbench::HOST_B_MAC)
    );
    if let Some(i) = inject {
        c.push(' ');
        c.push_str(&i.cmdline());
    }
    c
}

/// The guest's three NICs: the stack's, then the forwarder's A and B.
pub fn nics() -> [TapNic; 3] {
    let [a, b] = fwdbench::nics(NicModel::VirtioNet);
    [TapNic { id: "stk".into(), tap: STACK_TAP.into(), mac: STACK_GUEST_MAC, pci_slot: STACK_SLOT, model: NicModel::VirtioNet }, a, b]
}

/// Makes the soak's disk: 32 MiB, large-file variant, rv6's programs in `/bin`.
fn make_disk(o: &SoakOptions, img: &Path) -> Result<(), HarnessError> {
    let mut progs: Vec<PathBuf> = std::fs::read_dir(&o.user_dir)
        .map_err(|e| HarnessError::io(format!("{} (run `make build`)", o.user_dir.display()), e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_none() && !p.file_name().unwrap_or_default().to_string_lossy().starts_with('.'))
        .collect();
    progs.sort();
    if !progs.iter().any(|p| p.ends_with("t-soak")) {
        return Err(cmd_err("make_disk", format!("no t-soak in {} (run `make build`)", o.user_dir.display())));
    }
    let _ = std::fs::remove_file(img);
    let out = Command::new(&o.mkfs)
        .args(["build", "--large", "--size", "32768", "--inodes", "2048"])
        .arg(img)
        .arg("--into")
        .arg("bin")
        .args(&progs)
        .output()
        .map_err(|e| HarnessError::io(format!("running {}", o.mkfs.display()), e))?;
    if !out.status.success() {
        return Err(cmd_err("frond-mkfs build", String::from_utf8_lossy(&out.stderr).to_string()));
    }
    Ok(())
}

/// Seconds since `t0`.
fn since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64()
}

/// Everything the workloads and the console loop share.
struct Shared {
    t0: Instant,
    stop: AtomicBool,
    /// Set when QEMU ended before the soak was over.
    guest_gone: AtomicBool,
}

// --- the console ------------------------------------------------------------------------

/// The shell's prompt.
const PROMPT: &str = "$ ";

/// Runs `mon CMD` at the rv6 shell and returns what was printed up to the next prompt.
/// How long the end waits for the injector's last fault after the workloads stopped.
const INJECT_DONE_TIMEOUT: Duration = Duration::from_secs(300);

fn mon(s: &mut Session, cmd: &str) -> Result<String, HarnessError> {
    shell(s, &format!("mon {cmd}"), Duration::from_secs(60))
}

fn shell(s: &mut Session, line: &str, timeout: Duration) -> Result<String, HarnessError> {
    s.send(format!("{line}\n").as_bytes())?;
    s.expect(&format!("{line}"), timeout)?;
    let out = s.expect(&format!("\n{PROMPT}"), timeout)?;
    Ok(out.strip_suffix(PROMPT).unwrap_or(&out).replace('\r', ""))
}

/// Reads the counters (`mon mem`, `mon domains`).
fn counters(s: &mut Session) -> Result<(Counters, String), HarnessError> {
    let text = format!("{}\n{}", mon(s, "mem")?, mon(s, "domains")?);
    Counters::parse(&text).map(|c| (c, text.clone())).ok_or_else(|| cmd_err("mon mem; mon domains", format!("unparsable counters:\n{text}")))
}

// --- the workloads ----------------------------------------------------------------------

type Shared_ = Arc<Shared>;
type SeriesRef = Arc<Mutex<Series>>;

fn new_series(name: &str, unit: &str) -> SeriesRef {
    Arc::new(Mutex::new(Series::new(name, unit, gap_bound(name))))
}

fn lock(s: &SeriesRef) -> std::sync::MutexGuard<'_, Series> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Forwarding at a fixed rate for `secs`, verified frame by frame. Returns the counter's
/// report and the second (since t0) its bucket 0 started.
fn forward_workload(sh: &Shared_, ns_s: &Netns, ns_b: &Netns, tools: &Tools, pps: u64, secs: u64, series: &SeriesRef) -> Result<(CountReport, f64, u64), HarnessError> {
    let gen_for = Duration::from_secs(secs);
    let mut copts = fwdbench::count_options(gen_for + fwdbench::VERIFY_SETTLE);
    copts.verify = true;
    let count = ns_b.spawn(&tools.pktcount, copts.to_args())?;
    count.wait_for_stderr(COUNT_READY, Duration::from_secs(15))?;
    let counting_from = since(sh.t0);
    lock(series).start(counting_from);
    let gen = ns_s.spawn(&tools.pktgen, fwdbench::gen_options(gen_for, Some(pps)).to_args())?;
    let c = count.wait_success(gen_for + Duration::from_secs(30))?;
    let c = CountReport::from_output(&c).map_err(|e| cmd_err("frond-pktcount", e.to_string()))?;
    let g = gen.wait_success(Duration::from_secs(30))?;
    let g = crate::pkt::GenReport::from_output(&g).map_err(|e| cmd_err("frond-pktgen", e.to_string()))?;
    let mut s = lock(series);
    let bucket_s = c.bucket_ms.max(1) as f64 / 1000.0;
    for (j, l) in forward_series(&c.buckets, bucket_s, pps, secs).into_iter().enumerate() {
        let t = counting_from + j as f64 * bucket_s;
        if l.0 > 0 {
            s.ok(t, l.0, l.0 * crate::pkt::FRAME_LEN as u64);
        }
        if l.1 > 0 {
            s.lost(t, l.1);
        }
    }
    s.end(counting_from + secs as f64);
    if let Some(v) = &c.verify {
        let bad = v.bad_dst_mac + v.bad_src_mac + v.bad_ttl + v.bad_checksum + v.bad_payload + v.duplicates;
        if bad > 0 {
            s.corrupt(
                counting_from + secs as f64,
                format!(
                    "{bad} forwarded frames wrong (dst MAC {}, src MAC {}, TTL {}, checksum {}, payload {}, duplicates {}); first: {}",
                    v.bad_dst_mac, v.bad_src_mac, v.bad_ttl, v.bad_checksum, v.bad_payload, v.duplicates, v.first_bad.clone().unwrap_or_default()
                ),
            );
        }
    }
    if sh.guest_gone.load(Ordering::Relaxed) {
        s.fail(since(sh.t0), "the guest ended");
    }
    Ok((c, counting_from, g.sent))
}

/// Per counter bucket: (frames counted, frames charged as lost there). The generator's
/// schedule starts at the first counted frame (the counter starts first); each second the
/// running count's deficit against the schedule is compared with the last: growth is
/// charged to that second, shrinking (frames arriving late, after a stall) takes back the
/// latest charges. The charges add up to the frames that never came.
pub fn forward_series(buckets: &[u64], bucket_s: f64, pps: u64, secs: u64) -> Vec<(u64, u64)> {
    let per_sec = (1.0 / bucket_s).round().max(1.0) as usize;
    let first = buckets.iter().position(|&n| n > 0).unwrap_or(0);
    let gen_buckets = secs as usize * per_sec;
    let per_bucket = pps as f64 * bucket_s;
    let (mut expected, mut got, mut charged) = (0f64, 0u64, 0u64);
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(buckets.len());
    // Buckets charged so far, latest last.
    let mut charges: Vec<usize> = Vec::new();
    for (j, &n) in buckets.iter().enumerate() {
        if j >= first && j < first + gen_buckets {
            expected += per_bucket;
        }
        got += n;
        out.push((n, 0));
        if (j + 1) % per_sec == 0 || j + 1 == buckets.len() {
            let deficit = (expected.round() as u64).saturating_sub(got);
            if deficit > charged {
                out[j].1 = deficit - charged;
                charges.push(j);
            }
            // Frames that came late (after a stall) were not lost: take back the latest
            // charges.
            let mut excess = charged.max(deficit) - deficit;
            while excess > 0 {
                let Some(&k) = charges.last() else { break };
                let take = excess.min(out[k].1);
                out[k].1 -= take;
                excess -= take;
                if out[k].1 == 0 {
                    charges.pop();
                }
            }
            charged = deficit;
        }
    }
    out
}

/// `ping -i 0.05` for `secs`, parsed afterwards (`-D` timestamps, `-O` for each miss).
fn ping_workload(sh: &Shared_, ns: &Netns, secs: u64, series: &SeriesRef) -> Result<(), HarnessError> {
    let unix0 = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64() - since(sh.t0);
    let start = since(sh.t0);
    lock(series).start(start);
    let child = ns.spawn("ping", ["-D", "-O", "-n", "-i", "0.05", "-W", "1", "-w", &secs.to_string(), &STACK_GUEST.to_string()])?;
    let out = child.wait(Duration::from_secs(secs + 30))?;
    let mut s = lock(series);
    for (t, ev) in parse_ping_lines(&out.stdout) {
        let t = t - unix0;
        match ev {
            PingEvent::Reply => s.ok(t, 1, 64),
            PingEvent::Miss => s.fail(t, "ping: no reply"),
            PingEvent::Other(l) => s.fail(t, format!("ping: {l}")),
        }
    }
    s.end(start + secs as f64);
    Ok(())
}

#[derive(Debug, PartialEq)]
pub enum PingEvent {
    Reply,
    Miss,
    Other(String),
}

/// `[UNIX.TIME] 64 bytes from … icmp_seq=N …` → reply; `[…] no answer yet for
/// icmp_seq=N` → miss, unless a (late) reply for N comes after all (`-O` reports a
/// reply still outstanding when the next request goes out, 50 ms later); other
/// timestamped lines (`From … Destination Host Unreachable`) → other.
pub fn parse_ping_lines(out: &str) -> Vec<(f64, PingEvent)> {
    let seq = |m: &str| m.split("icmp_seq=").nth(1).and_then(|x| x.split(|c: char| !c.is_ascii_digit()).next()).and_then(|x| x.parse::<u64>().ok());
    let lines: Vec<(f64, &str)> = out
        .lines()
        .filter_map(|l| {
            let (ts, msg) = l.strip_prefix('[')?.split_once("] ")?;
            Some((ts.parse().ok()?, msg))
        })
        .collect();
    let answered: std::collections::HashSet<u64> = lines.iter().filter(|(_, m)| m.contains(" bytes from ")).filter_map(|(_, m)| seq(m)).collect();
    lines
        .into_iter()
        .filter_map(|(t, msg)| {
            let ev = if msg.contains(" bytes from ") && msg.contains("icmp_seq=") {
                PingEvent::Reply
            } else if msg.starts_with("no answer yet") {
                if seq(msg).is_some_and(|n| answered.contains(&n)) {
                    return None;
                }
                PingEvent::Miss
            } else {
                PingEvent::Other(msg.split(": icmp_seq=").next().unwrap_or(msg).trim().to_string())
            };
            Some((t, ev))
        })
        .collect()
}

/// One `GET /`: the status must be 200 and the body the status page (naming `netstack`).
fn http_get(addr: SocketAddr) -> Result<usize, (bool, String)> {
    let io = |what: &str, e: std::io::Error| (false, format!("http: {what}: {}", io_kind(&e)));
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| io("connect", e))?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok();
    c.set_write_timeout(Some(Duration::from_secs(5))).ok();
    c.write_all(b"GET / HTTP/1.0\r\nHost: soak\r\nConnection: close\r\n\r\n").map_err(|e| io("send", e))?;
    let mut body = Vec::new();
    c.read_to_end(&mut body).map_err(|e| io("receive", e))?;
    let text = String::from_utf8_lossy(&body);
    let status = text.split_ascii_whitespace().nth(1).unwrap_or("");
    if !text.starts_with("HTTP/1.") {
        return Err((true, format!("http: not an HTTP response ({} bytes)", body.len())));
    }
    if status != "200" {
        return Err((false, format!("http: status {status}")));
    }
    if !text.contains("netstack") {
        return Err((true, "http: 200 without the status page's body".into()));
    }
    Ok(body.len())
}

fn io_kind(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        TimedOut | WouldBlock => "timed out".into(),
        ConnectionReset => "connection reset".into(),
        ConnectionRefused => "connection refused".into(),
        ConnectionAborted => "connection aborted".into(),
        UnexpectedEof => "connection closed early".into(),
        BrokenPipe => "broken pipe".into(),
        _ => e.to_string(),
    }
}

fn http_workload(sh: &Shared_, series: &SeriesRef) {
    let addr = SocketAddr::from((STACK_GUEST, 80));
    lock(series).start(since(sh.t0));
    while !sh.stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let r = http_get(addr);
        let now = since(sh.t0);
        match r {
            Ok(n) => lock(series).ok(now, 1, n as u64),
            Err((true, why)) => lock(series).corrupt(now, why),
            Err((false, why)) => lock(series).fail(now, why),
        }
        thread::sleep(Duration::from_millis(200).saturating_sub(t.elapsed()));
    }
    lock(series).end(since(sh.t0));
}

/// A TCP echo stream: random chunks, each read back and compared.
fn echo_workload(sh: &Shared_, seed: u64, series: &SeriesRef) {
    let addr = SocketAddr::from((STACK_GUEST, 7));
    let mut rng = seed ^ 0x5eed_ec40;
    let mut conn: Option<TcpStream> = None;
    lock(series).start(since(sh.t0));
    while !sh.stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
                Ok(c) => {
                    c.set_read_timeout(Some(Duration::from_secs(5))).ok();
                    c.set_write_timeout(Some(Duration::from_secs(5))).ok();
                    c.set_nodelay(true).ok();
                    conn.insert(c)
                }
                Err(e) => {
                    lock(series).fail(since(sh.t0), format!("echo: connect: {}", io_kind(&e)));
                    thread::sleep(Duration::from_millis(500));
                    continue;
                }
            },
        };
        rng = series::splitmix(rng);
        let n = 1024 + (rng % 7168) as usize;
        let chunk: Vec<u8> = (0..n).map(|k| (series::splitmix(rng ^ k as u64) >> 24) as u8).collect();
        let mut back = vec![0u8; n];
        let r = c.write_all(&chunk).map_err(|e| ("send", e)).and_then(|()| c.read_exact(&mut back).map_err(|e| ("receive", e)));
        let now = since(sh.t0);
        match r {
            Ok(()) if back == chunk => lock(series).ok(now, 1, n as u64),
            Ok(()) => {
                let at = back.iter().zip(&chunk).position(|(a, b)| a != b).unwrap_or(0);
                lock(series).corrupt(now, format!("echo: {n}-byte chunk came back different from byte {at}"));
                conn = None;
            }
            Err((what, e)) => {
                lock(series).fail(now, format!("echo: {what}: {}", io_kind(&e)));
                conn = None;
                thread::sleep(Duration::from_millis(200));
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    lock(series).end(since(sh.t0));
}

// --- rv6, on the console ------------------------------------------------------------------

/// What the console loop learnt about rv6's files.
#[derive(Debug, Default)]
struct Rv6State {
    next_i: u64,
    /// Slot → last iteration synced by some `t-soak: slot` report or a synced write.
    synced: [Option<u64>; series::SLOTS as usize],
    /// Slot → iteration the final `done` reported (what the disk must hold).
    final_slots: [Option<u64>; series::SLOTS as usize],
    launches: u64,
    running: bool,
    /// Whether the most recent launch ended with `done` and no failed iteration.
    last_done: bool,
    /// The shell printed its prompt since the last launch (kernel lines may follow it on
    /// the same line).
    prompt: bool,
    last_line: Option<Instant>,
}

/// A fault as the report sees it: when the host saw it, and the injector's record.
#[derive(Debug, Clone)]
pub struct SeenEvent {
    pub t: f64,
    pub event: Event,
}

/// Handles one serial line; returns true if it shows the kernel died.
fn console_line(line: &str, t: f64, rv6: &mut Rv6State, series: &SeriesRef, events: &mut Vec<SeenEvent>) -> bool {
    // The prompt, perhaps followed by a kernel line; not the echo of a launch.
    if line.starts_with(PROMPT) && !line.starts_with("$ t-soak ") {
        rv6.prompt = true;
    }
    if let Some(e) = inject::parse_line(line) {
        events.push(SeenEvent { t, event: e });
        return false;
    }
    if let Some(f) = parse_scheduled_crash(line, SCHEDULED_N + events.len() as u64) {
        events.push(SeenEvent { t, event: Event::Fault(f) });
        return false;
    }
    if let Some(l) = series::parse_rv6_line(line) {
        rv6.last_line = Some(Instant::now());
        match l {
            Rv6Line::Ok { i, slot, len, synced, .. } => {
                lock(series).ok(t, 1, len);
                rv6.next_i = i + 1;
                if synced {
                    rv6.synced[slot as usize] = Some(i);
                }
            }
            Rv6Line::Fail { i, what, err } => {
                lock(series).fail(t, format!("rv6: {what}: {err}"));
                rv6.next_i = rv6.next_i.max(i + 1);
            }
            Rv6Line::Slot { slot, i } => {
                if let Some(s) = rv6.final_slots.get_mut(slot as usize) {
                    *s = Some(i);
                    rv6.synced[slot as usize] = Some(i);
                }
            }
            Rv6Line::Done { next, failed, .. } => {
                rv6.next_i = next;
                rv6.running = false;
                // A run with a failed iteration leaves that slot's contents unknown.
                rv6.last_done = failed == 0;
            }
        }
        return false;
    }
    if line.contains("init: starting sh") && rv6.running {
        // A new shell: the core restarted, and t-soak ended with it.
        lock(series).fail(t, "rv6: t-soak ended (the rv6 core restarted)");
        rv6.running = false;
    }

    line.contains("KERNEL PANIC") || line.contains("!!! PANIC")
}

/// Scheduled crashes are numbered from here (apart from the injector's `n`).
pub const SCHEDULED_N: u64 = 1_000_000_000;

/// A kill of the kernel's crash schedule (`crash=NAME@MS`, [`SoakOptions::append`]):
/// `crash: killed `NAME` at MS ms (uptime US us)`, as a fault of kind `scheduled`
/// numbered `n` (the schedule prints no recovery line).
pub fn parse_scheduled_crash(line: &str, n: u64) -> Option<inject::Fault> {
    let rest = &line[line.find("crash: killed `")? + 15..];
    let (name, rest) = rest.split_once('`')?;
    let t_ms = rest.trim_start().strip_prefix("at ")?.split_ascii_whitespace().next()?.parse().ok()?;
    Some(inject::Fault { n, seed: 0, t_ms, kind: "scheduled".into(), domain: name.into(), slot: None, gen: None, extra: Default::default() })
}

fn launch(s: &mut Session, rv6: &mut Rv6State, secs: u64, seed: u64) -> Result<(), HarnessError> {
    s.send(format!("t-soak {secs} {seed} {}\n", rv6.next_i).as_bytes())?;
    // Every run writes every slot: what the disk must hold is what the last one reports.
    rv6.final_slots = Default::default();
    rv6.running = true;
    rv6.last_done = false;
    rv6.prompt = false;
    rv6.launches += 1;
    rv6.last_line = Some(Instant::now());
    Ok(())
}

// --- the run ------------------------------------------------------------------------------

/// Guest seconds per `t-soak` launch: it runs by the guest's clock, which falls behind the
/// host's when a loaded host delays the guest's timer (seen: 8× slower under TCG on a
/// busy machine), so the harness launches it in short runs until the host's end.
pub const RV6_CHUNK_SECS: u64 = 10;

/// Seconds of the warm-up phase before the baseline.
pub const WARM_SECS: u64 = 15;
/// Pause before reading counters (connections closing, restarts in flight).
const SETTLE: Duration = Duration::from_secs(2);

/// What one phase of concurrent workloads recorded.
struct Phase {
    t0: Instant,
    series: Vec<Series>,
    events: Vec<SeenEvent>,
    kernel_died: Option<String>,
    forward: Option<(CountReport, f64, u64)>,
}

/// Every workload at once for `secs`; the caller's thread drives rv6 on the console.
fn phase(s: &mut Session, o: &SoakOptions, ns_s: &Netns, ns_b: &Netns, secs: u64, rv6: &mut Rv6State) -> Result<Phase, HarnessError> {
    let sh = Arc::new(Shared { t0: Instant::now(), stop: AtomicBool::new(false), guest_gone: AtomicBool::new(false) });
    let all: Vec<SeriesRef> = [("forward", "frame"), ("ping", "reply"), ("http", "GET"), ("echo", "chunk"), ("rv6", "iteration")].iter().map(|(n, u)| new_series(n, u)).collect();
    let (fwd_s, ping_s, http_s, echo_s, rv6_s) = (&all[0], &all[1], &all[2], &all[3], &all[4]);
    let mut events: Vec<SeenEvent> = Vec::new();
    let mut kernel_died: Option<String> = None;
    let mut fwd_result = None;
    thread::scope(|scope| -> Result<(), HarnessError> {
        let fwd = scope.spawn(|| forward_workload(&sh, ns_s, ns_b, &o.tools, o.fwd_pps, secs, fwd_s));
        let ping = scope.spawn(|| ping_workload(&sh, ns_s, secs, ping_s));
        let http = scope.spawn(|| ns_s.run_in(|| http_workload(&sh, http_s)));
        let echo = scope.spawn(|| ns_s.run_in(|| echo_workload(&sh, o.seed, echo_s)));

        lock(rv6_s).start(0.0);
        launch(s, rv6, secs.min(RV6_CHUNK_SECS), o.seed)?;
        let end = Duration::from_secs(secs);
        loop {
            let elapsed = sh.t0.elapsed();
            if elapsed >= end && !sh.stop.load(Ordering::Relaxed) {
                sh.stop.store(true, Ordering::Relaxed);
            }
            if elapsed >= end && !rv6.running {
                break;
            }
            if elapsed >= end + Duration::from_secs(180) {
                lock(rv6_s).fail(since(sh.t0), "rv6: t-soak did not finish within 180 s of the end");
                break;
            }
            match s.expect("\n", Duration::from_millis(500)) {
                Ok(line) => {
                    if console_line(&line, since(sh.t0), rv6, rv6_s, &mut events) {
                        kernel_died.get_or_insert_with(|| line.trim().to_string());
                    }
                }
                Err(HarnessError::ExpectTimeout { unmatched, .. }) => {
                    // The shell's prompt (alone, or with kernel lines after it): t-soak
                    // is not running.
                    let idle = rv6.prompt || unmatched.ends_with(PROMPT);
                    let quiet = rv6.last_line.is_none_or(|l| l.elapsed() > Duration::from_secs(20));
                    if idle && rv6.running && quiet {
                        lock(rv6_s).fail(since(sh.t0), "rv6: t-soak ended without finishing");
                        rv6.running = false;
                    }
                    let left = end.saturating_sub(sh.t0.elapsed()).as_secs();
                    if idle && !rv6.running && left >= 1 {
                        launch(s, rv6, left.min(RV6_CHUNK_SECS), o.seed)?;
                    }
                }
                Err(e) => {
                    kernel_died.get_or_insert_with(|| format!("QEMU ended: {e}"));
                    sh.guest_gone.store(true, Ordering::Relaxed);
                    sh.stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        lock(rv6_s).end(since(sh.t0).min(secs as f64));
        sh.stop.store(true, Ordering::Relaxed);
        let join = |r: thread::Result<Result<(), HarnessError>>| r.unwrap_or_else(|p| std::panic::resume_unwind(p));
        join(ping.join())?;
        join(http.join())?;
        join(echo.join())?;
        fwd_result = Some(fwd.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?);
        Ok(())
    })?;
    let series = all.iter().map(|x| lock(x).clone()).collect();
    Ok(Phase { t0: sh.t0, series, events, kernel_died, forward: fwd_result })
}

/// If the last t-soak did not end cleanly (a fault ended it, or an iteration failed), a
/// short run that rewrites every slot and ends with a sync, so the disk's final contents
/// are known (up to three tries: faults may still be landing).
fn finish_rv6(s: &mut Session, o: &SoakOptions, rv6: &mut Rv6State) -> Result<(), HarnessError> {
    if rv6.last_done {
        return Ok(());
    }
    if !rv6.prompt {
        let _ = s.expect(PROMPT, Duration::from_secs(60));
    }
    for _ in 0..3 {
        let out = shell(s, &format!("t-soak 0 {} {}", o.seed, rv6.next_i), Duration::from_secs(300))?;
        rv6.final_slots = Default::default();
        let scratch = new_series("rv6", "iteration");
        let mut ev = Vec::new();
        for l in out.lines() {
            console_line(l, 0.0, rv6, &scratch, &mut ev);
        }
        if rv6.last_done {
            break;
        }
    }
    Ok(())
}

/// Runs the soak: builds the rig, boots, runs every workload for `o.secs`, checks, and
/// writes the report (`o.out_dir`). The returned report says whether it passed
/// ([`Report::failures`]). Needs root (namespaces and taps).
pub fn run(o: &SoakOptions) -> Result<Report, HarnessError> {
    std::fs::create_dir_all(&o.out_dir).map_err(|e| HarnessError::io(format!("creating {}", o.out_dir.display()), e))?;
    let img = o.out_dir.join("disk.img");
    make_disk(o, &img)?;
    let inject = o.inject();

    // The rig. QEMU opens its taps in soakS; tapB moves to soakB once attached.
    let ns_b = Netns::create_unique("soakB")?;
    let ns_s = Netns::create_unique("soakS")?;
    for ns in [&ns_s, &ns_b] {
        ns.disable_ipv6()?;
    }
    ns_s.add_tap(STACK_TAP, STACK_TAP_MAC)?;
    ns_s.configure_link(STACK_TAP, STACK_TAP_MAC, Some(Ipv4Net::new(STACK_HOST, 24)))?;
    ns_s.add_tap(fwdbench::TAP_A, fwdbench::HOST_A_MAC)?;
    ns_s.configure_link(fwdbench::TAP_A, fwdbench::HOST_A_MAC, Some(fwdbench::HOST_A_IP))?;
    ns_s.add_route(fwdbench::HOST_B_IP.network(), fwdbench::GUEST_A_IP.addr)?;
    ns_s.add_neigh(fwdbench::TAP_A, fwdbench::GUEST_A_IP.addr, fwdbench::GUEST_A_MAC)?;
    ns_s.add_tap(fwdbench::TAP_B, fwdbench::HOST_B_MAC)?;
    ns_s.link_up(fwdbench::TAP_B)?;

    let mut s = Boot::new()
        .name(&o.name)
        .cmdline(format!("{} {}", cmdline(inject.as_ref()), o.append).trim_end().to_string())
        .netns(ns_s.name())
        .qemu_args(nics().iter().flat_map(TapNic::qemu_args))
        .qemu_args(disk_args(&img, false))
        .timeout(Duration::from_secs(o.secs + 900))
        .try_spawn()?;
    for tap in [STACK_TAP, fwdbench::TAP_A, fwdbench::TAP_B] {
        ns_s.wait_carrier(tap, Duration::from_secs(15), || s.exited().is_none())?;
    }
    ns_s.move_link(fwdbench::TAP_B, &ns_b)?;
    ns_b.configure_link(fwdbench::TAP_B, fwdbench::HOST_B_MAC, Some(fwdbench::HOST_B_IP))?;
    ns_b.add_route(fwdbench::HOST_A_IP.network(), fwdbench::GUEST_B_IP.addr)?;
    ns_b.add_neigh(fwdbench::TAP_B, fwdbench::GUEST_B_IP.addr, fwdbench::GUEST_B_MAC)?;
    let _sink = ns_b
        .run_in(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, fwdbench::DST_PORT)))?
        .map_err(|e| HarnessError::io("binding the forwarded frames' port in soakB", e))?;

    let step = Duration::from_secs(120);
    s.expect("rv6: core started", step)?;
    s.expect(PROMPT, step)?;
    let up = Instant::now();
    loop {
        let serial = s.serial();
        if serial.contains("services: echo tcp/udp 7, http 80") && serial.contains("forward: ready") {
            break;
        }
        if up.elapsed() > Duration::from_secs(60) || s.exited().is_some() {
            return Err(cmd_err("boot", format!("the stack's services or the forwarder did not come up:\n{}", crate::serial::tail(&serial, 40))));
        }
        thread::sleep(Duration::from_millis(200));
    }

    // Is there an injector?
    let reply = mon(&mut s, "inject")?;
    let injector = !inject::injector_absent(&reply);
    if !injector {
        eprintln!("\n==============================================================================");
        eprintln!("SOAK: THIS KERNEL HAS NO FAULT INJECTOR (`inject` is an unknown command).");
        eprintln!("SOAK: the workloads run and are checked, but NO FAULTS ARE INJECTED.");
        eprintln!("==============================================================================\n");
    }

    // Warm-up: every workload at once for a while (ARP, sockets, caches and tables at
    // their working size), then the baseline; then the soak itself.
    let mut rv6 = Rv6State::default();
    let warm = phase(&mut s, o, &ns_s, &ns_b, WARM_SECS, &mut rv6)?;
    if let Some(why) = warm.kernel_died {
        return Err(cmd_err("warm-up", format!("the kernel died: {why}")));
    }
    finish_rv6(&mut s, o, &mut rv6)?;
    thread::sleep(SETTLE);
    let (base, base_text) = counters(&mut s)?;
    let Phase { t0, series, mut events, mut kernel_died, forward: fwd_result } = phase(&mut s, o, &ns_s, &ns_b, o.secs, &mut rv6)?;
    let tail_from = s.serial().len();

    // The end: rv6's files made durable by a clean run, the counters, the totals, quit.
    let mut after = None;
    let mut after_text = String::new();
    let mut inject_totals = String::new();
    if kernel_died.is_none() {
        let end = (|| -> Result<(), HarnessError> {
            // The injector draws its faults in guest time, which runs slower than the
            // host's under load: the end is judged only once every fault has been
            // injected (the final rv6 run, the counters and the disk must not meet a
            // fault in flight).
            if injector && o.faults > 0 && !s.serial().contains("inject: done:") {
                s.expect("inject: done:", INJECT_DONE_TIMEOUT)
                    .map_err(|_| cmd_err("the end", format!("the injector did not finish within {} s of the workloads' end", INJECT_DONE_TIMEOUT.as_secs())))?;
            }
            finish_rv6(&mut s, o, &mut rv6)?;
            // Settle (closing connections, restarts in flight), then read until they match.
            for _ in 0..10 {
                thread::sleep(SETTLE);
                let (c, text) = counters(&mut s)?;
                after = Some(c);
                after_text = text;
                if c.differences(&base).is_empty() {
                    break;
                }
            }
            if injector {
                inject_totals = mon(&mut s, "inject")?;
            }
            s.send(b"mon quit\n")
        })();
        // A guest that stopped answering its console here fails the run; the report
        // (with what the workloads saw) is still written.
        if let Err(e) = end {
            let e = e.to_string();
            kernel_died = Some(format!("the guest stopped answering at the end: {}", e.lines().next().unwrap_or("")));
        }
        // Events printed during these commands.
        for l in s.serial().get(tail_from..).unwrap_or("").lines() {
            if let Some(e) = inject::parse_line(l) {
                if !events.iter().any(|x| x.event == e) {
                    events.push(SeenEvent { t: since(t0), event: e });
                }
            }
        }
    }
    let outcome = s.wait(Duration::from_secs(60));
    let exit_ok = outcome.exit == Exit::Pass;
    let serial_log = o.out_dir.join(format!("{}.serial.log", o.name));
    std::fs::write(&serial_log, &outcome.serial).map_err(|e| HarnessError::io(format!("writing {}", serial_log.display()), e))?;
    if kernel_died.is_none() && !exit_ok {
        kernel_died = Some(format!("QEMU ended with {} instead of a clean quit", outcome.exit));
    }

    // The disk: fsck, and every slot holds what the last sync covered.
    let fsck = Command::new(&o.mkfs).arg("fsck").arg(&img).output().map_err(|e| HarnessError::io("running frond-mkfs fsck", e))?;
    let fsck_text = String::from_utf8_lossy(&fsck.stdout).to_string();
    let mut durability = Vec::new();
    for slot in 0..series::SLOTS as usize {
        let Some(i) = rv6.final_slots[slot] else {
            durability.push(format!("/soak/f{slot}: no final synced iteration was reported"));
            continue;
        };
        let out = Command::new(&o.mkfs).arg("cat").arg(&img).arg(format!("/soak/f{slot}")).output().map_err(|e| HarnessError::io("running frond-mkfs cat", e))?;
        let want = series::file_content(o.seed, i);
        if !out.status.success() {
            durability.push(format!("/soak/f{slot}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        } else if out.stdout != want {
            let held = out.stdout.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
            durability.push(format!("/soak/f{slot}: holds {} bytes (iteration {held:?}), not iteration {i}'s {} synced bytes", out.stdout.len(), want.len()));
        }
    }
    let report = Report::build(report::Inputs {
        opts: o,
        inject,
        injector,
        secs: o.secs,
        series,
        events,
        forward: fwd_result,
        base,
        base_text,
        after,
        after_text,
        inject_totals,
        kernel_died,
        fsck_clean: fsck.status.success(),
        fsck_text,
        durability,
        rv6_launches: rv6.launches,
        serial_log: Some(serial_log),
    });
    report.write(&o.out_dir)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_command_line() {
        let c = cmdline(None);
        assert!(c.starts_with("net=both ip=10.33.0.2/24 gw=10.33.0.1 fwd.batch=32 fwd.a=10.0.1.2/24,10.0.1.1,02:00:0a:00:01:01 fwd.b=10.0.2.2/24"), "{c}");
        assert!(c.contains("rv6=on") && !c.contains("inject"), "{c}");
        let i = InjectOptions::spread(7, 30, 60, 30_000);
        assert!(cmdline(Some(&i)).ends_with(" inject=7 inject.rate=1 inject.kinds=kill,panic,hang,netdev,blkdev inject.count=30 inject.start=30000"));
    }

    #[test]
    fn the_stack_nic_comes_first_in_pci_order() {
        let n = nics();
        assert!(n[0].pci_slot < n[1].pci_slot && n[1].pci_slot < n[2].pci_slot);
        assert!(n.iter().all(|x| x.pci_slot != crate::qemu::DISK_SLOT));
        assert_eq!((n[1].tap.as_str(), n[2].tap.as_str()), ("tapA", "tapB"));
        crate::net::check_ifname(STACK_TAP).unwrap();
    }

    #[test]
    fn forwarded_frames_late_are_not_lost() {
        // 100 pps for 2 s in 10 ms buckets; the first frame 0.3 s after counting began.
        let mut b = vec![0u64; 30];
        b.extend(std::iter::repeat_n(1, 200));
        b.extend([0; 40]);
        let s = forward_series(&b, 0.01, 100, 2);
        assert_eq!(s.iter().map(|x| x.0).sum::<u64>(), 200);
        assert_eq!(s.iter().map(|x| x.1).sum::<u64>(), 0, "all arrived");
        // 50 frames missing in the middle: charged once.
        let mut g = b.clone();
        for x in &mut g[100..150] {
            *x = 0;
        }
        let s = forward_series(&g, 0.01, 100, 2);
        assert_eq!(s.iter().map(|x| x.1).sum::<u64>(), 50);
        // A stall: 50 frames held back, then delivered in one bucket a second later.
        let mut h = b.clone();
        for x in &mut h[100..150] {
            *x = 0;
        }
        h[210] += 50;
        let s = forward_series(&h, 0.01, 100, 2);
        assert_eq!(s.iter().map(|x| x.1).sum::<u64>(), 0, "late is not lost: {:?}", s.iter().enumerate().filter(|x| x.1 .1 > 0).collect::<Vec<_>>());
        // Nothing at all: everything lost.
        let s = forward_series(&[0; 250], 0.01, 100, 2);
        assert_eq!(s.iter().map(|x| x.1).sum::<u64>(), 200);
    }

    #[test]
    fn ping_lines() {
        let out = "PING 10.33.0.2 (10.33.0.2) 56(84) bytes of data.\n\
                   [1700000000.100000] 64 bytes from 10.33.0.2: icmp_seq=1 ttl=64 time=0.5 ms\n\
                   [1700000001.150000] no answer yet for icmp_seq=2\n\
                   [1700000001.200000] no answer yet for icmp_seq=4\n\
                   [1700000001.300000] 64 bytes from 10.33.0.2: icmp_seq=4 ttl=64 time=120 ms\n\
                   [1700000002.000000] From 10.33.0.1 icmp_seq=3 Destination Host Unreachable\n\
                   --- 10.33.0.2 ping statistics ---\n";
        let ev = parse_ping_lines(out);
        assert_eq!(ev.len(), 4, "{ev:?}");
        assert_eq!(ev[0], (1700000000.1, PingEvent::Reply));
        assert_eq!(ev[1].1, PingEvent::Miss);
        assert_eq!(ev[2], (1700000001.3, PingEvent::Reply), "the late reply counts, its miss does not");
        assert_eq!(ev[3].1, PingEvent::Other("From 10.33.0.1 icmp_seq=3 Destination Host Unreachable".into()));
    }

    /// A console line seen at host time `t`.
    fn seen(t: f64, line: &str) -> SeenEvent {
        SeenEvent { t, event: inject::parse_line(line).unwrap_or_else(|| panic!("not an event: {line}")) }
    }

    fn fault(t: f64, n: u64, kind: &str, domain: &str, ends: u8) -> SeenEvent {
        seen(t, &format!("inject: n={n} seed=42 t_ms={} kind={kind} domain={domain} slot=3 gen=2 ends={ends} stream=0:{n} at=0x1", (t * 700.0) as u64))
    }

    fn recovered(t: f64, n: u64, domain: &str) -> SeenEvent {
        seen(t, &format!("inject: n={n} recovered domain={domain} gen=3 after_us=5000"))
    }

    /// rv6 with successes at `oks` (seconds) and its end at `end`.
    fn rv6_series(oks: &[f64], end: f64) -> Series {
        let mut s = Series::new("rv6", "iteration", gap_bound("rv6"));
        s.start(0.0);
        for &t in oks {
            s.ok(t, 1, 100);
        }
        s.end(end);
        s
    }

    /// rv6's domains faulted back to back from 5 s to 195 s, each fault overlapping the
    /// next, in all three of them in turn.
    fn back_to_back() -> Vec<SeenEvent> {
        let doms = ["rv6", "fs", "virtio-blk0"];
        let mut ev = Vec::new();
        for k in 0..19u64 {
            let t = 5.0 + 10.0 * k as f64;
            ev.push(fault(t, k + 1, "kill", doms[k as usize % 3], 1));
            ev.push(recovered(t + 12.0, k + 1, doms[k as usize % 3]));
        }
        ev.sort_by(|a, b| a.t.total_cmp(&b.t));
        ev
    }

    #[test]
    fn a_gap_covered_by_overlapping_faults_passes_and_is_reported() {
        let s = rv6_series(&[0.0, 1.0, 200.0, 201.0], 202.0);
        let c = s.check_gaps(depends("rv6"), &series::covers(&back_to_back()));
        assert!(c.passed(), "{c:?}");
        assert_eq!(c.longest.0, 199.0);
        assert_eq!(c.excused, 1, "one gap over the bound, explained by faults");
        // Free: 1 s → 5 s before the first fault, 197 s (last recovery) → 200 s.
        let free = c.longest_free.unwrap();
        assert_eq!((free.from, free.len), (1.0, 4.0));
        // Nothing else in the gap excuses it: no faults, a fail.
        let c = s.check_gaps(depends("rv6"), &[]);
        assert_eq!(c.failed.len(), 1);
        assert_eq!((c.failed[0].gap, c.failed[0].len), ((1.0, 200.0), 199.0));
    }

    #[test]
    fn a_fault_free_hole_longer_than_the_bound_fails() {
        // The same faults with seven in a row left out: 87 s → 155 s has none (68 s).
        let ev: Vec<SeenEvent> = back_to_back()
            .into_iter()
            .filter(|e| !matches!(&e.event, Event::Fault(f) if (9..=15).contains(&f.n)) && !matches!(&e.event, Event::Recovered(r) if (9..=15).contains(&r.n)))
            .collect();
        let s = rv6_series(&[0.0, 1.0, 200.0, 201.0], 202.0);
        let c = s.check_gaps(depends("rv6"), &series::covers(&ev));
        assert!(!c.passed());
        assert_eq!(c.excused, 0);
        let h = c.failed[0];
        assert_eq!((h.gap, h.from, h.len), ((1.0, 200.0), 87.0, 68.0));
        assert_eq!(c.longest_free, Some(h));
        // A bound it is within passes: the hole is what is judged, not the gap.
        let mut wide = s.clone();
        wide.gap_bound = 69.0;
        assert!(wide.check_gaps(depends("rv6"), &series::covers(&ev)).passed());
    }

    #[test]
    fn a_fault_in_an_unrelated_domain_excuses_nothing() {
        let mut s = Series::new("forward", "frame", gap_bound("forward"));
        s.start(0.0);
        s.ok(1.0, 10, 600);
        s.ok(31.0, 10, 600);
        s.end(32.0);
        // The stack and the disk down for the whole gap, the forwarding path never.
        let ev = vec![fault(1.5, 1, "hang", "netstack", 1), fault(2.0, 2, "kill", "virtio-blk0", 1), recovered(30.5, 2, "virtio-blk0"), recovered(30.9, 1, "netstack")];
        let cov = series::covers(&ev);
        let c = s.check_gaps(depends("forward"), &cov);
        assert_eq!((c.failed.len(), c.failed[0].len), (1, 30.0), "{c:?}");
        // The same span on `virtio-net2`: excused.
        let ev = vec![fault(1.5, 1, "hang", "virtio-net2", 1), recovered(25.0, 1, "virtio-net2")];
        let c = s.check_gaps(depends("forward"), &series::covers(&ev));
        assert!(c.passed() && c.excused == 1 && c.longest_free.unwrap().len == 6.0, "{c:?}");
    }

    #[test]
    fn the_final_gap_after_the_last_success_counts() {
        // Last success at 10 s, load phase over at 100 s; faults cover 20–30 s only.
        let s = rv6_series(&[0.0, 10.0], 100.0);
        let ev = vec![fault(20.0, 1, "kill", "fs", 1), recovered(30.0, 1, "fs")];
        let c = s.check_gaps(depends("rv6"), &series::covers(&ev));
        assert_eq!(c.failed.len(), 1, "{c:?}");
        assert_eq!((c.failed[0].gap, c.failed[0].from, c.failed[0].len), ((10.0, 100.0), 30.0, 70.0));
        // A fault still not recovered at the end covers the rest (the missing recovery
        // fails the run by itself).
        let ev = vec![fault(20.0, 1, "kill", "fs", 1), recovered(30.0, 1, "fs"), fault(60.0, 2, "hang", "rv6", 1)];
        let c = s.check_gaps(depends("rv6"), &series::covers(&ev));
        assert!(c.passed() && c.excused == 1, "{c:?}");
    }

    #[test]
    fn faults_that_ended_nothing_cover_a_moment() {
        let ev = vec![
            fault(10.0, 1, "netdev", "virtio-net0", 0),
            fault(11.0, 2, "blkdev", "virtio-blk0", 0),
            recovered(12.5, 2, "virtio-blk0"),
            recovered(3.0, 99, "netstack"),
        ];
        let cov = series::covers(&ev);
        let span = |n: u64| cov.iter().find(|c| c.n == n).map(|c| (c.from, c.to)).unwrap();
        assert_eq!(span(1), (10.0, 10.0 + series::SURVIVED_FAULT_S), "a survived frame drop");
        assert_eq!(span(2), (11.0, 12.5), "a survived fault whose generation died anyway has its recovery");
        assert_eq!(span(99), (f64::NEG_INFINITY, 3.0), "a recovery from before the phase");
        assert_eq!(cov.len(), 3, "{cov:?}");
        // The crash schedule's kills print no recovery line.
        let sched = console_sched(20.0, "crash: killed `forward` at 51000 ms (uptime 51877667 us)");
        let c = series::covers(&[sched]);
        assert_eq!((c[0].from, c[0].to), (20.0, 20.0 + series::SURVIVED_FAULT_S));
    }

    fn console_sched(t: f64, line: &str) -> SeenEvent {
        let series = new_series("rv6", "iteration");
        let mut ev = Vec::new();
        console_line(line, t, &mut Rv6State::default(), &series, &mut ev);
        ev.pop().unwrap()
    }

    #[test]
    fn console_lines_feed_rv6_and_faults() {
        let series = new_series("rv6", "iteration");
        let mut rv6 = Rv6State { running: true, ..Default::default() };
        let mut ev = Vec::new();
        assert!(!console_line("t-soak: ok i=3 slot=3 len=5000 sum=1 synced=1 t_ms=9\r\n", 1.0, &mut rv6, &series, &mut ev));
        assert_eq!((rv6.next_i, rv6.synced[3]), (4, Some(3)));
        console_line("inject: n=1 seed=1 t_ms=5 kind=kill domain=rv6 slot=9 gen=1\n", 1.5, &mut rv6, &series, &mut ev);
        console_line("init: starting sh\n", 2.0, &mut rv6, &series, &mut ev);
        assert!(!rv6.running);
        assert_eq!(ev.len(), 1);
        assert!(!rv6.prompt);
        console_line("$ t-soak 10 42 4\n", 2.5, &mut rv6, &series, &mut ev);
        assert!(!rv6.prompt, "the echo of a launch is not a prompt");
        console_line("$ crash: killed `forward` at 51000 ms (uptime 51877667 us)\n", 2.6, &mut rv6, &series, &mut ev);
        assert!(rv6.prompt, "a prompt with a kernel line after it");
        console_line("t-soak: slot 3 i=11\n", 3.0, &mut rv6, &series, &mut ev);
        console_line("t-soak: done iterations=8 failed=0 next=12\n", 3.0, &mut rv6, &series, &mut ev);
        assert_eq!((rv6.final_slots[3], rv6.next_i, rv6.last_done), (Some(11), 12, true));
        let s = lock(&series);
        assert_eq!((s.total().ok, s.error_count), (1, 1));
        drop(s);
        assert!(console_line("\n!!! KERNEL PANIC: oops\n", 4.0, &mut rv6, &series, &mut ev));
        console_line("crash: killed `virtio-net1` at 49000 ms (uptime 50348199 us)\n", 5.0, &mut rv6, &series, &mut ev);
        let Event::Fault(f) = &ev[2].event else { panic!("{ev:?}") };
        assert_eq!((f.domain.as_str(), f.kind.as_str(), f.t_ms), ("virtio-net1", "scheduled", 49000));
    }
}
