//! [`Exchangeable`] for the built-in types: primitives, arrays, tuples, `Option`, `Result`,
//! `PhantomData` and [`DomainId`].

use crate::fingerprint::{leaf, mix, str};
use crate::{DomainId, Exchangeable, MoveToken};
use core::marker::PhantomData;
use core::mem::{align_of, size_of};

macro_rules! plain {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: plain data: no pointers, no interior mutability, no RRef to re-tag.
        unsafe impl Exchangeable for $t {
            const HAS_RREFS: bool = false;
            const FINGERPRINT: u64 = leaf(stringify!($t), size_of::<$t>(), align_of::<$t>());
            #[inline(always)]
            fn move_to(&self, _to: DomainId, _token: MoveToken) {}
        }
    )*};
}
plain!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, bool, char, f32, f64, (), DomainId);

// SAFETY: holds no data at all.
unsafe impl<T: ?Sized> Exchangeable for PhantomData<T> {
    const HAS_RREFS: bool = false;
    const FINGERPRINT: u64 = str("PhantomData");
    #[inline(always)]
    fn move_to(&self, _to: DomainId, _token: MoveToken) {}
}

// SAFETY: exchangeable elements, every one of which is moved.
unsafe impl<T: Exchangeable, const N: usize> Exchangeable for [T; N] {
    const HAS_RREFS: bool = T::HAS_RREFS;
    const FINGERPRINT: u64 = mix(mix(str("[T; N]"), T::FINGERPRINT), N as u64);
    fn move_to(&self, to: DomainId, token: MoveToken) {
        for item in self {
            item.move_to(to, token);
        }
    }
}

// SAFETY: an exchangeable value, moved if present.
unsafe impl<T: Exchangeable> Exchangeable for Option<T> {
    const HAS_RREFS: bool = T::HAS_RREFS;
    const FINGERPRINT: u64 = mix(str("Option"), T::FINGERPRINT);
    fn move_to(&self, to: DomainId, token: MoveToken) {
        if let Some(v) = self {
            v.move_to(to, token);
        }
    }
}

// SAFETY: an exchangeable value in either case, moved.
unsafe impl<T: Exchangeable, E: Exchangeable> Exchangeable for Result<T, E> {
    const HAS_RREFS: bool = T::HAS_RREFS || E::HAS_RREFS;
    const FINGERPRINT: u64 = mix(mix(str("Result"), T::FINGERPRINT), E::FINGERPRINT);
    fn move_to(&self, to: DomainId, token: MoveToken) {
        match self {
            Ok(v) => v.move_to(to, token),
            Err(e) => e.move_to(to, token),
        }
    }
}

macro_rules! tuple {
    ($($name:ident)+) => {
        // SAFETY: exchangeable fields, every one of which is moved.
        unsafe impl<$($name: Exchangeable),+> Exchangeable for ($($name,)+) {
            const HAS_RREFS: bool = false $(|| $name::HAS_RREFS)+;
            const FINGERPRINT: u64 = {
                let mut h = str("(..)");
                $(h = mix(h, $name::FINGERPRINT);)+
                h
            };
            fn move_to(&self, to: DomainId, token: MoveToken) {
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                $($name.move_to(to, token);)+
            }
        }
    };
}
tuple!(A);
tuple!(A B);
tuple!(A B C);
tuple!(A B C D);
tuple!(A B C D E);
tuple!(A B C D E F);
tuple!(A B C D E F G);
tuple!(A B C D E F G H);
