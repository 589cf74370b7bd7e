#!/usr/bin/env bash
# Frond set-up, run by `make build`/`run`/`test`/`bench` before anything else.
#
# 1. Rust: stable only. The bare-metal target x86_64-unknown-none must be in the sysroot:
#    already there -> done; else `rustup target add`; else the offline archive in the
#    directory named by $FROND_OFFLINE_TOOLCHAIN (checked against its SHA256SUMS and against
#    the rustc version it was built for).
# 2. Host tools: qemu-system-x86 (QEMU + firmware), iproute2, tcpdump, the network test
#    clients iputils-ping, curl, netcat-openbsd, and cpio (the benchmark's Linux guest
#    image). Installed with apt
#    when missing and running as root; otherwise we stop and print the exact command.
#
# Cheap when everything is present (a few stat calls), so it runs on every make.
set -euo pipefail

TARGET=x86_64-unknown-none
ARCHIVE=rust-std-1.95.0-x86_64-unknown-none.tar.xz
ARCHIVE_RUSTC='rustc 1.95.0 (59807616e'

die() { echo "setup: error: $*" >&2; exit 1; }
say() { echo "setup: $*" >&2; }

command -v cargo >/dev/null && command -v rustc >/dev/null \
  || die "cargo/rustc not found. Install stable Rust (https://rustup.rs) and retry."
rustc_v=$(rustc -V)
case "$rustc_v" in
  *nightly*|*beta*|*dev*) die "Frond builds with stable Rust only; found '$rustc_v'." ;;
esac

sysroot=$(rustc --print sysroot)
libdir="$sysroot/lib/rustlib/$TARGET/lib"
have_target() { compgen -G "$libdir/libcore-*.rlib" >/dev/null; }

if ! have_target; then
  say "target $TARGET is not installed; trying 'rustup target add $TARGET'"
  if command -v rustup >/dev/null; then
    timeout 180 rustup target add "$TARGET" >&2 || say "rustup could not install it"
  fi
fi

if ! have_target; then
  src=${FROND_OFFLINE_TOOLCHAIN:-}
  [ -n "$src" ] || die "target $TARGET missing and rustup failed. Set FROND_OFFLINE_TOOLCHAIN to the
  directory holding $ARCHIVE and SHA256SUMS (e.g. ../shared/toolchain) and retry."
  [ -f "$src" ] && src=$(dirname "$src")
  [ -f "$src/$ARCHIVE" ] || die "FROND_OFFLINE_TOOLCHAIN=$src has no $ARCHIVE"
  [ -f "$src/SHA256SUMS" ] || die "FROND_OFFLINE_TOOLCHAIN=$src has no SHA256SUMS"
  case "$rustc_v" in
    "$ARCHIVE_RUSTC"*) ;;
    *) die "the offline archive is for $ARCHIVE_RUSTC...) only; this machine has '$rustc_v'.
  Install the target with 'rustup target add $TARGET' instead." ;;
  esac
  (cd "$src" && grep " $ARCHIVE\$" SHA256SUMS | sha256sum -c --quiet -) \
    || die "$src/$ARCHIVE does not match its SHA256SUMS entry"
  [ -w "$sysroot/lib/rustlib" ] || die "cannot write to $sysroot/lib/rustlib (run as the toolchain's owner)"
  say "unpacking the offline $TARGET standard library into $sysroot"
  tar -C "$sysroot" -xJf "$src/$ARCHIVE"
  have_target || die "unpacked $ARCHIVE but $libdir is still missing"
fi

missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v ip >/dev/null || missing+=(iproute2)
command -v tcpdump >/dev/null || missing+=(tcpdump)
command -v ping >/dev/null || missing+=(iputils-ping)
command -v curl >/dev/null || missing+=(curl)
command -v nc >/dev/null || missing+=(netcat-openbsd)
# The Linux baseline guest of `make bench` is packed with cpio (scripts/linux-guest.sh).
command -v cpio >/dev/null || missing+=(cpio)
if [ ${#missing[@]} -gt 0 ]; then
  cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    die "missing ${missing[*]}. Run: sudo apt-get update && sudo $cmd"
  fi
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get here; install them with your package manager"
  say "installing ${missing[*]} with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  $cmd -qq >&2 || die "'$cmd' failed"
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 still missing after install"
