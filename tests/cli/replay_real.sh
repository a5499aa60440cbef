#!/bin/sh
# Real mode: the same replay through a Store, every byte read back and checked.
# Usage: sh replay_real.sh CXLKV PYTHON (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2
out=$("$cxlkv" replay --mode real --synthetic mooncake --requests 12 --model small --capacity 32M --tier1-capacity 64M) || { echo "exit status $?"; exit 1; }
printf '%s\n' "$out"
printf '%s\n' "$out" | grep -Eq '^prefix hit ratio [0-9.]+% of chunks \(([0-9]+) of [0-9]+\); \1 of \1 chunks verified$' || exit 1
printf '%s\n' "$out" | grep -Eq '^  tier1: 64.0 MiB, lru: hit' || exit 1
# At the trace's timestamps (6 requests over 2.2 s of trace time, 100 times faster).
out=$("$cxlkv" replay --mode real --synthetic mooncake --requests 6 --model small --capacity 32M --timestamps 100) || { echo "exit status $?"; exit 1; }
printf '%s\n' "$out" | grep -q '^real: .*, at trace timestamps; replay' || { printf '%s\n' "$out"; exit 1; }
# A prefix-aware policy in the store, selected by name like the others.
out=$("$cxlkv" replay --mode real --synthetic mooncake --requests 12 --model small --capacity 32M --policy prefix-hazard) || { echo "exit status $?"; exit 1; }
printf '%s\n' "$out" | grep -Eq '^  tier0: .*, prefix-hazard: hit' || { printf '%s\n' "$out"; exit 1; }
