//! # frond-domrt — the domain ABI and runtime
//!
//! Two halves, both trusted (part of the kernel's code base, hence allowed `unsafe`):
//!
//! * **The ABI** the kernel and every domain agree on: [`Syscalls`] (the services the
//!   kernel offers a domain: allocation, the shared heap, threads, time, console, unwinding)
//!   and [`DomainKind`] (a domain's typed entry: its init arguments and the interface it
//!   exports). Its [`DomainKind::ENTRY_HASH`] — the signature string, the exported
//!   interface's fingerprint (every method and every exchanged type's structure) and the
//!   size/alignment of the arguments — is recorded in the image, so the loader refuses a
//!   domain whose entry does not match what the kernel expects, even when only a type
//!   changed and every name stayed the same.
//! * **The runtime** every domain links through [`entry!`]: a global allocator that
//!   forwards to the kernel (so the kernel knows every heap page a domain owns), a panic
//!   handler that asks the kernel to unwind (domains build with panic=abort), the
//!   `.frond_abi` record (rustc version, entry hash, name) and the `_start` symbol.
//!
//! Domains themselves stay `#![forbid(unsafe_code)]`: the `unsafe` attributes `entry!`
//! needs are expanded from this crate.
//!
//! [`sync::Mutex`] is the lock domains use: it sleeps in the kernel instead of spinning,
//! so a low-priority holder preempted by a higher-priority waiter is not starved.
//!
//! May depend on: `rref`, `frond-elfload` (for the ABI record's single definition), `spin`.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::boxed::Box;
use core::alloc::{GlobalAlloc, Layout};
use core::fmt::Write;
use core::sync::atomic::AtomicU32;
use rref::rpc::{Proxyable, Remote, RpcResult};
use rref::{DomainId, SharedHeap};

pub use frond_elfload::AbiRecord;

pub mod sync;

/// `rustc -V` of the compiler that built this domain.
pub const RUSTC: &str = env!("FROND_RUSTC_VERSION");

/// What the kernel offers a domain. Calls are direct (no proxy): the kernel is trusted and
/// every method runs with the calling domain still current.
pub trait Syscalls: Send + Sync {
    /// Writes a line to the console, prefixed with the domain's name.
    fn print(&self, line: &str);
    /// The running domain and its generation.
    fn current(&self) -> (DomainId, u64);
    /// Who made the innermost proxied call into the running domain: the calling domain
    /// and its generation (the kernel, `DomainId(0)`, for a domain's own threads and for
    /// calls the kernel makes). Recorded by the kernel's half of the proxy, so a domain
    /// cannot forge it; a server uses it to tell its clients apart.
    fn caller(&self) -> (DomainId, u64);
    /// Allocates from the current domain's private heap (null on exhaustion).
    fn alloc(&self, layout: Layout) -> *mut u8;
    /// Returns memory to the heap it came from.
    ///
    /// # Safety
    /// `ptr` was returned by [`Syscalls::alloc`] with `layout` and is not used afterwards.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout);
    /// The shared heap for RRefs. Harmless in a domain's hands: everything on it that
    /// could corrupt the heap or move ownership is `unsafe` (see `rref::SharedHeap`).
    fn shared_heap(&self) -> &'static dyn SharedHeap;
    /// The current domain panicked: the kernel marks it dead, reclaims it, and resumes the
    /// calling thread at the innermost proxy, which returns `Err(RpcError::Panicked)`.
    fn unwind(&self, message: &str) -> !;
    fn sleep_ns(&self, ns: u64);
    fn yield_now(&self);
    /// Nanoseconds since boot.
    fn now_ns(&self) -> u64;
    /// Starts a thread owned by the current domain, running `f` inside it. When the domain
    /// dies the thread is stopped.
    fn spawn(&self, name: &str, f: Box<dyn FnOnce() + Send>) -> RpcResult<u64>;
    /// Blocks until device interrupt `vector` fires or `timeout_ns` passes; true if it
    /// fired. Each interrupt is reported once (a pending one returns at once). Only the
    /// domain the kernel gave the vector to (in its device arguments) may wait on it;
    /// for any other caller it returns false at once.
    fn irq_wait(&self, vector: u8, timeout_ns: u64) -> bool;
    /// Sleeps while `*word == expected`, until [`Syscalls::futex_wake`] on the same word
    /// (by a thread of the same domain), `timeout_ns` (capped by the kernel), or the
    /// domain's death. True if woken by a wake. May return early: callers re-check.
    fn futex_wait(&self, word: &AtomicU32, expected: u32, timeout_ns: u64) -> bool;
    /// Wakes up to `n` threads of the current domain waiting on `word`; returns how many.
    fn futex_wake(&self, word: &AtomicU32, n: u32) -> u32;
    /// The kernel's fault injector's hint: which device-fault kinds are armed for some
    /// domain right now (bit `1 << kind`). Read-only for domains.
    fn fault_hint(&self) -> &'static FaultHint {
        static NONE: FaultHint = FaultHint::new();
        &NONE
    }
    /// Asks the fault injector whether the current domain's device should misbehave now
    /// (`kind` one of [`fault`]'s kinds): 0 for no, else a kind-specific code. The kernel
    /// decides (seeded) and logs the fault; a driver only applies it.
    fn device_fault(&self, _kind: u32) -> u32 {
        0
    }
}

/// Device-fault kinds of the kernel's fault injector (`inject=`, docs/reliability.md).
pub mod fault {
    /// A NIC's used-ring entry: code [`USED_BAD_LEN`] or [`USED_BAD_ID`].
    pub const NETDEV: u32 = 1;
    /// A block request completes with `VIRTIO_BLK_S_IOERR` (code 1).
    pub const BLKDEV: u32 = 2;
    /// The entry's length is one no buffer can have.
    pub const USED_BAD_LEN: u32 = 1;
    /// The entry names a descriptor the device does not hold.
    pub const USED_BAD_ID: u32 = 2;
}

/// A word the kernel sets and domains only read: the fast check in [`device_fault`].
pub struct FaultHint(AtomicU32);

impl FaultHint {
    pub const fn new() -> Self {
        FaultHint(AtomicU32::new(0))
    }
    pub fn get(&self) -> u32 {
        self.0.load(core::sync::atomic::Ordering::Relaxed)
    }
    /// # Safety
    /// Only the kernel's fault injector sets the hint (domains may only read it).
    pub unsafe fn set(&self, v: u32) {
        self.0.store(v, core::sync::atomic::Ordering::Relaxed)
    }
}

impl Default for FaultHint {
    fn default() -> Self {
        Self::new()
    }
}

static HINT: spin::Once<&'static FaultHint> = spin::Once::new();

/// For drivers, where they read what a device wrote: 0 normally; otherwise the kernel's
/// fault injector chose this moment for a device fault of `kind` in this domain and the
/// code says which ([`fault`]). One load when nothing is armed.
#[inline]
pub fn device_fault(kind: u32) -> u32 {
    let Some(s) = SYS.get() else { return 0 };
    let hint = HINT.call_once(|| s.fault_hint());
    if hint.get() & (1 << kind) == 0 {
        return 0;
    }
    s.device_fault(kind)
}

/// A kind of domain: what its init takes and what it exports.
pub trait DomainKind: 'static {
    /// Passed by value to the domain's init.
    type Args: Send + 'static;
    /// The interface the domain's init returns.
    type Export: ?Sized + Proxyable;
    /// Unique description of the entry signature (names only).
    const SIG: &'static str;
    /// What the image records and the loader checks: [`entry_hash`] of `SIG`, the export's
    /// interface fingerprint and the size and alignment of `Args`. A domain built against
    /// a changed interface crate — same names, different types — has a different hash.
    const ENTRY_HASH: u64;
}

/// The entry hash of a domain kind (see [`DomainKind::ENTRY_HASH`]).
pub const fn entry_hash(sig: &str, export_fingerprint: u64, args_size: usize, args_align: usize) -> u64 {
    use rref::fingerprint::{mix, str};
    mix(mix(mix(str(sig), export_fingerprint), args_size as u64), args_align as u64)
}

/// The `_start` symbol of a domain of kind `K` (Rust ABI: kernel and domain are built by
/// the same compiler, which the loader checks).
pub type EntryFn<K> =
    fn(&'static dyn Syscalls, <K as DomainKind>::Args) -> Remote<<K as DomainKind>::Export>;

/// Declares a [`DomainKind`]: `domain_kind!(pub EchoKind: () => dyn Echo);`
#[macro_export]
macro_rules! domain_kind {
    ($vis:vis $name:ident : $args:ty => $export:ty) => {
        $vis struct $name;
        impl $crate::DomainKind for $name {
            type Args = $args;
            type Export = $export;
            const SIG: &'static str =
                concat!(stringify!($name), ": ", stringify!($args), " => ", stringify!($export));
            const ENTRY_HASH: u64 = $crate::entry_hash(
                Self::SIG,
                <$export as ::rref::rpc::Proxyable>::FINGERPRINT,
                ::core::mem::size_of::<$args>(),
                ::core::mem::align_of::<$args>(),
            );
        }
    };
}

static SYS: spin::Once<&'static dyn Syscalls> = spin::Once::new();

/// The kernel's services, for code inside a domain.
pub fn sys() -> &'static dyn Syscalls {
    *SYS.get().expect("frond-domrt: used before the domain's entry ran")
}

/// Called first by `_start`: remembers the kernel and installs the shared heap.
#[doc(hidden)]
pub fn init(sys: &'static dyn Syscalls) {
    SYS.call_once(|| sys);
    rref::set_heap(sys.shared_heap());
}

/// The domain's global allocator: every allocation comes from the kernel, which records
/// which domain owns each heap page.
pub struct DomainAlloc;

// SAFETY: the kernel's allocator returns blocks satisfying `layout` from the domain's own
// heap and never hands the same memory out twice; `dealloc` passes back exactly what
// `alloc` returned, as GlobalAlloc's contract requires of callers.
unsafe impl GlobalAlloc for DomainAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        sys().alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded GlobalAlloc contract.
        unsafe { sys().dealloc(ptr, layout) }
    }
}

/// Formats a panic without allocating (the heap may be what failed) and asks the kernel
/// to unwind.
#[doc(hidden)]
pub fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut buf = Buf { bytes: [0; 256], len: 0 };
    let _ = write!(buf, "{}", info.message());
    if let Some(l) = info.location() {
        let _ = write!(buf, " at {}:{}", l.file(), l.line());
    }
    let s = core::str::from_utf8(&buf.bytes[..buf.len]).unwrap_or("panic message is not UTF-8");
    match SYS.get() {
        Some(sys) => sys.unwind(s),
        // No kernel handle yet: impossible, since `_start` calls `init` before anything
        // else. Spin rather than touch memory the kernel has not set up.
        None => loop {
            core::hint::spin_loop()
        },
    }
}

struct Buf {
    bytes: [u8; 256],
    len: usize,
}

impl Write for Buf {
    /// Appends as much of `s` as fits, cut at a character boundary so the result stays UTF-8.
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.bytes.len() - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() { Err(core::fmt::Error) } else { Ok(()) }
    }
}

/// Makes a crate a domain of kind `$kind` whose init is `$init`:
/// `frond_domrt::entry!(EchoKind, init);` with `fn init(args: ()) -> Remote<dyn Echo>`.
#[macro_export]
macro_rules! entry {
    ($kind:ty, $init:path) => {
        #[global_allocator]
        static __FROND_ALLOC: $crate::DomainAlloc = $crate::DomainAlloc;

        #[panic_handler]
        fn __frond_panic(info: &core::panic::PanicInfo) -> ! {
            $crate::panic(info)
        }

        #[used]
        #[unsafe(link_section = ".frond_abi")]
        static __FROND_ABI: $crate::AbiRecord = $crate::AbiRecord::new(
            $crate::RUSTC,
            <$kind as $crate::DomainKind>::ENTRY_HASH,
            env!("CARGO_PKG_NAME"),
        );

        /// The domain's entry point, called by the kernel's loader.
        #[unsafe(no_mangle)]
        pub fn _start(
            sys: &'static dyn $crate::Syscalls,
            args: <$kind as $crate::DomainKind>::Args,
        ) -> ::rref::rpc::Remote<<$kind as $crate::DomainKind>::Export> {
            // Keeps the record in the image even if the linker garbage-collects sections.
            let _ = &__FROND_ABI;
            $crate::init(sys);
            let f: $crate::EntryFn<$kind> = $init;
            f(sys, args)
        }
    };
}
