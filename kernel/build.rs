//! Links the kernel at its fixed physical address with `linker.ld`, and records the
//! compiler version (domains built by a different rustc will be refused).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rerun-if-changed=linker.ld");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc).arg("-V").output().expect("running rustc -V");
    let v = String::from_utf8(out.stdout).expect("rustc -V is UTF-8");
    println!("cargo:rustc-env=FROND_RUSTC_VERSION={}", v.trim());
}
