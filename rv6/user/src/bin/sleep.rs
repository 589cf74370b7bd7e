//! `sleep N` (seconds) or `sleep Nms` (milliseconds).

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn parse(s: &str) -> Option<u64> {
    match s.strip_suffix("ms") {
        Some(ms) => ms.parse().ok(),
        None => s.strip_suffix('s').unwrap_or(s).parse::<u64>().ok()?.checked_mul(1000),
    }
}

fn main(args: Args) -> i32 {
    let Some(ms) = args.get(1).and_then(parse).filter(|_| args.len() == 2) else {
        eprintln!("usage: sleep N | Nms");
        return 1;
    };
    match ulib::sleep_ms(ms) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sleep: {}", e.as_str());
            1
        }
    }
}
