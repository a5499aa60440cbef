#!/bin/sh
# Usage: sh bench_wss_bad_input.sh CXLKV PYTHON (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2
fail=0
for args in "--configs warp" "--chunk 1000" "--wss 12Q" "--scale 0" "--cache-policy mru" "--page-kib 8" \
            "--dilation 0" "--dilation 10001" "--dilation fast" "--no-ceiling" "--readers 0" \
            "--configs none@0" "--configs next8@" "--configs host@99" "--segment-seconds 0" \
            "--ceiling-repeats 0" "--auto-margin 0.5" "--misses-per-cpu 5000"; do
  "$cxlkv" bench wss $args --no-plot >/dev/null 2>&1; rc=$?
  echo "bench wss $args -> exit $rc"
  [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] || fail=1
done
exit $fail
