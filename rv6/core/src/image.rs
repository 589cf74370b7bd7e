//! Reading a program image for `Procs::load`.

use crate::fsr;
use frond_interface::fs::{Fs, IO_MAX};
use frond_interface::rv6::{Errno, SysResult, IMAGE_MAX};
use frond_interface::RRefVec;

/// The `size` bytes of program inode `ino` in one shared-heap buffer, to lend to
/// `Procs::load`. `NoExec` for an empty or too large image, or one that shrank while
/// being read; `NoMem` if the buffers cannot be allocated.
///
/// `Fs::pread` fills a buffer from its start, so the file is read in `IO_MAX` chunks
/// into a 64 KiB buffer and each chunk copied into place: the one copy on the exec path.
pub fn read_image(fs: &dyn Fs, ino: u32, size: u32) -> SysResult<RRefVec<u8>> {
    let size = size as usize;
    if size == 0 || size > IMAGE_MAX {
        return Err(Errno::NoExec);
    }
    let mut image = RRefVec::try_new_with(size, |_| 0u8).ok_or(Errno::NoMem)?;
    let mut chunk = RRefVec::try_new_with(IO_MAX.min(size), |_| 0u8).ok_or(Errno::NoMem)?;
    let mut off = 0usize;
    while off < size {
        let want = (size - off).min(IO_MAX);
        let got = (fsr(fs.pread(ino, off as u64, &mut chunk, want as u32))? as usize).min(want);
        if got == 0 {
            return Err(Errno::NoExec);
        }
        image[off..off + got].copy_from_slice(&chunk[..got]);
        off += got;
    }
    Ok(image)
}
