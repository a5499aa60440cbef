#!/bin/sh
# Bad input: exit status 2 and exactly one line on stderr that names the problem; never a
# crash. Each case is "arguments|what stderr must contain".
# Usage: sh demo_bad_input.sh CXLKV PYTHON DEMO_TRACE_TOOL (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2 trace_tool=$3
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
for kind in good bad-json not-an-object negative-length wrong-block-count float-id empty; do
  "$python" "$trace_tool" write "$dir/$kind.jsonl" "$kind" || exit 1
done
fail=0
while IFS='|' read -r args expected; do
  [ -n "$args" ] || continue
  err=$(eval "\"\$cxlkv\" demo $args" 2>&1 >/dev/null); rc=$?
  printf 'demo %s -> exit %s: %s\n' "$args" "$rc" "$err"
  if [ "$rc" -ne 2 ] || [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ] ||
     ! printf '%s\n' "$err" | grep -qF -- "$expected"; then
    echo "  FAILED: expected exit 2 and one line containing: $expected"; fail=1
  fi
done <<EOF
--trace /nonexistent/trace.jsonl|opening trace /nonexistent/trace.jsonl: No such file or directory
--trace $dir|reading trace $dir: Is a directory
--trace $dir/bad-json.jsonl|bad-json.jsonl line 4: not valid JSON
--trace $dir/not-an-object.jsonl|line 4: not a JSON object
--trace $dir/negative-length.jsonl|line 4: "input_length" is negative
--trace $dir/wrong-block-count.jsonl|line 4: "hash_ids" has 5 ids for input_length 1836 (expected 4
--trace $dir/float-id.jsonl|line 4: "hash_ids" holds 0.5, not a non-negative integer
--trace $dir/empty.jsonl|holds no request
--trace $dir/good.jsonl --dram-capacity 0|--dram-capacity 0 is below one slab (4.0 MiB)
--trace $dir/good.jsonl --dram-capacity -5M|--dram-capacity: '-5M' is not a size
--trace $dir/good.jsonl --file-capacity 12Q|--file-capacity: '12Q' is not a size
--trace $dir/good.jsonl --requests 0|--requests must be at least 1
--trace $dir/good.jsonl --model llama-3.1-70b --dram-capacity 64M --file-capacity 64M|is 80.0 MiB, more than either tier can hold
--trace $dir/good.jsonl --dir /nonexistent/cxlkv-test|creating a directory in --dir /nonexistent/cxlkv-test
EOF
exit $fail
