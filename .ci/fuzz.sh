#!/usr/bin/env bash
# libvibra's C API under sanitizers (issue 10): a short run of each cargo-fuzz target of ffi/fuzz
# (stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags), then the ffi crate's
# own tests built with AddressSanitizer. Any crash, contract violation, sanitizer report or leak
# fails the stage.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
export DEBIAN_FRONTEND=noninteractive

step=""
trap 'echo "fuzz stage FAILED at step: $step" >&2' ERR
run_step() { step="$1"; printf '\n----- fuzz: %s -----\n' "$1"; }

# A log that names a sanitizer finding fails the step even if the exit status did not say so.
sanitizer_report() { grep -E '^(==[0-9]+==)?ERROR: (AddressSanitizer|LeakSanitizer)|^SUMMARY: (AddressSanitizer|LeakSanitizer)' "$1"; }

run_step "system packages (C and C++ compilers for libFuzzer)"
# (Waiting for the package lock, should another job hold it.)
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends gcc g++ libc6-dev >/dev/null

run_step "cargo-fuzz"
if ! command -v cargo-fuzz >/dev/null || ! cargo fuzz --version | grep '0\.13\.' >/dev/null; then
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

run_step "fuzz libvibra: dispatch, allocation and share, 20 s each"
(
  cd ffi/fuzz
  for target in dispatch allocation share; do
    step="fuzz $target"
    log=$(mktemp)
    rc=0
    # One process (no -jobs/-workers): the CI machine may be shared. Leak detection is on by
    # default with AddressSanitizer; -error_exitcode makes every finding a failure.
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time=20 -print_final_stats=1 \
      -error_exitcode=77 >"$log" 2>&1 || rc=$?
    grep -E "^(Done|stat::number_of_executed_units)" "$log" || true
    if [ "$rc" -ne 0 ] || sanitizer_report "$log" >/dev/null; then
      tail -60 "$log"
      echo "fuzz target $target failed (exit $rc)" >&2
      exit 1
    fi
    rm -f "$log"
  done
)

run_step "vibra-ffi tests under AddressSanitizer"
# --target: RUSTFLAGS then apply to the target only, so build scripts and proc-macros (which run
# on the host) are not instrumented. A separate target directory keeps the normal build intact.
# --lib --tests: the unit tests (every exported function through raw pointers) and the header
# test. Doc tests are left out: rustdoc takes RUSTDOCFLAGS, not RUSTFLAGS, so each example would
# link the instrumented libvibra into an uninstrumented program without the ASan runtime (the
# link fails: undefined symbol __asan_init); they are usage examples, run by the workspace tests.
log=$(mktemp)
rc=0
RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address" ASAN_OPTIONS=detect_leaks=1 \
  CARGO_TARGET_DIR=target/asan \
  cargo test -p vibra-ffi --lib --tests --target x86_64-unknown-linux-gnu >"$log" 2>&1 || rc=$?
grep -E "^test result:" "$log" || true
if [ "$rc" -ne 0 ] || sanitizer_report "$log" >/dev/null; then
  tail -80 "$log"
  echo "vibra-ffi tests under AddressSanitizer failed (exit $rc)" >&2
  false
fi
rm -f "$log"
echo "fuzz stage ok"
