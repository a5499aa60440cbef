#!/bin/sh
# `cxlkv bench wss` at a tiny scale: every configuration runs, the CSV has a row for each (the
# ceiling's, the hit and miss regions', the 2D reruns), auto picks D from the ceiling, and
# every chunk reads back intact. Without userfaultfd it must say so (exit 2), not crash.
# Usage: sh bench_wss_small.sh CXLKV PYTHON (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
out=$("$cxlkv" bench wss --wss 2M,12M --cache 8M --nand 32M --read-us 5 --program-us 10 \
      --configs dram,none,next8,host,host+next8,next8@1 --prefetch-threads 16 --passes 2 \
      --min-seconds 0 --segment-seconds 0.02 --ceiling-repeats 2 --out "$dir" --no-plot 2>&1); rc=$?
printf '%s\n' "$out" | tee "$dir/out.txt"
if [ "$rc" -eq 2 ] && printf '%s\n' "$out" | grep -q 'userfaultfd'; then echo "skipped: no userfaultfd"; exit 0; fi
[ "$rc" -eq 0 ] || { echo "exit status $rc"; exit 1; }
printf '%s\n' "$out" | grep -Eq '^time dilation D = [0-9]+ \(auto: ceiling [0-9]+ MB/s' || exit 1
printf '%s\n' "$out" | grep -q '^NAND-parallelism bound: 26214 MB/s at D = 1' || exit 1
printf '%s\n' "$out" | grep -Eq '^  chunks read back intact .* 0.00  goal 0 +met$' || exit 1
printf '%s\n' "$out" | grep -Eq 'the goal ratios at D and 2D: largest difference +[0-9.]+' || exit 1
"$python" -c '
import csv, re, sys
rows = list(csv.DictReader(open(sys.argv[1])))
d = int(re.search(r"time dilation D = (\d+)", open(sys.argv[2]).read()).group(1))
key = lambda r: (r["config"], int(r["wss_bytes"]), r["convergence"])
got = {key(r): r for r in rows if r["convergence"] == "0"}
reruns = {(r["config"], int(r["dilation"])) for r in rows if r["convergence"] == "1"}
for c in ["dram", "none", "next8", "host", "host+next8", "next8@1"]:
    for wss in (2 << 20, 12 << 20):
        assert (c, wss, "0") in got, (c, wss, sorted(got))
for c in ["ceiling:host", "ceiling:host+next8"]:
    r = got[(c, 12 << 20, "0")]
    assert int(r["dilation"]) == 1 and float(r["mb_per_s"]) > 0, r
for c in ["next8", "host", "host+next8"]:  # the convergence reruns: 2D, then 4D... while they move
    assert (c, 2 * d) in reruns, (c, d, reruns)
assert all(k in (2, 4, 8) for _, dd in reruns for k in [dd // d]), reruns
for r in rows:
    assert int(r["chunks_bad"]) == 0 and int(r["chunks_verified"]) == int(r["wss_bytes"]) // (128 << 10), r
    assert float(r["mb_per_s"]) > 0, r
    if r["config"].startswith("ceiling:") or r["config"] == "dram":
        continue
    miss = int(r["wss_bytes"]) == 12 << 20
    assert r["region"] == ("miss" if miss else "hit"), r
    if miss and r["convergence"] == "0":
        assert int(r["dilation"]) == d, r
    if not miss:
        assert int(r["dilation"]) == 1, r
    # The CSV carries 6 significant digits.
    assert abs(float(r["device_mb_per_s"]) / (float(r["mb_per_s"]) * int(r["dilation"])) - 1) < 1e-4, r
    assert abs(float(r["nand_bound_mb_per_s"]) * int(r["dilation"]) / 26214.4 - 1) < 1e-4, r
big = {r["config"]: r for r in rows if int(r["wss_bytes"]) == 12 << 20 and r["convergence"] == "0"}
assert int(big["none"]["read_misses"]) > 0, big["none"]
assert int(big["next8"]["prefetch_reads"]) > 0, big["next8"]
assert int(big["host"]["host_pages_touched"]) > 0, big["host"]
assert int(big["dram"]["read_misses"]) == 0, big["dram"]
assert int(big["next8@1"]["readers"]) == 1 and int(big["next8"]["readers"]) == 2, big
print("bench wss csv ok:", len(rows), "rows, D =", d)
' "$dir/wss.csv" "$dir/out.txt"
