use core::cell::Cell;
use frond_interface_gen::Exchangeable;

#[derive(Exchangeable)]
pub struct Counter {
    pub id: u32,
    pub hits: Cell<u64>,
}

fn main() {}
