//! `frond_tests`: the host-side harness that boots Frond in QEMU and judges the run.
//!
//! In-kernel tests are ordinary host `cargo test` tests (`tests/tests/*.rs`): each one
//! boots the kernel with a command line such as `test=boot` ([`run_ktest`], [`Boot`]),
//! waits for QEMU to exit, and asserts on the exit status and the serial output
//! ([`Outcome`]); interactive tests drive the serial console ([`Session::expect`],
//! [`Session::send`]). The `frond-qemu` binary runs the same QEMU command for humans.
//!
//! Dependencies: std and `nix` (signals/process groups) only; no `unsafe` code
//! (`forbid(unsafe_code)`). It reads build artifacts (`make build` produces them) but
//! never builds anything, and it depends on no other workspace crate: the kernel contract
//! is the command line, the serial text and the exit status, nothing else.
//!
//! Invariants:
//! * **No QEMU outlives a test.** QEMU runs in its own process group; a timeout, a
//!   dropped [`Session`] (including during a panic) and every normal exit end with
//!   SIGKILL to the whole group; a parent-death signal covers a killed test process.
//! * **Only exit 33 is a pass.** The guest passes by writing 0x10 to `isa-debug-exit`
//!   (QEMU status 33); 35 is a reported failure; everything else — 0 (triple fault
//!   under `-no-reboot`), other codes, signals, timeouts — is an error ([`Exit`]).
//! * **Every QEMU flag comes from one function**, [`QemuSpec::args`]; tests add devices
//!   only through [`Boot::qemu_args`] / `FROND_QEMU_ARGS`, appended after it.
//! * Every run logs its serial output to `target/qemu-logs/<test name>.log`. The log of
//!   a run the test expected (a pass, or an exit confirmed by [`Outcome::assert_exit`])
//!   is deleted when its [`Outcome`] is dropped, unless `FROND_KEEP_LOGS=1` or the test
//!   is panicking; every other log is kept and its path is in the failure message.
//!
//! Environment: `FROND_KERNEL`, `FROND_BOOT_MODULE`, `FROND_ACCEL`, `FROND_BIOS`,
//! `FROND_QEMU`, `FROND_QEMU_ARGS` (see [`qemu`]); `FROND_TEST_TIMEOUT` (seconds,
//! default 60); `FROND_KEEP_LOGS`.

#![forbid(unsafe_code)]

mod error;
mod exit;
pub mod qemu;
mod run;
pub mod serial;

pub use error::HarnessError;
pub use exit::Exit;
pub use qemu::{Accel, Artifacts, Firmware, QemuSpec, SerialMode};
pub use run::{
    default_timeout, keep_logs, log_dir, sanitize_log_name, Boot, Outcome, Session, DEFAULT_TIMEOUT,
};
pub use serial::Frame;

/// Boots the kernel with `test=NAME` and waits for it (deadline: [`default_timeout`]).
///
/// Panics only on harness errors (e.g. artifacts missing: run `make build`); the guest's
/// verdict is in the returned [`Outcome`].
#[track_caller]
pub fn run_ktest(name: &str) -> Outcome {
    Boot::new().cmdline(format!("test={name}")).run()
}
