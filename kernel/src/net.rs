//! The network path: the kinds of the system manifest (`domains/system.manifest`, see
//! [`crate::assembly`]) that make it. Which domains start and how they are wired is the
//! manifest's; this module knows how each kind is made ([`construct`]).
//!
//! * `nic` lines: one driver domain per NIC function, the image chosen by PCI id (the
//!   manifest: 1af4:1041 and 1af4:1000 → `dom-virtio-net`, 8086:10c9 → `dom-igb`,
//!   8086:10fb → `dom-ixgbe`), named by line and numbered in PCI order (`virtio-net0`,
//!   `igb0`, `igb1`, …); each a separate instance of its image with its own device.
//! * Every consumer reaches a NIC through a **shadow** ([`NicShadow`]): a kernel object,
//!   proxied to the consumer, that holds a recovery proxy to the driver. When the driver
//!   dies mid-call the shadow returns an empty batch instead of the error (the buffers
//!   handed in died with the driver; consumers replace lost buffers), restarts the driver
//!   through the recovery proxy on the next call, and re-applies the polling mode. So the
//!   forwarding domain and the stack never see a driver crash as an error.
//! * `net=stack` (the default when a NIC exists): `netstack` (smoltcp) on NIC 0 and
//!   `services` (TCP/UDP echo on 7, HTTP status page on 80) on top, reaching the stack
//!   through a recovery proxy and the kernel's [`SystemView`] through a plain one.
//! * `net=fwd`: the `forward` domain between NIC 0 (`fwd.a`) and NIC 1 (`fwd.b`), run by
//!   a kernel thread: it polls while there is work and, after `fwd.idle` rounds in a row
//!   without a frame (default [`DEFAULT_IDLE_ROUNDS`]), blocks on a NIC's interrupt
//!   (`fwd.idle=0`: pure polling, interrupts never used).
//! * `net=both`: the stack and its services on NIC 0 and the forwarder between NICs 1
//!   and 2 (`fwd.a` is NIC 1's side, `fwd.b` NIC 2's); the forwarder has
//!   `restart=always`: when it dies the supervisor restarts it and the forwarding thread
//!   runs the new instance. The soak (`make soak`) runs this.
//! * `crash=NAME@MS[,NAME@MS…]`: kills domain NAME MS milliseconds after the manifest's
//!   domains are up (a crash-under-traffic schedule any harness can drive).
//!
//! Command line: `net=off|stack|fwd|both`, `ip=A.B.C.D/P`, `gw=A.B.C.D`, `fwd.batch=N`, `fwd.idle=N`,
//! `fwd.coalesce=N` (interrupt moderation of the forwarder's halts, frames; 0: off),
//! `fwd.a=IP/P,PEER_IP,PEER_MAC`, `fwd.b=…`, `crash=…`. Bad values are reported and the
//! network is not started; the kernel keeps running.

use crate::assembly::{Ctx, Entry};
use crate::domain::{self, KernelRt};
use crate::sched;
use crate::{pci, println};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use frond_interface::net::*;
use rref::rpc::{Proxyable, Target};
use rref::{DomainId, RRef};
use frond_interface::{Remote, RpcResult};

/// Empty forwarding rounds in a row before the forwarder halts (`fwd.idle`).
pub const DEFAULT_IDLE_ROUNDS: &str = "16";
/// Interrupt moderation of the forwarder's halts (`fwd.coalesce`, frames; 0: off).
pub const DEFAULT_COALESCE: &str = "0";

/// Network options from the kernel command line (borrowed from it: parsed before the
/// heap exists).
#[derive(Clone, Debug, Default)]
pub struct Options<'a> {
    pub mode: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub gw: Option<&'a str>,
    pub fwd_batch: Option<&'a str>,
    pub fwd_idle: Option<&'a str>,
    pub fwd_coalesce: Option<&'a str>,
    pub fwd_a: Option<&'a str>,
    pub fwd_b: Option<&'a str>,
    pub crash: Option<&'a str>,
}

/// Everything the manifest's network entries made, for the console and tests.
pub struct Net {
    pub nics: Vec<(DomainId, &'static NicShadow)>,
    pub stack: Option<DomainId>,
    pub forward: Option<DomainId>,
}

static NET: spin::Once<Net> = spin::Once::new();

pub fn get() -> Option<&'static Net> {
    NET.get()
}

pub fn parse_ipv4(s: &str) -> Result<[u8; 4], String> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for o in out.iter_mut() {
        *o = parts.next().and_then(|p| p.parse().ok()).ok_or_else(|| format!("`{s}` is not an IPv4 address"))?;
    }
    if parts.next().is_some() {
        return Err(format!("`{s}` is not an IPv4 address"));
    }
    Ok(out)
}

pub fn parse_cidr(s: &str) -> Result<([u8; 4], u8), String> {
    let (a, p) = s.split_once('/').ok_or_else(|| format!("`{s}` is not ADDRESS/PREFIX"))?;
    let p: u8 = p.parse().ok().filter(|&p| (1..=30).contains(&p)).ok_or_else(|| format!("`{s}`: prefix must be 1..=30"))?;
    Ok((parse_ipv4(a)?, p))
}

pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for o in out.iter_mut() {
        *o = parts
            .next()
            .filter(|p| p.len() == 2)
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .ok_or_else(|| format!("`{s}` is not a MAC address"))?;
    }
    if parts.next().is_some() {
        return Err(format!("`{s}` is not a MAC address"));
    }
    Ok(out)
}

fn parse_port(s: &str) -> Result<FwdPort, String> {
    let f: Vec<&str> = s.split(',').collect();
    if f.len() != 3 {
        return Err(format!("`{s}`: expected IP/PREFIX,PEER_IP,PEER_MAC"));
    }
    let (addr, prefix) = parse_cidr(f[0])?;
    Ok(FwdPort { addr, prefix, peer_ip: parse_ipv4(f[1])?, peer_mac: parse_mac(f[2])? })
}

impl Options<'_> {
    /// A copy that outlives the command line (which lives on the boot stack).
    pub fn to_static(&self) -> Options<'static> {
        let keep = |s: Option<&str>| s.map(|s| &*String::from(s).leak());
        Options {
            mode: keep(self.mode),
            ip: keep(self.ip),
            gw: keep(self.gw),
            fwd_batch: keep(self.fwd_batch),
            fwd_idle: keep(self.fwd_idle),
            fwd_coalesce: keep(self.fwd_coalesce),
            fwd_a: keep(self.fwd_a),
            fwd_b: keep(self.fwd_b),
            crash: keep(self.crash),
        }
    }
}

/// NICs started so far by the manifest's `nic` lines: (PCI address, driver, shadow).
static NICS: spin::Mutex<Vec<(u16, DomainId, &'static NicShadow)>> = spin::Mutex::new(Vec::new());

/// The NIC at `index` in PCI order over every `nic` line.
fn nic(index: &str) -> Result<Option<&'static NicShadow>, String> {
    let i: usize = index.parse().map_err(|_| format!("`{index}` is not a NIC index"))?;
    let mut n = NICS.lock().clone();
    n.sort_by_key(|x| x.0);
    Ok(n.get(i).map(|x| x.2))
}

fn no_nic(ctx: &Ctx<'_>, what: &str) -> Result<Option<DomainId>, String> {
    if ctx.net.mode.is_some() {
        return Err(format!("{what}: no supported NIC (start QEMU with -device virtio-net-pci,… or -device igb,…)"));
    }
    Ok(None)
}

/// `pci=VENDOR:DEVICE,…` of a manifest entry.
pub fn pci_ids(e: &Entry) -> Result<Vec<(u16, u16)>, String> {
    e.need("pci")?
        .split(',')
        .map(|p| {
            let (v, d) = p.split_once(':').ok_or_else(|| format!("pci={p}: expected VENDOR:DEVICE"))?;
            let h = |x: &str| u16::from_str_radix(x, 16).map_err(|_| format!("pci={p}: not hexadecimal"));
            Ok((h(v)?, h(d)?))
        })
        .collect()
}

/// The network kinds: `nic` (one driver domain per matching PCI function, each behind a
/// [`NicShadow`]), `netstack` (`nic=INDEX`; address from `ip=`/`gw=`), `services`
/// (`stack=ENTRY`), `forward` (`a=INDEX b=INDEX`; `fwd.*` options; run by a kernel thread).
pub fn construct(e: &Entry, ctx: &mut Ctx<'_>) -> Result<Option<DomainId>, String> {
    match e.kind.as_str() {
        "nic" => {
            let mut found: Vec<pci::Function> = pci_ids(e)?.iter().flat_map(|&(v, d)| pci::find(v, d)).collect();
            found.sort_by_key(|f| f.bdf);
            for (n, f) in found.iter().enumerate() {
                // Instances are numbered per line, in PCI order: virtio-net0, igb0, igb1, …
                let name = format!("{}{n}", e.name);
                let id = start_driver(&name, &e.image, f.bdf)?;
                NICS.lock().push((f.bdf, id, NicShadow::new(&name, id)?));
                ctx.started.push((name, id, e.restart));
            }
            Ok(None)
        }
        "netstack" => {
            let Some(shadow) = nic(e.need("nic")?)? else { return no_nic(ctx, "netstack") };
            let o = ctx.net;
            let (addr, prefix) = parse_cidr(o.ip.unwrap_or("10.0.2.15/24"))?;
            let gateway = match o.gw {
                Some(g) => parse_ipv4(g)?,
                None if o.ip.is_none() => [10, 0, 2, 2],
                None => [0; 4],
            };
            let cfg = Ipv4Config { addr, prefix, gateway };
            Ok(Some(domain::create::<StackKind>(&e.name, &e.image, move || (shadow.remote(), cfg))?))
        }
        "services" => {
            let Some((stack, r)) = ctx.domain(e.need("stack")?) else { return Ok(None) };
            crate::assembly::link::<dyn Sockets>(stack, r)?;
            Ok(Some(domain::create::<ServicesKind>(&e.name, &e.image, move || {
                (crate::assembly::link::<dyn Sockets>(stack, r).expect("netstack exports Sockets"), SystemView::remote())
            })?))
        }
        _ => {
            let (Some(na), Some(nb)) = (nic(e.need("a")?)?, nic(e.need("b")?)?) else {
                return Err(format!("net=fwd needs two NICs, found {}", NICS.lock().len()));
            };
            let o = ctx.net;
            let a = parse_port(o.fwd_a.ok_or("net=fwd needs fwd.a=IP/P,PEER_IP,PEER_MAC")?)?;
            let b = parse_port(o.fwd_b.ok_or("net=fwd needs fwd.b=IP/P,PEER_IP,PEER_MAC")?)?;
            let batch: u16 = o.fwd_batch.unwrap_or("32").parse().ok().filter(|&b| b >= 1 && b as usize <= BATCH_MAX).ok_or("fwd.batch must be 1..=32")?;
            let idle_rounds: u16 = o.fwd_idle.unwrap_or(DEFAULT_IDLE_ROUNDS).parse().map_err(|_| "fwd.idle must be 0..=65535")?;
            let coalesce: u16 = o.fwd_coalesce.unwrap_or(DEFAULT_COALESCE).parse().ok().filter(|&c| c as usize <= BATCH_MAX).ok_or("fwd.coalesce must be 0..=32")?;
            let cfg = FwdConfig { ports: [a, b], batch, idle_rounds, coalesce };
            // `Forward::run` is one call that forwards until stopped: no watchdog budget.
            domain::limits::configure_default(&format!("{}:budget=0ms", e.name))?;
            let fwd = domain::create::<ForwardKind>(&e.name, &e.image, move || (na.remote(), nb.remote(), cfg))?;
            // restart=always: the supervisor restarts a dead forwarder, and this thread
            // runs the new one; otherwise its death ends forwarding.
            let again = e.restart == crate::assembly::Restart::Always;
            let mut f = domain::grant::<dyn Forward>(fwd)?;
            sched::Builder::new("forward-run")
                .priority(sched::Priority::Low)
                .spawn(move || loop {
                    match f.run(0) {
                        Ok(s) => break println!("forward: stopped after {} packets", s.forwarded),
                        Err(e) if again && e.is_crash() => {
                            println!("forward: {}; waiting for its restart", e.as_str());
                            loop {
                                sched::sleep_ms(10);
                                if domain::alive_generation(fwd.0 as usize) != 0 {
                                    if let Ok(g) = domain::grant::<dyn Forward>(fwd) {
                                        f = g;
                                        break;
                                    }
                                }
                            }
                        }
                        Err(e) => break println!("forward: stopped: {}", e.as_str()),
                    }
                })
                .map_err(|e| format!("spawning the forwarding thread: {e:?}"))?;
            Ok(Some(fwd))
        }
    }
}

/// After the manifest ran: what the network is made of, for the console and tests.
pub fn finish(ctx: &mut Ctx<'_>) {
    if let Some(m) = ctx.net.mode.filter(|m| !matches!(*m, "off" | "stack" | "fwd" | "both")) {
        println!("net: not started: net={m}: expected off, stack, fwd or both");
    }
    let mut nics = NICS.lock().clone();
    if nics.is_empty() {
        return;
    }
    nics.sort_by_key(|x| x.0);
    let id = |n: &str| ctx.domain(n).map(|(d, _)| d);
    let net = Net { nics: nics.iter().map(|x| (x.1, x.2)).collect(), stack: id("netstack"), forward: id("forward") };
    NET.call_once(|| net);
}

fn start_driver(name: &str, image: &str, bdf: u16) -> Result<DomainId, String> {
    let dev = pci::prepare(bdf)?;
    let id = domain::create_bound::<NicKind>(name, image, move |id| {
        // The device is the domain's before its init touches it: if init dies, the
        // device is quiesced with the rest. Each instance starts with bus mastering on
        // (the death of the previous one turned it off before its memory was reclaimed).
        pci::bind(bdf, id.0);
        pci::enable(bdf);
        (NicArgs { dev, null_frame: [0; 64], null_len: 0 },)
    })?;
    Ok(id)
}

/// Hands a kernel object to domains: a proxy into the kernel (slot 0), so code and
/// allocations stay the kernel's.
fn export<T: ?Sized + Proxyable + Sync>(object: &'static T) -> Remote<T> {
    // SAFETY: the object is 'static (leaked) and the kernel's generation never ends, so
    // the target is valid for every call; a grant owns nothing, so no release.
    unsafe {
        let t = Target::new(DomainId(0), domain::KERNEL_GEN, NonNull::from(object));
        Remote::proxied(t, T::proxy_view::<KernelRt>(), None)
    }
}

// ---------------------------------------------------------------------------------------

/// The kernel's stand-in for a NIC driver: see the module docs.
pub struct NicShadow {
    pub name: String,
    inner: Remote<dyn Nic>,
    polling: AtomicBool,
    /// A crash was absorbed: re-apply settings on the next call.
    replay: AtomicBool,
    /// Driver calls that failed because the driver died (each lost its batch).
    pub absorbed: AtomicU64,
}

impl NicShadow {
    pub fn new(name: &str, driver: DomainId) -> Result<&'static NicShadow, String> {
        let inner = domain::grant_recover::<dyn Nic>(driver)?;
        Ok(Box::leak(Box::new(NicShadow {
            name: name.to_string(),
            inner,
            polling: AtomicBool::new(false),
            replay: AtomicBool::new(false),
            absorbed: AtomicU64::new(0),
        })))
    }

    pub fn remote(&'static self) -> Remote<dyn Nic> {
        export::<dyn Nic>(self)
    }

    fn replay(&self) {
        if self.replay.swap(false, Relaxed) {
            let _ = self.inner.set_polling(self.polling.load(Relaxed));
        }
    }

    /// `instead` makes the empty answer; it may fail (an empty batch needs shared-heap
    /// blocks), and then the caller sees the driver's error after all.
    fn absorb<T>(&self, r: RpcResult<T>, instead: impl FnOnce() -> Option<T>) -> RpcResult<T> {
        match r {
            Err(e) if e.is_crash() => {
                self.replay.store(true, Relaxed);
                let v = instead().ok_or(e)?;
                self.absorbed.fetch_add(1, Relaxed);
                Ok(v)
            }
            other => other,
        }
    }
}

impl Nic for NicShadow {
    fn info(&self) -> RpcResult<NicInfo> {
        self.replay();
        self.inner.info()
    }
    fn stats(&self) -> RpcResult<NicStats> {
        self.replay();
        self.inner.stats()
    }
    fn tx(&self, b: Batch) -> RpcResult<Batch> {
        self.replay();
        let r = self.inner.tx(b);
        self.absorb(r, Batch::try_new)
    }
    fn rx(&self, b: Batch) -> RpcResult<Batch> {
        self.replay();
        let r = self.inner.rx(b);
        self.absorb(r, Batch::try_new)
    }
    fn wait(&self, timeout_ns: u64) -> RpcResult<()> {
        self.replay();
        let r = self.inner.wait(timeout_ns);
        self.absorb(r, || Some(()))
    }
    fn wait_rx(&self, frames: u16, timeout_ns: u64) -> RpcResult<()> {
        self.replay();
        let r = self.inner.wait_rx(frames, timeout_ns);
        self.absorb(r, || Some(()))
    }
    fn set_polling(&self, on: bool) -> RpcResult<()> {
        self.polling.store(on, Relaxed);
        self.replay.store(false, Relaxed);
        let r = self.inner.set_polling(on);
        self.absorb(r, || Some(()))
    }
}

// ---------------------------------------------------------------------------------------

/// The kernel's read-only view of itself (for the HTTP status page).
pub struct SystemView;

impl SystemView {
    pub fn remote() -> Remote<dyn System> {
        static VIEW: SystemView = SystemView;
        export::<dyn System>(&VIEW)
    }
}

impl System for SystemView {
    fn domains(&self, mut t: RRef<DomainTable>) -> RpcResult<RRef<DomainTable>> {
        let rows = domain::list();
        t.len = 0;
        for (i, d) in rows.iter().take(TABLE_ROWS).enumerate() {
            let mut name = [0u8; NAME_MAX];
            let mut n = d.name.len().min(NAME_MAX);
            while !d.name.is_char_boundary(n) {
                n -= 1;
            }
            name[..n].copy_from_slice(&d.name.as_bytes()[..n]);
            t.rows[i] = DomainRow {
                id: d.id,
                name,
                name_len: n as u8,
                generation: d.generation,
                state: match d.state {
                    domain::State::Alive => 0,
                    domain::State::Dead => 1,
                    domain::State::Restarting => 2,
                },
                heap_used: d.heap_used as u64,
                heap_reserved: d.heap_reserved as u64,
                rrefs: d.rrefs,
                rref_bytes: d.rref_bytes,
                calls: d.calls,
                crashes: d.crashes,
                restarts: d.restarts,
            };
            t.len = i as u32 + 1;
        }
        t.uptime_ms = crate::time::uptime_us() / 1000;
        t.shared_heap_used = domain::shared::SHARED.used() as u64;
        t.shared_heap_size = domain::shared::SHARED.size() as u64;
        Ok(t)
    }
}

/// The console's `net` command.
pub fn print_status() {
    let Some(net) = get() else {
        println!("no network (no supported NIC, or net=off)");
        return;
    };
    for (id, s) in &net.nics {
        match s.inner.stats() {
            Ok(st) => println!(
                "  {:<12} domain {:>2}  rx {:>9} pkts {:>11} B  tx {:>9} pkts {:>11} B  dropped {}  irqs {}  notifies {}  sleeps {}  crashes absorbed {}",
                s.name, id.0, st.rx_packets, st.rx_bytes, st.tx_packets, st.tx_bytes, st.dropped, st.irqs, st.notifies, st.sleeps, s.absorbed.load(Relaxed)
            ),
            Err(e) => println!("  {:<12} domain {:>2}  {}", s.name, id.0, e.as_str()),
        }
    }
    if let Some(st) = net.stack.and_then(|d| domain::grant::<dyn Sockets>(d).ok()) {
        if let Ok(s) = st.stats() {
            println!(
                "  netstack     rx {} frames  tx {} frames  nic errors {}  sockets {}  polls {}",
                s.rx_frames, s.tx_frames, s.nic_errors, s.sockets, s.polls
            );
        }
    }
    if let Some(f) = net.forward.and_then(|d| domain::grant::<dyn Forward>(d).ok()) {
        if let Ok(s) = f.stats() {
            println!(
                "  forward      forwarded {}  dropped {}  arp replies {}  nic errors {}  buffers replaced {}  halts {}  rounds {}",
                s.forwarded, s.dropped, s.arp_replies, s.nic_errors, s.replaced, s.halts, s.rounds
            );
        }
    }
}
