#!/usr/bin/env bash
# tools/qemu/setup.sh [WORKDIR] -- prepares what tools/qemu/run.sh boots (idempotent, cached):
#   * the Debian packages it needs (qemu-system-x86, busybox-static, cpio, kmod, ...);
#   * Debian's 6.12 kernel package, fetched with `apt-get download` and unpacked into WORKDIR
#     (never installed on the host): vmlinuz plus the few modules the guest loads;
#   * a busybox initramfs whose /init mounts the run's control share and runs guest-init.sh
#     from there, so editing guest-init.sh needs no rebuild.
# WORKDIR: the argument, else $CXLKV_QEMU_WORKDIR, else ${TMPDIR:-/tmp}/cxlkv-qemu.
# Env: CXLKV_QEMU_KERNEL_PKG=linux-image-...  pins the kernel package (default: the newest
#      6.12 one: CXL regions read back wrong words on 6.1, see docs/qemu.md).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=${1:-${CXLKV_QEMU_WORKDIR:-${TMPDIR:-/tmp}/cxlkv-qemu}}
mkdir -p "$work"
work=$(cd "$work" && pwd)
say() { echo "qemu setup: $*" >&2; }
die() { echo "qemu setup: $*" >&2; exit 1; }
exec 9>"$work/.lock"
flock 9  # two callers at once: the second waits for the first's download

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# --- packages (tools/setup.sh lists them too; here so this script also works alone)
pkgs=(qemu-system-x86 busybox-static cpio kmod xz-utils zstd ndctl daxctl numactl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  log=$(mktemp /tmp/cxlkv-qemu-apt.XXXXXX.log)
  { $SUDO apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${missing[@]}"; } >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "apt-get failed; log $log"; }
  rm -f "$log"
fi

# Modules the guest loads; modprobe resolves their dependencies below.
modules="virtio_pci 9pnet_virtio 9p overlay dax_hmem device_dax kmem dax_pmem nd_pmem
         cxl_acpi cxl_pci cxl_mem cxl_pmem cxl_port dax_cxl"

# --- kernel: unpacked from the .deb, never installed
kdir=$work/kernel
if [ ! -s "$kdir/vmlinuz" ] || [ ! -s "$kdir/kver" ]; then
  newest_612() {  # the versioned package the 6.12 meta package depends on
    apt-cache depends linux-image-6.12-amd64 2>/dev/null |
      sed -n 's/^ *Depends: \(linux-image-6\.12[^ ]*-amd64\)$/\1/p' | head -n1
  }
  pkg=${CXLKV_QEMU_KERNEL_PKG:-$(newest_612)}
  if [ -z "$pkg" ]; then
    $SUDO apt-get update -qq || true
    pkg=$(newest_612)
  fi
  [ -n "$pkg" ] || die "no linux-image-6.12 package in apt's lists (bookworm-security or backports needed)"
  say "kernel package $pkg (unpacked into $work, not installed)"
  rm -rf "$work/dl" "$work/x" "$kdir.new"
  mkdir -p "$work/dl" "$kdir.new"
  chmod 777 "$work/dl"  # apt downloads as the _apt user
  (cd "$work/dl" && apt-get download -q "$pkg" >/dev/null 2>&1) || die "apt-get download $pkg failed"
  dpkg-deb -x "$work"/dl/*.deb "$work/x"
  kver=$(ls "$work/x/lib/modules" | head -n1)
  cp "$work/x/boot/vmlinuz-$kver" "$kdir.new/vmlinuz"
  echo "$kver" >"$kdir.new/kver"
  echo "$pkg" >"$kdir.new/package"
  depmod -b "$work/x" "$kver"
  src=$work/x/lib/modules/$kver
  dst=$kdir.new/lib/modules/$kver
  mkdir -p "$dst"
  for m in $modules; do
    deps=$(modprobe -C /dev/null -d "$work/x" -S "$kver" --show-depends "$m" 2>/dev/null) ||
      { say "note: module $m is not in $kver (built in or absent)"; continue; }
    while read -r kind path _; do
      [ "$kind" = insmod ] || continue
      rel=${path#"$src"/}
      out=$dst/${rel%.xz}
      out=${out%.zst}
      [ -e "$out" ] && continue
      mkdir -p "$(dirname "$out")"
      case $path in  # busybox modprobe loads plain .ko files only
        *.xz) xz -dc "$path" >"$out" ;;
        *.zst) zstd -dcq "$path" >"$out" ;;
        *) cp "$path" "$out" ;;
      esac
    done <<<"$deps"
  done
  cp "$src"/modules.builtin* "$src"/modules.order "$dst/" 2>/dev/null || true
  depmod -b "$kdir.new" "$kver"
  rm -rf "$work/dl" "$work/x" "$kdir" "$work/initramfs.cpio.gz"
  mv "$kdir.new" "$kdir"
fi

# --- initramfs: busybox and the modules; rebuilt when this script changes
initrd=$work/initramfs.cpio.gz
if [ ! -s "$initrd" ] || [ "$here/setup.sh" -nt "$initrd" ]; then
  st=$work/initramfs.staging
  rm -rf "$st"
  mkdir -p "$st"/{bin,sbin,dev,proc,sys,run,mnt,ctl,tmp}
  cp /bin/busybox "$st/bin/busybox"
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -sf busybox "$st/bin/$a"
  done
  ln -sf ../bin/busybox "$st/sbin/modprobe"
  cp -a "$kdir/lib" "$st/"
  cat >"$st/init" <<'INIT'
#!/bin/sh
# Stage 1: mount the run's control share and hand over to its guest-init.sh.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo /sbin/modprobe >/proc/sys/kernel/modprobe
modprobe virtio_pci 2>/dev/null  # built in on 6.12
modprobe 9pnet_virtio && modprobe 9p
for i in 1 2 3 4 5 6 7 8 9 10; do  # the virtio devices may still be probing
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none ctl /ctl 2>/dev/null && break
  sleep 0.5
done
[ -f /ctl/guest-init.sh ] && exec /bin/sh /ctl/guest-init.sh
echo "cxlkv-qemu: cannot mount the control share" >&2
poweroff -f
INIT
  chmod 755 "$st/init"
  (cd "$st" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) >"$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
  rm -rf "$st"
fi
mkdir -p "$work/runs"
say "ready in $work: kernel $(cat "$kdir/kver") ($(cat "$kdir/package")), $(qemu-system-x86_64 --version | head -n1)"
