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

# The devdax and cxl modes reopen a durable pool (persist-on-put) in a second process
# (qemu_<mode>_reopen: GuestDevDaxReopen in tests/qemu/guest_test.cc). Across a guest reboot
# is not done yet: it needs the dax range's backing memory kept between two boots.

echo "== ctest -L qemu_$mode"
ctest --test-dir "$build" -L "^qemu_${mode}\$" --output-on-failure --no-tests=error -j1
