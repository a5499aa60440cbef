#!/bin/sh
# Usage: sh devices_json.sh CXLKV PYTHON (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2
"$cxlkv" devices --json | "$python" -c '
import json, sys
d = json.load(sys.stdin)
for key in ("numa_nodes", "dax_devices", "cxl_memdevs", "cxl_regions", "namespaces", "warnings"):
    assert isinstance(d[key], list), key
assert d["numa_nodes"], "no NUMA nodes"
node0 = d["numa_nodes"][0]
assert node0["id"] == 0 and node0["memory_bytes"] > 0, node0
assert node0["free_bytes"] <= node0["memory_bytes"], node0
assert node0["likely_cxl"] == (not node0["cpus"] and node0["memory_bytes"] > 0), node0
print("devices --json ok:", len(d["numa_nodes"]), "NUMA nodes")
'
