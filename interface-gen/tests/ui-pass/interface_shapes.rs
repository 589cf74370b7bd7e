//! `#[interface]` accepts: full paths, lifetimes, `_` and clashing argument names, a user
//! type named `R`, methods named like the proxies' own (`target`, `from_target`, `call`),
//! `#[cfg]`'d methods, `#[idempotent]` without `recover`, every lendable RRef kind, and
//! `Remote`s of other interfaces; and the generated proxies are interface objects.

use frond_interface_gen::{interface, Exchangeable};
use rref::rpc::{Proxy, Proxyable, Recover, Remote, RpcResult, Runtime, Target};
use rref::{RRef, RRefDeque, RRefVec};

/// A user type named like the proxies' runtime parameter.
#[derive(Clone, Copy, Exchangeable)]
pub struct R(pub u8);

#[interface]
pub trait Log: Send + Sync {
    #[idempotent]
    fn target(&self, _: R, __frond_t: u64) -> rref::rpc::RpcResult<u64>;
    fn from_target(&self) -> RpcResult<()>;
    #[cfg(any())]
    fn gone(&self, only_on_some_configs: u8) -> RpcResult<()>;
}

#[interface(recover)]
pub trait Store: Send + Sync {
    /// Documented methods are fine.
    fn call<'a>(&'a self, key: &'a RRef<[u8; 16]>, out: &mut RRefDeque<u32, 8>) -> RpcResult<bool>;
    #[idempotent]
    fn len(&self, all: &RRefVec<u64>, also: &mut RRef<Option<u32>>) -> RpcResult<(u64, R)>;
    fn put(&self, key: RRef<[u8; 16]>, value: Option<RRefVec<u8>>) -> RpcResult<RRef<[u8; 16]>>;
    fn log(&self) -> RpcResult<Remote<dyn Log>>;
    fn attach(&self, log: Remote<dyn Log>) -> rref::rpc::RpcResult<()>;
}

fn is_store<T: Store + ?Sized>() {}
fn is_proxyable<T: Proxyable + ?Sized>() {}

#[allow(dead_code)]
fn proxies_are_interface_objects<Rt: Runtime>(t: &Target<dyn Log>) -> &dyn Log {
    is_store::<Proxy<dyn Store, Rt>>();
    is_store::<Recover<dyn Store, Rt>>();
    is_proxyable::<dyn Store>();
    is_proxyable::<dyn Log>();
    Proxy::<dyn Log, Rt>::from_target(t)
}

fn main() {}
