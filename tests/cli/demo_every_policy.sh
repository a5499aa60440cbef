#!/bin/sh
# Every eviction policy the store has runs the demo to the end with every byte verified.
# Usage: sh demo_every_policy.sh CXLKV PYTHON DEMO_TRACE_TOOL (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2 trace_tool=$3
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
for p in lru fifo lfu s3fifo; do
  "$cxlkv" demo --synthetic --requests 8 --dram-capacity 16M --file-capacity 64M --eviction "$p" --json >"$dir/$p.json" || { echo "$p: exit status $?"; exit 1; }
  "$python" "$trace_tool" check "$dir/$p.json" || { echo "$p: bad report"; exit 1; }
done
