//! [`Exchangeable`] for the built-in types: primitives, arrays, tuples, `Option`, `Result`,
//! `PhantomData` and [`DomainId`].

use crate::{DomainId, Exchangeable, MoveToken};
use core::marker::PhantomData;

macro_rules! plain {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: plain data: no pointers, no interior mutability, no RRef to re-tag.
        unsafe impl Exchangeable for $t {
            #[inline(always)]
            fn move_to(&self, _to: DomainId, _token: MoveToken) {}
        }
    )*};
}
plain!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, bool, char, f32, f64, (), DomainId);

// SAFETY: holds no data at all.
unsafe impl<T: ?Sized> Exchangeable for PhantomData<T> {
    #[inline(always)]
    fn move_to(&self, _to: DomainId, _token: MoveToken) {}
}

// SAFETY: exchangeable elements, every one of which is moved.
unsafe impl<T: Exchangeable, const N: usize> Exchangeable for [T; N] {
    fn move_to(&self, to: DomainId, token: MoveToken) {
        for item in self {
            item.move_to(to, token);
        }
    }
}

// SAFETY: an exchangeable value, moved if present.
unsafe impl<T: Exchangeable> Exchangeable for Option<T> {
    fn move_to(&self, to: DomainId, token: MoveToken) {
        if let Some(v) = self {
            v.move_to(to, token);
        }
    }
}

// SAFETY: an exchangeable value in either case, moved.
unsafe impl<T: Exchangeable, E: Exchangeable> Exchangeable for Result<T, E> {
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
