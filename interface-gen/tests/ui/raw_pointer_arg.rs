use frond_interface_gen::interface;
#[allow(unused_imports)]
use rref::rpc::{Remote, RpcResult};
#[allow(unused_imports)]
use rref::RRef;

#[interface]
pub trait Echo: Send + Sync {
    fn put(&self, data: *const u8, len: usize) -> RpcResult<()>;
}

fn main() {}
