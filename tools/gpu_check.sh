#!/usr/bin/env bash
# GPU restore on a machine with a GPU, in one go: builds (or takes prebuilt binaries), runs the
# GPU tests with skips turned into failures, the CUDA-free GPU unit tests, and
# bench_gpu_restore. Meant for one device call; see docs/gpu.md.
#
#   tools/gpu_check.sh                 build into build/gpu (needs tools/setup.sh's packages
#                                      and the CUDA toolkit), then run everything
#   tools/gpu_check.sh --bin DIR       run binaries packed by --pack (no build on this machine)
#   tools/gpu_check.sh --pack DIR      (on a machine that built them) copy the stripped binaries
#                                      and the shared libraries they need into DIR
#
# BENCH_ARGS adds flags to the bench. Output: the tests' and the bench's output; the bench's CSV goes to $OUT (or the current
# directory) as gpu_restore.csv. Exits non-zero at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bins="gpu_restore_test gpu_staging_test gpu_host_ranges_test gpu_requests_test bench_gpu_restore"

find_bin() {  # DIR NAME: the path of NAME under DIR
  find "$1" -name "$2" -type f -perm -u+x | head -1
}

build() {
  local dir=$1
  cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCXLKV_WERROR=ON \
    -DCXLKV_CUDA=ON >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
  # shellcheck disable=SC2086
  cmake --build "$dir" -j "$(nproc)" --target $bins
}

if [ "${1:-}" = "--pack" ]; then
  out=${2:?--pack DIR}
  src=${3:-build/ci}
  mkdir -p "$out/lib"
  for b in $bins; do
    path=$(find_bin "$src" "$b")
    [ -n "$path" ] || { echo "gpu_check: $b not built under $src"; exit 1; }
    cp "$path" "$out/$b" && strip --strip-debug "$out/$b"
    # Every shared library but glibc's own, so that a bare machine can run them.
    ldd "$path" | awk '$3 ~ /^\// {print $3}' |
      grep -Ev '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
      while read -r lib; do cp -L "$lib" "$out/lib/"; done
  done
  du -sh "$out"
  exit 0
fi

if [ "${1:-}" = "--bin" ]; then
  bindir=$(cd "${2:?--bin DIR}" && pwd)
  export LD_LIBRARY_PATH="$bindir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  bindir=build/gpu
  mkdir -p build
  build "$bindir"
fi

command -v nvidia-smi >/dev/null && nvidia-smi -L || true
csv_dir=${OUT:-.}

for t in gpu_host_ranges_test gpu_staging_test gpu_requests_test; do
  echo "=== $t"
  "$(find_bin "$bindir" "$t")" --gtest_brief=1
done
echo "=== gpu_restore_test (a skip is a failure here)"
CXLKV_TEST_FAIL_ON_SKIP=1 "$(find_bin "$bindir" gpu_restore_test)"
echo "=== bench_gpu_restore"
# shellcheck disable=SC2086  # BENCH_ARGS: extra flags, e.g. "--numa-node 1 --repeats 9"
"$(find_bin "$bindir" bench_gpu_restore)" --csv "$csv_dir/gpu_restore.csv" ${BENCH_ARGS:-}
echo "=== gpu_check: all passed"
