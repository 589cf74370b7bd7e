// A domain (forbid(unsafe_code)) cannot re-tag an RRef itself: only the proxy runtime can
// make the MoveToken that `move_to` needs.
#![forbid(unsafe_code)]

fn main() {
    let r = rref::RRef::new(1u8);
    rref::Exchangeable::move_to(&r, rref::DomainId(3), rref::MoveToken::new(rref::DomainId(1)));
}
