//! The `frond-mkfs` command line: build from a host tree, fsck the result, fsck a damaged
//! copy, and refuse bad input with one line and status 1.

use std::path::PathBuf;
use std::process::Command;

fn mkfs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_frond-mkfs"))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("frond-mkfs-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn builds_a_tree_that_fsck_accepts_and_reads_back() {
    let d = scratch("tree");
    let src = d.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(src.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(src.join("sub/big.bin"), &big).unwrap();
    for (large, name) in [(false, "stock.img"), (true, "large.img")] {
        let img = d.join(name);
        let mut cmd = mkfs();
        cmd.arg("build");
        if large {
            cmd.arg("--large");
        }
        let src_a = src.join("a.txt");
        let src_sub = src.join("sub");
        let out = cmd.arg(&img).arg(&src_a).arg(&src_sub).output().unwrap();
        if !large {
            // 300,000 bytes is past the stock limit of 268 KiB.
            assert!(!out.status.success(), "a stock image cannot hold a 293 KiB file");
            assert!(String::from_utf8_lossy(&out.stderr).contains("big.bin"), "{}", String::from_utf8_lossy(&out.stderr));
            continue;
        }
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let fsck = mkfs().arg("fsck").arg(&img).output().unwrap();
        assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
        let bytes = std::fs::read(&img).unwrap();
        let tree = frond_fslib::fsck::tree(&bytes).unwrap();
        let file = |p: &str| tree.iter().find(|(q, _, _)| q == p).map(|(_, _, d)| d.clone());
        assert_eq!(file("/a.txt").as_deref(), Some(&b"alpha\n"[..]));
        assert_eq!(file("/sub/big.bin"), Some(big.clone()));
        // Damage: mark the root inode free. fsck must say so and fail.
        let mut bad = bytes.clone();
        let sb = frond_fslib::layout::SuperBlock::decode(&bad[1024..2048]);
        let at = sb.inodestart as usize * 1024 + 64; // inode 1
        bad[at] = 0;
        bad[at + 1] = 0;
        let bad_img = d.join("bad.img");
        std::fs::write(&bad_img, &bad).unwrap();
        let fsck = mkfs().arg("fsck").arg(&bad_img).output().unwrap();
        assert_eq!(fsck.status.code(), Some(1));
        assert!(!fsck.stdout.is_empty(), "fsck names the problem");
    }
}

#[test]
fn bad_arguments_fail_with_one_line() {
    let d = scratch("args");
    for args in [vec!["build"], vec!["fsck"], vec!["frobnicate"], vec!["fsck", "/nonexistent/image"]] {
        let out = mkfs().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(!out.stderr.is_empty(), "{args:?} says why");
    }
    let long = d.join("a-name-longer-than-14.txt");
    std::fs::write(&long, b"x").unwrap();
    let out = mkfs().arg("build").arg(d.join("x.img")).arg(&long).output().unwrap();
    assert!(!out.status.success(), "a 25-byte name cannot enter an xv6 directory");
}

#[test]
fn log_size_option() {
    let d = scratch("log");
    let src = d.join("f.bin");
    std::fs::write(&src, vec![7u8; 100_000]).unwrap();
    let sb = |img: &PathBuf| frond_fslib::layout::SuperBlock::decode(&std::fs::read(img).unwrap()[1024..2048]);
    // Defaults: xv6's 30 blocks on a stock image; a 64th of a large one, within [30, 255].
    let stock = d.join("stock.img");
    assert!(mkfs().arg("build").arg(&stock).arg(&src).status().unwrap().success());
    assert_eq!(sb(&stock).nlog, 31);
    let large = d.join("large.img");
    assert!(mkfs().args(["build", "--large", "--size", "65536"]).arg(&large).arg(&src).status().unwrap().success());
    assert_eq!(sb(&large).nlog, 256);
    // An explicit size on the large variant; the image checks clean.
    let l100 = d.join("l100.img");
    let out = mkfs().args(["build", "--large", "--log", "100"]).arg(&l100).arg(&src).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("100-block log"));
    assert_eq!(sb(&l100).nlog, 101);
    assert!(mkfs().arg("fsck").arg(&l100).status().unwrap().success());
    // Refused: a stock image other than 30, a large one past 255 or under one operation.
    for args in [vec!["--log", "100"], vec!["--large", "--log", "256"], vec!["--large", "--log", "5"], vec!["--log", "x"]] {
        let out = mkfs().arg("build").args(&args).arg(d.join("bad.img")).arg(&src).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("log"), "{args:?}: {err}");
    }
}
