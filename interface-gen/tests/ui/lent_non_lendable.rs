use frond_interface_gen::interface;
use rref::rpc::RpcResult;
use rref::RRef;

#[interface]
pub trait Echo: Send + Sync {
    fn peek(&self, lent: &RRef<[u8; 8]>, also: &Option<RRef<u8>>) -> RpcResult<u64>;
}

fn main() {}
