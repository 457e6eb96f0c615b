#!/usr/bin/env bash
# Builds ngx_http_upstream_vibra_module.so as an nginx dynamic module against
# Debian's nginx-dev sources, with the configure arguments and compiler flags
# the installed nginx was built with (so that `load_module` accepts it).
#
#   PKG_CONFIG_PATH=<libvibra prefix>/lib/pkgconfig examples/nginx/build.sh <out dir>
#
# Needs: nginx, nginx-dev, pkg-config, a C compiler, libvibra installed with vibra.pc.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: build.sh <output directory>}"
src=/usr/share/nginx/src

die() { echo "build.sh: error: $*" >&2; exit 1; }

[ -x "$src/configure" ] || die "$src/configure missing: install Debian's nginx-dev"
command -v nginx >/dev/null || die "nginx not found: install Debian's nginx"
pkg-config --exists vibra || die "pkg-config cannot find vibra: set PKG_CONFIG_PATH to libvibra's lib/pkgconfig"

mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# configure writes objs/ into the source tree: work on a copy of it
cp -a "$src" "$work/src"

# The flags nginx was built with, as it reports them itself.
nginx_v="$(nginx -V 2>&1)"
cc_opt="$(sed -n "s/.*--with-cc-opt='\([^']*\)'.*/\1/p" <<<"$nginx_v")"
ld_opt="$(sed -n "s/.*--with-ld-opt='\([^']*\)'.*/\1/p" <<<"$nginx_v")"
[ -n "$cc_opt" ] || die "could not read --with-cc-opt from 'nginx -V'"

cd "$work/src"
# shellcheck disable=SC1091
. ./conf_flags   # NGX_CONF_FLAGS: Debian's configure arguments for module builds
./configure --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" "${NGX_CONF_FLAGS[@]}" \
    --add-dynamic-module="$here" >"$work/configure.log" 2>&1 \
    || { tail -30 "$work/configure.log" >&2; die "nginx configure failed"; }
make -f objs/Makefile -j"$(nproc)" modules >"$work/make.log" 2>&1 \
    || { cat "$work/make.log" >&2; die "compiling the module failed"; }

cp objs/ngx_http_upstream_vibra_module.so "$out/"
echo "$out/ngx_http_upstream_vibra_module.so"
