//! A program's arguments.

use alloc::vec::Vec;
use frond_interface::rv6::Argv;

/// The arguments `main` gets: `argv[0]` is the program's name as its spawner gave it
/// (the shell passes the command word), then the arguments. An argument that is not
/// UTF-8 reads as `"?"` through the `&str` accessors; [`Args::bytes`] has it as sent.
#[derive(Clone, Copy)]
pub struct Args {
    argv: Argv,
}

impl Args {
    /// Runs `op` on every operand (`args[1..]`), the shape of `mkdir`, `rm`, `kill`: with
    /// none, prints `usage: PROGRAM USAGE` and returns 1; a failing operand prints
    /// `PROGRAM: OPERAND: ERROR` and makes the result 1; otherwise 0.
    pub fn each_operand(&self, usage: &str, mut op: impl FnMut(&str) -> frond_interface::rv6::SysResult<()>) -> i32 {
        let argv = self.to_vec();
        if argv.len() < 2 {
            crate::eprintln!("usage: {} {usage}", self.program());
            return 1;
        }
        let mut rc = 0;
        for a in &argv[1..] {
            if let Err(e) = op(a) {
                crate::eprintln!("{}: {a}: {}", self.program(), e.as_str());
                rc = 1;
            }
        }
        rc
    }

    pub fn new(argv: Argv) -> Self {
        Self { argv }
    }

    /// Packs `args` (tests; `None` past the argument limits).
    pub fn from_strs(args: &[&str]) -> Option<Self> {
        Argv::new(args).ok().map(Self::new)
    }

    pub fn len(&self) -> usize {
        self.argv.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> Option<&str> {
        self.iter().nth(i)
    }

    /// `argv[0]`, or `""` if the spawner sent no arguments at all.
    pub fn program(&self) -> &str {
        self.get(0).unwrap_or("")
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.argv.iter().map(|a| core::str::from_utf8(a).unwrap_or("?"))
    }

    pub fn bytes(&self) -> impl Iterator<Item = &[u8]> {
        self.argv.iter()
    }

    /// All arguments, `argv[0]` included.
    pub fn to_vec(&self) -> Vec<&str> {
        self.iter().collect()
    }

    pub fn argv(&self) -> &Argv {
        &self.argv
    }
}

impl core::fmt::Debug for Args {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.argv.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors() {
        let a = Args::from_strs(&["ls", "-l", "dir"]).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a.program(), "ls");
        assert_eq!(a.get(2), Some("dir"));
        assert_eq!(a.get(3), None);
        assert_eq!(a.to_vec(), ["ls", "-l", "dir"]);
        let e = Args::new(Argv::empty());
        assert!(e.is_empty());
        assert_eq!(e.program(), "");
    }

    #[test]
    fn empty_argument_is_kept() {
        let a = Args::from_strs(&["echo", "", "x"]).unwrap();
        assert_eq!(a.to_vec(), ["echo", "", "x"]);
    }

    #[test]
    fn non_utf8_reads_as_question_mark() {
        let argv = Argv::new(&[&b"x"[..], &[0xff, 0xfe][..]]).unwrap();
        let a = Args::new(argv);
        assert_eq!(a.get(1), Some("?"));
        assert_eq!(a.bytes().nth(1), Some(&[0xff, 0xfe][..]));
    }

    #[test]
    fn limits() {
        let many = ["a"; 33];
        assert!(Args::from_strs(&many).is_none());
        let big = "x".repeat(2000);
        assert!(Args::from_strs(&[&big]).is_none());
    }
}
