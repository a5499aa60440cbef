#!/bin/sh
# The synthetic trace: the same seed gives the same replay, another seed another one; --keep
# leaves the pool file in --dir.
# Usage: sh demo_synthetic_seed_and_keep.sh CXLKV PYTHON DEMO_TRACE_TOOL (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2 trace_tool=$3
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
run() { "$cxlkv" demo --synthetic --requests 5 --dram-capacity 16M --file-capacity 64M "$@"; }
run --seed 7 --json --keep --dir "$dir" >"$dir/a.json" && run --seed 7 --json >"$dir/b.json" &&
  run --seed 8 --json >"$dir/c.json" || { echo "exit status $?"; exit 1; }
for f in a b c; do "$python" "$trace_tool" check "$dir/$f.json" || exit 1; done
"$python" -c '
import json, os, sys
parent = sys.argv[1]
a, b, c = (json.load(open(os.path.join(parent, f + ".json"))) for f in "abc")
assert a["trace"]["synthetic"] and a["trace"]["path"] is None, a["trace"]
for key in ("lookups", "hits", "bytes_read", "bytes_written", "unbounded_hit_ratio"):
    assert a[key] == b[key], (key, a[key], b[key])
assert a["lookups"] != c["lookups"], "another seed, the same trace"
assert a["kept"] and os.path.dirname(a["dir"]) == parent, a["dir"]
pool = os.path.join(a["dir"], "tier1.pool")
assert os.path.getsize(pool) == a["tiers"][1]["capacity"], pool
print("synthetic seed and --keep ok")
' "$dir"
