#!/usr/bin/env bash
# Installs the dependencies, then builds and runs every test three ways:
#   1. warnings as errors, optimised with debug info: all tests, the install test included;
#      then the hostile-client soak of `cxlkv serve` ($CXLKV_SOAK_SECONDS, default 30);
#   2. AddressSanitizer + UndefinedBehaviorSanitizer: all unit and CLI tests;
#   3. ThreadSanitizer: the suites labelled "concurrent"; then clang's -Wthread-safety over the
#      library's and the server's sources (the GUARDED_BY/REQUIRES annotations; about a minute);
#   4. libFuzzer (clang, ASan+UBSan): each fuzz target of backends/pool/fuzz/ (the pool format
#      and recovery scan, the spill log's record and summary decoders) and server/fuzz/ (the
#      lm:// frame parser and the connection state machine) for $CXLKV_FUZZ_SECONDS (default
#      30) on a copy of its corpus, the targets side by side (the long runs: tools/fuzz_long.sh,
#      tools/fuzz_serve_long.sh);
#   5. LMCache's own code against the plain build: ../shared/lmcache-kit/run.sh (LMCache's lm://
#      client, plugin loaders and MP-mode L2 adapter, unmodified); any failed check fails CI;
#   6. the QEMU guest suite (tools/qemu/suite.sh) on the plain build: every mode (CPU-less NUMA
#      node, /dev/dax, kmem, CXL type-3) booted once, its "qemu_<mode>" tests run inside.
#      CXLKV_SKIP_QEMU=1 skips it (host-only development; .ci/run never skips it).
# The host runs leave out the label "qemu" (those tests only skip outside the guest).
# Build trees go to build/ci, build/asan, build/tsan, build/thread-safety and build/fuzz. Exits
# non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

"$root/tools/setup.sh"

jobs=$(nproc)
start=$SECONDS
step() { printf '\n=== %s (%ds elapsed)\n' "$*" $((SECONDS - start)); }

# Line tables only (-g1) in every build: sanitizer reports and crash traces keep function,
# file and line; full debug info made each compile a quarter slower (store_test.cc: 7.5 s
# against 5.9 s at -O2, 6.5 against 4.8 s at -O0 with ASan), and CI compiles ~500 files.
debug_flags=(-DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG"
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG"
  -DCMAKE_C_FLAGS_DEBUG=-g1 -DCMAKE_CXX_FLAGS_DEBUG=-g1)
# Through ccache where it is installed (tools/setup.sh): most of what the five builds compile is
# unchanged since the last run on this machine. Paths under the checkout are hashed relative to
# it, so another clone of the same commit hits too.
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1 \
    CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
fi
configure_and_build() {  # DIR [cmake args...]; TARGET="t ..." builds only those targets
  local dir=$1; shift
  cmake -S "$root" -B "$dir" -G Ninja -DCXLKV_WERROR=ON "${debug_flags[@]}" "${launcher[@]}" "$@" \
    >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; return 1; }
  # shellcheck disable=SC2086 # TARGET is a list of target names
  cmake --build "$dir" -j "$jobs" ${TARGET:+--target $TARGET}
}

mkdir -p build
step "plain build (RelWithDebInfo, -Werror)"
configure_and_build build/ci -DCMAKE_BUILD_TYPE=RelWithDebInfo
step "tests: plain build"
ctest --test-dir build/ci --output-on-failure --no-tests=error -j "$jobs" -LE '^qemu'
step "soak: hostile clients against cxlkv serve (plain build, ${CXLKV_SOAK_SECONDS:-30}s)"
# Every kind of bad client at once beside verifying good ones (tests/serve/soak.py); bounded
# by the run plus at most 15 s to stop, and by the timeout.
timeout 120 /usr/bin/python3 tests/serve/soak.py --cxlkv build/ci/cxlkv \
  --seconds "${CXLKV_SOAK_SECONDS:-30}"

# LMCache's own client, loaders and MP adapter against this build (the kit beside the project).
kit="$root/../shared/lmcache-kit/run.sh"
if [ -x "$kit" ]; then
  step "LMCache kit: LMCache's own code against build/ci"
  "$kit" --cxlkv build/ci/cxlkv --pythonpath build/ci/python
else
  step "LMCache kit: skipped, $kit not found"
fi

step "ASan+UBSan build"
configure_and_build build/asan -DCMAKE_BUILD_TYPE=Debug -DCXLKV_SANITIZE=address \
  -DCXLKV_BUILD_BENCH=OFF
step "tests: ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan --output-on-failure --no-tests=error -j "$jobs" -LE '^qemu'

step "TSan build (the suites labelled concurrent)"
TARGET=concurrent_tests configure_and_build build/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCXLKV_SANITIZE=thread \
  -DCXLKV_BUILD_BENCH=OFF
step "tests: TSan (label concurrent)"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --test-dir build/tsan --output-on-failure --no-tests=error -j "$jobs" -L concurrent

# Compiled, not linked or run, at -O0: the analysis needs no optimiser and no tests.
step "thread-safety check (clang -Wthread-safety -Werror: library and server objects)"
CC=clang CXX=clang++ TARGET="cxlkv_static cxlkv_server" configure_and_build build/thread-safety \
  -DCMAKE_BUILD_TYPE=None -DCXLKV_THREAD_SAFETY=ON -DCXLKV_BUILD_TESTS=OFF \
  -DCXLKV_BUILD_BENCH=OFF -DCXLKV_CUDA=OFF

# Each target runs on a copy of its corpus, so CI never writes into the repository; a crash,
# leak, timeout or out-of-memory stops libFuzzer with a non-zero status and its input saved.
fuzz_seconds=${CXLKV_FUZZ_SECONDS:-30}
fuzz_run() {  # TARGET MAX_LEN [LIBFUZZER FLAGS...]
  local t=$1 max_len=$2 work="build/fuzz/run/$1" dir=backends/pool/fuzz
  shift 2
  case $t in lm_frame_fuzz|connection_fuzz) dir=server/fuzz ;; esac
  rm -rf "$work" && mkdir -p "$work/corpus" "$work/artifacts"
  cp "$dir/corpus/$t"/* "$work/corpus/"
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      "build/fuzz/$dir/$t" -max_total_time="$fuzz_seconds" -timeout=10 \
      -rss_limit_mb=2048 -max_len="$max_len" -print_final_stats=1 "$@" \
      -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1; then
    tail -n 60 "$work/log"
    echo "fuzz: $t failed; reproduce with build/fuzz/$dir/$t $work/artifacts/*" >&2
    return 1
  fi
  printf '%s: %s; %s\n' "$t" "$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/log" | tail -n 1)" \
    "$(grep -E 'stat::number_of_executed_units' "$work/log")"
}
step "fuzz build (clang, libFuzzer + ASan + UBSan)"
mkdir -p build/fuzz
CC=clang CXX=clang++ configure_and_build build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCXLKV_FUZZ=ON
step "fuzz: format_fuzz, scan_fuzz, spill_record_fuzz, spill_summary_fuzz, lm_frame_fuzz, connection_fuzz, ${fuzz_seconds}s each"
fuzz_pids=()
fuzz_run format_fuzz 16384 & fuzz_pids+=($!)
# scan_fuzz inputs are commands: longer ones build fuller images, so no slow growth of the length.
fuzz_run scan_fuzz 65536 -len_control=0 & fuzz_pids+=($!)
# One block (and a little over, for short inputs) and summaries of up to ~30 entries: the cost
# of a summary input grows with its entries (2 KiB ones run 10x slower), the checks do not.
fuzz_run spill_record_fuzz 4200 & fuzz_pids+=($!)
fuzz_run spill_summary_fuzz 512 & fuzz_pids+=($!)
fuzz_run lm_frame_fuzz 192 & fuzz_pids+=($!)
fuzz_run connection_fuzz 4096 & fuzz_pids+=($!)
fuzz_ok=1
for p in "${fuzz_pids[@]}"; do wait "$p" || fuzz_ok=0; done
[ "$fuzz_ok" = 1 ]

if [ "${CXLKV_SKIP_QEMU:-0}" = 1 ]; then
  step "QEMU guest suite: skipped (CXLKV_SKIP_QEMU=1)"
else
  step "QEMU guest suite (plain build)"
  "$root/tools/qemu/suite.sh" build/ci
fi

step "all test runs passed"
