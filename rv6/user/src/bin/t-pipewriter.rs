//! `t-pipewriter [CHUNK]`: writes the test pattern (byte `i` of the stream is
//! `i % 251`) to standard output forever in writes of `CHUNK` bytes (default 4096),
//! until a write fails; then prints `t-pipewriter: wrote N bytes: ERROR` on standard
//! error and exits 0 if the error is `Pipe` (the reader went away), else 1.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;
use ulib::{RRefVec, IO_MAX};

ulib::program!(main);

/// The pattern's period: prime, so it never lines up with a power-of-two chunk.
const PERIOD: u64 = 251;

fn main(args: Args) -> i32 {
    let chunk = args.get(1).and_then(|s| s.parse::<usize>().ok()).unwrap_or(4096).clamp(1, IO_MAX);
    let Some(mut buf) = RRefVec::<u8>::try_new_with(chunk, |_| 0) else {
        eprintln!("t-pipewriter: out of memory");
        return 1;
    };
    let mut total = 0u64;
    loop {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = ((total + i as u64) % PERIOD) as u8;
        }
        match ulib::write_rref(1, &buf, chunk) {
            Ok(n) if n > 0 => total += n.min(chunk) as u64,
            Ok(_) => {
                eprintln!("t-pipewriter: wrote {total} bytes: a write moved nothing");
                return 1;
            }
            Err(e) => {
                eprintln!("t-pipewriter: wrote {total} bytes: {}", e.as_str());
                return i32::from(e != Errno::Pipe);
            }
        }
    }
}
