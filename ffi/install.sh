#!/usr/bin/env bash
# Builds libvibra and installs it for C programs:
#
#   ffi/install.sh [--prefix DIR] [--libdir DIR] [--includedir DIR] [--destdir DIR] [--no-build]
#
#   DIR/lib/libvibra.so.<abi>          the shared library (soname libvibra.so.<abi>)
#   DIR/lib/libvibra.so -> .so.<abi>   the link-time name
#   DIR/lib/libvibra.a                 the static library
#   DIR/include/vibra.h                the header
#   DIR/lib/pkgconfig/vibra.pc         for `pkg-config --cflags --libs vibra`
#                                      (`pkg-config --static --libs vibra` for libvibra.a)
#
# --prefix defaults to /usr/local. --destdir stages the files under another root (for packagers)
# while vibra.pc keeps naming the real prefix. --no-build installs what target/release holds.
# Set CARGO_PROFILE_RELEASE_DEBUG=2 for full debug information (the ABI check needs it).
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=/usr/local
libdir=
includedir=
destdir=
build=1
while [ $# -gt 0 ]; do
    case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --libdir) libdir=$2; shift 2 ;;
    --libdir=*) libdir=${1#*=}; shift ;;
    --includedir) includedir=$2; shift 2 ;;
    --includedir=*) includedir=${1#*=}; shift ;;
    --destdir) destdir=$2; shift 2 ;;
    --destdir=*) destdir=${1#*=}; shift ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
case "$prefix" in /*) ;; *) echo "install.sh: --prefix must be absolute" >&2; exit 2 ;; esac
libdir=${libdir:-$prefix/lib}
includedir=${includedir:-$prefix/include}

if [ "$build" = 1 ]; then
    cargo build --release -p vibra-ffi
fi
target=${CARGO_TARGET_DIR:-target}/release
abi=$(sed -n 's/^#define VIBRA_ABI_VERSION \([0-9]*\)$/\1/p' include/vibra.h)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
[ -n "$abi" ] && [ -n "$version" ] || { echo "install.sh: cannot read ABI version or version" >&2; exit 1; }

install -d "$destdir$libdir/pkgconfig" "$destdir$includedir"
install -m 755 "$target/libvibra.so" "$destdir$libdir/libvibra.so.$abi"
ln -sf "libvibra.so.$abi" "$destdir$libdir/libvibra.so"
install -m 644 "$target/libvibra.a" "$destdir$libdir/libvibra.a"
install -m 644 include/vibra.h "$destdir$includedir/vibra.h"
# The system libraries a Rust staticlib needs on glibc targets, as printed by
# `rustc --print native-static-libs`; the shared library records them itself.
native_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
sed -e "s|@PREFIX@|$prefix|" -e "s|@LIBDIR@|$libdir|" -e "s|@INCLUDEDIR@|$includedir|" \
    -e "s|@VERSION@|$version|" -e "s|@NATIVE_LIBS@|$native_libs|" \
    ffi/vibra.pc.in > "$destdir$libdir/pkgconfig/vibra.pc"
echo "installed libvibra $version (ABI $abi) into $destdir$prefix"
