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
# With `frond.mode=blk` on the command line it runs the storage baseline instead (/blkbench,
# below; the block modules of BLK_MODULES) and powers off.
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
# The storage baseline's modules (frond.mode=blk): virtio-blk and ext2, which Debian's
# kernel serves with ext4 (CONFIG_EXT4_USE_FOR_EXT2). Loaded only in that mode.
# ext4 loads the crc32c checksum at every mount (crc32c_generic: CONFIG_CRYPTO_CRC32C).
BLK_MODULES=(virtio_blk ext4 crc32c_generic)

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
net_count=${#order[@]}
for mod in "${BLK_MODULES[@]}"; do
  resolve "$mod" # dies if the module is neither built in nor shipped
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
# The block modules (those not already needed by the NICs) are loaded by /blkbench only.
blkmodlist=("${modlist[@]:$net_count}")
modlist=("${modlist[@]:0:$net_count}")
printf '%s\n' "${blkmodlist[@]}" >"$rootfs/lib/modules/blk.order"

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
# frond.mode=blk: the storage baseline instead of forwarding (/blkbench powers off).
case " \$(cat /proc/cmdline) " in *" frond.mode=blk "*) exec /bin/sh /blkbench ;; esac
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

# frond.mode=blk: the storage baseline. On the virtio-blk disk /dev/vda (PCI slot 0x12),
# sequential write then read of frond.bytes= bytes (default 32 MiB) in each request size
# of frond.req= (default 4096,65536), (a) on the raw device with O_DIRECT, then (b) in a
# file of an ext2 file system made on it (4 KiB blocks; caches dropped before each read),
# then frond.files= (default 200) files created and deleted on ext2. One line per figure:
#   linux-guest: blk op=write|read|create_delete mode=direct|ext2 req=R bytes=B ns=T idle_ns=I
#     reads=N read_kib=K writes=N write_kib=K flushes=N
# T: CLOCK_MONOTONIC nanoseconds ("now at" of /proc/timer_list, read by the shell's own
# `read`, so taking a time costs no fork); I: the CPU's idle + iowait time over the same
# interval (/proc/stat, 10 ms resolution). Under -icount shift=0 a busy nanosecond is one
# guest instruction; idle time passes with the host's clock. reads= … flushes= are what the
# disk completed over the interval (/sys/block/vda/stat, read outside the clock readings).
# Also `op=overhead` lines (3 of each): what timing a no-op (mode=stamp) and an empty dd
# (mode=dd: starting a process) cost.
cat >"$rootfs/blkbench" <<'EOF'
#!/bin/sh
# Storage baseline of Frond's benchmark (generated by scripts/linux-guest.sh).
export PATH=/bin
fail() { echo "linux-guest: FAILED: $*"; dmesg | tail -n 5; sleep 1; poweroff -f; }
for m in $(cat /lib/modules/blk.order); do
  insmod /lib/modules/$m.ko || fail "insmod $m"
done
arg() { # frond.$1= from the command line, else $2
  for w in $(cat /proc/cmdline); do
    case $w in frond.$1=*) echo "${w#*=}"; return ;; esac
  done
  echo "$2"
}
bytes=$(arg bytes 33554432)
files=$(arg files 200)
reqs=$(arg req 4096,65536 | tr , ' ')
dev=/dev/vda
tries=0
while [ ! -b $dev ]; do
  tries=$((tries + 1))
  [ $tries -gt 50 ] && fail "no $dev (is a virtio-blk disk attached?)"
  usleep 100000
done
# NOW = CLOCK_MONOTONIC ns ("now at" on line 3 of /proc/timer_list); IDLE = idle + iowait
# time of all CPUs in ns (the `cpu` line of /proc/stat, in USER_HZ = 100 ticks per second).
# The idle counters are read outside the clock readings, so their cost is not timed.
now() { { read -r s_k; read -r s_k; read -r s_k s_v NOW s_rest; } </proc/timer_list; }
idle() {
  read -r s_k s_u s_n s_sy s_id s_io s_rest </proc/stat
  IDLE=$(((s_id + s_io) * 10000000))
}
# run OP MODE REQ RECORDS CMD...: times CMD, checks it succeeded (and, if RECORDS is not
# -, that dd moved RECORDS whole records), prints the result line.
run() {
  local op=$1 mode=$2 req=$3 want=$4 t0 i0 r0 rs0 w0 ws0 f0
  shift 4
  read -r r0 s_m rs0 s_t w0 s_m ws0 s_t s_q s_t s_t s_d s_m s_s s_t f0 s_t </sys/block/vda/stat
  idle
  now
  t0=$NOW i0=$IDLE
  "$@" 2>/tmp/err || fail "$op $mode req=$req: $(cat /tmp/err)"
  now
  idle
  read -r s_r s_m s_rs s_t s_w s_m s_ws s_t s_q s_t s_t s_d s_m s_s s_t s_f s_t </sys/block/vda/stat
  [ -n "$NOW" ] && [ -n "$t0" ] || fail "no 'now at' on line 3 of /proc/timer_list"
  if [ "$want" != - ] && ! grep -q "^$want+0 records out" /tmp/err; then
    fail "$op $mode req=$req: dd moved other than $want records: $(cat /tmp/err)"
  fi
  echo "linux-guest: blk op=$op mode=$mode req=$req bytes=$bytes ns=$((NOW - t0)) idle_ns=$((IDLE - i0))" \
    "reads=$((s_r - r0)) read_kib=$(((s_rs - rs0) / 2)) writes=$((s_w - w0)) write_kib=$(((s_ws - ws0) / 2)) flushes=$((s_f - f0))"
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
ext2_write() { dd if=/dev/zero of=/mnt/bench.dat bs=$1 count=$2 conv=fsync && sync; }
create_delete() {
  local i=0
  while [ $i -lt $files ]; do
    : >/mnt/cd/c$i || return 1
    i=$((i + 1))
  done
  rm -f /mnt/cd/c*
}
size=$(($(cat /sys/block/vda/size) * 512))
[ $size -ge $bytes ] || fail "$dev has $size bytes, fewer than $bytes"
echo "linux-guest: blk start dev=$dev size=$size bytes=$bytes req=$reqs files=$files scheduler=$(cat /sys/block/vda/queue/scheduler) max_sectors_kb=$(cat /sys/block/vda/queue/max_sectors_kb)"
for i in 1 2 3; do
  run overhead stamp 0 - true
  run overhead dd 0 0 dd if=/dev/zero of=/dev/null count=0
done
for req in $reqs; do
  n=$((bytes / req))
  drop_caches
  run write direct $req $n dd if=/dev/zero of=$dev bs=$req count=$n oflag=direct conv=fsync
  run read direct $req $n dd if=$dev of=/dev/null bs=$req count=$n iflag=direct
done
mkdir -p /mnt
mke2fs -F -b 4096 $dev >/tmp/err 2>&1 || fail "mke2fs: $(cat /tmp/err)"
mount -t ext2 $dev /mnt || fail "mount -t ext2 $dev"
mkdir /mnt/cd
for req in $reqs; do
  n=$((bytes / req))
  rm -f /mnt/bench.dat
  drop_caches
  run write ext2 $req $n ext2_write $req $n
  drop_caches
  run read ext2 $req $n dd if=/mnt/bench.dat of=/dev/null bs=$req
done
drop_caches
run create_delete ext2 0 - create_delete
umount /mnt || fail "umount /mnt"
echo "linux-guest: blk done"
sync
poweroff -f
EOF
chmod 755 "$rootfs/blkbench"

(cd "$rootfs" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --owner=0:0) \
  | gzip -9n >"$work/initramfs.gz"
cp "$vmlinuz" "$work/vmlinuz"
mv -f "$work/vmlinuz" "$out/vmlinuz"
mv -f "$work/initramfs.gz" "$out/initramfs.gz"
echo "$kver" >"$out/kernel-version"
say "built $out/vmlinuz ($kver) and $out/initramfs.gz"
