#!/bin/sh
# A bad read must fail the run: the hidden test hook flips one byte of the first chunk read.
# Usage: sh demo_detects_corruption.sh CXLKV PYTHON DEMO_TRACE_TOOL (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2 trace_tool=$3
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
"$python" "$trace_tool" write "$dir/trace.jsonl" || exit 1
err=$("$cxlkv" demo --trace "$dir/trace.jsonl" --dram-capacity 16M --file-capacity 256M --inject-corruption 2>&1 >"$dir/out.txt"); rc=$?
printf 'exit %s: %s\n' "$rc" "$err"
[ "$rc" -eq 1 ] || exit 1
printf '%s\n' "$err" | grep -q 'read back differs from what was put at byte' || exit 1
grep -q 'every byte checked: 69/70 chunks verified, 1 FAILED' "$dir/out.txt" || { cat "$dir/out.txt"; exit 1; }
