#!/bin/sh
# Tiers that demote but never drop: the hits and bytes must be exactly those of a cache that
# never evicts, computed independently by the script; both tiers must serve hits.
# Usage: sh demo_replay_exact.sh CXLKV PYTHON DEMO_TRACE_TOOL (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2 trace_tool=$3
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
"$python" "$trace_tool" write "$dir/trace.jsonl" && "$python" "$trace_tool" expect "$dir/trace.jsonl" 8192 256 >"$dir/expect.json" || exit 1
"$cxlkv" demo --trace "$dir/trace.jsonl" --dram-capacity 32M --file-capacity 256M --dir "$dir" --json >"$dir/out.json"; rc=$?
[ "$rc" -eq 0 ] || { echo "exit status $rc"; exit 1; }
"$python" "$trace_tool" check "$dir/out.json" "$dir/expect.json" never-drops || exit 1
"$python" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["model"]["name"] == "small" and d["model"]["full_chunk_bytes"] == 2 << 20, d["model"]
assert d["trace"]["path"].endswith("trace.jsonl") and not d["trace"]["synthetic"], d["trace"]
assert all(t["hits"] > 0 for t in d["tiers"]), "both tiers must serve hits"
' "$dir/out.json"
