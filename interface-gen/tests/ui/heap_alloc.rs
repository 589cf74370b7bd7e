// A domain (forbid(unsafe_code)) cannot allocate raw shared-heap blocks: a layout without
// room for the header would let the heap write a header past the block.
#![forbid(unsafe_code)]

fn main() {
    let _ = rref::heap().alloc(core::alloc::Layout::new::<u8>());
}
