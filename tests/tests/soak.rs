//! The short soak of `make test`: one Frond running every workload at once (forwarding,
//! ping, HTTP, TCP echo, rv6 files and pipelines) for about a minute under a few dozen
//! injected faults, judged by the full soak's pass criteria (`frond_tests::soak`,
//! docs/reliability.md, "Soak"). `make soak` is the long one.
//!
//! Needs root (namespaces and taps); otherwise prints `SKIPPED: …`. Until the kernel has
//! the fault injector the soak runs without faults and says so on stderr.

use frond_tests::net::can_manage_netns;
use frond_tests::soak::{self, SoakOptions};
use frond_tests::skipped;

/// Seconds of workload and faults injected (1 per second from 30 s after boot).
const SECS: u64 = 60;
const FAULTS: u64 = 30;

#[test]
fn short_soak_every_workload_under_faults() {
    if !can_manage_netns() {
        skipped("short_soak_every_workload_under_faults", "needs root (network namespaces and taps)");
        return;
    }
    let mut o = SoakOptions::from_env(SECS, FAULTS).expect("soak options (run `make build` and `cargo build -p frond-tests --bins -p frond-mkfs`)");
    // Short whatever `make soak`'s variables say (the seed may still be chosen).
    o.secs = SECS;
    o.faults = FAULTS;
    // Every kind but `hang`. A hung NIC driver is now ended within its runnable-time
    // bound (`wall`, 3 s), but a hung `rv6` or `fs` call spins at Normal priority on the
    // guest's one CPU until its 10 s CPU budget runs out (it gets the CPU, so the CPU
    // bound comes first), and for those 10 s the forwarder's Low-priority thread gets
    // none: forwarding stops 12-13 s with its own domains up, past its 10 s bound (seed
    // 42, with hangs: two such stalls, each ending when the watchdog ended an rv6 or
    // `fs` hang). `make soak` injects hangs too; docs/reliability.md, "Soak".
    o.kinds = ["kill", "panic", "netdev", "blkdev"].map(String::from).to_vec();
    // Its own report directory and log name, so a `make soak` run is not overwritten.
    o.out_dir = o.out_dir.join("short");
    o.name = "soak-short".into();
    let r = soak::run(&o).unwrap_or_else(|e| panic!("the soak could not run: {e}"));
    eprintln!("{r}");
    assert!(r.passed(), "soak failed ({} in {}):\n{}", r.failures.join("; "), o.out_dir.display(), r);
}
