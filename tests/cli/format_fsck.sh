#!/bin/sh
# `cxlkv format` / `cxlkv fsck`: format a pool, refuse to format it again without --force,
# check it clean (text and JSON), find a pool that is not one, and name a missing path; a pool
# another process holds is refused naming it; a pool whose slabs were zeroed past its metadata
# (its header span and snapshot with them) is damage, exit 1.
# Usage: sh format_fsck.sh CXLKV PYTHON (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
"$cxlkv" format "$dir/pool" --capacity 8M --slab-size 64K --chunk-size 16K || { echo "format failed"; exit 1; }
"$cxlkv" format "$dir/pool" --capacity 8M --slab-size 64K 2>"$dir/err"; rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--force" "$dir/err" || { echo "a second format was not refused ($rc)"; cat "$dir/err"; exit 1; }
"$cxlkv" fsck "$dir/pool" >"$dir/out" || { echo "fsck of a fresh pool failed"; cat "$dir/out"; exit 1; }
grep -q "result: clean" "$dir/out" || { cat "$dir/out"; exit 1; }
"$cxlkv" fsck "$dir/pool" --json | "$python" -c '
import json, sys
d = json.load(sys.stdin)
assert d["clean"] and d["chunks"] == 0 and d["capacity"] == 8 << 20 and d["clean_shutdown"], d
' || exit 1
"$cxlkv" format "$dir/pool" --capacity 16M --slab-size 64K --force >/dev/null || { echo "--force did not format"; exit 1; }
"$cxlkv" fsck "$dir/pool" --json | "$python" -c '
import json, sys
assert json.load(sys.stdin)["capacity"] == 16 << 20' || exit 1
head -c 1048576 /dev/urandom >"$dir/junk"
"$cxlkv" fsck "$dir/junk" 2>"$dir/err"; rc=$?
[ "$rc" -eq 1 ] && grep -q "superblock" "$dir/err" || { echo "junk: rc $rc"; cat "$dir/err"; exit 1; }
"$cxlkv" fsck "$dir/missing" 2>"$dir/err"; rc=$?
[ "$rc" -eq 2 ] && grep -q "missing" "$dir/err" || { echo "missing: rc $rc"; cat "$dir/err"; exit 1; }
"$cxlkv" format "$dir/junk" --capacity 8M --slab-size 64K 2>"$dir/err"; rc=$?
[ "$rc" -eq 2 ] || { echo "junk was formatted without --force"; exit 1; }
# Another process holds the pool (an OFD lock, as a store takes): fsck and format refuse it.
"$python" -c '
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0))
open(sys.argv[2], "w").close()
time.sleep(30)' "$dir/pool" "$dir/locked" & holder=$!
i=0; while [ ! -e "$dir/locked" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
"$cxlkv" fsck "$dir/pool" 2>"$dir/err"; rc=$?
"$cxlkv" format "$dir/pool" --capacity 16M --slab-size 64K --force 2>>"$dir/err"; rc2=$?
kill $holder; wait $holder 2>/dev/null
[ "$rc" -eq 2 ] && [ "$rc2" -eq 2 ] && [ "$(grep -c "locked by pid $holder" "$dir/err")" -eq 2 ] ||
  { echo "a held pool: fsck rc $rc, format rc $rc2"; cat "$dir/err"; exit 1; }
"$cxlkv" fsck "$dir/pool" >/dev/null || { echo "fsck after the holder left failed"; exit 1; }
# Everything past the first (reserved) slab zeroed: the header span's free marks and the
# snapshot of the clean close are gone.
dd if=/dev/zero of="$dir/pool" bs=65536 seek=1 count=255 conv=notrunc status=none
"$cxlkv" fsck "$dir/pool" >"$dir/out"; rc=$?
[ "$rc" -eq 1 ] && grep -q "DAMAGE: .*wiped" "$dir/out" && grep -q "snapshot" "$dir/out" ||
  { echo "zeroed slabs: rc $rc"; cat "$dir/out"; exit 1; }
echo "format/fsck ok"
