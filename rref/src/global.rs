//! The shared heap this binary uses: installed once at start-up by the kernel and by every
//! domain (each binary has its own copy of this static; all install the kernel's heap).

use crate::SharedHeap;
use spin::Once;

static HEAP: Once<&'static dyn SharedHeap> = Once::new();

/// Installs the shared heap. The first call wins; returns whether this call installed `h`.
pub fn set_heap(h: &'static dyn SharedHeap) -> bool {
    let mut installed = false;
    HEAP.call_once(|| {
        installed = true;
        h
    });
    installed
}

/// The installed shared heap.
///
/// # Panics
/// If [`set_heap`] has not been called yet.
pub fn heap() -> &'static dyn SharedHeap {
    match HEAP.get() {
        Some(h) => *h,
        None => panic!("rref: shared heap not installed"),
    }
}
