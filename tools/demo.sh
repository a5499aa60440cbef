#!/usr/bin/env bash
# Installs the dependencies, builds cxlkv (Release) and runs its main job on the embedded
# default: a DRAM tier and a file-backed tier under a temporary directory. Extra arguments go
# to `cxlkv demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DCXLKV_BUILD_TESTS=OFF \
  -DCXLKV_BUILD_BENCH=OFF >/dev/null
cmake --build build/release -j "$(nproc)"
exec build/release/cxlkv demo "$@"
