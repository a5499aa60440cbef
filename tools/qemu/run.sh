#!/usr/bin/env bash
# tools/qemu/run.sh --mode MODE [--mem SIZE] [--timeout SECS] [--keep] [-v] -- COMMAND [ARGS...]
#
# Boots a throw-away QEMU guest (TCG: no KVM needed; Debian's 6.12 kernel) that has the memory
# hardware this machine lacks, runs COMMAND in it and exits with COMMAND's status.
#   numa    NUMA node 1: --mem of RAM and no CPUs (how the OS shows a CXL memory expander)
#   devdax  node 1's range soft-reserved (EFI_MEMORY_SP, as firmware does for CXL memory):
#           dax_hmem -> /dev/dax0.0 in devdax mode
#   kmem    as devdax, then `daxctl reconfigure-device --mode=system-ram`: node 1 = RAM
#   cxl     an emulated CXL type-3 device -> `cxl create-region` -> `ndctl create-namespace
#           -m devdax` -> /dev/daxX.Y on CXL memory (MMIO-emulated: slow, keep data small)
# The guest sees the host's / read-only (a RAM overlay makes it writable; writes vanish) and
# the current directory read-write at the same path, so COMMAND runs the host's binaries and
# what it writes below the cwd comes back. COMMAND gets the caller's exported environment plus
# QEMU_GUEST=1, QEMU_GUEST_MODE, and QEMU_GUEST_DAX (devdax, cxl), QEMU_GUEST_NUMA_NODE (numa,
# kmem), QEMU_GUEST_CXL_REGION (cxl).
#
# Exit status: COMMAND's; 124 when the guest ran past --timeout (default 300 s; the console's
# tail is printed); 125 when the guest could not set the mode up or run COMMAND.
# Work dir: $CXLKV_QEMU_WORKDIR or ${TMPDIR:-/tmp}/cxlkv-qemu (tools/qemu/setup.sh fills it).
# shellcheck disable=SC2054  # the commas in array items are QEMU option syntax
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mode="" mem="" timeout_s=300 keep=0 verbose=0 ram_mib=2048 cpus=2
work=${CXLKV_QEMU_WORKDIR:-${TMPDIR:-/tmp}/cxlkv-qemu}
die() { echo "qemu run: $*" >&2; exit 125; }
while [ $# -gt 0 ]; do
  case $1 in
    --mode) mode=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -v) verbose=1; shift ;;
    --) shift; break ;;
    *) die "unknown argument '$1' (usage: run.sh --mode numa|devdax|kmem|cxl [--mem SIZE] [--timeout SECS] -- COMMAND...)" ;;
  esac
done
[ $# -gt 0 ] || die "no COMMAND (usage: run.sh --mode MODE -- COMMAND...)"
case $mode in numa | devdax | kmem | cxl) ;; *) die "--mode must be numa, devdax, kmem or cxl, not '$mode'" ;; esac
[[ $timeout_s =~ ^[0-9]+$ ]] || die "--timeout wants seconds, not '$timeout_s'"

# Sizes in MiB. Node 1 and the dax range are 128 MiB memory blocks; a CXL region is made of
# 256 MiB decoder granules.
if [ -z "$mem" ]; then if [ "$mode" = cxl ]; then mem=256M; else mem=512M; fi; fi
case ${mem^^} in
  *G) mem_mib=$((${mem%[gG]} * 1024)) ;;
  *M) mem_mib=${mem%[mM]} ;;
  *) die "--mem wants a size such as 512M or 1G, not '$mem'" ;;
esac
granule=128
[ "$mode" = cxl ] && granule=256
mem_mib=$(((mem_mib + granule - 1) / granule * granule))

cwd=$(pwd -P)
[ "$cwd" != / ] || die "run it from a directory other than /"
if [ ! -s "$work/kernel/vmlinuz" ] || [ ! -s "$work/initramfs.cpio.gz" ]; then
  "$here/setup.sh" "$work" || die "tools/qemu/setup.sh failed"
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (run tools/qemu/setup.sh)"
mkdir -p "$work/runs"
run=$(mktemp -d "$work/runs/$mode.XXXXXX")
qpid="" tails=""
cleanup() {
  [ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true
  for p in $tails; do kill "$p" 2>/dev/null || true; done
  if [ "$keep" = 1 ]; then echo "qemu run: kept $run" >&2; else rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the control share: what the guest runs, and where it writes its results
cp "$here/guest-init.sh" "$run/guest-init.sh"
printf 'MODE=%s\nCWD=%q\nMEM_MIB=%s\n' "$mode" "$cwd" "$mem_mib" >"$run/config"
{
  for n in $(compgen -e); do
    case $n in PWD | OLDPWD | SHLVL | _ | SHELLOPTS | BASHOPTS | UID | EUID | PPID | BASH_*) continue ;; esac
    printf 'export %s=%q\n' "$n" "${!n}"
  done
} >"$run/env.sh"
{
  printf 'cd -- %q || exit 126\n' "$cwd"
  printf 'exec'
  printf ' %q' "$@"
  printf '\n'
} >"$run/cmd.sh"
: >"$run/stdout"
: >"$run/stderr"

# --- QEMU's command line
qesc() { printf '%s' "${1//,/,,}"; }  # a comma inside a QEMU option value is written ",,"
append="console=ttyS0 loglevel=4 panic=-1 oops=panic rdinit=/init"
q=(qemu-system-x86_64 -nodefaults -display none -monitor none -no-reboot
  -serial "file:$run/console.log" -kernel "$work/kernel/vmlinuz" -initrd "$work/initramfs.cpio.gz"
  -smp "$cpus"
  # the host's / read-only; multidevs=remap because / spans several file systems
  -fsdev "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap"
  -device virtio-9p-pci,fsdev=root,mount_tag=hostroot
  -fsdev "local,id=cwd,path=$(qesc "$cwd"),security_model=none,multidevs=remap"
  -device virtio-9p-pci,fsdev=cwd,mount_tag=cwd
  -fsdev "local,id=ctl,path=$(qesc "$run"),security_model=none"
  -device virtio-9p-pci,fsdev=ctl,mount_tag=ctl)
case $mode in
  numa | devdax | kmem)
    # Node 0 holds the CPUs and ram_mib below 4 GiB (max-ram-below-4g), so node 1 starts at
    # exactly 4 GiB and devdax/kmem can soft-reserve it by address.
    q+=(-machine "q35,accel=tcg,max-ram-below-4g=${ram_mib}M" -cpu max
      -m "$((ram_mib + mem_mib))M"
      -object "memory-backend-ram,id=m0,size=${ram_mib}M" -numa "node,nodeid=0,cpus=0-$((cpus - 1)),memdev=m0"
      -object "memory-backend-ram,id=m1,size=${mem_mib}M" -numa "node,nodeid=1,memdev=m1")
    # memmap=SIZE%BASE+0xefffffff: mark node 1 EFI_MEMORY_SP (soft reserved) -> dax_hmem
    [ "$mode" = numa ] || append+=" memmap=${mem_mib}M%4096M+0xefffffff"
    ;;
  cxl)
    # hypervisor=off: the kernel commits a region only where it may flush caches with WBINVD,
    # which it refuses under a hypervisor. pci=nomsi: cxl_pci cannot get its event interrupts
    # from QEMU 7.2 otherwise. The device is persistent (QEMU 7.2 has no volatile type-3).
    q+=(-machine "q35,cxl=on,accel=tcg" -cpu "max,hypervisor=off" -m "${ram_mib}M"
      -object "memory-backend-file,id=cxl-mem0,share=on,mem-path=$(qesc "$run")/cxl-mem0.raw,size=${mem_mib}M"
      -object "memory-backend-file,id=cxl-lsa0,share=on,mem-path=$(qesc "$run")/cxl-lsa0.raw,size=1M"
      -device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1
      -device cxl-rp,port=0,bus=cxl.1,id=cxl_rp0,chassis=0,slot=2
      -device cxl-type3,bus=cxl_rp0,memdev=cxl-mem0,lsa=cxl-lsa0,id=cxl-pmem0
      -M "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G")
    append+=" pci=nomsi"
    ;;
esac
q+=(-append "$append")

# --- boot, stream COMMAND's output while it runs, collect its status
t0=$SECONDS
timeout --kill-after=5 "$timeout_s" "${q[@]}" </dev/null >"$run/qemu.log" 2>&1 &
qpid=$!
tail -n +1 -s 0.3 -f --pid=$qpid "$run/stdout" &
tails=$!
tail -n +1 -s 0.3 -f --pid=$qpid "$run/stderr" >&2 &
tails+=" $!"
qrc=0
wait "$qpid" || qrc=$?
qpid=""
for p in $tails; do wait "$p" 2>/dev/null || true; done
tails=""
[ "$verbose" = 0 ] || { sed 's/^/[guest-init] /' "$run/guest.log" >&2 2>/dev/null || true; }

if [ -s "$run/rc" ] && [[ $(cat "$run/rc") =~ ^[0-9]+$ ]]; then
  exit "$(cat "$run/rc")"
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  why="timed out after ${timeout_s}s"
  rc=124
elif [ -s "$run/setup-error" ]; then
  why="could not set up mode $mode: $(cat "$run/setup-error")"
  rc=125
else
  why="stopped without an exit status (qemu exit $qrc)"
  rc=125
fi
{
  echo "---- guest log (tail)"
  tail -n 15 "$run/guest.log" 2>/dev/null
  echo "---- qemu (tail)"
  tail -n 5 "$run/qemu.log" 2>/dev/null
  echo "---- guest console (tail)"
  tail -n 25 "$run/console.log" 2>/dev/null
  echo "qemu run: mode $mode: guest $why ($((SECONDS - t0)) s)"
} >&2 || true
exit "$rc"
