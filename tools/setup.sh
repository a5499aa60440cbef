#!/usr/bin/env bash
# Installs everything cxlkv needs to build, test and benchmark, from Debian 12 packages only.
# Run as root (or with sudo). Safe to run again: apt-get skips what is installed.
set -euo pipefail

packages=(
  # toolchain; ccache: tools/test.sh's builds reuse what earlier runs on this machine compiled
  build-essential cmake ninja-build pkg-config git ccache
  # memory sources and discovery: NUMA, PMDK libpmem2, daxctl/ndctl/cxl (from the ndctl suite)
  libnuma-dev numactl libpmem2-dev libdaxctl-dev libndctl-dev libcxl-dev daxctl ndctl
  # NVMe spill tier
  liburing-dev
  # formats and the CLI (toml++: `cxlkv serve --config`)
  libxxhash-dev nlohmann-json3-dev libcli11-dev libtomlplusplus-dev
  # tests and benchmarks (bench_spill prints fio's figure on the same file system beside its own)
  libgtest-dev libgmock-dev libbenchmark-dev libmimalloc-dev fio
  # the fuzz targets (backends/pool/fuzz): clang and libFuzzer (libclang_rt.fuzzer-x86_64.a
  # comes with libclang-rt-14-dev, which clang-14 only recommends)
  clang libclang-rt-14-dev
  # CLI tests check JSON output with the standard library json module; the lm:// server
  # tests run under pytest; the Python module builds with pybind11 and is tested with numpy
  # arrays and CPU torch tensors
  python3 python3-pytest pybind11-dev python3-pybind11 python3-numpy python3-torch
  # LMCache's own code (the kit in ../shared/lmcache-kit, a CI gate) imports sortedcontainers;
  # tests/lmcache reads docs/lmcache.md's YAML configurations with PyYAML
  python3-sortedcontainers python3-yaml
  # the plots of `cxlkv bench wss` and `cxlkv replay sweep` (tools/plot_wss.py and
  # tools/replay_plot.py run under /usr/bin/python3)
  python3-matplotlib
  # the QEMU guest suite (tools/qemu/): a TCG guest with a CPU-less node, /dev/dax, kmem and
  # an emulated CXL type-3 device; busybox, cpio, kmod, zstd build its initramfs
  qemu-system-x86 busybox-static cpio kmod zstd
)

# The guest's kernel and initramfs (Debian's 6.12 kernel, unpacked, not installed), cached in
# ${TMPDIR:-/tmp}/cxlkv-qemu; skipped with the guest suite (CXLKV_SKIP_QEMU=1).
qemu_setup() {
  if [ "${CXLKV_SKIP_QEMU:-0}" = 1 ]; then return 0; fi
  "$(dirname "$0")/qemu/setup.sh"
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  qemu_setup
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/cxlkv-setup.XXXXXX.log)
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "setup: apt-get failed; full log in $log" >&2
  exit 1
fi
rm -f "$log"
qemu_setup
echo "setup: done"
