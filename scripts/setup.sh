#!/usr/bin/env bash
# Frond set-up, run by `make build`/`run`/`test`/`bench` before anything else.
#
# 1. Rust: stable only. The bare-metal target x86_64-unknown-none must be in the sysroot:
#    already there -> done; else `rustup target add`; else the offline archive in the
#    directory named by $FROND_OFFLINE_TOOLCHAIN (checked against its SHA256SUMS and against
#    the rustc version it was built for).
# 2. Host tools: qemu-system-x86 (QEMU + firmware), iproute2, tcpdump, the network test
#    clients iputils-ping, curl, netcat-openbsd, cpio (the benchmark's Linux guest
#    image) and g++ (libFuzzer, which `make fuzz` builds, is C++). Installed with apt
#    when missing and running as root; otherwise we stop and print the exact command.
#
# 3. QEMU with the 82576 (igb) device: from the release's backports suite when missing.
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
# `make fuzz` links libFuzzer, whose C++ sources the libfuzzer-sys crate compiles.
command -v c++ >/dev/null || missing+=(g++)
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

# 3. QEMU must emulate the 82576 (`-device igb`, QEMU >= 8.0). Debian 12 ships 7.2; its
#    backports suite carries a newer QEMU. The backports source is derived from the mirror
#    apt already uses for this release (nothing is hard-coded), then qemu-system-x86 is
#    installed from it.
has_igb() { qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'; }
if ! has_igb; then
  [ -r /etc/os-release ] || die "QEMU has no igb device and this is not a Debian-like system: install QEMU >= 8.0"
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || die "QEMU has no igb device and /etc/os-release names no codename: install QEMU >= 8.0"
  bp="$codename-backports"
  if [ "$(id -u)" -ne 0 ]; then
    die "QEMU $(qemu-system-x86_64 --version | head -1 | awk '{print $4}') has no igb device. As root, add the $bp suite to apt's sources and run: apt-get install -t $bp qemu-system-x86"
  fi
  if ! apt-get indextargets --format '$(RELEASE)' 2>/dev/null | grep -qx "$bp"; then
    # The mirror (and its signing key) of the first source that serves "$codename".
    src=$(
      {
        # deb822 (*.sources): stanzas separated by blank lines.
        for f in /etc/apt/sources.list.d/*.sources; do
          [ -r "$f" ] || continue
          awk -v c="$codename" '
            BEGIN { RS = ""; FS = "\n" }
            {
              uri = ""; suites = ""; key = ""; types = ""
              for (i = 1; i <= NF; i++) {
                if ($i ~ /^URIs:/) { uri = $i; sub(/^URIs:[ \t]*/, "", uri); split(uri, u, " "); uri = u[1] }
                if ($i ~ /^Suites:/) { suites = " " $i " " }
                if ($i ~ /^Signed-By:/) { key = $i; sub(/^Signed-By:[ \t]*/, "", key) }
                if ($i ~ /^Types:/) { types = $i }
              }
              if (types ~ /deb( |$)/ && suites ~ (" " c " ") && uri != "") { print uri "|" key; exit }
            }' "$f"
        done
        # One-line format (sources.list, *.list): deb [options] URI suite components...
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
          [ -r "$f" ] || continue
          awk -v c="$codename" '
            $1 == "deb" {
              i = 2; key = ""
              if ($2 ~ /^\[/) { while ($i !~ /\]$/) { if ($i ~ /signed-by=/) { key = $i; sub(/.*signed-by=/, "", key); sub(/\]$/, "", key) } i++ }
                                if ($i ~ /signed-by=/) { key = $i; sub(/.*signed-by=/, "", key); sub(/\]$/, "", key) } i++ }
              if ($(i + 1) == c) { print $i "|" key; exit }
            }' "$f"
        done
      } | head -1
    ) || true
    [ -n "$src" ] || die "no apt source serves '$codename': cannot derive the $bp mirror; install QEMU >= 8.0 by hand"
    uri=${src%%|*}
    key=${src#*|}
    say "adding the $bp suite from $uri (apt's mirror for $codename)"
    {
      echo "Types: deb"
      echo "URIs: $uri"
      echo "Suites: $bp"
      echo "Components: main"
      [ -n "$key" ] && echo "Signed-By: $key"
    } > /etc/apt/sources.list.d/frond-backports.sources
  fi
  say "installing qemu-system-x86 from $bp (QEMU with the igb device)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends -t "$bp" qemu-system-x86 >&2 \
    || die "apt-get install -t $bp qemu-system-x86 failed"
  has_igb || die "qemu-system-x86 from $bp still has no igb device"
fi
