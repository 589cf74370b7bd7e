use frond_interface_gen::interface;
#[allow(unused_imports)]
use rref::rpc::{Remote, RpcResult};
#[allow(unused_imports)]
use rref::RRef;

#[interface]
pub trait Echo: Send + Sync {
    fn put(&self, data: Box<[u8; 16]>) -> RpcResult<()>;
}

fn main() {}
