#!/usr/bin/env bash
# Builds the Lua C module vibra.so (lua_vibra.c) against Debian's liblua5.3-dev and an installed
# libvibra, for HAProxy's `lua-prepend-path <dir>/?.so cpath`:
#
#   PKG_CONFIG_PATH=<libvibra prefix>/lib/pkgconfig examples/haproxy/build.sh <out dir>
#
# The module does not link liblua: it uses the Lua of the program that loads it (haproxy, or the
# lua5.3 interpreter). It records libvibra's library directory as its run path, so haproxy finds
# libvibra.so without LD_LIBRARY_PATH. Needs: liblua5.3-dev, pkg-config, a C compiler, libvibra
# installed with vibra.pc (ffi/install.sh).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: build.sh <output directory>}"

die() { echo "build.sh: error: $*" >&2; exit 1; }

pkg-config --exists lua5.3 || die "pkg-config cannot find lua5.3: install Debian's liblua5.3-dev"
pkg-config --exists vibra || die "pkg-config cannot find vibra: set PKG_CONFIG_PATH to libvibra's lib/pkgconfig"

mkdir -p "$out"
libdir="$(pkg-config --variable=libdir vibra)"
# shellcheck disable=SC2046
${CC:-cc} -std=c99 -O2 -g -Wall -Wextra -Werror -pedantic -fPIC -shared \
    $(pkg-config --cflags lua5.3 vibra) "$here/lua_vibra.c" -o "$out/vibra.so.tmp" \
    $(pkg-config --libs vibra) -Wl,-rpath,"$libdir" -Wl,--no-undefined-version
mv "$out/vibra.so.tmp" "$out/vibra.so"
echo "$out/vibra.so"
