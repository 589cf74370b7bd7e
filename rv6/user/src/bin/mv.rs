//! `mv OLD NEW`: renames a file (a link to the new name, then the old one removed). If
//! `NEW` is a directory the file moves into it under its own name; an existing file
//! `NEW` is replaced. Directories cannot be moved (they cannot be linked).

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    if argv.len() != 3 {
        eprintln!("usage: mv OLD NEW");
        return 1;
    }
    let old = argv[1];
    let mut new = argv[2].to_string();
    if matches!(ulib::stat(&new), Ok(s) if s.kind == FileKind::Dir) {
        let base = old.trim_end_matches('/').rsplit('/').next().unwrap_or(old);
        if !new.ends_with('/') {
            new.push('/');
        }
        new.push_str(base);
    }
    let mut r = ulib::link(old, &new);
    if r == Err(Errno::Exist) && matches!(ulib::stat(&new), Ok(s) if s.kind == FileKind::File) {
        // Replace the existing file (unless it is the same file under two names).
        let same = matches!((ulib::stat(old), ulib::stat(&new)), (Ok(a), Ok(b)) if a.ino == b.ino);
        if same {
            eprintln!("mv: {old} and {new} are the same file");
            return 1;
        }
        r = ulib::unlink(&new).and_then(|()| ulib::link(old, &new));
    }
    if let Err(e) = r {
        match e {
            Errno::Perm => eprintln!("mv: {old}: directories cannot be moved"),
            e => eprintln!("mv: {old} -> {new}: {}", e.as_str()),
        }
        return 1;
    }
    if let Err(e) = ulib::unlink(old) {
        eprintln!("mv: removing {old}: {}", e.as_str());
        return 1;
    }
    0
}
