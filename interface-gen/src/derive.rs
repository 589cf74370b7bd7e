//! `#[derive(Exchangeable)]`: structs and enums whose every field is exchangeable.

use crate::types::{self, Place};
use crate::Errors;
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{parse_quote_spanned, Data, DeriveInput, Error, Fields, Ident, Result};

const UNION: &str = "unions cannot be exchanged: nothing records which field is live, \
     so the RRefs inside could not be moved to the receiver";

/// Expands `#[derive(Exchangeable)]` on `input` (the item the derive is attached to).
pub fn expand_derive(input: TokenStream) -> Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let to = Ident::new("__frond_to", Span::mixed_site());

    // (pattern, fields) for every shape the value can have.
    let shapes: Vec<(TokenStream, &Fields)> = match &input.data {
        Data::Union(u) => return Err(Error::new(u.union_token.span, UNION)),
        Data::Struct(s) => vec![(quote!(Self), &s.fields)],
        Data::Enum(e) => e
            .variants
            .iter()
            .map(|v| {
                let name = &v.ident;
                (quote!(Self::#name), &v.fields)
            })
            .collect(),
    };
    let fields = || shapes.iter().flat_map(|(_, f)| f.iter());

    let mut errors = Errors::default();
    for field in fields() {
        errors.ok(types::check(&field.ty, Place::Field));
    }
    errors.finish()?;

    // A field whose type mentions a type parameter gets a bound, at the field's type, so a
    // generic type is Exchangeable exactly when its fields are. Other fields are checked where
    // `move_to` moves them (same span, same message): a bound on them would be either trivial
    // or, for a type recursive through an RRef, an endless cycle.
    let mut generics = input.generics.clone();
    let params: Vec<Ident> = generics.type_params().map(|p| p.ident.clone()).collect();
    let itself = [input.ident.clone(), Ident::new("Self", Span::call_site())];
    let where_clause = generics.make_where_clause();
    for field in fields() {
        let ty = &field.ty;
        let tokens = ty.to_token_stream();
        if mentions(&tokens, &params) && !mentions(&tokens, &itself) {
            where_clause
                .predicates
                .push(parse_quote_spanned!(ty.span()=> #ty: ::rref::Exchangeable));
        }
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    let arms = shapes.iter().map(|(path, fields)| {
        let bind: Vec<Ident> = (0..fields.len())
            .map(|i| format_ident!("__frond_f{i}"))
            .collect();
        let pattern = match fields {
            Fields::Named(named) => {
                let names = named.named.iter().map(|f| &f.ident);
                quote!(#path { #(#names: #bind),* })
            }
            Fields::Unnamed(_) => quote!(#path(#(#bind),*)),
            Fields::Unit => quote!(#path),
        };
        let moves = fields.iter().zip(&bind).map(|(f, b)| {
            let ty = &f.ty;
            quote_spanned!(ty.span()=> <#ty as ::rref::Exchangeable>::move_to(#b, #to, __frond_token);)
        });
        quote!(#pattern => { #(#moves)* })
    });
    // `match *self {}` is the only way to match an empty enum behind a reference.
    let body = if shapes.is_empty() {
        quote!(match *self {})
    } else {
        quote!(match self { #(#arms)* })
    };

    // HAS_RREFS: the OR over every field. FINGERPRINT: the type's name, size and alignment,
    // then per variant its name (and, for fieldless enums, its discriminant) and per field
    // its name and its type's fingerprint. A field whose type mentions the type itself
    // (recursion through an RRef) contributes its spelling instead: its fingerprint would be
    // a const-evaluation cycle.
    let has_rrefs = fields().map(|f| {
        let ty = &f.ty;
        quote_spanned!(ty.span()=> || <#ty as ::rref::Exchangeable>::HAS_RREFS)
    });
    let fp = quote!(::rref::fingerprint);
    let fieldless = matches!(&input.data, Data::Enum(e) if !e.variants.is_empty()
        && e.variants.iter().all(|v| matches!(v.fields, Fields::Unit)));
    let shape_fps = shapes.iter().map(|(path, fields)| {
        let variant = path.to_string();
        let discriminant = fieldless.then(|| quote!(__frond_h = #fp::mix(__frond_h, (#path as i128) as u64);));
        let field_fps = fields.iter().enumerate().map(|(i, f)| {
            let ty = &f.ty;
            let fname = f.ident.as_ref().map_or_else(|| i.to_string(), |id| id.to_string());
            let ty_fp = if mentions(&ty.to_token_stream(), &itself) {
                let spelled = ty.to_token_stream().to_string();
                quote!(#fp::str(#spelled))
            } else {
                quote_spanned!(ty.span()=> <#ty as ::rref::Exchangeable>::FINGERPRINT)
            };
            quote!(__frond_h = #fp::mix(#fp::mix(__frond_h, #fp::str(#fname)), #ty_fp);)
        });
        quote! {
            __frond_h = #fp::mix(__frond_h, #fp::str(#variant));
            #discriminant
            #(#field_fps)*
        }
    });
    let type_name = input.ident.to_string();

    // Sound: every field is Exchangeable (by the bounds, or the body would not compile), and
    // `move_to` moves each of them.
    let name = &input.ident;
    Ok(quote! {
        unsafe impl #impl_generics ::rref::Exchangeable for #name #ty_generics #where_clause {
            const HAS_RREFS: bool = false #(#has_rrefs)*;
            const FINGERPRINT: u64 = {
                let mut __frond_h = #fp::leaf(
                    #type_name,
                    ::core::mem::size_of::<Self>(),
                    ::core::mem::align_of::<Self>(),
                );
                #(#shape_fps)*
                __frond_h
            };
            #[inline]
            fn move_to(&self, #to: ::rref::DomainId, __frond_token: ::rref::MoveToken) {
                let _ = #to;
                #body
            }
        }
    })
}

/// Whether `tokens` contain one of `names`.
fn mentions(tokens: &TokenStream, names: &[Ident]) -> bool {
    tokens.clone().into_iter().any(|t| match t {
        TokenTree::Ident(i) => names.contains(&i),
        TokenTree::Group(g) => mentions(&g.stream(), names),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(input: TokenStream) -> String {
        expand_derive(input).unwrap().to_string().replace(' ', "")
    }

    #[test]
    fn struct_bounds_and_moves_every_field() {
        let out = expand(quote! {
            struct Packet<T> { head: RRef<[u8; 16]>, body: T, len: u32 }
        });
        assert!(
            out.contains("unsafeimpl<T>::rref::ExchangeableforPacket<T>where"),
            "{out}"
        );
        assert!(
            out.contains("whereT:::rref::Exchangeable{"),
            "only the generic field is bound: {out}"
        );
        assert!(
            out.contains("Self{head:__frond_f0,body:__frond_f1,len:__frond_f2}"),
            "{out}"
        );
        assert!(
            out.contains("<Tas::rref::Exchangeable>::move_to(__frond_f1,__frond_to,__frond_token);"),
            "{out}"
        );
        assert!(
            out.contains("<u32as::rref::Exchangeable>::move_to(__frond_f2,__frond_to,__frond_token);"),
            "{out}"
        );
    }

    #[test]
    fn tuple_unit_and_enum_shapes() {
        let out = expand(quote!(
            struct Pair(u8, RRef<u8>);
        ));
        assert!(out.contains("Self(__frond_f0,__frond_f1)=>"), "{out}");
        let out = expand(quote!(
            struct Unit;
        ));
        assert!(out.contains("matchself{Self=>{}}"), "{out}");
        let out = expand(quote! {
            enum Msg<'a, T: Copy> where T: Send { A, B(T), C { x: RRef<T>, y: u8 } }
        });
        assert!(out.contains("impl<'a,T:Copy>::rref::ExchangeableforMsg<'a,T>whereT:Send,T:::rref::Exchangeable,RRef<T>:::rref::Exchangeable{"), "{out}");
        assert!(out.contains("Self::A=>{}"), "{out}");
        assert!(out.contains("Self::B(__frond_f0)=>{"), "{out}");
        assert!(
            out.contains("Self::C{x:__frond_f0,y:__frond_f1}=>{"),
            "{out}"
        );
        let out = expand(quote!(
            enum List<T: Copy> {
                Nil,
                Cons(T, RRef<List<T>>),
            }
        ));
        assert!(
            out.contains("whereT:::rref::Exchangeable{"),
            "no bound on the recursive field: {out}"
        );
        let out = expand(quote!(
            enum Never {}
        ));
        assert!(out.contains("match*self{}"), "{out}");
    }

    #[test]
    fn rejects_unions_and_forbidden_fields() {
        let err = expand_derive(quote!(union U { a: u32, b: f32 })).unwrap_err();
        assert!(err.to_string().starts_with("unions cannot be exchanged"));
        let err = expand_derive(quote!(
            struct S {
                a: Box<u8>,
                b: core::cell::Cell<u8>,
            }
        ))
        .unwrap_err();
        let all: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all[0].starts_with("`Box` cannot be exchanged"));
        assert!(all[1].starts_with("`Cell` cannot be exchanged"));
    }
}
