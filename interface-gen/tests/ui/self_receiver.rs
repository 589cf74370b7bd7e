use frond_interface_gen::interface;
#[allow(unused_imports)]
use rref::rpc::{Remote, RpcResult};
#[allow(unused_imports)]
use rref::RRef;

#[interface]
pub trait Echo: Send + Sync {
    fn close(self) -> RpcResult<()>;
}

fn main() {}
