//! Records the compiler version in every domain (the kernel refuses domains built by a
//! different rustc: Rust's ABI and vtable layout are only stable within one compiler).
fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc).arg("-V").output().expect("running rustc -V");
    let v = String::from_utf8(out.stdout).expect("rustc -V is UTF-8");
    println!("cargo:rustc-env=FROND_RUSTC_VERSION={}", v.trim());
}
