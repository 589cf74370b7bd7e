use frond_interface_gen::Exchangeable;

#[derive(Exchangeable)]
pub struct Name<'a>(pub &'a str);

fn main() {}
