#!/usr/bin/env bash
# CI stage for libvibra (issue 6): the C library, its header, its install, its C examples and its
# ABI. Needs a C toolchain, pkg-config, valgrind and abigail-tools (installed below).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
export DEBIAN_FRONTEND=noninteractive

step() { printf '\n----- ffi: %s -----\n' "$*"; current_step="$*"; }
current_step=start
trap 'echo "ffi.sh: FAILED in step: $current_step" >&2' ERR

step "system packages"
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    gcc g++ make binutils pkg-config valgrind abigail-tools >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
warnings=(-Wall -Wextra -Werror -pedantic)

step "vibra.h is what the pinned cbindgen generates"
cargo test -q -p vibra-ffi --test header

step "vibra.h compiles alone as C99, C11 and C++11/17"
printf '#include "vibra.h"\nint main(void) { return vibra_abi_version() == VIBRA_ABI_VERSION ? 0 : 1; }\n' \
    > "$work/alone.c"
gcc -std=c99 "${warnings[@]}" -Iinclude -c "$work/alone.c" -o "$work/c99.o"
gcc -std=c11 "${warnings[@]}" -Iinclude -c "$work/alone.c" -o "$work/c11.o"
g++ -x c++ -std=c++11 "${warnings[@]}" -Iinclude -c "$work/alone.c" -o "$work/cxx11.o"
g++ -x c++ -std=c++17 "${warnings[@]}" -Iinclude -c "$work/alone.c" -o "$work/cxx17.o"

step "build libvibra (release, full debug information for the ABI check)"
# (ffi/install.sh builds the same way, so .ci/nginx.sh reuses this build.)
export CARGO_PROFILE_RELEASE_DEBUG=2
cargo build -q --release -p vibra-ffi
lib=${CARGO_TARGET_DIR:-target}/release/libvibra.so
abi=$(sed -n 's/^#define VIBRA_ABI_VERSION \([0-9]*\)$/\1/p' include/vibra.h)

step "soname is libvibra.so.$abi"
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libvibra.so.$abi" ] || { echo "soname is '$soname'" >&2; false; }

step "only vibra_* symbols are exported, exactly the functions of vibra.h"
nm -D --defined-only "$lib" | awk '{print $3}' | sort > "$work/exported"
if grep -v '^vibra_' "$work/exported"; then
    echo "the symbols above are exported but are not vibra_*" >&2
    false
fi
sed -n 's/^[a-z].*[ *]\(vibra_[a-z0-9_]*\)(.*/\1/p' include/vibra.h | sort > "$work/declared"
diff -u "$work/declared" "$work/exported"

step "ABI matches the committed abidw baseline"
ffi/abi.sh check "$lib"

step "install into a temporary prefix"
prefix="$work/prefix"
ffi/install.sh --prefix "$prefix" --no-build
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion vibra)" = "$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)" ]
[ "$(readlink "$prefix/lib/libvibra.so")" = "libvibra.so.$abi" ]

step "example inputs: the first 3,000 World Cup URLs, as the wc98 crate reads them"
# wc98-urls prints them one per line, byte for byte (inner blanks and carriage returns kept);
# it finds the data by the workspace's one rule ($VIBRA_DATA_DIR, else ../shared/data beside
# the workspace). The dev profile reuses the test stage's build.
if ! cargo run -q -p wc98 --bin wc98-urls -- --limit 3000 > "$work/urls"; then
    if [ "${VIBRA_REQUIRE_DATA:-}" = 1 ]; then
        echo "no World Cup URL list, and VIBRA_REQUIRE_DATA=1 forbids running without it" >&2
        false
    fi
    echo "SKIPPED the real URLs: no World Cup URL list (set VIBRA_DATA_DIR); a few made-up ones" >&2
    printf '/index.html\n/images/logo.gif\nhttp://www.france98.com/english/teams/?x=1\n/\n' \
        > "$work/urls"
fi
[ -s "$work/urls" ]

programs="dispatch allocate share_exchange timestamps"
printf '10 1\n20 3\n30 0\n40 4\n0 2.5\n' > "$work/vms"

run_examples() { # $1: directory of built programs, then a runner prefix
    local dir=$1
    shift
    "$@" "$dir/abi_check"
    "$@" "$dir/dispatch" 8 2 md5 3,5 < "$work/urls" > "$work/dispatch.out" 2> "$work/dispatch.err"
    [ "$(wc -l < "$work/dispatch.out")" = "$(wc -l < "$work/urls")" ]
    if grep -E ' ([0-9]+,)*(3|5)(,|$)' "$work/dispatch.out"; then
        echo "servers 3 and 5 are down but were dispatched to" >&2
        false
    fi
    "$@" "$dir/allocate" 100 5 1 2 < "$work/vms" > "$work/allocate.out"
    grep -q '^plan: 5 steps, decreases first$' "$work/allocate.out"
    grep -q '^  vm 1: 26.429 -> 0.000$' "$work/allocate.out"
    "$@" "$dir/share_exchange" 6 > "$work/share.out"
    [ "$(grep -c '(total 1.0000)$' "$work/share.out")" = 14 ]
    "$@" "$dir/timestamps" 1.000017 16909060.5 > "$work/timestamps.out"
    grep -q '^record 0: 06 01 01 00 01 00 00 00  = 1.000016, more follow$' "$work/timestamps.out"
    grep -q '^record 1: 06 00 12 7a 04 03 02 01  = 16909060.500000$' "$work/timestamps.out"
    "$@" "$dir/timestamps" > /dev/null
}

build_examples() { # $1: output directory; further arguments: extra make variables
    local out=$1
    shift
    mkdir -p "$out"
    make -s -C examples/c clean
    make -s -C examples/c "$@" LDFLAGS="${ldflags:-} -Wl,-rpath,$prefix/lib"
    for program in $programs; do cp "examples/c/$program" "$out/"; done
    make -s -C examples/c clean
    # shellcheck disable=SC2046
    gcc -std=c99 "${warnings[@]}" ${cflags:-} $(pkg-config --cflags vibra) ffi/tests/c/abi_check.c \
        -o "$out/abi_check" ${ldflags:-} -Wl,-rpath,"$prefix/lib" $(pkg-config --libs vibra)
}

step "C examples: build with pkg-config (shared library) and run"
cflags="" ldflags="" build_examples "$work/shared"
run_examples "$work/shared"

step "C examples under valgrind"
run_examples "$work/shared" valgrind -q --error-exitcode=1 --leak-check=full \
    --errors-for-leak-kinds=definite,possible

step "C examples with AddressSanitizer"
cflags="-fsanitize=address -fno-omit-frame-pointer" ldflags="-fsanitize=address" \
    build_examples "$work/asan" CFLAGS="-O1 -g -fsanitize=address -fno-omit-frame-pointer"
ldd "$work/asan/dispatch" | grep libasan >/dev/null || { echo "the ASan build has no libasan" >&2; false; }
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 run_examples "$work/asan"

step "C examples linked statically (libvibra.a)"
make -s -C examples/c clean
make -s -C examples/c STATIC=1
if ldd examples/c/dispatch | grep libvibra >/dev/null; then
    echo "STATIC=1 still links libvibra.so" >&2
    false
fi
for program in $programs; do cp "examples/c/$program" "$work/shared/"; done
make -s -C examples/c clean
run_examples "$work/shared"

step "ok"
