//! What the soak records and checks, as pure code (host-tested): per-workload time
//! series with gaps and client-visible errors, the rv6 workload's file contents (the
//! same functions as `rv6/user/src/bin/t-soak.rs`), and the memory counters read from
//! the console.

use serde_json::{json, Value};

/// One second of one workload.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Second {
    pub ok: u64,
    pub fail: u64,
    pub bytes: u64,
}

/// An error a client saw: when (seconds from the start of the workloads), and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientError {
    pub t: f64,
    pub cause: String,
    /// Wrong bytes (not just a failure to get an answer).
    pub corrupt: bool,
}

/// Errors kept per workload (the count goes on past it).
pub const ERRORS_KEPT: usize = 2000;

/// A workload's record: per-second successes, failures and bytes, every client-visible
/// error (up to [`ERRORS_KEPT`]), and the longest time without a success.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// What one success is (`reply`, `frame`, `GET`, `chunk`, `iteration`).
    pub unit: String,
    pub secs: Vec<Second>,
    pub errors: Vec<ClientError>,
    pub error_count: u64,
    pub corrupt_count: u64,
    /// Bound on the gap between successes (the pass criterion), seconds.
    pub gap_bound: f64,
    last_ok: Option<f64>,
    started: f64,
    /// Longest gap: (length, start), seconds.
    pub max_gap: (f64, f64),
    /// Every gap longer than [`GAP_KEEP_S`]: (start, end), seconds, in time order (the
    /// resume criterion, [`Series::check_gaps`], looks inside them).
    pub gaps: Vec<(f64, f64)>,
}

/// Gaps between successes longer than this are kept ([`Series::gaps`]): shorter ones
/// cannot come near any bound, and a workload with a success every few ms would keep
/// millions.
pub const GAP_KEEP_S: f64 = 1.0;

impl Series {
    pub fn new(name: &str, unit: &str, gap_bound: f64) -> Series {
        Series {
            name: name.into(),
            unit: unit.into(),
            secs: Vec::new(),
            errors: Vec::new(),
            error_count: 0,
            corrupt_count: 0,
            gap_bound,
            last_ok: None,
            started: 0.0,
            max_gap: (0.0, 0.0),
            gaps: Vec::new(),
        }
    }

    /// The workload starts at `t` (a gap before the first success counts from here).
    pub fn start(&mut self, t: f64) {
        self.started = t;
    }

    fn sec(&mut self, t: f64) -> &mut Second {
        let i = t.max(0.0) as usize;
        if self.secs.len() <= i {
            self.secs.resize(i + 1, Second::default());
        }
        &mut self.secs[i]
    }

    fn gap_to(&mut self, t: f64) {
        let from = self.last_ok.unwrap_or(self.started);
        if t - from > self.max_gap.0 {
            self.max_gap = (t - from, from);
        }
        if t - from > GAP_KEEP_S {
            self.gaps.push((from, t));
        }
    }

    /// `n` successes at `t` (in time order per workload) carrying `bytes`.
    pub fn ok(&mut self, t: f64, n: u64, bytes: u64) {
        let s = self.sec(t);
        s.ok += n;
        s.bytes += bytes;
        if n > 0 {
            self.gap_to(t);
            self.last_ok = Some(self.last_ok.map_or(t, |l| l.max(t)));
        }
    }

    /// `n` failures at `t` that no client saw as an error of its own (lost frames).
    pub fn lost(&mut self, t: f64, n: u64) {
        self.sec(t).fail += n;
    }

    /// A failure a client saw, with its cause.
    pub fn fail(&mut self, t: f64, cause: impl Into<String>) {
        self.sec(t).fail += 1;
        self.record(t, cause.into(), false);
    }

    /// Wrong bytes reached a client.
    pub fn corrupt(&mut self, t: f64, cause: impl Into<String>) {
        self.sec(t).fail += 1;
        self.corrupt_count += 1;
        self.record(t, cause.into(), true);
    }

    fn record(&mut self, t: f64, cause: String, corrupt: bool) {
        self.error_count += 1;
        if self.errors.len() < ERRORS_KEPT {
            self.errors.push(ClientError { t, cause, corrupt });
        }
    }

    /// The workload ended at `t`: the time since the last success is a gap too.
    pub fn end(&mut self, t: f64) {
        self.gap_to(t);
    }

    pub fn total(&self) -> Second {
        self.secs.iter().fold(Second::default(), |a, s| Second { ok: a.ok + s.ok, fail: a.fail + s.fail, bytes: a.bytes + s.bytes })
    }

    /// Errors grouped by cause, most frequent first.
    pub fn causes(&self) -> Vec<(String, u64)> {
        let mut m: std::collections::BTreeMap<&str, u64> = Default::default();
        for e in &self.errors {
            *m.entry(e.cause.as_str()).or_default() += 1;
        }
        let mut v: Vec<(String, u64)> = m.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    pub fn to_json(&self) -> Value {
        let t = self.total();
        json!({
            "name": self.name, "unit": self.unit,
            "ok": t.ok, "fail": t.fail, "bytes": t.bytes,
            "errors": self.error_count, "corrupt": self.corrupt_count,
            "max_gap_s": self.max_gap.0, "max_gap_at_s": self.max_gap.1, "gap_bound_s": self.gap_bound,
            "per_second": {
                "ok": self.secs.iter().map(|s| s.ok).collect::<Vec<_>>(),
                "fail": self.secs.iter().map(|s| s.fail).collect::<Vec<_>>(),
                "bytes": self.secs.iter().map(|s| s.bytes).collect::<Vec<_>>(),
            },
            "error_list": self.errors.iter().map(|e| json!({"t_s": e.t, "cause": e.cause, "corrupt": e.corrupt})).collect::<Vec<_>>(),
        })
    }
}

// --- the resume criterion under overlapping faults ------------------------------------

/// How long a fault that ended no generation excuses its domain's workloads (seconds):
/// a survived device fault (`ends=0` and no recovery line: one received frame dropped,
/// or one block request failed with an I/O error) and a kill of the kernel's crash
/// schedule (it prints no recovery line; the gap bound itself covers the restart, as it
/// did before faults overlapped). A dropped frame costs at most a retransmission by the
/// host's TCP (1 s for a lost SYN, Linux's initial RTO; data sooner) or one missed ping;
/// an I/O error fails one `t-soak` iteration, which reports it at once.
pub const SURVIVED_FAULT_S: f64 = 1.0;

/// The span in which one fault excuses the workloads over its domain: from its fault
/// line to its recovery line (both timed by the host as they arrived on the console, on
/// the workloads' clock), or [`SURVIVED_FAULT_S`] for a fault that ended nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Cover {
    pub n: u64,
    pub domain: String,
    pub from: f64,
    pub to: f64,
}

/// The spans the faults in `events` cover. A fault that should end a generation and has
/// no recovery line covers to the end of time (the run fails on the missing recovery
/// anyway); a recovery whose fault line came before the phase began (in the warm-up)
/// covers from the beginning of time.
pub fn covers(events: &[super::SeenEvent]) -> Vec<Cover> {
    use super::inject::Event;
    let mut recovered: std::collections::BTreeMap<u64, f64> = Default::default();
    for e in events {
        if let Event::Recovered(r) = &e.event {
            recovered.entry(r.n).or_insert(e.t);
        }
    }
    let mut out = Vec::new();
    let mut faults = std::collections::BTreeSet::new();
    for e in events {
        let Event::Fault(f) = &e.event else { continue };
        faults.insert(f.n);
        let to = match recovered.get(&f.n) {
            Some(&t) => t.max(e.t),
            None if f.n >= super::SCHEDULED_N || f.extra.get("ends").map(String::as_str) == Some("0") => e.t + SURVIVED_FAULT_S,
            None => f64::INFINITY,
        };
        out.push(Cover { n: f.n, domain: f.domain.clone(), from: e.t, to });
    }
    for e in events {
        if let Event::Recovered(r) = &e.event {
            if !faults.contains(&r.n) {
                out.push(Cover { n: r.n, domain: r.domain.clone(), from: f64::NEG_INFINITY, to: e.t });
            }
        }
    }
    out
}

/// A stretch inside a gap with no fault covering any of the workload's domains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hole {
    /// The gap (no success from `gap.0` to `gap.1`).
    pub gap: (f64, f64),
    /// The stretch: start and length.
    pub from: f64,
    pub len: f64,
}

/// What the resume criterion found for one workload ([`Series::check_gaps`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GapCheck {
    pub bound: f64,
    /// Longest gap between successes (or from the start to the first, or from the last
    /// to the end): (length, start).
    pub longest: (f64, f64),
    /// Longest fault-free stretch within any gap.
    pub longest_free: Option<Hole>,
    /// Gaps longer than the bound whose fault-free stretches were all within it.
    pub excused: u64,
    /// Gaps with a fault-free stretch longer than the bound: these fail the run.
    pub failed: Vec<Hole>,
}

impl GapCheck {
    pub fn passed(&self) -> bool {
        self.failed.is_empty()
    }

    pub fn to_json(&self) -> Value {
        let hole = |h: &Hole| json!({"gap_from_s": h.gap.0, "gap_to_s": h.gap.1, "from_s": h.from, "len_s": h.len});
        json!({
            "bound_s": self.bound, "passed": self.passed(),
            "longest_gap_s": self.longest.0, "longest_gap_at_s": self.longest.1,
            "longest_fault_free_s": self.longest_free.map_or(0.0, |h| h.len), "longest_fault_free_at_s": self.longest_free.map(|h| h.from),
            "gaps_over_bound_covered_by_faults": self.excused,
            "failed": self.failed.iter().map(hole).collect::<Vec<_>>(),
        })
    }
}

/// The fault-free stretches of `gap` for a workload over `deps`, in time order.
fn holes(gap: (f64, f64), deps: &[&str], covers: &[Cover]) -> Vec<Hole> {
    let mut spans: Vec<(f64, f64)> = covers
        .iter()
        .filter(|c| deps.contains(&c.domain.as_str()) && c.to > gap.0 && c.from < gap.1 && c.to > c.from)
        .map(|c| (c.from, c.to))
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = Vec::new();
    let mut at = gap.0;
    for (from, to) in spans {
        if from > at {
            out.push(Hole { gap, from: at, len: from - at });
        }
        at = at.max(to);
    }
    if gap.1 > at {
        out.push(Hole { gap, from: at, len: gap.1 - at });
    }
    out
}

impl Series {
    /// The resume criterion: every gap (between successes, before the first, after the
    /// last) fails if it holds a stretch longer than [`Series::gap_bound`] in which no
    /// fault covered any of `deps` (the workload's domains); longer gaps that faults
    /// explain are counted, not failed.
    pub fn check_gaps(&self, deps: &[&str], covers: &[Cover]) -> GapCheck {
        let mut c = GapCheck { bound: self.gap_bound, longest: self.max_gap, longest_free: None, excused: 0, failed: Vec::new() };
        let single = [(self.max_gap.1, self.max_gap.1 + self.max_gap.0)];
        let gaps: &[(f64, f64)] = if self.gaps.is_empty() && self.max_gap.0 > 0.0 { &single } else { &self.gaps };
        for &gap in gaps {
            // None: faults covered the whole gap.
            let worst = holes(gap, deps, covers).into_iter().max_by(|a, b| a.len.total_cmp(&b.len));
            if let Some(w) = worst {
                if c.longest_free.is_none_or(|h| w.len > h.len) {
                    c.longest_free = Some(w);
                }
            }
            match worst {
                Some(w) if w.len > self.gap_bound => c.failed.push(w),
                _ if gap.1 - gap.0 > self.gap_bound => c.excused += 1,
                _ => {}
            }
        }
        c
    }
}

// --- rv6's workload files (same functions as t-soak) -------------------------------------

pub use ulib::soak::{file_content, file_len, fnv, splitmix, SLOTS};

/// A line of t-soak's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rv6Line {
    Ok { i: u64, slot: u64, len: u64, sum: u64, synced: bool },
    Fail { i: u64, what: String, err: String },
    Slot { slot: u64, i: u64 },
    Done { iterations: u64, failed: u64, next: u64 },
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Parses one line of `t-soak` (`None`: not one of its lines).
pub fn parse_rv6_line(line: &str) -> Option<Rv6Line> {
    let l = line.trim_end_matches('\r');
    let rest = &l[l.find("t-soak: ")? + 8..];
    let n = |k: &str| field(rest, k)?.parse::<u64>().ok();
    if rest.starts_with("ok ") {
        Some(Rv6Line::Ok {
            i: n("i")?,
            slot: n("slot")?,
            len: n("len")?,
            sum: u64::from_str_radix(field(rest, "sum")?, 16).ok()?,
            synced: field(rest, "synced")? == "1",
        })
    } else if rest.starts_with("FAIL ") {
        let err = rest.split_once(" err=").map(|(_, e)| e.rsplit_once(" t_ms=").map_or(e, |x| x.0))?;
        Some(Rv6Line::Fail { i: n("i")?, what: field(rest, "what")?.to_string(), err: err.to_string() })
    } else if let Some(s) = rest.strip_prefix("slot ") {
        let (slot, i) = s.split_once(" i=")?;
        Some(Rv6Line::Slot { slot: slot.parse().ok()?, i: i.trim().parse().ok()? })
    } else if rest.starts_with("done ") {
        Some(Rv6Line::Done { iterations: n("iterations")?, failed: n("failed")?, next: n("next")? })
    } else {
        None
    }
}

// --- memory counters --------------------------------------------------------------------

/// How far the kernel heap may end from its start (bytes). Kernel tables and queues keep
/// the capacity their longest length needed (the scheduler's thread table, run and wait
/// queues), so the level after the warm-up is not yet the run's high-water mark: seen
/// between −16 and +576 B after 40–60 s without faults, ending at the same 21,800 B in
/// every such run. A leak per operation, connection or fault (a 30-minute soak does
/// millions) passes this bound early.
pub const KERNEL_HEAP_SLACK: u64 = 2048;

/// How far the shared heap may end from its start when nothing restarted (bytes): live
/// domains keep pools of packet buffers whose size depends on the last batches (seen: the
/// stack holding one 2 KiB buffer more, +2,096 B). Every byte must still be owned by a
/// live domain or the kernel, exactly.
pub const SHARED_SLACK: u64 = 64 * 1024;

/// The memory counters, read from the console's `mem` and `domains`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub kernel_heap_used: u64,
    pub frames_free: u64,
    pub shared_heap_used: u64,
    pub domain_heaps_kib: u64,
    /// Shared-heap bytes the kernel owns.
    pub kernel_rref_bytes: u64,
    /// Shared-heap bytes owned by domains (the `RRef B` column summed).
    pub domain_rref_bytes: u64,
    /// Frames held by domains (the quota lines' `frames` summed).
    pub domain_frames: u64,
    /// Crashes and restarts of every domain, summed.
    pub crashes_restarts: u64,
    /// Kernel threads and their stacks (KiB).
    pub threads: u64,
    pub stack_kib: u64,
}

impl Counters {
    /// From the console's `mem` and `domains` output (in any order, in one text).
    pub fn parse(text: &str) -> Option<Counters> {
        let mut c = Counters::default();
        let (mut f, mut h, mut k) = (false, false, false);
        for l in text.lines() {
            let l = l.trim();
            let words: Vec<&str> = l.split_ascii_whitespace().collect();
            let before = |w: &str| words.iter().position(|x| *x == w).and_then(|i| i.checked_sub(1)).and_then(|i| words[i].trim_end_matches(',').parse::<u64>().ok());
            if l.starts_with("frames:") {
                c.frames_free = before("free")?;
                f = true;
            } else if l.starts_with("stacks:") {
                // stacks: N threads, K KiB (…)
                c.threads = before("threads,")?;
                c.stack_kib = before("KiB")?;
            } else if l.starts_with("heap:") {
                // heap:   K KiB, U bytes used, F KiB free
                c.kernel_heap_used = before("bytes")?;
                h = true;
            } else if l.starts_with("kernel:") && l.contains("shared heap") {
                // kernel: N RRefs (B B); shared heap S B used of T KiB; domain heaps reserve D KiB
                c.kernel_rref_bytes = l.split_once('(')?.1.split_ascii_whitespace().next()?.parse().ok()?;
                let s = &l[l.find("shared heap ")? + 12..];
                c.shared_heap_used = s.split_ascii_whitespace().next()?.parse().ok()?;
                let d = &l[l.find("domain heaps reserve ")? + 21..];
                c.domain_heaps_kib = d.split_ascii_whitespace().next()?.parse().ok()?;
                k = true;
            } else if words.first() == Some(&"quota") {
                let i = words.iter().position(|x| *x == "frames")?;
                c.domain_frames += words.get(i + 1)?.split('/').next()?.parse::<u64>().ok()?;
            } else if words.len() == 12 && words[0].parse::<u32>().is_ok() {
                // id name gen state image heap-used heap RRefs RRef-B calls crashes restarts
                c.domain_rref_bytes += words[8].parse::<u64>().ok()?;
                c.crashes_restarts += words[10].parse::<u64>().ok()? + words[11].parse::<u64>().ok()?;
            }
        }
        (f && h && k).then_some(c)
    }

    /// What fails the memory criterion against the start `base`: (what, start, end).
    ///
    /// Always: the kernel's own shared-heap bytes come back to at most their start (the
    /// end is read again until it settles, the start once: a block the kernel held only
    /// while the start was read, such as one in flight through the console, is not a
    /// leak; a block it kept is); every shared-heap
    /// byte in use is owned by the kernel or a live domain; free frames plus the frames
    /// domains hold plus the kernel threads' stacks come back exactly (no frame lost
    /// outside a domain or a thread). With as many kernel threads as at the start (a
    /// thread that ended, such as the crash schedule's, took its own heap with it): the
    /// kernel heap within [`KERNEL_HEAP_SLACK`] bytes. When no domain crashed or restarted
    /// in between, also free frames and the domain heaps exactly and the shared heap
    /// within [`SHARED_SLACK`] (a
    /// restarted domain starts with a fresh heap, so then only the conservation checks
    /// apply).
    pub fn differences(&self, base: &Counters) -> Vec<(&'static str, u64, u64)> {
        let frames = |c: &Counters| c.frames_free + c.domain_frames + c.stack_kib / 4;
        let mut v = vec![
            ("kernel's shared-heap bytes", base.kernel_rref_bytes, if self.kernel_rref_bytes <= base.kernel_rref_bytes { base.kernel_rref_bytes } else { self.kernel_rref_bytes }),
            ("shared heap used (B) vs bytes owned by the kernel and live domains", self.kernel_rref_bytes + self.domain_rref_bytes, self.shared_heap_used),
            ("free frames + frames held by domains and thread stacks", frames(base), frames(self)),
        ];
        if self.threads == base.threads {
            let near = self.kernel_heap_used.abs_diff(base.kernel_heap_used) <= KERNEL_HEAP_SLACK;
            v.push(("kernel heap used (B)", base.kernel_heap_used, if near { base.kernel_heap_used } else { self.kernel_heap_used }));
        }
        if self.crashes_restarts == base.crashes_restarts {
            let near = self.shared_heap_used.abs_diff(base.shared_heap_used) <= SHARED_SLACK;
            v.extend([
                ("free frames", base.frames_free, self.frames_free),
                ("shared heap used (B)", base.shared_heap_used, if near { base.shared_heap_used } else { self.shared_heap_used }),
                ("domain heaps reserved (KiB)", base.domain_heaps_kib, self.domain_heaps_kib),
            ]);
        }
        v.into_iter().filter(|(_, a, b)| a != b).collect()
    }

    pub fn to_json(&self) -> Value {
        json!({"kernel_heap_used": self.kernel_heap_used, "frames_free": self.frames_free, "shared_heap_used": self.shared_heap_used,
               "domain_heaps_kib": self.domain_heaps_kib, "kernel_rref_bytes": self.kernel_rref_bytes, "domain_rref_bytes": self.domain_rref_bytes,
               "domain_frames": self.domain_frames, "crashes_restarts": self.crashes_restarts, "threads": self.threads, "stack_kib": self.stack_kib})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_seconds_gaps_and_errors() {
        let mut s = Series::new("ping", "reply", 5.0);
        s.start(0.0);
        s.ok(0.5, 1, 64);
        s.ok(1.2, 2, 128);
        s.fail(2.0, "timeout");
        s.fail(3.0, "timeout");
        s.corrupt(3.5, "byte 7 differs");
        s.ok(4.7, 1, 64);
        s.lost(5.0, 3);
        s.end(10.0);
        assert_eq!(s.secs.len(), 6);
        assert_eq!(s.secs[1], Second { ok: 2, fail: 0, bytes: 128 });
        assert_eq!(s.total(), Second { ok: 4, fail: 6, bytes: 256 });
        assert_eq!((s.error_count, s.corrupt_count), (3, 1));
        assert_eq!(s.causes()[0], ("timeout".to_string(), 2));
        // Longest gap: from the last success (4.7) to the end (10).
        assert!((s.max_gap.0 - 5.3).abs() < 1e-9 && (s.max_gap.1 - 4.7).abs() < 1e-9, "{:?}", s.max_gap);
        let j = s.to_json();
        assert_eq!(j["per_second"]["ok"][1], 2);
        let mut t = Series::new("x", "y", 1.0);
        t.start(2.0);
        t.ok(9.0, 1, 0);
        assert_eq!(t.max_gap, (7.0, 2.0), "the gap before the first success counts");
    }

    #[test]
    fn rv6_contents_match_t_soak() {
        // t-soak computes the same; these figures pin the functions down.
        assert_eq!(file_len(1, 0), file_content(1, 0).len());
        let c = file_content(42, 7);
        assert_eq!(&c[..8], &7u64.to_le_bytes());
        assert!((4096..4096 + 28_672).contains(&c.len()));
        assert_ne!(file_content(42, 7), file_content(42, 8));
        assert_ne!(file_content(42, 7), file_content(43, 7));
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn rv6_lines_parse() {
        assert_eq!(
            parse_rv6_line("t-soak: ok i=12 slot=4 len=9000 sum=00ff00ff00ff00ff synced=1 t_ms=5000\r"),
            Some(Rv6Line::Ok { i: 12, slot: 4, len: 9000, sum: 0x00ff00ff00ff00ff, synced: true })
        );
        assert_eq!(
            parse_rv6_line("t-soak: FAIL i=3 what=pipeline err=wc printed \"1 2 3\", expected [40, 160, 800] t_ms=77"),
            Some(Rv6Line::Fail { i: 3, what: "pipeline".into(), err: "wc printed \"1 2 3\", expected [40, 160, 800]".into() })
        );
        assert_eq!(parse_rv6_line("t-soak: slot 3 i=91"), Some(Rv6Line::Slot { slot: 3, i: 91 }));
        assert_eq!(parse_rv6_line("t-soak: done iterations=100 failed=2 next=140"), Some(Rv6Line::Done { iterations: 100, failed: 2, next: 140 }));
        for l in ["t-soak: ok i=1", "t-soak: hello", "ok i=1 slot=2", "t-soak: slot x i=1", "t-soak: FAIL i=1 what=x"] {
            assert_eq!(parse_rv6_line(l), None, "{l}");
        }
    }

    #[test]
    fn counters_parse_from_the_console() {
        let text = "  frames: 262000 total, 200123 free (800492 KiB free of 1048000 KiB)\n\
                    \x20 heap:   16384 KiB, 1234567 bytes used, 15000 KiB free\n\
                    \x20 stacks: 12 threads, 768 KiB (each with an unmapped guard page)\n\
                    \x20  id  name        gen state       image heap used    heap   RRefs    RRef B     calls crashes restarts\n\
                    \x20   1  virtio-net0    1 Alive         44K     21096     64K     256    536576      1379       0        0\n\
                    \x20   4  netstack      2 Alive        120K   1614896   1832K      41      4000      2223       1        1\n\
                    \x20 quota   1 virtio-net0 heap 64/32768K shared 524/8192K threads 0/16 frames 16/10240 budget 1000ms\n\
                    \x20 quota   4 netstack   heap 1832/32768K shared 76/8192K threads 1/16 frames 474/10240 budget 1000ms\n\
                    \x20 kernel: 2 RRefs (100 B); shared heap 540676 B used of 31042 KiB; domain heaps reserve 1896 KiB\n";
        let c = Counters::parse(text).unwrap();
        assert_eq!(
            c,
            Counters {
                kernel_heap_used: 1234567,
                frames_free: 200123,
                shared_heap_used: 540676,
                domain_heaps_kib: 1896,
                kernel_rref_bytes: 100,
                domain_rref_bytes: 540576,
                domain_frames: 490,
                crashes_restarts: 2,
                threads: 12,
                stack_kib: 768
            }
        );
        assert!(c.differences(&c).is_empty());
        // A domain grew its heap by 10 frames: conservation holds, the exact checks fail
        // while nothing restarted.
        let grew = Counters { frames_free: 200113, domain_frames: 500, domain_heaps_kib: 1936, ..c };
        assert_eq!(grew.differences(&c), vec![("free frames", 200123, 200113), ("domain heaps reserved (KiB)", 1896, 1936)]);
        // A live domain's buffer pool one packet larger: conserved, within the slack.
        let pool = Counters { shared_heap_used: c.shared_heap_used + 2096, domain_rref_bytes: c.domain_rref_bytes + 2096, ..c };
        assert!(pool.differences(&c).is_empty(), "{:?}", pool.differences(&c));
        let big = Counters { shared_heap_used: c.shared_heap_used + 100_000, domain_rref_bytes: c.domain_rref_bytes + 100_000, ..c };
        assert_eq!(big.differences(&c), vec![("shared heap used (B)", 540676, 640676)]);
        // After a restart only the conservation checks apply.
        let restarted = Counters { crashes_restarts: 4, ..grew };
        assert!(restarted.differences(&c).is_empty());
        // Kernel state at its high-water mark: within the slack.
        let hw = Counters { kernel_heap_used: c.kernel_heap_used + 32, ..c };
        assert!(hw.differences(&c).is_empty());
        // A frame lost outside every domain, a shared block nobody owns, kernel heap growth.
        let leak = Counters { frames_free: 200122, shared_heap_used: 540776, kernel_heap_used: 1234567 + 2100, crashes_restarts: 4, ..c };
        assert_eq!(leak.differences(&c).len(), 3, "{:?}", leak.differences(&c));
        // A kernel thread ended: its stack's frames came back, its heap with it.
        let ended = Counters { frames_free: 200139, threads: 11, stack_kib: 704, kernel_heap_used: 1234567 - 840, crashes_restarts: 4, ..c };
        assert!(ended.differences(&c).is_empty(), "{:?}", ended.differences(&c));
        // The kernel held one block more while the start was read than at the end: no leak;
        // one it keeps at the end is.
        let start = Counters { kernel_rref_bytes: 312, shared_heap_used: c.shared_heap_used + 212, ..c };
        assert!(c.differences(&start).is_empty(), "{:?}", c.differences(&start));
        let kept = Counters { kernel_rref_bytes: 312, shared_heap_used: c.shared_heap_used + 212, ..c };
        assert_eq!(kept.differences(&c), vec![("kernel's shared-heap bytes", c.kernel_rref_bytes, 312)]);
        assert_eq!(Counters::parse("frames: 1 total, 1 free"), None);
    }
}
