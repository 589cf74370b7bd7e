//! Random system-call sequences over several processes: after every call the core's
//! invariants hold ([`Core::check`]), no call panics, and once every process has ended
//! and been reaped the tables and the file system's free inodes are back at their level.

mod common;

use common::*;
use frond_interface::rv6::*;
use frond_rv6core::{Poll, Usage};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn run(seed: u64, steps: usize) {
    let mut w = World::new(12);
    let base = w.core.usage();
    let free0 = w.fs.free_inodes();
    let mut rng = Rng(seed | 1);
    let names = ["/a", "/b", "/c", "/d/x", "/d"];
    let mut live: Vec<i32> = vec![1];
    for step in 0..steps {
        let pid = live[rng.below(live.len())];
        let fd = rng.below(NOFILE + 2) as i32 - 1;
        let name = names[rng.below(names.len())];
        match rng.below(14) {
            0 => {
                let flags = [O_RDONLY, O_WRONLY, O_RDWR | O_CREATE, O_WRONLY | O_APPEND | O_CREATE, O_RDWR | O_TRUNC][rng.below(5)];
                let _ = w.open(pid, name, flags);
            }
            1 => {
                let _ = w.close(pid, fd);
            }
            2 => {
                let _ = w.core.dup(pid, fd);
            }
            3 => {
                let _ = w.core.pipe(pid);
            }
            4 => {
                let data = vec![step as u8; rng.below(6000)];
                let _ = w.write_io(pid, fd, &data);
            }
            5 => {
                let _ = w.read_io(pid, fd, rng.below(6000));
            }
            6 => {
                let map: Vec<i32> = (0..rng.below(FDMAP_MAX + 1)).map(|_| rng.below(NOFILE + 1) as i32 - 1).collect();
                if let Ok(c) = w.spawn_fds(pid, "/bin/prog", FdMap::new(&map).unwrap()) {
                    live.push(c);
                }
            }
            7 if pid != 1 => {
                w.end(pid, step as i32);
                live.retain(|&p| p != pid);
            }
            8 => {
                let _ = w.wait(pid, -1);
            }
            9 => {
                let _ = w.core.unlink(&w.fs, pid, &path(name));
            }
            10 => {
                let _ = w.core.mkdir(&w.fs, pid, &path("/d"));
            }
            11 => {
                let _ = w.core.lseek(&w.fs, pid, fd, rng.below(10000) as i64 - 100, Whence::Set);
            }
            12 => {
                let _ = w.core.fstat(&w.fs, pid, fd);
                let _ = w.core.readdir(&w.fs, pid, fd);
            }
            13 if pid != 1 && rng.below(4) == 0 => {
                let _ = w.core.kill(pid);
            }
            _ => {}
        }
        if let Err(e) = w.core.check() {
            panic!("seed {seed} step {step}: {e}");
        }
    }
    // Everything ends; pid 1 reaps all and closes what it opened.
    for &p in live.iter().filter(|&&p| p != 1) {
        w.end(p, 0);
    }
    while let Ok(Poll::Ready(_)) = w.wait(1, -1) {}
    assert_eq!(w.wait(1, -1), Err(Errno::Child), "seed {seed}");
    for fd in 0..NOFILE as i32 {
        let _ = w.close(1, fd);
    }
    w.core.check().unwrap();
    assert_eq!(w.core.usage(), Usage { files: 0, ..base }, "seed {seed}: only pid 1 is left, holding nothing");
    for n in ["/a", "/b", "/c", "/d/x", "/d"] {
        let _ = w.core.unlink(&w.fs, 1, &path(n));
    }
    assert_eq!(w.fs.free_inodes(), free0, "seed {seed}: every released inode is free");
}

#[test]
fn random_call_sequences_keep_the_invariants() {
    for seed in 1..=40 {
        run(seed * 0x9E37_79B9, 600);
    }
}
