//! Fingerprints: a type or interface that changed — even with every name kept — gets a
//! different fingerprint, and so does the entry hash of a domain kind exporting it, which
//! the loader compares (a domain built against the old interface crate is refused).

use frond_domrt::DomainKind;
use rref::rpc::Proxyable;
use rref::Exchangeable;

/// One version of an interface crate; `$len` is the type of `Data::len`.
macro_rules! version {
    ($m:ident, $len:ty) => {
        pub mod $m {
            use frond_interface_gen::{interface, Exchangeable};
            use rref::rpc::RpcResult;
            use rref::RRef;

            #[derive(Exchangeable)]
            pub struct Data {
                pub len: $len,
                pub body: RRef<[u8; 16]>,
            }

            #[interface]
            pub trait Echo: Send + Sync {
                fn take(&self, d: RRef<Data>) -> RpcResult<u64>;
            }

            frond_domrt::domain_kind!(pub EchoKind: () => dyn Echo);
        }
    };
}
version!(v1, u64);
version!(v1_again, u64);
version!(v2, u32);

#[test]
fn changing_a_field_type_changes_every_fingerprint_above_it() {
    assert_eq!(v1::EchoKind::SIG, v2::EchoKind::SIG, "the names are the same");
    assert_eq!(<v1::Data as Exchangeable>::FINGERPRINT, <v1_again::Data as Exchangeable>::FINGERPRINT);
    assert_eq!(<dyn v1::Echo as Proxyable>::FINGERPRINT, <dyn v1_again::Echo as Proxyable>::FINGERPRINT);
    assert_eq!(v1::EchoKind::ENTRY_HASH, v1_again::EchoKind::ENTRY_HASH);

    assert_ne!(<v1::Data as Exchangeable>::FINGERPRINT, <v2::Data as Exchangeable>::FINGERPRINT);
    assert_ne!(<dyn v1::Echo as Proxyable>::FINGERPRINT, <dyn v2::Echo as Proxyable>::FINGERPRINT);
    assert_ne!(v1::EchoKind::ENTRY_HASH, v2::EchoKind::ENTRY_HASH);
}

#[allow(dead_code)]
mod shapes {
    use frond_interface_gen::{interface, Exchangeable};
    use rref::rpc::{Remote, RpcResult};
    use rref::RRef;

    #[derive(Exchangeable)]
    pub struct Ab {
        pub a: u32,
        pub b: u32,
    }
    #[derive(Exchangeable)]
    pub struct Ba {
        pub b: u32,
        pub a: u32,
    }
    #[derive(Exchangeable)]
    pub enum E1 {
        X,
        Y,
    }
    #[derive(Exchangeable)]
    pub enum E2 {
        X = 1,
        Y,
    }
    /// Recursive through an RRef: no const cycle.
    #[derive(Exchangeable)]
    pub enum List {
        Nil,
        Cons(u8, RRef<List>),
    }

    #[interface]
    pub trait Lend: Send + Sync {
        fn f(&self, x: &RRef<u64>) -> RpcResult<()>;
    }
    #[interface]
    pub trait LendMut: Send + Sync {
        fn f(&self, x: &mut RRef<u64>) -> RpcResult<()>;
    }
    #[interface]
    pub trait Idem: Send + Sync {
        #[idempotent]
        fn f(&self, x: &RRef<u64>) -> RpcResult<()>;
    }
    /// Interfaces that mention each other: `Remote<dyn X>` contributes X's name only.
    #[interface]
    pub trait Ping: Send + Sync {
        fn pong(&self) -> RpcResult<Remote<dyn Pong>>;
    }
    #[interface]
    pub trait Pong: Send + Sync {
        fn ping(&self, p: Remote<dyn Ping>) -> RpcResult<()>;
    }
}

#[test]
fn field_order_discriminants_arg_kinds_and_flags_count() {
    use shapes::*;
    assert_ne!(Ab::FINGERPRINT, Ba::FINGERPRINT);
    assert_ne!(E1::FINGERPRINT, E2::FINGERPRINT);
    assert!(List::HAS_RREFS && !Ab::HAS_RREFS && !E1::HAS_RREFS);
    let _ = List::FINGERPRINT;
    let lend = <dyn Lend as Proxyable>::FINGERPRINT;
    assert_ne!(lend, <dyn LendMut as Proxyable>::FINGERPRINT);
    assert_ne!(lend, <dyn Idem as Proxyable>::FINGERPRINT);
    assert_ne!(<dyn Ping as Proxyable>::FINGERPRINT, <dyn Pong as Proxyable>::FINGERPRINT);
}
