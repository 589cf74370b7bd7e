//! The soak's rv6 file workload (`t-soak`), shared by the program that writes the files
//! and the host harness that checks them on the disk image afterwards: both must agree
//! byte for byte on what iteration `i` wrote.

use alloc::vec::Vec;

/// Slots `/soak/f0` … `/soak/f7`: iteration `i` writes slot `i % SLOTS`.
pub const SLOTS: u64 = 8;

/// splitmix64's output function of `x` (one step from state `x`).
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Bytes of iteration `i`'s file: 4 KiB to 32 KiB.
pub fn file_len(seed: u64, i: u64) -> usize {
    4096 + (splitmix(seed ^ i.wrapping_mul(0x1000_0000_01B3)) % 28_672) as usize
}

/// Iteration `i`'s file: `i` little-endian, then the stream of `splitmix` over a counter.
pub fn file_content(seed: u64, i: u64) -> Vec<u8> {
    let n = file_len(seed, i);
    let mut v = Vec::with_capacity(n);
    v.extend_from_slice(&i.to_le_bytes());
    let mut k = 0u64;
    while v.len() < n {
        let w = splitmix(seed ^ (i << 20) ^ k).to_le_bytes();
        let take = (n - v.len()).min(8);
        v.extend_from_slice(&w[..take]);
        k += 1;
    }
    v
}

/// FNV-1a, 64 bits: the checksum `t-soak` prints for each file.
pub fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_deterministic_sized_and_tagged() {
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        for i in 0..50 {
            let f = file_content(42, i);
            assert_eq!(f.len(), file_len(42, i));
            assert!((4096..4096 + 28_672).contains(&f.len()));
            assert_eq!(f[..8], i.to_le_bytes());
            assert_eq!(f, file_content(42, i));
        }
        assert_ne!(file_content(42, 3), file_content(43, 3));
    }
}
