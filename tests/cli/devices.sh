#!/bin/sh
# Text listing: a NUMA section with node 0, and one line each for /dev/dax and CXL, whether
# or not the machine has them.
# Usage: sh devices.sh CXLKV PYTHON (tests/CMakeLists.txt passes them)
cxlkv=$1 python=$2
out=$("$cxlkv" devices) || { echo "exit status $?"; exit 1; }
printf '%s\n' "$out"
printf '%s\n' "$out" | grep -Eq '^NUMA nodes \([1-9]' || { echo "no NUMA section"; exit 1; }
printf '%s\n' "$out" | grep -Eq '^  node 0: .*, (CPUs [0-9]|CPU-less)' || { echo "no node 0"; exit 1; }
printf '%s\n' "$out" | grep -Eq '^(no /dev/dax devices|DAX devices \([1-9])' || { echo "no DAX line"; exit 1; }
printf '%s\n' "$out" | grep -Eq '^(no CXL memory devices|CXL memory devices \([1-9])' || { echo "no CXL line"; exit 1; }
