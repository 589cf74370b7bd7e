//! `frond-qemu`: boot Frond in QEMU by hand, with exactly the tests' QEMU command line.
//!
//! ```text
//! frond-qemu run [--append "cmdline"] [--gdb] [--nic MODEL [--mac MAC]] [--disk IMAGE] [-- extra qemu args...]
//! frond-qemu cmd [--append "cmdline"] [--gdb] [--batch] [--nic MODEL [--mac MAC]] [--disk IMAGE] [-- extra qemu args...]
//! ```
//! `--nic virtio|igb` (or `FROND_NIC`) adds a NIC of that model (virtio-net at PCI 00:10.0,
//! igb at 00:08.0, see `NicModel::pci_slot`) on the
//! netdev `n0` that the extra arguments define (`scripts/run.sh` does).
//! `run` prints the command to stderr, runs QEMU on this terminal (`-serial mon:stdio`:
//! Ctrl-A X quits, Ctrl-A C toggles the monitor) and exits 0 if the guest passed (QEMU
//! status 33), 1 if it reported failure (35), otherwise QEMU's own status (with a
//! one-line explanation). `cmd` prints the command line to stdout; `--batch` prints the
//! tests' variant (`-serial stdio`).

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::process::ExitCode;

use frond_tests::{qemu::GDB_PORT, Exit, NicModel, QemuSpec, SerialMode};

const USAGE: &str = "\
usage: frond-qemu run [--append CMDLINE] [--gdb] [--nic MODEL [--mac MAC]] [--disk IMAGE] [-- QEMU_ARGS...]
       frond-qemu cmd [--append CMDLINE] [--gdb] [--batch] [--nic MODEL [--mac MAC]] [--disk IMAGE] [-- QEMU_ARGS...]

  run   boot the kernel on this terminal (Ctrl-A X quits); exit 0 = guest passed,
        1 = guest failed, anything else = QEMU's own exit status
  cmd   print the QEMU command line instead of running it

  --append CMDLINE   kernel command line, e.g. \"test=boot\" (default: console)
  --gdb              start halted with a gdb stub on :1234 (-s -S)
  --disk IMAGE       attach IMAGE (raw, e.g. made by frond-mkfs) as a virtio-blk disk
  --batch            (cmd) the tests' variant: -serial stdio instead of mon:stdio
  --nic MODEL        add a NIC (virtio at 00:10.0, igb at 00:08.0) on netdev n0 (define it after --)
  --mac MAC          that NIC's MAC (default 52:54:00:12:34:56)

environment: FROND_KERNEL, FROND_BOOT_MODULE, FROND_ACCEL=tcg|kvm, FROND_BIOS=qboot|seabios,
             FROND_QEMU, FROND_QEMU_ARGS, FROND_NIC=virtio|igb (the --nic default)";

/// The MAC of the NIC `--nic` adds unless `--mac` says otherwise.
const DEFAULT_MAC: &str = "52:54:00:12:34:56";

#[derive(Debug, PartialEq)]
struct Args {
    subcommand: String,
    append: String,
    gdb: bool,
    batch: bool,
    disk: Option<std::path::PathBuf>,
    nic: Option<NicModel>,
    mac: Option<String>,
    extra: Vec<OsString>,
}

fn parse(args: Vec<OsString>) -> Result<Args, String> {
    let mut it = args.into_iter();
    let subcommand = match it.next().map(|s| s.to_string_lossy().into_owned()) {
        Some(s) if s == "run" || s == "cmd" => s,
        Some(s) if s == "-h" || s == "--help" || s == "help" => return Err(String::new()),
        Some(s) => return Err(format!("unknown subcommand {s:?}")),
        None => return Err("missing subcommand".into()),
    };
    let mut parsed = Args {
        subcommand,
        append: String::new(),
        gdb: false,
        batch: false,
        disk: None,
        nic: None,
        mac: None,
        extra: Vec::new(),
    };
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("--") => {
                parsed.extra.extend(it.by_ref());
                break;
            }
            Some("--append") => {
                parsed.append = it
                    .next()
                    .ok_or("--append needs a value")?
                    .into_string()
                    .map_err(|_| "--append value is not UTF-8")?;
            }
            Some(a) if a.starts_with("--append=") => {
                parsed.append = a["--append=".len()..].to_string();
            }
            Some("--gdb") => parsed.gdb = true,
            Some("--disk") => parsed.disk = Some(it.next().ok_or("--disk needs an image file")?.into()),
            Some("--nic") => {
                let v = it.next().ok_or("--nic needs a model")?;
                let v = v.to_string_lossy();
                parsed.nic = Some(NicModel::parse(&v).ok_or_else(|| format!("--nic {v}: expected virtio or igb"))?);
            }
            Some("--mac") => {
                parsed.mac = Some(it.next().ok_or("--mac needs a value")?.to_string_lossy().into_owned());
            }
            Some("--batch") if parsed.subcommand == "cmd" => parsed.batch = true,
            Some("-h") | Some("--help") => return Err(String::new()),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let mut args = match parse(std::env::args_os().skip(1).collect()) {
        Ok(a) => a,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("frond-qemu: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let serial = if args.batch {
        SerialMode::Batch
    } else {
        SerialMode::Interactive
    };
    let mut spec = match QemuSpec::from_env(&args.append, serial) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("frond-qemu: {e}");
            return ExitCode::from(2);
        }
    };
    spec.gdb = args.gdb;
    let nic = match args.nic {
        Some(m) => Some(m),
        None if std::env::var_os("FROND_NIC").is_some_and(|v| !v.is_empty()) => match NicModel::from_env() {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("frond-qemu: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    if let Some(model) = nic {
        let mac = args.mac.as_deref().unwrap_or(DEFAULT_MAC);
        args.extra.push("-device".into());
        args.extra.push(model.device_arg("n0", mac, model.pci_slot(0)).into());
    }
    // Command-line extras first, then FROND_QEMU_ARGS (as the test harness does).
    let from_env = std::mem::replace(&mut spec.extra_args, args.extra);
    spec.extra_args.extend(from_env);
    if let Some(d) = &args.disk {
        if !d.is_file() {
            eprintln!("frond-qemu: --disk {}: no such file", d.display());
            return ExitCode::from(2);
        }
        spec.extra_args.extend(frond_tests::qemu::disk_args(d, false));
    }

    if args.subcommand == "cmd" {
        println!("{}", spec.to_shell());
        return ExitCode::SUCCESS;
    }

    eprintln!("{}", spec.to_shell());
    if spec.gdb {
        eprintln!(
            "frond-qemu: CPU halted; attach with: gdb {} -ex 'target remote :{GDB_PORT}'",
            frond_tests::qemu::shell_quote(spec.kernel.as_os_str())
        );
    }
    let status = match spec.command().status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("frond-qemu: cannot run {}: {e}", spec.qemu.display());
            return ExitCode::from(2);
        }
    };
    let exit = Exit::from_status(status);
    if !matches!(exit, Exit::Pass | Exit::Fail) {
        eprintln!("frond-qemu: {}", exit.explain());
    }
    ExitCode::from(exit.shell_code().clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, String> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn parses_run() {
        let a = p(&[
            "run",
            "--append",
            "test=boot x=1",
            "--gdb",
            "--",
            "-icount",
            "shift=0",
        ])
        .unwrap();
        assert_eq!(a.subcommand, "run");
        assert_eq!(a.append, "test=boot x=1");
        assert!(a.gdb);
        assert_eq!(a.extra, ["-icount", "shift=0"]);
        assert_eq!(
            p(&["cmd", "--append=test=list", "--batch"]).unwrap().append,
            "test=list"
        );
    }

    #[test]
    fn rejects_bad_args() {
        assert!(p(&[]).is_err());
        assert!(p(&["boot"]).is_err());
        assert!(p(&["run", "--append"]).is_err());
        assert!(p(&["run", "--batch"]).is_err());
        assert!(p(&["run", "--nic", "e1000"]).is_err());
        assert_eq!(p(&["run", "--nic", "igb"]).unwrap().nic, Some(NicModel::Igb));
        assert_eq!(p(&["--help"]).unwrap_err(), "");
    }
}
