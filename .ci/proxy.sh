#!/usr/bin/env bash
# CI stage for vibra-proxy and vibra-pingora (issue 14, item 1): Pingora's zlib-ng needs
# Debian's cmake, so both crates keep Pingora behind their `pingora` feature and this stage,
# after installing cmake, builds them with it, lints them, and runs the real-proxy tests (the
# vibra-proxy binary, four HTTP back ends on loopback, `vibra-lab map` as the reference; with
# the World Cup URL list when ../shared/data has it) and the adapter's example.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

step=""
begin() { step="$*"; printf '\n--- proxy stage (%ss): %s\n' "$SECONDS" "$*"; }
trap 'echo "proxy stage FAILED in step: ${step}" >&2' ERR

begin "install cmake (Pingora's zlib-ng)"
if ! command -v cmake >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends cmake >/dev/null
fi

# The World Cup URLs come through wc98's one rule ($VIBRA_DATA_DIR, else ../shared/data beside
# the workspace root, found from the crate, not from the current directory: cargo runs tests
# in the crate's folder, so a relative VIBRA_DATA_DIR would point nowhere). .ci/run sets
# VIBRA_REQUIRE_DATA=1, which turns a missing list into a failure.

crates=(-p vibra-proxy -p vibra-pingora)

begin "clippy with the pingora feature"
cargo clippy "${crates[@]}" --features vibra-proxy/pingora,vibra-pingora/pingora --all-targets -- -D warnings

begin "tests with the pingora feature (real proxy, real back ends on loopback)"
cargo test "${crates[@]}" --features vibra-proxy/pingora,vibra-pingora/pingora

begin "the adapter's runnable example"
cargo run -q -p vibra-pingora --features pingora --example select

begin "ok"
