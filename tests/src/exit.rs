//! [`Exit`]: how a QEMU run ended, decoded from its process status.
//!
//! The guest ends a run by writing a byte `v` to the `isa-debug-exit` port (0xf4);
//! QEMU then exits with status `(v << 1) | 1`. Frond writes 0x10 for pass (status 33)
//! and 0x11 for fail (status 35). Every other status is an error of some kind; with
//! `-no-reboot` a triple fault or guest reset makes QEMU exit 0, which is *not* a pass.

use std::fmt;
use std::process::ExitStatus;

/// How a QEMU run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// QEMU exited 33: the guest wrote 0x10 to isa-debug-exit. The only pass.
    Pass,
    /// QEMU exited 35: the guest wrote 0x11 to isa-debug-exit (test failure, panic, exception).
    Fail,
    /// QEMU exited with any other code (0 = triple fault / reset under `-no-reboot`).
    Error(i32),
    /// QEMU was killed by this signal (not by the harness's timeout).
    Signal(i32),
    /// The harness's deadline passed; it killed QEMU's whole process group.
    Timeout,
}

impl Exit {
    /// QEMU's exit status when the guest passes (isa-debug-exit value 0x10).
    pub const PASS_CODE: i32 = 33;
    /// QEMU's exit status when the guest reports failure (isa-debug-exit value 0x11).
    pub const FAIL_CODE: i32 = 35;

    /// Decodes a QEMU exit code.
    pub fn from_code(code: i32) -> Exit {
        match code {
            Self::PASS_CODE => Exit::Pass,
            Self::FAIL_CODE => Exit::Fail,
            other => Exit::Error(other),
        }
    }

    /// Decodes a process status (exit code or terminating signal).
    pub fn from_status(status: ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::from_code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            // Stopped/continued statuses are never returned by wait() without WUNTRACED.
            (None, None) => Exit::Error(-1),
        }
    }

    /// True only for [`Exit::Pass`].
    pub fn is_pass(self) -> bool {
        self == Exit::Pass
    }

    /// The status `frond-qemu run` exits with: 0 for pass, 1 for fail, QEMU's own code
    /// otherwise, 128+n for a signal, 124 (like timeout(1)) for a timeout.
    pub fn shell_code(self) -> i32 {
        match self {
            Exit::Pass => 0,
            Exit::Fail => 1,
            // QEMU's own 0 means the guest triple-faulted or reset: never report that as
            // success to a shell.
            Exit::Error(0) => 2,
            Exit::Error(code) => code,
            Exit::Signal(sig) => 128 + sig,
            Exit::Timeout => 124,
        }
    }

    /// One line saying what this exit means, e.g.
    /// `QEMU exited 0: guest triple-faulted or reset (-no-reboot)`.
    pub fn explain(self) -> String {
        match self {
            Exit::Pass => "QEMU exited 33: guest passed (isa-debug-exit 0x10)".to_string(),
            Exit::Fail => {
                "QEMU exited 35: guest reported a failure (isa-debug-exit 0x11)".to_string()
            }
            Exit::Error(0) => "QEMU exited 0: guest triple-faulted or reset (-no-reboot)".to_string(),
            Exit::Error(1) => {
                "QEMU exited 1: QEMU itself failed (bad option, unreadable file or unavailable accelerator; see its stderr)"
                    .to_string()
            }
            Exit::Error(code) if (3..=511).contains(&code) && code % 2 == 1 => format!(
                "QEMU exited {code}: guest wrote {:#04x} to isa-debug-exit (expected 0x10 pass or 0x11 fail)",
                code >> 1
            ),
            Exit::Error(code) => format!("QEMU exited {code}: unexpected exit status"),
            Exit::Signal(sig) => {
                let name = nix::sys::signal::Signal::try_from(sig)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|_| format!("signal {sig}"));
                format!("QEMU was killed by {name} (not by the harness)")
            }
            Exit::Timeout => {
                "timed out: the harness killed QEMU's process group".to_string()
            }
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Pass => write!(f, "Pass (33)"),
            Exit::Fail => write!(f, "Fail (35)"),
            Exit::Error(code) => write!(f, "Error (exit {code})"),
            Exit::Signal(sig) => write!(f, "Signal ({sig})"),
            Exit::Timeout => write!(f, "Timeout"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn codes_map_to_variants() {
        assert_eq!(Exit::from_code(33), Exit::Pass);
        assert_eq!(Exit::from_code(35), Exit::Fail);
        assert_eq!(Exit::from_code(0), Exit::Error(0));
        assert_eq!(Exit::from_code(1), Exit::Error(1));
        assert_eq!(Exit::from_code(37), Exit::Error(37));
    }

    #[test]
    fn statuses_map_to_variants() {
        // Raw wait statuses: exit code in bits 8..16, terminating signal in bits 0..7.
        assert_eq!(Exit::from_status(ExitStatus::from_raw(33 << 8)), Exit::Pass);
        assert_eq!(Exit::from_status(ExitStatus::from_raw(35 << 8)), Exit::Fail);
        assert_eq!(Exit::from_status(ExitStatus::from_raw(0)), Exit::Error(0));
        assert_eq!(Exit::from_status(ExitStatus::from_raw(9)), Exit::Signal(9));
    }

    #[test]
    fn only_33_is_a_pass() {
        for code in [0, 1, 2, 32, 34, 35, 255] {
            assert!(!Exit::from_code(code).is_pass(), "{code}");
        }
        assert!(Exit::from_code(33).is_pass());
        assert!(!Exit::Timeout.is_pass());
        assert!(!Exit::Signal(9).is_pass());
    }

    #[test]
    fn shell_codes() {
        assert_eq!(Exit::Pass.shell_code(), 0);
        assert_eq!(Exit::Fail.shell_code(), 1);
        assert_eq!(Exit::Error(0).shell_code(), 2);
        assert_eq!(Exit::Error(3).shell_code(), 3);
        assert_eq!(Exit::Signal(9).shell_code(), 137);
        assert_eq!(Exit::Timeout.shell_code(), 124);
    }

    #[test]
    fn explanations() {
        assert_eq!(
            Exit::Error(0).explain(),
            "QEMU exited 0: guest triple-faulted or reset (-no-reboot)"
        );
        assert!(Exit::Error(37).explain().contains("0x12"));
        assert!(Exit::Signal(9).explain().contains("SIGKILL"));
        assert!(Exit::Timeout.explain().contains("process group"));
    }
}
