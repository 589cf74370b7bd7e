use frond_interface_gen::interface;
#[allow(unused_imports)]
use rref::rpc::{Remote, RpcResult};
#[allow(unused_imports)]
use rref::RRef;

#[interface(recover)]
pub trait Echo: Send + Sync {
    #[idempotent]
    fn put(&self, data: RRef<[u8; 64]>, len: u32) -> RpcResult<()>;
}

fn main() {}
