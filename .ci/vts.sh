#!/usr/bin/env bash
# vtimestamp stage: the C twin header under strict compilers, and a short run of each
# cargo-fuzz target (stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags).
# The C-vs-Rust byte comparison and the real-socket tests run in `cargo test --workspace`.
set -euo pipefail
cd "$(dirname "$0")/.."

step=""
trap 'echo "vts stage FAILED at step: $step" >&2' ERR
run_step() { step="$1"; printf '\n----- vts: %s -----\n' "$1"; }

run_step "system packages (C and C++ compilers for the header and libFuzzer)"
apt-get update -qq
apt-get install -y -qq --no-install-recommends gcc g++ libc6-dev >/dev/null

run_step "include/vibra_netif_ts.h: C99/C11 pedantic -Wconversion freestanding, as C++, beside vibra.h"
tmp=$(mktemp -d)
printf '#include "vibra_netif_ts.h"\nint f(uint8_t o[8]) { return vibra_netif_ts_extra_encode(1, 16, 1, o); }\n' > "$tmp/h.c"
for std in c99 c11; do
  gcc -std=$std -pedantic -Wall -Wextra -Wconversion -Werror -ffreestanding -Iinclude -c "$tmp/h.c" -o "$tmp/h.o"
done
g++ -x c++ -std=c++11 -Wall -Wextra -Werror -Iinclude -c "$tmp/h.c" -o "$tmp/h.o"
# With libvibra's generated header in the same file, in either order.
printf '#include "vibra.h"\n#include "vibra_netif_ts.h"\n' > "$tmp/a.c"
printf '#include "vibra_netif_ts.h"\n#include "vibra.h"\n' > "$tmp/b.c"
for f in a b; do
  gcc -std=c99 -Wall -Wextra -Werror -Iinclude -c "$tmp/$f.c" -o "$tmp/$f.o"
done
rm -rf "$tmp"

run_step "cargo-fuzz"
if ! command -v cargo-fuzz >/dev/null || ! cargo fuzz --version | grep '0\.13\.' >/dev/null; then
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

run_step "fuzz vtimestamp: record_decode and cmsg_parse, 20 s each"
cd vtimestamp/fuzz
for target in record_decode cmsg_parse; do
  step="fuzz $target"
  log=$(mktemp)
  rc=0
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time=20 -print_final_stats=1 >"$log" 2>&1 || rc=$?
  grep -E "^(Done|stat::number_of_executed_units)" "$log" || true
  if [ "$rc" -ne 0 ]; then
    tail -40 "$log"
    echo "fuzz target $target failed (exit $rc)" >&2
    false
  fi
  rm -f "$log"
done
echo "vts stage ok"
