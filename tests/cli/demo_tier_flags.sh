#!/bin/sh
# --tier replaces the default tiers: here DRAM over a tier bound to NUMA node 0 (on a machine
# with a CXL expander, its node); every hit verified, the chunks that left DRAM are on node 0's tier.
# Usage: sh demo_tier_flags.sh CXLKV PYTHON DEMO_TRACE_TOOL (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2 trace_tool=$3
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
out="$dir/out.json"
"$cxlkv" demo --synthetic --requests 10 --tier dram,32M --tier numa:0,128M --dir "$dir" --json >"$out"; rc=$?
[ "$rc" -eq 0 ] || { echo "exit status $rc"; cat "$out"; exit 1; }
"$python" -c '
import json, sys
d = json.load(open(sys.argv[1]))
tiers = d["tiers"]
assert [t["name"] for t in tiers] == ["dram", "numa:0"], tiers
assert tiers[1]["chunks"] > 0, tiers[1]
print("demo --tier ok:", [(t["name"], t["chunks"]) for t in tiers])
' "$out"
