#!/bin/sh
# tools/qemu/guest-init.sh: PID 1 of the QEMU guest (busybox sh), started by the initramfs from
# the run's control share /ctl, where tools/qemu/run.sh put it with:
#   /ctl/config  MODE, CWD, MEM_MIB;  /ctl/env.sh  the caller's environment;
#   /ctl/cmd.sh  "cd CWD; exec COMMAND".
# It writes back /ctl/stdout, /ctl/stderr, /ctl/rc (COMMAND's status), /ctl/guest.log, and
# /ctl/setup-error when the mode could not be set up. Every path ends in poweroff.
export PATH=/bin:/sbin
NR=/newroot
LOG=/ctl/guest.log
: >"$LOG"
. /ctl/config

log() { echo "[$(cut -d' ' -f1 /proc/uptime) s] $*" >>"$LOG"; }
finish() {
  sync
  umount "$NR$CWD" 2>/dev/null
  umount /ctl 2>/dev/null
  poweroff -f
}
fail() {
  log "setup failed: $*"
  echo "$*" >/ctl/setup-error
  dmesg | tail -n 30 >>"$LOG"
  finish
}
run() { log "+ $*"; "$@" >>"$LOG" 2>&1 || fail "$*"; }
host() { chroot "$NR" "$@"; }  # a host binary: daxctl, ndctl, cxl
wait_for() {                   # wait_for SECONDS COMMAND...: poll every 0.1 s
  n=$(($1 * 10))
  shift
  until "$@"; do
    n=$((n - 1))
    [ $n -gt 0 ] || return 1
    sleep 0.1
  done
}
log "booted: mode $MODE, ${MEM_MIB} MiB, kernel $(uname -r)"

# --- root file system: host / (9p, read-only) under a tmpfs overlay, the cwd read-write on top
P9="trans=virtio,version=9p2000.L,msize=512000"
run modprobe overlay
mkdir -p /mnt/host /mnt/ovl "$NR"
run mount -t 9p -o "$P9,cache=loose,ro" hostroot /mnt/host
run mount -t tmpfs -o mode=755 tmpfs /mnt/ovl
mkdir -p /mnt/ovl/upper /mnt/ovl/work
run mount -t overlay -o lowerdir=/mnt/host,upperdir=/mnt/ovl/upper,workdir=/mnt/ovl/work overlay "$NR"
run mount -t proc proc "$NR/proc"
run mount -t sysfs sysfs "$NR/sys"
run mount -t devtmpfs devtmpfs "$NR/dev"
mkdir -p "$NR/dev/pts" "$NR/dev/shm"
run mount -t devpts devpts "$NR/dev/pts"
run mount -t tmpfs -o mode=1777 tmpfs "$NR/dev/shm"
run mount -t tmpfs -o mode=755 tmpfs "$NR/run"
run mount -t tmpfs -o mode=1777 tmpfs "$NR/tmp"
# A cwd under /tmp (CI's clones) is hidden by the tmpfs just mounted there: make its mount point.
[ -d "$NR$CWD" ] || mkdir -p "$NR$CWD" || fail "the working directory $CWD is not visible in the guest"
run mount -t 9p -o "$P9,cache=mmap" cwd "$NR$CWD"
mkdir -p "$NR/run/cxlkv-qemu"
cp /ctl/env.sh /ctl/cmd.sh "$NR/run/cxlkv-qemu/"
ip link set lo up 2>/dev/null
hostname qemu-guest

# --- the mode's hardware
GENV=$NR/run/cxlkv-qemu/guest-env.sh
printf 'export QEMU_GUEST=1 QEMU_GUEST_MODE=%s\nunset QEMU_GUEST_DAX QEMU_GUEST_NUMA_NODE QEMU_GUEST_CXL_REGION\n' \
  "$MODE" >"$GENV"
node1_kib() { awk '/MemTotal/ {print $4}' /sys/devices/system/node/node1/meminfo 2>/dev/null; }
node1_has_memory() { [ "$(node1_kib)" -gt 0 ] 2>/dev/null; }
first_nd_region() { for r in /sys/bus/nd/devices/region*; do [ -e "$r" ] && basename "$r" && return; done; }
have_nd_region() { [ -n "$(first_nd_region)" ]; }

hmem_devdax() {  # the soft-reserved range -> hmem -> dax0.0 bound to device_dax
  run modprobe device_dax
  run modprobe dax_hmem
  wait_for 30 test -e /sys/bus/dax/devices/dax0.0 || fail "dax0.0 did not appear (soft-reserved range missing?)"
  drv=$(basename "$(readlink /sys/bus/dax/devices/dax0.0/driver 2>/dev/null)" 2>/dev/null)
  [ "$drv" = device_dax ] || run host daxctl reconfigure-device --mode=devdax --force dax0.0
  wait_for 30 test -c /dev/dax0.0 || fail "/dev/dax0.0 did not appear"
}

case $MODE in
  numa)
    [ -d /sys/devices/system/node/node1 ] || fail "NUMA node 1 is missing"
    echo "export QEMU_GUEST_NUMA_NODE=1" >>"$GENV"
    ;;
  devdax)
    hmem_devdax
    echo "export QEMU_GUEST_DAX=/dev/dax0.0" >>"$GENV"
    ;;
  kmem)
    # Keep the range offline until kmem takes it, so it is onlined as movable node 1 memory.
    echo offline >/sys/devices/system/memory/auto_online_blocks
    hmem_devdax
    run modprobe kmem
    run host daxctl reconfigure-device --mode=system-ram dax0.0
    wait_for 30 node1_has_memory || fail "node 1 has no memory after daxctl --mode=system-ram"
    echo "export QEMU_GUEST_NUMA_NODE=1" >>"$GENV"
    ;;
  cxl)
    for m in cxl_acpi cxl_pci cxl_mem cxl_pmem nd_pmem dax_pmem device_dax; do run modprobe $m; done
    wait_for 60 test -e /sys/bus/cxl/devices/mem0/driver || fail "cxl_mem did not bind mem0"
    wait_for 60 test -e /sys/bus/cxl/devices/decoder0.0 || fail "no CXL root decoder decoder0.0"
    run host cxl create-region -m -d decoder0.0 -w 1 -t pmem mem0
    wait_for 60 have_nd_region || fail "the CXL pmem region has no nvdimm region"
    region=$(first_nd_region)
    # -M mem: the namespace's struct pages live in RAM, not on the (slow) CXL memory.
    run host ndctl create-namespace -m devdax -M mem -r "$region" -a 2M
    dax=""
    for d in /sys/bus/dax/devices/dax*; do [ -e "$d" ] && dax=$(basename "$d"); done
    [ -n "$dax" ] && wait_for 30 test -c "/dev/$dax" || fail "no /dev/dax device on the CXL region"
    printf 'export QEMU_GUEST_DAX=/dev/%s QEMU_GUEST_CXL_REGION=%s\n' "$dax" "$region" >>"$GENV"
    ;;
  *) fail "unknown mode $MODE" ;;
esac
log "mode $MODE ready"

# --- the command
chroot "$NR" /bin/bash -c '. /run/cxlkv-qemu/env.sh; . /run/cxlkv-qemu/guest-env.sh; . /run/cxlkv-qemu/cmd.sh' \
  >/ctl/stdout 2>/ctl/stderr </dev/null
rc=$?
log "command exited with status $rc"
echo "$rc" >/ctl/rc
finish
