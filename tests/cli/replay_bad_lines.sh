#!/bin/sh
# A bad line stops the replay with its line number (exit 2, one line), or is skipped and
# reported with --skip-bad-lines.
# Usage: sh replay_bad_lines.sh CXLKV PYTHON (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
printf '%s\n' '{"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [1, 2]}' \
  '{"timestamp": 1, "input_length": 6' \
  '{"timestamp": 2, "input_length": 600, "output_length": 5, "hash_ids": [1, 2]}' >"$dir/t.jsonl"
err=$("$cxlkv" replay --trace "$dir/t.jsonl" 2>&1 >/dev/null); rc=$?
printf 'exit %s: %s\n' "$rc" "$err"
[ "$rc" -eq 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || exit 1
printf '%s\n' "$err" | grep -qF "t.jsonl line 2: not valid JSON" || exit 1
"$cxlkv" replay --trace "$dir/t.jsonl" --skip-bad-lines --capacity 100% --json 2>"$dir/err" >"$dir/out.json" || { echo "exit status $?"; exit 1; }
cat "$dir/err"
grep -qF "skipped InvalidArgument: trace $dir/t.jsonl line 2: not valid JSON" "$dir/err" || exit 1
"$python" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["requests"] == 2 and d["skipped_lines"] == 1, d
assert d["hit_tokens"] == 600, d  # the second request hits the first one whole
' "$dir/out.json"
