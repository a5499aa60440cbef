#!/usr/bin/env bash
# The long runs of the lm:// fuzz targets (server/fuzz/), one after the other, each on a copy
# of its corpus: lm_frame_fuzz for RUNS executions (default 10,000,000); connection_fuzz for
# as many or SECONDS (default 1200), whichever comes first (it makes a socket pair and a few
# dozen system calls per input: about 2,000 executions/s with ASan on one core). Prints each
# target's executions, executions/s, time and corpus size; exits non-zero on a finding, with
# the input under build/fuzz/long/<target>/artifacts/.
#   tools/fuzz_serve_long.sh            (builds build/fuzz if needed; needs clang)
#   RUNS=1000000 SECONDS_MAX=60 TARGETS=connection_fuzz tools/fuzz_serve_long.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-10000000}
seconds=${SECONDS_MAX:-1200}
if [ ! -x build/fuzz/server/fuzz/connection_fuzz ]; then
  CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCXLKV_FUZZ=ON >/dev/null
fi
cmake --build build/fuzz --target lm_frame_fuzz connection_fuzz >/dev/null
status=0
targets=${TARGETS:-lm_frame_fuzz connection_fuzz}
for spec in "lm_frame_fuzz 192" "connection_fuzz 4096"; do
  set -- $spec
  case " $targets " in *" $1 "*) ;; *) continue ;; esac
  t=$1 max_len=$2 work="build/fuzz/long/$1"
  rm -rf "$work" && mkdir -p "$work/corpus" "$work/artifacts"
  cp "server/fuzz/corpus/$t"/* "$work/corpus/"
  start=$SECONDS
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      "build/fuzz/server/fuzz/$t" -runs="$runs" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -max_len="$max_len" -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1; then
    result=clean
  else
    result="FAILED (see $work/log and $work/artifacts/)"
    status=1
  fi
  printf '%s: %s; %s; %s; %ds; corpus %s files\n' "$t" "$result" \
    "$(grep -E 'stat::number_of_executed_units' "$work/log")" \
    "$(grep -E 'stat::average_exec_per_sec' "$work/log")" $((SECONDS - start)) \
    "$(ls "$work/corpus" | wc -l)"
done
exit $status
