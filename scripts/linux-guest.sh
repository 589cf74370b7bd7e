#!/usr/bin/env bash
# Builds the Linux baseline guest of the forwarding benchmark into target/linux-guest/:
#
#   target/linux-guest/vmlinuz         Debian's kernel (the image linux-image-amd64 depends on)
#   target/linux-guest/initramfs.gz    busybox + the virtio-net and igb modules + /init (cpio newc, gzip)
#   target/linux-guest/cache/          the downloaded .deb files (kept; never installed)
#
# /init brings up the two forwarding NICs the benchmark topology fixes (matched by MAC, not
# by name): 52:54:00:0a:01:02 -> 10.0.1.2/24 (PCI slot 0x10), 52:54:00:0a:02:02 ->
# 10.0.2.2/24 (slot 0x11; with QEMU's igb NICs they sit elsewhere, the MACs are the same);
# permanent neighbours 10.0.1.1 -> 02:00:0a:00:01:01 and
# 10.0.2.1 -> 02:00:0a:00:02:01; ip_forward=1; prints `linux-guest: forwarding ready` on the
# console (ttyS0 when booted with console=ttyS0) and sleeps forever.
#
# Idempotent: the downloads are reused, and the outputs are rebuilt only when missing or
# older than this script or the cached packages. Needs apt-get (Debian) and network access
# to the configured Debian mirror the first time; everything else is local.
#
# Usage: scripts/linux-guest.sh [--force]
set -euo pipefail

die() { echo "linux-guest: error: $*" >&2; exit 1; }
say() { echo "linux-guest: $*" >&2; }

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/target/linux-guest"
cache="$out/cache"
script="$root/scripts/linux-guest.sh"
force=0
[ "${1:-}" = "--force" ] && force=1

# The modules the NICs need (virtio-net, and igb for the benchmark's igb comparison), by
# the module names of the kernel's config options. Only those built as modules (=m) are
# loaded; =y ones are already in the kernel. Their own dependencies are followed (the
# `depends=` field of each module).
WANTED_MODULES=(virtio_pci virtio_net igb)

for tool in apt-get apt-cache dpkg-deb cpio gzip find sort tr; do
  command -v "$tool" >/dev/null || die "'$tool' not found (this script needs a Debian host)"
done

mkdir -p "$cache"

# 1. Which kernel package: the dependency of the candidate linux-image-amd64.
kpkg=$( { apt-cache show --no-all-versions linux-image-amd64 2>/dev/null || true; } \
  | sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*-amd64\).*/\1/p' | head -n1)
if [ -z "$kpkg" ]; then
  # Offline and no package lists: fall back to a kernel package already in the cache.
  cached=$(find "$cache" -maxdepth 1 -name 'linux-image-[0-9]*-amd64_*.deb' | sort -V | tail -n1)
  [ -n "$cached" ] || die "cannot resolve linux-image-amd64 (apt-cache knows no such package;
  run 'apt-get update') and no kernel package is cached in $cache"
  kpkg=$(basename "$cached" | cut -d_ -f1)
fi

# 2. Download (never install) the kernel package and busybox-static into the cache.
fetch() {
  local pkg=$1
  if compgen -G "$cache/${pkg}_*.deb" >/dev/null; then
    return 0
  fi
  say "downloading $pkg into $cache"
  if ! (cd "$cache" && apt-get download -q "$pkg" >&2); then
    die "'apt-get download $pkg' failed. Check network access to the Debian mirror and
  'apt-get update', or put the .deb file into $cache by hand."
  fi
  compgen -G "$cache/${pkg}_*.deb" >/dev/null || die "apt-get download $pkg produced no .deb in $cache"
}
fetch "$kpkg"
fetch busybox-static
kdeb=$(find "$cache" -maxdepth 1 -name "${kpkg}_*.deb" | sort -V | tail -n1)
bdeb=$(find "$cache" -maxdepth 1 -name 'busybox-static_*.deb' | sort -V | tail -n1)

# 3. Up to date already?
if [ "$force" = 0 ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.gz" ] \
   && [ "$out/initramfs.gz" -nt "$script" ] && [ "$out/initramfs.gz" -nt "$kdeb" ] \
   && [ "$out/initramfs.gz" -nt "$bdeb" ] && [ "$out/vmlinuz" -nt "$kdeb" ]; then
  say "up to date: $out/vmlinuz $out/initramfs.gz"
  exit 0
fi

work=$(mktemp -d "$out/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "unpacking $(basename "$kdeb") and $(basename "$bdeb")"
dpkg-deb -x "$kdeb" "$work/kernel"
dpkg-deb -x "$bdeb" "$work/busybox"

vmlinuz=$(find "$work/kernel/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n1)
config=$(find "$work/kernel/boot" -maxdepth 1 -name 'config-*' | head -n1)
[ -n "$vmlinuz" ] || die "$(basename "$kdeb") has no /boot/vmlinuz-*"
[ -n "$config" ] || die "$(basename "$kdeb") has no /boot/config-*"
kver=${vmlinuz##*/vmlinuz-}
moddir="$work/kernel/lib/modules/$kver"
[ -d "$moddir" ] || die "$(basename "$kdeb") has no modules for $kver"
busybox="$work/busybox/bin/busybox"
[ -x "$busybox" ] || die "$(basename "$bdeb") has no /bin/busybox"

# 4. Resolve the modules: config option of each wanted module, then depends, depth first,
# so the list comes out in load order. The dependencies are read from the module's
# .modinfo strings (NUL-separated `key=value`), so kmod's modinfo is not needed.
config_of() { # module name -> CONFIG_ symbol value (y, m or empty)
  local sym
  sym="CONFIG_$(echo "$1" | tr '[:lower:]-' '[:upper:]_')"
  sed -n "s/^$sym=\(.*\)/\1/p" "$config"
}
find_ko() { # module name -> path of its .ko (possibly compressed); - and _ are equivalent
  local pat
  pat=$(echo "$1" | sed 's/[-_]/[-_]/g')
  find "$moddir/kernel" -regex ".*/$pat\.ko\(\.xz\|\.zst\|\.gz\)?" | head -n1
}
declare -A seen=()
order=()
resolve() {
  local mod=$1 ko deps dep
  mod=${mod//-/_}
  [ -n "${seen[$mod]:-}" ] && return 0
  seen[$mod]=1
  ko=$(find_ko "$mod")
  if [ -z "$ko" ]; then
    if grep -q "/$mod\.ko" "$moddir/modules.builtin" 2>/dev/null || [ "$(config_of "$mod")" = y ]; then
      return 0 # built in
    fi
    die "module $mod is neither built in nor shipped in $(basename "$kdeb")"
  fi
  case "$ko" in
    *.ko.xz) deps=$(xz -dc "$ko" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n1) ;;
    *.ko.zst) deps=$(zstd -qdc "$ko" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n1) ;;
    *.ko.gz) deps=$(gzip -dc "$ko" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n1) ;;
    *) deps=$(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | head -n1) ;;
  esac
  for dep in ${deps//,/ }; do
    resolve "$dep"
  done
  order+=("$mod:$ko")
}
for mod in "${WANTED_MODULES[@]}"; do
  case "$(config_of "$mod")" in
    y) say "$mod is built into $kver" ;;
    m) resolve "$mod" ;;
    *) die "$kver has $mod neither built in nor as a module (check $config)" ;;
  esac
done

# 5. The initramfs tree.
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,sbin,dev,proc,sys,tmp,lib/modules}
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
modlist=()
for entry in "${order[@]}"; do
  mod=${entry%%:*}
  ko=${entry#*:}
  dst="$rootfs/lib/modules/$mod.ko"
  case "$ko" in
    *.ko.xz) xz -dc "$ko" >"$dst" ;;
    *.ko.zst) zstd -qdc "$ko" >"$dst" ;;
    *.ko.gz) gzip -dc "$ko" >"$dst" ;;
    *) cp "$ko" "$dst" ;;
  esac
  modlist+=("$mod")
done
say "modules for $kver (load order): ${modlist[*]:-none}"

cat >"$rootfs/init" <<EOF
#!/bin/sh
# Linux baseline guest of Frond's forwarding benchmark (generated by scripts/linux-guest.sh).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
fail() { echo "linux-guest: FAILED: \$*"; sleep 1; poweroff -f; }
for m in ${modlist[*]}; do
  insmod /lib/modules/\$m.ko || fail "insmod \$m"
done
# The interface whose MAC is \$1 (waits up to ~5 s for the driver to probe).
by_mac() {
  tries=0
  while [ \$tries -lt 50 ]; do
    for d in /sys/class/net/*; do
      [ "\$(cat \$d/address 2>/dev/null)" = "\$1" ] && { echo \${d##*/}; return 0; }
    done
    tries=\$((tries + 1))
    usleep 100000
  done
  return 1
}
echo 0 > /proc/sys/net/ipv6/conf/default/accept_ra 2>/dev/null
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null
a=\$(by_mac 52:54:00:0a:01:02) || fail "no NIC with MAC 52:54:00:0a:01:02"
b=\$(by_mac 52:54:00:0a:02:02) || fail "no NIC with MAC 52:54:00:0a:02:02"
ip link set lo up
ip addr add 10.0.1.2/24 dev \$a || fail "address on \$a"
ip addr add 10.0.2.2/24 dev \$b || fail "address on \$b"
ip link set \$a up || fail "\$a up"
ip link set \$b up || fail "\$b up"
arp -i \$a -s 10.0.1.1 02:00:0a:00:01:01 || fail "neighbour 10.0.1.1"
arp -i \$b -s 10.0.2.1 02:00:0a:00:02:01 || fail "neighbour 10.0.2.1"
echo 1 > /proc/sys/net/ipv4/ip_forward || fail "ip_forward"
echo "linux-guest: \$a=10.0.1.2/24 \$b=10.0.2.2/24 forwarding=\$(cat /proc/sys/net/ipv4/ip_forward)"
ip neigh show
echo "linux-guest: forwarding ready"
while true; do sleep 3600; done
EOF
chmod 755 "$rootfs/init"

(cd "$rootfs" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --owner=0:0) \
  | gzip -9n >"$work/initramfs.gz"
cp "$vmlinuz" "$work/vmlinuz"
mv -f "$work/vmlinuz" "$out/vmlinuz"
mv -f "$work/initramfs.gz" "$out/initramfs.gz"
echo "$kver" >"$out/kernel-version"
say "built $out/vmlinuz ($kver) and $out/initramfs.gz"
