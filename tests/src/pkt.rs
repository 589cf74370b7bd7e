//! The pure parts of the packet tools `frond-pktgen` (UDP generator) and `frond-pktcount`
//! (AF_PACKET counter): their options, their JSON reports, the frame filter and the time
//! buckets. The binaries only add sockets and clocks; the forwarding benchmark
//! (`crate::fwdbench`) builds their command lines and parses their reports with the same
//! types, so the two sides cannot drift apart.
//!
//! Invariants:
//! * A generated frame is exactly [`FRAME_LEN`] = 60 bytes on the wire before the FCS:
//!   Ethernet 14 + IPv4 20 + UDP 8 + [`PAYLOAD_LEN`] 18.
//! * [`FrameFilter::matches`] never panics and never reads past the frame: any byte
//!   slice, however short or malformed, is simply "no match".
//! * [`Buckets`] counts an event at offset `t` (from the start of counting) in bucket
//!   `t / width`; events at or past the window's end are not counted, so `total` is
//!   exactly the events in `[0, window)`.
//! * Options round-trip: `parse(to_args(o)) == o`.
//! * [`Verifier::check`] (the counter's `--verify on`) judges every IPv4/UDP frame to the
//!   filter's port, whatever its MACs and TTL, so a frame that is wrong is reported as
//!   wrong instead of silently not counted; like the filter it never panics.

use std::fmt;
use std::net::SocketAddrV4;
use std::time::Duration;

use serde_json::{json, Value};

use crate::net::MacAddr;

/// UDP payload of a generated datagram.
pub const PAYLOAD_LEN: usize = 18;
/// Ethernet + IPv4 + UDP headers.
pub const HEADERS_LEN: usize = 14 + 20 + 8;
/// A generated frame without FCS: the 64-byte minimum frame once the FCS is added.
pub const FRAME_LEN: usize = HEADERS_LEN + PAYLOAD_LEN;
/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// IP protocol number of UDP.
const IPPROTO_UDP: u8 = 17;
/// Default bucket width of the counter.
pub const DEFAULT_BUCKET: Duration = Duration::from_millis(10);
/// Printed by `frond-pktcount` on stderr once it counts.
pub const COUNT_READY: &str = "pktcount: ready";
/// Bytes 8.. of a generated payload (bytes 0..8 are the big-endian sequence number).
pub const PAYLOAD_MARKER: &[u8; PAYLOAD_LEN - 8] = b"frond-pkt!";

/// True if the IPv4 header `ip` (exactly its IHL bytes) has a valid header checksum: the
/// ones'-complement sum of its 16-bit words, checksum field included, is 0xffff.
pub fn ipv4_checksum_ok(ip: &[u8]) -> bool {
    if ip.len() < 20 || ip.len() % 2 != 0 {
        return false;
    }
    let mut sum: u32 = ip
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

/// What `frond-pktcount --verify on` found (see [`Verifier`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// IPv4/UDP frames to the filter's port (any MACs, any TTL).
    pub frames: u64,
    /// Frames that passed every check.
    pub good: u64,
    pub bad_dst_mac: u64,
    pub bad_src_mac: u64,
    /// TTL other than the filter's (e.g. not decremented, or decremented twice).
    pub bad_ttl: u64,
    /// Invalid IPv4 header checksum.
    pub bad_checksum: u64,
    /// UDP payload not a generated one (length or marker).
    pub bad_payload: u64,
    /// Distinct sequence numbers among the frames with a generated payload.
    pub distinct: u64,
    /// Frames whose sequence number was already seen.
    pub duplicates: u64,
    /// The first frame that failed a check: what failed, and the frame in hex.
    pub first_bad: Option<String>,
}

/// Checks each IPv4/UDP frame to the filter's port against everything a forwarder must
/// get right: the filter's MACs and TTL, a valid IPv4 header checksum, the generator's
/// payload intact, and no sequence number twice.
#[derive(Debug, Clone)]
pub struct Verifier {
    filter: FrameFilter,
    seen: std::collections::HashSet<u64>,
    report: VerifyReport,
}

impl Verifier {
    pub fn new(filter: FrameFilter) -> Verifier {
        Verifier {
            filter,
            seen: std::collections::HashSet::new(),
            report: VerifyReport::default(),
        }
    }

    /// Judges one frame (from the destination MAC on, no FCS); frames that are not
    /// IPv4/UDP to the port are ignored. Reads only inside `frame`.
    pub fn check(&mut self, frame: &[u8]) {
        let Some(eth) = frame.get(..14) else { return };
        if u16::from_be_bytes([eth[12], eth[13]]) != ETHERTYPE_IPV4 {
            return;
        }
        let ip = &frame[14..];
        let Some(&ver_ihl) = ip.first() else { return };
        let ihl = usize::from(ver_ihl & 0x0f) * 4;
        if ver_ihl >> 4 != 4 || ihl < 20 || ip.len() < ihl || ip[9] != IPPROTO_UDP {
            return;
        }
        let frag_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
        let Some(udp) = ip.get(ihl..ihl + 8) else { return };
        if frag_offset != 0 || u16::from_be_bytes([udp[2], udp[3]]) != self.filter.udp_dst_port {
            return;
        }
        let r = &mut self.report;
        r.frames += 1;
        let mut bad: Vec<String> = Vec::new();
        if eth[0..6] != self.filter.dst_mac.0 {
            r.bad_dst_mac += 1;
            bad.push(format!("dst MAC {}", MacAddr(eth[0..6].try_into().unwrap())));
        }
        if eth[6..12] != self.filter.src_mac.0 {
            r.bad_src_mac += 1;
            bad.push(format!("src MAC {}", MacAddr(eth[6..12].try_into().unwrap())));
        }
        if ip[8] != self.filter.ttl {
            r.bad_ttl += 1;
            bad.push(format!("TTL {}", ip[8]));
        }
        if !ipv4_checksum_ok(&ip[..ihl]) {
            r.bad_checksum += 1;
            bad.push(format!("IPv4 checksum {:#06x}", u16::from_be_bytes([ip[10], ip[11]])));
        }
        let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        match ip.get(ihl + 8..ihl + 8 + PAYLOAD_LEN) {
            Some(p) if udp_len == 8 + PAYLOAD_LEN && &p[8..] == PAYLOAD_MARKER => {
                let seq = u64::from_be_bytes(p[..8].try_into().unwrap());
                if self.seen.insert(seq) {
                    r.distinct += 1;
                } else {
                    r.duplicates += 1;
                    bad.push(format!("duplicate of sequence number {seq}"));
                }
            }
            _ => {
                r.bad_payload += 1;
                bad.push(format!("payload (UDP length {udp_len})"));
            }
        }
        if bad.is_empty() {
            r.good += 1;
        } else if r.first_bad.is_none() {
            let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
            r.first_bad = Some(format!("{}: {hex}", bad.join(", ")));
        }
    }

    pub fn report(&self) -> &VerifyReport {
        &self.report
    }
}

/// What `frond-pktcount` counts: Ethernet/IPv4/UDP frames with these fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameFilter {
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    /// IPv4 TTL as received (a forwarder decrements it: the sender's 64 becomes 63).
    pub ttl: u8,
    pub udp_dst_port: u16,
}

impl FrameFilter {
    /// True if `frame` (from the destination MAC on, no FCS) is an untagged IPv4 frame
    /// with both MACs, the TTL and, in an unfragmented-or-first fragment, a UDP header
    /// with the destination port. Reads only inside `frame`.
    pub fn matches(&self, frame: &[u8]) -> bool {
        let Some(eth) = frame.get(..14) else {
            return false;
        };
        if eth[0..6] != self.dst_mac.0
            || eth[6..12] != self.src_mac.0
            || u16::from_be_bytes([eth[12], eth[13]]) != ETHERTYPE_IPV4
        {
            return false;
        }
        let ip = &frame[14..];
        let Some(&ver_ihl) = ip.first() else {
            return false;
        };
        let ihl = usize::from(ver_ihl & 0x0f) * 4;
        if ver_ihl >> 4 != 4 || ihl < 20 || ip.len() < ihl {
            return false;
        }
        let frag_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
        if ip[8] != self.ttl || ip[9] != IPPROTO_UDP || frag_offset != 0 {
            return false;
        }
        match ip.get(ihl..ihl + 8) {
            Some(udp) => u16::from_be_bytes([udp[2], udp[3]]) == self.udp_dst_port,
            None => false,
        }
    }
}

/// Event counts per fixed-width time bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    width: Duration,
    /// The counting window, if fixed in advance.
    window: Option<Duration>,
    counts: Vec<u64>,
}

impl Buckets {
    /// Buckets of `width` (non-zero) over `window` (`None`: open-ended, grows as needed).
    /// A fixed window starts with all its buckets at 0.
    pub fn new(width: Duration, window: Option<Duration>) -> Buckets {
        assert!(!width.is_zero(), "bucket width must be non-zero");
        let counts = vec![0; window.map_or(0, |w| Buckets::count_for(width, w))];
        Buckets {
            width,
            window,
            counts,
        }
    }

    /// How many buckets of `width` cover `span` (the last one possibly partial).
    pub fn count_for(width: Duration, span: Duration) -> usize {
        let n = span.as_nanos().div_ceil(width.as_nanos());
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    pub fn width(&self) -> Duration {
        self.width
    }

    /// Counts one event at `offset` from the start; false (not counted) if it is at or
    /// past the end of a fixed window.
    pub fn record(&mut self, offset: Duration) -> bool {
        if self.window.is_some_and(|w| offset >= w) {
            return false;
        }
        let Ok(i) = usize::try_from(offset.as_nanos() / self.width.as_nanos()) else {
            return false;
        };
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        true
    }

    /// Ends counting after `elapsed`: the buckets are exactly those covering
    /// `[0, min(elapsed, window))` (trailing empty buckets included, later ones dropped).
    pub fn finish(&mut self, elapsed: Duration) {
        let span = self.window.map_or(elapsed, |w| w.min(elapsed));
        self.counts.resize(Buckets::count_for(self.width, span), 0);
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Sums consecutive runs of `per` buckets (the last run may be shorter): e.g. 10 ms
/// buckets → per-second counts with `per = 100`.
pub fn regroup(buckets: &[u64], per: usize) -> Vec<u64> {
    assert!(per > 0, "group size must be non-zero");
    buckets.chunks(per).map(|c| c.iter().sum()).collect()
}

/// How many packets a generator paced at `rate` per second should have sent `elapsed`
/// after its start (the first goes at time 0).
pub fn due_packets(elapsed: Duration, rate: u64) -> u64 {
    let due = elapsed.as_nanos().saturating_mul(u128::from(rate)) / 1_000_000_000 + 1;
    u64::try_from(due).unwrap_or(u64::MAX)
}

/// A bad command line or report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

/// `--key value` pairs, each key at most once, only keys from `known`.
fn parse_pairs<'a>(
    args: &'a [String],
    known: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, ParseError> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let mut it = args.iter();
    while let Some(key) = it.next() {
        let Some(name) = key.strip_prefix("--").filter(|n| known.contains(n)) else {
            return err(format!(
                "unknown option {key:?} (known: --{})",
                known.join(", --")
            ));
        };
        let Some(value) = it.next() else {
            return err(format!("{key} needs a value"));
        };
        if out.iter().any(|(k, _)| *k == name) {
            return err(format!("{key} given twice"));
        }
        out.push((name, value));
    }
    Ok(out)
}

fn get<'a>(pairs: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn need<'a>(pairs: &[(&str, &'a str)], key: &str) -> Result<&'a str, ParseError> {
    get(pairs, key).ok_or_else(|| ParseError(format!("--{key} is required")))
}

fn parse_value<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ParseError>
where
    T::Err: fmt::Display,
{
    v.parse()
        .map_err(|e| ParseError(format!("--{key} {v:?}: {e}")))
}

fn parse_seconds(key: &str, v: &str) -> Result<Duration, ParseError> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Duration::from_secs_f64(s)),
        _ => err(format!(
            "--{key} {v:?}: expected a positive number of seconds"
        )),
    }
}

/// Seconds as the tools print them: whole numbers stay whole (`10`, not `10.0`).
fn seconds_arg(d: Duration) -> String {
    let s = d.as_secs_f64();
    format!("{s}")
}

/// `frond-pktgen`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenOptions {
    /// Local address the socket binds to.
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub duration: Duration,
    /// Packets per second; `None` = as fast as possible.
    pub rate: Option<u64>,
}

impl GenOptions {
    const KEYS: [&'static str; 4] = ["src", "dst", "seconds", "rate"];

    /// `--src IP:PORT --dst IP:PORT --seconds S [--rate PPS]`; `--rate 0` means
    /// saturation, like leaving it out.
    pub fn parse(args: &[String]) -> Result<GenOptions, ParseError> {
        let pairs = parse_pairs(args, &Self::KEYS)?;
        let rate = match get(&pairs, "rate") {
            Some(v) => Some(parse_value::<u64>("rate", v)?).filter(|r| *r > 0),
            None => None,
        };
        Ok(GenOptions {
            src: parse_value("src", need(&pairs, "src")?)?,
            dst: parse_value("dst", need(&pairs, "dst")?)?,
            duration: parse_seconds("seconds", need(&pairs, "seconds")?)?,
            rate,
        })
    }

    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--src".into(),
            self.src.to_string(),
            "--dst".into(),
            self.dst.to_string(),
            "--seconds".into(),
            seconds_arg(self.duration),
        ];
        if let Some(rate) = self.rate {
            v.extend(["--rate".into(), rate.to_string()]);
        }
        v
    }
}

/// `frond-pktcount`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountOptions {
    pub filter: FrameFilter,
    /// How long to count; `None` = until SIGTERM/SIGINT.
    pub duration: Option<Duration>,
    pub bucket: Duration,
    /// Count only frames received on this interface (all interfaces if `None`).
    pub iface: Option<String>,
    /// Also judge every IPv4/UDP frame to the port ([`Verifier`]; `--verify on`).
    pub verify: bool,
}

impl CountOptions {
    const KEYS: [&'static str; 8] = [
        "dst-mac",
        "src-mac",
        "ttl",
        "port",
        "seconds",
        "bucket-ms",
        "iface",
        "verify",
    ];

    /// `--dst-mac MAC --src-mac MAC --ttl N --port N [--seconds S] [--bucket-ms N]
    /// [--iface NAME] [--verify on|off]`.
    pub fn parse(args: &[String]) -> Result<CountOptions, ParseError> {
        let pairs = parse_pairs(args, &Self::KEYS)?;
        let bucket_ms: u64 = match get(&pairs, "bucket-ms") {
            Some(v) => parse_value("bucket-ms", v)?,
            None => DEFAULT_BUCKET.as_millis() as u64,
        };
        if bucket_ms == 0 {
            return err("--bucket-ms must be positive");
        }
        let duration = match get(&pairs, "seconds") {
            Some(v) => Some(parse_seconds("seconds", v)?),
            None => None,
        };
        Ok(CountOptions {
            filter: FrameFilter {
                dst_mac: parse_value("dst-mac", need(&pairs, "dst-mac")?)?,
                src_mac: parse_value("src-mac", need(&pairs, "src-mac")?)?,
                ttl: parse_value("ttl", need(&pairs, "ttl")?)?,
                udp_dst_port: parse_value("port", need(&pairs, "port")?)?,
            },
            duration,
            bucket: Duration::from_millis(bucket_ms),
            iface: get(&pairs, "iface").map(str::to_string),
            verify: match get(&pairs, "verify") {
                None | Some("off") => false,
                Some("on") => true,
                Some(v) => return err(format!("--verify {v:?}: expected on or off")),
            },
        })
    }

    pub fn to_args(&self) -> Vec<String> {
        let f = &self.filter;
        let mut v = vec![
            "--dst-mac".into(),
            f.dst_mac.to_string(),
            "--src-mac".into(),
            f.src_mac.to_string(),
            "--ttl".into(),
            f.ttl.to_string(),
            "--port".into(),
            f.udp_dst_port.to_string(),
            "--bucket-ms".into(),
            self.bucket.as_millis().to_string(),
        ];
        if let Some(d) = self.duration {
            v.extend(["--seconds".into(), seconds_arg(d)]);
        }
        if let Some(i) = &self.iface {
            v.extend(["--iface".into(), i.clone()]);
        }
        if self.verify {
            v.extend(["--verify".into(), "on".into()]);
        }
        v
    }
}

fn field_u64(v: &Value, key: &str) -> Result<u64, ParseError> {
    v.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| ParseError(format!("report lacks a non-negative integer {key:?}: {v}")))
}

fn field_f64(v: &Value, key: &str) -> Result<f64, ParseError> {
    v.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| ParseError(format!("report lacks a number {key:?}: {v}")))
}

/// The last line of `text` that is a JSON object (tools print their report last).
fn last_json(text: &str) -> Result<Value, ParseError> {
    text.lines()
        .rev()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .ok_or_else(|| ParseError(format!("no JSON report in output {text:?}")))
}

/// `frond-pktgen`'s report (one JSON line on stdout).
#[derive(Debug, Clone, PartialEq)]
pub struct GenReport {
    /// Datagrams the socket accepted.
    pub sent: u64,
    /// Sends that failed (e.g. ENOBUFS, ECONNREFUSED); not in `sent`.
    pub errors: u64,
    /// From the first send until the generator stopped.
    pub seconds: f64,
    /// The pacing rate, `None` for saturation.
    pub rate: Option<u64>,
}

impl GenReport {
    pub fn to_json(&self) -> String {
        json!({
            "sent": self.sent,
            "errors": self.errors,
            "seconds": self.seconds,
            "rate_pps": self.rate,
            "payload_bytes": PAYLOAD_LEN,
            "frame_bytes": FRAME_LEN,
        })
        .to_string()
    }

    /// Parses the last JSON line of `text`.
    pub fn from_output(text: &str) -> Result<GenReport, ParseError> {
        let v = last_json(text)?;
        let rate = match v.get("rate_pps") {
            None | Some(Value::Null) => None,
            Some(r) => Some(
                r.as_u64()
                    .ok_or_else(|| ParseError(format!("bad rate_pps in {v}")))?,
            ),
        };
        Ok(GenReport {
            sent: field_u64(&v, "sent")?,
            errors: field_u64(&v, "errors")?,
            seconds: field_f64(&v, "seconds")?,
            rate,
        })
    }

    /// Datagrams per second actually sent.
    pub fn pps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.sent as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// `frond-pktcount`'s report (one JSON line on stdout).
#[derive(Debug, Clone, PartialEq)]
pub struct CountReport {
    pub bucket_ms: u64,
    /// Matching frames per bucket, from the moment counting started.
    pub buckets: Vec<u64>,
    /// Sum of `buckets`.
    pub total: u64,
    /// The span the buckets cover (the window, or less if stopped early).
    pub seconds: f64,
    /// With `--verify on`: what the [`Verifier`] found (`"verify"` in the JSON).
    pub verify: Option<VerifyReport>,
}

impl CountReport {
    pub fn from_buckets(b: &Buckets, seconds: f64) -> CountReport {
        CountReport {
            bucket_ms: b.width().as_millis() as u64,
            buckets: b.counts().to_vec(),
            total: b.total(),
            seconds,
            verify: None,
        }
    }

    pub fn to_json(&self) -> String {
        let mut v = json!({
            "bucket_ms": self.bucket_ms,
            "buckets": self.buckets,
            "total": self.total,
            "seconds": self.seconds,
        });
        if let Some(r) = &self.verify {
            v["verify"] = json!({
                "frames": r.frames,
                "good": r.good,
                "bad_dst_mac": r.bad_dst_mac,
                "bad_src_mac": r.bad_src_mac,
                "bad_ttl": r.bad_ttl,
                "bad_checksum": r.bad_checksum,
                "bad_payload": r.bad_payload,
                "distinct": r.distinct,
                "duplicates": r.duplicates,
                "first_bad": r.first_bad,
            });
        }
        v.to_string()
    }

    /// Parses the last JSON line of `text`; `total` must equal the sum of the buckets.
    pub fn from_output(text: &str) -> Result<CountReport, ParseError> {
        let v = last_json(text)?;
        let buckets = v
            .get("buckets")
            .and_then(Value::as_array)
            .ok_or_else(|| ParseError(format!("report lacks \"buckets\": {v}")))?
            .iter()
            .map(|b| {
                b.as_u64()
                    .ok_or_else(|| ParseError(format!("bad bucket {b}")))
            })
            .collect::<Result<Vec<u64>, _>>()?;
        let r = CountReport {
            bucket_ms: field_u64(&v, "bucket_ms")?,
            total: field_u64(&v, "total")?,
            seconds: field_f64(&v, "seconds")?,
            buckets,
            verify: match v.get("verify") {
                None | Some(Value::Null) => None,
                Some(r) => Some(VerifyReport {
                    frames: field_u64(r, "frames")?,
                    good: field_u64(r, "good")?,
                    bad_dst_mac: field_u64(r, "bad_dst_mac")?,
                    bad_src_mac: field_u64(r, "bad_src_mac")?,
                    bad_ttl: field_u64(r, "bad_ttl")?,
                    bad_checksum: field_u64(r, "bad_checksum")?,
                    bad_payload: field_u64(r, "bad_payload")?,
                    distinct: field_u64(r, "distinct")?,
                    duplicates: field_u64(r, "duplicates")?,
                    first_bad: r.get("first_bad").and_then(Value::as_str).map(str::to_string),
                }),
            },
        };
        if r.total != r.buckets.iter().sum::<u64>() {
            return err(format!("total {} is not the sum of the buckets", r.total));
        }
        Ok(r)
    }

    /// Matching frames per second over the covered span.
    pub fn pps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.total as f64 / self.seconds
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DST: MacAddr = MacAddr([0x02, 0, 0x0a, 0, 0x02, 0x01]);
    const SRC: MacAddr = MacAddr([0x52, 0x54, 0, 0x0a, 0x02, 0x02]);

    fn filter() -> FrameFilter {
        FrameFilter {
            dst_mac: DST,
            src_mac: SRC,
            ttl: 63,
            udp_dst_port: 9000,
        }
    }

    /// A 60-byte frame as the forwarder emits it: 10.0.1.1:1234 → 10.0.2.1:9000, TTL 63.
    fn frame() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&DST.0);
        f.extend_from_slice(&SRC.0);
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 8 + PAYLOAD_LEN) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x40, 0]); // id 1, DF, offset 0
        f.extend_from_slice(&[63, 17, 0, 0]); // TTL, UDP, checksum (not checked)
        f.extend_from_slice(&[10, 0, 1, 1, 10, 0, 2, 1]);
        f.extend_from_slice(&1234u16.to_be_bytes());
        f.extend_from_slice(&9000u16.to_be_bytes());
        f.extend_from_slice(&((8 + PAYLOAD_LEN) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&[0xab; PAYLOAD_LEN]);
        f
    }

    /// [`frame`] with a valid IPv4 checksum and a generated payload (sequence `seq`).
    fn generated(seq: u64) -> Vec<u8> {
        let mut f = frame();
        f[42..50].copy_from_slice(&seq.to_be_bytes());
        f[50..60].copy_from_slice(PAYLOAD_MARKER);
        fix_checksum(&mut f);
        f
    }

    fn fix_checksum(f: &mut [u8]) {
        f[24..26].copy_from_slice(&[0, 0]);
        let mut sum: u32 = f[14..34].chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    }

    #[test]
    fn ipv4_checksum() {
        // A well-known valid header: 4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
            0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(ipv4_checksum_ok(&h));
        let mut t = h;
        t[8] = 0x3f; // TTL decremented without updating the checksum
        assert!(!ipv4_checksum_ok(&t));
        assert!(!ipv4_checksum_ok(&h[..19]));
        assert!(ipv4_checksum_ok(&generated(7)[14..34]));
    }

    #[test]
    fn verifier_judges_each_field() {
        let mut v = Verifier::new(filter());
        for seq in 0..3 {
            v.check(&generated(seq));
        }
        v.check(&generated(1)); // duplicate
        let mut f = generated(10);
        f[22] = 64; // TTL not decremented, checksum fixed
        fix_checksum(&mut f);
        v.check(&f);
        let mut f = generated(11);
        f[22] = 62; // TTL changed, checksum stale
        v.check(&f);
        let mut f = generated(12);
        f[0] = 0xff; // wrong destination MAC
        v.check(&f);
        let mut f = generated(13);
        f[6] = 0x02; // wrong source MAC
        v.check(&f);
        let mut f = generated(14);
        f[55] ^= 1; // payload damaged
        v.check(&f);
        let mut other = generated(15);
        other[37] = 0x29; // another port: ignored
        v.check(&other);
        v.check(&generated(16)[..30]); // truncated: ignored, no panic
        v.check(&[]);
        let r = v.report();
        assert_eq!(r.frames, 9, "{r:?}");
        assert_eq!(r.good, 3, "{r:?}");
        assert_eq!((r.bad_ttl, r.bad_checksum), (2, 1), "{r:?}");
        assert_eq!((r.bad_dst_mac, r.bad_src_mac, r.bad_payload), (1, 1, 1), "{r:?}");
        assert_eq!((r.distinct, r.duplicates), (7, 1), "{r:?}");
        let first = r.first_bad.as_deref().unwrap();
        assert!(first.starts_with("duplicate of sequence number 1: 02000a000201"), "{first}");
    }

    #[test]
    fn frame_is_sixty_bytes_and_matches() {
        let f = frame();
        assert_eq!(f.len(), FRAME_LEN);
        assert_eq!(FRAME_LEN, 60);
        assert!(filter().matches(&f));
    }

    #[test]
    fn each_field_is_checked() {
        let mutations: [(&str, usize, u8); 8] = [
            ("dst mac", 0, 0x03),
            ("src mac", 11, 0x03),
            ("ethertype", 12, 0x86),
            ("ip version", 14, 0x65),
            ("ttl 64 (not forwarded)", 22, 64),
            ("protocol tcp", 23, 6),
            ("udp port 9001", 14 + 20 + 3, 0x29),
            ("fragment offset", 21, 1),
        ];
        for (what, at, value) in mutations {
            let mut f = frame();
            f[at] = value;
            assert!(!filter().matches(&f), "{what}: mutated frame still matched");
        }
        // The UDP source port is not part of the filter.
        let mut f = frame();
        f[14 + 20] = 0x77;
        assert!(filter().matches(&f));
    }

    #[test]
    fn ip_options_move_the_udp_header() {
        let mut f = frame();
        // IHL 6: four bytes of options (NOPs) before the UDP header.
        f[14] = 0x46;
        f.splice(34..34, [1, 1, 1, 1]);
        assert!(filter().matches(&f));
        f[14 + 24 + 3] = 0x29; // port 9001
        assert!(!filter().matches(&f));
    }

    #[test]
    fn short_and_malformed_frames_never_match_or_panic() {
        let f = frame();
        for len in 0..f.len() {
            let expect = len >= HEADERS_LEN; // the payload is not needed
            assert_eq!(filter().matches(&f[..len]), expect, "length {len}");
        }
        let mut bad_ihl = frame();
        bad_ihl[14] = 0x44; // IHL 4 (< 20 bytes)
        assert!(!filter().matches(&bad_ihl));
        let mut huge_ihl = frame();
        huge_ihl[14] = 0x4f; // 60-byte header, longer than the packet
        assert!(!filter().matches(&huge_ihl[..40]));
        assert!(!filter().matches(&[0xff; 3]));
    }

    #[test]
    fn bucket_math() {
        let ms = Duration::from_millis;
        assert_eq!(Buckets::count_for(ms(10), ms(1000)), 100);
        assert_eq!(Buckets::count_for(ms(10), ms(1001)), 101);
        assert_eq!(Buckets::count_for(ms(10), Duration::ZERO), 0);

        let mut b = Buckets::new(ms(10), Some(ms(50)));
        assert_eq!(b.counts(), [0; 5]);
        assert!(b.record(Duration::ZERO));
        assert!(b.record(Duration::from_micros(9_999)));
        assert!(b.record(ms(10)));
        assert!(b.record(Duration::from_micros(49_999)));
        assert!(!b.record(ms(50)), "the window's end is exclusive");
        assert!(!b.record(Duration::from_secs(3600)));
        assert_eq!(b.counts(), [2, 1, 0, 0, 1]);
        assert_eq!(b.total(), 4);
        b.finish(ms(25)); // stopped early: 3 buckets cover [0, 25 ms)
        assert_eq!(b.counts(), [2, 1, 0]);
        let mut full = Buckets::new(ms(10), Some(ms(50)));
        full.finish(ms(80)); // counted longer than the window: capped at the window
        assert_eq!(full.counts().len(), 5);

        let mut open = Buckets::new(ms(10), None);
        assert!(open.counts().is_empty());
        assert!(open.record(ms(35)));
        assert_eq!(open.counts(), [0, 0, 0, 1]);
        open.finish(ms(61));
        assert_eq!(open.counts(), [0, 0, 0, 1, 0, 0, 0]);

        assert_eq!(regroup(&[1, 2, 3, 4, 5], 2), [3, 7, 5]);
        assert_eq!(regroup(&[], 100), Vec::<u64>::new());
    }

    #[test]
    fn pacing() {
        assert_eq!(due_packets(Duration::ZERO, 1000), 1);
        assert_eq!(due_packets(Duration::from_micros(999), 1000), 1);
        assert_eq!(due_packets(Duration::from_millis(1), 1000), 2);
        assert_eq!(due_packets(Duration::from_secs(10), 1000), 10_001);
        assert_eq!(due_packets(Duration::from_millis(500), 3), 2);
        assert_eq!(
            due_packets(Duration::from_secs(u64::MAX), u64::MAX),
            u64::MAX
        );
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn gen_options_round_trip_and_errors() {
        let o = GenOptions::parse(&strings(&[
            "--src",
            "10.0.1.1:1234",
            "--dst",
            "10.0.2.1:9000",
            "--seconds",
            "10",
        ]))
        .unwrap();
        assert_eq!(o.src.to_string(), "10.0.1.1:1234");
        assert_eq!(o.duration, Duration::from_secs(10));
        assert_eq!(o.rate, None);
        assert_eq!(
            o.to_args().join(" "),
            "--src 10.0.1.1:1234 --dst 10.0.2.1:9000 --seconds 10"
        );
        let paced = GenOptions {
            rate: Some(20_000),
            duration: Duration::from_millis(2500),
            ..o.clone()
        };
        assert_eq!(GenOptions::parse(&paced.to_args()).unwrap(), paced);
        let zero = GenOptions::parse(&strings(&[
            "--src",
            "10.0.1.1:1",
            "--dst",
            "10.0.2.1:2",
            "--seconds",
            "1",
            "--rate",
            "0",
        ]))
        .unwrap();
        assert_eq!(zero.rate, None, "rate 0 is saturation");
        for bad in [
            &["--src", "10.0.1.1:1234"][..],
            &[
                "--src",
                "10.0.1.1",
                "--dst",
                "10.0.2.1:9000",
                "--seconds",
                "1",
            ],
            &[
                "--src",
                "10.0.1.1:1",
                "--dst",
                "10.0.2.1:9000",
                "--seconds",
                "-1",
            ],
            &[
                "--src",
                "10.0.1.1:1",
                "--dst",
                "10.0.2.1:9000",
                "--seconds",
                "1",
                "--seconds",
                "2",
            ],
            &[
                "--src",
                "10.0.1.1:1",
                "--dst",
                "10.0.2.1:9000",
                "--seconds",
                "1",
                "--speed",
                "2",
            ],
            &["--src", "10.0.1.1:1", "--dst", "10.0.2.1:9000", "--seconds"],
        ] {
            assert!(GenOptions::parse(&strings(bad)).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn count_options_round_trip_and_errors() {
        let o = CountOptions::parse(&strings(&[
            "--dst-mac",
            "02:00:0a:00:02:01",
            "--src-mac",
            "52:54:00:0a:02:02",
            "--ttl",
            "63",
            "--port",
            "9000",
            "--seconds",
            "10",
            "--iface",
            "tapB",
        ]))
        .unwrap();
        assert_eq!(o.filter, filter());
        assert_eq!(o.duration, Some(Duration::from_secs(10)));
        assert_eq!(o.bucket, DEFAULT_BUCKET);
        assert_eq!(o.iface.as_deref(), Some("tapB"));
        assert_eq!(CountOptions::parse(&o.to_args()).unwrap(), o);
        assert!(!o.verify);
        let open = CountOptions {
            duration: None,
            iface: None,
            bucket: Duration::from_millis(1),
            verify: true,
            ..o.clone()
        };
        assert!(open.to_args().join(" ").ends_with("--verify on"));
        assert_eq!(CountOptions::parse(&open.to_args()).unwrap(), open);
        let mut bad = open.to_args();
        *bad.last_mut().unwrap() = "yes".into();
        assert!(CountOptions::parse(&bad).is_err(), "--verify yes accepted");
        let mut bad = o.to_args();
        let i = bad.iter().position(|a| a == "--ttl").unwrap();
        bad[i + 1] = "300".into();
        assert!(CountOptions::parse(&bad).is_err(), "TTL 300 accepted");
        let mut bad = o.to_args();
        let i = bad.iter().position(|a| a == "--bucket-ms").unwrap();
        bad[i + 1] = "0".into();
        assert!(CountOptions::parse(&bad).is_err(), "zero bucket accepted");
    }

    #[test]
    fn reports_round_trip() {
        let g = GenReport {
            sent: 123_456,
            errors: 7,
            seconds: 10.5,
            rate: None,
        };
        let line = g.to_json();
        assert!(line.contains("\"rate_pps\":null"), "{line}");
        assert!(line.contains("\"frame_bytes\":60"), "{line}");
        assert_eq!(
            GenReport::from_output(&format!("noise\n{line}\n")).unwrap(),
            g
        );
        assert!((g.pps() - 123_456.0 / 10.5).abs() < 1e-9);
        let paced = GenReport {
            rate: Some(5000),
            ..g
        };
        assert_eq!(GenReport::from_output(&paced.to_json()).unwrap(), paced);

        let mut b = Buckets::new(Duration::from_millis(10), Some(Duration::from_millis(30)));
        for ms in [0, 5, 12, 29] {
            b.record(Duration::from_millis(ms));
        }
        let c = CountReport::from_buckets(&b, 0.03);
        assert_eq!(
            serde_json::from_str::<Value>(&c.to_json()).unwrap(),
            json!({"bucket_ms": 10, "buckets": [2, 1, 1], "total": 4, "seconds": 0.03})
        );
        assert!(!c.to_json().contains('\n'), "one line");
        assert_eq!(CountReport::from_output(&c.to_json()).unwrap(), c);
        assert!((c.pps() - 4.0 / 0.03).abs() < 1e-6);
        let mut v = Verifier::new(filter());
        v.check(&frame());
        let checked = CountReport {
            verify: Some(v.report().clone()),
            ..c.clone()
        };
        assert_eq!(CountReport::from_output(&checked.to_json()).unwrap(), checked);
        let lying = r#"{"bucket_ms":10,"buckets":[2,1],"total":4,"seconds":0.02}"#;
        assert!(CountReport::from_output(lying).is_err());
        assert!(CountReport::from_output("no json here").is_err());
        assert!(GenReport::from_output(r#"{"sent":-1,"errors":0,"seconds":1}"#).is_err());
    }
}
