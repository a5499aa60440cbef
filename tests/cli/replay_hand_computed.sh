#!/bin/sh
# `cxlkv replay` tests: small traces written here, never the shared Mooncake trace.
# A B A C A B D A B C, one 512-token block each, in room for two chunks: the hit ratios worked
# by hand in tools/cxlkv/replay_test.cc, through the command line.
# Usage: sh replay_hand_computed.sh CXLKV PYTHON (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
"$python" -c '
import json, sys
for t, block in enumerate("ABACABDABC"):
    print(json.dumps({"timestamp": t, "input_length": 512, "output_length": 1, "hash_ids": [ord(block)]}))
' >"$dir/t.jsonl" || exit 1
for pair in lru:0.2 fifo:0.1 lfu:0.3 s3fifo:0.3 lru-admit2:0.3 prefix-chains:0.2 prefix:0.2 belady:0.5; do
  p=${pair%%:*}; want=${pair#*:}
  "$cxlkv" replay --trace "$dir/t.jsonl" --chunk-tokens 512 --bytes-per-token 1 --capacity 1K --policy "$p" --json >"$dir/$p.json" || { echo "$p: exit status $?"; exit 1; }
  "$python" -c '
import json, sys
d = json.load(open(sys.argv[1])); want = float(sys.argv[2])
assert abs(d["hit_ratio"] - want) < 1e-9, (sys.argv[3], d["hit_ratio"], want)
assert d["tiers"][0]["hit_tokens"] == d["hit_tokens"] == round(want * 5120), d
assert d["tiers"][0]["bytes_read"] == d["hit_tokens"], d
assert abs(d["unbounded_hit_ratio"] - 0.6) < 1e-9, d
print(sys.argv[3], "ok:", d["hit_ratio"])
' "$dir/$p.json" "$want" "$p" || exit 1
done
