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

# Machine paths never enter a baseline. abidw's options drop source locations, the corpus path
# and compilation directories; what remains is each translation unit's name, its source path:
# relative for the workspace's crates, /rustc/<hash>/... for the standard library, but absolute
# under the builder's cargo home for crates.io (and git) dependencies. Those prefixes are
# rewritten to fixed names (the crate, version and file are kept), and so is the checkout's own
# directory should a build ever name it, on both sides of the comparison alike; the types,
# functions and variables abidiff compares are untouched.
root=$PWD
cargo_home=${CARGO_HOME:-$HOME/.cargo}
parent=$(cd .. && pwd)
quote() { printf '%s' "$1" | sed 's/[][\\.*^$#+?(){}|]/\\&/g'; }
dump() {
    abidw --no-show-locs --no-corpus-path --no-comp-dir-path --type-id-style hash "$lib" |
        sed -E -e "s#path='[^']*/registry/src/[^/']+/#path='cargo-registry/#g" \
            -e "s#path='[^']*/git/checkouts/#path='cargo-git/#g" \
            -e "s#path='$(quote "$root")/#path='#g"
}
# A dump that still names this machine (a new kind of path) is refused, not committed.
machine_free() { # $1: dump file
    local where
    for where in "$cargo_home" "$parent" "$HOME"; do
        if [ -n "$where" ] && [ "$where" != / ] && grep -n -F -- "$where" "$1" | head -n 5 | grep .; then
            echo "abi.sh: the dump above still names $where: extend the normalisation in dump()" >&2
            return 1
        fi
    done
}

case "$mode" in
update)
    dump > "$baseline.new"
    machine_free "$baseline.new" || { rm -f "$baseline.new"; exit 1; }
    mv "$baseline.new" "$baseline"
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
    machine_free "$current"
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
