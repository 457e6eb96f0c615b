#!/usr/bin/env bash
# CI stage for examples/haproxy (issue 17): installs Debian's haproxy and Lua 5.3, builds libvibra
# and the Lua C module through serve.sh, and runs the real-haproxy test (real haproxies started by
# serve.sh, four real back ends on loopback, `vibra-lab map` as the reference).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export DEBIAN_FRONTEND=noninteractive

step=""
begin() { step="$*"; printf '\n--- haproxy stage (%ss): %s\n' "$SECONDS" "$*"; }
trap 'echo "haproxy stage FAILED in step: ${step}" >&2' ERR

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

begin "install haproxy, lua5.3, liblua5.3-dev and the C toolchain"
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    haproxy lua5.3 liblua5.3-dev pkg-config gcc make python3 valgrind >/dev/null
haproxy -v | sed -n 1p   # (sed reads all: no SIGPIPE under pipefail)

begin "build libvibra and the Lua module (serve.sh --build-only: what serve.sh does on first use)"
# the release profile .ci/ffi.sh builds with, so the library it built is reused, not rebuilt
export CARGO_PROFILE_RELEASE_DEBUG=2
examples/haproxy/serve.sh --build-only

begin "the Lua module alone, under lua5.3: every pick against vibra-lab map"
cargo build --quiet -p vibra-lab
vibra_lab="$root/target/debug/vibra-lab"
lua_dir="${CARGO_TARGET_DIR:-$root/target}/haproxy/lua"
lua5.3 examples/haproxy/test/test_module.lua "$lua_dir" "$vibra_lab"

begin "the same under valgrind (no invalid access, no leak once the Lua state is closed)"
valgrind -q --error-exitcode=1 --leak-check=full \
    lua5.3 examples/haproxy/test/test_module.lua "$lua_dir" "$vibra_lab" >/dev/null

begin "the World Cup URLs, as the wc98 crate reads them"
# wc98-urls prints every URL one per line, byte for byte; the test samples them and skips, with a
# count, those an HTTP request line cannot carry as they are or HAProxy refuses. The data is
# found by the workspace's one rule ($VIBRA_DATA_DIR, else ../shared/data beside the workspace).
wc98=()
if cargo run --quiet -p wc98 --bin wc98-urls >"$work/wc98-urls"; then
    wc98=(--wc98-urls "$work/wc98-urls")
elif [ "${VIBRA_REQUIRE_DATA:-}" = 1 ]; then
    echo "no World Cup URL list, and VIBRA_REQUIRE_DATA=1 forbids running without it" >&2
    false
else
    echo "SKIPPED the real URLs: no World Cup URL list (set VIBRA_DATA_DIR); synthetic ones only" >&2
fi

begin "run the real-haproxy test"
python3 examples/haproxy/test/test_haproxy.py --vibra-lab "$vibra_lab" "${wc98[@]}"

begin "ok"
