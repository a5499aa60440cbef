#!/bin/sh
# Unknown commands and flags: CLI11's message and a non-zero exit, not a crash (>= 128).
# Usage: sh usage_errors.sh CXLKV PYTHON (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2
for args in "frobnicate" "devices --bogus" "demo --model gpt-9" "demo --requests -3" \
            "demo --chunk-tokens 100" "demo --eviction mru" "demo --synthetic --trace x" ""; do
  "$cxlkv" $args >/dev/null 2>&1; rc=$?
  echo "cxlkv $args -> exit $rc"
  [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] || exit 1
done
