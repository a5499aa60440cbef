#!/usr/bin/env bash
# The long fuzz runs (issue 18): every libFuzzer target of backends/pool/fuzz/ for up to RUNS
# executions or SECONDS seconds, whichever comes first, JOBS targets at a time, each on a copy
# of its corpus; then the figures (executions, seconds, executions per second, corpus growth).
# CI runs the same targets for a short time (tools/test.sh); this is the separate command whose
# figures the closing notes of fuzzing issues give.
#
#   tools/fuzz_long.sh                      # 10 M executions or 20 min per target, 2 at a time
#   RUNS=1000000 SECONDS_PER_TARGET=60 tools/fuzz_long.sh format_fuzz
#   MERGE=1 tools/fuzz_long.sh              # then merge what adds coverage into the corpus
#
# Needs clang (tools/setup.sh installs it); builds build/fuzz when its targets are missing.
# Exits non-zero when a target finds a crash, a leak, a timeout or runs out of memory; the
# input is kept under build/fuzz/long/<target>/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-10000000}
seconds=${SECONDS_PER_TARGET:-1200}
jobs=${JOBS:-2}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(format_fuzz scan_fuzz spill_record_fuzz spill_summary_fuzz)
bin=build/fuzz/backends/pool/fuzz

missing=0
for t in "${targets[@]}"; do [ -x "$bin/$t" ] || missing=1; done
if [ "$missing" = 1 ]; then
  CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCXLKV_FUZZ=ON >/dev/null
  cmake --build build/fuzz --target "${targets[@]}"
fi

max_len() {  # the lengths CI uses (tools/test.sh)
  case $1 in
    scan_fuzz) echo "65536 -len_control=0" ;;
    spill_summary_fuzz) echo 512 ;;
    spill_record_fuzz) echo 4200 ;;
    *) echo 16384 ;;
  esac
}

run() {
  local t=$1 work="build/fuzz/long/$1"
  rm -rf "$work" && mkdir -p "$work/corpus" "$work/artifacts"
  cp backends/pool/fuzz/corpus/"$t"/* "$work/corpus/"
  local before start status=0
  before=$(ls "$work/corpus" | wc -l)
  start=$(date +%s.%N)
  # shellcheck disable=SC2046  # max_len gives the length flags as words
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    nice -n 10 "$bin/$t" -runs="$runs" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=$(max_len "$t") -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1 || status=$?
  local end execs
  end=$(date +%s.%N)
  execs=$(grep -E 'stat::number_of_executed_units' "$work/log" | awk '{print $2}')
  awk -v t="$t" -v n="${execs:-0}" -v s="$start" -v e="$end" -v b="$before" \
    -v a="$(ls "$work/corpus" | wc -l)" \
    -v r="$([ "$status" = 0 ] && echo ok || echo "FAILED (status $status): see $work/log")" \
    'BEGIN { printf "%-20s %12d execs %7.0f s %9.0f execs/s  corpus %d -> %d  %s\n",
             t, n, e - s, n / (e - s), b, a, r }'
  return "$status"
}

uptime
failed=0
pids=()
for t in "${targets[@]}"; do
  run "$t" & pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}" || failed=1; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
uptime

if [ "${MERGE:-0}" = 1 ] && [ "$failed" = 0 ]; then
  for t in "${targets[@]}"; do
    # Only inputs that add coverage to the repository's corpus are copied into it.
    "$bin/$t" -merge=1 -max_len=65536 backends/pool/fuzz/corpus/"$t" "build/fuzz/long/$t/corpus" \
      >"build/fuzz/long/$t/merge.log" 2>&1
    echo "$t: corpus now $(ls backends/pool/fuzz/corpus/"$t" | wc -l) files"
  done
fi
exit "$failed"
