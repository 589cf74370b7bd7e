//! `t-forkbomb [CHILD_MS]`: spawns itself in a loop until the system refuses
//! (`Again`: the process table or the domain slots are full; `NoMem` counts too), then
//! reports, reaps its children and exits 0 — or 1 if the system never refused.
//!
//! Each child (`t-forkbomb --child MS`) sleeps `CHILD_MS` (default 5000) and exits, so
//! the children are all alive when the table fills. Output:
//! `t-forkbomb: spawned N, refused M (Again A, NoMem B)`.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

/// Refusals before stopping.
const REFUSALS: u32 = 4;
/// Spawns at most (a system that never refuses is reported).
const MAX_SPAWNS: u32 = 256;

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    if argv.get(1) == Some(&"--child") {
        let ms = argv.get(2).and_then(|s| s.parse().ok()).unwrap_or(5000);
        let _ = ulib::sleep_ms(ms);
        return 0;
    }
    let ms = argv.get(1).and_then(|s| s.parse::<u64>().ok()).unwrap_or(5000);
    let ms_arg = format!("{ms}");
    let (mut spawned, mut again, mut nomem, mut other) = (0u32, 0u32, 0u32, 0u32);
    while again + nomem < REFUSALS && spawned < MAX_SPAWNS && other < REFUSALS {
        match ulib::spawn("/bin/t-forkbomb", &["t-forkbomb", "--child", ms_arg.as_str()], FdMap::stdio()) {
            Ok(_) => spawned += 1,
            Err(Errno::Again) => again += 1,
            Err(Errno::NoMem) => nomem += 1,
            Err(e) => {
                eprintln!("t-forkbomb: spawn: {}", e.as_str());
                other += 1;
            }
        }
    }
    println!("t-forkbomb: spawned {spawned}, refused {} (Again {again}, NoMem {nomem})", again + nomem);
    let mut reaped = 0;
    while ulib::wait(-1).is_ok() {
        reaped += 1;
    }
    println!("t-forkbomb: reaped {reaped}");
    if again + nomem == 0 {
        eprintln!("t-forkbomb: the system never refused a spawn");
        return 1;
    }
    0
}
