use frond_interface_gen::{interface, Exchangeable};
use rref::rpc::RpcResult;
use rref::RRef;

#[derive(Exchangeable)]
pub struct Nested {
    pub inner: RRef<u64>,
}

// The callee could `mem::replace` the nested RRef and keep the caller's block.
#[interface]
pub trait Echo: Send + Sync {
    fn fill(&self, buf: &mut RRef<Nested>) -> RpcResult<()>;
    fn fine(&self, buf: &mut RRef<[u8; 4]>, shared: &RRef<Nested>) -> RpcResult<()>;
}

fn main() {}
