//! The contract between generated proxies and the kernel that runs them.
//!
//! * [`RpcError`] / [`RpcResult`]: what every interface method returns.
//! * [`Target`]: which domain instance (id + generation) an object lives in, and where.
//! * [`Runtime`]: the kernel's side of a proxied call (protected call, restart, release,
//!   move tokens, violations, killing a rule-breaking callee). Generated proxies are
//!   generic over it; only the kernel instantiates them (it is an `unsafe trait`, which
//!   domains cannot implement), so a proxy's code is kernel code even when a domain holds
//!   the handle, and only proxies can make the [`MoveToken`] that moves and lends need.
//!
//! What a generated proxy does with RRefs, per argument kind:
//! * owned: moved to the callee inside the protected call (`move_to` with a token whose
//!   `from` is the caller); if a move was refused ([`Runtime::take_violation`]) the
//!   arguments are forgotten and the call returns `Err(Refused)` without running the method;
//! * `&RRef`: lent (borrow count raised) for the call;
//! * `&mut RRef` (payload without RRefs, checked at compile time): the callee gets an alias
//!   ([`crate::lend_mut`]); if it is not [`crate::MutLend::intact`] afterwards the callee is
//!   killed and the call returns `Err(Refused)`;
//! * the result: moved back with `from` = the callee; a refused move forgets the result,
//!   kills the callee and returns `Err(Refused)`.
//! * [`Proxy`] / [`Recover`]: `#[repr(transparent)]` views of a [`Target`] on which
//!   `#[interface]` implements the trait; [`Remote`] is the handle domains hold.
//!
//! Invariants: a `Target` is only dereferenced by a `Runtime` after it checked that the
//! target's generation is alive, and only for the duration of the call it protects.

use crate::{DomainId, Exchangeable, MoveToken};
use alloc::boxed::Box;
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;

/// Why a proxied call did not reach (or did not come back from) its callee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RpcError {
    /// The callee panicked (or faulted) during this call and is now dead.
    Panicked,
    /// The callee was killed from outside while this call was inside it.
    Killed,
    /// The callee was already dead when the call was made: calls fail fast.
    DomainDead,
    /// A recovery proxy could not bring the domain back (its image or init failed).
    RestartFailed,
    /// The call broke the ownership rules, and the proxy stopped it:
    /// * an RRef argument was not owned by the caller, or was lent (a handle it obtained by
    ///   swapping a lent alias): the callee's method did not run, and the arguments are
    ///   forgotten (never dropped);
    /// * the callee returned an RRef it does not own, or swapped a different handle into a
    ///   `&mut` lent argument: the callee was killed, the caller's own handle is untouched;
    /// * the kernel refused otherwise (e.g. an init that returned another domain's handle).
    Refused,
    /// The callee ran longer than its CPU budget inside one call and the watchdog killed it.
    Timeout,
    /// The calling thread's stack had too little room left for another protected call (a
    /// recursion through proxies): the call was not made, nobody died.
    StackExhausted,
}

impl RpcError {
    /// True for the errors that mean "the callee died": a recovery proxy restarts on these.
    pub fn is_crash(self) -> bool {
        matches!(self, RpcError::Panicked | RpcError::Killed | RpcError::DomainDead | RpcError::Timeout)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RpcError::Panicked => "callee panicked during the call",
            RpcError::Killed => "callee was killed during the call",
            RpcError::DomainDead => "callee domain is dead",
            RpcError::RestartFailed => "callee domain could not be restarted",
            RpcError::Refused => "call refused by the kernel",
            RpcError::Timeout => "callee exceeded its CPU budget and was killed",
            RpcError::StackExhausted => "no stack room left for another call",
        }
    }
}

impl core::fmt::Display for RpcError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

// SAFETY: plain data without RRefs.
unsafe impl Exchangeable for RpcError {
    const HAS_RREFS: bool = false;
    const FINGERPRINT: u64 = crate::fingerprint::leaf(
        "RpcError{Panicked,Killed,DomainDead,RestartFailed,Refused}",
        core::mem::size_of::<RpcError>(),
        core::mem::align_of::<RpcError>(),
    );
    #[inline(always)]
    fn move_to(&self, _to: DomainId, _token: MoveToken) {}
}

/// What every interface method returns.
pub type RpcResult<T> = Result<T, RpcError>;

/// How many times a recovery proxy retries an idempotent call after restarting its callee.
/// One retry covers a crash caused by state the restart wiped; more would only repeat a
/// crash the request itself causes.
pub const MAX_RETRIES: u32 = 2;

/// Bits of a [`key`] that hold the domain slot (slots are below [`crate::MAX_DOMAINS`]).
pub const SLOT_BITS: u32 = 8;
const _: () = assert!(crate::MAX_DOMAINS <= 1 << SLOT_BITS);

/// A domain instance as one word: `generation << SLOT_BITS | slot`. Never 0 for a live
/// instance (generations start at 1), so the kernel's alive table can hold keys, 0 for
/// none, and a call compares, loads and stores one word instead of two.
#[inline(always)]
pub const fn key(domain: DomainId, generation: u64) -> u64 {
    generation << SLOT_BITS | domain.0 as u64
}

/// The domain slot of a [`key`].
#[inline(always)]
pub const fn key_domain(key: u64) -> DomainId {
    DomainId((key & ((1 << SLOT_BITS) - 1)) as u32)
}

/// The generation of a [`key`].
#[inline(always)]
pub const fn key_generation(key: u64) -> u64 {
    key >> SLOT_BITS
}

/// An object in a domain instance: the domain's id, its generation (packed in one [`key`]),
/// and the object's address.
pub struct Target<T: ?Sized> {
    key: u64,
    ptr: NonNull<T>,
}

impl<T: ?Sized> Clone for Target<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ?Sized> Copy for Target<T> {}

// SAFETY: a Target is an address plus ids; it is only dereferenced by a Runtime, which
// hands out `&T` for the duration of a call. `T: Sync` makes sharing that `&T` sound.
unsafe impl<T: ?Sized + Sync> Send for Target<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for Target<T> {}

impl<T: ?Sized> Target<T> {
    /// # Safety
    /// `ptr` must point to a live `T` owned by domain `domain` in generation `generation`,
    /// and stay valid for as long as that generation is alive.
    ///
    /// # Panics
    /// If `domain` is not a domain slot (below `1 << SLOT_BITS`) or `generation` does not
    /// fit a [`key`].
    pub unsafe fn new(domain: DomainId, generation: u64, ptr: NonNull<T>) -> Self {
        assert!(domain.0 < 1 << SLOT_BITS && generation >> (64 - SLOT_BITS) == 0, "not a domain instance");
        Self { key: key(domain, generation), ptr }
    }
    #[inline(always)]
    pub fn domain(&self) -> DomainId {
        key_domain(self.key)
    }
    #[inline(always)]
    pub fn generation(&self) -> u64 {
        key_generation(self.key)
    }
    /// The domain and generation as one [`key`].
    #[inline(always)]
    pub fn key(&self) -> u64 {
        self.key
    }
    #[inline(always)]
    pub fn as_ptr(&self) -> NonNull<T> {
        self.ptr
    }
    /// # Safety
    /// The caller (a [`Runtime`]) has checked that the target's generation is alive and
    /// keeps it alive, or stops using the reference, before the domain's memory is freed.
    #[inline(always)]
    pub unsafe fn get(&self) -> &T {
        // SAFETY: guaranteed by the caller and by `new`'s contract.
        unsafe { self.ptr.as_ref() }
    }
}

/// The kernel's side of proxied calls. Implemented once, by the kernel.
///
/// # Safety
/// `call` must only dereference the target after checking its generation is alive, must
/// run `f` with the current domain switched to the target's, and must turn a panic or death
/// of the callee into `Err` without running any more of the callee's code.
pub unsafe trait Runtime: 'static {
    /// The domain (and its generation) whose code is running now.
    fn current() -> (DomainId, u64);

    /// Permission for generated proxies to move (and lend) RRefs owned by `from`: the
    /// caller for arguments, the callee for results.
    fn move_token(from: DomainId) -> MoveToken;

    /// Whether a move on this thread was refused since the last call (and clears that):
    /// see [`crate::SharedHeap::take_violation`]. Proxies call it right after their moves.
    fn take_violation() -> bool;

    /// Kills `target`'s domain generation (if still alive) for breaking the ownership
    /// rules: it returned a block it does not own or swapped a lent handle. Reclaims it
    /// like a crash; no more of its code runs.
    fn kill<T: ?Sized>(target: &Target<T>);

    /// A protected call into `target`'s domain. `Err(DomainDead)` without calling `f` if the
    /// generation is not alive; `Err(Panicked | Killed | Timeout)` if the callee died during
    /// the call. If the *caller* died during the call, the result is dropped and an error
    /// returned; the proxy then ends its lends and calls [`Runtime::leave`].
    fn call<T: ?Sized, O>(target: &Target<T>, f: impl FnOnce(&T) -> O) -> RpcResult<O>;

    /// For recovery proxies: the live target behind `target`'s domain slot. If that
    /// domain is dead, restarts it from its pristine image first (once, however many
    /// callers ask at the same time).
    fn recover<T: ?Sized + 'static>(target: &Target<T>) -> RpcResult<Target<T>>;

    /// Runs the destructor of an object a callee handed out, inside its domain, if that
    /// domain generation is still alive (otherwise its heap is already gone: nothing to do).
    /// Called by a proxy after a call that returned an error, once it has ended its
    /// lends (a caller that died during the call always gets an error): if the calling
    /// domain died during the call, the thread is unwound now (never returning into the
    /// dead caller's code). `call` itself does not unwind a dead caller, so the proxy's
    /// frame — its lend guards — is cleaned up first; otherwise a lend would stay open
    /// forever and pin its block.
    fn leave() {}

    fn release<T: ?Sized>(target: &Target<T>);
}

/// A plain proxy: every call goes to one fixed domain generation; after that generation
/// died, calls fail fast with [`RpcError::DomainDead`].
#[repr(transparent)]
pub struct Proxy<T: ?Sized, R> {
    target: Target<T>,
    _rt: PhantomData<fn() -> R>,
}

/// A recovery proxy: calls go to the live generation of the target's domain slot; a crash
/// restarts the domain, and idempotent calls are retried.
#[repr(transparent)]
pub struct Recover<T: ?Sized, R> {
    target: Target<T>,
    _rt: PhantomData<fn() -> R>,
}

macro_rules! view {
    ($ty:ident) => {
        impl<T: ?Sized, R> $ty<T, R> {
            /// Views a target as a proxy of this kind (no copy, no allocation).
            pub fn from_target(target: &Target<T>) -> &Self {
                // SAFETY: `Self` is `repr(transparent)` over `Target<T>` (the other field
                // is a zero-sized PhantomData), so the two have the same layout.
                unsafe { &*(target as *const Target<T> as *const Self) }
            }
            pub fn target(&self) -> &Target<T> {
                &self.target
            }
        }
    };
}
view!(Proxy);
view!(Recover);

/// The function a [`Remote`] uses to view its target as a proxy.
pub type ViewFn<T> = for<'a> fn(&'a Target<T>) -> &'a T;

/// Implemented by `#[interface]` for `dyn Trait`: how to make proxies of it.
pub trait Proxyable: 'static {
    /// A hash of the interface: its name, and every method's name, `#[idempotent]` flag,
    /// argument kinds and the fingerprints of argument and return types
    /// ([`Exchangeable::FINGERPRINT`]; for `Remote<dyn X>` only the name `X`, so that
    /// interfaces mentioning each other have no cycle). Part of the hash the loader checks.
    const FINGERPRINT: u64;
    fn proxy_view<R: Runtime>() -> ViewFn<Self>;
    /// `None` unless the interface was declared `#[interface(recover)]`.
    fn recover_view<R: Runtime>() -> Option<ViewFn<Self>>;
}

enum Repr<T: ?Sized + 'static> {
    /// Still in the domain that created it: calls are direct.
    Local(Box<T>),
    /// Lives in another domain: calls go through a proxy.
    Proxied { target: Target<T>, view: ViewFn<T>, release: Option<fn(&Target<T>)> },
}

/// A handle to an interface object, local or in another domain. Deref gives `&dyn Trait`.
///
/// A domain creates one with [`Remote::local`]; when it crosses a boundary the generated
/// proxy turns it into a proxied handle ([`adopt`]). Handles the kernel grants at init are
/// proxied from the start. A proxied handle holds no memory of its own, so a domain that
/// dies holding one leaks nothing.
pub struct Remote<T: ?Sized + 'static> {
    repr: Repr<T>,
}

impl<T: ?Sized + 'static> Remote<T> {
    pub fn local(object: Box<T>) -> Self {
        Self { repr: Repr::Local(object) }
    }

    /// # Safety
    /// `view` must be the proxy view of `T` for a [`Runtime`]; `release`, if any, must
    /// release `target` through that runtime and may be called once, when the handle drops.
    pub unsafe fn proxied(target: Target<T>, view: ViewFn<T>, release: Option<fn(&Target<T>)>) -> Self {
        Self { repr: Repr::Proxied { target, view, release } }
    }

    pub fn is_proxied(&self) -> bool {
        matches!(self.repr, Repr::Proxied { .. })
    }

    /// The proxied target, if this handle is proxied.
    pub fn target(&self) -> Option<&Target<T>> {
        match &self.repr {
            Repr::Proxied { target, .. } => Some(target),
            Repr::Local(_) => None,
        }
    }

    /// The local object, if the handle is still local.
    pub fn into_local(self) -> Result<Box<T>, Self> {
        let mut this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again after the read.
        let repr = unsafe { core::ptr::read(&mut this.repr) };
        match repr {
            Repr::Local(b) => Ok(b),
            other => Err(Self { repr: other }),
        }
    }
}

impl<T: ?Sized + 'static> Deref for Remote<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        match &self.repr {
            Repr::Local(b) => b,
            Repr::Proxied { target, view, .. } => view(target),
        }
    }
}

impl<T: ?Sized + 'static> Drop for Remote<T> {
    fn drop(&mut self) {
        if let Repr::Proxied { target, release: Some(release), .. } = &self.repr {
            release(target);
        }
    }
}

fn release_with<T: ?Sized, R: Runtime>(target: &Target<T>) {
    R::release(target)
}

/// Used by generated proxies on a `Remote` that crossed from domain `from` (generation
/// `generation`): a local handle becomes a proxy into that domain, owned by the receiver
/// (dropping it runs the object's destructor in `from`). A handle that is already proxied
/// passes through unchanged.
pub fn adopt<T: ?Sized + Proxyable, R: Runtime>(remote: Remote<T>, from: DomainId, generation: u64) -> Remote<T> {
    match remote.into_local() {
        Ok(object) => {
            let ptr = NonNull::from(Box::leak(object));
            // SAFETY: `ptr` is an object allocated by domain `from` (generation
            // `generation`), valid until that generation dies or the object is released.
            let target = unsafe { Target::new(from, generation, ptr) };
            // SAFETY: the view and release functions are the runtime's own.
            unsafe { Remote::proxied(target, T::proxy_view::<R>(), Some(release_with::<T, R>)) }
        }
        Err(proxied) => proxied,
    }
}

/// Arguments of `#[idempotent]` methods: a retried call passes them again, so they must be
/// `Copy` (lent `&RRef`s are references and therefore `Copy`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an argument of an #[idempotent] method",
    label = "a retried call would need this argument a second time",
    note = "idempotent methods take Copy values or lent `&RRef`s; pass owned RRefs to non-idempotent methods"
)]
pub trait Retryable {}
impl<T: Copy> Retryable for T {}

/// Compile-time check used by generated code.
#[doc(hidden)]
pub const fn assert_retryable<T: Retryable>() {}
/// Compile-time check used by generated code.
#[doc(hidden)]
pub const fn assert_exchangeable<T: Exchangeable + ?Sized>() {}
/// Used by generated code: the fingerprint of an argument kind (`&`, `&mut`, `Remote`).
#[doc(hidden)]
pub const fn kind_fingerprint(h: u64, kind: &str, fp: u64) -> u64 {
    crate::fingerprint::mix(crate::fingerprint::mix(h, crate::fingerprint::str(kind)), fp)
}
