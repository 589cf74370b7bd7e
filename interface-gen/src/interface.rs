//! `#[interface]` / `#[interface(recover)]`: checks a domain-boundary trait and generates its
//! proxies (`Proxyable` for `dyn Trait`, the trait for `rref::rpc::Proxy<dyn Trait, R>` and,
//! with `recover`, for `rref::rpc::Recover<dyn Trait, R>`).

use crate::types::{self, Place, LENDABLE};
use crate::Errors;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::{Parse, Parser};
use syn::spanned::Spanned;
use syn::{
    Attribute, Error, FnArg, GenericParam, Ident, ItemTrait, Pat, Result, ReturnType, Signature,
    TraitItem, TraitItemFn, Type,
};

const RECEIVER: &str = "proxies are shared between threads, so interface methods take &self";
const RETURN: &str = "a call into another domain can fail when the callee crashes, \
     so interface methods return RpcResult<_>";
const REMOTE_DYN: &str = "a Remote holds an interface object: write Remote<dyn Trait>";

/// How an argument crosses the boundary.
enum Kind<'a> {
    /// Moved to the callee (`move_to` inside the call).
    Owned,
    /// `&RRef<T>` / `&mut RRef<T>` (or RRefVec/RRefDeque): lent for the call's duration.
    Lent { mutable: bool },
    /// `Remote<dyn X>`: adopted by the callee (a local handle becomes a proxy back).
    Remote(&'a Type),
}

struct Arg<'a> {
    name: Ident,
    ty: &'a Type,
    kind: Kind<'a>,
}

struct Method<'a> {
    sig: &'a Signature,
    cfgs: Vec<&'a Attribute>,
    idempotent: bool,
    args: Vec<Arg<'a>>,
    /// `T` of `RpcResult<T>`; `Kind::Remote` when `T` is `Remote<dyn X>`.
    ret: (&'a Type, Kind<'a>),
}

/// Expands `#[interface(attr)]` on `item`.
///
/// The runtime parameter of the generated impls is `__FrondR`, not `R`: the impls repeat the
/// method signatures, whose types could name a user type `R`.
pub fn expand_interface(attr: TokenStream, item: TokenStream) -> Result<TokenStream> {
    let recover = parse_attr(attr)?;
    let item: ItemTrait = syn::parse2(item)?;
    let mut errors = Errors::default();
    check_trait(&item, &mut errors);
    let methods: Vec<Method> = item
        .items
        .iter()
        .filter_map(|it| match it {
            TraitItem::Fn(f) => errors.ok(method(f)),
            TraitItem::Type(_) | TraitItem::Const(_) => {
                errors.push(Error::new_spanned(
                    it,
                    "interfaces cannot have associated types or consts: \
                     they are used as `dyn Trait` objects, which cannot carry them",
                ));
                None
            }
            _ => {
                errors.push(Error::new_spanned(
                    it,
                    "an interface may only contain methods",
                ));
                None
            }
        })
        .collect();
    errors.finish()?;

    let name = &item.ident;
    let dyn_ty = quote!(dyn #name);
    let proxy = methods.iter().map(|m| proxy_method(name, m, !recover));
    let recover_impl = recover.then(|| {
        let methods = methods.iter().map(|m| recover_method(name, m));
        quote! {
            impl<__FrondR: ::rref::rpc::Runtime> #name for ::rref::rpc::Recover<#dyn_ty, __FrondR> {
                #(#methods)*
            }
        }
    });
    let recover_view = if recover {
        quote! {
            let __frond_view: ::rref::rpc::ViewFn<Self> =
                |__frond_t| ::rref::rpc::Recover::<Self, R>::from_target(__frond_t);
            ::core::option::Option::Some(__frond_view)
        }
    } else {
        quote!(::core::option::Option::None)
    };

    let fingerprint = interface_fingerprint(name, &methods);
    let mut_lend_checks = methods.iter().map(mut_lend_checks);

    let mut emitted = item.clone();
    strip_idempotent(&mut emitted);
    Ok(quote! {
        #emitted

        #(#mut_lend_checks)*

        impl ::rref::rpc::Proxyable for #dyn_ty {
            const FINGERPRINT: u64 = #fingerprint;
            fn proxy_view<R: ::rref::rpc::Runtime>() -> ::rref::rpc::ViewFn<Self> {
                |__frond_t| ::rref::rpc::Proxy::<Self, R>::from_target(__frond_t)
            }
            fn recover_view<R: ::rref::rpc::Runtime>()
                -> ::core::option::Option<::rref::rpc::ViewFn<Self>>
            {
                #recover_view
            }
        }

        impl<__FrondR: ::rref::rpc::Runtime> #name for ::rref::rpc::Proxy<#dyn_ty, __FrondR> {
            #(#proxy)*
        }

        #recover_impl
    })
}

/// The trait as written minus `#[idempotent]`: emitted next to the errors when expansion
/// fails, so that the rest of the crate still sees the trait.
pub fn fallback(item: TokenStream) -> TokenStream {
    match syn::parse2::<ItemTrait>(item) {
        Ok(mut item) => {
            strip_idempotent(&mut item);
            item.into_token_stream()
        }
        Err(_) => TokenStream::new(),
    }
}

/// `recover` or nothing.
fn parse_attr(attr: TokenStream) -> Result<bool> {
    let arg =
        Parser::parse2(Option::<Ident>::parse, attr.clone()).map_err(|_| unknown_arg(&attr))?;
    match arg {
        None => Ok(false),
        Some(id) if id == "recover" => Ok(true),
        Some(_) => Err(unknown_arg(&attr)),
    }
}

fn unknown_arg(attr: &TokenStream) -> Error {
    Error::new_spanned(
        attr,
        "unknown #[interface] argument: write #[interface] or #[interface(recover)]",
    )
}

fn check_trait(item: &ItemTrait, errors: &mut Errors) {
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.push(Error::new_spanned(
            &item.generics,
            "interfaces cannot be generic: the kernel builds one proxy per interface",
        ));
    }
    if let Some(u) = &item.unsafety {
        errors.push(Error::new_spanned(
            u,
            "interfaces cannot be `unsafe` traits: no domain can be trusted to uphold their contract",
        ));
    }
    if let Some(a) = &item.auto_token {
        errors.push(Error::new_spanned(
            a,
            "an auto trait cannot be an interface",
        ));
    }
}

fn is_idempotent(attr: &Attribute) -> bool {
    attr.path().is_ident("idempotent")
}

fn strip_idempotent(item: &mut ItemTrait) {
    for it in &mut item.items {
        if let TraitItem::Fn(f) = it {
            f.attrs.retain(|a| !is_idempotent(a));
        }
    }
}

/// Checks one method and classifies its arguments and return value.
fn method(f: &TraitItemFn) -> Result<Method<'_>> {
    let sig = &f.sig;
    let mut errors = Errors::default();
    let mut idempotent = false;
    for attr in f.attrs.iter().filter(|a| is_idempotent(a)) {
        errors.ok(attr.meta.require_path_only().map(drop));
        idempotent = true;
    }
    if let Some(body) = &f.default {
        errors.push(Error::new_spanned(
            body,
            "interface methods cannot have a default body: it would run in the caller's domain, \
             not the callee's",
        ));
    }
    if let Some(a) = &sig.asyncness {
        errors.push(Error::new_spanned(
            a,
            "interface methods cannot be `async`: the future would run the callee's code \
             outside the protected call",
        ));
    }
    if let Some(u) = &sig.unsafety {
        errors.push(Error::new_spanned(
            u,
            "interface methods cannot be `unsafe`: a domain cannot trust its caller to uphold \
             a safety contract",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(Error::new_spanned(
            abi,
            "interface methods use the Rust ABI: proxies call them as trait methods",
        ));
    }
    let generic = sig
        .generics
        .params
        .iter()
        .any(|p| !matches!(p, GenericParam::Lifetime(_)));
    if generic || sig.generics.where_clause.is_some() {
        errors.push(Error::new_spanned(
            &sig.generics,
            "interface methods cannot be generic: proxies are `dyn Trait` objects, \
             which can only call non-generic methods",
        ));
    }

    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r))
            if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(FnArg::Receiver(r)) => errors.push(Error::new_spanned(r, RECEIVER)),
        _ => errors.push(Error::new(sig.paren_token.span.join(), RECEIVER)),
    }
    let mut args = Vec::new();
    for (i, input) in inputs.enumerate() {
        let FnArg::Typed(pt) = input else { continue };
        if let Some(kind) = errors.ok(arg_kind(&pt.ty)) {
            args.push(Arg {
                name: format_ident!("__frond_a{i}"),
                ty: &pt.ty,
                kind,
            });
        }
    }

    let ret = match &sig.output {
        ReturnType::Type(_, ty) if types::last_segment_is(ty, &["RpcResult"]) => {
            match types::type_args(ty)[..] {
                [t] => errors.ok(whole_value(t).map(|kind| (t, kind))),
                _ => {
                    errors.push(Error::new_spanned(ty, RETURN));
                    None
                }
            }
        }
        ReturnType::Type(_, ty) => {
            errors.push(Error::new_spanned(ty, RETURN));
            None
        }
        ReturnType::Default => {
            errors.push(Error::new_spanned(sig, RETURN));
            None
        }
    };
    errors.finish()?;
    let cfgs = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect();
    Ok(Method {
        sig,
        cfgs,
        idempotent,
        args,
        ret: ret.expect("errors.finish() passed"),
    })
}

fn arg_kind(ty: &Type) -> Result<Kind<'_>> {
    if let Type::Reference(r) = ty {
        if types::last_segment_is(&r.elem, LENDABLE) {
            types::check(&r.elem, Place::Interface)?;
            return Ok(Kind::Lent {
                mutable: r.mutability.is_some(),
            });
        }
    }
    whole_value(ty)
}

/// A whole argument or return value: a `Remote<dyn X>` or an owned exchangeable type.
fn whole_value(ty: &Type) -> Result<Kind<'_>> {
    if !types::last_segment_is(ty, &["Remote"]) {
        types::check(ty, Place::Interface)?;
        return Ok(Kind::Owned);
    }
    match types::type_args(ty)[..] {
        [inner @ Type::TraitObject(_)] => Ok(Kind::Remote(inner)),
        _ => Err(Error::new_spanned(ty, REMOTE_DYN)),
    }
}

/// `#[idempotent]`: every argument a retry passes again is `Copy` (lent references are).
/// Emitted in the body that retries (or the proxy's, without `recover`): a failed check there
/// also keeps the compiler from reporting the loop's "use of moved value".
fn retry_checks(m: &Method) -> TokenStream {
    if !m.idempotent {
        return TokenStream::new();
    }
    let passed_again = m
        .args
        .iter()
        .filter(|a| !matches!(a.kind, Kind::Lent { .. }));
    passed_again
        .map(|a| {
            let ty = a.ty;
            quote_spanned!(ty.span()=> ::rref::rpc::assert_retryable::<#ty>();)
        })
        .collect()
}

/// The `RRef<T>` of a lent `&RRef<T>` / `&mut RRef<T>` argument.
fn lent_elem(ty: &Type) -> &Type {
    match ty {
        Type::Reference(r) => &r.elem,
        _ => ty,
    }
}

/// The last identifier of `dyn X` (`X`): what a `Remote<dyn X>` contributes to a
/// fingerprint (the interface's own fingerprint could be a cycle).
fn trait_name(inner: &Type) -> String {
    if let Type::TraitObject(t) = inner {
        for b in &t.bounds {
            if let syn::TypeParamBound::Trait(tb) = b {
                if let Some(last) = tb.path.segments.last() {
                    return last.ident.to_string();
                }
            }
        }
    }
    inner.to_token_stream().to_string()
}

/// `Proxyable::FINGERPRINT`: the interface's name, then per method its name, idempotent
/// flag, and each argument's kind and type fingerprint, then the return value's.
fn interface_fingerprint(name: &Ident, methods: &[Method]) -> TokenStream {
    let fp = quote!(::rref::fingerprint);
    let kind = |tag: &str, ty: &Type, k: &Kind| -> TokenStream {
        match k {
            Kind::Owned => {
                let tag = format!("{tag} owned");
                quote_spanned!(ty.span()=> __frond_h = ::rref::rpc::kind_fingerprint(
                    __frond_h, #tag, <#ty as ::rref::Exchangeable>::FINGERPRINT);)
            }
            Kind::Lent { mutable } => {
                let tag = format!("{tag} {}", if *mutable { "&mut" } else { "&" });
                let elem = lent_elem(ty);
                quote_spanned!(ty.span()=> __frond_h = ::rref::rpc::kind_fingerprint(
                    __frond_h, #tag, <#elem as ::rref::Exchangeable>::FINGERPRINT);)
            }
            Kind::Remote(inner) => {
                let tag = format!("{tag} Remote");
                let x = trait_name(inner);
                quote!(__frond_h = ::rref::rpc::kind_fingerprint(__frond_h, #tag, #fp::str(#x));)
            }
        }
    };
    let per_method = methods.iter().map(|m| {
        let mname = m.sig.ident.to_string();
        let idem = m.idempotent as u64;
        let args = m.args.iter().map(|a| kind("arg", a.ty, &a.kind));
        let ret = kind("ret", m.ret.0, &m.ret.1);
        let cfgs = &m.cfgs;
        quote! {
            #(#cfgs)*
            let _: () = {
                __frond_h = #fp::mix(#fp::mix(__frond_h, #fp::str(#mname)), #idem);
                #(#args)*
                #ret
            };
        }
    });
    let iname = name.to_string();
    quote!({
        let mut __frond_h = #fp::str(#iname);
        #(#per_method)*
        __frond_h
    })
}

/// Compile-time checks that every `&mut` lent argument's payload holds no RRef: a callee
/// with `&mut` access to a nested RRef could take the caller's block.
fn mut_lend_checks(m: &Method) -> TokenStream {
    let cfgs = &m.cfgs;
    m.args
        .iter()
        .filter(|a| matches!(a.kind, Kind::Lent { mutable: true }))
        .map(|a| {
            let elem = lent_elem(a.ty);
            quote_spanned! {a.ty.span()=>
                #(#cfgs)*
                const _: () = if <#elem as ::rref::Lendable>::PAYLOAD_HAS_RREFS {
                    ::core::panic!("a `&mut` lent argument cannot hold RRefs: the callee could take a nested RRef the caller owns; lend it as `&RRef`, or pass it owned and return it")
                } else if <#elem as ::rref::Lendable>::PAYLOAD_NEEDS_DROP {
                    ::core::panic!("a `&mut` lent argument cannot have a destructor: a callee that swapped the handle out could drop the caller's value; lend it as `&RRef`, or pass it owned and return it")
                };
            }
        })
        .collect()
}

/// The method's signature with its arguments renamed to `__frond_a{i}`.
fn signature(m: &Method) -> Signature {
    let mut sig = m.sig.clone();
    let mut names = m.args.iter().map(|a| &a.name);
    for input in sig.inputs.iter_mut() {
        if let FnArg::Typed(pt) = input {
            let name = names.next().expect("one name per typed argument");
            pt.attrs.clear();
            *pt.pat = Pat::Verbatim(name.to_token_stream());
        }
    }
    sig
}

/// `Proxy<dyn Trait, R>`: lend, move the arguments in, make the protected call, move the
/// result out. The moves are spanned at their types: a type that is not Exchangeable is
/// reported there.
fn proxy_method(name: &Ident, m: &Method, retry_checks_here: bool) -> TokenStream {
    let sig = signature(m);
    let method = &m.sig.ident;
    let rt = quote!(<__FrondR as ::rref::rpc::Runtime>);
    // Inside the call the current domain is the callee (the runtime's contract): read it
    // there rather than passing the target into the call.
    let callee = quote!(__frond_callee);
    let mut lends = TokenStream::new();
    let mut ends = TokenStream::new();
    let mut moves = TokenStream::new();
    let mut swapped = quote!(false);
    // Whether an owned argument may hold RRefs: a compile-time constant, so calls without
    // RRef arguments pay nothing for the violation check.
    let mut moves_rrefs = quote!(false);
    let mut forget_args = TokenStream::new();
    for a in &m.args {
        let (arg, ty) = (&a.name, a.ty);
        match a.kind {
            Kind::Owned => {
                moves.extend(quote_spanned! {ty.span()=>
                    <#ty as ::rref::Exchangeable>::move_to(&#arg, #callee, #rt::move_token(__frond_caller));
                });
                moves_rrefs.extend(quote_spanned!(ty.span()=> || <#ty as ::rref::Exchangeable>::HAS_RREFS));
                forget_args.extend(quote!(let _ = ::core::mem::ManuallyDrop::new(#arg);));
            }
            Kind::Lent { mutable: false } => {
                let guard = format_ident!("{}_lend", arg);
                lends.extend(quote_spanned!(ty.span()=>
                    let #guard = ::rref::lend(&*#arg, #rt::move_token(__frond_caller));));
                ends.extend(quote!(::core::mem::drop(#guard);));
            }
            Kind::Lent { mutable: true } => {
                // The callee gets an alias of the caller's handle, never the handle itself.
                let guard = format_ident!("{}_lend", arg);
                lends.extend(quote_spanned! {ty.span()=>
                    let mut #guard = ::rref::lend_mut(#arg, #rt::move_token(__frond_caller));
                    let #arg = &mut *#guard;
                });
                swapped.extend(quote!(|| !::rref::MutLend::intact(&#guard)));
                ends.extend(quote!(::core::mem::drop(#guard);));
            }
            Kind::Remote(inner) => moves.extend(quote_spanned! {inner.span()=>
                let #arg = ::rref::rpc::adopt::<#inner, __FrondR>(#arg, __frond_caller, __frond_caller_gen);
            }),
        }
    }
    let args = m.args.iter().map(|a| &a.name);
    let (ret, ret_kind) = (m.ret.0, &m.ret.1);
    // Inside the call, still in the callee's context: its result's RRefs move to the
    // caller now. Once the call has switched back, the callee may be killed at any moment
    // and its blocks reclaimed; blocks already the caller's are not. A result holding a
    // block the callee did not own is forgotten, and the call's value says so
    // (`Err(())`): the callee is killed after the call.
    let take_result = match ret_kind {
        Kind::Remote(_) => quote!(::core::result::Result::Ok(__frond_v)),
        _ => quote_spanned!(ret.span()=> match __frond_v {
            ::core::result::Result::Ok(__frond_v) => {
                <#ret as ::rref::Exchangeable>::move_to(&__frond_v, __frond_caller, #rt::move_token(#callee));
                if <#ret as ::rref::Exchangeable>::HAS_RREFS && #rt::take_violation() {
                    let _ = ::core::mem::ManuallyDrop::new(__frond_v);
                    ::core::result::Result::Err(())
                } else {
                    ::core::result::Result::Ok(::core::result::Result::Ok(__frond_v))
                }
            }
            ::core::result::Result::Err(__frond_e) => ::core::result::Result::Ok(::core::result::Result::Err(__frond_e)),
        }),
    };
    // Only a result that may hold RRefs can be refused (a constant, so the check vanishes
    // for the others).
    let kill_possible = match ret_kind {
        Kind::Remote(_) => quote!(false),
        _ => quote_spanned!(ret.span()=> <#ret as ::rref::Exchangeable>::HAS_RREFS),
    };
    let success = match ret_kind {
        Kind::Remote(inner) => quote_spanned! {inner.span()=>
            ::core::result::Result::Ok(::rref::rpc::adopt::<#inner, __FrondR>(
                __frond_v,
                ::rref::rpc::Target::domain(__frond_t),
                ::rref::rpc::Target::generation(__frond_t),
            ))
        },
        _ => quote!(::core::result::Result::Ok(__frond_v)),
    };
    let refuse_args = if forget_args.is_empty() {
        TokenStream::new()
    } else {
        quote! {
            if (#moves_rrefs) && #rt::take_violation() {
                // An argument was not the caller's to give: the callee never sees it.
                #forget_args
                return ::core::result::Result::Ok(::core::result::Result::Err(::rref::rpc::RpcError::Refused));
            }
        }
    };
    let check_swaps = if swapped.to_string() == "false" {
        ends
    } else {
        quote! {
            if #swapped {
                // The callee swapped a handle out of a `&mut` lend and may hold the caller's
                // block: kill it before the lend ends. Its result is already the caller's.
                #rt::kill(__frond_t);
                ::core::mem::drop(__frond_r);
                #ends
                #rt::leave();
                return ::core::result::Result::Err(::rref::rpc::RpcError::Refused);
            }
            #ends
        }
    };
    let checks = if retry_checks_here {
        retry_checks(m)
    } else {
        TokenStream::new()
    };
    let cfgs = &m.cfgs;
    quote! {
        #(#cfgs)*
        // Inline: a recovery proxy's method calls this one, and the proxies reached
        // through `Remote` are called through their vtable anyway.
        #[inline]
        #sig {
            #checks
            let __frond_t = ::rref::rpc::Proxy::target(self);
            let (__frond_caller, __frond_caller_gen) = #rt::current();
            #lends
            let __frond_r = #rt::call(__frond_t, move |__frond_obj| {
                #[allow(unused_variables)]
                let (__frond_callee, _) = #rt::current();
                #moves
                #refuse_args
                let __frond_v = <dyn #name as #name>::#method(__frond_obj, #(#args),*);
                #take_result
            });
            #check_swaps
            // Lends ended: now a caller that died during the call is unwound (the call
            // then returned an error, so the successful path skips the check).
            if ::core::result::Result::is_err(&__frond_r) {
                #rt::leave();
            }
            match __frond_r {
                ::core::result::Result::Ok(::core::result::Result::Ok(::core::result::Result::Ok(__frond_v))) => #success,
                ::core::result::Result::Ok(::core::result::Result::Ok(::core::result::Result::Err(__frond_e))) => {
                    ::core::result::Result::Err(__frond_e)
                }
                ::core::result::Result::Ok(::core::result::Result::Err(())) => {
                    if #kill_possible {
                        // The callee returned a block it did not own (or a lent one).
                        #rt::kill(__frond_t);
                    }
                    ::core::result::Result::Err(::rref::rpc::RpcError::Refused)
                }
                ::core::result::Result::Err(__frond_e) => ::core::result::Result::Err(__frond_e),
            }
        }
    }
}

/// `Recover<dyn Trait, R>`: call the live generation through a plain proxy; after a crash,
/// retry idempotent methods (up to `MAX_RETRIES`), and restart the callee for the next caller
/// otherwise.
fn recover_method(name: &Ident, m: &Method) -> TokenStream {
    let sig = signature(m);
    let method = &m.sig.ident;
    let rt = quote!(<__FrondR as ::rref::rpc::Runtime>);
    let args = m.args.iter().map(|a| {
        let arg = &a.name;
        match a.kind {
            // Reborrow: the argument is passed again on a retry.
            Kind::Lent { mutable: true } => quote!(&mut *#arg),
            Kind::Lent { mutable: false } => quote!(&*#arg),
            _ => quote!(#arg),
        }
    });
    let call = quote! {
        let __frond_t = #rt::recover(::rref::rpc::Recover::target(self))?;
        let __frond_r = <::rref::rpc::Proxy<dyn #name, __FrondR> as #name>::#method(
            ::rref::rpc::Proxy::<dyn #name, __FrondR>::from_target(&__frond_t),
            #(#args),*
        );
    };
    let body = if m.idempotent {
        let checks = retry_checks(m);
        quote! {
            #checks
            let mut __frond_attempt = 0u32;
            loop {
                #call
                match __frond_r {
                    ::core::result::Result::Err(__frond_e)
                        if ::rref::rpc::RpcError::is_crash(__frond_e)
                            && __frond_attempt < ::rref::rpc::MAX_RETRIES =>
                    {
                        __frond_attempt += 1;
                    }
                    __frond_r => return __frond_r,
                }
            }
        }
    } else {
        quote! {
            #call
            if let ::core::result::Result::Err(__frond_e) = &__frond_r {
                if ::rref::rpc::RpcError::is_crash(*__frond_e) {
                    // Restart now, so the next caller finds the domain alive.
                    let _ = #rt::recover(&__frond_t);
                }
            }
            __frond_r
        }
    };
    let cfgs = &m.cfgs;
    quote!(#(#cfgs)* #sig { #body })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Token text without whitespace, so assertions do not depend on token spacing.
    fn squash(t: impl ToString) -> String {
        t.to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    }

    fn expand(attr: TokenStream, item: TokenStream) -> String {
        squash(expand_interface(attr, item).unwrap())
    }

    fn assert_has(out: &str, want: &str) {
        assert!(out.contains(&squash(want)), "`{want}` missing in:\n{out}");
    }

    fn echo() -> TokenStream {
        quote! {
            pub trait Echo: Send + Sync {
                fn ping(&self) -> RpcResult<()>;
                #[idempotent]
                fn add(&self, a: u64, b: u64) -> RpcResult<u64>;
                fn take(&self, buf: RRef<[u8; 64]>) -> RpcResult<RRef<[u8; 64]>>;
                #[idempotent]
                fn peek(&self, lent: &RRef<Data>, also: &mut RRefVec<u32>) -> RpcResult<u64>;
                fn make(&self, seed: u64) -> RpcResult<Remote<dyn Echo>>;
                fn give(&self, cb: Remote<dyn Echo>) -> RpcResult<()>;
            }
        }
    }

    fn error(attr: TokenStream, item: TokenStream) -> String {
        expand_interface(attr, item)
            .expect_err("should be rejected")
            .to_string()
    }

    #[test]
    fn trait_is_reemitted_without_idempotent() {
        let out = expand(quote!(recover), echo());
        assert_has(
            &out,
            "pub trait Echo: Send + Sync { fn ping(&self) -> RpcResult<()>;",
        );
        assert!(!out.contains("idempotent"), "{out}");
    }

    #[test]
    fn proxyable_views() {
        let out = expand(quote!(recover), echo());
        assert_has(&out, "impl ::rref::rpc::Proxyable for dyn Echo");
        assert_has(
            &out,
            "::rref::rpc::Proxy::<Self, R>::from_target(__frond_t)",
        );
        assert_has(
            &out,
            "::rref::rpc::Recover::<Self, R>::from_target(__frond_t)",
        );
        let out = expand(quote!(), echo());
        assert_has(
            &out,
            "-> ::core::option::Option<::rref::rpc::ViewFn<Self>> { ::core::option::Option::None }",
        );
        assert!(!out.contains("Recover"), "{out}");
    }

    #[test]
    fn proxy_moves_owned_args_in_and_results_out() {
        let out = expand(quote!(), echo());
        assert_has(
            &out,
            "impl<__FrondR: ::rref::rpc::Runtime> Echo for ::rref::rpc::Proxy<dyn Echo, __FrondR>",
        );
        assert_has(
            &out,
            "fn take(&self, __frond_a0: RRef<[u8; 64]>) -> RpcResult<RRef<[u8; 64]>>",
        );
        let take = method(&out, "Proxy<dyn Echo, __FrondR>", "take");
        let call = take.find("::call(").unwrap();
        let moved_in = squash("<RRef<[u8; 64]> as ::rref::Exchangeable>::move_to(&__frond_a0, __frond_callee, <__FrondR as ::rref::rpc::Runtime>::move_token(__frond_caller));");
        assert!(
            take.find(&moved_in).is_some_and(|i| i > call),
            "moved inside the call: {take}"
        );
        assert_has(take, "<dyn Echo as Echo>::take(__frond_obj, __frond_a0)");
        // A refused move stops the call before the method runs.
        let refused = squash("if (false || <RRef<[u8; 64]> as ::rref::Exchangeable>::HAS_RREFS) && <__FrondR as ::rref::rpc::Runtime>::take_violation() { let _ = ::core::mem::ManuallyDrop::new(__frond_a0); return ::core::result::Result::Ok(::core::result::Result::Err(::rref::rpc::RpcError::Refused)); }");
        let method_call = take.find(&squash("<dyn Echo as Echo>::take(")).unwrap();
        assert!(
            take.find(&refused).is_some_and(|i| i > call && i < method_call),
            "violation checked between the moves and the method: {take}"
        );
        let moved_out = squash(
            "<RRef<[u8; 64]> as ::rref::Exchangeable>::move_to(&__frond_v, __frond_caller, <__FrondR as ::rref::rpc::Runtime>::move_token(__frond_callee));",
        );
        // The result moves to the caller inside the call (still in the callee's context),
        // after the method returned; a refused result kills the callee after the call.
        let moved_out_at = take.find(&moved_out);
        assert!(
            moved_out_at.is_some_and(|i| i > method_call),
            "moved out after the method, inside the call: {take}"
        );
        let call_end = take.find(&squash("});")).unwrap();
        assert!(moved_out_at.is_some_and(|i| i < call_end), "moved out inside the call: {take}");
        assert_has(take, "if <RRef<[u8; 64]> as ::rref::Exchangeable>::HAS_RREFS && <__FrondR as ::rref::rpc::Runtime>::take_violation() { let _ = ::core::mem::ManuallyDrop::new(__frond_v); ::core::result::Result::Err(()) }");
        assert_has(take, "::core::result::Result::Ok(::core::result::Result::Err(())) => { if <RRef<[u8; 64]> as ::rref::Exchangeable>::HAS_RREFS { <__FrondR as ::rref::rpc::Runtime>::kill(__frond_t); } ::core::result::Result::Err(::rref::rpc::RpcError::Refused) }");
        // No RRef arguments: no violation check at all.
        let add = method(&out, "Proxy<dyn Echo, __FrondR>", "add");
        assert!(!add.contains("take_violation()){"), "{add}");
    }

    #[test]
    fn proxy_lends_references_for_the_call_only() {
        let out = expand(quote!(), echo());
        let peek = method(&out, "Proxy<dyn Echo, __FrondR>", "peek");
        let tok = "<__FrondR as ::rref::rpc::Runtime>::move_token(__frond_caller)";
        assert_has(peek, &format!("let __frond_a0_lend = ::rref::lend(&*__frond_a0, {tok});"));
        // `&mut`: the callee gets an alias; a swapped alias kills it before the lend ends.
        assert_has(peek, &format!("let mut __frond_a1_lend = ::rref::lend_mut(__frond_a1, {tok}); let __frond_a1 = &mut *__frond_a1_lend;"));
        let call = peek.find("::call(").unwrap();
        assert!(peek.find("::lend(").unwrap() < call, "{peek}");
        let swap_check = peek.find(&squash("if false || !::rref::MutLend::intact(&__frond_a1_lend) { <__FrondR as ::rref::rpc::Runtime>::kill(__frond_t); ::core::mem::drop(__frond_r);")).unwrap();
        let end = peek.find(&squash("::core::mem::drop(__frond_a0_lend);")).unwrap();
        assert!(call < swap_check && swap_check < end, "{peek}");
        assert!(
            !peek.contains("move_to(&__frond_a"),
            "lent args are not moved: {peek}"
        );
    }

    #[test]
    fn proxy_adopts_remotes_both_ways() {
        let out = expand(quote!(), echo());
        assert_has(&out, "let __frond_a0 = ::rref::rpc::adopt::<dyn Echo, __FrondR>(__frond_a0, __frond_caller, __frond_caller_gen);");
        assert_has(
            &out,
            "::rref::rpc::adopt::<dyn Echo, __FrondR>(__frond_v, ::rref::rpc::Target::domain(__frond_t), ::rref::rpc::Target::generation(__frond_t),)",
        );
    }

    /// The text of method `name` in the impl for `self_ty`.
    fn method<'a>(out: &'a str, self_ty: &str, name: &str) -> &'a str {
        let imp = &out[out
            .find(&squash(format!("Echo for ::rref::rpc::{self_ty}")))
            .unwrap()..];
        let start = imp.find(&format!("fn{name}(")).unwrap();
        let len = imp[start + 2..]
            .find("fn")
            .map_or(imp.len() - start, |n| n + 2);
        &imp[start..start + len]
    }

    #[test]
    fn recover_loops_only_for_idempotent_methods() {
        let out = expand(quote!(recover), echo());
        assert_has(&out, "impl<__FrondR: ::rref::rpc::Runtime> Echo for ::rref::rpc::Recover<dyn Echo, __FrondR>");
        let add = method(&out, "Recover<dyn Echo, __FrondR>", "add");
        assert!(add.contains("loop{"), "{add}");
        assert_has(add, "let __frond_t = <__FrondR as ::rref::rpc::Runtime>::recover(::rref::rpc::Recover::target(self))?;");
        assert_has(add, "__frond_attempt < ::rref::rpc::MAX_RETRIES");
        assert_has(
            add,
            "<::rref::rpc::Proxy<dyn Echo, __FrondR> as Echo>::add(",
        );
        let take = method(&out, "Recover<dyn Echo, __FrondR>", "take");
        assert!(!take.contains("loop"), "{take}");
        assert_has(
            take,
            "let _ = <__FrondR as ::rref::rpc::Runtime>::recover(&__frond_t);",
        );
        let peek = method(&out, "Recover<dyn Echo, __FrondR>", "peek");
        assert!(peek.contains("loop{"), "{peek}");
        assert_has(peek, "::rref::rpc::Proxy::<dyn Echo, __FrondR>::from_target(&__frond_t), &*__frond_a0, &mut *__frond_a1)");
    }

    #[test]
    fn retry_checks_are_where_the_retry_is() {
        let out = expand(quote!(), echo());
        let add = method(&out, "Proxy<dyn Echo, __FrondR>", "add");
        assert_has(
            add,
            "::rref::rpc::assert_retryable::<u64>(); ::rref::rpc::assert_retryable::<u64>();",
        );
        let peek = method(&out, "Proxy<dyn Echo, __FrondR>", "peek");
        assert!(
            !peek.contains("assert_retryable"),
            "lent references are Copy: {peek}"
        );
        let out = expand(quote!(recover), echo());
        let add = method(&out, "Proxy<dyn Echo, __FrondR>", "add");
        assert!(!add.contains("assert_retryable"), "{add}");
        let add = method(&out, "Recover<dyn Echo, __FrondR>", "add");
        assert_has(add, "::rref::rpc::assert_retryable::<u64>();");
        let take = method(&out, "Recover<dyn Echo, __FrondR>", "take");
        assert!(!take.contains("assert_retryable"), "not idempotent: {take}");
    }

    #[test]
    fn rule_violations_are_explained() {
        let cases: &[(TokenStream, &str)] = &[
            (
                quote!(
                    fn f(&self, x: &u8) -> RpcResult<()>;
                ),
                "only &self and lent",
            ),
            (
                quote!(
                    fn f(&self, x: Box<u8>) -> RpcResult<()>;
                ),
                "`Box` cannot be exchanged",
            ),
            (
                quote!(
                    fn f(&self) -> RpcResult<String>;
                ),
                "`String` cannot be exchanged",
            ),
            (
                quote!(
                    fn f(&self, x: (u8, RefCell<u8>)) -> RpcResult<()>;
                ),
                "`RefCell` cannot",
            ),
            (
                quote!(
                    fn f(&self, x: impl Send) -> RpcResult<()>;
                ),
                "`impl Trait` cannot",
            ),
            (
                quote!(
                    fn f(&self, x: Option<Remote<dyn E>>) -> RpcResult<()>;
                ),
                "Remote may only be",
            ),
            (
                quote!(
                    fn f(&self, x: Remote<u8>) -> RpcResult<()>;
                ),
                "write Remote<dyn Trait>",
            ),
            (
                quote!(
                    fn f(&self);
                ),
                "interface methods return RpcResult<_>",
            ),
            (
                quote!(
                    fn f(&self) -> Result<(), E>;
                ),
                "interface methods return RpcResult<_>",
            ),
            (
                quote!(
                    fn f(&mut self) -> RpcResult<()>;
                ),
                "take &self",
            ),
            (
                quote!(
                    fn f(self) -> RpcResult<()>;
                ),
                "take &self",
            ),
            (
                quote!(
                    fn f() -> RpcResult<()>;
                ),
                "take &self",
            ),
            (
                quote!(
                    fn f<T>(&self, t: T) -> RpcResult<()>;
                ),
                "cannot be generic",
            ),
            (
                quote!(
                    fn f(&self) -> RpcResult<()> {
                        Ok(())
                    }
                ),
                "default body",
            ),
            (
                quote!(
                    async fn f(&self) -> RpcResult<()>;
                ),
                "`async`",
            ),
            (
                quote!(
                    unsafe fn f(&self) -> RpcResult<()>;
                ),
                "`unsafe`",
            ),
            (
                quote!(
                    type T;
                ),
                "associated types",
            ),
            (
                quote!(
                    const N: u8;
                ),
                "associated types or consts",
            ),
            (
                quote!(
                    #[idempotent(yes)]
                    fn f(&self) -> RpcResult<()>;
                ),
                "unexpected token",
            ),
        ];
        for (method, want) in cases {
            let err = error(quote!(), quote!(trait T { #method }));
            assert!(
                err.contains(want),
                "{method}: `{err}` does not say `{want}`"
            );
        }
        assert!(error(quote!(retry), echo()).starts_with("unknown #[interface] argument"));
        assert!(
            error(quote!(recover, recover), echo()).starts_with("unknown #[interface] argument")
        );
    }

    #[test]
    fn lifetimes_are_not_generics() {
        expand(
            quote!(),
            quote!(
                trait T {
                    fn f<'a>(&'a self, x: &'a RRef<u8>) -> RpcResult<()>;
                }
            ),
        );
    }
}
