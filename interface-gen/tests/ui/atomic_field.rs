use frond_interface_gen::Exchangeable;

#[derive(Exchangeable)]
pub enum Stat {
    Idle,
    Busy { since: u64, count: core::sync::atomic::AtomicU64 },
}

fn main() {}
