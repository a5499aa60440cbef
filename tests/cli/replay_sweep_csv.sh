#!/bin/sh
# The sweep: a CSV row per policy and capacity, LRU closes none of the gap, Belady all of
# it, and no policy beats Belady.
# Usage: sh replay_sweep_csv.sh CXLKV PYTHON (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
"$cxlkv" replay sweep --synthetic sessions --requests 400 --fractions 2,10 --csv "$dir/s.csv" || { echo "exit status $?"; exit 1; }
"$python" -c '
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
policies = {r["policy"] for r in rows}
assert policies == {"lru", "fifo", "lfu", "s3fifo", "lru-admit2", "prefix-chains", "prefix", "prefix-hazard", "belady"}, policies
assert len(rows) == 2 * len(policies), len(rows)
for r in rows:
    h, b = float(r["hit_ratio"]), float(r["belady_hit_ratio"])
    assert 0 <= h <= b + 1e-9 <= 1, r
    if r["policy"] == "lru": assert float(r["gap_closed"]) == 0, r
    if r["policy"] == "belady": assert float(r["gap_closed"]) == 1, r
print("sweep ok:", len(rows), "rows")
' "$dir/s.csv"
