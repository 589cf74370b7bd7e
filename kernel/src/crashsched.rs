//! A crash schedule: `NAME@MS[,NAME@MS…]` kills domain NAME MS milliseconds after the
//! schedule starts. The network (`crash=`) and storage (`fs.crash=`) start one each when
//! they come up, so any harness can crash a domain at a chosen moment under load.

use crate::domain;
use crate::sched;
use crate::println;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

pub fn parse(s: &str) -> Result<Vec<(String, u64)>, String> {
    s.split(',')
        .map(|item| {
            let (name, ms) = item.split_once('@').ok_or_else(|| format!("`{item}`: expected NAME@MS"))?;
            let ms = ms.parse().map_err(|_| format!("`{item}`: MS must be a number"))?;
            Ok((name.to_string(), ms))
        })
        .collect()
}

/// Starts a High-priority thread that works through `crashes` (from [`parse`]).
pub fn start(crashes: Vec<(String, u64)>) -> Result<(), String> {
    if crashes.is_empty() {
        return Ok(());
    }
    let t0 = crate::time::uptime_us() / 1000;
    sched::Builder::new("crash-schedule")
        .priority(sched::Priority::High)
        .spawn(move || {
            for (name, at) in crashes {
                let now = crate::time::uptime_us() / 1000 - t0;
                if at > now {
                    sched::sleep_ms(at - now);
                }
                let t = crate::time::uptime_us();
                match domain::lookup(&name).ok_or_else(|| "no such domain".to_string()).and_then(domain::kill) {
                    Ok(_) => println!("crash: killed `{name}` at {} ms (uptime {} us)", at, t),
                    Err(e) => println!("crash: `{name}`: {e}"),
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("spawning the crash schedule: {e:?}"))
}
