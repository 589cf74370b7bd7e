//! Printing and line input.
//!
//! Every `print!`-family call formats into a [`PRINT_BUF`]-byte buffer on the stack and
//! writes it out when full and at the end of the call: a line is normally one `write`,
//! nothing is allocated, and output of one call is not interleaved with another
//! program's unless it is longer than the buffer. Write errors are ignored (a closed pipe
//! must not kill a program that prints).
//!
//! [`LineReader`] reads lines without taking more from the descriptor than the lines it
//! returns — where it can: a file is read in blocks and its offset put back after the
//! line; a pipe is read a byte at a time; the console returns one line per read anyway.
//! So a shell can hand the same descriptor to a child afterwards.

use crate::sys;
use alloc::string::String;
use alloc::vec::Vec;
use frond_interface::rv6::{FileKind, SysResult, Whence};

/// Bytes a `print!` call buffers before writing.
pub const PRINT_BUF: usize = 256;

/// A fixed buffer that hands its bytes to `sink` when full and on [`flush`](Self::flush).
pub struct BufWriter<F: FnMut(&[u8])> {
    buf: [u8; PRINT_BUF],
    len: usize,
    sink: F,
}

impl<F: FnMut(&[u8])> BufWriter<F> {
    pub fn new(sink: F) -> Self {
        Self { buf: [0; PRINT_BUF], len: 0, sink }
    }

    pub fn push(&mut self, mut b: &[u8]) {
        while !b.is_empty() {
            if self.len == PRINT_BUF {
                self.flush();
            }
            let n = (PRINT_BUF - self.len).min(b.len());
            self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
            self.len += n;
            b = &b[n..];
        }
    }

    pub fn flush(&mut self) {
        if self.len > 0 {
            (self.sink)(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl<F: FnMut(&[u8])> core::fmt::Write for BufWriter<F> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// `print!`'s body: formats `args` (and a newline) to descriptor `fd`.
#[doc(hidden)]
pub fn _print(fd: i32, args: core::fmt::Arguments<'_>, newline: bool) {
    use core::fmt::Write;
    let mut w = BufWriter::new(|b: &[u8]| {
        let _ = sys::write_all(fd, b);
    });
    let _ = w.write_fmt(args);
    if newline {
        w.push(b"\n");
    }
    w.flush();
}

/// Prints to standard output (descriptor 1).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::io::_print(1, format_args!($($arg)*), false) };
}

/// Prints a line to standard output (descriptor 1).
#[macro_export]
macro_rules! println {
    () => { $crate::io::_print(1, format_args!(""), true) };
    ($($arg:tt)*) => { $crate::io::_print(1, format_args!($($arg)*), true) };
}

/// Prints to standard error (descriptor 2).
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::io::_print(2, format_args!($($arg)*), false) };
}

/// Prints a line to standard error (descriptor 2).
#[macro_export]
macro_rules! eprintln {
    () => { $crate::io::_print(2, format_args!(""), true) };
    ($($arg:tt)*) => { $crate::io::_print(2, format_args!($($arg)*), true) };
}

/// Prints to descriptor `fd` (an `i32`).
#[macro_export]
macro_rules! fprint {
    ($fd:expr, $($arg:tt)*) => { $crate::io::_print($fd, format_args!($($arg)*), false) };
}

/// Prints a line to descriptor `fd` (an `i32`).
#[macro_export]
macro_rules! fprintln {
    ($fd:expr) => { $crate::io::_print($fd, format_args!(""), true) };
    ($fd:expr, $($arg:tt)*) => { $crate::io::_print($fd, format_args!($($arg)*), true) };
}

/// Where a [`LineReader`] reads from (a descriptor; a test's script).
pub trait Source {
    fn read(&mut self, buf: &mut [u8]) -> SysResult<usize>;
    /// Moves the offset back `n` bytes (files only).
    fn unread(&mut self, n: usize) -> SysResult<()>;
}

/// A descriptor as a [`Source`].
pub struct FdSource(pub i32);

impl Source for FdSource {
    fn read(&mut self, buf: &mut [u8]) -> SysResult<usize> {
        sys::read(self.0, buf)
    }
    fn unread(&mut self, n: usize) -> SysResult<()> {
        sys::lseek(self.0, -(n as i64), Whence::Cur).map(|_| ())
    }
}

/// How a [`LineReader`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Blocks of [`LINE_BLOCK`], putting back what follows the line (a file).
    Seekable,
    /// A byte at a time (a pipe: nothing can be put back).
    Bytewise,
    /// Blocks of [`LINE_BLOCK`], trusting each read to end at a line's end (the console,
    /// whose reads return at most one line).
    Lines,
}

/// Bytes read per call in [`Mode::Seekable`] and [`Mode::Lines`].
pub const LINE_BLOCK: usize = 512;

/// Longest line returned whole; a longer one comes back in pieces of this size.
pub const LINE_MAX: usize = 4096;

/// Reads lines (see the module docs).
pub struct LineReader<S: Source> {
    src: S,
    mode: Mode,
    eof: bool,
}

impl LineReader<FdSource> {
    /// A reader of descriptor `fd`, its mode chosen by what `fd` is.
    pub fn new(fd: i32) -> Self {
        let mode = match sys::fstat(fd).map(|s| s.kind) {
            Ok(FileKind::File) => Mode::Seekable,
            Ok(FileKind::Device) => Mode::Lines,
            _ => Mode::Bytewise,
        };
        Self::with_mode(FdSource(fd), mode)
    }
}

impl<S: Source> LineReader<S> {
    pub fn with_mode(src: S, mode: Mode) -> Self {
        Self { src, mode, eof: false }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The next line into `line` (cleared first), without its `\n`; `Ok(false)` at the end
    /// of input. A last line without a newline is returned as a line. Bytes that are not
    /// UTF-8 are replaced (U+FFFD).
    pub fn read_line(&mut self, line: &mut String) -> SysResult<bool> {
        line.clear();
        let mut bytes: Vec<u8> = Vec::new();
        let got = self.read_bytes(&mut bytes)?;
        if got {
            match String::from_utf8(bytes) {
                Ok(s) => *line = s,
                Err(e) => *line = String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }
        }
        Ok(got)
    }

    /// As [`read_line`](Self::read_line), in bytes (appended to `out`).
    pub fn read_bytes(&mut self, out: &mut Vec<u8>) -> SysResult<bool> {
        if self.eof {
            return Ok(false);
        }
        let start = out.len();
        let mut any = false;
        match self.mode {
            Mode::Bytewise => {
                let mut b = [0u8; 1];
                while out.len() - start < LINE_MAX {
                    if self.src.read(&mut b)? == 0 {
                        self.eof = true;
                        break;
                    }
                    any = true;
                    if b[0] == b'\n' {
                        return Ok(true);
                    }
                    out.push(b[0]);
                }
            }
            Mode::Seekable | Mode::Lines => {
                let mut block = [0u8; LINE_BLOCK];
                while out.len() - start < LINE_MAX {
                    let room = (LINE_MAX - (out.len() - start)).min(LINE_BLOCK);
                    let n = self.src.read(&mut block[..room])?;
                    if n == 0 {
                        self.eof = true;
                        break;
                    }
                    let n = n.min(room);
                    any = true;
                    if let Some(i) = block[..n].iter().position(|&c| c == b'\n') {
                        out.extend_from_slice(&block[..i]);
                        let rest = n - i - 1;
                        if rest > 0 && self.mode == Mode::Seekable {
                            self.src.unread(rest)?;
                        }
                        return Ok(true);
                    }
                    out.extend_from_slice(&block[..n]);
                }
            }
        }
        Ok(any)
    }
}

/// Reads one line from `fd` (see [`LineReader`]); `Ok(false)` at the end of input.
pub fn read_line(fd: i32, line: &mut String) -> SysResult<bool> {
    LineReader::new(fd).read_line(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use frond_interface::rv6::Errno;

    #[test]
    fn bufwriter_batches_and_flushes() {
        use core::fmt::Write;
        let mut writes: Vec<Vec<u8>> = Vec::new();
        {
            let mut w = BufWriter::new(|b: &[u8]| writes.push(b.to_vec()));
            write!(w, "hello {}", 42).unwrap();
            w.push(b"\n");
            w.flush();
            w.flush();
        }
        assert_eq!(writes, vec![b"hello 42\n".to_vec()]);
    }

    #[test]
    fn bufwriter_splits_long_output_into_full_buffers() {
        let mut writes: Vec<usize> = Vec::new();
        let mut all = Vec::new();
        {
            let mut w = BufWriter::new(|b: &[u8]| {
                writes.push(b.len());
                all.extend_from_slice(b);
            });
            let data: Vec<u8> = (0..(PRINT_BUF * 2 + 10)).map(|i| i as u8).collect();
            w.push(&data[..100]);
            w.push(&data[100..]);
            w.flush();
        }
        assert_eq!(writes, vec![PRINT_BUF, PRINT_BUF, 10]);
        assert!(all.iter().enumerate().all(|(i, &b)| b == i as u8));
    }

    /// A file (offset, put-back) or a stream of reads of given sizes.
    struct Script {
        data: Vec<u8>,
        off: usize,
        /// Most bytes one read returns (the console: up to the line's end).
        chunk: usize,
        console: bool,
        reads: usize,
    }

    impl Script {
        fn new(s: &str, chunk: usize, console: bool) -> Self {
            Self { data: s.as_bytes().to_vec(), off: 0, chunk, console, reads: 0 }
        }
    }

    impl Source for Script {
        fn read(&mut self, buf: &mut [u8]) -> SysResult<usize> {
            self.reads += 1;
            let mut n = buf.len().min(self.chunk).min(self.data.len() - self.off);
            if self.console {
                if let Some(i) = self.data[self.off..self.off + n].iter().position(|&c| c == b'\n') {
                    n = i + 1;
                }
            }
            buf[..n].copy_from_slice(&self.data[self.off..self.off + n]);
            self.off += n;
            Ok(n)
        }
        fn unread(&mut self, n: usize) -> SysResult<()> {
            self.off = self.off.checked_sub(n).ok_or(Errno::Inval)?;
            Ok(())
        }
    }

    fn lines<S: Source>(r: &mut LineReader<S>) -> Vec<String> {
        let mut v = Vec::new();
        let mut l = String::new();
        while r.read_line(&mut l).unwrap() {
            v.push(l.clone());
        }
        v
    }

    #[test]
    fn seekable_puts_back_what_follows_the_line() {
        let mut r = LineReader::with_mode(Script::new("ls\necho hi\n\nlast", 1 << 20, false), Mode::Seekable);
        let mut l = String::new();
        assert!(r.read_line(&mut l).unwrap());
        assert_eq!(l, "ls");
        assert_eq!(r.src.off, 3, "the offset is just past the first line");
        assert_eq!(lines(&mut r), ["echo hi", "", "last"]);
        assert!(!r.read_line(&mut l).unwrap());
    }

    #[test]
    fn bytewise_never_reads_past_the_newline() {
        let mut r = LineReader::with_mode(Script::new("ab\ncd\n", 1 << 20, false), Mode::Bytewise);
        let mut l = String::new();
        assert!(r.read_line(&mut l).unwrap());
        assert_eq!((l.as_str(), r.src.off), ("ab", 3));
        assert_eq!(lines(&mut r), ["cd"]);
    }

    #[test]
    fn console_lines_and_eof() {
        let mut r = LineReader::with_mode(Script::new("one\ntwo\n", 1 << 20, true), Mode::Lines);
        assert_eq!(lines(&mut r), ["one", "two"]);
        assert_eq!(r.src.reads, 3);
    }

    #[test]
    fn short_reads_join_up() {
        let mut r = LineReader::with_mode(Script::new("abcdefgh\nij\n", 3, false), Mode::Seekable);
        assert_eq!(lines(&mut r), ["abcdefgh", "ij"]);
        let mut r = LineReader::with_mode(Script::new("abcdefgh\nij", 3, true), Mode::Lines);
        assert_eq!(lines(&mut r), ["abcdefgh", "ij"]);
    }

    #[test]
    fn long_lines_come_in_pieces() {
        let long = "x".repeat(LINE_MAX + 5) + "\nend\n";
        let mut r = LineReader::with_mode(Script::new(&long, 1 << 20, false), Mode::Seekable);
        let got = lines(&mut r);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].len(), LINE_MAX);
        assert_eq!(got[1], "xxxxx");
        assert_eq!(got[2], "end");
    }

    #[test]
    fn non_utf8_is_replaced() {
        let mut s = Script::new("", 1 << 20, false);
        s.data = vec![b'a', 0xff, b'\n'];
        let mut r = LineReader::with_mode(s, Mode::Seekable);
        assert_eq!(lines(&mut r), ["a\u{fffd}"]);
    }
}
