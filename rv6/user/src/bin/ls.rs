//! `ls [PATH...]` (default `.`): xv6's listing, one line per file: name (padded to 14),
//! type (1 directory, 2 file, 3 device, 4 pipe), inode number, size. A directory lists
//! its entries (`.` and `..` included); anything else lists itself.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;
use ulib::{NAME_MAX, O_RDONLY, PATH_MAX};

ulib::program!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    if argv.len() < 2 {
        return ls(".");
    }
    argv[1..].iter().map(|p| ls(p)).max().unwrap_or(0)
}

fn kind_number(k: FileKind) -> u32 {
    match k {
        FileKind::Dir => 1,
        FileKind::File => 2,
        FileKind::Device => 3,
        FileKind::Pipe => 4,
    }
}

fn line(name: &str, st: &FStat) {
    println!("{name:<width$} {} {} {}", kind_number(st.kind), st.ino, st.size, width = NAME_MAX);
}

fn ls(path: &str) -> i32 {
    let fd = match ulib::open(path, O_RDONLY) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("ls: cannot open {path}: {}", e.as_str());
            return 1;
        }
    };
    let st = match fd.stat() {
        Ok(st) => st,
        Err(e) => {
            eprintln!("ls: cannot stat {path}: {}", e.as_str());
            return 1;
        }
    };
    if st.kind != FileKind::Dir {
        let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or(path);
        line(name, &st);
        return 0;
    }
    let sep = if path.ends_with('/') { "" } else { "/" };
    if path.len() + sep.len() + NAME_MAX > PATH_MAX {
        eprintln!("ls: path too long");
        return 1;
    }
    let mut rc = 0;
    let entries = match ulib::read_dir_fd(fd) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ls: {path}: {}", e.as_str());
            return 1;
        }
    };
    for ent in entries {
        let ent = match ent {
            Ok(ent) => ent,
            Err(e) => {
                eprintln!("ls: {path}: {}", e.as_str());
                return 1;
            }
        };
        let full = format!("{path}{sep}{}", ent.name());
        match ulib::stat(&full) {
            Ok(st) => line(ent.name(), &st),
            Err(e) => {
                eprintln!("ls: cannot stat {full}: {}", e.as_str());
                rc = 1;
            }
        }
    }
    rc
}
