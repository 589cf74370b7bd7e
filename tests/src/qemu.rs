//! The QEMU command line: the only place in the project where QEMU flags live.
//!
//! [`QemuSpec`] is plain data (what to boot and how); [`QemuSpec::args`] turns it into
//! argv and is the single function that knows QEMU's flags. [`QemuSpec::from_env`] fills
//! a spec from the environment and the build artifacts:
//!
//! | variable            | effect                                                           |
//! |---------------------|------------------------------------------------------------------|
//! | `FROND_KERNEL`      | kernel ELF (default `target/x86_64-unknown-none/release/frond-kernel`) |
//! | `FROND_BOOT_MODULE` | boot module cpio (default `target/frond/boot.cpio`)              |
//! | `FROND_ACCEL`       | `tcg` or `kvm` (default: kvm iff the CPU has vmx/svm and /dev/kvm opens) |
//! | `FROND_BIOS`        | `qboot` (default, if installed) or `seabios` (QEMU's built-in)   |
//! | `FROND_QEMU`        | the QEMU binary (default `qemu-system-x86_64`)                   |
//! | `FROND_QEMU_ARGS`   | extra QEMU arguments, whitespace-separated, appended last        |
//! | `FROND_NIC`         | NIC model of `frond-qemu`/`make run`: `virtio` (default) or `igb` ([`NicModel::from_env`]) |
//!
//! A guest NIC's `-device` argument comes from [`NicModel::device_arg`]: virtio-net
//! (modern only, `disable-legacy=on`) or QEMU's `igb` (an Intel 82576 with MSI-X).
//!
//! [`crate::Boot::accel`] and [`crate::Boot::firmware`] override `FROND_ACCEL` and
//! `FROND_BIOS` for one boot (benchmarks compare firmwares without touching the environment);
//! [`crate::Boot::kernel`] and [`crate::Boot::boot_module`] replace the kernel and initrd
//! (e.g. the Linux baseline guest), through [`QemuSpec::from_env_with`].

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::HarnessError;

/// The qboot firmware: boots a PVH kernel much faster than SeaBIOS.
pub const QBOOT_PATH: &str = "/usr/share/qemu/qboot.rom";
/// Port of QEMU's gdb stub enabled by `-s`.
pub const GDB_PORT: u16 = 1234;

/// The workspace root (`tests/..`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// QEMU accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation; works everywhere, `-cpu max`.
    Tcg,
    /// Hardware virtualisation; `-cpu host`.
    Kvm,
}

impl Accel {
    /// The `-accel` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }

    /// The `-cpu` model that goes with this accelerator.
    pub fn cpu(self) -> &'static str {
        match self {
            Accel::Tcg => "max",
            Accel::Kvm => "host",
        }
    }
}

/// Picks the accelerator (pure, so it can be tested with fake inputs).
///
/// `requested` (the value of `FROND_ACCEL`) wins if set; otherwise KVM is used iff a
/// `flags` line of `cpuinfo` lists `vmx` or `svm` and `/dev/kvm` is accessible.
pub fn choose_accel(
    cpuinfo: &str,
    kvm_accessible: bool,
    requested: Option<&str>,
) -> Result<Accel, HarnessError> {
    match requested.map(str::trim) {
        Some("tcg") => return Ok(Accel::Tcg),
        Some("kvm") => return Ok(Accel::Kvm),
        Some("") | None => {}
        Some(other) => {
            return Err(HarnessError::BadEnv {
                var: "FROND_ACCEL",
                value: other.to_string(),
                expected: "`tcg` or `kvm`",
            })
        }
    }
    let has_virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .filter_map(|l| l.split_once(':'))
        .any(|(_, flags)| flags.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    Ok(if has_virt && kvm_accessible {
        Accel::Kvm
    } else {
        Accel::Tcg
    })
}

/// The device model QEMU emulates for a guest NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NicModel {
    /// virtio-net, modern PCI transport only (`dom-virtio-net`).
    #[default]
    VirtioNet,
    /// QEMU's `igb`: an Intel 82576, 8086:10c9 (`dom-igb`).
    Igb,
}

impl NicModel {
    /// `virtio`/`virtio-net` or `igb`.
    pub fn parse(s: &str) -> Option<NicModel> {
        match s.trim() {
            "virtio" | "virtio-net" => Some(NicModel::VirtioNet),
            "igb" => Some(NicModel::Igb),
            _ => None,
        }
    }

    /// The model `FROND_NIC` names (unset or empty: virtio-net).
    pub fn from_env() -> Result<NicModel, HarnessError> {
        match env_string("FROND_NIC") {
            None => Ok(NicModel::VirtioNet),
            Some(v) => NicModel::parse(&v).ok_or(HarnessError::BadEnv {
                var: "FROND_NIC",
                value: v,
                expected: "`virtio` or `igb`",
            }),
        }
    }

    /// What Frond calls the driver's instances: `virtio-net` or `igb` (then 0, 1, …).
    pub fn driver_name(self) -> &'static str {
        match self {
            NicModel::VirtioNet => "virtio-net",
            NicModel::Igb => "igb",
        }
    }

    /// The root-bus slot of the guest's NIC number `index` (0, 1, …): virtio-net from
    /// 0x10, igb at 0x08, 0x0a, …. QEMU reserves for an igb its eight SR-IOV virtual
    /// functions 0x80 device functions above it on the same bus (two slots, 16 slots
    /// higher) and refuses the device if they would not fit ("VF addr overflows") or are
    /// taken, so igbs sit below slot 0x0e, two slots apart.
    pub fn pci_slot(self, index: u8) -> u8 {
        match self {
            NicModel::VirtioNet => 0x10 + index,
            NicModel::Igb => 0x08 + 2 * index,
        }
    }

    /// The `-device` value of a NIC on netdev `netdev` with `mac` at root-bus slot `slot`
    /// (so the guest sees it at `00:SLOT.0`).
    pub fn device_arg(self, netdev: &str, mac: &str, slot: u8) -> String {
        match self {
            NicModel::VirtioNet => {
                format!("virtio-net-pci,netdev={netdev},mac={mac},addr={slot:#04x},disable-legacy=on")
            }
            NicModel::Igb => format!("igb,netdev={netdev},mac={mac},addr={slot:#04x}"),
        }
    }
}

/// Where QEMU's serial port goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialMode {
    /// `-serial stdio`: tests; stdin and stdout are pipes owned by the harness.
    Batch,
    /// `-serial mon:stdio`: a human at a terminal (Ctrl-A X quits, Ctrl-A C is the monitor).
    Interactive,
}

/// Everything that determines a QEMU command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuSpec {
    /// The QEMU binary.
    pub qemu: PathBuf,
    pub accel: Accel,
    /// Firmware for `-bios`; `None` means QEMU's default (SeaBIOS).
    pub bios: Option<PathBuf>,
    pub kernel: PathBuf,
    pub boot_module: PathBuf,
    /// The kernel command line (`-append`).
    pub cmdline: String,
    pub serial: SerialMode,
    /// `-s -S`: gdb stub on port 1234, CPU halted until gdb continues.
    pub gdb: bool,
    /// Appended after all other flags (network devices, `-icount shift=0`, ...).
    pub extra_args: Vec<OsString>,
}

/// The kernel ELF and the boot module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifacts {
    pub kernel: PathBuf,
    pub boot_module: PathBuf,
}

impl Artifacts {
    /// Default locations under `workspace_root()/target`.
    pub fn default_paths() -> Artifacts {
        let target = workspace_root().join("target");
        Artifacts {
            kernel: target.join("x86_64-unknown-none/release/frond-kernel"),
            boot_module: target.join("frond/boot.cpio"),
        }
    }

    /// The artifacts named by `FROND_KERNEL` / `FROND_BOOT_MODULE` (or the defaults),
    /// checked to exist.
    pub fn locate() -> Result<Artifacts, HarnessError> {
        Artifacts::locate_with(None, None)
    }

    /// Like [`Artifacts::locate`], but an explicit path (e.g. another guest's kernel image
    /// and initrd, [`crate::Boot::kernel`]) replaces the environment and the default;
    /// only the paths actually used are checked, so a guest given both explicitly does
    /// not need Frond's build artifacts.
    pub fn locate_with(
        kernel: Option<PathBuf>,
        boot_module: Option<PathBuf>,
    ) -> Result<Artifacts, HarnessError> {
        let defaults = Artifacts::default_paths();
        let mut found = Vec::with_capacity(2);
        for (what, explicit, env_var, default) in [
            ("kernel ELF", kernel, "FROND_KERNEL", defaults.kernel),
            (
                "boot module",
                boot_module,
                "FROND_BOOT_MODULE",
                defaults.boot_module,
            ),
        ] {
            let path = match explicit {
                Some(path) if path.is_file() => path,
                Some(path) => {
                    return Err(HarnessError::io(
                        format!("{what} given explicitly not found at {}", path.display()),
                        std::io::ErrorKind::NotFound.into(),
                    ))
                }
                None => {
                    let path = env_path(env_var).unwrap_or(default);
                    if !path.is_file() {
                        return Err(HarnessError::MissingArtifact {
                            what,
                            path,
                            env_var,
                        });
                    }
                    path
                }
            };
            found.push(path);
        }
        let boot_module = found.pop().expect("two paths");
        let kernel = found.pop().expect("two paths");
        Ok(Artifacts {
            kernel,
            boot_module,
        })
    }
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn env_string(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// True if /dev/kvm can be opened read-write by this user.
pub fn kvm_accessible() -> bool {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// The accelerator for this machine and environment (`FROND_ACCEL`, cpuinfo, /dev/kvm).
pub fn host_accel() -> Result<Accel, HarnessError> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    choose_accel(
        &cpuinfo,
        kvm_accessible(),
        env_string("FROND_ACCEL").as_deref(),
    )
}

/// Picks the firmware (pure): `FROND_BIOS=seabios` means QEMU's default; otherwise qboot
/// if it is installed.
pub fn choose_bios(
    requested: Option<&str>,
    qboot_exists: bool,
) -> Result<Option<PathBuf>, HarnessError> {
    match requested.map(str::trim) {
        Some("seabios") => Ok(None),
        Some("qboot") | Some("") | None => Ok(qboot_exists.then(|| PathBuf::from(QBOOT_PATH))),
        Some(other) => Err(HarnessError::BadEnv {
            var: "FROND_BIOS",
            value: other.to_string(),
            expected: "`qboot` or `seabios`",
        }),
    }
}

/// A firmware the harness can boot with, for selecting it explicitly
/// ([`crate::Boot::firmware`]) instead of through `FROND_BIOS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// qboot ([`QBOOT_PATH`]): minimal, boots a PVH kernel quickly.
    Qboot,
    /// SeaBIOS, QEMU's built-in default (no `-bios` flag).
    SeaBios,
}

impl Firmware {
    /// The name `FROND_BIOS` uses: `qboot` or `seabios`.
    pub fn as_str(self) -> &'static str {
        match self {
            Firmware::Qboot => "qboot",
            Firmware::SeaBios => "seabios",
        }
    }

    /// The `-bios` value for this firmware (pure). Unlike [`choose_bios`], an explicit
    /// `Qboot` never falls back to SeaBIOS: a missing qboot image is an error.
    pub fn bios(self, qboot_exists: bool) -> Result<Option<PathBuf>, HarnessError> {
        match self {
            Firmware::SeaBios => Ok(None),
            Firmware::Qboot if qboot_exists => Ok(Some(PathBuf::from(QBOOT_PATH))),
            Firmware::Qboot => Err(HarnessError::io(
                format!(
                    "qboot firmware not found at {QBOOT_PATH} (Debian's qemu-system-x86 ships it)"
                ),
                std::io::ErrorKind::NotFound.into(),
            )),
        }
    }
}

impl QemuSpec {
    /// A spec for `cmdline` built from the environment: artifacts (must exist),
    /// accelerator, firmware, QEMU binary; `FROND_QEMU_ARGS` goes into `extra_args`.
    pub fn from_env(cmdline: &str, serial: SerialMode) -> Result<QemuSpec, HarnessError> {
        QemuSpec::from_env_with(Artifacts::locate()?, cmdline, serial)
    }

    /// Like [`QemuSpec::from_env`], booting `artifacts` (kernel image and initrd) instead
    /// of the ones the environment names.
    pub fn from_env_with(
        artifacts: Artifacts,
        cmdline: &str,
        serial: SerialMode,
    ) -> Result<QemuSpec, HarnessError> {
        let bios = choose_bios(
            env_string("FROND_BIOS").as_deref(),
            Path::new(QBOOT_PATH).is_file(),
        )?;
        let extra_args = env_string("FROND_QEMU_ARGS")
            .map(|s| s.split_whitespace().map(OsString::from).collect())
            .unwrap_or_default();
        Ok(QemuSpec {
            qemu: env_path("FROND_QEMU").unwrap_or_else(|| PathBuf::from("qemu-system-x86_64")),
            accel: host_accel()?,
            bios,
            kernel: artifacts.kernel,
            boot_module: artifacts.boot_module,
            cmdline: cmdline.to_string(),
            serial,
            gdb: false,
            extra_args,
        })
    }

    /// QEMU's argv (without the program name). Every QEMU flag Frond uses is here.
    pub fn args(&self) -> Vec<OsString> {
        let serial = match self.serial {
            SerialMode::Batch => "stdio",
            SerialMode::Interactive => "mon:stdio",
        };
        let mut args: Vec<OsString> = Vec::new();
        let mut flag = |name: &str, value: &OsStr| {
            args.push(name.into());
            args.push(value.to_os_string());
        };
        flag("-M", "q35".as_ref());
        flag("-accel", self.accel.as_str().as_ref());
        flag("-cpu", self.accel.cpu().as_ref());
        flag("-m", "256M".as_ref());
        flag("-smp", "1".as_ref());
        flag("-display", "none".as_ref());
        flag("-device", "isa-debug-exit,iobase=0xf4,iosize=0x04".as_ref());
        flag("-kernel", self.kernel.as_os_str());
        flag("-initrd", self.boot_module.as_os_str());
        flag("-append", self.cmdline.as_ref());
        if let Some(bios) = &self.bios {
            flag("-bios", bios.as_os_str());
        }
        flag("-serial", serial.as_ref());
        // -no-reboot: a triple fault or reset ends QEMU (status 0) instead of rebooting.
        args.push("-no-reboot".into());
        if self.gdb {
            args.extend(["-s".into(), "-S".into()]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// A `Command` running QEMU with [`QemuSpec::args`] (stdio not configured).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.qemu);
        cmd.args(self.args());
        cmd
    }

    /// The command as one shell-quoted line, e.g. for logs or `frond-qemu cmd`.
    pub fn to_shell(&self) -> String {
        std::iter::once(self.qemu.as_os_str().to_os_string())
            .chain(self.args())
            .map(|a| shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// PCI slot of the virtio-blk disk (NICs use 0x10, 0x11).
pub const DISK_SLOT: u8 = 0x12;

/// QEMU flags attaching the raw image `path` as a modern-only virtio-blk disk
/// (`read_only`: the device offers VIRTIO_BLK_F_RO). `cache=writeback` with flushes
/// honoured is QEMU's default: a FLUSH reaches the host file.
pub fn disk_args(path: &Path, read_only: bool) -> Vec<OsString> {
    let mut drive = OsString::from("file=");
    drive.push(path.as_os_str());
    drive.push(",if=none,id=disk0,format=raw");
    if read_only {
        drive.push(",readonly=on");
    }
    vec![
        "-drive".into(),
        drive,
        "-device".into(),
        format!("virtio-blk-pci,drive=disk0,addr={DISK_SLOT:#04x},disable-legacy=on").into(),
    ]
}

/// Quotes `arg` for a POSIX shell (unchanged if it needs no quoting).
pub fn shell_quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTEL: &str = "processor\t: 0\nflags\t\t: fpu vme de pse vmx sse2\n";
    const AMD: &str = "processor\t: 0\nflags\t\t: fpu svm sse2\n";
    const NONE: &str = "processor\t: 0\nflags\t\t: fpu vme de pse sse2 vmxx\nvmx flags\t: ept\n";

    #[test]
    fn accel_uses_kvm_only_with_flag_and_device() {
        assert_eq!(choose_accel(INTEL, true, None).unwrap(), Accel::Kvm);
        assert_eq!(choose_accel(AMD, true, None).unwrap(), Accel::Kvm);
        assert_eq!(choose_accel(INTEL, false, None).unwrap(), Accel::Tcg);
        assert_eq!(choose_accel(NONE, true, None).unwrap(), Accel::Tcg);
        assert_eq!(choose_accel("", true, None).unwrap(), Accel::Tcg);
    }

    #[test]
    fn accel_override() {
        assert_eq!(choose_accel(INTEL, true, Some("tcg")).unwrap(), Accel::Tcg);
        assert_eq!(choose_accel(NONE, false, Some("kvm")).unwrap(), Accel::Kvm);
        assert_eq!(choose_accel(INTEL, true, Some("")).unwrap(), Accel::Kvm);
        assert!(matches!(
            choose_accel(INTEL, true, Some("hvf")),
            Err(HarnessError::BadEnv {
                var: "FROND_ACCEL",
                ..
            })
        ));
    }

    #[test]
    fn nic_models() {
        assert_eq!(NicModel::parse("igb"), Some(NicModel::Igb));
        assert_eq!(NicModel::parse("virtio"), Some(NicModel::VirtioNet));
        assert_eq!(NicModel::parse("e1000"), None);
        assert_eq!(NicModel::default(), NicModel::VirtioNet);
        assert_eq!(
            NicModel::Igb.device_arg("n0", "52:54:00:12:34:56", 0x10),
            "igb,netdev=n0,mac=52:54:00:12:34:56,addr=0x10"
        );
        assert_eq!(
            NicModel::VirtioNet.device_arg("n0", "52:54:00:12:34:56", 9),
            "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,addr=0x09,disable-legacy=on"
        );
        assert_eq!(NicModel::Igb.driver_name(), "igb");
        assert_eq!((NicModel::VirtioNet.pci_slot(1), NicModel::Igb.pci_slot(1)), (0x11, 0x0a));
    }

    #[test]
    fn explicit_firmware() {
        assert_eq!(Firmware::SeaBios.bios(true).unwrap(), None);
        assert_eq!(Firmware::SeaBios.bios(false).unwrap(), None);
        assert_eq!(
            Firmware::Qboot.bios(true).unwrap(),
            Some(PathBuf::from(QBOOT_PATH))
        );
        let err = Firmware::Qboot.bios(false).unwrap_err();
        assert!(err.to_string().contains(QBOOT_PATH), "{err}");
        assert_eq!(Firmware::Qboot.as_str(), "qboot");
        assert_eq!(Firmware::SeaBios.as_str(), "seabios");
    }

    #[test]
    fn bios_choice() {
        assert_eq!(
            choose_bios(None, true).unwrap(),
            Some(PathBuf::from(QBOOT_PATH))
        );
        assert_eq!(choose_bios(None, false).unwrap(), None);
        assert_eq!(choose_bios(Some("seabios"), true).unwrap(), None);
        assert!(choose_bios(Some("ovmf"), true).is_err());
    }

    fn spec() -> QemuSpec {
        QemuSpec {
            qemu: "qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            bios: Some(QBOOT_PATH.into()),
            kernel: "/k/frond-kernel".into(),
            boot_module: "/k/boot.cpio".into(),
            cmdline: "test=boot".into(),
            serial: SerialMode::Batch,
            gdb: false,
            extra_args: vec![],
        }
    }

    fn strings(spec: &QemuSpec) -> Vec<String> {
        spec.args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn batch_command_line() {
        assert_eq!(
            strings(&spec()).join(" "),
            "-M q35 -accel tcg -cpu max -m 256M -smp 1 -display none \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel /k/frond-kernel \
             -initrd /k/boot.cpio -append test=boot -bios /usr/share/qemu/qboot.rom \
             -serial stdio -no-reboot"
        );
    }

    #[test]
    fn kvm_interactive_gdb_extra() {
        let mut s = spec();
        s.accel = Accel::Kvm;
        s.bios = None;
        s.serial = SerialMode::Interactive;
        s.gdb = true;
        s.cmdline = String::new();
        s.extra_args = vec!["-icount".into(), "shift=0".into()];
        let args = strings(&s);
        let joined = args.join(" ");
        assert!(joined.contains("-accel kvm -cpu host"), "{joined}");
        assert!(!args.iter().any(|a| a == "-bios"), "{joined}");
        assert!(
            joined.ends_with("-serial mon:stdio -no-reboot -s -S -icount shift=0"),
            "{joined}"
        );
        let append = args.iter().position(|a| a == "-append").unwrap();
        assert_eq!(
            args[append + 1],
            "",
            "empty cmdline is still passed as one argument"
        );
    }

    #[test]
    fn shell_form_is_quoted() {
        let mut s = spec();
        s.cmdline = "test=boot log=debug".into();
        let line = s.to_shell();
        assert!(line.starts_with("qemu-system-x86_64 -M q35 "), "{line}");
        assert!(line.contains("-append 'test=boot log=debug'"), "{line}");
        assert_eq!(shell_quote("".as_ref()), "''");
        assert_eq!(shell_quote("it's".as_ref()), r"'it'\''s'");
    }

    #[test]
    fn explicit_artifacts_need_no_build() {
        let dir = std::env::temp_dir().join(format!("frond-artifacts-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (k, i) = (dir.join("vmlinuz"), dir.join("initrd.gz"));
        fs::write(&k, b"k").unwrap();
        fs::write(&i, b"i").unwrap();
        let a = Artifacts::locate_with(Some(k.clone()), Some(i.clone())).unwrap();
        assert_eq!(
            a,
            Artifacts {
                kernel: k.clone(),
                boot_module: i.clone()
            }
        );
        let missing = dir.join("nope");
        let err = Artifacts::locate_with(Some(missing.clone()), Some(i)).unwrap_err();
        assert!(
            err.to_string().contains(&*missing.to_string_lossy()),
            "{err}"
        );
        assert!(
            !matches!(err, HarnessError::MissingArtifact { .. }),
            "no env hint for explicit paths"
        );
        let spec = QemuSpec::from_env_with(a, "console=ttyS0", SerialMode::Batch).unwrap();
        let args: Vec<String> = spec
            .args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let at = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].clone();
        assert_eq!(at("-kernel"), k.to_string_lossy());
        assert_eq!(at("-append"), "console=ttyS0");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn default_artifact_paths_are_under_target() {
        let a = Artifacts::default_paths();
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file(), "{}", root.display());
        assert_eq!(
            a.kernel,
            root.join("target/x86_64-unknown-none/release/frond-kernel")
        );
        assert_eq!(a.boot_module, root.join("target/frond/boot.cpio"));
    }
}
