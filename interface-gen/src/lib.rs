//! # frond-interface-gen — `#[interface]` and `#[derive(Exchangeable)]`
//!
//! The compile-time half of Frond's domain isolation. Domains talk only through traits
//! marked `#[interface]`; this crate checks those traits and generates the proxies that guard
//! every crossing (the runtime half, `rref::rpc`, is their contract with the kernel):
//!
//! * `#[derive(Exchangeable)]` for structs and enums (generics included): an
//!   `unsafe impl rref::Exchangeable` whose `move_to` moves every field, `HAS_RREFS` is the
//!   OR of the fields', and `FINGERPRINT` hashes the type's name, size and alignment, its
//!   variants (names; discriminants of fieldless enums), field names and field types'
//!   fingerprints (a field mentioning the type itself contributes its spelling, to avoid a
//!   const cycle; types recursive through *another* type are a const-evaluation error).
//!   Fields whose type
//!   mentions a type parameter become `FieldType: Exchangeable` bounds; the others are
//!   checked where they are moved (a bound would be trivial, or an endless cycle for a type
//!   recursive through an `RRef`). Either way the error is at the field's type.
//! * `#[interface]` / `#[interface(recover)]` on a trait: the trait itself (minus the
//!   `#[idempotent]` method markers), `rref::rpc::Proxyable for dyn Trait` (with the
//!   interface's `FINGERPRINT`: method names, idempotent flags, argument kinds, argument
//!   and result type fingerprints, `Remote<dyn X>` by X's name only), the trait for
//!   `rref::rpc::Proxy<dyn Trait, R>` (lend `&RRef` arguments for the call; lend
//!   `&mut RRef` arguments as an alias checked after the call — a swapped alias kills the
//!   callee and the call returns `Err(Refused)`; move owned arguments to the callee inside
//!   the protected call, refusing the call without running the method if a move was
//!   refused; move the result back, killing the callee if it returned a block it does not
//!   own; adopt `Remote<dyn X>` handles both ways) and, with `recover`, for
//!   `rref::rpc::Recover<dyn Trait, R>` (restart a crashed callee; retry `#[idempotent]`
//!   methods up to `rref::rpc::MAX_RETRIES` times).
//!
//! ## What it guarantees: compile errors, at the offending span, with the reason
//! * A type that is or contains a reference, raw pointer, function pointer, `Box`, `Vec`,
//!   `String`, `Rc`, `Arc`, trait object, `impl Trait`, `Cell`/`RefCell`/`UnsafeCell`/
//!   `OnceCell`, `Atomic*`, `Mutex` or `RwLock` as a derived field, interface argument or
//!   returned value (references: except a lent `&RRef`/`&RRefVec`/`&RRefDeque` argument).
//! * A derived field or interface value that is not `Exchangeable` (the trait bound, spanned
//!   at the type); a union.
//! * A `&mut RRef<T>` / `&mut RRefVec<T>` / `&mut RRefDeque<T, N>` argument whose `T` may
//!   hold RRefs (a const assertion at the argument: the callee could take a nested block).
//! * An interface method that does not take `&self`, does not return `RpcResult<_>`, is
//!   generic, `async`, `unsafe` or has a default body; associated types or consts; a
//!   `Remote` that is not a whole argument or return value; an `#[idempotent]` method with a
//!   non-`Copy` argument; an `#[interface]` argument other than `recover`.
//!
//! Generated code names only `::rref::...` and `::core::...` paths. `PhantomData<_>` is not
//! looked into (it holds no data). A `#[cfg]`'d interface method is checked whatever the cfg
//! (the macro runs before cfg evaluation); its proxies carry the same `#[cfg]`.
//!
//! ## Dependencies
//! `proc-macro2`, `syn`, `quote`; runs on the host at compile time only. Tests also use
//! `trybuild` and `rref` (with its `host` heap).

#![forbid(unsafe_code)]

mod derive;
mod interface;
mod types;

use proc_macro::TokenStream;

/// `#[derive(Exchangeable)]`: see the crate documentation.
#[proc_macro_derive(Exchangeable)]
pub fn derive_exchangeable(input: TokenStream) -> TokenStream {
    derive::expand_derive(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// `#[interface]` / `#[interface(recover)]` on a trait: see the crate documentation.
#[proc_macro_attribute]
pub fn interface(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    interface::expand_interface(attr.into(), item.clone())
        .unwrap_or_else(|e| {
            let mut out = e.into_compile_error();
            out.extend(interface::fallback(item));
            out
        })
        .into()
}

/// Collects every error of an item, so that one compile run reports all of them.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    /// The value, or `None` after recording the error.
    fn ok<T>(&mut self, r: syn::Result<T>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
