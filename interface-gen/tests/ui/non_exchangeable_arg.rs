use frond_interface_gen::interface;
use rref::rpc::RpcResult;

/// Not `#[derive(Exchangeable)]`.
pub struct Handle(pub u64);

#[interface]
pub trait Echo: Send + Sync {
    fn put(&self, value: u64, handle: Handle) -> RpcResult<()>;
}

fn main() {}
