use frond_interface_gen::Exchangeable;
use rref::RRef;

/// Plain data, but nobody derived Exchangeable for it.
pub struct Stats {
    pub sent: u64,
}

#[derive(Exchangeable)]
pub struct Packet {
    pub data: RRef<[u8; 64]>,
    pub stats: Stats,
}

fn main() {}
