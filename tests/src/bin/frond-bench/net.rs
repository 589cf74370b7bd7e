//! The network benchmarks of `make bench` (see the crate docs, section 3).
//!
//! * **Forwarding** between two taps in namespaces `fwdA`/`fwdB` (see `fwdbench`): 60-byte
//!   frames at saturation, 3 windows of 10 s, Frond at batch 1/8/32 and the Linux guest
//!   (Debian's kernel + busybox, `ip_forward=1`) under identical QEMU flags, and the ratio.
//! * **Crash under forwarding**: a paced stream at [`TRACE_RATE`] pps for 10 s, the NIC
//!   driver domain crashed from the console at 4 s; delivered frames per 10 ms bucket,
//!   the gap (longest run of empty buckets) and the frames lost.
//! * **Crash of the stack** while `ping -i 0.01` and a `curl` loop run: replies and
//!   successful requests per 100 ms, the gaps, and what happened to a TCP connection
//!   that was open across the crash.
//! * **Forwarding over igb** (`FROND_BENCH_ONLY=igb`): the forwarding measurement with
//!   both NICs QEMU's igb (an Intel 82576), Frond's `dom-igb` at batch 1/8/32 against the
//!   Linux guest's own igb driver, identical QEMU flags, in the same run; records under
//!   `forward_igb`.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use frond_tests::fwdbench::{self, FwdOptions, Guest, Rig, Summary, Window};
use frond_tests::net::{unique_name, Ipv4Net, MacAddr, Netns, TapNic};
use frond_tests::qemu::workspace_root;
use frond_tests::{Accel, Boot, NicModel};

use super::Record;

const WINDOWS: usize = 3;
const WINDOW: Duration = Duration::from_secs(10);
/// Frond's batch sizes in the forwarding comparison.
const BATCHES: [usize; 3] = [1, 8, 32];
/// How long the generator's ceiling is measured.
const CEILING: Duration = Duration::from_secs(5);
/// Paced rate of the crash trace: well below what either guest forwards at saturation.
pub const TRACE_RATE: u64 = 10_000;
const TRACE_LEN: Duration = Duration::from_secs(10);
const CRASH_AT: Duration = Duration::from_secs(4);

pub struct Files {
    pub svgs: Vec<(&'static str, String)>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn console_counters_parse() {
        let text = "net\r\n  virtio-net0  domain  3  rx       120 pkts        7200 B  tx 5 pkts 300 B  dropped 0  irqs 4  notifies 17  sleeps 2  crashes absorbed 0\n  forward      forwarded 100  dropped 1  arp replies 0  nic errors 0  buffers replaced 0  halts 3  rounds 900\nfrond> ";
        let c = super::parse_counters(text);
        let get = |k: &str| c.iter().find(|(n, _)| n == k).map(|&(_, v)| v);
        assert_eq!(get("virtio-net0.notifies"), Some(17));
        assert_eq!(get("virtio-net0.irqs"), Some(4));
        assert_eq!(get("virtio-net0.sleeps"), Some(2));
        assert_eq!(get("forward.forwarded"), Some(100));
        assert_eq!(get("forward.halts"), Some(3));
        assert_eq!(get("forward.rounds"), Some(900));
        assert_eq!(get("virtio-net0.domain"), Some(3));
        assert_eq!(get("virtio-net0.B"), None);
    }
}

fn pps(s: &Summary) -> String {
    format!("{:>9.0} {:>9.0} {:>9.0}", s.min, s.median, s.max)
}

fn ensure_linux() -> Result<Guest, String> {
    let g = Guest::linux_baseline();
    if !g.kernel.is_file() || !g.initrd.is_file() {
        eprintln!("frond-bench: building the Linux baseline guest (scripts/linux-guest.sh)");
        let st = Command::new(workspace_root().join("scripts/linux-guest.sh"))
            .status()
            .map_err(|e| format!("scripts/linux-guest.sh: {e}"))?;
        if !st.success() {
            return Err(format!("scripts/linux-guest.sh failed ({st})"));
        }
    }
    Ok(g)
}

/// One window of `guest`: boot, count for [`WINDOW`] at saturation, tear down. Frond's
/// console counters (`net`) are read at the window's edges.
fn measure_one(guest: &Guest, opts: &FwdOptions, round: usize) -> Result<Window, String> {
    eprintln!("frond-bench: forwarding round {}/{WINDOWS}, {} on {} NICs ({} s)", round + 1, guest.name, opts.nic.driver_name(), WINDOW.as_secs());
    let mut rig = Rig::start(guest, opts).map_err(|e| format!("{}: {e}", guest.name))?;
    let frond = guest.name.starts_with("frond");
    let m = rig
        .measure_probed(1, WINDOW, |s| if frond { console_counters(s) } else { Vec::new() })
        .map_err(|e| format!("{}: {e}", guest.name))?;
    drop(rig);
    m.windows.into_iter().next().ok_or_else(|| format!("{}: no window", guest.name))
}

/// Frond's `net` console output as `name.counter` → value: every `WORD NUMBER` pair of a
/// line, named after the line's first word (`virtio-net0.notifies`, `forward.halts`, …).
pub fn parse_counters(text: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = words.first() else { continue };
        for w in words.windows(2).skip(1) {
            if let Ok(v) = w[1].parse::<u64>() {
                if w[0].chars().all(|c| c.is_ascii_alphabetic()) {
                    out.push((format!("{first}.{}", w[0]), v));
                }
            }
        }
    }
    out
}

fn console_counters(s: &mut frond_tests::Session) -> Vec<(String, u64)> {
    if s.send(b"net\r").is_err() {
        return Vec::new();
    }
    // `expect` returns the text up to its match: the `rounds` line ends in the second part.
    let head = s.expect("rounds", Duration::from_secs(10)).unwrap_or_default();
    let tail = s.expect("frond> ", Duration::from_secs(10)).unwrap_or_default();
    parse_counters(&(head + &tail))
}

/// Longest run of zero buckets starting at or after `from`, in buckets.
fn longest_gap(buckets: &[u64], from: usize) -> usize {
    let (mut best, mut cur) = (0, 0);
    for &b in buckets.iter().skip(from) {
        if b == 0 {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    best
}

/// Runs the network sections `only` selects (forwarding, NIC crash, stack crash).
pub fn run(only: &super::Sections, records: &mut Vec<Record>, table: &mut String) -> Result<Files, String> {
    let mut files = Files { svgs: Vec::new() };
    if only.forward || only.crash_nic || only.igb {
        let mut opts = FwdOptions::new().map_err(|e| e.to_string())?;
        opts.accel = Some(Accel::Tcg);
        if only.forward {
            files.svgs.push(forwarding(&opts, records, table)?);
        }
        if only.igb {
            let igb = FwdOptions { nic: NicModel::Igb, ..opts.clone() };
            files.svgs.push(forwarding(&igb, records, table)?);
        }
        if only.crash_nic {
            files.svgs.push(crash_nic(&opts, records, table)?);
        }
    }
    // 3. Network stack crash under ping and HTTP.
    if only.crash_stack {
        let (svg, text) = stack_crash(records)?;
        table.push_str(&text);
        files.svgs.push(("crash-stack.svg", svg));
    }
    Ok(files)
}

/// 1. Forwarding throughput: Frond at batch 1/8/32 and the Linux guest, both on NICs of
/// `opts.nic` (records under `forward`, or `forward_igb` for igb), in [`WINDOWS`]
/// interleaved rounds (each round boots every guest once for one window), after the
/// generator's ceiling; and the plot of pps per batch size (`forward.svg` /
/// `forward-igb.svg`).
fn forwarding(opts: &FwdOptions, records: &mut Vec<Record>, table: &mut String) -> Result<(&'static str, String), String> {
    let (bench, nic, file) = match opts.nic {
        NicModel::VirtioNet => ("forward", "virtio-net", "forward.svg"),
        NicModel::Igb => ("forward_igb", "igb (Intel 82576)", "forward-igb.svg"),
    };
    let linux = ensure_linux()?;
    eprintln!("frond-bench: generator ceiling ({} s into a veth that drops everything)", CEILING.as_secs());
    let ceiling = fwdbench::generator_ceiling(opts, CEILING).map_err(|e| format!("generator ceiling: {e}"))?.pps();
    let mut guests = vec![("linux".to_string(), linux)];
    for batch in BATCHES {
        guests.push((format!("frond batch {batch}"), Guest::frond(batch).map_err(|e| e.to_string())?));
    }
    let mut windows: Vec<Vec<Window>> = vec![Vec::new(); guests.len()];
    for round in 0..WINDOWS {
        // Linux first in even rounds, last in odd ones, so no guest always follows another.
        let mut order: Vec<usize> = (0..guests.len()).collect();
        if round % 2 == 1 {
            order.rotate_left(1);
        }
        for k in order {
            windows[k].push(measure_one(&guests[k].1, opts, round)?);
        }
    }
    let pps_of = |w: &[Window]| Summary::of(&w.iter().map(|w| w.rx_pps).collect::<Vec<_>>());
    let base = pps_of(&windows[0]);
    let _ = writeln!(
        table,
        "\nIPv4 forwarding over {nic} NICs, 60-byte frames at saturation, tapA → guest → tapB\n\
         (TCG, identical QEMU flags, {WINDOWS} interleaved rounds × {} s; generator ceiling {ceiling:.0} pps)\n\
         {:<14} {:>9} {:>9} {:>9} {:>8} {:>10} {:>10} {:>10} {:>9} {:>11}",
        WINDOW.as_secs(),
        "guest", "min pps", "median", "max pps", "× Linux", "offered", "QEMU took", "tap drops", "% ceiling", "lost in VM"
    );
    for ((label, _), w) in guests.iter().zip(&windows) {
        let s = pps_of(w);
        let med = |f: &dyn Fn(&Window) -> f64| Summary::of(&w.iter().map(f).collect::<Vec<_>>()).median;
        let offered = med(&|w| w.tx_pps);
        let took = med(&|w| w.accepted as f64 / w.cpu_seconds.max(1e-9));
        let drops = med(&|w| w.tap_dropped as f64 / w.cpu_seconds.max(1e-9));
        let lost = med(&|w| w.lost_in_guest() * 100.0);
        let _ = writeln!(
            table,
            "{:<14} {} {:>8.2} {:>10.0} {:>10.0} {:>10.0} {:>8.1}% {:>10.2}%",
            label,
            pps(&s),
            s.median / base.median,
            offered,
            took,
            drops,
            s.median / ceiling * 100.0,
            lost
        );
        let variant = label.replace(' ', "_").replace("frond_batch_", "frond_batch");
        records.push(Record::new(bench, &variant, "rx_pps", "packets/s").samples(w.iter().map(|w| w.rx_pps).collect()));
        records.push(Record::new(bench, &variant, "ratio_to_linux", "x").value(s.median / base.median));
        records.push(Record::new(bench, &variant, "lost_in_guest", "%").samples(w.iter().map(|w| w.lost_in_guest() * 100.0).collect()));
        records.push(Record::new(bench, &variant, "offered_pps", "packets/s").samples(w.iter().map(|w| w.tx_pps).collect()));
    }
    records.push(Record::new(bench, "generator", "ceiling_pps", "packets/s").value(ceiling));

    // Device interaction per forwarded packet (Frond's own counters) and QEMU's threads.
    let _ = writeln!(
        table,
        "\nPer forwarded packet (Frond's counters over the window, both NICs; median of {WINDOWS}):\n\
         {:<14} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "guest", "doorbells", "irqs", "sleeps", "halts", "rounds"
    );
    for ((label, _), w) in guests.iter().zip(&windows).skip(1) {
        let per = |key: &str| {
            Summary::of(
                &w.iter()
                    .map(|w| {
                        let fwd = w.guest_counter("forward.forwarded").unwrap_or(0).max(1) as f64;
                        let sum: u64 = w.guest.iter().filter(|(n, _)| n.ends_with(key) && !n.starts_with("forward.") || n == &format!("forward{key}")).map(|&(_, v)| v).sum();
                        sum as f64 / fwd
                    })
                    .collect::<Vec<_>>(),
            )
            .median
        };
        let row = [per(".notifies"), per(".irqs"), per(".sleeps"), per(".halts"), per(".rounds")];
        let _ = writeln!(table, "{:<14} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>10.4}", label, row[0], row[1], row[2], row[3], row[4]);
        let variant = label.replace(' ', "_").replace("frond_batch_", "frond_batch");
        for (metric, v) in ["doorbells_per_packet", "irqs_per_packet", "sleeps_per_packet", "halts_per_packet", "rounds_per_packet"].iter().zip(row) {
            records.push(Record::new(bench, &variant, metric, "per packet").value(v));
        }
    }
    let _ = writeln!(
        table,
        "(doorbells: virtio notifications / Intel tail writes, each an MMIO write QEMU handles;\n\
         the data path's only other device accesses are ring memory, no exits)\n\
         \nHost CPU of QEMU's threads while counting (CPU seconds per second; /proc/<pid>/task/*/stat):"
    );
    let mut roles: Vec<String> = Vec::new();
    for w in windows.iter().flatten() {
        for t in &w.qemu_threads {
            if !roles.contains(&t.role) {
                roles.push(t.role.clone());
            }
        }
    }
    let _ = write!(table, "{:<14}", "guest");
    for r in &roles {
        let _ = write!(table, " {:>10}", r);
    }
    let _ = writeln!(table, " {:>10}", "all");
    for ((label, _), w) in guests.iter().zip(&windows) {
        let _ = write!(table, "{:<14}", label);
        let share = |w: &Window, role: Option<&str>| {
            w.qemu_threads.iter().filter(|t| role.is_none_or(|r| t.role == r)).map(|t| t.seconds).sum::<f64>() / w.cpu_seconds.max(1e-9)
        };
        let variant = label.replace(' ', "_").replace("frond_batch_", "frond_batch");
        for r in roles.iter().map(|r| Some(r.as_str())).chain([None]) {
            // `+ 0.0` turns a -0.0 (a thread that ran 0 ticks) into 0.0 for printing.
            let v = Summary::of(&w.iter().map(|w| share(w, r)).collect::<Vec<_>>()).median + 0.0;
            let _ = write!(table, " {:>10.2}", v);
            let thread = r.unwrap_or("all").replace([' ', '/'], "_");
            records.push(
                Record::new(bench, &format!("{variant}.qemu_{thread}"), "host_cpu", "cpu s/s")
                    .samples(w.iter().map(|w| share(w, r)).collect()),
            );
        }
        let _ = writeln!(table);
    }

    let range = |s: &Summary| Some(super::svg::Range { min: s.min, median: s.median, max: s.max });
    let frond: Vec<Summary> = windows[1..].iter().map(|w| pps_of(w)).collect();
    let svg = super::svg::range_bars(
        &format!("IPv4 forwarding over {nic} NICs, 60-byte frames (TCG, {WINDOWS} rounds × {} s)", WINDOW.as_secs()),
        "Frond's batch size (the Linux guest has none: the same figure in each group)",
        "forwarded packets/s (bar: median; whiskers: min–max)",
        &BATCHES.iter().map(|b| format!("batch {b}")).collect::<Vec<_>>(),
        &[
            ("Frond".into(), "#1f77b4", frond.iter().map(range).collect()),
            ("Linux".into(), "#ff7f0e", frond.iter().map(|_| range(&base)).collect()),
        ],
    );
    Ok((file, svg))
}

/// 2. NIC driver crash under forwarding.
fn crash_nic(opts: &FwdOptions, records: &mut Vec<Record>, table: &mut String) -> Result<(&'static str, String), String> {
    let g = Guest::frond(32).map_err(|e| e.to_string())?;
    eprintln!("frond-bench: crash of virtio-net0 at {} s under {TRACE_RATE} pps", CRASH_AT.as_secs());
    let mut rig = Rig::start(&g, &opts).map_err(|e| e.to_string())?;
    let mut crashed_at = None;
    let trace = rig
        .trace(TRACE_RATE, TRACE_LEN, |session, t0| {
            std::thread::sleep(CRASH_AT.saturating_sub(t0.elapsed()));
            crashed_at = Some(t0.elapsed());
            session.send(b"crash virtio-net0\r")
        })
        .map_err(|e| e.to_string())?;
    let s = rig.session();
    let _ = s.send(b"net\r");
    let net = s.expect("rounds", Duration::from_secs(10)).unwrap_or_default();
    let fwd_line = net.lines().rev().find(|l| l.contains("forwarded")).unwrap_or("").trim().to_string();
    let absorbed = net
        .lines()
        .filter(|l| l.contains("virtio-net"))
        .filter_map(|l| l.rsplit("crashes absorbed ").next()?.trim().parse::<u64>().ok())
        .sum::<u64>();
    drop(rig);
    let crash_s = crashed_at.unwrap_or(CRASH_AT).as_secs_f64();
    let bms = trace.bucket_ms as f64;
    let crash_bucket = (crash_s * 1000.0 / bms) as usize;
    let gap = longest_gap(&trace.buckets, crash_bucket.saturating_sub(1)) as f64 * bms;
    let before: u64 = trace.buckets.iter().take(crash_bucket).sum();
    let expected_before = crash_bucket as f64 * bms / 1000.0 * TRACE_RATE as f64;
    // The generator runs a little longer than the counter (warm-up), so loss is counted
    // against what the paced rate puts into the counting window.
    let expected = (TRACE_RATE as f64 * trace.buckets.len() as f64 * bms / 1000.0) as u64;
    let lost = expected.saturating_sub(trace.total);
    let around: Vec<u64> = trace.buckets.iter().skip(crash_bucket.saturating_sub(2)).take(6).copied().collect();
    let _ = writeln!(
        table,
        "\nCrash of the NIC driver under forwarding ({TRACE_RATE} pps paced, batch 32, crash at {crash_s:.2} s)\n\
         expected in the counting window {expected}  delivered {}  lost {lost}  gap {gap:.0} ms (longest run of empty {}-ms buckets)\n\
         buckets around the crash (from 20 ms before): {around:?}\n\
         before the crash: {before} of ~{expected_before:.0} delivered; forward domain after: {fwd_line}\n\
         NIC calls that hit the dead driver (absorbed by the shadow): {absorbed}",
        trace.total, trace.bucket_ms
    );
    records.push(Record::new("crash_nic", "forward", "gap", "ms").value(gap));
    records.push(Record::new("crash_nic", "forward", "lost", "packets").value(lost as f64));
    records.push(
        Record::new("crash_nic", "forward", "delivered_per_bucket", "packets")
            .samples(trace.buckets.iter().map(|&b| b as f64).collect()),
    );
    let pts: Vec<(f64, f64)> =
        trace.buckets.iter().enumerate().map(|(i, &b)| (i as f64 * bms / 1000.0, b as f64)).collect();
    Ok((
        "crash-nic.svg",
        super::svg::time_series(
            &format!("Forwarding through a NIC driver crash ({TRACE_RATE} pps, 60-byte frames)"),
            "seconds since counting started",
            &format!("frames delivered per {} ms", trace.bucket_ms),
            &[("delivered to fwdB".into(), "#1f77b4", pts)],
            &[(crash_s, "crash virtio-net0".into())],
        ),
    ))
}

const HOST: Ipv4Addr = Ipv4Addr::new(10, 34, 0, 1);
const GUEST: Ipv4Addr = Ipv4Addr::new(10, 34, 0, 2);

fn stack_crash(records: &mut Vec<Record>) -> Result<(String, String), String> {
    eprintln!("frond-bench: crash of netstack at {} s under ping and curl", CRASH_AT.as_secs());
    let e = |e: frond_tests::HarnessError| e.to_string();
    let ns = Netns::create_unique("fb").map_err(e)?;
    ns.disable_ipv6().map_err(e)?;
    let tap = unique_name("fbt");
    let mac: MacAddr = "02:00:0a:22:00:01".parse().map_err(|e| format!("{e:?}"))?;
    ns.add_tap(&tap, mac).map_err(e)?;
    ns.configure_link(&tap, mac, Some(Ipv4Net::new(HOST, 24))).map_err(e)?;
    let nic = TapNic { id: "n0".into(), tap: tap.clone(), mac: "52:54:00:12:34:56".parse().map_err(|e| format!("{e:?}"))?, pci_slot: 0x10, model: NicModel::VirtioNet };
    let mut session = Boot::new()
        .name("bench-stack-crash")
        .accel(Accel::Tcg)
        .cmdline(format!("ip={GUEST}/24 gw={HOST}"))
        .netns(ns.name())
        .qemu_args(nic.qemu_args())
        .timeout(Duration::from_secs(120))
        .spawn();
    session.expect("services: echo tcp/udp 7, http 80", Duration::from_secs(60)).map_err(e)?;

    // A TCP connection open across the crash: echo works before; what happens after?
    let conn = ns
        .run_in(|| -> std::io::Result<TcpStream> {
            let mut s = TcpStream::connect_timeout(&SocketAddr::from((GUEST, 7)), Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"before")?;
            let mut b = [0u8; 6];
            s.read_exact(&mut b)?;
            Ok(s)
        })
        .map_err(e)?
        .map_err(|e| format!("TCP echo before the crash: {e}"))?;

    let t0 = Instant::now();
    let total = TRACE_LEN + Duration::from_secs(2);
    let mut ping_cmd = ns.command("ping").map_err(e)?;
    ping_cmd.args(["-D", "-n", "-i", "0.01", "-W", "1", "-w", &total.as_secs().to_string(), &GUEST.to_string()]);
    // ping and the curl loop run on their own threads while the stack is crashed.
    let stop = Arc::new(AtomicBool::new(false));
    let http: Arc<Mutex<Vec<f64>>> = Arc::default();
    let curl_thread = {
        let (stop, http, cmd) = (stop.clone(), http.clone(), ns.command("curl").map_err(e)?);
        let url = format!("http://{GUEST}/");
        let prog = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let ok = Command::new(&prog)
                    .args(&args)
                    .args(["-s", "-m", "1", "-o", "/dev/null", "-w", "%{http_code}", &url])
                    .output()
                    .map(|o| o.stdout == b"200")
                    .unwrap_or(false);
                if ok {
                    http.lock().unwrap().push(t0.elapsed().as_secs_f64());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let ping_thread = std::thread::spawn(move || ping_cmd.output());
    std::thread::sleep(CRASH_AT.saturating_sub(t0.elapsed()));
    let crash_s = t0.elapsed().as_secs_f64();
    session.send(b"crash netstack\r").map_err(e)?;
    let wall0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs_f64() - crash_s;
    let ping = ping_thread.join().map_err(|_| "ping thread panicked")?.map_err(|e| format!("ping: {e}"))?;
    stop.store(true, Ordering::Relaxed);
    curl_thread.join().map_err(|_| "curl thread panicked")?;

    // What the open connection sees now.
    let mut c = conn;
    let after = match c.write_all(b"after!").and_then(|_| {
        let mut b = [0u8; 6];
        c.read_exact(&mut b)
    }) {
        Ok(()) => "still echoes (unexpected)".to_string(),
        Err(e) => format!("{} ({:?})", e, e.kind()),
    };

    // ping -D lines: "[1700000000.123456] 64 bytes from …".
    let text = String::from_utf8_lossy(&ping.stdout);
    let replies: Vec<f64> = text
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse::<f64>().ok())
        .map(|t| t - wall0)
        .collect();
    let http = http.lock().unwrap().clone();
    let bucket = 0.1;
    let n = (total.as_secs_f64() / bucket).ceil() as usize;
    let hist = |ts: &[f64]| {
        let mut h = vec![0u64; n];
        for &t in ts {
            if t >= 0.0 && ((t / bucket) as usize) < n {
                h[(t / bucket) as usize] += 1;
            }
        }
        h
    };
    let (hp, hh) = (hist(&replies), hist(&http));
    let cb = (crash_s / bucket) as usize;
    let gap_p = longest_gap(&hp[..n - 20], cb.saturating_sub(1)) as f64 * bucket * 1000.0;
    let gap_h = longest_gap(&hh[..n - 20], cb.saturating_sub(1)) as f64 * bucket * 1000.0;
    let sent = text.lines().find(|l| l.contains("packets transmitted")).unwrap_or("").trim().to_string();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nCrash of the network stack (netstack) at {crash_s:.2} s under ping -i 0.01 and a curl loop\n\
         ping: {sent}; longest gap {gap_p:.0} ms\n\
         curl: {} successful GETs; longest gap {gap_h:.0} ms\n\
         a TCP connection open across the crash: {after}",
        http.len()
    );
    records.push(Record::new("crash_stack", "ping", "gap", "ms").value(gap_p));
    records.push(Record::new("crash_stack", "http", "gap", "ms").value(gap_h));
    let pts = |h: &[u64]| h.iter().enumerate().map(|(i, &c)| (i as f64 * bucket, c as f64)).collect::<Vec<_>>();
    let svg = super::svg::time_series(
        "Network stack crash under ping and HTTP",
        "seconds",
        "per 100 ms",
        &[("ping replies".into(), "#1f77b4", pts(&hp)), ("HTTP 200s".into(), "#2ca02c", pts(&hh))],
        &[(crash_s, "crash netstack".into())],
    );
    drop(session);
    drop(ns);
    Ok((svg, out))
}
