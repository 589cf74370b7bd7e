//! [`HarnessError`]: everything that can go wrong on the host side of a QEMU run.
//!
//! A guest failure is *not* a `HarnessError`: it is an [`crate::Outcome`] whose
//! [`crate::Exit`] is not `Pass`. A `HarnessError` means the harness could not
//! start QEMU, or an interactive [`crate::Session`] did not see what it expected.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::Exit;

/// A host-side failure: missing artifacts, bad environment, spawn failure, or an
/// interactive expectation that was not met.
#[derive(Debug)]
pub enum HarnessError {
    /// A build artifact is missing: the kernel ELF or the boot module.
    MissingArtifact {
        /// Human name, e.g. "kernel ELF".
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The environment variable that overrides the path.
        env_var: &'static str,
    },
    /// An environment variable has a value the harness cannot use.
    BadEnv {
        var: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A host I/O operation failed (spawning QEMU, creating the log directory, ...).
    Io { context: String, source: io::Error },
    /// [`crate::Session::expect`] did not see its pattern before the deadline.
    ExpectTimeout {
        pattern: String,
        waited: Duration,
        /// Serial output received since the previous match.
        unmatched: String,
        log_path: Option<PathBuf>,
    },
    /// QEMU exited (its serial output ended) before the expected pattern appeared.
    ExitedBeforeMatch {
        pattern: String,
        exit: Option<Exit>,
        unmatched: String,
        stderr: String,
        log_path: Option<PathBuf>,
    },
    /// [`crate::Session::send`] was called after QEMU's stdin was closed.
    StdinClosed,
    /// A host helper command (`ip`, a packet tool, ...) failed or printed something the
    /// harness could not use.
    Command {
        /// The command, shell-quoted.
        command: String,
        /// What went wrong: exit status, timeout, unparsable output.
        problem: String,
        /// Its stderr (trimmed; may be empty).
        stderr: String,
    },
}

impl HarnessError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }
}

fn log_hint(log_path: &Option<PathBuf>) -> String {
    match log_path {
        Some(p) => format!("serial log: {}", p.display()),
        None => "serial log: (none)".to_string(),
    }
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::MissingArtifact {
                what,
                path,
                env_var,
            } => write!(
                f,
                "{what} not found at {} (set {env_var} to override); run `make build` (or `make test`) first",
                path.display()
            ),
            HarnessError::BadEnv {
                var,
                value,
                expected,
            } => write!(f, "environment variable {var}={value:?} is invalid: expected {expected}"),
            HarnessError::Io { context, source } => write!(f, "{context}: {source}"),
            HarnessError::ExpectTimeout {
                pattern,
                waited,
                unmatched,
                log_path,
            } => write!(
                f,
                "timed out after {waited:.1?} waiting for {pattern:?} on the serial port\n{}\n--- serial since last match (last {} lines) ---\n{}",
                log_hint(log_path),
                crate::serial::TAIL_LINES,
                crate::serial::tail(unmatched, crate::serial::TAIL_LINES)
            ),
            HarnessError::ExitedBeforeMatch {
                pattern,
                exit,
                unmatched,
                stderr,
                log_path,
            } => {
                let how = match exit {
                    Some(e) => e.explain(),
                    None => "QEMU closed its serial output".to_string(),
                };
                write!(
                    f,
                    "QEMU ended before {pattern:?} appeared on the serial port: {how}\n{}\n--- serial since last match (last {} lines) ---\n{}",
                    log_hint(log_path),
                    crate::serial::TAIL_LINES,
                    crate::serial::tail(unmatched, crate::serial::TAIL_LINES)
                )?;
                if !stderr.trim().is_empty() {
                    write!(f, "\n--- qemu stderr ---\n{}", stderr.trim_end())?;
                }
                Ok(())
            }
            HarnessError::StdinClosed => write!(f, "QEMU's stdin is closed (QEMU has exited?)"),
            HarnessError::Command {
                command,
                problem,
                stderr,
            } => {
                write!(f, "`{command}`: {problem}")?;
                if !stderr.trim().is_empty() {
                    write!(f, "\n--- its stderr ---\n{}", stderr.trim_end())?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
