//! trybuild: every rule of `#[interface]` / `#[derive(Exchangeable)]` is a compile error at
//! the offending span with its reason (tests/ui, expected output in the `.stderr` files;
//! regenerate with `TRYBUILD=overwrite` and review the diff), and valid uses compile
//! (tests/ui-pass).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui-pass/*.rs");
}
