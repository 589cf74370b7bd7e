//! `frond-mkfs`: builds xv6-format file-system images from host files, and checks them.
//!
//! ```text
//! frond-mkfs build [--large] [--size BLOCKS] [--inodes N] [--log BLOCKS] OUT.img [INPUT...]
//! frond-mkfs fsck IMAGE
//!
//! INPUT: HOST_PATH | NAME=HOST_PATH | --into DIR
//! ```
//!
//! ```text
//! ```
//!
//! `build` formats a fresh image with `frond_fslib::mkfs::format` — exactly xv6-riscv
//! mkfs's layout for the same size and inode count; `--large` selects the large-file
//! variant (11 direct + singly + doubly indirect blocks, files up to ~64 MiB) — then
//! copies each `HOST_PATH` into the root directory under its base name: a file as a file,
//! a directory with everything below it (entries in name order; symbolic links are
//! followed; other kinds of file are skipped with a warning). `NAME=HOST_PATH` copies it
//! under NAME instead; `--into DIR` puts the inputs after it into the directory `/DIR`
//! (made once; rv6's programs go into `/bin` this way). The copying goes through the
//! file system's ordinary operations (create, write in 64 KiB calls), so the image is
//! what the fs domain itself would have written. Unlike xv6's mkfs, names are kept as
//! they are (no `user/` or leading `_` stripped); a name longer than 14 bytes is an error.
//!
//! Defaults: `--size` is 2000 blocks (xv6's FSSIZE) or, if the files need more, their
//! blocks plus the metadata plus an eighth; `--inodes` is 200 (xv6's NINODES) or the
//! number of files and directories plus 16 if larger; `--log` (log blocks without the
//! header) is xv6's 30, the only size a stock image takes, and on a `--large` image a
//! 64th of the image between 30 and 255 (`frond_fslib::mkfs::default_log`). The image
//! is written to a temporary file and renamed into place.
//!
//! `fsck` runs `frond_fslib::fsck::check` on an image, prints one line per problem, and
//! exits with status 1 if there is any.
//!
//! User errors print one line to stderr and exit with status 1.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use frond_fslib::dev::MemDisk;
use frond_fslib::layout::{Variant, BPB, BSIZE, DIRENT_SIZE, DIRSIZ, IPB, NINDIRECT, ROOTINO};
use frond_fslib::mkfs::{self, Params};
use frond_fslib::FileSystem;

const USAGE: &str = "usage: frond-mkfs build [--large] [--size BLOCKS] [--inodes N] [--log BLOCKS] OUT.img [[--into DIR] [NAME=]HOST_PATH...]\n       frond-mkfs fsck IMAGE\n       frond-mkfs cat IMAGE PATH";

/// What `build` makes.
#[derive(Debug)]
struct Build {
    variant: Variant,
    size: Option<u32>,
    inodes: Option<u32>,
    log: Option<u32>,
    out: PathBuf,
    /// (directory under the root or none, name or none, host path)
    inputs: Vec<(Option<String>, Option<String>, PathBuf)>,
}

enum Command {
    Help,
    Build(Build),
    Fsck(PathBuf),
    Cat(PathBuf, String),
}

fn parse(args: &[OsString]) -> Result<Command, String> {
    let Some((cmd, rest)) = args.split_first() else { return Err(USAGE.into()) };
    match cmd.to_str().unwrap_or("") {
        "-h" | "--help" | "help" => Ok(Command::Help),
        "fsck" => match rest {
            [img] => Ok(Command::Fsck(img.into())),
            _ => Err(USAGE.into()),
        },
        "cat" => match rest {
            [img, path] => Ok(Command::Cat(img.into(), path.to_string_lossy().into_owned())),
            _ => Err(USAGE.into()),
        },
        "build" => {
            let mut b = Build { variant: Variant::Stock, size: None, inodes: None, log: None, out: PathBuf::new(), inputs: vec![] };
            let mut positional = vec![];
            let mut into: Option<String> = None;
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                let mut number = |what: &str| -> Result<u32, String> {
                    let v = it.next().ok_or_else(|| format!("{what} needs a number"))?.to_string_lossy();
                    v.parse().map_err(|_| format!("{what}: not a number: {v}"))
                };
                match a.to_str().unwrap_or("") {
                    "--large" => b.variant = Variant::Large,
                    "--size" => b.size = Some(number("--size")?),
                    "--inodes" => b.inodes = Some(number("--inodes")?),
                    "--log" => b.log = Some(number("--log")?),
                    "--into" => {
                        let d = it.next().ok_or("--into needs a directory name")?.to_string_lossy().into_owned();
                        if d.is_empty() || d.len() > DIRSIZ || d.contains('/') {
                            return Err(format!("--into {d}: a name of 1 to {DIRSIZ} bytes without '/'"));
                        }
                        into = Some(d);
                    }
                    s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
                    s => {
                        let (name, path) = match s.split_once('=') {
                            Some((n, p)) if !positional.is_empty() => (Some(n.to_string()), PathBuf::from(p)),
                            _ => (None, PathBuf::from(a)),
                        };
                        positional.push((into.clone(), name, path));
                    }
                }
            }
            let Some((out, inputs)) = positional.split_first() else { return Err(USAGE.into()) };
            b.out = out.2.clone();
            b.inputs = inputs.to_vec();
            Ok(Command::Build(b))
        }
        other => Err(format!("unknown command {other}\n{USAGE}")),
    }
}

/// A host file or directory to copy.
enum Item {
    File { name: Vec<u8>, data: Vec<u8> },
    Dir { name: Vec<u8>, items: Vec<Item> },
}

fn name_of(path: &Path) -> Result<Vec<u8>, String> {
    let name = path.file_name().ok_or_else(|| format!("{}: has no file name", path.display()))?.as_bytes().to_vec();
    if name.len() > DIRSIZ {
        return Err(format!("{}: name longer than {DIRSIZ} bytes", path.display()));
    }
    Ok(name)
}

fn load(path: &Path, rename: Option<&str>) -> Result<Option<Item>, String> {
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = match rename {
        Some(n) if n.is_empty() || n.len() > DIRSIZ || n.contains('/') => {
            return Err(format!("{n}: a name of 1 to {DIRSIZ} bytes without '/'"))
        }
        Some(n) => n.as_bytes().to_vec(),
        None => name_of(path)?,
    };
    if meta.is_file() {
        let data = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(Some(Item::File { name, data }));
    }
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        entries.sort();
        let mut items = vec![];
        for e in entries {
            if let Some(i) = load(&e, None)? {
                items.push(i);
            }
        }
        return Ok(Some(Item::Dir { name, items }));
    }
    eprintln!("frond-mkfs: warning: {}: neither a file nor a directory, skipped", path.display());
    Ok(None)
}

/// Blocks a file of `len` bytes takes, with its indirect blocks.
fn file_blocks(variant: Variant, len: u64) -> u64 {
    let n = len.div_ceil(BSIZE as u64);
    let nd = variant.ndirect() as u64;
    let ni = NINDIRECT as u64;
    let mut total = n;
    if n > nd {
        total += 1;
    }
    if n > nd + ni {
        total += 1 + (n - nd - ni).div_ceil(ni);
    }
    total
}

/// (blocks, inodes) the items need.
fn needs(variant: Variant, items: &[Item]) -> Result<(u64, u64), String> {
    let mut blocks = 0;
    let mut inodes = 0;
    for i in items {
        inodes += 1;
        match i {
            Item::File { name, data } => {
                if data.len() as u64 > variant.max_file_blocks() * BSIZE as u64 {
                    let hint = if variant == Variant::Stock { " (try --large)" } else { "" };
                    return Err(format!(
                        "{}: {} bytes is larger than the largest file, {} bytes{hint}",
                        String::from_utf8_lossy(name),
                        data.len(),
                        variant.max_file_blocks() * BSIZE as u64
                    ));
                }
                blocks += file_blocks(variant, data.len() as u64);
            }
            Item::Dir { items, .. } => {
                let (b, n) = needs(variant, items)?;
                blocks += b + file_blocks(variant, ((items.len() + 2) * DIRENT_SIZE) as u64);
                inodes += n;
            }
        }
    }
    Ok((blocks, inodes))
}

fn add(fs: &mut FileSystem<MemDisk>, dir: u32, items: &[Item], path: &str, count: &mut (u32, u32)) -> Result<(), String> {
    for i in items {
        match i {
            Item::File { name, data } => {
                let p = format!("{path}/{}", String::from_utf8_lossy(name));
                mkfs::add_file(fs, dir, name, data).map_err(|e| format!("{p}: {}", e.as_str()))?;
                count.0 += 1;
            }
            Item::Dir { name, items } => {
                let p = format!("{path}/{}", String::from_utf8_lossy(name));
                let inum = mkfs::add_dir(fs, dir, name).map_err(|e| format!("{p}: {}", e.as_str()))?;
                count.1 += 1;
                add(fs, inum, items, &p, count)?;
            }
        }
    }
    Ok(())
}

fn build(b: &Build) -> Result<(), String> {
    let mut items: Vec<Item> = vec![];
    for (into, rename, p) in &b.inputs {
        let Some(i) = load(p, rename.as_deref())? else { continue };
        let Some(dir) = into else {
            items.push(i);
            continue;
        };
        let existing = items.iter_mut().find_map(|it| match it {
            Item::Dir { name, items } if name == dir.as_bytes() => Some(items),
            _ => None,
        });
        match existing {
            Some(sub) => sub.push(i),
            None => items.push(Item::Dir { name: dir.as_bytes().to_vec(), items: vec![i] }),
        }
    }
    let (blocks, inodes) = needs(b.variant, &items)?;
    let root_blocks = file_blocks(b.variant, ((items.len() + 2) * DIRENT_SIZE) as u64);
    let ninodes = b.inodes.unwrap_or_else(|| (inodes as u32 + 16).max(200));
    let size = match b.size {
        Some(s) => s,
        None => {
            let data = blocks + root_blocks;
            let log = |size: u64| b.log.unwrap_or_else(|| mkfs::default_log(b.variant, size.min(u32::MAX as u64) as u32)) as u64;
            let meta = |size: u64| 2 + log(size) + 1 + ninodes as u64 / IPB as u64 + 1 + size / BPB as u64 + 1;
            let mut size = data + data / 8 + 64;
            size += meta(size + meta(size));
            u32::try_from(size.max(2000)).map_err(|_| "the files need more than 2^32 blocks".to_string())?
        }
    };
    let log = b.log.unwrap_or_else(|| mkfs::default_log(b.variant, size));
    let params = Params { size, ninodes, variant: b.variant, log };
    let mut disk = MemDisk::new(size as u64);
    mkfs::format(&mut disk, &params).map_err(|e| e.to_string())?;
    let mut fs = FileSystem::mount(disk).map_err(|(_, e)| e.to_string())?;
    let mut count = (0, 0);
    add(&mut fs, ROOTINO, &items, "", &mut count).map_err(|e| format!("{e} (image of {size} blocks, {ninodes} inodes)"))?;
    let info = fs.info().map_err(|e| e.as_str().to_string())?;
    let (disk, r) = fs.unmount();
    r.map_err(|e| e.as_str().to_string())?;
    let tmp = b.out.with_extension("img.tmp");
    fs::write(&tmp, disk.image()).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, &b.out).map_err(|e| format!("{}: {e}", b.out.display()))?;
    println!(
        "{}: {} variant, {size} blocks, {ninodes} inodes, {log}-block log; {} files, {} directories; {} blocks and {} inodes free",
        b.out.display(),
        if b.variant == Variant::Large { "large" } else { "stock" },
        count.0,
        count.1,
        info.free_blocks,
        info.free_inodes
    );
    Ok(())
}

fn fsck(image: &Path) -> Result<bool, String> {
    let bytes = fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let problems = frond_fslib::fsck::check(&bytes);
    for p in &problems {
        println!("{}: {p}", image.display());
    }
    if problems.is_empty() {
        println!("{}: clean", image.display());
    }
    Ok(problems.is_empty())
}

/// Writes the file at `path` of the image (a committed log installed first, as mount
/// would) to stdout.
fn cat(image: &Path, path: &str) -> Result<bool, String> {
    use std::io::Write as _;
    let bytes = fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let tree = frond_fslib::fsck::tree(&bytes)?;
    let (_, _, data) = tree.iter().find(|(p, _, _)| p == path).ok_or_else(|| format!("{}: no {path}", image.display()))?;
    std::io::stdout().write_all(data).map_err(|e| format!("stdout: {e}"))?;
    Ok(true)
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let r = match parse(&args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            Ok(true)
        }
        Ok(Command::Build(b)) => build(&b).map(|()| true),
        Ok(Command::Fsck(img)) => fsck(&img),
        Ok(Command::Cat(img, path)) => cat(&img, &path),
        Err(e) => Err(e),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("frond-mkfs: {e}");
            ExitCode::FAILURE
        }
    }
}
