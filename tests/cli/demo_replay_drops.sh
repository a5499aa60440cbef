#!/bin/sh
# Tiers too small for the trace: the last tier drops chunks, so hits can only be fewer and
# puts more; everything read back must still verify.
# Usage: sh demo_replay_drops.sh CXLKV PYTHON DEMO_TRACE_TOOL (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2 trace_tool=$3
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
"$python" "$trace_tool" write "$dir/trace.jsonl" && "$python" "$trace_tool" expect "$dir/trace.jsonl" 8192 256 >"$dir/expect.json" || exit 1
"$cxlkv" demo --trace "$dir/trace.jsonl" --dram-capacity 12M --file-capacity 24M --eviction fifo --json >"$dir/out.json"; rc=$?
[ "$rc" -eq 0 ] || { echo "exit status $rc"; exit 1; }
"$python" "$trace_tool" check "$dir/out.json" "$dir/expect.json" drops
