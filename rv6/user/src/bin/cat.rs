//! `cat [FILE...]`: copies the files (or standard input) to standard output, in 64 KiB
//! reads lent straight to the core (no copy in the program).

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;
use ulib::{RRefVec, IO_MAX, O_RDONLY};

ulib::program!(main);

fn main(args: Args) -> i32 {
    let Some(mut buf) = RRefVec::<u8>::try_new_with(IO_MAX, |_| 0) else {
        eprintln!("cat: out of memory");
        return 1;
    };
    let argv = args.to_vec();
    if argv.len() < 2 {
        return cat(0, "stdin", &mut buf);
    }
    for name in &argv[1..] {
        let fd = match ulib::open(name, O_RDONLY) {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("cat: cannot open {name}: {}", e.as_str());
                return 1;
            }
        };
        let rc = cat(fd.raw(), name, &mut buf);
        if rc != 0 {
            return rc;
        }
    }
    0
}

fn cat(fd: i32, name: &str, buf: &mut RRefVec<u8>) -> i32 {
    loop {
        let n = match ulib::read_rref(fd, buf, IO_MAX) {
            Ok(0) => return 0,
            Ok(n) => n.min(buf.len()),
            Err(e) => {
                eprintln!("cat: read error on {name}: {}", e.as_str());
                return 1;
            }
        };
        let mut left = n;
        while left > 0 {
            match ulib::write_rref(1, buf, left) {
                Ok(w) if w > 0 && w <= left => {
                    // A short write: move the rest to the front and go on.
                    buf.copy_within(w..left, 0);
                    left -= w;
                }
                Ok(_) => {
                    eprintln!("cat: write error: nothing written");
                    return 1;
                }
                Err(e) => {
                    eprintln!("cat: write error: {}", e.as_str());
                    return 1;
                }
            }
        }
    }
}
