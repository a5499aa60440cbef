#!/usr/bin/env bash
# tools/qemu/guest-tests.sh MODE BUILD_DIR OUT_DIR: what tools/qemu/suite.sh runs inside the
# guest of MODE. Saves `cxlkv devices` (docs/devices_qemu.md shows them), then runs the
# ctest entries labelled qemu_MODE (tests/qemu/CMakeLists.txt) from BUILD_DIR.
set -uo pipefail
mode=$1 build=$2 out=$3
[ "${QEMU_GUEST_MODE:-}" = "$mode" ] || { echo "guest-tests: not in the QEMU guest's $mode mode"; exit 1; }
mkdir -p "$out"
echo "== cxlkv devices ($mode mode, kernel $(uname -r))"
"$build/cxlkv" devices | tee "$out/devices-$mode.txt" || exit 1
"$build/cxlkv" devices --json >"$out/devices-$mode.json" || exit 1

# ISSUE 9 GOES HERE (persistent pool): once TierOptions::durability = "persist-on-put" exists,
# the devdax and cxl modes add a store-level reopen: one process puts chunks into a devdax tier
# on $QEMU_GUEST_DAX with durability "persist-on-put" and exits; a second Store::Open on the
# same device must find and verify them (a ctest pair like qemu_devdax_device/_reopen, which
# today reopen at the region level). A reboot of the guest between the two (two run.sh boots
# sharing the dax range's backing file) is the step after that.

echo "== ctest -L qemu_$mode"
ctest --test-dir "$build" -L "^qemu_${mode}\$" --output-on-failure --no-tests=error -j1
