//! `grep PATTERN [FILE...]`: prints the lines of the files (or standard input) that
//! `PATTERN` matches (xv6's expressions: `^ $ . *`, see `ulib::pattern`). Status 0 if a
//! line matched, 1 if none did, 2 on an error.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::pattern::matches;
use ulib::prelude::*;
use ulib::O_RDONLY;

ulib::program!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    if argv.len() < 2 {
        eprintln!("usage: grep PATTERN [FILE...]");
        return 2;
    }
    let re = argv[1].as_bytes();
    let mut found = false;
    if argv.len() == 2 {
        return match grep(re, 0, "stdin", &mut found) {
            Err(()) => 2,
            Ok(()) => i32::from(!found),
        };
    }
    for name in &argv[2..] {
        let fd = match ulib::open(name, O_RDONLY) {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("grep: cannot open {name}: {}", e.as_str());
                return 2;
            }
        };
        if grep(re, fd.raw(), name, &mut found).is_err() {
            return 2;
        }
    }
    i32::from(!found)
}

fn grep(re: &[u8], fd: i32, name: &str, found: &mut bool) -> Result<(), ()> {
    let mut buf = vec![0u8; 8192];
    // Bytes read but not yet split into lines.
    let mut pending: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    loop {
        let n = match ulib::read(fd, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("grep: read error on {name}: {}", e.as_str());
                return Err(());
            }
        };
        if n == 0 {
            if !pending.is_empty() {
                emit(re, &pending, &mut out, found);
            }
            flush(&mut out)?;
            return Ok(());
        }
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(i) = pending[start..].iter().position(|&c| c == b'\n') {
            emit(re, &pending[start..start + i], &mut out, found);
            start += i + 1;
        }
        pending.drain(..start);
        // One write per read at most (and none without a match).
        flush(&mut out)?;
    }
}

fn emit(re: &[u8], line: &[u8], out: &mut Vec<u8>, found: &mut bool) {
    if matches(re, line) {
        *found = true;
        out.extend_from_slice(line);
        out.push(b'\n');
    }
}

/// Writes what `out` gathered.
fn flush(out: &mut Vec<u8>) -> Result<(), ()> {
    if !out.is_empty() {
        if let Err(e) = ulib::write_all(1, out) {
            eprintln!("grep: write error: {}", e.as_str());
            return Err(());
        }
        out.clear();
    }
    Ok(())
}
