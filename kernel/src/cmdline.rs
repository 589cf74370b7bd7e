//! The kernel command line (`-append`): space-separated `key=value` tokens.
//!
//! Keys: `test=NAME` runs one in-kernel test and exits (`test=list` lists them);
//! `bench=NAME|all` runs in-kernel micro-benchmarks and exits;
//! `log=error|warn|info|debug|trace` sets the log level. Unknown keys are reported, not
//! silently ignored, so a typo in a harness shows up in the log.
//! Network keys (`net`, `ip`, `gw`, `fwd.batch`, `fwd.idle`, `fwd.coalesce`, `fwd.a`, `fwd.b`, `crash`) are collected
//! for the network kinds (`net.rs` documents them); the other keys of the system's
//! assembly (`disk`, `ram.*`, `fs`, `fs.*`, `fsload*`, `rv6*`, `demo`) for the manifest's
//! conditions and the storage and rv6 kinds (`storage.rs`, `rv6.rs`, `assembly.rs`), and the
//! fault injector's (`inject`, `inject.*`: `inject.rs`, docs/reliability.md). `limit=<domain>:key=value,...` sets a
//! domain's quotas and watchdog budget (`domain::limits` documents the keys).

/// `limit=` options kept (parsing happens before the heap exists).
const MAX_LIMITS: usize = 16;

pub struct Cmdline<'a> {
    pub test: Option<&'a str>,
    pub bench: Option<&'a str>,
    pub log: log::LevelFilter,
    pub net: crate::net::Options<'a>,
    pub storage: crate::storage::Options<'a>,
    limits: [Option<&'a str>; MAX_LIMITS],
}

impl Cmdline<'_> {
    /// Installs the `limit=` options (needs the kernel heap); a bad one is reported.
    pub fn apply_limits(&self) {
        for v in self.limits.iter().flatten() {
            if let Err(e) = crate::domain::limits::configure(v) {
                crate::println!("cmdline: limit={v}: {e}");
            }
        }
    }
}

pub fn parse(line: &str) -> Cmdline<'_> {
    let mut c = Cmdline { test: None, bench: None, log: log::LevelFilter::Info, net: Default::default(), storage: Default::default(), limits: [None; MAX_LIMITS] };
    for tok in line.split_ascii_whitespace() {
        let (k, v) = tok.split_once('=').unwrap_or((tok, ""));
        match k {
            "test" => c.test = Some(v),
            "bench" => c.bench = Some(v),
            "log" => match v.parse() {
                Ok(l) => c.log = l,
                Err(_) => log::warn!("cmdline: bad log level '{v}'"),
            },
            "net" => c.net.mode = Some(v),
            "ip" => c.net.ip = Some(v),
            "gw" => c.net.gw = Some(v),
            "fwd.batch" => c.net.fwd_batch = Some(v),
            "fwd.idle" => c.net.fwd_idle = Some(v),
            "fwd.coalesce" => c.net.fwd_coalesce = Some(v),
            "fwd.a" => c.net.fwd_a = Some(v),
            "fwd.b" => c.net.fwd_b = Some(v),
            "crash" => c.net.crash = Some(v),
            // Applied once the heap exists ([`Cmdline::apply_limits`]).
            "limit" => match c.limits.iter_mut().find(|l| l.is_none()) {
                Some(free) => *free = Some(v),
                None => crate::println!("cmdline: limit={v}: more than {MAX_LIMITS} limit= options; ignored"),
            },
            _ if c.storage.take(k, v) => {}
            _ => log::warn!("cmdline: unknown option '{tok}'"),
        }
    }
    c
}
