// A domain (forbid(unsafe_code)) cannot lend an RRef itself — `mem::forget` of its guard
// would pin the block forever: only the proxy runtime can make the MoveToken lends need.
#![forbid(unsafe_code)]

fn main() {
    let mut r = rref::RRef::new(1u8);
    std::mem::forget(rref::lend(&r, rref::MoveToken::new(rref::DomainId(1))));
    std::mem::forget(rref::lend_mut(&mut r, rref::MoveToken::new(rref::DomainId(1))));
}
