//! # frond-ulib — the rv6 user library
//!
//! Every rv6 user program (`rv6/user`) is a domain of kind
//! [`ProgramKind`](frond_interface::rv6::ProgramKind) built on this crate:
//!
//! * [`program!`]: the entry. A program crate writes `ulib::program!(main);` with
//!   `fn main(args: ulib::Args) -> i32`; the domain's init keeps the rv6 core's handle and
//!   the pid, and the core's call of `Program::main(argv)` runs `main`.
//! * [`sys`]: one function per system call with Rust types (`&str` paths, owned [`Fd`]s
//!   that close on drop, `Result<_, Errno>`), plus [`read_dir`], [`stat`], [`ps`] built
//!   on them. Byte-slice reads and writes copy through **one per-process staging buffer**
//!   of [`STAGE_BYTES`] (64 KiB) on the shared heap, so a call moves at most that much;
//!   [`read_rref`]/[`write_rref`] lend the caller's own `RRefVec` instead (no copy in the
//!   program).
//! * [`io`]: `print!`/`println!`/`eprint!`/`eprintln!`/`fprint!`/`fprintln!` (each call is
//!   formatted into a small stack buffer and written with as few `write`s as fit — no
//!   allocation, no call per byte) and [`LineReader`]/[`read_line`].
//! * [`shell`]: the shell's tokenizer and parser (pure, host-tested).
//! * [`durable`]: the kill-mid-write workload of `t-durable` and its check (pure, host-tested).
//! * [`pattern`]: grep's matcher (xv6's `^ $ . *`; pure, host-tested).
//!
//! **The rv6 core's failure is fatal.** A system call returns `RpcResult<SysResult<T>>`:
//! the `SysResult` is the call's answer, an `RpcError` means the core itself died (or
//! refused the call). Every wrapper here turns an `RpcError` into a panic with the
//! message `ulib: the rv6 core failed during SYSCALL: ...`: the program is ended (its
//! domain is unwound) — there is nothing left to talk to.
//!
//! May depend on: `frond-interface` (the rv6 contract), `frond-domrt` (the entry and the
//! sleeping mutex), `rref`, `spin`, `alloc`. No `std` outside host tests,
//! `#![forbid(unsafe_code)]`.
//!
//! Invariants: the handle is set once, by [`program!`]'s init, before `main` runs; no
//! system call is made before it (a call before it panics). Paths longer than
//! [`PATH_MAX`] are refused here with `NameTooLong` without a call. The staging buffer is
//! locked for the whole of the call it is lent to (programs are single-threaded; a second
//! thread would wait).

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod io;
pub mod durable;
pub mod pattern;
pub mod shell;
pub mod soak;
pub mod sys;

mod args;
mod rt;

pub use args::Args;
pub use io::{read_line, LineReader};
pub use sys::*;

pub use frond_interface::fs::{Path, IO_MAX, NAME_MAX, PATH_MAX};
pub use frond_interface::rv6::{
    Argv, Errno, ExitKind, ExitStatus, FStat, FdMap, FileKind, ProcRow, ProcState, SysResult, Waited, Whence, ARGS_MAX,
    ARGV_BYTES, CONSOLE_MAJOR, FDMAP_MAX, NOFILE, O_ALL, O_APPEND, O_CREATE, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY,
};
pub use frond_interface::RRefVec;

/// What most programs want in scope: the allocation types and macros, the library's
/// types and printing macros.
pub mod prelude {
    pub use crate::{eprint, eprintln, fprint, fprintln, print, println};
    pub use crate::{Args, Errno, FStat, FdMap, FileKind, Fd, Whence};
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec::Vec;
    pub use alloc::{format, vec};
}

/// Re-exports for [`program!`]'s expansion only.
#[doc(hidden)]
pub mod __private {
    pub use crate::rt::start;
    pub use frond_domrt::{entry, DomainKind, Syscalls};
    pub use frond_interface::rv6::{Program, ProgramKind};
    pub use frond_interface::Remote;
}

/// Makes the crate an rv6 program whose `main` is `$main`
/// (`fn main(args: ulib::Args) -> i32`, the result being the exit code).
///
/// Expands to `frond_domrt::entry!` for [`ProgramKind`](frond_interface::rv6::ProgramKind)
/// (global allocator, panic handler, ABI record, `_start`), so the program crate must be
/// `#![no_std] #![no_main]` and have `rref` among its dependencies (the entry's signature
/// names it). Invoke it once per binary.
#[macro_export]
macro_rules! program {
    ($main:path) => {
        $crate::__private::entry!($crate::__private::ProgramKind, __ulib_program_init);

        fn __ulib_program_init(
            _sys: &'static dyn $crate::__private::Syscalls,
            args: <$crate::__private::ProgramKind as $crate::__private::DomainKind>::Args,
        ) -> $crate::__private::Remote<dyn $crate::__private::Program> {
            $crate::__private::start(args, $main)
        }
    };
}
