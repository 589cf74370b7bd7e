//! Syntactic type checks shared by `#[derive(Exchangeable)]` and `#[interface]`.
//!
//! The `Exchangeable` bound is the real guarantee; these checks only turn the commonest
//! mistakes into an error that says *why* the type cannot cross a boundary, at its span.

use syn::{Error, GenericArgument, PathArguments, Result, Type, TypePath};

/// Where a checked type appears: the reason given for a reference differs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A field of a `#[derive(Exchangeable)]` type.
    Field,
    /// An interface argument or the `T` of its `RpcResult<T>`.
    Interface,
}

pub(crate) const REF_IN_INTERFACE: &str =
    "only &self and lent &RRef<T>/&mut RRef<T> may be references: \
     anything else would let the callee keep a pointer into the caller's memory";
const REF_IN_FIELD: &str =
    "references cannot be exchanged: they point into the sending domain's memory; \
     use RRef<T>";
pub(crate) const NESTED_REMOTE: &str =
    "Remote may only be a whole argument or the whole return value: the proxy must see it to wrap it";

/// The RRef family: the only types an interface argument may borrow (lend).
pub(crate) const LENDABLE: &[&str] = &["RRef", "RRefVec", "RRefDeque"];

/// Rejects `ty` if it is or contains something that cannot cross a domain boundary.
pub(crate) fn check(ty: &Type, place: Place) -> Result<()> {
    let reason = |msg: &str| Err(Error::new_spanned(ty, msg));
    match ty {
        Type::Reference(_) => match place {
            Place::Field => reason(REF_IN_FIELD),
            Place::Interface => reason(REF_IN_INTERFACE),
        },
        Type::Ptr(_) => reason(
            "raw pointers cannot be exchanged: they point into the sending domain's memory; use RRef<T>",
        ),
        Type::TraitObject(_) => reason(
            "trait objects cannot be exchanged: their data and vtable live in the sending domain; \
             pass an interface as a whole Remote<dyn Trait> argument",
        ),
        Type::ImplTrait(_) => reason(
            "`impl Trait` cannot be exchanged: a proxy needs one concrete type; \
             pass an interface as a whole Remote<dyn Trait> argument",
        ),
        Type::BareFn(_) => reason(
            "function pointers cannot be exchanged: they point into the sending domain's code",
        ),
        Type::Array(a) => check(&a.elem, place),
        Type::Slice(s) => check(&s.elem, place),
        Type::Paren(p) => check(&p.elem, place),
        Type::Group(g) => check(&g.elem, place),
        Type::Tuple(t) => t.elems.iter().try_for_each(|e| check(e, place)),
        Type::Path(p) => check_path(ty, p, place),
        // Macros, `!`, `_` and verbatim tokens: left to the `Exchangeable` bound.
        _ => Ok(()),
    }
}

fn check_path(ty: &Type, p: &TypePath, place: Place) -> Result<()> {
    if let Some(q) = &p.qself {
        check(&q.ty, place)?;
    }
    if let Some(last) = p.path.segments.last() {
        if let Some(msg) = forbidden(&last.ident.to_string()) {
            return Err(Error::new_spanned(ty, msg));
        }
        if last.ident == "PhantomData" {
            return Ok(()); // holds no data: `PhantomData<&'a T>` is fine
        }
    }
    for seg in &p.path.segments {
        if let PathArguments::AngleBracketed(args) = &seg.arguments {
            for arg in &args.args {
                match arg {
                    GenericArgument::Type(t) => check(t, place)?,
                    GenericArgument::AssocType(a) => check(&a.ty, place)?,
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// The reason a type named `name` (last path segment) can never be exchanged.
fn forbidden(name: &str) -> Option<String> {
    let private_heap = |instead: &str| {
        format!(
            "`{name}` cannot be exchanged: it points into the sending domain's private heap; use {instead}"
        )
    };
    Some(match name {
        "Box" | "Rc" | "Arc" => private_heap("RRef<T>"),
        "Vec" => private_heap("RRefVec<T>"),
        "String" => private_heap("RRefVec<u8>"),
        "Cell" | "RefCell" | "UnsafeCell" | "OnceCell" | "Mutex" | "RwLock" => interior(name),
        _ if name.starts_with("Atomic") => interior(name),
        "Remote" => NESTED_REMOTE.to_string(),
        _ => return None,
    })
}

fn interior(name: &str) -> String {
    format!(
        "`{name}` cannot be exchanged: interior mutability would let a domain change data it \
         only borrowed through a lent, read-only reference"
    )
}

/// Whether `ty` is a path whose last segment is one of `names` (`rref::RRef<T>` is an `RRef`).
pub(crate) fn last_segment_is(ty: &Type, names: &[&str]) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| names.iter().any(|n| s.ident == n)),
        Type::Group(g) => last_segment_is(&g.elem, names),
        Type::Paren(p) => last_segment_is(&p.elem, names),
        _ => false,
    }
}

/// The generic type arguments of `ty`'s last path segment (empty if it has none).
pub(crate) fn type_args(ty: &Type) -> Vec<&Type> {
    let Type::Path(p) = ty else { return Vec::new() };
    let Some(last) = p.path.segments.last() else {
        return Vec::new();
    };
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return Vec::new();
    };
    args.args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn err(ty: Type, place: Place) -> String {
        check(&ty, place)
            .expect_err("type should be rejected")
            .to_string()
    }

    #[test]
    fn plain_data_passes() {
        for ty in [
            parse_quote!(u64),
            parse_quote!([u8; 64]),
            parse_quote!((u32, Option<RRef<Data>>)),
            parse_quote!(RRefDeque<[u8; 4], 32>),
            parse_quote!(Result<(), RpcError>),
            parse_quote!(core::marker::PhantomData<&'a dyn Send>),
        ] {
            check(&ty, Place::Interface).unwrap();
            check(&ty, Place::Field).unwrap();
        }
    }

    #[test]
    fn pointers_and_private_heap_are_rejected_wherever_nested() {
        assert!(err(parse_quote!(&u8), Place::Interface).starts_with("only &self"));
        assert!(err(parse_quote!(&u8), Place::Field).starts_with("references cannot"));
        assert!(err(parse_quote!(*const u8), Place::Field).starts_with("raw pointers"));
        assert!(err(parse_quote!(Option<Box<u8>>), Place::Field).starts_with("`Box` cannot"));
        assert!(
            err(parse_quote!(RRef<(u8, std::vec::Vec<u8>)>), Place::Field).contains("RRefVec<T>")
        );
        assert!(err(parse_quote!([String; 2]), Place::Field).starts_with("`String`"));
        assert!(err(parse_quote!(Box<dyn Fn()>), Place::Field).starts_with("`Box`"));
        assert!(err(parse_quote!(Option<dyn Send>), Place::Field).starts_with("trait objects"));
        assert!(err(parse_quote!(Arc<u8>), Place::Field).starts_with("`Arc`"));
        assert!(err(parse_quote!(fn(u8)), Place::Field).starts_with("function pointers"));
    }

    #[test]
    fn interior_mutability_is_rejected() {
        for name in [
            "Cell",
            "RefCell",
            "UnsafeCell",
            "OnceCell",
            "Mutex",
            "RwLock",
            "AtomicU64",
        ] {
            let ty: Type = syn::parse_str(&format!("(u8, core::cell::{name}<u8>)")).unwrap();
            assert!(
                err(ty, Place::Field).contains("interior mutability"),
                "{name}"
            );
        }
    }

    #[test]
    fn nested_remote_is_rejected() {
        assert_eq!(
            err(parse_quote!(Option<Remote<dyn Echo>>), Place::Interface),
            NESTED_REMOTE
        );
    }
}
