//! `frond_tests`: the host-side harness that boots Frond in QEMU and judges the run.
//!
//! In-kernel tests are ordinary host `cargo test` tests (`tests/tests/*.rs`): each one
//! boots the kernel with a command line such as `test=boot` ([`run_ktest`], [`Boot`]),
//! waits for QEMU to exit, and asserts on the exit status and the serial output
//! ([`Outcome`]); interactive tests drive the serial console ([`Session::expect`],
//! [`Session::send`]). The `frond-qemu` binary runs the same QEMU command for humans.
//!
//! Networking ([`net`]): network namespaces, taps and tap-backed NICs; QEMU can run inside
//! a namespace ([`Boot::netns`]). [`pkt`] holds the pure parts of the packet tools
//! `frond-pktgen` / `frond-pktcount`, and [`fwdbench`] the forwarding benchmark that the
//! `frond-fwdbench` binary runs for Frond and for the Linux baseline guest
//! (`scripts/linux-guest.sh`; [`Boot::kernel`] boots another OS's kernel).
//!
//! Dependencies: std, `nix` (signals, process groups, setns, the counter's AF_PACKET
//! socket) and `serde_json` (the tools' reports); no `unsafe` code
//! (`forbid(unsafe_code)`). The library reads build artifacts (`make build` produces them)
//! but never builds anything, and it depends on no other workspace crate: the kernel
//! contract is the command line, the serial text and the exit status, nothing else.
//!
//! Invariants:
//! * **No QEMU outlives a test.** QEMU runs in its own process group; a timeout, a
//!   dropped [`Session`] (including during a panic) and every normal exit end with
//!   SIGKILL to the whole group; a parent-death signal covers a killed test process.
//!   QEMU in a network namespace is started as `ip netns exec NAME qemu ...`; `ip` execs
//!   QEMU, so the pid, group and parent-death signal are QEMU's all the same. Helper
//!   processes (the packet tools) are started through the same wrapper and killed with
//!   their group when their handle drops.
//! * **No namespace outlives its owner**, and test traffic never leaves namespaces the
//!   harness created ([`net::Netns`] deletes itself, killing what is left inside).
//! * **Only exit 33 is a pass.** The guest passes by writing 0x10 to `isa-debug-exit`
//!   (QEMU status 33); 35 is a reported failure; everything else — 0 (triple fault
//!   under `-no-reboot`), other codes, signals, timeouts — is an error ([`Exit`]).
//! * **Every QEMU flag comes from one function**, [`QemuSpec::args`]; tests add devices
//!   only through [`Boot::qemu_args`] / `FROND_QEMU_ARGS`, appended after it (NICs:
//!   [`net::TapNic::qemu_args`]). A namespace or another guest kernel changes how QEMU
//!   is started and what it boots, never its flags.
//! * Every run logs its serial output to `target/qemu-logs/<test name>.log`. The log of
//!   a run the test expected (a pass, or an exit confirmed by [`Outcome::assert_exit`])
//!   is deleted when its [`Outcome`] is dropped, unless `FROND_KEEP_LOGS=1` or the test
//!   is panicking; every other log is kept and its path is in the failure message.
//!
//! Environment: `FROND_KERNEL`, `FROND_BOOT_MODULE`, `FROND_ACCEL`, `FROND_BIOS`,
//! `FROND_QEMU`, `FROND_QEMU_ARGS` (see [`qemu`]); `FROND_TEST_TIMEOUT` (seconds,
//! default 60); `FROND_KEEP_LOGS`; `FROND_PKTGEN`, `FROND_PKTCOUNT` (the packet tools,
//! default: next to the running executable; see [`fwdbench::Tools`]).

#![forbid(unsafe_code)]

mod error;
mod exit;
pub mod fwdbench;
pub mod net;
pub mod pkt;
pub mod qemu;
mod run;
pub mod serial;
pub mod soak;

pub use error::HarnessError;
pub use exit::Exit;
pub use qemu::{Accel, Artifacts, Firmware, NicModel, QemuSpec, SerialMode};
pub use run::{
    default_timeout, keep_logs, log_dir, sanitize_log_name, Boot, Outcome, Session, DEFAULT_TIMEOUT,
};
pub use serial::Frame;

/// Announces that `test` did not test anything, on one `SKIPPED: <test>: <reason>` line.
///
/// Written straight to the process's stderr, not through `eprintln!`: libtest captures the
/// print macros of passing tests, and a skip must be seen even when the test "passes".
pub fn skipped(test: &str, reason: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {reason}");
}

/// Boots the kernel with `test=NAME` and waits for it (deadline: [`default_timeout`]).
///
/// Panics only on harness errors (e.g. artifacts missing: run `make build`); the guest's
/// verdict is in the returned [`Outcome`].
#[track_caller]
pub fn run_ktest(name: &str) -> Outcome {
    Boot::new().cmdline(format!("test={name}")).run()
}
