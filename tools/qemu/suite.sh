#!/usr/bin/env bash
# tools/qemu/suite.sh [BUILD_DIR]: the guest suite. Boots each QEMU mode once (numa, devdax,
# kmem, cxl) and runs tools/qemu/guest-tests.sh in it: `cxlkv devices`, then the ctest entries
# labelled qemu_<mode> from BUILD_DIR (default build/ci, the plain build of tools/test.sh).
# A mode that hangs is killed after CXLKV_QEMU_TIMEOUT seconds (default 150) and fails the
# suite with the guest's console tail; the whole suite stops within CXLKV_QEMU_BUDGET seconds
# (default 360, CI's share): a mode is given only what is left, and none starts with under 30 s.
# Logs and `cxlkv devices` outputs: BUILD_DIR/qemu/.
# Env: CXLKV_QEMU_MODES="numa cxl" picks modes; CXLKV_QEMU_WORKDIR as in tools/qemu/run.sh.
# Exit status: 0 when every mode passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build/ci}
modes=${CXLKV_QEMU_MODES:-numa devdax kmem cxl}
timeout_s=${CXLKV_QEMU_TIMEOUT:-150}
budget_s=${CXLKV_QEMU_BUDGET:-360}
[ -x "$build/cxlkv" ] && [ -x "$build/tests/qemu/qemu_guest_test" ] ||
  { echo "qemu suite: $build has no cxlkv or qemu_guest_test; build it first"; exit 1; }
out=$build/qemu
mkdir -p "$out"
tools/qemu/setup.sh >"$out/setup.log" 2>&1 || { cat "$out/setup.log"; echo "qemu suite: tools/qemu/setup.sh failed"; exit 1; }

start=$SECONDS
failed=""
summary=""
for mode in $modes; do
  t=$SECONDS
  left=$((budget_s - (SECONDS - start)))
  if [ "$left" -lt 30 ]; then
    failed+=" $mode"
    summary+=$(printf '\n  %-7s NOT RUN: the suite budget of %d s is spent' "$mode" "$budget_s")
    continue
  fi
  echo "=== qemu guest: mode $mode"
  tools/qemu/run.sh --mode "$mode" --timeout "$((left < timeout_s ? left : timeout_s))" -- \
    tools/qemu/guest-tests.sh "$mode" "$build" "$out" 2>&1 | tee "$out/$mode.log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 0 ]; then verdict=passed; else verdict="FAILED (exit $rc)"; failed+=" $mode"; fi
  summary+=$(printf '\n  %-7s %s in %d s' "$mode" "$verdict" $((SECONDS - t)))
done
echo "=== qemu guest suite: $((SECONDS - start)) s, load $(cut -d' ' -f1-3 /proc/loadavg)$summary"
if [ -n "$failed" ]; then
  echo "qemu suite: failed modes:$failed (logs in $out/)"
  exit 1
fi
