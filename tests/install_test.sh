#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds and runs a separate project against
# it twice: through find_package(cxlkv) (shared and static) and through pkg-config.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d /tmp/cxlkv-install-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >"$work/install.log"
for f in include/cxlkv/status.h lib/libcxlkv.so lib/libcxlkv.a bin/cxlkv \
         lib/cmake/cxlkv/cxlkvConfig.cmake lib/pkgconfig/cxlkv.pc; do
  [ -e "$prefix/$f" ] || { echo "install_test: $f was not installed" >&2; exit 1; }
done

cmake -S "$src/tests/install_consumer" -B "$work/consumer" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/consumer" >"$work/build.log" || { cat "$work/build.log"; exit 1; }
LD_LIBRARY_PATH="$prefix/lib" "$work/consumer/consumer_shared"
"$work/consumer/consumer_static"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# shellcheck disable=SC2046
c++ -o "$work/consumer_pc" "$src/tests/install_consumer/consumer.cc" $(pkg-config --cflags --libs cxlkv)
LD_LIBRARY_PATH="$prefix/lib" "$work/consumer_pc"
# shellcheck disable=SC2046
c++ -o "$work/consumer_pc_static" "$src/tests/install_consumer/consumer.cc" \
  $(pkg-config --static --cflags cxlkv) "$prefix/lib/libcxlkv.a" $(pkg-config --static --libs-only-l cxlkv | sed 's/-lcxlkv//')
"$work/consumer_pc_static"

"$prefix/bin/cxlkv" devices >/dev/null
echo "install_test: find_package (shared, static), pkg-config (shared, static) and bin/cxlkv work"
