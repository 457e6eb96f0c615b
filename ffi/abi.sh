#!/usr/bin/env bash
# The ABI contract of libvibra, checked with libabigail (Debian's abigail-tools).
#
#   ffi/abi.sh check  [LIB]   compare LIB with the committed baseline of its ABI version
#   ffi/abi.sh update [LIB]   (re)write that baseline: commit it with the change that needed it
#
# LIB defaults to target/release/libvibra.so, which must be built with full debug information
# (CARGO_PROFILE_RELEASE_DEBUG=2), or type changes go unseen.
#
# Rules: the baseline of ABI version N is ffi/abi/libvibra.so.N.abi. `check` fails on ANY
# difference between the library and that baseline. An incompatible change must bump
# VIBRA_ABI_VERSION (ffi/src/version.rs), which renames the soname and asks for a new baseline;
# a compatible addition regenerates the current baseline in the same commit, with a CHANGELOG
# entry. Released baselines are never rewritten for incompatible changes.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-check}
lib=${2:-target/release/libvibra.so}
abi=$(sed -n 's/^#define VIBRA_ABI_VERSION \([0-9]*\)$/\1/p' include/vibra.h)
[ -n "$abi" ] || { echo "abi.sh: no VIBRA_ABI_VERSION in include/vibra.h" >&2; exit 2; }
baseline=ffi/abi/libvibra.so.$abi.abi

soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [ "$soname" != "libvibra.so.$abi" ]; then
    echo "abi.sh: $lib has soname '$soname', expected libvibra.so.$abi (VIBRA_ABI_VERSION)" >&2
    exit 1
fi
if ! readelf --debug-dump=info "$lib" 2>/dev/null | grep -c DW_TAG_structure_type >/dev/null; then
    echo "abi.sh: $lib has no type debug information: build with CARGO_PROFILE_RELEASE_DEBUG=2" >&2
    exit 1
fi

dump() {
    abidw --no-show-locs --no-corpus-path --no-comp-dir-path --type-id-style hash "$lib"
}

case "$mode" in
update)
    dump > "$baseline"
    echo "abi.sh: wrote $baseline"
    ;;
check)
    if [ ! -f "$baseline" ]; then
        echo "abi.sh: VIBRA_ABI_VERSION is $abi but $baseline is missing:" >&2
        echo "        run 'ffi/abi.sh update' and commit the new baseline with the bump" >&2
        exit 1
    fi
    current=$(mktemp)
    trap 'rm -f "$current"' EXIT
    dump > "$current"
    if abidiff --no-default-suppression "$baseline" "$current"; then
        echo "abi.sh: the ABI matches $baseline"
    else
        echo "abi.sh: the ABI differs from $baseline (report above). Incompatible change: bump" >&2
        echo "        VIBRA_ABI_VERSION in ffi/src/version.rs. Compatible addition: run" >&2
        echo "        'ffi/abi.sh update' and add a CHANGELOG.md entry in the same commit." >&2
        exit 1
    fi
    ;;
*)
    echo "usage: ffi/abi.sh check|update [LIB]" >&2
    exit 2
    ;;
esac
