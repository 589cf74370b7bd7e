//! `t-soak SECONDS SEED [FIRST]`: rv6's workload of the soak (`make soak`).
//!
//! Loops for SECONDS (at least one round over every slot), iteration `i` counting from
//! FIRST (default 0):
//! * writes `/soak/f<i % 8>` (created or truncated) with `ulib::soak::file_len(SEED, i)` bytes of
//!   `content(SEED, i)` — the iteration number in the first 8 bytes, then a pseudo-random
//!   stream — closes it, syncs every fourth iteration, reads it back through a new
//!   descriptor and checks length and FNV-1a checksum;
//! * runs the pipeline `cat /soak/words | grep x | wc` through `sh -c` with its output on
//!   a pipe and checks the counts against the words file it wrote at start.
//!
//! One line per iteration: `t-soak: ok i=N slot=S len=L sum=HEX synced=0|1 t_ms=T`, or
//! `t-soak: FAIL i=N what=WHAT err=ERROR t_ms=T` (the loop goes on with the next
//! iteration). At the end it syncs and prints `t-soak: slot S i=N` for each slot written
//! (the last iteration in it, now durable) and `t-soak: done iterations=N failed=F next=I`.
//! The host side (`tests/src/soak.rs`) regenerates the contents from SEED and `i` (same
//! functions) to check the disk image after the run.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;
use ulib::{O_CREATE, O_RDONLY, O_TRUNC, O_WRONLY};

ulib::program!(main);

// The files' contents and checksum: shared with the host harness that checks the disk.
use ulib::soak::{file_content as content, fnv, SLOTS};

const WORDS_LINES: u32 = 120;

/// The words file: line `n` holds an x when `n % 3 == 0`; returns it and what
/// `grep x | wc` prints for it (lines, words, bytes).
fn words() -> (String, [usize; 3]) {
    let mut s = String::new();
    let mut want = [0usize; 3];
    for n in 0..WORDS_LINES {
        let line = if n % 3 == 0 { format!("line {n} xray tango\n") } else { format!("line {n} alpha\n") };
        if n % 3 == 0 {
            want[0] += 1;
            want[1] += 4;
            want[2] += line.len();
        }
        s.push_str(&line);
    }
    (s, want)
}

fn main(args: Args) -> i32 {
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let Some(seed) = args.get(2).and_then(|s| s.parse::<u64>().ok()) else {
        eprintln!("usage: t-soak SECONDS SEED [FIRST]");
        return 2;
    };
    let mut i: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let end = ulib::uptime_ms() + secs * 1000;
    match ulib::mkdir("/soak") {
        Ok(()) | Err(Errno::Exist) => {}
        Err(e) => println!("t-soak: FAIL i={i} what=mkdir err={} t_ms={}", e.as_str(), ulib::uptime_ms()),
    }
    let (text, want) = words();
    if let Err(e) = ulib::open("/soak/words", O_CREATE | O_TRUNC | O_WRONLY).and_then(|f| f.write_all(text.as_bytes())) {
        println!("t-soak: FAIL i={i} what=words err={} t_ms={}", e.as_str(), ulib::uptime_ms());
    }
    let mut last = [None::<u64>; SLOTS as usize];
    let (mut done, mut failed) = (0u64, 0u64);
    while ulib::uptime_ms() < end || done < SLOTS {
        match iteration(seed, i, &want) {
            Ok((slot, n, sum, synced)) => {
                last[slot as usize] = Some(i);
                println!("t-soak: ok i={i} slot={slot} len={n} sum={sum:016x} synced={} t_ms={}", synced as u8, ulib::uptime_ms());
            }
            Err((what, e)) => {
                // The file may hold part of this iteration: it is the slot's latest.
                last[(i % SLOTS) as usize] = None;
                failed += 1;
                println!("t-soak: FAIL i={i} what={what} err={e} t_ms={}", ulib::uptime_ms());
                let _ = ulib::sleep_ms(100);
            }
        }
        done += 1;
        i += 1;
    }
    if let Err(e) = ulib::sync() {
        println!("t-soak: FAIL i={i} what=sync err={} t_ms={}", e.as_str(), ulib::uptime_ms());
    }
    for (slot, l) in last.iter().enumerate() {
        if let Some(l) = l {
            println!("t-soak: slot {slot} i={l}");
        }
    }
    println!("t-soak: done iterations={done} failed={failed} next={i}");
    0
}

type Step<T> = Result<T, (&'static str, String)>;

fn at<T>(what: &'static str, r: Result<T, Errno>) -> Step<T> {
    r.map_err(|e| (what, e.as_str().to_string()))
}

fn iteration(seed: u64, i: u64, want: &[usize; 3]) -> Step<(u64, usize, u64, bool)> {
    let slot = i % SLOTS;
    let path = format!("/soak/f{slot}");
    let data = content(seed, i);
    let sum = fnv(&data);
    let f = at("open-w", ulib::open(&path, O_CREATE | O_TRUNC | O_WRONLY))?;
    at("write", f.write_all(&data))?;
    at("close-w", f.close())?;
    let synced = i % 4 == 3;
    if synced {
        at("sync", ulib::sync())?;
    }
    let f = at("open-r", ulib::open(&path, O_RDONLY))?;
    let mut back = vec![0u8; data.len() + 1];
    let n = at("read", f.read_full(&mut back))?;
    drop(f);
    if n != data.len() || fnv(&back[..n]) != sum {
        return Err(("verify", format!("read {n} bytes sum {:016x}, wrote {} sum {sum:016x}", fnv(&back[..n]), data.len())));
    }
    pipeline(want)?;
    Ok((slot, n, sum, synced))
}

fn pipeline(want: &[usize; 3]) -> Step<()> {
    let (r, w) = at("pipe", ulib::pipe())?;
    let fds = at("fdmap", FdMap::new(&[0, w.raw(), 2]))?;
    let pid = at("spawn", ulib::spawn("/bin/sh", &["sh", "-c", "cat /soak/words | grep x | wc"], fds))?;
    drop(w);
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match at("pipe-read", r.read(&mut buf))? {
            0 => break,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
    let st = at("wait", ulib::wait(pid))?;
    if st.status.kind != ulib::ExitKind::Exited || st.status.code != 0 {
        return Err(("pipeline", format!("sh ended {:?}", st.status)));
    }
    let text = String::from_utf8_lossy(&out);
    let got: Vec<usize> = text.split_whitespace().take(3).filter_map(|x| x.parse().ok()).collect();
    if got.as_slice() != want.as_slice() {
        return Err(("pipeline", format!("wc printed {:?}, expected {want:?}", text.trim())));
    }
    Ok(())
}
