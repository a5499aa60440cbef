#!/bin/sh
# No --trace and no trace where the demo looks: it says so on one line and replays the
# synthetic trace. Run from an empty directory, with $CXLKV_TRACE naming a missing file.
# Usage: sh demo_fallback_to_synthetic.sh CXLKV PYTHON DEMO_TRACE_TOOL (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2 trace_tool=$3
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/a" && cd "$dir/a" || exit 1
out=$(CXLKV_TRACE="$dir/missing.jsonl" "$cxlkv" demo --requests 5 --dram-capacity 16M --file-capacity 64M) || { echo "exit status $?"; exit 1; }
printf '%s\n' "$out"
printf '%s\n' "$out" | grep -q '^cxlkv demo: synthetic Mooncake-like trace (seed 1), 5 requests' || exit 1
[ "$(printf '%s\n' "$out" | grep -c '^no trace found at ')" -eq 1 ] || exit 1
printf '%s\n' "$out" | grep -qF "no trace found at $dir/missing.jsonl, ../shared/traces/" || exit 1
