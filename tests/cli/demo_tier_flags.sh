#!/bin/sh
# --tier replaces the default tiers: here DRAM over a tier bound to NUMA node 0 (on a machine
# with a CXL expander, its node); every hit verified, the chunks that left DRAM are on node 0's tier.
# A tier's items after its capacity are the options schema's (options/store_flags.h): DRAM's
# policy is its own, node 0's the --eviction default; a value out of range is refused by name.
# Usage: sh demo_tier_flags.sh CXLKV PYTHON DEMO_TRACE_TOOL (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2 trace_tool=$3
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
out="$dir/out.json"
"$cxlkv" demo --synthetic --requests 10 --tier dram,32M,fifo --tier numa:0,128M,promote_after_hits=3 --dir "$dir" --json >"$out"; rc=$?
[ "$rc" -eq 0 ] || { echo "exit status $rc"; cat "$out"; exit 1; }
"$python" -c '
import json, sys
d = json.load(open(sys.argv[1]))
tiers = d["tiers"]
assert [t["name"] for t in tiers] == ["dram", "numa:0"], tiers
assert tiers[1]["chunks"] > 0, tiers[1]
assert [t["eviction"] for t in tiers] == ["fifo", "lru"], tiers
print("demo --tier ok:", [(t["name"], t["chunks"]) for t in tiers])
' "$out" || exit 1
err=$("$cxlkv" demo --synthetic --requests 10 --tier dram,32M,promote_after_hits=64 2>&1 >/dev/null); rc=$?
[ "$rc" -eq 2 ] && printf '%s\n' "$err" | grep -qF "promote_after_hits is 64; it must be 0 to 63" ||
  { echo "promote_after_hits=64: exit $rc: $err"; exit 1; }
