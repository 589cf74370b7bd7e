//! `t-pipereader [LIMIT]`: reads standard input to its end (or until `LIMIT` bytes),
//! checking `t-pipewriter`'s pattern (byte `i` is `i % 251`), and prints
//! `t-pipereader: N bytes, pattern ok` (or `pattern broken at I`). Status 0 if the
//! pattern held, 1 if not, 2 on a read error.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;
use ulib::{RRefVec, IO_MAX};

ulib::program!(main);

const PERIOD: u64 = 251;

fn main(args: Args) -> i32 {
    let limit = args.get(1).and_then(|s| s.parse::<u64>().ok()).unwrap_or(u64::MAX);
    let Some(mut buf) = RRefVec::<u8>::try_new_with(IO_MAX, |_| 0) else {
        eprintln!("t-pipereader: out of memory");
        return 2;
    };
    let mut total = 0u64;
    let mut broken: Option<u64> = None;
    while total < limit {
        let want = (limit - total).min(IO_MAX as u64) as usize;
        match ulib::read_rref(0, &mut buf, want) {
            Ok(0) => break,
            Ok(n) => {
                let n = n.min(want);
                if broken.is_none() {
                    broken = (0..n).find(|&i| buf[i] != ((total + i as u64) % PERIOD) as u8).map(|i| total + i as u64);
                }
                total += n as u64;
            }
            Err(e) => {
                println!("t-pipereader: {total} bytes, then {}", e.as_str());
                return 2;
            }
        }
    }
    match broken {
        None => {
            println!("t-pipereader: {total} bytes, pattern ok");
            0
        }
        Some(at) => {
            println!("t-pipereader: {total} bytes, pattern broken at {at}");
            1
        }
    }
}
