#!/bin/sh
# The text report: compact, every section present, all hits verified.
# Usage: sh demo_text.sh CXLKV PYTHON DEMO_TRACE_TOOL (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2 trace_tool=$3
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
"$python" "$trace_tool" write "$dir/trace.jsonl" || exit 1
out=$("$cxlkv" demo --trace "$dir/trace.jsonl" --dram-capacity 32M --file-capacity 256M) || { echo "exit status $?"; exit 1; }
printf '%s\n' "$out"
check() { printf '%s\n' "$out" | grep -Eq -- "$1" || { echo "missing: $1"; exit 1; }; }
check "^cxlkv demo: trace $dir/trace.jsonl, 16 requests"
check '^tier 0 dram: dram, 32.0 MiB, lru$'
check '^tier 1 file: file:.*/tier1.pool, 256.0 MiB, lru$'
check '^hit ratio 50.7%: dram [0-9.]+%, file [0-9.]+% \(a cache that never evicts: 50.7%\)$'
check 'every byte checked: 70/70 chunks verified;'
check '^get [0-9.]+ GB/s \([0-9.]+x memcpy; dram [0-9.]+, file [0-9.]+; medians per chunk\), put [0-9.]+ GB/s \([0-9.]+x memcpy, total with the demotions it ran\)'
check '^memcpy baseline [0-9.]+ GB/s'
check '^store stats:$'
check '^  file \(file:.*\): .* hits [1-9]'
lines=$(printf '%s\n' "$out" | wc -l)
[ "$lines" -lt 30 ] || { echo "$lines lines: not compact"; exit 1; }
