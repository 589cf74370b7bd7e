//! `frond-soak`: every workload at once on one Frond, under the kernel's fault injector
//! (`make soak`; see `frond_tests::soak` and docs/reliability.md, "Soak").
//!
//! Environment: `SOAK_SECS` (default 300), `SOAK_SEED` (42), `SOAK_FAULTS` (1500; the full
//! campaign is `SOAK_FAULTS=10000 SOAK_SECS=1700`, 6 faults/s, under 30 min), `SOAK_PPS` (1000).
//! Writes `target/soak/results.json`, `target/soak/soak.svg` and the serial log there;
//! prints the report; exits 0 if every pass criterion holds, 1 if one failed, 2 if the
//! soak could not run (e.g. not root).

use std::process::ExitCode;

use frond_tests::net::can_manage_netns;
use frond_tests::soak::{self, SoakOptions};

fn main() -> ExitCode {
    if !can_manage_netns() {
        eprintln!("frond-soak: needs root (it creates network namespaces and taps)");
        return ExitCode::from(2);
    }
    let o = match SoakOptions::from_env(300, 1500) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("frond-soak: {e}");
            return ExitCode::from(2);
        }
    };
    match o.inject() {
        Some(i) => eprintln!("frond-soak: {} s, seed {}, {} faults at {}/s from {} ms: {}", o.secs, o.seed, o.faults, i.rate, i.start_ms, i.cmdline()),
        None => eprintln!("frond-soak: {} s, seed {}, no faults requested", o.secs, o.seed),
    }
    match soak::run(&o) {
        Ok(r) => {
            println!("{r}");
            println!("frond-soak: wrote {}/results.json and soak.svg", o.out_dir.display());
            if r.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("frond-soak: {e}");
            ExitCode::from(2)
        }
    }
}
