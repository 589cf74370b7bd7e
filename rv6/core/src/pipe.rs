//! A pipe: a bounded byte ring between its read end and its write end.

use alloc::boxed::Box;
use alloc::vec::Vec;

/// Bytes a pipe holds.
pub const PIPE_SIZE: usize = 4096;

pub(crate) struct Pipe {
    /// `PIPE_SIZE` bytes; the data is `len` bytes from `head`, wrapping.
    ring: Box<[u8]>,
    head: usize,
    len: usize,
    /// The read end's open file exists.
    pub reader: bool,
    /// The write end's open file exists.
    pub writer: bool,
}

impl Pipe {
    /// A pipe with both ends open; `None` if its ring cannot be allocated.
    pub fn new() -> Option<Self> {
        let mut ring = Vec::new();
        ring.try_reserve_exact(PIPE_SIZE).ok()?;
        ring.resize(PIPE_SIZE, 0);
        Some(Self { ring: ring.into_boxed_slice(), head: 0, len: 0, reader: true, writer: true })
    }

    pub fn buffered(&self) -> usize {
        self.len
    }

    /// Copies up to `dst.len()` buffered bytes into `dst`; returns how many.
    pub fn take(&mut self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.len);
        for (i, d) in dst[..n].iter_mut().enumerate() {
            *d = self.ring[(self.head + i) % PIPE_SIZE];
        }
        self.head = (self.head + n) % PIPE_SIZE;
        self.len -= n;
        n
    }

    /// Appends as much of `src` as there is room for; returns how many.
    pub fn put(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(PIPE_SIZE - self.len);
        let tail = self.head + self.len;
        for (i, &s) in src[..n].iter().enumerate() {
            self.ring[(tail + i) % PIPE_SIZE] = s;
        }
        self.len += n;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_wraps_and_bounds() {
        let mut p = Pipe::new().unwrap();
        assert_eq!(p.put(&[1; 3000]), 3000);
        let mut b = [0u8; 2000];
        assert_eq!(p.take(&mut b), 2000);
        // 1000 buffered: 3096 of room, the write wraps around the end.
        let src: std::vec::Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
        assert_eq!(p.put(&src), 3096);
        assert_eq!(p.buffered(), PIPE_SIZE);
        assert_eq!(p.put(&[9]), 0);
        let mut all = [0u8; PIPE_SIZE + 10];
        assert_eq!(p.take(&mut all), PIPE_SIZE);
        assert!(all[..1000].iter().all(|&b| b == 1));
        assert_eq!(&all[1000..PIPE_SIZE], &src[..3096]);
        assert_eq!(p.take(&mut all), 0);
    }
}
