#!/bin/sh
# tests/qemu/in_guest.sh MODE COMMAND [ARGS...]: runs a test that needs the QEMU guest's MODE
# (tools/qemu/run.sh sets QEMU_GUEST_MODE and the device variables). Outside that guest it
# skips with one line (exit 77, ctest's SKIP_RETURN_CODE). Inside, the device the mode
# promised is handed to the test as CXLKV_TEST_DEVDAX / CXLKV_TEST_NUMA_NODE with
# CXLKV_TEST_FAIL_ON_SKIP=1: a missing device fails the test instead of skipping it.
mode=$1
shift
if [ "${QEMU_GUEST:-}" != 1 ]; then
  echo "skipped: needs the QEMU guest in mode $mode (tools/qemu/suite.sh runs it)"
  exit 77
fi
if [ "${QEMU_GUEST_MODE:-}" != "$mode" ]; then
  echo "skipped: for the guest's $mode mode; this guest is in mode ${QEMU_GUEST_MODE:-unknown}"
  exit 77
fi
missing() { echo "FAILED: guest mode $mode promised $1 but it is not set"; exit 1; }
export CXLKV_TEST_FAIL_ON_SKIP=1
case $mode in
  devdax | cxl)
    [ -n "${QEMU_GUEST_DAX:-}" ] || missing QEMU_GUEST_DAX
    [ -c "$QEMU_GUEST_DAX" ] || { echo "FAILED: $QEMU_GUEST_DAX is not a character device"; exit 1; }
    export CXLKV_TEST_DEVDAX="$QEMU_GUEST_DAX"
    ;;
  numa | kmem)
    [ -n "${QEMU_GUEST_NUMA_NODE:-}" ] || missing QEMU_GUEST_NUMA_NODE
    export CXLKV_TEST_NUMA_NODE="$QEMU_GUEST_NUMA_NODE"
    ;;
esac
exec "$@"
