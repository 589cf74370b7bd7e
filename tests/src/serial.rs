//! Pure parsers for what the kernel prints on the serial port.
//!
//! Formats (the kernel's side of the contract):
//! * `ktest-metric <key>=<value>`: a measured figure, `value` a decimal integer.
//! * `ktest-list: name1 name2 ...`: the answer to `test=list`.
//! * backtrace frames: `  #0  0x0000000000101234 frond_kernel::ktest::page_fault+0x1c`
//!   (an unresolved address has `?` or `??` instead of the symbol).
//! * register dumps: `RIP=0x...`, `CR2=0x...` anywhere in a line.
//! * micro-benchmarks (`bench=NAME|all`): `kbench-info tsc_hz=H`, then one
//!   `kbench name=NAME iters=N tsc=T` per benchmark, then `kbench: done`.
//! * the console's `Frond console ready in N ms.` line.
//!
//! Lines may end in `\r\n`; every parser here tolerates that.

use std::collections::BTreeMap;

/// How many trailing lines of serial output failure messages show.
pub const TAIL_LINES: usize = 60;

/// The prefix of a metric line.
pub const METRIC_PREFIX: &str = "ktest-metric ";
/// The prefix of the `test=list` answer.
pub const LIST_PREFIX: &str = "ktest-list:";

/// The last `n` lines of `text` (all of it if shorter), with `\r` removed.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[... {start} earlier lines ...]\n"));
    }
    for line in &lines[start..] {
        out.push_str(line.trim_end_matches('\r'));
        out.push('\n');
    }
    out
}

/// All `ktest-metric key=value` pairs in `text` (a later value for a key wins).
///
/// A line may carry several `key=value` tokens. Tokens whose value is not a decimal
/// integer are reported in the error rather than silently dropped.
pub fn parse_metrics(text: &str) -> Result<BTreeMap<String, i64>, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let Some(rest) = line.strip_prefix(METRIC_PREFIX) else {
            continue;
        };
        for token in rest.split_whitespace() {
            let (key, value) = token
                .split_once('=')
                .ok_or_else(|| format!("malformed metric token {token:?} in line {line:?}"))?;
            let value: i64 = value.parse().map_err(|_| {
                format!("metric {key:?} has non-integer value {value:?} in line {line:?}")
            })?;
            if key.is_empty() {
                return Err(format!("metric with empty key in line {line:?}"));
            }
            map.insert(key.to_string(), value);
        }
    }
    Ok(map)
}

/// The test names in the first `ktest-list:` line, or `None` if there is none.
pub fn parse_ktest_list(text: &str) -> Option<Vec<String>> {
    text.lines().find_map(|line| {
        let line = line.trim_end_matches('\r');
        line.strip_prefix(LIST_PREFIX)
            .map(|rest| rest.split_whitespace().map(str::to_string).collect())
    })
}

/// One frame of a kernel backtrace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The `#n` index.
    pub index: u32,
    /// The return (or faulting) address.
    pub addr: u64,
    /// The demangled symbol, if the kernel could resolve it (`?`/`??` means no).
    pub symbol: Option<String>,
    /// Offset of `addr` into `symbol`.
    pub offset: Option<u64>,
}

fn parse_hex(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u64::from_str_radix(digits, 16).ok()
}

/// Parses one backtrace line (`  #0 0x0000000000101234 sym::path+0x1c`), or `None`.
pub fn parse_frame(line: &str) -> Option<Frame> {
    let line = line.trim();
    let mut words = line.split_whitespace();
    let index = words.next()?.strip_prefix('#')?.parse().ok()?;
    let addr = parse_hex(words.next()?)?;
    let (symbol, offset) = match words.next() {
        None => (None, None),
        Some(sym) if sym.chars().all(|c| c == '?') => (None, None),
        Some(sym) => match sym.rsplit_once("+0x") {
            Some((name, off)) => match u64::from_str_radix(off, 16) {
                Ok(off) => (Some(name.to_string()), Some(off)),
                Err(_) => (Some(sym.to_string()), None),
            },
            None => (Some(sym.to_string()), None),
        },
    };
    Some(Frame {
        index,
        addr,
        symbol,
        offset,
    })
}

/// The frames of the first backtrace in `text`: the `#n` lines among the indented lines
/// after a line containing `backtrace:` (other indented lines, such as
/// `... the same frame 55 more times`, are skipped; the first unindented or empty line
/// ends the backtrace).
pub fn parse_backtrace(text: &str) -> Vec<Frame> {
    let mut lines = text.lines().skip_while(|l| !l.contains("backtrace:"));
    if lines.next().is_none() {
        return Vec::new();
    }
    lines
        .map(|l| l.trim_end_matches('\r'))
        .take_while(|l| l.starts_with([' ', '\t']) && !l.trim().is_empty())
        .filter_map(parse_frame)
        .collect()
}

/// The value of register `name` in the first `NAME=0x...` occurrence in `text`
/// (e.g. `register(text, "CR2")`).
pub fn register(text: &str, name: &str) -> Option<u64> {
    let needle = format!("{name}=");
    for line in text.lines() {
        let mut rest = line;
        while let Some(pos) = rest.find(&needle) {
            let preceded_by_word = rest[..pos]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let value = &rest[pos + needle.len()..];
            let end = value
                .find(|c: char| !(c.is_ascii_hexdigit() || c == 'x' || c == 'X'))
                .unwrap_or(value.len());
            if !preceded_by_word {
                if let Some(v) = parse_hex(&value[..end]) {
                    return Some(v);
                }
            }
            rest = &rest[pos + needle.len()..];
        }
    }
    None
}

/// The prefix of a micro-benchmark result line.
pub const KBENCH_PREFIX: &str = "kbench ";
/// The prefix of the micro-benchmark info line.
pub const KBENCH_INFO_PREFIX: &str = "kbench-info ";
/// The line that ends a micro-benchmark run.
pub const KBENCH_DONE: &str = "kbench: done";

/// One `kbench name=NAME iters=N tsc=T` line: `tsc` TSC ticks for `iters` operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbenchResult {
    pub name: String,
    pub iters: u64,
    pub tsc: u64,
}

/// Everything a `bench=...` run printed about its benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kbench {
    /// From `kbench-info tsc_hz=H`, if printed.
    pub tsc_hz: Option<u64>,
    /// The results, in the order the kernel printed them.
    pub results: Vec<KbenchResult>,
    /// Whether `kbench: done` was printed (the run completed).
    pub done: bool,
}

/// `key=value` tokens of `rest` as (key, u64); errors name the offending line.
fn kv_u64<'a>(rest: &'a str, line: &str) -> Result<Vec<(&'a str, u64)>, String> {
    rest.split_whitespace()
        .map(|token| {
            let (key, value) = token
                .split_once('=')
                .ok_or_else(|| format!("malformed token {token:?} in line {line:?}"))?;
            let value = if key == "name" {
                0
            } else {
                value.parse().map_err(|_| {
                    format!("{key:?} has non-integer value {value:?} in line {line:?}")
                })?
            };
            Ok((key, value))
        })
        .collect()
}

/// Parses the `kbench` lines of `text` (lines must start with the prefixes; `\r` is
/// tolerated). A result line lacking `name`, `iters` or `tsc`, with a non-integer
/// figure, or with `iters=0`, is an error rather than silently dropped.
pub fn parse_kbench(text: &str) -> Result<Kbench, String> {
    let mut out = Kbench::default();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line == KBENCH_DONE {
            out.done = true;
        } else if let Some(rest) = line.strip_prefix(KBENCH_INFO_PREFIX) {
            for (key, value) in kv_u64(rest, line)? {
                if key == "tsc_hz" {
                    out.tsc_hz = Some(value);
                }
            }
        } else if let Some(rest) = line.strip_prefix(KBENCH_PREFIX) {
            let name = rest
                .split_whitespace()
                .find_map(|t| t.strip_prefix("name="))
                .filter(|n| !n.is_empty())
                .ok_or_else(|| format!("kbench line without name: {line:?}"))?;
            let fields = kv_u64(rest, line)?;
            let get = |k: &str| {
                fields
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| format!("kbench line without {k}=: {line:?}"))
            };
            let (iters, tsc) = (get("iters")?, get("tsc")?);
            if iters == 0 {
                return Err(format!("kbench line with iters=0: {line:?}"));
            }
            out.results.push(KbenchResult {
                name: name.to_string(),
                iters,
                tsc,
            });
        }
    }
    Ok(out)
}

/// N from the console's `Frond console ready in N ms.` line (the guest's own boot time).
pub fn parse_console_ready_ms(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.split_once("console ready in ")?.1;
        rest.strip_suffix('\r')
            .unwrap_or(rest)
            .split_once(" ms")?
            .0
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_parse() {
        let text = "boot\r\nktest-metric a=120\r\nktest-metric b=98\nnoise ktest-metric c=1\nktest-metric min_late_us=-3 max_late_us=4000\n";
        let m = parse_metrics(text).unwrap();
        assert_eq!(m["a"], 120);
        assert_eq!(m["b"], 98);
        assert_eq!(m["min_late_us"], -3);
        assert_eq!(m["max_late_us"], 4000);
        assert!(!m.contains_key("c"), "prefix must start the line");
    }

    #[test]
    fn metrics_later_value_wins() {
        let m = parse_metrics("ktest-metric x=1\nktest-metric x=2\n").unwrap();
        assert_eq!(m["x"], 2);
    }

    #[test]
    fn metrics_reject_garbage() {
        assert!(parse_metrics("ktest-metric x=1.5\n").is_err());
        assert!(parse_metrics("ktest-metric x\n").is_err());
        assert!(parse_metrics("ktest-metric =3\n").is_err());
        assert!(parse_metrics("no metrics here\n").unwrap().is_empty());
    }

    #[test]
    fn ktest_list_parse() {
        let text = "Frond\r\nktest-list: boot page_fault  preempt\r\n";
        assert_eq!(
            parse_ktest_list(text).unwrap(),
            ["boot", "page_fault", "preempt"]
        );
        assert_eq!(
            parse_ktest_list("ktest-list:\n").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(parse_ktest_list("nothing\n"), None);
    }

    #[test]
    fn backtrace_parse() {
        let text = "\
EXCEPTION: Page fault (#PF) error=0x2\r
RIP=0x0000000000101234 CR2=0x00000000dead0000\r
backtrace:\r
  #0  0x0000000000101234 frond_kernel::ktest::page_fault+0x1c\r
  #1  0x0000000000102000 frond_kernel::ktest::run+0x40\r
  #2  0x0000000000103000 ?\r
      ... the same frame 55 more times\r
  #3 0x0000000000104000 weird_symbol\r
  (frame pointer 0x8 not mapped; stopping)\r
ktest page_fault: FAIL\r
  #9 0x1 not_part_of_backtrace\r
";
        let frames = parse_backtrace(text);
        assert_eq!(frames.len(), 4);
        assert_eq!(
            frames[0],
            Frame {
                index: 0,
                addr: 0x101234,
                symbol: Some("frond_kernel::ktest::page_fault".into()),
                offset: Some(0x1c),
            }
        );
        assert_eq!(frames[2].symbol, None);
        assert_eq!(parse_frame("  #12 0x10 ??").unwrap().symbol, None);
        assert_eq!(frames[3].symbol.as_deref(), Some("weird_symbol"));
        assert_eq!(frames[3].offset, None);
        assert!(parse_backtrace("no trace\n").is_empty());
    }

    #[test]
    fn registers_parse() {
        let text = "xRIP=0x5 RIP=0x0000000000101234 CR2=0x00000000dead0000\n";
        assert_eq!(register(text, "RIP"), Some(0x101234));
        assert_eq!(register(text, "CR2"), Some(0xdead0000));
        assert_eq!(register(text, "CR3"), None);
    }

    #[test]
    fn kbench_parse() {
        let text = "\
Frond 0.1.0\r
kbench-info tsc_hz=2517819400\r
kbench name=yield_switch iters=20000 tsc=68430736\r
noise kbench name=ignored iters=1 tsc=1\r
kbench name=thread_spawn_join iters=500 tsc=109468140\r
kbench: done\r
";
        let k = parse_kbench(text).unwrap();
        assert_eq!(k.tsc_hz, Some(2_517_819_400));
        assert!(k.done);
        assert_eq!(
            k.results,
            [
                KbenchResult {
                    name: "yield_switch".into(),
                    iters: 20_000,
                    tsc: 68_430_736
                },
                KbenchResult {
                    name: "thread_spawn_join".into(),
                    iters: 500,
                    tsc: 109_468_140
                },
            ]
        );
        // A run cut short: no `done`, no info line.
        let k = parse_kbench("kbench name=a iters=1 tsc=2\n").unwrap();
        assert_eq!((k.tsc_hz, k.done, k.results.len()), (None, false, 1));
        assert_eq!(parse_kbench("nothing\n").unwrap(), Kbench::default());
        // `kbench: unknown benchmark ...` is not a result line.
        assert!(
            parse_kbench("kbench: unknown benchmark 'x' (have: all a)\n")
                .unwrap()
                .results
                .is_empty()
        );
    }

    #[test]
    fn kbench_rejects_garbage() {
        for bad in [
            "kbench name=a iters=x tsc=1",
            "kbench name=a iters=1",
            "kbench iters=1 tsc=1",
            "kbench name= iters=1 tsc=1",
            "kbench name=a iters=0 tsc=1",
            "kbench name=a iters=1 tsc=-5",
            "kbench name=a iters=1 tsc",
            "kbench-info tsc_hz=fast",
        ] {
            assert!(parse_kbench(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn console_ready_parse() {
        let text = "memory: ...\r\nFrond console ready in 47 ms. Type 'help'.\r\nfrond> ";
        assert_eq!(parse_console_ready_ms(text), Some(47));
        assert_eq!(
            parse_console_ready_ms("Frond console ready in 3 ms.\n"),
            Some(3)
        );
        assert_eq!(parse_console_ready_ms("console ready in soon ms\n"), None);
        assert_eq!(parse_console_ready_ms("frond> "), None);
    }

    #[test]
    fn tail_keeps_last_lines() {
        let text: String = (0..100).map(|i| format!("line {i}\r\n")).collect();
        let t = tail(&text, 3);
        assert_eq!(t, "[... 97 earlier lines ...]\nline 97\nline 98\nline 99\n");
        assert_eq!(tail("a\nb\n", 60), "a\nb\n");
    }
}
