//! System assembly: the kernel starts the domains the **system manifest** lists.
//!
//! The manifest (`domains/system.manifest`, bundled into the boot module as `etc/system`)
//! is policy: which domains exist, from which image, under which name, wired to which
//! other entries, when each starts (a condition on the kernel command line) and what
//! happens when it dies. This module is mechanism: it parses the manifest (bad lines are
//! reported with their number; nothing in it can make the kernel panic), evaluates the
//! conditions, and hands each entry to its **kind**'s constructor — the only place that
//! knows a kind's typed init arguments (`net.rs`: `nic`, `netstack`, `services`,
//! `forward`; `storage.rs`: `virtio-blk`, `ramdisk`, `fs`, `fsload`; `demo.rs`: `echo`,
//! `client`; `rv6.rs`: `rv6`). A new subsystem made of existing kinds is a new manifest
//! line; a new kind is one constructor.
//!
//! Why a manifest and not an init domain: the wiring is data (names, images, edges,
//! policies), and a manifest keeps it data — readable, checked at boot with line numbers,
//! changed without compiling. An init domain would need, for every kind, a kernel-exported
//! capability to create it, i.e. the same per-kind constructors plus an interface for
//! each; it earns its keep once wiring needs computation (starting domains on demand),
//! which nothing here does yet.
//!
//! Restart policies: `on-call` (consumers get recovery proxies: the first call after a
//! crash restarts the domain), `always` (the supervisor thread restarts it within 100 ms
//! of its death, with back-off when restarts fail), `never` (consumers get plain
//! proxies).

use crate::domain;
use crate::println;
use crate::sched;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use rref::DomainId;

/// The manifest's name in the boot module.
pub const MANIFEST: &str = "etc/system";
/// Set when every manifest entry has been started (or skipped).
static DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Waits until the manifest's entries are started, at most `ms` milliseconds (the
/// console's prompt comes once the system is assembled, so its commands see it whole).
pub fn wait_done(ms: u64) {
    let mut waited = 0;
    while !DONE.load(core::sync::atomic::Ordering::Acquire) && waited < ms {
        sched::sleep_ms(5);
        waited += 5;
    }
}

/// Names of the started entries whose restart policy is not `never`.
static RESTARTABLE: spin::Once<Vec<String>> = spin::Once::new();

/// The system domains that come back after a crash (the fault injector's default targets).
pub fn restartable() -> Vec<String> {
    RESTARTABLE.get().cloned().unwrap_or_default()
}

fn done() {
    DONE.store(true, core::sync::atomic::Ordering::Release);
}


pub use frond_manifest::{parse, Entry, Restart};

/// The handle a consumer gets to domain `id`, whose entry has restart policy `r`: a
/// recovery proxy, unless the policy is `never`.
pub fn link<T: ?Sized + rref::rpc::Proxyable + Sync>(id: DomainId, r: Restart) -> Result<rref::rpc::Remote<T>, String> {
    match r {
        Restart::Never => domain::grant::<T>(id),
        _ => domain::grant_recover::<T>(id),
    }
}

/// What entries started, for the constructors of later ones.
pub struct Ctx<'a> {
    pub net: &'a crate::net::Options<'a>,
    pub opts: &'a crate::storage::Options<'a>,
    /// Started domains: (entry name, domain, restart policy).
    pub started: Vec<(String, DomainId, Restart)>,
    /// Subsystems (`net`, `storage`, …) where an entry failed: their later entries skip.
    failed: Vec<&'static str>,
}

impl Ctx<'_> {
    /// The domain started for entry `name`, if any.
    pub fn domain(&self, name: &str) -> Option<(DomainId, Restart)> {
        self.started.iter().find(|(n, _, _)| n == name).map(|&(_, d, r)| (d, r))
    }

    /// The first started of the comma-separated entry names in `names`.
    pub fn any_of(&self, names: &str) -> Option<(String, DomainId, Restart)> {
        names.split(',').find_map(|n| self.domain(n).map(|(d, r)| (n.to_string(), d, r)))
    }

    /// The effective value of a command-line key, defaults applied.
    pub fn value(&self, key: &str) -> Option<&str> {
        match key {
            "net" => Some(self.net.mode.unwrap_or("stack")),
            "disk" => Some(self.opts.value("disk").unwrap_or("auto")),
            "fs" => Some(self.opts.value("fs").unwrap_or("on")),
            "demo" => Some(self.opts.value("demo").unwrap_or("on")),
            "rv6" => Some(self.opts.value("rv6").unwrap_or("off")),
            k => self.opts.value(k),
        }
    }

    fn holds(&self, cond: &str) -> bool {
        if let Some((k, v)) = cond.split_once("!=") {
            return self.value(k) != Some(v);
        }
        match cond.split_once('=') {
            Some((k, vs)) => self.value(k).is_some_and(|v| vs.split(',').any(|x| x == v)),
            None => self.value(cond).is_some_and(|v| !matches!(v, "off" | "0" | "no")),
        }
    }
}

/// The subsystem an entry belongs to (for messages and for skipping after a failure).
fn group(kind: &str) -> &'static str {
    match kind {
        "nic" | "netstack" | "services" | "forward" => "net",
        "virtio-blk" | "ramdisk" | "fs" | "fsload" => "storage",
        "rv6" => "rv6",
        "echo" | "client" => "demo",
        _ => "assembly",
    }
}

/// Starts one entry: `Ok(None)` when it does not apply (no device, wiring absent).
fn construct(e: &Entry, ctx: &mut Ctx<'_>) -> Result<Option<DomainId>, String> {
    match e.kind.as_str() {
        "echo" | "client" => crate::demo::construct(e, ctx),
        "nic" | "netstack" | "services" | "forward" => crate::net::construct(e, ctx),
        "virtio-blk" | "ramdisk" | "fs" | "fsload" => crate::storage::construct(e, ctx),
        "rv6" => crate::rv6::construct(e, ctx),
        k => Err(format!("manifest line {}: unknown kind `{k}`", e.line)),
    }
}

/// Reads the manifest and starts what it lists (in a thread of its own: domain threads
/// it starts must not keep the boot context, the idle thread, from finishing).
pub fn start(net: crate::net::Options<'static>, opts: crate::storage::Options<'static>) {
    let entries = match domain::module_file(MANIFEST).map(|b| core::str::from_utf8(b).map_err(|_| "not UTF-8".to_string())) {
        Ok(Ok(text)) => match parse(text) {
            Ok(e) => e,
            Err(e) => {
                println!("assembly: {e}; nothing started");
                crate::rv6::start_failed("no system manifest");
                done();
                return;
            }
        },
        Ok(Err(e)) | Err(e) => {
            println!("assembly: {MANIFEST}: {e}; nothing started");
            crate::rv6::start_failed("no system manifest");
            done();
            return;
        }
    };
    let mut ctx = Ctx { net: &net, opts: &opts, started: Vec::new(), failed: Vec::new() };
    for e in &entries {
        let g = group(&e.kind);
        if ctx.failed.contains(&g) || !e.when.as_deref().is_none_or(|c| ctx.holds(c)) {
            continue;
        }
        // Alternatives of one name (the manifest allows them on different conditions):
        // the first that applies starts, a second is refused.
        if ctx.domain(&e.name).is_some() {
            println!("assembly: manifest line {}: `{}` already started; this alternative is not", e.line, e.name);
            continue;
        }
        match construct(e, &mut ctx) {
            Ok(Some(id)) => ctx.started.push((e.name.clone(), id, e.restart)),
            Ok(None) => {}
            Err(err) => {
                println!("{g}: not started: {err}");
                ctx.failed.push(g);
            }
        }
    }
    crate::net::finish(&mut ctx);
    crate::storage::finish(&mut ctx);
    crate::demo::finish(&ctx);
    crate::rv6::finish(&ctx);
    done();
    let mut crashes = Vec::new();
    for key in ["crash", "fs.crash"] {
        let v = if key == "crash" { net.crash } else { opts.value(key) };
        match v.map(crate::crashsched::parse).transpose() {
            Ok(c) => crashes.extend(c.unwrap_or_default()),
            Err(e) => println!("{key}: {e}"),
        }
    }
    if let Err(e) = crate::crashsched::start(crashes) {
        println!("crash schedule: {e}");
    }
    let restartable: Vec<String> =
        ctx.started.iter().filter(|(_, _, r)| *r != Restart::Never).map(|(n, _, _)| n.clone()).collect();
    RESTARTABLE.call_once(|| restartable);
    let inject: Vec<(&str, &str)> =
        opts.items.iter().flatten().filter(|(k, _)| *k == "inject" || k.starts_with("inject.")).copied().collect();
    match crate::inject::parse(&inject) {
        Ok(Some(c)) => {
            if let Err(e) = crate::inject::start(c) {
                println!("inject: {e}");
            }
        }
        Ok(None) => {}
        Err(e) => println!("inject: {e}; no faults injected"),
    }
    let always: Vec<(String, DomainId)> =
        ctx.started.iter().filter(|(_, _, r)| *r == Restart::Always).map(|(n, d, _)| (n.clone(), *d)).collect();
    if let Err(e) = sched::Builder::new("supervisor").spawn(move || supervise(always)) {
        println!("assembly: spawning the supervisor: {e:?}");
    }
}

/// Restarts the `restart=always` domains when they die, and removes program domains whose
/// parent died (loaded, never run: nobody else will).
fn supervise(always: Vec<(String, DomainId)>) {
    let mut failures = alloc::vec![0u32; always.len()];
    let mut next_try = alloc::vec![0u64; always.len()];
    loop {
        sched::sleep_ms(100);
        crate::rv6::sweep_orphans();
        let now = crate::time::uptime_ns() / 1_000_000;
        for (i, (name, id)) in always.iter().enumerate() {
            let slot = id.0 as usize;
            if domain::alive_generation(slot) != 0 || domain::state_of(slot) != Some(domain::State::Dead) || now < next_try[i] {
                continue;
            }
            println!("{name}: died ({}); restarting it", domain::last_words(slot).unwrap_or_default());
            match domain::restart(*id) {
                Ok(g) => {
                    failures[i] = 0;
                    println!("{name}: restarted (generation {g})");
                }
                Err(e) => {
                    failures[i] += 1;
                    // Back off: 1 s after the first failure, up to 10 s.
                    next_try[i] = now + 1000 * failures[i].min(10) as u64;
                    println!("{name}: restart failed: {e}");
                }
            }
        }
    }
}
