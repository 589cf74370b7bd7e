use frond_interface_gen::Exchangeable;

#[derive(Exchangeable)]
pub union Word {
    pub int: u64,
    pub float: f64,
}

fn main() {}
