use frond_interface_gen::interface;
#[allow(unused_imports)]
use rref::rpc::{Remote, RpcResult};
#[allow(unused_imports)]
use rref::RRef;

#[interface]
pub trait Echo: Send + Sync {
    fn on_ready(&self, hook: dyn Fn(u64)) -> RpcResult<()>;
}

fn main() {}
