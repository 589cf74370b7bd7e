//! Path checks and the lexical normalisation behind `getcwd`.
//!
//! rv6 has no symbolic links and no rename, so `a/b/..` names the same directory as `a`
//! and the working directory's absolute path can be kept by joining and normalising the
//! strings given to `chdir` (the file system resolves the same path from the same inode,
//! so both agree).

use frond_interface::fs::{Path, PATH_MAX};
use frond_interface::rv6::{Errno, SysResult};

/// A path a program passed: `NameTooLong` past [`PATH_MAX`], `NoEnt` when empty (as
/// Linux), `Inval` with a NUL byte (names are NUL-padded on disk).
pub fn check(p: &Path) -> SysResult<&[u8]> {
    if p.len as usize > PATH_MAX {
        return Err(Errno::NameTooLong);
    }
    let b = p.as_bytes();
    if b.is_empty() {
        return Err(Errno::NoEnt);
    }
    if b.contains(&0) {
        return Err(Errno::Inval);
    }
    Ok(b)
}

/// The root, `/`.
pub fn root() -> Path {
    let mut p = Path { len: 1, bytes: [0; PATH_MAX] };
    p.bytes[0] = b'/';
    p
}

/// `rel` resolved against the absolute, normalised `base` and normalised: no empty, `.`
/// or `..` components, no trailing slash, `/` for the root (`..` of the root is the
/// root). `NameTooLong` if the result does not fit in a [`Path`].
pub fn join(base: &Path, rel: &[u8]) -> SysResult<Path> {
    let mut out = [0u8; PATH_MAX];
    let mut len = 0usize;
    let push = |out: &mut [u8; PATH_MAX], len: &mut usize, comp: &[u8]| -> SysResult<()> {
        match comp {
            b"" | b"." => Ok(()),
            b".." => {
                // Drop the last component (at the root there is none).
                while *len > 0 && out[*len - 1] != b'/' {
                    *len -= 1;
                }
                *len = len.saturating_sub(1);
                Ok(())
            }
            c => {
                if *len + 1 + c.len() > PATH_MAX {
                    return Err(Errno::NameTooLong);
                }
                out[*len] = b'/';
                out[*len + 1..*len + 1 + c.len()].copy_from_slice(c);
                *len += 1 + c.len();
                Ok(())
            }
        }
    };
    if rel.first() != Some(&b'/') {
        for c in base.as_bytes().split(|&b| b == b'/') {
            push(&mut out, &mut len, c)?;
        }
    }
    for c in rel.split(|&b| b == b'/') {
        push(&mut out, &mut len, c)?;
    }
    if len == 0 {
        return Ok(root());
    }
    Ok(Path { len: len as u16, bytes: out })
}

/// The last component of `p` (the program name for `ps`), `/` for the root.
pub fn last(p: &[u8]) -> &[u8] {
    let trimmed = match p.iter().rposition(|&b| b != b'/') {
        Some(i) => &p[..=i],
        None => return b"/",
    };
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        Path::new(s).unwrap()
    }
    fn j(base: &str, rel: &str) -> SysResult<String> {
        join(&p(base), rel.as_bytes()).map(|r| String::from(core::str::from_utf8(r.as_bytes()).unwrap()))
    }

    #[test]
    fn joins_and_normalises() {
        assert_eq!(j("/", "a").unwrap(), "/a");
        assert_eq!(j("/a", "b/c/").unwrap(), "/a/b/c");
        assert_eq!(j("/a/b", "..").unwrap(), "/a");
        assert_eq!(j("/a/b", "../..").unwrap(), "/");
        assert_eq!(j("/a/b", "../../../..").unwrap(), "/");
        assert_eq!(j("/a/b", "/x//./y/../z").unwrap(), "/x/z");
        assert_eq!(j("/a", ".").unwrap(), "/a");
        assert_eq!(j("/", "..").unwrap(), "/");
        assert_eq!(j("/abc/def", "../g").unwrap(), "/abc/g");
    }

    #[test]
    fn too_long_is_refused() {
        let long = "x".repeat(PATH_MAX);
        assert_eq!(j("/", &long), Err(Errno::NameTooLong));
        let half = "y".repeat(PATH_MAX / 2);
        assert_eq!(j(&format!("/{half}"), &half), Err(Errno::NameTooLong));
        // Exactly PATH_MAX bytes fit.
        let fits = "z".repeat(PATH_MAX - 1);
        assert_eq!(j("/", &fits).unwrap().len(), PATH_MAX);
    }

    #[test]
    fn last_component() {
        assert_eq!(last(b"/bin/sh"), b"sh");
        assert_eq!(last(b"sh"), b"sh");
        assert_eq!(last(b"/bin/sh/"), b"sh");
        assert_eq!(last(b"/"), b"/");
    }

    #[test]
    fn checks() {
        assert_eq!(check(&Path { len: 0, bytes: [0; PATH_MAX] }), Err(Errno::NoEnt));
        assert_eq!(check(&Path { len: PATH_MAX as u16 + 1, bytes: [b'a'; PATH_MAX] }), Err(Errno::NameTooLong));
        assert_eq!(check(&p("a\0b")), Err(Errno::Inval));
        assert_eq!(check(&p("/a")).unwrap(), b"/a");
    }
}
