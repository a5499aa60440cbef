#!/usr/bin/env bash
# LMCache's own MP-mode code over a cxlkv pool, replaying the Mooncake trace with a kill -9
# halfway (tools/lmcache_demo.py says how). Installs the Debian packages, builds cxlkv (Release)
# with its Python module, and runs the demo with Debian's /usr/bin/python3. LMCache's code comes
# from the kit in ../shared/lmcache-kit (LMCACHE_KIT to point elsewhere). Extra arguments go to
# the demo (--requests N, --chunk-kib K, --dir DIR, --trace PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$(nproc)" --target cxlkv_python
PYTHONPATH="$PWD/build/release/python" exec /usr/bin/python3 -B tools/lmcache_demo.py "$@"
