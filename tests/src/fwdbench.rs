//! The forwarding benchmark, for any guest OS: the guest routes UDP between two
//! tap-backed NICs (virtio-net, or QEMU's igb with [`FwdOptions::nic`]), a generator
//! floods one side, a counter counts what comes out of the other.
//!
//! Topology (fixed by the project; [`Rig::start`] builds it, dropping the [`Rig`] tears
//! it down):
//!
//! ```text
//!  netns fwdA                          QEMU (runs in fwdA)                  netns fwdB
//!  tapA 02:00:0a:00:01:01  <-->  NIC A 00:10.0 52:54:00:0a:01:02
//!  10.0.1.1/24                         10.0.1.2/24
//!  10.0.2.0/24 via 10.0.1.2            (guest forwards)
//!                                      NIC B 00:11.0 52:54:00:0a:02:02  <-->  tapB 02:00:0a:00:02:01
//!                                      10.0.2.2/24                            10.0.2.1/24
//!                                                                  10.0.1.0/24 via 10.0.2.2
//! ```
//!
//! Both host sides have permanent neighbour entries for the guest's MACs, and the guest
//! is expected to have them for the host sides, so no ARP ever happens. QEMU opens taps by
//! name in its own namespace, so both taps are created in fwdA; once QEMU has attached
//! them (carrier), tapB moves to fwdB and is configured there.
//!
//! A measurement window: `frond-pktgen` in fwdA sends 60-byte frames 10.0.1.1:1234 →
//! 10.0.2.1:9000 at saturation; after a warm-up, `frond-pktcount` in fwdB counts for S
//! seconds the frames from the guest's NIC B to tapB with TTL 63 and port 9000 (so only
//! forwarded frames count); the window's pps is that count over S. [`Rig::trace`] instead
//! paces the generator and keeps the counter's 10 ms buckets (for plots of traffic
//! through a fault).
//!
//! Invariants:
//! * **Every guest gets identical QEMU flags**: the harness's standard ones
//!   ([`crate::Boot`]) plus the two NICs of [`nics`] (of the model the options name); a
//!   [`Guest`] only chooses kernel, initrd, command line and ready line.
//! * **Nothing outlives a run**: QEMU, the tools and both namespaces are owned by the
//!   [`Rig`] and killed/deleted when it drops (also on error and panic); a stale fwdA/fwdB
//!   from a killed run is deleted before building.
//! * **One rig per machine at a time**: the namespace names are fixed, so [`Rig::start`]
//!   holds an exclusive lock file (`/run/lock/frond-fwdbench.lock`) for the rig's life;
//!   concurrent benchmarks or tests wait instead of tearing each other's namespaces down.
//! * All traffic stays inside fwdA, fwdB and the guest.
//!
//! ```no_run
//! use std::time::Duration;
//! use frond_tests::fwdbench::{self, FwdOptions, Guest, Rig};
//!
//! let opts = FwdOptions::new().unwrap(); // finds frond-pktgen / frond-pktcount
//! let m = fwdbench::measure(&Guest::linux_baseline(), &opts, 3, Duration::from_secs(10)).unwrap();
//! println!("median {} pps", m.summary().median);
//!
//! // Traffic through a fault: 20 kpps for 5 s, crash something 1 s in.
//! let mut rig = Rig::start(&Guest::frond(32).unwrap(), &opts).unwrap();
//! let t = rig
//!     .trace(20_000, Duration::from_secs(5), |qemu, _t0| {
//!         std::thread::sleep(Duration::from_secs(1));
//!         qemu.send(b"crash forward\n") // some console command of the guest under test
//!     })
//!     .unwrap();
//! println!("{} buckets of {} ms", t.buckets.len(), t.bucket_ms);
//! ```

use std::ffi::OsString;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::net::{Ipv4Net, MacAddr, Netns, TapNic};
use crate::pkt::{
    CountOptions, CountReport, FrameFilter, GenOptions, GenReport, COUNT_READY, DEFAULT_BUCKET,
};
use crate::qemu::workspace_root;
use crate::{Accel, Artifacts, Boot, Firmware, HarnessError, NicModel, Session};

/// Namespace of the generator side (QEMU runs here too).
pub const NS_A: &str = "fwdA";
/// Namespace of the counter side.
pub const NS_B: &str = "fwdB";
pub const TAP_A: &str = "tapA";
pub const TAP_B: &str = "tapB";
pub const HOST_A_MAC: MacAddr = MacAddr([0x02, 0x00, 0x0a, 0x00, 0x01, 0x01]);
pub const HOST_B_MAC: MacAddr = MacAddr([0x02, 0x00, 0x0a, 0x00, 0x02, 0x01]);
pub const GUEST_A_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x0a, 0x01, 0x02]);
pub const GUEST_B_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x0a, 0x02, 0x02]);
pub const HOST_A_IP: Ipv4Net = Ipv4Net {
    addr: Ipv4Addr::new(10, 0, 1, 1),
    prefix: 24,
};
pub const HOST_B_IP: Ipv4Net = Ipv4Net {
    addr: Ipv4Addr::new(10, 0, 2, 1),
    prefix: 24,
};
pub const GUEST_A_IP: Ipv4Net = Ipv4Net {
    addr: Ipv4Addr::new(10, 0, 1, 2),
    prefix: 24,
};
pub const GUEST_B_IP: Ipv4Net = Ipv4Net {
    addr: Ipv4Addr::new(10, 0, 2, 2),
    prefix: 24,
};
/// PCI slots of the guest's virtio-net NICs (A, B); igb NICs sit at 0x08 and 0x0a
/// ([`NicModel::pci_slot`]).
pub const SLOT_A: u8 = 0x10;
pub const SLOT_B: u8 = 0x11;
pub const SRC_PORT: u16 = 1234;
pub const DST_PORT: u16 = 9000;
/// TTL of a forwarded datagram: the generator's 64, decremented once by the guest.
pub const FORWARDED_TTL: u8 = 63;

/// Default number of windows and their length (the project's 3 × 10 s).
pub const DEFAULT_WINDOWS: usize = 3;
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// Traffic before a window's counting starts, so queues and caches are in steady state.
pub const DEFAULT_WARMUP: Duration = Duration::from_millis(500);
/// The generator runs this much past the counter's window, covering the counter's own
/// start-up (`ip netns exec`, socket set-up) so the window never sees the traffic stop.
const GEN_SLACK: Duration = Duration::from_secs(1);
/// How long a tool may take to start (print its ready line) or to finish after its time.
const TOOL_GRACE: Duration = Duration::from_secs(15);
/// How long QEMU may take to attach its taps after being spawned.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(15);
/// How long [`Rig::verify`]'s counter goes on after the generator's last frame.
pub const VERIFY_SETTLE: Duration = Duration::from_secs(2);
/// Machine-wide lock serialising rigs (the namespace names are fixed).
const LOCK_PATH: &str = "/run/lock/frond-fwdbench.lock";

/// A guest OS under test: what to boot and how it says it forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    /// Short name for logs and reports, e.g. `linux` or `frond-batch32`.
    pub name: String,
    /// Kernel image given to `-kernel`.
    pub kernel: PathBuf,
    /// Initrd / boot module given to `-initrd`.
    pub initrd: PathBuf,
    /// Kernel command line.
    pub cmdline: String,
    /// Text the guest prints on its serial port once it forwards.
    pub ready: String,
    /// How long booting to `ready` may take.
    pub boot_timeout: Duration,
}

impl Guest {
    /// Where `scripts/linux-guest.sh` puts the Linux baseline: (kernel, initramfs).
    pub fn linux_paths() -> (PathBuf, PathBuf) {
        let dir = workspace_root().join("target").join("linux-guest");
        (dir.join("vmlinuz"), dir.join("initramfs.gz"))
    }

    /// The Linux baseline (Debian's kernel + busybox initramfs; see
    /// `scripts/linux-guest.sh`), whether built or not.
    pub fn linux_baseline() -> Guest {
        let (kernel, initrd) = Guest::linux_paths();
        Guest {
            name: "linux".into(),
            kernel,
            initrd,
            cmdline: "console=ttyS0 panic=-1 quiet".into(),
            ready: "linux-guest: forwarding ready".into(),
            boot_timeout: Duration::from_secs(120),
        }
    }

    /// Frond's forwarder with `fwd.batch=batch`, booting the kernel and boot module the
    /// environment names (see [`Artifacts::locate`]).
    pub fn frond(batch: usize) -> Result<Guest, HarnessError> {
        let a = Artifacts::locate()?;
        Ok(Guest {
            name: format!("frond-batch{batch}"),
            kernel: a.kernel,
            initrd: a.boot_module,
            cmdline: frond_cmdline(batch),
            ready: "forward: ready".into(),
            boot_timeout: Duration::from_secs(60),
        })
    }
}

/// Frond's command line for the topology: `net=fwd fwd.batch=N fwd.a=IP/P,GW,MAC
/// fwd.b=...` (each side: the guest's address, the host side's address and MAC).
pub fn frond_cmdline(batch: usize) -> String {
    let side = |guest: Ipv4Net, host: Ipv4Net, mac: MacAddr| format!("{guest},{},{mac}", host.addr);
    format!(
        "net=fwd fwd.batch={batch} fwd.a={} fwd.b={}",
        side(GUEST_A_IP, HOST_A_IP, HOST_A_MAC),
        side(GUEST_B_IP, HOST_B_IP, HOST_B_MAC)
    )
}

/// The guest's two NICs of `model`: A on tapA, B on tapB, at [`NicModel::pci_slot`] 0
/// and 1 (virtio-net: [`SLOT_A`] and [`SLOT_B`]).
pub fn nics(model: NicModel) -> [TapNic; 2] {
    [
        TapNic {
            id: "fwda".into(),
            tap: TAP_A.into(),
            mac: GUEST_A_MAC,
            pci_slot: model.pci_slot(0),
            model,
        },
        TapNic {
            id: "fwdb".into(),
            tap: TAP_B.into(),
            mac: GUEST_B_MAC,
            pci_slot: model.pci_slot(1),
            model,
        },
    ]
}

/// The QEMU arguments added for every guest (both NICs).
pub fn nic_args(model: NicModel) -> Vec<OsString> {
    nics(model).iter().flat_map(TapNic::qemu_args).collect()
}

/// The generator's options: saturation if `rate` is `None`.
pub fn gen_options(duration: Duration, rate: Option<u64>) -> GenOptions {
    GenOptions {
        src: SocketAddrV4::new(HOST_A_IP.addr, SRC_PORT),
        dst: SocketAddrV4::new(HOST_B_IP.addr, DST_PORT),
        duration,
        rate,
    }
}

/// The counter's options: forwarded frames (guest B → tapB, TTL 63, port 9000) on tapB.
pub fn count_options(duration: Duration) -> CountOptions {
    CountOptions {
        filter: FrameFilter {
            dst_mac: HOST_B_MAC,
            src_mac: GUEST_B_MAC,
            ttl: FORWARDED_TTL,
            udp_dst_port: DST_PORT,
        },
        duration: Some(duration),
        bucket: DEFAULT_BUCKET,
        iface: Some(TAP_B.into()),
        verify: false,
    }
}

/// The packet tools' executables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub pktgen: PathBuf,
    pub pktcount: PathBuf,
}

impl Tools {
    /// `FROND_PKTGEN` / `FROND_PKTCOUNT` if set, else next to the running executable (a
    /// bin of this crate) or one level up (a test binary in `target/*/deps`). Integration
    /// tests can also pass `env!("CARGO_BIN_EXE_frond-pktgen")` and friends directly.
    pub fn locate() -> Result<Tools, HarnessError> {
        let exe = std::env::current_exe()
            .map_err(|e| HarnessError::io("cannot find the running executable", e))?;
        let dirs: Vec<PathBuf> = exe
            .ancestors()
            .skip(1)
            .take(2)
            .map(Path::to_path_buf)
            .collect();
        let find = |var: &str, name: &str| -> Result<PathBuf, HarnessError> {
            if let Some(p) = std::env::var_os(var).filter(|v| !v.is_empty()) {
                return Ok(PathBuf::from(p));
            }
            dirs.iter()
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    HarnessError::io(
                        format!(
                            "{name} not found next to {} (run `cargo build -p frond-tests`, or set {var})",
                            exe.display()
                        ),
                        std::io::ErrorKind::NotFound.into(),
                    )
                })
        };
        Ok(Tools {
            pktgen: find("FROND_PKTGEN", "frond-pktgen")?,
            pktcount: find("FROND_PKTCOUNT", "frond-pktcount")?,
        })
    }
}

/// How to run the rig (everything but the guest).
#[derive(Debug, Clone)]
pub struct FwdOptions {
    pub tools: Tools,
    /// Accelerator (`None`: the harness's choice, i.e. `FROND_ACCEL` or the host).
    pub accel: Option<Accel>,
    /// Firmware (`None`: the harness's choice, i.e. `FROND_BIOS` or qboot).
    pub firmware: Option<Firmware>,
    /// Hard cap on QEMU's lifetime.
    pub lifetime: Duration,
    /// Traffic before counting starts (see [`DEFAULT_WARMUP`]).
    pub warmup: Duration,
    /// The NICs' device model (the same for every guest of a comparison).
    pub nic: NicModel,
}

impl FwdOptions {
    /// Located tools, the harness's accelerator and firmware, a 10-minute lifetime.
    pub fn new() -> Result<FwdOptions, HarnessError> {
        Ok(FwdOptions {
            tools: Tools::locate()?,
            accel: None,
            firmware: None,
            lifetime: Duration::from_secs(600),
            warmup: DEFAULT_WARMUP,
            nic: NicModel::VirtioNet,
        })
    }
}

/// One measurement window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Forwarded frames counted in fwdB during the window.
    pub rx_packets: u64,
    /// The window's length as the counter measured it.
    pub rx_seconds: f64,
    /// `rx_packets / rx_seconds`.
    pub rx_pps: f64,
    /// Datagrams the generator sent (over its whole run: warm-up + window + slack).
    pub tx_packets: u64,
    pub tx_seconds: f64,
    pub tx_pps: f64,
    /// Failed sends of the generator.
    pub tx_errors: u64,
    /// Host CPU time of each QEMU thread while the window counted (see [`ThreadCpu`]).
    pub qemu_threads: Vec<ThreadCpu>,
    /// Host seconds over which `qemu_threads` was sampled.
    pub cpu_seconds: f64,
    /// Growth of the guest's own counters over the window (see [`Rig::measure_probed`]).
    pub guest: Vec<(String, u64)>,
    /// Frames QEMU read from tapA during the window (tapA's tx counter).
    pub accepted: u64,
    /// Frames tapA dropped because QEMU did not read them in time (its queue was full).
    pub tap_dropped: u64,
    /// Frames QEMU wrote to tapB during the window (tapB's rx counter).
    pub emitted: u64,
}

impl Window {
    fn from_reports(c: &CountReport, g: &GenReport) -> Window {
        Window {
            rx_packets: c.total,
            rx_seconds: c.seconds,
            rx_pps: c.pps(),
            tx_packets: g.sent,
            tx_seconds: g.seconds,
            tx_pps: g.pps(),
            tx_errors: g.errors,
            qemu_threads: Vec::new(),
            cpu_seconds: 0.0,
            guest: Vec::new(),
            accepted: 0,
            tap_dropped: 0,
            emitted: 0,
        }
    }

    /// Frames lost inside the guest, as a share of those QEMU accepted: accepted on tapA
    /// but never written to tapB (in-flight frames at the window's edges aside).
    pub fn lost_in_guest(&self) -> f64 {
        if self.accepted == 0 {
            return f64::NAN;
        }
        self.accepted.saturating_sub(self.emitted) as f64 / self.accepted as f64
    }

    /// Growth of guest counter `name` over the window, if the probe reported it.
    pub fn guest_counter(&self, name: &str) -> Option<u64> {
        self.guest.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }
}

/// Host CPU time one QEMU thread used during a window.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadCpu {
    /// The thread's role: `vCPU` (`CPU n/TCG` or `CPU n/KVM`), `main loop` (the process's
    /// first thread: QEMU's main loop, which moves tap traffic and runs the devices'
    /// bottom halves under TCG), `I/O thread` (`IO …`), `RCU` (`call_rcu`), `worker`, or
    /// the thread's own name.
    pub role: String,
    /// The kernel's name for it (`/proc/<pid>/task/<tid>/comm`).
    pub name: String,
    /// User + system CPU seconds.
    pub seconds: f64,
}

/// One sample of a process's threads: (tid, name, user + system clock ticks).
pub fn thread_ticks(pid: i32) -> Vec<(i32, String, u64)> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut out: Vec<(i32, String, u64)> = dir
        .filter_map(|e| {
            let tid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
            let (name, ticks) = parse_task_stat(&stat)?;
            Some((tid, name, ticks))
        })
        .collect();
    out.sort_by_key(|t| t.0);
    out
}

/// `/proc/…/stat` → (comm, utime + stime). The name sits in parentheses and may itself
/// hold spaces and parentheses, so the fields are counted from the last `)`: utime and
/// stime are fields 14 and 15, i.e. the 12th and 13th after the name.
pub fn parse_task_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let f: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// The role of a QEMU thread (see [`ThreadCpu::role`]); `first` = the main thread.
pub fn thread_role(name: &str, first: bool) -> String {
    if first {
        "main loop".into()
    } else if name.starts_with("CPU ") {
        "vCPU".into()
    } else if name.starts_with("IO ") || name.starts_with("iothread") {
        "I/O thread".into()
    } else if name == "call_rcu" {
        "RCU".into()
    } else if name == "worker" || name.starts_with("qemu-") {
        "worker".into()
    } else {
        name.into()
    }
}

/// CPU time per thread between two samples of the process `pid` (threads in `after`;
/// a thread new since `before` counts from 0).
pub fn thread_cpu(pid: i32, before: &[(i32, String, u64)], after: &[(i32, String, u64)]) -> Vec<ThreadCpu> {
    let hz = clock_ticks_per_second();
    after
        .iter()
        .map(|(tid, name, t)| {
            let t0 = before.iter().find(|b| b.0 == *tid).map_or(0, |b| b.2);
            ThreadCpu { role: thread_role(name, *tid == pid), name: name.clone(), seconds: t.saturating_sub(t0) as f64 / hz }
        })
        .collect()
}

/// `/proc` reports CPU time in `USER_HZ` ticks, which is 100 on x86 Linux (the kernel's
/// ABI, whatever its internal tick rate).
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// Min, median and max of some samples (NaN for none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(samples: &[f64]) -> Summary {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => s[n / 2],
            _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
        };
        Summary {
            min: s.first().copied().unwrap_or(f64::NAN),
            median,
            max: s.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// The result of [`Rig::measure`].
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub guest: String,
    pub windows: Vec<Window>,
}

impl Measurement {
    /// Forwarded packets per second, one per window.
    pub fn rx_pps(&self) -> Vec<f64> {
        self.windows.iter().map(|w| w.rx_pps).collect()
    }

    pub fn summary(&self) -> Summary {
        Summary::of(&self.rx_pps())
    }
}

/// The result of [`Rig::trace`]: forwarded frames per bucket with a paced generator.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub bucket_ms: u64,
    /// Bucket 0 starts when the counter started (see [`Rig::trace`]).
    pub buckets: Vec<u64>,
    pub total: u64,
    /// The generator's rate and what it sent (over warm-up + trace + slack).
    pub rate: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
}

/// The live topology: both namespaces, QEMU running the guest, ready to forward.
/// Dropping it kills QEMU and the tools and deletes the namespaces.
pub struct Rig {
    // Field order is drop order: QEMU first, then the namespaces, then the lock.
    session: Session,
    sink: Option<UdpSocket>,
    b: Netns,
    a: Netns,
    guest: Guest,
    opts: FwdOptions,
    _lock: File,
}

impl std::fmt::Debug for Rig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rig")
            .field("guest", &self.guest.name)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

fn lock_rig() -> Result<File, HarnessError> {
    let path = Path::new(LOCK_PATH);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| HarnessError::io(format!("cannot create {}", dir.display()), e))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| HarnessError::io(format!("cannot open {}", path.display()), e))?;
    if file.try_lock().is_err() {
        eprintln!("frond-tests: waiting for another forwarding rig ({LOCK_PATH})");
        file.lock()
            .map_err(|e| HarnessError::io(format!("cannot lock {}", path.display()), e))?;
    }
    Ok(file)
}

impl Rig {
    /// Builds the topology, boots `guest` in QEMU (in fwdA) and waits for its ready line.
    pub fn start(guest: &Guest, opts: &FwdOptions) -> Result<Rig, HarnessError> {
        let lock = lock_rig()?;
        let a = Netns::create(NS_A)?;
        let b = Netns::create(NS_B)?;
        for ns in [&a, &b] {
            ns.disable_ipv6()?;
        }
        a.add_tap(TAP_A, HOST_A_MAC)?;
        a.configure_link(TAP_A, HOST_A_MAC, Some(HOST_A_IP))?;
        a.add_route(HOST_B_IP.network(), GUEST_A_IP.addr)?;
        a.add_neigh(TAP_A, GUEST_A_IP.addr, GUEST_A_MAC)?;
        // tapB is opened by QEMU here, then moved to fwdB.
        a.add_tap(TAP_B, HOST_B_MAC)?;
        a.link_up(TAP_B)?;

        let mut boot = Boot::new()
            .name(match opts.nic {
                NicModel::VirtioNet => format!("fwdbench-{}", guest.name),
                m => format!("fwdbench-{}-{}", guest.name, m.driver_name()),
            })
            .kernel(&guest.kernel)
            .boot_module(&guest.initrd)
            .cmdline(guest.cmdline.clone())
            .netns(NS_A)
            .qemu_args(nic_args(opts.nic))
            // Names QEMU's threads (`CPU 0/TCG`, …) for the per-thread CPU figures.
            .qemu_args(["-name", "fwdbench,debug-threads=on"])
            .timeout(opts.lifetime);
        if let Some(accel) = opts.accel {
            boot = boot.accel(accel);
        }
        if let Some(fw) = opts.firmware {
            boot = boot.firmware(fw);
        }
        let mut session = boot.try_spawn()?;
        for tap in [TAP_A, TAP_B] {
            if let Err(e) = a.wait_carrier(tap, ATTACH_TIMEOUT, || session.exited().is_none()) {
                let out = session.wait(Duration::ZERO);
                return Err(HarnessError::Command {
                    command: out.command.clone(),
                    problem: format!("QEMU did not attach its taps: {e}\n{}", out.report()),
                    stderr: String::new(),
                });
            }
        }
        a.move_link(TAP_B, &b)?;
        b.configure_link(TAP_B, HOST_B_MAC, Some(HOST_B_IP))?;
        b.add_route(HOST_A_IP.network(), GUEST_B_IP.addr)?;
        b.add_neigh(TAP_B, GUEST_B_IP.addr, GUEST_B_MAC)?;
        // Holds the destination port in fwdB for the rig's life, so fwdB never answers
        // the flood with ICMP port unreachable between counter runs.
        let sink = b.run_in(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, DST_PORT)))?;
        let sink =
            sink.map_err(|e| HarnessError::io(format!("bind UDP port {DST_PORT} in {NS_B}"), e))?;
        session.expect(&guest.ready, guest.boot_timeout)?;
        Ok(Rig {
            session,
            sink: Some(sink),
            b,
            a,
            guest: guest.clone(),
            opts: opts.clone(),
            _lock: lock,
        })
    }

    /// The QEMU session (e.g. to type on the guest's console or read its output).
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    pub fn guest(&self) -> &Guest {
        &self.guest
    }

    /// The generator side's namespace (fwdA).
    pub fn netns_a(&self) -> &Netns {
        &self.a
    }

    /// The counter side's namespace (fwdB).
    pub fn netns_b(&self) -> &Netns {
        &self.b
    }

    /// Fails if QEMU has ended (the guest crashed or rebooted under traffic).
    fn check_alive(&self, during: &str) -> Result<(), HarnessError> {
        match self.session.exited() {
            None => Ok(()),
            Some(exit) => Err(HarnessError::Command {
                command: format!("QEMU ({})", self.guest.name),
                problem: format!(
                    "ended with {exit} during {during}; serial log: {}",
                    self.session
                        .log_path()
                        .map_or("(none)".into(), |p| p.display().to_string())
                ),
                stderr: String::new(),
            }),
        }
    }

    /// Starts the generator (`rate`: `None` = saturation) for warm-up + `window` + slack,
    /// waits out the warm-up, starts the counter for `window` and waits until it counts.
    /// Returns (generator, counter, the moment counting started).
    fn start_traffic(
        &self,
        window: Duration,
        rate: Option<u64>,
    ) -> Result<(crate::net::NsChild, crate::net::NsChild, Instant), HarnessError> {
        let gen_for = self.opts.warmup + window + GEN_SLACK;
        let gen = self.a.spawn(
            &self.opts.tools.pktgen,
            gen_options(gen_for, rate).to_args(),
        )?;
        thread::sleep(self.opts.warmup);
        let count = self
            .b
            .spawn(&self.opts.tools.pktcount, count_options(window).to_args())?;
        count.wait_for_stderr(COUNT_READY, TOOL_GRACE)?;
        Ok((gen, count, Instant::now()))
    }

    fn finish_traffic(
        gen: crate::net::NsChild,
        count: crate::net::NsChild,
        window: Duration,
    ) -> Result<(GenReport, CountReport), HarnessError> {
        let parse_err = |tool: &str, e: crate::pkt::ParseError| HarnessError::Command {
            command: tool.to_string(),
            problem: e.to_string(),
            stderr: String::new(),
        };
        let c = count.wait_success(window + TOOL_GRACE)?;
        let c = CountReport::from_output(&c).map_err(|e| parse_err("frond-pktcount", e))?;
        let g = gen.wait_success(GEN_SLACK + TOOL_GRACE)?;
        let g = GenReport::from_output(&g).map_err(|e| parse_err("frond-pktgen", e))?;
        Ok((g, c))
    }

    /// `windows` windows of `window` at saturation (see the module docs).
    pub fn measure(
        &mut self,
        windows: usize,
        window: Duration,
    ) -> Result<Measurement, HarnessError> {
        self.measure_probed(windows, window, |_| Vec::new())
    }

    /// As [`Rig::measure`], and also: the host CPU time of each QEMU thread while the
    /// counter counts, and the growth of the guest's own counters, which `probe` reads
    /// (e.g. from the guest's console) right after counting starts and right after it
    /// ends, as `(name, value)` pairs (a counter missing from either reading is left out).
    pub fn measure_probed(
        &mut self,
        windows: usize,
        window: Duration,
        mut probe: impl FnMut(&mut Session) -> Vec<(String, u64)>,
    ) -> Result<Measurement, HarnessError> {
        let pid = self.session.pid();
        let mut out = Vec::with_capacity(windows);
        for i in 0..windows {
            self.check_alive("the measurement")?;
            let (gen, count, _) = self.start_traffic(window, None)?;
            let taps = |rig: &Rig| (rig.a.link_stats(TAP_A).unwrap_or_default(), rig.b.link_stats(TAP_B).unwrap_or_default());
            let (t0, cpu0, taps0) = (Instant::now(), thread_ticks(pid), taps(self));
            let before = probe(&mut self.session);
            let (g, c) = Rig::finish_traffic(gen, count, window)?;
            let (t1, cpu1, taps1) = (Instant::now(), thread_ticks(pid), taps(self));
            let after = probe(&mut self.session);
            self.check_alive(&format!("window {}", i + 1))?;
            let mut w = Window::from_reports(&c, &g);
            w.qemu_threads = thread_cpu(pid, &cpu0, &cpu1);
            w.cpu_seconds = (t1 - t0).as_secs_f64();
            w.accepted = taps1.0.tx_packets.saturating_sub(taps0.0.tx_packets);
            w.tap_dropped = taps1.0.tx_dropped.saturating_sub(taps0.0.tx_dropped);
            w.emitted = taps1.1.rx_packets.saturating_sub(taps0.1.rx_packets);
            w.guest = after
                .into_iter()
                .filter_map(|(n, v)| {
                    let v0 = before.iter().find(|b| b.0 == n)?.1;
                    Some((n, v.saturating_sub(v0)))
                })
                .collect();
            out.push(w);
        }
        Ok(Measurement {
            guest: self.guest.name.clone(),
            windows: out,
        })
    }

    /// One run of `duration` with the generator paced at `rate` pps, returning the
    /// counter's 10 ms buckets. `during` runs while the traffic flows, right after
    /// counting started (bucket 0 begins at the `Instant` it gets), e.g. to make the
    /// guest crash a component through its console; the counter stops on its own at
    /// `duration`, and `during` should return before then. QEMU ending is not an error
    /// here (a crash may be the point); the trace shows what got through.
    pub fn trace(
        &mut self,
        rate: u64,
        duration: Duration,
        during: impl FnOnce(&mut Session, Instant) -> Result<(), HarnessError>,
    ) -> Result<Trace, HarnessError> {
        assert!(rate > 0, "a trace needs a positive rate");
        self.check_alive("the trace set-up")?;
        let (gen, count, started) = self.start_traffic(duration, Some(rate))?;
        during(&mut self.session, started)?;
        let (g, c) = Rig::finish_traffic(gen, count, duration)?;
        Ok(Trace {
            bucket_ms: c.bucket_ms,
            buckets: c.buckets,
            total: c.total,
            rate,
            tx_packets: g.sent,
            tx_errors: g.errors,
        })
    }

    /// A pass/fail run: the counter starts first (on tapB, `--verify on`), then the
    /// generator sends exactly `frames` datagrams paced at `rate` pps; the counter keeps
    /// going [`VERIFY_SETTLE`] after the last one so nothing in flight is missed.
    /// Returns (generator, counter) reports; the caller judges them (see
    /// [`crate::pkt::VerifyReport`]).
    pub fn verify(&mut self, frames: u64, rate: u64) -> Result<(GenReport, CountReport), HarnessError> {
        assert!(frames > 0 && rate > 0, "a verification run needs frames and a rate");
        self.check_alive("the verification set-up")?;
        // The paced generator sends exactly the packets due before its end, the first at
        // time 0 (see `pkt::due_packets`): `frames / rate` seconds (rounded up) is `frames`.
        let gen_for = Duration::from_nanos((frames * 1_000_000_000).div_ceil(rate));
        let count_for = gen_for + VERIFY_SETTLE;
        let mut copts = count_options(count_for);
        copts.verify = true;
        let count = self.b.spawn(&self.opts.tools.pktcount, copts.to_args())?;
        count.wait_for_stderr(COUNT_READY, TOOL_GRACE)?;
        let gen = self.a.spawn(&self.opts.tools.pktgen, gen_options(gen_for, Some(rate)).to_args())?;
        let (g, c) = Rig::finish_traffic(gen, count, count_for)?;
        self.check_alive("the verification run")?;
        Ok((g, c))
    }

    /// Tears everything down now (dropping does the same), returning QEMU's outcome
    /// (killed: [`crate::Exit::Timeout`] unless the guest had ended on its own).
    pub fn stop(mut self) -> crate::Outcome {
        self.sink = None;
        let Rig { session, .. } = self;
        session.wait(Duration::ZERO)
    }
}

/// The generator's ceiling: its send rate for `duration` with nothing slowing it down
/// but the host stack, into a veth pair whose far end drops every frame (wrong MAC,
/// no address), in a namespace of its own. Same options as a window's generator.
pub fn generator_ceiling(opts: &FwdOptions, duration: Duration) -> Result<GenReport, HarnessError> {
    let ns = Netns::create_unique("fwdgen")?;
    ns.disable_ipv6()?;
    ns.ip(["link", "add", "g0", "address", &HOST_A_MAC.to_string(), "type", "veth", "peer", "name", "g1"])?;
    ns.link_up("g1")?;
    ns.configure_link("g0", HOST_A_MAC, Some(HOST_A_IP))?;
    ns.add_route(HOST_B_IP.network(), GUEST_A_IP.addr)?;
    ns.add_neigh("g0", GUEST_A_IP.addr, GUEST_A_MAC)?;
    let gen = ns.spawn(&opts.tools.pktgen, gen_options(duration, None).to_args())?;
    let out = gen.wait_success(duration + TOOL_GRACE)?;
    GenReport::from_output(&out).map_err(|e| HarnessError::Command {
        command: "frond-pktgen".into(),
        problem: e.to_string(),
        stderr: String::new(),
    })
}

/// Boots `guest`, measures `windows` × `window` at saturation, tears down.
pub fn measure(
    guest: &Guest,
    opts: &FwdOptions,
    windows: usize,
    window: Duration,
) -> Result<Measurement, HarnessError> {
    let mut rig = Rig::start(guest, opts)?;
    rig.measure(windows, window)
}

/// Boots `guest`, runs one paced trace (see [`Rig::trace`]), tears down.
pub fn trace(
    guest: &Guest,
    opts: &FwdOptions,
    rate: u64,
    duration: Duration,
    during: impl FnOnce(&mut Session, Instant) -> Result<(), HarnessError>,
) -> Result<Trace, HarnessError> {
    let mut rig = Rig::start(guest, opts)?;
    rig.trace(rate, duration, during)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frond_command_line_is_the_projects() {
        assert_eq!(
            frond_cmdline(32),
            "net=fwd fwd.batch=32 fwd.a=10.0.1.2/24,10.0.1.1,02:00:0a:00:01:01 \
             fwd.b=10.0.2.2/24,10.0.2.1,02:00:0a:00:02:01"
        );
    }

    #[test]
    fn nic_arguments_are_fixed() {
        let args: Vec<String> = nic_args(NicModel::VirtioNet)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let igb: Vec<String> = nic_args(NicModel::Igb)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            igb.join(" "),
            "-netdev tap,id=fwda,ifname=tapA,script=no,downscript=no \
             -device igb,netdev=fwda,mac=52:54:00:0a:01:02,addr=0x08 \
             -netdev tap,id=fwdb,ifname=tapB,script=no,downscript=no \
             -device igb,netdev=fwdb,mac=52:54:00:0a:02:02,addr=0x0a"
        );
        assert_eq!(
            args.join(" "),
            "-netdev tap,id=fwda,ifname=tapA,script=no,downscript=no \
             -device virtio-net-pci,netdev=fwda,mac=52:54:00:0a:01:02,addr=0x10,disable-legacy=on \
             -netdev tap,id=fwdb,ifname=tapB,script=no,downscript=no \
             -device virtio-net-pci,netdev=fwdb,mac=52:54:00:0a:02:02,addr=0x11,disable-legacy=on"
        );
    }

    #[test]
    fn tool_arguments() {
        let g = gen_options(Duration::from_millis(11_500), None).to_args();
        assert_eq!(
            g.join(" "),
            "--src 10.0.1.1:1234 --dst 10.0.2.1:9000 --seconds 11.5"
        );
        let paced = gen_options(Duration::from_secs(5), Some(20_000)).to_args();
        assert!(
            paced.join(" ").ends_with("--seconds 5 --rate 20000"),
            "{paced:?}"
        );
        let c = count_options(Duration::from_secs(10)).to_args();
        assert_eq!(
            c.join(" "),
            "--dst-mac 02:00:0a:00:02:01 --src-mac 52:54:00:0a:02:02 --ttl 63 --port 9000 \
             --bucket-ms 10 --seconds 10 --iface tapB"
        );
    }

    #[test]
    fn topology_is_consistent() {
        // Each host side and guest NIC share a /24; the routes point across.
        assert_eq!(HOST_A_IP.network(), GUEST_A_IP.network());
        assert_eq!(HOST_B_IP.network(), GUEST_B_IP.network());
        assert_ne!(HOST_A_IP.network(), HOST_B_IP.network());
        assert_eq!(HOST_B_IP.network().to_string(), "10.0.2.0/24");
        for name in [TAP_A, TAP_B] {
            crate::net::check_ifname(name).unwrap();
        }
    }

    #[test]
    fn summary_and_windows() {
        let s = Summary::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert!(Summary::of(&[]).median.is_nan());
        let c = CountReport {
            bucket_ms: 10,
            buckets: vec![500; 1000],
            total: 500_000,
            seconds: 10.0,
            verify: None,
        };
        let g = GenReport {
            sent: 2_300_000,
            errors: 0,
            seconds: 11.5,
            rate: None,
        };
        let w = Window::from_reports(&c, &g);
        assert_eq!(w.rx_pps, 50_000.0);
        assert_eq!(w.tx_pps, 200_000.0);
        let m = Measurement {
            guest: "x".into(),
            windows: vec![
                w.clone(),
                Window {
                    rx_pps: 40_000.0,
                    ..w
                },
            ],
        };
        assert_eq!(m.summary().median, 45_000.0);
    }

    #[test]
    fn task_stat_and_roles() {
        let stat = "4242 (CPU 0/TCG) R 1 2 3 0 -1 4194368 10 0 0 0 1234 56 0 0 20 0 5 0 100 0 0";
        assert_eq!(parse_task_stat(stat), Some(("CPU 0/TCG".into(), 1290)));
        let odd = "7 (a) b (c)) S 1 2 3 0 -1 0 0 0 0 0 7 8 0 0";
        assert_eq!(parse_task_stat(odd), Some(("a) b (c)".into(), 15)));
        assert_eq!(parse_task_stat("garbage"), None);
        assert_eq!(thread_role("qemu-system-x86", true), "main loop");
        assert_eq!(thread_role("CPU 0/TCG", false), "vCPU");
        assert_eq!(thread_role("call_rcu", false), "RCU");
        let before = vec![(10, "qemu-system-x86".to_string(), 100), (11, "CPU 0/TCG".to_string(), 50)];
        let after = vec![(10, "qemu-system-x86".to_string(), 150), (11, "CPU 0/TCG".to_string(), 850), (12, "worker".into(), 3)];
        let cpu = thread_cpu(10, &before, &after);
        assert_eq!(cpu.iter().map(|t| (t.role.as_str(), t.seconds)).collect::<Vec<_>>(), [("main loop", 0.5), ("vCPU", 8.0), ("worker", 0.03)]);
        // This process's own threads can be read.
        assert!(!thread_ticks(std::process::id() as i32).is_empty());
    }

    #[test]
    fn linux_guest_paths() {
        let g = Guest::linux_baseline();
        assert!(g.kernel.ends_with("target/linux-guest/vmlinuz"));
        assert!(g.initrd.ends_with("target/linux-guest/initramfs.gz"));
        assert!(g.cmdline.contains("console=ttyS0"));
        assert_eq!(g.ready, "linux-guest: forwarding ready");
    }
}
