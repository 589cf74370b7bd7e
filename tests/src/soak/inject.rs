//! The kernel fault injector's interface, as the soak sees it — the one place that knows
//! its command line, its serial lines and its console command, so the harness follows
//! the injector by changing this file only.
//!
//! * Command line: `inject=SEED inject.rate=N` (faults per second)
//!   `inject.kinds=kill,panic,hang,netdev,blkdev` `inject.count=N` `inject.start=MS`.
//! * One serial line per fault:
//!   `inject: n=17 seed=42 t_ms=12345 kind=kill domain=netstack slot=5 gen=3 ends=1 stream=4:2 at=…`
//!   (further `key=value` fields are kept as they come). Faults of different domains
//!   overlap (one stream of faults per target domain), so lines of faults and recoveries
//!   interleave and come out of `n` order; a recovery names its fault's `n`.
//! * One serial line per recovery:
//!   `inject: n=17 recovered domain=netstack gen=4 after_us=1234`.
//! * The console command `inject` prints the totals; a kernel without the injector
//!   answers `unknown command 'inject'` ([`injector_absent`]).

use std::collections::BTreeMap;

/// Every kind of fault the injector knows.
pub const ALL_KINDS: &[&str] = &["kill", "panic", "hang", "netdev", "blkdev"];

/// What the injector is asked to do (the `inject*` options of the command line).
#[derive(Debug, Clone, PartialEq)]
pub struct InjectOptions {
    pub seed: u64,
    /// Faults per second.
    pub rate: u32,
    pub kinds: Vec<String>,
    /// Faults in all (the injector stops after this many).
    pub count: u64,
    /// Milliseconds after boot before the first fault.
    pub start_ms: u64,
}

impl InjectOptions {
    /// `count` faults spread over `seconds` (after `start_ms`), every kind: the rate is
    /// the smallest whole number of faults per second that fits them in.
    pub fn spread(seed: u64, count: u64, seconds: u64, start_ms: u64) -> InjectOptions {
        let secs = seconds.saturating_sub(start_ms / 1000).max(1);
        let rate = count.div_ceil(secs).max(1) as u32;
        InjectOptions { seed, rate, kinds: ALL_KINDS.iter().map(|s| s.to_string()).collect(), count, start_ms }
    }

    /// The kernel command-line words.
    pub fn cmdline(&self) -> String {
        format!(
            "inject={} inject.rate={} inject.kinds={} inject.count={} inject.start={}",
            self.seed,
            self.rate,
            self.kinds.join(","),
            self.count,
            self.start_ms
        )
    }
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub n: u64,
    pub seed: u64,
    /// Guest uptime of the fault.
    pub t_ms: u64,
    pub kind: String,
    pub domain: String,
    pub slot: Option<u64>,
    pub gen: Option<u64>,
    /// Fields beyond the ones above, as printed.
    pub extra: BTreeMap<String, String>,
}

/// The injector saw domain `domain` working again after fault `n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub n: u64,
    pub domain: String,
    pub gen: Option<u64>,
    pub after_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Fault(Fault),
    Recovered(Recovery),
}

/// Parses one serial line; `None` if it is not an injector event line (the totals
/// and other `inject:` lines are not events). Never panics.
pub fn parse_line(line: &str) -> Option<Event> {
    let rest = line.trim().trim_end_matches('\r');
    let rest = &rest[rest.find("inject: ")? + "inject: ".len()..];
    let mut words = rest.split_ascii_whitespace();
    let n = words.next()?.strip_prefix("n=")?.parse().ok()?;
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut recovered = false;
    for w in words {
        // A fault that found no moment ended nothing: not an event.
        if w == "skipped" {
            return None;
        }
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                fields.insert(k.to_string(), v.to_string());
            }
            None if w == "recovered" => recovered = true,
            _ => {}
        }
    }
    let num = |f: &mut BTreeMap<String, String>, k: &str| f.remove(k).and_then(|v| v.parse::<u64>().ok());
    let domain = fields.remove("domain")?;
    if recovered {
        let after_us = num(&mut fields, "after_us")?;
        return Some(Event::Recovered(Recovery { n, gen: num(&mut fields, "gen"), domain, after_us }));
    }
    Some(Event::Fault(Fault {
        n,
        seed: num(&mut fields, "seed")?,
        t_ms: num(&mut fields, "t_ms")?,
        kind: fields.remove("kind")?,
        slot: num(&mut fields, "slot"),
        gen: num(&mut fields, "gen"),
        domain,
        extra: fields,
    }))
}

/// True if the console's answer to `inject` says the kernel has no injector.
pub fn injector_absent(reply: &str) -> bool {
    reply.contains("unknown command 'inject'")
}

/// Faults by (domain, kind), and recovery times by domain, from a stream of events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub faults: BTreeMap<(String, String), u64>,
    /// Recovery times in microseconds, per domain.
    pub recoveries: BTreeMap<String, Vec<u64>>,
    /// Faults with no recovery line (yet).
    pub unrecovered: Vec<u64>,
}

impl Tally {
    pub fn of(events: &[Event]) -> Tally {
        let mut t = Tally::default();
        let mut open: BTreeMap<u64, ()> = BTreeMap::new();
        for e in events {
            match e {
                Event::Fault(f) => {
                    *t.faults.entry((f.domain.clone(), f.kind.clone())).or_default() += 1;
                    // `ends=0`: a fault the domain survives (an I/O error, a bad length)
                    // has no restart to wait for.
                    if f.extra.get("ends").map(String::as_str) != Some("0") {
                        open.insert(f.n, ());
                    }
                }
                Event::Recovered(r) => {
                    t.recoveries.entry(r.domain.clone()).or_default().push(r.after_us);
                    open.remove(&r.n);
                }
            }
        }
        t.unrecovered = open.into_keys().collect();
        t
    }
}

/// (p50, p99, max) of `v` (nearest rank); zeros when empty.
pub fn percentiles(v: &[u64]) -> (u64, u64, u64) {
    if v.is_empty() {
        return (0, 0, 0);
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let rank = |p: f64| s[(((p * s.len() as f64).ceil() as usize).max(1) - 1).min(s.len() - 1)];
    (rank(0.50), rank(0.99), *s.last().unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_faults_are_no_events_and_survived_faults_need_no_recovery() {
        assert!(parse_line("inject: n=4 seed=1 t_ms=900 kind=kill domain=fs skipped (not alive)").is_none());
        let ev: Vec<Event> = [
            "inject: n=1 seed=1 t_ms=10 kind=blkdev domain=virtio-blk0 slot=3 gen=2 ends=0 at=status",
            "inject: n=2 seed=1 t_ms=20 kind=netdev domain=virtio-net0 slot=3 gen=2 ends=1 at=used-ring id",
        ]
        .iter()
        .filter_map(|l| parse_line(l))
        .collect();
        assert_eq!(ev.len(), 2);
        assert_eq!(Tally::of(&ev).unrecovered, vec![2]);
    }

    #[test]
    fn fault_lines_parse_with_extra_fields() {
        let e = parse_line("inject: n=17 seed=42 t_ms=12345 kind=kill domain=netstack slot=5 gen=3 why=timer\r").unwrap();
        let Event::Fault(f) = e else { panic!("{e:?}") };
        assert_eq!((f.n, f.seed, f.t_ms, f.kind.as_str(), f.domain.as_str(), f.slot, f.gen), (17, 42, 12345, "kill", "netstack", Some(5), Some(3)));
        assert_eq!(f.extra.get("why").map(String::as_str), Some("timer"));
        // Text before the tag (another thread's partial line) does not hide it.
        assert!(matches!(parse_line("xx inject: n=1 seed=1 t_ms=2 kind=netdev domain=virtio-net1"), Some(Event::Fault(_))));
    }

    #[test]
    fn overlapping_faults_match_their_own_recoveries() {
        let lines = [
            "inject: n=2 seed=42 t_ms=1000 kind=hang domain=virtio-net1 slot=6 gen=2 ends=1 stream=5:1 at=0xffff800000001234",
            "inject: n=1 seed=42 t_ms=1001 kind=kill domain=netstack slot=4 gen=2 ends=1 stream=3:1 at=0xffff800000004321",
            "inject: n=3 seed=42 t_ms=1002 kind=netdev domain=virtio-net0 slot=1 gen=2 ends=0 stream=0:1 at=used-ring len",
            "inject: n=1 recovered domain=netstack gen=3 after_us=30000",
            "inject: n=4 seed=42 t_ms=1040 kind=panic domain=netstack slot=4 gen=3 ends=1 stream=3:2 at=exit:poll",
            "inject: n=5 seed=42 t_ms=1050 kind=blkdev domain=virtio-blk0 stream=1:1 skipped (no opportunity)",
            "inject: n=4 recovered domain=netstack gen=4 after_us=20000",
            "inject: n=2 recovered domain=virtio-net1 gen=3 after_us=1400000",
        ];
        let ev: Vec<Event> = lines.iter().filter_map(|l| parse_line(l)).collect();
        assert_eq!(ev.len(), 7);
        let Event::Fault(f) = &ev[0] else { panic!("{:?}", ev[0]) };
        assert_eq!(f.extra.get("stream").map(String::as_str), Some("5:1"));
        let t = Tally::of(&ev);
        assert!(t.unrecovered.is_empty(), "{:?}", t.unrecovered);
        assert_eq!(t.recoveries["netstack"], vec![30000, 20000]);
        assert_eq!(t.recoveries["virtio-net1"], vec![1400000]);
        assert_eq!(t.faults.values().sum::<u64>(), 4);
    }

    #[test]
    fn recovery_lines_parse() {
        let e = parse_line("inject: n=17 recovered domain=netstack gen=4 after_us=1234").unwrap();
        assert_eq!(e, Event::Recovered(Recovery { n: 17, domain: "netstack".into(), gen: Some(4), after_us: 1234 }));
    }

    #[test]
    fn other_lines_are_not_events() {
        for l in [
            "",
            "inject:",
            "inject: totals faults=10 recovered=10",
            "inject: n=x seed=1 t_ms=2 kind=kill domain=a",
            "inject: n=3 seed=1 kind=kill domain=a",
            "inject: n=3 recovered domain=a",
            "inject: n=3 seed=1 t_ms=2 domain=a",
            "rv6: core started",
            "inject: n=3 = == seed=1 t_ms=2 kind=kill domain=a",
        ] {
            let got = parse_line(l);
            assert!(got.is_none() || l.contains("= =="), "{l:?} → {got:?}");
        }
        assert!(injector_absent("unknown command 'inject'; try 'help'"));
        assert!(!injector_absent("inject: 12 faults, 12 recovered"));
    }

    #[test]
    fn options_spread_the_campaign() {
        let o = InjectOptions::spread(42, 10_000, 1800, 10_000);
        assert_eq!(o.rate, 6, "10,000 faults in 1,790 s");
        assert_eq!(o.cmdline(), "inject=42 inject.rate=6 inject.kinds=kill,panic,hang,netdev,blkdev inject.count=10000 inject.start=10000");
        assert_eq!(InjectOptions::spread(1, 30, 60, 5000).rate, 1);
        assert_eq!(InjectOptions::spread(1, 0, 0, 0).rate, 1);
    }

    #[test]
    fn tally_and_percentiles() {
        let lines = [
            "inject: n=1 seed=9 t_ms=10 kind=kill domain=netstack slot=5 gen=1",
            "inject: n=1 recovered domain=netstack gen=2 after_us=300",
            "inject: n=2 seed=9 t_ms=20 kind=panic domain=fs slot=7 gen=1",
            "inject: n=3 seed=9 t_ms=30 kind=kill domain=netstack slot=5 gen=2",
            "inject: n=3 recovered domain=netstack gen=3 after_us=100",
        ];
        let ev: Vec<Event> = lines.iter().filter_map(|l| parse_line(l)).collect();
        let t = Tally::of(&ev);
        assert_eq!(t.faults[&("netstack".to_string(), "kill".to_string())], 2);
        assert_eq!(t.recoveries["netstack"], vec![300, 100]);
        assert_eq!(t.unrecovered, vec![2]);
        assert_eq!(percentiles(&[5, 1, 3, 2, 4]), (3, 5, 5));
        assert_eq!(percentiles(&[]), (0, 0, 0));
        let many: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentiles(&many), (500, 990, 1000));
    }
}
